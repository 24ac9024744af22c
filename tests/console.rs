//! The web console in real browsers: Debian's headless Chromium and Firefox ESR (installed by
//! `tests/console/setup.sh`, never downloaded), driven over CDP and WebDriver BiDi
//! (`support::browser`), each through the same tasks against a real 3-node cluster of its own.
//! Every check is on the DOM, never on pixels.
//!
//! With `NACRE_SCREENSHOTS=DIR`, the main pages (in Chromium) are also saved there as PNGs (the
//! README's pictures come from `NACRE_SCREENSHOTS=docs/console`).

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
use support::browser::Kind;
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
fn browser_path(kind: Kind) -> Result<PathBuf> {
    let out =
        Command::new(repo_dir().join("tests/console/setup.sh")).arg(kind.name()).stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        bail!("tests/console/setup.sh failed");
    }
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

/// The console in a browser tab, and what a test does with it.
struct Console {
    browser: Browser,
    kind: Kind,
    base: String,
}

impl Console {
    fn open(kind: Kind, base: &str) -> Result<Console> {
        Ok(Console { browser: Browser::launch(kind, &browser_path(kind)?)?, kind, base: base.to_string() })
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

    /// Wait for an element, then click it.
    fn click_when_shown(&mut self, selector: &str) -> Result<()> {
        self.wait_for(&format!("document.querySelector({})", serde_json::to_string(selector)?))?;
        self.click(selector)
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
        let Some(dir) = std::env::var_os("NACRE_SCREENSHOTS").filter(|_| self.kind == Kind::Chromium) else {
            return Ok(());
        };
        let png = self.browser.screenshot()?;
        let dir = repo_dir().join(dir);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("{name}.png")), png)?;
        Ok(())
    }
}

/// Who watches, asked through any node: a real gRPC client subscribed to `console-svc` and
/// listening to `console-demo` through node 0, a v1 reader subscribed to UDP pushes and a v1
/// long-poll (from behind a proxy, `X-Real-IP`) held on node 2; the API (Nacos's answers) and
/// the console (through node 1) list them all.
fn watchers(cluster: &Cluster, console: &mut Console) -> Result<()> {
    const POLLING_IP: &str = "10.20.30.40";
    let (mut watcher, _watcher_dir) =
        real_client("watcher.py", &[cluster.addr(0), "", "console-svc", "console-demo"], "WATCHING")?;
    let md5 = cluster.get(0, "/nacos/v1/cs/configs?show=all&dataId=console-demo&group=DEFAULT_GROUP")?.json()["md5"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let poll_addr = cluster.addr(2).to_string();
    let listening =
        format!("Listening-Configs={}", http::encode(&format!("console-demo\u{2}DEFAULT_GROUP\u{2}{md5}\u{1}")));
    let long_poll = std::thread::spawn(move || {
        let headers = [
            ("Long-Pulling-Timeout", "30000"),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Real-IP", POLLING_IP),
        ];
        http::exchange("POST", &poll_addr, "/nacos/v1/cs/configs/listener", &headers, listening.as_bytes(), UI_TIMEOUT)
    });
    let udp_read = || {
        let path =
            "/nacos/v1/ns/instance/list?serviceName=console-svc&udpPort=55055&clientIP=127.0.0.1&app=console-test";
        http::request_with_headers("GET", cluster.addr(2), path, &[("User-Agent", "Nacos-Java-Client:v1.4.8")], b"")
    };
    assert_eq!(udp_read()?.status, 200);

    // Nacos's answers, from a node none of them talks to.
    let deadline = Instant::now() + UI_TIMEOUT;
    let subscribers = loop {
        let answer =
            cluster.get(1, "/nacos/v1/ns/service/subscribers?serviceName=console-svc&pageNo=1&pageSize=10")?.json();
        if answer["count"] == 2 || Instant::now() > deadline {
            break answer;
        }
        std::thread::sleep(POLL);
    };
    assert_eq!(subscribers["count"], 2, "{subscribers}");
    let udp = subscribers["subscribers"].as_array().unwrap().iter().find(|s| s["port"] == 55055).cloned();
    assert_eq!(
        udp,
        Some(serde_json::json!({
            "addrStr": "127.0.0.1:55055", "agent": "Nacos-Java-Client:v1.4.8", "app": "console-test", "ip": "127.0.0.1",
            "port": 55055, "namespaceId": "public", "serviceName": "DEFAULT_GROUP@@console-svc", "cluster": ""
        })),
        "{subscribers}"
    );
    // The gRPC client reports the md5 of what it has cached, which may not be the current one.
    let deadline = Instant::now() + UI_TIMEOUT;
    let listeners = loop {
        let answer = cluster.get(1, "/nacos/v1/cs/configs/listener?dataId=console-demo&group=DEFAULT_GROUP")?.json();
        let ips: Vec<&String> =
            answer["lisentersGroupkeyStatus"].as_object().map(|m| m.keys().collect()).unwrap_or_default();
        if ips == ["10.20.30.40", "127.0.0.1"] {
            break answer;
        }
        anyhow::ensure!(Instant::now() < deadline, "the listeners of console-demo: {answer}");
        std::thread::sleep(POLL);
    };
    assert_eq!(listeners["collectStatus"], 200);
    assert_eq!(listeners["lisentersGroupkeyStatus"][POLLING_IP], md5, "{listeners}");
    let by_ip = cluster.get(0, &format!("/nacos/v1/cs/listener?ip={POLLING_IP}"))?.json();
    let wanted =
        serde_json::json!({ "collectStatus": 200, "lisentersGroupkeyStatus": { "console-demo+DEFAULT_GROUP": md5 } });
    assert_eq!(by_ip, wanted);
    let of_grpc = cluster.get(2, "/nacos/v1/cs/listener?ip=127.0.0.1")?.json();
    assert!(of_grpc["lisentersGroupkeyStatus"]["console-demo+DEFAULT_GROUP"].is_string(), "{of_grpc}");

    // The console: the service's subscribers, the config's listeners and the listening query.
    assert_eq!(udp_read()?.status, 200, "the UDP subscription renewed (it lasts 10 s)");
    console.visit("#/subscribers?name=console-svc&group=DEFAULT_GROUP")?;
    let mut addresses = console.texts("[data-testid=subscriber-address]")?;
    addresses.sort();
    assert_eq!(addresses, ["127.0.0.1", "127.0.0.1:55055"]);
    console.screenshot("subscribers")?;
    console.visit("#/config?dataId=console-demo&group=DEFAULT_GROUP")?;
    let mut listener_ips = console.texts("[data-testid=listener-ip]")?;
    listener_ips.sort();
    assert_eq!(listener_ips, [POLLING_IP, "127.0.0.1"]);
    console.visit(&format!("#/listeners?ip={POLLING_IP}"))?;
    assert_eq!(console.texts("[data-testid=listened-key]")?, ["console-demo+DEFAULT_GROUP"]);
    console.screenshot("listeners")?;

    // A change answers the held long-poll with the key, and the watchers go with their client.
    let published = cluster.post_form(
        0,
        "/nacos/v1/cs/configs",
        &[("dataId", "console-demo"), ("group", "DEFAULT_GROUP"), ("content", "mode: red")],
    )?;
    assert_eq!(published.status, 200);
    let answered = long_poll.join().expect("the long-poll thread").map_err(|e| e.into_io())?;
    assert!(answered.text().starts_with("console-demo%02DEFAULT_GROUP"), "{}", answered.text());
    let _ = watcher.kill();
    let _ = watcher.wait();
    let deadline = Instant::now() + UI_TIMEOUT;
    loop {
        let answer =
            cluster.get(1, "/nacos/v1/ns/service/subscribers?serviceName=console-svc&aggregation=true")?.json();
        if !answer["subscribers"].as_array().unwrap().iter().any(|s| s["port"] == 0) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "a dead client is still a subscriber: {answer}");
        std::thread::sleep(POLL);
    }
    Ok(())
}

fn config_content(cluster: &Cluster, data_id: &str) -> Option<String> {
    let resp = cluster.get(0, &format!("/nacos/v1/cs/configs?dataId={data_id}&group=DEFAULT_GROUP")).ok()?;
    (resp.status == 200).then(|| resp.text())
}

/// A real Nacos 2.x client (nacos-sdk-python 3.x over gRPC, one of the suite's scenario
/// scripts) run with `args` until it prints `ready`; it holds what it did until killed.
fn real_client(script: &str, args: &[&str], ready: &str) -> Result<(Child, tempfile::TempDir)> {
    let clients = repo_dir().join("tests/clients");
    let setup = Command::new(clients.join("setup.sh")).arg("grpc").status()?;
    anyhow::ensure!(setup.success(), "tests/clients/setup.sh grpc failed");
    let dir = tempfile::tempdir()?;
    let child = Command::new(clients.join(".venv-grpc/bin/python"))
        .arg(clients.join("grpc").join(script))
        .args(args)
        .env("NACRE_USERNAME", "nacos")
        .env("NACRE_PASSWORD", ADMIN_PASSWORD)
        .current_dir(dir.path())
        .stdout(std::fs::File::create(dir.path().join("stdout"))?)
        .stderr(std::fs::File::create(dir.path().join("stderr"))?)
        .spawn()?;
    let deadline = Instant::now() + UI_TIMEOUT;
    while !std::fs::read_to_string(dir.path().join("stdout"))?.contains(ready) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{script} never printed {ready}: {}",
            std::fs::read_to_string(dir.path().join("stderr"))?
        );
        std::thread::sleep(POLL);
    }
    Ok((child, dir))
}

/// One browser test at a time: each runs a 3-node cluster, a browser and real clients, which is
/// the most a 2-core machine should carry at once.
static ONE_BROWSER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_person_signs_in_and_works_the_console_in_chromium() {
    works_the_console(Kind::Chromium);
}

#[test]
fn a_person_signs_in_and_works_the_console_in_firefox() {
    works_the_console(Kind::Firefox);
}

fn works_the_console(kind: Kind) {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let base = format!("http://{}", cluster.addr(1));
    if let Err(e) = scenario(&cluster, leader, &base, kind) {
        panic!("in {kind:?}: {e:#}");
    }
}

fn scenario(cluster: &Cluster, leader: usize, base: &str, kind: Kind) -> Result<()> {
    let mut console = Console::open(kind, base)?;
    let agent: String = console.eval("navigator.userAgent")?;
    let expected = match kind {
        Kind::Chromium => "Chrome/",
        Kind::Firefox => "Firefox/",
    };
    anyhow::ensure!(agent.contains(expected), "{kind:?} is driven, yet the page's browser says {agent}");

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
    // Adding a member: an address without a port is refused, with the reason.
    console.fill("[data-testid=member-new-address]", "10.0.0.9")?;
    console.click("[data-testid=member-add] button[type=submit]")?;
    console.click_when_shown("[data-testid=confirm-yes]")?;
    console.wait_for("document.querySelector('[data-testid=toast]').textContent.includes('host:port')")?;

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
    let (mut client, _client_dir) =
        real_client("owner.py", &[cluster.addr(leader), "", "console-svc", "2"], "REGISTERED")?;
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

    watchers(cluster, &mut console)?;
    service_settings(cluster, &mut console)?;
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

    config_tasks(cluster, &mut console)?;
    namespaces_and_users(cluster, &mut console)?;
    Ok(())
}

/// Authorship, a conflicting edit, paging past 10 and content search.
fn config_tasks(cluster: &Cluster, console: &mut Console) -> Result<()> {
    // The history names who made each change: the signed-in administrator.
    console.visit("#/history?dataId=console-demo&group=DEFAULT_GROUP")?;
    let authors = console.texts("[data-testid=version-by]")?;
    assert!(authors.len() >= 4 && authors.iter().all(|a| a == "nacos"), "{authors:?}");

    // Someone else publishes while the editor is open: the editor's publish is refused, and says so.
    console.visit("#/config?dataId=console-demo&group=DEFAULT_GROUP")?;
    let theirs = [("dataId", "console-demo"), ("group", "DEFAULT_GROUP"), ("content", "mode: theirs")];
    assert_eq!(cluster.post_form(2, "/nacos/v1/cs/configs", &theirs)?.status, 200);
    console.fill("[data-testid=edit-content]", "mode: mine")?;
    console.click("[data-testid=publish]")?;
    console.wait_for("document.querySelector('[data-testid=confirm-publish]')")?;
    console.click("[data-testid=confirm-publish]")?;
    console.wait_for(
        "document.querySelector('[data-testid=edit-error]').textContent.includes('Someone changed this config')",
    )?;
    assert_eq!(config_content(cluster, "console-demo").as_deref(), Some("mode: theirs"), "nothing was overwritten");

    // The editor colors the format chosen and says when the text is not valid in it; a publish
    // of invalid text is reviewed with that said, and goes through when confirmed (as Nacos's).
    console.visit("#/config?new=1")?;
    console.fill("[data-testid=edit-dataId]", "colored.json")?;
    console.fill("[data-testid=edit-format]", "json")?;
    console.fill("[data-testid=edit-content]", r#"{"port": 8080, "on": true}"#)?;
    console.wait_for(
        r#"document.querySelector('[data-testid=highlight] .tok-key')?.textContent === '"port"' &&
           document.querySelector('[data-testid=highlight] .tok-num')?.textContent === '8080' &&
           document.querySelector('[data-testid=format-check]').textContent === 'Valid json.'"#,
    )?;
    console.screenshot("editor")?;
    console.fill("[data-testid=edit-content]", r#"{"port": 8080,"#)?;
    console
        .wait_for("document.querySelector('[data-testid=format-check]').textContent.startsWith('Not valid JSON')")?;
    console.click("[data-testid=publish]")?;
    console
        .wait_for("document.querySelector('[data-testid=review-format]')?.textContent.includes('Publish anyway?')")?;
    console.click_and_render("[data-testid=confirm-publish]")?;
    assert_eq!(config_content(cluster, "colored.json").as_deref(), Some(r#"{"port": 8080,"#));

    // 25 configs: pages of 10, then one page of 50; a content search finds the one with a needle.
    for n in 0..25 {
        let (data_id, content) =
            (format!("paged-{n:02}"), if n == 17 { "haystack needle".to_string() } else { format!("n={n}") });
        let form = [("dataId", data_id.as_str()), ("group", "PAGED"), ("content", content.as_str())];
        assert_eq!(cluster.post_form(0, "/nacos/v1/cs/configs", &form)?.status, 200);
    }
    console.visit("#/configs?group=PAGED&pageSize=10")?;
    assert_eq!(console.texts("[data-testid=config-link]")?.len(), 10);
    assert_eq!(console.texts("[data-testid=page]")?, ["page 1 of 3 (25 in all)"]);
    console.click_and_render("[data-testid=pager] button:last-of-type")?;
    assert_eq!(console.texts("[data-testid=page]")?, ["page 2 of 3 (25 in all)"]);
    assert_eq!(console.texts("[data-testid=config-link]")?.first().map(String::as_str), Some("paged-10"));
    let before = console.renders();
    console.eval::<bool>(
        "(() => { const s = document.querySelector('[data-testid=page-size]'); s.value = '50'; \
         s.dispatchEvent(new Event('change')); return true; })()",
    )?;
    console.wait_rendered_after(before)?;
    assert_eq!(console.texts("[data-testid=config-link]")?.len(), 25);
    console.fill("[data-testid=search-content]", "needle")?;
    console.click_and_render("[data-testid=search-configs]")?;
    assert_eq!(console.texts("[data-testid=config-link]")?, ["paged-17"]);
    Ok(())
}

/// A namespace made in the console, switched to, and holding its own configs; a user with a
/// role and a permission, made in the console, who can then sign in.
fn namespaces_and_users(cluster: &Cluster, console: &mut Console) -> Result<()> {
    console.visit("#/namespaces")?;
    console.fill("[data-testid=ns-id]", "team-a")?;
    console.fill("[data-testid=ns-name]", "Team A")?;
    console.click_and_render("[data-testid=ns-create]")?;
    assert!(console.texts("[data-testid=ns-row-name]")?.contains(&"Team A".to_string()));
    let form = [("dataId", "only-in-team-a"), ("group", "DEFAULT_GROUP"), ("content", "a"), ("tenant", "team-a")];
    assert_eq!(cluster.post_form(1, "/nacos/v1/cs/configs", &form)?.status, 200);
    console.wait_for(
        "[...document.querySelectorAll('[data-testid=namespace] option')].some((o) => o.value === 'team-a')",
    )?;
    console.visit("#/configs")?;
    assert!(!console.texts("[data-testid=config-link]")?.contains(&"only-in-team-a".to_string()));
    let before = console.renders();
    console.eval::<bool>(
        "(() => { const s = document.querySelector('[data-testid=namespace]'); s.value = 'team-a'; \
         s.dispatchEvent(new Event('change')); return true; })()",
    )?;
    console.wait_rendered_after(before)?;
    assert_eq!(console.texts("[data-testid=config-link]")?, ["only-in-team-a"]);

    console.visit("#/users")?;
    console.fill("[data-testid=user-name]", "reader")?;
    console.fill("[data-testid=user-password]", "reader-Passw0rd-long")?;
    console.click_and_render("[data-testid=user-submit]")?;
    assert!(console.texts("[data-testid=user-row-name]")?.contains(&"reader".to_string()));
    console.fill("[data-testid=role-name]", "team-a-readers")?;
    console.fill("[data-testid=role-user]", "reader")?;
    console.click_and_render("[data-testid=role-submit]")?;
    console.fill("[data-testid=perm-role]", "team-a-readers")?;
    console.fill("[data-testid=perm-resource]", "team-a:*:*")?;
    console.fill("[data-testid=perm-action]", "r")?;
    console.click_and_render("[data-testid=perm-submit]")?;
    let permissions = console.texts("[data-testid=permissions] tbody tr")?;
    assert!(permissions.iter().any(|p| p.contains("team-a-readers") && p.contains("team-a:*:*")), "{permissions:?}");
    console.screenshot("users")?;

    // The new user signs in and reads team A's config, and nothing of `public`.
    let login = http::anonymous(
        "POST",
        cluster.addr(2),
        "/nacos/v1/auth/login?username=reader&password=reader-Passw0rd-long",
        &[],
        b"",
    )?;
    assert_eq!(login.status, 200, "{}", login.text());
    let token = login.json()["accessToken"].as_str().unwrap_or_default().to_string();
    let read = |query: &str| {
        http::anonymous("GET", cluster.addr(0), &format!("/nacos/v1/cs/configs?{query}&accessToken={token}"), &[], b"")
    };
    assert_eq!(read("dataId=only-in-team-a&group=DEFAULT_GROUP&tenant=team-a")?.status, 200);
    assert_eq!(read("dataId=console-demo&group=DEFAULT_GROUP")?.status, 403);
    Ok(())
}

/// A service's settings and a cluster's health check, edited in the service's page; a bad
/// value is refused with the field named and changes nothing.
fn service_settings(cluster: &Cluster, console: &mut Console) -> Result<()> {
    console.visit("#/service?name=console-svc&group=DEFAULT_GROUP")?;
    // Refused: a health checker the server does not know (its 400 names the field), metadata
    // that is not a JSON object (the page says so before sending).
    console.fill("[data-testid=edit-health-checker]", r#"{"type": "UDP"}"#)?;
    console.click("[data-testid=save-cluster]")?;
    console.wait_for("document.querySelector('[data-testid=edit-error]').textContent.includes('healthChecker')")?;
    console.fill("[data-testid=edit-service-metadata]", "[1, 2]")?;
    console.click("[data-testid=save-service]")?;
    console.wait_for(
        "document.querySelector('[data-testid=edit-error]').textContent.includes('metadata must be a JSON object')",
    )?;
    let unchanged =
        cluster.get(0, "/nacos/v1/ns/catalog/service?serviceName=console-svc&groupName=DEFAULT_GROUP")?.json();
    assert_eq!(unchanged["clusters"][0]["healthChecker"]["type"], "TCP", "{unchanged}");
    console.fill("[data-testid=edit-threshold]", "0.6")?;
    console.fill("[data-testid=edit-service-metadata]", r#"{"owner": "team-a"}"#)?;
    console.click_and_render("[data-testid=save-service]")?;
    console.fill("[data-testid=edit-health-checker]", r#"{"type": "HTTP", "path": "/health"}"#)?;
    console.fill("[data-testid=edit-check-port]", "8080")?;
    console.click_and_render("[data-testid=save-cluster]")?;
    let service =
        cluster.get(2, "/nacos/v1/ns/catalog/service?serviceName=console-svc&groupName=DEFAULT_GROUP")?.json();
    let threshold = service["service"]["protectThreshold"].as_f64().unwrap_or_default();
    assert!((threshold - 0.6).abs() < 1e-6, "{service}");
    assert_eq!(service["service"]["metadata"]["owner"], "team-a", "{service}");
    let cluster_settings = &service["clusters"][0];
    assert_eq!(cluster_settings["healthChecker"]["type"], "HTTP", "{service}");
    assert_eq!(cluster_settings["healthChecker"]["path"], "/health", "{service}");
    assert_eq!(cluster_settings["defaultCheckPort"], 8080, "{service}");
    console.screenshot("service")?;
    Ok(())
}

#[test]
fn a_node_started_with_the_console_off_serves_the_api_only() {
    let cluster = Cluster::start_with(1, &["--console", "off"]);
    cluster.wait_leader();
    for path in ["/", "/nacos/", "/nacos/console/app.js"] {
        assert_eq!(http::anonymous("GET", cluster.addr(0), path, &[], b"").unwrap().status, 404, "{path}");
    }
    assert_eq!(cluster.get(0, "/nacos/v1/console/health/liveness").unwrap().status, 200);
    let published = cluster.post_form(0, "/nacos/v1/cs/configs", &[("dataId", "d"), ("group", "g"), ("content", "c")]);
    assert_eq!(published.unwrap().status, 200);
}
