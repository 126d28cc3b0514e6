//! Logs and process-wide metrics: the `tracing` subscriber (text, or JSON
//! with `FERRY_LOG_FORMAT=json`), request ids, and `ferry_build_info`.
//!
//! Every line logged while a workflow runs is inside the engine's `workflow`
//! span (tenant, workflow, kind, step, attempt); every line logged while a
//! request is handled is inside an `http_request` span (request id, method,
//! route). In JSON the span's fields are in `span` and, with the enclosing
//! spans, in `spans`, so a log pipeline can filter by tenant, workflow or
//! request id.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use prometheus::{IntGaugeVec, Opts, Registry};

/// The header carrying a request's id, in requests (optional) and responses.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id accepted from a client; longer ones are replaced.
pub const REQUEST_ID_LEN_MAX: usize = 128;

/// Install the global subscriber. `default` is the filter when `FERRY_LOG`
/// is unset.
pub fn init_logging(default: &str) {
    use tracing_subscriber::{fmt, EnvFilter};
    let filter = crate::config::env("FERRY_LOG")
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let json = crate::config::env("FERRY_LOG_FORMAT").is_some_and(|v| v == "json");
    if json {
        let _ = fmt()
            .with_env_filter(filter)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .try_init();
    } else {
        let _ = fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// The id of a request: the client's `X-Request-Id` if it is a sane token
/// (1..=128 printable ASCII characters), so a request can be followed
/// across services; otherwise a fresh UUID.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(&REQUEST_ID_HEADER)
        .filter(|v| {
            let b = v.as_bytes();
            !b.is_empty() && b.len() <= REQUEST_ID_LEN_MAX && b.iter().all(u8::is_ascii_graphic)
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("a UUID is ASCII")
        })
}

/// `ferry_build_info{version,profile} 1`: which build answers, for joins in
/// queries and for spotting a mixed fleet during a rollout.
pub fn register_build_info(registry: &Registry) -> prometheus::Result<()> {
    let info = IntGaugeVec::new(
        Opts::new(
            "ferry_build_info",
            "Always 1; the labels tell the version and build profile of the running ferry.",
        ),
        &["version", "profile"],
    )?;
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    info.with_label_values(&[env!("CARGO_PKG_VERSION"), profile])
        .set(1);
    registry.register(Box::new(info))
}

/// Tenants given their own series in `ferry_tenant_*`, from
/// `FERRY_METRICS_TENANTS` (comma-separated). Opt-in keeps the number of
/// tenant-labelled series fixed by configuration, whatever the traffic.
pub fn metrics_tenants() -> Vec<String> {
    crate::config::env("FERRY_METRICS_TENANTS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_for(value: Option<&str>) -> String {
        let mut h = HeaderMap::new();
        if let Some(v) = value {
            h.insert(REQUEST_ID_HEADER, HeaderValue::from_str(v).unwrap());
        }
        request_id(&h).to_str().unwrap().to_owned()
    }

    #[test]
    fn a_sane_client_request_id_is_kept_and_others_are_replaced() {
        assert_eq!(id_for(Some("abc-123")), "abc-123");
        for bad in [
            None,
            Some(""),
            Some("has space"),
            Some(&"x".repeat(129)[..]),
        ] {
            let id = id_for(bad);
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{bad:?} gave {id}");
        }
    }
}
