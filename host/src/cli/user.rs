//! `nacre user`: the first administrator, users, roles and grants, against any node.
//!
//! Passwords are read from files (never from the command line, where `ps` shows them) and
//! sent in request bodies (never in URLs, which proxies log).

use std::path::Path;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::Value;

use super::Server;
use super::call;
use super::call_with_form;
use super::form;
use super::url;
use crate::net::HttpMethod;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create the first administrator (ROLE_ADMIN) with the bootstrap token a node with auth
    /// on writes to `<data-dir>/bootstrap-token` while it has none. Once only, cluster-wide.
    Bootstrap {
        #[command(flatten)]
        server: Server,
        /// The bootstrap token's file of the node at --server.
        #[arg(long, required_unless_present = "data_dir", conflicts_with = "data_dir")]
        token_file: Option<PathBuf>,
        /// Or that node's data directory (its `bootstrap-token` is read).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, default_value = crate::api::DEFAULT_ADMIN)]
        username: String,
        /// A file holding the password; without it the first line of stdin, and when that is
        /// empty the node makes one up and it is printed.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Add a user.
    Add {
        #[command(flatten)]
        server: Server,
        username: String,
        #[arg(long)]
        password_file: PathBuf,
    },
    /// Set a user's password (an administrator, or the user themself): their tokens stop working.
    Passwd {
        #[command(flatten)]
        server: Server,
        username: String,
        #[arg(long)]
        password_file: PathBuf,
    },
    /// Remove a user and their role bindings.
    Remove {
        #[command(flatten)]
        server: Server,
        username: String,
    },
    /// Bind a role to a user (a role exists while someone holds it).
    Grant {
        #[command(flatten)]
        server: Server,
        role: String,
        username: String,
    },
    /// Allow a role an action (`r`, `w`, `rw`) on a resource (`<namespace>:<group>:<type>/<name>`,
    /// `*` matching any run of characters; the console offers `<namespace>:*:*`).
    Permit {
        #[command(flatten)]
        server: Server,
        role: String,
        resource: String,
        action: String,
    },
    /// Users, with their roles.
    List {
        #[command(flatten)]
        server: Server,
    },
}

pub async fn run(command: UserCommand) -> anyhow::Result<String> {
    let users = |server: &Server| format!("{}/nacos/v1/auth/users", super::base(&server.server));
    match command {
        UserCommand::Bootstrap { server, token_file, data_dir, username, password_file } => {
            let token_file = match (token_file, data_dir) {
                (Some(file), _) => file,
                (None, Some(dir)) => dir.join(crate::api::access::BOOTSTRAP_TOKEN_FILE),
                (None, None) => anyhow::bail!("give --token-file or --data-dir"),
            };
            let token = std::fs::read_to_string(&token_file).with_context(|| {
                format!("reading {} (the node writes it while it has no administrator)", token_file.display())
            })?;
            let mut pairs = vec![("username", username.clone()), ("bootstrapToken", token.trim().to_string())];
            let password = match &password_file {
                Some(file) => read_password(file)?,
                None => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line).context("reading the password from stdin")?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            if !password.is_empty() {
                pairs.push(("password", password));
            }
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let url = format!("{}/admin", users(&server));
            // Public, and made before any user exists: sent without the environment's credentials.
            let answer: Value = serde_json::from_str(
                &super::send(HttpMethod::POST, &url, None, Some(form(&pairs)), super::REQUEST_TIMEOUT).await?,
            )?;
            Ok(match answer["password"].as_str() {
                Some(password) => format!("administrator {username} created; password: {password}\n"),
                None => format!("administrator {username} created\n"),
            })
        }
        UserCommand::Add { server, username, password_file } => {
            let password = read_password(&password_file)?;
            let body = form(&[("username", &username), ("password", &password)]);
            message(call_with_form(HttpMethod::POST, &users(&server), Some(body)).await?)
        }
        UserCommand::Passwd { server, username, password_file } => {
            let password = read_password(&password_file)?;
            let body = form(&[("username", &username), ("newPassword", &password)]);
            message(call_with_form(HttpMethod::PUT, &users(&server), Some(body)).await?)
        }
        UserCommand::Remove { server, username } => message(
            call(HttpMethod::DELETE, &url(&server.server, "/nacos/v1/auth/users", &[("username", &username)])).await?,
        ),
        UserCommand::Grant { server, role, username } => {
            let body = form(&[("role", &role), ("username", &username)]);
            let url = format!("{}/nacos/v1/auth/roles", super::base(&server.server));
            message(call_with_form(HttpMethod::POST, &url, Some(body)).await?)
        }
        UserCommand::Permit { server, role, resource, action } => {
            let body = form(&[("role", &role), ("resource", &resource), ("action", &action)]);
            let url = format!("{}/nacos/v1/auth/permissions", super::base(&server.server));
            message(call_with_form(HttpMethod::POST, &url, Some(body)).await?)
        }
        UserCommand::List { server } => {
            let page: Value = serde_json::from_str(
                &call(HttpMethod::GET, &url(&server.server, "/nacos/v1/auth/users", &[("pageSize", "500")])).await?,
            )?;
            let roles: Value = serde_json::from_str(
                &call(HttpMethod::GET, &url(&server.server, "/nacos/v1/auth/roles", &[("pageSize", "500")])).await?,
            )?;
            let mut out = String::new();
            for user in page["pageItems"].as_array().into_iter().flatten() {
                let name = user["username"].as_str().unwrap_or_default();
                let held: Vec<&str> = roles["pageItems"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|binding| binding["username"] == name)
                    .filter_map(|binding| binding["role"].as_str())
                    .collect();
                out.push_str(&format!("{name}\t{}\n", held.join(",")));
            }
            Ok(out)
        }
    }
}

/// A password file's first line.
fn read_password(file: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let password = text.lines().next().unwrap_or_default().to_string();
    anyhow::ensure!(!password.is_empty(), "{} holds no password", file.display());
    Ok(password)
}

/// The message of Nacos's `RestResult`.
fn message(body: String) -> anyhow::Result<String> {
    let answer: Value = serde_json::from_str(&body).with_context(|| format!("not a RestResult: {body}"))?;
    Ok(format!("{}\n", answer["message"].as_str().unwrap_or_default()))
}
