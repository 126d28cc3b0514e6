//! The tenants' table lists as the submit paths check requests against
//! them, kept per tenant for `FERRY_TABLES_CACHE_SECS` so that a submit does
//! not introspect the tenant's database each time.
//!
//! The cache only ever *accepts*: a request naming a table the cached list
//! lacks reads the list afresh before it is refused, so a table created a
//! moment ago is never refused. A table dropped since the list was read is
//! accepted at submit and found missing by the workflow's own check (the
//! export's plan step fails it with `unknown_table`), which reads the
//! database, not this cache. Only lists are kept, never a missing tenant,
//! so a tenant created a moment ago is found at once.

use ferry_engine::TenantId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Tenants kept before expired lists are dropped.
const TENANTS_MAX: usize = 10_000;

/// Each tenant's list and when it was read.
type Lists = HashMap<TenantId, (Instant, Arc<Vec<String>>)>;

pub struct TableCache {
    ttl: Duration,
    lists: Mutex<Lists>,
}

impl TableCache {
    /// Lists kept for `ttl` (zero: nothing is kept).
    pub fn new(ttl: Duration) -> TableCache {
        TableCache {
            ttl,
            lists: Mutex::new(HashMap::new()),
        }
    }

    /// The lists; a panic elsewhere while holding them left them whole
    /// (every change is one map operation).
    fn lists(&self) -> MutexGuard<'_, Lists> {
        self.lists.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `tenant`'s list if it was read less than the TTL ago and holds every
    /// table of `needed`.
    pub fn get<'a>(
        &self,
        tenant: &TenantId,
        needed: impl IntoIterator<Item = &'a str>,
    ) -> Option<Arc<Vec<String>>> {
        let lists = self.lists();
        let (read_at, tables) = lists.get(tenant)?;
        if read_at.elapsed() >= self.ttl {
            return None;
        }
        let mut needed = needed.into_iter();
        needed
            .all(|t| tables.iter().any(|have| have == t))
            .then(|| tables.clone())
    }

    /// Keep `tables`, just read from `tenant`'s database.
    pub fn put(&self, tenant: &TenantId, tables: Vec<String>) -> Arc<Vec<String>> {
        let tables = Arc::new(tables);
        if self.ttl.is_zero() {
            return tables;
        }
        let mut lists = self.lists();
        if lists.len() >= TENANTS_MAX {
            let ttl = self.ttl;
            lists.retain(|_, (read_at, _)| read_at.elapsed() < ttl);
        }
        lists.insert(tenant.clone(), (Instant::now(), tables.clone()));
        tables
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    #[test]
    fn a_list_answers_only_while_fresh_and_only_for_tables_it_holds() {
        let cache = TableCache::new(Duration::from_secs(60));
        let acme = tenant("acme");
        assert!(cache.get(&acme, []).is_none());
        cache.put(&acme, vec!["orders".into(), "users".into()]);
        assert_eq!(cache.get(&acme, ["orders"]).unwrap().len(), 2);
        assert!(cache.get(&acme, []).is_some());
        // A table the list lacks sends the caller to the database.
        assert!(cache.get(&acme, ["orders", "invoices"]).is_none());
        assert!(cache.get(&tenant("globex"), []).is_none());
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let cache = TableCache::new(Duration::ZERO);
        let acme = tenant("acme");
        cache.put(&acme, vec!["orders".into()]);
        assert!(cache.get(&acme, []).is_none());
    }
}
