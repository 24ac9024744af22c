//! The config service against real `nacre serve` processes: the long-poll listener (at once,
//! held, woken by a change committed through another node, timing out empty), history and
//! rollback (also through the `nacre config` CLI), beta release, search and namespaces.

mod support;

use std::process::Command;
use std::time::Duration;
use std::time::Instant;

use support::cluster::Cluster;
use support::cluster::wait_until;
use support::http;

const CONFIGS: &str = "/nacos/v1/cs/configs";
const LISTENER: &str = "/nacos/v1/cs/configs/listener";
const GROUP: &str = "DEFAULT_GROUP";

fn publish(cluster: &Cluster, node: usize, data_id: &str, content: &str, tenant: &str) {
    let resp = cluster
        .post_form(node, CONFIGS, &[("dataId", data_id), ("group", GROUP), ("content", content), ("tenant", tenant)])
        .unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "true"), "publish {data_id}");
}

fn md5_of(cluster: &Cluster, node: usize, data_id: &str) -> String {
    let resp = cluster.get(node, &format!("{CONFIGS}?dataId={data_id}&group={GROUP}")).unwrap();
    assert_eq!(resp.status, 200);
    resp.header("Content-MD5").unwrap().to_string()
}

/// The config's md5 on `node`, `None` while that replica has not applied it yet.
fn md5_when_applied(cluster: &Cluster, node: usize, data_id: &str) -> Option<String> {
    let resp = cluster.get(node, &format!("{CONFIGS}?dataId={data_id}&group={GROUP}")).ok()?;
    (resp.status == 200).then(|| resp.header("Content-MD5").unwrap_or_default().to_string())
}

/// A long-poll as the Nacos clients send it; `None` timeout = short poll.
fn listen(addr: &str, lines: &str, timeout_ms: Option<u64>, extra: &[(&str, &str)]) -> (http::Response, Duration) {
    let timeout = timeout_ms.map(|ms| ms.to_string());
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(timeout) = &timeout {
        headers.push(("Long-Pulling-Timeout", timeout));
    }
    headers.extend_from_slice(extra);
    let body = http::form(&[("Listening-Configs", lines)]);
    let started = Instant::now();
    let resp = http::request_with_headers("POST", addr, LISTENER, &headers, body.as_bytes()).unwrap();
    (resp, started.elapsed())
}

fn line(data_id: &str, md5: &str, tenant: Option<&str>) -> String {
    match tenant {
        Some(tenant) => format!("{data_id}\u{2}{GROUP}\u{2}{md5}\u{2}{tenant}\u{1}"),
        None => format!("{data_id}\u{2}{GROUP}\u{2}{md5}\u{1}"),
    }
}

#[test]
fn long_poll_answers_at_once_holds_and_wakes_across_nodes() {
    let cluster = Cluster::start(3);
    let (a, b, c) = (0, 1, 2);
    publish(&cluster, a, "app.yaml", "v1", "");
    // Node C applies the publish on its own schedule: a 404 until then is not a failure.
    wait_until("v1 on node C", || md5_when_applied(&cluster, c, "app.yaml").is_some_and(|md5| md5.len() == 32));
    let v1 = md5_of(&cluster, c, "app.yaml");

    // Held until timeout on node B, meanwhile everything else runs.
    let quiet_addr = cluster.addr(b).to_string();
    let quiet = std::thread::spawn(move || listen(&quiet_addr, &line("quiet.yaml", "", None), Some(10_000), &[]));

    // A client without the config (md5 "") is answered at once, 3- and 4-field lines alike.
    for probe in [line("app.yaml", "", None), line("app.yaml", "", Some(""))] {
        let (resp, took) = listen(cluster.addr(c), &probe, Some(30_000), &[]);
        assert_eq!((resp.status, resp.text().as_str()), (200, "app.yaml%02DEFAULT_GROUP%01\n"));
        assert!(took < Duration::from_secs(2), "answered at once, took {took:?}");
    }
    // Up to date, and told not to hang up (or no timeout header: short poll): empty, at once.
    let current = line("app.yaml", &v1, None);
    for (timeout, extra) in [(Some(30_000), vec![("Long-Pulling-Timeout-No-Hangup", "true")]), (None, vec![])] {
        let (resp, took) = listen(cluster.addr(c), &current, timeout, &extra);
        assert_eq!((resp.status, resp.text().as_str()), (200, ""));
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }

    // Held on node C; the change is committed through node A.
    let held_addr = cluster.addr(c).to_string();
    let probes = format!("{current}{}", line("team.yaml", "", Some("dev")));
    let held = std::thread::spawn(move || {
        let (resp, _) = listen(&held_addr, &probes, Some(30_000), &[]);
        (resp, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(!held.is_finished(), "an up-to-date listener is held");
    let published_at = Instant::now();
    publish(&cluster, a, "app.yaml", "v2", "");
    let (resp, answered_at) = held.join().unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "app.yaml%02DEFAULT_GROUP%01\n"));
    let wake = answered_at.duration_since(published_at);
    assert!(wake < Duration::from_secs(2), "woken {wake:?} after the publish through another node");

    // A listener on a namespace is woken by that namespace's change, and told its tenant.
    let held_addr = cluster.addr(b).to_string();
    let held = std::thread::spawn(move || listen(&held_addr, &line("team.yaml", "", Some("dev")), Some(30_000), &[]));
    std::thread::sleep(Duration::from_millis(1_000));
    publish(&cluster, c, "team.yaml", "t1", "dev");
    let (resp, took) = held.join().unwrap();
    assert_eq!(resp.text(), "team.yaml%02DEFAULT_GROUP%02dev%01\n");
    assert!(took < Duration::from_secs(5), "took {took:?}");

    // Bad input is a 400 naming the problem.
    let too_many = line("k", "", None).repeat(10_001);
    let (resp, _) = listen(cluster.addr(a), &too_many, Some(30_000), &[]);
    assert_eq!((resp.status, resp.text().as_str()), (400, "invalid protocol, too much listener"));
    for bad in ["app.yaml\u{2}DEFAULT_GROUP\u{1}", "", "a\u{2}G\u{2}m\u{2}bad tenant\u{1}"] {
        let (resp, _) = listen(cluster.addr(a), bad, Some(30_000), &[]);
        assert_eq!(resp.status, 400, "{bad:?}: {}", resp.text());
        assert!(resp.text().contains("Listening-Configs"), "{}", resp.text());
    }
    let (resp, _) = listen(cluster.addr(a), &current, None, &[("Long-Pulling-Timeout", "soon")]);
    assert!(resp.status == 400 && resp.text().contains("Long-Pulling-Timeout"), "{}", resp.text());

    let (resp, took) = quiet.join().unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, ""), "a timeout answers with an empty body");
    assert!(took >= Duration::from_millis(9_500) && took < Duration::from_secs(13), "held {took:?}");
    cluster.wait_converged();
}

fn nacre_config(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nacre"))
        .arg("config")
        .args(args)
        .env("NACRE_ACCESS_TOKEN", support::http::latest_token())
        .output()
        .expect("the nacre binary runs")
}

fn history(cluster: &Cluster, node: usize, data_id: &str) -> serde_json::Value {
    let path = format!("/nacos/v1/cs/history?search=accurate&dataId={data_id}&group={GROUP}&pageNo=1&pageSize=10");
    let resp = cluster.get(node, &path).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

#[test]
fn history_rollback_beta_search_and_namespaces() {
    let cluster = Cluster::start(3);
    let follower = cluster.follower();
    publish(&cluster, follower, "db.properties", "url=v1", "");
    publish(&cluster, follower, "db.properties", "url=v2", "");
    let page = history(&cluster, follower, "db.properties");
    assert_eq!(page["totalCount"], 2);
    let update = &page["pageItems"][0];
    assert_eq!((update["opType"].as_str(), update["content"].as_str()), (Some("U  "), Some("url=v1")));
    let nid = update["id"].as_str().unwrap().to_string();
    let one = cluster.get(0, &format!("/nacos/v1/cs/history?nid={nid}")).unwrap().json();
    assert_eq!(one["content"], "url=v1");
    let previous = cluster.get(0, &format!("/nacos/v1/cs/history/previous?id={nid}")).unwrap().json();
    assert_eq!(previous["opType"], "I  ");

    // The CLI, against any node.
    let server = cluster.addr(0).to_string();
    let target = ["--server", &server, "--data-id", "db.properties", "--group", GROUP];
    let out = nacre_config(&[&["history"], &target[..]].concat());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && printed.contains("2 entries") && printed.contains(&nid), "{printed}");
    let out = nacre_config(&[&["rollback"], &target[..], &["--nid", &nid]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("rolled back"));
    let get = |node, query: &str, headers: &[(&str, &str)]| {
        http::request_with_headers("GET", cluster.addr(node), &format!("{CONFIGS}?{query}"), headers, b"").unwrap()
    };
    assert_eq!(get(0, "dataId=db.properties&group=DEFAULT_GROUP", &[]).text(), "url=v1");
    assert_eq!(history(&cluster, 0, "db.properties")["totalCount"], 3, "a rollback is a new entry");
    let out = nacre_config(&[&["rollback"], &target[..], &["--nid", "999999"]].concat());
    assert!(!out.status.success(), "rolling back to a missing entry fails");
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"), "{}", String::from_utf8_lossy(&out.stderr));

    // Beta: only its IPs see it, until promoted.
    let form = http::form(&[("dataId", "db.properties"), ("group", GROUP), ("content", "url=beta")]);
    let headers = [("Content-Type", "application/x-www-form-urlencoded"), ("betaIps", "10.9.9.9,10.9.9.8")];
    let resp = http::request_with_headers("POST", cluster.addr(1), CONFIGS, &headers, form.as_bytes()).unwrap();
    assert_eq!(resp.text(), "true");
    let named = "dataId=db.properties&group=DEFAULT_GROUP";
    let beta = get(2, named, &[("X-Real-IP", "10.9.9.9")]);
    wait_until("the beta on node 2", || get(2, named, &[("X-Real-IP", "10.9.9.9")]).text() == "url=beta");
    let beta_again = get(2, named, &[("X-Real-IP", "10.9.9.9")]);
    assert_eq!(beta_again.header("isBeta"), Some("true"), "{beta:?}");
    assert_eq!(get(2, named, &[("X-Real-IP", "10.1.1.1")]).text(), "url=v1");
    let info = get(0, &format!("{named}&beta=true"), &[]).json();
    assert_eq!(
        (info["message"].as_str(), info["data"]["betaIps"].as_str()),
        (Some("query beta ok"), Some("10.9.9.9,10.9.9.8"))
    );
    let resp = cluster
        .post_form(0, "/nacre/v1/config/promote-beta", &[("dataId", "db.properties"), ("group", GROUP)])
        .unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "true"));
    assert_eq!(get(0, named, &[("X-Real-IP", "10.1.1.1")]).text(), "url=beta");
    assert_eq!(get(0, &format!("{named}&beta=true"), &[]).json()["data"], serde_json::Value::Null);

    // Search as the Python client's get_configs sends it.
    publish(&cluster, 0, "app.yaml", "a: 1", "");
    let found = get(0, "dataId=&group=&search=accurate&pageNo=1&pageSize=1000", &[]).json();
    assert_eq!(found["totalCount"], 2, "{found}");
    let blur = get(0, "dataId=app*&search=blur&pageNo=1&pageSize=10", &[]).json();
    assert_eq!((blur["totalCount"].as_u64(), blur["pageItems"][0]["content"].as_str()), (Some(1), Some("a: 1")));

    // Namespaces: replicated records, config counts from each namespace's config guest.
    const NAMESPACES: &str = "/nacos/v1/console/namespaces";
    let create = |pairs: &[(&str, &str)]| cluster.post_form(1, NAMESPACES, pairs).unwrap();
    assert_eq!(
        create(&[("customNamespaceId", "dev-team"), ("namespaceName", "Dev"), ("namespaceDesc", "d")]).text(),
        "true"
    );
    assert_eq!(create(&[("customNamespaceId", "dev-team"), ("namespaceName", "Again")]).status, 409);
    assert_eq!(create(&[("namespaceName", "Generated")]).text(), "true");
    let bad = create(&[("customNamespaceId", "bad id"), ("namespaceName", "x")]);
    assert!(bad.status == 400 && bad.text().contains("customNamespaceId"), "{}", bad.text());
    assert_eq!(create(&[("customNamespaceId", "x")]).status, 400, "namespaceName is required");
    publish(&cluster, 0, "team.yaml", "t", "dev-team");
    wait_until("namespaces replicated with their config counts", || {
        let list = cluster.get(2, NAMESPACES).unwrap().json();
        let data = list["data"].as_array().cloned().unwrap_or_default();
        data.len() == 3
            && data[0]["namespace"] == ""
            && data[0]["type"] == 0
            && data[0]["configCount"] == 2
            && data.iter().any(|n| n["namespace"] == "dev-team" && n["configCount"] == 1 && n["type"] == 2)
    });
    let edit = http::form(&[("namespace", "dev-team"), ("namespaceShowName", "Developers"), ("namespaceDesc", "")]);
    let form_type = [("Content-Type", "application/x-www-form-urlencoded")];
    let resp = http::request_with_headers("PUT", cluster.addr(0), NAMESPACES, &form_type, edit.as_bytes()).unwrap();
    assert_eq!(resp.text(), "true");
    let shown = cluster.get(0, &format!("{NAMESPACES}?show=all&namespaceId=dev-team")).unwrap().json();
    assert_eq!((shown["namespaceShowName"].as_str(), shown["quota"].as_u64()), (Some("Developers"), Some(200)));
    let exists = |id: &str| {
        cluster.get(0, &format!("{NAMESPACES}?checkNamespaceIdExist=true&customNamespaceId={id}")).unwrap().text()
    };
    assert_eq!((exists("dev-team").as_str(), exists("nope").as_str()), ("true", "false"));
    let delete =
        || http::request("DELETE", cluster.addr(0), &format!("{NAMESPACES}?namespaceId=dev-team"), None, b"").unwrap();
    assert_eq!(delete().text(), "true");
    assert_eq!(delete().status, 404);
    cluster.wait_converged();
}

/// Issue 16: a client that disconnects from a held long-poll frees its listener slot (the
/// per-node limit) at once, not at the hold's timeout.
#[test]
fn a_long_poll_whose_client_disconnects_frees_its_slot_at_once() {
    use std::io::Write as _;
    let cluster = Cluster::start(1);
    publish(&cluster, 0, "held", "v", "");
    let md5 = md5_of(&cluster, 0, "held");
    let held = || cluster.state(0).unwrap()["long_polls_held"].as_u64().unwrap();
    assert_eq!(held(), 0);
    let body = http::form(&[("Listening-Configs", &format!("held\u{2}DEFAULT_GROUP\u{2}{md5}\u{1}"))]);
    let mut stream = std::net::TcpStream::connect(cluster.addr(0)).unwrap();
    let head = format!(
        "POST /nacos/v1/cs/configs/listener HTTP/1.1\r\nHost: x\r\nLong-Pulling-Timeout: 30000\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        cluster.token(),
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    wait_until("the long-poll is held", || held() == 1);
    let dropped = Instant::now();
    drop(stream);
    wait_until("the slot is free again", || held() == 0);
    assert!(dropped.elapsed() < Duration::from_secs(5), "freed at the disconnect, not at the timeout");
}
