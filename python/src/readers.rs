//! The readers: `query`, `drift` and `quality` on a store, with the GIL released.

use pyo3::prelude::*;

pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
