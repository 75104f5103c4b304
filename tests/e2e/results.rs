//! End-to-end: every tool result stays within the server's bound (`--max-result-kb`) —
//! predictions past it go to a file, a long history is downsampled, listings are cut, and
//! anything else past it is refused with the fix — over stdio.

// Test code: `expect` says what the test expected (clippy.toml allows it in #[test] fns; the helpers here need this too).
#![allow(clippy::expect_used)]

#[path = "support.rs"]
mod support;

use serde_json::{Value, json};
use support::{StdioServer, structured, tool_error};

const CONVNET: &str = "lightning_mcp.models.cnn.ConvNet";
const SIMPLE: &str = "lightning_mcp.models.simple.SimpleClassifier";
const TRANSFORMER: &str = "lightning_mcp.models.transformer.CharTransformer";

/// The smallest bound a server takes, in bytes.
const SMALL_BOUND: usize = 16_000;

/// A ConvNet's predictions over the digits' test rows: 359 rows of 10 logits.
fn predict_digits(server: &mut StdioServer) -> Value {
    let result = server.call_tool(
        1,
        "lightning.predict",
        json!({"model": {"_target_": CONVNET, "channels": [4]}, "data": {"dataset": "digits"}}),
    );
    structured(&result).clone()
}

#[test]
fn predictions_past_the_bound_go_to_a_file_with_the_first_rows_in_the_result() {
    let mut inline = StdioServer::start(&[]);
    let whole = predict_digits(&mut inline);
    let rows = whole
        .pointer("/data/test_samples")
        .and_then(Value::as_u64)
        .unwrap_or(0) as usize;
    assert!(rows > 300, "{whole}");
    assert!(
        whole.get("predictions_file").is_none(),
        "under 100 KB, every row is inline"
    );

    let mut server = StdioServer::start(&["--max-result-kb", "16"]);
    let spilled = predict_digits(&mut server);
    assert!(
        spilled.to_string().len() <= SMALL_BOUND,
        "{} bytes",
        spilled.to_string().len()
    );
    assert_eq!(
        spilled.pointer("/predictions_file/rows"),
        Some(&json!(rows))
    );
    let first_rows = spilled
        .pointer("/predictions/0")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    assert_eq!(first_rows.len(), 10);
    assert_eq!(
        spilled
            .get("predicted_class")
            .and_then(Value::as_array)
            .map(Vec::len),
        Some(10)
    );

    let path = spilled
        .pointer("/predictions_file/path")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(
        path.starts_with("predictions/version_") && path.ends_with("/predictions.jsonl"),
        "{path}"
    );
    let text = std::fs::read_to_string(server.checkpoint_dir().join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(lines.len(), rows);
    assert_eq!(
        spilled.pointer("/predictions_file/bytes"),
        Some(&json!(text.len()))
    );
    // The file holds the same rows as the inline result, each with its class.
    let inline_rows: Vec<Value> = whole
        .get("predictions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|batch| batch.as_array().cloned().unwrap_or_default())
        .collect();
    let inline_classes = whole
        .get("predicted_class")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (k, line) in lines.iter().enumerate() {
        assert_eq!(line.get("prediction"), inline_rows.get(k), "row {k}");
        assert_eq!(
            line.get("predicted_class"),
            inline_classes.get(k),
            "row {k}"
        );
    }
    assert_eq!(Some(&first_rows[..]), inline_rows.get(..10));
}

#[test]
fn a_long_history_is_downsampled_and_metrics_csv_keeps_every_epoch() {
    let mut server = StdioServer::start(&[]);
    let result = server.call_tool(
        1,
        "lightning.train",
        json!({"model": {"_target_": SIMPLE},
               "trainer": {"max_epochs": 150, "limit_train_batches": 1, "limit_val_batches": 1,
                           "num_sanity_val_steps": 0}}),
    );
    let trained = structured(&result);
    let history = trained
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    assert_eq!(history.len(), 100, "{trained}");
    assert_eq!(trained.get("history_records"), Some(&json!(150)));
    assert_eq!(
        history.first().and_then(|r| r.get("epoch")),
        Some(&json!(0))
    );
    assert_eq!(
        history.last().and_then(|r| r.get("epoch")),
        Some(&json!(149))
    );
    let log_dir = trained
        .get("log_dir")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let csv = std::fs::read_to_string(server.checkpoint_dir().join(log_dir).join("metrics.csv"))
        .unwrap_or_else(|e| panic!("{log_dir}: {e}"));
    assert_eq!(csv.lines().count(), 151, "a header and every epoch");
}

#[test]
fn other_results_past_the_bound_are_refused_and_listings_are_cut() {
    let mut server = StdioServer::start(&["--max-result-kb", "16"]);
    let many = server.checkpoint_dir().join("many");
    std::fs::create_dir_all(&many).expect("a directory is created");
    for k in 0..300 {
        std::fs::write(
            many.join(format!("epoch={k:03}-step={k:05}.safetensors")),
            b"",
        )
        .expect("an empty checkpoint file is written");
    }
    let listed = server.call_tool(
        1,
        "lightning.checkpoint",
        json!({"action": "list", "directory": "many"}),
    );
    let listed = structured(&listed);
    let count = listed.get("count").and_then(Value::as_u64).unwrap_or(0);
    assert!((1..300).contains(&count), "{listed}");
    assert_eq!(listed.get("truncated"), Some(&json!(true)));
    assert!(listed.to_string().len() <= SMALL_BOUND);

    // A model whose hyperparameters alone pass the bound: refused, naming the flag.
    let text = "It was the best of times. ".repeat(800);
    let inspected = server.call_tool(
        2,
        "lightning.inspect",
        json!({"what": "model", "model": {"_target_": TRANSFORMER, "text": text}}),
    );
    let error = tool_error(&inspected);
    assert!(
        error.contains("bytes of JSON") && error.contains("--max-result-kb"),
        "{error}"
    );

    // The server goes on.
    let environment = server.call_tool(3, "lightning.inspect", json!({"what": "environment"}));
    assert!(structured(&environment).get("lightning_mcp").is_some());
}
