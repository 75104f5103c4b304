//! A model whose `describe` export never returns (its default hyperparameters loop), for the
//! sandbox tests: it must be refused within the describe budget when it is registered.

use lightning_mcp_guest_sdk::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Hyperparameters {}

impl Default for Hyperparameters {
    fn default() -> Self {
        let mut spins = 0u64;
        loop {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    }
}

struct EndlessDescribe {
    layer: Linear,
}

impl LightningModule for EndlessDescribe {
    type Hyperparameters = Hyperparameters;
    const TARGET: &'static str = "lightning_mcp.testing.EndlessDescribe";
    const SUMMARY: &'static str = "Test model whose describe export never returns.";

    fn new(_: &Hyperparameters) -> Result<Self> {
        Ok(Self {
            layer: LinearConfig::new(4, 3).init("layer")?,
        })
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        self.layer.forward(x)
    }
}

export_model!(EndlessDescribe);
