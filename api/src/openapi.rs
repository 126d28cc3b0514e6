//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers
//! themselves (utoipa) and served at `/openapi.json`.
//!
//! How a route gets into the document (follow this for new routes, e.g. the
//! rehydrate endpoints):
//!
//! 1. Declare the handler with actix's route macro (`#[get("/api/v1/...")]`,
//!    `#[post(...)]`) and put `#[utoipa::path(...)]` above it, naming its
//!    `tag`, path `params`, `request_body`, every status it can answer in
//!    `responses` (end with one of the error sets below, e.g.
//!    `TenantErrors`), and `security(("bearer" = []))` if it needs a token.
//!    The path and method come from the actix macro, so they cannot drift.
//! 2. In the route file, list the handlers in one
//!    `#[derive(utoipa::OpenApi)] #[openapi(paths(a, b))] pub struct Api;`.
//! 3. Add that `Api` to [`document`] below.
//!
//! The unit test below fails when a `#[get]`/`#[post]`/... route in
//! `src/routes/` is missing from the document (or the document names a
//! route that does not exist), and `tests/openapi_contract.rs` runs
//! schemathesis against the served document: no 5xx and no status code the
//! document does not list.

use crate::routes;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{IntoResponses, OpenApi, ToSchema};

/// Every error: `{"error": {"code", "message"}}` with a stable code.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code, e.g. `invalid_profile`, `not_found`, `rate_limited`.
    pub code: String,
    pub message: String,
    /// What to do next, on refusals a person can act on (e.g. a refused
    /// confirmation); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The errors of every route that needs a bearer token and names a
/// workflow: bad input, no or bad token, wrong role or tenant header, an
/// unknown (or another tenant's) id.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum TenantErrors {
    /// Bad query, header or body (the code says which).
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No valid bearer token.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The token's role may not do this, or `X-Tenant-Id` without platform_admin.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Unknown id, another tenant's id, or an unknown tenant.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// A failure of ferry itself; details only in the server log.
    #[response(status = 500)]
    Internal(ErrorBody),
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ferry",
        description = "Durable, event-sourced export and rehydration of one tenant's data. \
            Tenant-scoped endpoints take a bearer JWT (`ferry token`); a platform_admin may \
            name another tenant in `X-Tenant-Id`. Every response carries `X-Request-Id`."
    ),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody, ErrorDetail))
)]
struct Base;

/// The whole document: the base plus every route file's `Api`.
pub fn document() -> Document {
    let mut doc = Base::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    for part in [
        routes::ops::Api::openapi(),
        routes::cluster::Api::openapi(),
        routes::export::Api::openapi(),
        routes::rehydrate::Api::openapi(),
        routes::workflows::Api::openapi(),
        routes::live::Api::openapi(),
        routes::audit::Api::openapi(),
        routes::download::Api::openapi(),
        routes::tenant::Api::openapi(),
    ] {
        doc.merge(part);
    }
    doc
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// `(METHOD, /path/{param})` of every actix route macro in src/routes.
    fn routes_in_source() -> BTreeSet<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes");
        let mut found = BTreeSet::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            found.extend(text.lines().filter_map(route_attr));
        }
        found
    }

    /// `#[get("/path")]` → `("GET", "/path")`.
    fn route_attr(line: &str) -> Option<(String, String)> {
        let rest = line.trim().strip_prefix("#[")?;
        let (method, rest) = rest.split_once("(\"")?;
        if !["get", "post", "put", "patch", "delete"].contains(&method) {
            return None;
        }
        let (path, _) = rest.split_once('"')?;
        Some((method.to_uppercase(), path.to_owned()))
    }

    #[test]
    fn the_document_lists_exactly_the_routes_of_the_code() {
        let doc = serde_json::to_value(super::document()).unwrap();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
        let code = routes_in_source();
        let missing: Vec<_> = code.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&code).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "routes not in /openapi.json: {missing:?}\ndocumented routes not in the code: {extra:?}\n(see the steps at the top of api/src/openapi.rs)"
        );
    }

    /// `schema`, with a `$ref` to a component resolved.
    fn resolved<'a>(
        doc: &'a serde_json::Value,
        schema: &'a serde_json::Value,
    ) -> &'a serde_json::Value {
        match schema["$ref"].as_str() {
            Some(r) => {
                let name = r.trim_start_matches("#/components/schemas/");
                &doc["components"]["schemas"][name]
            }
            None => schema,
        }
    }

    /// A schema that says nothing (`{}`, or a missing component).
    fn is_empty(schema: &serde_json::Value) -> bool {
        schema.as_object().is_none_or(|o| o.is_empty())
    }

    #[test]
    fn every_success_body_has_a_schema() {
        let doc = serde_json::to_value(super::document()).unwrap();
        let mut empty = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, response) in op["responses"].as_object().unwrap() {
                    if !status.starts_with('2') {
                        continue;
                    }
                    let Some(content) = response["content"].as_object() else {
                        continue;
                    };
                    for (media, body) in content {
                        let schema = resolved(&doc, &body["schema"]);
                        let at = format!("{method} {path} {status} {media}");
                        if is_empty(schema) {
                            empty.push(at);
                            continue;
                        }
                        // Nor may any of its fields be left undescribed.
                        if let Some(props) = schema["properties"].as_object() {
                            for (name, prop) in props {
                                if is_empty(resolved(&doc, prop)) {
                                    empty.push(format!("{at}: field {name}"));
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(
            empty.is_empty(),
            "success bodies documented without a schema (derive utoipa::ToSchema on the view): {empty:#?}"
        );
    }

    /// Every place under `schema` (a response body's schema) that says
    /// nothing: `{}` itself, or a property, item or variant that is `{}`,
    /// with components followed once each.
    fn empty_schemas_in(
        doc: &serde_json::Value,
        schema: &serde_json::Value,
        at: &str,
        seen: &mut BTreeSet<String>,
        out: &mut Vec<String>,
    ) {
        if let Some(r) = schema["$ref"].as_str() {
            if !seen.insert(r.to_owned()) {
                return;
            }
        }
        let schema = resolved(doc, schema);
        if is_empty(schema) {
            out.push(at.to_owned());
            return;
        }
        if let Some(props) = schema["properties"].as_object() {
            for (name, prop) in props {
                empty_schemas_in(doc, prop, &format!("{at}.{name}"), seen, out);
            }
        }
        if schema.get("items").is_some() {
            empty_schemas_in(doc, &schema["items"], &format!("{at}[]"), seen, out);
        }
        for key in ["oneOf", "anyOf", "allOf"] {
            for (i, s) in schema[key].as_array().into_iter().flatten().enumerate() {
                // `null` in a nullable field's oneOf is a real schema.
                empty_schemas_in(doc, s, &format!("{at}<{key} {i}>"), seen, out);
            }
        }
    }

    #[test]
    fn no_response_body_of_any_status_has_an_empty_schema() {
        let doc = serde_json::to_value(super::document()).unwrap();
        let mut empty = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, response) in op["responses"].as_object().unwrap() {
                    for (media, body) in response["content"].as_object().into_iter().flatten() {
                        let at = format!("{method} {path} {status} {media}");
                        let mut seen = BTreeSet::new();
                        empty_schemas_in(&doc, &body["schema"], &at, &mut seen, &mut empty);
                    }
                }
            }
        }
        assert!(
            empty.is_empty(),
            "response bodies (or parts of them) documented as `{{}}`: {empty:#?}"
        );
    }

    #[test]
    fn query_parameters_are_camel_case_and_the_upload_documents_its_own() {
        let doc = serde_json::to_value(super::document()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let name = p["name"].as_str().unwrap();
                    assert!(
                        !name.contains('_') && !name.starts_with(char::is_uppercase)
                            || p["in"] != "query",
                        "{method} {path}: query parameter {name} is not camelCase"
                    );
                }
            }
        }
        let upload = &doc["paths"]["/api/v1/tenant/rehydrate"]["post"]["parameters"];
        let names: Vec<&str> = upload
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["mode", "tables", "dryRun", "mergeKey.<table>"]);
    }

    #[test]
    fn every_operation_documents_its_errors_and_tenant_routes_need_a_token() {
        let doc = serde_json::to_value(super::document()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                assert!(!responses.is_empty(), "{method} {path}: no responses");
                if path.starts_with("/api/") {
                    assert!(
                        responses.contains_key("401"),
                        "{method} {path}: 401 not documented"
                    );
                    assert!(op["security"].is_array(), "{method} {path}: no security");
                }
            }
        }
    }
}
