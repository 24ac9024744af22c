//! Fails the build in its first seconds when the `wasm32-unknown-unknown` target is missing.
//!
//! Every Nacre build compiles guest modules for that target (the host's build script runs a
//! nested `cargo build` for it), and this crate, which has no build dependencies, is among the
//! first compiled: without this check a fresh machine whose rustup does not install the
//! target from `rust-toolchain.toml` would compile for minutes, then stop. Guest modules built
//! outside this repository need the target as well.

use std::path::PathBuf;
use std::process::Command;

const WASM_TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Some(sysroot) = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    else {
        // No answer from rustc: leave the judgement to the build that needs the target.
        return;
    };
    let target_std = sysroot.join("lib/rustlib").join(WASM_TARGET).join("lib");
    if !target_std.is_dir() {
        panic!(
            "\n\nNacre's guest modules are built for {WASM_TARGET}, and this toolchain does not have it \
             ({} is missing).\nInstall it once, then build again:\n\n    rustup target add {WASM_TARGET}\n\n",
            target_std.display()
        );
    }
}
