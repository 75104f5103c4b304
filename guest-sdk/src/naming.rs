//! Where a model's parameters get their names: the path of the [`scope`]s being built (like the
//! attribute path of a PyTorch submodule), and the names layers take when their author gives
//! none.

use crate::Result;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// One scope being built.
#[derive(Debug, Default)]
struct Scope {
    /// The dotted path to it, with a trailing `.` (empty at the root).
    path: String,
    /// How many layers of each kind it has named after their kind.
    named: BTreeMap<&'static str, usize>,
}

thread_local! {
    /// The scopes being built, the root first.
    static SCOPES: RefCell<Vec<Scope>> = RefCell::new(vec![Scope::default()]);
}

/// Builds what `build` declares inside scope `name`: the names of its parameters (and of its
/// layers' parameters) start with `name.`, under any scope around it.
///
/// ```no_run
/// use lightning_mcp_guest_sdk::prelude::*;
///
/// // Parameters `encoder.linear_0.weight`, `encoder.linear_0.bias`, `encoder.linear_1.weight`…
/// let layers = scope("encoder", || {
///     Ok(vec![LinearConfig::new(8, 16).build()?, LinearConfig::new(16, 4).build()?])
/// })?;
/// # Ok::<(), Error>(())
/// ```
pub fn scope<T>(name: &str, build: impl FnOnce() -> Result<T>) -> Result<T> {
    SCOPES.with(|scopes| {
        let mut scopes = scopes.borrow_mut();
        let path = format!("{}{name}.", current_path(&scopes));
        scopes.push(Scope {
            path,
            named: BTreeMap::new(),
        });
    });
    let built = build();
    SCOPES.with(|scopes| {
        let mut scopes = scopes.borrow_mut();
        if scopes.len() > 1 {
            scopes.pop();
        }
    });
    built
}

/// `name` inside the scope being built.
pub(crate) fn qualified(name: &str) -> String {
    SCOPES.with(|scopes| format!("{}{name}", current_path(&scopes.borrow())))
}

/// The name of a layer of `kind` whose author gave none: the kind and how many layers of it
/// the scope named so before, e.g. `linear_0`, `linear_1`.
pub(crate) fn next_name(kind: &'static str) -> String {
    SCOPES.with(|scopes| {
        let mut scopes = scopes.borrow_mut();
        let count = scopes.last_mut().map_or(0, |scope| {
            let count = scope.named.entry(kind).or_default();
            *count += 1;
            *count - 1
        });
        format!("{kind}_{count}")
    })
}

/// Starts naming afresh, at the root: a model's parameters are declared once per instance.
pub(crate) fn reset() {
    SCOPES.with(|scopes| *scopes.borrow_mut() = vec![Scope::default()]);
}

/// The path of the innermost scope.
fn current_path(scopes: &[Scope]) -> &str {
    scopes.last().map_or("", |scope| scope.path.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_named_after_their_kind_and_scope() -> Result<()> {
        reset();
        assert_eq!(next_name("linear"), "linear_0");
        let inner = scope("encoder", || {
            let first = qualified(&next_name("linear"));
            let nested = scope("block", || Ok(qualified(&next_name("layer_norm"))))?;
            Ok((first, qualified(&next_name("linear")), nested))
        })?;
        assert_eq!(
            inner,
            (
                "encoder.linear_0".to_string(),
                "encoder.linear_1".to_string(),
                "encoder.block.layer_norm_0".to_string()
            )
        );
        assert_eq!(qualified(&next_name("linear")), "linear_1");
        reset();
        assert_eq!(next_name("linear"), "linear_0");
        Ok(())
    }
}
