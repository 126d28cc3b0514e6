//! Observability, proven against real parts: a real Prometheus (Debian's
//! package, started by scripts/services/prometheus.sh) scrapes a real
//! `ferry serve` that has done exports, and every expression of every
//! dashboard panel and alert rule must be valid and return data; promtool
//! checks and unit-tests the alert rules; a tidy check ties the metric
//! names of dashboards and rules to what the binary exports and what the
//! docs describe; and the logs are JSON with workflow and request context.

mod support;

use regex::Regex;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::prom::{self, alert_expressions, dashboard_expressions, Prometheus};
use support::{run_ok, Ferry};

const PROFILES: [&str; 3] = ["lite", "native", "analytics"];
/// Short, so expiry timers fire during the test; long enough to read a
/// bundle after its export completed.
const BUNDLE_TTL_SECS: &str = "3";
/// Upper bound of every wait below (they poll a condition; none is a timing
/// assertion).
const WAIT: Duration = Duration::from_secs(120);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Metric families named in an expression (histogram series by family).
fn metrics_named(expr: &str) -> BTreeSet<String> {
    let re = Regex::new(r"\bferry_[a-z0-9_]+").unwrap();
    re.find_iter(expr)
        .map(|m| {
            let n = m.as_str();
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n)
                .to_owned()
        })
        .collect()
}

/// `# TYPE name kind` of a /metrics text.
fn exported_families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, k)| (n.to_owned(), k.to_owned()))
        .collect()
}

/// Upload a bundle for a rehydration; the status path of its workflow.
fn upload(f: &Ferry, token: &str, bundle: Vec<u8>) -> String {
    let r = f.upload_bundle(token, "", bundle);
    assert_eq!(r.status(), 202);
    let job: Value = r.json().unwrap();
    format!(
        "/api/v1/tenant/rehydrate/{}/status",
        job["job"]["id"].as_str().unwrap()
    )
}

/// Export every profile for each tenant and wait until each is completed
/// and its (short) expiry timer has deleted the bundle; meanwhile rehydrate
/// the first tenant from its first bundle (replace, confirmed), so the
/// rehydrate kind's series have data too, and refuse a bad upload of the
/// second (a real failure).
fn run_wave(f: &Ferry, tokens: &[String]) {
    let first = f.export(&tokens[0], json!({"profile": "lite"}));
    f.wait_export(&tokens[0], &first, "completed", WAIT);
    // Read before its expiry timer (BUNDLE_TTL_SECS) deletes it.
    let bundle = std::fs::read(f.bundle_path("acme", &first)).unwrap();
    let mut exports = vec![(0, first)];
    for (i, tok) in tokens.iter().enumerate() {
        for p in PROFILES.iter().filter(|p| i > 0 || **p != "lite") {
            exports.push((
                i,
                f.export(tok, json!({"profile": p, "includeAssets": true})),
            ));
        }
    }
    let status = upload(f, &tokens[0], bundle);
    f.wait_status(&tokens[0], &status, "awaiting_confirmation", WAIT);
    let confirm = status.replace("/status", "/confirm");
    let r = f.post(&confirm, Some(&tokens[0]), &json!({"confirm": "DELETE"}));
    assert_eq!(r.status(), 202);
    f.wait_status(&tokens[0], &status, "completed", WAIT);
    // A refused upload: a real failure for the failure panels and alerts
    // (not only series that exist at zero).
    let refused = upload(f, &tokens[1], b"not a zip archive".to_vec());
    f.wait_status(&tokens[1], &refused, "failed", WAIT);
    for (i, id) in &exports {
        f.wait_export(&tokens[*i], id, "completed", WAIT);
        wait_for("the expiry timer", || {
            (f.export_status(&tokens[*i], id)["expired"] == true).then_some(())
        });
    }
}

/// A server with two sampled tenants (one opted in to tenant series), bundles
/// that expire after a few seconds, and JSON logs.
fn ferry() -> (Ferry, Vec<String>) {
    let mut f = Ferry::new()
        .env("FERRY_BUNDLE_TTL_SECS", BUNDLE_TTL_SECS)
        .env("FERRY_METRICS_TENANTS", "acme")
        .env("FERRY_LOG_FORMAT", "json")
        .env("FERRY_LOG", "info");
    f.sample("acme", 1);
    f.sample("globex", 1);
    f.start();
    let tokens = vec![
        f.token("acme", "tenant_admin"),
        f.token("globex", "tenant_admin"),
    ];
    (f, tokens)
}

#[test]
fn every_dashboard_and_alert_expression_returns_data_from_a_real_prometheus() {
    let (f, tokens) = ferry();
    let started = Instant::now();
    let prom = Prometheus::scraping(&[f.port]);
    wait_for("Prometheus to scrape ferry", || {
        (prom.value(r#"up{job="ferry"}"#) == Some(1.0)).then_some(())
    });
    // Two waves with scrapes between them, so every counter and histogram
    // has grown between two samples and rates are real numbers.
    let per_wave = (tokens.len() * PROFILES.len()) as f64;
    for wave in 1..=2 {
        run_wave(&f, &tokens);
        let want = per_wave * wave as f64;
        let rehydrated = r#"ferry_workflows_finished_total{kind="rehydrate",outcome="completed"}"#;
        let refused = r#"ferry_workflows_finished_total{kind="rehydrate",outcome="failed"}"#;
        wait_for("Prometheus to see the wave's timers", || {
            (prom.value("sum(ferry_timers_fired_total)") >= Some(want)
                && prom.value(
                    r#"sum(ferry_workflows_finished_total{kind="export",outcome="completed"})"#,
                ) >= Some(want)
                && prom.value(rehydrated) >= Some(wave as f64)
                && prom.value(refused) >= Some(wave as f64))
            .then_some(())
        });
    }
    // Tenant series are bounded: globex (not opted in) has none of its own
    // and is counted under tenant="other"; acme (opted in) has its own.
    let exposition = f.get("/metrics", None).text().unwrap();
    let tenants: std::collections::BTreeSet<&str> = exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split("tenant=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(
        tenants,
        ["acme", "other"].into_iter().collect(),
        "tenant label values"
    );
    // Rates over everything since Prometheus started.
    let window = format!("{}s", started.elapsed().as_secs() + 5);
    let substitute = |e: &str| {
        e.replace("$__rate_interval", &window)
            .replace("$__range", &window)
            .replace("$kind", ".*")
    };

    let dashboards = dashboard_expressions(|file| file != prom::CLUSTER_DASHBOARD);
    let alerts = alert_expressions(prom::ALERTS);
    let mut failures = prom.check(&dashboards, &alerts, substitute);
    // Prometheus loaded the same rule file and evaluates it without error.
    let rules = wait_for("every rule to be evaluated", || {
        let rules = prom.rules("ferry");
        rules
            .iter()
            .all(|r| r["health"] != "unknown")
            .then_some(rules)
    });
    assert_eq!(rules.len(), alerts.len(), "{rules:?}");
    for r in &rules {
        if r["health"] != "ok" {
            failures.push(format!("rule {} unhealthy: {}", r["name"], r["lastError"]));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} dashboard and {} alert expressions failed:\n{}",
        failures.len(),
        dashboards.len(),
        alerts.len(),
        failures.join("\n")
    );
    eprintln!(
        "checked {} dashboard expressions and {} alert rules (expression and quantity) against Prometheus",
        dashboards.len(),
        alerts.len()
    );

    tidy_metric_names(
        &f.get("/metrics", None).text().unwrap(),
        &dashboards,
        &alerts,
    );
    logs_carry_workflow_context(&f.server_log());
}

/// Tidy: every metric a dashboard or rule names is exported; every exported
/// metric is documented; names follow Prometheus conventions.
fn tidy_metric_names(metrics: &str, dashboards: &[(String, String)], alerts: &[(String, String)]) {
    let exported = exported_families(metrics);
    let named: BTreeSet<String> = dashboards
        .iter()
        .chain(alerts)
        .flat_map(|(_, e)| metrics_named(e))
        .collect();
    let unknown: Vec<_> = named
        .iter()
        .filter(|n| !exported.contains_key(*n))
        .collect();
    assert!(
        unknown.is_empty(),
        "dashboards/rules name metrics ferry does not export: {unknown:?}"
    );
    let docs = std::fs::read_to_string(repo().join("README.md")).unwrap()
        + &std::fs::read_to_string(repo().join("dashboards/README.md")).unwrap();
    let mut problems = vec![];
    for (name, kind) in &exported {
        if !name.starts_with("ferry_") {
            problems.push(format!("{name}: no ferry_ prefix"));
        }
        if !docs.contains(&format!("`{name}")) {
            problems.push(format!(
                "{name}: not documented in README.md or dashboards/README.md"
            ));
        }
        if kind == "counter" && !name.ends_with("_total") {
            problems.push(format!("{name}: a counter without _total"));
        }
        if kind != "counter" && name.ends_with("_total") {
            problems.push(format!("{name}: _total on a {kind}"));
        }
    }
    let unused: Vec<_> = exported.keys().filter(|n| !named.contains(*n)).collect();
    eprintln!(
        "{} metric families exported, {} named by dashboards/rules; not on a dashboard: {unused:?}",
        exported.len(),
        named.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// JSON logs: every line logged inside a workflow carries its tenant, id
/// and step; request lines carry the request id.
fn logs_carry_workflow_context(log: &str) {
    let mut workflow_lines = 0;
    let mut steps = BTreeSet::new();
    let mut request_lines = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        // `spans` lists the enclosing spans; an event logged with an
        // explicit parent has only `span`.
        let mut spans = v["spans"].as_array().cloned().unwrap_or_default();
        spans.extend(v.get("span").cloned());
        let in_workflow = spans.iter().find(|s| s["name"] == "workflow");
        let names_workflow = v.get("workflow").is_some() || in_workflow.is_some();
        if names_workflow {
            workflow_lines += 1;
            let field = |k: &str| {
                in_workflow
                    .and_then(|s| s.get(k))
                    .or_else(|| v.get(k))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            for k in ["tenant", "workflow", "step"] {
                assert!(
                    field(k).is_some(),
                    "a workflow's log line without {k}: {line}"
                );
            }
            steps.insert(field("step").unwrap());
        }
        if let Some(r) = spans.iter().find(|s| s["name"] == "http_request") {
            request_lines += 1;
            assert!(
                r["request_id"].as_str().is_some_and(|id| !id.is_empty()),
                "{line}"
            );
        }
    }
    eprintln!(
        "{workflow_lines} workflow log lines, steps {steps:?}; {request_lines} request lines"
    );
    for step in [
        "plan",
        "snapshot",
        "bundle",
        "upload",
        "timer:expire",
        "validate",
        "load",
    ] {
        assert!(
            steps.contains(step),
            "no log line of step {step}: {steps:?}"
        );
    }
    assert!(request_lines > 0, "no request was logged");
}

#[test]
fn every_response_carries_a_request_id() {
    let mut f = Ferry::new();
    f.start();
    let r = f
        .client
        .get(f.url("/api/v1/workflows"))
        .header("X-Request-Id", "trace-abc-123")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-request-id"], "trace-abc-123");
    let mut seen = BTreeSet::new();
    for path in ["/healthz", "/metrics", "/openapi.json", "/no/such/route"] {
        let r = f.get(path, None);
        let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(id.len(), 36, "{path}: {id}");
        assert!(seen.insert(id), "{path}: a repeated request id");
    }
}

#[test]
fn promtool_checks_and_unit_tests_the_alert_rules() {
    // Installs Prometheus (and promtool) if missing, the way CI does.
    run_ok(
        Command::new("bash")
            .arg(repo().join("scripts/services/prometheus.sh"))
            .arg("install"),
    );
    let alerts = repo().join("dashboards/alerts");
    for rules in [prom::ALERTS, prom::CLUSTER_ALERTS] {
        run_ok(
            Command::new("promtool")
                .args(["check", "rules", rules])
                .current_dir(&alerts),
        );
        let tests = rules.replace(".rules.yml", ".rules.test.yml");
        run_ok(
            Command::new("promtool")
                .args(["test", "rules", &tests])
                .current_dir(&alerts),
        );
    }
}

#[test]
fn dashboards_are_what_build_py_writes() {
    run_ok(
        Command::new("python3")
            .arg(repo().join("dashboards/build.py"))
            .arg("--check"),
    );
}
