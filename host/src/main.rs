//! The `lightning-mcp` binary: an MCP server on stdio (the default) or Streamable HTTP
//! (`--http`). Logs go to stderr; stdout carries protocol messages only.

use anyhow::Context as _;
use clap::Parser;
use lightning_mcp::runtime::RuntimeConfig;
use lightning_mcp::sandbox::ComponentCache;
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
    /// Most model runs (trainings, model inspections) at once; more are refused as busy
    /// [default: the number of CPUs].
    #[arg(long, env = "LIGHTNING_MCP_MAX_CONCURRENT_RUNS", value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent_runs: Option<u16>,
    /// Log filter for stderr, e.g. `info`, `debug`, `lightning_mcp=trace`.
    #[arg(long, env = "LIGHTNING_MCP_LOG", default_value = "info")]
    log: String,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log)
                .with_context(|| format!("invalid --log filter {:?}", cli.log))?,
        )
        .init();
    let cache = match (cli.no_cache, &cli.cache_dir) {
        (true, _) => ComponentCache::disabled(),
        (false, Some(dir)) => ComponentCache::at(dir.clone()),
        (false, None) => ComponentCache::user_default(),
    };
    let defaults = RuntimeConfig::default();
    let server = lightning_mcp::server(RuntimeConfig {
        cache,
        models_dir: cli.models_dir.clone(),
        max_concurrent_runs: cli
            .max_concurrent_runs
            .map_or(defaults.max_concurrent_runs, usize::from),
        ..defaults
    });
    if cli.http {
        let config = HttpConfig {
            allowed_hosts: AllowedHosts::new(
                std::iter::once(cli.host.clone()).chain(cli.allowed_hosts.iter().cloned()),
            ),
            auth_token: cli.auth_token.clone(),
            max_body_bytes: cli.max_body_bytes,
            request_timeout: Duration::from_secs(cli.request_timeout),
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
    } else {
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
}
