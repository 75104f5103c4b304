//! Arbitrary JSON as the arguments of each tool, through the real parser: bounds, serde,
//! trainer options, limits, base64. Nothing may panic; an error must name what is wrong.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lightning_mcp::runs::Runs;
use lightning_mcp::runtime::{Runtime, RuntimeConfig, UploadLimits};
use lightning_mcp::tools::Tools;
use serde_json::Value;
use std::sync::{Arc, OnceLock};

const TOOLS: [&str; 8] = [
    "lightning.train",
    "lightning.inspect",
    "lightning.register",
    "lightning.validate",
    "lightning.test",
    "lightning.predict",
    "lightning.checkpoint",
    "lightning.runs",
];

fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let runs = Runs::in_memory().unwrap_or_else(|e| panic!("an in-memory run store: {e}"));
        let runtime = Runtime::new(RuntimeConfig {
            uploads: Some(UploadLimits::default()),
            ..RuntimeConfig::default()
        });
        Tools::new(runtime, Arc::new(runs))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let Ok(arguments) = serde_json::from_slice::<Value>(rest) else {
        return;
    };
    let name = TOOLS[usize::from(*first) % TOOLS.len()];
    match tools().parse(name, &arguments) {
        Some(Ok(_)) => {}
        Some(Err(message)) => assert!(!message.is_empty(), "an empty error"),
        None => panic!("{name} is a tool of this server"),
    }
});
