//! Injected time and ids, so tests can run workflows deterministically.
//!
//! Everything in ferry that asks what time it is, or waits for a time, asks
//! a [`Clock`]: the runner's retry backoff and the durable timers sleep with
//! [`Clock::sleep_until`], so under a [`ManualClock`] a 24 h timer fires as
//! soon as the test advances the clock past it. This module is the only
//! place that reads the wall clock.

use crate::event::Timestamp;
use crate::ids::WorkflowId;
use futures::future::BoxFuture;
use std::sync::Arc;
use tokio::sync::watch;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;

    /// Resolves once `now() >= at` (at once if it already is).
    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()>;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }

    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()> {
        let wait = (at - self.now()).to_std().unwrap_or_default();
        Box::pin(tokio::time::sleep(wait))
    }
}

/// Another clock moved by a fixed amount: the wall clock a day ahead lets
/// a test see what a restart of the real binary does once a 24 h timer is
/// due, without waiting a day.
#[derive(Clone, Debug)]
pub struct ShiftedClock<C> {
    inner: C,
    by: chrono::Duration,
}

impl<C: Clock> ShiftedClock<C> {
    pub fn new(inner: C, by: chrono::Duration) -> Self {
        ShiftedClock { inner, by }
    }
}

impl<C: Clock> Clock for ShiftedClock<C> {
    fn now(&self) -> Timestamp {
        self.inner.now() + self.by
    }

    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()> {
        self.inner.sleep_until(at - self.by)
    }
}

/// A clock that only moves when told to (tests of timers, backoff and
/// expiry). Sleepers wake when `advance` or `set` moves it past their time.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<watch::Sender<Timestamp>>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(watch::Sender::new(start)))
    }

    pub fn advance(&self, by: chrono::Duration) {
        self.0.send_modify(|now| *now += by);
    }

    /// Move the clock to `to` (backwards too; sleepers wait on).
    pub fn set(&self, to: Timestamp) {
        self.0.send_replace(to);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.borrow()
    }

    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()> {
        let mut rx = self.0.subscribe();
        Box::pin(async move {
            // The sender lives as long as any clone of the clock; if all are
            // gone, time never moves again.
            if rx.wait_for(|now| *now >= at).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

pub trait IdGen: Send + Sync + 'static {
    fn workflow_id(&self) -> WorkflowId;
}

/// UUIDv7 ids: unique, and sorted by creation time.
#[derive(Clone, Copy, Debug, Default)]
pub struct UuidV7;

impl IdGen for UuidV7 {
    fn workflow_id(&self) -> WorkflowId {
        WorkflowId(uuid::Uuid::now_v7())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_manual_sleeper_wakes_only_when_the_clock_passes_its_time() {
        let t0 = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let clock = ManualClock::new(t0);
        let day = chrono::Duration::hours(24);
        let mut sleeper = tokio::spawn(clock.sleep_until(t0 + day));
        clock.advance(chrono::Duration::hours(23));
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut sleeper)
                .await
                .is_err(),
            "woke an hour early"
        );
        clock.advance(chrono::Duration::hours(1));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("woke when the clock reached its time")
            .unwrap();
        // A time already past resolves at once.
        clock.sleep_until(t0).await;
    }

    #[tokio::test]
    async fn a_shifted_clock_reads_and_sleeps_its_inner_clock_moved() {
        let t0 = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let inner = ManualClock::new(t0);
        let day = chrono::Duration::hours(24);
        let shifted = ShiftedClock::new(inner.clone(), day);
        assert_eq!(shifted.now(), t0 + day);
        // A time the shift has already passed is due at once.
        shifted.sleep_until(t0 + chrono::Duration::hours(23)).await;
        let mut sleeper = tokio::spawn(shifted.sleep_until(t0 + day + day));
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut sleeper)
                .await
                .is_err(),
            "woke a day early"
        );
        inner.advance(day);
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("woke when the inner clock reached its time")
            .unwrap();
    }
}
