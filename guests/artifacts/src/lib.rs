//! The guest model components, compiled to `wasm32-wasip2` by this crate's build script and
//! embedded as bytes, so `cargo build` on a fresh clone builds everything.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
