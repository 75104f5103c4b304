//! Checkpoints: a model's parameters as [safetensors](https://huggingface.co/docs/safetensors)
//! — little-endian f32, named as the guest declared them — with one metadata entry,
//! `lightning_mcp`, holding JSON: the format version, the model's target, class and
//! hyperparameters, and where training stood (epoch, global step, metrics).
//!
//! Python reads them with `safetensors.numpy.load_file`, and the metadata with
//! `safe_open(path, "np").metadata()`.

use crate::sandbox::ModelInstance;
use crate::tensor::{self, Tensor, TensorError};
use crate::trainer::Metrics;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The version of the checkpoint format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The metadata key of the JSON entry.
pub const METADATA_KEY: &str = "lightning_mcp";
/// File extension of checkpoints.
pub const EXTENSION: &str = "safetensors";

/// What a checkpoint says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// The lightning-mcp version that wrote it.
    pub lightning_mcp: String,
    /// The model's `_target_`.
    pub target: String,
    /// The model's class name.
    pub class: String,
    /// The hyperparameters the model was built with.
    pub hyperparameters: serde_json::Value,
    /// The index of the last epoch trained (0 also for an untrained model), as Lightning
    /// stores it.
    pub epoch: u32,
    /// Optimizer steps taken.
    pub global_step: u64,
    /// The metrics when it was written.
    pub metrics: Metrics,
}

impl CheckpointMeta {
    /// The metadata of a checkpoint of `target` (class `class`, built with `hyperparameters`)
    /// after the epoch with index `epoch` and `global_step` steps, with `metrics`. Metrics that
    /// are not finite numbers (a diverged loss) are left out: JSON cannot hold them.
    pub fn new(
        target: &str,
        class: &str,
        hyperparameters: serde_json::Value,
        epoch: u32,
        global_step: u64,
        metrics: &Metrics,
    ) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            lightning_mcp: env!("CARGO_PKG_VERSION").to_string(),
            target: target.to_string(),
            class: class.to_string(),
            hyperparameters,
            epoch,
            global_step,
            metrics: metrics
                .iter()
                .filter(|(_, v)| v.is_finite())
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }
    }
}

/// One parameter's values.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedValues {
    /// The parameter's name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub values: Vec<f32>,
}

/// Why a checkpoint could not be written, read or applied.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file is not a checkpoint of this format.
    #[error("not a lightning-mcp checkpoint: {0}")]
    Format(String),
    /// The checkpoint does not fit the model.
    #[error("the checkpoint does not fit the model: {0}")]
    Mismatch(String),
    /// Reading or writing a tensor failed.
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

/// The current values of `instance`'s parameters.
pub fn capture(instance: &ModelInstance) -> Result<Vec<NamedValues>, CheckpointError> {
    instance
        .parameters()
        .iter()
        .map(|p| {
            Ok(NamedValues {
                name: p.name.clone(),
                shape: p.value.shape(),
                values: tensor::to_f32(&p.value)?,
            })
        })
        .collect()
}

/// A checkpoint file's bytes.
pub fn encode(params: &[NamedValues], meta: &CheckpointMeta) -> Result<Vec<u8>, CheckpointError> {
    let bytes: Vec<Vec<u8>> = params
        .iter()
        .map(|p| p.values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = params
        .iter()
        .zip(&bytes)
        .map(|(p, data)| {
            TensorView::new(Dtype::F32, p.shape.clone(), data)
                .map(|view| (p.name.as_str(), view))
                .map_err(|e| CheckpointError::Format(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let json = serde_json::to_string(meta).map_err(|e| CheckpointError::Format(e.to_string()))?;
    let metadata = HashMap::from([(METADATA_KEY.to_string(), json)]);
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| CheckpointError::Format(e.to_string()))
}

/// The parameters (in no particular order) and metadata of a checkpoint file's bytes.
pub fn decode(bytes: &[u8]) -> Result<(Vec<NamedValues>, CheckpointMeta), CheckpointError> {
    let format = |e: String| CheckpointError::Format(e);
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| format(e.to_string()))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(METADATA_KEY))
        .ok_or_else(|| format(format!("it has no `{METADATA_KEY}` metadata entry")))?;
    let meta: CheckpointMeta =
        serde_json::from_str(json).map_err(|e| format(format!("its metadata: {e}")))?;
    if meta.format_version != FORMAT_VERSION {
        return Err(format(format!(
            "format version {} (this server reads version {FORMAT_VERSION})",
            meta.format_version
        )));
    }
    let file = SafeTensors::deserialize(bytes).map_err(|e| format(e.to_string()))?;
    let mut params = Vec::new();
    for (name, view) in file.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(format(format!(
                "{name} is {:?}; parameters are F32",
                view.dtype()
            )));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .filter_map(|b| b.try_into().ok().map(f32::from_le_bytes))
            .collect();
        params.push(NamedValues {
            name: name.to_string(),
            shape: view.shape().to_vec(),
            values,
        });
    }
    Ok((params, meta))
}

/// Replaces `instance`'s parameters with `loaded`, after checking that the names and shapes
/// are exactly the model's; the error lists every parameter that is missing, unexpected or of
/// another shape.
pub fn restore(
    instance: &mut ModelInstance,
    mut loaded: Vec<NamedValues>,
) -> Result<(), CheckpointError> {
    let mut problems = Vec::new();
    let mut ordered = Vec::with_capacity(instance.parameters().len());
    for p in instance.parameters() {
        match loaded.iter().position(|l| l.name == p.name) {
            None => problems.push(format!("{} {:?} is missing", p.name, p.value.shape())),
            Some(i) => {
                let l = loaded.swap_remove(i);
                if l.shape != p.value.shape() {
                    problems.push(format!(
                        "{} is {:?} in the checkpoint, {:?} in the model",
                        p.name,
                        l.shape,
                        p.value.shape()
                    ));
                }
                ordered.push(l);
            }
        }
    }
    problems.extend(
        loaded
            .iter()
            .map(|l| format!("{} {:?} is not a parameter of the model", l.name, l.shape)),
    );
    if !problems.is_empty() {
        return Err(CheckpointError::Mismatch(problems.join("; ")));
    }
    let device = instance.device().clone();
    let mut values = ordered.into_iter();
    instance.update_parameters(|_, _old| -> Result<Tensor, CheckpointError> {
        let l = values
            .next()
            .ok_or_else(|| CheckpointError::Mismatch("a parameter has no value".into()))?;
        Ok(tensor::trainable(tensor::from_f32(
            &device, l.values, &l.shape,
        )?)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> CheckpointMeta {
        CheckpointMeta {
            format_version: FORMAT_VERSION,
            lightning_mcp: "0.1.0".into(),
            target: "t.M".into(),
            class: "M".into(),
            hyperparameters: serde_json::json!({"lr": 0.1}),
            epoch: 3,
            global_step: 24,
            metrics: Metrics::from([("val_acc".to_string(), 0.5)]),
        }
    }

    #[test]
    fn a_checkpoint_round_trips() {
        let params = vec![
            NamedValues {
                name: "layer.weight".into(),
                shape: vec![2, 3],
                values: vec![0.5, -1.0, 2.0, 0.0, 1e-7, 3.25],
            },
            NamedValues {
                name: "layer.bias".into(),
                shape: vec![2],
                values: vec![0.1, -0.2],
            },
        ];
        let bytes = encode(&params, &meta()).unwrap_or_else(|e| panic!("{e}"));
        let (mut back, meta_back) = decode(&bytes).unwrap_or_else(|e| panic!("{e}"));
        back.sort_by(|a, b| b.name.cmp(&a.name));
        assert_eq!(back, params);
        assert_eq!(meta_back, meta());
    }

    #[test]
    fn foreign_files_are_refused_by_name() {
        let e = |bytes: &[u8]| {
            decode(bytes)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(e(b"not a checkpoint").starts_with("not a lightning-mcp checkpoint"));
        let bare =
            safetensors::serialize(Vec::<(&str, TensorView)>::new(), None).unwrap_or_default();
        assert!(e(&bare).contains("no `lightning_mcp` metadata entry"));
        let mut old = meta();
        old.format_version = 99;
        let bytes = encode(&[], &old).unwrap_or_default();
        assert!(e(&bytes).contains("format version 99"));
    }
}
