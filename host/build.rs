//! Records the versions of wasmtime and Burn this binary was built with (from Cargo.lock), for
//! `lightning.inspect` `what: environment`.

use std::path::Path;

fn main() {
    // Read at run time: a build script binary may be reused from a checkout elsewhere.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let lock = Path::new(&manifest_dir).join("../Cargo.lock");
    // Relative to this package, so that a build reused from another checkout watches this one.
    println!("cargo::rerun-if-changed=../Cargo.lock");
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    for (package, var) in [
        ("wasmtime", "LIGHTNING_MCP_WASMTIME_VERSION"),
        ("burn", "LIGHTNING_MCP_BURN_VERSION"),
    ] {
        let version = locked_version(&text, package).unwrap_or_else(|| "unknown".to_string());
        println!("cargo::rustc-env={var}={version}");
    }
}

/// The version of `package` in a Cargo.lock.
fn locked_version(lock: &str, package: &str) -> Option<String> {
    let needle = format!("name = \"{package}\"\nversion = \"");
    let start = lock.find(&needle)? + needle.len();
    let rest = lock.get(start..)?;
    Some(rest.get(..rest.find('"')?)?.to_string())
}
