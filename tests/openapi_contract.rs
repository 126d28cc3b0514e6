//! Contract test of the served API against its own `/openapi.json`:
//! schemathesis (PyPI, installed by scripts/lib/schemathesis.sh) generates
//! requests for every documented operation from the document and sends them
//! to a real `ferry serve` with a sampled tenant. It fails on any 5xx, any
//! status code the document does not list, a wrong content type, or a body
//! that does not match its documented schema.

mod support;

use std::path::Path;
use std::process::Command;
use support::{run_ok, Ferry};

/// Generated requests per operation; the seed makes a run repeatable.
const EXAMPLES_PER_OPERATION: &str = "30";
const SEED: &str = "20261123";

#[test]
fn the_served_api_keeps_the_contract_of_its_openapi_document() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let st = run_ok(Command::new("bash").arg(root.join("scripts/lib/schemathesis.sh")))
        .trim()
        .to_owned();

    let mut f = Ferry::new();
    f.sample("acme", 1);
    f.start();
    let token = f.token("acme", "tenant_admin");
    // One real export, so listings and the audit log are not empty.
    let id = f.export(&token, support::lite_body());
    f.wait_export(&token, &id, "completed", std::time::Duration::from_secs(60));

    let out = Command::new(&st)
        .arg("run")
        .arg(f.url("/openapi.json"))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--hypothesis-max-examples",
            EXAMPLES_PER_OPERATION,
            "--hypothesis-seed",
            SEED,
            "--hypothesis-deadline",
            "None",
            "--hypothesis-database",
            ":memory:",
            // utoipa 5 writes OpenAPI 3.1, which schemathesis 3 checks
            // behind this flag.
            "--experimental=openapi-3.1",
            "--no-color",
            "--workers",
            "1",
            // The live event streams stay open while anything may change
            // (the workflow list's for good), which a request-per-example
            // runner cannot wait out; tests/live_e2e.rs checks them.
            "--exclude-path-regex",
            "/stream$",
            "-H",
        ])
        .arg(format!("Authorization: Bearer {token}"))
        .env("SCHEMATHESIS_HOOKS", "")
        // hypothesis keeps a `.hypothesis/` cache in its working directory:
        // the server's scratch folder, not the source tree.
        .current_dir(f.data_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "schemathesis found contract violations:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        f.server_log()
    );
}
