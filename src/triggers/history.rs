//! The trigger history as `modelwatch triggers history --format json` prints it and the
//! health report embeds it: each event with what the registry did because of it.

use super::EventRecord;
use modelwatch_store::registry::{AuditEntry, Registry};
use serde::Serialize;
use std::collections::BTreeMap;

/// An event and the registry's audit entries it caused (registration, gate verdict,
/// challenger, the canary's promotion or rollback).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HistoryRow {
    /// The event and what became of it.
    #[serde(flatten)]
    pub record: EventRecord,
    /// The audit entries naming the event, in the log's order.
    pub registry: Vec<AuditEntry>,
}

/// Each record of `history` with the audit entries of `registry` that name its event; none
/// where there is no registry or the model has no log.
pub fn with_registry(history: &[EventRecord], registry: Option<&Registry>) -> Vec<HistoryRow> {
    let mut logs: BTreeMap<String, Vec<AuditEntry>> = BTreeMap::new();
    history
        .iter()
        .map(|r| {
            let e = &r.event;
            let log = logs
                .entry(e.model.clone())
                .or_insert_with(|| registry.and_then(|g| g.log(&e.model).ok()).unwrap_or_default());
            let registry =
                log.iter().filter(|x| x.event_id.as_deref() == Some(e.id.as_str())).cloned().collect();
            HistoryRow { record: r.clone(), registry }
        })
        .collect()
}
