//! End-to-end: `lightning_mcp.models.sequential.Sequential`, the model that is its config — a
//! CNN on the built-in digits, an MLP, a regression and an embedding model on request data,
//! configs refused (naming the layer, its type and the shape) before any parameter exists,
//! and batch norm's running statistics listed as buffers.

// Test code: `expect` says what the test expected (clippy.toml allows it in #[test] fns; the helpers here need this too).
#![allow(clippy::expect_used)]

#[path = "support.rs"]
mod support;

use serde_json::{Value, json};
use support::{StdioServer, number, structured, tool_error};

const SEQUENTIAL: &str = "lightning_mcp.models.sequential.Sequential";

/// Trains and returns the structured result, failing the test on a tool error.
fn train(server: &mut StdioServer, id: u64, arguments: Value) -> Value {
    let result = server.call_tool(id, "lightning.train", arguments);
    structured(&result).clone()
}

/// Every history record's value of `metric`.
fn history_of(result: &Value, metric: &str) -> Vec<f64> {
    result
        .get("history")
        .and_then(Value::as_array)
        .map(|h| {
            h.iter()
                .filter_map(|r| r.get("metrics")?.get(metric)?.as_f64())
                .collect()
        })
        .unwrap_or_default()
}

/// The first and last value of `metric` over the epochs.
#[track_caller]
fn first_and_last(result: &Value, metric: &str) -> (f64, f64) {
    let values = history_of(result, metric);
    match (values.first(), values.last()) {
        (Some(first), Some(last)) => (*first, *last),
        _ => panic!("no {metric} in the history: {result}"),
    }
}

/// A small CNN for the digits' `[1, 8, 8]` images.
fn digits_cnn() -> Value {
    json!({
        "_target_": SEQUENTIAL,
        "input_shape": [1, 8, 8],
        "layers": [
            {"type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1},
            {"type": "batch_norm"},
            {"type": "relu"},
            {"type": "max_pool2d", "kernel_size": 2},
            {"type": "conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1},
            {"type": "batch_norm"},
            {"type": "relu"},
            {"type": "max_pool2d", "kernel_size": 2},
            {"type": "flatten"},
            {"type": "linear", "out": 64},
            {"type": "relu"},
            {"type": "linear", "out": 10},
        ],
        "loss": "cross_entropy",
        "optimizer": "adam",
        "lr": 0.01,
        "lr_scheduler": {"name": "cosine", "t_max": 4},
    })
}

#[test]
fn a_sequential_cnn_reaches_95_percent_test_accuracy_on_digits() {
    let mut server = StdioServer::start(&[]);
    let data = json!({"dataset": "digits", "shuffle": true});
    let result = train(
        &mut server,
        1,
        json!({
            "model": digits_cnn(),
            "data": data,
            "trainer": {"max_epochs": 4, "seed": 0, "accelerator": "cpu"},
        }),
    );
    // conv 160 + batch norm 32 + conv 4,640 + batch norm 64 + linear 8,256 + linear 650; the
    // running statistics are buffers, not parameters.
    assert_eq!(
        number(&result, "/model/num_parameters"),
        13802.0,
        "{result}"
    );
    // The resolved config: defaults filled in, sizes as given.
    let layers = result
        .pointer("/model/hyperparameters/layers")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        layers.get(3),
        Some(&json!({"type": "max_pool2d", "kernel_size": 2, "stride": 2, "padding": 0}))
    );
    assert_eq!(
        layers.get(1),
        Some(&json!({"type": "batch_norm", "momentum": 0.1, "eps": 0.00001}))
    );
    assert!(number(&result, "/metrics/train_acc") > 0.9, "{result}");
    let path = result
        .get("checkpoint_path")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no checkpoint: {result}"))
        .to_string();

    // The held-out test split, with the running statistics the checkpoint restores.
    let tested = server.call_tool(
        2,
        "lightning.test",
        json!({"model": digits_cnn(), "data": data, "ckpt_path": path,
               "trainer": {"accelerator": "cpu"}}),
    );
    let tested = structured(&tested);
    let test_acc = number(tested, "/metrics/test_acc");
    assert!(test_acc >= 0.95, "test_acc {test_acc}: {tested}");
    assert!(number(tested, "/metrics/test_loss") < 0.3, "{tested}");
    assert_eq!(tested.pointer("/data/test_samples"), Some(&json!(359)));
    assert!(server.finish(), "the server exits cleanly");
}

/// XOR of the signs: 64 points on a grid in `[-1, 1]²`, class 1 where exactly one coordinate
/// is positive — not linearly separable.
fn xor_data() -> (Vec<Value>, Vec<Value>) {
    (0..64)
        .map(|i| {
            let coordinate = |k: i32| (f64::from(k) - 3.5) / 4.0;
            let (x, y) = (coordinate(i % 8), coordinate(i / 8));
            (json!([x, y]), json!(i32::from((x > 0.0) != (y > 0.0))))
        })
        .unzip()
}

#[test]
fn the_mlp_example_learns_xor_from_request_data() {
    let mut server = StdioServer::start(&[]);
    let (inputs, targets) = xor_data();
    let model = json!({
        "_target_": SEQUENTIAL,
        "input_shape": [2],
        "layers": [{"type": "linear", "out": 32}, {"type": "relu"}, {"type": "linear", "out": 2}],
        "loss": "cross_entropy",
        "optimizer": "adam",
        "lr": 0.01,
    });
    let result = train(
        &mut server,
        1,
        json!({
            "model": model,
            "data": {"train": {"inputs": inputs, "targets": targets},
                     "val": {"inputs": inputs, "targets": targets},
                     "batch_size": 16, "shuffle": true},
            "trainer": {"max_epochs": 40, "seed": 0, "accelerator": "cpu"},
        }),
    );
    // linear 2 -> 32 (96) and 32 -> 2 (66).
    assert_eq!(number(&result, "/model/num_parameters"), 162.0, "{result}");
    let (first, last) = first_and_last(&result, "train_loss");
    assert!(last < first * 0.5, "train_loss {first} -> {last}: {result}");
    assert!(number(&result, "/metrics/val_acc") >= 0.9, "{result}");
    assert!(result.pointer("/metrics/train_acc").is_some(), "{result}");

    // The defaults are this very example.
    let inspected = server.call_tool(
        2,
        "lightning.inspect",
        json!({"what": "model", "model": {"_target_": SEQUENTIAL}}),
    );
    let inspected = structured(&inspected);
    assert_eq!(
        inspected.get("hyperparameters"),
        result.pointer("/model/hyperparameters"),
        "{inspected}"
    );
    assert!(server.finish(), "the server exits cleanly");
}

#[test]
fn mse_regresses_values_from_request_data() {
    let mut server = StdioServer::start(&[]);
    let xs: Vec<f64> = (0..32).map(|i| f64::from(i) / 16.0 - 1.0).collect();
    let inputs: Vec<Value> = xs.iter().map(|x| json!([x])).collect();
    let targets: Vec<Value> = xs.iter().map(|x| json!(2.0 * x + 0.5)).collect();
    let result = train(
        &mut server,
        1,
        json!({
            "model": {"_target_": SEQUENTIAL, "input_shape": [1],
                      "layers": [{"type": "linear", "out": 1}], "loss": "mse",
                      "optimizer": "sgd", "lr": 0.1},
            "data": {"train": {"inputs": inputs, "targets": targets}, "batch_size": 8},
            "trainer": {"max_epochs": 20, "seed": 0, "accelerator": "cpu"},
        }),
    );
    let (first, last) = first_and_last(&result, "train_loss");
    assert!(
        last < 0.01 && last < first,
        "train_loss {first} -> {last}: {result}"
    );
    assert!(result.pointer("/metrics/train_acc").is_none(), "{result}");
    assert!(server.finish(), "the server exits cleanly");
}

#[test]
fn invalid_configs_name_the_layer_its_type_and_the_shape() {
    let mut server = StdioServer::start(&[]);
    let conv = |out: u32, k: u32| json!({"type": "conv2d", "out_channels": out, "kernel_size": k});
    let cases = [
        (
            json!([1, 8, 8]),
            json!([{"type": "flatten"}, conv(4, 3), {"type": "linear", "out": 2}]),
            vec![
                "layers[1] (conv2d)",
                "expects an input [channels, height, width], got [64]",
            ],
        ),
        (
            json!([1, 4, 4]),
            json!([conv(16, 3), {"type": "max_pool2d", "kernel_size": 3}]),
            vec![
                "layers[1] (max_pool2d)",
                "kernel 3x3 does not fit the input [16, 2, 2]",
            ],
        ),
        (
            json!([1, 8, 8]),
            json!([conv(4, 3), {"type": "relu"}]),
            vec!["layers[1] (relu)", "cross_entropy", "[4, 6, 6]"],
        ),
        (
            json!([4]),
            json!([{"type": "linear", "out": 1}]),
            vec!["layers[0] (linear)", "at least 2 classes", "[1]"],
        ),
        (
            json!([4]),
            json!([{"type": "linear", "out": 8}, {"type": "conv3d", "out_channels": 2}]),
            vec!["layers[1]", "unknown variant `conv3d`", "conv2d"],
        ),
        (
            json!([4]),
            json!([{"type": "linear", "out": 8, "outs": 3}]),
            vec!["layers[0]", "unknown field `outs`", "`out` or `bias`"],
        ),
        (
            json!([4]),
            json!([
                {"type": "linear", "out": 8},
                {"type": "embedding", "num_embeddings": 10, "embedding_dim": 4},
            ]),
            vec!["layers[1] (embedding)", "first layer", "[8]"],
        ),
        (
            json!([1, 8, 8]),
            json!([{"type": "avg_pool2d", "kernel_size": 2, "padding": 2}]),
            vec![
                "layers[0] (avg_pool2d)",
                "padding 2x2 is more than half the kernel 2x2",
            ],
        ),
        (
            json!([1, 8, 8]),
            json!([{"type": "conv2d", "out_channels": 4, "kernel_size": [3, 0]}]),
            vec!["layers[0] (conv2d)", "kernel_size", "3x0"],
        ),
        (
            json!([4]),
            json!([{"type": "linear", "out": 65_536}, {"type": "linear", "out": 65_536}]),
            vec!["layers[1] (linear)", "parameters", "50000000"],
        ),
        (
            json!([4]),
            json!([]),
            vec!["layers must list 1 to 64 layers"],
        ),
        (
            json!([0, 8]),
            json!([{"type": "linear", "out": 2}]),
            vec!["input_shape", "[0, 8]"],
        ),
    ];
    for (id, (input_shape, layers, mentions)) in (1..).zip(cases) {
        let result = server.call_tool(
            id,
            "lightning.train",
            json!({"model": {"_target_": SEQUENTIAL, "input_shape": input_shape,
                             "layers": layers},
                   "trainer": {"max_epochs": 1, "accelerator": "cpu"}}),
        );
        let message = tool_error(&result);
        for m in mentions {
            assert!(message.contains(m), "{message:?} should mention {m:?}");
        }
        // Positions in the JSON the server wrote for the guest mean nothing to the caller.
        assert!(!message.contains(" at line "), "{message:?}");
    }

    // Data that does not fit input_shape: before the model is built, the error names the
    // hyperparameter, the data field, both shapes and the fix.
    let result = server.call_tool(
        20,
        "lightning.train",
        json!({"model": {"_target_": SEQUENTIAL, "input_shape": [3]},
               "data": {"train": {"inputs": [[1.0, 2.0], [3.0, 4.0]], "targets": [0, 1]}},
               "trainer": {"max_epochs": 1, "accelerator": "cpu"}}),
    );
    let message = tool_error(&result);
    for m in [
        "model.input_shape is [3]",
        "data.train.inputs has samples of shape [2]",
        "give input_shape [2]",
    ] {
        assert!(message.contains(m), "{message:?} should mention {m:?}");
    }

    // The server goes on: a valid config right after trains.
    let (inputs, targets) = xor_data();
    let result = train(
        &mut server,
        21,
        json!({"model": {"_target_": SEQUENTIAL},
               "data": {"train": {"inputs": inputs, "targets": targets}},
               "trainer": {"max_epochs": 1, "accelerator": "cpu"}}),
    );
    assert_eq!(result.get("status"), Some(&json!("completed")), "{result}");
    assert!(server.finish(), "the server exits cleanly");
}

#[test]
fn the_summary_lists_batch_norm_statistics_as_buffers() {
    let mut server = StdioServer::start(&[]);
    let result = server.call_tool(
        1,
        "lightning.inspect",
        json!({"what": "summary", "model": {
            "_target_": SEQUENTIAL,
            "input_shape": [4],
            "layers": [{"type": "linear", "out": 8}, {"type": "batch_norm"}, {"type": "relu"},
                       {"type": "linear", "out": 3}],
        }}),
    );
    let summary = structured(&result);
    let names = |field: &str| -> Vec<String> {
        summary
            .get(field)
            .and_then(Value::as_array)
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| r.get("name")?.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        names("parameters"),
        [
            "layers.0.weight",
            "layers.0.bias",
            "layers.1.weight",
            "layers.1.bias",
            "layers.3.weight",
            "layers.3.bias",
        ],
        "{summary}"
    );
    assert_eq!(
        summary.get("buffers"),
        Some(&json!([
            {"name": "layers.1.running_mean", "shape": [8], "count": 8},
            {"name": "layers.1.running_var", "shape": [8], "count": 8},
        ])),
        "{summary}"
    );
    // 4 * 8 + 8, 8 + 8, 8 * 3 + 3: the buffers do not count.
    assert_eq!(number(summary, "/num_parameters"), 83.0, "{summary}");
    assert!(server.finish(), "the server exits cleanly");
}

/// Sequences of 4 token ids in `[0, 6)`; class 1 when the first token is 3 or more.
fn token_data() -> (Vec<Value>, Vec<Value>) {
    (0..48)
        .map(|i: i64| {
            let tokens: Vec<i64> = (0..4).map(|t| (i * 7 + t * (i / 6 + 1)) % 6).collect();
            let class = i64::from(tokens.first().is_some_and(|t| *t >= 3));
            (json!(tokens), json!(class))
        })
        .unzip()
}

#[test]
fn an_embedding_first_sequential_trains_on_token_ids() {
    let mut server = StdioServer::start(&[]);
    let (inputs, targets) = token_data();
    let model = json!({
        "_target_": SEQUENTIAL,
        "input_shape": [4],
        "layers": [
            {"type": "embedding", "num_embeddings": 6, "embedding_dim": 8},
            {"type": "flatten"},
            {"type": "linear", "out": 2},
        ],
    });
    let result = train(
        &mut server,
        1,
        json!({
            "model": model,
            "data": {"train": {"inputs": inputs, "targets": targets}, "batch_size": 16},
            "trainer": {"max_epochs": 30, "seed": 0, "accelerator": "cpu"},
        }),
    );
    // A 6 x 8 table and a 32 -> 2 classifier.
    assert_eq!(
        number(&result, "/model/num_parameters"),
        48.0 + 66.0,
        "{result}"
    );
    let (first, last) = first_and_last(&result, "train_loss");
    assert!(last < first * 0.5, "train_loss {first} -> {last}: {result}");
    assert!(number(&result, "/metrics/train_acc") >= 0.9, "{result}");

    // Ids must be integers within the table.
    for (id, bad, shown) in [(2, 6.0, "got 6"), (3, 1.5, "got 1.5"), (4, -1.0, "got -1")] {
        let result = server.call_tool(
            id,
            "lightning.predict",
            json!({"model": model, "data": {"predict": {"inputs": [[0, 1, 2, bad]]}},
                   "trainer": {"accelerator": "cpu"}}),
        );
        let message = tool_error(&result);
        for m in ["layers[0] (embedding)", "[0, 6)", shown] {
            assert!(message.contains(m), "{message:?} should mention {m:?}");
        }
    }
    let predicted = server.call_tool(
        5,
        "lightning.predict",
        json!({"model": model, "data": {"predict": {"inputs": [[0, 1, 2, 5], [5, 4, 3, 2]]}},
               "trainer": {"accelerator": "cpu"}}),
    );
    let predicted = structured(&predicted);
    let batch = predicted
        .pointer("/predictions/0")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no predictions: {predicted}"));
    assert_eq!(batch.len(), 2, "{predicted}");
    assert!(server.finish(), "the server exits cleanly");
}
