//! Module authoring outside the repository, with nothing but the `nacre` binary and cargo:
//! `nacre module new` writes a crate, plain `cargo build --release --target
//! wasm32-unknown-unknown` makes a *core* module of it, `nacre module install` (and
//! `dry-run`) componentize that module on the client and upload it, `nacre module activate`
//! binds it to a namespace, and the module answers there.
//!
//! The crates build into `target/authoring-test` (not a temp dir), so that a second run finds
//! the SDK and its dependencies compiled.

mod support;

use std::path::Path;
use std::path::PathBuf;
use std::process::Command;
use std::process::Output;
use std::time::Duration;
use std::time::Instant;

use support::cluster::Cluster;
use support::http;

/// Environment the outer cargo sets for the test (or was given) that would leak into the
/// nested build: flags that replace the crate's `.cargo/config.toml` rustflags, a wrapper, a
/// target dir or profile overrides. As `host/build.rs` strips them for the built-in guests.
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

/// A core module's header: `\0asm`, version 1, layer 0 (a component's is `0d 00 01 00`).
const CORE_MODULE_HEADER: &[u8] = b"\0asm\x01\0\0\0";

const EXEC: &str = "/nacre/v1/exec";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the host crate lives in the workspace").to_path_buf()
}

/// `nacre module ARGS`, as a person runs it.
fn nacre(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nacre"))
        .arg("module")
        .args(args)
        .env("NACRE_ACCESS_TOKEN", support::http::latest_token())
        .output()
        .expect("the nacre binary runs")
}

/// `nacre module ARGS` that must succeed: its stdout and stderr.
fn nacre_ok(args: &[&str]) -> (String, String) {
    let output = nacre(args);
    let (stdout, stderr) =
        (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned());
    assert!(output.status.success(), "nacre module {args:?} failed:\n{stderr}");
    (stdout, stderr)
}

/// Plain `cargo ARGS` in `crate_dir` (so that the crate's `.cargo/config.toml` applies), into
/// the shared target dir, without the outer build's environment.
fn cargo(crate_dir: &Path, args: &[&str]) {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(crate_dir).args(args);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if LEAKING_VARS.contains(&name.as_ref()) || LEAKING_PREFIXES.iter().any(|p| name.starts_with(p)) {
            cmd.env_remove(name.as_ref());
        }
    }
    cmd.env("CARGO_TARGET_DIR", target_dir());
    let started = Instant::now();
    let output = cmd.output().expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo {args:?} in {} failed:\n{}{}",
        crate_dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("cargo {args:?} in {}: {:.1?}", crate_dir.display(), started.elapsed());
}

fn target_dir() -> PathBuf {
    workspace().join("target/authoring-test")
}

/// `nacre module new NAME --kind KIND` into `dir`, its native tests run, built for wasm32: the
/// core module.
fn new_module(dir: &Path, name: &str, kind: &str) -> PathBuf {
    let (stdout, _) = nacre_ok(&["new", name, "--dir", dir.to_str().unwrap(), "--kind", kind]);
    assert!(stdout.starts_with(&format!("created {kind} module {name} in ")), "{stdout}");
    let crate_dir = dir.join(name);
    // The versions the workspace builds (and tests) the SDK with; it also spares the build a
    // registry index lookup.
    std::fs::copy(workspace().join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
    cargo(&crate_dir, &["fmt", "--check"]);
    cargo(&crate_dir, &["test", "--quiet"]);
    cargo(&crate_dir, &["build", "--release", "--target", "wasm32-unknown-unknown"]);
    let core = target_dir().join("wasm32-unknown-unknown/release").join(format!("{}.wasm", name.replace('-', "_")));
    let bytes = std::fs::read(&core).unwrap_or_else(|e| panic!("reading {}: {e}", core.display()));
    assert!(bytes.starts_with(CORE_MODULE_HEADER), "cargo writes a core module, not a component");
    core
}

/// Install the core module at `core`; its id. Says on stderr that it componentized it.
fn install(server: &str, core: &Path, name: &str, kind: &str) -> String {
    let (stdout, stderr) = nacre_ok(&["install", core.to_str().unwrap(), "--server", server]);
    assert!(stderr.contains(&format!("componentized {}: core module (", core.display())), "{stderr}");
    let kind_shown = if kind == "naming" { "Naming" } else { "Config" };
    assert!(stdout.starts_with(&format!("installed {name} 0.1.0 ({kind_shown} schema 100) at index ")), "{stdout}");
    stdout.lines().find_map(|line| line.strip_prefix("id ")).expect("an id line").trim().to_string()
}

/// `kv.put` then `kv.get` through `/nacre/v1/exec`: the put was applied by `module_id`, and the
/// value reads back.
fn put_and_get(server: &str, namespace: &str, kind: &str, module_id: &str) {
    let query =
        http::form(&[("namespace", namespace), ("kind", kind), ("op", "kv.put"), ("key", "k"), ("value", "v1")]);
    let put = http::request("POST", server, &format!("{EXEC}?{query}"), None, b"").unwrap();
    assert_eq!((put.status, put.text().as_str()), (200, "ok"), "{kind} kv.put");
    assert_eq!(put.header("x-nacre-module"), Some(module_id), "the new module applied the put");
    let query = http::form(&[("namespace", namespace), ("kind", kind), ("op", "kv.get"), ("key", "k")]);
    let get = http::request("GET", server, &format!("{EXEC}?{query}"), None, b"").unwrap();
    assert_eq!((get.status, get.text().as_str()), (200, "v1"), "{kind} kv.get");
    let query = http::form(&[("namespace", namespace), ("kind", kind), ("op", "kv.get"), ("key", "missing")]);
    let missing = http::request("GET", server, &format!("{EXEC}?{query}"), None, b"").unwrap();
    assert_eq!(missing.status, 404, "{}", missing.text());
}

#[test]
fn a_module_from_nacre_module_new_builds_installs_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let config_core = new_module(dir.path(), "my-kv", "config");
    let naming_core = new_module(dir.path(), "my-names", "naming");

    // `new` never overwrites.
    let again = nacre(&["new", "my-kv", "--dir", dir.path().to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists; refusing to overwrite"));

    let cluster = Cluster::start(1);
    let server = cluster.addr(0).to_string();

    let config_id = install(&server, &config_core, "my-kv", "config");
    let (activated, _) =
        nacre_ok(&["activate", "--namespace", "some-ns", "--kind", "config", &config_id[..12], "--server", &server]);
    assert!(activated.starts_with(&format!("some-ns/config → {config_id} from index ")), "{activated}");
    put_and_get(&server, "some-ns", "config", &config_id);

    // A new build tried against the namespace's history first, as a core module too.
    let (report, stderr) = nacre_ok(&[
        "dry-run",
        "--namespace",
        "some-ns",
        "--entries",
        "5",
        config_core.to_str().unwrap(),
        "--server",
        &server,
    ]);
    assert!(stderr.contains("componentized"), "{stderr}");
    assert!(report.contains("replayed") && report.contains("0 differ"), "{report}");

    let naming_id = install(&server, &naming_core, "my-names", "naming");
    nacre_ok(&["activate", "--namespace", "other-ns", "--kind", "naming", &naming_id, "--server", &server]);
    put_and_get(&server, "other-ns", "naming", &naming_id);
    // The host's own queries of a naming namespace with data (the lease sweep every second,
    // health targets every two) get answers they can read, not warnings.
    std::thread::sleep(Duration::from_millis(2_500));
    let log = cluster.node_log(0);
    for warning in ["sweep failed", "not a sweep reply", "health targets failed", "health targets are not a list"] {
        assert!(!log.contains(warning), "the node logged {warning:?}:\n{log}");
    }

    // A file that is no module is refused by the CLI, naming it.
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let refused = nacre(&["install", junk.to_str().unwrap(), "--server", &server]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!("{} is neither a WebAssembly component nor a core module", junk.display())),
        "{stderr}"
    );
}
