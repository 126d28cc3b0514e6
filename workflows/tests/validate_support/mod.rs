//! Bundles for the validation tests: good ones written by the real
//! `BundleWriter` and signed by a real `BundleSigner`, and malformed ones
//! written byte by byte where async_zip would not produce them (links,
//! traversal, duplicate names, forged counts, lying sizes).

#![allow(dead_code)]

use async_zip::tokio::read::fs::ZipFileReader;
use ferry_engine::TenantId;
use ferry_workflows::bundle::{BundleSigner, BundleWriter, DatabaseSection, Manifest, Producer};
use ferry_workflows::ports::tenant::{ColumnInfo, ForeignKey, SchemaInfo, TableInfo};
use futures::io::AsyncReadExt as _;
use std::path::{Path, PathBuf};

pub fn col(name: &str, data_type: &str, nullable: bool) -> ColumnInfo {
    ColumnInfo {
        name: name.into(),
        data_type: data_type.into(),
        nullable,
        ..Default::default()
    }
}

/// `users` and `orders` (orders.user_id → users.id), as PostgreSQL reports them.
pub fn schema() -> SchemaInfo {
    SchemaInfo {
        engine: "postgresql".into(),
        isolation: "schema".into(),
        tables: vec![
            TableInfo {
                name: "users".into(),
                columns: vec![
                    col("id", "bigint", false),
                    col("email", "text", false),
                    col("active", "boolean", true),
                    col("balance", "numeric(12,2)", true),
                    col("avatar", "bytea", true),
                    col("score", "double precision", true),
                ],
                primary_key: vec!["id".into()],
                foreign_keys: vec![],
                ..Default::default()
            },
            TableInfo {
                name: "orders".into(),
                columns: vec![
                    col("id", "bigint", false),
                    col("user_id", "bigint", false),
                    col("note", "text", true),
                ],
                primary_key: vec!["id".into()],
                foreign_keys: vec![ForeignKey {
                    columns: vec!["user_id".into()],
                    ref_table: "users".into(),
                    ref_columns: vec!["id".into()],
                }],
                ..Default::default()
            },
        ],
        sequences: vec![],
        ..Default::default()
    }
}

pub const USERS: &str = concat!(
    r#"{"id":1,"email":"a@x.example","active":true,"balance":"12.50","avatar":{"$base64":"AP8="},"score":0.5}"#,
    "\n",
    r#"{"id":2,"email":"b@x.example","active":false,"balance":null,"avatar":null,"score":{"$float":"NaN"}}"#,
    "\n",
    r#"{"id":3,"email":"ü@x.example","active":null,"balance":"-0.01","avatar":null,"score":1e+300}"#,
    "\n",
);

pub const ORDERS: &str = concat!(
    r#"{"id":10,"user_id":1,"note":"first"}"#,
    "\n",
    r#"{"id":11,"user_id":1,"note":null}"#,
    "\n",
    r#"{"id":12,"user_id":3,"note":"{\"$base64\":\"not a tag\"}"}"#,
    "\n",
);

/// One file of a bundle.
#[derive(Clone, Debug)]
pub struct File {
    pub path: String,
    pub data: Vec<u8>,
    pub table: Option<String>,
    pub rows: Option<u64>,
}

/// A bundle to write; every field can be changed for a bad case.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub tenant: String,
    pub profile: String,
    pub version: String,
    pub format: String,
    pub schema: SchemaInfo,
    pub files: Vec<File>,
}

impl Fixture {
    /// A good lite bundle of tenant `acme`: schema, users, orders, one asset.
    pub fn lite() -> Fixture {
        let mut f = Fixture {
            tenant: "acme".into(),
            profile: "lite".into(),
            version: "1.0.0".into(),
            format: "ndjson".into(),
            schema: schema(),
            files: vec![],
        };
        f.set_table("users", USERS);
        f.set_table("orders", ORDERS);
        f.files.push(File {
            path: "assets/logo.png".into(),
            data: b"\x89PNG not really".to_vec(),
            table: None,
            rows: None,
        });
        f
    }

    /// A good native SQLite bundle: schema and a dump that starts like one.
    pub fn native_sqlite() -> Fixture {
        let mut schema = schema();
        schema.engine = "sqlite".into();
        schema.isolation = "database".into();
        let mut dump = b"SQLite format 3\0".to_vec();
        dump.extend(std::iter::repeat_n(7u8, 4096));
        Fixture {
            tenant: "acme".into(),
            profile: "native".into(),
            version: "1.0.0".into(),
            format: "sqlite3".into(),
            schema,
            files: vec![File {
                path: "database/tenant.sqlite".into(),
                data: dump,
                table: None,
                rows: None,
            }],
        }
    }

    /// What a real bundle holds (written by ferry), to change and sign
    /// again with [`Fixture::write`].
    pub async fn from_bundle(path: &Path) -> Fixture {
        let entries = entries_of(path).await;
        let data = |name: &str| {
            entries
                .iter()
                .find(|e| e.name == name.as_bytes())
                .unwrap_or_else(|| panic!("{name} not in the bundle"))
                .data
                .clone()
        };
        let manifest: Manifest = serde_json::from_slice(&data("manifest.json")).unwrap();
        let schema: SchemaInfo = serde_json::from_slice(&data("database/schema.json")).unwrap();
        let files = manifest
            .entries
            .iter()
            .filter(|e| e.path != "database/schema.json")
            .map(|e| File {
                path: e.path.clone(),
                data: data(&e.path),
                table: e.table.clone(),
                rows: e.rows,
            })
            .collect();
        Fixture {
            tenant: manifest.tenant_id.to_string(),
            profile: manifest.profile,
            version: manifest.version,
            format: manifest.database.format,
            schema,
            files,
        }
    }

    /// Set (or add) a table's file; its row count is its line count.
    pub fn set_table(&mut self, table: &str, ndjson: &str) {
        self.files.retain(|f| f.table.as_deref() != Some(table));
        self.files.push(File {
            path: format!("database/{table}.ndjson"),
            data: ndjson.as_bytes().to_vec(),
            table: Some(table.into()),
            rows: Some(ndjson.lines().count() as u64),
        });
    }

    pub fn file_mut(&mut self, path: &str) -> &mut File {
        self.files
            .iter_mut()
            .find(|f| f.path == path)
            .expect("file")
    }

    /// Write the bundle with the real writer and signer; its path.
    pub async fn write(&self, dir: &Path, signer: &BundleSigner) -> PathBuf {
        let src = dir.join("src");
        std::fs::create_dir_all(&src).unwrap();
        let exported_at = chrono::DateTime::from_timestamp(1_770_000_000, 0).unwrap();
        let out = dir.join(format!("export_{}_20260202T020000Z.zip", self.tenant));
        let mut w = BundleWriter::create(&out, exported_at, u64::MAX)
            .await
            .unwrap();
        let schema_file = src.join("schema.json");
        std::fs::write(
            &schema_file,
            serde_json::to_vec_pretty(&self.schema).unwrap(),
        )
        .unwrap();
        w.add_file("database/schema.json", &schema_file, None, None)
            .await
            .unwrap();
        for (i, f) in self.files.iter().enumerate() {
            let p = src.join(format!("f{i}"));
            std::fs::write(&p, &f.data).unwrap();
            let e = w
                .add_file(&f.path, &p, None, f.table.clone())
                .await
                .unwrap();
            assert_eq!(e.bytes, f.data.len() as u64);
        }
        let row_count = self.files.iter().filter_map(|f| f.rows).sum();
        let manifest = Manifest {
            tenant_id: TenantId::parse(&self.tenant).unwrap(),
            export_id: "0190f5a0-0000-7000-8000-000000000001".into(),
            exported_at,
            profile: self.profile.clone(),
            version: self.version.clone(),
            database: DatabaseSection {
                tables: self.schema.tables.iter().map(|t| t.name.clone()).collect(),
                row_count: Some(row_count),
                format: self.format.clone(),
                engine: self.schema.engine.clone(),
                isolation: self.schema.isolation.clone(),
                schema_fingerprint: self.schema.fingerprint(),
                date_range: None,
            },
            assets: Default::default(),
            entries: vec![],
            producer: Producer {
                name: "ferry".into(),
                version: "test".into(),
            },
            audit_anchor: None,
        };
        // The writer records sizes and hashes; rows come from the fixture.
        let mut manifest = manifest;
        manifest.entries = w.entries().to_vec();
        for e in &mut manifest.entries {
            e.rows = self
                .files
                .iter()
                .find(|f| f.path == e.path)
                .and_then(|f| f.rows);
        }
        let bytes = manifest.to_bytes();
        let sig = signer.sign(&bytes);
        w.add_bytes("manifest.json", &bytes).await.unwrap();
        w.add_bytes("manifest.sig", &sig.to_bytes()).await.unwrap();
        w.finish().await.unwrap();
        std::fs::remove_dir_all(&src).unwrap();
        out
    }
}

/// One entry of a hand-made archive (stored, not compressed).
#[derive(Clone, Debug)]
pub struct RawEntry {
    pub name: Vec<u8>,
    pub data: Vec<u8>,
    /// The Unix mode in the external attributes, e.g. `0o100644`.
    pub mode: u32,
}

impl RawEntry {
    pub fn file(name: &str, data: &[u8]) -> RawEntry {
        RawEntry {
            name: name.as_bytes().to_vec(),
            data: data.to_vec(),
            mode: 0o100644,
        }
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Write a stored ZIP archive byte by byte. `count` overrides the end
/// record's entry count (a forged count).
pub fn write_raw_zip(path: &Path, entries: &[RawEntry], count: Option<u16>) {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let offset = out.len() as u32;
        let crc = crc32(&e.data);
        let size = e.data.len() as u32;
        let name_len = e.name.len() as u16;
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        for v in [20u16, 0x0800, 0, 0, 0x21] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, size, size] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&e.name);
        out.extend_from_slice(&e.data);

        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        for v in [(3u16 << 8) | 20, 20, 0x0800, 0, 0, 0x21] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, size, size] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [name_len, 0, 0, 0, 0] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        central.extend_from_slice(&(e.mode << 16).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(&e.name);
    }
    let cd_offset = out.len() as u32;
    let n = count.unwrap_or(entries.len() as u16);
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    for v in [0u16, 0, n, n] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    std::fs::write(path, out).unwrap();
}

/// Every entry of an archive, in order.
pub async fn entries_of(path: &Path) -> Vec<RawEntry> {
    let reader = ZipFileReader::new(path).await.unwrap();
    let mut all = Vec::new();
    for i in 0..reader.file().entries().len() {
        let name = reader.file().entries()[i].filename().as_bytes().to_vec();
        let mut data = Vec::new();
        reader
            .reader_without_entry(i)
            .await
            .unwrap()
            .read_to_end(&mut data)
            .await
            .unwrap();
        all.push(RawEntry {
            name,
            data,
            mode: 0o100644,
        });
    }
    all
}

/// Copy an archive entry by entry (stored), letting `edit` change the list.
pub async fn rewrite(src: &Path, dst: &Path, edit: impl FnOnce(&mut Vec<RawEntry>)) {
    let mut entries = entries_of(src).await;
    edit(&mut entries);
    write_raw_zip(dst, &entries, None);
}

pub fn entry<'a>(entries: &'a mut [RawEntry], name: &str) -> &'a mut RawEntry {
    entries
        .iter_mut()
        .find(|e| e.name == name.as_bytes())
        .expect("entry")
}

/// Change the central directory record of `name` in place: `patch` gets
/// the 46-byte fixed part (sizes at 20 and 24, external attributes at 38).
pub fn patch_central(path: &Path, name: &str, patch: impl Fn(&mut [u8])) {
    let mut b = std::fs::read(path).unwrap();
    let end = b
        .windows(4)
        .rposition(|w| w == [0x50, 0x4b, 0x05, 0x06])
        .unwrap();
    let mut at = u32::from_le_bytes(b[end + 16..end + 20].try_into().unwrap()) as usize;
    let mut patched = false;
    while at < end && b[at..at + 4] == [0x50, 0x4b, 0x01, 0x02] {
        let len = |o: usize| u16::from_le_bytes([b[at + o], b[at + o + 1]]) as usize;
        let (n, m, k) = (len(28), len(30), len(32));
        if &b[at + 46..at + 46 + n] == name.as_bytes() {
            patch(&mut b[at..at + 46]);
            patched = true;
        }
        at += 46 + n + m + k;
    }
    assert!(patched, "{name} not found");
    std::fs::write(path, b).unwrap();
}
