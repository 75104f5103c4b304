//! End-to-end: the fit loop's Lightning features over stdio — resuming from a checkpoint,
//! learning-rate schedulers, validation within epochs (`val_check_interval`) and the
//! learning-curve image.

// Test code: `expect` says what the test expected (clippy.toml allows it in #[test] fns; the helpers here need this too).
#![allow(clippy::expect_used)]

#[path = "support.rs"]
mod support;

use serde_json::{Value, json};
use support::{StdioServer, listed_checkpoints, number, structured, tool_error, with_test_model};

const MLP: &str = "lightning_mcp.models.mlp.MLP";

/// The MLP's own data: 512 training samples in batches of 32.
const STEPS_PER_EPOCH: u64 = 16;

/// Trains and returns the structured result, failing the test on a tool error.
fn train(server: &mut StdioServer, id: u64, arguments: Value) -> Value {
    let result = server.call_tool(id, "lightning.train", arguments);
    structured(&result).clone()
}

/// Every history record's value of `metric` (records without it are skipped).
fn history_of(result: &Value, metric: &str) -> Vec<f64> {
    records(result)
        .iter()
        .filter_map(|h| h.get("metrics")?.get(metric)?.as_f64())
        .collect()
}

fn records(result: &Value) -> Vec<Value> {
    result
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The (epoch, global_step) of every history record.
fn points(result: &Value) -> Vec<(u64, u64)> {
    records(result)
        .iter()
        .map(|h| {
            (
                h.get("epoch").and_then(Value::as_u64).unwrap_or(u64::MAX),
                h.get("global_step")
                    .and_then(Value::as_u64)
                    .unwrap_or(u64::MAX),
            )
        })
        .collect()
}

/// The checkpoint's parameters and optimizer state, by name.
fn checkpoint_tensors(server: &StdioServer, path: &str) -> Vec<(String, Vec<f32>)> {
    let bytes =
        std::fs::read(server.checkpoint_dir().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let checkpoint =
        lightning_mcp::checkpoint::decode(&bytes, true).unwrap_or_else(|e| panic!("{path}: {e}"));
    let optimizer = checkpoint
        .optimizer_tensors
        .into_iter()
        .map(|t| (format!("optimizer/{}", t.name), t.values));
    let mut named: Vec<_> = checkpoint
        .params
        .into_iter()
        .map(|p| (p.name, p.values))
        .chain(optimizer)
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

fn close(actual: &[f64], expected: &[f64]) -> bool {
    actual.len() == expected.len()
        && actual
            .iter()
            .zip(expected)
            .all(|(a, e)| (a - e).abs() <= 1e-7 * e.abs().max(1e-3))
}

#[test]
fn resuming_from_a_checkpoint_continues_where_it_stopped() {
    let mut server = StdioServer::start(&[]);
    // Adam's moments and a per-step schedule: both must carry over for the numbers to match.
    let model = json!({"_target_": MLP, "lr_scheduler":
        {"name": "step", "step_size": 10, "gamma": 0.5, "interval": "step"}});
    let straight = train(
        &mut server,
        1,
        json!({"model": model, "trainer": {"max_epochs": 4, "seed": 3}}),
    );
    let first = train(
        &mut server,
        2,
        json!({"model": model, "trainer": {"max_epochs": 2, "seed": 3}}),
    );
    let halfway = first
        .get("checkpoint_path")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        halfway,
        "lightning_logs/version_1/checkpoints/epoch=1-step=32.safetensors"
    );
    let resumed = train(
        &mut server,
        3,
        json!({"model": model, "trainer": {"max_epochs": 4, "seed": 3}, "ckpt_path": halfway}),
    );
    assert_eq!(
        resumed.get("resumed_from"),
        Some(&json!({"ckpt_path": halfway, "epoch": 2, "global_step": 32,
            "optimizer_state": true}))
    );
    assert_eq!(points(&resumed), [(2, 48), (3, 64)]);
    assert_eq!(resumed.pointer("/trainer/current_epoch"), Some(&json!(4)));
    assert_eq!(resumed.pointer("/trainer/global_step"), Some(&json!(64)));
    // Two epochs, then two more from the checkpoint: the same numbers as four in a row.
    assert_eq!(resumed.get("metrics"), straight.get("metrics"));
    assert_eq!(
        history_of(&resumed, "lr-Adam"),
        history_of(&straight, "lr-Adam")
            .get(2..)
            .unwrap_or_default()
    );
    let end = |r: &Value| {
        r.get("checkpoint_path")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        checkpoint_tensors(&server, &end(&resumed)),
        checkpoint_tensors(&server, &end(&straight))
    );

    // Nothing left to train is an error that says what to do.
    let message = tool_error(&server.call_tool(
        4,
        "lightning.train",
        json!({
        "model": model, "trainer": {"max_epochs": 2}, "ckpt_path": halfway}),
    ));
    assert!(
        message.contains("2 epoch(s) are already trained")
            && message.contains("raise trainer.max_epochs"),
        "{message}"
    );
    let message = tool_error(&server.call_tool(
        4,
        "lightning.train",
        json!({
        "model": model, "trainer": {"max_epochs": 4, "max_steps": 32}, "ckpt_path": halfway}),
    ));
    assert!(
        message.contains("trainer.max_steps 32 is already reached"),
        "{message}"
    );
    // A weights-only checkpoint of an untrained model starts at epoch 0 with a fresh
    // optimizer: the same run as without it (the same seed gives the same initial weights).
    let saved = server.call_tool(
        5,
        "lightning.checkpoint",
        json!({"action": "save", "path": "untrained", "model": model, "trainer": {"seed": 3}}),
    );
    assert_eq!(
        structured(&saved).get("path"),
        Some(&json!("untrained.safetensors"))
    );
    let from_weights = train(
        &mut server,
        6,
        json!({"model": model, "trainer": {"max_epochs": 1, "seed": 3},
            "ckpt_path": "untrained.safetensors"}),
    );
    assert_eq!(
        from_weights.pointer("/resumed_from/optimizer_state"),
        Some(&json!(false))
    );
    let fresh = train(
        &mut server,
        7,
        json!({"model": model, "trainer": {"max_epochs": 1, "seed": 3}}),
    );
    assert_eq!(from_weights.get("metrics"), fresh.get("metrics"));
    // Another optimizer than the checkpoint's is refused by name.
    let message = tool_error(&server.call_tool(
        8,
        "lightning.train",
        json!({
        "model": {"_target_": MLP, "optimizer": "sgd"}, "trainer": {"max_epochs": 4},
        "ckpt_path": halfway}),
    ));
    assert!(
        message.contains("the state of Adam, but the model now configures SGD"),
        "{message}"
    );
    // The checkpoint tool says what a checkpoint holds.
    let loaded = server.call_tool(
        9,
        "lightning.checkpoint",
        json!({"action": "load", "path": halfway, "model": model}),
    );
    assert_eq!(structured(&loaded).get("optimizer"), Some(&json!("Adam")));
}

#[test]
fn learning_rate_schedulers_follow_pytorch() {
    let mut server = StdioServer::start(&[]);
    let lr = f64::from(0.01f32);
    let scheduled = |server: &mut StdioServer, id: u64, scheduler: Value, epochs: u32| {
        let result = train(
            server,
            id,
            json!({"model": {"_target_": MLP, "lr": 0.01, "lr_scheduler": scheduler},
                "trainer": {"max_epochs": epochs, "seed": 1}}),
        );
        history_of(&result, "lr-Adam")
    };
    // StepLR: halved every epoch.
    let step = scheduled(
        &mut server,
        1,
        json!({"name": "step", "step_size": 1, "gamma": 0.5}),
        3,
    );
    assert!(close(&step, &[lr, lr / 2.0, lr / 4.0]), "{step:?}");
    // Two warm-up epochs from half the rate, then CosineAnnealingLR(t_max 4, eta_min 0.001).
    let cosine = scheduled(
        &mut server,
        2,
        json!({"name": "cosine", "t_max": 4, "eta_min": 0.001, "warmup_iters": 2,
            "warmup_start_factor": 0.5}),
        5,
    );
    let eta = f64::from(0.001f32);
    let annealed = |t: f64| eta + (lr - eta) * (1.0 + (std::f64::consts::PI * t / 4.0).cos()) / 2.0;
    let expected = [
        lr * 0.5,
        lr * 0.75,
        annealed(0.0),
        annealed(1.0),
        annealed(2.0),
    ];
    assert!(close(&cosine, &expected), "{cosine:?} vs {expected:?}");
    // LinearLR stepping every optimizer step: the rate of each epoch's last step.
    let linear = scheduled(
        &mut server,
        3,
        json!({"name": "linear", "start_factor": 0.25, "end_factor": 1.0, "total_iters": 32,
            "interval": "step"}),
        3,
    );
    let ramp = |t: f64| lr * (0.25 + 0.75 * t.min(32.0) / 32.0);
    let expected = [ramp(15.0), ramp(31.0), ramp(47.0)];
    assert!(close(&linear, &expected), "{linear:?} vs {expected:?}");
    // Without a scheduler no rate is logged.
    let plain = train(
        &mut server,
        4,
        json!({"model": {"_target_": MLP}, "trainer": {"max_epochs": 1}}),
    );
    assert!(history_of(&plain, "lr-Adam").is_empty());

    // The model checks its hyperparameters; the host checks what the model asks for.
    for (scheduler, needle) in [
        (
            json!({"name": "cosine", "t_max": 3, "gamma": 0.5}),
            "the cosine schedule takes t_max and eta_min, not gamma",
        ),
        (json!({"name": "plateau"}), "unknown variant `plateau`"),
        (
            json!({"name": "step", "step_size": 0}),
            "lr_scheduler step_size must be >= 1, got 0",
        ),
        (
            json!({"name": "linear", "start_factor": 0.0}),
            "lr_scheduler start_factor must be in (0, 1], got 0",
        ),
        (
            json!({"name": "cosine", "t_max": 3, "eta_min": 0.5}),
            "lr_scheduler eta_min (0.5) must be at most the optimizer's lr",
        ),
    ] {
        let message = tool_error(&server.call_tool(
            5,
            "lightning.train",
            json!({
            "model": {"_target_": MLP, "lr_scheduler": scheduler}, "trainer": {"max_epochs": 1}}),
        ));
        assert!(message.contains(needle), "{message}");
    }
}

#[test]
fn val_check_interval_validates_within_epochs() {
    let mut server = StdioServer::start(&[]);
    let keep_all = json!([{"type": "model_checkpoint", "save_top_k": -1}]);
    let twice = train(
        &mut server,
        1,
        json!({"model": {"_target_": MLP}, "trainer": {"max_epochs": 2, "seed": 2,
            "val_check_interval": 0.5, "callbacks": keep_all}}),
    );
    let half = STEPS_PER_EPOCH / 2;
    assert_eq!(
        points(&twice),
        [(0, half), (0, 2 * half), (1, 3 * half), (1, 4 * half)]
    );
    // Within an epoch the record holds the validation's metrics; at its end, the epoch's too.
    let history = records(&twice);
    let names = |i: usize| -> Vec<String> {
        history
            .get(i)
            .and_then(|h| h.get("metrics")?.as_object().cloned())
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(names(0), ["val_acc", "val_loss"]);
    assert_eq!(names(1), ["train_acc", "train_loss", "val_acc", "val_loss"]);
    // Every validation is a checkpoint moment.
    let files = listed_checkpoints(&mut server, 2, "lightning_logs/version_0/checkpoints");
    assert_eq!(
        files,
        [
            "epoch=0-step=16.safetensors",
            "epoch=0-step=8.safetensors",
            "epoch=1-step=24.safetensors",
            "epoch=1-step=32.safetensors"
        ]
    );
    // A mid-epoch checkpoint validates to the metrics recorded when it was written.
    let validated = server.call_tool(
        3,
        "lightning.validate",
        json!({"model": {"_target_": MLP}, "trainer": {"seed": 2},
            "ckpt_path": "lightning_logs/version_0/checkpoints/epoch=0-step=8.safetensors"}),
    );
    assert_eq!(
        number(structured(&validated), "/metrics/val_loss"),
        history_of(&twice, "val_loss")
            .first()
            .copied()
            .unwrap_or(f64::NAN)
    );

    // An integer counts training batches: validation after 5, 10 and 15 of the 16.
    let every_five = train(
        &mut server,
        4,
        json!({"model": {"_target_": MLP}, "trainer": {"max_epochs": 1, "val_check_interval": 5}}),
    );
    assert_eq!(points(&every_five), [(0, 5), (0, 10), (0, 15), (0, 16)]);
    assert_eq!(history_of(&every_five, "val_loss").len(), 3);
    assert_eq!(history_of(&every_five, "train_loss").len(), 1);

    for (interval, needle) in [
        (
            json!(17),
            "val_check_interval (17) must be at most the number of training batches per epoch (16)",
        ),
        (
            json!(0.0),
            "trainer.val_check_interval must be a fraction in (0.0, 1.0]",
        ),
        (
            json!(1.5),
            "trainer.val_check_interval must be a fraction in (0.0, 1.0]",
        ),
    ] {
        let message = tool_error(&server.call_tool(5, "lightning.train", json!({
            "model": {"_target_": MLP}, "trainer": {"max_epochs": 1, "val_check_interval": interval}})));
        assert!(message.contains(needle), "{message}");
    }
}

#[test]
fn a_training_can_return_its_learning_curve_as_a_png() {
    use base64::Engine as _;
    let mut server = StdioServer::start(&[]);
    let result = server.call_tool(
        1,
        "lightning.train",
        json!({"model": {"_target_": MLP, "lr_scheduler": {"name": "cosine", "t_max": 3}},
            "trainer": {"max_epochs": 3, "val_check_interval": 0.5}, "plot": true}),
    );
    let content = result
        .get("content")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    assert_eq!(content.len(), 2, "{result}");
    let image = content.get(1).cloned().unwrap_or_default();
    assert_eq!(image.get("type"), Some(&json!("image")));
    assert_eq!(image.get("mimeType"), Some(&json!("image/png")));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(
            image
                .get("data")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )
        .expect("base64 image data");
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .expect("a PNG header");
    let mut pixels = vec![0; reader.output_buffer_size().unwrap_or(0)];
    let frame = reader
        .next_frame(&mut pixels)
        .expect("a decodable PNG frame");
    // Three panels: losses, accuracies, the learning rate.
    assert_eq!(
        (frame.width, frame.height),
        (
            lightning_mcp::plot::WIDTH,
            3 * lightning_mcp::plot::PANEL_HEIGHT
        )
    );
    // Not a blank canvas: the curves are drawn in colour.
    let coloured = pixels
        .chunks_exact(3)
        .filter(|p| matches!(p, [r, g, b] if r != g || g != b))
        .count();
    assert!(coloured > 1000, "{coloured} coloured pixels");
    // Without `plot` the result is the JSON text alone.
    let plain = server.call_tool(
        2,
        "lightning.train",
        json!({"model": {"_target_": MLP}, "trainer": {"max_epochs": 1}}),
    );
    assert_eq!(
        plain.get("content").and_then(Value::as_array).map(Vec::len),
        Some(1)
    );
}

#[test]
fn early_stopping_checks_every_validation_and_resumes_its_count() {
    // The test model: 2 training batches per epoch; in `plateau` mode its val_loss is 5, 4,
    // 3, 3, 3, … over validation passes (counted by its instance).
    let (mut server, _dir) = with_test_model();
    let model = json!({"_target_": "lightning_mcp.testing.Misbehaving", "mode": "plateau"});
    let stopping = json!([{"type": "early_stopping", "monitor": "val_loss", "patience": 2}]);
    // Validating after every batch: 5 (best), 4, 3, then 3 and 3 without improvement — the
    // fifth validation, after the first batch of epoch 2, stops the fit there.
    let stopped = train(
        &mut server,
        1,
        json!({"model": model, "trainer": {"max_epochs": 10, "num_sanity_val_steps": 0,
            "val_check_interval": 1, "callbacks": stopping}}),
    );
    assert_eq!(
        points(&stopped),
        [(0, 1), (0, 2), (1, 3), (1, 4), (2, 5), (2, 5)]
    );
    assert_eq!(
        stopped.pointer("/trainer/stopped_early"),
        Some(&json!(true))
    );
    assert_eq!(stopped.pointer("/trainer/current_epoch"), Some(&json!(3)));

    // Two epochs (wait count 1 after 5, 4, 3, 3), then resumed: a fresh instance logs 5
    // again, the watch still remembers 3 as the best and so stops at that first validation.
    let first = train(
        &mut server,
        2,
        json!({"model": model, "trainer": {"max_epochs": 2, "num_sanity_val_steps": 0,
            "val_check_interval": 1, "callbacks": stopping}}),
    );
    assert_eq!(first.pointer("/trainer/stopped_early"), Some(&json!(false)));
    let resumed = train(
        &mut server,
        3,
        json!({"model": model, "trainer": {"max_epochs": 10, "num_sanity_val_steps": 0,
            "val_check_interval": 1, "callbacks": stopping},
            "ckpt_path": first.get("checkpoint_path")}),
    );
    assert_eq!(points(&resumed), [(2, 5), (2, 5)]);
    assert_eq!(
        resumed.pointer("/trainer/stopped_early"),
        Some(&json!(true))
    );
}
