//! Command-line definitions: every verb's arguments. One grammar for time on every verb
//! (`--since`, `--from/--to`, `--range`, all read by `modelwatch::time`), one output rule
//! (a table by default, `--format json` always, `csv` where rows are flat).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// modelwatch: observability and the retraining loop for ML models in production.
#[derive(Parser, Debug)]
#[command(name = "modelwatch", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Evaluate as if it were this time (RFC 3339 or epoch s/ms): `now`, `now-6h`, `--since`
    /// and the default windows count back from it. For reports and tests: a server or
    /// trigger engine started with it stays at that time. Default: the system clock.
    #[arg(long, global = true, value_name = "TIME")]
    pub now: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Backfill prediction logs (CSV or Parquet) through the agent into the store, with the
    /// rows' own timestamps.
    #[command(
        after_help = "Example:\n  modelwatch import examples/data/predictions.csv --data ./modelwatch-data"
    )]
    Import(ImportArgs),
    /// Inspect, verify or compact the store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Evaluate a query over a time range, e.g. 'p95(latency{model="pii"}) by (segment)'.
    #[command(
        after_help = "Examples:\n  modelwatch query 'p95(latency) by (variant)' --since 24h --step 1h\n  \
                            modelwatch query 'rate(predictions)' --from now-6h --to now --step 10m --format csv"
    )]
    Query(QueryArgs),
    /// Simulate a PII-detection scorer over several days (with a drift event) into the store.
    #[command(after_help = "Examples:\n  modelwatch demo\n  \
                            modelwatch demo --days 2 --end 2026-11-29T04:10:00Z --seed 7 --data /tmp/mw")]
    Demo(DemoArgs),
    /// Drift of every feature and of the confidence score: a reference (a saved baseline
    /// or a range) against a current range, most severe first, with data-quality checks.
    #[command(after_help = "Examples:\n  modelwatch drift --reference now-8d..now-1d --current 24h\n  \
                            modelwatch drift --reference before-release --from now-6h --to now --format json")]
    Drift(DriftArgs),
    /// Model quality per window: realised from feedback (precision, recall, F1, AUC) and
    /// estimated from the confidence distribution without labels.
    #[command(after_help = "Examples:\n  modelwatch quality --since 7d --by segment\n  \
                            modelwatch quality --from 2026-11-28T00:00:00Z --to 2026-11-29T00:00:00Z --format csv")]
    Quality(QualityArgs),
    /// Save or list named baselines (reference profiles for drift).
    #[command(subcommand)]
    Baseline(BaselineCommand),
    /// Retraining triggers: status, history, check (evaluate now), fire, ack.
    #[command(subcommand)]
    Triggers(TriggersCommand),
    /// Retrain on a retraining event: train a challenger on the labelled examples, judge it
    /// against the control with the validation gate, register it as the challenger or
    /// reject it, and acknowledge the event with the outcome. Idempotent per event; a run
    /// cut short resumes where it stopped.
    #[command(
        after_help = "Examples:\n  modelwatch retrain --event pii-20261129T041000Z-3 --config deploy/modelwatch.toml\n  \
                            modelwatch retrain --force --reason \"new labels from the audit\" --format json"
    )]
    Retrain(RetrainArgs),
    /// Serve the store over HTTP: the Grafana JSON datasource (/grafana), REST (/api/v1),
    /// Prometheus exposition (/metrics), /healthz and /readyz.
    #[command(
        after_help = "Example:\n  MODELWATCH_TOKEN=s3cret modelwatch serve --data ./modelwatch-data --listen 0.0.0.0:9464 \
                            --triggers deploy/modelwatch.toml"
    )]
    Serve(ServeArgs),
    /// The model registry: versions, the control/challenger/latest aliases, promotions,
    /// rollbacks and the audit log.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// The canary: judge the running challenger against the control from the store, and
    /// promote it or roll it back (`check`), or only say where it stands (`status`).
    #[command(subcommand)]
    Canary(CanaryCommand),
    /// Feature management: importance per version, correlation, pruning candidates and drift
    /// (`report`, the quarterly review).
    #[command(subcommand)]
    Features(FeaturesCommand),
    /// The ML System Health report as one self-contained HTML file: the Grafana dashboard's
    /// panels (latency, errors, throughput, confidence, quality, drift, model age, loaded
    /// models) and the trigger, retraining, gate, canary and promotion timeline.
    #[command(after_help = "Examples:\n  modelwatch report --output health.html\n  \
                            modelwatch report --model pii-confidence --since 7d --reference before-release")]
    Report(ReportArgs),
    /// Writes snapshots forever, printing each acknowledged sequence number (crash tests).
    #[command(hide = true)]
    CrashWriter(CrashWriterArgs),
    /// Registers and promotes model versions forever, printing each acknowledged change
    /// (crash tests of the registry).
    #[command(hide = true)]
    CrashRegistry(CrashRegistryArgs),
    /// A test scorer following the registry's aliases, printing what each refresh served
    /// (tests of the registry watcher).
    #[command(hide = true)]
    CanaryScorer(CanaryScorerArgs),
}

#[derive(Subcommand, Debug)]
pub enum FeaturesCommand {
    /// The quarterly review of a model's features: importance per version as a trend, the
    /// correlation matrix of the report's version, the pruning candidates with their
    /// evidence (and those kept because the gate would flag their removal), and the drift of
    /// each feature over the period against the version's training window.
    #[command(
        disable_version_flag = true,
        after_help = "Examples:\n  modelwatch features report\n  \
                      modelwatch features report --model pii-confidence --version 4 --since 90d --format json"
    )]
    Report(FeaturesReportArgs),
}

#[derive(Args, Debug)]
pub struct FeaturesReportArgs {
    /// The model (default: the only one in the registry).
    #[arg(long)]
    pub model: Option<String>,
    /// The version the matrix and the candidates are for: 3, v3 or an alias (control,
    /// challenger, latest). Default: the control, else the latest.
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,
    #[command(flatten)]
    pub window: WindowArgs,
    /// A feature is a candidate when its share of the total importance is below this in
    /// each of the last --versions versions (0.00001 = 0.001 %, the seed's figure).
    #[arg(long, default_value_t = 0.00001, value_name = "SHARE")]
    pub min_share: f64,
    /// ... or when it correlates with a more important feature at least this much
    /// (|Pearson| or |Spearman|), in each of them.
    #[arg(long, default_value_t = 0.95, value_name = "R")]
    pub max_correlation: f64,
    /// The versions (with the evidence) a rule must hold in.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub versions: usize,
    /// The configuration file whose `[gate]` judges which candidates must be kept (the
    /// gate's bias check would flag their removal); the gate's defaults without one.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArg,
    /// `table` and `json` print; `html` writes the quarterly review's document (one
    /// self-contained file) to --output.
    #[arg(long, value_enum, default_value_t = FeaturesFormat::Table)]
    pub format: FeaturesFormat,
    /// Where `--format html` writes the page (`-`: standard output).
    #[arg(long, short, default_value = "modelwatch-features.html", value_name = "FILE")]
    pub output: PathBuf,
}

/// What `features report` prints.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeaturesFormat {
    Table,
    Json,
    Html,
}

#[derive(Subcommand, Debug)]
pub enum CanaryCommand {
    /// The running canary's verdict as of now, every guardrail with its estimate, interval
    /// and margin; acts on nothing. Exit 0.
    #[command(after_help = "Example:\n  modelwatch canary status pii-confidence --window 10m")]
    Status(CanaryArgs),
    /// Judge the running canary and act on the verdict: promote the challenger (control and
    /// latest), roll it back (rejected), or keep watching. Run it every interval (cron, a
    /// timer); every check reads the whole canary again, so a missed one loses nothing.
    #[command(
        after_help = "Example:\n  modelwatch canary check pii-confidence --window 5m --max-duration 12h"
    )]
    Check(CanaryArgs),
}

#[derive(Args, Debug)]
pub struct CanaryArgs {
    /// The model.
    pub model: String,
    #[command(flatten)]
    pub data: DataArg,
    /// Length of the matched windows both arms are compared over (each needs 100 requests
    /// per arm to count).
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    pub window: String,
    /// How old a prediction must be for its label to count in precision (0s: every label).
    #[arg(long, default_value = "2h", value_name = "DURATION")]
    pub maturity: String,
    /// The longest a canary runs: still inconclusive then, it is rolled back.
    #[arg(long, value_name = "DURATION")]
    pub max_duration: Option<String>,
    /// The challenger's p95 latency may be at most this times the control's.
    #[arg(long)]
    pub latency_margin: Option<f64>,
    /// Its error rate may be at most this above the control's (0.005 = half a point).
    #[arg(long)]
    pub error_margin: Option<f64>,
    /// Its precision may be at most this below the control's.
    #[arg(long)]
    pub precision_margin: Option<f64>,
    /// The error rate of each guardrail's confidence sequence.
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Confidence from which a prediction is positive.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f64,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Args, Debug, Clone)]
pub struct DataArg {
    /// The data directory (the WAL, and the Parquet files unless --objects is given).
    #[arg(long, default_value = "./modelwatch-data", global = true)]
    pub data: PathBuf,
    /// An S3-compatible bucket for the Parquet files and manifest, `s3://bucket/prefix`;
    /// credentials, region and endpoint come from the usual AWS_* variables
    /// (AWS_ENDPOINT, AWS_ALLOW_HTTP=true for a local server).
    #[arg(long, global = true, value_name = "URL")]
    pub objects: Option<String>,
    /// The writer slot a writing command claims (`writers/<ID>/` under the data directory;
    /// one process per slot): default the lowest free `w0`, `w1`, … Readers read every slot.
    #[arg(long, global = true, env = "MODELWATCH_WRITER_ID", value_name = "ID")]
    pub writer_id: Option<String>,
}

impl DataArg {
    /// The store configuration these arguments describe.
    pub fn store_config(&self) -> modelwatch_store::StoreConfig {
        modelwatch_store::StoreConfig {
            objects: self
                .objects
                .clone()
                .map(|url| modelwatch_store::ObjectStoreConfig { url, options: Vec::new() }),
            writer: self.writer_id.clone(),
            ..modelwatch_store::StoreConfig::new(&self.data)
        }
    }
}

/// The window a verb reads: `--range FROM..TO`, or `--from`/`--to`, or `--since` back from
/// `--to` (default: now). Each verb has its own default length.
#[derive(Args, Debug, Clone, Default)]
pub struct WindowArgs {
    /// How far back from --to (or now): 90s, 15m, 6h, 7d.
    #[arg(long, value_name = "DURATION", conflicts_with_all = ["from", "range"])]
    pub since: Option<String>,
    /// Start: RFC 3339, epoch s or ms, now-6h.
    #[arg(long, value_name = "TIME", conflicts_with = "range")]
    pub from: Option<String>,
    /// End (default now).
    #[arg(long, value_name = "TIME", conflicts_with = "range")]
    pub to: Option<String>,
    /// The whole window, FROM..TO (or a duration: the last 7d).
    #[arg(long, value_name = "FROM..TO")]
    pub range: Option<String>,
}

impl WindowArgs {
    /// Whether any window flag was given.
    pub fn given(&self) -> bool {
        self.since.is_some() || self.from.is_some() || self.to.is_some() || self.range.is_some()
    }
}

/// A table, or JSON.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

/// A table, JSON, or CSV (rows are flat).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
    Csv,
}

#[derive(Args, Debug)]
#[command(after_long_help = "\
Streaming: the file is read twice, never held: a first pass checks every row and learns the \
categorical features and segments, a second replays the rows in batches. Memory stays the \
same whatever the file's size.

Durability: each batch is one store append (one WAL record, one fsync), carrying an event of \
kind `import` that records the file's SHA-256 and how many of its rows are stored.

Re-running is safe: an import of a file whose bytes were already imported says so and \
exits 0; one stopped part-way (a crash, kill -9, a full disk) resumes after the last stored \
batch. No row is counted twice. A file with other bytes (even one more row) is another file.

Example:
  modelwatch import examples/data/predictions.csv --data ./modelwatch-data")]
pub struct ImportArgs {
    /// A CSV (`.csv`) or Parquet (`.parquet`) file of predictions.
    pub file: PathBuf,
    #[command(flatten)]
    pub data: DataArg,
    /// Import all or nothing: stop at the first bad row (exit 1, naming its line) and refuse
    /// columns the importer does not use (exit 2, naming them), before anything is written.
    /// Without it bad rows are skipped and reported, and unknown columns are named and
    /// ignored.
    #[arg(long)]
    pub strict: bool,
    /// Flush interval of the agent that replays the rows, in seconds.
    #[arg(long, default_value_t = 10)]
    pub interval: u64,
    /// Most input rows per store append (one WAL record and one fsync each); a batch is
    /// smaller when its rows spread over many intervals, to bound its memory.
    #[arg(long, default_value_t = 65_536, value_name = "ROWS", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_rows: u64,
    /// The longest a `label_time` may come after its row's `timestamp`; a later label is
    /// rejected with its line.
    #[arg(long, default_value = "30d", value_name = "DURATION")]
    pub max_label_delay: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Partitions, files, rows, bytes, time ranges and resolutions.
    #[command(after_help = "Example:\n  modelwatch store inspect --data ./modelwatch-data --format json")]
    Inspect {
        #[command(flatten)]
        data: DataArg,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Reads every file and every writer slot's WAL; exits 1 on damage that loses or hides
    /// acknowledged data, naming the file and offset. A WAL tail torn by a crash (never
    /// acknowledged) is reported and exits 0.
    #[command(after_help = "Example:\n  modelwatch store verify --data ./modelwatch-data")]
    Verify {
        #[command(flatten)]
        data: DataArg,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Shows what repairing a damaged WAL would drop and keep; with --yes, moves each
    /// damaged segment aside and rewrites it with every intact record before and after the
    /// damage. Repairs every slot no live process holds, or the one --writer-id names.
    #[command(
        after_help = "Example:\n  modelwatch store repair --data ./modelwatch-data\n  modelwatch store repair --data ./modelwatch-data --writer-id w1 --yes"
    )]
    Repair {
        #[command(flatten)]
        data: DataArg,
        /// Carry the repair out (without it, only say what it would do).
        #[arg(long)]
        yes: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Compacts partitions, rolls up to 1m and 1h, and applies retention, in every writer
    /// slot no live process holds (a live writer's own maintenance does this for its slot);
    /// a free slot's WAL is replayed and published first.
    #[command(
        after_help = "Example:\n  modelwatch store compact --data ./modelwatch-data --as-of 2026-11-01T00:00:00Z\n  modelwatch store compact --data ./modelwatch-data --writer-id w1 --wait"
    )]
    Compact {
        #[command(flatten)]
        data: DataArg,
        /// Apply retention as of this time instead of now (e.g. for a backfill of old logs).
        #[arg(long, value_name = "TIME")]
        as_of: Option<String>,
        /// Wait for held slots to be released instead of skipping them.
        #[arg(long)]
        wait: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// The query (see docs/query-language.md).
    pub expr: String,
    #[command(flatten)]
    pub data: DataArg,
    /// The window (default: the last hour).
    #[command(flatten)]
    pub window: WindowArgs,
    /// Window length: 10s, 5m, 1h.
    #[arg(long, default_value = "1m")]
    pub step: String,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// Simulated days, ending at --end (1 to 30).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=30))]
    pub days: u64,
    /// When the simulation ends (default: now, to the minute).
    #[arg(long, value_name = "TIME")]
    pub end: Option<String>,
    /// Seed of the simulation. With the default, the loop's three rounds end as the README
    /// shows; another seed draws other traffic and labels, and the gate and the canary judge
    /// decide on what it draws (a round can end otherwise).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// The scenario played (`modelwatch::demo::scenario::ALL`).
    #[arg(long, default_value = "pii")]
    pub scenario: String,
    /// Delete the data directory first if it holds anything, its model registry included
    /// (the demo refuses to mix its simulated history into existing data).
    #[arg(long)]
    pub replace: bool,
    /// Stop after the history: do not close the loop (retrain, gate, canary, promotion).
    #[arg(long)]
    pub no_loop: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// The file to write (`-`: standard output).
    #[arg(long, short, default_value = "modelwatch-report.html")]
    pub output: PathBuf,
    /// The range (default: the last 24 hours, as the dashboard opens).
    #[command(flatten)]
    pub window: WindowArgs,
    /// Only this model (default: every model in the store).
    #[arg(long)]
    pub model: Option<String>,
    /// The drift reference: a saved baseline's name or a range FROM..TO (default: the seven
    /// days before the range, which for the default range is the dashboard's
    /// now-8d..now-1d).
    #[arg(long)]
    pub reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct CrashWriterArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// Rows buffered before a Parquet publication (small values publish often).
    #[arg(long, default_value_t = 20)]
    pub buffer_rows: usize,
    /// Run background maintenance (compaction, roll-ups, retention) this often, in ms;
    /// 0: never.
    #[arg(long, default_value_t = 0)]
    pub maintenance_ms: u64,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// Address to listen on (loopback by default; set a token before listening wider).
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub listen: std::net::SocketAddr,
    /// Require `Authorization: Bearer <token>` (or `X-API-Key`) on every route but /healthz
    /// and /readyz. Read from the environment so it stays out of the process list.
    #[arg(long, env = "MODELWATCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Largest request body, bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body: usize,
    /// Most series one request may return (summed over its targets).
    #[arg(long, default_value_t = 1_000)]
    pub max_series: usize,
    /// Most points (series x windows; a heatmap's cells) one request may return.
    #[arg(long, default_value_t = 500_000)]
    pub max_points: usize,
    /// Most targets in one Grafana `/query` request.
    #[arg(long, default_value_t = 100)]
    pub max_targets: usize,
    /// Largest answer body, bytes.
    #[arg(long, default_value_t = 32 << 20)]
    pub max_response: usize,
    /// Bytes the answer, response and discovery caches may hold together.
    #[arg(long, default_value_t = 256 << 20)]
    pub cache_size: usize,
    /// Evaluations run at once (default: twice the cores); more wait within the timeout.
    #[arg(long)]
    pub max_concurrent: Option<usize>,
    /// Longest range one query may cover.
    #[arg(long, default_value = "400d")]
    pub max_range: String,
    /// Longest time a request may take (under Grafana's 30 s proxy timeout).
    #[arg(long, default_value = "25s")]
    pub timeout: String,
    /// How often to look for new rows and files from the writing process.
    #[arg(long, default_value = "2s")]
    pub refresh: String,
    /// Run the retraining triggers of this configuration file (TOML) beside the server.
    #[arg(long, value_name = "CONFIG")]
    pub triggers: Option<PathBuf>,
    /// How often the triggers are evaluated.
    #[arg(long, default_value = "1m")]
    pub check_every: String,
    /// Retrain on every event the triggers fire (the configuration's `[retrain]` and
    /// `[gate]`), on a thread of its own, acknowledging each with its outcome.
    #[arg(long, requires = "triggers")]
    pub retrain: bool,
    /// Longest a client may take to send a request's head (request line and headers), from
    /// the connection's start or the first byte of a later request; slower clients are
    /// disconnected. A request's body has as long again after its head (408 past it).
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub header_read_timeout: String,
    /// Longest a kept-alive connection may stay idle between requests.
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub idle_timeout: String,
    /// Most connections held at once (fewer if the process may not open as many files);
    /// past it a new connection is answered 503 and closed.
    #[arg(long, default_value_t = 1_024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Most connections held at once from one client address (IPv6: one /64); past it a new
    /// one from there is answered 429 and closed. Behind a reverse proxy, raise it to
    /// --max-connections.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_address: u32,
}

/// Which series a report reads.
#[derive(Args, Debug, Clone)]
pub struct FilterArgs {
    /// Only this model.
    #[arg(long)]
    pub model: Option<String>,
    /// Only this model version (`--version` prints modelwatch's own).
    #[arg(long = "model-version", id = "model_version")]
    pub version: Option<String>,
    /// Only this variant (control, canary, ...).
    #[arg(long)]
    pub variant: Option<String>,
    /// Only this segment.
    #[arg(long)]
    pub segment: Option<String>,
}

impl FilterArgs {
    fn given(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("model", &self.model),
            ("version", &self.version),
            ("variant", &self.variant),
            ("segment", &self.segment),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
    }

    pub fn matchers(&self) -> Vec<modelwatch_query::Matcher> {
        self.given().map(|(k, v)| modelwatch_query::drift::eq(k, v)).collect()
    }

    pub fn describe(&self) -> Vec<String> {
        self.given().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorrectionArg {
    None,
    Bonferroni,
    Fdr,
}

#[derive(Args, Debug)]
pub struct DriftArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// The reference: a saved baseline's name, a range FROM..TO (RFC 3339, epoch ms,
    /// now-8d), or a duration (7d = the last seven days).
    #[arg(long)]
    pub reference: String,
    /// The current window: FROM..TO or a duration (default 24h); or give it with --since,
    /// --from/--to or --range.
    #[arg(long, value_name = "FROM..TO", conflicts_with_all = ["since", "from", "to", "range"])]
    pub current: Option<String>,
    #[command(flatten)]
    pub window: WindowArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Correction of the p-values across features: the KS and chi-squared tests', and the
    /// tests the features' verdicts need.
    #[arg(long, value_enum, default_value_t = CorrectionArg::None)]
    pub correction: CorrectionArg,
    /// PSI bins (cut at the reference's quantiles), 2 to 1000.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(2..=1000))]
    pub psi_bins: u16,
    /// PSI warning threshold.
    #[arg(long, default_value_t = 0.1, value_parser = threshold)]
    pub psi_warning: f64,
    /// PSI drift threshold.
    #[arg(long, default_value_t = 0.2, value_parser = threshold)]
    pub psi_drift: f64,
    /// Significance level of the tests, in (0, 1): KS and chi-squared, and the test a
    /// feature's verdict also needs besides its effect size.
    #[arg(long, default_value_t = 0.05, value_parser = probability)]
    pub alpha: f64,
    /// Normed Wasserstein threshold (the numeric features' verdict).
    #[arg(long, default_value_t = 0.1, value_parser = threshold)]
    pub wasserstein: f64,
    /// Jensen-Shannon distance threshold (the categorical features' verdict).
    #[arg(long, default_value_t = 0.1, value_parser = threshold)]
    pub js: f64,
    /// Share of drifting features from which the dataset drifts, in (0, 1].
    #[arg(long, default_value_t = 0.5, value_parser = share)]
    pub drift_share: f64,
    /// Values a side below which a feature's verdict is "insufficient data" (at least 2).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(2..))]
    pub min_rows: u64,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

#[derive(Args, Debug)]
pub struct QualityArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// The window (default: the last 7 days).
    #[command(flatten)]
    pub window: WindowArgs,
    /// Group by a label (segment, variant, version); overall without.
    #[arg(long)]
    pub by: Option<String>,
    /// The labelled window the label-free estimate is calibrated on, FROM..TO or a duration
    /// (default: the window of the same length just before).
    #[arg(long)]
    pub reference: Option<String>,
    /// Confidence from which a prediction is positive, in [0, 1].
    #[arg(long, default_value_t = 0.5, value_parser = confidence)]
    pub threshold: f64,
    /// Only predictions at least this old count (e.g. `2d`): cohorts whose labels have had
    /// that long to arrive. The window ends early to keep to it.
    #[arg(long, default_value = "0s", value_name = "DURATION")]
    pub min_label_age: String,
    /// Labels each calibration bin holding predictions of the window needs for the estimate;
    /// with fewer, the estimate is refused and the reason printed.
    #[arg(long, default_value_t = modelwatch_query::quality::DEFAULT_MIN_BIN_LABELS)]
    pub min_bin_labels: u64,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

fn number_in(s: &str, ok: impl Fn(f64) -> bool, what: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if ok(v) => Ok(v),
        _ => Err(format!("{s:?} is not {what}")),
    }
}

/// A threshold: a finite number, not negative.
fn threshold(s: &str) -> Result<f64, String> {
    number_in(s, |v| v.is_finite() && v >= 0.0, "a finite number of at least 0")
}

/// A significance level, in (0, 1).
fn probability(s: &str) -> Result<f64, String> {
    number_in(s, |v| v > 0.0 && v < 1.0, "a probability between 0 and 1 (exclusive)")
}

/// A share, in (0, 1].
fn share(s: &str) -> Result<f64, String> {
    number_in(s, |v| v > 0.0 && v <= 1.0, "a share in (0, 1]")
}

/// A confidence, in [0, 1].
fn confidence(s: &str) -> Result<f64, String> {
    number_in(s, |v| (0.0..=1.0).contains(&v), "a confidence in [0, 1]")
}

// Parsed once per process: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum BaselineCommand {
    /// Save a window's profile under a name (e.g. the training data's window of a version).
    #[command(
        after_help = "Example:\n  modelwatch baseline save --name before-release --from now-8d --to now-1d"
    )]
    Save {
        #[command(flatten)]
        data: DataArg,
        /// The baseline's name.
        #[arg(long)]
        name: String,
        /// The window (required: --range, --since or --from/--to).
        #[command(flatten)]
        window: WindowArgs,
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// List the saved baselines.
    #[command(after_help = "Example:\n  modelwatch baseline list --format csv")]
    List {
        #[command(flatten)]
        data: DataArg,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
}

#[derive(Args, Debug, Clone)]
pub struct RetrainArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// The configuration file (TOML: `[triggers]`, `[retrain]`, `[gate]`); defaults without one.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The retraining event to run (its ID, from `modelwatch triggers history`).
    #[arg(long, required_unless_present = "force", conflicts_with = "force")]
    pub event: Option<String>,
    /// Fire a manual retraining event now (past the cool-down) and run it.
    #[arg(long)]
    pub force: bool,
    /// Why, for the forced event.
    #[arg(long, default_value = "modelwatch retrain --force", requires = "force")]
    pub reason: String,
    /// Judge latency from these p95s instead of timing the models (for demos and tests):
    /// `CONTROL_MS,CHALLENGER_MS`.
    #[arg(long, value_name = "CONTROL_MS,CHALLENGER_MS")]
    pub simulated_latency: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Args, Debug, Clone)]
pub struct TriggerArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// The configuration file (TOML, `[triggers]`); defaults without one.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Subcommand, Debug)]
pub enum TriggersCommand {
    /// Each trigger's current figures, the cool-down and unacknowledged events.
    #[command(after_help = "Example:\n  modelwatch triggers status --config deploy/modelwatch.toml")]
    Status(TriggerArgs),
    /// Every event: ID, time, reasons, deliveries, acknowledgement.
    #[command(after_help = "Example:\n  modelwatch triggers history --format json")]
    History(TriggerArgs),
    /// Evaluate every trigger now and emit an event if one fires (for cron-driven setups).
    #[command(
        after_help = "Example (crontab):\n  */5 * * * * modelwatch triggers check --config /etc/modelwatch.toml --data /var/lib/modelwatch"
    )]
    Check(TriggerArgs),
    /// Emit an event by hand (the cool-down applies unless --force; exit 3 when held back).
    #[command(after_help = "Example:\n  modelwatch triggers fire --reason 'new labelling guideline' --force")]
    Fire {
        #[command(flatten)]
        args: TriggerArgs,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Ignore the cool-down.
        #[arg(long)]
        force: bool,
    },
    /// Acknowledge an event: retraining has taken it; the label count starts again.
    #[command(after_help = "Example:\n  modelwatch triggers ack pii-confidence-20261129T041000Z-1")]
    Ack {
        #[command(flatten)]
        args: TriggerArgs,
        /// The event's ID.
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// Every model with its aliases; with a model, its versions.
    #[command(after_help = "Examples:\n  modelwatch models list\n  modelwatch models list pii --format json")]
    List {
        /// A model: list its versions.
        model: Option<String>,
        #[command(flatten)]
        data: DataArg,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// One version's metadata, status, gate report and artifact.
    #[command(
        after_help = "Examples:\n  modelwatch models show pii\n  modelwatch models show pii 3 --format json"
    )]
    Show {
        /// The model.
        model: String,
        /// A version (3 or v3) or an alias (control, challenger, latest).
        #[arg(default_value = "control", value_name = "VERSION")]
        which: String,
        #[command(flatten)]
        data: DataArg,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Make a version the control (and latest); the old control retires. Audited.
    #[command(after_help = "Example:\n  modelwatch models promote pii 3 --reason 'better AUC on last week'")]
    Promote {
        /// The model.
        model: String,
        /// The version (3 or v3).
        #[arg(value_name = "VERSION")]
        number: String,
        #[command(flatten)]
        audit: AuditArgs,
        #[command(flatten)]
        data: DataArg,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Make the previous control the control again. Audited.
    #[command(
        after_help = "Example:\n  modelwatch models rollback pii --reason 'precision fell on phone numbers'"
    )]
    Rollback {
        /// The model.
        model: String,
        #[command(flatten)]
        audit: AuditArgs,
        #[command(flatten)]
        data: DataArg,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// The audit log: every registration, promotion, rollback and rejection.
    #[command(after_help = "Example:\n  modelwatch models log pii --format json")]
    Log {
        /// The model.
        model: String,
        #[command(flatten)]
        data: DataArg,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Version directories no head names (left by crashed registrations); `--delete`
    /// removes them (local registries).
    #[command(after_help = "Example:\n  modelwatch models gc pii --delete")]
    Gc {
        /// The model.
        model: String,
        /// Only directories older than this many seconds (a registration still copying its
        /// files has one too).
        #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
        older_than: u64,
        /// Delete them (default: only list them).
        #[arg(long)]
        delete: bool,
        #[command(flatten)]
        data: DataArg,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

/// Who changes the registry by hand, and why (the audit entry's fields).
#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Why (recorded in the audit log).
    #[arg(long)]
    pub reason: String,
    /// Who (recorded in the audit log).
    #[arg(long, default_value = "cli")]
    pub actor: String,
    /// The event that caused it (a retraining trigger's ID).
    #[arg(long, value_name = "ID")]
    pub event: Option<String>,
}

#[derive(Args, Debug)]
pub struct CrashRegistryArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// The model the loop registers and promotes.
    #[arg(long, default_value = "crash")]
    pub model: String,
}

#[derive(Args, Debug)]
pub struct CanaryScorerArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// The model whose aliases the scorer follows.
    #[arg(long)]
    pub model: String,
    /// Milliseconds between refreshes.
    #[arg(long, default_value_t = 100)]
    pub refresh_ms: u64,
    /// Keys (`key-0`, `key-1`, ...) routed after each refresh.
    #[arg(long, default_value_t = 1_000)]
    pub requests: usize,
    /// The challenger's share of the keys.
    #[arg(long, default_value_t = modelwatch::canary::DEFAULT_FRACTION)]
    pub fraction: f64,
    /// Stop after this many refreshes (0: run until killed).
    #[arg(long, default_value_t = 0)]
    pub refreshes: u64,
}
