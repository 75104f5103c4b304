//! The data a tool call runs on, split by split: what the request gives — nested arrays, a
//! CSV file under `--data-dir` or a built-in dataset by name — else the model's own `dataset`
//! hook.

use super::args::{CsvArgs, DataArgs};
use crate::data::Dataset;
use crate::data::builtin::BuiltinDataset;
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
    /// `csv` (a file) or `dataset` (built in).
    pub source: &'static str,
    /// The file, relative to the data directory (`csv`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The built-in dataset's name, description and origin (`dataset`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetInfo>,
    /// The feature columns, in input order.
    pub features: Vec<String>,
    /// The target column, if any.
    pub target: Option<String>,
    /// The class labels by index, when the target column held text.
    pub classes: Option<Vec<String>>,
    /// The shape of one sample's inputs.
    pub input_shape: Vec<usize>,
    /// Rows in the file.
    pub rows: usize,
    /// Rows used for training.
    pub train_samples: usize,
    /// Rows held out for validation.
    pub val_samples: usize,
    /// Rows held out for test and prediction (a built-in dataset's; a file's test and
    /// prediction use every row).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_samples: Option<usize>,
}

/// What a result says of a built-in dataset.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct DatasetInfo {
    /// Its name.
    pub name: &'static str,
    /// What it is.
    pub description: &'static str,
    /// Where it comes from, and its licence.
    pub source: &'static str,
}

/// The data of one call.
pub(super) struct CallData {
    args: Option<DataArgs>,
    table: Option<LoadedTable>,
    seed: u64,
}

/// A table of samples (a CSV file or a built-in dataset) and its rows for each split.
struct LoadedTable {
    table: Table,
    train_rows: Vec<usize>,
    val_rows: Vec<usize>,
    /// `None`: test and prediction use every row.
    test_rows: Option<Vec<usize>>,
    /// One sample's input shape.
    sample_shape: Vec<usize>,
    /// Input values are multiplied by this.
    scale: f32,
    report: DataReport,
}

impl CallData {
    /// The call's `data` (reading its CSV file, if it names one, under the runtime's data
    /// directory, within the run's `limits`); `seed` draws a CSV file's validation split and
    /// the shuffling.
    pub(super) fn load(
        runtime: &Runtime,
        args: Option<DataArgs>,
        seed: u64,
        limits: &Limits,
    ) -> Result<Self, String> {
        let table = match &args {
            None => None,
            Some(args) => {
                let arrays = args.has_arrays();
                match (&args.csv, &args.dataset) {
                    (Some(_), Some(_)) => {
                        return Err("data.csv and data.dataset cannot be combined".into());
                    }
                    (Some(_), None) | (None, Some(_)) if arrays => {
                        return Err(format!(
                            "data.{} cannot be combined with data.train, val, test or predict",
                            if args.csv.is_some() { "csv" } else { "dataset" }
                        ));
                    }
                    (Some(csv), None) => Some(read_csv(runtime, csv, seed, limits)?),
                    (None, Some(name)) => Some(read_builtin(name, limits)?),
                    (None, None) => None,
                }
            }
        };
        let input_shape = args.as_ref().and_then(|a| a.input_shape.as_deref());
        if let Some(shape) = input_shape {
            checked_sample_size(shape)?;
            if table.is_none() && !args.as_ref().is_some_and(DataArgs::has_arrays) {
                return Err(
                    "data.input_shape reshapes data.csv, data.dataset or the request's \
                            data.train/val/test/predict; a model's own data keeps its shape"
                        .into(),
                );
            }
        }
        let table = table.map(|t| t.reshaped(input_shape)).transpose()?;
        Ok(Self { args, table, seed })
    }

    /// Whether the request gives training data of its own (`data.train` or `data.csv`).
    pub(super) fn gives_training_data(&self) -> bool {
        self.args
            .as_ref()
            .is_some_and(|d| d.train.is_some() || d.csv.is_some())
    }

    /// What the result says of the data, when it came from a table.
    pub(super) fn report(&self) -> Option<DataReport> {
        self.table.as_ref().map(|t| t.report.clone())
    }

    /// The data of `split`: the request's when it gives that split (checked against the run's
    /// limits and, for training, reshuffled each epoch when asked), else the model's own;
    /// `None` when neither has any. From a table, each split gets its rows; a CSV file's test
    /// and prediction splits — and, with no validation rows and `whole`, its validation
    /// split — get every row.
    pub(super) fn split(
        &self,
        instance: &mut ModelInstance,
        split: Split,
        whole: bool,
    ) -> Result<Option<Dataset>, String> {
        let given = DataArgs::default();
        let args = self.args.as_ref().unwrap_or(&given);
        let shuffle = split == Split::Train && args.shuffle();
        let batch_size = args.batch_size()?;
        let dataset = if let Some(loaded) = &self.table {
            let rows = loaded.rows(split, whole);
            if rows.is_empty() {
                None
            } else {
                let (inputs, targets) = table_tensors(instance, loaded, &rows, split)?;
                Some(admit(
                    instance,
                    loaded.report.source,
                    inputs,
                    targets,
                    batch_size,
                )?)
            }
        } else if let Some((name, inputs, targets)) = args.split(split) {
            let device = instance.device().clone();
            let max = instance.limits().max_tensor_elements;
            let parse = |what: &str, value: &Value, element| {
                json::tensor(&format!("data.{name}.{what}"), value, element, &device, max)
                    .map_err(|e| e.to_string())
            };
            let inputs = parse("inputs", inputs, Element::Float)?;
            let inputs = match args.input_shape.as_deref() {
                Some(shape) => reshape_samples(&inputs, shape)
                    .map_err(|e| format!("data.{name}.inputs: {e}"))?,
                None => inputs,
            };
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

impl CallData {
    /// What the request's data says of the model that fits it, for the loops over `splits`
    /// (`whole` as in [`CallData::split`]); `None` when the model brings its own data.
    pub(super) fn facts(&self, splits: &[Split], whole: bool) -> Option<DataFacts> {
        if let Some(loaded) = &self.table {
            return Some(loaded.facts(splits, whole));
        }
        let args = self.args.as_ref()?;
        let given: Vec<_> = splits.iter().filter_map(|s| args.split(*s)).collect();
        let (name, inputs, _) = given.first()?;
        let sample_shape = match &args.input_shape {
            Some(shape) => shape.clone(),
            None => json::shape_of(inputs).into_iter().skip(1).collect(),
        };
        let targets = given
            .iter()
            .filter_map(|(name, _, targets)| {
                Some(TargetFacts {
                    field: format!("data.{name}.targets"),
                    table_rows: None,
                    values: target_values(targets.as_ref()?)?,
                })
            })
            .collect();
        Some(DataFacts {
            source: format!("data.{name}.inputs"),
            sample_shape,
            labels: None,
            targets,
        })
    }
}

/// What a call's data says of the model that fits it: see [`super::sizes`].
#[derive(Debug)]
pub(super) struct DataFacts {
    /// Where the inputs come from, as the request names it (`data.csv`, `data.train.inputs`).
    pub source: String,
    /// One sample's input shape.
    pub sample_shape: Vec<usize>,
    /// How many classes the targets name, when they were text labels (a file's or a
    /// built-in dataset's).
    pub labels: Option<usize>,
    /// Each set of targets the call uses.
    pub targets: Vec<TargetFacts>,
}

/// One set of targets, and how to name each row of it.
#[derive(Debug)]
pub(super) struct TargetFacts {
    /// The request field, e.g. `data.train.targets` or `data.csv (iris.csv) column species`.
    pub field: String,
    /// A table's row of each target, for naming it; `None` for a request's array.
    pub table_rows: Option<Vec<usize>>,
    /// The targets.
    pub values: Targets,
}

impl TargetFacts {
    /// Names target `k`: `data.train.targets[k]`, or a table's row (counted from 1, the
    /// header apart).
    pub fn row(&self, k: usize) -> String {
        match &self.table_rows {
            Some(rows) => format!(
                "{} row {}",
                self.field,
                rows.get(k).copied().unwrap_or(k).saturating_add(1)
            ),
            None => format!("{}[{k}]", self.field),
        }
    }
}

/// A request's flat array of numeric targets: class indices when all are whole numbers,
/// else values; `None` for any other shape (the loss will say what it needs).
fn target_values(targets: &Value) -> Option<Targets> {
    let numbers = targets.as_array()?;
    if let Some(indices) = numbers.iter().map(json::whole).collect() {
        return Some(Targets::Classes(indices));
    }
    numbers
        .iter()
        .map(|n| n.as_f64().map(|v| v as f32))
        .collect::<Option<Vec<_>>>()
        .map(Targets::Values)
}

/// `inputs` `[n, ...]` as `[n] ++ shape`, when that holds the same values per sample.
fn reshape_samples(inputs: &Tensor, shape: &[usize]) -> Result<Tensor, String> {
    let dims = inputs.shape();
    let n = dims.first().copied().unwrap_or(0);
    let per_sample: usize = dims.iter().skip(1).product();
    let wanted = checked_sample_size(shape)?;
    if wanted != per_sample {
        return Err(format!(
            "data.input_shape {shape:?} holds {wanted} values, but each sample has {per_sample} \
             ({:?})",
            dims.get(1..).unwrap_or_default()
        ));
    }
    let mut full = vec![n];
    full.extend(shape);
    tensor::reshape(inputs, &full.iter().map(|d| *d as i64).collect::<Vec<_>>())
        .map_err(|e| e.to_string())
}

/// The number of values in one sample of `shape` (rank 1 to 5: the batch dim makes 6).
fn checked_sample_size(shape: &[usize]) -> Result<usize, String> {
    if shape.is_empty() || shape.len() >= tensor::MAX_RANK || shape.contains(&0) {
        return Err(format!(
            "data.input_shape must be 1 to {} dims of at least 1, got {shape:?}",
            tensor::MAX_RANK - 1
        ));
    }
    shape
        .iter()
        .try_fold(1usize, |acc, d| acc.checked_mul(*d))
        .ok_or_else(|| format!("data.input_shape {shape:?} is too large"))
}

impl LoadedTable {
    /// The rows of `split`: each split gets its rows; a CSV file's test and prediction
    /// splits — and, with no validation rows and `whole`, its validation split — get every
    /// row.
    fn rows(&self, split: Split, whole: bool) -> std::borrow::Cow<'_, [usize]> {
        use std::borrow::Cow;
        match (split, &self.test_rows) {
            (Split::Train, _) => Cow::Borrowed(&self.train_rows),
            (Split::Validation, _) if !self.val_rows.is_empty() => Cow::Borrowed(&self.val_rows),
            (Split::Validation, _) if !whole => Cow::Borrowed(&[]),
            (Split::Test | Split::Predict, Some(test)) => Cow::Borrowed(test),
            _ => Cow::Owned((0..self.table.rows()).collect()),
        }
    }

    /// What the table says of the model that fits it, for the loops over `splits`.
    fn facts(&self, splits: &[Split], whole: bool) -> DataFacts {
        let field = match &self.report.path {
            Some(path) => format!("data.csv ({path})"),
            None => format!(
                "data.dataset {}",
                self.report.dataset.as_ref().map_or("", |d| d.name)
            ),
        };
        let column = self.report.target.as_deref().unwrap_or_default();
        let targets = splits
            .iter()
            .filter(|s| **s != Split::Predict)
            .filter_map(|split| {
                let rows = self.rows(*split, whole).into_owned();
                let values = match self.table.targets.as_ref()? {
                    Targets::Classes(all) => {
                        Targets::Classes(rows.iter().filter_map(|r| all.get(*r).copied()).collect())
                    }
                    Targets::Values(all) => {
                        Targets::Values(rows.iter().filter_map(|r| all.get(*r).copied()).collect())
                    }
                };
                Some(TargetFacts {
                    field: format!("{field} column {column}"),
                    table_rows: Some(rows),
                    values,
                })
            })
            .collect();
        DataFacts {
            source: field,
            sample_shape: self.sample_shape.clone(),
            labels: self.table.classes.as_ref().map(Vec::len),
            targets,
        }
    }

    /// The table with samples of `shape`, when the request asks for one.
    fn reshaped(mut self, shape: Option<&[usize]>) -> Result<Self, String> {
        if let Some(shape) = shape {
            let width = self.table.features.len();
            let wanted = checked_sample_size(shape)?;
            if wanted != width {
                return Err(format!(
                    "data.input_shape {shape:?} holds {wanted} values, but each row has {width} \
                     features"
                ));
            }
            self.sample_shape = shape.to_vec();
            self.report.input_shape = shape.to_vec();
        }
        Ok(self)
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
) -> Result<LoadedTable, String> {
    let val_split = args.val_split();
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
        header: args.header(),
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
    let width = table.features.len();
    let report = DataReport {
        source: "csv",
        path: Some(shown),
        dataset: None,
        features: table.features.clone(),
        target: args.target.clone(),
        classes: table.classes.clone(),
        input_shape: vec![width],
        rows,
        train_samples: train_rows.len(),
        val_samples: val_rows.len(),
        test_samples: None,
    };
    Ok(LoadedTable {
        table,
        train_rows,
        val_rows,
        test_rows: None,
        sample_shape: vec![width],
        scale: 1.0,
        report,
    })
}

/// Parses and splits the built-in dataset `name`.
fn read_builtin(name: &str, limits: &Limits) -> Result<LoadedTable, String> {
    let d = BuiltinDataset::find(name).map_err(|e| format!("data.dataset: {e}"))?;
    let spec = CsvSpec {
        target: Some(d.target.to_string()),
        features: Vec::new(),
        header: true,
    };
    let table = csv::parse(d.name, d.csv, &spec, limits.max_tensor_elements)
        .map_err(|e| format!("data.dataset: {e}"))?;
    let splits = d.splits(table.rows());
    let report = DataReport {
        source: "dataset",
        path: None,
        dataset: Some(DatasetInfo {
            name: d.name,
            description: d.description,
            source: d.source,
        }),
        features: table.features.clone(),
        target: Some(d.target.to_string()),
        classes: table.classes.clone(),
        input_shape: d.sample_shape.to_vec(),
        rows: table.rows(),
        train_samples: splits.train.len(),
        val_samples: splits.val.len(),
        test_samples: Some(splits.test.len()),
    };
    Ok(LoadedTable {
        table,
        train_rows: splits.train,
        val_rows: splits.val,
        test_rows: Some(splits.test),
        sample_shape: d.sample_shape.to_vec(),
        scale: d.scale,
        report,
    })
}

/// The inputs (`[rows] ++ sample shape`, scaled) and targets of `rows` of a table, on the
/// instance's device.
fn table_tensors(
    instance: &ModelInstance,
    loaded: &LoadedTable,
    rows: &[usize],
    split: Split,
) -> Result<(Tensor, Option<Tensor>), String> {
    let table = &loaded.table;
    let source = loaded.report.source;
    let width = table.features.len();
    let max = instance.limits().max_tensor_elements;
    if rows.len().saturating_mul(width) > max {
        return Err(format!(
            "data.{source}: {} rows × {width} features is above the limit of {max} elements per \
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
        .map(|v| v * loaded.scale)
        .collect();
    let mut shape = vec![rows.len()];
    shape.extend(&loaded.sample_shape);
    let inputs =
        tensor::from_f32(device, values, &shape).map_err(|e| format!("data.{source}: {e}"))?;
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
    let targets = targets
        .transpose()
        .map_err(|e| format!("data.{source}: {e}"))?;
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
