//! The admin subcommands of `nacre`: small HTTP clients of any running node (`--server`).

mod componentize;
mod config;
mod module;
mod template;

use std::time::Duration;

use anyhow::Context as _;
use anyhow::bail;

pub use config::ConfigCommand;
pub use config::run as run_config;
pub use module::ModuleCommand;
pub use module::run as run_module;

use crate::net::HttpMethod;
use crate::net::PeerClient;

/// How long one command waits for the node.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Call `url` and return the body of a 200 answer; any other status is an error with the
/// node's message.
async fn call(method: HttpMethod, url: &str) -> anyhow::Result<String> {
    let (status, body) = PeerClient::default()
        .request_text(method, url, REQUEST_TIMEOUT)
        .await
        .with_context(|| format!("calling {url}"))?;
    if status != 200 {
        bail!("HTTP {status}: {}", body.trim());
    }
    Ok(body)
}

/// `http://{server}{path}?{query}` with the pairs form-encoded.
fn url(server: &str, path: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        query.append_pair(name, value);
    }
    format!("http://{server}{path}?{}", query.finish())
}
