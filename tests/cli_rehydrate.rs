//! `ferry rehydrate`, the command line, against a real `ferry serve` on the
//! backend `FERRY_E2E_BACKEND` selects: from a stored export
//! (`--export-id`) or an uploaded bundle, with `--merge-key` for mode merge,
//! the typed confirmation fed on stdin; and the arguments it refuses before
//! contacting the server.
//!
//! Like `tests/rehydrate_e2e.rs`, a tenant's content is compared by the
//! content hashes of a `lite` export's manifest.

mod support;

use std::process::Output;
use support::{content_of, started_with, Ferry};

const TENANT: &str = "acme";

fn started() -> (Ferry, String) {
    started_with(&[TENANT])
}

/// `ferry rehydrate ARGS --tenant acme --url <server>` with `input` on stdin.
fn rehydrate(f: &Ferry, args: &[&str], input: &str) -> Output {
    let url = f.url("");
    let mut all = vec!["rehydrate"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--tenant", TENANT, "--url", &url]);
    f.cli_with_stdin(&all, input)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Panic with the command's output unless it succeeded.
fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// The preview's `total` line: delete, insert, update, conflicts.
fn preview_total(out: &Output) -> Vec<u64> {
    let text = stdout(out);
    let line = text
        .lines()
        .find(|l| l.starts_with("total "))
        .unwrap_or_else(|| panic!("no preview total in:\n{text}"));
    line.split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap_or_else(|_| panic!("bad total {line:?}")))
        .collect()
}

/// The tenant's rehydrations, as the API lists them, oldest first.
fn rehydrations(f: &Ferry, token: &str) -> Vec<serde_json::Value> {
    f.get_json("/api/v1/workflows?kind=rehydrate&order=asc", token)["workflows"]
        .as_array()
        .unwrap()
        .clone()
}

/// `--export-id`: the preview, a refused confirmation that changes nothing,
/// then `DELETE` on stdin and the tenant equal to the export.
#[test]
fn export_id_rehydrates_after_the_typed_confirmation() {
    let (f, token) = started();
    let (export_id, exported) = content_of(&f, &token, TENANT);
    f.resample(TENANT, 1, 7);
    let (_, changed) = content_of(&f, &token, TENANT);
    assert_ne!(changed, exported, "the new sample changed the tenant");

    // Anything but DELETE cancels: non-zero exit, nothing changed.
    let out = rehydrate(&f, &["--export-id", &export_id], "delete\n");
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("not confirmed"), "{}", stdout(&out));
    // Replace: every current row is to be deleted.
    assert!(preview_total(&out)[0] > 0, "{}", stdout(&out));
    assert_eq!(content_of(&f, &token, TENANT).1, changed);

    let out = rehydrate(&f, &["--export-id", &export_id], "DELETE\n");
    assert_ok(&out, "rehydrate --export-id");
    let text = stdout(&out);
    assert!(stderr(&out).contains("Type DELETE"), "{}", stderr(&out));
    assert!(text.contains("\"status\": \"completed\""), "{text}");
    assert_eq!(content_of(&f, &token, TENANT).1, exported);

    let all = rehydrations(&f, &token);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0]["status"], "cancelled", "{all:?}");
    assert_eq!(all[1]["status"], "completed", "{all:?}");
}

/// `--merge-key` reaches the server as `mergeKeys` (from an export) and as
/// `mergeKey.<table>=col1,col2` (upload): a two-column key the server
/// accepts only as exactly that set, a second table, and a column the table
/// does not have, refused by the server by name.
#[test]
fn merge_keys_reach_the_server_from_an_export_and_an_upload() {
    let (f, token) = started();
    let (export_id, exported) = content_of(&f, &token, TENANT);
    let bundle = f.bundle_path(TENANT, &export_id);
    let bundle = bundle.to_str().unwrap();
    let keys = [
        "--mode",
        "merge",
        "--merge-key",
        "order_items=order_id,line_no",
        "--merge-key",
        "products=sku",
    ];

    // From the export, confirmed by `--confirm` (no prompt): merging the
    // tenant's own content by these keys deletes, inserts, updates nothing
    // and conflicts nowhere.
    let mut args = vec!["--export-id", export_id.as_str(), "--confirm", "DELETE"];
    args.extend_from_slice(&keys);
    let out = rehydrate(&f, &args, "");
    assert_ok(&out, "rehydrate --export-id --merge-key");
    assert_eq!(preview_total(&out), [0, 0, 0, 0], "{}", stdout(&out));
    assert!(!stderr(&out).contains("Type DELETE"), "{}", stderr(&out));
    assert!(stdout(&out).contains("\"status\": \"completed\""));
    assert_eq!(content_of(&f, &token, TENANT).1, exported);

    // The same keys with an upload, dry run.
    let mut args = vec![bundle];
    args.extend_from_slice(&keys);
    args.push("--dry-run");
    let out = rehydrate(&f, &args, "");
    assert_ok(&out, "rehydrate BUNDLE --merge-key --dry-run");
    assert_eq!(preview_total(&out), [0, 0, 0, 0], "{}", stdout(&out));
    assert!(stdout(&out).contains("dry run: nothing was changed"));

    // A key column the table lacks: the server names it, both ways.
    for source in [["--export-id", export_id.as_str()].as_slice(), &[bundle]] {
        let mut args = source.to_vec();
        args.extend_from_slice(&[
            "--mode",
            "merge",
            "--merge-key",
            "accounts=external_account_id",
            "--dry-run",
        ]);
        let out = rehydrate(&f, &args, "");
        assert!(!out.status.success(), "{args:?}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(
            err.contains("merge_key_invalid") && err.contains("external_account_id"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(content_of(&f, &token, TENANT).1, exported);
}

/// Refused arguments: a clear message, a non-zero exit, and no rehydration
/// created (the server was never asked, though it runs and the export exists).
#[test]
fn refused_arguments_create_no_rehydration() {
    let (f, token) = started();
    let (export_id, _) = content_of(&f, &token, TENANT);
    let bundle = f.bundle_path(TENANT, &export_id);
    let bundle = bundle.to_str().unwrap();
    let id = export_id.as_str();
    let cases: &[(&[&str], &str)] = &[
        (&[bundle, "--export-id", id], "cannot be used with"),
        (&[], "<BUNDLE|--export-id <ID>|--attach <ID>>"),
        (
            &[
                "--export-id",
                id,
                "--mode",
                "merge",
                "--merge-key",
                "accounts",
            ],
            "expected TABLE=COL1,COL2",
        ),
        (
            &[bundle, "--mode", "merge", "--merge-key", "accounts"],
            "expected TABLE=COL1,COL2",
        ),
        (
            &["--export-id", id, "--mode", "merge", "--merge-key", "=id"],
            "table name before '=' is empty",
        ),
        (
            &[
                "--export-id",
                id,
                "--mode",
                "merge",
                "--merge-key",
                "accounts=",
            ],
            "every column after '=' must be named",
        ),
        (
            &[
                "--export-id",
                id,
                "--mode",
                "merge",
                "--merge-key",
                "products=id,,sku",
            ],
            "every column after '=' must be named",
        ),
        (
            &["--export-id", id, "--merge-key", "products=sku"],
            "--merge-key applies only to --mode merge",
        ),
        (
            &[
                "--export-id",
                id,
                "--mode",
                "merge",
                "--merge-key",
                "products=sku",
                "--merge-key",
                "products=id",
            ],
            "names table \"products\" twice",
        ),
    ];
    for (args, message) in cases {
        let out = rehydrate(&f, args, "DELETE\n");
        assert!(
            !out.status.success(),
            "{args:?} was accepted:\n{}",
            stdout(&out)
        );
        assert!(
            stderr(&out).contains(message),
            "{args:?}: wanted {message:?} in:\n{}",
            stderr(&out)
        );
    }
    assert_eq!(rehydrations(&f, &token), Vec::<serde_json::Value>::new());
}
