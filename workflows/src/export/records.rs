//! Keeping an export's record ([`ExportRecords`]) in step with the
//! workflow: the record is rebuilt whole from the workflow's input and the
//! outputs of its finished steps each time it is written (planned,
//! uploaded, completed, expired, failed), so a repeated step writes the
//! same record and nothing depends on what an earlier write stored.

use super::steps::expire::ExpireOutput;
use super::steps::upload::UploadOutput;
use super::{ExportInput, ExportWorkflow};
use crate::common::recorded;
use crate::ports::export_records::ExportRecord;
use ferry_engine::{Status, StepContext, StepError, TenantId, Timestamp, WorkflowId};
use serde_json::Value;
use std::collections::BTreeMap;

/// What a record is built from.
pub(crate) struct RecordSource<'a> {
    pub workflow: WorkflowId,
    pub tenant: &'a TenantId,
    pub input: &'a Value,
    pub outputs: &'a BTreeMap<String, Value>,
    pub requested_at: Timestamp,
}

impl<'a> RecordSource<'a> {
    /// The record of the export a step runs for, with `outputs` (the
    /// finished steps', perhaps with the current step's added).
    pub fn of_step(ctx: &'a StepContext, outputs: &'a BTreeMap<String, Value>) -> Self {
        RecordSource {
            workflow: ctx.workflow,
            tenant: &ctx.tenant,
            input: &ctx.input,
            outputs,
            requested_at: ctx.created_at,
        }
    }

    /// The record in `status`, with what the finished steps established.
    pub fn record(&self, status: Status) -> Result<ExportRecord, StepError> {
        let input = ExportInput::from_value(self.input)
            .map_err(|e| StepError::permanent(e.code, e.message))?;
        let upload: Option<UploadOutput> = recorded(self.outputs);
        let expire: Option<ExpireOutput> = recorded(self.outputs);
        Ok(ExportRecord {
            export_id: self.workflow,
            tenant: self.tenant.clone(),
            profile: input.request.profile,
            status,
            requested_by: input.requested_by.sub,
            requested_at: self.requested_at,
            completed_at: expire.as_ref().and_then(|e| e.completed_at),
            size_bytes: upload.as_ref().map(|u| u.size_bytes),
            checksum: upload.as_ref().map(|u| format!("blake3:{}", u.checksum)),
            object_key: upload.map(|u| u.key),
            expires_at: expire.map(|e| e.expires_at),
            expired_at: None,
        })
    }
}

impl ExportWorkflow {
    /// Write `record`; a failure is the step's failure (retried when the
    /// database may come back).
    pub(crate) async fn write_record(&self, record: ExportRecord) -> Result<(), StepError> {
        self.records.upsert(&record).await.map_err(StepError::from)
    }
}
