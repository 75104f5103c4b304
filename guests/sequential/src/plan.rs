//! The shape walk: a config is checked before any parameter exists by walking the per-sample
//! shape through all layers, and an error names the layer, its type and the shape that does
//! not fit.

use crate::layers::{Shape, volume};
use crate::{Hyperparameters, Loss};
use lightning_mcp_guest_sdk::{Error, Result, check};

/// Most layers.
const MAX_LAYERS: usize = 64;
/// Most parameters and buffers, all layers together.
const MAX_PARAMETERS: u64 = 50_000_000;
/// Most values of one sample, at the input and after every layer.
const MAX_SAMPLE_VALUES: u64 = 1 << 24;
/// Most dims of one sample (the host's tensors have at most 6, with the batch dim).
const MAX_RANK: usize = 5;

/// The checked per-sample shapes: `inputs[i]` is what layer `i` receives.
pub struct Plan {
    /// The input shape of every layer.
    pub inputs: Vec<Shape>,
    /// The last layer's output shape.
    output: Shape,
}

impl Hyperparameters {
    /// Checks every field and walks the sample shape through all layers.
    pub fn validate(&self) -> Result<Plan> {
        check::learning_rate("lr", self.lr)?;
        if let Some(weight_decay) = self.weight_decay {
            check::non_negative("weight_decay", weight_decay)?;
        }
        let plan = self.walk(self.input()?)?;
        self.check_loss(&plan.output)?;
        Ok(plan)
    }

    /// The checked `input_shape`.
    fn input(&self) -> Result<Shape> {
        let shape = self.sample_shape();
        if shape.is_empty() || shape.len() > MAX_RANK || shape.contains(&0) {
            return Err(Error::new(format!(
                "input_shape must list 1 to {MAX_RANK} dims of at least 1 (one sample, without \
                 the batch dim, e.g. [4] or [1, 8, 8]), got {shape:?}"
            )));
        }
        if volume(&shape) > MAX_SAMPLE_VALUES {
            return Err(Error::new(format!(
                "input_shape {shape:?} has more than {MAX_SAMPLE_VALUES} values per sample"
            )));
        }
        Ok(shape)
    }

    /// The shapes every layer receives and gives, each checked.
    fn walk(&self, input: Shape) -> Result<Plan> {
        if self.layers.is_empty() || self.layers.len() > MAX_LAYERS {
            return Err(Error::new(format!(
                "layers must list 1 to {MAX_LAYERS} layers, got {}",
                self.layers.len()
            )));
        }
        let mut inputs = Vec::with_capacity(self.layers.len());
        let mut shape = input;
        let mut parameters = 0u64;
        for (i, spec) in self.layers.iter().enumerate() {
            let error = |message: String| spec.error(i, message);
            let layer = spec.layer();
            layer.check_place(&shape, i == 0).map_err(error)?;
            let step = layer.step(&shape).map_err(error)?;
            check_output(&step.output).map_err(error)?;
            parameters = parameters.saturating_add(step.parameters);
            if parameters > MAX_PARAMETERS {
                return Err(error(format!(
                    "the model would hold {parameters} parameters and buffers up to here, more \
                     than {MAX_PARAMETERS}"
                )));
            }
            inputs.push(std::mem::replace(&mut shape, step.output));
        }
        Ok(Plan {
            inputs,
            output: shape,
        })
    }

    /// Cross-entropy needs logits `[classes]`; MSE takes any output.
    fn check_loss(&self, output: &[usize]) -> Result<()> {
        match (self.loss, output) {
            (Loss::Mse, _) => Ok(()),
            (Loss::CrossEntropy, [classes]) if *classes >= 2 => Ok(()),
            (Loss::CrossEntropy, _) => {
                let (index, last) = self
                    .layers
                    .iter()
                    .enumerate()
                    .next_back()
                    .ok_or_else(|| Error::new("layers is empty"))?;
                Err(last.error(
                    index,
                    format!(
                        "loss cross_entropy needs the last layer to output [classes] with at \
                         least 2 classes, got {output:?}; end with a linear layer (after a \
                         flatten for images), or use loss mse"
                    ),
                ))
            }
        }
    }
}

/// An output shape the host can hold.
fn check_output(output: &[usize]) -> Result<(), String> {
    if output.len() > MAX_RANK {
        return Err(format!(
            "its output {output:?} has more than {MAX_RANK} dims per sample"
        ));
    }
    if volume(output) > MAX_SAMPLE_VALUES {
        return Err(format!(
            "its output {output:?} has more than {MAX_SAMPLE_VALUES} values per sample"
        ));
    }
    Ok(())
}
