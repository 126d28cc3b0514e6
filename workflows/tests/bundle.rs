//! The bundle writer and offline verifier, on real files: the archive opens
//! with standard tools (`unzip -t`, Python's `zipfile`), every manifest
//! checksum matches, and verification catches each kind of tampering.

use async_zip::tokio::read::fs::ZipFileReader;
use async_zip::tokio::write::ZipFileWriter;
use async_zip::{Compression, ZipEntryBuilder};
use ferry_engine::{Clock, SystemClock, TenantId};
use ferry_workflows::bundle::{
    verify_file, BundleSigner, BundleWriter, DatabaseSection, Manifest, PackMethod, Packed,
    Producer, SignatureFile, FORMAT_VERSION, MANIFEST_PATH, SIGNATURE_PATH,
};
use futures::io::AsyncReadExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn base_manifest() -> Manifest {
    Manifest {
        tenant_id: TenantId::parse("acme").unwrap(),
        export_id: "0190f5a0-0000-7000-8000-000000000001".into(),
        exported_at: chrono::DateTime::from_timestamp(1_770_000_000, 0).unwrap(),
        profile: "lite".into(),
        version: FORMAT_VERSION.into(),
        database: DatabaseSection {
            tables: vec!["orders".into(), "users".into()],
            row_count: Some(3),
            format: "ndjson".into(),
            engine: "sqlite".into(),
            isolation: "database".into(),
            schema_fingerprint: "f".repeat(64),
            date_range: None,
        },
        assets: Default::default(),
        entries: vec![],
        producer: Producer {
            name: "ferry".into(),
            version: "0.1.0".into(),
        },
        audit_anchor: None,
    }
}

/// Write a bundle with two table files, a schema and one incompressible
/// 3 MiB asset (so entries span many chunks).
async fn sample_bundle(dir: &Path, signer: &BundleSigner) -> (PathBuf, Manifest) {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("users.ndjson"),
        "{\"id\":1,\"name\":\"a\"}\n{\"id\":2,\"name\":\"b\"}\n",
    )
    .unwrap();
    std::fs::write(
        src.join("orders.ndjson"),
        "{\"id\":1,\"total\":\"12.50\"}\n",
    )
    .unwrap();
    std::fs::write(src.join("schema.json"), "{\"tables\":[]}\n").unwrap();
    let mut big = Vec::with_capacity(3 << 20);
    let mut x: u64 = 0x9E3779B97F4A7C15;
    while big.len() < 3 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        big.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(src.join("logo.bin"), &big).unwrap();

    let out = dir.join("export_acme_20260202T020000Z.zip");
    let mut w = BundleWriter::create(&out, base_manifest().exported_at, u64::MAX)
        .await
        .unwrap();
    w.add_file("database/schema.json", &src.join("schema.json"), None, None)
        .await
        .unwrap();
    w.add_file(
        "database/users.ndjson",
        &src.join("users.ndjson"),
        Some(2),
        Some("users".into()),
    )
    .await
    .unwrap();
    w.add_file(
        "database/orders.ndjson",
        &src.join("orders.ndjson"),
        Some(1),
        Some("orders".into()),
    )
    .await
    .unwrap();
    w.add_file("assets/img/logo.bin", &src.join("logo.bin"), None, None)
        .await
        .unwrap();
    let (done, manifest) = w.finish_signed(base_manifest(), signer).await.unwrap();
    assert_eq!(done.path, out);
    assert_eq!(done.size_bytes, std::fs::metadata(&out).unwrap().len());
    let whole = blake3::hash(&std::fs::read(&out).unwrap())
        .to_hex()
        .to_string();
    assert_eq!(
        done.checksum, whole,
        "the streamed checksum is the archive's blake3"
    );
    (out, manifest)
}

/// Copy a zip entry by entry, letting `edit` change, drop (None) or keep
/// each entry, and `extra` add entries at the end.
async fn rewrite(
    src: &Path,
    dst: &Path,
    edit: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>,
    extra: &[(&str, &[u8])],
) {
    let reader = ZipFileReader::new(src).await.unwrap();
    let file = tokio::fs::File::create(dst).await.unwrap();
    let mut w = ZipFileWriter::with_tokio(file);
    for i in 0..reader.file().entries().len() {
        let name = reader.file().entries()[i]
            .filename()
            .as_str()
            .unwrap()
            .to_owned();
        let mut data = Vec::new();
        reader
            .reader_without_entry(i)
            .await
            .unwrap()
            .read_to_end(&mut data)
            .await
            .unwrap();
        if let Some(data) = edit(&name, data) {
            w.write_entry_whole(
                ZipEntryBuilder::new(name.into(), Compression::Deflate),
                &data,
            )
            .await
            .unwrap();
        }
    }
    for (name, data) in extra {
        w.write_entry_whole(
            ZipEntryBuilder::new(name.to_string().into(), Compression::Deflate),
            data,
        )
        .await
        .unwrap();
    }
    w.close().await.unwrap();
}

/// `unzip -t` and Python's `zipfile` open the archive, and its entries
/// other than the manifest and signature are exactly the `entries` listed
/// in the manifest, with their sizes.
fn check_with_standard_tools(path: &Path, entries: usize) {
    let out = Command::new("unzip")
        .arg("-t")
        .arg(path)
        .output()
        .expect("unzip is installed");
    assert!(
        out.status.success(),
        "unzip -t: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("No errors detected"));

    let py = r#"
import sys, zipfile, hashlib, json
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
m = json.loads(z.read("manifest.json"))
names = sorted(n for n in z.namelist() if n not in ("manifest.json", "manifest.sig"))
assert names == sorted(e["path"] for e in m["entries"]), names
for e in m["entries"]:
    assert len(z.read(e["path"])) == e["bytes"], e["path"]
print("ok", len(names))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(py)
        .arg(path)
        .output()
        .expect("python3 is installed");
    assert!(
        out.status.success(),
        "python zipfile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("ok {entries}")
    );
}

#[tokio::test]
async fn bundle_opens_with_standard_tools_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let signer = BundleSigner::from_seed([1; 32]);
    let (path, manifest) = sample_bundle(dir.path(), &signer).await;
    check_with_standard_tools(&path, 4);

    // Every manifest checksum is the blake3 of the extracted entry.
    let reader = ZipFileReader::new(&path).await.unwrap();
    for e in &manifest.entries {
        let i = reader
            .file()
            .entries()
            .iter()
            .position(|s| s.filename().as_str().unwrap() == e.path)
            .unwrap();
        let mut data = Vec::new();
        reader
            .reader_without_entry(i)
            .await
            .unwrap()
            .read_to_end(&mut data)
            .await
            .unwrap();
        assert_eq!(data.len() as u64, e.bytes);
        assert_eq!(
            blake3::hash(&data).to_hex().to_string(),
            e.blake3,
            "{}",
            e.path
        );
    }
    assert_eq!(
        manifest.entry("database/users.ndjson").unwrap().rows,
        Some(2)
    );

    let report = verify_file(&path, &signer.verifying_key()).await.unwrap();
    assert_eq!(report.entries, 4);
    assert_eq!(report.tenant_id.as_str(), "acme");
    assert_eq!(report.key_id, signer.key_id());
    assert_eq!(report.manifest, manifest);
}

#[tokio::test]
async fn same_inputs_give_the_same_bytes() {
    let signer = BundleSigner::from_seed([1; 32]);
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (pa, _) = sample_bundle(a.path(), &signer).await;
    let (pb, _) = sample_bundle(b.path(), &signer).await;
    assert_eq!(std::fs::read(pa).unwrap(), std::fs::read(pb).unwrap());
}

async fn expect_code(path: &Path, signer: &BundleSigner, code: &str) {
    match verify_file(path, &signer.verifying_key()).await {
        Ok(_) => panic!("{} verified but should fail with {code}", path.display()),
        Err(e) => assert_eq!(e.code(), code, "{e}"),
    }
}

#[tokio::test]
async fn verify_detects_every_kind_of_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let signer = BundleSigner::from_seed([2; 32]);
    let (good, _) = sample_bundle(dir.path(), &signer).await;
    let p = |n: &str| dir.path().join(n);

    // The copy itself (re-encoded, unchanged content) still verifies.
    rewrite(&good, &p("copy.zip"), |_, d| Some(d), &[]).await;
    verify_file(&p("copy.zip"), &signer.verifying_key())
        .await
        .unwrap();

    // One changed byte in an entry.
    rewrite(
        &good,
        &p("byte.zip"),
        |n, mut d| {
            if n == "database/users.ndjson" {
                d[3] ^= 1;
            }
            Some(d)
        },
        &[],
    )
    .await;
    expect_code(&p("byte.zip"), &signer, "checksum_mismatch").await;

    // Same length, changed byte deep inside the large asset.
    rewrite(
        &good,
        &p("asset.zip"),
        |n, mut d| {
            if n == "assets/img/logo.bin" {
                let i = d.len() - 10;
                d[i] = d[i].wrapping_add(1);
            }
            Some(d)
        },
        &[],
    )
    .await;
    expect_code(&p("asset.zip"), &signer, "checksum_mismatch").await;

    // A changed manifest (e.g. a forged tenant id) breaks the signature.
    rewrite(
        &good,
        &p("manifest.zip"),
        |n, d| {
            if n == MANIFEST_PATH {
                Some(
                    String::from_utf8(d)
                        .unwrap()
                        .replace("\"acme\"", "\"evil\"")
                        .into_bytes(),
                )
            } else {
                Some(d)
            }
        },
        &[],
    )
    .await;
    expect_code(&p("manifest.zip"), &signer, "signature_invalid").await;

    // A bad signature (another key's signature, relabelled with our key id).
    let other = BundleSigner::from_seed([3; 32]);
    rewrite(
        &good,
        &p("sig.zip"),
        |n, d| {
            if n == SIGNATURE_PATH {
                let mut f: SignatureFile = serde_json::from_slice(&d).unwrap();
                let reader_manifest = b"whatever";
                f.signature = other.sign(reader_manifest).signature;
                Some(f.to_bytes())
            } else {
                Some(d)
            }
        },
        &[],
    )
    .await;
    expect_code(&p("sig.zip"), &signer, "signature_invalid").await;

    // The right signature checked with the wrong public key.
    expect_code(&good, &other, "signature_key_mismatch").await;

    // A missing entry.
    rewrite(
        &good,
        &p("missing.zip"),
        |n, d| (n != "database/orders.ndjson").then_some(d),
        &[],
    )
    .await;
    expect_code(&p("missing.zip"), &signer, "entry_missing").await;

    // An extra entry.
    rewrite(
        &good,
        &p("extra.zip"),
        |_, d| Some(d),
        &[("database/secret.ndjson", b"{}\n")],
    )
    .await;
    expect_code(&p("extra.zip"), &signer, "entry_unexpected").await;

    // A traversal entry is refused before anything else.
    rewrite(
        &good,
        &p("evil.zip"),
        |_, d| Some(d),
        &[("../../etc/passwd", b"x")],
    )
    .await;
    expect_code(&p("evil.zip"), &signer, "unsafe_entry").await;

    // No manifest / no signature.
    rewrite(
        &good,
        &p("nomanifest.zip"),
        |n, d| (n != MANIFEST_PATH).then_some(d),
        &[],
    )
    .await;
    expect_code(&p("nomanifest.zip"), &signer, "manifest_missing").await;
    rewrite(
        &good,
        &p("nosig.zip"),
        |n, d| (n != SIGNATURE_PATH).then_some(d),
        &[],
    )
    .await;
    expect_code(&p("nosig.zip"), &signer, "signature_missing").await;

    // Not a zip at all.
    std::fs::write(p("junk.zip"), b"this is not a zip file").unwrap();
    expect_code(&p("junk.zip"), &signer, "bundle_not_zip").await;
}

#[tokio::test]
async fn a_flipped_byte_in_the_raw_archive_never_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let signer = BundleSigner::from_seed([4; 32]);
    let (good, _) = sample_bundle(dir.path(), &signer).await;
    let bytes = std::fs::read(&good).unwrap();
    // Flip bytes spread over the archive (compressed data, headers, directory).
    for frac in [0.01, 0.2, 0.5, 0.8, 0.97, 0.999] {
        let mut b = bytes.clone();
        let i = ((b.len() as f64) * frac) as usize;
        b[i] ^= 0x40;
        let path = dir.path().join(format!("flip-{i}.zip"));
        std::fs::write(&path, &b).unwrap();
        let res = verify_file(&path, &signer.verifying_key()).await;
        assert!(res.is_err(), "flipping byte {i} went unnoticed");
    }
}

#[tokio::test]
async fn size_limit_stops_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big");
    // Incompressible: a xorshift stream.
    let mut x: u64 = 88172645463325252;
    let rand: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&src, rand).unwrap();
    let out = dir.path().join("b.zip");
    let mut w = BundleWriter::create(&out, SystemClock.now(), 64 * 1024)
        .await
        .unwrap();
    let err = w
        .add_file("database/big.ndjson", &src, None, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "bundle_too_large", "{err}");
    w.abort().await;
    assert!(!out.exists());
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
}

#[tokio::test]
async fn writer_refuses_unsafe_and_duplicate_paths() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("f");
    std::fs::write(&src, b"x").unwrap();
    let mut w = BundleWriter::create(&dir.path().join("b.zip"), SystemClock.now(), u64::MAX)
        .await
        .unwrap();
    for bad in ["../x", "/abs", "a//b", "manifest.json", "a\\b", ""] {
        assert_eq!(
            w.add_file(bad, &src, None, None).await.unwrap_err().code(),
            "unsafe_entry_path",
            "{bad}"
        );
    }
    w.add_file("a/b", &src, None, None).await.unwrap();
    assert_eq!(
        w.add_file("a/b", &src, None, None)
            .await
            .unwrap_err()
            .code(),
        "duplicate_entry"
    );
    w.abort().await;
}

/// Entries packed by their producer (a deflate stream, and data stored as
/// it is) are copied in unchanged and still open and verify everywhere.
#[tokio::test]
async fn packed_entries_open_with_standard_tools_and_verify() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let signer = BundleSigner::from_seed([3; 32]);
    let rows: Vec<u8> = (0..200_000u32)
        .flat_map(|i| format!("{{\"id\":{i},\"name\":\"n{i}\"}}\n").into_bytes())
        .collect();
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(1));
    enc.write_all(&rows).unwrap();
    let deflated = enc.finish().unwrap();
    let mut dump = b"PGDMP".to_vec();
    dump.extend((0..1_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    std::fs::write(dir.path().join("rows.deflate"), &deflated).unwrap();
    std::fs::write(dir.path().join("tenant.dump"), &dump).unwrap();
    std::fs::write(dir.path().join("logo.bin"), b"logo").unwrap();

    let hex = |d: &[u8]| blake3::hash(d).to_hex().to_string();
    let out = dir.path().join("export_acme_20260202T020000Z.zip");
    let mut w = BundleWriter::create(&out, base_manifest().exported_at, u64::MAX)
        .await
        .unwrap();
    let packed = Packed {
        method: PackMethod::Deflate,
        crc32: crc32fast::hash(&rows),
        bytes: deflated.len() as u64,
        blake3: hex(&deflated),
    };
    let copied = w
        .add_packed(
            "database/users.ndjson",
            &dir.path().join("rows.deflate"),
            &packed,
            rows.len() as u64,
            &hex(&rows),
            Some(200_000),
            Some("users".into()),
        )
        .await
        .unwrap();
    assert_eq!((copied.bytes, copied.blake3), (packed.bytes, packed.blake3));
    let stored = Packed {
        method: PackMethod::Stored,
        crc32: crc32fast::hash(&dump),
        bytes: dump.len() as u64,
        blake3: hex(&dump),
    };
    w.add_packed(
        "database/tenant.dump",
        &dir.path().join("tenant.dump"),
        &stored,
        dump.len() as u64,
        &hex(&dump),
        None,
        None,
    )
    .await
    .unwrap();
    w.add_file("assets/logo.bin", &dir.path().join("logo.bin"), None, None)
        .await
        .unwrap();
    let (_, manifest) = w.finish_signed(base_manifest(), &signer).await.unwrap();

    check_with_standard_tools(&out, 3);
    let report = verify_file(&out, &signer.verifying_key()).await.unwrap();
    assert_eq!(report.entries, 3);
    assert_eq!(report.manifest, manifest);
    // The stored entry is not compressed again: the archive holds it whole.
    let size = std::fs::metadata(&out).unwrap().len();
    assert!(size > dump.len() as u64 + deflated.len() as u64);
}
