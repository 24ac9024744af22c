//! A headless browser, installed by `tests/console/setup.sh` from Debian's packages, driven on a
//! plain WebSocket: Chromium over the Chrome DevTools Protocol, Firefox over WebDriver BiDi (the
//! W3C protocol Firefox speaks natively; it dropped CDP). Either way a command is a JSON message
//! with an id and its answer the message with the same id; events in between are ignored. The
//! tests see one `Browser` with the same few operations on both.
//!
//! Why not the `chromiumoxide` crate: 0.9.1 with Chromium 156 stopped answering any command
//! to a page once the page had changed its own URL fragment (a hash-routed app does on every
//! click): its handler keeps the page's commands waiting on a navigation it never sees end. The
//! protocol itself answers at once (checked with a raw client), and the few commands these
//! tests need are a page's worth of code.

use std::net::TcpStream;
use std::path::Path;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context as _;
use anyhow::Result;
use anyhow::bail;
use base64::Engine as _;
use serde_json::Value;
use serde_json::json;
use tungstenite::Message;
use tungstenite::WebSocket;

/// Longest one protocol command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the browser may take to open its debugging port.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Flags for a headless Chromium on a closed network: no background fetches, no sandbox (the
/// tests may run as root), a fresh profile.
const FLAGS: [&str; 10] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

/// Preferences of Firefox's fresh profile: no first-run pages, updates or reports on a closed
/// network (the remote agent sets its own recommended ones besides).
const FIREFOX_PREFS: &str = r#"
user_pref("app.update.disabledForTesting", true);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("browser.safebrowsing.update.enabled", false);
user_pref("extensions.update.enabled", false);
"#;

/// Which browser, and so which protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chromium,
    Firefox,
}

impl Kind {
    /// The name `tests/console/setup.sh` takes.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Chromium => "chromium",
            Kind::Firefox => "firefox",
        }
    }
}

/// How commands reach the page: CDP talks to the page's own socket; BiDi to the session, naming
/// the page's browsing context in each command.
enum Protocol {
    Cdp,
    Bidi { context: String },
}

pub struct Browser {
    child: Child,
    socket: WebSocket<TcpStream>,
    protocol: Protocol,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Start the browser at `executable` with one blank page and connect to that page.
    pub fn launch(kind: Kind, executable: &Path) -> Result<Browser> {
        match kind {
            Kind::Chromium => Self::launch_chromium(executable),
            Kind::Firefox => Self::launch_firefox(executable),
        }
    }

    fn launch_chromium(executable: &Path) -> Result<Browser> {
        let profile = tempfile::tempdir()?;
        let port = super::cluster::free_port();
        let mut child = Command::new(executable)
            .args(FLAGS)
            .arg(format!("--remote-debugging-port={port}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", executable.display()))?;
        let socket = match connect(port) {
            Ok(socket) => socket,
            Err(e) => {
                // Not yet a `Browser`, whose drop would stop it: stop it here.
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        let mut browser = Browser { child, socket, protocol: Protocol::Cdp, next_id: 0, _profile: profile };
        browser.call("Page.enable", json!({}))?;
        browser.call("Runtime.enable", json!({}))?;
        Ok(browser)
    }

    fn launch_firefox(executable: &Path) -> Result<Browser> {
        let profile = tempfile::tempdir()?;
        std::fs::write(profile.path().join("user.js"), FIREFOX_PREFS)?;
        let port = super::cluster::free_port();
        let mut child = Command::new(executable)
            .args(["--headless", "--no-remote", "--width", "1280", "--height", "900"])
            .arg("--profile")
            .arg(profile.path())
            .arg(format!("--remote-debugging-port={port}"))
            .arg("about:blank")
            .env("MOZ_CRASHREPORTER_DISABLE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", executable.display()))?;
        let socket = match connect_bidi(port) {
            Ok(socket) => socket,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        let mut browser = Browser {
            child,
            socket,
            protocol: Protocol::Bidi { context: String::new() },
            next_id: 0,
            _profile: profile,
        };
        browser.call("session.new", json!({ "capabilities": {} }))?;
        let tree = browser.call("browsingContext.getTree", json!({ "maxDepth": 0 }))?;
        let context = tree["contexts"][0]["context"].as_str().context("firefox has no page")?.to_string();
        browser.protocol = Protocol::Bidi { context };
        Ok(browser)
    }

    /// The page's browsing context (BiDi only).
    fn context(&self) -> Value {
        match &self.protocol {
            Protocol::Bidi { context } => Value::String(context.clone()),
            Protocol::Cdp => Value::Null,
        }
    }

    /// One protocol command; its `result`.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({ "id": id, "method": method, "params": params }).to_string();
        self.socket.send(Message::text(message))?;
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        while Instant::now() < deadline {
            let Message::Text(text) = self.socket.read().with_context(|| format!("waiting for {method}"))? else {
                continue;
            };
            let answer: Value = serde_json::from_str(text.as_str())?;
            if answer["id"] != id {
                continue;
            }
            if let Some(error) = answer.get("error") {
                bail!("{method}: {error} {}", answer["message"].as_str().unwrap_or_default());
            }
            return Ok(answer["result"].clone());
        }
        bail!("{method} got no answer within {COMMAND_TIMEOUT:?}")
    }

    /// Evaluate `expression` in the page (a promise is awaited); its value.
    pub fn eval<T: serde::de::DeserializeOwned>(&mut self, expression: &str) -> Result<T> {
        if let Protocol::Cdp = self.protocol {
            let params = json!({ "expression": expression, "returnByValue": true, "awaitPromise": true });
            let result = self.call("Runtime.evaluate", params)?;
            if let Some(exception) = result.get("exceptionDetails") {
                bail!("{expression} threw: {}", exception["exception"]["description"].as_str().unwrap_or("?"));
            }
            return Ok(serde_json::from_value(result["result"]["value"].clone())?);
        }
        // BiDi answers with typed remote values; the page's own JSON of the value is simpler
        // to take back (`undefined` has none: null).
        let wrapped = format!("(async () => JSON.stringify(await ({expression})))()");
        let params = json!({
            "expression": wrapped, "target": { "context": self.context() }, "awaitPromise": true, "resultOwnership": "none",
        });
        let result = self.call("script.evaluate", params)?;
        if result["type"] != "success" {
            bail!("{expression} threw: {}", result["exceptionDetails"]["text"].as_str().unwrap_or("?"));
        }
        match result["result"]["value"].as_str() {
            Some(json) => Ok(serde_json::from_str(json)?),
            None => Ok(serde_json::from_value(Value::Null)?),
        }
    }

    pub fn navigate(&mut self, url: &str) -> Result<()> {
        if let Protocol::Cdp = self.protocol {
            let answer = self.call("Page.navigate", json!({ "url": url }))?;
            if let Some(error) = answer["errorText"].as_str() {
                bail!("navigating to {url}: {error}");
            }
            return Ok(());
        }
        self.call("browsingContext.navigate", json!({ "context": self.context(), "url": url, "wait": "none" }))?;
        Ok(())
    }

    /// Choose `files` in the file input at `selector`, as a user picking them would.
    pub fn set_files(&mut self, selector: &str, files: &[&Path]) -> Result<()> {
        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        if let Protocol::Bidi { .. } = self.protocol {
            let find = json!({
                "expression": format!("document.querySelector({})", serde_json::to_string(selector)?),
                "target": { "context": self.context() }, "awaitPromise": false, "resultOwnership": "root",
            });
            let found = self.call("script.evaluate", find)?;
            let element = found["result"]["sharedId"].as_str().with_context(|| format!("no element {selector}"))?;
            let params = json!({ "context": self.context(), "element": { "sharedId": element }, "files": files });
            self.call("input.setFiles", params)?;
            return Ok(());
        }
        let root = self.call("DOM.getDocument", json!({ "depth": 0 }))?;
        let root = root["root"]["nodeId"].clone();
        let input = self.call("DOM.querySelector", json!({ "nodeId": root, "selector": selector }))?;
        let node = input["nodeId"].as_u64().filter(|id| *id != 0).with_context(|| format!("no element {selector}"))?;
        self.call("DOM.setFileInputFiles", json!({ "nodeId": node, "files": files }))?;
        Ok(())
    }

    /// The whole page as a PNG.
    pub fn screenshot(&mut self) -> Result<Vec<u8>> {
        let shot = match self.protocol {
            Protocol::Cdp => {
                self.call("Page.captureScreenshot", json!({ "format": "png", "captureBeyondViewport": true }))?
            }
            Protocol::Bidi { .. } => self.call(
                "browsingContext.captureScreenshot",
                json!({ "context": self.context(), "origin": "document" }),
            )?,
        };
        let data = shot["data"].as_str().context("a screenshot without data")?;
        Ok(base64::engine::general_purpose::STANDARD.decode(data)?)
    }
}

/// Wait for the browser's debugging port, then open its page's DevTools socket.
fn connect(port: u16) -> Result<WebSocket<TcpStream>> {
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + START_TIMEOUT;
    let page = loop {
        let page = targets(&addr).ok().and_then(|list| {
            list.as_array()?.iter().find(|t| t["type"] == "page")?["webSocketDebuggerUrl"].as_str().map(str::to_string)
        });
        if let Some(page) = page {
            break page;
        }
        if Instant::now() > deadline {
            bail!("chromium did not open its debugging port {port}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stream = TcpStream::connect(&addr)?;
    stream.set_read_timeout(Some(COMMAND_TIMEOUT))?;
    let (socket, _) = tungstenite::client(page.as_str(), stream).context("the page's DevTools socket")?;
    Ok(socket)
}

/// Wait for Firefox's remote agent, then open a WebDriver BiDi session socket.
fn connect_bidi(port: u16) -> Result<WebSocket<TcpStream>> {
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(stream) = TcpStream::connect(&addr) {
            stream.set_read_timeout(Some(COMMAND_TIMEOUT))?;
            match tungstenite::client(format!("ws://{addr}/session").as_str(), stream) {
                Ok((socket, _)) => return Ok(socket),
                Err(e) if Instant::now() > deadline => bail!("firefox's WebDriver BiDi socket: {e}"),
                Err(_) => {}
            }
        }
        if Instant::now() > deadline {
            bail!("firefox did not open its remote debugging port {port}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The browser's targets (`GET /json/list`). A request of its own: the DevTools HTTP server
/// keeps the connection open after its answer, so the body is read by its length.
fn targets(addr: &str) -> Result<Value> {
    use std::io::BufRead as _;
    use std::io::Read as _;
    use std::io::Write as _;
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET /json/list HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut reader = std::io::BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(serde_json::from_slice(&body)?)
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
