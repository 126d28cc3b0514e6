//! Checks that stop the code from drifting away from its stated shape.
//!
//! Each test reads the sources, the manifests or the README and fails with
//! the offending files or names, so a change that breaks an architecture
//! invariant fails CI instead of waiting for a review to notice:
//!
//! - the crates depend on each other only in the direction ARCHITECTURE.md
//!   states, and only `storage` knows sled and diesel, only `api` HTTP;
//! - every module opens with a `//!` doc;
//! - the process environment is read in one place (`api/src/config.rs`), and
//!   every variable the code reads is in the README's configuration table
//!   (and every variable of the table is read);
//! - the wall clock is read only by `engine/src/clock.rs`;
//! - every event tag round-trips through the stored form, byte for byte;
//! - the fault-injection points are compiled into test builds only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (this package lives in `api/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("api/ has a parent")
        .to_owned()
}

/// Every `.rs` file under `dir`, recursively, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The production sources: `src/` of every crate that ships in the binary.
fn production_sources() -> Vec<PathBuf> {
    ["engine", "workflows", "storage", "api"]
        .iter()
        .flat_map(|c| rust_files(&root().join(c).join("src")))
        .collect()
}

fn relative(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

/// The code lines of a source file, with their numbers: comment lines are
/// left out, and so is a file's `#[cfg(test)]` tail (unit tests may use
/// the wall clock and the environment like any test).
fn code_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let t = line.trim_start();
        if t == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|(_, l)| l.trim_start().starts_with("mod "))
        {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push((i + 1, line));
    }
    out
}

/// `cargo` as the test harness names it.
fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

#[test]
fn crates_depend_only_in_the_stated_direction() {
    let out = cargo()
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--locked",
            "--offline",
        ])
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Which workspace crates each may use (normal and build dependencies;
    // tests may use more).
    let allowed: BTreeMap<&str, &[&str]> = [
        ("ferry-engine", &[][..]),
        ("ferry-workflows", &["ferry-engine"][..]),
        ("ferry-storage", &["ferry-engine", "ferry-workflows"][..]),
        (
            "ferry",
            &["ferry-engine", "ferry-workflows", "ferry-storage"][..],
        ),
        (
            "ferry-bench",
            &["ferry-engine", "ferry-workflows", "ferry-storage"][..],
        ),
    ]
    .into_iter()
    .collect();
    // Crates that only one layer may know: sled and diesel are storage's,
    // serving HTTP and tokens are the api's. (utoipa is not among them: the
    // workflows' views describe their own JSON with its derive.)
    let storage_only = [
        "sled",
        "diesel",
        "diesel_migrations",
        "diesel-dynamic-schema",
        "libsqlite3-sys",
    ];
    let api_only = ["actix-web", "jsonwebtoken"];
    let mut wrong = Vec::new();
    let packages = meta["packages"].as_array().expect("packages");
    for p in packages {
        let name = p["name"].as_str().unwrap();
        let Some(ok) = allowed.get(name) else {
            wrong.push(format!(
                "{name}: a workspace crate this test does not know; add it to `allowed`"
            ));
            continue;
        };
        for d in p["dependencies"].as_array().unwrap() {
            if d["kind"].as_str() == Some("dev") {
                continue;
            }
            let dep = d["name"].as_str().unwrap();
            if dep.starts_with("ferry") && !ok.contains(&dep) {
                wrong.push(format!("{name} depends on {dep}"));
            }
            if storage_only.contains(&dep) && name != "ferry-storage" && name != "ferry-bench" {
                wrong.push(format!(
                    "{name} depends on {dep}, which only ferry-storage may know"
                ));
            }
            if api_only.contains(&dep) && name != "ferry" {
                wrong.push(format!(
                    "{name} depends on {dep}, which only the api (ferry) may know"
                ));
            }
        }
    }
    assert_eq!(
        packages.len(),
        allowed.len(),
        "workspace members changed: {wrong:?}"
    );
    assert!(
        wrong.is_empty(),
        "dependency direction broken:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_module_opens_with_a_doc() {
    let mut files = Vec::new();
    for c in ["engine", "workflows", "storage", "api", "bench"] {
        files.extend(rust_files(&root().join(c).join("src")));
        files.extend(rust_files(&root().join(c).join("tests")));
    }
    files.extend(rust_files(&root().join("tests")));
    assert!(files.len() > 100, "found only {} files", files.len());
    let undocumented: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            !first.starts_with("//!")
        })
        .map(|f| relative(f))
        .collect();
    assert!(
        undocumented.is_empty(),
        "modules without a `//!` doc:\n{}",
        undocumented.join("\n")
    );
}

/// Names of environment variables in `text`: string literals that look
/// like one of ferry's (`FERRY_…`, `MINIO_…`, `SMTP_…`, `DATABASE_URL`).
fn variables_named(text: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r#""((?:FERRY|MINIO|SMTP)_[A-Z0-9_]+|DATABASE_URL)""#).unwrap();
    re.captures_iter(text).map(|c| c[1].to_owned()).collect()
}

/// The variables of the README's configuration table (its first column).
fn documented_variables() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .expect("README has a Configuration section");
    let section = section.split("\n## ").next().unwrap();
    let name = regex::Regex::new(r"`([A-Z][A-Z0-9_]+)(?:=[^`]*)?`").unwrap();
    section
        .lines()
        .filter(|l| l.starts_with('|'))
        .filter_map(|l| l.split('|').nth(1))
        .flat_map(|cell| {
            name.captures_iter(cell)
                .map(|c| c[1].to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_environment_variable_is_in_the_readme() {
    let mut read = BTreeMap::<String, String>::new();
    for f in production_sources() {
        let text = std::fs::read_to_string(&f).unwrap();
        let code: String = code_lines(&text)
            .iter()
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        for v in variables_named(&code) {
            read.entry(v).or_insert_with(|| relative(&f));
        }
    }
    assert!(
        read.contains_key("FERRY_DATA_DIR"),
        "the scan finds the variables: {read:?}"
    );
    let documented = documented_variables();
    let missing: Vec<String> = read
        .iter()
        .filter(|(v, _)| !documented.contains(*v))
        .map(|(v, f)| format!("{v} (read in {f})"))
        .collect();
    assert!(
        missing.is_empty(),
        "variables missing from the README's table:\n{}",
        missing.join("\n")
    );
    let stale: Vec<&String> = documented
        .iter()
        .filter(|v| !read.contains_key(*v))
        .collect();
    assert!(
        stale.is_empty(),
        "the README documents variables no code reads: {stale:?}"
    );
}

#[test]
fn the_environment_is_read_in_one_place() {
    let reader = root().join("api/src/config.rs");
    let re =
        regex::Regex::new(r"\benv::(var|var_os|vars|vars_os)\s*\(|\btry_from_env\s*\(").unwrap();
    let mut found = Vec::new();
    for f in production_sources() {
        if f == reader {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in code_lines(&text) {
            if re.is_match(line) {
                found.push(format!("{}:{n}: {}", relative(&f), line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the environment is read outside api/src/config.rs (take a lookup instead):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_wall_clock_is_read_only_by_the_clock() {
    let clock = root().join("engine/src/clock.rs");
    let re = regex::Regex::new(r"\b(Utc|Local)::now\s*\(|SystemTime::now\s*\(").unwrap();
    let mut found = Vec::new();
    for f in production_sources() {
        if f == clock {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in code_lines(&text) {
            if re.is_match(line) {
                found.push(format!("{}:{n}: {}", relative(&f), line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the wall clock is read outside engine/src/clock.rs (use the injected Clock):\n{}",
        found.join("\n")
    );
}

#[test]
fn every_event_tag_round_trips_byte_for_byte() {
    use ferry_engine::event::Event;
    let source = std::fs::read_to_string(root().join("engine/src/event.rs")).unwrap();
    let rename = regex::Regex::new(r#"#\[serde\(rename = "([a-z_]+\.v[0-9]+)"\)\]"#).unwrap();
    let declared: BTreeSet<String> = rename
        .captures_iter(&source)
        .map(|c| c[1].to_owned())
        .collect();
    assert!(declared.len() >= 19, "found the tags: {declared:?}");
    let fixture = std::fs::read_to_string(root().join("tests/fixtures/events.v1.ndjson")).unwrap();
    let mut covered = BTreeSet::new();
    for line in fixture.lines().filter(|l| !l.trim().is_empty()) {
        let event = Event::decode(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
        let stored: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(stored["t"].as_str(), Some(event.tag()), "tag() of {line}");
        assert_eq!(
            String::from_utf8(event.encode()).unwrap(),
            line,
            "re-encoded"
        );
        covered.insert(event.tag().to_owned());
    }
    let untested: Vec<&String> = declared.difference(&covered).collect();
    assert!(
        untested.is_empty(),
        "event tags without a stored example in tests/fixtures/events.v1.ndjson: {untested:?}"
    );
}

#[test]
fn failpoints_are_compiled_into_test_builds_only() {
    let tree = |edges: &str| {
        let out = cargo()
            .args([
                "tree",
                "-p",
                "ferry",
                "--locked",
                "--offline",
                "--prefix",
                "none",
                "-e",
                edges,
            ])
            .output()
            .expect("cargo tree runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let shipped = tree("normal,build,features");
    assert!(
        !shipped.contains("\"failpoints\""),
        "the production build of ferry enables the failpoints:\n{shipped}"
    );
    assert!(
        tree("all,features").contains("ferry-workflows feature \"failpoints\""),
        "the tests' build of ferry no longer enables the failpoints"
    );
}
