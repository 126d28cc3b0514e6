//! S3Objects against a real S3 server: the shared ObjectStore conformance
//! suite, plus what only S3 can get wrong — multipart uploads, presigned
//! URLs (and the server refusing tampered ones), an outage in the middle of
//! an upload, prefix isolation and keys that try to leave their prefix.
//!
//! Each test starts its own s3s-fs through `scripts/services/s3.sh` (with
//! its own state folder, so tests can stop and restart their server), or
//! uses the server named by `MINIO_ENDPOINT` when that is set; the outage
//! test always starts its own, since it stops it. The lifecycle test starts
//! moto's S3 server (`scripts/services/moto.sh`), because s3s-fs has no
//! lifecycle API. A server that cannot be
//! started fails the test: nothing here is skipped.

use ferry_engine::TenantId;
use ferry_storage::objects_s3::{LifecycleStatus, S3Config, S3Objects, PART_SIZE_BYTES_MIN};
use ferry_workflows::ports::objects::{conformance, Area, DownloadTarget, ObjectKey, ObjectStore};
use minio::s3::response_traits::HasS3Fields;
use minio::s3::segmented_bytes::SegmentedBytes;
use minio::s3::types::S3Api;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

#[allow(dead_code)]
#[path = "../../tests/support/service.rs"]
mod service;

use service::Service;

/// One s3s-fs started by the script, stopped on drop.
struct Server(Service);

impl Server {
    fn start() -> Server {
        let svc = Service::start("s3");
        svc.var("MINIO_ENDPOINT");
        Server(svc)
    }

    fn stop(&self) {
        self.0.stop();
    }

    /// Start again on the same port and data folder.
    fn restart(&self) {
        self.0.restart();
    }

    fn config(&self) -> S3Config {
        S3Config::from_lookup(|k| self.0.env.get(k).cloned())
            .unwrap()
            .unwrap()
    }
}

/// A server for a test: the one in the environment, or a fresh one.
fn server_for_test() -> (Option<Server>, S3Config) {
    match S3Config::from_lookup(|name| std::env::var(name).ok()).unwrap() {
        Some(cfg) => (None, cfg),
        None => {
            let s = Server::start();
            let cfg = s.config();
            (Some(s), cfg)
        }
    }
}

/// Buckets of our own, so tests sharing a server never see each other.
fn unique_buckets(mut cfg: S3Config) -> S3Config {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    cfg.assets_bucket = format!("ferry-test-assets-{}", &tag[..12]);
    cfg.exports_bucket = format!("ferry-test-exports-{}", &tag[..12]);
    cfg
}

async fn connect(cfg: S3Config) -> S3Objects {
    S3Objects::connect(cfg)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the S3 server: {e}"))
}

fn key(s: &str) -> ObjectKey {
    ObjectKey::parse(s).unwrap()
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

async fn read_hash(store: &S3Objects, area: Area, k: &ObjectKey) -> Option<(u64, blake3::Hash)> {
    let mut r = store.open(area, k).await.expect("open")?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let got = r.read(&mut buf).await.expect("read");
        if got == 0 {
            break;
        }
        h.update(&buf[..got]);
        n += got as u64;
    }
    Some((n, h.finalize()))
}

#[tokio::test]
async fn passes_the_object_store_conformance_suite() {
    let (_server, cfg) = server_for_test();
    let store = connect(unique_buckets(cfg)).await;
    let scratch = tempfile::tempdir().unwrap();
    conformance::run_all(&store, scratch.path()).await;
}

#[tokio::test]
async fn buckets_are_created_once_and_lifecycle_is_tolerated() {
    let (server, cfg) = server_for_test();
    let cfg = unique_buckets(cfg);
    let first = connect(cfg.clone()).await;
    // Connecting again finds the buckets and must not fail.
    let second = connect(cfg).await;
    assert_eq!(first.bucket(Area::Exports), second.bucket(Area::Exports));
    if server.is_some() {
        // s3s-fs has no bucket lifecycle API: ferry carries on regardless,
        // and expiry rests on the engine's timer.
        match second.lifecycle() {
            LifecycleStatus::Unsupported { reason } => {
                assert!(reason.contains("s3_not_implemented"), "{reason}")
            }
            other => panic!("s3s-fs unexpectedly accepted a lifecycle rule: {other:?}"),
        }
    }
}

/// Where the server has a bucket lifecycle API (moto's S3 server; s3s-fs
/// has none), the exports bucket gets ferry's backstop rule, read back here
/// through the API: objects expire after the configured days, incomplete
/// multipart uploads are aborted after a day. Connecting again keeps one
/// rule. The assets and backups buckets get none: a tenant's assets are
/// never expired, and backups have their own retention timer.
#[tokio::test]
async fn the_lifecycle_backstop_is_set_where_the_server_has_the_api() {
    let moto = Service::start("moto");
    let mut cfg = unique_buckets(
        S3Config::from_lookup(|k| moto.env.get(k).cloned())
            .unwrap()
            .unwrap(),
    );
    cfg.backups_bucket = format!("{}-backups", cfg.assets_bucket);
    cfg.exports_expiry_days = 3;
    let store = connect(cfg.clone()).await;
    assert_eq!(
        store.lifecycle(),
        &LifecycleStatus::Applied { expiry_days: 3 }
    );
    let again = connect(cfg.clone()).await;
    assert_eq!(again.lifecycle(), store.lifecycle());

    // Read back as the server's own XML (the minio crate's parser wants a
    // text in `<Prefix>`, which moto writes as an empty element).
    let got = store
        .client()
        .get_bucket_lifecycle(&cfg.exports_bucket)
        .unwrap()
        .build()
        .send()
        .await
        .expect("the exports bucket has a lifecycle configuration");
    let xml: String = String::from_utf8_lossy(got.body())
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    assert_eq!(xml.matches("<Rule>").count(), 1, "{xml}");
    for part in [
        "<ID>ferry-exports-backstop</ID>",
        "<Status>Enabled</Status>",
        "<Expiration><Days>3</Days></Expiration>",
        "<AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation>\
         </AbortIncompleteMultipartUpload>",
    ] {
        assert!(xml.contains(part), "{part} in {xml}");
    }
    for bucket in [&cfg.assets_bucket, &cfg.backups_bucket] {
        let got = store
            .client()
            .get_bucket_lifecycle(bucket)
            .unwrap()
            .build()
            .send()
            .await;
        let none = match &got {
            Err(e) => format!("{e:?}").contains("NoSuchLifecycleConfiguration"),
            Ok(r) => !String::from_utf8_lossy(r.body()).contains("<Rule>"),
        };
        assert!(none, "{bucket} has no lifecycle rule: {got:?}");
    }
}

#[tokio::test]
async fn large_files_go_up_in_parts_and_come_back_whole() {
    let (_server, cfg) = server_for_test();
    let mut cfg = unique_buckets(cfg);
    cfg.part_size_bytes = PART_SIZE_BYTES_MIN;
    let store = connect(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("bundle.zip");
    // Three full parts and a short last one.
    let data = pattern(3 * PART_SIZE_BYTES_MIN as usize + 12_345, 7);
    std::fs::write(&src, &data).unwrap();
    let k = key("acme/exports/0190/export_acme.zip");
    let meta = store.put_file(Area::Exports, &k, &src).await.unwrap();
    assert_eq!(meta.size, data.len() as u64);
    assert_eq!(
        read_hash(&store, Area::Exports, &k).await,
        Some((data.len() as u64, blake3::hash(&data)))
    );
    let head = store.head(Area::Exports, &k).await.unwrap().unwrap();
    assert_eq!(head.size, data.len() as u64);
    assert!(head.modified.is_some());
    // An exact multiple of the part size takes the multipart path too.
    let exact = pattern(2 * PART_SIZE_BYTES_MIN as usize, 9);
    std::fs::write(&src, &exact).unwrap();
    store.put_file(Area::Exports, &k, &src).await.unwrap();
    assert_eq!(
        read_hash(&store, Area::Exports, &k).await,
        Some((exact.len() as u64, blake3::hash(&exact)))
    );
    // An empty file is an empty object.
    std::fs::write(&src, b"").unwrap();
    let meta = store.put_file(Area::Exports, &k, &src).await.unwrap();
    assert_eq!(meta.size, 0);
    assert_eq!(
        read_hash(&store, Area::Exports, &k).await,
        Some((0, blake3::hash(b"")))
    );
    let missing = store
        .put_file(Area::Exports, &k, &dir.path().join("nope"))
        .await
        .unwrap_err();
    assert_eq!(missing.code, "source_missing");
    assert!(!missing.retryable);
}

#[tokio::test]
async fn presigned_urls_serve_over_http_and_tampered_ones_are_refused() {
    let (_server, cfg) = server_for_test();
    let store = connect(unique_buckets(cfg)).await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("b.zip");
    let data = pattern(200_000, 3);
    std::fs::write(&src, &data).unwrap();
    let k = key("acme/exports/e1/export_acme.zip");
    store.put_file(Area::Exports, &k, &src).await.unwrap();
    let other_src = dir.path().join("o.zip");
    std::fs::write(&other_src, b"globex's bundle").unwrap();
    let other = key("globex/exports/e2/export_globex.zip");
    store
        .put_file(Area::Exports, &other, &other_src)
        .await
        .unwrap();

    let url = match store
        .download_target(Area::Exports, &k, Duration::from_secs(300))
        .await
        .unwrap()
    {
        DownloadTarget::Redirect(u) => u,
        other => panic!("expected a redirect, got {other:?}"),
    };
    assert!(
        url.starts_with("http://127.0.0.1:") || url.starts_with("http"),
        "{url}"
    );
    assert!(url.contains("X-Amz-Signature="), "{url}");
    assert!(url.contains("X-Amz-Expires=300"), "{url}");

    let http = reqwest::Client::new();
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &data[..]);

    // Without the query string there is no signature at all.
    let bare = url.split('?').next().unwrap().to_owned();
    // Each tampering must be refused by the S3 server itself.
    let flip_sig = {
        let (head, sig) = url.rsplit_once("X-Amz-Signature=").unwrap();
        let mut sig: Vec<char> = sig.chars().collect();
        sig[0] = if sig[0] == 'a' { 'b' } else { 'a' };
        format!(
            "{head}X-Amz-Signature={}",
            sig.into_iter().collect::<String>()
        )
    };
    let other_object = url.replace(
        "acme/exports/e1/export_acme.zip",
        "globex/exports/e2/export_globex.zip",
    );
    let longer_life = url.replace("X-Amz-Expires=300", "X-Amz-Expires=600000");
    for (what, bad) in [
        ("no signature", bare),
        ("altered signature", flip_sig),
        ("another object", other_object),
        ("longer expiry", longer_life),
    ] {
        let resp = http.get(&bad).send().await.unwrap();
        let status = resp.status();
        let body = resp.bytes().await.unwrap();
        assert!(
            status == 403 || status == 400,
            "{what}: the server answered {status} to {bad}"
        );
        assert!(
            body.as_ref() != &data[..] && !body.starts_with(b"globex's"),
            "{what}: the server served data"
        );
    }

    // An expired link is refused too.
    let short = match store
        .download_target(Area::Exports, &k, Duration::from_secs(1))
        .await
        .unwrap()
    {
        DownloadTarget::Redirect(u) => u,
        other => panic!("expected a redirect, got {other:?}"),
    };
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let status = http.get(&short).send().await.unwrap().status();
    assert!(
        status == 403 || status == 400,
        "expired URL answered {status}"
    );

    let missing = store
        .download_target(
            Area::Exports,
            &key("acme/none.zip"),
            Duration::from_secs(60),
        )
        .await
        .unwrap_err();
    assert_eq!(missing.code, "object_not_found");
}

/// A TCP relay in front of the S3 server that counts the bytes sent to it
/// and runs `on_threshold` once when they pass `threshold`: a way to stop
/// the server at a known point in an upload.
async fn relay(
    upstream: String,
    threshold: u64,
    on_threshold: Arc<dyn Fn() + Send + Sync>,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let fired = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let upstream = upstream.clone();
            let sent = sent.clone();
            let fired = fired.clone();
            let on_threshold = on_threshold.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return; // dropping `client` closes it: the server is down
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if tokio::io::AsyncWriteExt::write_all(&mut sw, &buf[..n])
                            .await
                            .is_err()
                        {
                            break;
                        }
                        let total = sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                        if total >= threshold && !fired.swap(true, Ordering::SeqCst) {
                            let f = on_threshold.clone();
                            tokio::task::spawn_blocking(move || f()).await.unwrap();
                        }
                    }
                    let _ = tokio::io::AsyncWriteExt::shutdown(&mut sw).await;
                };
                let down = async {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    let _ = tokio::io::AsyncWriteExt::shutdown(&mut cw).await;
                };
                tokio::join!(up, down);
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn server_stopped_during_a_multipart_upload_is_retryable_and_the_retry_succeeds() {
    // Always our own server: this test stops it.
    let server = Arc::new(Server::start());
    let mut cfg = unique_buckets(server.config());
    cfg.part_size_bytes = PART_SIZE_BYTES_MIN;
    let upstream = cfg
        .endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    // Stop the server once 1.5 parts have gone through: mid-upload.
    let stopper = server.clone();
    let threshold = PART_SIZE_BYTES_MIN + PART_SIZE_BYTES_MIN / 2;
    cfg.endpoint = relay(upstream, threshold, Arc::new(move || stopper.stop())).await;
    let store = connect(cfg).await;

    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.zip");
    let data = pattern(4 * PART_SIZE_BYTES_MIN as usize + 1000, 11);
    std::fs::write(&src, &data).unwrap();
    let k = key("acme/exports/outage/export_acme.zip");

    let err = store.put_file(Area::Exports, &k, &src).await.unwrap_err();
    assert!(err.retryable, "{err:?}");
    assert_eq!(err.code, "s3_unavailable", "{err:?}");
    // It broke mid-upload, on a part, not before or after.
    assert!(err.message.starts_with("upload_part:"), "{err:?}");
    // While the server is down every operation is a retryable outage.
    let down = store.head(Area::Exports, &k).await.unwrap_err();
    assert!(down.retryable && down.code == "s3_unavailable", "{down:?}");

    server.restart();
    // Nothing partial became visible.
    assert!(store.head(Area::Exports, &k).await.unwrap().is_none());
    let meta = store.put_file(Area::Exports, &k, &src).await.unwrap();
    assert_eq!(meta.size, data.len() as u64);
    assert_eq!(
        read_hash(&store, Area::Exports, &k).await,
        Some((data.len() as u64, blake3::hash(&data)))
    );
}

#[tokio::test]
async fn acme_never_lists_acme2_and_pages_stay_in_the_prefix() {
    let (_server, cfg) = server_for_test();
    let store = connect(unique_buckets(cfg)).await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("f");
    std::fs::write(&src, b"data").unwrap();
    for k in [
        "acme/logo.png",
        "acme/z/last.png",
        "acme2/logo.png",
        "acme2/acme/logo.png",
        "acme-corp/logo.png",
        "acm/e.png",
    ] {
        store.put_file(Area::Assets, &key(k), &src).await.unwrap();
    }
    let acme = TenantId::parse("acme").unwrap();
    let page = store.list(Area::Assets, &acme, None, 100).await.unwrap();
    let keys: Vec<_> = page.objects.iter().map(|o| o.key.to_string()).collect();
    assert_eq!(keys, vec!["acme/logo.png", "acme/z/last.png"]);
    assert!(page.next.is_none());
    assert!(page.objects.iter().all(|o| o.size == 4));

    // Paging one by one ends inside the prefix.
    let first = store.list(Area::Assets, &acme, None, 1).await.unwrap();
    assert_eq!(first.objects.len(), 1);
    let second = store
        .list(Area::Assets, &acme, first.next.as_ref(), 1)
        .await
        .unwrap();
    assert_eq!(second.objects[0].key.as_str(), "acme/z/last.png");
    assert!(second.next.is_none(), "{:?}", second.next);

    // A cursor from another tenant is refused, not followed.
    let err = store
        .list(Area::Assets, &acme, Some(&key("acme2/logo.png")), 10)
        .await
        .unwrap_err();
    assert_eq!(err.code, "invalid_object_key");
    assert!(!err.retryable);
}

#[tokio::test]
async fn keys_that_escape_the_prefix_are_refused() {
    for bad in [
        "../acme2/x",
        "acme/../acme2/x",
        "/acme/x",
        "acme//x",
        "acme/./x",
        "acme\\..\\acme2\\x",
        "acme/x/..",
    ] {
        assert!(ObjectKey::parse(bad).is_err(), "{bad}");
    }

    // Objects another tool stored under raw keys that climb out of the
    // prefix are never listed for the tenant.
    let (_server, cfg) = server_for_test();
    let store = connect(unique_buckets(cfg)).await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("f");
    std::fs::write(&src, b"mine").unwrap();
    store
        .put_file(Area::Assets, &key("acme/ok.png"), &src)
        .await
        .unwrap();
    let bucket = store.bucket(Area::Assets).to_owned();
    for raw in [
        "acme/../acme2/stolen.png",
        "acme//double.png",
        "acme/a/./b.png",
    ] {
        // The server may refuse or normalise such a key; either way the
        // tenant's listing must not contain it.
        let _ = store
            .client()
            .put_object(&bucket, raw, SegmentedBytes::from("raw".to_owned()))
            .unwrap()
            .build()
            .send()
            .await;
    }
    let acme = TenantId::parse("acme").unwrap();
    let page = store.list(Area::Assets, &acme, None, 100).await.unwrap();
    for o in &page.objects {
        assert!(o.key.is_under(&acme), "{}", o.key);
        assert!(ObjectKey::parse(o.key.as_str()).is_ok(), "{}", o.key);
        assert!(
            !o.key.as_str().contains("..") && !o.key.as_str().contains("//"),
            "{}",
            o.key
        );
    }
    assert!(page.objects.iter().any(|o| o.key.as_str() == "acme/ok.png"));
}

#[tokio::test]
async fn wrong_credentials_are_denied_and_a_dead_endpoint_is_an_outage() {
    let (_server, cfg) = server_for_test();
    let mut wrong = unique_buckets(cfg.clone());
    wrong.secret_key = "not-the-secret-key".into();
    let err = S3Objects::connect(wrong).await.unwrap_err();
    assert_eq!(err.code, "s3_denied", "{err:?}");
    assert!(!err.retryable);
    assert!(!err.message.contains("not-the-secret-key"));

    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut dead = unique_buckets(cfg);
    dead.endpoint = format!("http://127.0.0.1:{port}");
    let err = S3Objects::connect(dead).await.unwrap_err();
    assert_eq!(err.code, "s3_unavailable", "{err:?}");
    assert!(err.retryable);
}
