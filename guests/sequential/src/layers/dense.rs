//! Layers with a weight matrix: `linear` over the last dim, and `embedding` of token ids.

use super::{Layer, MAX_WIDTH, Module, Step, bounded, dim, yes};
use lightning_mcp_guest_sdk::nn::{EmbeddingConfig, LinearConfig};
use lightning_mcp_guest_sdk::{DType, Error, Result, Tensor};
use serde::{Deserialize, Serialize};

/// Largest vocabulary of an embedding.
const MAX_VOCAB: u32 = 1 << 20;

/// `torch.nn.Linear` over the last dim.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Linear {
    /// Output features.
    out: u32,
    /// Whether it adds a bias.
    #[serde(default = "yes")]
    bias: bool,
}

impl Linear {
    /// `out` output features, with a bias.
    pub fn new(out: u32) -> Self {
        Self { out, bias: true }
    }
}

impl Layer for Linear {
    fn kind(&self) -> &'static str {
        "linear"
    }

    /// `[.., in] -> [.., out]`.
    fn step(&self, input: &[usize]) -> Result<Step, String> {
        let out = bounded("out", self.out, 1, MAX_WIDTH)?;
        let features = input.last().copied().unwrap_or(0) as u64;
        let mut output = input.to_vec();
        if let Some(last) = output.last_mut() {
            *last = out as usize;
        }
        let bias = if self.bias { u64::from(out) } else { 0 };
        Ok(Step {
            output,
            parameters: features.saturating_mul(out.into()).saturating_add(bias),
        })
    }

    fn build(&self, input: &[usize], name: &str) -> Result<Module> {
        let linear = LinearConfig::new(dim(input.last())?, self.out)
            .with_bias(self.bias)
            .init(name)?;
        Ok(Box::new(move |x: &Tensor| linear.forward(x)))
    }
}

/// `torch.nn.Embedding` of integer token ids; only as the first layer.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Embedding {
    /// Rows of the table (the vocabulary size).
    num_embeddings: u32,
    /// Size of each row.
    embedding_dim: u32,
}

impl Layer for Embedding {
    fn kind(&self) -> &'static str {
        "embedding"
    }

    fn check_place(&self, input: &[usize], first: bool) -> Result<(), String> {
        match first {
            true => Ok(()),
            false => Err(format!(
                "an embedding reads integer token ids from the model's input, so it must be \
                 the first layer; here its input is {input:?}"
            )),
        }
    }

    /// Token ids `[..] -> [.., embedding_dim]`.
    fn step(&self, input: &[usize]) -> Result<Step, String> {
        let rows = bounded("num_embeddings", self.num_embeddings, 1, MAX_VOCAB)?;
        let dim = bounded("embedding_dim", self.embedding_dim, 1, MAX_WIDTH)?;
        let mut output = input.to_vec();
        output.push(dim as usize);
        Ok(Step {
            output,
            parameters: u64::from(rows) * u64::from(dim),
        })
    }

    fn build(&self, _input: &[usize], name: &str) -> Result<Module> {
        let rows = self.num_embeddings;
        let table = EmbeddingConfig::new(rows, self.embedding_dim).init(name)?;
        Ok(Box::new(move |x: &Tensor| {
            table.forward(&token_ids(x, rows)?)
        }))
    }
}

/// The inputs as i64 token ids, each checked to be an integer in `[0, rows)`.
fn token_ids(x: &Tensor, rows: u32) -> Result<Tensor> {
    let out_of_range = |id: String| {
        Error::new(format!(
            "token ids must be integers in [0, {rows}) (num_embeddings {rows}), got {id}"
        ))
    };
    let ids: Vec<i64> = match x.dtype() {
        DType::I64 => x.to_i64_vec()?,
        DType::F32 => x
            .to_f32_vec()?
            .into_iter()
            .map(|v| match v.fract() == 0.0 {
                true => Ok(v as i64),
                false => Err(out_of_range(v.to_string())),
            })
            .collect::<Result<_>>()?,
    };
    if let Some(bad) = ids.iter().find(|id| !(0..i64::from(rows)).contains(*id)) {
        return Err(out_of_range(bad.to_string()));
    }
    Tensor::from_i64(&ids, &x.shape())
}
