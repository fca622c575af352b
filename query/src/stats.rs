//! Distribution functions the drift and quality reports and the triggers need (p-values,
//! tests, intervals).

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error below 1e-13).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 - x) = π / sin(π x).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The regularised upper incomplete gamma function Q(a, x) = Γ(a, x) / Γ(a): a series below
/// `a + 1`, a continued fraction above (Numerical Recipes, 6.2).
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let ln_front = -x + a * x.ln() - ln_gamma(a);
    if x < a + 1.0 {
        let (mut sum, mut term, mut n) = (1.0 / a, 1.0 / a, a);
        for _ in 0..10_000 {
            n += 1.0;
            term *= x / n;
            sum += term;
            if term.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        (1.0 - sum * ln_front.exp()).clamp(0.0, 1.0)
    } else {
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        (ln_front.exp() * h).clamp(0.0, 1.0)
    }
}

/// The chi-squared survival function: P(X ≥ x) with `df` degrees of freedom.
pub fn chi2_sf(x: f64, df: f64) -> f64 {
    if x.is_infinite() {
        return 0.0;
    }
    gamma_q(df / 2.0, x / 2.0)
}

/// The Kolmogorov distribution's survival function (the limit of √n·D):
/// `2 Σ (-1)^(j-1) exp(-2 j² z²)` (scipy's `kstwobign.sf`).
pub fn kolmogorov_sf(z: f64) -> f64 {
    if z <= 0.0 {
        return 1.0;
    }
    if z < 0.3 {
        // The alternating series converges slowly here, and the value is 1 to 1e-9.
        return 1.0;
    }
    let mut sum = 0.0;
    for j in 1..=100 {
        let term = (-2.0 * (j * j) as f64 * z * z).exp();
        sum += if j % 2 == 1 { term } else { -term };
        if term < 1e-17 {
            break;
        }
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

/// The asymptotic p-value of a two-sample Kolmogorov–Smirnov statistic `d` for sample
/// sizes `n` and `m`: the limiting distribution, `kstwobign.sf(√(nm/(n+m))·d)`. (scipy's
/// `ks_2samp(method="asymp")` takes `kstwo.sf(d, round(nm/(n+m)))`, slightly smaller: see
/// the drift module's docs.)
pub fn ks_p_value(d: f64, n: u64, m: u64) -> f64 {
    if n == 0 || m == 0 {
        return 1.0;
    }
    let en = (n as f64 * m as f64) / (n + m) as f64;
    kolmogorov_sf(en.sqrt() * d)
}

/// The complementary error function, erfc(x) = 1 − erf(x), from the regularised gamma
/// function: erfc(x) = Q(1/2, x²) for x ≥ 0, and 2 − erfc(−x) below.
pub fn erfc(x: f64) -> f64 {
    let q = gamma_q(0.5, x * x);
    if x >= 0.0 { q } else { 2.0 - q }
}

/// The standard normal quantile: the `z` with `P(Z ≤ z) = p`, by bisection on
/// [`erfc`] (to the last bits; it is called a few times per gate, never on a hot path).
/// ±∞ at 0 and 1, NaN outside.
pub fn normal_quantile(p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) || p.is_nan() {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let cdf = |z: f64| 0.5 * erfc(-z / std::f64::consts::SQRT_2);
    let (mut lo, mut hi) = (-40.0_f64, 40.0_f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= f64::EPSILON * mid.abs().max(1e-300) {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// The one-sided p-value that the proportion `k1 / n1` is **less** than `k0 / n0`: the
/// pooled two-proportion z-test, `P(Z ≥ (p0 − p1) / se)` with
/// `se = √(p(1 − p)(1/n0 + 1/n1))` and `p` the pooled proportion. A rise is never
/// significant. 1 when either side is empty; with no variance (both proportions 0 or 1),
/// 0 for a fall and 1 otherwise.
pub fn two_proportion_p_less(k0: f64, n0: f64, k1: f64, n1: f64) -> f64 {
    if n0 <= 0.0 || n1 <= 0.0 {
        return 1.0;
    }
    let (p0, p1) = (k0 / n0, k1 / n1);
    let p = (k0 + k1) / (n0 + n1);
    let se = (p * (1.0 - p) * (1.0 / n0 + 1.0 / n1)).sqrt();
    if se == 0.0 {
        return if p1 < p0 { 0.0 } else { 1.0 };
    }
    let z = (p0 - p1) / se;
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The regularised incomplete beta function I_x(a, b): the continued fraction of Numerical
/// Recipes 6.4 (modified Lentz), on the side where it converges fast.
pub fn beta_i(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x > (a + 1.0) / (a + b + 2.0) {
        return 1.0 - beta_i(b, a, 1.0 - x);
    }
    let tiny = 1e-300;
    let clamp = |v: f64| if v.abs() < tiny { tiny } else { v };
    let (mut c, mut d) = (1.0, 1.0 / clamp(1.0 - (a + b) * x / (a + 1.0)));
    let mut h = d;
    for m in 1..10_000 {
        let m = m as f64;
        // The even and the odd step of the fraction.
        let even = m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m));
        d = 1.0 / clamp(1.0 + even * d);
        c = clamp(1.0 + even / c);
        h *= d * c;
        let odd = -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0));
        d = 1.0 / clamp(1.0 + odd * d);
        c = clamp(1.0 + odd / c);
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < 1e-15 {
            break;
        }
    }
    (ln_front.exp() * h / a).clamp(0.0, 1.0)
}

/// The two-sided p-value of Student's t statistic `t` with `df` degrees of freedom,
/// `P(|T| ≥ |t|) = I_{df/(df+t²)}(df/2, 1/2)` (scipy's `2 * t.sf(|t|, df)`).
pub fn t_two_sided_p(t: f64, df: f64) -> f64 {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return 1.0;
    }
    if t.is_infinite() {
        return 0.0;
    }
    if df > 1e7 {
        // ln Γ's cancellation at such df costs more than the normal limit's own error.
        return erfc(t.abs() / std::f64::consts::SQRT_2);
    }
    beta_i(df / 2.0, 0.5, df / (df + t * t))
}

/// The two-sided p-value of the F-test that two normal samples share one variance, from
/// their sample variances and counts: `2 min(F(f), 1 − F(f))` for `f = v₁/v₂` with
/// `(n₁ − 1, n₂ − 1)` degrees of freedom (scipy: `2 * min(f.cdf(...), f.sf(...))`). It is
/// sensitive to non-normal tails: evidence, not a verdict. No test (1) with fewer than two
/// values a side, a non-finite input, or a zero variance.
pub fn f_test_p(v1: f64, n1: f64, v2: f64, n2: f64) -> f64 {
    if n1 < 2.0 || n2 < 2.0 || !(v1.is_finite() && v2.is_finite() && v1 > 0.0 && v2 > 0.0) {
        return 1.0;
    }
    let (d1, d2) = (n1 - 1.0, n2 - 1.0);
    // F(f) = I_x(d1/2, d2/2) with x = d1 f / (d1 f + d2) = d1 v1 / (d1 v1 + d2 v2).
    let x = d1 * v1 / (d1 * v1 + d2 * v2);
    let cdf = beta_i(d1 / 2.0, d2 / 2.0, x);
    let sf = beta_i(d2 / 2.0, d1 / 2.0, 1.0 - x);
    (2.0 * cdf.min(sf)).min(1.0)
}

/// Welch's two-sample t-test from each side's mean, sample variance (n − 1 denominator) and
/// count: the statistic `(m₂ − m₁) / √(v₁/n₁ + v₂/n₂)` and its two-sided p-value with the
/// Welch–Satterthwaite degrees of freedom (scipy's `ttest_ind(equal_var=False)`). Fewer than
/// two values a side, or a non-finite input: no test (0, 1). Both sides constant: 0 and 1 when
/// the means agree, ±∞ and 0 when they do not.
pub fn welch_t(m1: f64, v1: f64, n1: f64, m2: f64, v2: f64, n2: f64) -> (f64, f64) {
    if n1 < 2.0 || n2 < 2.0 || ![m1, v1, m2, v2].iter().all(|v| v.is_finite()) {
        return (0.0, 1.0);
    }
    let (a, b) = (v1.max(0.0) / n1, v2.max(0.0) / n2);
    let se2 = a + b;
    let diff = m2 - m1;
    if se2 <= 0.0 {
        return if diff == 0.0 { (0.0, 1.0) } else { (diff.signum() * f64::INFINITY, 0.0) };
    }
    let t = diff / se2.sqrt();
    // Welch–Satterthwaite, on the shares of se² so that tiny or huge variances neither
    // underflow nor overflow.
    let (a, b) = (a / se2, b / se2);
    let df = 1.0 / (a * a / (n1 - 1.0) + b * b / (n2 - 1.0));
    (t, t_two_sided_p(t, df))
}

/// The Wilson score interval of a proportion `k / n` at 95 % (z = 1.96).
pub fn wilson(k: f64, n: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054;
    let p = k / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Γ(5) = 24, Γ(0.5) = √π.
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
        // chi2.sf(3.841458820694124, 1) = 0.05; chi2.sf(18.307038053275146, 10) = 0.05.
        assert!((chi2_sf(3.841_458_820_694_124, 1.0) - 0.05).abs() < 1e-10);
        assert!((chi2_sf(18.307_038_053_275_146, 10.0) - 0.05).abs() < 1e-10);
        // kstwobign.sf(1.3580986393225505) = 0.05.
        assert!((kolmogorov_sf(1.358_098_639_322_550_5) - 0.05).abs() < 1e-10);
        let (lo, hi) = wilson(8.0, 10.0);
        assert!((lo - 0.490_162_4).abs() < 1e-6 && (hi - 0.943_317_7).abs() < 1e-6, "{lo} {hi}");
    }

    #[test]
    fn student_t_and_welch_agree_with_scipy() {
        // 2 * scipy.stats.t.sf(t, df) for (2, 10), (0.5, 3), (8, 58.3), (1.96, 1e6).
        for (t, df, p) in [
            (2.0, 10.0, 0.073_388_034_770_740_37),
            (0.5, 3.0, 0.651_447_964_848_151),
            (8.0, 58.3, 5.919_517_366_119_157e-11),
            (1.96, 1e6, 0.049_996_067_585_269_85),
        ] {
            let got = t_two_sided_p(t, df);
            assert!((got - p).abs() <= 1e-9 * p.max(1e-3), "t {t} df {df}: {got} vs {p}");
        }
        // scipy.stats.ttest_ind([1, 2, 3, 4, 5.5], [2, 3.5, 4, 6, 7, 8.1], equal_var=False).
        let moments = |v: &[f64]| {
            let n = v.len() as f64;
            let m = v.iter().sum::<f64>() / n;
            (m, v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0), n)
        };
        let ((m1, v1, n1), (m2, v2, n2)) =
            (moments(&[1.0, 2.0, 3.0, 4.0, 5.5]), moments(&[2.0, 3.5, 4.0, 6.0, 7.0, 8.1]));
        let (t, p) = welch_t(m2, v2, n2, m1, v1, n1);
        assert!(
            (t + 1.631_181_743_481_111_1).abs() < 1e-12 && (p - 0.137_493_253_956_098_63).abs() < 1e-10,
            "{t} {p}"
        );
        // Far past the usual: df of 1e12 and 1e15, variances of 1e-300 and 1e300.
        assert!((t_two_sided_p(2.0, 1e12) - 0.045_500_263_896_628_35).abs() < 1e-9);
        assert!((t_two_sided_p(5.0, 1e15) - 5.733_031_437_584_845e-7).abs() < 1e-12);
        // t = 7.0711 on 198 degrees of freedom: 2 * scipy.stats.t.sf(t, 198). (scipy's own
        // ttest_ind_from_stats squares the variances and returns p = 0.089 and 0.61 here.)
        const P_7071: f64 = 2.580_616_521_936_654_3e-11;
        for (v, d) in [(1e-300, 1e-150), (1e300, 1e150)] {
            let (t, p) = welch_t(0.0, v, 100.0, d, v, 100.0);
            assert!(
                (t - 7.071_067_811_865_475).abs() < 1e-9 && (p - P_7071).abs() < 1e-9 * P_7071,
                "{t} {p}"
            );
        }
        // F-test: 2 * min(f.cdf, f.sf) of scipy at (2.5; 10, 20), (0.3; 29, 29), (9; 999, 999).
        for (f, d1, d2, p) in [
            (2.5, 10.0, 20.0, 2.0 * (1.0 - 0.961_096_363_658_140_4)),
            (0.3, 29.0, 29.0, 2.0 * 0.000_889_340_258_916_013_8),
            (9.0, 999.0, 999.0, 2.0 * 3.722_066_088_858_995_4e-224),
        ] {
            let got = f_test_p(f, d1 + 1.0, 1.0, d2 + 1.0);
            assert!((got - p).abs() <= 1e-9 * p, "F {f} ({d1}, {d2}): {got} vs {p}");
        }
        assert_eq!(f_test_p(0.0, 10.0, 1.0, 10.0), 1.0);
        // Constant sides, one value, and overflowing moments.
        assert_eq!(welch_t(1.0, 0.0, 10.0, 1.0, 0.0, 10.0), (0.0, 1.0));
        assert_eq!(welch_t(1.0, 0.0, 10.0, 2.0, 0.0, 10.0), (f64::INFINITY, 0.0));
        assert_eq!(welch_t(1.0, 1.0, 1.0, 2.0, 1.0, 10.0), (0.0, 1.0));
        assert_eq!(welch_t(1e300, f64::INFINITY, 10.0, 2.0, 1.0, 10.0), (0.0, 1.0));
    }

    #[test]
    fn the_z_test_is_one_sided_and_calibrated() {
        // 80 % of 1,000 then 70 % of 1,000: z ≈ 5.2.
        assert!(two_proportion_p_less(800.0, 1_000.0, 700.0, 1_000.0) < 1e-6);
        // A rise is never significant as a fall.
        assert!(two_proportion_p_less(700.0, 1_000.0, 800.0, 1_000.0) > 0.99);
        // Equal proportions: p = 0.5.
        assert!((two_proportion_p_less(50.0, 100.0, 50.0, 100.0) - 0.5).abs() < 1e-12);
        // scipy.stats.norm.ppf: 0.95 → 1.6448536269514722, 0.975 → 1.959963984540054,
        // 0.001 → -3.090232306167813.
        assert!((normal_quantile(0.95) - 1.644_853_626_951_472_2).abs() < 1e-9);
        assert!((normal_quantile(0.975) - 1.959_963_984_540_054).abs() < 1e-9);
        assert!((normal_quantile(0.001) + 3.090_232_306_167_813).abs() < 1e-9);
        assert!(normal_quantile(1.5).is_nan() && normal_quantile(0.0) == f64::NEG_INFINITY);
        // z = 1.6449 ↔ p = 0.05: erfc by the gamma function.
        assert!((0.5 * erfc(1.644_853_626_951_472 / std::f64::consts::SQRT_2) - 0.05).abs() < 1e-9);
    }
}
