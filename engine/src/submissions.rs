//! Recent submissions per tenant and kind, kept in memory so that counting
//! a tenant's submissions of the day (the daily limit, asked on every
//! submit) costs a binary search, not a walk over the log's index.
//!
//! A (tenant, kind) is loaded from the log the first time it is asked about
//! (its workflows created since the asked time, newest first, stopping at
//! the first older one: ids sort by creation time); every workflow `submit`
//! creates afterwards is recorded once it is durable. Both keep the
//! submissions as a sorted set of (created at, id), so a workflow that the
//! load saw and that is then recorded counts once. Only a log that no other
//! process writes can be counted this way: with a shared log (PostgreSQL)
//! the engine asks the log every time.

use crate::event::Timestamp;
use crate::ids::{TenantId, WorkflowId};
use crate::log::{EventLog, ListQuery, LogError, LIST_LIMIT_MAX};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// How long a submission is kept after its creation: a day and an hour,
/// beyond any "since midnight" question.
const KEEP_HOURS: i64 = 25;

/// What is known per (tenant, kind), each behind a lock of its own so that
/// one key's first load does not hold up the others.
type ByKey = HashMap<(TenantId, String), Arc<Mutex<Known>>>;

#[derive(Default)]
pub(crate) struct RecentSubmissions {
    keys: Mutex<ByKey>,
}

/// What is known of one (tenant, kind).
#[derive(Default)]
struct Known {
    /// Every submission created at or after this was loaded; `None`: not
    /// loaded yet.
    complete_since: Option<Timestamp>,
    /// Sorted, without duplicates.
    submissions: Vec<(Timestamp, WorkflowId)>,
}

impl Known {
    fn insert(&mut self, at: Timestamp, id: WorkflowId) {
        if let Err(pos) = self.submissions.binary_search(&(at, id)) {
            self.submissions.insert(pos, (at, id));
        }
    }

    fn count_since(&self, since: Timestamp) -> u64 {
        let older = self.submissions.partition_point(|(at, _)| *at < since);
        (self.submissions.len() - older) as u64
    }
}

impl RecentSubmissions {
    fn known(&self, tenant: &TenantId, kind: &str) -> Arc<Mutex<Known>> {
        self.keys
            .lock()
            .entry((tenant.clone(), kind.to_owned()))
            .or_default()
            .clone()
    }

    /// Workflows of `kind` that `tenant` submitted at or after `since`;
    /// `now` prunes what is too old to be asked about again.
    pub fn count_since(
        &self,
        log: &dyn EventLog,
        tenant: &TenantId,
        kind: &str,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, LogError> {
        let known = self.known(tenant, kind);
        let mut known = known.lock();
        if known.complete_since.is_none_or(|from| since < from) {
            load(log, tenant, kind, since, &mut known)?;
        }
        let cutoff = (now - chrono::Duration::hours(KEEP_HOURS)).min(since);
        let old = known.submissions.partition_point(|(at, _)| *at < cutoff);
        if old > 0 {
            known.submissions.drain(..old);
            known.complete_since = Some(cutoff);
        }
        Ok(known.count_since(since))
    }

    /// A workflow `submit` created, now durable.
    pub fn record(&self, tenant: &TenantId, kind: &str, at: Timestamp, id: WorkflowId) {
        let known = self.known(tenant, kind);
        let mut known = known.lock();
        // Before the first load nothing is kept: the load will read it.
        if known.complete_since.is_some() {
            known.insert(at, id);
        }
    }
}

/// Read (tenant, kind)'s workflows created at or after `since` from the log.
fn load(
    log: &dyn EventLog,
    tenant: &TenantId,
    kind: &str,
    since: Timestamp,
    known: &mut Known,
) -> Result<(), LogError> {
    let mut after = None;
    loop {
        let page = log.list(&ListQuery {
            tenant: Some(tenant.clone()),
            kind: Some(kind.to_owned()),
            status: None,
            after,
            limit: LIST_LIMIT_MAX,
            newest_first: true,
        })?;
        for s in &page {
            if s.created_at < since {
                known.complete_since = Some(since);
                return Ok(());
            }
            known.insert(s.created_at, s.id);
        }
        if page.len() < LIST_LIMIT_MAX {
            known.complete_since = Some(since);
            return Ok(());
        }
        after = page.last().map(|s| s.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::conformance::{at, tenant_id, Stream};
    use crate::testkit::MemoryLog;

    async fn submit(log: &MemoryLog, n: u128, tenant: &str, kind: &str, ms: i64) -> WorkflowId {
        let (s, req) = Stream::submit(n, tenant, kind, None, ms);
        log.append(req).await.unwrap().unwrap();
        s.id
    }

    #[tokio::test]
    async fn counts_equal_the_logs_before_and_after_new_submissions() {
        let log = MemoryLog::new();
        for n in 1..=30u128 {
            let tenant = ["acme", "globex"][(n % 2) as usize];
            let kind = ["export", "rehydrate"][(n % 3 == 0) as usize];
            submit(&log, n, tenant, kind, n as i64 * 1000).await;
        }
        let recent = RecentSubmissions::default();
        let acme = tenant_id("acme");
        let now = at(100_000);
        for since_ms in [0, 5_500, 15_000, 29_000, 31_000] {
            let since = at(since_ms);
            assert_eq!(
                recent
                    .count_since(&log, &acme, "export", since, now)
                    .unwrap(),
                log.count_submitted_since(&acme, "export", since).unwrap(),
                "since {since_ms}"
            );
        }
        // New submissions, recorded as submit records them; one is recorded
        // twice (seen by a load and recorded), and counts once.
        for n in 31..=40u128 {
            let id = submit(&log, n, "acme", "export", n as i64 * 1000).await;
            recent.record(&acme, "export", at(n as i64 * 1000), id);
            if n == 35 {
                recent.record(&acme, "export", at(n as i64 * 1000), id);
            }
        }
        for since_ms in [0, 20_000, 35_000, 40_000, 41_000] {
            let since = at(since_ms);
            assert_eq!(
                recent
                    .count_since(&log, &acme, "export", since, now)
                    .unwrap(),
                log.count_submitted_since(&acme, "export", since).unwrap(),
                "since {since_ms}"
            );
        }
    }

    #[tokio::test]
    async fn what_is_older_than_a_day_is_dropped_and_reloaded_if_asked() {
        let log = MemoryLog::new();
        let acme = tenant_id("acme");
        let day = 86_400_000i64;
        submit(&log, 1, "acme", "export", 0).await;
        submit(&log, 2, "acme", "export", day).await;
        let recent = RecentSubmissions::default();
        assert_eq!(
            recent
                .count_since(&log, &acme, "export", at(0), at(day))
                .unwrap(),
            2
        );
        // Two days on, the first is gone from memory...
        assert_eq!(
            recent
                .count_since(&log, &acme, "export", at(day), at(2 * day))
                .unwrap(),
            1
        );
        // ...and asking about it again reads the log.
        assert_eq!(
            recent
                .count_since(&log, &acme, "export", at(0), at(2 * day))
                .unwrap(),
            2
        );
    }
}
