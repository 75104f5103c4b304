//! A model that sleeps an hour in its forward pass, for the sandbox tests: its clock imports
//! link to the sandbox's virtual clocks, whose waits are over at once, so it neither blocks
//! the host nor waits out its deadline.

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
