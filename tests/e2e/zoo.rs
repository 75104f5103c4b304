//! End-to-end: the built-in models on the built-in datasets, to the accuracy targets the
//! README states (fixed seeds), and the dataset options' errors.

// Test code: `expect` says what the test expected (clippy.toml allows it in #[test] fns; the helpers here need this too).
#![allow(clippy::expect_used)]

#[path = "support.rs"]
mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{StdioServer, number, structured, tool_error};

const MLP: &str = "lightning_mcp.models.mlp.MLP";
const CONVNET: &str = "lightning_mcp.models.cnn.ConvNet";

/// Trains and returns the structured result, failing the test on a tool error.
fn train(server: &mut StdioServer, id: u64, arguments: Value) -> Value {
    let result = server.call_tool(id, "lightning.train", arguments);
    structured(&result).clone()
}

#[test]
fn mlp_reaches_95_percent_validation_accuracy_on_iris() {
    let mut server = StdioServer::start(&[]);
    let result = train(
        &mut server,
        1,
        json!({
            "model": {"_target_": MLP, "input_dim": 4, "hidden_dims": [32], "num_classes": 3,
                      "lr": 0.01},
            "data": {"dataset": "iris", "batch_size": 16, "shuffle": true},
            "trainer": {"max_epochs": 60, "seed": 0, "accelerator": "cpu"},
        }),
    );
    let val_acc = number(&result, "/metrics/val_acc");
    assert!(val_acc >= 0.95, "val_acc {val_acc}: {result}");
    let data = result.get("data").cloned().unwrap_or_default();
    assert_eq!(data.pointer("/source"), Some(&json!("dataset")));
    assert_eq!(data.pointer("/dataset/name"), Some(&json!("iris")));
    assert_eq!(
        data.pointer("/classes"),
        Some(&json!(["setosa", "versicolor", "virginica"]))
    );
    assert_eq!(
        (
            data.pointer("/train_samples"),
            data.pointer("/val_samples"),
            data.pointer("/test_samples")
        ),
        (Some(&json!(90)), Some(&json!(30)), Some(&json!(30)))
    );
    assert_eq!(data.pointer("/input_shape"), Some(&json!([4])));
}

#[test]
fn convnet_reaches_95_percent_test_accuracy_on_digits() {
    let mut server = StdioServer::start(&[]);
    let data = json!({"dataset": "digits", "shuffle": true});
    let result = train(
        &mut server,
        1,
        json!({
            "model": {"_target_": CONVNET},
            "data": data,
            "trainer": {"max_epochs": 6, "seed": 0, "accelerator": "cpu"},
        }),
    );
    // Batch norm's running statistics are buffers: not parameters, but in the checkpoint.
    assert_eq!(
        number(&result, "/model/num_parameters"),
        13802.0,
        "{result}"
    );
    let path = result
        .get("checkpoint_path")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no checkpoint: {result}"))
        .to_string();
    let bytes = std::fs::read(server.checkpoint_dir().join(&path))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let checkpoint =
        lightning_mcp::checkpoint::decode(&bytes, false).expect("the checkpoint decodes");
    let running_mean = checkpoint
        .params
        .iter()
        .find(|p| p.name == "blocks.0.norm.running_mean")
        .expect("a running mean in the checkpoint");
    assert!(
        running_mean.values.iter().any(|v| *v != 0.0),
        "training updated the running mean: {:?}",
        running_mean.values
    );

    // The test split is held out of training and validation; evaluation uses the running
    // statistics the checkpoint restores.
    let tested = server.call_tool(
        2,
        "lightning.test",
        json!({"model": {"_target_": CONVNET}, "data": data, "ckpt_path": path,
               "trainer": {"accelerator": "cpu"}}),
    );
    let tested = structured(&tested);
    let test_acc = number(tested, "/metrics/test_acc");
    assert!(test_acc >= 0.95, "test_acc {test_acc}: {tested}");
    assert_eq!(tested.pointer("/data/test_samples"), Some(&json!(359)));

    // Validating the checkpoint reproduces the training's last validation: evaluation reads
    // the restored running statistics and leaves them as they are.
    let validated = server.call_tool(
        3,
        "lightning.validate",
        json!({"model": {"_target_": CONVNET}, "data": data, "ckpt_path": path,
               "trainer": {"accelerator": "cpu"}}),
    );
    let (again, trained) = (
        number(structured(&validated), "/metrics/val_loss"),
        number(&result, "/metrics/val_loss"),
    );
    assert!(
        (again - trained).abs() <= 1e-6 * trained.max(1.0),
        "{again} vs {trained}"
    );
}

#[test]
fn dataset_options_are_checked() {
    let mut server = StdioServer::start(&[]);
    let mlp = json!({"_target_": MLP, "input_dim": 64, "hidden_dims": [16], "num_classes": 10});
    let cases = [
        (json!({"dataset": "mnist"}), vec!["mnist", "iris, digits"]),
        (
            json!({"dataset": "digits", "input_shape": [65]}),
            vec!["input_shape [65]", "64 features"],
        ),
        (
            json!({"dataset": "digits", "train": {"inputs": [[1.0]], "targets": [0]}}),
            vec!["data.dataset cannot be combined"],
        ),
        (
            json!({"dataset": "iris", "csv": {"path": "x.csv"}}),
            vec!["data.csv and data.dataset"],
        ),
        (
            json!({"dataset": "digits", "input_shape": [0, 64]}),
            vec!["input_shape", "at least 1"],
        ),
        (
            json!({"input_shape": [2, 4]}),
            vec!["input_shape", "a model's own data keeps its shape"],
        ),
    ];
    for (id, (data, mentions)) in (1..).zip(cases) {
        let result = server.call_tool(
            id,
            "lightning.train",
            json!({"model": mlp, "data": data, "trainer": {"max_epochs": 1}}),
        );
        let message = tool_error(&result);
        for m in mentions {
            assert!(message.contains(m), "{message:?} should mention {m}");
        }
    }
    // Images fed to a model of vectors: the error names both shapes and the fix.
    let result = server.call_tool(
        10,
        "lightning.train",
        json!({"model": mlp, "data": {"dataset": "digits"}, "trainer": {"max_epochs": 1}}),
    );
    let message = tool_error(&result);
    assert!(
        message.contains("samples of shape [1, 8, 8]: give data.input_shape [64]"),
        "{message}"
    );

    // Seen as vectors, the same images train the MLP.
    let result = train(
        &mut server,
        11,
        json!({"model": mlp, "data": {"dataset": "digits", "input_shape": [64]},
               "trainer": {"max_epochs": 1, "accelerator": "cpu"}}),
    );
    assert_eq!(result.pointer("/data/input_shape"), Some(&json!([64])));
    assert!(number(&result, "/metrics/val_acc") > 0.5, "{result}");

    // Nested arrays reshape too: 4 values per sample as 2x2 images for the ConvNet.
    let convnet = json!({"_target_": CONVNET, "image_size": [2, 2], "channels": [4],
                         "num_classes": 2, "batch_norm": false});
    let inputs: Vec<Value> = (0..8).map(|i| json!([i, 1, 0, -i])).collect();
    let targets: Vec<Value> = (0..8).map(|i| json!(i % 2)).collect();
    let result = train(
        &mut server,
        12,
        json!({"model": convnet,
               "data": {"train": {"inputs": inputs, "targets": targets}, "input_shape": [1, 2, 2]},
               "trainer": {"max_epochs": 1, "accelerator": "cpu"}}),
    );
    assert_eq!(result.get("status"), Some(&json!("completed")));
    assert!(server.finish(), "the server exits cleanly");
}

/// The target dir this test binary was built in (`<target>/debug/deps/zoo-…`).
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(std::env::temp_dir)
}

/// Cargo, without this test's own build settings (`CARGO_*` but `CARGO_HOME`, `RUSTFLAGS`).
fn cargo() -> Command {
    let mut cargo = Command::new(option_env!("CARGO").unwrap_or("cargo"));
    for (key, _) in std::env::vars() {
        if (key.starts_with("CARGO_") && key != "CARGO_HOME") || key == "RUSTFLAGS" {
            cargo.env_remove(key);
        }
    }
    cargo
}

#[test]
fn the_guest_sdk_passes_its_tests_and_its_doc_examples_compile() {
    // Natively: the SDK's tests (the hyperparameter derive, parameter naming, the optimizer
    // and scheduler specs, the shared window arithmetic) and its doc examples, which compile.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let status = cargo()
        .args(["test", "--locked"])
        .args([
            "-p",
            "lightning-mcp-guest-sdk",
            "-p",
            "lightning-mcp-guest-sdk-derive",
        ])
        .args(["-p", "lightning-mcp-shapes"])
        .arg("--manifest-path")
        .arg(&workspace)
        .arg("--target-dir")
        .arg(target_dir().join("guest-sdk"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the guest SDK's tests failed");
}

#[test]
fn the_model_template_builds_registers_and_trains() {
    // Built as a newcomer builds a copy of it: its own workspace, for wasm32-wasip2, release.
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/model-template");
    let build_dir = target_dir().join("model-template");
    let mut cargo = cargo();
    cargo
        .args([
            "build",
            "--locked",
            "--release",
            "--target",
            "wasm32-wasip2",
        ])
        .arg("--manifest-path")
        .arg(template.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&build_dir);
    let status = cargo.status().expect("cargo runs");
    assert!(status.success(), "building the template failed");
    let component = build_dir.join("wasm32-wasip2/release/my_model.wasm");

    let models = tempfile::tempdir().expect("a temporary directory");
    std::fs::copy(&component, models.path().join("my_model.wasm"))
        .unwrap_or_else(|e| panic!("{}: {e}", component.display()));
    let models_arg = models.path().to_string_lossy().into_owned();
    let mut server = StdioServer::start(&["--models-dir", &models_arg]);
    let result = train(
        &mut server,
        1,
        json!({
            "model": {"_target_": "my_project.models.TinyNet"},
            "data": {"dataset": "iris", "batch_size": 16, "shuffle": true},
            "trainer": {"max_epochs": 30, "seed": 0, "accelerator": "cpu"},
        }),
    );
    assert_eq!(result.pointer("/model/class"), Some(&json!("TinyNet")));
    // 4 -> 32 (+ layer norm) -> 3.
    assert_eq!(number(&result, "/model/num_parameters"), 323.0);
    let val_acc = number(&result, "/metrics/val_acc");
    assert!(val_acc >= 0.9, "val_acc {val_acc}: {result}");
}
