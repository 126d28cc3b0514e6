//! Live events end to end, against the real binary: a workflow's events as
//! Server-Sent Events (in order, the same objects as the JSON endpoint,
//! resumed from `Last-Event-ID` across a reconnect and a server restart),
//! the stream of a tenant's workflow list, `events?after=`, and tenant
//! scoping; and that a person cannot wedge a rehydration: a refused
//! confirmation says what to do next and leaves it confirmable or
//! cancellable, and the confirmation deadline cancels one left waiting
//! (after a restart too).

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::sse::{self, Message};
use support::Ferry;

const WAIT: Duration = Duration::from_secs(60);

/// A server with a sampled tenant `acme` and a tenant admin's token.
fn server() -> (Ferry, String) {
    let mut f = Ferry::new();
    f.sample("acme", 1);
    f.start();
    let token = f.token("acme", "tenant_admin");
    (f, token)
}

/// A finished export of acme, and a rehydration of it waiting for its
/// confirmation (a workflow that stays open until the test confirms it).
fn awaiting_rehydration(f: &Ferry, token: &str) -> String {
    let export = f.export(token, support::lite_body());
    f.wait_export(token, &export, "completed", WAIT);
    let r = f.post(
        "/api/v1/tenant/rehydrate",
        Some(token),
        &json!({"exportId": export}),
    );
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().unwrap()["job"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    f.wait_status(token, &status_path(&id), "awaiting_confirmation", WAIT);
    id
}

fn status_path(id: &str) -> String {
    format!("/api/v1/tenant/rehydrate/{id}/status")
}

fn confirm(f: &Ferry, token: &str, id: &str) {
    let r = f.post(
        &format!("/api/v1/tenant/rehydrate/{id}/confirm"),
        Some(token),
        &json!({"confirm": "DELETE"}),
    );
    assert_eq!(r.status(), 202, "{}", r.text().unwrap());
}

fn json_events(f: &Ferry, token: &str, id: &str) -> Vec<Value> {
    f.get_json(&format!("/api/v1/workflows/{id}/events"), token)["events"]
        .as_array()
        .unwrap()
        .clone()
}

fn stream_path(id: &str) -> String {
    format!("/api/v1/workflows/{id}/events/stream")
}

/// Each message is numbered by its event's seq and named by its type, and
/// the messages are exactly the JSON endpoint's events, in order.
fn assert_same_events(messages: &[Message], events: &[Value]) {
    let seqs: Vec<u64> = messages
        .iter()
        .map(|m| m.id.as_deref().unwrap().parse().unwrap())
        .collect();
    let want: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(seqs, want, "message ids are not the seqs 1..=n, in order");
    for m in messages {
        assert_eq!(m.event.as_deref(), m.data["type"].as_str(), "{m:?}");
    }
    let data: Vec<&Value> = messages.iter().map(|m| &m.data).collect();
    let events: Vec<&Value> = events.iter().collect();
    assert_eq!(data, events);
}

#[test]
fn a_client_sees_every_event_of_a_workflow_in_order_then_the_stream_ends() {
    let (f, token) = server();
    let id = awaiting_rehydration(&f, &token);
    let mut stream = sse::open(&f, &stream_path(&id), &token, None);
    // The stored events come first: up to the wait for the confirmation.
    let stored = json_events(&f, &token, &id);
    let mut seen: Vec<Message> = (0..stored.len()).map(|_| stream.next().unwrap()).collect();
    assert_same_events(&seen, &stored);
    // Then the live ones, appended after the stream opened, to the end.
    confirm(&f, &token, &id);
    seen.extend(stream.until_end());
    let all = json_events(&f, &token, &id);
    assert!(all.len() > stored.len() + 3, "{all:?}");
    assert_same_events(&seen, &all);
    let last = &seen.last().unwrap().data;
    assert_eq!(last["type"], "completed.v1", "{last}");
    f.wait_status(&token, &status_path(&id), "completed", WAIT);
    // No server path in the stream either.
    let dir = f.data_dir().to_string_lossy().into_owned();
    assert!(!stream.raw.contains(&dir), "{}", stream.raw);
    assert!(
        stream.raw.contains("rowsChecked"),
        "no outputs in the stream"
    );
}

#[test]
fn a_reconnect_with_last_event_id_gets_exactly_the_missing_events() {
    let (f, token) = server();
    let id = awaiting_rehydration(&f, &token);
    let mut first = sse::open(&f, &stream_path(&id), &token, None);
    let mut seen: Vec<Message> = (0..3).map(|_| first.next().unwrap()).collect();
    drop(first);
    let last: u64 = seen.last().unwrap().id.as_deref().unwrap().parse().unwrap();
    assert_eq!(last, 3);
    confirm(&f, &token, &id);
    let mut second = sse::open(&f, &stream_path(&id), &token, Some(last));
    seen.extend(second.until_end());
    assert_same_events(&seen, &json_events(&f, &token, &id));

    // `?after=` resumes the same way (for clients that cannot set headers),
    // and a finished workflow's stream ends after its last event.
    let all = json_events(&f, &token, &id);
    let mut tail = sse::open(&f, &format!("{}?after=5", stream_path(&id)), &token, None);
    let rest = tail.until_end();
    assert_eq!(rest.len(), all.len() - 5);
    assert_eq!(rest[0].id.as_deref(), Some("6"));
    // Caught up: nothing, and the stream ends at once.
    let n = all.len() as u64;
    assert!(sse::open(&f, &stream_path(&id), &token, Some(n))
        .until_end()
        .is_empty());
}

#[test]
fn a_client_reconnecting_across_a_server_restart_gets_every_event_in_order() {
    let (mut f, token) = server();
    let id = awaiting_rehydration(&f, &token);
    let mut stream = sse::open(&f, &stream_path(&id), &token, None);
    let stored = json_events(&f, &token, &id).len();
    let mut seen: Vec<Message> = (0..stored).map(|_| stream.next().unwrap()).collect();
    f.kill();
    // The connection ends with the process.
    assert!(stream.next().is_none());
    f.start();
    let last: u64 = seen.last().unwrap().id.as_deref().unwrap().parse().unwrap();
    let mut resumed = sse::open(&f, &stream_path(&id), &token, Some(last));
    confirm(&f, &token, &id);
    seen.extend(resumed.until_end());
    assert_same_events(&seen, &json_events(&f, &token, &id));
    assert_eq!(seen.last().unwrap().data["type"], "completed.v1");
}

#[test]
fn another_tenants_workflow_is_not_found_on_every_event_route() {
    let (f, token) = server();
    let export = f.export(&token, support::lite_body());
    let other = f.token("globex", "tenant_admin");
    for path in [
        stream_path(&export),
        format!("/api/v1/workflows/{export}/events"),
        stream_path("not-an-id"),
    ] {
        let r = sse::request(&f, &path, &other, None);
        assert_eq!(r.status(), 404, "{path}");
        let v: Value = r.json().unwrap();
        assert_eq!(v["error"]["code"], "not_found", "{path}: {v}");
    }
    // No token: 401, as on every other route.
    let r = f.get(&stream_path(&export), None);
    assert_eq!(r.status(), 401);
}

#[test]
fn events_after_is_honoured_and_a_garbage_cursor_is_refused() {
    let (f, token) = server();
    let export = f.export(&token, support::lite_body());
    f.wait_export(&token, &export, "completed", WAIT);
    let all = json_events(&f, &token, &export);
    assert!(all.len() > 4);
    let page = f.get_json(
        &format!("/api/v1/workflows/{export}/events?after=3"),
        &token,
    );
    let rest = page["events"].as_array().unwrap();
    assert_eq!(rest.len(), all.len() - 3);
    assert_eq!(rest[0]["seq"], 4);
    assert_eq!(rest[..], all[3..]);
    let past_end = format!("/api/v1/workflows/{export}/events?after=100000");
    assert!(f.get_json(&past_end, &token)["events"]
        .as_array()
        .unwrap()
        .is_empty());
    for bad in ["x", "-1", "1.5", ""] {
        for path in [
            format!("/api/v1/workflows/{export}/events?after={bad}"),
            format!("{}?after={bad}", stream_path(&export)),
        ] {
            let r = f.get(&path, Some(&token));
            assert_eq!(r.status(), 400, "{path}");
            let v: Value = r.json().unwrap();
            assert_eq!(v["error"]["code"], "invalid_cursor", "{path}: {v}");
        }
    }
    let r = f
        .client
        .get(f.url(&stream_path(&export)))
        .bearer_auth(&token)
        .header("Last-Event-ID", "abc")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().unwrap()["error"]["code"],
        "invalid_cursor"
    );
}

#[test]
fn the_list_stream_shows_the_tenants_own_workflows_and_an_admin_sees_all() {
    let mut f = Ferry::new();
    f.sample("acme", 1);
    f.sample("globex", 1);
    f.start();
    let acme = f.token("acme", "tenant_admin");
    let globex = f.token("globex", "tenant_admin");
    let admin = f.token("ops", "platform_admin");
    let mut mine = sse::open(&f, "/api/v1/workflows/stream", &acme, None);
    let mut all = sse::open(&f, "/api/v1/workflows/stream", &admin, None);
    let mut only_globex = sse::open(&f, "/api/v1/workflows/stream?tenant=globex", &admin, None);
    let g = f.export(&globex, support::lite_body());
    f.wait_export(&globex, &g, "completed", WAIT);
    let a = f.export(&acme, support::lite_body());
    f.wait_export(&acme, &a, "completed", WAIT);

    // Read until a given workflow's completion; every message is a summary.
    let until_completed = |s: &mut sse::Stream, id: &str| {
        let mut got = vec![];
        loop {
            let m = s.next().expect("the list stream stays open");
            assert_eq!(m.event.as_deref(), Some("workflow"), "{m:?}");
            assert!(m.id.is_none());
            let done = m.data["id"] == id && m.data["status"] == "completed";
            got.push(m.data);
            if done {
                return got;
            }
        }
    };
    let seen = until_completed(&mut mine, &a);
    assert!(seen.iter().all(|v| v["tenantId"] == "acme"), "{seen:?}");
    let statuses: Vec<&str> = seen.iter().map(|v| v["status"].as_str().unwrap()).collect();
    assert_eq!(statuses.first(), Some(&"pending"), "{statuses:?}");
    assert!(statuses.contains(&"running"), "{statuses:?}");

    let seen = until_completed(&mut all, &a);
    let tenants: std::collections::BTreeSet<&str> = seen
        .iter()
        .map(|v| v["tenantId"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, ["acme", "globex"].into());

    let seen = until_completed(&mut only_globex, &g);
    assert!(seen.iter().all(|v| v["tenantId"] == "globex"), "{seen:?}");

    // A tenant admin may not watch another tenant.
    let r = sse::request(&f, "/api/v1/workflows/stream?tenant=globex", &acme, None);
    assert_eq!(r.status(), 403);
}

/// Poll a rehydration's status until it is `cancelled`; its status body.
fn wait_cancelled(f: &Ferry, token: &str, id: &str, within: Duration) -> Value {
    f.wait_status(token, &status_path(id), "cancelled", within)
}

/// Cancelled by the deadline, as the status, the workflow and the audit
/// log show it: nothing after the preview ran, so nothing changed.
fn assert_expired(f: &Ferry, token: &str, id: &str, status: &Value) {
    assert_eq!(status["error"]["code"], "confirmation_expired", "{status}");
    let msg = status["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("deadline") && msg.contains("nothing was changed"),
        "{msg}"
    );
    assert!(status["backup"].is_null(), "{status}");
    let wf = f.get_json(&format!("/api/v1/workflows/{id}"), token);
    let done: Vec<&str> = wf["completedSteps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(done, ["preview", "receive", "validate"], "{wf}");
    // The audit entry follows the cancel (a separate append): wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let audit = loop {
        let audit = f.get_json(
            &format!("/api/v1/audit?action=REHYDRATE_CONFIRMATION_EXPIRED&entityId={id}"),
            token,
        );
        let n = audit["entries"].as_array().map_or(0, Vec::len);
        if n > 0 || std::time::Instant::now() > deadline {
            break audit;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        audit["entries"].as_array().map(Vec::len),
        Some(1),
        "{audit}"
    );
    // Too late to confirm now, and the answer says where to look.
    let r = f.post(
        &format!("/api/v1/tenant/rehydrate/{id}/confirm"),
        Some(token),
        &json!({"confirm": "DELETE"}),
    );
    assert_eq!(r.status(), 409);
    let v: Value = r.json().unwrap();
    assert_eq!(v["error"]["code"], "not_awaiting_confirmation", "{v}");
    assert!(
        v["error"]["hint"].as_str().unwrap().contains("cancelled"),
        "{v}"
    );
}

#[test]
fn a_refused_confirmation_says_what_to_do_next_and_leaves_the_rehydration_cancellable() {
    let (f, token) = server();
    let id = awaiting_rehydration(&f, &token);
    let confirm_path = format!("/api/v1/tenant/rehydrate/{id}/confirm");
    for body in [json!({"confirm": "delete"}), json!({"confirm": "yes"})] {
        let r = f.post(&confirm_path, Some(&token), &body);
        assert_eq!(r.status(), 400);
        let v: Value = r.json().unwrap();
        assert_eq!(v["error"]["code"], "confirmation_mismatch", "{v}");
        let hint = v["error"]["hint"].as_str().unwrap();
        assert!(hint.contains(r#"{"confirm": "DELETE"}"#), "{hint}");
        assert!(
            hint.contains(&format!("/api/v1/workflows/{id}/cancel")),
            "{hint}"
        );
        assert!(
            hint.contains("cancelled at"),
            "the deadline is named: {hint}"
        );
    }
    // Still waiting: it can be confirmed, or cancelled.
    let s = f.get_json(&status_path(&id), &token);
    assert_eq!(s["status"], "awaiting_confirmation", "{s}");
    assert_eq!(s["awaitingConfirmation"], true);
    let r = f.post(
        &format!("/api/v1/workflows/{id}/cancel"),
        Some(&token),
        &json!({}),
    );
    assert_eq!(r.status(), 202);
    let s = wait_cancelled(&f, &token, &id, WAIT);
    // A person's cancel is not the deadline's.
    assert!(s["error"].is_null(), "{s}");
}

#[test]
fn a_rehydration_not_confirmed_by_the_deadline_is_cancelled_with_nothing_changed() {
    let mut f = Ferry::new().env("FERRY_CONFIRM_DEADLINE_SECS", "2");
    f.sample("acme", 1);
    f.start();
    let token = f.token("acme", "tenant_admin");
    let id = awaiting_rehydration(&f, &token);
    let status = wait_cancelled(&f, &token, &id, WAIT);
    assert_expired(&f, &token, &id, &status);
}

#[test]
fn the_confirmation_deadline_survives_a_restart() {
    let (mut f, token) = server();
    let id = awaiting_rehydration(&f, &token);
    f.kill();
    // A day and a bit later: the default deadline (one day) has passed
    // while the server was down; the durable timer fires after the start.
    let mut f = f.env("FERRY_FAILPOINTS", "clock.shift_s=90000");
    f.start();
    let status = wait_cancelled(&f, &token, &id, WAIT);
    assert_expired(&f, &token, &id, &status);
}
