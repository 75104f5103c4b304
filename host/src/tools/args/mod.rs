//! Argument types shared by the tools, parsed with serde (errors name the field) and described
//! with schemars (so the schemas `tools/list` and help show cannot drift from the parser): one
//! module a concern — the trainer's options, its callbacks, devices, limits and data.

mod callbacks;
mod data;
mod devices;
mod limits;
mod trainer;

pub use callbacks::{EarlyStoppingArg, ModelCheckpointArg};
pub use data::{CsvArgs, DataArgs};
pub use devices::Accelerator;
pub use limits::LimitsArg;
pub use trainer::{TrainerArgs, TrainerOptions};

use super::bounds::Bounds;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Parses tool arguments into `T` after checking them against [`Bounds::ARGUMENTS`]; the
/// error names the offending field.
pub fn parse<T: DeserializeOwned>(arguments: &Value) -> Result<T, String> {
    parse_within(arguments, &Bounds::ARGUMENTS)
}

/// Parses tool arguments into `T` after checking them against `bounds`.
pub fn parse_within<T: DeserializeOwned>(arguments: &Value, bounds: &Bounds) -> Result<T, String> {
    bounds.check(arguments)?;
    serde_path_to_error::deserialize(arguments).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            format!("invalid arguments: {inner}")
        } else {
            format!("invalid arguments: {path}: {inner}")
        }
    })
}

/// A registered `_target_` and its hyperparameters as further keys.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub struct ModelSpec {
    /// A registered model, e.g. `lightning_mcp.models.mlp.MLP` (inspect what=models).
    ///
    /// Never a path or an import.
    #[serde(rename = "_target_")]
    pub target: String,
    /// Every other key is a hyperparameter of the model (e.g. `input_dim`, `num_classes`,
    /// `lr`); unknown or mistyped ones are an error that names them.
    #[serde(flatten)]
    pub hyperparameters: Map<String, Value>,
}

impl ModelSpec {
    /// The hyperparameters as the JSON object the guest's `init` receives.
    pub fn hyperparameters_json(&self) -> String {
        Value::Object(self.hyperparameters.clone()).to_string()
    }
}
