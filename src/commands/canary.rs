//! `modelwatch canary status | check MODEL`: the canary controller
//! (`modelwatch::canary::Canary`) from the command line.

use super::{Env, UsageError, num, open_read_only, print_json};
use crate::cli::{CanaryArgs, CanaryCommand, Format};
use anyhow::Context;
use modelwatch::canary::{Canary, CanaryConfig, Step};
use modelwatch::query::judge::{JudgeConfig, Verdict};
use modelwatch::time::rfc3339;
use modelwatch_store::Store;
use modelwatch_store::registry::{Registry, RegistryConfig};
use std::process::ExitCode;

fn config(env: &Env, a: &CanaryArgs) -> anyhow::Result<CanaryConfig> {
    let mut judge = JudgeConfig::default();
    if let Some(d) = &a.max_duration {
        judge.max_duration_ms = env.duration(d, "max-duration")?;
    }
    if let Some(m) = a.latency_margin {
        judge.latency_ratio_margin = m;
    }
    if let Some(m) = a.error_margin {
        judge.error_margin = m;
    }
    if let Some(m) = a.precision_margin {
        judge.precision_margin = m;
    }
    if let Some(x) = a.alpha {
        judge.alpha = x;
    }
    let c = CanaryConfig {
        judge,
        window_ms: env.duration(&a.window, "window")?,
        // No maturity at all is a meaningful setting, which the duration parser refuses.
        maturity_ms: if matches!(a.maturity.trim(), "0" | "0s" | "0m" | "0h" | "0d") {
            0
        } else {
            env.duration(&a.maturity, "maturity")?
        },
        threshold: a.threshold,
    };
    c.validate().map_err(UsageError)?;
    Ok(c)
}

pub fn run(env: &Env, cmd: CanaryCommand) -> anyhow::Result<ExitCode> {
    let (args, act) = match &cmd {
        CanaryCommand::Status(a) => (a, false),
        CanaryCommand::Check(a) => (a, true),
    };
    let config = config(env, args)?;
    let c = args.data.store_config();
    let registry = Registry::open(RegistryConfig {
        dir: c.dir.clone(),
        objects: c.objects.clone(),
        clock: env.clock.clone(),
    })?;
    // A check writes its decision into the events table (Grafana's annotations): it takes
    // a writer slot; a status only reads.
    let store = if act {
        Store::open(c).with_context(|| format!("opening the store at {}", args.data.data.display()))?
    } else {
        open_read_only(&args.data)?
    };
    let canary = Canary::new(&store, &registry, env.clock.clone(), config)?;
    let step = if act { canary.check(&args.model)? } else { canary.peek(&args.model)? };
    if act {
        store.flush()?;
    }
    match args.format {
        Format::Json => print_json(&step)?,
        _ => print(&args.model, &step)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn print(model: &str, step: &Step) -> anyhow::Result<()> {
    match step {
        Step::Idle => say!("{model}: no challenger, no canary running"),
        Step::NoControl { challenger } => {
            say!("{model}: version {challenger} is the challenger but there is no control to compare it with")
        }
        Step::Watching { control, challenger, started_ms, verdict } => {
            say!(
                "{model}: canary of version {challenger} against control {control}, since {}",
                rfc3339(*started_ms)
            );
            say!("verdict: {:?}: {}", verdict.decision, verdict.reason);
            guardrails(verdict)?;
        }
        Step::Promoted { control, challenger, verdict, .. } => {
            say!(
                "{model}: version {challenger} promoted to control and latest (version {control} stays registered for rollback)"
            );
            say!("verdict: {}", verdict.reason);
            guardrails(verdict)?;
        }
        Step::Superseded { challenger, detail } => {
            say!(
                "{model}: the registry changed while version {challenger} was judged; nothing done: {detail}"
            )
        }
        Step::RolledBack { control, challenger, verdict, .. } => {
            say!("{model}: version {challenger} rolled back (rejected); version {control} serves alone");
            say!("verdict: {}", verdict.reason);
            guardrails(verdict)?;
        }
    }
    Ok(())
}

fn guardrails(v: &Verdict) -> anyhow::Result<()> {
    let o = |x: Option<f64>| x.map_or("-".to_string(), num);
    say!(
        "{:<12} {:>10} {:>22} {:>8}  {:<13} {:>8}  note",
        "guardrail",
        "estimate",
        "interval",
        "margin",
        "status",
        "samples"
    );
    for g in &v.guardrails {
        say!(
            "{:<12} {:>10} {:>22} {:>8}  {:<13} {:>8}  {}{}",
            g.name,
            o(g.estimate),
            format!("[{}, {}]", o(g.lower), o(g.upper)),
            num(g.margin),
            format!("{:?}", g.status),
            g.samples,
            if g.estimated { "label-free estimate; " } else { "" },
            g.note
        );
    }
    if let Some(d) = v.confidence_drift {
        say!("confidence PSI between the arms: {} (evidence, not a guardrail)", num(d));
    }
    Ok(())
}
