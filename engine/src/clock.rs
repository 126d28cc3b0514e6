//! Injected time and ids, so tests can run workflows deterministically.

use crate::event::Timestamp;
use crate::ids::WorkflowId;
use parking_lot::Mutex;
use std::sync::Arc;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }
}

/// A clock that only moves when told to (tests of timers and rate limits).
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<Mutex<Timestamp>>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(Mutex::new(start)))
    }
    pub fn advance(&self, by: chrono::Duration) {
        *self.0.lock() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock()
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
