//! The target of a `COPY` statement built at run time, for diesel.
//!
//! diesel's `copy_from` and `copy_to` know their target only through a type
//! ([`CopyTarget::walk_target`] takes no `self`), so the target of the one
//! COPY starting on this thread is handed over through a thread-local: set
//! by [`aim`] immediately before the statement runs, read while diesel
//! writes the statement. It is a table with its column list (`"s"."t"
//! ("a", "b")`, for `FROM STDIN`) or a parenthesised query (for `TO
//! STDOUT`).

use diesel::pg::{CopyTarget, Pg};
use diesel::query_builder::AstPass;
use std::cell::RefCell;

diesel::table! {
    /// Never queried: `copy_from` needs a table type to hang the dynamic
    /// target on.
    ferry_copy_anchor (id) {
        id -> Integer,
    }
}

pub(crate) use ferry_copy_anchor::table as anchor;

thread_local! {
    /// The target of the COPY this thread is starting.
    static COPY_TARGET: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Set the target of the next COPY on this thread.
pub(crate) fn aim(target: &str) {
    COPY_TARGET.with(|t| {
        let mut t = t.borrow_mut();
        t.clear();
        t.push_str(target);
    });
}

/// The target last set by [`aim`] on this thread.
pub(crate) struct DynamicTarget;

impl CopyTarget for DynamicTarget {
    type Table = ferry_copy_anchor::table;
    type SqlType = diesel::sql_types::Integer;

    fn walk_target(mut pass: AstPass<'_, '_, Pg>) -> diesel::QueryResult<()> {
        COPY_TARGET.with(|target| pass.push_sql(&target.borrow()));
        Ok(())
    }
}
