//! The canary router: which model answers a request, decided on the scorer's hot path.
//!
//! A request key (a document or user ID) is hashed with the experiment's salt to a point in
//! `[0, 2^31)`; the challenger takes the points below `fraction × 2^31`, the control the
//! rest. So a decision is:
//!
//! - **sticky and reproducible**: the same (salt, key) always lands on the same side, in
//!   every process and on every machine (the hash is defined here, not by `std`, whose
//!   hasher is seeded per process);
//! - **monotone in the fraction**: raising it only adds keys to the challenger, lowering it
//!   only removes them (a key's point does not move, only the threshold);
//! - **independent across experiments**: another salt places every key anew, so the users
//!   of one canary are not the users of the next;
//! - **cheap**: one relaxed atomic load of the (salt, threshold) pair and two multiplies
//!   for a key of up to 16 bytes (one more per 16 bytes past that), no lock, no
//!   allocation, no panic.
//!
//! ```
//! use modelwatch_agent::router::{Arm, Router};
//!
//! let router = Router::new(7, 0.10); // salt 7, 10 % to the challenger
//! let arm = router.route(b"user-42");
//! assert_eq!(router.route(b"user-42"), arm); // sticky
//! router.set(7, 0.25); // ramp up: every key that was on the challenger stays there
//! if arm == Arm::Challenger {
//!     assert_eq!(router.route(b"user-42"), Arm::Challenger);
//! }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

/// The side of a canary a request goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arm {
    /// The serving model.
    Control,
    /// The model under trial.
    Challenger,
}

/// The number of points a key can hash to: a fraction `f` sends the points below
/// `f × SCALE` to the challenger.
pub const SCALE: u64 = 1 << 31;

/// A sticky canary split, changed at any time by any thread (the watcher) while scorer
/// threads route: the salt and the threshold are one atomic value, so no decision sees the
/// salt of one setting and the threshold of another.
#[derive(Debug)]
pub struct Router {
    /// `salt << 32 | threshold`, threshold in `[0, SCALE]`.
    state: AtomicU64,
}

impl Router {
    /// A router sending `fraction` of the keys to the challenger under `salt`.
    /// The fraction is clamped to [0, 1]; NaN sends nothing to the challenger.
    pub fn new(salt: u32, fraction: f64) -> Router {
        Router { state: AtomicU64::new(pack(salt, fraction)) }
    }

    /// Changes the salt and the fraction at once (clamped as in [`Router::new`]).
    pub fn set(&self, salt: u32, fraction: f64) {
        self.state.store(pack(salt, fraction), Ordering::Relaxed);
    }

    /// The salt and the fraction now in force (the fraction as the router applies it:
    /// clamped and rounded to a multiple of 2^-31).
    pub fn get(&self) -> (u32, f64) {
        let s = self.state.load(Ordering::Relaxed);
        ((s >> 32) as u32, (s as u32) as f64 / SCALE as f64)
    }

    /// The arm `key` goes to: one relaxed load, then [`decide`].
    #[inline]
    pub fn route(&self, key: &[u8]) -> Arm {
        let s = self.state.load(Ordering::Relaxed);
        decide((s >> 32) as u32, s as u32, key)
    }
}

fn pack(salt: u32, fraction: f64) -> u64 {
    (salt as u64) << 32 | threshold(fraction) as u64
}

/// `fraction` as a threshold on [`point`]s: `round(fraction × 2^31)`, clamped to
/// `[0, 2^31]`; NaN is 0 (nothing to the challenger).
pub fn threshold(fraction: f64) -> u32 {
    if fraction.is_nan() {
        return 0;
    }
    (fraction.clamp(0.0, 1.0) * SCALE as f64).round() as u32
}

/// The arm of `key` under `salt` and a [`threshold`]: the challenger when its point is below
/// the threshold.
#[inline]
pub fn decide(salt: u32, threshold: u32, key: &[u8]) -> Arm {
    if point(salt, key) < threshold { Arm::Challenger } else { Arm::Control }
}

/// A salt for an experiment named by `name` (for example `"pii/7"`: the model and the
/// challenger's version), the same in every process, so replicas of a scorer agree.
pub fn salt_of(name: &str) -> u32 {
    let h = hash(0x5a17, name.as_bytes());
    (h >> 32) as u32 ^ h as u32
}

/// The point of `key` under `salt`, in `[0, 2^31)`.
#[inline]
pub fn point(salt: u32, key: &[u8]) -> u32 {
    (hash(salt as u64, key) >> 33) as u32
}

// Odd constants with about half their bits set, drawn once for this hash.
const K0: u64 = 0x9e6c_63d0_676a_9a99;
const K1: u64 = 0xd1b5_4a32_d192_ed03;
const K2: u64 = 0xaf25_1af3_b0f0_25b5;
const K3: u64 = 0xe3c2_e1d5_4b2a_5d27;

/// 64 × 64 → 128-bit multiply, folded: every input bit reaches the middle of the product.
#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let r = a as u128 * b as u128;
    (r as u64) ^ (r >> 64) as u64
}

#[inline(always)]
fn r8(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

#[inline(always)]
fn r4(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w) as u64
}

/// A 64-bit hash of `key` under `seed`: one multiply per 16 bytes past the first 16, and
/// two more. A key's last 16 bytes (or all of a shorter one) are read as two words, with
/// overlapping fixed-size loads rather than a copy of the tail; the length is mixed in at
/// the end, so keys that differ only by a trailing zero byte differ.
#[inline]
fn hash(seed: u64, key: &[u8]) -> u64 {
    let len = key.len();
    let mut s = seed ^ K0;
    let (a, b) = if len <= 16 {
        if len >= 4 {
            // 4 to 16 bytes: the first and last 4, and the 4 at a quarter from each end
            // (overlapping for short keys), cover every byte.
            let q = (len >> 3) << 2;
            ((r4(key, 0) << 32) | r4(key, q), (r4(key, len - 4) << 32) | r4(key, len - 4 - q))
        } else if len > 0 {
            (((key[0] as u64) << 16) | ((key[len >> 1] as u64) << 8) | key[len - 1] as u64, 0)
        } else {
            (0, 0)
        }
    } else {
        let mut at = 0;
        while len - at > 16 {
            s = fold(r8(key, at) ^ K1, r8(key, at + 8) ^ s);
            at += 16;
        }
        (r8(key, len - 16), r8(key, len - 8))
    };
    fold(K2 ^ len as u64, fold(a ^ K1, b ^ s ^ K3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize, salt: u32) -> impl Iterator<Item = String> {
        // Sequential IDs, the kind a scorer sees, and an offset so salts see other keys too.
        (0..n).map(move |i| format!("doc-{:08}", i + salt as usize * 7))
    }

    #[test]
    fn the_split_is_within_one_point_of_the_fraction_for_every_salt() {
        for salt in [0, 1, 0xdead_beef, 42, u32::MAX] {
            for fraction in [0.01, 0.05, 0.10, 0.5, 0.9] {
                let router = Router::new(salt, fraction);
                let n = 100_000;
                let got = keys(n, salt).filter(|k| router.route(k.as_bytes()) == Arm::Challenger).count();
                let share = got as f64 / n as f64;
                assert!((share - fraction).abs() <= 0.01, "salt {salt}, fraction {fraction}: {share}");
            }
        }
    }

    #[test]
    fn raising_the_fraction_only_adds_keys_and_lowering_only_removes_them() {
        let router = Router::new(9, 0.0);
        let ks: Vec<String> = keys(20_000, 9).collect();
        let mut before: Vec<Arm> = ks.iter().map(|k| router.route(k.as_bytes())).collect();
        assert!(before.iter().all(|a| *a == Arm::Control));
        for f in [0.01, 0.1, 0.1, 0.35, 0.5, 1.0, 0.7, 0.2, 0.05, 0.0] {
            let rising = f >= router.get().1;
            router.set(9, f);
            let now: Vec<Arm> = ks.iter().map(|k| router.route(k.as_bytes())).collect();
            for (b, n) in before.iter().zip(&now) {
                if rising {
                    assert!(!(*b == Arm::Challenger && *n == Arm::Control), "raised to {f}: a key left");
                } else {
                    assert!(!(*b == Arm::Control && *n == Arm::Challenger), "lowered to {f}: a key joined");
                }
            }
            before = now;
        }
        router.set(9, 1.0);
        assert!(ks.iter().all(|k| router.route(k.as_bytes()) == Arm::Challenger), "1.0 sends every key");
    }

    const PINNED: [u32; 3] = [1_494_107_369, 1_951_497_190, 328_174_528];

    #[test]
    fn decisions_are_sticky_reproducible_from_salt_and_key_and_independent_across_salts() {
        let a = Router::new(1, 0.5);
        let b = Router::new(1, 0.5);
        let c = Router::new(2, 0.5);
        let mut same = 0;
        for k in keys(10_000, 0) {
            let k = k.as_bytes();
            assert_eq!(a.route(k), a.route(k));
            assert_eq!(a.route(k), b.route(k), "two routers with one salt agree");
            assert_eq!(a.route(k), decide(1, threshold(0.5), k));
            same += usize::from(a.route(k) == c.route(k));
        }
        // Independent halves agree on about half the keys.
        assert!((4_700..=5_300).contains(&same), "another salt agreed on {same} of 10,000");
        // Pinned points: a change of the hash moves every scorer's users, so it must be a
        // deliberate one that changes these numbers too.
        assert_eq!([point(1, b"user-42"), point(0, b""), point(u32::MAX, &[0xff; 33])], PINNED);
        assert_eq!(salt_of("pii/7"), salt_of("pii/7"));
        assert_ne!(salt_of("pii/7"), salt_of("pii/8"));
    }

    #[test]
    fn odd_fractions_are_clamped_and_nan_sends_nothing() {
        for (f, want) in [
            (f64::NAN, 0.0),
            (-1.0, 0.0),
            (f64::NEG_INFINITY, 0.0),
            (2.0, 1.0),
            (f64::INFINITY, 1.0),
            (1e300, 1.0),
        ] {
            let r = Router::new(3, f);
            assert_eq!(r.get().1, want, "{f}");
        }
        let r = Router::new(3, f64::NAN);
        assert!(keys(1_000, 3).all(|k| r.route(k.as_bytes()) == Arm::Control));
        // Empty and long keys route too.
        let r = Router::new(3, 0.5);
        let _ = r.route(b"");
        let long = vec![7u8; 10_000];
        assert_eq!(r.route(&long), r.route(&long));
    }

    #[test]
    fn keys_that_differ_only_in_padding_or_length_land_independently() {
        // A zero-padded tail must not make "ab" and "ab\0" one key: over many such pairs,
        // about half disagree at a 50 % split.
        let r = Router::new(11, 0.5);
        let mut differ = 0;
        for i in 0..4_000u32 {
            let k = format!("k{i}");
            let mut padded = k.clone().into_bytes();
            padded.push(0);
            differ += usize::from(r.route(k.as_bytes()) != r.route(&padded));
        }
        assert!((1_800..=2_200).contains(&differ), "{differ} of 4,000 padded keys moved");
        // Every length from 0 to 40 goes through each tail path and stays in range.
        for len in 0..=40 {
            let k: Vec<u8> = (0..len as u8).collect();
            assert!(point(5, &k) < SCALE as u32);
        }
    }
}
