//! The bad-bundle corpus through the real server: each bundle is uploaded
//! to `POST /api/v1/tenant/rehydrate`, refused with its own error code and
//! a downloadable report, and refused before anything destructive — no
//! quiesce, backup or delete step ever starts — so the tenant's content is
//! unchanged at the end.
//!
//! The bad bundles are made from a real export of the tenant: changed in
//! the archive (stored entries rewritten byte by byte), or changed in their
//! content and signed again with the server's own key, so that they get
//! past the signature to the check they are meant to fail.

mod support;
#[path = "../workflows/tests/validate_support/mod.rs"]
mod validate_support;

use ferry_workflows::bundle::BundleSigner;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::Ferry;
use validate_support::{entry, patch_central, rewrite, write_raw_zip, Fixture, RawEntry};

const WAIT: Duration = Duration::from_secs(180);
const TENANT: &str = "acme";
const UPLOAD_MAX: usize = 8 << 20;
const ENTRIES_MAX: usize = 1000;

/// Table → blake3 of its lite content, from a fresh export's manifest: the
/// tenant's content right now.
fn content(f: &Ferry, token: &str) -> BTreeMap<String, String> {
    let id = f.export(token, json!({"profile": "lite"}));
    f.wait_export(token, &id, "completed", WAIT);
    let bundle = f.bundle_path(TENANT, &id);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fixture = rt.block_on(Fixture::from_bundle(&bundle));
    fixture
        .files
        .iter()
        .filter_map(|file| {
            Some((
                file.table.clone()?,
                blake3::hash(&file.data).to_hex().to_string(),
            ))
        })
        .collect()
}

/// The server's bundle signer, from its data folder.
fn server_signer(f: &Ferry) -> BundleSigner {
    let hex_seed = std::fs::read_to_string(f.data_dir().join("keys/signing.key")).unwrap();
    let seed: [u8; 32] = hex::decode(hex_seed.trim()).unwrap().try_into().unwrap();
    BundleSigner::from_seed(seed)
}

/// The bad bundles, each with the code it must be refused with.
struct Corpus {
    dir: PathBuf,
    good: PathBuf,
    signer: BundleSigner,
    rt: tokio::runtime::Runtime,
    cases: Vec<(&'static str, &'static str, PathBuf)>,
}

impl Corpus {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.zip"))
    }

    fn add(&mut self, what: &'static str, code: &'static str, path: PathBuf) {
        self.cases.push((what, code, path));
    }

    /// The good bundle's content changed by `edit`, signed with `signer`.
    fn signed_with(
        &mut self,
        what: &'static str,
        code: &'static str,
        signer: &BundleSigner,
        edit: impl FnOnce(&mut Fixture),
    ) {
        let mut fixture = self.rt.block_on(Fixture::from_bundle(&self.good));
        edit(&mut fixture);
        let dir = self.dir.join(format!("case{}", self.cases.len()));
        let written = self.rt.block_on(fixture.write(&dir, signer));
        self.add(what, code, written);
    }

    /// The good bundle's content changed by `edit`, signed by the server.
    fn signed(&mut self, what: &'static str, code: &'static str, edit: impl FnOnce(&mut Fixture)) {
        let signer = BundleSigner::from_seed(self.signer.seed());
        self.signed_with(what, code, &signer, edit);
    }

    /// The good archive's entries changed by `edit` (not signed again).
    fn rewritten(
        &mut self,
        what: &'static str,
        code: &'static str,
        edit: impl FnOnce(&mut Vec<RawEntry>),
    ) {
        let out = self.path(&format!("raw{}", self.cases.len()));
        self.rt.block_on(rewrite(&self.good, &out, edit));
        self.add(what, code, out);
    }

    /// An archive of exactly `entries`.
    fn raw(&mut self, what: &'static str, code: &'static str, entries: &[RawEntry]) {
        let out = self.path(&format!("raw{}", self.cases.len()));
        write_raw_zip(&out, entries, None);
        self.add(what, code, out);
    }
}

/// A table file's rows, one JSON object per line.
fn rows(fixture: &Fixture, table: &str) -> Vec<serde_json::Map<String, Value>> {
    let file = fixture
        .files
        .iter()
        .find(|f| f.table.as_deref() == Some(table))
        .unwrap();
    String::from_utf8(file.data.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A table file's lines, exactly as written.
fn lines(fixture: &Fixture, table: &str) -> Vec<String> {
    let file = fixture
        .files
        .iter()
        .find(|f| f.table.as_deref() == Some(table))
        .unwrap();
    String::from_utf8(file.data.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `line` with `column`'s value (an integer or a string) replaced by
/// `value`, everything else byte for byte as ferry wrote it.
fn with_value(line: &str, column: &str, value: &Value) -> String {
    let row: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
    let key = serde_json::to_string(column).unwrap();
    let old = format!("{key}:{}", serde_json::to_string(&row[column]).unwrap());
    assert_eq!(line.matches(&old).count(), 1, "{old} in {line}");
    line.replace(&old, &format!("{key}:{value}"))
}

/// Replace a table file's lines (keeping its exported name).
fn set_lines(fixture: &mut Fixture, table: &str, lines: &[String]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let path = fixture
        .files
        .iter()
        .find(|f| f.table.as_deref() == Some(table))
        .unwrap()
        .path
        .clone();
    fixture.set_table(table, &text);
    // set_table names the file after the table; keep the exported name.
    fixture
        .files
        .iter_mut()
        .find(|f| f.table.as_deref() == Some(table))
        .unwrap()
        .path = path;
}

/// A value of `like`'s kind that no row holds as a key.
fn missing_key(like: &Value) -> Value {
    match like {
        Value::String(s) if s.len() == 36 && s.matches('-').count() == 4 => {
            json!("00000000-0000-4000-8000-00000000dead")
        }
        Value::String(_) => json!("987654321"),
        _ => json!(987_654_321),
    }
}

fn build_corpus(f: &Ferry, token: &str, other: &str, dir: &Path) -> Corpus {
    let id = f.export(token, json!({"profile": "lite", "includeAssets": false}));
    f.wait_export(token, &id, "completed", WAIT);
    let good = f.bundle_path(TENANT, &id);
    let mut c = Corpus {
        dir: dir.to_owned(),
        good: good.clone(),
        signer: server_signer(f),
        rt: tokio::runtime::Runtime::new().unwrap(),
        cases: vec![],
    };
    let fixture = c.rt.block_on(Fixture::from_bundle(&good));
    // A table with a single-column foreign key, one with a primary key, and
    // one no other table references.
    let (child, fk_column) = fixture
        .schema
        .tables
        .iter()
        .find_map(|t| {
            let fk = t.foreign_keys.iter().find(|k| k.columns.len() == 1)?;
            (!rows(&fixture, &t.name).is_empty()).then(|| (t.name.clone(), fk.columns[0].clone()))
        })
        .expect("a table with a foreign key and rows");
    let keyed = fixture
        .schema
        .tables
        .iter()
        .find(|t| !t.primary_key.is_empty() && !rows(&fixture, &t.name).is_empty())
        .expect("a table with a primary key and rows")
        .name
        .clone();
    let leaf = fixture
        .schema
        .tables
        .iter()
        .rev()
        .find(|t| {
            fixture
                .schema
                .tables
                .iter()
                .all(|o| o.foreign_keys.iter().all(|k| k.ref_table != t.name))
        })
        .expect("a table nobody references")
        .name
        .clone();
    let table_path = fixture
        .files
        .iter()
        .find(|f| f.table.as_deref() == Some(keyed.as_str()))
        .unwrap()
        .path
        .clone();

    // The control: the good bundle, signed again unchanged, must pass (a
    // dry run), or every case below would prove nothing.
    c.signed("unchanged (control)", "", |_| {});

    // --- the archive
    let theirs = f.export(other, json!({"profile": "lite"}));
    f.wait_export(other, &theirs, "completed", WAIT);
    c.add(
        "another tenant's bundle",
        "tenant_mismatch",
        f.bundle_path("globex", &theirs),
    );
    let bytes = std::fs::read(&good).unwrap();
    let cut = c.path("truncated");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    c.add("a truncated zip", "bundle_not_zip", cut);
    let text = c.path("text");
    std::fs::write(&text, "this is not a zip archive at all").unwrap();
    c.add("not a zip", "bundle_not_zip", text);
    c.signed("a zip bomb by ratio", "entry_ratio_exceeded", |fx| {
        fx.files.push(validate_support::File {
            path: "assets/zeros.bin".into(),
            data: vec![0u8; 32 << 20],
            table: None,
            rows: None,
        })
    });
    let many: Vec<RawEntry> = (0..=ENTRIES_MAX)
        .map(|i| RawEntry::file(&format!("assets/{i}"), b""))
        .collect();
    c.raw("a zip bomb by entry count", "too_many_entries", &many);
    c.raw(
        "a ../ path",
        "unsafe_path",
        &[RawEntry::file("database/../../escape.txt", b"x")],
    );
    c.raw(
        "an absolute path",
        "unsafe_path",
        &[RawEntry::file("/etc/passwd", b"x")],
    );
    let mut link = RawEntry::file(&table_path, b"/etc/shadow");
    link.mode = 0o120777;
    c.raw("a symbolic link entry", "entry_not_regular", &[link]);
    let dup_path = table_path.clone();
    c.rewritten("a duplicate entry name", "duplicate_entry", move |es| {
        let mut twin = entry(es, &dup_path).clone();
        twin.data = b"{}\n".to_vec();
        es.push(twin);
    });
    let lying = c.path("lying");
    std::fs::copy(&good, &lying).unwrap();
    patch_central(&lying, &table_path, |rec| {
        rec[24..28].copy_from_slice(&10u32.to_le_bytes());
    });
    c.add(
        "a header lying about the size",
        "entry_size_mismatch",
        lying,
    );

    // --- the manifest and its signature
    c.rewritten("a changed manifest", "signature_invalid", |es| {
        let m = entry(es, "manifest.json");
        let mut v: Value = serde_json::from_slice(&m.data).unwrap();
        v["exportedAt"] = json!("2001-01-01T00:00:00Z");
        m.data = serde_json::to_vec_pretty(&v).unwrap();
    });
    c.rewritten("a malformed signature", "signature_invalid", |es| {
        entry(es, "manifest.sig").data = b"not a signature".to_vec()
    });
    let stranger = BundleSigner::generate();
    c.signed_with(
        "signed with another key",
        "signature_key_mismatch",
        &stranger,
        |_| {},
    );
    c.rewritten("no manifest", "manifest_missing", |es| {
        es.retain(|e| e.name != b"manifest.json")
    });
    c.signed("an unknown format version", "unsupported_version", |fx| {
        fx.version = "2.0.0".into()
    });
    let analytics = f.export(
        token,
        json!({"profile": "analytics", "dateRange": {"from": "2000-01-01", "to": "2099-12-31"}}),
    );
    f.wait_export(token, &analytics, "completed", WAIT);
    c.add(
        "an analytics bundle",
        "profile_not_restorable",
        f.bundle_path(TENANT, &analytics),
    );

    // --- the entries
    let changed_path = table_path.clone();
    c.rewritten("a changed entry", "checksum_mismatch", move |es| {
        entry(es, &changed_path).data[3] ^= 1
    });
    let gone = table_path.clone();
    c.rewritten(
        "an entry the manifest lists is missing",
        "entry_missing",
        move |es| es.retain(|e| e.name != gone.as_bytes()),
    );
    c.rewritten(
        "an entry the manifest does not list",
        "entry_unexpected",
        |es| es.push(RawEntry::file("assets/extra.txt", b"x")),
    );

    // --- the schema
    let k = keyed.clone();
    c.signed("a missing table file", "table_file_missing", move |fx| {
        fx.files.retain(|f| f.table.as_deref() != Some(k.as_str()))
    });
    c.signed("an extra table file", "table_file_extra", |fx| {
        fx.set_table("secrets", "{\"id\":1}\n")
    });
    let l = leaf.clone();
    c.signed(
        "a table the tenant has and the bundle lacks",
        "schema_table_missing",
        move |fx| {
            fx.schema.tables.retain(|t| t.name != l);
            fx.files.retain(|f| f.table.as_deref() != Some(l.as_str()));
        },
    );
    let l = leaf.clone();
    c.signed(
        "a table the tenant does not have",
        "schema_table_extra",
        move |fx| {
            let mut extra = fx.schema.table(&l).unwrap().clone();
            extra.name = "secrets".into();
            extra.foreign_keys.clear();
            fx.schema.tables.push(extra);
            fx.set_table("secrets", "");
        },
    );
    let k = keyed.clone();
    c.signed(
        "a column the tenant does not have",
        "schema_column_extra",
        move |fx| {
            let t = fx.schema.tables.iter_mut().find(|t| t.name == k).unwrap();
            t.columns.push(validate_support::col("evil", "text", true));
        },
    );
    let k = keyed.clone();
    c.signed("a type mismatch", "schema_type_mismatch", move |fx| {
        let t = fx.schema.tables.iter_mut().find(|t| t.name == k).unwrap();
        let column = t
            .columns
            .iter_mut()
            .find(|c| !t.primary_key.contains(&c.name))
            .unwrap();
        column.data_type = if column.data_type == "bytea" {
            "text"
        } else {
            "bytea"
        }
        .into();
    });

    // --- the rows
    let k = keyed.clone();
    c.signed("a row that is not JSON", "row_invalid", move |fx| {
        let file = fx
            .files
            .iter_mut()
            .find(|f| f.table.as_deref() == Some(k.as_str()))
            .unwrap();
        file.data.extend_from_slice(b"{\"id\": 11, oops\n");
        file.rows = file.rows.map(|n| n + 1);
    });
    let k = keyed.clone();
    c.signed(
        "a row count that differs from the manifest",
        "row_count_mismatch",
        move |fx| {
            let file = fx
                .files
                .iter_mut()
                .find(|f| f.table.as_deref() == Some(k.as_str()))
                .unwrap();
            file.rows = file.rows.map(|n| n + 1);
        },
    );
    let k = keyed.clone();
    c.signed("duplicate primary keys", "duplicate_key", move |fx| {
        let mut all = lines(fx, &k);
        all.push(all[0].clone());
        set_lines(fx, &k, &all);
    });
    c.signed(
        "a dangling foreign key",
        "dangling_foreign_key",
        move |fx| {
            let value = missing_key(&rows(fx, &child)[0][&fk_column]);
            let mut all = lines(fx, &child);
            all[0] = with_value(&all[0], &fk_column, &value);
            set_lines(fx, &child, &all);
        },
    );
    c
}

fn status_path(id: &str) -> String {
    format!("/api/v1/tenant/rehydrate/{id}/status")
}

/// The steps any event of workflow `id` names.
fn steps_run(f: &Ferry, token: &str, id: &str) -> Vec<String> {
    f.get_json(&format!("/api/v1/workflows/{id}/events"), token)["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["step"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn every_bad_bundle_is_refused_with_its_code_before_anything_is_changed() {
    let mut f = Ferry::new()
        .env("FERRY_UPLOAD_BYTES_MAX", &UPLOAD_MAX.to_string())
        .env("FERRY_BUNDLE_ENTRIES_MAX", &ENTRIES_MAX.to_string())
        .env("FERRY_REHYDRATIONS_PER_DAY", "100");
    f.sample(TENANT, 1);
    f.sample("globex", 1);
    f.start();
    let token = f.token(TENANT, "tenant_admin");
    let other = f.token("globex", "tenant_admin");
    let before = content(&f, &token);
    let dir = tempfile::tempdir().unwrap();
    let corpus = build_corpus(&f, &token, &other, dir.path());

    let mut codes = vec![];
    for (what, code, path) in &corpus.cases {
        let body = std::fs::read(path).unwrap();
        assert!(body.len() < UPLOAD_MAX, "{what}: {} bytes", body.len());
        let r = f.upload_bundle(&token, "?dryRun=true", body);
        let v: Value = r.json().unwrap();
        let id = v["job"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: {v}"));
        if code.is_empty() {
            f.wait_status(&token, &status_path(id), "completed", WAIT);
            continue;
        }
        let s = f.wait_status(&token, &status_path(id), "failed", WAIT);
        assert_eq!(s["error"]["code"], *code, "{what}: {s}");
        assert_eq!(s["reportAvailable"], true, "{what}: {s}");
        let report = f.get(
            &format!("/api/v1/tenant/rehydrate/{id}/report"),
            Some(&token),
        );
        assert_eq!(report.status(), 200, "{what}");
        let first: Value =
            serde_json::from_str(report.text().unwrap().lines().next().unwrap()).unwrap();
        assert_eq!(first["code"], *code, "{what}: {first}");
        let steps = steps_run(&f, &token, id);
        for destructive in ["quiesce", "backup", "load"] {
            assert!(
                !steps.iter().any(|s| s == destructive),
                "{what}: {destructive} ran: {steps:?}"
            );
        }
        codes.push(*code);
    }

    // Refused by the API itself, before any workflow.
    let r = f.upload_bundle(&token, "", vec![]);
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["error"]["code"], "empty_upload");
    codes.push("empty_upload");
    let r = f.upload_bundle(&token, "", vec![b'x'; UPLOAD_MAX + 1]);
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().unwrap()["error"]["code"],
        "upload_too_large"
    );
    codes.push("upload_too_large");

    assert!(codes.len() >= 25, "{} cases", codes.len());
    let distinct: std::collections::BTreeSet<_> = codes.iter().collect();
    assert!(
        distinct.len() >= 25,
        "{} distinct codes: {distinct:?}",
        distinct.len()
    );
    assert_eq!(content(&f, &token), before, "the tenant is unchanged");
    // No upload is left, and of the refused rehydrations only their
    // reports: the refused bundles are removed, the dry run's work files too.
    let uploads = f.data_dir().join("uploads");
    let left = std::fs::read_dir(&uploads).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "{} holds {left} entries", uploads.display());
    for dir in std::fs::read_dir(f.data_dir().join("rehydrate")).unwrap() {
        let dir = dir.unwrap().path();
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["report.ndjson"],
            "{} holds {names:?}",
            dir.display()
        );
    }
    drop(corpus);
}
