//! SqliteAudit: a linear hash chain, filters and paging, tamper detection,
//! and append-only enforced by the database.

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use ferry_engine::TenantId;
use ferry_storage::audit_anchor::{AnchoredAudit, ANCHOR_FILE};
use ferry_storage::audit_sqlite::SqliteAudit;
use ferry_workflows::bundle::sign::BundleSigner;
use ferry_workflows::ports::audit::{
    chain_hash, AuditEntry, AuditLog, AuditQuery, AuditRecord, ChainReport, ChainVerifier, Order,
    GENESIS_HASH,
};
use serde_json::json;
use std::sync::Arc;

fn entry(i: u32, tenant: &str, action: &str) -> AuditEntry {
    let at = chrono::DateTime::from_timestamp(1_770_000_000 + i as i64, 123_456_789).unwrap();
    let mut e = AuditEntry::new(
        at,
        format!("user-{i}"),
        Some(TenantId::parse(tenant).unwrap()),
        action,
        "export",
        format!("wf-{i}"),
    )
    .details(json!({"sizeBytes": i * 10, "checksum": "ab", "nested": {"b": 1, "a": [1, 2]}}));
    e.ip = Some("127.0.0.1".into());
    e.user_agent = Some("curl/8".into());
    e
}

async fn filled(n: u32) -> (tempfile::TempDir, SqliteAudit) {
    let dir = tempfile::tempdir().unwrap();
    let audit = SqliteAudit::open(dir.path().join("platform.sqlite")).unwrap();
    for i in 1..=n {
        let tenant = if i % 2 == 0 { "acme" } else { "globex" };
        let action = if i % 3 == 0 {
            "EXPORT_COMPLETED"
        } else {
            "EXPORT_PLANNED"
        };
        audit.append(entry(i, tenant, action)).await.unwrap();
    }
    (dir, audit)
}

fn raw(dir: &tempfile::TempDir) -> SqliteConnection {
    SqliteConnection::establish(dir.path().join("platform.sqlite").to_str().unwrap()).unwrap()
}

#[tokio::test]
async fn appends_form_a_linear_chain_that_verifies() {
    let (dir, audit) = filled(0).await;
    let r1 = audit.append(entry(1, "acme", "A")).await.unwrap();
    let r2 = audit.append(entry(2, "acme", "B")).await.unwrap();
    assert_eq!((r1.seq, r2.seq), (1, 2));
    assert_eq!(r1.prev_hash, GENESIS_HASH);
    assert_eq!(r2.prev_hash, r1.hash);
    // Sub-microsecond precision is dropped so the stored entry hashes the same.
    assert_eq!(r1.entry.at.timestamp_subsec_nanos(), 123_456_000);
    let listed = audit.list(&AuditQuery::default()).await.unwrap();
    assert_eq!(listed, vec![r1, r2]);
    assert_eq!(
        audit.verify_chain().await.unwrap(),
        ChainReport {
            entries: 2,
            ok: true,
            first_broken_seq: None,
            anchored_seq: None,
            anchor_problem: None,
        }
    );

    // Reopening sees the same chain and continues it.
    drop(audit);
    let audit = SqliteAudit::open(dir.path().join("platform.sqlite")).unwrap();
    let r3 = audit.append(entry(3, "acme", "C")).await.unwrap();
    assert_eq!(r3.seq, 3);
    assert!(audit.verify_chain().await.unwrap().ok);
}

#[tokio::test]
async fn concurrent_appends_stay_linear() {
    let (_dir, audit) = filled(0).await;
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let a = audit.clone();
            tokio::spawn(async move { a.append(entry(i, "acme", "X")).await.unwrap() })
        })
        .collect();
    let mut seqs: Vec<u64> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap().seq)
        .collect();
    seqs.sort();
    assert_eq!(seqs, (1..=40).collect::<Vec<_>>());
    assert_eq!(audit.verify_chain().await.unwrap().entries, 40);
    assert!(audit.verify_chain().await.unwrap().ok);
}

/// Appends that arrive together are written together (one transaction)
/// and each gets exactly the record stored for it, chained in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_committed_together_get_their_own_records_in_chain_order() {
    let (_dir, audit) = filled(0).await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let a = audit.clone();
            let tenant = ["acme", "globex"][i as usize % 2];
            tokio::spawn(async move { a.append(entry(i, tenant, "X")).await.unwrap() })
        })
        .collect();
    let mut got: Vec<AuditRecord> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    got.sort_by_key(|r| r.seq);
    assert_eq!(
        got.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=200).collect::<Vec<_>>()
    );
    for pair in got.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    let stored = audit
        .list(&AuditQuery {
            limit: 500,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let key = |r: &AuditRecord| (r.seq, r.hash.clone(), r.entry.entity_id.clone());
    let mut stored: Vec<_> = stored.iter().map(key).collect();
    stored.sort();
    assert_eq!(stored, got.iter().map(key).collect::<Vec<_>>());
    let report = audit.verify_chain().await.unwrap();
    assert_eq!((report.ok, report.entries), (true, 200));
}

/// Anchors of appends that finish together are shared, and the chain's
/// last entry is always anchored once every append has returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_anchored_appends_leave_the_last_entry_anchored() {
    let dir = tempfile::tempdir().unwrap();
    let audit = Arc::new(anchored(&dir));
    assert!(audit.anchor_if_missing().await.unwrap());
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let a = audit.clone();
            tokio::spawn(async move { a.append(entry(i, "acme", "X")).await.unwrap() })
        })
        .collect();
    futures::future::join_all(tasks).await;
    let report = audit.verify_chain().await.unwrap();
    assert_eq!(
        (report.ok, report.entries, report.anchored_seq),
        (true, 100, Some(100))
    );
}

#[tokio::test]
async fn list_filters_and_pages() {
    let (_dir, audit) = filled(12).await;
    let acme = TenantId::parse("acme").unwrap();
    let q = AuditQuery {
        tenant: Some(acme.clone()),
        ..Default::default()
    };
    let all = audit.list(&q).await.unwrap();
    // A tenant's entries are numbered in its own chain.
    assert_eq!(
        all.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    assert!(all.iter().all(|r| r.entry.tenant.as_ref() == Some(&acme)));
    assert_eq!(
        all.iter()
            .map(|r| r.entry.entity_id.as_str())
            .collect::<Vec<_>>(),
        vec!["wf-2", "wf-4", "wf-6", "wf-8", "wf-10", "wf-12"]
    );

    let q = AuditQuery {
        tenant: Some(acme.clone()),
        action: Some("EXPORT_COMPLETED".into()),
        ..Default::default()
    };
    assert_eq!(
        audit
            .list(&q)
            .await
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>(),
        vec![3, 6]
    );
    let q = AuditQuery {
        tenant: Some(acme.clone()),
        after: Some(2),
        limit: 2,
        ..Default::default()
    };
    assert_eq!(
        audit
            .list(&q)
            .await
            .unwrap()
            .iter()
            .map(|r| r.entry.entity_id.clone())
            .collect::<Vec<_>>(),
        vec!["wf-6", "wf-8"]
    );

    let page1 = audit
        .list(&AuditQuery {
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page1.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    let page2 = audit
        .list(&AuditQuery {
            limit: 5,
            after: Some(5),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page2.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![6, 7, 8, 9, 10]
    );
    let newest = audit
        .list(&AuditQuery {
            limit: 3,
            order: Order::Desc,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        newest.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![12, 11, 10]
    );
    let older = audit
        .list(&AuditQuery {
            limit: 3,
            order: Order::Desc,
            after: Some(10),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        older.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![9, 8, 7]
    );
    let q = AuditQuery {
        entity_id: Some("wf-7".into()),
        ..Default::default()
    };
    assert_eq!(audit.list(&q).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_database_refuses_update_and_delete() {
    let (dir, audit) = filled(3).await;
    let mut c = raw(&dir);
    let up =
        diesel::sql_query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2").execute(&mut c);
    assert!(up.unwrap_err().to_string().contains("append-only"));
    let del = diesel::sql_query("DELETE FROM audit_log WHERE seq = 3").execute(&mut c);
    assert!(del.unwrap_err().to_string().contains("append-only"));
    assert_eq!(
        audit.verify_chain().await.unwrap(),
        ChainReport {
            entries: 3,
            ok: true,
            first_broken_seq: None,
            anchored_seq: None,
            anchor_problem: None,
        }
    );
}

/// Drop the triggers (as an attacker with file access could), then tamper.
fn tamper(dir: &tempfile::TempDir, sql: &str) {
    let mut c = raw(dir);
    diesel::sql_query("DROP TRIGGER audit_log_no_update")
        .execute(&mut c)
        .unwrap();
    diesel::sql_query("DROP TRIGGER audit_log_no_delete")
        .execute(&mut c)
        .unwrap();
    diesel::sql_query(sql).execute(&mut c).unwrap();
}

#[tokio::test]
async fn verify_finds_a_changed_field() {
    let (dir, audit) = filled(5).await;
    tamper(&dir, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3");
    let r = audit.verify_chain().await.unwrap();
    assert_eq!(
        r,
        ChainReport {
            entries: 5,
            ok: false,
            first_broken_seq: Some(3),
            anchored_seq: None,
            anchor_problem: None,
        }
    );
}

#[tokio::test]
async fn verify_finds_changed_details() {
    let (dir, audit) = filled(5).await;
    tamper(&dir, "UPDATE audit_log SET details = replace(details, '\"checksum\":\"ab\"', '\"checksum\":\"cd\"') WHERE seq = 4");
    assert_eq!(
        audit.verify_chain().await.unwrap().first_broken_seq,
        Some(4)
    );
}

#[tokio::test]
async fn verify_finds_a_deleted_entry() {
    let (dir, audit) = filled(5).await;
    tamper(&dir, "DELETE FROM audit_log WHERE seq = 2");
    let r = audit.verify_chain().await.unwrap();
    assert!(!r.ok);
    assert_eq!(r.first_broken_seq, Some(2));
}

#[tokio::test]
async fn verify_finds_a_recomputed_hash_without_relinking() {
    // Even an attacker who recomputes one entry's hash breaks the next link.
    let (dir, audit) = filled(4).await;
    tamper(&dir, "UPDATE audit_log SET actor = 'mallory', hash = '1111111111111111111111111111111111111111111111111111111111111111' WHERE seq = 2");
    assert_eq!(
        audit.verify_chain().await.unwrap().first_broken_seq,
        Some(2)
    );
}

#[tokio::test]
async fn verify_finds_an_unreadable_row() {
    let (dir, audit) = filled(3).await;
    tamper(&dir, "UPDATE audit_log SET at = 'yesterday' WHERE seq = 1");
    assert_eq!(
        audit.verify_chain().await.unwrap().first_broken_seq,
        Some(1)
    );
}

/// The log as the server runs it: anchored in the data folder.
fn anchored(dir: &tempfile::TempDir) -> AnchoredAudit {
    let inner = SqliteAudit::open(dir.path().join("platform.sqlite")).unwrap();
    AnchoredAudit::new(
        Arc::new(inner),
        dir.path().join(ANCHOR_FILE),
        BundleSigner::from_seed([9; 32]),
        Arc::new(ferry_engine::SystemClock),
    )
}

/// Six entries, alternating between `acme` and `globex`, anchored.
async fn filled_anchored() -> (tempfile::TempDir, AnchoredAudit) {
    let dir = tempfile::tempdir().unwrap();
    let audit = anchored(&dir);
    assert!(audit.anchor_if_missing().await.unwrap());
    for i in 1..=6 {
        let tenant = if i % 2 == 0 { "acme" } else { "globex" };
        audit.append(entry(i, tenant, "X")).await.unwrap();
    }
    let report = audit.verify_chain().await.unwrap();
    assert_eq!((report.ok, report.anchored_seq), (true, Some(6)));
    (dir, audit)
}

/// Lift every append-only trigger, as an attacker who can write the
/// database file can.
fn drop_triggers(c: &mut SqliteConnection) {
    for t in [
        "audit_log_no_update",
        "audit_log_no_delete",
        "audit_tenant_chain_no_update",
        "audit_tenant_chain_no_delete",
    ] {
        diesel::sql_query(format!("DROP TRIGGER {t}"))
            .execute(c)
            .unwrap();
    }
}

#[tokio::test]
async fn audit_truncation_after_dropping_triggers_fails_verify() {
    let (dir, audit) = filled_anchored().await;
    let mut c = raw(&dir);
    drop_triggers(&mut c);
    diesel::sql_query("DELETE FROM audit_tenant_chain WHERE seq > 4")
        .execute(&mut c)
        .unwrap();
    diesel::sql_query("DELETE FROM audit_log WHERE seq > 4")
        .execute(&mut c)
        .unwrap();

    // The chain alone is intact as far as it goes ...
    let bare = SqliteAudit::open(dir.path().join("platform.sqlite")).unwrap();
    assert!(bare.verify_chain().await.unwrap().ok);
    // ... but it no longer reaches the anchored head.
    let report = audit.verify_chain().await.unwrap();
    assert_eq!(
        (report.ok, report.first_broken_seq, report.entries),
        (false, Some(5), 4)
    );
    // Nor does it vouch for the tenants' entries past the break: acme's
    // third entry was removed, so the first it cannot vouch for is its third.
    let acme = TenantId::parse("acme").unwrap();
    let tenant = audit.verify_tenant(&acme).await.unwrap();
    assert_eq!(
        (tenant.ok, tenant.first_broken_seq, tenant.entries),
        (false, Some(3), 2)
    );

    // Appends after the cut, even by a restarted server and past the
    // anchored position, do not anchor the cut chain.
    drop(audit);
    let audit = anchored(&dir);
    assert!(!audit.anchor_if_missing().await.unwrap());
    for i in 7..=10 {
        audit.append(entry(i, "acme", "X")).await.unwrap();
    }
    let report = audit.verify_chain().await.unwrap();
    assert_eq!((report.ok, report.first_broken_seq), (false, Some(6)));
}

/// Rewrite every entry (another actor) and rehash the whole chain, the
/// tenants' chains included, consistently.
fn rewrite_whole_chain(c: &mut SqliteConnection, records: &[AuditRecord]) {
    let mut prev = GENESIS_HASH.to_owned();
    let mut tenant_prev: std::collections::HashMap<String, (i64, String)> = Default::default();
    for r in records {
        let mut e = r.entry.clone();
        e.actor = "mallory".into();
        let hash = chain_hash(&prev, r.seq, &e);
        diesel::sql_query(format!(
            "UPDATE audit_log SET actor = 'mallory', prev_hash = '{prev}', hash = '{hash}' \
             WHERE seq = {}",
            r.seq
        ))
        .execute(c)
        .unwrap();
        prev = hash;
        let t = e.tenant.clone().unwrap().to_string();
        let (n, p) = tenant_prev
            .get(&t)
            .cloned()
            .unwrap_or((0, GENESIS_HASH.to_owned()));
        let th = chain_hash(&p, n as u64 + 1, &e);
        diesel::sql_query(format!(
            "UPDATE audit_tenant_chain SET prev_hash = '{p}', hash = '{th}' WHERE seq = {}",
            r.seq
        ))
        .execute(c)
        .unwrap();
        tenant_prev.insert(t, (n + 1, th));
    }
}

#[tokio::test]
async fn audit_rewrite_of_whole_chain_fails_verify() {
    let (dir, audit) = filled_anchored().await;
    let records = audit.list(&AuditQuery::default()).await.unwrap();
    let mut c = raw(&dir);
    drop_triggers(&mut c);
    rewrite_whole_chain(&mut c, &records);

    let bare = SqliteAudit::open(dir.path().join("platform.sqlite")).unwrap();
    assert!(bare.verify_chain().await.unwrap().ok);
    let acme = TenantId::parse("acme").unwrap();
    assert!(bare.verify_tenant(&acme).await.unwrap().ok);
    // Against the anchor, the entry it names has another hash.
    let report = audit.verify_chain().await.unwrap();
    assert_eq!((report.ok, report.first_broken_seq), (false, Some(6)));
    assert!(!audit.verify_tenant(&acme).await.unwrap().ok);
}

#[tokio::test]
async fn a_missing_or_forged_anchor_fails_verify() {
    let (dir, audit) = filled_anchored().await;
    let path = dir.path().join(ANCHOR_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    // An anchor moved back to an earlier entry without the key.
    std::fs::write(&path, text.replace("\"seq\": 6", "\"seq\": 4")).unwrap();
    let report = audit.verify_chain().await.unwrap();
    assert_eq!(
        (report.ok, report.anchor_problem.as_deref()),
        (false, Some("anchor_invalid"))
    );
    std::fs::remove_file(&path).unwrap();
    let report = audit.verify_chain().await.unwrap();
    assert_eq!(
        (report.ok, report.anchor_problem.as_deref()),
        (false, Some("anchor_missing"))
    );
}

#[tokio::test]
async fn audit_verify_reveals_nothing_of_other_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let audit = anchored(&dir);
    audit.anchor_if_missing().await.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    let q = AuditQuery {
        tenant: Some(acme.clone()),
        ..Default::default()
    };
    for i in 1..=3 {
        audit.append(entry(i, "globex", "X")).await.unwrap();
        audit.append(entry(i, "acme", "X")).await.unwrap();
    }
    let listed = audit.list(&q).await.unwrap();
    let report = audit.verify_tenant(&acme).await.unwrap();

    // Another tenant's activity changes nothing acme sees.
    for i in 4..=9 {
        audit.append(entry(i, "globex", "X")).await.unwrap();
    }
    assert_eq!(audit.list(&q).await.unwrap(), listed);
    assert_eq!(audit.verify_tenant(&acme).await.unwrap(), report);
    assert_eq!(
        report,
        ChainReport {
            entries: 3,
            ok: true,
            first_broken_seq: None,
            anchored_seq: None,
            anchor_problem: None,
        }
    );

    // Its own positions without gaps, links to its own entries only, and a
    // chain it can check by itself.
    assert_eq!(listed.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(listed[0].prev_hash, GENESIS_HASH);
    let mut own = ChainVerifier::new();
    listed.iter().for_each(|r| own.push(r));
    assert!(own.report().ok);
    let others: Vec<String> = audit
        .list(&AuditQuery::default())
        .await
        .unwrap()
        .into_iter()
        .flat_map(|r| [r.hash, r.prev_hash])
        .filter(|h| h != GENESIS_HASH)
        .collect();
    assert!(listed
        .iter()
        .all(|r| !others.contains(&r.hash) && !others.contains(&r.prev_hash)));
}

#[tokio::test]
async fn entries_older_than_the_tenant_chains_are_linked_on_open() {
    let (dir, audit) = filled(6).await;
    let acme = TenantId::parse("acme").unwrap();
    let before = audit
        .list(&AuditQuery {
            tenant: Some(acme.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    drop(audit);
    // As a database written before `audit_tenant_chain` existed.
    let mut c = raw(&dir);
    drop_triggers(&mut c);
    diesel::sql_query("DELETE FROM audit_tenant_chain")
        .execute(&mut c)
        .unwrap();
    let audit = SqliteAudit::open(dir.path().join("platform.sqlite")).unwrap();
    let after = audit
        .list(&AuditQuery {
            tenant: Some(acme.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(after, before);
    assert!(audit.verify_tenant(&acme).await.unwrap().ok);
}
