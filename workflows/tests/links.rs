//! Signed download links: valid ones pass until they expire; any change to
//! the tenant, export id, expiry or signature is refused.

use chrono::{DateTime, Duration, Utc};
use ferry_engine::{TenantId, WorkflowId};
use ferry_workflows::links::{LinkError, LinkSigner};

struct Parts {
    tenant: String,
    export: String,
    exp: String,
    sig: String,
}

/// Split `/dl/{tenant}/{export}?exp=..&sig=..` as the HTTP layer would.
fn parts(link: &str) -> Parts {
    let (path, query) = link.split_once('?').unwrap();
    let segs: Vec<&str> = path.split('/').collect();
    assert_eq!(&segs[..2], &["", "dl"]);
    let mut exp = String::new();
    let mut sig = String::new();
    for kv in query.split('&') {
        let (k, v) = kv.split_once('=').unwrap();
        match k {
            "exp" => exp = v.into(),
            "sig" => sig = v.into(),
            other => panic!("unexpected query parameter {other}"),
        }
    }
    Parts {
        tenant: segs[2].into(),
        export: segs[3].into(),
        exp,
        sig,
    }
}

fn setup() -> (
    LinkSigner,
    TenantId,
    WorkflowId,
    DateTime<Utc>,
    DateTime<Utc>,
) {
    let signer = LinkSigner::new([9; 32]);
    let tenant = TenantId::parse("acme").unwrap();
    let id: WorkflowId = "0190f5a0-1234-7000-8000-00000000abcd".parse().unwrap();
    let now = DateTime::from_timestamp(1_770_000_000, 0).unwrap();
    (signer, tenant, id, now, now + Duration::hours(24))
}

fn check(s: &LinkSigner, p: &Parts, now: DateTime<Utc>) -> Result<(), LinkError> {
    s.verify(&p.tenant, &p.export, &p.exp, &p.sig, now)
        .map(|_| ())
}

#[test]
fn a_valid_link_is_accepted_until_it_expires() {
    let (s, tenant, id, now, exp) = setup();
    let link = s.sign(&id, &tenant, exp);
    assert!(
        link.starts_with("/dl/acme/0190f5a0-1234-7000-8000-00000000abcd?exp=1770086400&sig="),
        "{link}"
    );
    let p = parts(&link);
    let ok = s.verify(&p.tenant, &p.export, &p.exp, &p.sig, now).unwrap();
    assert_eq!((ok.tenant, ok.export_id, ok.expires_at), (tenant, id, exp));
    assert!(check(&s, &p, exp - Duration::seconds(1)).is_ok());
    let e = check(&s, &p, exp).unwrap_err();
    assert_eq!((e.clone(), e.code()), (LinkError::Expired, "link_expired"));
    assert_eq!(
        check(&s, &p, exp + Duration::days(30)).unwrap_err().code(),
        "link_expired"
    );
}

#[test]
fn changed_path_signature_or_expiry_is_refused() {
    let (s, tenant, id, now, exp) = setup();
    let good = parts(&s.sign(&id, &tenant, exp));
    let invalid = |p: Parts| assert_eq!(check(&s, &p, now).unwrap_err().code(), "link_invalid");

    // Another tenant in the path (the classic cross-tenant attempt).
    invalid(Parts {
        tenant: "acme2".into(),
        ..parts(&s.sign(&id, &tenant, exp))
    });
    // Another export id.
    invalid(Parts {
        export: "0190f5a0-1234-7000-8000-00000000abce".into(),
        ..parts(&s.sign(&id, &tenant, exp))
    });
    // A later expiry.
    invalid(Parts {
        exp: (exp.timestamp() + 3600).to_string(),
        ..parts(&s.sign(&id, &tenant, exp))
    });
    // The same instant written differently.
    invalid(Parts {
        exp: format!("0{}", good.exp),
        ..parts(&s.sign(&id, &tenant, exp))
    });
    invalid(Parts {
        exp: format!("+{}", good.exp),
        ..parts(&s.sign(&id, &tenant, exp))
    });
    invalid(Parts {
        exp: "soon".into(),
        ..parts(&s.sign(&id, &tenant, exp))
    });
    // A flipped signature digit, a truncated one, garbage, none.
    let mut flipped = good.sig.clone().into_bytes();
    flipped[10] = if flipped[10] == b'0' { b'1' } else { b'0' };
    invalid(Parts {
        sig: String::from_utf8(flipped).unwrap(),
        ..parts(&s.sign(&id, &tenant, exp))
    });
    invalid(Parts {
        sig: good.sig[..63].into(),
        ..parts(&s.sign(&id, &tenant, exp))
    });
    invalid(Parts {
        sig: "zz".repeat(32),
        ..parts(&s.sign(&id, &tenant, exp))
    });
    invalid(Parts {
        sig: String::new(),
        ..parts(&s.sign(&id, &tenant, exp))
    });
    // Signed with another secret.
    let other = LinkSigner::new([8; 32]);
    invalid(parts(&other.sign(&id, &tenant, exp)));
    // A tampered link is invalid even once expired: forgery is not "expired".
    let mut late = parts(&s.sign(&id, &tenant, exp));
    late.tenant = "acme2".into();
    assert_eq!(
        check(&s, &late, exp + Duration::days(1))
            .unwrap_err()
            .code(),
        "link_invalid"
    );
    // The untouched link still works.
    assert!(check(&s, &good, now).is_ok());
}

#[test]
fn derived_secrets_are_stable_and_distinct() {
    let (_, tenant, id, _, exp) = setup();
    let a = LinkSigner::derive(b"jwt secret");
    let b = LinkSigner::derive(b"jwt secret");
    let c = LinkSigner::derive(b"another secret");
    assert_eq!(a.sign(&id, &tenant, exp), b.sign(&id, &tenant, exp));
    assert_ne!(a.sign(&id, &tenant, exp), c.sign(&id, &tenant, exp));
    assert_eq!(format!("{a:?}"), "LinkSigner(..)");
}
