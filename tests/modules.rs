//! Module lifecycle on a real 3-node cluster, driven through the `nacre module` CLI: a custom
//! naming module activated in one namespace while clients keep writing there and to
//! `public`; the switch happens at one index on every replica; rollback; dry-run; hostile
//! modules leave the cluster as it was.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use support::cluster::Cluster;
use support::cluster::wait_until;
use support::http;

const INSTANCE: &str = "/nacos/v1/ns/instance";
/// Longest one client write may take before the test calls it failed.
const WRITER_PAUSE_MS: u64 = 20;

/// Run `nacre module ...` against `server`; its stdout, or a panic with its stderr.
fn cli(server: &str, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_nacre"))
        .arg("module")
        .args(args)
        .args(["--server", server])
        .env("NACRE_ACCESS_TOKEN", http::token_for(server).unwrap_or_default())
        .output()
        .expect("the nacre binary runs");
    assert!(output.status.success(), "nacre module {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn module_file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

/// Register an instance; the response status, and the log index and module that applied it.
fn register(addr: &str, namespace: &str, port: u32, metadata: &str) -> (u16, u64, String, String) {
    let port = port.to_string();
    let query = http::form(&[
        ("serviceName", "orders"),
        ("ip", "10.9.0.1"),
        ("port", &port),
        ("namespaceId", namespace),
        ("metadata", metadata),
        // Persistent: its command goes through the log, so it has an index to compare with
        // the switch's (an ephemeral one takes the AP path, outside the log).
        ("ephemeral", "false"),
    ]);
    let resp = http::request("POST", addr, &format!("{INSTANCE}?{query}"), None, b"").expect("node reachable");
    let index = resp.header("x-nacre-log-index").and_then(|i| i.parse().ok()).unwrap_or(0);
    let module = resp.header("x-nacre-module").unwrap_or_default().to_string();
    (resp.status, index, module, resp.text())
}

fn binding_of(cluster: &Cluster, node: usize, namespace: &str) -> Option<Value> {
    let all = cluster.get(node, "/nacre/v1/bindings").unwrap().json();
    all["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["namespace"] == namespace && b["binding"]["module"]["kind"] == "Naming")
        .map(|b| b["binding"].clone())
}

#[test]
fn a_module_switches_one_namespace_at_one_index_while_clients_write() {
    let cluster = Cluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    let server = cluster.addr(cluster.follower()).to_string();
    let file = module_file(&dir, "require-metadata.wasm", nacre::builtin::examples::REQUIRE_METADATA);
    let installed = cli(&server, &["install", &file]);
    assert!(installed.contains("example-require-metadata"), "{installed}");
    let new_id = installed.lines().find_map(|l| l.strip_prefix("id ")).unwrap().trim().to_string();
    assert!(cli(&server, &["list"]).contains(&new_id));

    // Two clients keep writing: one to `tenant-a` (with the metadata the new rule wants), one
    // to `public` (without). Every write must succeed through the switch.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = |namespace: &'static str, metadata: &'static str, addr: String| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut results = Vec::new();
            let mut port = 1;
            while !stop.load(Ordering::Relaxed) || results.len() < 20 {
                results.push(register(&addr, namespace, port, metadata));
                port += 1;
                std::thread::sleep(Duration::from_millis(WRITER_PAUSE_MS));
            }
            results
        })
    };
    let tenant = writer("tenant-a", r#"{"version":"1","zone":"a"}"#, cluster.addr(0).to_string());
    let public = writer("public", "{}", cluster.addr(2).to_string());
    std::thread::sleep(Duration::from_millis(500));
    let activated = cli(&server, &["activate", "--namespace", "tenant-a", "--kind", "naming", &new_id[..12]]);
    assert!(activated.contains(&new_id), "{activated}");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (tenant, public) = (tenant.join().unwrap(), public.join().unwrap());

    let since = binding_of(&cluster, 0, "tenant-a").unwrap()["since_index"].as_u64().unwrap();
    for node in 0..3 {
        let binding = binding_of(&cluster, node, "tenant-a").unwrap();
        assert_eq!(
            (binding["module_id"].as_str(), binding["since_index"].as_u64()),
            (Some(new_id.as_str()), Some(since))
        );
    }
    let builtin_id = binding_of(&cluster, 0, "*").unwrap()["module_id"].as_str().unwrap().to_string();
    for (status, index, module, body) in &tenant {
        assert_eq!(*status, 200, "a tenant-a write failed during the switch: {body}");
        let expected = if *index > since { &new_id } else { &builtin_id };
        assert_eq!(module, expected, "entry {index} (switch at {since}) was applied by the wrong module");
    }
    assert!(tenant.iter().any(|(_, index, _, _)| *index > since), "some writes landed after the switch");
    for (status, _, module, body) in &public {
        assert_eq!((*status, module), (200, &builtin_id), "public is untouched: {body}");
    }
    cluster.wait_converged();

    // The new rule is in force in tenant-a only.
    let (status, _, _, body) = register(cluster.addr(1), "tenant-a", 9001, "{}");
    assert_eq!(status, 400);
    assert!(body.contains("missing version, zone"), "{body}");
    assert_eq!(register(cluster.addr(1), "public", 9001, "{}").0, 200);

    // Rollback restores the built-in behaviour.
    let rolled = cli(&server, &["rollback", "--namespace", "tenant-a", "--kind", "naming"]);
    assert!(rolled.contains(&builtin_id), "{rolled}");
    assert_eq!(register(cluster.addr(1), "tenant-a", 9002, "{}").0, 200);
    let bindings = cli(&server, &["bindings"]);
    assert!(bindings.contains("tenant-a") && bindings.contains(&new_id), "{bindings}");

    // Dry-run the rule against what tenant-a did since: exactly the registrations without
    // the metadata differ.
    for (port, metadata) in
        [(9101, r#"{"version":"2","zone":"b"}"#), (9102, "{}"), (9103, "zone=c,version=3"), (9104, "")]
    {
        assert_eq!(register(cluster.addr(0), "tenant-a", port, metadata).0, 200);
    }
    let report = cli(&server, &["dry-run", "--namespace", "tenant-a", "--entries", "4", &file]);
    assert!(report.contains("replayed 4 entries of tenant-a: 2 differ, 2 same"), "{report}");
    let diff_lines: Vec<&str> = report.lines().filter(|l| l.starts_with("DIFF")).collect();
    assert_eq!(diff_lines.len(), 2, "{report}");
    cluster.wait_converged();
}

#[test]
fn zone_first_answers_the_callers_zone_first_in_its_namespace_only() {
    let cluster = Cluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    let server = cluster.addr(0).to_string();
    let installed =
        cli(&server, &["install", &module_file(&dir, "zone-first.wasm", nacre::builtin::examples::ZONE_FIRST)]);
    let id = installed.lines().find_map(|l| l.strip_prefix("id ")).unwrap().trim().to_string();
    cli(&server, &["activate", "--namespace", "tenant-b", "--kind", "naming", &id]);
    for namespace in ["tenant-b", "public"] {
        for (ip, zone) in [("10.8.0.1", "a"), ("10.8.0.2", "b")] {
            let metadata = format!(r#"{{"zone":"{zone}"}}"#);
            let query = http::form(&[
                ("serviceName", "web"),
                ("ip", ip),
                ("port", "80"),
                ("namespaceId", namespace),
                ("metadata", &metadata),
            ]);
            assert_eq!(cluster.call(1, "POST", &format!("{INSTANCE}?{query}")).unwrap().status, 200);
        }
    }
    cluster.wait_converged();
    let first_ip = |node: usize, namespace: &str| {
        let query = http::form(&[("serviceName", "web"), ("namespaceId", namespace), ("zone", "b")]);
        let listing = cluster.get(node, &format!("{INSTANCE}/list?{query}")).unwrap().json();
        listing["hosts"][0]["ip"].as_str().unwrap().to_string()
    };
    for node in 0..3 {
        assert_eq!(first_ip(node, "tenant-b"), "10.8.0.2", "zone b first on node {node}");
        assert_eq!(first_ip(node, "public"), "10.8.0.1", "public keeps the built-in order on node {node}");
    }
}

#[test]
fn hostile_modules_leave_the_cluster_as_it_was() {
    let cluster = Cluster::start(3);
    let node = cluster.follower();
    let publish = |data_id: &str| {
        let pairs = [("dataId", data_id), ("group", "G"), ("content", "kept"), ("tenant", "h")];
        assert_eq!(cluster.post_form(node, "/nacos/v1/cs/configs", &pairs).unwrap().status, 200);
    };
    publish("fail-migrate");
    let digest = cluster.wait_converged();

    // Refused before anything reaches the log: not a component, and too large.
    let not_a_component = http::request("POST", cluster.addr(node), "/nacre/v1/modules", None, b"\0asm junk").unwrap();
    assert_eq!(not_a_component.status, 400, "{}", not_a_component.text());
    let too_large = vec![0u8; 17 * 1024 * 1024];
    let resp = http::request("POST", cluster.addr(node), "/nacre/v1/modules", None, &too_large).unwrap();
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(cluster.wait_converged(), digest, "refused modules change nothing");

    // A module whose migrate traps: the activation entry fails identically everywhere and the
    // old binding stays.
    let resp = http::request("POST", cluster.addr(node), "/nacre/v1/modules", None, nacre::builtin::fixtures::HOSTILE)
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let hostile_id = resp.json()["id"].as_str().unwrap().to_string();
    let resp = cluster
        .post_form(node, "/nacre/v1/bindings", &[("namespace", "h"), ("kind", "config"), ("module", &hostile_id)])
        .unwrap();
    assert_eq!(resp.status, 409, "{}", resp.text());
    assert!(resp.text().contains("migrate failed, binding unchanged"), "{}", resp.text());
    cluster.wait_converged();
    for i in 0..3 {
        let all = cluster.get(i, "/nacre/v1/bindings").unwrap().json();
        assert!(
            all["bindings"].as_array().unwrap().iter().all(|b| b["namespace"] != "h"),
            "no binding for h on node {i}"
        );
        let failure = all["history"].as_array().unwrap().iter().find(|c| c["namespace"] == "h").unwrap().clone();
        assert!(failure["failure"].as_str().unwrap().contains("migrate failed"), "recorded on node {i}: {failure}");
    }
    let resp = cluster.get(node, "/nacos/v1/cs/configs?dataId=fail-migrate&group=G&tenant=h").unwrap();
    assert_eq!((resp.status, resp.text()), (200, "kept".to_string()), "the namespace still serves");
    publish("after");
    wait_until("the cluster still commits", || {
        cluster.get(2, "/nacos/v1/cs/configs?dataId=after&group=G&tenant=h").is_ok_and(|r| r.status == 200)
    });
}

/// A module no binding uses can be removed (issue 17: installed modules are bounded by a
/// quota, so they must be removable): refused while bound, gone from every node after, and
/// installable again.
#[test]
fn a_module_no_binding_uses_is_removed_from_every_node() {
    let cluster = Cluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    let server = cluster.addr(0).to_string();
    let file = module_file(&dir, "zone-first.wasm", nacre::builtin::examples::ZONE_FIRST);
    let installed = cli(&server, &["install", &file]);
    let id = installed.lines().find_map(|l| l.strip_prefix("id ")).unwrap().trim().to_string();
    cli(&server, &["activate", "--namespace", "tenant-c", "--kind", "naming", &id]);
    let remove = |node: usize, id: &str| cluster.call(node, "DELETE", &format!("/nacre/v1/modules?id={id}")).unwrap();
    let bound = remove(1, &id);
    assert_eq!(bound.status, 409, "{}", bound.text());
    assert!(bound.text().contains("tenant-c"), "names the binding that uses it: {}", bound.text());
    cli(&server, &["rollback", "--namespace", "tenant-c", "--kind", "naming"]);
    let removed = cli(cluster.addr(2), &["remove", &id[..12]]);
    assert!(removed.contains(&id), "{removed}");
    cluster.wait_converged();
    let listings: Vec<String> = (0..3).map(|node| cluster.get(node, "/nacre/v1/modules").unwrap().text()).collect();
    for (node, listed) in listings.iter().enumerate() {
        assert!(!listed.contains(&id), "node {node} still lists it: {listed}");
    }
    assert_eq!(remove(0, &id).status, 404, "already removed");
    assert_eq!(remove(0, "not-a-module-id").status, 400);
    cluster.wait_converged();
    assert_eq!(cluster.get(1, "/nacre/v1/modules").unwrap().text(), listings[1], "refusals remove nothing");
    // It can be installed and bound again.
    assert!(cli(&server, &["install", &file]).contains(&id));
    cli(&server, &["activate", "--namespace", "tenant-c", "--kind", "naming", &id]);
    let instance =
        http::form(&[("serviceName", "web"), ("ip", "10.8.0.9"), ("port", "80"), ("namespaceId", "tenant-c")]);
    assert_eq!(cluster.call(1, "POST", &format!("{INSTANCE}?{instance}")).unwrap().status, 200);
}
