//! `lightning.runs`: the runs of this server (every training, validation, test and
//! prediction, synchronous, background or task) — list, get, fetch a result, cancel, delete,
//! compare. The same runs MCP Tasks show, for clients without Tasks.

use super::args;
use super::results;
use super::schema;
use crate::plot;
use crate::protocol::{CallToolResult, Image, ToolDefinition};
use crate::runs::{Filter, Run, RunError, Runs, Status, timestamp};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// The tool's name.
pub const NAME: &str = "lightning.runs";

/// Runs a listing shows by default.
const DEFAULT_LIMIT: u32 = 20;
/// Most runs a listing shows.
const MAX_LIMIT: u32 = 100;
/// Most runs compared at once.
const MAX_COMPARED: usize = 10;
/// Most points of each compared curve.
const CURVE_POINTS: usize = 50;

/// What to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The runs, newest first (filter by `status`, `target`; page with `cursor`).
    List,
    /// One run: status, progress, latest metrics, history.
    Get,
    /// A run's result, as its call would have returned it.
    Result,
    /// Stop a queued or working run.
    Cancel,
    /// Delete an ended run.
    Delete,
    /// Runs side by side: final metrics, hyperparameters, curves.
    Compare,
}

/// Arguments of `lightning.runs`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunsArgs {
    /// What to do (default list).
    pub action: Option<Action>,
    /// get/result/cancel/delete: the run.
    pub run_id: Option<String>,
    /// compare: 2 to 10 runs.
    pub run_ids: Option<Vec<String>>,
    /// list: only runs in this status.
    pub status: Option<Status>,
    /// list: only runs of this model._target_.
    pub target: Option<String>,
    /// list: page size, 1-100 (default 20).
    pub limit: Option<u32>,
    /// list: the last page's next_cursor.
    pub cursor: Option<String>,
    /// compare: draw this metric (e.g. val_loss) as a PNG.
    pub plot: Option<String>,
}

/// A checked `lightning.runs` call.
#[derive(Debug)]
pub enum Request {
    /// A page of runs.
    List {
        filter: Filter,
        cursor: Option<String>,
        limit: usize,
    },
    /// One run.
    Get(String),
    /// A run's result.
    Result(String),
    /// Cancel a run.
    Cancel(String),
    /// Delete a run.
    Delete(String),
    /// Compare runs, perhaps drawing one metric.
    Compare {
        ids: Vec<String>,
        plot: Option<String>,
    },
}

pub(super) fn definition() -> ToolDefinition {
    ToolDefinition {
        name: NAME,
        title: "Manage runs",
        description: "Every train/validate/test/predict call is a run (run_id), kept across \
            restarts: list them, follow one, fetch its result, cancel, delete, compare.",
        input_schema: schema::listed::<RunsArgs>(&[]),
    }
}

/// Parses and checks `lightning.runs` arguments.
pub(super) fn parse(arguments: &Value) -> Result<Request, String> {
    let args: RunsArgs = args::parse(arguments)?;
    let action = args.action.unwrap_or(Action::List);
    let run_id = |name: &str| {
        args.run_id.clone().ok_or_else(|| {
            format!("action {name} needs run_id (lightning.runs action=list lists the runs)")
        })
    };
    Ok(match action {
        Action::List => {
            let limit = args.limit.unwrap_or(DEFAULT_LIMIT);
            if !(1..=MAX_LIMIT).contains(&limit) {
                return Err(format!("limit must be 1 to {MAX_LIMIT}, got {limit}"));
            }
            Request::List {
                filter: Filter {
                    statuses: args.status.into_iter().collect(),
                    tool: None,
                    target: args.target,
                },
                cursor: args.cursor,
                limit: limit as usize,
            }
        }
        Action::Get => Request::Get(run_id("get")?),
        Action::Result => Request::Result(run_id("result")?),
        Action::Cancel => Request::Cancel(run_id("cancel")?),
        Action::Delete => Request::Delete(run_id("delete")?),
        Action::Compare => {
            let ids = args.run_ids.unwrap_or_default();
            if !(2..=MAX_COMPARED).contains(&ids.len()) {
                return Err(format!(
                    "action compare needs run_ids: 2 to {MAX_COMPARED} runs, got {}",
                    ids.len()
                ));
            }
            Request::Compare {
                ids,
                plot: args.plot,
            }
        }
    })
}

/// Runs a checked `lightning.runs` call.
pub(super) fn run(runs: &Runs, request: Request) -> Result<CallToolResult, String> {
    let text = |e: RunError| e.to_string();
    let structured = match request {
        Request::List {
            filter,
            cursor,
            limit,
        } => {
            let page = runs.list(&filter, cursor.as_deref(), limit).map_err(text)?;
            json!({
                "runs": page.runs.iter().map(summary).collect::<Vec<_>>(),
                "total": page.total,
                "next_cursor": page.next,
            })
        }
        Request::Get(id) => details(
            &runs.get(&id).map_err(text)?,
            runs.history(&id).map_err(text)?,
        ),
        Request::Result(id) => return stored_result(&runs.get(&id).map_err(text)?),
        Request::Cancel(id) => summary(&runs.cancel(&id).map_err(text)?),
        Request::Delete(id) => {
            runs.delete(&id).map_err(text)?;
            json!({ "run_id": id, "deleted": true })
        }
        Request::Compare { ids, plot } => return compare(runs, &ids, plot.as_deref()),
    };
    Ok(CallToolResult::success(structured))
}

/// A run as a listing shows it: what, where it stands, its latest figures.
fn summary(run: &Run) -> Value {
    let mut out = Map::new();
    out.insert("run_id".into(), json!(run.id));
    out.insert("tool".into(), json!(run.tool));
    out.insert("target".into(), json!(run.target));
    out.insert("status".into(), json!(run.status.as_str()));
    let optional = [
        ("message", run.message.as_ref().map(|m| json!(m))),
        ("created_at", Some(json!(timestamp(run.created_ms)))),
        ("started_at", run.started_ms.map(|t| json!(timestamp(t)))),
        ("finished_at", run.finished_ms.map(|t| json!(timestamp(t)))),
        ("progress", run.progress.clone()),
        ("metrics", run.metrics.clone()),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            out.insert(key.into(), value);
        }
    }
    Value::Object(out)
}

/// A run with everything but its result: arguments, newest checkpoint, history (at most
/// 100 points, evenly spaced).
fn details(run: &Run, history: Vec<Value>) -> Value {
    let mut out = summary(run);
    if let Value::Object(fields) = &mut out {
        fields.insert("origin".into(), json!(run.origin.as_str()));
        fields.insert("arguments".into(), run.arguments.clone());
        if let Some(checkpoint) = &run.checkpoint {
            fields.insert("checkpoint".into(), json!(checkpoint));
        }
        if run.resumes > 0 {
            fields.insert("resumes".into(), json!(run.resumes));
        }
        fields.insert("history_points".into(), json!(history.len()));
        let history = results::downsample(&history).unwrap_or(history);
        fields.insert("history".into(), Value::Array(history));
        fields.insert(
            "result_ready".into(),
            json!(run.status.is_terminal() && run.result.is_some()),
        );
    }
    out
}

/// The result run `run` ended with, as its call returned it; an error while it runs, or
/// when it ended without one (cancelled).
fn stored_result(run: &Run) -> Result<CallToolResult, String> {
    match (&run.result, run.status.is_terminal()) {
        (Some(result), true) => CallToolResult::from_json(result)
            .ok_or_else(|| format!("run {}: its stored result is unreadable", run.id)),
        (None, true) => Err(format!(
            "run {} ended {} without a result{}",
            run.id,
            run.status.as_str(),
            run.message
                .as_ref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        )),
        (_, false) => Err(format!(
            "run {} is {}{}: poll lightning.runs action=get until it ends",
            run.id,
            run.status.as_str(),
            run.message
                .as_ref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        )),
    }
}

/// The final metrics of `run`: its result's, else the latest it logged.
fn final_metrics(run: &Run) -> Map<String, Value> {
    let from_result = run
        .result
        .as_ref()
        .and_then(|r| r.pointer("/structuredContent/metrics"));
    match from_result.or(run.metrics.as_ref()) {
        Some(Value::Object(metrics)) => metrics.clone(),
        _ => Map::new(),
    }
}

/// The hyperparameters of `run`: those its model resolved when it has a result, else those
/// it was given; with the trainer options it was given, as `trainer.NAME`.
fn settings(run: &Run) -> Map<String, Value> {
    let resolved = run
        .result
        .as_ref()
        .and_then(|r| r.pointer("/structuredContent/model/hyperparameters"));
    let mut out = match resolved.or(run.arguments.get("model")) {
        Some(Value::Object(h)) => h.clone(),
        _ => Map::new(),
    };
    out.shift_remove("_target_");
    if let Some(Value::Object(trainer)) = run.arguments.get("trainer") {
        for (key, value) in trainer {
            out.insert(format!("trainer.{key}"), value.clone());
        }
    }
    out
}

/// `name -> {run_id -> value}` over every run's `columns`, and the names whose values differ.
fn side_by_side(
    runs: &[Run],
    columns: impl Fn(&Run) -> Map<String, Value>,
) -> (Value, Vec<String>) {
    let all: Vec<Map<String, Value>> = runs.iter().map(&columns).collect();
    let names: BTreeSet<&String> = all.iter().flat_map(Map::keys).collect();
    let mut table = Map::new();
    let mut differing = Vec::new();
    for name in names {
        let row: Map<String, Value> = runs
            .iter()
            .zip(&all)
            .map(|(run, values)| {
                (
                    run.id.clone(),
                    values.get(name).cloned().unwrap_or(Value::Null),
                )
            })
            .collect();
        let first = row.values().next();
        if row.values().any(|v| Some(v) != first) {
            differing.push(name.clone());
        }
        table.insert(name.clone(), Value::Object(row));
    }
    (Value::Object(table), differing)
}

/// One run's curves from its history: `epoch` and each metric, at most [`CURVE_POINTS`]
/// points, evenly spaced.
fn curves(history: &[Value]) -> Map<String, Value> {
    let kept: Vec<&Value> = if history.len() > CURVE_POINTS {
        let last = history.len() - 1;
        (0..CURVE_POINTS)
            .filter_map(|i| history.get(i * last / (CURVE_POINTS - 1)))
            .collect()
    } else {
        history.iter().collect()
    };
    let names: BTreeSet<&String> = kept
        .iter()
        .filter_map(|p| p.get("metrics").and_then(Value::as_object))
        .flat_map(Map::keys)
        .collect();
    let mut out = Map::new();
    out.insert(
        "epoch".into(),
        kept.iter()
            .map(|p| p.get("epoch").cloned().unwrap_or(Value::Null))
            .collect(),
    );
    for name in names {
        let values: Vec<Value> = kept
            .iter()
            .map(|p| {
                p.get("metrics")
                    .and_then(|m| m.get(name.as_str()))
                    .cloned()
                    .unwrap_or(Value::Null)
            })
            .collect();
        out.insert(name.clone(), Value::Array(values));
    }
    out
}

/// Runs `ids` side by side: final metrics and settings (with the names that differ), each
/// run's curves and, with `plot`, that metric of every run drawn as one PNG.
fn compare(runs: &Runs, ids: &[String], plot: Option<&str>) -> Result<CallToolResult, String> {
    let mut compared = Vec::with_capacity(ids.len());
    let mut histories = Vec::with_capacity(ids.len());
    for id in ids {
        compared.push(runs.get(id).map_err(|e| e.to_string())?);
        histories.push(runs.history(id).map_err(|e| e.to_string())?);
    }
    let (metrics, metrics_differing) = side_by_side(&compared, final_metrics);
    let (settings, settings_differing) = side_by_side(&compared, settings);
    let curves: Map<String, Value> = compared
        .iter()
        .zip(&histories)
        .map(|(run, history)| (run.id.clone(), Value::Object(curves(history))))
        .collect();
    let mut structured = json!({
        "runs": compared.iter().map(|r| json!({
            "run_id": r.id, "tool": r.tool, "target": r.target, "status": r.status.as_str(),
        })).collect::<Vec<_>>(),
        "metrics": metrics,
        "hyperparameters": settings,
        "differing": { "metrics": metrics_differing, "hyperparameters": settings_differing },
        "curves": curves,
    });
    let Some(metric) = plot else {
        return Ok(CallToolResult::success(structured));
    };
    let lines: Vec<(String, Vec<(f64, f64)>)> = compared
        .iter()
        .zip(&histories)
        .map(|(run, history)| {
            let points = history
                .iter()
                .filter_map(|p| {
                    let epoch = p.get("epoch")?.as_f64()?;
                    let value = p.get("metrics")?.get(metric)?.as_f64()?;
                    Some((epoch + 1.0, value))
                })
                .collect();
            (run.id.chars().take(8).collect(), points)
        })
        .collect();
    if lines.iter().all(|(_, points)| points.is_empty()) {
        if let Value::Object(fields) = &mut structured {
            fields.insert(
                "plot_error".into(),
                json!(format!("no compared run logged {metric:?}")),
            );
        }
        return Ok(CallToolResult::success(structured));
    }
    match plot::compare(metric, &lines) {
        Ok(png) => Ok(CallToolResult::success(structured).with_image(Image {
            data: png,
            mime_type: "image/png",
        })),
        Err(e) => {
            if let Value::Object(fields) = &mut structured {
                fields.insert("plot_error".into(), json!(e));
            }
            Ok(CallToolResult::success(structured))
        }
    }
}
