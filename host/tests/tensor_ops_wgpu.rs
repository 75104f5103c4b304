//! The tensor-op conformance suite (`tensor_ops.rs`) on the wgpu adapter `accelerator: "gpu"`
//! uses: both backends meet the same expectations.

// Test code: `expect` says what the test expected (clippy.toml allows it in #[test] fns; the helpers here need this too).
#![allow(clippy::expect_used)]

#[path = "tensor_ops.rs"]
mod tensor_ops;
