//! Cluster mode: the tenants this node holds a lease on, with each lease's
//! epoch (the fencing token its driving appends carry).
//!
//! Who holds which lease is decided elsewhere (the cluster's lease manager,
//! in the shared database); the engine only keeps what it was told, so that
//! it drives exactly the tenants it owns, fences their appends, and stops
//! at once when told a lease is gone. A single node has no `Ownership`: it
//! owns every tenant and fences nothing.

use crate::ids::TenantId;
use crate::log::Fence;
use parking_lot::RwLock;
use std::collections::HashMap;

#[derive(Debug)]
pub struct Ownership {
    node: String,
    held: RwLock<HashMap<TenantId, i64>>,
}

impl Ownership {
    pub fn new(node: impl Into<String>) -> Self {
        Ownership {
            node: node.into(),
            held: RwLock::new(HashMap::new()),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The fence of the tenant's lease, if this node holds it.
    pub fn fence(&self, tenant: &TenantId) -> Option<Fence> {
        self.held.read().get(tenant).map(|epoch| Fence {
            node: self.node.clone(),
            epoch: *epoch,
        })
    }

    pub fn owns(&self, tenant: &TenantId) -> bool {
        self.held.read().contains_key(tenant)
    }

    /// Record a lease; `false` if the same epoch was already held (nothing
    /// new to drive).
    pub(crate) fn insert(&self, tenant: &TenantId, epoch: i64) -> bool {
        self.held.write().insert(tenant.clone(), epoch) != Some(epoch)
    }

    /// Forget a lease; `false` if it was not held.
    pub(crate) fn remove(&self, tenant: &TenantId) -> bool {
        self.held.write().remove(tenant).is_some()
    }

    /// Every lease held, by tenant.
    pub fn held(&self) -> Vec<(TenantId, i64)> {
        let mut all: Vec<_> = self
            .held
            .read()
            .iter()
            .map(|(t, e)| (t.clone(), *e))
            .collect();
        all.sort();
        all
    }
}
