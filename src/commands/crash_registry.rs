//! `modelwatch crash-registry` (hidden): registers a version and promotes it, forever, with
//! a rollback every third round, printing `registered N`, `promoted N` or `rolled-back N`
//! once the registry has committed each change. The registry's crash test kills it with
//! SIGKILL at random moments and checks, after each kill, that the aliases and the audit
//! log agree and that every printed change survived.

use crate::cli::CrashRegistryArgs;
use modelwatch::agent::{ManualClock, Timestamp};
use modelwatch_store::registry::{Action, NewVersion, Registry, RegistryConfig};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

pub fn run(args: &CrashRegistryArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.data.data)?;
    let config = args.data.store_config();
    // Simulated time: the loop's records never depend on the hour it runs.
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_764_115_200)));
    let reg = Registry::open(RegistryConfig {
        dir: config.dir.clone(),
        objects: config.objects,
        clock: clock.clone(),
    })?;
    let mut out = std::io::stdout().lock();
    let model = args.model.as_str();
    let auto = Action::new("auto", "crash loop");
    loop {
        clock.advance(Duration::from_secs(60));
        // One scratch directory, rewritten each round: the registry copies its files in.
        let art = config.dir.join("crash-artifact");
        std::fs::create_dir_all(&art)?;
        let round = reg.models()?.contains(&model.to_string()).then(|| reg.state(model)).transpose()?;
        let n = round.map_or(0, |s| s.seq());
        std::fs::write(art.join("weights.bin"), format!("weights after entry {n}\n").repeat(64))?;
        std::fs::write(art.join("meta.json"), format!("{{\"round\": {n}}}\n"))?;
        let v = reg
            .register(NewVersion { reason: "crash loop".into(), ..NewVersion::new(model, "crash", &art) })?;
        let v = v.meta.version;
        writeln!(out, "registered {v}")?;
        out.flush()?;
        let e = reg.promote(model, v, &auto)?;
        writeln!(out, "promoted {}", e.version.unwrap_or_default())?;
        out.flush()?;
        if v % 3 == 0 {
            let e = reg.rollback(model, &auto)?;
            writeln!(out, "rolled-back {}", e.version.unwrap_or_default())?;
            out.flush()?;
        }
    }
}
