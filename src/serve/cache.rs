//! A map bounded in bytes: the server's answer, response and discovery caches. Entries are
//! weighed when inserted (an estimate of the heap they hold) and the oldest are evicted
//! first, so that neither many small answers nor one huge one can grow the process past
//! its budget; an entry heavier than a quarter of the budget is not kept at all.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Entries by key, at most `budget` bytes of them (as weighed by the caller).
pub(super) struct Bounded<K, V> {
    /// Value, weight, and the insertion number of its current position in `order`.
    map: HashMap<K, (V, usize, u64)>,
    /// Insertion order, for eviction (a key re-inserted appears twice; the stale position,
    /// whose number is not the entry's, is skipped when it comes up).
    order: VecDeque<(K, u64)>,
    inserted: u64,
    bytes: usize,
    budget: usize,
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    pub(super) fn new(budget: usize) -> Self {
        Bounded { map: HashMap::new(), order: VecDeque::new(), inserted: 0, bytes: 0, budget }
    }

    pub(super) fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k).map(|e| &e.0)
    }

    /// Keeps `v` as `k`, weighing `weight` bytes (plus the key's own estimate), evicting the
    /// oldest entries to make room. Returns whether it was kept.
    pub(super) fn insert(&mut self, k: K, v: V, weight: usize) -> bool {
        let weight = weight.saturating_add(std::mem::size_of::<(K, V)>() + 64);
        if weight > self.budget / 4 {
            return false;
        }
        if let Some((_, old, _)) = self.map.remove(&k) {
            self.bytes -= old;
        }
        while self.bytes + weight > self.budget {
            let Some((oldest, n)) = self.order.pop_front() else { break };
            if self.map.get(&oldest).is_some_and(|e| e.2 == n)
                && let Some((_, w, _)) = self.map.remove(&oldest)
            {
                self.bytes -= w;
            }
        }
        self.inserted += 1;
        self.bytes += weight;
        self.order.push_back((k.clone(), self.inserted));
        self.map.insert(k, (v, weight, self.inserted));
        // Keys re-inserted leave stale positions behind; drop them before they dominate.
        if self.order.len() > 2 * self.map.len() + 16 {
            let map = &self.map;
            self.order.retain(|(k, n)| map.get(k).is_some_and(|e| e.2 == *n));
        }
        true
    }

    /// Bytes held (as weighed).
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_entries_go_first_and_the_bytes_stay_under_the_budget() {
        let mut c: Bounded<u32, Vec<u8>> = Bounded::new(100_000);
        for k in 0..1_000u32 {
            assert!(c.insert(k, vec![0; 1_000], 1_000));
            assert!(c.bytes() <= 100_000, "{} bytes after {k}", c.bytes());
        }
        assert!(c.get(&999).is_some() && c.get(&0).is_none());
        assert!(c.len() >= 50, "kept {}", c.len());
        // Re-inserting a key neither double counts nor leaks order slots.
        for _ in 0..10_000 {
            c.insert(999, vec![0; 10], 10);
        }
        assert!(c.bytes() <= 100_000 && c.order.len() <= 2 * c.len() + 16);
        // One entry heavier than a quarter of the budget is refused, not made room for.
        assert!(!c.insert(5_000, Vec::new(), 30_000));
        assert!(c.get(&998).is_some());
    }
}
