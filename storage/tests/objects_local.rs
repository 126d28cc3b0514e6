//! LocalObjects: the shared ObjectStore conformance suite, plus what only a
//! filesystem store can get wrong (traversal through odd keys and links,
//! temporary files, foreign files in the tree).

use ferry_engine::TenantId;
use ferry_storage::objects_local::LocalObjects;
use ferry_workflows::ports::objects::{conformance, Area, DownloadTarget, ObjectKey, ObjectStore};
use std::time::Duration;

fn store() -> (tempfile::TempDir, LocalObjects) {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalObjects::new(dir.path().join("objects")).unwrap();
    (dir, s)
}

#[tokio::test]
async fn passes_the_object_store_conformance_suite() {
    let (dir, s) = store();
    let scratch = dir.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    conformance::run_all(&s, &scratch).await;
}

#[tokio::test]
async fn acme_never_lists_acme2() {
    let (dir, s) = store();
    let src = dir.path().join("f");
    std::fs::write(&src, b"data").unwrap();
    for k in ["acme/logo.png", "acme2/logo.png", "acme2/acme/logo.png"] {
        s.put_file(Area::Assets, &ObjectKey::parse(k).unwrap(), &src)
            .await
            .unwrap();
    }
    let acme = TenantId::parse("acme").unwrap();
    let page = s.list(Area::Assets, &acme, None, 100).await.unwrap();
    let keys: Vec<_> = page.objects.iter().map(|o| o.key.to_string()).collect();
    assert_eq!(keys, vec!["acme/logo.png"]);
    assert!(page.next.is_none());
}

#[test]
fn traversal_keys_never_become_keys() {
    for bad in [
        "../etc/passwd",
        "acme/../acme2/x",
        "/acme/x",
        "acme//x",
        "acme/./x",
        "acme\\..\\x",
        "acme/x/..",
    ] {
        assert!(ObjectKey::parse(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn keys_map_inside_their_area() {
    let (_dir, s) = store();
    let k = ObjectKey::parse("acme/a/b.txt").unwrap();
    let p = s.path_of(Area::Exports, &k);
    assert!(p.starts_with(s.area_dir(Area::Exports).join("acme")));
}

#[cfg(unix)]
#[tokio::test]
async fn links_out_of_the_store_are_refused_and_not_listed() {
    let (dir, s) = store();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), b"other tenant").unwrap();
    let acme_dir = s.area_dir(Area::Assets).join("acme");
    std::fs::create_dir_all(&acme_dir).unwrap();
    std::os::unix::fs::symlink(&outside, acme_dir.join("link")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), acme_dir.join("file-link")).unwrap();

    let via_dir = ObjectKey::parse("acme/link/secret.txt").unwrap();
    assert!(s.open(Area::Assets, &via_dir).await.is_err());
    assert!(s.head(Area::Assets, &via_dir).await.is_err());
    let via_file = ObjectKey::parse("acme/file-link").unwrap();
    assert!(s.open(Area::Assets, &via_file).await.is_err());
    let src = dir.path().join("src");
    std::fs::write(&src, b"x").unwrap();
    assert!(
        s.put_file(Area::Assets, &via_dir, &src).await.is_err(),
        "writing through a link"
    );
    assert!(std::fs::read(outside.join("secret.txt")).unwrap() == b"other tenant");

    let acme = TenantId::parse("acme").unwrap();
    let page = s.list(Area::Assets, &acme, None, 100).await.unwrap();
    assert!(
        page.objects.is_empty(),
        "links are not objects: {:?}",
        page.objects
    );
}

#[tokio::test]
async fn put_leaves_no_temporary_files_and_serves_local_files() {
    let (dir, s) = store();
    let src = dir.path().join("bundle.zip");
    std::fs::write(&src, vec![1u8; 10_000]).unwrap();
    let k = ObjectKey::parse("acme/0190/export_acme.zip").unwrap();
    s.put_file(Area::Exports, &k, &src).await.unwrap();
    assert_eq!(std::fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
    match s
        .download_target(Area::Exports, &k, Duration::from_secs(60))
        .await
        .unwrap()
    {
        DownloadTarget::LocalFile(p) => assert_eq!(std::fs::read(p).unwrap().len(), 10_000),
        other => panic!("expected a local file, got {other:?}"),
    }
    let missing = ObjectKey::parse("acme/0190/none.zip").unwrap();
    assert_eq!(
        s.download_target(Area::Exports, &missing, Duration::from_secs(60))
            .await
            .unwrap_err()
            .code,
        "object_not_found"
    );
    // Deleting the last object tidies its empty folders, not the tenant's.
    assert!(s.delete(Area::Exports, &k).await.unwrap());
    assert!(!s.area_dir(Area::Exports).join("acme/0190").exists());
}
