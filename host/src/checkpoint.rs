//! Checkpoints: a model's parameters as [safetensors](https://huggingface.co/docs/safetensors)
//! — little-endian f32, named as the guest declared them — with one metadata entry,
//! `lightning_mcp`, holding JSON: the format version, the model's target, class and
//! hyperparameters, and where training stood (epoch, global step, metrics). A checkpoint
//! written by training also holds what resuming needs: the optimizer's state tensors, named
//! `optimizer/{parameter}.{leaf}` (a `/` no parameter name has), its scalars and the
//! early-stopping state in the metadata.
//!
//! Python reads them with `safetensors.numpy.load_file`, and the metadata with
//! `safe_open(path, "np").metadata()`.

use crate::sandbox::ModelInstance;
use crate::tensor::{
    self, NamedValues, OptimizerConfig, OptimizerState, StateScalar, Tensor, TensorError,
};
use crate::trainer::{EarlyStoppingState, FitStart, Metrics, TrainingState};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The version of the checkpoint format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The metadata key of the JSON entry.
pub const METADATA_KEY: &str = "lightning_mcp";
/// File extension of checkpoints.
pub const EXTENSION: &str = "safetensors";
/// The prefix of the optimizer's state tensors.
pub const OPTIMIZER_PREFIX: &str = "optimizer/";

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
    /// The optimizer and the scalars of its state; `None` in a weights-only checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<SavedOptimizer>,
    /// The early-stopping callback's state, when training used one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStoppingState>,
}

/// The optimizer a checkpoint's state belongs to, and that state's scalars (step counters).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedOptimizer {
    /// The optimizer the model configured.
    pub config: OptimizerConfig,
    /// Its state's scalars, named `{parameter}.{leaf}`.
    pub scalars: BTreeMap<String, StateScalar>,
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
            optimizer: None,
            early_stopping: None,
        }
    }
}

/// Everything a checkpoint file holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The model's parameters.
    pub params: Vec<NamedValues>,
    /// The optimizer's state tensors (named without [`OPTIMIZER_PREFIX`]).
    pub optimizer_tensors: Vec<NamedValues>,
    /// What it says about itself.
    pub meta: CheckpointMeta,
}

/// Where a fit resumed from a checkpoint with `meta` and `optimizer_tensors` starts: after
/// the epoch it was written in (a checkpoint without steps is of an untrained model: from the
/// beginning), with its optimizer and early-stopping state.
pub fn fit_start(meta: CheckpointMeta, optimizer_tensors: Vec<NamedValues>) -> FitStart {
    let epoch = if meta.global_step == 0 {
        0
    } else {
        meta.epoch.saturating_add(1)
    };
    let optimizer = meta.optimizer.map(|o| {
        (
            o.config,
            OptimizerState {
                tensors: optimizer_tensors,
                scalars: o.scalars,
            },
        )
    });
    FitStart {
        epoch,
        global_step: meta.global_step,
        optimizer,
        early_stopping: meta.early_stopping,
    }
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

/// A checkpoint of `instance`'s current parameters with `meta`, and, when `training` is
/// given, the optimizer and early-stopping state a fit needs to resume.
pub fn capture(
    instance: &ModelInstance,
    mut meta: CheckpointMeta,
    training: Option<&TrainingState<'_>>,
) -> Result<Checkpoint, CheckpointError> {
    let params = instance
        .parameters()
        .iter()
        .map(|p| {
            Ok(NamedValues {
                name: p.name.clone(),
                shape: p.value.shape(),
                values: tensor::to_f32(&p.value)?,
            })
        })
        .collect::<Result<_, CheckpointError>>()?;
    let mut optimizer_tensors = Vec::new();
    if let Some(training) = training {
        let names: Vec<&str> = instance
            .parameters()
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        let state = training.optimizer.export_state(&names)?;
        optimizer_tensors = state.tensors;
        meta.optimizer = Some(SavedOptimizer {
            config: training.optimizer.config().clone(),
            scalars: state.scalars,
        });
        meta.early_stopping = training.early_stopping.clone();
    }
    Ok(Checkpoint {
        params,
        optimizer_tensors,
        meta,
    })
}

/// A checkpoint file's bytes.
pub fn encode(checkpoint: &Checkpoint) -> Result<Vec<u8>, CheckpointError> {
    let optimizer_names: Vec<String> = checkpoint
        .optimizer_tensors
        .iter()
        .map(|t| format!("{OPTIMIZER_PREFIX}{}", t.name))
        .collect();
    let named = checkpoint
        .params
        .iter()
        .map(|p| (p.name.as_str(), p))
        .chain(
            optimizer_names
                .iter()
                .map(String::as_str)
                .zip(&checkpoint.optimizer_tensors),
        );
    let tensors: Vec<(&str, &NamedValues, Vec<u8>)> = named
        .map(|(name, t)| (name, t, le_bytes(&t.values)))
        .collect();
    let views = tensors
        .iter()
        .map(|(name, t, data)| {
            TensorView::new(Dtype::F32, t.shape.clone(), data)
                .map(|view| (*name, view))
                .map_err(|e| CheckpointError::Format(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let json = serde_json::to_string(&checkpoint.meta)
        .map_err(|e| CheckpointError::Format(e.to_string()))?;
    let metadata = HashMap::from([(METADATA_KEY.to_string(), json)]);
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| CheckpointError::Format(e.to_string()))
}

/// `values` as little-endian bytes.
fn le_bytes(values: &[f32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(values.len() * 4);
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

/// A checkpoint from a file's bytes (its tensors in no particular order); the optimizer's
/// state tensors only when `optimizer_state` is asked for (resuming), else left unread.
pub fn decode(bytes: &[u8], optimizer_state: bool) -> Result<Checkpoint, CheckpointError> {
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
    let mut optimizer_tensors = Vec::new();
    for (name, view) in file.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(format(format!(
                "{name} is {:?}; parameters are F32",
                view.dtype()
            )));
        }
        let leaf = name.strip_prefix(OPTIMIZER_PREFIX);
        if leaf.is_some() && meta.optimizer.is_none() {
            return Err(format(format!(
                "it has {OPTIMIZER_PREFIX}* tensors but no optimizer in its metadata"
            )));
        }
        if leaf.is_some() && !optimizer_state {
            continue;
        }
        let values = view
            .data()
            .chunks_exact(4)
            .filter_map(|b| b.try_into().ok().map(f32::from_le_bytes))
            .collect();
        let tensor = NamedValues {
            name: leaf.unwrap_or(name.as_str()).to_string(),
            shape: view.shape().to_vec(),
            values,
        };
        match leaf {
            Some(_) => optimizer_tensors.push(tensor),
            None => params.push(tensor),
        }
    }
    Ok(Checkpoint {
        params,
        optimizer_tensors,
        meta,
    })
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
                ordered.push((l, p.clone()));
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
        let (l, param) = values
            .next()
            .ok_or_else(|| CheckpointError::Mismatch("a parameter has no value".into()))?;
        Ok(param.prepare(tensor::from_f32(&device, l.values, &l.shape)?)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> CheckpointMeta {
        CheckpointMeta::new(
            "t.M",
            "M",
            serde_json::json!({"lr": 0.1}),
            3,
            24,
            &Metrics::from([("val_acc".to_string(), 0.5)]),
        )
    }

    fn values(name: &str, shape: Vec<usize>, values: Vec<f32>) -> NamedValues {
        NamedValues {
            name: name.into(),
            shape,
            values,
        }
    }

    #[test]
    fn a_checkpoint_round_trips_with_its_optimizer_state() {
        let mut meta = meta();
        meta.optimizer = Some(SavedOptimizer {
            config: OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: 0.9,
                dampening: 0.0,
                weight_decay: 0.0,
                nesterov: false,
            },
            scalars: BTreeMap::from([("layer.bias.time".to_string(), StateScalar::UInt(7))]),
        });
        meta.early_stopping = Some(EarlyStoppingState {
            monitor: "val_loss".into(),
            best: Some(0.25),
            wait_count: 2,
        });
        let checkpoint = Checkpoint {
            params: vec![
                values(
                    "layer.weight",
                    vec![2, 3],
                    vec![0.5, -1.0, 2.0, 0.0, 1e-7, 3.25],
                ),
                values("layer.bias", vec![2], vec![0.1, -0.2]),
            ],
            optimizer_tensors: vec![values("layer.bias.momentum", vec![2], vec![0.01, 0.02])],
            meta,
        };
        let bytes = encode(&checkpoint).expect("the checkpoint encodes");
        let weights_only = decode(&bytes, false).expect("the weights decode");
        assert!(weights_only.optimizer_tensors.is_empty());
        let mut back = decode(&bytes, true).expect("the checkpoint decodes");
        back.params.sort_by(|a, b| b.name.cmp(&a.name));
        assert_eq!(back, checkpoint);
        let start = fit_start(back.meta, back.optimizer_tensors);
        assert_eq!((start.epoch, start.global_step), (4, 24));
        assert!(start.optimizer.is_some() && start.early_stopping.is_some());
    }

    #[test]
    fn foreign_files_are_refused_by_name() {
        let e = |bytes: &[u8]| {
            decode(bytes, true)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(e(b"not a checkpoint").starts_with("not a lightning-mcp checkpoint"));
        let bare =
            safetensors::serialize(Vec::<(&str, TensorView)>::new(), None).unwrap_or_default();
        assert!(e(&bare).contains("no `lightning_mcp` metadata entry"));
        let mut old = Checkpoint {
            params: Vec::new(),
            optimizer_tensors: Vec::new(),
            meta: meta(),
        };
        old.meta.format_version = 99;
        assert!(e(&encode(&old).unwrap_or_default()).contains("format version 99"));
        old.meta.format_version = FORMAT_VERSION;
        old.optimizer_tensors = vec![values("w.m", vec![1], vec![0.0])];
        assert!(e(&encode(&old).unwrap_or_default()).contains("no optimizer in its metadata"));
    }
}
