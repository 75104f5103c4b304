//! The data a tool call runs on, split by split: what the request gives — nested arrays, or a
//! CSV file under `--data-dir` — else the model's own `dataset` hook.

use super::args::{CsvArgs, DataArgs};
use crate::data::Dataset;
use crate::data::csv::{self, CsvSpec, Table, Targets};
use crate::data::json::{self, Element};
use crate::runtime::Runtime;
use crate::sandbox::{Limits, ModelData, ModelInstance, Split};
use crate::tensor::{self, Rng, Tensor};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// Where a call's data came from, for its result.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct DataReport {
    /// `csv`.
    pub source: &'static str,
    /// The file, relative to the data directory.
    pub path: String,
    /// The feature columns, in input order.
    pub features: Vec<String>,
    /// The target column, if any.
    pub target: Option<String>,
    /// The class labels by index, when the target column held text.
    pub classes: Option<Vec<String>>,
    /// Rows in the file.
    pub rows: usize,
    /// Rows used for training.
    pub train_samples: usize,
    /// Rows held out for validation.
    pub val_samples: usize,
}

/// The data of one call.
pub(super) struct CallData<'a> {
    args: Option<&'a DataArgs>,
    table: Option<CsvTable>,
    seed: u64,
}

/// A CSV table and its seeded split into training and validation rows.
struct CsvTable {
    table: Table,
    train_rows: Vec<usize>,
    val_rows: Vec<usize>,
    report: DataReport,
}

impl<'a> CallData<'a> {
    /// The call's `data` (reading its CSV file, if it names one, under the runtime's data
    /// directory, within the run's `limits`); `seed` draws the validation split and the
    /// shuffling.
    pub(super) fn load(
        runtime: &Runtime,
        args: Option<&'a DataArgs>,
        seed: u64,
        limits: &Limits,
    ) -> Result<Self, String> {
        let table = match args.and_then(|a| a.csv.as_ref().map(|csv| (a, csv))) {
            None => None,
            Some((args, csv)) => {
                if args.train.is_some()
                    || args.val.is_some()
                    || args.test.is_some()
                    || args.predict.is_some()
                {
                    return Err(
                        "data.csv cannot be combined with data.train, val, test or predict".into(),
                    );
                }
                Some(read_csv(runtime, csv, seed, limits)?)
            }
        };
        Ok(Self { args, table, seed })
    }

    /// What the result says of the data, when it came from a file.
    pub(super) fn report(&self) -> Option<DataReport> {
        self.table.as_ref().map(|t| t.report.clone())
    }

    /// The data of `split`: the request's when it gives that split (checked against the run's
    /// limits and, for training, reshuffled each epoch when asked), else the model's own;
    /// `None` when neither has any. From a CSV file, training gets the rows outside the
    /// validation split and validation the rows in it — or, with no split and `whole`, every
    /// row, as the test and prediction splits always do.
    pub(super) fn split(
        &self,
        instance: &mut ModelInstance,
        split: Split,
        whole: bool,
    ) -> Result<Option<Dataset>, String> {
        let shuffle = split == Split::Train && self.args.and_then(|d| d.shuffle).unwrap_or(false);
        let batch_size = self.args.map_or(Ok(32), DataArgs::batch_size)?;
        let dataset = if let Some(csv) = &self.table {
            let every_row: Vec<usize>;
            let rows: &[usize] = match split {
                Split::Train => &csv.train_rows,
                Split::Validation if !csv.val_rows.is_empty() => &csv.val_rows,
                Split::Validation if !whole => &[],
                _ => {
                    every_row = (0..csv.table.rows()).collect();
                    &every_row
                }
            };
            if rows.is_empty() {
                None
            } else {
                let (inputs, targets) = csv_tensors(instance, &csv.table, rows, split)?;
                Some(admit(instance, "csv", inputs, targets, batch_size)?)
            }
        } else if let Some((name, inputs, targets)) = self.args.and_then(|d| d.split(split)) {
            let device = instance.device().clone();
            let max = instance.limits().max_tensor_elements;
            let parse = |what: &str, value: &Value, element| {
                json::tensor(&format!("data.{name}.{what}"), value, element, &device, max)
                    .map_err(|e| e.to_string())
            };
            let inputs = parse("inputs", inputs, Element::Float)?;
            let targets = targets
                .map(|t| parse("targets", t, Element::Inferred))
                .transpose()?;
            Some(admit(instance, name, inputs, targets, batch_size)?)
        } else {
            own_data(instance, split, self.seed)?
        };
        Ok(dataset.map(|d| if shuffle { d.shuffled(self.seed) } else { d }))
    }
}

/// A request's tensors as a dataset, counted against the run's limits.
fn admit(
    instance: &mut ModelInstance,
    name: &str,
    inputs: Tensor,
    targets: Option<Tensor>,
    batch_size: usize,
) -> Result<Dataset, String> {
    instance
        .admit_data(&inputs, targets.as_ref(), batch_size)
        .map_err(|e| format!("data.{name}: {e}"))?;
    Dataset::new(inputs, targets, batch_size).map_err(|e| format!("data.{name}: {e}"))
}

/// Reads and splits the CSV file `args` names.
fn read_csv(
    runtime: &Runtime,
    args: &CsvArgs,
    seed: u64,
    limits: &Limits,
) -> Result<CsvTable, String> {
    let val_split = args.val_split.unwrap_or(0.0);
    if !(0.0..1.0).contains(&val_split) {
        return Err(format!(
            "data.csv.val_split must be a fraction in [0, 1), got {val_split}"
        ));
    }
    let dir = runtime.data_dir();
    let (real, bytes) = dir
        .read(&args.path, limits.max_tensor_bytes as u64)
        .map_err(|e| format!("data.csv: {e}"))?;
    let shown = dir.display(&real);
    let spec = CsvSpec {
        target: args.target.clone(),
        features: args.features.clone(),
        header: args.header.unwrap_or(true),
    };
    let table = csv::parse(&shown, &bytes, &spec, limits.max_tensor_elements)
        .map_err(|e| format!("data.csv: {e}"))?;
    let rows = table.rows();
    // At least one row stays for training.
    let held_out = (((rows as f64) * val_split).round() as usize).min(rows.saturating_sub(1));
    let order = Rng::seeded(seed).permutation(rows);
    let (val_rows, train_rows) = order.split_at(held_out.min(rows));
    let (mut train_rows, mut val_rows) = (train_rows.to_vec(), val_rows.to_vec());
    // Held-out rows are drawn at random; each part keeps the file's order.
    train_rows.sort_unstable();
    val_rows.sort_unstable();
    let report = DataReport {
        source: "csv",
        path: shown,
        features: table.features.clone(),
        target: args.target.clone(),
        classes: table.classes.clone(),
        rows,
        train_samples: train_rows.len(),
        val_samples: val_rows.len(),
    };
    Ok(CsvTable {
        table,
        train_rows,
        val_rows,
        report,
    })
}

/// The inputs and targets of `rows` of `table`, on the instance's device.
fn csv_tensors(
    instance: &ModelInstance,
    table: &Table,
    rows: &[usize],
    split: Split,
) -> Result<(Tensor, Option<Tensor>), String> {
    let width = table.features.len();
    let max = instance.limits().max_tensor_elements;
    if rows.len().saturating_mul(width) > max {
        return Err(format!(
            "data.csv: {} rows × {width} features is above the limit of {max} elements per \
             tensor (tensor_elements)",
            rows.len()
        ));
    }
    let device = instance.device();
    let values: Vec<f32> = rows
        .iter()
        .flat_map(|r| {
            table
                .inputs
                .get(r * width..(r + 1) * width)
                .unwrap_or_default()
        })
        .copied()
        .collect();
    let inputs = tensor::from_f32(device, values, &[rows.len(), width])
        .map_err(|e| format!("data.csv: {e}"))?;
    let targets = match (&table.targets, split) {
        (_, Split::Predict) | (None, _) => None,
        (Some(Targets::Classes(all)), _) => Some(tensor::from_i64(
            device,
            rows.iter().filter_map(|r| all.get(*r).copied()).collect(),
            &[rows.len()],
        )),
        (Some(Targets::Values(all)), _) => Some(tensor::from_f32(
            device,
            rows.iter().filter_map(|r| all.get(*r).copied()).collect(),
            &[rows.len()],
        )),
    };
    let targets = targets.transpose().map_err(|e| format!("data.csv: {e}"))?;
    Ok((inputs, targets))
}

/// The model's own data for `split` as a [`Dataset`], if it brings any.
fn own_data(
    instance: &mut ModelInstance,
    split: Split,
    seed: u64,
) -> Result<Option<Dataset>, String> {
    let Some(ModelData {
        inputs,
        targets,
        batch_size,
    }) = instance
        .dataset(split, seed)
        .map_err(|e| format!("the model's {split:?} data: {e}"))?
    else {
        return Ok(None);
    };
    Dataset::new(inputs, targets, batch_size)
        .map(Some)
        .map_err(|e| format!("the model's {split:?} data: {e}"))
}
