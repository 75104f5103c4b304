//! `lightning.predict`'s result: the outputs as nested lists, each row's class and label for a
//! classifier, decoded text, and a file of every row when they are too many for the reply.

use super::{Decode, Report};
use crate::runtime::Runtime;
use crate::tensor::{self, DType, Tensor};
use crate::tools::accelerator::DeviceReport;
use crate::tools::data::DataReport;
use crate::tools::model_run::RunModel;
use crate::tools::results::{self, PredictionsFile};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// Most numbers a `lightning.predict` reply carries (as JSON, some 40 MB).
const MAX_PREDICTED_VALUES: usize = 1 << 22;

/// What `lightning.predict` returns.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PredictOutput {
    /// `completed`.
    pub status: &'static str,
    /// The model that predicted.
    pub model: RunModel,
    /// The model's output for each batch, as nested lists in the output's shape.
    ///
    /// When the result would pass the server's bound (`--max-result-kb`, 100 KB by default):
    /// the first rows only, as one batch, and `predictions_file` holds every row.
    pub predictions: Vec<Value>,
    /// Where every row went when they were too many for the result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predictions_file: Option<PredictionsFile>,
    /// With `decode: "text"`: every row of the predictions (batch by batch) as a string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<Vec<String>>,
    /// A classifier's (outputs `[batch, classes]`): each row's predicted class, the index of
    /// its largest logit, batch after batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_class: Option<Vec<usize>>,
    /// The predicted classes' names, when the data's target column held text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_label: Option<Vec<String>>,
    /// Batches predicted.
    pub num_batches: usize,
    /// The checkpoint the weights came from, if any.
    pub ckpt_path: Option<String>,
    /// Where the data came from, when it was a file (`data.csv`).
    pub data: Option<DataReport>,
    /// The device the model ran on.
    pub device: DeviceReport,
    /// Wall-clock time of the whole call.
    pub duration_seconds: f64,
}

impl PredictOutput {
    /// Moves every row to a file under `root` in the checkpoint directory, keeping the first
    /// rows (and their classes, labels and text) in the result.
    fn spill(&mut self, runtime: &Runtime, root: &str) -> Result<(), String> {
        let mut columns: results::Columns = Vec::new();
        if let Some(classes) = &self.predicted_class {
            columns.push((
                "predicted_class",
                classes.iter().map(|&c| c.into()).collect(),
            ));
        }
        if let Some(labels) = &self.predicted_label {
            columns.push((
                "predicted_label",
                labels.iter().map(|l| l.as_str().into()).collect(),
            ));
        }
        if let Some(text) = &self.text {
            columns.push(("text", text.iter().map(|t| t.as_str().into()).collect()));
        }
        let file = results::write_predictions(runtime, root, &self.predictions, &columns)?;
        self.predictions = results::preview(&self.predictions);
        for column in [&mut self.predicted_class].into_iter().flatten() {
            column.truncate(results::PREVIEW_ROWS);
        }
        for column in [&mut self.predicted_label, &mut self.text]
            .into_iter()
            .flatten()
        {
            column.truncate(results::PREVIEW_ROWS);
        }
        self.predictions_file = Some(file);
        Ok(())
    }
}

impl Report<'_> {
    /// The result of predict: the predictions (with classes, labels and text), in a file
    /// when they are too many for the result.
    pub(super) fn predictions(
        &self,
        model: RunModel,
        ckpt_path: Option<String>,
        outputs: &[Tensor],
        decode: Option<Decode>,
    ) -> Result<Value, String> {
        let values: usize = outputs.iter().map(Tensor::num_elements).sum();
        if values > MAX_PREDICTED_VALUES {
            return Err(format!(
                "the predictions hold {values} values, more than a reply carries \
                 ({MAX_PREDICTED_VALUES}); lower trainer.limit_predict_batches"
            ));
        }
        let (predictions, classes): (Vec<Value>, Vec<Option<Vec<usize>>>) = outputs
            .iter()
            .map(read_output)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("reading the predictions: {e}"))?
            .into_iter()
            .unzip();
        let predicted_class = classes
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .map(|batches| batches.concat());
        let data = self.settled.data.report();
        let names = data.as_ref().and_then(|r| r.classes.as_deref());
        let predicted_label = predicted_class
            .as_deref()
            .zip(names)
            .and_then(|(classes, names)| classes.iter().map(|&c| names.get(c).cloned()).collect());
        let text = match decode {
            Some(Decode::Text) => Some(decode_text(outputs)?),
            None => None,
        };
        let mut output = PredictOutput {
            status: "completed",
            model,
            num_batches: predictions.len(),
            predictions,
            predictions_file: None,
            text,
            predicted_class,
            predicted_label,
            ckpt_path,
            data,
            device: self.placement.report(),
            duration_seconds: self.started.elapsed().as_secs_f64(),
        };
        if results::json_len(&output) > self.runtime.max_result_bytes() {
            output.spill(self.runtime, &self.settled.options.default_root_dir)?;
        }
        serde_json::to_value(output).map_err(|e| format!("cannot write the result: {e}"))
    }
}

/// `decode: "text"`: every row of every output as a string.
fn decode_text(outputs: &[Tensor]) -> Result<Vec<String>, String> {
    let rows = outputs
        .iter()
        .map(text_rows)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("decode \"text\": {e}"))?;
    Ok(rows.concat())
}

/// Every row (along the last dim) of an i64 tensor of Unicode code points, as a string.
fn text_rows(t: &Tensor) -> Result<Vec<String>, String> {
    if t.dtype() != DType::I64 {
        return Err(format!(
            "the predictions must be i64 code points, got an f32 tensor {:?}",
            t.shape()
        ));
    }
    let width = t.shape().last().copied().unwrap_or(1).max(1);
    let codes = tensor::to_i64(t).map_err(|e| e.to_string())?;
    codes
        .chunks(width)
        .map(|row| {
            row.iter()
                .map(|&c| {
                    u32::try_from(c)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| format!("{c} is not a Unicode code point"))
                })
                .collect()
        })
        .collect()
}

/// One predicted output as nested JSON lists in its shape (PyTorch's `tolist()`) and, when it
/// is a classifier's logits (f32 `[batch, classes]`, at least 2 classes), each row's class.
fn read_output(t: &Tensor) -> Result<(Value, Option<Vec<usize>>), tensor::TensorError> {
    let shape = t.shape();
    let (flat, classes): (Vec<Value>, _) = match t.dtype() {
        DType::F32 => {
            let values = tensor::to_f32(t)?;
            let classes = match shape.as_slice() {
                [_, width] if *width >= 2 => Some(values.chunks(*width).map(largest).collect()),
                _ => None,
            };
            (values.into_iter().map(Value::from).collect(), classes)
        }
        DType::I64 => (
            tensor::to_i64(t)?.into_iter().map(Value::from).collect(),
            None,
        ),
    };
    Ok((nest(&flat, &shape), classes))
}

/// The index of the first largest value of `row` (0 for a row of NaNs).
fn largest(row: &[f32]) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, &v) in row.iter().enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

fn nest(flat: &[Value], shape: &[usize]) -> Value {
    match shape.split_first() {
        Some((_, rest)) if !rest.is_empty() => {
            let inner: usize = rest.iter().product();
            Value::Array(
                flat.chunks(inner.max(1))
                    .map(|chunk| nest(chunk, rest))
                    .collect(),
            )
        }
        _ => Value::Array(flat.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    #[test]
    fn values_nest_in_their_shape() {
        let flat: Vec<Value> = (0..6).map(Value::from).collect();
        assert_eq!(super::nest(&flat, &[6]), json!([0, 1, 2, 3, 4, 5]));
        assert_eq!(super::nest(&flat, &[2, 3]), json!([[0, 1, 2], [3, 4, 5]]));
        assert_eq!(
            super::nest(&flat, &[3, 1, 2]),
            json!([[[0, 1]], [[2, 3]], [[4, 5]]])
        );
    }
}
