//! The web console in a real browser: Debian's headless Chromium (installed by
//! `tests/console/setup.sh`, never downloaded), driven over the DevTools protocol with
//! chromiumoxide, against a real 3-node cluster. Every check is on the DOM, never on pixels.
//!
//! With `NACRE_SCREENSHOTS=DIR`, the main pages are also saved there as PNGs (the README's
//! pictures come from `NACRE_SCREENSHOTS=docs/console`).

mod support;

use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use anyhow::Result;
use anyhow::bail;
use support::browser::Browser;
use support::cluster::ADMIN_PASSWORD;
use support::cluster::Cluster;
use support::http;

/// Longest the test waits for the page to show something.
const UI_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The browser, installed by the project's own set-up script if it is missing.
fn chromium() -> Result<PathBuf> {
    let out = Command::new(repo_dir().join("tests/console/setup.sh")).stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        bail!("tests/console/setup.sh failed");
    }
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

/// The console in a browser tab, and what a test does with it.
struct Console {
    browser: Browser,
    base: String,
}

impl Console {
    fn open(base: &str) -> Result<Console> {
        Ok(Console { browser: Browser::launch(&chromium()?)?, base: base.to_string() })
    }

    /// Go to a console route (`#/...`) and wait until it has rendered.
    fn visit(&mut self, route: &str) -> Result<()> {
        let before = self.renders();
        let url = format!("{}/nacos/{route}", self.base);
        self.browser.navigate(&url)?;
        self.wait_rendered_after(before)
    }

    fn renders(&mut self) -> u64 {
        self.eval::<String>("document.body?.dataset.renders ?? '0'").ok().and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    /// Wait until the page has finished a render after the `before`-th (a new page load counts
    /// from zero again, so any finished render of a page newer than that one is enough).
    fn wait_rendered_after(&mut self, before: u64) -> Result<()> {
        self.wait_for(&format!(
            "document.body.dataset.ready === 'true' && Number(document.body.dataset.renders || 0) !== {before}"
        ))
    }

    fn eval<T: serde::de::DeserializeOwned>(&mut self, expression: &str) -> Result<T> {
        self.browser.eval(expression)
    }

    /// Poll a JavaScript condition until it holds.
    fn wait_for(&mut self, condition: &str) -> Result<()> {
        let deadline = Instant::now() + UI_TIMEOUT;
        loop {
            if self.eval::<bool>(&format!("Boolean({condition})")).unwrap_or(false) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let main = self.eval::<String>("document.getElementById('main')?.innerText ?? ''").unwrap_or_default();
                bail!("the page never showed `{condition}`; it shows:\n{main}");
            }
            std::thread::sleep(POLL);
        }
    }

    /// Click an element (a DOM click, as a user's: it submits forms and runs listeners).
    fn click(&mut self, selector: &str) -> Result<()> {
        let quoted = serde_json::to_string(selector)?;
        let clicked = format!(
            "(() => {{ const el = document.querySelector({quoted}); if (!el) return false; el.click(); return true; }})()"
        );
        anyhow::ensure!(self.eval::<bool>(&clicked)?, "nothing to click at {selector}");
        Ok(())
    }

    /// Click and wait for the render it causes.
    fn click_and_render(&mut self, selector: &str) -> Result<()> {
        let before = self.renders();
        self.click(selector)?;
        self.wait_for(&format!(
            "document.body.dataset.ready === 'true' && Number(document.body.dataset.renders || 0) > {before}"
        ))
    }

    /// Set a field's value as a user would type it (and tell the page it changed).
    fn fill(&mut self, selector: &str, value: &str) -> Result<()> {
        let (quoted, value) = (serde_json::to_string(selector)?, serde_json::to_string(value)?);
        let set = format!(
            "(() => {{ const el = document.querySelector({quoted}); if (!el) return false; el.value = {value}; \
             el.dispatchEvent(new Event('input', {{bubbles: true}})); el.dispatchEvent(new Event('change', {{bubbles: true}})); \
             return true; }})()"
        );
        anyhow::ensure!(self.eval::<bool>(&set)?, "no field {selector}");
        Ok(())
    }

    fn texts(&mut self, selector: &str) -> Result<Vec<String>> {
        let selector = serde_json::to_string(selector)?;
        self.eval(&format!("[...document.querySelectorAll({selector})].map((el) => el.textContent)"))
    }

    fn screenshot(&mut self, name: &str) -> Result<()> {
        let Some(dir) = std::env::var_os("NACRE_SCREENSHOTS") else { return Ok(()) };
        let png = self.browser.screenshot()?;
        let dir = repo_dir().join(dir);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("{name}.png")), png)?;
        Ok(())
    }
}

fn config_content(cluster: &Cluster, data_id: &str) -> Option<String> {
    let resp = cluster.get(0, &format!("/nacos/v1/cs/configs?dataId={data_id}&group=DEFAULT_GROUP")).ok()?;
    (resp.status == 200).then(|| resp.text())
}

/// A real Nacos 2.x client (nacos-sdk-python 3.x over gRPC, the suite's own scenario script)
/// that registers two instances of `service` through `addr` and holds them until killed.
fn client_registering(addr: &str, service: &str) -> Result<(Child, tempfile::TempDir)> {
    let clients = repo_dir().join("tests/clients");
    let setup = Command::new(clients.join("setup.sh")).arg("grpc").status()?;
    anyhow::ensure!(setup.success(), "tests/clients/setup.sh grpc failed");
    let dir = tempfile::tempdir()?;
    let child = Command::new(clients.join(".venv-grpc/bin/python"))
        .arg(clients.join("grpc/owner.py"))
        .args([addr, "", service, "2"])
        .env("NACRE_USERNAME", "nacos")
        .env("NACRE_PASSWORD", ADMIN_PASSWORD)
        .current_dir(dir.path())
        .stdout(std::fs::File::create(dir.path().join("stdout"))?)
        .stderr(std::fs::File::create(dir.path().join("stderr"))?)
        .spawn()?;
    let deadline = Instant::now() + UI_TIMEOUT;
    while !std::fs::read_to_string(dir.path().join("stdout"))?.contains("REGISTERED") {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the client never registered: {}",
            std::fs::read_to_string(dir.path().join("stderr"))?
        );
        std::thread::sleep(POLL);
    }
    Ok((child, dir))
}

#[test]
fn a_person_signs_in_and_works_the_console_in_a_real_browser() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let base = format!("http://{}", cluster.addr(1));
    if let Err(e) = scenario(&cluster, leader, &base) {
        panic!("{e:#}");
    }
}

fn scenario(cluster: &Cluster, leader: usize, base: &str) -> Result<()> {
    let mut console = Console::open(base)?;

    // `/` leads to the console, which asks for a sign-in first.
    console.browser.navigate(&format!("{base}/"))?;
    console.wait_for("location.pathname === '/nacos/' && document.querySelector('[data-testid=login-form]')")?;
    console.fill("[data-testid=password]", "wrong")?;
    console.fill("[data-testid=username]", "nacos")?;
    console.click("[data-testid=login-submit]")?;
    console.wait_for("document.querySelector('[data-testid=login-error]').textContent.includes('wrong password')")?;
    console.fill("[data-testid=password]", ADMIN_PASSWORD)?;
    console.click("[data-testid=login-submit]")?;

    // The cluster page: three members, one leader, the one the nodes name.
    console.wait_for(
        "location.hash === '#/cluster' && document.querySelectorAll('[data-testid=members] tbody tr').length === 3",
    )?;
    console.wait_for("document.querySelectorAll('[data-testid=leader-mark]').length === 1")?;
    assert_eq!(console.texts("[data-testid=leader]")?, [cluster.addr(leader)]);
    let roles = console.texts("[data-testid=member-role]")?;
    assert_eq!(roles.iter().filter(|r| *r == "LEADER").count(), 1, "{roles:?}");
    assert!(
        console.eval::<bool>("sessionStorage.getItem('nacre.session') !== null && localStorage.length === 0")?,
        "the token is kept for the session only"
    );
    console.screenshot("cluster")?;

    // Publish a config through the editor: it shows what changes before it publishes.
    console.visit("#/config?new=1")?;
    console.fill("[data-testid=edit-dataId]", "console-demo")?;
    console.fill("[data-testid=edit-content]", "mode: blue")?;
    console.click("[data-testid=publish]")?;
    console.wait_for("document.querySelector('[data-testid=added]')?.textContent === 'mode: blue'")?;
    console.click_and_render("[data-testid=confirm-publish]")?;
    assert_eq!(config_content(cluster, "console-demo").as_deref(), Some("mode: blue"));
    let md5 = console.texts("[data-testid=config-md5]")?;
    assert_eq!(md5.len(), 1);
    console.fill("[data-testid=edit-content]", "mode: green")?;
    console.click("[data-testid=publish]")?;
    console.wait_for("document.querySelector('[data-testid=removed]')?.textContent === 'mode: blue'")?;
    console.click_and_render("[data-testid=confirm-publish]")?;
    assert_eq!(config_content(cluster, "console-demo").as_deref(), Some("mode: green"));
    assert_ne!(console.texts("[data-testid=config-md5]")?, md5, "the page shows the new MD5");
    console.visit("#/configs")?;
    assert!(console.texts("[data-testid=config-link]")?.contains(&"console-demo".to_string()));
    console.screenshot("configs")?;

    // Its history: compare the update's row with the current content, then roll back to it.
    console.visit("#/history?dataId=console-demo&group=DEFAULT_GROUP")?;
    console.wait_for("document.querySelectorAll('[data-testid=history] tbody tr').length === 2")?;
    console.click("[data-testid=history] tbody tr:first-child [data-testid=compare-version]")?;
    console.wait_for(
        "document.querySelector('[data-testid=removed]')?.textContent === 'mode: blue' && \
         document.querySelector('[data-testid=added]')?.textContent === 'mode: green'",
    )?;
    console.screenshot("history")?;
    console.click("[data-testid=history] tbody tr:first-child [data-testid=rollback-version]")?;
    console.wait_for("document.querySelector('[data-testid=confirm-yes]')")?;
    console.click_and_render("[data-testid=confirm-yes]")?;
    assert_eq!(config_content(cluster, "console-demo").as_deref(), Some("mode: blue"), "rolled back");
    console.wait_for("document.querySelectorAll('[data-testid=history] tbody tr').length === 3")?;

    // An instance registered by a real client, seen in the service list and its detail.
    let (mut client, _client_dir) = client_registering(cluster.addr(leader), "console-svc")?;
    console.visit("#/services")?;
    console.wait_for(
        "[...document.querySelectorAll('[data-testid=service-link]')].some((a) => a.textContent === 'console-svc')",
    )?;
    let row = "[data-testid=services] tr[data-row='DEFAULT_GROUP@@console-svc'] [data-testid=instance-count]";
    assert_eq!(console.texts(row)?, ["2"]);
    let catalog = cluster.get(2, "/nacos/v1/ns/catalog/services?pageNo=1&pageSize=10&serviceNameParam=console")?.json();
    assert_eq!(catalog["count"], 1, "{catalog}");
    assert_eq!(catalog["serviceList"][0]["ipCount"], 2, "{catalog}");
    assert_eq!(catalog["serviceList"][0]["triggerFlag"], "false", "{catalog}");
    console.screenshot("services")?;
    console.visit("#/service?name=console-svc&group=DEFAULT_GROUP")?;
    let addresses = console.texts("[data-testid=instance-address]")?;
    assert_eq!(addresses, ["10.0.1.1:7001", "10.0.1.2:7002"]);
    let _ = client.kill();
    let _ = client.wait();

    // What a client registers is shown as text, never run: metadata carrying markup.
    let metadata = serde_json::json!({ "note": "<img src=x onerror=window.__pwn=1>" }).to_string();
    let query = http::form(&[("serviceName", "hostile"), ("ip", "10.9.9.9"), ("port", "1"), ("metadata", &metadata)]);
    assert_eq!(cluster.call(0, "POST", &format!("/nacos/v1/ns/instance?{query}"))?.status, 200);
    console.visit("#/service?name=hostile&group=DEFAULT_GROUP")?;
    console.wait_for("document.querySelector('[data-testid=instances] code')?.textContent.includes('<img')")?;
    assert!(console.eval::<bool>("window.__pwn === undefined && document.querySelectorAll('main img').length === 0")?);

    // Modules: bind the naming module in a namespace of its own and see the binding appear.
    console.visit("#/modules")?;
    let before = console.texts("[data-testid=binding-namespace]")?;
    assert!(!before.contains(&"console-ns".to_string()), "{before:?}");
    console.fill("[data-testid=activate-namespace]", "console-ns")?;
    console.fill("[data-testid=activate-kind]", "naming")?;
    console.click_and_render("[data-testid=activate-submit]")?;
    console.wait_for(
        "[...document.querySelectorAll('[data-testid=binding-namespace]')].some((n) => n.textContent === 'console-ns')",
    )?;
    let bindings = cluster.get(0, "/nacre/v1/bindings")?.json();
    assert!(bindings["bindings"].as_array().unwrap().iter().any(|b| b["namespace"] == "console-ns"), "{bindings}");
    console.screenshot("modules")?;

    // A dry run of a candidate that requires metadata, over the namespace's recent commands: it
    // answers a registration without metadata differently from the module in force.
    let persistent = http::form(&[("serviceName", "dry"), ("ip", "10.7.0.1"), ("port", "1"), ("ephemeral", "false")]);
    assert_eq!(cluster.call(0, "POST", &format!("/nacos/v1/ns/instance?{persistent}"))?.status, 200);
    let candidate_dir = tempfile::tempdir()?;
    let candidate = candidate_dir.path().join("require-metadata.wasm");
    std::fs::write(&candidate, nacre::builtin::examples::REQUIRE_METADATA)?;
    console.fill("[data-testid=dry-run-namespace]", "public")?;
    console.browser.set_files("[data-testid=dry-run-file]", &[&candidate])?;
    console.click("[data-testid=dry-run-submit]")?;
    console.wait_for(
        "document.querySelector('[data-testid=dry-run-summary]') && document.querySelector('[data-testid=differs]')",
    )?;
    let differing = console.texts("[data-testid=dry-run-entries] tbody tr")?;
    assert!(differing.iter().any(|row| row.contains("naming.register")), "{differing:?}");
    console.screenshot("dry-run")?;

    Ok(())
}
