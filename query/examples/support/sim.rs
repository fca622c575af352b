//! Seeded streams for the detector examples (xorshift + Box–Muller, as the unit tests).

/// A deterministic N(0, 1) sequence.
pub fn noise(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed | 1;
    let mut u = move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        ((s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    move || (-2.0 * u().ln()).sqrt() * (std::f64::consts::TAU * u()).cos()
}

/// Samples per 1-minute interval over a day: 10 at 3 am to 100 at 3 pm.
pub fn daily_count(minute: usize) -> f64 {
    let phase = std::f64::consts::TAU * ((minute % 1_440) as f64 - 900.0) / 1_440.0;
    (55.0 + 45.0 * phase.cos()).round()
}
