//! The `lightning-mcp` binary: an MCP server on stdio. Logs go to stderr; stdout carries
//! protocol messages only.

use anyhow::Context as _;
use clap::Parser;
use lightning_mcp::runtime::RuntimeConfig;
use lightning_mcp::sandbox::ComponentCache;
use std::path::PathBuf;

/// Train and inspect sandboxed WebAssembly models over the Model Context Protocol.
#[derive(Debug, Parser)]
#[command(name = "lightning-mcp", version, about)]
struct Cli {
    /// Directory of extra model components (`*.wasm`, world `lightning:model/model`).
    #[arg(long, env = "LIGHTNING_MCP_MODELS_DIR")]
    models_dir: Option<PathBuf>,
    /// Where compiled components are cached
    /// [default: $XDG_CACHE_HOME/lightning-mcp/components or ~/.cache/lightning-mcp/components].
    #[arg(long, env = "LIGHTNING_MCP_CACHE_DIR", conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,
    /// Compile components at every start instead of caching them.
    #[arg(long)]
    no_cache: bool,
    /// Most model runs (trainings, model inspections) at once; more wait their turn
    /// [default: the number of CPUs].
    #[arg(long, env = "LIGHTNING_MCP_MAX_CONCURRENT_RUNS", value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent_runs: Option<u16>,
    /// Log filter for stderr, e.g. `info`, `debug`, `lightning_mcp=trace`.
    #[arg(long, env = "LIGHTNING_MCP_LOG", default_value = "info")]
    log: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log)
                .with_context(|| format!("invalid --log filter {:?}", cli.log))?,
        )
        .init();
    let cache = match (cli.no_cache, cli.cache_dir) {
        (true, _) => ComponentCache::disabled(),
        (false, Some(dir)) => ComponentCache::at(dir),
        (false, None) => ComponentCache::user_default(),
    };
    let defaults = RuntimeConfig::default();
    let server = lightning_mcp::server(RuntimeConfig {
        cache,
        models_dir: cli.models_dir,
        max_concurrent_runs: cli
            .max_concurrent_runs
            .map_or(defaults.max_concurrent_runs, usize::from),
        ..defaults
    });
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "serving MCP on stdio");
    lightning_mcp::transport::stdio::serve(server, tokio::io::stdin(), tokio::io::stdout())
        .await
        .context("stdio transport failed")
}
