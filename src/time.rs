//! One grammar for time, on every surface: CLI flags, HTTP parameters, Grafana ranges and the
//! configuration file.
//!
//! - A **point in time**: RFC 3339 (`2026-11-29T04:10:00Z`), epoch seconds (up to ten
//!   digits) or milliseconds, `now`, or `now` plus or minus a duration (`now-6h`).
//! - A **duration**: a positive whole number and a unit: `500ms`, `90s`, `15m`, `6h`, `7d`,
//!   `2w` (bare digits are milliseconds).
//! - A **range**: `FROM..TO` (two points in time), or a duration meaning "the last ...".
//!
//! `now` is always given by the caller (from a [`Clock`](crate::Clock)), never read here, so
//! the same text means the same instant in a test at any hour.

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// The earliest time the grammar accepts: the Unix epoch (nothing is monitored before it).
pub const EARLIEST: Millis = 0;
/// The first time the grammar refuses: 2500-01-01T00:00:00Z, well inside what every clock
/// and partition date here can represent (a `Timestamp` in nanoseconds ends in 2554).
pub const LATEST: Millis = 16_725_225_600_000;

/// Text that is not a time, a duration or a range; the message names the text and says
/// what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Not a number followed by a unit.
    #[error("{0:?} is not a duration like 90s, 15m, 6h or 7d")]
    NotADuration(String),
    /// A unit this grammar does not know.
    #[error("{given:?}: unknown unit {unit:?} (ms, s, m, h, d, w)")]
    UnknownUnit {
        /// The whole text.
        given: String,
        /// The unit part.
        unit: String,
    },
    /// Zero or negative.
    #[error("{0:?}: a duration must be positive")]
    NotPositive(String),
    /// Not any form of a point in time.
    #[error("{0:?} is not a time (RFC 3339, epoch s or ms, now, now-6h)")]
    NotATime(String),
    /// `now` followed by something other than `-D` or `+D`.
    #[error("{0:?}: expected now, now-<duration> or now+<duration>")]
    BadNow(String),
    /// A range whose end is not after its start.
    #[error("{0:?}: the range ends before (or when) it starts")]
    Backwards(String),
    /// Before 1970 or from 2500 on (or beyond what 64-bit milliseconds hold).
    #[error("{0:?} is out of range: times run from 1970 to 2500")]
    OutOfRange(String),
}

/// Parses a duration into milliseconds: `500ms`, `90s`, `15m`, `6h`, `7d`, `2w`, or bare
/// digits (milliseconds).
pub fn parse_duration(s: &str) -> Result<Millis, TimeError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(if s.starts_with('-') {
            TimeError::NotPositive(s.to_string())
        } else {
            TimeError::NotADuration(s.to_string())
        });
    }
    let n: i64 = num.parse().map_err(|_| TimeError::OutOfRange(s.to_string()))?;
    let unit_ms: i64 = match unit {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return Err(TimeError::UnknownUnit { given: s.to_string(), unit: unit.to_string() }),
    };
    if n == 0 {
        return Err(TimeError::NotPositive(s.to_string()));
    }
    n.checked_mul(unit_ms).ok_or_else(|| TimeError::OutOfRange(s.to_string()))
}

/// Parses an age, a duration that may be zero (`0`, `0s`, `2d`): how old something must be.
pub fn parse_age(s: &str) -> Result<Millis, TimeError> {
    let t = s.trim();
    let zero = t.trim_start_matches('0');
    if t.starts_with('0') && ["", "ms", "s", "m", "h", "d", "w"].contains(&zero) {
        return Ok(0);
    }
    parse_duration(s)
}

/// Parses a point in time: RFC 3339, epoch seconds (up to ten digits) or milliseconds, `now`,
/// `now-6h` or `now+1d`, relative to `now`.
pub fn parse_time(s: &str, now: Millis) -> Result<Millis, TimeError> {
    let t = parse_unbounded(s, now)?;
    if (EARLIEST..LATEST).contains(&t) { Ok(t) } else { Err(TimeError::OutOfRange(s.trim().to_string())) }
}

/// [`parse_time`] before the check that the time lies between 1970 and 2500.
fn parse_unbounded(s: &str, now: Millis) -> Result<Millis, TimeError> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix("now") {
        if rest.is_empty() {
            return Ok(now);
        }
        let Some(sign) = rest.chars().next().filter(|c| matches!(c, '-' | '+')) else {
            return Err(TimeError::BadNow(s.to_string()));
        };
        let d = parse_duration(&rest[1..])?;
        let t = if sign == '-' { now.checked_sub(d) } else { now.checked_add(d) };
        return t.ok_or_else(|| TimeError::OutOfRange(s.to_string()));
    }
    if !s.is_empty() && s.trim_start_matches('-').bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = s.parse().map_err(|_| TimeError::OutOfRange(s.to_string()))?;
        // Ten digits or fewer are seconds (epoch seconds have ten digits until 2286).
        return if s.trim_start_matches('-').len() <= 10 {
            n.checked_mul(1_000).ok_or_else(|| TimeError::OutOfRange(s.to_string()))
        } else {
            Ok(n)
        };
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| TimeError::NotATime(s.to_string()))
}

/// Parses a range: `FROM..TO` (each a point in time), or a duration `D` meaning
/// `now-D..now`. The end must be after the start.
pub fn parse_range(s: &str, now: Millis) -> Result<(Millis, Millis), TimeError> {
    let (from, to) = match s.split_once("..") {
        Some((f, t)) => (parse_time(f, now)?, parse_time(t, now)?),
        None => {
            let d = parse_duration(s)?;
            let from = now.checked_sub(d).filter(|t| *t >= EARLIEST);
            (from.ok_or_else(|| TimeError::OutOfRange(s.trim().to_string()))?, now)
        }
    };
    if to <= from {
        return Err(TimeError::Backwards(s.trim().to_string()));
    }
    Ok((from, to))
}

/// Whether `s` reads as a range or a duration (rather than, say, a baseline's name).
pub fn is_range(s: &str) -> bool {
    s.contains("..") || parse_duration(s).is_ok()
}

/// A time as RFC 3339 in UTC with whole seconds (`2026-11-29T04:10:00Z`), for people: the
/// query crate's, so every surface prints times alike.
pub use modelwatch_query::{rfc3339, rfc3339_exact};

/// A time as a compact UTC stamp for IDs (`20261129T041000Z`).
pub fn compact_stamp(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// Converts a duration in milliseconds (as parsed here) into a [`std::time::Duration`].
pub fn to_std(ms: Millis) -> std::time::Duration {
    std::time::Duration::from_millis(ms.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_764_115_200_000; // 2025-11-26T00:00:00Z

    #[test]
    fn points_in_time_parse_in_every_form_grafana_and_people_use() {
        assert_eq!(parse_time("now", NOW), Ok(NOW));
        assert_eq!(parse_time("now-6h", NOW), Ok(NOW - 6 * 3_600_000));
        assert_eq!(parse_time("now+1d", NOW), Ok(NOW + 86_400_000));
        assert_eq!(parse_time("2025-11-26T00:00:00.000Z", NOW), Ok(NOW));
        assert_eq!(parse_time("2025-11-26T01:00:00+01:00", NOW), Ok(NOW));
        assert_eq!(parse_time("1764115200", NOW), Ok(NOW));
        assert_eq!(parse_time("1764115200000", NOW), Ok(NOW));
        assert_eq!(parse_time(" 1764115200000 ", NOW), Ok(NOW));
    }

    #[test]
    fn bad_times_name_the_text_and_what_was_expected() {
        let e = parse_time("yesterday", NOW).unwrap_err();
        assert_eq!(e, TimeError::NotATime("yesterday".into()));
        assert!(e.to_string().contains("\"yesterday\"") && e.to_string().contains("RFC 3339"));
        assert!(parse_time("now-6x", NOW).unwrap_err().to_string().contains("unknown unit \"x\""));
        assert_eq!(parse_time("now*2", NOW), Err(TimeError::BadNow("now*2".into())));
        assert_eq!(parse_time("", NOW), Err(TimeError::NotATime(String::new())));
        // Far beyond 64-bit milliseconds: an error, never an overflow or a panic.
        assert!(matches!(parse_time("now-99999999999999999d", NOW), Err(TimeError::OutOfRange(_))));
        assert!(matches!(parse_time("now-9999999999999d", NOW), Err(TimeError::OutOfRange(_))));
        assert!(matches!(parse_time("99999999999999999999999", NOW), Err(TimeError::OutOfRange(_))));
        // Times monitoring never sees are refused, not clamped or wrapped.
        for t in
            ["-9223372036854775808", "9223372036854775807", "-5000", "9999-12-31T23:59:59Z", "now+1000000d"]
        {
            let e = parse_time(t, NOW).unwrap_err();
            assert!(
                matches!(e, TimeError::OutOfRange(_)) && e.to_string().contains("1970 to 2500"),
                "{t}: {e}"
            );
        }
        assert_eq!(parse_time("1970-01-01T00:00:00Z", NOW), Ok(0));
        assert!(parse_range("99999w", NOW).is_err(), "the last 1,900 years start before 1970");
    }

    #[test]
    fn durations_take_a_positive_number_and_a_unit() {
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("90s"), Ok(90_000));
        assert_eq!(parse_duration("15m"), Ok(900_000));
        assert_eq!(parse_duration("6h"), Ok(21_600_000));
        assert_eq!(parse_duration("7d"), Ok(604_800_000));
        assert_eq!(parse_duration("2w"), Ok(1_209_600_000));
        assert_eq!(parse_duration("250"), Ok(250));
        assert_eq!(parse_duration("0s"), Err(TimeError::NotPositive("0s".into())));
        assert_eq!(parse_duration("-5m"), Err(TimeError::NotPositive("-5m".into())));
        assert_eq!(
            parse_duration("5 minutes").unwrap_err().to_string(),
            "\"5 minutes\": unknown unit \" minutes\" (ms, s, m, h, d, w)"
        );
        assert_eq!(parse_duration("m"), Err(TimeError::NotADuration("m".into())));
        assert!(matches!(parse_duration("9999999999999999w"), Err(TimeError::OutOfRange(_))));
    }

    #[test]
    fn ranges_are_from_to_or_the_last_duration() {
        assert_eq!(parse_range("7d", NOW), Ok((NOW - 7 * 86_400_000, NOW)));
        assert_eq!(parse_range("now-6h..now", NOW), Ok((NOW - 21_600_000, NOW)));
        assert_eq!(
            parse_range("2025-11-25T00:00:00Z..2025-11-26T00:00:00Z", NOW),
            Ok((NOW - 86_400_000, NOW))
        );
        assert_eq!(parse_range("now..now-1h", NOW), Err(TimeError::Backwards("now..now-1h".into())));
        assert_eq!(parse_range("now..now", NOW), Err(TimeError::Backwards("now..now".into())));
        assert!(parse_range("now-1h..tomorrow", NOW).unwrap_err().to_string().contains("tomorrow"));
        assert!(is_range("7d") && is_range("a..b") && !is_range("before-drift") && !is_range("v1.4"));
    }

    #[test]
    fn times_print_as_utc_rfc3339_and_compact_stamps() {
        assert_eq!(rfc3339(NOW + 1_999), "2025-11-26T00:00:01Z");
        assert_eq!(compact_stamp(NOW), "20251126T000000Z");
    }
}
