//! The tensor-op conformance suite (`tensor_ops.rs`) on the wgpu adapter `accelerator: "gpu"`
//! uses: both backends meet the same expectations.

#[path = "tensor_ops.rs"]
mod tensor_ops;
