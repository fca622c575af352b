//! `modelwatch canary-scorer` (hidden): a test scorer that embeds the registry watcher over
//! the data directory's registry, its agents writing to the store there. Every refresh it
//! routes `--requests` keys `key-<i>`, records each prediction under the variant that served
//! it, and prints one JSON line: `{"refresh":k,"seq":s,"control":v,"challenger":v|null,
//! "served":{"<version>":count},"failed":[...]}` (`seq`: the registry's audit entry count
//! that refresh read), or `{"refresh":k,"error":"..."}`. The watcher tests promote, roll
//! back and kill registry writers beside it and check what it served.

use super::Env;
use crate::cli::CanaryScorerArgs;
use modelwatch::canary::{AgentFactory, Loader, ModelWatcher, WatcherConfig, variant_tag};
use modelwatch::{Agent, Prediction};
use modelwatch_store::registry::{Registry, RegistryConfig};
use modelwatch_store::{Store, StoreConfig};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// What the test scorer makes of a version: its artifact's size, and a score from it.
struct ArtifactModel {
    bytes: u64,
}

impl ArtifactModel {
    fn score(&self, key: &[u8]) -> f64 {
        let h = key.iter().fold(self.bytes, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(*b)));
        (h % 1_000) as f64 / 1_000.0
    }
}

pub fn run(env: &Env, args: &CanaryScorerArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.data.data)?;
    let store = Arc::new(Store::open(StoreConfig { clock: env.clock.clone(), ..args.data.store_config() })?);
    let config = args.data.store_config();
    let registry = Registry::open(RegistryConfig {
        dir: config.dir.clone(),
        objects: config.objects,
        clock: env.clock.clone(),
    })?;
    let (model, clock) = (args.model.clone(), env.clock.clone());
    let agents: AgentFactory = Box::new(move |arm, version| {
        Agent::builder(&model)
            .variant(variant_tag(arm))
            .version(&version.to_string())
            .segments(["all"])
            .clock(clock.clone())
            .build(store.clone())
    });
    // Reads the fetched (and checked) artifact: every file the version lists must be there.
    let loader: Loader<ArtifactModel> = Box::new(|info, dir| {
        let mut bytes = 0;
        for f in &info.meta.training.artifact.files {
            let path = dir.join(&f.path);
            bytes += std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?.len();
        }
        Ok(ArtifactModel { bytes })
    });
    let scratch = tempfile::tempdir()?;
    let watcher = ModelWatcher::new(
        registry,
        WatcherConfig { fraction: args.fraction, ..WatcherConfig::new(&args.model, scratch.path()) },
        agents,
        loader,
    )?;
    let mut reader = watcher.reader();
    let mut out = std::io::stdout().lock();
    let mut k = 0u64;
    while args.refreshes == 0 || k < args.refreshes {
        k += 1;
        let line = match watcher.refresh() {
            Err(e) => serde_json::json!({ "refresh": k, "error": e.to_string() }),
            Ok(r) => {
                let mut served: BTreeMap<String, u64> = BTreeMap::new();
                for i in 0..args.requests {
                    let key = format!("key-{i}");
                    let Some(v) = reader.pick(key.as_bytes()) else { continue };
                    let confidence = v.model.score(key.as_bytes());
                    v.handle.record(&Prediction::new("all", Duration::from_micros(50), confidence));
                    *served.entry(v.version.to_string()).or_default() += 1;
                }
                serde_json::json!({
                    "refresh": k,
                    "seq": r.seq,
                    "control": r.control,
                    "challenger": r.challenger,
                    "served": served,
                    "failed": r.failed,
                })
            }
        };
        writeln!(out, "{line}")?;
        out.flush()?;
        std::thread::sleep(Duration::from_millis(args.refresh_ms));
    }
    watcher.shutdown()?;
    Ok(ExitCode::SUCCESS)
}
