//! A model guest with its optimizer and one batch, stepped by the host trainer; and the
//! MLP 784-256-10 most benches use. Shared by the bench binaries.

use lightning_mcp::cancel::CancelToken;
use lightning_mcp::sandbox::{
    ComponentCache, Limits, ModelInstance, ModelRegistry, ModelSource, Sandbox,
};
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

/// A model instance with its optimizer and a batch (the sandbox kept alive with it).
pub struct GuestModel {
    _sandbox: Sandbox,
    pub model: ModelInstance,
    pub optimizer: Optimizer,
    x: Tensor,
    y: Tensor,
}

impl GuestModel {
    /// The built-in MLP, 784-256-10, Adam with lr 0.001, on `device` with a batch of
    /// `batch` normal inputs.
    pub fn mlp(device: Device, batch: usize) -> Self {
        let x = tensor::from_f32(
            &device,
            Rng::seeded(1).normal(batch * INPUT, 1.0),
            &[batch, INPUT],
        )
        .expect("x");
        let y = tensor::from_i64(&device, labels(batch), &[batch]).expect("y");
        let hparams = format!(
            r#"{{"input_dim":{INPUT},"hidden_dims":[{HIDDEN}],"num_classes":{CLASSES},"lr":0.001}}"#
        );
        Self::new(
            device,
            built_in("lightning_mcp.models.mlp.MLP"),
            &hparams,
            x,
            y,
        )
    }

    /// The model component `wasm` with `hparams` (JSON) on `device`, with the batch `x`, `y`
    /// (on that device).
    pub fn new(device: Device, wasm: &[u8], hparams: &str, x: Tensor, y: Tensor) -> Self {
        let sandbox = Sandbox::new().expect("sandbox");
        let mut model = ModelRegistry::compile(
            &sandbox,
            &ComponentCache::disabled(),
            &Limits::default(),
            wasm,
            ModelSource::BuiltIn,
        )
        .expect("a model component")
        .instantiate(
            device,
            &Limits::default(),
            0,
            Duration::from_secs(3600),
            CancelToken::new(),
        )
        .expect("instance");
        model.init(hparams).expect("init");
        let config = model.configure_optimizers().expect("optimizer");
        let optimizer = Optimizer::new(&config.optimizer, model.parameters().len());
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

    /// The model's forward pass on the batch, its output read back.
    pub fn forward(&mut self) {
        let output = self.model.forward(self.x.clone()).expect("forward");
        std::hint::black_box(tensor::to_f32(&output).expect("read back"));
    }
}

/// The component of the built-in model `target`.
pub fn built_in(target: &str) -> &'static [u8] {
    lightning_mcp_guests::BUILT_IN
        .iter()
        .find(|b| b.target == target)
        .expect("a built-in target")
        .wasm
}
