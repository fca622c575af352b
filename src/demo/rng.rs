//! The seeded generator the demo, the tests and the benches share: xorshift64* with
//! Box–Muller normals. Small, fast and the same on every machine; not for cryptography.

/// A deterministic generator: the same seed gives the same sequence everywhere.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// A generator from any seed (zero included: the state must not be zero).
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in (0, 1).
    pub fn u(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal.
    pub fn normal(&mut self) -> f64 {
        (-2.0 * self.u().ln()).sqrt() * (std::f64::consts::TAU * self.u()).cos()
    }

    /// Uniform integer in `[0, n)` (`n` ≥ 1).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.u() * n as f64) as usize).min(n.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sequence_and_uniforms_stay_inside() {
        let (mut a, mut b) = (Rng::seeded(7), Rng::seeded(7));
        for _ in 0..1_000 {
            let (x, y) = (a.u(), b.u());
            assert_eq!(x, y);
            assert!(x > 0.0 && x < 1.0);
        }
        let mut z = Rng::seeded(0);
        let mean = (0..100_000).map(|_| z.normal()).sum::<f64>() / 100_000.0;
        assert!(mean.abs() < 0.02, "{mean}");
        assert!((0..1_000).all(|_| z.below(6) < 6));
    }
}
