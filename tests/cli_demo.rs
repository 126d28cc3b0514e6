//! `ferry demo` shows the whole job: exports downloaded and verified, then
//! a dry run with its preview, a confirmed `replace`, its verification and
//! a rollback. The tenant's rows after the demo are compared with the rows
//! of the same sample made before it, read with the `sqlite3` tool (not
//! with anything ferry computes).

mod support;

use std::path::Path;
use std::process::Command;
use support::cli::Ran;
use support::{run_ok, Ferry};

const TENANT: &str = "newcomer";

/// Every row of every table of the tenant's SQLite file, as `sqlite3`
/// quotes them, sorted per table.
fn rows(db: &Path) -> Vec<(String, Vec<String>)> {
    let db = db.to_str().unwrap();
    let tables = run_ok(Command::new("sqlite3").args([
        db,
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    ]));
    let tables: Vec<String> = tables.lines().map(str::to_owned).collect();
    assert!(tables.len() > 5, "{tables:?}");
    tables
        .into_iter()
        .map(|t| {
            let out = run_ok(Command::new("sqlite3").args([
                db,
                ".mode quote",
                &format!("SELECT * FROM \"{t}\""),
            ]));
            let mut lines: Vec<String> = out.lines().map(str::to_owned).collect();
            lines.sort();
            (t, lines)
        })
        .collect()
}

#[test]
fn the_demo_rehydrates_verifies_and_rolls_back_to_the_same_rows() {
    let mut f = Ferry::new();
    // The demo makes this same sample (seed 1, scale 1) again: its rows
    // before the demo's rehydration are these.
    f.sample(TENANT, 1);
    let db = f
        .data_dir()
        .join("tenants")
        .join(format!("{TENANT}.sqlite"));
    let before = rows(&db);
    assert!(before.iter().map(|(_, r)| r.len()).sum::<usize>() > 1000);

    let ran = Ran::from(f.cli(&["demo", "--tenant", TENANT])).ok("demo");
    let out = &ran.stdout;
    let stages = [
        "1. sample tenant newcomer",
        "2. submitted 3 exports",
        "downloaded and checked",
        "4. rehydration from the lite export",
        "dry run: nothing was changed",
        "5. replace, confirmed by typing DELETE",
        ": completed,",
        "6. verified:",
        "7. rollback of",
        "8. rolled back",
    ];
    let mut at = 0;
    for stage in stages {
        let found = out[at..]
            .find(stage)
            .unwrap_or_else(|| panic!("no {stage:?} after byte {at}:\n{}", ran.describe()));
        at += found + stage.len();
    }
    assert_eq!(out.matches("entries verified").count(), 3, "{out}");
    // The preview table, twice (dry run, replace): aligned, with a total.
    let totals: Vec<&str> = out.lines().filter(|l| l.starts_with("total ")).collect();
    assert_eq!(totals.len(), 2, "{out}");
    let header = out.lines().find(|l| l.starts_with("table ")).unwrap();
    assert_eq!(
        header.find("conflicts").map(|i| i + "conflicts".len()),
        Some(totals[0].len()),
        "numbers right-aligned under their header:\n{out}"
    );
    // It ends with a one-time sign-in link to the console, which signs in
    // on the server started below.
    let last = out.lines().last().unwrap();
    assert!(last.starts_with("10. the web console"), "{out}");
    let ticket = last
        .split("/console/#/signin?ticket=")
        .nth(1)
        .expect("a console link")
        .to_owned();

    assert_eq!(rows(&db), before, "the rollback left other rows");

    // The server, started afterwards, holds the two rehydrations.
    f.start();
    let ran = f
        .client(&[
            "workflows",
            "list",
            "--kind",
            "rehydrate",
            "--tenant",
            TENANT,
            "--json",
        ])
        .ok("workflows list");
    let mut statuses: Vec<String> = ran.json()["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["status"].as_str().unwrap().to_owned())
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["completed", "rolled_back"], "{}", ran.describe());
    let r = f
        .client
        .post(f.url("/console/signin"))
        .json(&serde_json::json!({ "ticket": ticket }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "the demo's console link signs in");
}
