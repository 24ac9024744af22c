//! `nacre module ...`: install, list, activate, roll back and dry-run guest modules on a
//! running cluster, through any node; and `new`, which writes a module crate to start from.

use std::io::Write as _;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use anyhow::bail;
use bytes::Bytes;
use serde_json::Value;

use super::Server;
use super::call;
use super::componentize;
use super::template;
use super::url;
use crate::net::HttpMethod;

/// Uploads may carry a module of many megabytes and wait for its compilation.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// Which binding a command changes.
#[derive(clap::Args)]
pub struct BindingTarget {
    #[arg(long)]
    namespace: String,
    /// `naming` or `config`.
    #[arg(long)]
    kind: String,
}

#[derive(clap::Subcommand)]
pub enum ModuleCommand {
    /// Validate a module and install it through the log (content-addressed by sha256).
    ///
    /// FILE is a component, or the core module `cargo build --target wasm32-unknown-unknown`
    /// makes of a crate over nacre-guest-sdk, which is componentized here first.
    Install {
        #[command(flatten)]
        server: Server,
        file: PathBuf,
    },
    /// Installed modules: id, name, version, kind, schema.
    List {
        #[command(flatten)]
        server: Server,
    },
    /// Bind a namespace's naming or config semantics to an installed module.
    Activate {
        #[command(flatten)]
        server: Server,
        #[command(flatten)]
        target: BindingTarget,
        /// The module id (or a unique prefix of it, as `nacre module list` shows).
        module: String,
    },
    /// Bind the module that was in force before the current one.
    Rollback {
        #[command(flatten)]
        server: Server,
        #[command(flatten)]
        target: BindingTarget,
    },
    /// Replay the namespace's last commands through a candidate module, without effect, and
    /// show where its results differ from the module in force.
    ///
    /// FILE is a component or a core module, as for `install`.
    DryRun {
        #[command(flatten)]
        server: Server,
        #[arg(long)]
        namespace: String,
        /// How many of the namespace's most recent commands to replay.
        #[arg(long, default_value_t = 100)]
        entries: usize,
        file: PathBuf,
    },
    /// Remove an installed module that no binding uses (its bytes, and its compiled form on
    /// every node): what makes room under the cluster's module quota.
    Remove {
        #[command(flatten)]
        server: Server,
        /// The module id (or a unique prefix of it, as `nacre module list` shows).
        module: String,
    },
    /// The bindings in force and every binding change, in log order.
    Bindings {
        #[command(flatten)]
        server: Server,
    },
    /// Write a new guest module crate to start from, PATH/NAME.
    ///
    /// A small key-value `StateMachine` of the given kind with native tests, which plain
    /// `cargo build --release --target wasm32-unknown-unknown` turns into a module `install`
    /// takes. Refuses to overwrite an existing directory.
    New {
        /// The crate's and the module's name: letters, digits, `-` and `_`, starting with a letter.
        name: String,
        /// The directory to create the crate in.
        #[arg(long, value_name = "PATH", default_value = ".")]
        dir: PathBuf,
        /// The module kind.
        #[arg(long, value_enum, default_value_t = template::Kind::Config)]
        kind: template::Kind,
        /// The guest SDK the crate depends on by path (it is not on crates.io): the
        /// guest-modules/sdk directory of a Nacre checkout; by default the one this binary was
        /// built from.
        #[arg(long, value_name = "PATH", default_value = template::DEFAULT_SDK)]
        sdk: PathBuf,
    },
}

pub async fn run(command: ModuleCommand) -> anyhow::Result<String> {
    match command {
        ModuleCommand::Install { server, file } => {
            let answer = upload(&url(&server.server, "/nacre/v1/modules", &[]), &file).await?;
            let info = &answer["info"];
            Ok(format!(
                "installed {} {} ({} schema {}) at index {}\nid {}\n",
                text(&info["name"]),
                text(&info["version"]),
                text(&info["kind"]),
                info["schema_version"],
                answer["index"],
                text(&answer["id"])
            ))
        }
        ModuleCommand::List { server } => {
            let modules: Value = json(&call(HttpMethod::GET, &url(&server.server, "/nacre/v1/modules", &[])).await?)?;
            let mut out = format!("{:<64}  {:<20} {:<10} {:<7} schema\n", "id", "name", "version", "kind");
            for module in modules.as_array().into_iter().flatten() {
                let info = &module["info"];
                out.push_str(&format!(
                    "{:<64}  {:<20} {:<10} {:<7} {}\n",
                    text(&module["id"]),
                    text(&info["name"]),
                    text(&info["version"]),
                    text(&info["kind"]),
                    info["schema_version"]
                ));
            }
            Ok(out)
        }
        ModuleCommand::Activate { server, target: BindingTarget { namespace, kind }, module } => {
            let module_id = resolve_id(&server.server, &module).await?;
            let params = [("namespace", namespace.as_str()), ("kind", kind.as_str()), ("module", module_id.as_str())];
            let binding = json(&call(HttpMethod::POST, &url(&server.server, "/nacre/v1/bindings", &params)).await?)?;
            Ok(format!("{namespace}/{kind} → {} from index {}\n", text(&binding["module_id"]), binding["since_index"]))
        }
        ModuleCommand::Remove { server, module } => {
            let module_id = resolve_id(&server.server, &module).await?;
            let answer = json(
                &call(HttpMethod::DELETE, &url(&server.server, "/nacre/v1/modules", &[("id", &module_id)])).await?,
            )?;
            Ok(format!("removed {} at index {}\n", text(&answer["removed"]), answer["index"]))
        }
        ModuleCommand::Rollback { server, target: BindingTarget { namespace, kind } } => {
            let params = [("namespace", namespace.as_str()), ("kind", kind.as_str())];
            let path = "/nacre/v1/bindings/rollback";
            let binding = json(&call(HttpMethod::POST, &url(&server.server, path, &params)).await?)?;
            Ok(format!(
                "{namespace}/{kind} rolled back to {} from index {}\n",
                text(&binding["module_id"]),
                binding["since_index"]
            ))
        }
        ModuleCommand::DryRun { server, namespace, entries, file } => {
            let count = entries.to_string();
            let params = [("namespace", namespace.as_str()), ("entries", count.as_str())];
            let report = upload(&url(&server.server, "/nacre/v1/modules/dry-run", &params), &file).await?;
            Ok(render_dry_run(&report))
        }
        ModuleCommand::Bindings { server } => {
            let all: Value = json(&call(HttpMethod::GET, &url(&server.server, "/nacre/v1/bindings", &[])).await?)?;
            let mut out = String::from("in force:\n");
            for b in all["bindings"].as_array().into_iter().flatten() {
                let binding = &b["binding"];
                out.push_str(&format!(
                    "  {:<20} {:<7} {} ({} {}) since {} by {}\n",
                    text(&b["namespace"]),
                    text(&binding["module"]["kind"]),
                    text(&binding["module_id"]),
                    text(&binding["module"]["name"]),
                    text(&binding["module"]["version"]),
                    binding["since_index"],
                    text(&binding["by"])
                ));
            }
            out.push_str("history:\n");
            for change in all["history"].as_array().into_iter().flatten() {
                let outcome = change["failure"].as_str().map_or("bound".to_string(), |f| format!("REFUSED: {f}"));
                out.push_str(&format!(
                    "  index {:<8} {:<20} {:<7} {} by {}: {outcome}\n",
                    change["index"],
                    text(&change["namespace"]),
                    text(&change["kind"]),
                    text(&change["module_id"]),
                    text(&change["by"])
                ));
            }
            Ok(out)
        }
        ModuleCommand::New { name, dir, kind, sdk } => {
            let (root, sdk) = template::create(&dir, &name, kind, &sdk)?;
            Ok(template::created_message(&root, &name, kind, &sdk))
        }
    }
}

/// Upload a module file, componentized first if it is a core module (saying so on stderr),
/// with a progress line on stderr, and parse the JSON answer.
async fn upload(url: &str, file: &Path) -> anyhow::Result<Value> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let componentize::Upload { component: bytes, notice } = componentize::for_upload(file, bytes)?;
    if let Some(notice) = notice {
        eprint!("{notice}");
    }
    let name = file.display().to_string();
    let progress = move |sent: usize, total: usize| {
        eprint!("\ruploading {name}: {} / {} KiB ({}%)", sent / 1024, total / 1024, sent * 100 / total.max(1));
        if sent == total {
            eprintln!();
        }
        let _ = std::io::stderr().flush();
    };
    let token = super::bearer(super::origin(url)).await?;
    let tls = super::tls()?;
    let (status, body) =
        crate::net::upload_with_progress(&tls, url, Bytes::from(bytes), token.as_deref(), UPLOAD_TIMEOUT, progress)
            .await
            .with_context(|| format!("calling {url}"))?;
    if status != 200 {
        bail!("HTTP {status}: {}", body.trim());
    }
    json(&body)
}

/// A full module id from a unique prefix of one.
async fn resolve_id(server: &str, prefix: &str) -> anyhow::Result<String> {
    let modules: Value = json(&call(HttpMethod::GET, &url(server, "/nacre/v1/modules", &[])).await?)?;
    let matching: Vec<String> = modules
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_str())
        .filter(|id| id.starts_with(prefix))
        .map(str::to_string)
        .collect();
    match matching.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no installed module id starts with {prefix:?}"),
        _ => bail!("{} installed modules start with {prefix:?}; give more of the id", matching.len()),
    }
}

fn render_dry_run(report: &Value) -> String {
    let mut out = String::new();
    for entry in report["entries"].as_array().into_iter().flatten() {
        let mark = if entry["differs"] == true { "DIFF" } else { "same" };
        out.push_str(&format!("{mark} index {:<8} {}\n", entry["index"], text(&entry["op"])));
        if entry["differs"] == true {
            for side in ["in_force", "candidate"] {
                let result = &entry[side];
                out.push_str(&format!("     {side:<9} {} {}\n", result["status"], text(&result["body"])));
            }
        }
    }
    out.push_str(&format!("{}\n", text(&report["summary"])));
    out
}

fn json(body: &str) -> anyhow::Result<Value> {
    serde_json::from_str(body).context("the node's answer is not JSON")
}

fn text(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_string)
}
