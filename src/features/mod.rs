//! Feature management: which features carry a model and which are dead weight, decided with
//! evidence across its versions (the seed's "feature lifecycle": importance analysis,
//! review, pruning).
//!
//! - [`correlation`]: Pearson and Spearman between a version's features on its training
//!   rows, computed at registration (`retrain::train_and_register`) and stored with the
//!   version.
pub mod correlation;

pub use correlation::{Correlation, Method};
