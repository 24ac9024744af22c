//! The admin subcommands of `nacre`: small HTTP clients of any running node (`--server`).

mod cluster;
mod componentize;
mod config;
mod module;
mod template;
mod user;

use std::time::Duration;

use anyhow::Context as _;
use anyhow::bail;

pub use cluster::ClusterCommand;
pub use cluster::run as run_cluster;
pub use config::ConfigCommand;
pub use config::run as run_config;
pub use module::ModuleCommand;
pub use module::run as run_module;
pub use user::UserCommand;
pub use user::run as run_user;

use crate::net::HttpMethod;

/// How long one command waits for the node.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The node an admin command talks to.
#[derive(clap::Args)]
pub struct Server {
    /// Any node's client address, host:port (or https://host:port for a node serving TLS,
    /// checked against NACRE_CA_FILE). Credentials come from NACRE_ACCESS_TOKEN, or
    /// NACRE_USERNAME and NACRE_PASSWORD.
    #[arg(long, default_value = "127.0.0.1:8848")]
    pub server: String,
}

/// Where the admin commands take credentials from, as a user's shell holds them: an access
/// token, or a username and password the command logs in with first (through the form body,
/// never the URL). With none, requests go without (a node with auth off).
pub const TOKEN_ENV: &str = "NACRE_ACCESS_TOKEN";
pub const USERNAME_ENV: &str = "NACRE_USERNAME";
pub const PASSWORD_ENV: &str = "NACRE_PASSWORD";

/// The token to call `server` with, from the environment (logging in once per command).
async fn bearer(server: &str) -> anyhow::Result<Option<String>> {
    static TOKEN: tokio::sync::OnceCell<Option<String>> = tokio::sync::OnceCell::const_new();
    TOKEN
        .get_or_try_init(|| async {
            if let Ok(token) = std::env::var(TOKEN_ENV) {
                return Ok(Some(token));
            }
            let (Ok(username), Ok(password)) = (std::env::var(USERNAME_ENV), std::env::var(PASSWORD_ENV)) else {
                return Ok(None);
            };
            let form = form(&[("username", &username), ("password", &password)]);
            let login = format!("{server}/nacos/v1/auth/login");
            let answer =
                send(HttpMethod::POST, &login, None, Some(form), REQUEST_TIMEOUT).await.context("logging in")?;
            let answer: serde_json::Value = serde_json::from_str(&answer).context("the login answer")?;
            Ok(answer["accessToken"].as_str().map(str::to_string))
        })
        .await
        .cloned()
}

/// Call `url` with the environment's credentials and return the body of a 200 answer; any
/// other status is an error with the node's message.
async fn call(method: HttpMethod, url: &str) -> anyhow::Result<String> {
    call_with_form(method, url, None).await
}

/// [`call`] with a form body.
async fn call_with_form(method: HttpMethod, url: &str, form: Option<String>) -> anyhow::Result<String> {
    call_waiting(method, url, form, REQUEST_TIMEOUT).await
}

/// [`call_with_form`] for a request that may take up to `timeout` (a membership change).
async fn call_waiting(
    method: HttpMethod,
    url: &str,
    form: Option<String>,
    timeout: Duration,
) -> anyhow::Result<String> {
    let token = bearer(origin(url)).await?;
    send(method, url, token.as_deref(), form, timeout).await
}

async fn send(
    method: HttpMethod,
    url: &str,
    bearer: Option<&str>,
    form: Option<String>,
    timeout: Duration,
) -> anyhow::Result<String> {
    let shown = url.split('?').next().unwrap_or(url);
    let (status, body) = crate::net::request_text(&tls()?, method, url, bearer, form, timeout)
        .await
        .with_context(|| format!("calling {shown}"))?;
    if status != 200 {
        bail!("HTTP {status}: {}", body.trim());
    }
    Ok(body)
}

/// The certificates an `https://` server is checked against: the PEM file `NACRE_CA_FILE`
/// names (an operator's CA, or a self-signed server certificate), else the Mozilla roots.
pub const CA_FILE_ENV: &str = "NACRE_CA_FILE";

fn tls() -> anyhow::Result<std::sync::Arc<rustls::ClientConfig>> {
    let ca = std::env::var_os(CA_FILE_ENV).map(std::path::PathBuf::from);
    crate::net::tls::client_config(ca.as_deref())
}

/// `scheme://host:port` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..].find('/').map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

/// The base URL of `--server`: as given when it names a scheme (`https://host:port`), else
/// `http://host:port`.
pub fn base(server: &str) -> String {
    if server.starts_with("http://") || server.starts_with("https://") {
        server.trim_end_matches('/').to_string()
    } else {
        format!("http://{server}")
    }
}

/// Pairs as a form body.
fn form(pairs: &[(&str, &str)]) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        form.append_pair(name, value);
    }
    form.finish()
}

/// `{base(server)}{path}?{query}` with the pairs form-encoded.
fn url(server: &str, path: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        query.append_pair(name, value);
    }
    format!("{}{path}?{}", base(server), query.finish())
}
