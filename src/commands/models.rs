//! `modelwatch models list | show | promote | rollback | log | gc`: the model registry
//! (`modelwatch_store::registry`) from the command line. A promotion or rollback by hand is
//! an audited change like an automatic one, with actor `cli` (or `--actor`) and `--reason`.

use super::{Env, UsageError, num, print_json, table};
use crate::cli::{AuditArgs, DataArg, Format, ModelsCommand};
use modelwatch::retrain::gate::GateReport;
use modelwatch::retrain::importance::ImportanceReport;
use modelwatch::time::rfc3339;
use modelwatch_store::registry::{
    Action, Alias, AuditEntry, Registry, RegistryConfig, RegistryError, VersionInfo, parse_version,
};
use serde::Serialize;
use std::process::ExitCode;
use std::time::Duration;

/// A model as `models list` shows it.
#[derive(Serialize)]
struct ModelRow {
    model: String,
    control: Option<u32>,
    challenger: Option<u32>,
    latest: Option<u32>,
    versions: usize,
    audit_entries: u64,
}

pub fn run(env: &Env, cmd: ModelsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelsCommand::List { model: None, data, format } => list_models(&open(env, &data)?, format),
        ModelsCommand::List { model: Some(model), data, format } => {
            let versions = open(env, &data)?.versions_each(&model).map_err(usage)?;
            let (versions, broken) = readable(versions);
            list_versions(&versions, format)?;
            Ok(broken)
        }
        ModelsCommand::Show { model, which, data, format } => {
            show(&open(env, &data)?, &model, &which, format)
        }
        ModelsCommand::Promote { model, number, audit, data, format } => {
            let version = parse_version(&number).map_err(usage)?;
            match open(env, &data)?.promote(&model, version, &action(&audit)) {
                Ok(entry) => print_entries(&[entry], format),
                // Asking for what already holds is not a failure: scripts may repeat it.
                Err(e @ RegistryError::AlreadyControl { .. }) => {
                    if format == Format::Json {
                        print_json(&Vec::<AuditEntry>::new())?;
                    }
                    eprintln!("modelwatch: {e}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Err(usage(e)),
            }
        }
        ModelsCommand::Rollback { model, audit, data, format } => {
            let entry = open(env, &data)?.rollback(&model, &action(&audit)).map_err(usage)?;
            print_entries(&[entry], format)
        }
        ModelsCommand::Log { model, data, format } => {
            let log = open(env, &data)?.log_each(&model).map_err(usage)?;
            let (log, broken) = readable(log);
            print_entries(&log, format)?;
            Ok(broken)
        }
        ModelsCommand::Gc { model, older_than, delete, data, format } => {
            gc(&open(env, &data)?, &model, Duration::from_secs(older_than), delete, format)
        }
    }
}

/// The readable items, each unreadable one's error said on stderr, and the exit code: a
/// failure if any was unreadable, said after everything readable was shown.
fn readable<T>(items: Vec<Result<T, RegistryError>>) -> (Vec<T>, ExitCode) {
    let mut out = Vec::with_capacity(items.len());
    let mut broken = 0;
    for item in items {
        match item {
            Ok(v) => out.push(v),
            Err(e) => {
                broken += 1;
                eprintln!("modelwatch: unreadable, left out: {e}");
            }
        }
    }
    if broken > 0 {
        eprintln!("modelwatch: {broken} unreadable document(s); the rest is shown");
        return (out, ExitCode::FAILURE);
    }
    (out, ExitCode::SUCCESS)
}

fn gc(
    reg: &Registry,
    model: &str,
    older_than: Duration,
    delete: bool,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let orphans = reg.orphans(model, older_than).map_err(usage)?;
    let mut failed = false;
    let mut deleted = Vec::new();
    if delete {
        for o in &orphans {
            match reg.remove_orphan(model, o) {
                Ok(()) => deleted.push(true),
                Err(e) => {
                    eprintln!("modelwatch: {e}");
                    failed = true;
                    deleted.push(false);
                }
            }
        }
    }
    if format == Format::Json {
        let rows: Vec<_> = orphans
            .iter()
            .enumerate()
            .map(|(i, o)| {
                serde_json::json!({
                    "dir": o.dir,
                    "location": o.location,
                    "age_seconds": o.age_ms.map(|a| a / 1000),
                    "deleted": deleted.get(i).copied().unwrap_or(false),
                })
            })
            .collect();
        print_json(&rows)?;
    } else if orphans.is_empty() {
        say!("no orphaned version directory of model {model}");
    } else {
        let mut t = table(["directory", "age", "deleted"]);
        for (i, o) in orphans.iter().enumerate() {
            t.add_row([
                o.location.display().to_string(),
                o.age_ms.map_or_else(|| "-".into(), |a| format!("{} s", a / 1000)),
                if deleted.get(i).copied().unwrap_or(false) { "yes".into() } else { "no".to_string() },
            ]);
        }
        say!("{t}");
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// A name or version the registry refuses is a usage error (exit 2); anything else is a
/// data error (exit 1).
fn usage(e: RegistryError) -> anyhow::Error {
    match e {
        RegistryError::Invalid { .. } => UsageError(e.to_string()).into(),
        e => e.into(),
    }
}

fn action(audit: &AuditArgs) -> Action {
    Action { actor: audit.actor.clone(), reason: audit.reason.clone(), event_id: audit.event.clone() }
}

/// The registry of the store the data arguments name.
pub fn open(env: &Env, data: &DataArg) -> anyhow::Result<Registry> {
    if data.objects.is_none() && !data.data.exists() {
        anyhow::bail!("{}: no such data directory (no model is registered there)", data.data.display());
    }
    let config = data.store_config();
    Ok(Registry::open(RegistryConfig { dir: config.dir, objects: config.objects, clock: env.clock.clone() })?)
}

fn opt(v: Option<u32>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn list_models(reg: &Registry, format: Format) -> anyhow::Result<ExitCode> {
    let mut rows = Vec::new();
    let mut code = ExitCode::SUCCESS;
    for model in reg.models()? {
        // One model's broken head must not hide the others.
        let s = match reg.state(&model) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("modelwatch: model {model:?} left out: {e}");
                code = ExitCode::FAILURE;
                continue;
            }
        };
        let a = s.aliases();
        rows.push(ModelRow {
            control: a.control,
            challenger: a.challenger,
            latest: a.latest,
            versions: s.statuses().len(),
            audit_entries: s.seq(),
            model,
        });
    }
    if format == Format::Json {
        print_json(&rows)?;
        return Ok(code);
    }
    if rows.is_empty() {
        say!("no model is registered");
        return Ok(code);
    }
    let mut t = table(["model", "control", "challenger", "latest", "versions", "audit entries"]);
    for r in &rows {
        t.add_row([
            r.model.clone(),
            opt(r.control),
            opt(r.challenger),
            opt(r.latest),
            r.versions.to_string(),
            r.audit_entries.to_string(),
        ]);
    }
    say!("{t}");
    Ok(code)
}

fn aliases(v: &VersionInfo) -> String {
    let names: Vec<&str> = v.aliases.iter().map(|a| a.as_str()).collect();
    if names.is_empty() { "-".into() } else { names.join(",") }
}

fn list_versions(versions: &[VersionInfo], format: Format) -> anyhow::Result<ExitCode> {
    if format == Format::Json {
        print_json(&versions)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(["version", "status", "aliases", "created", "trainer", "rows", "auc", "parent"]);
    for v in versions {
        let (m, training) = (&v.meta, &v.meta.training);
        t.add_row([
            m.version.to_string(),
            v.status.to_string(),
            aliases(v),
            rfc3339(m.created_at_ms),
            training.trainer_kind.clone(),
            training.rows.to_string(),
            training.metrics.overall.get("auc").map_or_else(|| "-".into(), |a| num(*a)),
            opt(training.parent),
        ]);
    }
    say!("{t}");
    Ok(ExitCode::SUCCESS)
}

fn show(reg: &Registry, model: &str, which: &str, format: Format) -> anyhow::Result<ExitCode> {
    let info = match Alias::parse(which) {
        Some(alias) => reg.get_alias(model, alias),
        None => reg.get(model, parse_version(which).map_err(usage)?),
    }
    .map_err(usage)?;
    // Showing a version says whether its artifact is still the one registered; one that
    // is not is shown, and the command fails.
    let (check, code) = match reg.verify_artifact(model, info.meta.version) {
        Ok(_) => ("verified".to_string(), ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("modelwatch: {e}");
            (e.to_string(), ExitCode::FAILURE)
        }
    };
    if format == Format::Json {
        let mut v = serde_json::to_value(&info)?;
        v["artifact_check"] = serde_json::Value::String(check);
        print_json(&v)?;
        return Ok(code);
    }
    let (m, training) = (&info.meta, &info.meta.training);
    let compact = |v: &serde_json::Value| serde_json::to_string(v).unwrap_or_default();
    let mut t = table(["field", "value"]);
    let mut row = |k: &str, v: String| {
        t.add_row([k.to_string(), v]);
    };
    row("model", m.model.clone());
    row("version", m.version.to_string());
    row("status", info.status.to_string());
    row("aliases", aliases(&info));
    row("created", rfc3339(m.created_at_ms));
    row("trainer", training.trainer_kind.clone());
    row(
        "training window",
        format!(
            "{} .. {}",
            rfc3339(training.training_window.from_ms),
            rfc3339(training.training_window.to_ms)
        ),
    );
    row("rows", training.rows.to_string());
    row("features", training.features.join(", "));
    // Counts read as counts, not as 1295.0000.
    let figure = |k: &str, v: f64| {
        if matches!(k, "rows" | "positives") && v.fract() == 0.0 { format!("{v:.0}") } else { num(v) }
    };
    for (name, value) in &training.metrics.overall {
        row(&format!("hold-out {name}"), figure(name, *value));
    }
    for (segment, metrics) in &training.metrics.segments {
        let figures: Vec<String> = metrics.iter().map(|(k, v)| format!("{k}={}", figure(k, *v))).collect();
        row(&format!("hold-out [{segment}]"), figures.join(" "));
    }
    match serde_json::from_value::<ImportanceReport>(training.feature_importance.clone()) {
        Ok(r) if !r.permutation.overall.features.is_empty() => {
            let p = &r.permutation;
            let mut f: Vec<_> = p.overall.features.iter().collect();
            f.sort_by(|a, b| b.mean.total_cmp(&a.mean));
            let top: Vec<String> =
                f.iter().take(TOP).map(|x| format!("{} {}±{}", x.feature, num(x.mean), num(x.std))).collect();
            row(
                &format!("importance (permutation, {:?}, {} repeats)", p.metric, p.repeats).to_lowercase(),
                top.join(", "),
            );
            if let Some(shap) = &r.shap {
                let mut f: Vec<_> = shap.overall.iter().collect();
                f.sort_by(|a, b| b.1.total_cmp(a.1));
                let top: Vec<String> = f.iter().take(TOP).map(|(k, v)| format!("{k} {}", num(**v))).collect();
                row("importance (SHAP, mean |log-odds|)", top.join(", "));
            }
        }
        _ => row("feature importance", compact(&training.feature_importance)),
    }
    row("split", compact(&training.split));
    row("parent", opt(training.parent));
    row("event", training.event_id.clone().unwrap_or_else(|| "-".into()));
    match info.gate_report.as_ref().map(|g| serde_json::from_value::<GateReport>(g.clone())) {
        None => row("gate report", "-".into()),
        Some(Ok(g)) => {
            row(
                "gate",
                format!(
                    "{} against {} on {} hold-out rows{}",
                    if g.passed { "passed" } else { "REJECTED" },
                    g.control.map_or("no control".to_string(), |c| format!("control version {c}")),
                    g.holdout_rows,
                    g.event_id.map(|e| format!(", event {e}")).unwrap_or_default()
                ),
            );
            for c in &g.criteria {
                row(&format!("gate {}", c.name), format!("{}  {}", c.verdict.word(), c.summary));
            }
        }
        Some(Err(_)) => row("gate report", info.gate_report.as_ref().map_or_else(|| "-".into(), compact)),
    }
    row("artifact", reg.location(&training.artifact.path).display().to_string());
    row("artifact sha256", training.artifact.sha256.clone());
    row(
        "artifact files",
        training
            .artifact
            .files
            .iter()
            .map(|f| format!("{} ({} B)", f.path, f.bytes))
            .collect::<Vec<_>>()
            .join(", "),
    );
    row("artifact check", check);
    say!("{t}");
    Ok(code)
}

/// The features shown of a version's importance, most important first.
const TOP: usize = 5;

fn print_entries(entries: &[AuditEntry], format: Format) -> anyhow::Result<ExitCode> {
    if format == Format::Json {
        print_json(&entries)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(["seq", "time", "op", "version", "previous", "status", "actor", "event", "reason"]);
    for e in entries {
        t.add_row([
            e.seq.to_string(),
            rfc3339(e.at_ms),
            e.op.as_str().to_string(),
            opt(e.version),
            opt(e.previous),
            e.status.map_or_else(|| "-".into(), |s| s.to_string()),
            e.actor.clone(),
            e.event_id.clone().unwrap_or_else(|| "-".into()),
            e.reason.clone(),
        ]);
    }
    say!("{t}");
    Ok(ExitCode::SUCCESS)
}
