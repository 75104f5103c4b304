//! Write lightning-mcp models in Rust.
//!
//! A model is a WebAssembly component that runs sandboxed inside the lightning-mcp server.
//! It sees only [`Tensor`]s (handles to tensors that live on the host, where Burn runs every op
//! with autodiff), [`param`]eters the host owns and trains, and [`log`] for metrics.
//!
//! ```no_run
//! use lightning_mcp_guest_sdk::prelude::*;
//! use lightning_mcp_guest_sdk::log;
//!
//! /// What a request's `model` object may set; defaults and bounds beside each field.
//! #[derive(Clone, Debug, Serialize, Deserialize, Hyperparameters)]
//! #[serde(default, deny_unknown_fields)]
//! struct Hparams {
//!     #[hparam(default = 4, range = 1..=4096)]
//!     input_dim: u32,
//!     #[hparam(default = 3, range = 2..=4096)]
//!     num_classes: u32,
//!     #[hparam(default = 0.01, check = check::learning_rate)]
//!     lr: f32,
//!     optimizer: OptimizerName,
//! }
//!
//! struct Tiny {
//!     layer: Linear,
//!     hparams: Hparams,
//! }
//!
//! impl LightningModule for Tiny {
//!     type Hyperparameters = Hparams;
//!     const TARGET: &'static str = "my.models.Tiny";
//!     const SUMMARY: &'static str = "One linear layer.";
//!
//!     fn new(h: &Hparams) -> Result<Self> {
//!         h.validate()?;
//!         // Parameters `linear_0.weight` and `linear_0.bias`.
//!         let layer = LinearConfig::new(h.input_dim, h.num_classes).build()?;
//!         Ok(Self { layer, hparams: h.clone() })
//!     }
//!
//!     fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
//!         self.layer.forward(x) // [batch, input_dim] -> [batch, num_classes]
//!     }
//!
//!     fn training_step(&mut self, x: Tensor, y: Tensor, _batch: u32) -> Result<Tensor> {
//!         log::classification("train", &self.forward(&x)?, &y)
//!     }
//!
//!     fn configure_optimizers(&self) -> Optimization {
//!         self.hparams.optimizer.with_lr(self.hparams.lr).into()
//!     }
//! }
//!
//! export_model!(Tiny);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release`; the `.wasm` is the component.

#![deny(missing_docs)]

extern crate self as lightning_mcp_guest_sdk;

pub mod check;
mod error;
mod export;
mod module;
mod naming;
pub mod nn;
mod optim;
mod tensor;

pub use error::{Error, Result};
pub use export::Exporter;
pub use lightning_mcp_guest_sdk_derive::Hyperparameters;
pub use module::{Dataset, LightningModule, Split};
pub use optim::{Interval, LrScheduler, Optimization, Optimizer, OptimizerName, Schedule};
pub use tensor::{Conv2dOptions, DType, Pool2dOptions, Tensor};

/// Declares trainable parameters and buffers; only valid inside [`LightningModule::new`].
pub mod param {
    pub use crate::tensor::{Init, buffer, parameter};
}

/// Metrics, like `LightningModule.log` in PyTorch Lightning.
pub mod log {
    pub use crate::tensor::{log, log_tensor};

    /// The cross-entropy of `logits` `[n, classes]` against i64 `labels` `[n]`, logged as
    /// `{stage}_loss` with the accuracy as `{stage}_acc` (`stage`: `train`, `val`, `test`);
    /// returns the loss.
    pub fn classification(
        stage: &str,
        logits: &crate::Tensor,
        labels: &crate::Tensor,
    ) -> crate::Result<crate::Tensor> {
        let loss = logits.cross_entropy(labels)?;
        log_tensor(&format!("{stage}_loss"), &loss)?;
        log_tensor(&format!("{stage}_acc"), &logits.accuracy(labels)?)?;
        Ok(loss)
    }
}

/// Everything a model author usually needs.
pub mod prelude {
    pub use crate::check::{self, Validate};
    pub use crate::nn::{
        Activation, BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Dropout, Embedding,
        EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig, scope,
    };
    pub use crate::param::Init;
    pub use crate::{
        Conv2dOptions, Dataset, Error, Hyperparameters, LightningModule, LrScheduler, Optimization,
        Optimizer, OptimizerName, Pool2dOptions, Result, Schedule, Split, Tensor, export_model,
    };
    pub use serde::{Deserialize, Serialize};
}

/// The generated bindings of the `lightning:model` WIT world. Not part of the public API.
#[doc(hidden)]
pub mod wit {
    #![allow(missing_docs)]
    wit_bindgen::generate!({
        world: "model",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_model_world",
        default_bindings_module: "::lightning_mcp_guest_sdk::wit",
        runtime_path: "::lightning_mcp_guest_sdk::__private::wit_bindgen::rt",
    });
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    /// The raw handle inside a [`Tensor`](crate::Tensor), for tests that forge handles.
    pub fn into_raw(
        t: crate::Tensor,
    ) -> crate::Result<crate::wit::lightning::model::tensors::Tensor> {
        t.into_raw()
    }
}

/// Exports a [`LightningModule`] as the component's `lightning-module` interface.
///
/// Use it once, at the crate root of a `cdylib` crate:
/// `export_model!(MyModel);`
#[macro_export]
macro_rules! export_model {
    ($model:ty) => {
        #[doc(hidden)]
        type LightningMcpExportedModel = $crate::Exporter<$model>;
        $crate::wit::__export_model_world!(
            LightningMcpExportedModel with_types_in $crate::wit
        );
    };
}
