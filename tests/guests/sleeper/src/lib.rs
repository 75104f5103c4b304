//! A model that sleeps in its training step, for the sandbox tests: it imports WASI clocks,
//! which the host does not grant, so it must be refused when it is registered.

use lightning_mcp_guest_sdk::prelude::*;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Hyperparameters {}

struct Sleeper {
    layer: Linear,
}

impl LightningModule for Sleeper {
    type Hyperparameters = Hyperparameters;
    const TARGET: &'static str = "lightning_mcp.testing.Sleeper";
    const SUMMARY: &'static str = "Test model that sleeps for an hour in every step.";

    fn new(_: &Hyperparameters) -> Result<Self> {
        Ok(Self {
            layer: LinearConfig::new(4, 3).init("layer")?,
        })
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        std::thread::sleep(std::time::Duration::from_secs(3600));
        self.layer.forward(x)
    }
}

export_model!(Sleeper);
