//! `nacre config ...`: the config admin commands, as a small HTTP client of any node.

use anyhow::Context as _;
use anyhow::bail;

use super::call;
use crate::net::HttpMethod;

#[derive(clap::Subcommand)]
pub enum ConfigCommand {
    /// List a config's history, newest first.
    History {
        #[command(flatten)]
        target: ConfigTarget,
        /// Page number (1-based).
        #[arg(long, default_value_t = 1)]
        page: u32,
        /// Entries per page (the node caps it at 500).
        #[arg(long, default_value_t = 100)]
        page_size: u32,
    },
    /// Republish history entry `--nid` as the config's content (a new history entry).
    Rollback {
        #[command(flatten)]
        target: ConfigTarget,
        /// The history entry id (`id` in `nacre config history`).
        #[arg(long)]
        nid: u64,
    },
}

#[derive(clap::Args)]
pub struct ConfigTarget {
    /// Any node's client address, host:port.
    #[arg(long, default_value = "127.0.0.1:8848")]
    server: String,
    #[arg(long)]
    data_id: String,
    #[arg(long)]
    group: String,
    /// Namespace id; empty is `public`.
    #[arg(long, default_value = "")]
    tenant: String,
}

impl ConfigTarget {
    fn url(&self, path: &str, extra: &[(&str, String)]) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("dataId", &self.data_id)
            .append_pair("group", &self.group)
            .append_pair("tenant", &self.tenant);
        for (name, value) in extra {
            query.append_pair(name, value);
        }
        format!("{}{path}?{}", super::base(&self.server), query.finish())
    }
}

/// Runs one command and returns what to print.
pub async fn run(command: ConfigCommand) -> anyhow::Result<String> {
    match command {
        ConfigCommand::History { target, page, page_size } => {
            let extra =
                [("search", "accurate".to_string()), ("pageNo", page.to_string()), ("pageSize", page_size.to_string())];
            let body = call(HttpMethod::GET, &target.url("/nacos/v1/cs/history", &extra)).await?;
            let page: serde_json::Value = serde_json::from_str(&body).context("the node's answer is not JSON")?;
            Ok(render_history(&page))
        }
        ConfigCommand::Rollback { target, nid } => {
            let body =
                call(HttpMethod::POST, &target.url("/nacre/v1/config/rollback", &[("nid", nid.to_string())])).await?;
            if body.trim() != "true" {
                bail!("the node answered {body:?}");
            }
            Ok(format!("rolled back {}/{} to history entry {nid}", target.group, target.data_id))
        }
    }
}

/// One line per entry: id, operation, time (leader ms), md5, source, and the content's start.
fn render_history(page: &serde_json::Value) -> String {
    const PREVIEW_CHARS: usize = 40;
    let mut out = format!(
        "{} entries (page {} of {})\n{:<12} {:<3} {:<14} {:<32} {:<15} content\n",
        page["totalCount"], page["pageNumber"], page["pagesAvailable"], "id", "op", "time_ms", "md5", "src_ip"
    );
    for item in page["pageItems"].as_array().into_iter().flatten() {
        let text = |field: &str| item[field].as_str().unwrap_or_default().trim().to_string();
        let preview: String =
            text("content").chars().take(PREVIEW_CHARS).map(|c| if c.is_control() { ' ' } else { c }).collect();
        out.push_str(&format!(
            "{:<12} {:<3} {:<14} {:<32} {:<15} {preview}\n",
            text("id"),
            text("opType"),
            item["lastModifiedTime"],
            text("md5"),
            text("srcIp")
        ));
    }
    out
}
