//! A real Prometheus (scripts/services/prometheus.sh) scraping ferry, and
//! the dashboards' and alert rules' expressions it is asked: shared by the
//! single-node observability test and the cluster test.

use super::service::Service;
use regex::Regex;
use reqwest::blocking::Client;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The dashboard and the rules that only a cluster's metrics feed.
pub const CLUSTER_DASHBOARD: &str = "ferry-cluster.json";
pub const ALERTS: &str = "ferry.rules.yml";
pub const CLUSTER_ALERTS: &str = "ferry-cluster.rules.yml";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub struct Prometheus {
    url: String,
    client: Client,
    _service: Service,
}

impl Prometheus {
    pub fn scraping(targets: &[u16]) -> Prometheus {
        let scrape = targets
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let service = Service::start_with(
            "prometheus",
            &[
                ("PROMETHEUS_SCRAPE_TARGET", &scrape),
                ("PROMETHEUS_SCRAPE_INTERVAL", "1s"),
            ],
        );
        Prometheus {
            url: service.var("PROMETHEUS_URL").to_owned(),
            client: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            _service: service,
        }
    }

    /// An instant query: `Ok(result)` or `Err(error text)` for an invalid one.
    pub fn query(&self, q: &str) -> Result<Vec<Value>, String> {
        let r: Value = self
            .client
            .post(format!("{}/api/v1/query", self.url))
            .form(&[("query", q)])
            .send()
            .unwrap()
            .json()
            .unwrap();
        if r["status"] != "success" {
            return Err(format!("{}: {}", r["errorType"], r["error"]));
        }
        Ok(r["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// The first value of a query that must be valid, if it has one.
    pub fn value(&self, q: &str) -> Option<f64> {
        let result = self.query(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// The rules of one group Prometheus loaded, with their health.
    pub fn rules(&self, group: &str) -> Vec<Value> {
        let r: Value = self
            .client
            .get(format!("{}/api/v1/rules", self.url))
            .send()
            .unwrap()
            .json()
            .unwrap();
        r["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["name"] == group)
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .collect()
    }
}

/// Every PromQL expression of the dashboards, by where it is, plus the
/// metric of each `label_values(...)` variable query.
pub fn dashboard_expressions(wanted: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let mut out = vec![];
    let dir = repo().join("dashboards/grafana");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let label_values = Regex::new(r"^label_values\(([a-z_:]+), *[a-z_]+\)$").unwrap();
    for file in files {
        if !wanted(&file.file_name().unwrap().to_string_lossy()) {
            continue;
        }
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            d["templating"]["list"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
            "{name}: no datasource variable"
        );
        for v in d["templating"]["list"].as_array().unwrap() {
            if let Some(q) = v["query"]["query"].as_str() {
                let metric = label_values
                    .captures(q)
                    .unwrap_or_else(|| panic!("{name}: variable query {q}"))[1]
                    .to_owned();
                out.push((format!("{name} variable {}", v["name"]), metric));
            }
        }
        for p in d["panels"].as_array().unwrap() {
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "{name}: panel {} does not use the datasource variable",
                p["title"]
            );
            for t in p["targets"].as_array().unwrap() {
                out.push((
                    format!("{name} panel {} {}", p["title"], t["refId"]),
                    t["expr"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    out
}

/// `(alert, expr)` of every rule in dashboards/alerts.
pub fn alert_expressions(file: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("dashboards/alerts").join(file)).unwrap();
    let mut out = vec![];
    let mut alert = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(a) = line.strip_prefix("- alert: ") {
            alert = Some(a.to_owned());
        } else if let Some(e) = line.strip_prefix("expr: ") {
            out.push((alert.take().expect("expr after alert"), e.to_owned()));
        }
    }
    assert!(!out.is_empty());
    out
}

/// An alert's `<quantity> <op> <threshold>` split into its quantity.
pub fn quantity(expr: &str) -> String {
    let re = Regex::new(r"^(.*\S)\s*(>|<|>=|<=|==|!=)\s*[0-9.e+-]+$").unwrap();
    re.captures(expr)
        .unwrap_or_else(|| panic!("alert expr is not `<quantity> <op> <number>`: {expr}"))[1]
        .to_owned()
}

pub fn finite(result: &[Value]) -> bool {
    result.iter().any(|s| {
        s["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(f64::is_finite)
    })
}

impl Prometheus {
    /// Every dashboard expression (after `substitute`) must be valid and
    /// return finite data; every alert expression valid and its quantity
    /// return finite data. The failures, as text.
    pub fn check(
        &self,
        dashboards: &[(String, String)],
        alerts: &[(String, String)],
        substitute: impl Fn(&str) -> String,
    ) -> Vec<String> {
        let mut failures = vec![];
        for (at, expr) in dashboards {
            let q = substitute(expr);
            match self.query(&q) {
                Err(e) => failures.push(format!("{at}: invalid: {q}: {e}")),
                Ok(r) if r.is_empty() => failures.push(format!("{at}: no data: {q}")),
                Ok(r) if !finite(&r) => failures.push(format!("{at}: only NaN/Inf: {q}")),
                Ok(_) => {}
            }
        }
        for (alert, expr) in alerts {
            if let Err(e) = self.query(expr) {
                failures.push(format!("alert {alert}: invalid: {expr}: {e}"));
            }
            let q = quantity(expr);
            match self.query(&q) {
                Err(e) => failures.push(format!("alert {alert}: invalid quantity {q}: {e}")),
                Ok(r) if !finite(&r) => failures.push(format!("alert {alert}: no data: {q}")),
                Ok(_) => {}
            }
        }
        failures
    }
}
