//! A component of an older `lightning:model` world (`@0.0.1`, see `wit/model.wit`), for the
//! sandbox tests: the host must refuse it and name what it lacks.

wit_bindgen::generate!({ path: "wit", world: "model" });

struct OldWorld;

impl exports::lightning::model::lightning_module::Guest for OldWorld {
    fn describe() -> String {
        "lightning_mcp.testing.OldWorld".to_string()
    }
}

export!(OldWorld);
