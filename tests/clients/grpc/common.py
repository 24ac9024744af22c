"""Shared by the gRPC client scenarios: arguments, checks that stop at the first failure, bounded
waits, the two gRPC clients configured the same way in every script, and a little HTTP v1.

The clients: nacos-sdk-python 3.2.0 (its asyncio package `v2.nacos`) and nacos-sdk-rust-binding-py
0.8.0 (the Rust SDK nacos-sdk 0.8 behind Python classes; only its Async* classes are used, as its
sync subscribe hung). Both are given the nodes' HTTP addresses: they log in over HTTP and connect
to gRPC on the HTTP port + 1000 themselves.

A scenario is run as `python SCRIPT SERVERS [NAMESPACE]`:
  SERVERS    comma-separated `host:port` (HTTP) of the Nacre nodes (or env NACRE_SERVERS); the
             first is "node A" and the last "node C" when a scenario talks to nodes separately.
  NAMESPACE  namespace id (or env NACRE_NAMESPACE); empty or absent means the default one.
Credentials come from env NACRE_USERNAME / NACRE_PASSWORD (none: auth is off). It prints each
check as it goes, `PASS` last, and exits 1 with `FAIL: ...` on the first failure. The clients
write logs and caches under the current directory (tests/clients.rs runs it in a temp dir).
"""

import asyncio
import glob
import inspect
import json
import logging
import os
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

import nacos_sdk_rust_binding_py as rust
from v2.nacos import ClientConfigBuilder, GRPCConfig, NacosConfigService, NacosNamingService

# Generous per-request timeout (gRPC and HTTP): the clients' default 3 s makes a slow answer on
# a loaded 2-core test machine look like a dead node.
REQUEST_TIMEOUT_S = 10
# Longest one client call may take: creating a Python client tries to connect 3 times, each
# bounded by the request timeout, before it gives up and reconnects in the background.
CALL_TIMEOUT_S = 40
# Poll interval of the bounded waits below.
POLL_S = 0.1
# Longest a write made through one node may take to become visible through another.
REPLICATION_WAIT_S = 10
# Longest from a change to a subscriber's or listener's callback on another node: the server
# delays naming pushes 500 ms, and the Python config client re-sends its listen request at
# least every 5 s.
PUSH_WAIT_S = 15

# Lines of each of the clients' own logs shown with a failure.
CLIENT_LOG_TAIL_LINES = 25

_START = time.monotonic()
LOG_DIR = os.path.join(os.getcwd(), "nacos-client-logs")
CACHE_DIR = os.path.join(os.getcwd(), "nacos-client-cache")
# The Rust SDK logs to $HOME/logs/nacos, and rust_client() points HOME at the current directory.
RUST_LOG_DIR = os.path.join(os.getcwd(), "logs", "nacos")
USERNAME = os.environ.get("NACRE_USERNAME")
PASSWORD = os.environ.get("NACRE_PASSWORD")


def args():
    servers = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("NACRE_SERVERS", "")
    namespace = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("NACRE_NAMESPACE", "")
    if not servers:
        fail("usage: %s SERVERS [NAMESPACE] (SERVERS: host:port,host:port,...)" % sys.argv[0])
    return servers, servers.split(","), namespace


def unique(prefix):
    """A name no earlier run used, so scripts can be re-run against the same cluster."""
    return "%s-%d-%d" % (prefix, os.getpid(), int(time.time() * 1000) % 10_000_000)


def step(message):
    print("[%6.2fs] %s" % (time.monotonic() - _START, message), flush=True)


def finish(code=0):
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: the clients' background tasks and threads (gRPC, the Rust runtime) would keep a
    # plain exit waiting; the server sees the connections close either way.
    os._exit(code)


def fail(message):
    print("FAIL: %s" % message, flush=True)
    logs = [os.path.join(LOG_DIR, name) for name in ("naming.log", "config.log")]
    logs += sorted(glob.glob(os.path.join(RUST_LOG_DIR, "nacos-common.log*")))[-1:]
    for path in filter(os.path.exists, logs):
        with open(path, encoding="utf-8", errors="replace") as f:
            # Its log lines without the tracebacks and continuation lines logged with some of them.
            lines = [line for line in f if line[:4].isdigit()]
        print("--- last lines of the client's own log %s ---" % os.path.relpath(path), file=sys.stderr)
        sys.stderr.writelines(lines[-CLIENT_LOG_TAIL_LINES:])
    finish(1)


def check(condition, message):
    if not condition:
        fail(message)


def check_eq(actual, expected, what):
    if actual != expected:
        fail("%s: expected %r, got %r" % (what, expected, actual))


async def call(what, awaitable, timeout_s=CALL_TIMEOUT_S):
    """Await a client call; an exception or overrunning `timeout_s` is a failure naming the call."""
    try:
        return await asyncio.wait_for(awaitable, timeout_s)
    except Exception as e:
        traceback.print_exc()
        fail("%s raised %s: %s" % (what, type(e).__name__, e))


async def wait_until(predicate, what, timeout_s=REPLICATION_WAIT_S, seen=None):
    """Poll `predicate` (plain or async) until it returns a truthy value (returned); fail after
    `timeout_s`.

    Exceptions from `predicate` count as "not yet" (a node may still be catching up). The failure
    message shows `seen()` if given, else the last value or exception the predicate produced."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await asyncio.wait_for(value, max(deadline - time.monotonic(), POLL_S))
            if value:
                return value
            last = value
        except Exception as e:
            last = "%s: %s" % (type(e).__name__, e)
        if time.monotonic() >= deadline:
            fail("timed out after %ss waiting for %s (last seen: %r)" % (timeout_s, what, seen() if seen else last))
        await asyncio.sleep(POLL_S)


async def wait_content(read, content, what):
    """Poll the async function `read` until it returns `content`; the failure shows the last read."""
    last = []

    async def matches():
        last.append(await read())
        return last[-1] == content

    await wait_until(matches, what, seen=lambda: last[-1] if last else None)


def _python_config(servers, namespace, name):
    # Each client its own cache dir: the config client computes its listen md5 from its cache.
    return (ClientConfigBuilder()
            .server_address(servers)
            .namespace_id(namespace)
            .username(USERNAME)
            .password(PASSWORD)
            .timeout_ms(REQUEST_TIMEOUT_S * 1000)
            .grpc_config(GRPCConfig(grpc_timeout=REQUEST_TIMEOUT_S * 1000))
            .log_dir(LOG_DIR)
            .cache_dir(os.path.join(CACHE_DIR, name))
            .load_cache_at_start(False)
            .build())


def _one_handler_per_log(module):
    """Every Python client adds a file handler to its module's shared logger ("naming" or
    "config"), which would write each line once per client: keep one handler per file."""
    logger, files = logging.getLogger(module), set()
    for handler in list(logger.handlers):
        if handler.baseFilename in files:
            logger.removeHandler(handler)
            handler.close()
        files.add(handler.baseFilename)


async def naming_client(servers, namespace, name, keep_empty=False):
    """A nacos-sdk-python NacosNamingService on `servers`, once its gRPC connection is up.

    keep_empty: apply (and report to subscribers) a service with no instances; the client's
    default is to ignore such a push."""
    config = _python_config(servers, namespace, name)
    config.set_update_cache_when_empty(keep_empty)
    client = await call("NacosNamingService.create_naming_service(%s)" % servers,
                        NacosNamingService.create_naming_service(config))
    _one_handler_per_log("naming")
    await wait_until(client.server_health, "the naming client's gRPC connection to %s (HTTP port + 1000)" % servers)
    return client


async def config_client(servers, namespace, name):
    """A nacos-sdk-python NacosConfigService on `servers`, once its gRPC connection is up."""
    client = await call("NacosConfigService.create_config_service(%s)" % servers,
                        NacosConfigService.create_config_service(_python_config(servers, namespace, name)))
    _one_handler_per_log("config")
    await wait_until(client.server_health, "the config client's gRPC connection to %s (HTTP port + 1000)" % servers)
    return client


def rust_client(cls, servers, namespace, **options):
    """An nacos-sdk-rust-binding-py AsyncNacosNamingClient or AsyncNacosConfigClient on `servers`.
    The constructor connects (blocking). The Rust SDK keeps its cache under $HOME/nacos and its
    logs under $HOME/logs/nacos, so HOME is pointed at the current directory first."""
    os.environ["HOME"] = os.getcwd()
    try:
        return cls(rust.ClientOptions(servers, namespace, app_name="nacre-test", username=USERNAME,
                                      password=PASSWORD, **options))
    except Exception as e:
        fail("%s(%s) raised %s: %s" % (cls.__name__, servers, type(e).__name__, e))


def _http(method, server, path, params, form, headers):
    url = "http://%s%s?%s" % (server, path, urllib.parse.urlencode(params))
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


async def http(method, server, path, params, token, form=None, headers=None):
    """One HTTP v1 call (off the event loop): (status, body). `token` from http_login, or None."""
    if token:
        params = dict(params, accessToken=token)
    return await call("%s %s on %s" % (method, path, server),
                      asyncio.to_thread(_http, method, server, path, params, form, headers))


async def http_login(server):
    """POST /nacos/v1/auth/users/login: the access token, or None when no credentials are set."""
    if not USERNAME:
        return None
    status, body = await http("POST", server, "/nacos/v1/auth/users/login", {}, None,
                              form={"username": USERNAME, "password": PASSWORD})
    check(status == 200, "HTTP login on %s answered %s: %s" % (server, status, body))
    return json.loads(body)["accessToken"]


def main(scenario):
    """Run the coroutine function `scenario`; an unexpected exception is a failure too."""

    async def run():
        try:
            await scenario()
        except Exception as e:
            traceback.print_exc()
            fail("unexpected %s: %s" % (type(e).__name__, e))
        step("PASS")
        finish(0)

    asyncio.run(run())
