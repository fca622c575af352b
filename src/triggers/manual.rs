//! Manual retraining: `modelwatch triggers fire --reason ...`, `POST
//! /api/v1/triggers/fire` or [`TriggerEngine::fire`](super::TriggerEngine::fire). Not
//! evaluated: a person (or a script) decides; the cool-down applies unless forced.

use super::{Evidence, Reason};
use serde::{Deserialize, Serialize};

/// Why a person fired.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ManualEvidence {
    /// In their words.
    pub reason: String,
    /// Past the cool-down.
    pub forced: bool,
}

/// The reason of a manual event.
pub(super) fn reason(text: &str, forced: bool) -> Reason {
    Reason {
        summary: text.to_string(),
        evidence: Evidence::Manual(ManualEvidence { reason: text.to_string(), forced }),
    }
}
