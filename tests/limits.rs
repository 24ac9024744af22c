//! What one node holds for its clients (issue 17): connections within what its file-descriptor
//! limit allows, the longest-idle one closed to make room, so idle connections never starve
//! new clients; and a budget of request bodies in flight, past which a body is refused at once
//! instead of held. Single nodes started here under their own `ulimit`.

mod support;

use std::io::Read as _;
use std::io::Write as _;
use std::net::TcpStream;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use support::http;

/// Idle connections opened against a node whose limit is [`FD_LIMIT`] open files.
const IDLE_CONNECTIONS: usize = 1_100;
const FD_LIMIT: u64 = 1_024;
/// Fresh reads that must each be answered while the idle connections are held.
const READS: usize = 20;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A single node (no cluster.conf: it needs no shared secret), under `ulimit -n fd_limit` if
/// given.
struct Node {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(fd_limit: Option<u64>) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let (port, raft_port) = (support::cluster::free_port(), support::cluster::free_port());
    let limit = fd_limit.map(|n| format!("ulimit -Sn {n} && ulimit -Hn {n} && ")).unwrap_or_default();
    let script = format!("{limit}exec \"$0\" serve --port {port} --raft-port {raft_port} --data-dir \"$1\"");
    let log = std::fs::File::create(dir.path().join("node.log")).unwrap();
    let child = Command::new("sh")
        .args(["-c", &script, env!("CARGO_BIN_EXE_nacre")])
        .arg(dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let token = support::cluster::bootstrap_admin(&addr, &dir.path().join("data"), support::cluster::ADMIN_PASSWORD);
    http::remember_token(&addr, &token);
    let node = Node { child, addr, _dir: dir };
    support::cluster::wait_until("the node is ready", || {
        http::request("GET", &node.addr, "/nacos/v1/console/health/readiness", None, b"")
            .is_ok_and(|resp| resp.status == 200)
    });
    node
}

/// This test process opens more sockets than a default soft limit of 1024 allows.
fn raise_own_fd_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(limit.rlim_cur as usize > IDLE_CONNECTIONS + 256, "the test needs {} open files", IDLE_CONNECTIONS + 256);
}

#[test]
fn idle_connections_past_the_fd_limit_do_not_starve_new_clients() {
    raise_own_fd_limit();
    let node = start_node(Some(FD_LIMIT));
    let idle: Vec<TcpStream> = (0..IDLE_CONNECTIONS).map(|_| TcpStream::connect(&node.addr).unwrap()).collect();
    // Every one of them reached the node (accepted, or evicted and closed): none is left in
    // the backlog to starve what comes next.
    std::thread::sleep(Duration::from_millis(500));
    for read in 0..READS {
        let started = Instant::now();
        let resp = http::request("GET", &node.addr, "/nacos/v1/cs/configs?dataId=absent&group=g", None, b"")
            .unwrap_or_else(|e| panic!("read {read} failed with {IDLE_CONNECTIONS} idle connections held: {e}"));
        assert_eq!(resp.status, 404, "{}", resp.text());
        assert!(started.elapsed() < READ_TIMEOUT, "read {read} took {:?}", started.elapsed());
    }
    // The evicted ones were closed by the node: reading them ends at once.
    let mut closed = 0;
    for mut stream in idle {
        stream.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        let mut byte = [0u8; 1];
        if matches!(stream.read(&mut byte), Ok(0)) {
            closed += 1;
        }
    }
    assert!(closed > IDLE_CONNECTIONS / 2, "only {closed} idle connections were closed to make room");
}

#[test]
fn bodies_past_the_budget_are_refused_at_once_not_held() {
    let node = start_node(None);
    // Module uploads may be 32 MiB; the budget is four of them. Four uploads that declare
    // 30 MiB each and send nothing more hold 120 MiB of it.
    let token = http::token_for(&node.addr).unwrap();
    let declare_as = |stream: &mut TcpStream, auth: &str| {
        let head = format!(
            "POST /nacre/v1/modules HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/wasm\r\nContent-Length: {}\r\n\r\n",
            30 << 20
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(b"\0asm").unwrap();
    };
    let declare = |stream: &mut TcpStream| declare_as(stream, &format!("Authorization: Bearer {token}\r\n"));
    // A stranger's upload is refused from its head, its body never read nor counted.
    let mut stranger = TcpStream::connect(&node.addr).unwrap();
    stranger.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    declare_as(&mut stranger, "");
    let mut answer = vec![0u8; 512];
    let n = stranger.read(&mut answer).expect("a stranger's upload is answered at once");
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 403"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    let mut held: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(&node.addr).unwrap()).collect();
    for stream in &mut held {
        declare(stream);
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut fifth = TcpStream::connect(&node.addr).unwrap();
    fifth.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    declare(&mut fifth);
    let mut answer = vec![0u8; 512];
    let n = fifth.read(&mut answer).expect("the fifth upload is answered at once");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too many request bodies in flight"), "{answer}");
    // Ordinary requests keep working meanwhile, and after the held ones let go.
    let small = [("dataId", "small"), ("group", "g"), ("content", "v")];
    let publish = || {
        http::request(
            "POST",
            &node.addr,
            "/nacos/v1/cs/configs",
            Some("application/x-www-form-urlencoded"),
            http::form(&small).as_bytes(),
        )
    };
    assert_eq!(publish().unwrap().status, 200);
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(publish().unwrap().status, 200);
}
