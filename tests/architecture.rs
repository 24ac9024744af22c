//! The Architecture Invariants of ARCHITECTURE.md that say what a part of the host does *not*
//! name, kept by a test over the source tree: a change that breaks one fails `cargo test`.
//!
//! Each rule names the rooms (top-level modules of `host/src`) it binds and what they may not
//! mention in code (comments aside): an external crate, or another room through `crate::`.

use std::path::Path;
use std::path::PathBuf;

/// One rule: files in `rooms` never mention any of `forbidden` (`crate::<room>` or a crate
/// name), for the reason given.
struct Rule {
    rooms: &'static [&'static str],
    forbidden: &'static [&'static str],
    why: &'static str,
}

const EXTERNAL: &[Rule] = &[
    Rule { rooms: &["*"], forbidden: &["openraft"], why: "only raft/ and the composition root (node/) name openraft" },
    Rule { rooms: &["*"], forbidden: &["wasmtime"], why: "only runtime/ names wasmtime" },
    Rule { rooms: &["*"], forbidden: &["hyper", "hyper_util"], why: "only net/ names hyper; the API uses net's types" },
    Rule {
        rooms: &["*"],
        forbidden: &["tonic", "prost"],
        why: "only grpc/ names tonic and prost: the gRPC port's wire",
    },
];

/// Where each external crate may be named.
const EXTERNAL_ALLOWED_IN: &[(&str, &[&str])] = &[
    ("openraft", &["raft", "node"]),
    ("wasmtime", &["runtime"]),
    ("hyper", &["net"]),
    ("hyper_util", &["net"]),
    ("tonic", &["grpc"]),
    ("prost", &["grpc"]),
];

const LAYERS: &[Rule] = &[
    Rule {
        rooms: &[
            "ap",
            "duties",
            "api",
            "grpc",
            "gate",
            "dispatch",
            "guests",
            "leases",
            "members",
            "partition",
            "clock",
            "tasks",
        ],
        forbidden: &["node"],
        why: "only main knows the composition root; every other part is handed the services it uses",
    },
    Rule {
        rooms: &["state"],
        forbidden: &["raft", "node", "api", "ap", "duties", "dispatch", "guests", "net"],
        why: "the state machine stands below the log, the network and the API",
    },
    Rule {
        rooms: &["runtime"],
        forbidden: &["state", "raft", "node", "api", "ap", "duties", "dispatch", "guests", "net"],
        why: "the runtime knows no Raft, HTTP or namespaces",
    },
    Rule {
        rooms: &["guests"],
        forbidden: &["dispatch", "duties", "api", "node"],
        why: "guest calls stand below the plan's interpreter and its users",
    },
    Rule {
        rooms: &["ap"],
        forbidden: &["dispatch", "duties", "api", "node", "leases"],
        why: "the AP path stands on guests, members, net and clock only",
    },
    Rule {
        rooms: &["raft"],
        forbidden: &["dispatch", "duties", "api", "node", "ap", "guests"],
        why: "the log stands on state, net and members only",
    },
    Rule {
        rooms: &["dispatch"],
        forbidden: &["duties", "api", "node"],
        why: "the plan's interpreter stands below the API and the duties that use it",
    },
    Rule {
        rooms: &["members", "partition", "clock", "leases", "tasks"],
        forbidden: &["ap::Ap", "raft", "node", "api", "duties", "dispatch", "guests"],
        why: "the small shared services stand at the bottom",
    },
    Rule { rooms: &["api"], forbidden: &["duties::leases", "raft::network"], why: "the API uses services, not tasks" },
    Rule {
        rooms: &["api"],
        forbidden: &["grpc"],
        why: "the two client ports stand side by side: neither reaches into the other",
    },
    Rule {
        rooms: &["grpc"],
        forbidden: &["api", "duties", "raft", "ap", "leases", "members", "net::http", "net::peer_client"],
        why: "the gRPC port stands on the plan's interpreter, guest calls and the gate, as the API does",
    },
    Rule {
        rooms: &["telemetry"],
        forbidden: &[
            "state", "raft", "node", "api", "grpc", "ap", "duties", "dispatch", "guests", "leases", "members",
            "runtime", "net",
        ],
        why: "metrics are recorded by the ports and read from the services by the API; they know neither",
    },
    Rule {
        rooms: &["gate"],
        forbidden: &["api", "grpc", "dispatch", "duties", "raft", "ap", "net", "leases", "members"],
        why: "the gate stands below both client ports, on guests (the replicated users) and auth",
    },
    Rule {
        rooms: &["auth"],
        forbidden: &[
            "state", "raft", "node", "api", "ap", "duties", "dispatch", "guests", "leases", "members", "runtime", "net",
        ],
        why: "passwords, tokens and permissions are pure logic below the state that stores them",
    },
    Rule {
        rooms: &["net"],
        forbidden: &[
            "state", "raft", "node", "api", "ap", "duties", "dispatch", "guests", "leases", "members", "runtime",
        ],
        why: "the network carries and authenticates bytes; it stands on the clock alone",
    },
];

/// Rooms exempt from every rule: the in-crate fuzz harness reaches into everything on purpose.
const EXEMPT: &[&str] = &["fuzz"];

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("host/src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The room of a file: its top-level module (`ap` for `ap/store.rs`, `clock` for `clock.rs`).
fn room(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("under src");
    let first = relative.components().next().expect("a path").as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_string()
}

/// The file's code with comments removed (line comments and doc comments; the codebase uses
/// no block comments).
fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `code` names `what`: `crate::what` for a room (or a room path like `ap::Ap`), the
/// crate's own name for an external crate.
fn mentions(code: &str, what: &str, external: bool) -> bool {
    let needle = if external { format!("{what}::") } else { format!("crate::{what}") };
    code.match_indices(&needle).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + needle.len()..].chars().next();
        let starts = !before.is_some_and(|c| c.is_alphanumeric() || c == '_');
        let ends = external || !after.is_some_and(|c| c.is_alphanumeric() || c == '_');
        starts && ends
    }) || (external && code.contains(&format!("use {what}")))
}

#[test]
fn the_host_keeps_its_architecture_invariants() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 40, "the scan sees the host's sources ({} files)", files.len());
    let mut broken = Vec::new();
    for file in &files {
        let room = room(&src, file);
        if EXEMPT.contains(&room.as_str()) || room == "main" || room == "lib" {
            continue;
        }
        let code = code(&std::fs::read_to_string(file).expect("a readable source file"));
        for rule in EXTERNAL {
            for name in rule.forbidden {
                let allowed = EXTERNAL_ALLOWED_IN
                    .iter()
                    .find(|(n, _)| n == name)
                    .is_some_and(|(_, rooms)| rooms.contains(&room.as_str()));
                if !allowed && mentions(&code, name, true) {
                    broken.push(format!("{} names {name}: {}", file.display(), rule.why));
                }
            }
        }
        for rule in LAYERS.iter().filter(|rule| rule.rooms.contains(&room.as_str())) {
            for name in rule.forbidden {
                if mentions(&code, name, false) {
                    broken.push(format!("{} names crate::{name}: {}", file.display(), rule.why));
                }
            }
        }
    }
    assert!(broken.is_empty(), "architecture invariants broken:\n{}", broken.join("\n"));
}

/// The scan itself can fail: a file that breaks a rule is caught.
#[test]
fn the_scan_catches_a_forbidden_name() {
    assert!(mentions("use crate::node::Node;", "node", false));
    assert!(mentions("let x = crate::raft::log::Log::new();", "raft", false));
    assert!(!mentions("use crate::nodes::X;", "node", false), "a longer room name is another room");
    assert!(!mentions(&code("// use crate::node::Node;"), "node", false), "comments do not count");
    assert!(mentions("use openraft::Raft;", "openraft", true));
    assert!(mentions("let r: openraft::Config;", "openraft", true));
    assert!(!mentions("let hyperloop = 1;", "hyper", true));
}
