//! Tensors from a request's nested JSON arrays: `[[0.1, 2.0], [3.5, 1.0]]` is a `[2, 2]` f32
//! tensor; targets of whole numbers, `[0, 2, 1]` or `[0.0, 2.0, 1.0]` (numpy's `tolist()` of
//! a float array), an i64 one (class indices). Arrays must be rectangular; an
//! error names the path of the first element that is not.

use super::DataError;
use crate::tensor::{self, Device, Tensor};
use serde_json::Value;

/// The element type a request's numbers become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Element {
    /// f32, whatever the numbers (inputs).
    Float,
    /// i64 when every number is a whole number, else f32 (targets: class indices or
    /// regression values).
    Inferred,
}

/// `number` as a class index: an integer, or a float with no fraction that an f32 holds
/// exactly (`2.0`).
pub fn whole(number: &Value) -> Option<i64> {
    const EXACT: f64 = (1u64 << f32::MANTISSA_DIGITS) as f64;
    number.as_i64().or_else(|| {
        number
            .as_f64()
            .filter(|v| v.fract() == 0.0 && v.abs() <= EXACT)
            .map(|v| v as i64)
    })
}

/// The tensor `value` spells, on `device`: `path` names it in errors (e.g. `data.train.inputs`),
/// and it may have at most `max_elements` elements.
pub fn tensor(
    path: &str,
    value: &Value,
    element: Element,
    device: &Device,
    max_elements: usize,
) -> Result<Tensor, DataError> {
    let shape = shape_of(value);
    let count = shape
        .iter()
        .try_fold(1usize, |acc, d| acc.checked_mul(*d))
        .filter(|n| *n <= max_elements)
        .ok_or_else(|| {
            invalid(format!(
                "{path}: shape {shape:?} is above the limit of {max_elements} elements per tensor \
                 (tensor_elements)"
            ))
        })?;
    if count == 0 {
        return Err(invalid(format!(
            "{path}: an array with no numbers (shape {shape:?})"
        )));
    }
    let mut numbers = Vec::with_capacity(count);
    collect(value, &shape, path, &mut numbers)?;
    let integers = element == Element::Inferred && numbers.iter().all(|n| whole(n).is_some());
    let made = if integers {
        let values = numbers.iter().filter_map(whole).collect();
        tensor::from_i64(device, values, &shape)
    } else {
        let values = numbers
            .iter()
            .filter_map(Value::as_f64)
            .map(|v| v as f32)
            .collect();
        tensor::from_f32(device, values, &shape)
    };
    made.map_err(|e| invalid(format!("{path}: {}", e.message)))
}

/// The shape the first elements of `value` spell (checked against the rest by [`collect`]).
pub fn shape_of(value: &Value) -> Vec<usize> {
    let mut shape = Vec::new();
    let mut current = value;
    while let Value::Array(items) = current {
        shape.push(items.len());
        match items.first() {
            Some(first) => current = first,
            None => break,
        }
    }
    shape
}

/// Appends the numbers of `value`, which must have `shape`, to `out`.
fn collect(
    value: &Value,
    shape: &[usize],
    path: &str,
    out: &mut Vec<Value>,
) -> Result<(), DataError> {
    match (value, shape.split_first()) {
        (Value::Array(items), Some((&len, rest))) => {
            if items.len() != len {
                return Err(invalid(format!(
                    "{path}: {} elements where the first row has {len}; arrays must be \
                     rectangular",
                    items.len()
                )));
            }
            for (i, item) in items.iter().enumerate() {
                collect(item, rest, &format!("{path}[{i}]"), out)?;
            }
            Ok(())
        }
        (Value::Number(_), None) => {
            out.push(value.clone());
            Ok(())
        }
        (Value::Number(_), Some(_)) => Err(invalid(format!(
            "{path}: a number where an array of {} dims is expected",
            shape.len()
        ))),
        (Value::Array(_), None) => Err(invalid(format!(
            "{path}: an array where a number is expected; arrays must be rectangular"
        ))),
        (other, _) => Err(invalid(format!(
            "{path}: {} is not a number or an array",
            kind(other)
        ))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::String(_) => "a string",
        Value::Object(_) => "an object",
        Value::Number(_) | Value::Array(_) => "this",
    }
}

fn invalid(message: String) -> DataError {
    DataError::Invalid(message)
}

#[cfg(test)]
mod tests {
    use super::{Element, tensor};
    use crate::tensor::{DType, cpu_device, to_f32, to_i64};
    use serde_json::json;

    #[test]
    fn nested_arrays_become_tensors() {
        let device = cpu_device();
        let x = tensor(
            "x",
            &json!([[1, 2.5], [3, 4]]),
            Element::Float,
            &device,
            100,
        )
        .expect("a float tensor");
        assert_eq!((x.shape(), x.dtype()), (vec![2, 2], DType::F32));
        assert_eq!(to_f32(&x).ok(), Some(vec![1.0, 2.5, 3.0, 4.0]));
        let y = tensor("y", &json!([0, 2, 1]), Element::Inferred, &device, 100)
            .expect("a class-index tensor");
        assert_eq!((y.shape(), to_i64(&y).ok()), (vec![3], Some(vec![0, 2, 1])));
        let whole = tensor("y", &json!([0.0, 2.0, 1]), Element::Inferred, &device, 100)
            .expect("a tensor of whole floats");
        assert_eq!(to_i64(&whole).ok(), Some(vec![0, 2, 1]));
        let r = tensor("y", &json!([0.5, 2]), Element::Inferred, &device, 100)
            .expect("a tensor of fractions");
        assert_eq!(r.dtype(), DType::F32);
    }

    #[test]
    fn errors_name_the_element() {
        let device = cpu_device();
        let e = |v| {
            tensor("data.train.inputs", &v, Element::Float, &device, 6)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(e(json!([[1, 2], [3]])).starts_with("data.train.inputs[1]: 1 elements where"));
        assert!(e(json!([[1, 2], [3, "x"]])).starts_with("data.train.inputs[1][1]: a string"));
        assert!(e(json!([[1, 2], 3])).contains("[1]: a number where an array"));
        assert!(e(json!([[1], [[2]]])).contains("[1][0]: an array where a number"));
        assert!(e(json!([[1, 2, 3], [4, 5, 6], [7, 8, 9]])).contains("limit of 6 elements"));
        assert!(e(json!([])).contains("no numbers"));
    }
}
