//! Builds every guest component (built-in models and test guests) for `wasm32-wasip2` with a
//! nested cargo in its own target dir, and writes `guests.rs` with their bytes as constants.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (crate name, constant name, `_target_`) of every built-in model.
const BUILT_IN: &[(&str, &str, &str)] = &[
    (
        "guest-simple-classifier",
        "SIMPLE_CLASSIFIER",
        "lightning_mcp.models.simple.SimpleClassifier",
    ),
    ("guest-mlp", "MLP", "lightning_mcp.models.mlp.MLP"),
    (
        "guest-convnet",
        "CONVNET",
        "lightning_mcp.models.cnn.ConvNet",
    ),
    (
        "guest-sequential",
        "SEQUENTIAL",
        "lightning_mcp.models.sequential.Sequential",
    ),
    (
        "guest-transformer",
        "CHAR_TRANSFORMER",
        "lightning_mcp.models.transformer.CharTransformer",
    ),
];
/// (crate name, constant name, doc) of every test guest.
const TESTING: &[(&str, &str, &str)] = &[
    (
        "guest-misbehaving",
        "MISBEHAVING",
        "A model that misbehaves on request: bad shapes, stale handles, panics, loops, bombs.",
    ),
    (
        "guest-sleeper",
        "SLEEPER",
        "A model that imports WASI clocks to sleep, which the host must refuse to link.",
    ),
    (
        "guest-file-reader",
        "FILE_READER",
        "A model that reads a host file, which the host must refuse to link.",
    ),
    (
        "guest-socket-opener",
        "SOCKET_OPENER",
        "A model that opens a network connection, which the host must not allow.",
    ),
    (
        "guest-broken-describe",
        "BROKEN_DESCRIBE",
        "A model whose `describe` traps, which the host must refuse to register.",
    ),
    (
        "guest-endless-describe",
        "ENDLESS_DESCRIBE",
        "A model whose `describe` never returns, which the host must refuse within its budget.",
    ),
    (
        "guest-old-world",
        "OLD_WORLD",
        "A component of an older `lightning:model` world, which the host must refuse.",
    ),
];

fn main() {
    if let Err(e) = run() {
        println!("cargo::error={e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .ok_or("workspace root not found")?
        .to_path_buf();
    // Relative to this package, so that a build reused from a checkout elsewhere (cargo does
    // not hash a path package's location) watches this checkout's sources, not that one's.
    for watched in [
        "wit",
        "guest-sdk",
        "guests/simple-classifier",
        "guests/mlp",
        "guests/convnet",
        "guests/sequential",
        "guests/transformer",
        "tests/guests",
        "Cargo.lock",
    ] {
        println!("cargo::rerun-if-changed=../../{watched}");
    }

    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let target_dir = out_dir.join("wasm");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "guest",
            "--target-dir",
        ])
        .arg(&target_dir);
    for (krate, _, _) in BUILT_IN.iter().chain(TESTING) {
        cmd.args(["-p", krate]);
    }
    // The outer build's settings are for the host, not for the guests.
    for (key, _) in env::vars() {
        if (key.starts_with("CARGO_") && key != "CARGO_HOME") || key == "RUSTFLAGS" {
            cmd.env_remove(key);
        }
    }
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(
            "building the guest components failed (is the target installed? \
             `rustup target add wasm32-wasip2`)"
                .to_string(),
        );
    }

    let artifacts = target_dir.join("wasm32-wasip2").join("guest");
    let mut code = String::new();
    let documented: Vec<(&str, &str, String)> = BUILT_IN
        .iter()
        .map(|(krate, name, target)| (*krate, *name, format!("`{target}`.")))
        .collect();
    write_consts(&mut code, &documented, &artifacts)?;
    code.push_str("\n/// Every built-in model component, with the target it declares.\npub const BUILT_IN: &[BuiltIn] = &[");
    for (_, name, target) in BUILT_IN {
        let _ = write!(code, "BuiltIn {{ target: {target:?}, wasm: {name} }}, ");
    }
    code.push_str("];\n\n/// Components for tests of the sandbox.\npub mod testing {\n");
    write_consts(&mut code, TESTING, &artifacts)?;
    code.push_str("}\n");
    std::fs::write(out_dir.join("guests.rs"), code).map_err(|e| e.to_string())
}

fn write_consts<D: std::fmt::Display>(
    code: &mut String,
    guests: &[(&str, &str, D)],
    dir: &Path,
) -> Result<(), String> {
    for (krate, name, doc) in guests {
        let path = dir.join(format!("{}.wasm", krate.replace('-', "_")));
        if !path.exists() {
            return Err(format!("{} was not built", path.display()));
        }
        let _ = writeln!(
            code,
            "/// {doc}\npub const {name}: &[u8] = include_bytes!({:?});",
            path.display().to_string()
        );
    }
    Ok(())
}
