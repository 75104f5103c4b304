//! The built-in MLP guest as 784-256-10 with Adam, and one batch for it; shared by the bench
//! binaries.

use lightning_mcp::cancel::CancelToken;
use lightning_mcp::sandbox::{ComponentCache, Limits, ModelInstance, ModelRegistry, Sandbox};
use lightning_mcp::tensor::{self, Device, Optimizer, Rng, Tensor};
use lightning_mcp::trainer;
use std::time::Duration;

pub const BATCH: usize = 64;
pub const INPUT: usize = 784;
pub const HIDDEN: usize = 256;
pub const CLASSES: usize = 10;

/// A batch's labels: `i % CLASSES`.
pub fn labels(batch: usize) -> Vec<i64> {
    (0..batch).map(|i| (i % CLASSES) as i64).collect()
}

/// An MLP instance with its optimizer and a batch (the sandbox kept alive with it).
pub struct MlpGuest {
    _sandbox: Sandbox,
    pub model: ModelInstance,
    pub optimizer: Optimizer,
    x: Tensor,
    y: Tensor,
}

impl MlpGuest {
    /// A fresh instance of the built-in MLP, 784-256-10, Adam with lr 0.001, on the CPU with
    /// a batch of [`BATCH`].
    pub fn new() -> Self {
        Self::on(tensor::cpu_device(), BATCH)
    }

    /// The same on `device`, with a batch of `batch`.
    pub fn on(device: Device, batch: usize) -> Self {
        let sandbox = Sandbox::new().expect("sandbox");
        let registry =
            ModelRegistry::built_in(&sandbox, &ComponentCache::disabled(), &Limits::default())
                .expect("models");
        let mlp = registry.get("lightning_mcp.models.mlp.MLP").expect("MLP");
        let mut model = mlp
            .instantiate(
                device.clone(),
                &Limits::default(),
                0,
                Duration::from_secs(3600),
                CancelToken::new(),
            )
            .expect("instance");
        model
            .init(&format!(
                r#"{{"input_dim":{INPUT},"hidden_dims":[{HIDDEN}],"num_classes":{CLASSES},"lr":0.001}}"#
            ))
            .expect("init");
        let config = model.configure_optimizers().expect("optimizer");
        let optimizer = Optimizer::new(&config.optimizer, model.parameters().len());
        let x = tensor::from_f32(
            &device,
            Rng::seeded(1).normal(batch * INPUT, 1.0),
            &[batch, INPUT],
        )
        .expect("x");
        let y = tensor::from_i64(&device, labels(batch), &[batch]).expect("y");
        Self {
            _sandbox: sandbox,
            model,
            optimizer,
            x,
            y,
        }
    }

    /// One training step on the batch, through the host trainer.
    pub fn step(&mut self) {
        trainer::training_step(
            &mut self.model,
            &mut self.optimizer,
            self.x.clone(),
            self.y.clone(),
            0,
        )
        .expect("step");
        self.model.take_logged();
    }
}
