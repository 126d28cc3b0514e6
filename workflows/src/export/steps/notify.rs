//! Step `notify`: email the requester a signed ferry link to the bundle,
//! with its size, checksum and the link's expiry.
//!
//! The message id derives from the workflow id, so a repeated attempt (after
//! a crash or a mail failure) never sends a second message where the mailer
//! can tell. The link's expiry is fixed by the first attempt and kept in the
//! step's checkpoint, so every attempt sends the same link. Mail failures are
//! retryable; since this step's predecessors are recorded, a mail outage
//! never repeats the export itself. A requester without an email address is
//! not an error: the step records that nothing was sent.

use super::upload::UploadOutput;
use crate::common::{output_of, secs, StepOutput};
use crate::export::{ExportInput, ExportStep, ExportWorkflow};
use crate::ports::mail::{Email, SendOutcome};
use ferry_engine::{StepContext, StepError, Timestamp, WorkflowId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifyOutput {
    pub sent: bool,
    pub message_id: Option<String>,
    pub to: Option<String>,
    pub link_expires_at: Option<Timestamp>,
    /// `sent`, `already_sent` or `no_recipient`.
    pub outcome: String,
}

impl StepOutput for NotifyOutput {
    type Step = ExportStep;
    const STEP: ExportStep = ExportStep::Notify;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NotifyCheckpoint {
    link_expires_at: Timestamp,
}

/// The deterministic message id of an export's notification.
pub fn message_id(id: WorkflowId) -> String {
    format!("export-{id}")
}

/// `1.5 MiB`-style sizes for people.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The notification's subject, text and HTML.
pub fn compose(
    tenant: &str,
    url: &str,
    upload: &UploadOutput,
    link_expires_at: &Timestamp,
) -> (String, String, String) {
    let subject = format!("Your data export for {tenant} is ready");
    let size = human_size(upload.size_bytes);
    let expires = link_expires_at.format("%Y-%m-%d %H:%M UTC").to_string();
    let text = format!(
        "Your data export for {tenant} is ready.\n\n\
         Download: {url}\n\n\
         File: {file}\n\
         Size: {size} ({bytes} bytes)\n\
         Checksum (blake3): {sum}\n\
         The link works until {expires}.\n\n\
         Every download is recorded in the audit log. If you did not ask for this export, tell your administrator.\n",
        file = upload.file_name,
        bytes = upload.size_bytes,
        sum = upload.checksum,
    );
    let html = format!(
        "<!doctype html><html><body>\
         <p>Your data export for <strong>{t}</strong> is ready.</p>\
         <p><a href=\"{u}\">Download {f}</a></p>\
         <table><tr><td>Size</td><td>{size} ({bytes} bytes)</td></tr>\
         <tr><td>Checksum (blake3)</td><td><code>{sum}</code></td></tr>\
         <tr><td>Link expires</td><td>{expires}</td></tr></table>\
         <p>Every download is recorded in the audit log. If you did not ask for this export, tell your administrator.</p>\
         </body></html>",
        t = escape_html(tenant),
        u = escape_html(url),
        f = escape_html(&upload.file_name),
        bytes = upload.size_bytes,
        sum = escape_html(&upload.checksum),
    );
    (subject, text, html)
}

pub async fn run(
    wf: &ExportWorkflow,
    ctx: &mut StepContext,
    input: &ExportInput,
) -> Result<Value, StepError> {
    let upload: UploadOutput = output_of(ctx)?;
    let Some(to) = input
        .requested_by
        .email
        .clone()
        .filter(|e| !e.trim().is_empty())
    else {
        let out = NotifyOutput {
            sent: false,
            message_id: None,
            to: None,
            link_expires_at: None,
            outcome: "no_recipient".into(),
        };
        wf.audit(
            ctx,
            "EXPORT_NOTIFIED",
            json!({"sent": false, "reason": "no_recipient"}),
        )
        .await?;
        return serde_json::to_value(&out)
            .map_err(|e| StepError::permanent("invalid_output", e.to_string()));
    };
    let link_expires_at = match ctx
        .checkpoint_value()
        .and_then(|v| serde_json::from_value::<NotifyCheckpoint>(v.clone()).ok())
    {
        Some(cp) => cp.link_expires_at,
        None => {
            // Never promise the link past the bundle's own life.
            let at = ctx.now() + secs(wf.config.link_ttl.min(wf.config.bundle_ttl));
            let cp = serde_json::to_value(NotifyCheckpoint {
                link_expires_at: at,
            })
            .map_err(|e| StepError::permanent("invalid_output", e.to_string()))?;
            ctx.checkpoint(cp, None).await?;
            at
        }
    };
    let path = wf
        .deps
        .links
        .sign(&ctx.workflow, &ctx.tenant, link_expires_at);
    let url = format!(
        "{}{}",
        wf.config.public_base_url.trim_end_matches('/'),
        path
    );
    let (subject, text, html) = compose(ctx.tenant.as_str(), &url, &upload, &link_expires_at);
    let email = Email {
        message_id: message_id(ctx.workflow),
        to: to.clone(),
        subject,
        text,
        html,
    };
    let outcome = wf.deps.mailer.send(&email).await?;
    let outcome = match outcome {
        SendOutcome::Sent => "sent",
        SendOutcome::AlreadySent => "already_sent",
    };
    let out = NotifyOutput {
        sent: true,
        message_id: Some(email.message_id.clone()),
        to: Some(to),
        link_expires_at: Some(link_expires_at),
        outcome: outcome.into(),
    };
    wf.audit(
        ctx,
        "EXPORT_NOTIFIED",
        json!({"sent": true, "messageId": email.message_id, "to": out.to, "linkExpiresAt": link_expires_at, "outcome": outcome}),
    )
    .await?;
    serde_json::to_value(&out).map_err(|e| StepError::permanent("invalid_output", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_escaping() {
        assert_eq!(human_size(12), "12 bytes");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(
            escape_html("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}
