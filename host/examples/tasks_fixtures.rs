//! The MCP conformance suite's Tasks fixture tools behind lightning-mcp's own protocol layer,
//! HTTP transport and run store: `greet`, `slow_compute`, `failing_job`,
//! `protocol_error_job` and `confirm_delete`. Only the conformance test runs this (see
//! `tests/e2e/clients.rs`); the product's binary never offers these tools.
//!
//! `cargo run -p lightning-mcp --example tasks_fixtures -- PORT` (0: any free port, logged).

use lightning_mcp::cancel::CancelToken;
use lightning_mcp::protocol::{
    CallContext, CallToolResult, Server, ServerInfo, TaskInfo, TaskStore, TaskSupport,
    ToolDefinition, ToolProvider,
};
use lightning_mcp::runs::{NewRun, Origin, Runs, Status};
use lightning_mcp::transport::http::HttpConfig;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The fixture tools, their tasks kept in an in-memory run store.
struct Fixtures {
    runs: Arc<Runs>,
}

/// Sleeps `seconds`, stopping early when `cancel` fires; whether it slept it all.
fn sleep(seconds: f64, cancel: &CancelToken) -> bool {
    let until = Instant::now() + Duration::from_secs_f64(seconds.clamp(0.0, 3600.0));
    while Instant::now() < until {
        if cancel.is_cancelled() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Runs fixture `name`; `None` for a run that ends without a result (a protocol error).
fn run(name: &str, arguments: &Value, cancel: &CancelToken) -> Option<CallToolResult> {
    Some(match name {
        "greet" => CallToolResult::text(format!(
            "Hello, {}!",
            arguments["name"].as_str().unwrap_or("world")
        )),
        "slow_compute" => {
            let seconds = arguments["seconds"].as_f64().unwrap_or(1.0);
            if !sleep(seconds, cancel) {
                return Some(CallToolResult::error("cancelled"));
            }
            CallToolResult::text(format!(
                "computed {} in {seconds} s",
                arguments["label"].as_str().unwrap_or("")
            ))
        }
        "failing_job" => {
            sleep(1.0, cancel);
            CallToolResult::error("the job failed, as it always does")
        }
        "protocol_error_job" => return None,
        "confirm_delete" => CallToolResult::text(format!(
            "nothing deleted: this server never asks for input ({})",
            arguments["filename"].as_str().unwrap_or("")
        )),
        other => CallToolResult::error(format!("no fixture {other}")),
    })
}

const NAMES: [&str; 5] = [
    "greet",
    "slow_compute",
    "failing_job",
    "protocol_error_job",
    "confirm_delete",
];

impl ToolProvider for Fixtures {
    fn tools(&self) -> Vec<ToolDefinition> {
        NAMES
            .iter()
            .map(|name| ToolDefinition {
                name,
                title: name,
                description: "a conformance fixture",
                input_schema: json!({"type": "object"}),
            })
            .collect()
    }

    fn call(&self, name: &str, arguments: Value, ctx: &CallContext) -> Option<CallToolResult> {
        NAMES.contains(&name).then(|| {
            run(name, &arguments, ctx.cancel_token())
                .unwrap_or_else(|| CallToolResult::error("a protocol error"))
        })
    }

    fn task_support(&self, name: &str) -> TaskSupport {
        match name {
            "slow_compute" | "protocol_error_job" => TaskSupport::Optional,
            "failing_job" => TaskSupport::Required,
            _ => TaskSupport::Forbidden,
        }
    }

    fn start_task(
        &self,
        name: &str,
        arguments: Value,
        ttl: Option<Duration>,
    ) -> Result<TaskInfo, CallToolResult> {
        let cancel = CancelToken::new();
        let new = NewRun {
            tool: name.to_string(),
            target: "fixture".into(),
            arguments: arguments.clone(),
            origin: Origin::Task,
            ttl,
        };
        let created = self
            .runs
            .create(new, &cancel)
            .map_err(|e| CallToolResult::error(e.to_string()))?;
        let (runs, id, name) = (self.runs.clone(), created.id.clone(), name.to_string());
        std::thread::spawn(move || match run(&name, &arguments, &cancel) {
            Some(result) => runs.finish(&id, &result),
            None => runs.end(&id, Status::Failed, Some("a protocol error"), None),
        });
        self.runs
            .task(&created.id)
            .map_err(|e| CallToolResult::error(e.to_string()))
    }

    fn task_store(&self) -> Option<&dyn TaskStore> {
        Some(&*self.runs)
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let port: u16 = std::env::args()
        .nth(1)
        .map_or(Ok(0), |p| p.parse())
        .map_err(|e| anyhow::anyhow!("PORT: {e}"))?;
    let fixtures = Fixtures {
        runs: Arc::new(Runs::in_memory()?),
    };
    let info = ServerInfo {
        name: "lightning-mcp-tasks-fixtures",
        version: env!("CARGO_PKG_VERSION"),
        instructions: "Conformance fixtures.",
    };
    let server = Server::new(info, Arc::new(fixtures));
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(lightning_mcp::transport::http::run(
            server,
            "127.0.0.1",
            port,
            HttpConfig::default(),
        ))?;
    Ok(())
}
