//! Charts drawn here, in Rust, as inline SVG: a line chart (several series, one point per
//! window), horizontal bars, a histogram, a heatmap and a timeline.
//!
//! Each drawn mark (a point, a bar, a bin, a cell, an event) is an element with
//! `class="mark"` and its data: `data-chart` (the chart), `data-series`, `data-x`,
//! `data-y` (for a cell `data-v`, its value), in the units of the embedded data, so a test
//! (or a reader with a browser's inspector) can match what is drawn with what it was drawn
//! from. A value that is not a finite number is no data: a gap in a line, a bar of no width
//! marked `gap` and labelled "no data", a grey cell; a chart with nothing to draw says
//! "no data" instead.
//!
//! Every position is computed so that no finite input (±1e300, a constant series, one
//! point) makes a coordinate that is not finite.

use super::html::escape;
use std::fmt::Write;

/// Colours of series, in order (Tableau 10).
pub const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf",
];

/// The colour of the `i`th series.
pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// A number for a data attribute: its shortest text that reads back as the same `f64`
/// (`1e300`, `0.1`), or `null` when it is not finite.
pub fn attr_num(v: f64) -> String {
    if v.is_finite() { format!("{v:?}") } else { "null".into() }
}

/// A number for people: four significant digits, scientific past a million or under a
/// thousandth; "no data" when not finite.
pub fn short(v: f64) -> String {
    if !v.is_finite() {
        return "no data".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:.3e}");
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// The one threshold every item shares (a line to draw), or none when they differ or have
/// none.
pub fn shared_threshold(thresholds: impl IntoIterator<Item = f64>) -> Option<f64> {
    let t: Vec<f64> = thresholds.into_iter().filter(|t| t.is_finite()).collect();
    t.first().copied().filter(|f| t.iter().all(|u| u == f))
}

/// An instant (ms) as `MM-DD HH:MM` UTC, for axes.
pub fn time_label(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// A linear map of `[lo, hi]` onto `[a, b]`, exact in halves so that bounds of ±1e308 do not
/// overflow.
#[derive(Clone, Copy, Debug)]
struct Scale {
    lo: f64,
    hi: f64,
    a: f64,
    b: f64,
}

impl Scale {
    /// A scale over the finite bounds `lo..hi`, widened when they meet (or are missing).
    fn new(lo: f64, hi: f64, a: f64, b: f64) -> Scale {
        let (lo, hi) = match (lo.is_finite(), hi.is_finite()) {
            (true, true) if hi > lo => (lo, hi),
            (true, true) => {
                let d = if lo == 0.0 { 1.0 } else { lo.abs() / 8.0 };
                ((lo - d).max(-f64::MAX), (hi + d).min(f64::MAX))
            }
            _ => (0.0, 1.0),
        };
        Scale { lo, hi, a, b }
    }

    fn at(&self, v: f64) -> f64 {
        let t = (v / 2.0 - self.lo / 2.0) / (self.hi / 2.0 - self.lo / 2.0);
        let t = if t.is_finite() { t.clamp(-0.05, 1.05) } else { 0.0 };
        self.a + t * (self.b - self.a)
    }
}

/// About `n` round ticks within `[lo, hi]` (the bounds themselves when no round step fits).
fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let raw = (hi / 2.0 - lo / 2.0) * 2.0 / n as f64;
    if !(raw.is_finite() && raw > 0.0) {
        return if lo.is_finite() && hi.is_finite() { vec![lo, hi] } else { Vec::new() };
    }
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 && out.len() < 20 {
        out.push(if t == 0.0 { 0.0 } else { t });
        t += step;
    }
    out
}

/// Ticks of a time axis over `[from, to]`: on multiples of a round step, at most about 8.
fn time_ticks(from: i64, to: i64) -> Vec<i64> {
    const STEPS: [i64; 12] = [
        60_000,
        300_000,
        900_000,
        3_600_000,
        10_800_000,
        21_600_000,
        43_200_000,
        86_400_000,
        172_800_000,
        604_800_000,
        2_592_000_000,
        31_536_000_000,
    ];
    let span = to.saturating_sub(from).max(1);
    let step = STEPS.iter().copied().find(|s| span / s <= 8).unwrap_or(span / 8 + 1);
    let first = from.div_euclid(step) * step + if from.rem_euclid(step) == 0 { 0 } else { step };
    (0..).map(|k| first + k * step).take_while(|&t| t <= to).take(12).collect()
}

/// A coordinate, two decimals.
fn c(v: f64) -> String {
    format!("{v:.2}")
}

/// The attributes every mark carries.
fn mark(chart: &str, series: &str, x: &str, y: &str) -> String {
    format!(
        "data-chart=\"{}\" data-series=\"{}\" data-x=\"{}\" data-y=\"{}\"",
        escape(chart),
        escape(series),
        escape(x),
        escape(y)
    )
}

/// "no data" in place of a chart.
pub fn no_data(chart: &str, why: &str) -> String {
    format!("<p class=\"nodata\" data-chart=\"{}\">no data{}</p>\n", escape(chart), escape(why))
}

fn figure_open(out: &mut String, chart: &str, kind: &str, extra: &str) {
    let _ =
        write!(out, "<figure class=\"chart\" data-chart=\"{}\" data-kind=\"{kind}\"{extra}>", escape(chart));
}

fn svg_open(out: &mut String, w: f64, h: f64, chart: &str) {
    let _ = write!(
        out,
        "<svg width=\"{w:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\" role=\"img\" aria-label=\"{}\">",
        escape(chart)
    );
}

/// Horizontal grid lines at about `n` round values of `sy`, labelled on the left.
fn y_grid(out: &mut String, sy: &Scale, (left, right): (f64, f64), n: usize, unit: &str) {
    for t in ticks(sy.lo, sy.hi, n) {
        let y = sy.at(t);
        let label = if unit.is_empty() { short(t) } else { format!("{} {unit}", short(t)) };
        let _ = write!(
            out,
            "<line x1=\"{}\" x2=\"{}\" y1=\"{y:.2}\" y2=\"{y:.2}\" stroke=\"#eaeef2\"/><text x=\"{}\" y=\"{:.2}\" text-anchor=\"end\">{}</text>",
            c(left),
            c(right),
            c(left - 4.0),
            y + 4.0,
            escape(&label)
        );
    }
}

fn legend(out: &mut String, names: &[&str]) {
    out.push_str("<div class=\"legend\">");
    for (i, n) in names.iter().enumerate() {
        let _ = write!(out, "<span><i style=\"background:{}\"></i>{}</span>", colour(i), escape(n));
    }
    out.push_str("</div>");
}

/// A series of a line chart: `(x, y)` points, a `y` that is not finite a gap.
#[derive(Clone, Debug)]
pub struct Line {
    /// Its name (legend, `data-series`).
    pub name: String,
    /// `(x, y)`: x a window's start (ms) or a version.
    pub points: Vec<(f64, f64)>,
}

/// What the x axis of a line chart counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XAxis {
    /// Instants in ms (windows' starts); `data-x` is the integer.
    Time,
    /// Plain numbers (model versions), one tick per distinct x.
    Number,
}

/// A line chart: several series over a shared x axis.
pub struct LineChart<'a> {
    /// The chart's name in `data-chart`.
    pub id: &'a str,
    /// What x counts.
    pub x: XAxis,
    /// The x range drawn (a report's range), or the points' own when `None`.
    pub x_range: Option<(f64, f64)>,
    /// Consecutive points further apart than this are not joined (a window without data).
    pub step: Option<f64>,
    /// Values are shown divided by this (ns as ms: 1e6); `data-y` keeps them as they are.
    pub divide: f64,
    /// The unit shown on the axis, after division.
    pub unit: &'a str,
    /// A horizontal line at this (undivided) value, e.g. a drift threshold.
    pub threshold: Option<f64>,
    /// The series, drawn in order.
    pub lines: &'a [Line],
    /// At most this many series are drawn (the first ones); the rest are said to exist.
    pub max_lines: usize,
}

const W: f64 = 720.0;

/// Draws a line chart, or "no data" when no series has a finite point.
pub fn line_chart(ch: &LineChart) -> String {
    let finite = |l: &&Line| l.points.iter().any(|p| p.0.is_finite() && p.1.is_finite());
    let drawn: Vec<&Line> = ch.lines.iter().filter(finite).take(ch.max_lines).collect();
    if drawn.is_empty() {
        return no_data(ch.id, "");
    }
    let total = ch.lines.iter().filter(finite).count();
    let div = if ch.divide.is_finite() && ch.divide != 0.0 { ch.divide } else { 1.0 };
    let ys = drawn.iter().flat_map(|l| l.points.iter()).map(|p| p.1 / div).filter(|v| v.is_finite());
    let (mut lo, mut hi) = ys.fold((0.0f64, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if let Some(t) = ch.threshold.map(|t| t / div).filter(|t| t.is_finite()) {
        lo = lo.min(t);
        hi = hi.max(t);
    }
    let xs = drawn.iter().flat_map(|l| l.points.iter()).map(|p| p.0).filter(|v| v.is_finite());
    let (x0, x1) = ch
        .x_range
        .unwrap_or_else(|| xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v))));
    let (h, left, right, top, bottom) = (240.0, 70.0, 12.0, 10.0, 28.0);
    let sx = Scale::new(x0, x1, left, W - right);
    let sy = Scale::new(lo, hi, h - bottom, top);
    let mut out = String::new();
    figure_open(
        &mut out,
        ch.id,
        "line",
        &format!(" data-series-total=\"{total}\" data-series-drawn=\"{}\"", drawn.len()),
    );
    svg_open(&mut out, W, h, ch.id);
    y_grid(&mut out, &sy, (left, W - right), 5, ch.unit);
    let xticks: Vec<(f64, String)> = match ch.x {
        XAxis::Time => {
            time_ticks(x0 as i64, x1 as i64).into_iter().map(|t| (t as f64, time_label(t))).collect()
        }
        XAxis::Number => {
            let mut v: Vec<f64> =
                drawn.iter().flat_map(|l| l.points.iter().map(|p| p.0)).filter(|v| v.is_finite()).collect();
            v.sort_by(f64::total_cmp);
            v.dedup();
            let every = v.len().div_ceil(12).max(1);
            v.into_iter().step_by(every).map(|x| (x, short(x))).collect()
        }
    };
    for (x, label) in xticks {
        let px = sx.at(x);
        let _ = write!(
            out,
            "<line x1=\"{px:.2}\" x2=\"{px:.2}\" y1=\"{}\" y2=\"{}\" stroke=\"#d0d7de\"/><text x=\"{px:.2}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            c(h - bottom),
            c(h - bottom + 4.0),
            c(h - bottom + 16.0),
            escape(&label)
        );
    }
    if let Some(t) = ch.threshold.filter(|t| t.is_finite()) {
        let y = sy.at(t / div);
        let _ = write!(
            out,
            "<line class=\"threshold\" x1=\"{}\" x2=\"{}\" y1=\"{y:.2}\" y2=\"{y:.2}\" stroke=\"#cf222e\" stroke-dasharray=\"4 3\"/>",
            c(left),
            c(W - right)
        );
    }
    for (i, l) in drawn.iter().enumerate() {
        let col = colour(i);
        let mut d = String::new();
        let mut prev: Option<f64> = None;
        for &(x, y) in &l.points {
            if !(x.is_finite() && y.is_finite()) {
                prev = None;
                continue;
            }
            let joined = prev.is_some_and(|p| ch.step.is_none_or(|s| x - p <= s * 1.5));
            let _ = write!(d, "{}{:.2},{:.2}", if joined { "L" } else { "M" }, sx.at(x), sy.at(y / div));
            prev = Some(x);
        }
        let _ = write!(
            out,
            "<path class=\"line\" d=\"{d}\" fill=\"none\" stroke=\"{col}\" stroke-width=\"1.5\"/>"
        );
        for &(x, y) in &l.points {
            if !(x.is_finite() && y.is_finite()) {
                continue;
            }
            let xk = if ch.x == XAxis::Time { format!("{}", x as i64) } else { attr_num(x) };
            let shown = match ch.x {
                XAxis::Time => time_label(x as i64),
                XAxis::Number => short(x),
            };
            let _ = write!(
                out,
                "<circle class=\"mark\" {} cx=\"{:.2}\" cy=\"{:.2}\" r=\"2.5\" fill=\"{col}\"><title>{}</title></circle>",
                mark(ch.id, &l.name, &xk, &attr_num(y)),
                sx.at(x),
                sy.at(y / div),
                escape(&format!("{}: {shown}: {} {}", l.name, short(y / div), ch.unit))
            );
        }
    }
    out.push_str("</svg>");
    legend(&mut out, &drawn.iter().map(|l| l.name.as_str()).collect::<Vec<_>>());
    if total > drawn.len() {
        let _ = write!(
            out,
            "<figcaption>{} of {total} series drawn (the first in order); every series is in the embedded data</figcaption>",
            drawn.len()
        );
    }
    out.push_str("</figure>\n");
    out
}

/// How a bar is coloured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// The series' colour (its index in the palette).
    Series(usize),
    /// Fine (green).
    Ok,
    /// Worth a look (amber).
    Warn,
    /// Past its threshold (red).
    Bad,
}

impl Tone {
    fn fill(self) -> &'static str {
        match self {
            Tone::Series(i) => colour(i),
            Tone::Ok => "#2da44e",
            Tone::Warn => "#d4a72c",
            Tone::Bad => "#cf222e",
        }
    }
}

/// One bar: a label (the row), its series (several bars may share a label), a value (not
/// finite: no data).
#[derive(Clone, Debug)]
pub struct Bar {
    /// The row's label (a feature, a segment).
    pub label: String,
    /// The series it belongs to (`data-series`).
    pub series: String,
    /// Its value.
    pub value: f64,
    /// Its colour.
    pub tone: Tone,
}

/// Horizontal bars, one row each, from zero to the value.
pub struct BarChart<'a> {
    /// The chart's name in `data-chart`.
    pub id: &'a str,
    /// The bars, top to bottom.
    pub bars: &'a [Bar],
    /// Values are shown divided by this; `data-y` keeps them.
    pub divide: f64,
    /// The unit shown, after division.
    pub unit: &'a str,
    /// A vertical line at this (undivided) value.
    pub threshold: Option<f64>,
}

/// The drift bars both pages draw: one bar per feature in its own units (effect size or
/// statistic), chart `drift`, with the line of the features' common threshold if they share one.
pub fn drift_bars(bars: &[Bar], threshold: Option<f64>) -> String {
    bar_chart(&BarChart { id: "drift", bars, divide: 1.0, unit: "", threshold })
}

/// Draws horizontal bars (every bar a mark, one with no data marked `gap`), or "no data"
/// when there is no bar.
pub fn bar_chart(ch: &BarChart) -> String {
    if ch.bars.is_empty() {
        return no_data(ch.id, "");
    }
    let div = if ch.divide.is_finite() && ch.divide != 0.0 { ch.divide } else { 1.0 };
    let vals = ch.bars.iter().map(|b| b.value / div).filter(|v| v.is_finite());
    let (mut lo, mut hi) = vals.fold((0.0f64, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    if let Some(t) = ch.threshold.map(|t| t / div).filter(|t| t.is_finite()) {
        lo = lo.min(t);
        hi = hi.max(t);
    }
    let (row, label_w, right, top) = (16.0, 190.0, 70.0, 18.0);
    let h = top + row * ch.bars.len() as f64 + 6.0;
    let sx = Scale::new(lo, hi, label_w, W - right);
    let mut out = String::new();
    figure_open(&mut out, ch.id, "bar", &format!(" data-bars=\"{}\"", ch.bars.len()));
    svg_open(&mut out, W, h, ch.id);
    for t in ticks(sx.lo, sx.hi, 5) {
        let x = sx.at(t);
        let _ = write!(
            out,
            "<line x1=\"{x:.2}\" x2=\"{x:.2}\" y1=\"{}\" y2=\"{h:.0}\" stroke=\"#eaeef2\"/><text x=\"{x:.2}\" y=\"12\" text-anchor=\"middle\">{}</text>",
            c(top),
            escape(&format!(
                "{}{}",
                short(t),
                if ch.unit.is_empty() { String::new() } else { format!(" {}", ch.unit) }
            ))
        );
    }
    let zero = sx.at(0.0);
    let mut previous = None;
    for (i, b) in ch.bars.iter().enumerate() {
        let y = top + row * i as f64;
        if previous != Some(b.label.as_str()) {
            let _ = write!(
                out,
                "<text x=\"{}\" y=\"{:.2}\" text-anchor=\"end\">{}<title>{}</title></text>",
                c(label_w - 6.0),
                y + row * 0.72,
                escape(&clip(&b.label, 30)),
                escape(&b.label)
            );
        }
        previous = Some(b.label.as_str());
        let v = b.value / div;
        if v.is_finite() {
            let x = sx.at(v);
            let (x0, w) = if x >= zero { (zero, x - zero) } else { (x, zero - x) };
            let _ = write!(
                out,
                "<rect class=\"mark\" {} x=\"{x0:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{:.2}\" fill=\"{}\"><title>{}</title></rect><text x=\"{:.2}\" y=\"{:.2}\">{}</text>",
                mark(ch.id, &b.series, &b.label, &attr_num(b.value)),
                y + 2.0,
                w.max(0.5),
                row - 4.0,
                b.tone.fill(),
                escape(&format!("{} ({}): {} {}", b.label, b.series, short(v), ch.unit)),
                x0 + w.max(0.5) + 3.0,
                y + row * 0.72,
                escape(&short(v))
            );
        } else {
            let _ = write!(
                out,
                "<rect class=\"mark gap\" {} x=\"{zero:.2}\" y=\"{:.2}\" width=\"0\" height=\"{:.2}\"/><text class=\"nodata\" x=\"{:.2}\" y=\"{:.2}\">no data</text>",
                mark(ch.id, &b.series, &b.label, "null"),
                y + 2.0,
                row - 4.0,
                zero + 3.0,
                y + row * 0.72
            );
        }
    }
    if let Some(t) = ch.threshold.filter(|t| t.is_finite()) {
        let x = sx.at(t / div);
        let _ = write!(
            out,
            "<line class=\"threshold\" x1=\"{x:.2}\" x2=\"{x:.2}\" y1=\"{}\" y2=\"{h:.0}\" stroke=\"#cf222e\" stroke-dasharray=\"4 3\"/>",
            c(top)
        );
    }
    out.push_str("</svg>");
    // A legend when bars of several series share the rows (realised and estimated).
    let mut series: Vec<&str> = Vec::new();
    for b in ch.bars {
        if let Tone::Series(i) = b.tone
            && series.len() == i
            && !series.contains(&b.series.as_str())
        {
            series.push(&b.series);
        }
    }
    if series.len() > 1 {
        legend(&mut out, &series);
    }
    out.push_str("</figure>\n");
    out
}

/// At most `n` characters of `s`, an ellipsis standing for the rest.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { s.chars().take(n - 1).chain(['…']).collect() }
}

/// A histogram: `(lower, upper, count)` bins side by side.
pub struct Histogram<'a> {
    /// The chart's name in `data-chart`.
    pub id: &'a str,
    /// The series' name.
    pub series: &'a str,
    /// The bins, in order.
    pub bins: &'a [(f64, f64, f64)],
}

/// Draws a histogram (every bin a mark, `data-x` its lower bound, `data-x2` its upper,
/// `data-y` its count), or "no data" when every count is zero.
pub fn histogram(ch: &Histogram) -> String {
    let total: f64 = ch.bins.iter().map(|b| b.2).filter(|v| v.is_finite()).sum();
    if ch.bins.is_empty() || total <= 0.0 {
        return no_data(ch.id, "");
    }
    let hi = ch.bins.iter().map(|b| b.2).filter(|v| v.is_finite()).fold(0.0, f64::max);
    let (h, left, right, top, bottom) = (220.0, 70.0, 12.0, 10.0, 28.0);
    let lo_x = ch.bins.first().map_or(0.0, |b| b.0);
    let hi_x = ch.bins.last().map_or(1.0, |b| b.1);
    let sx = Scale::new(lo_x, hi_x, left, W - right);
    let sy = Scale::new(0.0, hi, h - bottom, top);
    let mut out = String::new();
    figure_open(&mut out, ch.id, "histogram", &format!(" data-bins=\"{}\"", ch.bins.len()));
    svg_open(&mut out, W, h, ch.id);
    y_grid(&mut out, &sy, (left, W - right), 4, "");
    for t in ticks(sx.lo, sx.hi, 10) {
        let _ = write!(
            out,
            "<text x=\"{:.2}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            sx.at(t),
            c(h - 10.0),
            escape(&short(t))
        );
    }
    for &(a, b, n) in ch.bins {
        let (x0, x1) = (sx.at(a), sx.at(b));
        let y = if n.is_finite() { sy.at(n) } else { h - bottom };
        let _ = write!(
            out,
            "<rect class=\"mark\" {} data-x2=\"{}\" x=\"{x0:.2}\" y=\"{y:.2}\" width=\"{:.2}\" height=\"{:.2}\" fill=\"{}\"><title>{}</title></rect>",
            mark(ch.id, ch.series, &attr_num(a), &attr_num(n)),
            escape(&attr_num(b)),
            (x1 - x0 - 1.0).max(0.5),
            (h - bottom - y).max(0.0),
            colour(0),
            escape(&format!("{} – {}: {}", short(a), short(b), short(n)))
        );
    }
    out.push_str("</svg></figure>\n");
    out
}

/// How a heatmap colours its cells.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Colours {
    /// -1 blue, 0 white, +1 red (correlations).
    Diverging,
    /// 0 white to the largest value dark blue (counts).
    Sequential,
    /// Each cell by its share of its column's total, white to dark blue (a distribution per
    /// window, readable whatever the window's volume).
    ColumnShare,
}

/// A heatmap: a row-major grid of values, a value that is not finite a grey cell.
pub struct Heatmap<'a> {
    /// The chart's name in `data-chart`.
    pub id: &'a str,
    /// Rows: `(data-y, label)`.
    pub rows: &'a [(String, String)],
    /// Columns: `(data-x, label)`.
    pub cols: &'a [(String, String)],
    /// `values[row][col]`.
    pub values: &'a [Vec<f64>],
    /// The colour scale.
    pub colours: Colours,
}

fn cell_fill(v: f64, colours: Colours, max: f64, column: f64) -> String {
    if !v.is_finite() {
        return "#d0d7de".into();
    }
    let mix = |t: f64, to: (f64, f64, f64)| {
        let t = t.clamp(0.0, 1.0);
        let ch = |x: f64| (255.0 + (x - 255.0) * t).round() as u8;
        format!("#{:02x}{:02x}{:02x}", ch(to.0), ch(to.1), ch(to.2))
    };
    match colours {
        Colours::Diverging if v < 0.0 => mix(-v, (33.0, 102.0, 172.0)),
        Colours::Diverging => mix(v, (178.0, 24.0, 43.0)),
        Colours::Sequential => mix(if max > 0.0 { v / max } else { 0.0 }, (8.0, 48.0, 107.0)),
        // On a square-root scale (a half or more the darkest): the tails stay visible beside a
        // bin holding most of the window.
        Colours::ColumnShare => {
            mix(if column > 0.0 { (v / column).sqrt() * 1.4 } else { 0.0 }, (8.0, 48.0, 107.0))
        }
    }
}

/// Draws a heatmap: every cell a mark (`data-x` its column, `data-y` its row, `data-v` its
/// value or `null`), or "no data" when the grid is empty.
pub fn heatmap(ch: &Heatmap) -> String {
    let (nr, nc) = (ch.rows.len(), ch.cols.len());
    if nr == 0 || nc == 0 {
        return no_data(ch.id, "");
    }
    let max = ch.values.iter().flatten().copied().filter(|v| v.is_finite()).fold(0.0, f64::max);
    let columns: Vec<f64> = (0..nc)
        .map(|j| ch.values.iter().filter_map(|r| r.get(j)).copied().filter(|v| v.is_finite()).sum())
        .collect();
    let (left, top) = (150.0, 70.0);
    let cw = ((W - left - 10.0) / nc as f64).clamp(3.0, 28.0);
    let rh = if ch.colours == Colours::Diverging { cw } else { (300.0 / nr as f64).clamp(3.0, 14.0) };
    let (w, h) = (left + cw * nc as f64 + 10.0, top + rh * nr as f64 + 10.0);
    let mut out = String::new();
    figure_open(&mut out, ch.id, "heatmap", &format!(" data-rows=\"{nr}\" data-cols=\"{nc}\""));
    svg_open(&mut out, w, h, ch.id);
    let every_r = ((10.0 / rh).ceil() as usize).max(1);
    for (i, (_, label)) in ch.rows.iter().enumerate().step_by(every_r) {
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{:.2}\" text-anchor=\"end\">{}<title>{}</title></text>",
            c(left - 4.0),
            top + rh * i as f64 + rh * 0.5 + 4.0,
            escape(&clip(label, 22)),
            escape(label)
        );
    }
    let every_c = ((12.0 / cw).ceil() as usize).max(1);
    for (j, (_, label)) in ch.cols.iter().enumerate().step_by(every_c) {
        let x = left + cw * j as f64 + cw * 0.5;
        let _ = write!(
            out,
            "<text x=\"{x:.2}\" y=\"{}\" transform=\"rotate(-45 {x:.2} {})\">{}<title>{}</title></text>",
            c(top - 4.0),
            c(top - 4.0),
            escape(&clip(label, 16)),
            escape(label)
        );
    }
    for (i, (rk, rl)) in ch.rows.iter().enumerate() {
        for (j, (ck, cl)) in ch.cols.iter().enumerate() {
            let v = ch.values.get(i).and_then(|r| r.get(j)).copied().unwrap_or(f64::NAN);
            let _ = write!(
                out,
                "<rect class=\"mark{}\" data-chart=\"{}\" data-x=\"{}\" data-y=\"{}\" data-v=\"{}\" x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{:.2}\" fill=\"{}\"><title>{}</title></rect>",
                if v.is_finite() { "" } else { " gap" },
                escape(ch.id),
                escape(ck),
                escape(rk),
                attr_num(v),
                left + cw * j as f64,
                top + rh * i as f64,
                cw,
                rh,
                cell_fill(v, ch.colours, max, columns[j]),
                escape(&format!("{rl} × {cl}: {}", short(v)))
            );
        }
    }
    out.push_str("</svg></figure>\n");
    out
}

/// One event of a timeline.
#[derive(Clone, Debug)]
pub struct Event {
    /// When, ms.
    pub time: i64,
    /// Its lane (trigger, retraining, gate, canary, promotion, ...).
    pub lane: String,
    /// What happened, in a word (`data-y`).
    pub kind: String,
    /// What happened, in a sentence (the tooltip).
    pub text: String,
}

/// A timeline: one lane per kind of step, a mark per event.
pub struct Timeline<'a> {
    /// The chart's name in `data-chart`.
    pub id: &'a str,
    /// The range drawn, ms.
    pub range: (i64, i64),
    /// The lanes, top to bottom.
    pub lanes: &'a [&'a str],
    /// The events (each in one of the lanes).
    pub events: &'a [Event],
}

/// Draws a timeline (every event a mark: `data-series` its lane, `data-x` its time in ms,
/// `data-y` its kind), or "no data" without events.
pub fn timeline(ch: &Timeline) -> String {
    if ch.events.is_empty() {
        return no_data(ch.id, ": no event in the range");
    }
    let (left, right, top, lane_h) = (110.0, 12.0, 8.0, 24.0);
    let h = top + lane_h * ch.lanes.len() as f64 + 24.0;
    let sx = Scale::new(ch.range.0 as f64, ch.range.1 as f64, left, W - right);
    let mut out = String::new();
    figure_open(&mut out, ch.id, "timeline", &format!(" data-events=\"{}\"", ch.events.len()));
    svg_open(&mut out, W, h, ch.id);
    for (i, lane) in ch.lanes.iter().enumerate() {
        let y = top + lane_h * i as f64 + lane_h / 2.0;
        let _ = write!(
            out,
            "<line x1=\"{}\" x2=\"{}\" y1=\"{y:.2}\" y2=\"{y:.2}\" stroke=\"#eaeef2\"/><text x=\"{}\" y=\"{:.2}\" text-anchor=\"end\">{}</text>",
            c(left),
            c(W - right),
            c(left - 6.0),
            y + 4.0,
            escape(lane)
        );
    }
    for t in time_ticks(ch.range.0, ch.range.1) {
        let x = sx.at(t as f64);
        let _ = write!(
            out,
            "<text x=\"{x:.2}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            c(h - 6.0),
            escape(&time_label(t))
        );
    }
    for e in ch.events {
        let lane = ch.lanes.iter().position(|l| *l == e.lane).unwrap_or(0);
        let y = top + lane_h * lane as f64 + lane_h / 2.0;
        let _ = write!(
            out,
            "<circle class=\"mark\" {} cx=\"{:.2}\" cy=\"{y:.2}\" r=\"5\" fill=\"{}\" fill-opacity=\"0.8\"><title>{}</title></circle>",
            mark(ch.id, &e.lane, &e.time.to_string(), &e.kind),
            sx.at(e.time as f64),
            colour(lane),
            escape(&format!("{} {}: {}", time_label(e.time), e.kind, e.text))
        );
    }
    out.push_str("</svg></figure>\n");
    out
}
