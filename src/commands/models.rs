//! `modelwatch models list | show | promote | rollback | log`: the model registry
//! (`modelwatch_store::registry`) from the command line. A promotion or rollback by hand is
//! an audited change like an automatic one, with actor `cli` (or `--actor`) and `--reason`.

use super::{Env, UsageError, num, print_json, table};
use crate::cli::{AuditArgs, DataArg, Format, ModelsCommand};
use modelwatch::time::rfc3339;
use modelwatch_store::registry::{
    Action, Alias, AuditEntry, Registry, RegistryConfig, RegistryError, VersionInfo, parse_version,
};
use serde::Serialize;
use std::process::ExitCode;

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
            let versions = open(env, &data)?.versions(&model).map_err(usage)?;
            list_versions(&versions, format)
        }
        ModelsCommand::Show { model, which, data, format } => {
            show(&open(env, &data)?, &model, &which, format)
        }
        ModelsCommand::Promote { model, number, audit, data, format } => {
            let version = parse_version(&number).map_err(usage)?;
            let entry = open(env, &data)?.promote(&model, version, &action(&audit)).map_err(usage)?;
            print_entries(&[entry], format)
        }
        ModelsCommand::Rollback { model, audit, data, format } => {
            let entry = open(env, &data)?.rollback(&model, &action(&audit)).map_err(usage)?;
            print_entries(&[entry], format)
        }
        ModelsCommand::Log { model, data, format } => {
            let log = open(env, &data)?.log(&model).map_err(usage)?;
            print_entries(&log, format)
        }
    }
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
    for model in reg.models()? {
        let s = reg.state(&model)?;
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
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no model is registered");
        return Ok(ExitCode::SUCCESS);
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
    println!("{t}");
    Ok(ExitCode::SUCCESS)
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
        let m = &v.meta;
        t.add_row([
            m.version.to_string(),
            v.status.to_string(),
            aliases(v),
            rfc3339(m.created_at_ms),
            m.trainer_kind.clone(),
            m.rows.to_string(),
            m.metrics.overall.get("auc").map_or_else(|| "-".into(), |a| num(*a)),
            opt(m.parent),
        ]);
    }
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}

fn show(reg: &Registry, model: &str, which: &str, format: Format) -> anyhow::Result<ExitCode> {
    let info = match Alias::parse(which) {
        Some(alias) => reg.get_alias(model, alias),
        None => reg.get(model, parse_version(which).map_err(usage)?),
    }
    .map_err(usage)?;
    // Showing a version says whether its artifact is still the one registered.
    let check = match reg.read_artifact(model, info.meta.version) {
        Ok(_) => "verified".to_string(),
        Err(e) => e.to_string(),
    };
    if format == Format::Json {
        let mut v = serde_json::to_value(&info)?;
        v["artifact_check"] = serde_json::Value::String(check);
        print_json(&v)?;
        return Ok(ExitCode::SUCCESS);
    }
    let m = &info.meta;
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
    row("trainer", m.trainer_kind.clone());
    row(
        "training window",
        format!("{} .. {}", rfc3339(m.training_window.from_ms), rfc3339(m.training_window.to_ms)),
    );
    row("rows", m.rows.to_string());
    row("features", m.features.join(", "));
    for (name, value) in &m.metrics.overall {
        row(&format!("hold-out {name}"), num(*value));
    }
    for (segment, metrics) in &m.metrics.segments {
        let figures: Vec<String> = metrics.iter().map(|(k, v)| format!("{k}={}", num(*v))).collect();
        row(&format!("hold-out [{segment}]"), figures.join(" "));
    }
    row("feature importance", compact(&m.feature_importance));
    row("split", compact(&m.split));
    row("parent", opt(m.parent));
    row("event", m.event_id.clone().unwrap_or_else(|| "-".into()));
    row("gate report", info.gate_report.as_ref().map_or_else(|| "-".into(), compact));
    row("artifact", reg.location(&m.artifact.path).display().to_string());
    row("artifact sha256", m.artifact.sha256.clone());
    row(
        "artifact files",
        m.artifact.files.iter().map(|f| format!("{} ({} B)", f.path, f.bytes)).collect::<Vec<_>>().join(", "),
    );
    row("artifact check", check);
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}

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
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}
