//! One transaction around a tenant writer's work, begun and ended by
//! diesel's transaction builders (SQLite's `BEGIN IMMEDIATE` or deferred
//! `BEGIN`, PostgreSQL's `build_transaction`), so diesel's own bookkeeping
//! of the connection's transaction state stays true.
//!
//! The writers need two things diesel's builders do not say directly: a
//! transaction that is always rolled back (trial loads, previews) and the
//! body's own error even when rolling back fails too (a connection that
//! broke during the body cannot roll back, and the body's error says why).
//! [`run`] keeps what the body returned aside and reports it with what
//! diesel did.

use diesel::connection::{Connection, TransactionManager};
use ferry_workflows::ports::PortError;

/// Why a body ended its transaction: diesel rolls back on any of them.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Beginning, committing or rolling back failed.
    Db(diesel::result::Error),
    /// The body failed, or succeeded in a transaction never committed;
    /// what it returned is in [`Outcome::body`].
    Body,
}

impl From<diesel::result::Error> for Stop {
    fn from(e: diesel::result::Error) -> Self {
        Stop::Db(e)
    }
}

/// What happened in one transaction.
pub(crate) struct Outcome<T> {
    /// What the body returned; `None` when the transaction did not begin.
    pub body: Option<Result<T, PortError>>,
    /// Diesel's failure to begin, commit or roll back.
    pub db: Option<diesel::result::Error>,
    /// The connection's transaction state is unknown (a failed rollback):
    /// it must not be used again.
    pub broken: bool,
}

/// Run `body` in the transaction `begin` opens (a diesel builder given
/// the wrapped body); committed when `commit` and the body succeeds, rolled
/// back otherwise.
pub(crate) fn run<C, T>(
    conn: &mut C,
    commit: bool,
    begin: impl FnOnce(&mut C, &mut dyn FnMut(&mut C) -> Result<(), Stop>) -> Result<(), Stop>,
    body: impl FnOnce(&mut C) -> Result<T, PortError>,
) -> Outcome<T>
where
    C: Connection,
{
    let mut body = Some(body);
    let mut returned = None;
    let ended = begin(conn, &mut |conn| {
        let body = body.take().expect("a transaction runs its body once");
        let result = body(conn);
        let keep = commit && result.is_ok();
        returned = Some(result);
        if keep {
            Ok(())
        } else {
            Err(Stop::Body)
        }
    });
    let db = match ended {
        Ok(()) | Err(Stop::Body) => None,
        Err(Stop::Db(e)) => Some(e),
    };
    let broken = C::TransactionManager::is_broken_transaction_manager(conn);
    Outcome {
        body: returned,
        db,
        broken,
    }
}

impl<T> Outcome<T> {
    /// The body's result, or diesel's failure: `begun` maps a failure to
    /// begin, `committed` a failure to commit. A failure to roll back a
    /// transaction that was never to commit leaves the body's result.
    pub(crate) fn result(
        self,
        commit: bool,
        begun: impl FnOnce(diesel::result::Error) -> PortError,
        committed: impl FnOnce(diesel::result::Error) -> PortError,
    ) -> Result<T, PortError> {
        match (self.body, self.db) {
            (None, Some(e)) => Err(begun(e)),
            (None, None) => unreachable!("a transaction that began ran its body"),
            (Some(Ok(value)), None) => Ok(value),
            (Some(Ok(_)), Some(e)) if commit => Err(committed(e)),
            (Some(Ok(value)), Some(_)) => Ok(value),
            (Some(Err(e)), _) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::SimpleConnection;
    use diesel::sql_types::BigInt;
    use diesel::{QueryableByName, RunQueryDsl, SqliteConnection};

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    fn db() -> SqliteConnection {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.batch_execute("CREATE TABLE t (x INTEGER)").unwrap();
        conn
    }

    fn rows(conn: &mut SqliteConnection) -> i64 {
        diesel::sql_query("SELECT count(*) AS n FROM t")
            .load::<Count>(conn)
            .unwrap()[0]
            .n
    }

    fn insert(conn: &mut SqliteConnection) -> Result<u32, PortError> {
        conn.batch_execute("INSERT INTO t VALUES (1)")
            .map_err(|e| PortError::permanent("db", e.to_string()))?;
        Ok(7)
    }

    fn immediate(
        conn: &mut SqliteConnection,
        body: &mut dyn FnMut(&mut SqliteConnection) -> Result<(), Stop>,
    ) -> Result<(), Stop> {
        conn.immediate_transaction(|conn| body(conn))
    }

    fn begun(e: diesel::result::Error) -> PortError {
        PortError::permanent("begin", e.to_string())
    }

    fn committed(e: diesel::result::Error) -> PortError {
        PortError::permanent("commit", e.to_string())
    }

    #[test]
    fn a_committed_body_keeps_its_rows_and_a_trial_keeps_none() {
        let mut conn = db();
        let kept = run(&mut conn, true, immediate, insert).result(true, begun, committed);
        assert_eq!(kept, Ok(7));
        assert_eq!(rows(&mut conn), 1);
        let trial = run(&mut conn, false, immediate, insert).result(false, begun, committed);
        assert_eq!(trial, Ok(7), "a trial returns what its body returned");
        assert_eq!(rows(&mut conn), 1, "and rolls it back");
    }

    #[test]
    fn a_failed_body_rolls_back_and_its_error_is_reported() {
        let mut conn = db();
        let outcome = run(&mut conn, true, immediate, |conn| {
            insert(conn)?;
            Err::<u32, _>(PortError::permanent("verify_mismatch", "no"))
        });
        assert!(!outcome.broken);
        let err = outcome.result(true, begun, committed).unwrap_err();
        assert_eq!(err.code, "verify_mismatch");
        assert_eq!(rows(&mut conn), 0);
        // The connection is usable again: diesel's bookkeeping is intact.
        assert_eq!(
            run(&mut conn, true, immediate, insert).result(true, begun, committed),
            Ok(7)
        );
    }

    #[test]
    fn a_transaction_that_cannot_begin_never_runs_its_body() {
        let mut conn = db();
        // A transaction diesel does not know of: BEGIN IMMEDIATE fails.
        conn.batch_execute("BEGIN").unwrap();
        let outcome = run(&mut conn, true, immediate, |_| -> Result<u32, PortError> {
            panic!("the body ran")
        });
        let err = outcome.result(true, begun, committed).unwrap_err();
        assert_eq!(err.code, "begin");
    }
}
