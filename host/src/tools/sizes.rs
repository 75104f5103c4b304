//! The hyperparameters a call builds its model with: the request's, then — for those it leaves
//! out — a checkpoint's (`ckpt_path`, as Lightning's `load_from_checkpoint`), then the sizes
//! the data determines.
//!
//! Sizes go by the names the built-in models use: `input_dim` (samples of that many values),
//! `input_shape` (samples of that shape), `in_channels` and `image_size` (images `[channels,
//! height, width]`) and `num_classes` (class indices `0..num_classes`). A model whose defaults
//! have one of these names takes it from the call's data when neither the request nor the
//! checkpoint gives it; a value that disagrees with the data is refused, naming both, and a
//! classifier's targets are checked to be class indices — all before the model is built, so
//! no tensor op fails on a mismatch halfway through a run.

use super::args::ModelSpec;
use super::data::{DataFacts, TargetFacts};
use crate::data::csv::Targets;
use serde_json::{Map, Value, json};

/// A model spec completed for the call's data.
#[derive(Debug)]
pub(super) struct Fitted {
    /// The spec to build.
    pub spec: ModelSpec,
    /// The hyperparameters the data gave, by name.
    pub from_data: Vec<String>,
}

/// Where a hyperparameter's value came from, for naming it in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// The request's `model`.
    Request,
    /// The checkpoint at `ckpt_path`.
    Checkpoint,
    /// The model's default.
    Default,
}

/// The hyperparameters being settled: the request's and the checkpoint's, over the defaults.
struct Settling<'a> {
    given: Map<String, Value>,
    from_request: &'a Map<String, Value>,
    defaults: &'a Map<String, Value>,
    from_data: Vec<String>,
    target: &'a str,
}

/// Completes `spec` with the hyperparameters of `saved` (a checkpoint's) it leaves out, then
/// with the sizes `facts` determines, checking every size against the data; `defaults` are
/// the model's.
pub(super) fn fit(
    spec: &ModelSpec,
    defaults: &Value,
    saved: Option<&Value>,
    facts: Option<&DataFacts>,
) -> Result<Fitted, String> {
    let mut given = spec.hyperparameters.clone();
    if let Some(Value::Object(saved)) = saved {
        for (name, value) in saved {
            given.entry(name.clone()).or_insert_with(|| value.clone());
        }
    }
    let empty = Map::new();
    let mut settling = Settling {
        given,
        from_request: &spec.hyperparameters,
        defaults: defaults.as_object().unwrap_or(&empty),
        from_data: Vec::new(),
        target: &spec.target,
    };
    if let Some(facts) = facts {
        settling.inputs(facts)?;
        settling.classes(facts)?;
    }
    Ok(Fitted {
        spec: ModelSpec {
            target: spec.target.clone(),
            hyperparameters: settling.given,
        },
        from_data: settling.from_data,
    })
}

impl Settling<'_> {
    /// Whether the model has hyperparameter `name`.
    fn has(&self, name: &str) -> bool {
        self.defaults.contains_key(name)
    }

    /// Hyperparameter `name`'s value so far, and where it came from.
    fn value(&self, name: &str) -> Option<(&Value, Origin)> {
        match self.given.get(name) {
            Some(value) if self.from_request.contains_key(name) => Some((value, Origin::Request)),
            Some(value) => Some((value, Origin::Checkpoint)),
            None => self.defaults.get(name).map(|v| (v, Origin::Default)),
        }
    }

    /// Settles `name` to `wanted` (what the data says, `seen` as `described`): taken when the
    /// request and checkpoint leave it out, refused when they give another value.
    fn settle(&mut self, name: &str, wanted: Value, described: &str) -> Result<(), String> {
        match self.value(name) {
            Some((value, Origin::Request)) if *value != wanted => Err(format!(
                "model.{name} is {value} but {described}: give {name} {wanted}, or leave it \
                 out to take it from the data"
            )),
            Some((value, Origin::Checkpoint)) if *value != wanted => Err(format!(
                "the checkpoint (ckpt_path) was trained with {name} {value} but {described}: \
                 give data that fits it"
            )),
            Some((_, Origin::Request | Origin::Checkpoint)) => Ok(()),
            Some((_, Origin::Default)) | None => {
                self.given.insert(name.into(), wanted);
                self.from_data.push(name.into());
                Ok(())
            }
        }
    }

    /// Settles the input sizes: `input_dim`, `input_shape`, `in_channels` and `image_size`.
    fn inputs(&mut self, facts: &DataFacts) -> Result<(), String> {
        let shape = &facts.sample_shape;
        let values: usize = shape.iter().product();
        let seen = format!("{} has samples of shape {shape:?}", facts.source);
        if self.has("input_dim") {
            let [dim] = shape[..] else {
                return Err(format!(
                    "{} takes samples of input_dim values, but {seen}: give data.input_shape \
                     [{values}]",
                    self.target
                ));
            };
            self.settle("input_dim", json!(dim), &seen)?;
        }
        if self.has("input_shape") {
            self.settle("input_shape", json!(shape), &seen)?;
        }
        if self.has("in_channels") && self.has("image_size") {
            let [channels, height, width] = shape[..] else {
                return Err(format!(
                    "{} takes images [in_channels, height, width], but {seen}: give \
                     data.input_shape {}",
                    self.target,
                    self.image_hint(values)
                ));
            };
            self.settle("in_channels", json!(channels), &seen)?;
            self.settle("image_size", json!([height, width]), &seen)?;
        }
        Ok(())
    }

    /// An `input_shape` that makes images of `values` per sample: the model's own when it
    /// holds as many, else one square channel when `values` is a square.
    fn image_hint(&self, values: usize) -> String {
        let channels = self.value("in_channels").and_then(|(v, _)| v.as_u64());
        let size: Option<Vec<u64>> = self
            .value("image_size")
            .and_then(|(v, _)| serde_json::from_value(v.clone()).ok());
        if let (Some(c), Some([h, w])) = (channels, size.as_deref())
            && c.saturating_mul(*h).saturating_mul(*w) == values as u64
        {
            return format!("[{c}, {h}, {w}]");
        }
        let side = (values as f64).sqrt().round() as usize;
        if side.saturating_mul(side) == values {
            format!("[1, {side}, {side}]")
        } else {
            "[channels, height, width]".into()
        }
    }

    /// Settles `num_classes` from the targets, and checks that each is a class index below it.
    fn classes(&mut self, facts: &DataFacts) -> Result<(), String> {
        if !self.has("num_classes") || facts.targets.is_empty() {
            return Ok(());
        }
        let mut highest: Option<(i64, String)> = None;
        for set in &facts.targets {
            let indices = class_indices(set, self.target)?;
            for (k, index) in indices.iter().enumerate() {
                if *index < 0 {
                    return Err(format!(
                        "{}: class {index} is negative; class indices count from 0",
                        set.row(k)
                    ));
                }
                if highest.as_ref().is_none_or(|(h, _)| index > h) {
                    highest = Some((*index, set.row(k)));
                }
            }
        }
        let Some((highest, row)) = highest else {
            return Ok(());
        };
        let count = facts.labels.unwrap_or_else(|| {
            usize::try_from(highest)
                .unwrap_or(usize::MAX)
                .saturating_add(1)
        });
        let seen = match facts.labels {
            Some(labels) => format!("{} has {labels} class labels", facts.source),
            None => format!("{row} is class {highest}"),
        };
        let wanted = json!(count);
        match self.value("num_classes") {
            // Numbered classes need not all appear: fewer than num_classes is no conflict.
            Some((value, origin)) if origin != Origin::Default && facts.labels.is_none() => {
                if value.as_u64().is_some_and(|n| (highest as u64) < n) {
                    Ok(())
                } else {
                    self.settle("num_classes", wanted, &seen)
                }
            }
            _ => self.settle("num_classes", wanted, &seen),
        }
    }
}

/// The targets of `set` as class indices, or the error naming the first that is not one.
fn class_indices<'t>(set: &'t TargetFacts, target: &str) -> Result<&'t [i64], String> {
    match &set.values {
        Targets::Classes(indices) => Ok(indices),
        Targets::Values(values) => {
            let (k, value) = values
                .iter()
                .enumerate()
                .find(|(_, v)| v.fract() != 0.0 || !v.is_finite())
                .map_or((0, f32::NAN), |(k, v)| (k, *v));
            Err(format!(
                "{}: {value} is not a class index: {target} is a classifier (num_classes), so \
                 each target must be a whole number from 0 to num_classes - 1",
                set.row(k)
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(hyperparameters: Value) -> ModelSpec {
        ModelSpec {
            target: "t.MLP".into(),
            hyperparameters: hyperparameters.as_object().cloned().unwrap_or_default(),
        }
    }

    fn facts(shape: &[usize], targets: Targets, labels: Option<usize>) -> DataFacts {
        DataFacts {
            source: "data.train.inputs".into(),
            sample_shape: shape.to_vec(),
            labels,
            targets: vec![TargetFacts {
                field: "data.train.targets".into(),
                table_rows: None,
                values: targets,
            }],
        }
    }

    const MLP: &str = r#"{"input_dim": 8, "num_classes": 4, "lr": 0.01}"#;

    fn defaults(text: &str) -> Value {
        serde_json::from_str(text).unwrap_or_default()
    }

    #[test]
    fn sizes_left_out_come_from_the_data() {
        let data = facts(&[4], Targets::Classes(vec![0, 2, 1, 2]), None);
        let fitted = fit(&spec(json!({"lr": 0.1})), &defaults(MLP), None, Some(&data))
            .expect("the sizes are fitted");
        assert_eq!(
            Value::Object(fitted.spec.hyperparameters),
            json!({"lr": 0.1, "input_dim": 4, "num_classes": 3})
        );
        assert_eq!(fitted.from_data, ["input_dim", "num_classes"]);
    }

    #[test]
    fn a_size_that_disagrees_with_the_data_names_both() {
        let data = facts(&[4], Targets::Classes(vec![0, 1]), None);
        let e = fit(
            &spec(json!({"input_dim": 8})),
            &defaults(MLP),
            None,
            Some(&data),
        )
        .err()
        .unwrap_or_default();
        assert!(
            e.contains("model.input_dim is 8") && e.contains("[4]"),
            "{e}"
        );
        let saved = json!({"input_dim": 5, "num_classes": 2});
        let e = fit(&spec(json!({})), &defaults(MLP), Some(&saved), Some(&data))
            .err()
            .unwrap_or_default();
        assert!(e.contains("checkpoint") && e.contains("input_dim 5"), "{e}");
    }

    #[test]
    fn targets_must_be_class_indices_below_num_classes() {
        let fractional = facts(&[4], Targets::Values(vec![0.0, 1.5]), None);
        let e = fit(&spec(json!({})), &defaults(MLP), None, Some(&fractional))
            .err()
            .unwrap_or_default();
        assert!(
            e.starts_with("data.train.targets[1]: 1.5 is not a class index"),
            "{e}"
        );
        let high = facts(&[4], Targets::Classes(vec![0, 5]), None);
        let e = fit(
            &spec(json!({"num_classes": 3})),
            &defaults(MLP),
            None,
            Some(&high),
        )
        .err()
        .unwrap_or_default();
        assert!(
            e.contains("model.num_classes is 3") && e.contains("data.train.targets[1] is class 5"),
            "{e}"
        );
        let negative = facts(&[4], Targets::Classes(vec![-1]), None);
        let e = fit(&spec(json!({})), &defaults(MLP), None, Some(&negative))
            .err()
            .unwrap_or_default();
        assert!(
            e.contains("data.train.targets[0]: class -1 is negative"),
            "{e}"
        );
        // Numbered classes need not all appear.
        let some = facts(&[4], Targets::Classes(vec![0, 1]), None);
        assert!(
            fit(
                &spec(json!({"num_classes": 10})),
                &defaults(MLP),
                None,
                Some(&some)
            )
            .is_ok()
        );
        // Text labels are counted exactly.
        let labelled = facts(&[4], Targets::Classes(vec![0, 1]), Some(3));
        let e = fit(
            &spec(json!({"num_classes": 4})),
            &defaults(MLP),
            None,
            Some(&labelled),
        )
        .err()
        .unwrap_or_default();
        assert!(e.contains("has 3 class labels"), "{e}");
    }

    #[test]
    fn images_take_their_channels_and_size_and_flat_rows_get_a_hint() {
        let cnn = r#"{"in_channels": 1, "image_size": [8, 8], "num_classes": 10}"#;
        let images = facts(&[3, 16, 16], Targets::Classes(vec![0]), None);
        let fitted = fit(&spec(json!({})), &defaults(cnn), None, Some(&images))
            .expect("the sizes are fitted");
        assert_eq!(
            fitted.spec.hyperparameters.get("image_size"),
            Some(&json!([16, 16]))
        );
        let flat = facts(&[64], Targets::Classes(vec![0]), None);
        let e = fit(&spec(json!({})), &defaults(cnn), None, Some(&flat))
            .err()
            .unwrap_or_default();
        assert!(e.contains("give data.input_shape [1, 8, 8]"), "{e}");
    }

    #[test]
    fn a_checkpoint_fills_what_the_request_leaves_out() {
        let saved = json!({"input_dim": 4, "num_classes": 3, "lr": 0.5});
        let fitted = fit(
            &spec(json!({"lr": 0.1})),
            &defaults(MLP),
            Some(&saved),
            None,
        )
        .expect("the sizes are fitted");
        assert_eq!(
            Value::Object(fitted.spec.hyperparameters),
            json!({"lr": 0.1, "input_dim": 4, "num_classes": 3})
        );
    }
}
