//! A model whose `describe` export traps (its default hyperparameters execute `unreachable`),
//! for the sandbox tests: it must be refused when it is registered, with the trap named.

use lightning_mcp_guest_sdk::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Hyperparameters {}

impl Default for Hyperparameters {
    fn default() -> Self {
        core::arch::wasm32::unreachable()
    }
}

struct BrokenDescribe {
    layer: Linear,
}

impl LightningModule for BrokenDescribe {
    type Hyperparameters = Hyperparameters;
    const TARGET: &'static str = "lightning_mcp.testing.BrokenDescribe";
    const SUMMARY: &'static str = "Test model whose describe export traps.";

    fn new(_: &Hyperparameters) -> Result<Self> {
        Ok(Self {
            layer: LinearConfig::new(4, 3).init("layer")?,
        })
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        self.layer.forward(x)
    }
}

export_model!(BrokenDescribe);
