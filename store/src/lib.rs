//! modelwatch-store: the durable columnar store of modelwatch.
//!
//! It will receive the agent's interval snapshots through [`modelwatch_agent::Sink`], frame
//! them into a write-ahead log, and publish them as immutable Parquet files listed in a
//! manifest (see `ARCHITECTURE.md`, data flow step 3). The crate is a placeholder in the
//! workspace until that work lands; it exports nothing yet.
#![forbid(unsafe_code)]
