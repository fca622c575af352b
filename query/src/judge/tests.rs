use super::*;

const MIN: i64 = 60_000;

/// A window `i` (ten minutes each) with the two arms' requests, errors and p95.
fn window(i: i64, control: (u64, u64, Option<f64>), challenger: (u64, u64, Option<f64>)) -> MatchedWindow {
    let arm = |(requests, errors, latency_p95_ms)| ArmWindow { requests, errors, latency_p95_ms };
    MatchedWindow {
        start_ms: i * 10 * MIN,
        end_ms: (i + 1) * 10 * MIN,
        control: arm(control),
        challenger: arm(challenger),
    }
}

/// `n` windows of 5,400 control and 600 challenger requests, 1 % errors on both, the
/// challenger's p95 `ratio` times the control's 100 ms with a ±1 % alternating jitter.
fn windows(n: i64, ratio: f64) -> Vec<MatchedWindow> {
    (0..n)
        .map(|i| {
            let jitter = if i % 2 == 0 { 1.01 } else { 0.99 };
            window(i, (5_400, 54, Some(100.0)), (600, 6, Some(100.0 * ratio * jitter)))
        })
        .collect()
}

/// Quality with `labels` labelled positives at `precision`, and `predicted` positives with a
/// label-free estimate `estimate`.
fn quality(labels: f64, precision: f64, predicted: f64, estimate: Option<f64>) -> ArmQuality {
    ArmQuality {
        tp: labels * precision,
        fp: labels * (1.0 - precision),
        fn_: labels * 0.1,
        predicted_positive: predicted,
        estimated_precision: estimate,
    }
}

/// Evidence over `windows` with realised precision `control` and `challenger` on 20,000
/// and 3,000 labels.
fn evidence(windows: Vec<MatchedWindow>, control: f64, challenger: f64) -> Evidence {
    let elapsed_ms = windows.len() as i64 * 10 * MIN;
    Evidence {
        windows,
        control: quality(20_000.0, control, 100_000.0, Some(control)),
        challenger: quality(3_000.0, challenger, 11_000.0, Some(challenger)),
        confidence_drift: Some(0.01),
        elapsed_ms,
    }
}

fn status(v: &Verdict, name: &str) -> GuardrailStatus {
    v.guardrails.iter().find(|g| g.name == name).unwrap().status
}

fn note<'a>(v: &'a Verdict, name: &str) -> &'a str {
    &v.guardrails.iter().find(|g| g.name == name).unwrap().note
}

#[test]
fn the_half_width_is_the_normal_mixture_boundary() {
    // V = 1, τ = 1, α = 0.05: √(2 (2 ln 20 + ln 2)) = 3.656 (by hand).
    let w = mixture_half_width(1.0, 1.0, 0.05);
    assert!((w - (2.0 * (2.0 * 20f64.ln() + 2f64.ln())).sqrt()).abs() < 1e-12, "{w}");
    // Wider than the fixed-sample 95 % interval, narrower with more data, never from nothing.
    for v in [1e-8, 1e-4, 1.0] {
        assert!(mixture_half_width(v, 0.1, 0.05) > 1.96 * v.sqrt());
        assert!(mixture_half_width(v / 2.0, 0.1, 0.05) < mixture_half_width(v, 0.1, 0.05));
    }
    for v in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert_eq!(mixture_half_width(v, 0.1, 0.05), f64::INFINITY, "{v}");
    }
}

#[test]
fn validate_names_the_bad_field() {
    assert_eq!(JudgeConfig::default().validate(), Ok(()));
    let cases: Vec<(&str, JudgeConfig)> = vec![
        ("alpha", JudgeConfig { alpha: 0.0, ..Default::default() }),
        ("alpha", JudgeConfig { alpha: 1.0, ..Default::default() }),
        ("alpha", JudgeConfig { alpha: f64::NAN, ..Default::default() }),
        ("latency_ratio_margin", JudgeConfig { latency_ratio_margin: 0.9, ..Default::default() }),
        ("latency_ratio_margin", JudgeConfig { latency_ratio_margin: f64::INFINITY, ..Default::default() }),
        ("error_margin", JudgeConfig { error_margin: -0.005, ..Default::default() }),
        ("error_margin", JudgeConfig { error_margin: f64::NAN, ..Default::default() }),
        ("precision_margin", JudgeConfig { precision_margin: -0.02, ..Default::default() }),
        ("min_windows", JudgeConfig { min_windows: 1, ..Default::default() }),
        ("min_labels", JudgeConfig { min_labels: 0, ..Default::default() }),
        ("max_duration_ms", JudgeConfig { max_duration_ms: 0, ..Default::default() }),
        ("latency_sd_floor", JudgeConfig { latency_sd_floor: 0.0, ..Default::default() }),
        ("max_latency_ms", JudgeConfig { max_latency_ms: f64::NAN, ..Default::default() }),
        ("mixture_scale", JudgeConfig { mixture_scale: -1.0, ..Default::default() }),
    ];
    for (field, cfg) in cases {
        let err = cfg.validate().unwrap_err();
        assert!(err.contains(field), "{field}: {err}");
        // A config that cannot judge rolls back, saying why.
        let v = judge(&cfg, &evidence(windows(20, 1.0), 0.9, 0.9));
        assert_eq!(v.decision, Decision::Rollback);
        assert!(v.reason.contains(field), "{}", v.reason);
    }
}

#[test]
fn no_difference_with_enough_data_promotes() {
    let v = judge(&JudgeConfig::default(), &evidence(windows(12, 1.0), 0.9, 0.9));
    assert_eq!(v.decision, Decision::Promote, "{}", v.reason);
    assert!(v.guardrails.iter().all(|g| g.status == GuardrailStatus::Pass && !g.estimated));
    let lat = &v.guardrails[0];
    assert!(lat.upper.unwrap() < 1.10 && lat.lower.unwrap() < 1.0 && lat.samples == 12, "{lat:?}");
    assert_eq!((v.windows, v.confidence_drift), (12, Some(0.01)));
}

#[test]
fn each_guardrail_beyond_its_margin_rolls_back() {
    let cfg = JudgeConfig::default();
    // Latency ×1.4.
    let v = judge(&cfg, &evidence(windows(12, 1.4), 0.9, 0.9));
    assert_eq!(
        (v.decision, status(&v, "latency_p95_ratio")),
        (Decision::Rollback, GuardrailStatus::Fail),
        "{}",
        v.reason
    );
    assert!(v.reason.contains("latency_p95_ratio"), "{}", v.reason);
    // Errors 3 % against 1 %.
    let mut w = windows(12, 1.0);
    w.iter_mut().for_each(|w| w.challenger.errors = 18);
    let v = judge(&cfg, &evidence(w, 0.9, 0.9));
    assert_eq!(
        (v.decision, status(&v, "error_rate")),
        (Decision::Rollback, GuardrailStatus::Fail),
        "{}",
        v.reason
    );
    // Precision 0.80 against 0.90 on realised labels.
    let v = judge(&cfg, &evidence(windows(12, 1.0), 0.9, 0.8));
    assert_eq!(
        (v.decision, status(&v, "precision")),
        (Decision::Rollback, GuardrailStatus::Fail),
        "{}",
        v.reason
    );
    // A failure rolls back at once: before min_windows, and however the others stand.
    let mut w = windows(3, 1.0);
    w.iter_mut().for_each(|w| w.challenger.errors = 60);
    assert_eq!(judge(&cfg, &evidence(w, 0.9, 0.9)).decision, Decision::Rollback);
}

#[test]
fn too_little_data_is_never_a_pass() {
    let cfg = JudgeConfig::default();
    // Empty evidence, one window, nine windows (min_windows is 10).
    for n in [0, 1, 9] {
        let mut e = evidence(windows(n, 1.0), 0.9, 0.9);
        e.control = ArmQuality::default();
        e.challenger = ArmQuality::default();
        let v = judge(&cfg, &e);
        assert_eq!(v.decision, Decision::Inconclusive, "{n}: {}", v.reason);
        assert!(v.reason.starts_with("keep watching"), "{}", v.reason);
        assert_eq!(status(&v, "latency_p95_ratio"), GuardrailStatus::Inconclusive);
        assert_eq!(status(&v, "precision"), GuardrailStatus::Inconclusive);
        assert!(note(&v, "precision").contains("no label-free estimate"), "{}", note(&v, "precision"));
    }
    // No requests at all: no error rate to test, and nothing concluded.
    let v = judge(&cfg, &Evidence::default());
    let err = &v.guardrails[1];
    assert_eq!((err.status, err.estimate), (GuardrailStatus::Inconclusive, None));
    assert!(err.note.contains("no request on the control"), "{}", err.note);
}

#[test]
fn identical_windows_have_a_floored_spread() {
    let cfg = JudgeConfig::default();
    let same =
        |n| (0..n).map(|i| window(i, (5_400, 0, Some(80.0)), (600, 0, Some(80.0)))).collect::<Vec<_>>();
    // Two identical windows conclude nothing.
    let v = judge(&cfg, &evidence(same(2), 0.9, 0.9));
    let lat = &v.guardrails[0];
    assert_eq!(lat.status, GuardrailStatus::Inconclusive);
    assert!(lat.lower.unwrap() < 1.0 && lat.upper.unwrap() > 1.0, "{lat:?}");
    // Ten of them pass, with bounds the floor (2 % a window) sets, not zero-width ones.
    let v = judge(&cfg, &evidence(same(10), 0.9, 0.9));
    let lat = &v.guardrails[0];
    assert_eq!(lat.status, GuardrailStatus::Pass);
    let half = mixture_half_width(0.02 * 0.02 / 10.0, 1.1f64.ln(), 0.05);
    assert!((lat.upper.unwrap().ln() - half).abs() < 1e-12, "{lat:?}");
    // Zero errors on both arms: a variance from the +1/+2 adjustment, and a pass.
    let err = &v.guardrails[1];
    assert!(err.lower.unwrap() < 0.0 && err.status == GuardrailStatus::Pass, "{err:?}");
}

#[test]
fn odd_p95s_do_not_count_and_say_so() {
    let cfg = JudgeConfig::default();
    let odd = [
        None,
        Some(f64::NAN),
        Some(f64::INFINITY),
        Some(f64::NEG_INFINITY),
        Some(1e300),
        Some(-5.0),
        Some(0.0),
    ];
    for p in odd {
        // Twelve good windows at ratio 1 and one with the odd value on either arm.
        for arm in 0..2 {
            let mut w = windows(12, 1.0);
            let bad = if arm == 0 { &mut w[5].control } else { &mut w[5].challenger };
            bad.latency_p95_ms = p;
            let v = judge(&cfg, &evidence(w, 0.9, 0.9));
            let lat = &v.guardrails[0];
            assert_eq!(lat.samples, 11, "{p:?}");
            assert!(lat.note.contains("1 without a plausible p95"), "{p:?}: {}", lat.note);
            assert!(lat.estimate.unwrap().is_finite() && lat.upper.unwrap().is_finite(), "{p:?}");
            assert_eq!(v.decision, Decision::Promote, "{p:?}: {}", v.reason);
        }
    }
    // Thin windows: under min_requests on either arm, the latency does not count.
    let mut w = windows(12, 1.0);
    w[0].challenger.requests = 99;
    w[1].control.requests = 0;
    let v = judge(&cfg, &evidence(w, 0.9, 0.9));
    assert_eq!(v.guardrails[0].samples, 10);
    assert!(v.guardrails[0].note.contains("2 under 100 requests"), "{}", v.guardrails[0].note);
}

#[test]
fn impossible_counts_are_clamped_and_huge_ones_do_not_overflow() {
    let cfg = JudgeConfig::default();
    let mut w = windows(12, 1.0);
    w[0].challenger.errors = 10_000;
    let v = judge(&cfg, &evidence(w, 0.9, 0.9));
    assert!(v.guardrails[1].note.contains("more errors than requests"), "{}", v.guardrails[1].note);
    let huge =
        (0..12).map(|i| window(i, (u64::MAX, u64::MAX, Some(1.0)), (u64::MAX, 0, Some(1.0)))).collect();
    let v = judge(&cfg, &evidence(huge, 0.9, 0.9));
    assert!(v.guardrails[1].estimate.unwrap().is_finite());
    // Non-finite and negative quality counts count as nothing.
    let mut e = evidence(windows(12, 1.0), 0.9, 0.9);
    e.challenger = ArmQuality {
        tp: f64::NAN,
        fp: -3.0,
        fn_: f64::INFINITY,
        predicted_positive: f64::NAN,
        estimated_precision: Some(2.0),
    };
    let v = judge(&cfg, &e);
    assert_eq!(
        (v.decision, status(&v, "precision")),
        (Decision::Inconclusive, GuardrailStatus::Inconclusive)
    );
    assert_eq!(v.recall_challenger, None);
}

#[test]
fn the_label_free_estimate_decides_nothing_by_default() {
    let cfg = JudgeConfig::default();
    // 150 labels a side (under min_labels, 200): the estimate, marked as such.
    let few = |p: f64, est: f64| quality(150.0, p, 50_000.0, Some(est));
    let mut e = evidence(windows(12, 1.0), 0.9, 0.9);
    (e.control, e.challenger) = (few(0.9, 0.9), few(0.9, 0.9));
    let v = judge(&cfg, &e);
    let p = &v.guardrails[2];
    assert!(p.estimated && p.status == GuardrailStatus::Inconclusive && p.upper.unwrap() < 0.02, "{p:?}");
    assert!(p.note.contains("waits for realised labels"), "{}", p.note);
    assert_eq!(v.decision, Decision::Inconclusive);
    // Allowed to decide: promoted on the estimate.
    let lenient = JudgeConfig { decide_on_estimate: true, ..JudgeConfig::default() };
    assert_eq!(judge(&lenient, &e).decision, Decision::Promote);
    // An estimate far below the control's (a less confident challenger, say) fails only
    // when allowed to decide; by default it waits for labels.
    (e.control, e.challenger) = (few(0.9, 0.9), few(0.9, 0.8));
    let v = judge(&cfg, &e);
    assert_eq!(
        (v.decision, v.guardrails[2].status, v.guardrails[2].estimated),
        (Decision::Inconclusive, GuardrailStatus::Inconclusive, true)
    );
    assert!(v.guardrails[2].note.contains("beyond the margin"), "{}", v.guardrails[2].note);
    let v = judge(&lenient, &e);
    assert_eq!((v.decision, v.guardrails[2].status), (Decision::Rollback, GuardrailStatus::Fail));
    // Realised labels win once both arms have min_labels.
    (e.control, e.challenger) =
        (quality(5_000.0, 0.9, 1.0, Some(0.5)), quality(5_000.0, 0.9, 1.0, Some(0.9)));
    let v = judge(&cfg, &e);
    assert_eq!((v.guardrails[2].status, v.guardrails[2].estimated), (GuardrailStatus::Pass, false));
}

#[test]
fn max_duration_rolls_back_what_is_still_inconclusive() {
    let cfg = JudgeConfig::default();
    let mut e = evidence(windows(12, 1.0), 0.9, 0.9);
    e.challenger = quality(50.0, 0.9, 500.0, None);
    e.elapsed_ms = cfg.max_duration_ms - 1;
    assert_eq!(judge(&cfg, &e).decision, Decision::Inconclusive);
    e.elapsed_ms = cfg.max_duration_ms;
    let v = judge(&cfg, &e);
    assert_eq!(v.decision, Decision::Rollback);
    assert!(
        v.reason.starts_with("rollback: inconclusive at max_duration") && v.reason.contains("precision"),
        "{}",
        v.reason
    );
    // What can be promoted at max_duration is promoted.
    let mut e = evidence(windows(12, 1.0), 0.9, 0.9);
    e.elapsed_ms = cfg.max_duration_ms * 2;
    assert_eq!(judge(&cfg, &e).decision, Decision::Promote);
}

#[test]
fn recall_is_evidence_and_the_verdict_serialises() {
    let v = judge(&JudgeConfig::default(), &evidence(windows(12, 1.0), 0.9, 0.9));
    // tp = 0.9 L, fn = 0.1 L: recall 0.9 / 1.0.
    assert!((v.recall_control.unwrap() - 0.9).abs() < 1e-12);
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["decision"], "promote");
    assert_eq!(json["guardrails"][0]["status"], "pass");
    assert_eq!(json["guardrails"][2]["name"], "precision");
    let back: Verdict = serde_json::from_value(json).unwrap();
    assert_eq!(back, v);
}

#[test]
fn errors_in_one_burst_widen_the_bounds() {
    let cfg = JudgeConfig::default();
    // The same 72 challenger errors in 12 windows: 6 in each, or all 72 in one.
    let even = judge(&cfg, &evidence(windows(12, 1.0), 0.9, 0.9));
    let mut w = windows(12, 1.0);
    w.iter_mut().enumerate().for_each(|(i, w)| w.challenger.errors = if i == 3 { 72 } else { 0 });
    let burst = judge(&cfg, &evidence(w, 0.9, 0.9));
    let (e, b) = (&even.guardrails[1], &burst.guardrails[1]);
    assert_eq!(e.estimate, b.estimate);
    assert!(!e.note.contains("vary between windows"), "{}", e.note);
    assert!(b.note.contains("vary between windows"), "{}", b.note);
    assert!(
        b.upper.unwrap() - b.estimate.unwrap() > 2.0 * (e.upper.unwrap() - e.estimate.unwrap()),
        "{b:?} {e:?}"
    );
}

#[test]
fn a_challenger_that_never_served_has_no_error_rate_and_is_rolled_back_saying_so() {
    let cfg = JudgeConfig::default();
    let silent: Vec<MatchedWindow> =
        (0..12).map(|i| window(i, (5_400, 54, Some(100.0)), (0, 0, None))).collect();
    let mut e = evidence(silent, 0.9, 0.9);
    let v = judge(&cfg, &e);
    let g = v.guardrails.iter().find(|g| g.name == "error_rate").unwrap();
    assert_eq!((g.status, g.lower, g.upper), (GuardrailStatus::Inconclusive, None, None), "{g:?}");
    assert!(g.note.contains("no request on the challenger"), "{}", g.note);
    assert_eq!(v.decision, Decision::Inconclusive);
    e.elapsed_ms = cfg.max_duration_ms;
    let v = judge(&cfg, &e);
    assert_eq!(v.decision, Decision::Rollback);
    assert!(v.reason.contains("no request on the challenger"), "{}", v.reason);
}
