//! The rule for the names a guest gives its parameters, buffers and metrics.

/// Longest parameter, buffer or metric name.
const MAX_NAME: usize = 128;

/// Checks `name` against the rule every file it lands in (safetensors, CSV, a checkpoint's
/// file name) takes as it is: 1 to [`MAX_NAME`] characters of `[A-Za-z0-9_.]`; the error
/// calls it `what`.
pub(super) fn check_name(what: &str, name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if valid {
        return Ok(());
    }
    Err(format!(
        "{what} {} must be 1 to {MAX_NAME} characters of [A-Za-z0-9_.]",
        quoted(name)
    ))
}

/// The start of a refused name, for an error message.
fn quoted(name: &str) -> String {
    format!(
        "{:?}",
        crate::sandbox::text::shown(&name.chars().take(64).collect::<String>())
    )
}
