//! Builds the built-in guest modules and embeds them (see `src/builtin.rs`).
//!
//! A nested `cargo build` compiles the guest crates of this workspace for wasm32 into a target
//! directory of their own, so it never waits on the outer build's lock and its results are
//! cached between builds. Each core module is then turned into a component, checked against
//! the contract (imports only `nacre:machine/*`, exports the four world functions) and
//! written to OUT_DIR.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Componentizing and the contract's checks, shared with `nacre module install` (which
/// componentizes an author's core module the same way). Included by path: a build script
/// cannot depend on the crate it builds; the file uses only std and wit-component.
#[path = "src/cli/componentize/contract.rs"]
mod contract;

const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// Relative to the workspace root. Not the outer build's target dir: that is locked while
/// this script runs, and its profile is the host's.
const GUEST_TARGET_DIR: &str = "target/wasm-guests";

/// (package, core module file stem, component file name in OUT_DIR).
/// Custom modules from `examples/modules`, built in a second nested build: they wrap
/// `nacre-naming` without its export feature, which must not be unified with the built-in
/// build (the built-in naming module does export). Written to `COMPONENTS_DIR` too, so the
/// walkthrough can install them.
const EXAMPLES: &[(&str, &str, &str)] = &[
    ("nacre-example-require-metadata", "nacre_example_require_metadata", "example-require-metadata.wasm"),
    ("nacre-example-zone-first", "nacre_example_zone_first", "example-zone-first.wasm"),
];

/// Where the componentized guests are also written, relative to the workspace root, for
/// people to install with `nacre module install`.
const COMPONENTS_DIR: &str = "target/wasm-guests/components";

const GUESTS: &[(&str, &str, &str)] = &[
    ("nacre-naming", "nacre_naming", "naming.wasm"),
    ("nacre-config", "nacre_config", "config.wasm"),
    ("nacre-fixture-hostile", "nacre_fixture_hostile", "hostile-fixture.wasm"),
];

/// Release-profile overrides for the guests only (`--config` beats the manifest's
/// `[profile.release]`, which stays the host's). Speed over size: a guest's instructions are
/// its fuel: at opt-level 3 the config module decodes a megabyte of escaped JSON content
/// within the per-command fuel, at "s" it does not (for ~10% more bytes of module). LTO and one codegen unit shrink the module.
/// Names are kept (only debug info is stripped) so that guest traps have readable backtraces.
const GUEST_PROFILE: &[&str] = &[
    "profile.release.opt-level=3",
    "profile.release.lto=true",
    "profile.release.codegen-units=1",
    "profile.release.debug=false",
    "profile.release.strip=\"debuginfo\"",
    "profile.release.panic=\"abort\"",
    "profile.release.incremental=false",
    "target.wasm32-unknown-unknown.rustflags=[\"-C\", \"link-arg=--initial-memory=4194304\"]",
];

/// Environment the outer build sets for its own (host) compilation, which would otherwise
/// leak into the nested one: host rustflags (e.g. `-C target-cpu=native`), a wrapper such as
/// clippy-driver or sccache, another target or target dir, host profile overrides.
/// `CARGO_MAKEFLAGS` is kept on purpose: it carries the outer build's jobserver, so the
/// nested cargo shares its job tokens instead of starting as many jobs again.
const LEAKING_VARS: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_TARGET_DIR",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_INCREMENTAL",
    "CARGO_PRIMARY_PACKAGE",
];
const LEAKING_PREFIXES: &[&str] = &["CARGO_BUILD_", "CARGO_PROFILE_", "__CARGO_"];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().expect("the host crate lives inside the workspace").to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    for watched in ["guest-modules", "examples/modules", "protocol", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }

    check_wasm_target_installed();
    build_guests(&workspace, GUESTS);
    build_guests(&workspace, EXAMPLES);
    let components_dir = workspace.join(COMPONENTS_DIR);
    fs::create_dir_all(&components_dir).expect("creating the components dir");

    let release_dir = workspace.join(GUEST_TARGET_DIR).join(WASM_TARGET).join("release");
    for (package, stem, component_name) in GUESTS.iter().chain(EXAMPLES) {
        let core_path = release_dir.join(format!("{stem}.wasm"));
        let core = fs::read(&core_path).unwrap_or_else(|e| panic!("reading {}: {e}", core_path.display()));
        let component =
            contract::componentize(&core).unwrap_or_else(|e| panic!("{package}: not a state-machine guest: {e}"));
        fs::write(components_dir.join(component_name), &component).expect("writing the component to target");
        fs::write(out_dir.join(component_name), component).expect("writing the component to OUT_DIR");
    }
}

/// A missing wasm32 standard library shows up deep in the nested build as "can't find crate
/// for `core`"; say what to do instead.
fn check_wasm_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc).args(["--print", "sysroot"]).output().expect("running rustc --print sysroot");
    let sysroot = String::from_utf8(output.stdout).expect("the sysroot path is UTF-8");
    let target_lib = Path::new(sysroot.trim()).join("lib/rustlib").join(WASM_TARGET);
    if !target_lib.exists() {
        panic!(
            "the {WASM_TARGET} target is not installed for this toolchain ({}); the built-in guest modules \
             need it. Run: rustup target add {WASM_TARGET}",
            sysroot.trim()
        );
    }
}

fn build_guests(workspace: &Path, guests: &[(&str, &str, &str)]) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .arg("build")
        .arg("--release")
        .args(["--target", WASM_TARGET])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(workspace.join(GUEST_TARGET_DIR));
    for (package, _, _) in guests {
        cmd.args(["-p", package]);
    }
    for setting in GUEST_PROFILE {
        cmd.args(["--config", setting]);
    }
    for (name, _) in env::vars_os() {
        let name = name.to_string_lossy();
        if LEAKING_VARS.contains(&name.as_ref()) || LEAKING_PREFIXES.iter().any(|p| name.starts_with(p)) {
            cmd.env_remove(name.as_ref());
        }
    }
    let output = cmd.output().expect("running the nested cargo build of the guest modules");
    if !output.status.success() {
        panic!(
            "building the guest modules for {WASM_TARGET} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
