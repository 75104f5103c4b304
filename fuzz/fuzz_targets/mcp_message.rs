//! One message (or batch) from a client, as a stdio line or an HTTP body, through a session of
//! the real server: parsing, lifecycle, versions, `_meta`, batches, cancellation and the
//! real tools' argument parsing. Tool calls are parsed, not run (a valid training would only
//! slow the fuzzer down). Nothing may panic, and every request that was not cancelled gets a
//! JSON reply.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lightning_mcp::protocol::{
    CallContext, CallToolResult, DEFAULT_VERSION, STATELESS_VERSION, Server, Session,
    ToolDefinition, ToolProvider,
};
use lightning_mcp::runs::Runs;
use lightning_mcp::runtime::{Runtime, RuntimeConfig, UploadLimits};
use lightning_mcp::tools::Tools;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};

/// The real tools, parsing their arguments without running them.
struct ParseOnly(Tools);

impl ToolProvider for ParseOnly {
    fn tools(&self) -> Vec<ToolDefinition> {
        self.0.tools()
    }

    fn call(&self, name: &str, arguments: Value, ctx: &CallContext) -> Option<CallToolResult> {
        ctx.progress(1.0, Some(2.0), "parsed");
        Some(match self.0.parse(name, &arguments)? {
            Ok(_) => CallToolResult::success(json!({"status": "parsed"})),
            Err(e) => CallToolResult::error(e),
        })
    }
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = Runtime::new(RuntimeConfig {
            uploads: Some(UploadLimits::default()),
            ..RuntimeConfig::default()
        });
        let runs = Runs::in_memory().unwrap_or_else(|e| panic!("an in-memory run store: {e}"));
        Server::new(
            lightning_mcp::SERVER_INFO,
            Arc::new(ParseOnly(Tools::new(runtime, Arc::new(runs)))),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let version = if first % 2 == 0 {
        DEFAULT_VERSION
    } else {
        STATELESS_VERSION
    };
    let session = Session::new(server().clone(), version);
    let received = session.receive_text(text);
    let expects_reply = received.expects_reply();
    let tokens = received.cancel_tokens();
    match received.run(&|_| {}) {
        Some(reply) => {
            let parsed: Result<Value, _> = serde_json::from_str(reply.text());
            assert!(parsed.is_ok(), "a reply that is not JSON: {}", reply.text());
        }
        // A request cancelled before it ran is not answered, as the spec asks.
        None => assert!(
            !expects_reply || tokens.iter().all(|t| t.is_cancelled()),
            "a request got no reply: {text}"
        ),
    }
});
