//! `lightning.validate`, `lightning.test` and `lightning.predict`: build a registered model and
//! run one of Lightning's evaluation loops over its own data. What `lightning.predict` makes of
//! its outputs is in [`predictions`].

mod predictions;

pub use predictions::PredictOutput;

use super::accelerator::{DeviceReport, Placement};
use super::args::{self, DataArgs, LimitsArg, ModelSpec, TrainerArgs, TrainerOptions};
use super::data::DataReport;
use super::model_run::{self, RunModel, RunRequest, Settled, of_model, run_failed, settle};
use super::schema;
use crate::data::Dataset;
use crate::protocol::{CallContext, ToolDefinition};
use crate::runtime::Runtime;
use crate::sandbox::{Limits, ModelInstance, Split};
use crate::tensor::Tensor;
use crate::trainer::{self, FitObserver, Metrics, Stage, TrainError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Instant;

/// The name of `lightning.validate`.
pub const VALIDATE: &str = "lightning.validate";
/// The name of `lightning.test`.
pub const TEST: &str = "lightning.test";
/// The name of `lightning.predict`.
pub const PREDICT: &str = "lightning.predict";

/// Which loop a call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loop {
    /// `lightning.validate`: `validation-step` on the validation data.
    Validate,
    /// `lightning.test`: `test-step` on the test data.
    Test,
    /// `lightning.predict`: `predict-step` on the prediction inputs.
    Predict,
}

impl Loop {
    /// The loop tool `name` runs, if it is one of these tools.
    pub fn of(name: &str) -> Option<Self> {
        match name {
            VALIDATE => Some(Self::Validate),
            TEST => Some(Self::Test),
            PREDICT => Some(Self::Predict),
            _ => None,
        }
    }

    fn split(self) -> Split {
        match self {
            Self::Validate => Split::Validation,
            Self::Test => Split::Test,
            Self::Predict => Split::Predict,
        }
    }

    /// The key of this loop's data in a request's `data`.
    fn data_key(self) -> &'static str {
        match self {
            Self::Validate => "val",
            Self::Test => "test",
            Self::Predict => "predict",
        }
    }

    /// The tool's name.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Validate => VALIDATE,
            Self::Test => TEST,
            Self::Predict => PREDICT,
        }
    }

    /// The options `tools/list` shows inside this loop's tool's object arguments: those it
    /// uses.
    pub(super) fn shown(self) -> [(&'static str, &'static [&'static str]); 3] {
        let (trainer, data): (&'static [&'static str], &'static [&'static str]) = match self {
            Self::Validate => (
                &["seed", "accelerator", "limit_val_batches"],
                &["val", "csv", "dataset", "input_shape", "batch_size"],
            ),
            Self::Test => (
                &["seed", "accelerator", "limit_test_batches"],
                &["test", "csv", "dataset", "input_shape", "batch_size"],
            ),
            Self::Predict => (
                &["seed", "accelerator", "limit_predict_batches"],
                &["predict", "csv", "dataset", "input_shape", "batch_size"],
            ),
        };
        [
            ("trainer", trainer),
            ("limits", &["timeout_seconds"]),
            ("data", data),
        ]
    }

    fn verb(self) -> &'static str {
        match self {
            Self::Validate => "validation",
            Self::Test => "test",
            Self::Predict => "prediction",
        }
    }
}

/// Arguments of `lightning.validate`, `lightning.test` and `lightning.predict`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateArgs {
    /// The model to build.
    pub model: ModelSpec,
    /// PyTorch Lightning Trainer options.
    ///
    /// `limit_val_batches`, `limit_test_batches` or `limit_predict_batches` bound the loop;
    /// `seed` seeds the model's initialisation and data.
    pub trainer: Option<TrainerArgs>,
    /// Lower limits for this run.
    ///
    /// Each at most the server's.
    pub limits: Option<LimitsArg>,
    /// The checkpoint to load first, e.g. the checkpoint_path lightning.train returned.
    ///
    /// Relative to the server's checkpoint directory; without it the model keeps its
    /// initial weights.
    pub ckpt_path: Option<String>,
    /// Data to run on instead of the model's own.
    ///
    /// `val` (validate), `test` (test) or `predict` (predict), or a CSV file or built-in
    /// dataset.
    pub data: Option<DataArgs>,
    /// lightning.predict only: `text` decodes each row of code points to a string.
    ///
    /// Reads each row of the (i64) predictions as Unicode code points and adds `text`, one
    /// string per row, e.g. a character model's generation.
    pub decode: Option<Decode>,
    /// Run in the background: return a run_id at once (see lightning.runs).
    pub background: Option<bool>,
}

/// How `lightning.predict` decodes its predictions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decode {
    /// Rows of Unicode code points as strings.
    Text,
}

/// A checked call.
#[derive(Debug)]
pub struct Request {
    what: Loop,
    run: RunRequest,
    decode: Option<Decode>,
}

/// What `lightning.validate` and `lightning.test` return.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EvaluateOutput {
    /// `completed`.
    pub status: &'static str,
    /// The model evaluated.
    pub model: RunModel,
    /// The means of what the model logged (`val_loss`, `val_acc` or `test_loss`, `test_acc`,
    /// ...), weighted by batch size.
    pub metrics: Metrics,
    /// Batches evaluated.
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

/// The tool definitions: the three tools share their arguments, each showing the options it
/// uses.
pub(super) fn definitions() -> [ToolDefinition; 3] {
    let definition = |what: Loop, title, description| {
        let mut input_schema = schema::listed::<EvaluateArgs>(&what.shown());
        // `decode` is lightning.predict's alone: the other loops refuse it unlisted.
        if what != Loop::Predict
            && let Some(Value::Object(properties)) = input_schema.get_mut("properties")
        {
            properties.shift_remove("decode");
        }
        ToolDefinition {
            name: what.name(),
            title,
            description,
            input_schema,
        }
    };
    [
        definition(
            Loop::Validate,
            "Validate a model",
            "Builds a registered model (model._target_ plus hyperparameters) in the sandbox, \
             loads ckpt_path and runs Lightning's validation loop over the model's validation \
             data or `data.val`. Returns metrics (val_loss, val_acc, ...).",
        ),
        definition(
            Loop::Test,
            "Test a model",
            "Builds a registered model in the sandbox, loads ckpt_path and runs Lightning's \
             test loop over the model's test data or `data.test`. Returns metrics (test_loss, \
             test_acc, ...).",
        ),
        definition(
            Loop::Predict,
            "Predict with a model",
            "Builds a registered model in the sandbox, loads ckpt_path and runs Lightning's \
             prediction loop over the model's prediction inputs or `data.predict`. Returns \
             predictions (each batch's output as nested lists) and, for a classifier, \
             predicted_class (and predicted_label for text labels).",
        ),
    ]
}

impl Request {
    /// What every run tool's request has.
    pub(super) fn run(&self) -> &RunRequest {
        &self.run
    }
}

/// Parses and checks the arguments of the `what` tool against the server's `limits`.
pub(super) fn parse(what: Loop, arguments: &Value, limits: &Limits) -> Result<Request, String> {
    let args: EvaluateArgs = args::parse(arguments)?;
    if args.decode.is_some() && what != Loop::Predict {
        return Err("decode applies to lightning.predict only".into());
    }
    Ok(Request {
        what,
        run: RunRequest {
            data: args.data,
            ckpt_path: args.ckpt_path,
            background: args.background.unwrap_or(false),
            ..RunRequest::new(args.model, args.trainer, args.limits, limits)?
        },
        decode: args.decode,
    })
}

/// Stops a loop when the call is cancelled.
struct Cancellation<'a, 'b>(&'a CallContext<'b>);

impl FitObserver for Cancellation<'_, '_> {
    fn cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
}

/// What a finished loop leaves for its result.
struct Executed {
    model: RunModel,
    ckpt_path: Option<String>,
    outcome: Outcome,
}

/// What the loop produced.
enum Outcome {
    /// Validation or test: the logged metrics' means, over this many batches.
    Metrics(Metrics, usize),
    /// Prediction: each batch's output.
    Predictions(Vec<Tensor>),
}

/// Runs a checked validate, test or predict call at `placement`: settled (the model
/// resolved, the data loaded, the hyperparameters settled against the data and the
/// checkpoint), executed, recorded.
pub(super) fn run(
    runtime: &Runtime,
    request: Request,
    placement: &Placement,
    ctx: &CallContext,
) -> Result<Value, String> {
    let started = Instant::now();
    let Request { what, run, decode } = request;
    let target = run.model.target.clone();
    of_model(runtime, &target, |model| {
        let splits = [what.split()];
        let mut settled = settle(runtime, model, run, false, (&splits, true))?;
        let executed = execute(runtime, what, &mut settled, placement, ctx)?;
        let report = Report {
            runtime,
            settled: &settled,
            placement,
            started,
        };
        match executed.outcome {
            Outcome::Metrics(metrics, num_batches) => {
                report.metrics(executed.model, executed.ckpt_path, metrics, num_batches)
            }
            Outcome::Predictions(outputs) => {
                report.predictions(executed.model, executed.ckpt_path, &outputs, decode)
            }
        }
    })
}

/// Builds the model at `placement`, loads the checkpoint into it and runs the loop.
fn execute(
    runtime: &Runtime,
    what: Loop,
    settled: &mut Settled,
    placement: &Placement,
    ctx: &CallContext,
) -> Result<Executed, String> {
    // The run slot is held while `built` lives.
    let mut built = model_run::build(runtime, settled, placement, ctx)?;
    let instance = &mut built.instance;
    let batches = settled
        .data
        .split(instance, what.split(), true)?
        .ok_or_else(|| {
            format!(
                "the model brings no {} data of its own: give data.{}",
                what.verb(),
                what.data_key()
            )
        })?;
    let model = RunModel::of(&settled.model, instance);
    let outcome = run_loop(what, instance, &batches, &settled.options, ctx)
        .map_err(|e| run_failed(what.verb(), e))?;
    Ok(Executed {
        model,
        ckpt_path: built.restored.map(|r| r.shown),
        outcome,
    })
}

/// Lightning's `what` loop over `batches`, within its batch limit.
fn run_loop(
    what: Loop,
    instance: &mut ModelInstance,
    batches: &Dataset,
    options: &TrainerOptions,
    ctx: &CallContext,
) -> Result<Outcome, TrainError> {
    let observer = Cancellation(ctx);
    let (stage, limit) = match what {
        Loop::Predict => {
            let limit = options.limit_predict_batches;
            let outputs = trainer::predict(instance, batches, limit, &observer)?;
            return Ok(Outcome::Predictions(outputs));
        }
        Loop::Test => (Stage::Test, options.limit_test_batches),
        Loop::Validate => (Stage::Validation, options.fit.limit_val_batches),
    };
    let metrics = trainer::evaluate(instance, batches, limit, stage, &observer)?;
    Ok(Outcome::Metrics(
        metrics,
        limit.apply(batches.num_batches()),
    ))
}

/// What a result is made from besides the loop's outcome.
struct Report<'a> {
    runtime: &'a Runtime,
    settled: &'a Settled,
    placement: &'a Placement,
    started: Instant,
}

impl Report<'_> {
    /// The result of validate or test: the metrics.
    fn metrics(
        &self,
        model: RunModel,
        ckpt_path: Option<String>,
        metrics: Metrics,
        num_batches: usize,
    ) -> Result<Value, String> {
        let output = EvaluateOutput {
            status: "completed",
            model,
            metrics,
            num_batches,
            ckpt_path,
            data: self.settled.data.report(),
            device: self.placement.report(),
            duration_seconds: self.started.elapsed().as_secs_f64(),
        };
        serde_json::to_value(output).map_err(|e| format!("cannot write the result: {e}"))
    }
}
