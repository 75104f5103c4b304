//! The `lightning-mcp` binary: an MCP server on stdio (the default) or Streamable HTTP
//! (`--http`). Logs go to stderr; stdout carries protocol messages only.

use anyhow::Context as _;
use clap::Parser;
use lightning_mcp::files::ConfinedDir;
use lightning_mcp::protocol::Server;
use lightning_mcp::python_build::PythonBuild;
use lightning_mcp::runs::{DEFAULT_MAX_RUNS, Retention, Runs, SqliteStore};
use lightning_mcp::runtime::{
    CHECKPOINT_DIR_FLAG, DATA_DIR_FLAG, DEFAULT_MAX_RESULT_BYTES, RuntimeConfig, UploadLimits,
};
use lightning_mcp::sandbox::{ComponentCache, Limits};
use lightning_mcp::transport::http::{AllowedHosts, HttpConfig};
use std::path::PathBuf;
use std::time::Duration;

/// Train and inspect sandboxed WebAssembly models over the Model Context Protocol.
#[derive(Debug, Parser)]
#[command(name = "lightning-mcp", version, about)]
struct Cli {
    /// Serve Streamable HTTP at http://HOST:PORT/mcp instead of stdio.
    #[arg(long)]
    http: bool,
    /// Address to bind with --http.
    #[arg(long, default_value = "127.0.0.1", requires = "http")]
    host: String,
    /// Port to bind with --http (0: any free port, logged at start).
    #[arg(long, default_value_t = 8000, requires = "http")]
    port: u16,
    /// Bearer token every HTTP request must carry (`Authorization: Bearer TOKEN`).
    #[arg(
        long,
        env = "LIGHTNING_MCP_TOKEN",
        hide_env_values = true,
        requires = "http"
    )]
    auth_token: Option<String>,
    /// Extra host name HTTP requests may address in `Host`/`Origin` (loopback names and
    /// --host always may); repeat for several.
    #[arg(long = "allowed-host", value_name = "NAME", requires = "http")]
    allowed_hosts: Vec<String>,
    /// Largest HTTP request body, in bytes.
    #[arg(long, default_value_t = 16 << 20, requires = "http")]
    max_body_bytes: usize,
    /// Longest an HTTP request may run before it is cancelled, in seconds.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..), requires = "http")]
    request_timeout: u64,
    /// Most HTTP connections open at once; past it a new one evicts the connection idle the
    /// longest.
    #[arg(long, default_value_t = HttpConfig::default().max_connections, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..), requires = "http")]
    max_connections: usize,
    /// Most HTTP connections open at once from one address (raise it behind a reverse
    /// proxy, whose address every client shares).
    #[arg(long, default_value_t = HttpConfig::default().max_connections_per_peer, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..), requires = "http")]
    max_connections_per_address: usize,
    /// Longest a client may take to send an HTTP request's headers, in seconds.
    #[arg(long, default_value_t = HttpConfig::default().header_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..), requires = "http")]
    header_timeout: u64,
    /// Directory of extra model components (`*.wasm`, world `lightning:model/model`).
    #[arg(long, env = "LIGHTNING_MCP_MODELS_DIR", hide_env_values = true)]
    models_dir: Option<PathBuf>,
    /// Where compiled components are cached
    /// [default: $XDG_CACHE_HOME/lightning-mcp/components or ~/.cache/lightning-mcp/components].
    #[arg(
        long,
        env = "LIGHTNING_MCP_CACHE_DIR",
        hide_env_values = true,
        conflicts_with = "no_cache"
    )]
    cache_dir: Option<PathBuf>,
    /// Compile components at every start instead of caching them.
    #[arg(long)]
    no_cache: bool,
    /// Most model runs (trainings, model inspections) at once; more wait in a queue
    /// [default: the number of CPUs].
    #[arg(long, env = "LIGHTNING_MCP_MAX_CONCURRENT_RUNS", hide_env_values = true, value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent_runs: Option<u16>,
    /// Most model runs waiting for a slot (past --max-concurrent-runs, or the tensor
    /// memory); more are refused as busy.
    #[arg(long, env = "LIGHTNING_MCP_MAX_QUEUED_RUNS", hide_env_values = true, default_value_t = RuntimeConfig::default().max_queued_runs)]
    max_queued_runs: usize,
    /// Largest tool result, in KB of JSON (1 KB = 1000 bytes): past it, predictions go to a
    /// file under the checkpoint directory.
    #[arg(long, env = "LIGHTNING_MCP_MAX_RESULT_KB", hide_env_values = true, default_value_t = (DEFAULT_MAX_RESULT_BYTES / 1000) as u32, value_parser = clap::value_parser!(u32).range(16..=1_000_000))]
    max_result_kb: u32,
    /// The tensor memory all runs together may use, in MiB; each run reserves its
    /// tensor_memory_mib while it runs [default: half the machine's memory].
    #[arg(long, env = "LIGHTNING_MCP_MAX_TOTAL_TENSOR_MEMORY_MIB", hide_env_values = true, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    max_total_tensor_memory_mib: Option<u64>,
    /// Offer `lightning.register`, which uploads model components (base64) to run.
    #[arg(long, env = "LIGHTNING_MCP_ALLOW_REGISTER", hide_env_values = true)]
    allow_register: bool,
    /// Largest uploaded component, in bytes.
    #[arg(long, default_value_t = UploadLimits::default().max_bytes, requires = "allow_register")]
    max_register_bytes: usize,
    /// Most uploaded models registered at once.
    #[arg(long, default_value_t = UploadLimits::default().max_models, requires = "allow_register")]
    max_uploaded_models: usize,
    /// componentize-py, which builds the Python models `lightning.register` receives
    /// [default: componentize-py on PATH].
    #[arg(
        long,
        env = "LIGHTNING_MCP_COMPONENTIZE_PY",
        value_name = "PATH",
        requires = "allow_register"
    )]
    componentize_py: Option<PathBuf>,
    /// Longest a Python model's build may run, in seconds.
    #[arg(long, default_value_t = PythonBuild::default().timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600), requires = "allow_register")]
    max_build_seconds: u64,
    /// Most memory a Python model's build may allocate, in MiB.
    #[arg(long, default_value_t = PythonBuild::default().max_memory_bytes >> 20, value_parser = clap::value_parser!(u64).range(64..=65_536), requires = "allow_register")]
    max_build_memory_mib: u64,
    /// Directory data files are read from; requests name paths under it.
    #[arg(
        long,
        env = "LIGHTNING_MCP_DATA_DIR",
        hide_env_values = true,
        default_value = "data"
    )]
    data_dir: PathBuf,
    /// Directory checkpoints are written to; requests name paths under it.
    #[arg(
        long,
        env = "LIGHTNING_MCP_CHECKPOINT_DIR",
        hide_env_values = true,
        default_value = "checkpoints"
    )]
    checkpoint_dir: PathBuf,
    /// The run store: an SQLite file holding every run (arguments, status, progress,
    /// history, result) [default: runs.sqlite3 in --checkpoint-dir].
    #[arg(
        long,
        env = "LIGHTNING_MCP_RUN_STORE",
        hide_env_values = true,
        value_name = "PATH"
    )]
    run_store: Option<PathBuf>,
    /// How long ended runs are kept after their creation, in hours (0: until deleted); a
    /// task's ttl may ask for less.
    #[arg(
        long,
        env = "LIGHTNING_MCP_RUN_TTL_HOURS",
        hide_env_values = true,
        default_value_t = 720
    )]
    run_ttl_hours: u64,
    /// Most ended runs kept; past it the oldest are deleted.
    #[arg(long, env = "LIGHTNING_MCP_MAX_STORED_RUNS", hide_env_values = true, default_value_t = DEFAULT_MAX_RUNS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_stored_runs: usize,
    /// Log filter for stderr, e.g. `info`, `debug`, `lightning_mcp=trace`.
    #[arg(
        long,
        env = "LIGHTNING_MCP_LOG",
        hide_env_values = true,
        default_value = "info"
    )]
    log: String,
    #[command(flatten)]
    limits: LimitFlags,
    /// Print this machine's GPU adapters as JSON and exit (the server runs itself so to
    /// probe them in a child process).
    #[arg(long = "probe-adapters", hide = true)]
    probe_adapters: bool,
    /// Run one GPU call given as JSON on stdin and exit (the server runs itself so to keep
    /// GPU drivers out of its own process).
    #[arg(long = "gpu-worker", hide = true)]
    gpu_worker: bool,
}

/// The limits of every model run; a request's `limits` may lower each, never raise it.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Limits of every model run")]
struct LimitFlags {
    /// Largest guest linear memory, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = Limits::default().max_guest_memory >> 20)]
    max_guest_memory_mib: usize,
    /// Largest sum of the host tensors one run holds (live tensors, datasets, autodiff graph),
    /// in MiB.
    #[arg(long, value_name = "MIB", default_value_t = Limits::default().max_tensor_bytes >> 20)]
    max_tensor_memory_mib: usize,
    /// Most tensor handles a model may hold at once.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_handles)]
    max_tensor_handles: usize,
    /// Highest tensor rank (at most 6).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_tensor_rank)]
    max_tensor_rank: usize,
    /// Most elements of one tensor (at most 2^26).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_tensor_elements)]
    max_tensor_elements: usize,
    /// Most elements of one guest table.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_table_elements)]
    max_table_elements: usize,
    /// Most core instances one component may create.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_instances)]
    max_instances: usize,
    /// Wall-clock budget of building a model to inspect it (and of a `describe` when a model is
    /// registered), in seconds.
    #[arg(long, value_name = "SECS", default_value_t = Limits::default().call_timeout.as_secs())]
    call_timeout: u64,
    /// Wall-clock budget of a training, validation, test or prediction run, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = Limits::default().train_timeout.as_secs())]
    train_timeout: u64,
    /// Most optimizer steps one training run may plan.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_total_steps)]
    max_total_steps: u64,
    /// Largest batch.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_batch_size)]
    max_batch_size: usize,
    /// Most samples in one dataset.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_dataset_samples)]
    max_dataset_samples: usize,
}

impl LimitFlags {
    fn limits(&self) -> anyhow::Result<Limits> {
        let limits = Limits {
            max_guest_memory: self.max_guest_memory_mib.saturating_mul(1 << 20),
            max_tensor_bytes: self.max_tensor_memory_mib.saturating_mul(1 << 20),
            max_handles: self.max_tensor_handles,
            max_tensor_rank: self.max_tensor_rank,
            max_tensor_elements: self.max_tensor_elements,
            max_table_elements: self.max_table_elements,
            max_instances: self.max_instances,
            call_timeout: Duration::from_secs(self.call_timeout),
            train_timeout: Duration::from_secs(self.train_timeout),
            max_total_steps: self.max_total_steps,
            max_batch_size: self.max_batch_size,
            max_dataset_samples: self.max_dataset_samples,
            ..Limits::default()
        };
        limits
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid limit: {e}"))?;
        Ok(limits)
    }
}

/// This binary, to run the adapter probe and GPU workers with. On Linux `/proc/self/exe`, which
/// stays this very binary even when the file is replaced or deleted while the server runs.
fn own_executable() -> Option<PathBuf> {
    let proc_self = PathBuf::from("/proc/self/exe");
    if proc_self.exists() {
        Some(proc_self)
    } else {
        std::env::current_exe().ok()
    }
}

/// Opens the run store `--run-store` names (its directory created if need be).
fn open_runs(cli: &Cli) -> anyhow::Result<Runs> {
    let path = cli
        .run_store
        .clone()
        .unwrap_or_else(|| cli.checkpoint_dir.join("runs.sqlite3"));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| {
            format!("cannot create the run store's directory {}", dir.display())
        })?;
    }
    let store = SqliteStore::open(&path)
        .with_context(|| format!("cannot open the run store {} (--run-store)", path.display()))?;
    let retention = Retention {
        ttl: (cli.run_ttl_hours > 0)
            .then(|| Duration::from_secs(cli.run_ttl_hours.saturating_mul(3600))),
        max_runs: cli.max_stored_runs,
    };
    Ok(Runs::new(
        Box::new(store),
        path.display().to_string(),
        retention,
    ))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.probe_adapters {
        return lightning_mcp::gpu::print_adapters().context("printing the adapters");
    }
    init_logging(&cli)?;
    if cli.gpu_worker {
        return lightning_mcp::tools::worker::serve().context("the GPU worker failed");
    }
    let runs = open_runs(&cli)?;
    let server = lightning_mcp::server(runtime_config(&cli)?, runs);
    if cli.http {
        serve_http(&cli, server)
    } else {
        serve_stdio(&cli, server)
    }
}

/// Logs go to stderr (stdout carries the protocol), filtered by `--log`.
fn init_logging(cli: &Cli) -> anyhow::Result<()> {
    // A GPU worker on a machine whose Vulkan has no hardware GPU has cubecl probe GL too, and
    // wgpu logs an EGL failure there as an error; the device the worker uses is not on GL, or
    // its failure is the call's error anyway.
    let filter = if cli.gpu_worker {
        format!("{},wgpu_hal::gles::egl=off", cli.log)
    } else {
        cli.log.clone()
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter)
                .with_context(|| format!("invalid --log filter {:?}", cli.log))?,
        )
        .init();
    Ok(())
}

/// The runtime the flags describe.
fn runtime_config(cli: &Cli) -> anyhow::Result<RuntimeConfig> {
    let cache = match (cli.no_cache, &cli.cache_dir) {
        (true, _) => ComponentCache::disabled(),
        (false, Some(dir)) => ComponentCache::at(dir.clone()),
        (false, None) => ComponentCache::user_default(),
    };
    let defaults = RuntimeConfig::default();
    Ok(RuntimeConfig {
        cache,
        models_dir: cli.models_dir.clone(),
        limits: cli.limits.limits()?,
        max_concurrent_runs: cli
            .max_concurrent_runs
            .map_or(defaults.max_concurrent_runs, usize::from),
        max_queued_runs: cli.max_queued_runs,
        max_result_bytes: (cli.max_result_kb as usize).saturating_mul(1000),
        max_total_tensor_bytes: cli
            .max_total_tensor_memory_mib
            .and_then(|mib| usize::try_from(mib).ok())
            .map_or(defaults.max_total_tensor_bytes, |mib| {
                mib.saturating_mul(1 << 20)
            }),
        uploads: cli.allow_register.then_some(UploadLimits {
            max_bytes: cli.max_register_bytes,
            max_models: cli.max_uploaded_models,
        }),
        python_build: PythonBuild {
            program: cli.componentize_py.clone(),
            timeout: Duration::from_secs(cli.max_build_seconds),
            max_memory_bytes: cli.max_build_memory_mib << 20,
        },
        data_dir: ConfinedDir::new(cli.data_dir.clone(), DATA_DIR_FLAG),
        checkpoint_dir: ConfinedDir::new(cli.checkpoint_dir.clone(), CHECKPOINT_DIR_FLAG),
        executable: own_executable(),
        log_filter: Some(cli.log.clone()),
    })
}

/// Serves MCP over Streamable HTTP until the process is stopped.
fn serve_http(cli: &Cli, server: Server) -> anyhow::Result<()> {
    let config = HttpConfig {
        allowed_hosts: AllowedHosts::new(
            std::iter::once(cli.host.clone()).chain(cli.allowed_hosts.iter().cloned()),
        ),
        auth_token: cli.auth_token.clone(),
        max_body_bytes: cli.max_body_bytes,
        request_timeout: Duration::from_secs(cli.request_timeout),
        max_connections: cli.max_connections,
        max_connections_per_peer: cli.max_connections_per_address,
        header_timeout: Duration::from_secs(cli.header_timeout),
        ..HttpConfig::default()
    };
    let grace = config.shutdown_grace;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = runtime.block_on(lightning_mcp::transport::http::run(
        server, &cli.host, cli.port, config,
    ));
    // Cancelled runs stop within a step; do not wait forever for one that does not.
    runtime.shutdown_timeout(grace);
    served.with_context(|| format!("HTTP server on {}:{} failed", cli.host, cli.port))
}

/// Serves MCP over stdio until stdin closes.
fn serve_stdio(cli: &Cli, server: Server) -> anyhow::Result<()> {
    if cli.auth_token.is_some() {
        tracing::warn!("--auth-token / LIGHTNING_MCP_TOKEN only applies to --http; ignored");
    }
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "serving MCP on stdio");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(lightning_mcp::transport::stdio::serve(
            server,
            tokio::io::stdin(),
            tokio::io::stdout(),
        ))
        .context("stdio transport failed")
}
