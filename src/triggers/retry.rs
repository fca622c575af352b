//! The retry budget of the outbox: `[triggers.delivery]` (each sink may override it), and
//! what one sink did with one event — a [`Delivery`], pending until the sink takes the event
//! or the budget is spent (dead-lettered).
//!
//! After the `n`-th failed attempt the next one is due `backoff × 2^(n-1)` later, at most
//! `max_backoff`, and never after `give_up_after` from the event's time; a failure that
//! leaves no attempt inside the budget (`max_attempts` reached, or the time spent)
//! dead-letters the delivery. An event nobody tried yet (the process was down the whole
//! budget) still gets its one attempt.

use super::kind::duration;
use serde::{Deserialize, Serialize};

/// `[triggers.delivery]`: how often and how long a sink is retried.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// No attempt after this long from the event's time.
    pub give_up_after: String,
    /// The wait after the first failure, doubled after each further one.
    pub backoff: String,
    /// The longest wait between two attempts.
    pub max_backoff: String,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            give_up_after: "24h".into(),
            backoff: "30s".into(),
            max_backoff: "1h".into(),
        }
    }
}

/// A sink's overrides of `[triggers.delivery]` (unset: the section's value).
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct RetryOverride<'a> {
    pub max_attempts: Option<u32>,
    pub give_up_after: Option<&'a str>,
    pub backoff: Option<&'a str>,
    pub max_backoff: Option<&'a str>,
}

impl RetryPolicy {
    /// The budget in milliseconds; an error names the key under `prefix`
    /// (`delivery`, `sinks`).
    pub(super) fn budget(&self, prefix: &str, over: &RetryOverride<'_>) -> Result<Budget, String> {
        let ms = |given: Option<&str>, own: &str, key: &str| {
            duration(given.unwrap_or(own), &format!("{prefix}.{key}"))
        };
        let b = Budget {
            max_attempts: over.max_attempts.unwrap_or(self.max_attempts),
            give_up_after_ms: ms(over.give_up_after, &self.give_up_after, "give_up_after")?,
            backoff_ms: ms(over.backoff, &self.backoff, "backoff")?,
            max_backoff_ms: ms(over.max_backoff, &self.max_backoff, "max_backoff")?,
        };
        if b.max_attempts == 0 {
            return Err(format!("triggers.{prefix}.max_attempts: at least 1 (the first attempt)"));
        }
        Ok(b)
    }

    /// Checks the section; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        self.budget("delivery", &RetryOverride::default()).map(|_| ())
    }
}

/// A sink's retry budget, resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Attempts in all.
    pub max_attempts: u32,
    /// From the event's time (ms).
    pub give_up_after_ms: i64,
    /// The first wait (ms).
    pub backoff_ms: i64,
    /// The longest wait (ms).
    pub max_backoff_ms: i64,
}

impl Budget {
    fn deadline(&self, fired_ms: i64) -> i64 {
        fired_ms.saturating_add(self.give_up_after_ms)
    }

    /// When to try again after `attempts` failed ones, the last at `now`; `None`: spent.
    fn next_attempt(&self, fired_ms: i64, attempts: u32, now: i64) -> Option<i64> {
        let deadline = self.deadline(fired_ms);
        if attempts >= self.max_attempts || now >= deadline {
            return None;
        }
        let doublings = attempts.saturating_sub(1).min(40);
        let wait = self.backoff_ms.saturating_mul(1 << doublings).min(self.max_backoff_ms);
        // The last attempt falls on the deadline rather than being skipped.
        Some(now.saturating_add(wait).min(deadline))
    }
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Still to be tried, at `next_attempt_ms`.
    Pending,
    /// The sink took the event.
    Delivered,
    /// The retry budget is spent; nothing tries again.
    DeadLettered,
}

impl std::fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::DeadLettered => "dead-lettered",
        })
    }
}

/// What one sink did with one event (one per event and sink, in the trigger state).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Delivery {
    /// Which sink (`webhook <url>`, `command <program>`, ...).
    pub sink: String,
    /// Pending, delivered or dead-lettered.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// When the last attempt was made (ms).
    pub last_attempt_ms: Option<i64>,
    /// When the next one is due (ms); pending deliveries only.
    pub next_attempt_ms: Option<i64>,
    /// Why the last failed attempt failed (kept once delivered, to show what it took).
    pub last_error: Option<String>,
    /// What the sink said when it took the event (`HTTP 200`, `exit 0`).
    pub detail: Option<String>,
    /// An attempt was begun and its outcome not saved yet; still set when the next run
    /// loads the state, it was cut short by the process ending.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_flight: bool,
}

impl Delivery {
    /// A delivery to `sink`, due at `now`.
    pub(super) fn pending(sink: String, now: i64) -> Delivery {
        Delivery {
            sink,
            state: DeliveryState::Pending,
            attempts: 0,
            last_attempt_ms: None,
            next_attempt_ms: Some(now),
            last_error: None,
            detail: None,
            in_flight: false,
        }
    }

    /// Still to be tried.
    pub fn is_pending(&self) -> bool {
        self.state == DeliveryState::Pending
    }

    /// Pending and due at `now`.
    pub(super) fn is_due(&self, now: i64) -> bool {
        self.is_pending() && self.next_attempt_ms.is_none_or(|t| t <= now)
    }

    pub(super) fn succeeded(&mut self, detail: String) {
        self.state = DeliveryState::Delivered;
        self.next_attempt_ms = None;
        self.detail = Some(detail);
    }

    /// Records an attempt made at `now`. A failure stays pending until the budget is spent.
    /// Counts an attempt about to be made at `now`, as if it failed: saved before the
    /// attempt, so one cut short by a crash (a retraining command killed with its runner)
    /// still spends the budget and waits its backoff instead of starting again at once.
    pub(super) fn begin(&mut self, now: i64, fired_ms: i64, budget: &Budget) {
        self.attempts += 1;
        self.last_attempt_ms = Some(now);
        self.in_flight = true;
        self.next_attempt_ms = budget.next_attempt(fired_ms, self.attempts, now);
    }

    #[cfg(test)]
    /// One attempt, begun and finished at `now` ([`Delivery::begin`] then
    /// [`Delivery::finish`]).
    pub(super) fn record(
        &mut self,
        outcome: Result<String, String>,
        now: i64,
        fired_ms: i64,
        budget: &Budget,
    ) {
        self.begin(now, fired_ms, budget);
        self.finish(outcome, now, fired_ms, budget);
    }

    /// The outcome of the attempt begun at `now`.
    pub(super) fn finish(
        &mut self,
        outcome: Result<String, String>,
        now: i64,
        fired_ms: i64,
        budget: &Budget,
    ) {
        self.in_flight = false;
        match outcome {
            Ok(detail) => self.succeeded(detail),
            Err(e) => {
                self.last_error = Some(e);
                self.next_attempt_ms = budget.next_attempt(fired_ms, self.attempts, now);
                if self.next_attempt_ms.is_none() {
                    self.state = DeliveryState::DeadLettered;
                }
            }
        }
    }

    /// Dead-letters a delivery that was tried and whose time ran out while nothing ran
    /// (a daemon stopped, a cron entry removed); true if it did.
    pub(super) fn expire(&mut self, now: i64, fired_ms: i64, budget: &Budget) -> bool {
        let spent = self.attempts >= budget.max_attempts || now >= budget.deadline(fired_ms);
        if self.is_pending() && self.attempts > 0 && spent {
            self.dead_letter(budget);
            return true;
        }
        false
    }

    /// Dead-letters a delivery whose sink is no longer configured once its time budget is
    /// spent; true if it did.
    pub(super) fn orphaned(&mut self, now: i64, fired_ms: i64, budget: &Budget) -> bool {
        if self.is_pending() && now >= budget.deadline(fired_ms) {
            self.last_error = Some(match self.last_error.take() {
                Some(e) => format!("{e}; the sink is no longer configured"),
                None => "the sink is no longer configured".into(),
            });
            self.dead_letter(budget);
            return true;
        }
        false
    }

    fn dead_letter(&mut self, budget: &Budget) {
        self.state = DeliveryState::DeadLettered;
        self.next_attempt_ms = None;
        let why = if self.attempts >= budget.max_attempts {
            format!("no attempt left of {}", budget.max_attempts)
        } else {
            format!(
                "no attempt left within {} of the event",
                modelwatch_query::duration_words(budget.give_up_after_ms)
            )
        };
        self.last_error = Some(match self.last_error.take() {
            Some(e) => format!("{e}; {why}"),
            None => why,
        });
    }

    /// If the last attempt was begun and never finished (the process died during it), says
    /// so in `last_error`; true if it was.
    pub(super) fn note_cut_short(&mut self) -> bool {
        if !self.in_flight {
            return false;
        }
        self.in_flight = false;
        let at =
            self.last_attempt_ms.map_or_else(String::new, |t| format!(" at {}", crate::time::rfc3339(t)));
        self.last_error = Some(format!("the attempt{at} was cut short: the process ended during it"));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn failures_back_off_doubling_up_to_the_cap_and_are_dead_lettered_when_the_budget_is_spent() {
        let b = RetryPolicy { max_backoff: "3m".into(), ..RetryPolicy::default() }
            .budget("delivery", &RetryOverride::default())
            .unwrap();
        let mut d = Delivery::pending("s".into(), 0);
        let mut now = 0;
        let mut waits = Vec::new();
        while d.is_pending() {
            assert!(d.is_due(now));
            d.record(Err("down".into()), now, 0, &b);
            if let Some(t) = d.next_attempt_ms {
                waits.push(t - now);
                now = t;
            }
        }
        // 30 s, 1 m, 2 m, then the 3 m cap: ten attempts in all.
        assert_eq!(waits, [MIN / 2, MIN, 2 * MIN, 3 * MIN, 3 * MIN, 3 * MIN, 3 * MIN, 3 * MIN, 3 * MIN]);
        assert_eq!(
            (d.state, d.attempts, d.last_error.as_deref()),
            (DeliveryState::DeadLettered, 10, Some("down"))
        );
    }

    #[test]
    fn the_time_budget_ends_retries_with_a_last_attempt_at_its_deadline() {
        let over = RetryOverride { max_attempts: Some(100), give_up_after: Some("2m"), ..Default::default() };
        let b = RetryPolicy::default().budget("sinks", &over).unwrap();
        let mut d = Delivery::pending("s".into(), 0);
        d.record(Err("1".into()), 0, 0, &b);
        d.record(Err("2".into()), 30_000, 0, &b);
        assert_eq!(d.next_attempt_ms, Some(90_000));
        d.record(Err("3".into()), 90_000, 0, &b);
        assert_eq!(d.next_attempt_ms, Some(2 * MIN), "clamped to the deadline");
        d.record(Err("4".into()), 2 * MIN, 0, &b);
        assert_eq!(d.state, DeliveryState::DeadLettered);
        // A delivery tried once, then nothing ran until long after its deadline.
        let mut late = Delivery::pending("s".into(), 0);
        late.record(Err("down".into()), 0, 0, &b);
        assert!(!late.expire(MIN, 0, &b));
        assert!(late.expire(10 * MIN, 0, &b));
        assert!(late.last_error.unwrap().starts_with("down; no attempt left"));
        // Never tried: not expired, it gets its one attempt.
        let mut untried = Delivery::pending("s".into(), 0);
        assert!(!untried.expire(10 * MIN, 0, &b) && untried.is_due(10 * MIN));
        untried.record(Ok("exit 0".into()), 10 * MIN, 0, &b);
        assert_eq!((untried.state, untried.detail.as_deref()), (DeliveryState::Delivered, Some("exit 0")));
    }

    #[test]
    fn a_bad_budget_names_its_key() {
        let p = RetryPolicy { max_attempts: 0, ..Default::default() };
        assert!(p.validate().unwrap_err().contains("triggers.delivery.max_attempts"));
        let p = RetryPolicy { backoff: "soon".into(), ..Default::default() };
        assert!(p.validate().unwrap_err().contains("triggers.delivery.backoff"));
        let over = RetryOverride { give_up_after: Some("1 day"), ..Default::default() };
        assert!(
            RetryPolicy::default()
                .budget("sinks", &over)
                .unwrap_err()
                .contains("triggers.sinks.give_up_after")
        );
    }
}
