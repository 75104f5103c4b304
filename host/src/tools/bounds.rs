//! Size bounds on tool arguments, checked before they are parsed into typed arguments or
//! handed to a model: how deep the JSON nests, how long its strings, arrays and objects are. An argument out of
//! bounds is an error naming its path.

use serde_json::Value;

/// The bounds a tool's arguments must keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Deepest nesting of arrays and objects.
    pub max_depth: usize,
    /// Longest string, in bytes.
    pub max_string: usize,
    /// Most elements of one array.
    pub max_array: usize,
    /// Most keys of one object.
    pub max_object: usize,
}

impl Bounds {
    /// The bounds of every tool's arguments unless the tool says otherwise.
    pub const ARGUMENTS: Self = Self {
        max_depth: 32,
        max_string: 64 << 10,
        max_array: 1 << 20,
        max_object: 1024,
    };

    /// Checks `value`; the error names the first path out of bounds, e.g.
    /// `model.hidden_dims[3]`.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        self.walk(value, &mut Vec::new())
    }

    fn walk<'a>(&self, value: &'a Value, path: &mut Vec<Step<'a>>) -> Result<(), String> {
        if path.len() > self.max_depth {
            return out_of_bounds(
                path,
                format!("nested deeper than {} levels", self.max_depth),
            );
        }
        match value {
            Value::String(s) if s.len() > self.max_string => out_of_bounds(
                path,
                format!(
                    "a string of {} bytes is longer than the limit of {} bytes",
                    s.len(),
                    self.max_string
                ),
            ),
            Value::Array(items) => {
                if items.len() > self.max_array {
                    return out_of_bounds(
                        path,
                        format!(
                            "an array of {} elements is longer than the limit of {}",
                            items.len(),
                            self.max_array
                        ),
                    );
                }
                for (i, item) in items.iter().enumerate() {
                    path.push(Step::Index(i));
                    self.walk(item, path)?;
                    path.pop();
                }
                Ok(())
            }
            Value::Object(map) => {
                if map.len() > self.max_object {
                    return out_of_bounds(
                        path,
                        format!(
                            "an object of {} keys is larger than the limit of {}",
                            map.len(),
                            self.max_object
                        ),
                    );
                }
                for (key, item) in map {
                    if key.len() > self.max_string {
                        return out_of_bounds(
                            path,
                            format!(
                                "a key of {} bytes is longer than the limit of {} bytes",
                                key.len(),
                                self.max_string
                            ),
                        );
                    }
                    path.push(Step::Key(key));
                    self.walk(item, path)?;
                    path.pop();
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn out_of_bounds(path: &[Step<'_>], what: String) -> Result<(), String> {
    Err(format!("invalid arguments: {}: {what}", render(path)))
}

/// One step of a path into the arguments.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `a.b[2].c`, or `.` for the arguments themselves.
fn render(path: &[Step<'_>]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(&shorten(k)),
            Step::Key(k) => {
                out.push('.');
                out.push_str(&shorten(k));
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if out.is_empty() { ".".to_string() } else { out }
}

/// A key as it appears in an error: at most 64 characters.
fn shorten(key: &str) -> String {
    key.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::Bounds;
    use serde_json::json;

    #[test]
    fn errors_name_the_path_out_of_bounds() {
        let bounds = Bounds {
            max_depth: 3,
            max_string: 8,
            max_array: 4,
            max_object: 2,
        };
        assert_eq!(
            bounds.check(&json!({"a": [1, 2], "b": {"c": "short"}})),
            Ok(())
        );
        let e = |v| bounds.check(&v).err().unwrap_or_default();
        assert_eq!(
            e(json!({"model": {"name": "far too long"}})),
            "invalid arguments: model.name: a string of 12 bytes is longer than the limit of 8 bytes"
        );
        assert!(
            e(json!({"a": [1, 2, 3, 4, 5]})).starts_with("invalid arguments: a: an array of 5")
        );
        assert!(e(json!({"a": [[[[1]]]]})).starts_with("invalid arguments: a[0][0][0]: nested"));
        assert!(e(json!({"a": 1, "b": 2, "c": 3})).contains("object of 3 keys"));
        assert!(e(json!({"a": [{"keyiswaytoolong": 1}]})).contains("a[0]: a key of 15 bytes"));
    }
}
