//! A model that reads a host file in its forward pass, for the sandbox tests: it imports WASI
//! filesystem interfaces, which link, but the sandbox preopens no directory, so the read fails
//! inside the guest and no file is ever opened.

use lightning_mcp_guest_sdk::prelude::*;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Hyperparameters {}

struct FileReader {
    layer: Linear,
}

impl LightningModule for FileReader {
    type Hyperparameters = Hyperparameters;
    const TARGET: &'static str = "lightning_mcp.testing.FileReader";
    const SUMMARY: &'static str = "Test model that reads /etc/passwd in every step.";

    fn new(_: &Hyperparameters) -> Result<Self> {
        Ok(Self {
            layer: LinearConfig::new(4, 3).init("layer")?,
        })
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        std::fs::read_to_string("/etc/passwd")
            .map_err(|e| Error::new(format!("cannot read /etc/passwd: {e}")))?;
        self.layer.forward(x)
    }
}

export_model!(FileReader);
