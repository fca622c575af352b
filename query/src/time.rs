//! Time on the read side: the steps windows snap to, the windows of a report series, and
//! instants as RFC 3339 text.

use crate::engine::Range;

/// The steps windows snap to: round numbers, so that consecutive refreshes of a dashboard
/// share windows (and cache entries), and so that steps of a minute or more can read the
/// roll-ups. Ascending, in ms.
pub const NICE_STEPS: [i64; 18] = [
    1_000,
    5_000,
    10_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    900_000,
    1_800_000,
    3_600_000,
    7_200_000,
    10_800_000,
    21_600_000,
    43_200_000,
    86_400_000,
    604_800_000,
    2_592_000_000,
];

/// The windows of a report series (drift, quality) over a panel's range: its step widened
/// to an hour or more and to at most 48 windows (each window is a whole report), rounded up
/// to a nice step; the first window starts at the range's start aligned down to the step,
/// the last one starts before the range's end.
pub fn report_windows(range: Range) -> Vec<(i64, i64)> {
    let span = range.to_ms - range.from_ms;
    let wanted = range.step_ms.max(3_600_000).max(span / 48);
    let step = NICE_STEPS.iter().copied().find(|&s| s >= wanted).unwrap_or(wanted);
    let from = range.from_ms.div_euclid(step) * step;
    (0..).map(|k| from + k * step).take_while(|&t| t < range.to_ms).map(|t| (t, t + step)).collect()
}

/// A duration in the time grammar's largest whole unit: `2d`, `36h`, `90m`, `45s`, else
/// `1500ms`.
pub fn duration_words(ms: i64) -> String {
    [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)]
        .iter()
        .find(|(_, u)| ms != 0 && ms % u == 0)
        .map_or_else(|| format!("{ms}ms"), |(name, u)| format!("{}{name}", ms / u))
}

/// An instant (ms since the Unix epoch) as RFC 3339 text in UTC, to the second
/// (`2025-11-26T00:00:00Z`); empty when out of chrono's range.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// [`rfc3339`] with milliseconds when the instant has some (`2025-11-26T00:00:00.350Z`), so
/// a printed instant can be given back and means the same millisecond.
pub fn rfc3339_exact(ms: i64) -> String {
    if ms.rem_euclid(1_000) == 0 {
        rfc3339(ms)
    } else {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::T0;

    fn range(from_ms: i64, to_ms: i64, step_ms: i64) -> Range {
        Range { from_ms, to_ms, step_ms }
    }

    #[test]
    fn report_windows_are_an_hour_or_more_and_at_most_48() {
        // An hour at a minute's step: one window of an hour.
        assert_eq!(report_windows(range(T0, T0 + 3_600_000, 60_000)), [(T0, T0 + 3_600_000)]);
        // A day: 24 hourly windows.
        let day = report_windows(range(T0, T0 + 86_400_000, 60_000));
        assert_eq!(day.len(), 24);
        assert!(day.windows(2).all(|w| w[0].1 == w[1].0 && w[0].1 - w[0].0 == 3_600_000));
        // A week: 168 h / 48 = 3.5 h, rounded up to 6 h; 28 windows.
        let week = report_windows(range(T0, T0 + 7 * 86_400_000, 60_000));
        assert_eq!((week.len(), week[0].1 - week[0].0), (28, 21_600_000));
        // A start off the step is aligned down; a larger step asked for is kept.
        let off = report_windows(range(T0 + 1_800_000, T0 + 5_400_000, 7_200_000));
        assert_eq!(off, [(T0, T0 + 7_200_000)]);
        // Past the largest nice step, the wanted step itself.
        let years = report_windows(range(0, 48 * 3_000_000_000, 60_000));
        assert_eq!((years.len(), years[0].1), (48, 3_000_000_000));
        assert!(report_windows(range(T0, T0, 60_000)).is_empty());
    }

    #[test]
    fn nice_steps_ascend_and_instants_print_as_rfc3339() {
        assert!(NICE_STEPS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(rfc3339(T0), "2025-11-26T00:00:00Z");
        assert_eq!(rfc3339(T0 + 1_500), "2025-11-26T00:00:01Z");
    }
}
