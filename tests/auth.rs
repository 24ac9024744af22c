//! Client authentication and authorization on real nodes (auth is on by default), one test per
//! property of the security record in `shared/reference/nacos-auth.md` §4 where it concerns the
//! client port: no identity from client-controlled metadata; deny by default on the route
//! table that dispatches; path variants reach no handler; the admin bootstrap not claimable
//! by a stranger; authorization on the server; no hashes leave it; credentials out of logs;
//! tokens of another cluster, forged headers and changed passwords refused.

mod support;

use std::process::Child;
use std::process::Command;
use std::process::Stdio;

use nacre::api::routes::ROUTES;
use nacre::api::routes::Verb;
use nacre::grpc::client::GrpcClient;
use serde_json::Value;
use serde_json::json;
use support::cluster::ADMIN_PASSWORD;
use support::cluster::Cluster;
use support::cluster::GRPC_PORT_OFFSET;
use support::cluster::wait_until;
use support::http;
use support::http::Response;

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");
const CONFIGS: &str = "/nacos/v1/cs/configs";

fn verb(verb: Verb) -> &'static str {
    match verb {
        Verb::Get => "GET",
        Verb::Post => "POST",
        Verb::Put => "PUT",
        Verb::Delete => "DELETE",
        Verb::Patch => "PATCH",
    }
}

/// A request with exactly these headers (no token from the harness).
fn call_as(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
    http::anonymous(method, addr, path, headers, body.as_bytes()).unwrap()
}

/// Nacos's refusal: 403 with Spring's error document carrying `message`.
fn assert_refused(resp: &Response, message: &str, what: &str) {
    assert_eq!(resp.status, 403, "{what}: {}", resp.text());
    let body = resp.json();
    assert_eq!(body["message"], message, "{what}: {body}");
    assert_eq!((body["status"].as_u64(), body["error"].as_str()), (Some(403), Some("Forbidden")), "{what}");
}

fn login(addr: &str, username: &str, password: &str) -> Response {
    let body = http::form(&[("username", username), ("password", password)]);
    call_as(addr, "POST", "/nacos/v1/auth/login", &[FORM], &body)
}

fn token_of(resp: &Response) -> String {
    assert_eq!(resp.status, 200, "login: {}", resp.text());
    resp.json()["accessToken"].as_str().unwrap().to_string()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// An administrator's change through the auth API; its `RestResult` message.
fn admin_change(cluster: &Cluster, method: &str, path: &str, pairs: &[(&str, &str)]) -> String {
    let auth = bearer(&cluster.token());
    let resp = call_as(cluster.addr(0), method, path, &[FORM, ("Authorization", &auth)], &http::form(pairs));
    assert_eq!(resp.status, 200, "{method} {path}: {}", resp.text());
    resp.json()["message"].as_str().unwrap().to_string()
}

#[test]
fn every_route_but_the_public_ones_refuses_a_caller_without_credentials_whatever_the_headers_say() {
    let cluster = Cluster::start(1);
    let addr = cluster.addr(0);
    let before = cluster.wait_converged();
    // What Nacos trusted at one time or another, and what a proxy or a guess might add (every
    // request here also comes from loopback, with a loopback `Host`).
    let disguises: &[&[(&str, &str)]] = &[
        &[],
        &[("User-Agent", "Nacos-Server")],
        &[("X-Forwarded-For", "127.0.0.1"), ("X-Real-IP", "127.0.0.1")],
        &[("serverIdentity", "security"), ("nacos-server-identity", "security")],
        &[("Authorization", "Bearer "), ("accessToken", "")],
    ];
    let mut checked = 0;
    for route in ROUTES {
        let public = route.access == nacre::api::access::Access::Public;
        for headers in disguises {
            let resp = call_as(addr, verb(route.verb), route.path, headers, "");
            if public {
                assert_ne!(resp.status, 404, "{} {} is served", verb(route.verb), route.path);
            } else {
                assert_refused(
                    &resp,
                    "unknown user!",
                    &format!("{} {} with {headers:?}", verb(route.verb), route.path),
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= ROUTES.len() * disguises.len());
    // Nothing was written by any of it.
    assert_eq!(cluster.wait_converged(), before, "the state moved");
    let auth = bearer(&cluster.token());
    let probe = call_as(addr, "GET", &format!("{CONFIGS}?dataId=x&group=g"), &[("Authorization", &auth)], "");
    assert_eq!(probe.status, 404, "no config appeared: {}", probe.text());
}

#[test]
fn path_variants_reach_no_handler_and_unknown_paths_are_404() {
    let cluster = Cluster::start(1);
    let addr = cluster.addr(0);
    for path in [
        "//nacos/v1/cs/configs",
        "/nacos/v1//cs/configs",
        "/nacos/v1/cs%2Fconfigs",
        "/nacos/v1/cs/../cs/configs",
        "/nacos/v1/cs/configs;jsessionid=1",
        "/NACOS/v1/cs/configs",
        "/nacos/v3/auth/user/login",
    ] {
        let resp = call_as(addr, "POST", &format!("{path}?dataId=x&group=g&content=c"), &[], "");
        assert_eq!(resp.status, 404, "{path}: {}", resp.text());
    }
    // A trailing slash is the same route, and its check.
    let resp = call_as(addr, "POST", &format!("{CONFIGS}/?dataId=x&group=g&content=c"), &[], "");
    assert_refused(&resp, "unknown user!", "a trailing slash");
    // Query and form disagreeing on the resource: the first value (the query's) is both the
    // one checked and the one used.
    let body = http::form(&[("dataId", "x"), ("group", "g"), ("content", "c")]);
    let resp = call_as(addr, "POST", &format!("{CONFIGS}?tenant=other"), &[FORM], &body);
    assert_refused(&resp, "unknown user!", "query and form");
}

#[test]
fn tokens_travel_as_nacos_clients_send_them_and_forged_ones_are_refused() {
    let mut cluster = Cluster::start(3);
    let addr = cluster.addr(1).to_string();
    let addr = addr.as_str();
    wait_until("every node removed its bootstrap token", || {
        cluster.nodes.iter().all(|node| !node.data_dir.join("bootstrap-token").exists())
    });
    // Both login paths, the parameters in the query (Python client) or the form (Java 1.x).
    let query = format!("/nacos/v1/auth/users/login?username=nacos&password={ADMIN_PASSWORD}");
    let answered = call_as(addr, "POST", &query, &[], "");
    let token = token_of(&answered);
    let login_json = answered.json();
    assert_eq!((login_json["tokenTtl"].as_u64(), login_json["globalAdmin"].as_bool()), (Some(18_000), Some(true)));
    assert_eq!(login_json["username"], "nacos");
    assert_eq!(answered.header("Authorization"), Some(bearer(&token).as_str()));
    assert_eq!(
        token_of(&login(cluster.addr(2), "nacos", ADMIN_PASSWORD)).split('.').next(),
        Some("eyJhbGciOiJIUzI1NiJ9")
    );

    let read = format!("{CONFIGS}?dataId=absent&group=g");
    let ok_404 = |resp: Response, how: &str| assert_eq!(resp.status, 404, "{how}: {}", resp.text());
    // A token from one node works on every node (the key is replicated).
    for node in 0..3 {
        ok_404(call_as(cluster.addr(node), "GET", &read, &[("Authorization", &bearer(&token))], ""), "Bearer");
    }
    ok_404(call_as(addr, "GET", &read, &[("accessToken", &token)], ""), "accessToken header");
    ok_404(call_as(addr, "GET", &format!("{read}&accessToken={token}"), &[], ""), "accessToken parameter");
    // The npm client sends username and password with every request.
    ok_404(call_as(addr, "GET", &format!("{read}&username=nacos&password={ADMIN_PASSWORD}"), &[], ""), "password");

    let bad_password = login(addr, "nacos", "not-the-password");
    assert_eq!((bad_password.status, bad_password.text().as_str()), (403, "unknown user!"));
    assert_eq!(login(addr, "nobody", "x").status, 403);
    let wrong = call_as(addr, "GET", &format!("{read}&username=nacos&password=wrong"), &[], "");
    assert_refused(&wrong, "unknown user!", "a wrong password as parameters");

    // Forged tokens: another cluster's key, another header (`alg: none`), a changed claim.
    let foreign_key = [7u8; nacre::auth::token::SIGNING_KEY_BYTES];
    let now_s = nacre::clock::now_ms() / 1000;
    let foreign = nacre::auth::token::issue(&foreign_key, "nacos", 1, now_s, 600);
    let (_, claims_and_mac) = token.split_once('.').unwrap();
    let alg_none = format!("eyJhbGciOiJub25lIn0.{claims_and_mac}");
    let (signed, mac) = token.rsplit_once('.').unwrap();
    let (header, _) = signed.split_once('.').unwrap();
    let other_claims = nacre::auth::token::issue(&foreign_key, "someone-else", 1, now_s, 600);
    let swapped = format!("{header}.{}.{mac}", other_claims.split('.').nth(1).unwrap());
    let before = cluster.wait_converged();
    for (forged, what) in [(foreign, "another cluster's key"), (alg_none, "alg none"), (swapped, "changed claims")] {
        let resp = call_as(addr, "GET", &read, &[("Authorization", &bearer(&forged))], "");
        assert_refused(&resp, "token invalid!", what);
        let publish = http::form(&[("dataId", "forged"), ("group", "g"), ("content", "x")]);
        let resp = call_as(addr, "POST", CONFIGS, &[FORM, ("Authorization", &bearer(&forged))], &publish);
        assert_refused(&resp, "token invalid!", what);
    }
    assert_eq!(cluster.wait_converged(), before, "a forged token changed the state");

    // The token outlives a restart of the node that issued it (the key is replicated state,
    // on disk): the Python client does not log in again for hours.
    cluster.kill_node(1);
    cluster.start_node(1);
    cluster.wait_ready();
    ok_404(call_as(addr, "GET", &read, &[("Authorization", &bearer(&token))], ""), "after a restart");
}

#[test]
fn users_roles_and_permissions_decide_what_each_caller_may_do() {
    let cluster = Cluster::start(3);
    let addr = cluster.addr(2);
    let auth = bearer(&cluster.token());
    let ns = call_as(
        addr,
        "POST",
        "/nacos/v1/console/namespaces",
        &[FORM, ("Authorization", &auth)],
        &http::form(&[("customNamespaceId", "dev-ns"), ("namespaceName", "dev")]),
    );
    assert_eq!(ns.status, 200, "{}", ns.text());
    assert_eq!(
        admin_change(&cluster, "POST", "/nacos/v1/auth/users", &[("username", "dev"), ("password", "dev-pw")]),
        "create user ok!"
    );
    assert_eq!(
        admin_change(&cluster, "POST", "/nacos/v1/auth/roles", &[("role", "devs"), ("username", "dev")]),
        "add role ok!"
    );
    let permit = [("role", "devs"), ("resource", "dev-ns:*:*"), ("action", "rw")];
    assert_eq!(admin_change(&cluster, "POST", "/nacos/v1/auth/permissions", &permit), "add permission ok!");
    let known_here = |name: &str| {
        let search = format!("/nacos/v1/auth/users/search?username={name}");
        wait_until("the user is known on the node signed in to", || {
            call_as(addr, "GET", &search, &[("Authorization", &auth)], "").text().contains(name)
        });
    };
    known_here("dev");
    let dev = bearer(&token_of(&login(addr, "dev", "dev-pw")));
    let dev_headers = [FORM, ("Authorization", dev.as_str())];

    // Data: their namespace yes, public no.
    let publish = |tenant: &str| {
        let body = http::form(&[("dataId", "app"), ("group", "g"), ("content", "v1"), ("tenant", tenant)]);
        call_as(addr, "POST", CONFIGS, &dev_headers, &body)
    };
    assert_eq!(publish("dev-ns").text(), "true");
    assert_refused(&publish(""), "authorization failed!", "a publish in public");
    let listen = http::form(&[("Listening-Configs", "app\u{2}g\u{2}\u{2}\u{1}")]);
    let held = [FORM, ("Authorization", dev.as_str()), ("Long-Pulling-Timeout", "1000")];
    assert_refused(
        &call_as(addr, "POST", "/nacos/v1/cs/configs/listener", &held, &listen),
        "authorization failed!",
        "a listener on public",
    );
    let register = "/nacos/v1/ns/instance?serviceName=s&ip=10.0.0.1&port=80";
    assert_refused(
        &call_as(addr, "POST", register, &dev_headers, ""),
        "authorization failed!",
        "a registration in public",
    );
    assert_eq!(call_as(addr, "POST", &format!("{register}&namespaceId=dev-ns"), &dev_headers, "").text(), "ok");

    // A grant on one group never acts on another through a `group@@` prefix that differs from
    // `groupName` (the naming module acts on the prefix's group).
    let own = [("role", "devs"), ("resource", "public:own:*"), ("action", "rw")];
    assert_eq!(admin_change(&cluster, "POST", "/nacos/v1/auth/permissions", &own), "add permission ok!");
    let in_group =
        |service: &str| format!("/nacos/v1/ns/instance?serviceName={service}&groupName=own&ip=10.0.0.2&port=80");
    wait_until("the group grant is in force", || {
        call_as(addr, "POST", &in_group("own@@s"), &dev_headers, "").text() == "ok"
    });
    assert_refused(
        &call_as(addr, "POST", &in_group("other@@s"), &dev_headers, ""),
        "authorization failed!",
        "a registration in another group named by the serviceName prefix",
    );

    // A read-only grant reads and does not write.
    admin_change(&cluster, "POST", "/nacos/v1/auth/users", &[("username", "viewer"), ("password", "viewer-pw")]);
    admin_change(&cluster, "POST", "/nacos/v1/auth/roles", &[("role", "viewers"), ("username", "viewer")]);
    admin_change(
        &cluster,
        "POST",
        "/nacos/v1/auth/permissions",
        &[("role", "viewers"), ("resource", "dev-ns:*:*"), ("action", "r")],
    );
    known_here("viewer");
    let viewer = bearer(&token_of(&login(addr, "viewer", "viewer-pw")));
    let read =
        call_as(addr, "GET", &format!("{CONFIGS}?dataId=app&group=g&tenant=dev-ns"), &[("Authorization", &viewer)], "");
    assert_eq!((read.status, read.text().as_str()), (200, "v1"));
    let body = http::form(&[("dataId", "app"), ("group", "g"), ("content", "v2"), ("tenant", "dev-ns")]);
    let write = call_as(addr, "POST", CONFIGS, &[FORM, ("Authorization", &viewer)], &body);
    assert_refused(&write, "authorization failed!", "a write with a read-only grant");

    // Administration is for administrators, whatever a grant says.
    for (method, path) in [
        ("POST", "/nacre/v1/modules"),
        ("POST", "/nacre/v1/bindings?namespace=dev-ns&kind=naming&module=x"),
        ("POST", "/nacre/v1/bindings/rollback?namespace=dev-ns&kind=naming"),
        ("POST", "/nacre/v1/exec?namespace=dev-ns&kind=config&op=kv.get&key=k"),
        ("GET", "/nacos/v1/auth/users"),
        ("POST", "/nacos/v1/auth/roles?role=devs&username=nacos"),
        ("GET", "/nacre/v1/modules"),
        ("GET", "/nacre/v1/state"),
        ("DELETE", "/nacos/v1/console/namespaces?namespaceId=dev-ns"),
    ] {
        assert_refused(&call_as(addr, method, path, &dev_headers, ""), "authorization failed!", path);
    }
    // Namespaces a user holds no grant in are not listed to them.
    let listed = call_as(addr, "GET", "/nacos/v1/console/namespaces", &dev_headers, "").json();
    let ids: Vec<&str> = listed["data"].as_array().unwrap().iter().map(|n| n["namespace"].as_str().unwrap()).collect();
    assert_eq!(ids, ["dev-ns"]);

    // No password hash ever leaves the server.
    let users = call_as(addr, "GET", "/nacos/v1/auth/users?pageNo=1&pageSize=10", &[("Authorization", &auth)], "");
    let items = users.json()["pageItems"].clone();
    let expected = serde_json::json!([{"username": "dev"}, {"username": "nacos"}, {"username": "viewer"}]);
    assert_eq!(items, expected, "{}", users.text());
    assert!(!users.text().contains("argon2"));

    // A user changes their own password, not another's; the change voids their old token.
    let change = |who: &str, password: &str| {
        let body = http::form(&[("username", who), ("newPassword", password)]);
        call_as(addr, "PUT", "/nacos/v1/auth/users", &dev_headers, &body)
    };
    assert_refused(&change("nacos", "taken-over"), "authorization failed!", "another user's password");
    assert_eq!(change("dev", "dev-pw-2").status, 200);
    wait_until("the old token is void on every node", || {
        (0..3).all(|node| {
            let resp = call_as(cluster.addr(node), "GET", "/nacos/v1/console/namespaces", &dev_headers, "");
            resp.status == 403 && resp.json()["message"] == "token invalid!"
        })
    });
    let dev = bearer(&token_of(&login(addr, "dev", "dev-pw-2")));
    // Deleted, the user's token is void too.
    admin_change(&cluster, "DELETE", "/nacos/v1/auth/users", &[("username", "dev")]);
    wait_until("a deleted user's token is void", || {
        let resp = call_as(addr, "GET", "/nacos/v1/console/namespaces", &[("Authorization", &dev)], "");
        resp.status == 403 && resp.json()["message"] == "token invalid!"
    });
    // The administrator cannot be deleted, nor ROLE_ADMIN handed out.
    let auth_headers = [FORM, ("Authorization", auth.as_str())];
    let delete_admin = call_as(addr, "DELETE", "/nacos/v1/auth/users?username=nacos", &auth_headers, "");
    assert_eq!((delete_admin.status, delete_admin.text().as_str()), (400, "cannot delete admin: nacos"));
    let grant_admin = call_as(addr, "POST", "/nacos/v1/auth/roles?role=ROLE_ADMIN&username=nacos", &auth_headers, "");
    assert_eq!(grant_admin.status, 400, "{}", grant_admin.text());

    // Credentials stay out of the nodes' logs.
    for node in 0..3 {
        let log = cluster.node_log(node);
        for secret in [ADMIN_PASSWORD, "dev-pw", &cluster.token()] {
            assert!(!log.contains(secret), "node {node}'s log holds a credential");
        }
    }
}

/// One node with auth on and no administrator yet.
struct Fresh {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Drop for Fresh {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fresh_node() -> Fresh {
    let node = spawn_fresh(&[], tempfile::tempdir().unwrap());
    wait_until("the node serves", || {
        http::anonymous("GET", &node.addr, "/nacos/v1/console/health/readiness", &[], b"")
            .is_ok_and(|r| r.status == 200)
    });
    node
}

/// A single node with auth on and `extra` flags, in `dir` (not waited for).
fn spawn_fresh(extra: &[&str], dir: tempfile::TempDir) -> Fresh {
    let (port, raft_port) = (support::cluster::free_port(), support::cluster::free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_nacre"))
        .args(["serve", "--port", &port.to_string(), "--raft-port", &raft_port.to_string(), "--data-dir"])
        .arg(dir.path().join("data"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("node.log")).unwrap())
        .spawn()
        .unwrap();
    Fresh { child, addr: format!("127.0.0.1:{port}"), dir }
}

#[test]
fn the_first_administrator_needs_the_bootstrap_token_and_is_made_once() {
    let node = fresh_node();
    let state = call_as(&node.addr, "GET", "/nacos/v1/console/server/state", &[], "").json();
    assert_eq!((state["auth_enabled"].as_str(), state["auth_admin_request"].as_str()), (Some("true"), Some("true")));
    let token_file = node.dir.path().join("data/bootstrap-token");
    let bootstrap_token = std::fs::read_to_string(&token_file).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!std::fs::read_to_string(node.dir.path().join("node.log")).unwrap().contains(bootstrap_token.trim()));

    // No user ships: Nacos's old default pair is refused, like anything else.
    assert_eq!(login(&node.addr, "nacos", "nacos").status, 403);
    let anonymous = call_as(&node.addr, "GET", &format!("{CONFIGS}?dataId=a&group=b"), &[], "");
    assert_refused(&anonymous, "unknown user!", "a read before any administrator exists");
    // Nacos 2.4's `/users/admin` made whoever came first the administrator.
    let claim =
        |pairs: &[(&str, &str)]| call_as(&node.addr, "POST", "/nacos/v1/auth/users/admin", &[FORM], &http::form(pairs));
    assert_eq!(claim(&[("password", "mine-now")]).status, 403);
    assert_eq!(claim(&[("password", "mine-now"), ("bootstrapToken", "0123")]).status, 403);
    let made = claim(&[("bootstrapToken", bootstrap_token.trim())]);
    assert_eq!(made.status, 200, "{}", made.text());
    let answer: Value = made.json();
    let password = answer["password"].as_str().expect("a password made up and shown once");
    assert!(password.len() >= 24);
    assert_eq!(claim(&[("password", "again"), ("bootstrapToken", bootstrap_token.trim())]).status, 409);
    assert!(!token_file.exists(), "the used token's file is removed");
    assert!(!token_of(&login(&node.addr, "nacos", password)).is_empty());
    let state = call_as(&node.addr, "GET", "/nacos/v1/console/server/state", &[], "").json();
    assert_eq!(state["auth_admin_request"], "false");

    // Guessing is throttled: past the failures one address may make on one name, even the
    // right password (not verified lately) is refused there for the rest of the window.
    let admin = bearer(&token_of(&login(&node.addr, "nacos", password)));
    let create = http::form(&[("username", "guarded"), ("password", "guarded-pw")]);
    let made = call_as(&node.addr, "POST", "/nacos/v1/auth/users", &[FORM, ("Authorization", &admin)], &create);
    assert_eq!(made.status, 200, "{}", made.text());
    for _ in 0..nacre::auth::throttle::MAX_FAILURES_PER_USER_AND_ADDRESS {
        assert_eq!(login(&node.addr, "guarded", "a-guess").text(), "unknown user!");
    }
    let refused = login(&node.addr, "guarded", "guarded-pw");
    assert_eq!((refused.status, refused.text().as_str()), (403, nacre::gate::THROTTLED.0));
}

#[test]
fn the_command_line_creates_the_administrator_and_manages_users() {
    let node = fresh_node();
    let password_file = node.dir.path().join("admin.password");
    std::fs::write(&password_file, "cli-admin-pw\n").unwrap();
    let nacre = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_nacre")).args(args).envs(env.iter().copied()).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let token_file = node.dir.path().join("data/bootstrap-token");
    let (ok, said) = nacre(
        &[
            "user",
            "bootstrap",
            "--server",
            &node.addr,
            "--token-file",
            token_file.to_str().unwrap(),
            "--password-file",
            password_file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{said}");
    let admin = [("NACRE_USERNAME", "nacos"), ("NACRE_PASSWORD", "cli-admin-pw")];
    let user_file = node.dir.path().join("ops.password");
    std::fs::write(&user_file, "ops-pw").unwrap();
    let (ok, said) =
        nacre(&["user", "add", "--server", &node.addr, "ops", "--password-file", user_file.to_str().unwrap()], &admin);
    assert!(ok && said.contains("create user ok!"), "{said}");
    let (ok, said) = nacre(&["user", "grant", "--server", &node.addr, "operators", "ops"], &admin);
    assert!(ok, "{said}");
    let (ok, said) = nacre(&["user", "list", "--server", &node.addr], &admin);
    assert!(ok && said.contains("ops\toperators") && said.contains("nacos\tROLE_ADMIN"), "{said}");
    // Without credentials the command is refused, and says so.
    let (ok, said) = nacre(&["user", "list", "--server", &node.addr], &[]);
    assert!(!ok && said.contains("403"), "{said}");
}

#[test]
fn the_client_port_speaks_tls_when_given_a_certificate_and_the_commands_check_it() {
    let dir = tempfile::tempdir().unwrap();
    let pem = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    // An operator's CA and the node's certificate from it, and another CA.
    let ca = |name: &str| {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap()
    };
    let (ours, theirs) = (ca("our CA"), ca("their CA"));
    let node_key = rcgen::KeyPair::generate().unwrap();
    let node_cert =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&node_key, &ours).unwrap();
    let (cert, key) = (pem("node.crt", node_cert.pem()), pem("node.key", node_key.serialize_pem()));
    let (trusted, other_ca) = (pem("ca.crt", ours.pem()), pem("other.crt", theirs.pem()));
    let password = pem("admin.password", "tls-admin-pw".into());
    let node = spawn_fresh(&["--tls-cert", &cert, "--tls-key", &key], dir);
    let server = format!("https://{}", node.addr);
    let token_file = node.dir.path().join("data/bootstrap-token");
    let nacre = |args: &[&str], ca: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_nacre"))
            .args(args)
            .env("NACRE_CA_FILE", ca)
            .env("NACRE_USERNAME", "nacos")
            .env("NACRE_PASSWORD", "tls-admin-pw")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let bootstrap = [
        "user",
        "bootstrap",
        "--server",
        &server,
        "--token-file",
        token_file.to_str().unwrap(),
        "--password-file",
        &password,
    ];
    wait_until("the administrator is created over TLS", || token_file.exists() && nacre(&bootstrap, &trusted).0);
    let (ok, said) = nacre(&["user", "list", "--server", &server], &trusted);
    assert!(ok && said.contains("nacos\tROLE_ADMIN"), "{said}");
    // A certificate the command does not trust is refused before any credential is sent.
    let (ok, said) = nacre(&["user", "list", "--server", &server], &other_ca);
    assert!(!ok && said.to_lowercase().contains("certificate"), "{said}");
    // Plain HTTP on the TLS port gets no answer.
    let plain = http::anonymous("GET", &node.addr, "/nacos/v1/console/health/readiness", &[], b"");
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status != 200), "plain HTTP answered");
    // The gRPC port speaks TLS with the same certificate: trusted, it serves; under another
    // CA, or in clear, it does not.
    let grpc_port: u16 = node.addr.rsplit(':').next().unwrap().parse::<u16>().unwrap() + GRPC_PORT_OFFSET;
    let grpc_addr = format!("127.0.0.1:{grpc_port}");
    let (trusted_pem, other_pem) = (std::fs::read(&trusted).unwrap(), std::fs::read(&other_ca).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let check = json!({});
        let mut client = GrpcClient::open_tls(&grpc_addr, None, &trusted_pem).await.unwrap();
        let answer = client.call("ServerCheckRequest", check.clone()).await.unwrap();
        assert_eq!(answer.kind, "ServerCheckResponse");
        let untrusted = async {
            GrpcClient::open_tls(&grpc_addr, None, &other_pem).await?.call("ServerCheckRequest", check.clone()).await
        };
        assert!(untrusted.await.is_err(), "a gRPC client trusting another CA got an answer");
        let in_clear =
            async { GrpcClient::open(&grpc_addr, None).await?.call("ServerCheckRequest", check.clone()).await };
        assert!(in_clear.await.is_err(), "the gRPC port answered in clear");
    });
    // A bad key file stops a node at start; it never falls back to plain HTTP.
    let broken = spawn_fresh(&["--tls-cert", &cert, "--tls-key", &cert], tempfile::tempdir().unwrap());
    let mut broken = broken;
    let status = broken.child.wait().unwrap();
    assert!(!status.success(), "a node with a bad key serves");
}
