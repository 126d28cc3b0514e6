//! Group commit for the audit logs: concurrent appends queue their entries,
//! and whoever holds the log's writer next writes the whole queue in one
//! transaction (chained in queue order, one sync), so a burst of requests
//! waits for one commit instead of each waiting in line for its own.

use ferry_workflows::ports::audit::{AuditEntry, AuditRecord};
use ferry_workflows::ports::PortError;
use parking_lot::Mutex;
use tokio::sync::oneshot;

type Answer = Result<AuditRecord, PortError>;

/// What a failed batch means for its entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnFailure {
    /// Nothing of the batch was written: write each entry alone, so one
    /// entry that cannot be written fails only its own append.
    EachAlone,
    /// The batch may have been written (an unknown commit outcome): every
    /// entry gets the error; writing them again could store them twice.
    FailAll,
}

#[derive(Default)]
pub(crate) struct AppendQueue {
    queued: Mutex<Vec<(AuditEntry, oneshot::Sender<Answer>)>>,
}

impl AppendQueue {
    /// Queue `entry`; its answer arrives once some writer wrote it.
    pub fn push(&self, entry: AuditEntry) -> oneshot::Receiver<Answer> {
        let (reply, answer) = oneshot::channel();
        self.queued.lock().push((entry, reply));
        answer
    }

    /// Write everything queued with `write_all` (one transaction for the
    /// slice it is given) and answer each entry, before returning: call it
    /// while holding the log's writer, so that a caller that finds the
    /// queue empty knows an earlier holder already answered its entry.
    pub fn write_queued(
        &self,
        mut write_all: impl FnMut(&[AuditEntry]) -> Result<Vec<AuditRecord>, PortError>,
        on_failure: OnFailure,
    ) {
        let batch = std::mem::take(&mut *self.queued.lock());
        if batch.is_empty() {
            return;
        }
        let (entries, replies): (Vec<AuditEntry>, Vec<_>) = batch.into_iter().unzip();
        match write_all(&entries) {
            Ok(records) => {
                for (reply, record) in replies.into_iter().zip(records) {
                    let _ = reply.send(Ok(record));
                }
            }
            Err(e) if entries.len() == 1 || on_failure == OnFailure::FailAll => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Err(_) => {
                for (reply, entry) in replies.into_iter().zip(entries) {
                    let one = write_all(std::slice::from_ref(&entry)).map(|mut r| r.remove(0));
                    let _ = reply.send(one);
                }
            }
        }
    }
}

/// The answer of an append whose entry was queued: it was sent before the
/// writer was released.
pub(crate) async fn answer(rx: oneshot::Receiver<Answer>) -> Answer {
    rx.await
        .map_err(|_| PortError::retryable("audit_io", "the audit append was dropped"))?
}
