//! What a training leaves behind, and what resuming costs, for an MLP 784-256-10 trained with
//! Adam (203,530 parameters):
//! - writing a checkpoint: the weights alone, and the weights with Adam's state;
//! - resuming: reading such a checkpoint back into a model and its optimizer;
//! - replaying a learning-rate schedule to where a checkpoint left it (1 M intervals);
//! - drawing the learning curve of a 100-epoch history with validations within epochs.
//!
//! `cargo bench -p lightning-mcp --bench checkpoints`

#![allow(clippy::expect_used)]

// Shared with the other benches; this one uses part of it.
#[allow(dead_code)]
#[path = "guest_model.rs"]
mod guest_model;
#[path = "timing.rs"]
mod timing;

use guest_model::GuestModel;
use lightning_mcp::checkpoint::{self, CheckpointMeta};
use lightning_mcp::tensor::{Interval, LrSchedule, Optimizer, Schedule, SchedulerConfig};
use lightning_mcp::trainer::{EpochRecord, Metrics, TrainingState};
use std::hint::black_box;

fn meta() -> CheckpointMeta {
    CheckpointMeta::new(
        "lightning_mcp.models.mlp.MLP",
        "MLP",
        serde_json::json!({}),
        0,
        3,
        &Metrics::new(),
    )
}

fn history(epochs: u32) -> Vec<EpochRecord> {
    let mut records = Vec::new();
    for epoch in 0..epochs {
        let e = f64::from(epoch + 1);
        let step = u64::from(epoch) * 16;
        records.push(EpochRecord {
            epoch,
            global_step: step + 8,
            metrics: Metrics::from([("val_loss".into(), 1.0 / e + 0.05)]),
        });
        records.push(EpochRecord {
            epoch,
            global_step: step + 16,
            metrics: Metrics::from([
                ("train_loss".into(), 1.0 / e),
                ("train_acc".into(), 1.0 - 0.5 / e),
                ("val_loss".into(), 1.0 / e + 0.04),
                ("val_acc".into(), 1.0 - 0.6 / e),
                ("lr-Adam".into(), 0.01 / e),
            ]),
        });
    }
    records
}

fn main() {
    // After three Adam steps, so that Adam has state.
    let mut guest = GuestModel::mlp(lightning_mcp::tensor::cpu_device(), guest_model::BATCH);
    for _ in 0..3 {
        guest.step();
    }
    let GuestModel {
        model, optimizer, ..
    } = &mut guest;
    let optimizer = &*optimizer;
    let state = TrainingState {
        optimizer,
        early_stopping: None,
    };
    let weights_only =
        checkpoint::encode(&checkpoint::capture(model, meta(), None).expect("capture"))
            .expect("encode");
    let with_state =
        checkpoint::encode(&checkpoint::capture(model, meta(), Some(&state)).expect("capture"))
            .expect("encode");
    println!(
        "checkpoint size: weights only {} bytes, with Adam's state {} bytes",
        weights_only.len(),
        with_state.len()
    );

    let names: Vec<String> = model.parameters().iter().map(|p| p.name.clone()).collect();
    let shapes: Vec<Vec<usize>> = model.parameters().iter().map(|p| p.value.shape()).collect();
    let mut write_weights = || {
        let c = checkpoint::capture(model, meta(), None).expect("capture");
        black_box(checkpoint::encode(&c).expect("encode"));
    };
    let summaries = timing::measure_interleaved(3, 5, 10, &mut [&mut write_weights]);
    print_row("write: weights only", &summaries);
    let mut write_state = || {
        let c = checkpoint::capture(model, meta(), Some(&state)).expect("capture");
        black_box(checkpoint::encode(&c).expect("encode"));
    };
    let summaries = timing::measure_interleaved(3, 5, 10, &mut [&mut write_state]);
    print_row("write: weights + Adam state", &summaries);

    let config = model.configure_optimizers().expect("optimizer");
    let device = model.device().clone();
    let mut resume = || {
        let c = checkpoint::decode(&with_state, true).expect("decode");
        let start = checkpoint::fit_start(c.meta, c.optimizer_tensors);
        checkpoint::restore(model, c.params).expect("restore");
        let mut fresh = Optimizer::new(&config.optimizer, names.len());
        let (_, saved) = start.optimizer.expect("optimizer state");
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        fresh
            .import_state(&refs, &shapes, saved, &device)
            .expect("import");
        black_box(fresh);
    };
    let summaries = timing::measure_interleaved(3, 5, 10, &mut [&mut resume]);
    print_row("resume: read weights + Adam state", &summaries);

    let cosine = SchedulerConfig {
        schedule: Schedule::Cosine {
            t_max: 1000,
            eta_min: 0.0,
        },
        interval: Interval::Step,
        warmup_iters: 100,
        warmup_start_factor: 0.1,
    };
    let mut replay = || {
        let mut schedule = LrSchedule::new(0.01, Some(&cosine)).expect("schedule");
        for _ in 0..1_000_000 {
            schedule.advance(Interval::Step).expect("advance");
        }
        black_box(schedule.lr());
    };
    let summaries = timing::measure_interleaved(1, 3, 2, &mut [&mut replay]);
    print_row("replay 1 M scheduler steps", &summaries);

    let records = history(100);
    let mut plot = || {
        black_box(lightning_mcp::plot::learning_curve(&records, 0).expect("plot"));
    };
    let summaries = timing::measure_interleaved(2, 5, 4, &mut [&mut plot]);
    print_row("learning curve, 100 epochs × 2 records", &summaries);
}

fn print_row(name: &str, summaries: &[timing::Summary]) {
    for s in summaries {
        println!("{name:<40} {s}");
    }
}
