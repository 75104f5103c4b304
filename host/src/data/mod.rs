//! Datasets and batching: a dataset is a pair of host tensors whose first dim is the sample;
//! a batch is a run of consecutive rows, or — when the dataset shuffles — of rows in a seeded
//! order drawn anew each epoch. [`json`] turns a request's nested arrays into tensors, [`csv`]
//! a CSV file's columns.

pub mod builtin;
pub mod csv;
pub mod json;

use crate::tensor::{self, Rng, Tensor, TensorError};

/// Samples with optional targets, and the batch size to load them with.
#[derive(Debug)]
pub struct Dataset {
    inputs: Tensor,
    targets: Option<Tensor>,
    batch_size: usize,
    shuffle: Option<u64>,
    order: Option<Vec<usize>>,
}

/// One batch of rows with their targets.
#[derive(Debug)]
pub struct LabelledBatch {
    /// The batch's index within the pass, as the guest's step hooks receive it.
    pub index: u32,
    /// `[batch, ...]`.
    pub inputs: Tensor,
    /// `[batch, ...]`.
    pub targets: Tensor,
}

/// A batch number as the guest's `u32` batch index.
fn batch_index(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

impl LabelledBatch {
    /// Number of samples in the batch.
    pub fn size(&self) -> usize {
        self.inputs.shape().first().copied().unwrap_or(0)
    }
}

/// Why a dataset was refused.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The dataset's own shapes are inconsistent.
    #[error("{0}")]
    Invalid(String),
    /// Selecting rows failed.
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

impl Dataset {
    /// A dataset of `inputs` (`[samples, ...]`) and `targets` (`[samples, ...]`).
    pub fn new(
        inputs: Tensor,
        targets: Option<Tensor>,
        batch_size: usize,
    ) -> Result<Self, DataError> {
        let samples = inputs.shape().first().copied().unwrap_or(0);
        if let Some(t) = &targets {
            let target_samples = t.shape().first().copied().unwrap_or(0);
            if target_samples != samples {
                return Err(DataError::Invalid(format!(
                    "inputs {:?} and targets {:?} differ in their number of samples",
                    inputs.shape(),
                    t.shape()
                )));
            }
        }
        if batch_size == 0 {
            return Err(DataError::Invalid("batch size must be at least 1".into()));
        }
        Ok(Self {
            inputs,
            targets,
            batch_size,
            shuffle: None,
            order: None,
        })
    }

    /// This dataset, its rows in a new order every epoch drawn from `seed` (Lightning's
    /// `shuffle=True` under `seed_everything`).
    pub fn shuffled(mut self, seed: u64) -> Self {
        self.shuffle = Some(seed);
        self
    }

    /// This dataset, its rows in their given order.
    pub fn unshuffled(mut self) -> Self {
        self.shuffle = None;
        self.order = None;
        self
    }

    /// Draws the row order of `epoch`, when the dataset shuffles.
    pub fn start_epoch(&mut self, epoch: u32) {
        if let Some(seed) = self.shuffle {
            let mut rng = Rng::seeded(seed ^ u64::from(epoch).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            self.order = Some(rng.permutation(self.len()));
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.inputs.shape().first().copied().unwrap_or(0)
    }

    /// Whether the dataset has no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of batches per pass (the last one may be smaller).
    pub fn num_batches(&self) -> usize {
        self.len().div_ceil(self.batch_size)
    }

    /// Batch `index` (rows `index * batch_size ..`; the last batch may be smaller), with its
    /// targets; data without targets is an error.
    pub fn labelled_batch(&self, index: usize) -> Result<LabelledBatch, DataError> {
        let targets = self
            .targets
            .as_ref()
            .ok_or_else(|| DataError::Invalid("the data has no targets".into()))?;
        let (start, end) = self.rows_of(index)?;
        Ok(LabelledBatch {
            index: batch_index(index),
            inputs: self.take_rows(&self.inputs, start, end)?,
            targets: self.take_rows(targets, start, end)?,
        })
    }

    /// The inputs of batch `index`, and its index as the guest's step hooks receive it.
    pub fn inputs_batch(&self, index: usize) -> Result<(u32, Tensor), DataError> {
        let (start, end) = self.rows_of(index)?;
        Ok((
            batch_index(index),
            self.take_rows(&self.inputs, start, end)?,
        ))
    }

    /// Positions `start..end` of `t`: consecutive rows, or those the epoch's order names.
    fn take_rows(&self, t: &Tensor, start: usize, end: usize) -> Result<Tensor, DataError> {
        Ok(match self.order.as_ref().and_then(|o| o.get(start..end)) {
            Some(picked) => tensor::select_rows(t, picked)?,
            None => tensor::rows(t, start, end)?,
        })
    }

    /// The rows of batch `index`.
    fn rows_of(&self, index: usize) -> Result<(usize, usize), DataError> {
        let start = index.saturating_mul(self.batch_size);
        let end = self.len().min(start.saturating_add(self.batch_size));
        if start >= end {
            return Err(DataError::Invalid(format!(
                "batch {index} is past the end of {} samples",
                self.len()
            )));
        }
        Ok((start, end))
    }
}
