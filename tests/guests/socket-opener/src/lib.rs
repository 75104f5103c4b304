//! A model that opens a network connection in its forward pass, for the sandbox tests: its
//! socket imports link, but the sandbox refuses every use of them, so the connection fails
//! inside the guest.

use lightning_mcp_guest_sdk::prelude::*;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Hyperparameters {}

struct SocketOpener {
    layer: Linear,
}

impl LightningModule for SocketOpener {
    type Hyperparameters = Hyperparameters;
    const TARGET: &'static str = "lightning_mcp.testing.SocketOpener";
    const SUMMARY: &'static str = "Test model that connects to 127.0.0.1:22 in every step.";

    fn new(_: &Hyperparameters) -> Result<Self> {
        Ok(Self {
            layer: LinearConfig::new(4, 3).init("layer")?,
        })
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        std::net::TcpStream::connect("127.0.0.1:22")
            .map_err(|e| Error::new(format!("cannot connect: {e}")))?;
        self.layer.forward(x)
    }
}

export_model!(SocketOpener);
