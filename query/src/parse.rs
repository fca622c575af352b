//! The query language.
//!
//! ```text
//! query    := call [ "by" "(" label { "," label } ")" ]
//! call     := func "(" selector ")" | "quantile" "(" number "," selector ")" | selector
//! func     := count | rate | sum | mean | min | max | buckets | p50 | p90 | p95 | p99 | pNN
//! selector := metric [ "{" matcher { "," matcher } "}" ]
//! matcher  := label ( "=" | "!=" | "=~" | "!~" ) "string"
//! ```
//!
//! `metric` is a stored metric name (`latency_ns`, `confidence`, `predictions`, `feature`, a
//! generic metric) or `latency`, shorthand for `latency_ns`. Labels are `model`, `version`,
//! `variant`, `instance`, `segment`, `feature` or a free tag. A bare selector means `count`
//! for distributions and `sum` for scalars. Regexes match the whole value.

use std::fmt;

/// What to compute per window and group.
#[derive(Clone, Debug, PartialEq)]
pub enum Func {
    /// Number of values (distributions) or sum of a counter.
    Count,
    /// `Count` per second of the window.
    Rate,
    /// Sum of the values.
    Sum,
    /// Mean value.
    Mean,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// The value at a quantile in [0, 1] of the merged distribution.
    Quantile(f64),
    /// The full merged distribution (for heatmaps).
    Buckets,
}

impl Func {
    /// The functions offered by name (menus, error messages), in the order they are listed:
    /// the common quantiles first. Any other quantile is `pNN` or `quantile(q, ...)`.
    pub const ALL: [Func; 11] = [
        Func::Quantile(0.5),
        Func::Quantile(0.9),
        Func::Quantile(0.95),
        Func::Quantile(0.99),
        Func::Mean,
        Func::Min,
        Func::Max,
        Func::Count,
        Func::Rate,
        Func::Sum,
        Func::Buckets,
    ];

    /// The name a query or a payload's `statistic` uses: `p95` for the 0.95 quantile (`pNN`
    /// holds every digit of the quantile, at least two), `count`... A quantile that `pNN`
    /// cannot write (1) is `quantile(1)`.
    pub fn name(&self) -> String {
        match self {
            Func::Quantile(q) => match format!("{q}").strip_prefix("0.") {
                Some(digits) => format!("p{digits:0<2}"),
                None if *q == 0.0 => "p00".to_string(),
                None => format!("quantile({q})"),
            },
            f => f.to_string(),
        }
    }

    /// The names users may write, for messages and menus: [`Func::ALL`]'s, with `pNN` after
    /// the quantiles.
    pub fn names() -> Vec<String> {
        let mut names: Vec<String> = Func::ALL.iter().map(Func::name).collect();
        let quantiles = Func::ALL.iter().filter(|f| matches!(f, Func::Quantile(_))).count();
        names.insert(quantiles, "pNN".to_string());
        names
    }
}

/// A function's name, as [`Func::name`] writes it (and `avg` for `mean`).
impl std::str::FromStr for Func {
    type Err = crate::names::UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        func_named(s).ok_or_else(|| crate::names::UnknownName {
            what: "function",
            name: s.to_string(),
            valid: Func::names(),
        })
    }
}

/// How a label is matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `=~`
    Re,
    /// `!~`
    NotRe,
}

/// One label matcher.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// The label.
    pub label: String,
    /// The operator.
    pub op: Op,
    /// The value or pattern.
    pub value: String,
    /// The compiled, anchored pattern for `=~` and `!~`.
    pub regex: Option<regex::Regex>,
}

/// The most memory one compiled pattern (and, apart, its lazy DFA cache) may take. A label
/// pattern needs a few KiB; the regex crate's own default (10 MiB) lets `\w{200}`, a
/// 1 KB request field, cost 12 MB, and a request hundreds of them.
pub const REGEX_SIZE_LIMIT: usize = 256 << 10;

/// Compiles a matcher's pattern, anchored, within [`REGEX_SIZE_LIMIT`].
fn compile(value: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{value})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// A regex error, with a way out when the pattern compiled too large.
fn regex_error(e: &regex::Error) -> String {
    match e {
        regex::Error::CompiledTooBig(_) => format!(
            "{e} (Unicode classes such as \\w compile large: repeat them less, or write [A-Za-z0-9_] or (?-u:\\w))"
        ),
        e => e.to_string(),
    }
}

impl Matcher {
    /// A matcher built outside the parser (from an HTTP payload or a filter); a bad regular
    /// expression is an error naming it.
    pub fn new(label: &str, op: Op, value: &str) -> Result<Matcher, String> {
        let regex = match op {
            Op::Re | Op::NotRe => Some(
                compile(value)
                    .map_err(|e| format!("bad regex {value:?} for {label}: {}", regex_error(&e)))?,
            ),
            Op::Eq | Op::Ne => None,
        };
        Ok(Matcher { label: label.to_string(), op, value: value.to_string(), regex })
    }

    /// Whether a label value satisfies this matcher.
    pub fn matches(&self, v: &str) -> bool {
        match self.op {
            Op::Eq => v == self.value,
            Op::Ne => v != self.value,
            Op::Re => self.regex.as_ref().is_some_and(|r| r.is_match(v)),
            Op::NotRe => !self.regex.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }
}

/// A parsed query.
#[derive(Clone, Debug)]
pub struct Query {
    /// The function.
    pub func: Func,
    /// Whether the function was written (false for a bare selector).
    pub explicit: bool,
    /// The metric name (aliases resolved).
    pub metric: String,
    /// Label matchers.
    pub matchers: Vec<Matcher>,
    /// Labels to group by (empty: everything merged into one series).
    pub by: Vec<String>,
}

impl fmt::Display for Func {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Func::Count => f.write_str("count"),
            Func::Rate => f.write_str("rate"),
            Func::Sum => f.write_str("sum"),
            Func::Mean => f.write_str("mean"),
            Func::Min => f.write_str("min"),
            Func::Max => f.write_str("max"),
            Func::Quantile(q) => write!(f, "quantile({q}"),
            Func::Buckets => f.write_str("buckets"),
        }
    }
}

/// The query in the language's own syntax (it parses back to the same query).
impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.func {
            Func::Quantile(_) => write!(f, "{}, ", self.func)?,
            _ => write!(f, "{}(", self.func)?,
        }
        f.write_str(&self.metric)?;
        if !self.matchers.is_empty() {
            f.write_str("{")?;
            for (i, m) in self.matchers.iter().enumerate() {
                let op = match m.op {
                    Op::Eq => "=",
                    Op::Ne => "!=",
                    Op::Re => "=~",
                    Op::NotRe => "!~",
                };
                let sep = if i > 0 { ", " } else { "" };
                let value = m.value.replace('\\', "\\\\").replace('"', "\\\"");
                write!(f, "{sep}{}{op}\"{value}\"", m.label)?;
            }
            f.write_str("}")?;
        }
        f.write_str(")")?;
        if !self.by.is_empty() {
            write!(f, " by ({})", self.by.join(", "))?;
        }
        Ok(())
    }
}

/// A syntax error at a byte position of the query.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// Byte offset of the problem.
    pub pos: usize,
    /// What was expected or found.
    pub message: String,
    /// The query, for the caret display.
    pub query: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let col = self.query[..self.pos.min(self.query.len())].chars().count();
        write!(f, "{} at position {}\n  {}\n  {}^", self.message, col + 1, self.query, " ".repeat(col))
    }
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError { pos: self.pos, message: message.into(), query: self.src.to_string() })
    }

    fn skip_ws(&mut self) {
        while self.src[self.pos..].starts_with(|c: char| c.is_whitespace()) {
            self.pos += self.src[self.pos..].chars().next().map_or(1, char::len_utf8);
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.src[self.pos..].chars().next()
    }

    fn eat(&mut self, s: &str) -> bool {
        self.skip_ws();
        if self.src[self.pos..].starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, s: &str) -> Result<(), ParseError> {
        if self.eat(s) {
            Ok(())
        } else {
            let found =
                self.src[self.pos..].chars().next().map_or("the end".to_string(), |c| format!("{c:?}"));
            self.err(format!("expected {s:?}, found {found}"))
        }
    }

    fn ident(&mut self) -> Result<&'a str, ParseError> {
        self.skip_ws();
        let rest = &self.src[self.pos..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == ':'))
            .unwrap_or(rest.len());
        if len == 0 || rest.starts_with(|c: char| c.is_ascii_digit()) {
            return self.err("expected a name");
        }
        self.pos += len;
        Ok(&rest[..len])
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.skip_ws();
        let quote = match self.src[self.pos..].chars().next() {
            Some(q @ ('"' | '\'')) => q,
            _ => return self.err("expected a quoted string"),
        };
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.src[self.pos..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e)) => out.push(e),
                    None => break,
                },
                c if c == quote => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                c => out.push(c),
            }
        }
        self.pos = start;
        self.err("unterminated string")
    }

    fn number(&mut self) -> Result<f64, ParseError> {
        self.skip_ws();
        let rest = &self.src[self.pos..];
        let len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        match rest[..len].parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => {
                self.pos += len;
                Ok(v)
            }
            _ => self.err("expected a quantile between 0 and 1"),
        }
    }

    fn selector(&mut self) -> Result<(String, Vec<Matcher>), ParseError> {
        let name = self.ident()?;
        let metric = if name == "latency" { "latency_ns".to_string() } else { name.to_string() };
        let mut matchers = Vec::new();
        if self.eat("{") && !self.eat("}") {
            loop {
                let label = self.ident()?.to_string();
                let op = if self.eat("=~") {
                    Op::Re
                } else if self.eat("!~") {
                    Op::NotRe
                } else if self.eat("!=") {
                    Op::Ne
                } else if self.eat("=") {
                    Op::Eq
                } else {
                    return self.err("expected =, !=, =~ or !~");
                };
                let at = self.pos;
                let value = self.string()?;
                let regex = match op {
                    Op::Re | Op::NotRe => match compile(&value) {
                        Ok(r) => Some(r),
                        Err(e) => {
                            self.pos = at;
                            return self.err(format!("bad regex: {}", regex_error(&e)));
                        }
                    },
                    _ => None,
                };
                matchers.push(Matcher { label, op, value, regex });
                if self.eat("}") {
                    break;
                }
                self.expect(",")?;
            }
        }
        Ok((metric, matchers))
    }
}

/// Why a `pNN` name is refused although its digits parse: `pNN` reads them as a fraction
/// (`p95` = 0.95, `p999` = 0.999), so one digit (`p5` = 0.5) and `p100` (0.100) say
/// something else than a user who counts in percent means; they are refused, naming what
/// to write.
fn ambiguous_quantile(name: &str) -> Option<String> {
    let digits = name.strip_prefix('p').filter(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))?;
    if digits.len() == 1 {
        return Some(format!(
            "{name:?} is ambiguous: pNN reads its digits as a fraction ({name} would be the 0.{digits} quantile); \
             write p{digits}0 for it, or p0{digits} for the 0.0{digits} quantile"
        ));
    }
    (digits.starts_with("100") && digits[1..].chars().all(|c| c == '0')).then(|| {
        format!(
            "{name:?} is ambiguous: pNN reads its digits as a fraction ({name} would be the 0.{digits} quantile, \
             the 10th percentile); write max(...) or quantile(1, ...) for the largest value, or p10"
        )
    })
}

fn func_named(name: &str) -> Option<Func> {
    if ambiguous_quantile(name).is_some() {
        return None;
    }
    Some(match name {
        "count" => Func::Count,
        "rate" => Func::Rate,
        "sum" => Func::Sum,
        "mean" | "avg" => Func::Mean,
        "min" => Func::Min,
        "max" => Func::Max,
        "buckets" => Func::Buckets,
        p if p.len() > 1 && p.starts_with('p') && p[1..].chars().all(|c| c.is_ascii_digit()) => {
            let digits = &p[1..];
            let v: f64 = format!("0.{digits}").parse().ok()?;
            Func::Quantile(v)
        }
        _ => return None,
    })
}

/// Parses a query; the error points at the offending position.
pub fn parse(src: &str) -> Result<Query, ParseError> {
    let mut p = Parser { src, pos: 0 };
    let save = p.pos;
    let head = p.ident()?;
    let (func, explicit, metric, matchers) = if p.peek() == Some('(') {
        p.expect("(")?;
        let func = if head == "quantile" {
            let q = p.number()?;
            p.expect(",")?;
            Func::Quantile(q)
        } else {
            match func_named(head) {
                Some(f) => f,
                None => {
                    p.pos = save;
                    p.skip_ws();
                    if let Some(why) = ambiguous_quantile(head) {
                        return p.err(why);
                    }
                    return p.err(format!(
                        "unknown function {head:?} ({}, quantile(q, ...))",
                        Func::names().join(", ")
                    ));
                }
            }
        };
        let (metric, matchers) = p.selector()?;
        p.expect(")")?;
        (func, true, metric, matchers)
    } else {
        p.pos = save;
        let (metric, matchers) = p.selector()?;
        (Func::Count, false, metric, matchers)
    };
    let mut by = Vec::new();
    if p.eat("by") {
        p.expect("(")?;
        loop {
            by.push(p.ident()?.to_string());
            if p.eat(")") {
                break;
            }
            p.expect(",")?;
        }
    }
    if p.peek().is_some() {
        return p.err("unexpected text after the query");
    }
    Ok(Query { func, explicit, metric, matchers, by })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let q = parse(r#"p95(latency{model="pii", variant="canary"}) by (segment)"#).unwrap();
        assert_eq!(q.func, Func::Quantile(0.95));
        assert_eq!(q.metric, "latency_ns");
        assert_eq!(q.matchers.len(), 2);
        assert_eq!(q.by, vec!["segment"]);
        let q = parse("quantile(0.999, confidence{segment=~\"e.*\"})").unwrap();
        assert_eq!(q.func, Func::Quantile(0.999));
        assert!(q.matchers[0].matches("email") && !q.matchers[0].matches("phone"));
        let q = parse("predictions").unwrap();
        assert!(!q.explicit);
        let q = parse("rate(predictions{segment!=\"ssn\"}) by (variant, segment)").unwrap();
        assert_eq!(q.func, Func::Rate);
        assert_eq!(q.by.len(), 2);
    }

    #[test]
    fn quantile_names_that_say_two_things_are_refused_naming_what_to_write() {
        // pNN's digits are a fraction: p95 = 0.95, p999 = 0.999, p05 = 0.05, p10 = 0.1.
        for (name, q) in [("p95", 0.95), ("p999", 0.999), ("p05", 0.05), ("p10", 0.1), ("p00", 0.0)] {
            assert_eq!(parse(&format!("{name}(latency)")).unwrap().func, Func::Quantile(q), "{name}");
        }
        // One digit reads as tenths (p5 = 0.5) and p100 as 0.100, not what a user counting
        // in percent means: refused, in a query and as a payload's statistic.
        for (name, hint) in [
            ("p5", "p05 for the 0.05 quantile"),
            ("p1", "p10 for it"),
            ("p100", "max(...)"),
            ("p1000", "quantile(1, ...)"),
        ] {
            let e = parse(&format!("{name}(latency)")).unwrap_err();
            assert!(e.message.contains("is ambiguous") && e.message.contains(hint), "{name}: {e}");
            assert!(name.parse::<Func>().is_err(), "{name}");
        }
        // Names the engine writes parse back: it never writes one digit or p100.
        for q in [0.1, 0.5, 0.05, 0.999, 0.0] {
            assert_eq!(Func::Quantile(q).name().parse::<Func>().unwrap(), Func::Quantile(q), "{q}");
        }
    }

    #[test]
    fn display_parses_back_to_the_same_query() {
        for src in [
            r#"p95(latency{model="pii", variant=~"can.*"}) by (segment)"#,
            r#"quantile(0.999, confidence{segment!~"e\\.mail", tag="a\"b"})"#,
            "rate(predictions) by (variant, segment)",
            "buckets(feature{feature=\"len\"})",
        ] {
            let q = parse(src).unwrap();
            let again = parse(&q.to_string()).unwrap_or_else(|e| panic!("{q}: {e}"));
            assert_eq!(again.to_string(), q.to_string());
            let values = |q: &Query| q.matchers.iter().map(|m| m.value.clone()).collect::<Vec<_>>();
            assert_eq!(values(&again), values(&q));
            assert_eq!((again.func, again.metric, again.by), (q.func, q.metric, q.by));
        }
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = parse("p95(latency{model=pii})").unwrap_err();
        assert_eq!(e.pos, 18);
        assert!(e.to_string().contains("expected a quoted string at position 19"), "{e}");
        let e = parse("frob(latency)").unwrap_err();
        assert_eq!(e.pos, 0);
        assert!(e.message.contains("unknown function"));
        assert!(e.message.contains("p99, pNN, mean") && e.message.ends_with("quantile(q, ...))"), "{e}");
        let e = parse("count(latency) by segment").unwrap_err();
        assert!(e.message.contains("expected \"(\""), "{e}");
        let e = parse("count(latency{a=~\"(\"})").unwrap_err();
        assert!(e.message.contains("bad regex"));
        // A pattern that would compile to megabytes is refused, by the parser and by filters.
        let e = parse("count(latency{a=~\"\\\\w{200}\"})").unwrap_err();
        assert!(e.message.contains("bad regex") && e.message.contains("size limit"), "{e}");
        let e = Matcher::new("a", Op::Re, r"\w{200}").unwrap_err();
        assert!(e.contains("size limit"), "{e}");
        assert!(Matcher::new("a", Op::Re, r"seg_\w+|(email|phone){1,3}").is_ok());
        let e = parse("count(latency) extra").unwrap_err();
        assert_eq!(e.pos, 15);
        let e = parse("quantile(2, latency)").unwrap_err();
        assert!(e.message.contains("between 0 and 1"));
    }

    #[test]
    fn function_names_parse_back_to_their_function() {
        let names = Func::names();
        assert_eq!(
            names,
            ["p50", "p90", "p95", "p99", "pNN", "mean", "min", "max", "count", "rate", "sum", "buckets"]
        );
        for f in Func::ALL {
            assert_eq!(f.name().parse::<Func>(), Ok(f.clone()));
            assert_eq!(parse(&format!("{}(m)", f.name())).unwrap().func, f);
        }
        for q in [0.05, 0.999, 0.0, 0.123] {
            assert_eq!(Func::Quantile(q).name().parse::<Func>(), Ok(Func::Quantile(q)));
        }
        assert_eq!(Func::Quantile(1.0).name(), "quantile(1)");
        let e = "median".parse::<Func>().unwrap_err().to_string();
        assert!(e.contains("\"median\" is not a function") && e.contains("p99, pNN, mean"), "{e}");
    }
}
