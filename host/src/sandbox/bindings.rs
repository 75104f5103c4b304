//! The host bindings of the `lightning:model` WIT world: the only `bindgen!` in the host.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "model",
    with: {
        "lightning:model/tensors.tensor": crate::sandbox::state::GuestTensor,
    },
    imports: { default: trappable },
    trappable_error_type: {
        "lightning:model/tensors.tensor-error" => crate::sandbox::state::OpError,
    },
});

pub use exports::lightning::model::lightning_module as module;
pub use lightning::model::{log, params, tensors};
