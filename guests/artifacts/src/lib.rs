//! The guest model components, compiled to `wasm32-wasip2` by this crate's build script and
//! embedded as bytes, so `cargo build` on a fresh clone builds everything.

/// A built-in model: its component and the `_target_` its `describe` declares, known
/// without running it so the host can load each model only when a request names it.
#[derive(Clone, Copy, Debug)]
pub struct BuiltIn {
    /// The `_target_` clients use.
    pub target: &'static str,
    /// The component's bytes.
    pub wasm: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
