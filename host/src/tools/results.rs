//! Results an agent can afford: every tool result within the server's bound
//! (`--max-result-kb`, 100 KB by default). Predictions past it go to a file under the
//! checkpoint directory, with the first rows in the result; a long training's history is
//! downsampled (`metrics.csv` keeps every epoch); any other result past it is an error that
//! says how to ask for less.

use crate::protocol::CallToolResult;
use crate::runtime::{MAX_RESULT_FLAG, Runtime};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

/// Rows of predictions a result keeps when the rest went to a file.
pub const PREVIEW_ROWS: usize = 10;

/// Most history records a training result carries.
pub const MAX_HISTORY_RECORDS: usize = 100;

/// Where predictions too large for a result went.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct PredictionsFile {
    /// The file, relative to the server's checkpoint directory: JSON Lines, one row per line
    /// (`prediction`, and `predicted_class`, `predicted_label`, `text` when the result has
    /// them).
    pub path: String,
    /// Rows in it: every row predicted.
    pub rows: usize,
    /// Its size in bytes.
    pub bytes: usize,
}

/// The rows of a prediction: each batch's output split along its first (batch) dim.
pub fn rows(batches: &[Value]) -> Vec<&Value> {
    batches
        .iter()
        .flat_map(|batch| batch.as_array().into_iter().flatten())
        .collect()
}

/// Per-row columns of a prediction, by name (`predicted_class`, ...), beside its rows.
pub type Columns = Vec<(&'static str, Vec<Value>)>;

/// Writes every row of `batches`, with the `columns` of each, as JSON Lines to a new file
/// under `root` (`{root}/predictions/version_N/predictions.jsonl`) in the checkpoint
/// directory.
pub fn write_predictions(
    runtime: &Runtime,
    root: &str,
    batches: &[Value],
    columns: &Columns,
) -> Result<PredictionsFile, String> {
    let rows = rows(batches);
    let mut text = Vec::new();
    for (k, row) in rows.iter().enumerate() {
        let mut line = Map::new();
        line.insert("prediction".into(), (*row).clone());
        for (name, values) in columns {
            if let Some(value) = values.get(k) {
                line.insert((*name).into(), value.clone());
            }
        }
        serde_json::to_writer(&mut text, &line).map_err(|e| e.to_string())?;
        text.push(b'\n');
    }
    let dir = runtime.checkpoint_dir();
    let claimed = dir
        .claim_dir(&format!("{root}/predictions"), "version_")
        .map_err(|e| format!("cannot create the predictions directory: {e}"))?;
    let path = format!("{claimed}/predictions.jsonl");
    let written = dir
        .write(&path, &text)
        .map_err(|e| format!("cannot write the predictions: {e}"))?;
    Ok(PredictionsFile {
        path: dir.display(&written),
        rows: rows.len(),
        bytes: text.len(),
    })
}

/// The first [`PREVIEW_ROWS`] rows of `batches`, as one batch.
pub fn preview(batches: &[Value]) -> Vec<Value> {
    let first: Vec<Value> = rows(batches)
        .into_iter()
        .take(PREVIEW_ROWS)
        .cloned()
        .collect();
    vec![Value::Array(first)]
}

/// At most [`MAX_HISTORY_RECORDS`] of `history`, evenly spaced, the first and last kept;
/// `None` when it is short enough already.
pub fn downsample<T: Clone>(history: &[T]) -> Option<Vec<T>> {
    let n = history.len();
    if n <= MAX_HISTORY_RECORDS {
        return None;
    }
    let last = n - 1;
    let kept = MAX_HISTORY_RECORDS - 1;
    Some(
        (0..=kept)
            .filter_map(|i| history.get(i * last / kept).cloned())
            .collect(),
    )
}

/// The size of `value` as compact JSON, counted without building the text (`usize::MAX` for
/// a value that does not serialize).
pub fn json_len(value: &impl Serialize) -> usize {
    /// Counts the bytes written to it.
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(bytes.len());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, value).map_or(usize::MAX, |()| counter.0)
}

/// `result` when its JSON fits in `max_bytes`; else an error saying how large it was and
/// how to ask for less.
pub fn bounded(tool: &str, result: CallToolResult, max_bytes: usize) -> CallToolResult {
    let size = json_len(&result.structured);
    if size <= max_bytes || result.is_error {
        return result;
    }
    CallToolResult::error(format!(
        "{tool}: the result is {size} bytes of JSON, above this server's limit of {max_bytes} \
         ({MAX_RESULT_FLAG}); ask for less (a smaller model or data, fewer batches), or start \
         the server with a larger {MAX_RESULT_FLAG}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trainer::{EpochRecord, Metrics};
    use serde_json::json;

    #[test]
    fn rows_span_batches_and_the_preview_takes_the_first() {
        let batches: Vec<Value> = (0..3)
            .map(|b| json!((0..8).map(|r| [b * 8 + r, 0]).collect::<Vec<_>>()))
            .collect();
        assert_eq!(rows(&batches).len(), 24);
        let preview = preview(&batches);
        assert_eq!(preview.len(), 1);
        assert_eq!(
            preview.first().and_then(Value::as_array).map(Vec::len),
            Some(PREVIEW_ROWS)
        );
        assert_eq!(preview.first().and_then(|b| b.get(9)), Some(&json!([9, 0])));
    }

    #[test]
    fn long_histories_keep_evenly_spaced_records_with_the_first_and_last() {
        let record = |epoch: u32| EpochRecord {
            epoch,
            global_step: u64::from(epoch),
            metrics: Metrics::new(),
        };
        let short: Vec<EpochRecord> = (0..100).map(record).collect();
        assert!(downsample(&short).is_none());
        let long: Vec<EpochRecord> = (0..1000).map(record).collect();
        let kept = downsample(&long).unwrap_or_default();
        assert_eq!(kept.len(), MAX_HISTORY_RECORDS);
        assert_eq!(kept.first().map(|r| r.epoch), Some(0));
        assert_eq!(kept.last().map(|r| r.epoch), Some(999));
    }

    #[test]
    fn json_len_counts_what_serde_writes() {
        let value = json!({"ü": [1, 2.5, null], "text": "a\"b"});
        assert_eq!(json_len(&value), value.to_string().len());
    }

    #[test]
    fn a_result_past_the_bound_becomes_an_error_naming_the_flag() {
        let big = CallToolResult::success(json!({"x": "y".repeat(200)}));
        assert!(!bounded("t", big.clone(), 1000).is_error);
        let refused = bounded("t", big, 100);
        assert!(refused.is_error);
        assert!(refused.structured.to_string().contains(MAX_RESULT_FLAG));
    }
}
