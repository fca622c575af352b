//! The manifest: the list of published Parquet files. Readers see exactly the files it
//! lists; it is replaced atomically (temporary file, fsync, rename, fsync of the directory).

use crate::rows::Resolution;
use crate::table::Table;
use serde::{Deserialize, Serialize};

/// One published file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Its table.
    pub table: Table,
    /// The resolution of its rows.
    pub resolution: Resolution,
    /// The UTC date of its rows (`YYYY-MM-DD`), the partition.
    pub date: String,
    /// Path relative to the data directory.
    pub path: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// Earliest row time, ms.
    pub min_ms: i64,
    /// Latest row time, ms.
    pub max_ms: i64,
    /// For roll-up files: the raw rows of the day they were computed from (a day is rolled
    /// up again when its raw rows change).
    #[serde(default)]
    pub source_rows: u64,
    /// For raw files: whether their rows are in the day's roll-ups already.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rolled_up: bool,
    /// The file's format ([`crate::table::FORMAT`] when written; files listed before the
    /// field are format 1). Maintenance rewrites older distribution files, a few per pass.
    #[serde(default = "format_1")]
    pub format: u32,
}

fn format_1() -> u32 {
    1
}

/// A file no longer listed (replaced by compaction, or past retention), deleted once readers
/// that still hold the previous manifest have had time to finish reading it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Garbage {
    /// Path relative to the store root.
    pub path: String,
    /// When it stopped being listed, ms (the store's clock).
    pub since_ms: i64,
}

/// The current state of the published data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Id of the next file to write.
    pub next_file: u64,
    /// The highest WAL sequence number whose rows are in the listed files: WAL records up to
    /// it are skipped on recovery, so a crash between publishing and emptying the WAL
    /// duplicates nothing.
    pub covered_seq: u64,
    /// The files.
    pub files: Vec<FileEntry>,
    /// The labelled-examples files (a sibling dataset outside compaction, roll-ups and
    /// retention; see `crate::examples`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<crate::examples::ExampleFile>,
    /// Files no longer listed, waiting for their grace period to pass before deletion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub garbage: Vec<Garbage>,
    /// The host that published this manifest (empty before 2026-11-29).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// Whether raw files carry `rolled_up` (false in manifests written before it existed,
    /// whose roll-up state is inferred once from `source_rows`).
    #[serde(default)]
    pub rolled_up_flags: bool,
}

/// The manifest as stored: versioned, so a later format can still read this one.
#[derive(Serialize, Deserialize)]
#[serde(tag = "version")]
enum Stored {
    #[serde(rename = "1")]
    V1(Manifest),
}

impl Manifest {
    /// The manifest's JSON.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(&Stored::V1(self.clone())).unwrap_or_default()
    }

    /// Parses a manifest.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, String> {
        match serde_json::from_slice::<Stored>(bytes) {
            Ok(Stored::V1(m)) => Ok(m),
            Err(e) => Err(format!("unreadable manifest: {e}")),
        }
    }
}

/// The UTC date (`YYYY-MM-DD`) of a time in ms since the Unix epoch.
pub fn date_of(ms: i64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a time in ms since the Unix epoch.
pub fn rfc3339_secs(ms: i64) -> String {
    let s = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{}T{:02}:{:02}:{:02}Z", date_of(ms), s / 3600, s / 60 % 60, s % 60)
}

/// Start of the UTC day holding `ms`.
pub fn day_start(ms: i64) -> i64 {
    ms.div_euclid(86_400_000) * 86_400_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(1_764_115_200_000), "2025-11-26");
        assert_eq!(date_of(951_782_400_000), "2000-02-29");
        assert_eq!(date_of(-1), "1969-12-31");
        assert_eq!(rfc3339_secs(1_764_115_200_000 + 3_723_000), "2025-11-26T01:02:03Z");
    }

    #[test]
    fn round_trip_is_versioned() {
        let m = Manifest { next_file: 3, covered_seq: 9, ..Default::default() };
        let b = m.encode();
        assert!(String::from_utf8_lossy(&b).contains("\"version\": \"1\""));
        assert_eq!(Manifest::decode(&b).unwrap(), m);
        assert!(Manifest::decode(b"{\"version\":\"7\"}").unwrap_err().contains("unreadable"));
    }
}
