//! End-to-end: the inputs agents really send — class labels as whole-number floats, models
//! without the sizes the data determines, data that does not fit the model — over stdio.

// Test code: `expect` says what the test expected (clippy.toml allows it in #[test] fns; the helpers here need this too).
#![allow(clippy::expect_used)]

#[path = "support.rs"]
mod support;

use serde_json::{Value, json};
use support::{StdioServer, structured, tool_error};

const MLP: &str = "lightning_mcp.models.mlp.MLP";
const CONVNET: &str = "lightning_mcp.models.cnn.ConvNet";
const SEQUENTIAL: &str = "lightning_mcp.models.sequential.Sequential";

/// Three separable clusters in 4-D: `n` rows of inputs and their class (0, 1, 2) as a float.
fn clusters(n: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
    (0..n)
        .map(|i| {
            let class = i % 3;
            let jitter = |k: usize| ((i * 13 + k * 7) % 11) as f64 / 25.0 - 0.2;
            let row = (0..4).map(|k| (class * 2) as f64 + jitter(k)).collect();
            (row, class as f64)
        })
        .unzip()
}

#[test]
fn sizes_come_from_the_data_and_float_labels_are_classes() {
    let mut server = StdioServer::start(&[]);
    // The MLP's defaults (input_dim 8, num_classes 4) do not fit iris: the data decides.
    let trained = server.call_tool(
        1,
        "lightning.train",
        json!({"model": {"_target_": MLP}, "data": {"dataset": "iris"},
               "trainer": {"max_epochs": 2}}),
    );
    let trained = structured(&trained).clone();
    assert_eq!(
        trained.get("status"),
        Some(&json!("completed")),
        "{trained}"
    );
    assert_eq!(
        trained.pointer("/model/hyperparameters/input_dim"),
        Some(&json!(4))
    );
    assert_eq!(
        trained.pointer("/model/hyperparameters/num_classes"),
        Some(&json!(3))
    );
    assert_eq!(
        trained.pointer("/model/from_data"),
        Some(&json!(["input_dim", "num_classes"]))
    );

    // Predicting with its checkpoint needs no sizes either: they come from the checkpoint.
    let predicted = server.call_tool(
        2,
        "lightning.predict",
        json!({"model": {"_target_": MLP}, "ckpt_path": trained.get("checkpoint_path"),
               "data": {"predict": {"inputs": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}}}),
    );
    let predicted = structured(&predicted);
    assert_eq!(
        predicted
            .pointer("/predictions/0/0")
            .and_then(Value::as_array)
            .map(Vec::len),
        Some(3),
        "three logits per row: {predicted}"
    );

    // numpy's tolist() of a float array: [0.0, 1.0, 2.0, ...] are class indices.
    let (inputs, targets) = clusters(30);
    let float_labels = server.call_tool(
        3,
        "lightning.train",
        json!({"model": {"_target_": MLP, "hidden_dims": [8], "lr": 0.05},
               "data": {"train": {"inputs": inputs, "targets": targets}},
               "trainer": {"max_epochs": 60, "enable_checkpointing": false, "logger": false}}),
    );
    let float_labels = structured(&float_labels);
    assert_eq!(
        float_labels.get("status"),
        Some(&json!("completed")),
        "{float_labels}"
    );
    assert_eq!(
        float_labels.pointer("/model/hyperparameters/num_classes"),
        Some(&json!(3))
    );
    assert!(
        float_labels
            .pointer("/metrics/train_acc")
            .and_then(Value::as_f64)
            .is_some_and(|a| a > 0.9),
        "{float_labels}"
    );

    // The ConvNet takes its channels and image size from the digits.
    let convnet = server.call_tool(
        4,
        "lightning.validate",
        json!({"model": {"_target_": CONVNET, "channels": [4], "image_size": [8, 8]},
               "data": {"dataset": "digits", "input_shape": [1, 8, 8]}}),
    );
    assert_eq!(
        structured(&convnet).get("status"),
        Some(&json!("completed")),
        "{convnet}"
    );

    // A regression on whole-number values still trains (mse takes them as numbers).
    let regression = server.call_tool(
        5,
        "lightning.train",
        json!({"model": {"_target_": SEQUENTIAL, "input_shape": [1],
                         "layers": [{"type": "linear", "out": 1}], "loss": "mse"},
               "data": {"train": {"inputs": [[1.0], [2.0], [3.0]], "targets": [[2.0], [4.0], [6.0]]}},
               "trainer": {"max_epochs": 2, "enable_checkpointing": false, "logger": false}}),
    );
    assert_eq!(
        structured(&regression).get("status"),
        Some(&json!("completed")),
        "{regression}"
    );
}

#[test]
fn data_that_does_not_fit_the_model_names_the_field_and_the_fix() {
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let (inputs, targets) = clusters(12);
    let mut csv = String::from("a,b,c,d,label\n");
    for (row, class) in inputs.iter().zip(&targets) {
        let row: Vec<String> = row.iter().map(|v| format!("{v:.2}")).collect();
        csv.push_str(&format!("{},{class:.1}\n", row.join(",")));
    }
    std::fs::write(data_dir.path().join("floats.csv"), &csv).expect("floats.csv is written");
    std::fs::write(
        data_dir.path().join("halves.csv"),
        "a,label\n1,0.5\n2,1.0\n",
    )
    .expect("halves.csv is written");
    let dir = data_dir.path().to_string_lossy().into_owned();
    let mut server = StdioServer::start(&["--data-dir", &dir]);
    let train = |server: &mut StdioServer, id: u64, model: Value, data: Value| {
        server.call_tool(
            id,
            "lightning.train",
            json!({"model": model, "data": data,
                   "trainer": {"max_epochs": 1, "enable_checkpointing": false, "logger": false}}),
        )
    };

    // A CSV column of 0.0, 1.0, 2.0 is class indices too.
    let csv_floats = train(
        &mut server,
        1,
        json!({"_target_": MLP}),
        json!({"csv": {"path": "floats.csv", "target": "label"}}),
    );
    assert_eq!(
        structured(&csv_floats).pointer("/model/hyperparameters/num_classes"),
        Some(&json!(3)),
        "{csv_floats}"
    );

    let cases = [
        (
            json!({"_target_": MLP, "input_dim": 8}),
            json!({"dataset": "iris"}),
            "model.input_dim is 8 but data.dataset iris has samples of shape [4]: give input_dim 4",
        ),
        (
            json!({"_target_": MLP, "num_classes": 4}),
            json!({"dataset": "iris"}),
            "model.num_classes is 4 but data.dataset iris has 3 class labels",
        ),
        (
            json!({"_target_": MLP}),
            json!({"train": {"inputs": [[1.0], [2.0]], "targets": [0.0, 1.5]}}),
            "data.train.targets[1]: 1.5 is not a class index",
        ),
        (
            json!({"_target_": MLP, "num_classes": 2}),
            json!({"train": {"inputs": [[1.0], [2.0]], "targets": [0, 2]}}),
            "model.num_classes is 2 but data.train.targets[1] is class 2: give num_classes 3",
        ),
        (
            json!({"_target_": MLP}),
            json!({"train": {"inputs": [[1.0], [2.0]], "targets": [0, -1]}}),
            "data.train.targets[1]: class -1 is negative",
        ),
        (
            json!({"_target_": MLP}),
            json!({"csv": {"path": "halves.csv", "target": "label"}}),
            "data.csv (halves.csv) column label row 1: 0.5 is not a class index",
        ),
        (
            json!({"_target_": MLP}),
            json!({"dataset": "digits"}),
            "takes samples of input_dim values, but data.dataset digits has samples of shape \
             [1, 8, 8]: give data.input_shape [64]",
        ),
        (
            json!({"_target_": CONVNET}),
            json!({"dataset": "digits", "input_shape": [64]}),
            "takes images [in_channels, height, width], but data.dataset digits has samples of \
             shape [64]: give data.input_shape [1, 8, 8]",
        ),
    ];
    for (id, (model, data, expected)) in (2..).zip(cases) {
        let result = train(&mut server, id, model, data);
        let error = tool_error(&result);
        assert!(
            error.contains(expected),
            "expected {expected:?} in {error:?}"
        );
    }
    // After every refusal the server goes on.
    let fine = train(
        &mut server,
        99,
        json!({"_target_": MLP}),
        json!({"dataset": "iris"}),
    );
    assert_eq!(structured(&fine).get("status"), Some(&json!("completed")));
}
