//! SqliteAudit: a linear hash chain, filters and paging, tamper detection,
//! and append-only enforced by the database.

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use ferry_engine::TenantId;
use ferry_storage::audit_sqlite::SqliteAudit;
use ferry_workflows::ports::audit::{
    AuditEntry, AuditLog, AuditQuery, ChainReport, Order, GENESIS_HASH,
};
use serde_json::json;

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
            first_broken_seq: None
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

#[tokio::test]
async fn list_filters_and_pages() {
    let (_dir, audit) = filled(12).await;
    let acme = TenantId::parse("acme").unwrap();
    let q = AuditQuery {
        tenant: Some(acme.clone()),
        ..Default::default()
    };
    let all = audit.list(&q).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![2, 4, 6, 8, 10, 12]
    );
    assert!(all.iter().all(|r| r.entry.tenant.as_ref() == Some(&acme)));

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
        vec![6, 12]
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
            first_broken_seq: None
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
            first_broken_seq: Some(3)
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
