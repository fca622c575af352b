//! modelwatch-query: the read side of modelwatch.
//!
//! It will answer the CLI, the Grafana JSON datasource and the Prometheus endpoint from the
//! store: window aggregation, histogram math, drift statistics and quality metrics. The crate
//! is a placeholder in the workspace until that work lands; it exports nothing yet.
#![forbid(unsafe_code)]
