//! Workflow statuses and the one table of legal transitions between them.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Running,
    AwaitingConfirmation,
    Paused,
    Compensating,
    Completed,
    Failed,
    Cancelled,
    RolledBack,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Status::Pending,
        Status::Running,
        Status::AwaitingConfirmation,
        Status::Paused,
        Status::Compensating,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
        Status::RolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::AwaitingConfirmation => "awaiting_confirmation",
            Status::Paused => "paused",
            Status::Compensating => "compensating",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::RolledBack => "rolled_back",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The checked transition table. Anything not listed is a bug.
    pub fn can_transition_to(self, to: Status) -> bool {
        use Status::*;
        match (self, to) {
            (Pending, Running | Cancelled) => true,
            (
                Running,
                AwaitingConfirmation | Paused | Compensating | Completed | Failed | Cancelled,
            ) => true,
            (AwaitingConfirmation, Running | Compensating | Cancelled) => true,
            (Paused, Running | Compensating | Cancelled) => true,
            // A failed workflow may be resumed (forward or compensation) or given up.
            (Failed, Running | Compensating | Cancelled) => true,
            (Compensating, RolledBack | Failed) => true,
            // A finished workflow may be undone while its compensation is possible.
            (Completed, Compensating) => true,
            (Pending, _)
            | (Running, _)
            | (AwaitingConfirmation, _)
            | (Paused, _)
            | (Failed, _)
            | (Compensating, _)
            | (Completed, _)
            | (Cancelled, _)
            | (RolledBack, _) => false,
        }
    }

    /// No further transition will ever happen by itself; only an operator
    /// command (resume, rollback) can move the workflow again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Failed | Status::Cancelled | Status::RolledBack
        )
    }

    /// The engine must drive workflows in these statuses (after a restart too).
    pub fn needs_driving(self) -> bool {
        matches!(
            self,
            Status::Pending | Status::Running | Status::Compensating
        )
    }

    /// Open = not final; these are listed in the open-workflows index.
    pub fn is_open(self) -> bool {
        !self.is_final()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_statuses_have_no_way_out_but_operator_commands() {
        for to in Status::ALL {
            assert!(!Status::Cancelled.can_transition_to(to));
            assert!(!Status::RolledBack.can_transition_to(to));
        }
        assert!(Status::Failed.can_transition_to(Status::Running));
        assert!(!Status::Completed.can_transition_to(Status::Running));
    }

    #[test]
    fn names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
    }
}
