//! The one place where failures become HTTP responses: JSON
//! `{"error": {"code", "message"}}` with a stable code, and never a secret,
//! SQL text or a stack trace in it.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Seconds after which a refused request may be retried (`Retry-After`).
    pub retry_after_secs: Option<u64>,
    /// What to do next, for a refusal a person can act on (`hint` in the
    /// envelope, left out when there is none).
    pub hint: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            retry_after_secs: None,
            hint: None,
        }
    }
    /// Say what to do next (sent as `error.hint`).
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    /// `413 payload_too_large`: the body is over `max` bytes.
    pub fn payload_too_large(max: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {max} bytes"),
        )
    }
    /// Say when the request may be retried (sent as `Retry-After`).
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }
    pub fn bad_request(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    /// Log the detail, show only a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after_secs {
            res.insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()));
        }
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(hint) = &self.hint {
            error["hint"] = json!(hint);
        }
        res.json(json!({ "error": error }))
    }
}

impl From<ferry_engine::Error> for ApiError {
    fn from(e: ferry_engine::Error) -> Self {
        use ferry_engine::Error as E;
        match e {
            E::NotFound(_) => ApiError::not_found("workflow"),
            E::Rejected(r) => ApiError::new(StatusCode::CONFLICT, r.code(), r.to_string()),
            E::UnknownKind(k) => {
                ApiError::bad_request("unknown_kind", format!("unknown workflow kind {k:?}"))
            }
            other => ApiError::internal(other),
        }
    }
}

/// Body and query errors from actix's extractors, with stable codes.
pub fn json_error(
    err: actix_web::error::JsonPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    let api = match &err {
        J::OverflowKnownLength { limit, .. } | J::Overflow { limit } => {
            ApiError::payload_too_large(*limit)
        }
        J::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ),
        J::Deserialize(e) => ApiError::bad_request(
            "invalid_body",
            format!(
                "malformed JSON body (line {}, column {})",
                e.line(),
                e.column()
            ),
        ),
        _ => ApiError::bad_request("invalid_body", "malformed JSON body"),
    };
    api.into()
}

/// A query string that does not deserialize: `invalid_query`, naming the
/// parameter when the parser says which, never the parser's own text.
pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    tracing::debug!(error = %err, "query string refused");
    let message = match unknown_field(&err.to_string()) {
        Some(name) => format!("unknown query parameter {name:?}"),
        None => "a query parameter has a value of the wrong type".to_owned(),
    };
    ApiError::bad_request("invalid_query", message).into()
}

/// The field serde names in ``unknown field `x`, expected ...``.
fn unknown_field(text: &str) -> Option<String> {
    let rest = text.split("unknown field `").nth(1)?;
    let name = rest.split('`').next()?;
    let sane = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    sane.then(|| name.to_owned())
}

/// The stable code of an error status, for responses that did not come
/// from [`ApiError`] (actix's own: a body over its limit, a refused
/// method, a broken upload).
pub fn status_code_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        411 => "length_required",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        431 => "headers_too_large",
        s if s >= 500 => "internal",
        _ => "invalid_request",
    }
}

/// Turn an error response that is not already the JSON envelope into it,
/// keeping its status (the message is the status's reason, nothing more).
pub fn envelope_plain_errors<B: actix_web::body::MessageBody + 'static>(
    res: actix_web::dev::ServiceResponse<B>,
) -> actix_web::Result<actix_web::middleware::ErrorHandlerResponse<B>> {
    use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
    use actix_web::middleware::ErrorHandlerResponse;
    let is_json = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let body = json!({"error": {
        "code": status_code_name(status),
        "message": status.canonical_reason().unwrap_or("error").to_lowercase(),
    }})
    .to_string();
    let (req, mut res) = res.into_parts();
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let res = res.set_body(body).map_into_boxed_body();
    Ok(ErrorHandlerResponse::Response(
        actix_web::dev::ServiceResponse::new(req, res).map_into_right_body(),
    ))
}

pub fn path_error(
    err: actix_web::error::PathError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    // A malformed id can never name a workflow the caller may see.
    let _ = err;
    ApiError::not_found("resource").into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{test as actix_test, web, App};

    #[test]
    fn query_errors_name_the_parameter_not_the_parser() {
        assert_eq!(
            unknown_field("Query deserialize error: unknown field `bogus`, expected one of `a`"),
            Some("bogus".to_owned())
        );
        assert_eq!(unknown_field("invalid digit found in string"), None);
        assert_eq!(unknown_field("unknown field `a b`, expected"), None);
        assert_eq!(
            status_code_name(StatusCode::PAYLOAD_TOO_LARGE),
            "payload_too_large"
        );
        assert_eq!(status_code_name(StatusCode::BAD_REQUEST), "invalid_request");
        assert_eq!(status_code_name(StatusCode::BAD_GATEWAY), "internal");
    }

    #[actix_web::test]
    async fn error_envelopes_replace_actix_plain_errors() {
        let app = actix_test::init_service(
            App::new()
                .app_data(web::PayloadConfig::new(16))
                .route(
                    "/bytes",
                    web::post().to(|b: web::Bytes| async move { b.len().to_string() }),
                )
                .route(
                    "/ours",
                    web::get().to(|| async {
                        Err::<HttpResponse, _>(
                            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "later")
                                .retry_after(42),
                        )
                    }),
                )
                .wrap(
                    actix_web::middleware::ErrorHandlers::new()
                        .default_handler(envelope_plain_errors),
                ),
        )
        .await;
        let req = actix_test::TestRequest::post()
            .uri("/bytes")
            .set_payload(vec![b'x'; 64])
            .to_request();
        let res = actix_test::call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body: serde_json::Value = actix_test::read_body_json(res).await;
        assert_eq!(body["error"]["code"], "payload_too_large");
        let res = actix_test::call_service(
            &app,
            actix_test::TestRequest::get().uri("/ours").to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers().get("Retry-After").unwrap(), "42");
        let body: serde_json::Value = actix_test::read_body_json(res).await;
        assert_eq!(
            body["error"],
            json!({"code": "rate_limited", "message": "later"})
        );
    }
}
