//! The MCP tools, one module each, behind one [`ToolProvider`]: `lightning.train`,
//! `lightning.validate`, `lightning.test` and `lightning.predict` (one module),
//! `lightning.checkpoint`, `lightning.inspect` and, when uploads are on, `lightning.register`. A call is parsed first
//! — arguments within [`Bounds`], into typed structs (whose schema `tools/list` shows), limits
//! resolved — then run on the shared [`Runtime`], returning the Python project's result
//! shapes.

pub mod accelerator;
mod args;
mod bounds;
mod checkpoint;
mod data;
mod evaluate;
mod help;
mod inspect;
mod model_run;
mod register;
mod results;
mod running;
mod runs;
mod schema;
mod sizes;
mod train;
pub mod worker;

pub use args::{Accelerator, DataArgs, LimitsArg, ModelSpec, TrainerArgs};
pub use bounds::Bounds;

use crate::protocol::{
    CallContext, CallToolResult, TaskInfo, TaskStore, TaskSupport, ToolDefinition, ToolProvider,
};
use crate::runs::{Origin, Runs};
use crate::runtime::Runtime;
use crate::sandbox::Limits;
use accelerator::{DeviceRequest, Placement};
use serde_json::Value;
use std::sync::Arc;

/// The lightning tools over one runtime, recording their model runs in one run store.
#[derive(Clone, Debug)]
pub struct Tools {
    runtime: Arc<Runtime>,
    gpu_workers: Arc<worker::Pool>,
    runs: Arc<Runs>,
}

/// A tool call whose arguments parsed and passed every check, ready to run.
#[derive(Debug)]
pub enum ParsedCall {
    /// `lightning.train`.
    Train(Box<train::Request>),
    /// `lightning.validate`, `lightning.test` or `lightning.predict`.
    Evaluate(Box<evaluate::Request>),
    /// `lightning.checkpoint`.
    Checkpoint(Box<checkpoint::Request>),
    /// `lightning.inspect`.
    Inspect(inspect::Request),
    /// `lightning.register`.
    Register(register::Request),
    /// `lightning.runs`.
    Runs(runs::Request),
}

impl Tools {
    /// Tools that run on `runtime`, recording their runs in `runs`.
    pub fn new(runtime: Arc<Runtime>, runs: Arc<Runs>) -> Self {
        Self {
            runtime,
            gpu_workers: Arc::default(),
            runs,
        }
    }

    /// The runs these tools record.
    pub fn runs(&self) -> &Runs {
        &self.runs
    }

    /// The runtime the tools run on.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Parses and checks the arguments of tool `name`: `None` for a tool this server does not
    /// offer, else the call ready to run or an error naming the offending field.
    pub fn parse(&self, name: &str, arguments: &Value) -> Option<Result<ParsedCall, String>> {
        let limits = self.runtime.limits();
        Some(match name {
            train::NAME => train::parse(arguments, limits).map(|r| ParsedCall::Train(Box::new(r))),
            inspect::NAME => inspect::parse(arguments, limits).map(ParsedCall::Inspect),
            checkpoint::NAME => {
                checkpoint::parse(arguments, limits).map(|r| ParsedCall::Checkpoint(Box::new(r)))
            }
            _ if let Some(what) = evaluate::Loop::of(name) => {
                evaluate::parse(what, arguments, limits).map(|r| ParsedCall::Evaluate(Box::new(r)))
            }
            register::NAME => {
                let uploads = self.runtime.uploads()?;
                register::parse(arguments, uploads).map(ParsedCall::Register)
            }
            runs::NAME => runs::parse(arguments).map(ParsedCall::Runs),
            _ => return None,
        })
    }

    /// Runs a parsed call at `placement` in this process.
    fn run(
        &self,
        call: ParsedCall,
        placement: &Placement,
        ctx: &CallContext,
    ) -> Result<CallToolResult, String> {
        let structured = match call {
            ParsedCall::Train(request) => {
                return train::run(&self.runtime, *request, placement, ctx);
            }
            ParsedCall::Evaluate(request) => evaluate::run(&self.runtime, *request, placement, ctx),
            ParsedCall::Checkpoint(request) => checkpoint::run(&self.runtime, *request, ctx),
            ParsedCall::Inspect(request) => inspect::run(&self.runtime, &self.runs, request, ctx),
            ParsedCall::Register(request) => register::run(&self.runtime, &self.runs, request, ctx),
            ParsedCall::Runs(request) => return runs::run(&self.runs, request),
        };
        structured.map(CallToolResult::success)
    }

    /// Parses tool call `name` and runs it at `placement` in this process, whatever its
    /// `accelerator` says (a GPU worker runs the call its server placed).
    pub fn run_placed(
        &self,
        name: &str,
        arguments: &Value,
        placement: &Placement,
        ctx: &CallContext,
    ) -> CallToolResult {
        let outcome = match self.parse(name, arguments) {
            Some(Ok(call)) => self.run(call, placement, ctx),
            Some(Err(message)) => Err(message),
            None => Err(format!("unknown tool: {name}")),
        };
        outcome.unwrap_or_else(|message| failed(name, message))
    }

    /// Places a parsed call and runs it: in this process on the CPU, in a worker process on
    /// a GPU.
    fn place_and_run(
        &self,
        name: &str,
        arguments: Value,
        call: ParsedCall,
        ctx: &CallContext,
    ) -> Result<CallToolResult, String> {
        let (placement, limits) = match call.model_run() {
            Some((accelerator, devices, limits)) => (
                accelerator::place(accelerator, devices, || self.runtime.gpu_adapters())?,
                limits,
            ),
            None => (Placement::Cpu, self.runtime.limits()),
        };
        match &placement {
            // A worker is sent the arguments as given.
            Placement::Gpu(adapter) => {
                let _slot = self
                    .runtime
                    .run_slot(limits, ctx.cancel_token())
                    .map_err(|e| e.to_string())?;
                ctx.started();
                self.gpu_workers
                    .run(&self.runtime, name, arguments, adapter, ctx)
            }
            Placement::Cpu => self.run(call, &placement, ctx),
        }
    }
}

impl ParsedCall {
    /// The request's common part, for a call that is a model run (train, validate, test,
    /// predict).
    fn run_request(&self) -> Option<&model_run::RunRequest> {
        match self {
            Self::Train(request) => Some(request.run()),
            Self::Evaluate(request) => Some(request.run()),
            Self::Checkpoint(_) | Self::Inspect(_) | Self::Register(_) | Self::Runs(_) => None,
        }
    }

    /// The accelerator and devices a model run asks for, and its limits; `None` for calls
    /// that run no model loop (they run on the CPU).
    fn model_run(&self) -> Option<(Accelerator, DeviceRequest, &Limits)> {
        let run = self.run_request()?;
        Some((run.options.accelerator, run.options.devices, &run.limits))
    }

    /// The model target of a call that is a run, and whether it asked to run in the
    /// background.
    fn run_of(&self) -> Option<(&str, bool)> {
        let run = self.run_request()?;
        Some((&run.model.target, run.background))
    }
}

/// A failed call's result, logged.
fn failed(tool: &str, message: String) -> CallToolResult {
    tracing::info!(tool, "tool call failed: {message}");
    CallToolResult::error(message)
}

impl ToolProvider for Tools {
    fn names(&self) -> Vec<&'static str> {
        let mut names = vec![
            train::NAME,
            evaluate::VALIDATE,
            evaluate::TEST,
            evaluate::PREDICT,
            runs::NAME,
            checkpoint::NAME,
            inspect::NAME,
        ];
        if self.runtime.uploads().is_some() {
            names.push(register::NAME);
        }
        names
    }

    fn tools(&self) -> Vec<ToolDefinition> {
        let mut tools = vec![train::definition()];
        tools.extend(evaluate::definitions());
        tools.push(runs::definition());
        tools.push(checkpoint::definition());
        tools.push(inspect::definition());
        if let Some(uploads) = self.runtime.uploads() {
            tools.push(register::definition(uploads));
        }
        tools
    }

    fn task_support(&self, name: &str) -> TaskSupport {
        if name == train::NAME || evaluate::Loop::of(name).is_some() {
            TaskSupport::Optional
        } else {
            TaskSupport::Forbidden
        }
    }

    fn start_task(
        &self,
        name: &str,
        arguments: Value,
        ttl: Option<std::time::Duration>,
    ) -> Result<TaskInfo, CallToolResult> {
        let refused = |message: String| failed(name, message);
        let call = match self.parse(name, &arguments) {
            Some(Ok(call)) => call,
            Some(Err(message)) => return Err(refused(message)),
            None => return Err(refused(format!("unknown tool: {name}"))),
        };
        let run = self
            .start_run(name, arguments, call, Origin::Task, ttl)
            .map_err(refused)?;
        self.runs.task(&run.id).map_err(|e| refused(e.to_string()))
    }

    fn task_store(&self) -> Option<&dyn TaskStore> {
        Some(&*self.runs)
    }

    fn off_because(&self, name: &str) -> Option<&'static str> {
        (name == register::NAME && self.runtime.uploads().is_none())
            .then_some("uploading models needs the server started with --allow-register")
    }

    fn call(&self, name: &str, arguments: Value, ctx: &CallContext) -> Option<CallToolResult> {
        let outcome = match self.parse(name, &arguments)? {
            Ok(call) => match call.run_of() {
                Some((_, true)) => self
                    .start_run(name, arguments, call, Origin::Background, None)
                    .map(|run| running::started(&run)),
                Some((target, false)) => {
                    let target = target.to_string();
                    return Some(self.run_in_call(name, arguments, call, &target, ctx));
                }
                None => self.place_and_run(name, arguments, call, ctx),
            },
            Err(message) => Err(message),
        };
        let result = outcome.unwrap_or_else(|message| failed(name, message));
        Some(results::bounded(
            name,
            result,
            self.runtime.max_result_bytes(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{RuntimeConfig, UploadLimits};

    fn with_runs(config: RuntimeConfig) -> Tools {
        let runs = Runs::in_memory().expect("an in-memory run store");
        Tools::new(Runtime::new(config), Arc::new(runs))
    }

    #[test]
    fn every_option_a_tool_list_names_is_in_its_schema() {
        let tools = with_runs(RuntimeConfig::default()).tools();
        let schema = |name: &str| {
            tools
                .iter()
                .find(|t| t.name == name)
                .map(|t| t.input_schema.clone())
                .unwrap_or_default()
        };
        let mut shown = vec![
            (train::NAME, train::SHOWN.to_vec()),
            (checkpoint::NAME, checkpoint::SHOWN.to_vec()),
            (inspect::NAME, inspect::SHOWN.to_vec()),
        ];
        for what in [
            evaluate::Loop::Validate,
            evaluate::Loop::Test,
            evaluate::Loop::Predict,
        ] {
            shown.push((what.name(), what.shown().to_vec()));
        }
        for (name, shown) in shown {
            assert_eq!(
                schema::missing(&schema(name), &shown),
                Vec::<String>::new(),
                "{name}"
            );
        }
    }

    #[test]
    fn the_cheap_names_are_the_tool_lists_names_in_its_order() {
        for uploads in [None, Some(UploadLimits::default())] {
            let tools = with_runs(RuntimeConfig {
                uploads,
                ..RuntimeConfig::default()
            });
            let listed: Vec<&str> = tools.tools().iter().map(|t| t.name).collect();
            assert_eq!(tools.names(), listed);
        }
    }
}
