//! A hostile model for the sandbox tests. `mode` picks how it misbehaves in `training_step`
//! (or in `init` for `panic_in_init`); `ok` trains like a linear classifier.

use lightning_mcp_guest_sdk::prelude::*;
use lightning_mcp_guest_sdk::wit::lightning::model::tensors::Tensor as RawTensor;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Hyperparameters {
    /// ok | shape_mismatch | stale_handle | panic | panic_in_init | infinite_loop |
    /// memory_bomb | host_memory_bomb | graph_bomb | chatty (prints every step)
    mode: String,
}

struct Misbehaving {
    mode: String,
    layer: Linear,
}

impl LightningModule for Misbehaving {
    type Hyperparameters = Hyperparameters;
    const TARGET: &'static str = "lightning_mcp.testing.Misbehaving";
    const SUMMARY: &'static str = "Test model that misbehaves on request.";

    fn new(h: &Hyperparameters) -> Result<Self> {
        if h.mode == "panic_in_init" {
            panic!("misbehaving model panicked in init");
        }
        Ok(Self {
            mode: h.mode.clone(),
            layer: LinearConfig::new(4, 3).init("layer")?,
        })
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        self.layer.forward(x)
    }

    fn training_step(
        &mut self,
        inputs: Tensor,
        targets: Tensor,
        batch_index: u32,
    ) -> Result<Tensor> {
        match self.mode.as_str() {
            "chatty" => {
                println!("step {batch_index}: hello from the guest");
                eprintln!("step {batch_index}: a warning from the guest");
                self.loss(&inputs, &targets)
            }
            "shape_mismatch" => {
                let wrong = Tensor::ones(&[3, 2])?;
                inputs.matmul(&wrong)
            }
            "stale_handle" => {
                let raw = lightning_mcp_guest_sdk::__private::into_raw(Tensor::zeros(&[2, 2])?);
                let handle = raw.handle();
                drop(raw);
                // SAFETY: deliberately not: this forges a handle the host already freed.
                let stale = unsafe { RawTensor::from_handle(handle) };
                let _ = stale.relu();
                Err(Error::new("a stale handle was accepted"))
            }
            "panic" => panic!("misbehaving model panicked on purpose"),
            "infinite_loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "memory_bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "graph_bomb" => {
                // Every result stays in the autodiff graph after its handle is dropped.
                let wide = Tensor::ones(&[4, 1 << 20])?;
                let mut x = self.layer.weight.matmul(&wide)?;
                loop {
                    x = x.exp()?;
                }
            }
            "host_memory_bomb" => {
                let mut hoard = Vec::new();
                loop {
                    hoard.push(Tensor::zeros(&[4096, 4096])?);
                }
            }
            _ => self.loss(&inputs, &targets),
        }
    }

    fn dataset(&mut self, split: Split, seed: u64) -> Result<Option<Dataset>> {
        let labels: Vec<i64> = (0..16).map(|i| i % 3).collect();
        Ok(Some(Dataset {
            inputs: Tensor::randn(&[16, 4], seed)?,
            targets: match split {
                Split::Predict => None,
                _ => Some(Tensor::from_i64(&labels, &[16])?),
            },
            batch_size: 8,
        }))
    }
}

impl Misbehaving {
    /// The well-behaved step: cross-entropy of the forward pass, logged as `train_loss`.
    fn loss(&mut self, inputs: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let loss = self.forward(inputs)?.cross_entropy(targets)?;
        lightning_mcp_guest_sdk::log::log_tensor("train_loss", &loss)?;
        Ok(loss)
    }
}

export_model!(Misbehaving);
