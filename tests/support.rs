//! What several test modules share.

/// The seeded generator the demo, the tests and the benches share.
pub use modelwatch::demo::Rng;
