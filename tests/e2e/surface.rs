//! End-to-end: the surface an agent pays for before its first call — the `tools/list` budget
//! and the server's instructions — and the help that holds the rest, on demand.

// Test code: `expect` says what the test expected (clippy.toml allows it in #[test] fns; the helpers here need this too).
#![allow(clippy::expect_used)]

#[path = "support.rs"]
mod support;

use serde_json::{Value, json};
use support::{StdioServer, TOOLS, structured, tool_error};

/// The whole `tools/list` result, serialized (about 4,000 tokens).
const BUDGET_BYTES: usize = 16 * 1024;
/// The longest tool description.
const MAX_DESCRIPTION_CHARS: usize = 600;
/// The longest server instructions.
const MAX_INSTRUCTIONS_BYTES: usize = 1024;

/// Every trainer option the server accepts.
const TRAINER_OPTIONS: [&str; 24] = [
    "max_epochs",
    "max_steps",
    "limit_train_batches",
    "limit_val_batches",
    "limit_test_batches",
    "limit_predict_batches",
    "seed",
    "accelerator",
    "enable_checkpointing",
    "logger",
    "default_root_dir",
    "devices",
    "min_epochs",
    "check_val_every_n_epoch",
    "val_check_interval",
    "num_sanity_val_steps",
    "accumulate_grad_batches",
    "gradient_clip_val",
    "gradient_clip_algorithm",
    "fast_dev_run",
    "overfit_batches",
    "deterministic",
    "precision",
    "callbacks",
];

/// Initializes `server` and returns its instructions.
fn instructions(server: &mut StdioServer) -> String {
    let reply = server.request(&json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "e2e", "version": "1"}},
    }));
    reply
        .pointer("/result/instructions")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The `tools/list` result as the server serializes it, and parsed.
fn tool_list(server: &mut StdioServer, id: u64) -> (String, Value) {
    let reply = server.request(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}));
    let result = reply.get("result").cloned().unwrap_or(Value::Null);
    (result.to_string(), result)
}

/// Every property schema under `schema`, by its dotted path.
fn properties(schema: &Value, path: &str, found: &mut Vec<(String, Value)>) {
    for (name, property) in schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let path = format!("{path}{name}");
        found.push((path.clone(), property.clone()));
        properties(property, &format!("{path}."), found);
    }
}

#[test]
fn the_tool_list_fits_its_budget_with_and_without_uploads() {
    let mut lists = Vec::new();
    for args in [&[][..], &[][..], &["--allow-register"][..]] {
        let mut server = StdioServer::start(args);
        let instructions = instructions(&mut server);
        assert!(
            instructions.len() <= MAX_INSTRUCTIONS_BYTES,
            "instructions are {} bytes",
            instructions.len()
        );
        assert!(
            instructions.contains(r#"{"what": "help"}"#),
            "{instructions}"
        );
        let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                          "io.modelcontextprotocol/clientCapabilities": {}});
        let discover = server.request(&json!({"jsonrpc": "2.0", "id": 9,
                                              "method": "server/discover", "params": {"_meta": meta}}));
        assert_eq!(
            discover
                .pointer("/result/instructions")
                .and_then(Value::as_str),
            Some(instructions.as_str()),
            "server/discover gives the same instructions"
        );
        let (text, list) = tool_list(&mut server, 1);
        assert_eq!(
            tool_list(&mut server, 2).0,
            text,
            "tools/list changes between calls"
        );
        let tools = list
            .get("tools")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        println!(
            "tools/list {args:?}: {} bytes (~{} tokens)",
            text.len(),
            text.len() / 4
        );
        for tool in &tools {
            let bytes = tool.to_string().len();
            let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
            println!("  {name:<22} {bytes:>6} bytes (~{} tokens)", bytes / 4);
        }
        assert!(
            text.len() <= BUDGET_BYTES,
            "tools/list is {} bytes, over {BUDGET_BYTES}",
            text.len()
        );
        assert!(!text.contains("$ref") && !text.contains("$defs"), "{text}");
        let names: Vec<&str> = tools
            .iter()
            .filter_map(|t| t.get("name")?.as_str())
            .collect();
        let uploads = args.contains(&"--allow-register");
        let expected: Vec<&str> = TOOLS
            .iter()
            .copied()
            .chain(uploads.then_some("lightning.register"))
            .collect();
        assert_eq!(names, expected);
        for tool in &tools {
            let description = tool
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let chars = description.chars().count();
            assert!(
                (1..=MAX_DESCRIPTION_CHARS).contains(&chars),
                "{tool}: {chars} characters"
            );
            let mut found = Vec::new();
            properties(
                tool.get("inputSchema").unwrap_or(&Value::Null),
                "",
                &mut found,
            );
            assert!(!found.is_empty(), "{tool}");
            for (path, property) in found {
                let typed = ["type", "enum", "anyOf"]
                    .iter()
                    .any(|k| property.get(k).is_some());
                let described = property
                    .get("description")
                    .and_then(Value::as_str)
                    .is_some_and(|d| !d.is_empty() && !d.contains('\n'));
                assert!(
                    typed && described,
                    "{}: {path} lacks a type or a one-line description: {property}",
                    names.join(",")
                );
            }
        }
        if !uploads {
            lists.push(text);
        }
    }
    assert_eq!(
        lists.first(),
        lists.last(),
        "two servers list the tools differently"
    );
}

#[test]
fn help_gives_every_option_the_tool_list_leaves_out() {
    let mut server = StdioServer::start(&[]);
    let help = |server: &mut StdioServer, id: u64, topic: Option<&str>| {
        let mut arguments = json!({"what": "help"});
        if let (Some(topic), Some(object)) = (topic, arguments.as_object_mut()) {
            object.insert("topic".into(), json!(topic));
        }
        structured(&server.call_tool(id, "lightning.inspect", arguments)).clone()
    };
    let index = help(&mut server, 1, None);
    let topics = [
        "trainer",
        "callbacks",
        "data",
        "limits",
        "schedulers",
        "checkpoints",
        "results",
        "runs",
    ];
    for topic in topics {
        assert!(
            index.pointer(&format!("/topics/{topic}")).is_some(),
            "{index}"
        );
    }

    let trainer = help(&mut server, 2, Some("trainer"));
    for option in TRAINER_OPTIONS {
        let description = trainer
            .pointer(&format!("/options/{option}/description"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert!(
            !description.is_empty(),
            "trainer.{option} missing from {trainer}"
        );
    }
    assert_eq!(
        trainer
            .get("options")
            .and_then(Value::as_object)
            .map(|o| o.len()),
        Some(TRAINER_OPTIONS.len())
    );
    let interval = trainer
        .pointer("/options/val_check_interval/description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(
        interval.contains("early stopping checks"),
        "help carries the whole description: {interval}"
    );

    // Every option any tool lists inside `trainer`, `limits` or `data` is explained by help.
    let (_, list) = tool_list(&mut server, 3);
    let limits = help(&mut server, 4, Some("limits"));
    let data = help(&mut server, 5, Some("data"));
    for tool in list
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let schema = tool.get("inputSchema").unwrap_or(&Value::Null);
        for (argument, answer) in [("trainer", &trainer), ("limits", &limits), ("data", &data)] {
            let pointer = format!("/properties/{argument}/properties");
            for option in schema
                .pointer(&pointer)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(n, _)| n)
            {
                assert!(
                    answer.pointer(&format!("/options/{option}")).is_some(),
                    "{argument}.{option} not in help"
                );
            }
        }
    }
    assert!(
        limits.pointer("/server/tensor_memory_mib").is_some(),
        "{limits}"
    );
    assert_eq!(
        limits
            .get("options")
            .and_then(Value::as_object)
            .map(|o| o.len()),
        Some(11)
    );
    assert!(
        data.pointer("/csv/val_split/description").is_some(),
        "{data}"
    );

    let callbacks = help(&mut server, 6, Some("callbacks"));
    assert!(
        callbacks.pointer("/early_stopping/patience").is_some(),
        "{callbacks}"
    );
    assert!(
        callbacks.pointer("/model_checkpoint/save_top_k").is_some(),
        "{callbacks}"
    );
    let results = help(&mut server, 7, Some("results"));
    assert!(
        results.pointer("/fields/lightning.train/history").is_some(),
        "{results}"
    );
    assert!(
        results
            .pointer("/fields/lightning.predict/predicted_class")
            .is_some(),
        "{results}"
    );
    let schedulers = help(&mut server, 8, Some("schedulers"));
    assert!(
        schedulers
            .get("examples")
            .and_then(Value::as_array)
            .is_some_and(|e| e.len() >= 3)
    );
    let checkpoints = help(&mut server, 9, Some("checkpoints"));
    assert!(
        checkpoints
            .get("summary")
            .and_then(Value::as_str)
            .is_some_and(|s| s.contains("ckpt_path"))
    );

    let models =
        structured(&server.call_tool(10, "lightning.inspect", json!({"what": "models"}))).clone();
    for model in models
        .get("models")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let defaults = model
            .get("hyperparameters")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let types = model
            .get("hyperparameter_types")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let names = |m: &serde_json::Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(names(&defaults), names(&types), "{model}");
    }
    let mlp = models
        .get("models")
        .and_then(Value::as_array)
        .and_then(|m| m.iter().find(|m| m.get("class") == Some(&json!("MLP"))))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        mlp.get("hyperparameter_types").map(|t| (
            t.get("input_dim"),
            t.get("lr"),
            t.get("lr_scheduler")
        )),
        Some((
            Some(&json!("integer")),
            Some(&json!("number")),
            Some(&json!("optional"))
        ))
    );

    // Mistakes name the fix, and the server goes on.
    let unknown = server.call_tool(
        11,
        "lightning.inspect",
        json!({"what": "help", "topic": "optimizers"}),
    );
    let error = tool_error(&unknown);
    assert!(
        error.contains("topic") && error.contains("trainer"),
        "{error}"
    );
    let misplaced = server.call_tool(
        12,
        "lightning.inspect",
        json!({"what": "models", "topic": "trainer"}),
    );
    assert!(tool_error(&misplaced).contains("what: help"), "{misplaced}");
    assert!(help(&mut server, 13, None).get("topics").is_some());
}
