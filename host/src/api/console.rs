//! The web console (issue 20): hand-written HTML, CSS and ES modules in `host/console/`,
//! embedded in the binary (no build step, nothing fetched from elsewhere) and served at
//! `/nacos/` (`/` redirects there). The pages call the same v1 and Nacre endpoints every
//! client uses, with the signed-in user's token; this file only serves the files.
//!
//! Every answer carries a strict Content-Security-Policy (scripts, styles and requests from
//! this origin only, no inline script, no framing), `nosniff`, and no referrer. The pages
//! build the DOM from text nodes only, so what clients register or publish is never markup.

use crate::net;
use crate::net::HttpResponse;
use crate::net::Status;
use crate::net::header;

/// Where the console is; `/` sends a browser there.
pub const CONSOLE_PATH: &str = "/nacos/";

const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/// One embedded file: the path it is served at, its type, its bytes.
pub struct Asset {
    pub path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

macro_rules! asset {
    ($path:literal, $type:expr, $file:literal) => {
        Asset { path: $path, content_type: $type, body: include_str!(concat!("../../console/", $file)) }
    };
}

/// Every file of the console. The route table serves each path (`api::routes`).
pub const ASSETS: &[Asset] = &[
    asset!("/nacos", HTML, "index.html"),
    asset!("/nacos/index.html", HTML, "index.html"),
    asset!("/nacos/console/style.css", CSS, "style.css"),
    asset!("/nacos/console/app.js", JS, "app.js"),
    asset!("/nacos/console/api.js", JS, "api.js"),
    asset!("/nacos/console/dom.js", JS, "dom.js"),
    asset!("/nacos/console/login.js", JS, "login.js"),
    asset!("/nacos/console/cluster.js", JS, "cluster.js"),
    asset!("/nacos/console/configs.js", JS, "configs.js"),
    asset!("/nacos/console/highlight.js", JS, "highlight.js"),
    asset!("/nacos/console/services.js", JS, "services.js"),
    asset!("/nacos/console/namespaces.js", JS, "namespaces.js"),
    asset!("/nacos/console/users.js", JS, "users.js"),
    asset!("/nacos/console/modules.js", JS, "modules.js"),
];

/// The file served at `path` (`/nacos/` is `/nacos`), with the console's security headers.
pub fn file(path: &str) -> HttpResponse {
    let path = path.trim_end_matches('/');
    match ASSETS.iter().find(|asset| asset.path == path) {
        Some(asset) => secured(net::response(Status::OK, asset.content_type, asset.body)),
        None => net::text(Status::NOT_FOUND, format!("no such console file: {path}")),
    }
}

/// `GET /`: to the console.
pub fn redirect() -> HttpResponse {
    let mut resp = secured(net::text(Status::FOUND, format!("the console is at {CONSOLE_PATH}")));
    resp.headers_mut().insert(header::LOCATION, header::HeaderValue::from_static(CONSOLE_PATH));
    resp
}

fn secured(mut resp: HttpResponse) -> HttpResponse {
    use header::HeaderValue;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Small files from the binary itself: always asked again, so an upgraded node serves its own.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The route table serves exactly the embedded files.
    #[test]
    fn every_asset_has_a_route_and_every_console_route_an_asset() {
        use crate::api::routes::Handler;
        let routed: Vec<&str> =
            crate::api::routes::ROUTES.iter().filter(|r| r.handler == Handler::ConsoleFile).map(|r| r.path).collect();
        let embedded: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
        assert_eq!(routed, embedded);
    }

    /// Every module a page imports is served, and no page reaches outside this origin or
    /// writes markup from data.
    #[test]
    fn every_import_is_served_and_nothing_is_written_as_markup() {
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            for line in asset.body.lines().filter(|l| l.trim_start().starts_with("import ")) {
                let file = line.split('\'').nth(1).unwrap_or_else(|| panic!("{}: {line}", asset.path));
                let served = format!("/nacos/console/{}", file.trim_start_matches("./"));
                assert!(ASSETS.iter().any(|a| a.path == served), "{} imports {file}, which is not served", asset.path);
            }
            for forbidden in
                ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "http://", "https://"]
            {
                assert!(!asset.body.contains(forbidden), "{} uses {forbidden}", asset.path);
            }
        }
        let index = file("/nacos/");
        assert_eq!(index.status(), Status::OK);
        let csp = index.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"), "{csp}");
        assert_eq!(redirect().headers()[header::LOCATION], CONSOLE_PATH);
    }
}
