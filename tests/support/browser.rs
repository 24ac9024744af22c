//! A headless Chromium (Debian's `chromium`, installed by `tests/console/setup.sh`) driven over
//! the Chrome DevTools Protocol on a plain WebSocket: a command is a JSON message with an id,
//! its answer the message with the same id; events in between are ignored.
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

pub struct Browser {
    child: Child,
    socket: WebSocket<TcpStream>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Start `executable` with one blank page and connect to that page.
    pub fn launch(executable: &Path) -> Result<Browser> {
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
        let mut browser = Browser { child, socket, next_id: 0, _profile: profile };
        browser.call("Page.enable", json!({}))?;
        browser.call("Runtime.enable", json!({}))?;
        Ok(browser)
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
                bail!("{method}: {error}");
            }
            return Ok(answer["result"].clone());
        }
        bail!("{method} got no answer within {COMMAND_TIMEOUT:?}")
    }

    /// Evaluate `expression` in the page (a promise is awaited); its value.
    pub fn eval<T: serde::de::DeserializeOwned>(&mut self, expression: &str) -> Result<T> {
        let params = json!({ "expression": expression, "returnByValue": true, "awaitPromise": true });
        let result = self.call("Runtime.evaluate", params)?;
        if let Some(exception) = result.get("exceptionDetails") {
            bail!("{expression} threw: {}", exception["exception"]["description"].as_str().unwrap_or("?"));
        }
        Ok(serde_json::from_value(result["result"]["value"].clone())?)
    }

    pub fn navigate(&mut self, url: &str) -> Result<()> {
        let answer = self.call("Page.navigate", json!({ "url": url }))?;
        if let Some(error) = answer["errorText"].as_str() {
            bail!("navigating to {url}: {error}");
        }
        Ok(())
    }

    /// Choose `files` in the file input at `selector`, as a user picking them would.
    pub fn set_files(&mut self, selector: &str, files: &[&Path]) -> Result<()> {
        let root = self.call("DOM.getDocument", json!({ "depth": 0 }))?;
        let root = root["root"]["nodeId"].clone();
        let input = self.call("DOM.querySelector", json!({ "nodeId": root, "selector": selector }))?;
        let node = input["nodeId"].as_u64().filter(|id| *id != 0).with_context(|| format!("no element {selector}"))?;
        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        self.call("DOM.setFileInputFiles", json!({ "nodeId": node, "files": files }))?;
        Ok(())
    }

    /// The whole page as a PNG.
    pub fn screenshot(&mut self) -> Result<Vec<u8>> {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png", "captureBeyondViewport": true }))?;
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
