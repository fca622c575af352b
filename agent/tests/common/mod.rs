//! Helpers the agent's test binaries share: what a snapshot holds, found by name.

use modelwatch_agent::{MetricValue, Snapshot};
use std::sync::Arc;

/// The values of every metric series named `name`, in snapshot order.
pub fn metric(snapshots: &[Arc<Snapshot>], name: &str) -> Vec<MetricValue> {
    snapshots
        .iter()
        .flat_map(|s| s.metrics.iter())
        .filter(|m| &*m.name == name)
        .map(|m| m.value.clone())
        .collect()
}
