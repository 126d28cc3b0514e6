//! Managing workflows without curl: `ferry workflows list|show|events|
//! cancel|resume`, `ferry download`, `ferry export --output`, against a
//! real `ferry serve`: each command's happy path with `--json` parsed, its
//! refusals (exit 1 with the server's code), usage errors (exit 2), a
//! server that is not there (exit 3), help text on every flag, and the
//! rehydration prompt's Ctrl-C and end of input.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::cli::Ran;
use support::{started_with, Ferry};

const WAIT: Duration = Duration::from_secs(180);

/// Two finished lite exports of acme; their ids, oldest first.
fn two_exports(f: &Ferry, token: &str) -> [String; 2] {
    let a = f.export(token, json!({"profile": "lite"}));
    f.wait_export(token, &a, "completed", WAIT);
    let b = f.export(token, json!({"profile": "lite"}));
    f.wait_export(token, &b, "completed", WAIT);
    [a, b]
}

fn ids(page: &Value) -> Vec<String> {
    page["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn list_show_and_events_print_what_the_api_holds() {
    let (f, token) = started_with(&["acme"]);
    let [old, new] = two_exports(&f, &token);

    let ran = f
        .client(&["workflows", "list", "--tenant", "acme", "--json"])
        .ok("list --json");
    let listed = ids(&ran.json());
    assert_eq!(listed.len(), 2, "{}", ran.describe());
    // Newest first.
    assert_eq!(listed, [new.clone(), old.clone()], "{}", ran.describe());
    assert!(!ran.stderr.contains("oldest first"), "{}", ran.describe());

    // Filters and the cursor.
    let ran = f
        .client(&[
            "workflows",
            "list",
            "--tenant",
            "acme",
            "--kind",
            "rehydrate",
            "--json",
        ])
        .ok("list --kind");
    assert!(ids(&ran.json()).is_empty(), "{}", ran.describe());
    let ran = f
        .client(&[
            "workflows",
            "list",
            "--tenant",
            "acme",
            "--status",
            "completed",
            "--limit",
            "1",
            "--json",
        ])
        .ok("list --limit 1");
    let page = ran.json();
    let first = ids(&page);
    assert_eq!(first.len(), 1);
    let cursor = page["nextCursor"].as_str().expect("a next page").to_owned();
    let ran = f
        .client(&[
            "workflows",
            "list",
            "--tenant",
            "acme",
            "--limit",
            "1",
            "--after",
            &cursor,
            "--json",
        ])
        .ok("list --after");
    let second = ids(&ran.json());
    assert_eq!(second.len(), 1);
    assert_ne!(first, second);

    // The human table: a header, one aligned row per workflow.
    let ran = f
        .client(&["workflows", "list", "--tenant", "acme"])
        .ok("list");
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", ran.describe());
    assert!(lines[0].starts_with("ID ") && lines[0].contains("STATUS"));
    let status_at = lines[0].find("STATUS").unwrap();
    for l in &lines[1..] {
        assert_eq!(&l[status_at..status_at + 9], "completed", "{}", ran.stdout);
    }

    // show: the API's view, and its human form.
    let ran = f
        .client(&["workflows", "show", &new, "--tenant", "acme", "--json"])
        .ok("show --json");
    let w = ran.json();
    assert_eq!(w["id"], new.as_str());
    assert_eq!(w["kind"], "export");
    assert_eq!(w["status"], "completed");
    assert_eq!(w, f.get_json(&format!("/api/v1/workflows/{new}"), &token));
    let ran = f
        .client(&["workflows", "show", &new, "--tenant", "acme"])
        .ok("show");
    for want in [
        "status:",
        "completed",
        "current step:",
        "finished:",
        "upload",
    ] {
        assert!(ran.stdout.contains(want), "{want}: {}", ran.describe());
    }

    // events: the whole timeline, as JSON and as a table; --follow of a
    // finished workflow prints each event once as NDJSON and ends.
    let ran = f
        .client(&["workflows", "events", &new, "--tenant", "acme", "--json"])
        .ok("events --json");
    let events = ran.json()["events"].as_array().unwrap().clone();
    assert_eq!(events[0]["type"], "submitted.v1");
    assert_eq!(events.last().unwrap()["type"], "completed.v1");
    let ran = f
        .client(&["workflows", "events", &new, "--tenant", "acme"])
        .ok("events");
    assert_eq!(
        ran.stdout.lines().count(),
        events.len() + 1,
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.lines().next().unwrap().contains("NEXT RETRY"));
    assert!(ran.stdout.contains("step_started") && ran.stdout.contains("snapshot"));
    let ran = f
        .client(&[
            "workflows",
            "events",
            &new,
            "--tenant",
            "acme",
            "--follow",
            "--json",
        ])
        .ok("events --follow --json");
    let followed: Vec<Value> = ran
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(followed, events);
}

/// A rehydration whose validation fails once (a failpoint): resume runs it
/// again to its confirmation, cancel ends it; both refuse a second time.
#[test]
fn resume_and_cancel_act_and_refuse_what_the_state_forbids() {
    let mut f = Ferry::new().env("FERRY_FAILPOINTS", "rehydrate.validate.before=error@1");
    f.sample("acme", 1);
    f.start();
    let token = f.token("acme", "tenant_admin");
    let export = f.export(&token, json!({"profile": "lite"}));
    f.wait_export(&token, &export, "completed", WAIT);
    let r = f.post(
        "/api/v1/tenant/rehydrate",
        Some(&token),
        &json!({"exportId": export}),
    );
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().unwrap()["job"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let status = format!("/api/v1/tenant/rehydrate/{id}/status");
    f.wait_status(&token, &status, "failed", WAIT);

    let ran = f
        .client(&["workflows", "resume", &id, "--tenant", "acme", "--json"])
        .ok("resume");
    assert_eq!(ran.json()["id"], id.as_str());
    f.wait_status(&token, &status, "awaiting_confirmation", WAIT);
    let ran = f.client(&["workflows", "resume", &id, "--tenant", "acme", "--json"]);
    assert_eq!(ran.code, 1, "{}", ran.describe());
    assert!(
        ran.json()["error"]["code"].is_string(),
        "{}",
        ran.describe()
    );

    let ran = f
        .client(&["workflows", "cancel", &id, "--tenant", "acme"])
        .ok("cancel");
    assert!(ran.stdout.contains(&id), "{}", ran.describe());
    f.wait_status(&token, &status, "cancelled", WAIT);
    let ran = f.client(&["workflows", "cancel", &id, "--tenant", "acme", "--json"]);
    assert_eq!(ran.code, 1, "{}", ran.describe());
    let code = ran.json()["error"]["code"].as_str().unwrap().to_owned();
    assert!(ran.stderr.contains(&code), "{}", ran.describe());
}

fn blake3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

#[test]
fn download_and_export_output_write_exactly_what_the_api_serves() {
    let (f, token) = started_with(&["acme"]);
    let [id, _] = two_exports(&f, &token);
    let status = f.export_status(&token, &id);
    let served = f
        .get(
            &format!("/api/v1/tenant/export/{id}/download"),
            Some(&token),
        )
        .headers()
        .get("location")
        .expect("a redirect")
        .to_str()
        .unwrap()
        .to_owned();
    let direct = f.get(&served, None).bytes().unwrap().to_vec();
    assert_eq!(status["sizeBytes"].as_u64().unwrap(), direct.len() as u64);
    assert_eq!(status["checksum"].as_str().unwrap(), blake3_hex(&direct));

    // -o FILE
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.zip");
    let ran = f
        .client(&[
            "download",
            &id,
            "-o",
            file.to_str().unwrap(),
            "--tenant",
            "acme",
            "--json",
        ])
        .ok("download -o");
    let doc = ran.json();
    assert_eq!(doc["blake3"], status["checksum"]);
    assert_eq!(doc["verified"], true);
    assert_eq!(std::fs::read(&file).unwrap(), direct);

    // No -o: the server's file name, in the current folder.
    let out = std::process::Command::new(support::BIN)
        .current_dir(dir.path())
        .env("FERRY_DATA_DIR", f.data_dir())
        .args(["download", &id, "--tenant", "acme", "--url", &f.url("")])
        .output()
        .unwrap();
    let ran = Ran::from(out).ok("download");
    let name = status["fileName"].as_str().unwrap();
    assert!(
        name.starts_with("export_acme_") && name.ends_with(".zip"),
        "{name}"
    );
    assert_eq!(std::fs::read(dir.path().join(name)).unwrap(), direct);
    assert!(ran.stdout.contains(name), "{}", ran.describe());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // export --output: waits, then downloads the same way.
    let file = dir.path().join("new.zip");
    let ran = f
        .client(&[
            "export",
            "--profile",
            "lite",
            "--output",
            file.to_str().unwrap(),
            "--tenant",
            "acme",
            "--json",
        ])
        .ok("export --output");
    let doc = ran.json();
    assert_eq!(doc["status"], "completed", "{}", ran.describe());
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(doc["checksum"].as_str().unwrap(), blake3_hex(&bytes));
    assert_eq!(
        doc["download"]["sizeBytes"].as_u64().unwrap(),
        bytes.len() as u64
    );
    let verify = f.verify(&file);
    assert!(verify.status.success(), "{verify:?}");

    // A bundle changed in the store (same size): the download is refused
    // and leaves no file.
    let stored = f.bundle_path("acme", &id);
    let mut bytes = std::fs::read(&stored).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&stored, &bytes).unwrap();
    let file = dir.path().join("tampered.zip");
    let ran = f.client(&[
        "download",
        &id,
        "-o",
        file.to_str().unwrap(),
        "--tenant",
        "acme",
        "--json",
    ]);
    assert_eq!(ran.code, 1, "{}", ran.describe());
    assert_eq!(ran.json()["error"]["code"], "checksum_mismatch");
    assert!(!file.exists());

    // An id that names no export: not found.
    let ran = f.client(&[
        "download",
        "01a00000-0000-7000-8000-000000000000",
        "--tenant",
        "acme",
    ]);
    assert_eq!(ran.code, 1, "{}", ran.describe());
    assert!(ran.stderr.contains("not_found"), "{}", ran.describe());
}

/// Unknown ids and another tenant's ids: exit 1 with the server's code,
/// on stderr and (with --json) as the envelope on stdout.
#[test]
fn refusals_exit_1_with_the_servers_code() {
    let (f, token) = started_with(&["acme", "globex"]);
    let [id, _] = two_exports(&f, &token);
    let unknown = "01a00000-0000-7000-8000-000000000000";
    let cases: Vec<Vec<&str>> = vec![
        vec!["workflows", "show", unknown],
        vec!["workflows", "events", unknown],
        vec!["workflows", "cancel", unknown],
        vec!["workflows", "resume", unknown],
        vec!["download", unknown],
    ];
    for args in &cases {
        for tenant in ["acme", "globex"] {
            let mut all = args.clone();
            if tenant == "globex" {
                // Another tenant asking for acme's export.
                *all.last_mut().unwrap() = id.as_str();
            }
            all.extend_from_slice(&["--tenant", tenant, "--json"]);
            let ran = f.client(&all);
            assert_eq!(ran.code, 1, "{all:?}: {}", ran.describe());
            assert_eq!(ran.json()["error"]["code"], "not_found", "{all:?}");
            assert!(
                ran.stderr.contains("not_found"),
                "{all:?}: {}",
                ran.describe()
            );
        }
    }
    let ran = f.client(&[
        "workflows",
        "list",
        "--tenant",
        "acme",
        "--status",
        "sleeping",
    ]);
    assert_eq!(ran.code, 1, "{}", ran.describe());
    assert!(ran.stderr.contains("invalid_status"), "{}", ran.describe());
}

#[test]
fn usage_errors_exit_2_and_an_absent_server_exits_3() {
    let f = Ferry::new();
    for args in [
        vec!["workflows", "list", "--bogus"],
        vec!["workflows", "show"],
        vec!["workflows", "frobnicate"],
        vec!["download"],
        vec!["workflows", "list", "--limit", "ten"],
        vec!["workflows", "list"], // no token and no tenant
    ] {
        let ran = Ran::from(f.cli(&args));
        assert_eq!(ran.code, 2, "{args:?}: {}", ran.describe());
    }
    // Nothing listens on this server's port: every command says where it
    // looked and how to point it elsewhere.
    let id = "01a00000-0000-7000-8000-000000000000";
    for args in [
        vec!["workflows", "list"],
        vec!["workflows", "show", id],
        vec!["workflows", "events", id],
        vec!["workflows", "cancel", id],
        vec!["workflows", "resume", id],
        vec!["download", id],
        vec!["export", "--profile", "lite"],
        vec!["rehydrate", "--export-id", id],
    ] {
        let mut all = args.clone();
        all.extend_from_slice(&["--tenant", "acme", "--json"]);
        let ran = f.cli_env(&all, "FERRY_URL", &f.url(""));
        assert_eq!(ran.code, 3, "{args:?}: {}", ran.describe());
        assert!(ran.stderr.contains("FERRY_URL"), "{}", ran.describe());
        assert!(ran.stderr.contains(&f.url("")), "{}", ran.describe());
        assert_eq!(ran.json()["error"]["code"], "unreachable");
    }
}

/// Every flag and argument of every subcommand's `--help` has a
/// description, and every subcommand is described in its parent's help.
#[test]
fn help_describes_every_command_and_flag() {
    let f = Ferry::new();
    let commands: &[&[&str]] = &[
        &[],
        &["serve"],
        &["sample"],
        &["demo"],
        &["token"],
        &["verify"],
        &["export"],
        &["download"],
        &["rehydrate"],
        &["audit-verify"],
        &["workflows"],
        &["workflows", "list"],
        &["workflows", "show"],
        &["workflows", "events"],
        &["workflows", "cancel"],
        &["workflows", "resume"],
    ];
    for cmd in commands {
        let mut args = cmd.to_vec();
        args.push("--help");
        let ran = Ran::from(f.cli(&args)).ok(&format!("{args:?}"));
        let lines: Vec<&str> = ran.stdout.lines().collect();
        let indent = |l: &str| l.len() - l.trim_start().len();
        let mut section = "";
        for (i, line) in lines.iter().enumerate() {
            if !line.starts_with(' ') && line.ends_with(':') {
                section = line;
                continue;
            }
            let entry = line.trim_start();
            // An entry: a subcommand (`  name`), an argument (`  <ID>`) or a
            // flag (`  -o, --output <FILE>`, `      --json`).
            let is_entry = !entry.is_empty()
                && (entry.starts_with('-')
                    || entry.starts_with('<')
                    || entry.starts_with('[')
                    || (indent(line) == 2 && section == "Commands:"));
            if !is_entry {
                continue;
            }
            // `  NAME  description`, or the description on the next,
            // deeper-indented line.
            let same_line = entry
                .split_once("  ")
                .is_some_and(|(_, d)| !d.trim().is_empty());
            let next_line = lines.get(i + 1).is_some_and(|n| {
                let t = n.trim_start();
                indent(n) > indent(line) + 2 && !t.is_empty() && !t.starts_with('-')
            });
            assert!(
                same_line || next_line,
                "{args:?} {section} {entry:?} has no description:\n{}",
                ran.stdout
            );
        }
    }
}

/// The prompt of `ferry rehydrate`: Ctrl-C offers to cancel and `y`
/// cancels; Ctrl-C twice leaves it waiting, and `--attach` comes back to
/// it; end of input leaves it waiting too.
#[test]
fn ctrl_c_at_the_prompt_offers_to_cancel_and_eof_leaves_it_waiting() {
    let (f, token) = started_with(&["acme"]);
    let export = f.export(&token, json!({"profile": "lite"}));
    f.wait_export(&token, &export, "completed", WAIT);
    let url = f.url("");
    let args = [
        "rehydrate",
        "--export-id",
        &export,
        "--tenant",
        "acme",
        "--url",
        &url,
    ];
    let status_of = |ran: &Ran| -> String {
        let id = ran
            .stderr
            .split("rehydration ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or_else(|| panic!("no id in {}", ran.describe()))
            .to_owned();
        f.get_json(&format!("/api/v1/workflows/{id}"), &token)["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // Ctrl-C, then y: cancelled.
    let mut run = f.spawn_cli(&args);
    run.wait_stderr("Type DELETE", 1, WAIT);
    run.interrupt();
    run.wait_stderr("cancel the rehydration? [y/N]", 1, WAIT);
    run.type_line("y");
    let ran = run.finish(WAIT);
    assert_eq!(ran.code, 130, "{}", ran.describe());
    assert!(ran.stdout.contains("cancelled"), "{}", ran.describe());
    assert_eq!(status_of(&ran), "cancelled");

    // Ctrl-C, n (back to the prompt), Ctrl-C, Ctrl-C: left waiting.
    let mut run = f.spawn_cli(&args);
    run.wait_stderr("Type DELETE", 1, WAIT);
    run.interrupt();
    run.wait_stderr("cancel the rehydration? [y/N]", 1, WAIT);
    run.type_line("n");
    run.wait_stderr("Type DELETE", 2, WAIT);
    run.interrupt();
    run.wait_stderr("cancel the rehydration? [y/N]", 2, WAIT);
    run.interrupt();
    let ran = run.finish(WAIT);
    assert_eq!(ran.code, 130, "{}", ran.describe());
    assert!(ran.stdout.contains("--attach"), "{}", ran.describe());
    assert!(
        ran.stdout.contains("ferry workflows cancel"),
        "{}",
        ran.describe()
    );
    assert_eq!(status_of(&ran), "awaiting_confirmation");
    let id = ran.stderr.split("rehydration ").nth(1).unwrap();
    let id = id.split_whitespace().next().unwrap().to_owned();
    // Come back to it and confirm.
    let ran = f
        .client(&[
            "rehydrate",
            "--attach",
            &id,
            "--confirm",
            "DELETE",
            "--tenant",
            "acme",
            "--json",
        ])
        .ok("rehydrate --attach");
    let doc = ran.json();
    assert_eq!(doc["status"], "completed", "{}", ran.describe());
    assert!(doc["preview"]["tables"].is_array(), "{}", ran.describe());

    // End of input at the prompt: left waiting, exit 1.
    let mut run = f.spawn_cli(&args);
    run.wait_stderr("Type DELETE", 1, WAIT);
    run.close_stdin();
    let ran = run.finish(WAIT);
    assert_eq!(ran.code, 1, "{}", ran.describe());
    assert!(ran.stdout.contains("end of input"), "{}", ran.describe());
    assert_eq!(status_of(&ran), "awaiting_confirmation");
}
