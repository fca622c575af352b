//! Feature management: which features carry a model and which are dead weight, decided with
//! evidence across its versions (the seed's "feature lifecycle": importance analysis,
//! review, pruning).
//!
//! - [`correlation`]: Pearson and Spearman between a version's features on its training
//!   rows, computed at registration (`retrain::train_and_register`) and stored with the
//!   version.
//! - [`pruning`]: the candidates for removal, each with its reason and the evidence of every
//!   version it rests on, and those kept because the gate's bias check would flag their
//!   removal.
//! - [`report`]: the quarterly review's document, `modelwatch features report`: importance
//!   per version, the matrix, the candidates and each feature's drift over the period.
pub mod correlation;
pub mod pruning;
pub mod report;

pub use correlation::{Correlation, Method};
pub use pruning::{Candidate, Evidence, Kept, PruningSettings};
pub use report::{FeaturesReport, ReportError, ReportRequest, features_report};
