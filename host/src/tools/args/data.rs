//! Data a request gives instead of the model's own (`data`).

use crate::sandbox::Split;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

/// What a data option left out means: the option's `default` in its schema, and what the
/// accessors below return.
mod default {
    pub const BATCH_SIZE: u64 = 32;
    pub const SHUFFLE: bool = false;
    pub const HEADER: bool = true;
    pub const VAL_SPLIT: f64 = 0.0;
}

/// Data given in the request instead of the model's own: inline arrays per split, a CSV file
/// or a built-in dataset.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataArgs {
    /// Training data: {inputs, targets}.
    pub train: Option<LabelledData>,
    /// Validation data: {inputs, targets}.
    pub val: Option<LabelledData>,
    /// Test data: {inputs, targets}.
    pub test: Option<LabelledData>,
    /// Inputs to predict: {inputs}.
    pub predict: Option<InputsData>,
    /// A CSV file under the server's data directory: {path, target, ...}.
    ///
    /// Instead of `train`/`val`/`test`/`predict`; help topic `data` lists its options.
    pub csv: Option<CsvArgs>,
    /// A built-in dataset: `iris` or `digits`.
    ///
    /// Instead of the other sources: fixed training, validation and test splits (the test
    /// rows are also the prediction inputs).
    pub dataset: Option<String>,
    /// One sample's input shape, e.g. `[1, 8, 8]` to see 64 columns as an image.
    ///
    /// Or `[64]` to see an image as a vector: the same number of values per sample.
    pub input_shape: Option<Vec<usize>>,
    /// Samples per batch.
    #[schemars(range(min = 1), extend("default" = default::BATCH_SIZE))]
    pub batch_size: Option<u64>,
    /// Reshuffle the training data every epoch.
    ///
    /// Seeded by `trainer.seed`, as PyTorch's `DataLoader(shuffle=True)`.
    #[schemars(extend("default" = default::SHUFFLE))]
    pub shuffle: Option<bool>,
}

/// A CSV file as data: feature columns as inputs, a target column as targets.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvArgs {
    /// The file, relative to the server's data directory (`--data-dir`).
    pub path: String,
    /// The target column: its name, or its index without a header.
    ///
    /// Text labels become class indices in sorted order (reported as `data.classes`); whole
    /// numbers are class indices; other numbers are values (regression). Absent: inputs only
    /// (prediction).
    pub target: Option<String>,
    /// The feature columns, in order (default: every column but the target).
    #[serde(default)]
    pub features: Vec<String>,
    /// Whether the first row names the columns.
    #[schemars(extend("default" = default::HEADER))]
    pub header: Option<bool>,
    /// The fraction of rows held out as validation data.
    ///
    /// Drawn with `trainer.seed`.
    #[schemars(extend("default" = default::VAL_SPLIT))]
    pub val_split: Option<f64>,
}

/// Samples with targets.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelledData {
    /// One row per sample, nested arrays of numbers (e.g. `[[5.1, 3.5], [4.9, 3.0]]`), as f32.
    #[schemars(with = "Vec<Value>")]
    pub inputs: Value,
    /// One target per sample.
    ///
    /// Whole numbers (`2` or `2.0`) are class indices for a classifier; other numbers are
    /// values (f32, regression).
    #[schemars(with = "Vec<Value>")]
    pub targets: Value,
}

/// Samples without targets.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputsData {
    /// One row per sample, nested arrays of numbers, as f32.
    #[schemars(with = "Vec<Value>")]
    pub inputs: Value,
}

impl DataArgs {
    /// The request's `(name, inputs, targets)` for `split`, if it gives that split.
    pub fn split(&self, split: Split) -> Option<(&'static str, &Value, Option<&Value>)> {
        match split {
            Split::Train => self
                .train
                .as_ref()
                .map(|d| ("train", &d.inputs, Some(&d.targets))),
            Split::Validation => self
                .val
                .as_ref()
                .map(|d| ("val", &d.inputs, Some(&d.targets))),
            Split::Test => self
                .test
                .as_ref()
                .map(|d| ("test", &d.inputs, Some(&d.targets))),
            Split::Predict => self.predict.as_ref().map(|d| ("predict", &d.inputs, None)),
        }
    }

    /// Whether the request gives any split as nested arrays.
    pub fn has_arrays(&self) -> bool {
        self.train.is_some() || self.val.is_some() || self.test.is_some() || self.predict.is_some()
    }

    /// The batch size of the request's data.
    pub fn batch_size(&self) -> Result<usize, String> {
        match self.batch_size.unwrap_or(default::BATCH_SIZE) {
            0 => Err("data.batch_size must be at least 1".into()),
            n => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        }
    }

    /// Whether the training data is reshuffled every epoch.
    pub fn shuffle(&self) -> bool {
        self.shuffle.unwrap_or(default::SHUFFLE)
    }
}

impl CsvArgs {
    /// Whether the first row names the columns.
    pub fn header(&self) -> bool {
        self.header.unwrap_or(default::HEADER)
    }

    /// The fraction of rows held out as validation data.
    pub fn val_split(&self) -> f64 {
        self.val_split.unwrap_or(default::VAL_SPLIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_default_the_schema_shows_is_what_leaving_the_option_out_means() {
        let data = |v: Value| -> DataArgs { serde_json::from_value(v).expect("data parses") };
        let seen = |d: DataArgs| (d.batch_size().ok(), d.shuffle());
        let csv = |v: Value| -> CsvArgs { serde_json::from_value(v).expect("csv parses") };
        let read = |c: CsvArgs| (c.header(), c.val_split());
        let mut shown = 0;
        for (name, schema) in crate::tools::schema::options::<DataArgs>() {
            if let Some(default) = schema.get("default") {
                let given = seen(data(json!({&name: default})));
                assert_eq!(given, seen(data(json!({}))), "{name}");
                shown += 1;
            }
        }
        for (name, schema) in crate::tools::schema::options::<CsvArgs>() {
            if let Some(default) = schema.get("default") {
                let given = read(csv(json!({"path": "a.csv", &name: default})));
                assert_eq!(given, read(csv(json!({"path": "a.csv"}))), "{name}");
                shown += 1;
            }
        }
        assert_eq!(shown, 5, "options that show their default");
    }
}
