"""Shared by the nacos-sdk-python scenarios: arguments, checks that stop at the first failure,
bounded waits, and clients configured the same way in every script.

A scenario is run as `python SCRIPT SERVERS [NAMESPACE]`:
  SERVERS    comma-separated `host:port` of the Nacre nodes (or env NACRE_SERVERS); the first
             is "node A" and the last "node C" when a scenario talks to nodes separately.
  NAMESPACE  namespace id (or env NACRE_NAMESPACE); empty or absent means the default one.
It prints each check as it goes, and exits 1 with `FAIL: ...` on the first failure. The client
writes snapshots and logs under the current directory (tests/clients.rs runs it in a temp dir).
"""

import os
import sys
import time
import traceback

import nacos

# Generous per-request timeout: the default 3 s makes a slow answer on a loaded 2-core test
# machine look like a dead node (the client then fails over and retries elsewhere).
REQUEST_TIMEOUT_S = 10
# Poll interval of the bounded waits below.
POLL_S = 0.1
# Longest a write made through one node may take to become visible through another.
REPLICATION_WAIT_S = 10

# Lines of the client's own log shown with a failure.
CLIENT_LOG_TAIL_LINES = 25

_START = time.monotonic()
_CLEANUPS = []
LOG_DIR = os.path.join(os.getcwd(), "nacos-client-logs")


def args():
    servers = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("NACRE_SERVERS", "")
    namespace = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("NACRE_NAMESPACE", "")
    if not servers:
        fail("usage: %s SERVERS [NAMESPACE] (SERVERS: host:port,host:port,...)" % sys.argv[0])
    return servers, servers.split(","), namespace


def unique(prefix):
    """A name no earlier run used, so scripts can be re-run against the same cluster."""
    return "%s-%d-%d" % (prefix, os.getpid(), int(time.time() * 1000) % 10_000_000)


def client(servers, namespace):
    # Credentials as a user configures them: the client logs in and sends its token.
    c = nacos.NacosClient(
        servers,
        namespace=namespace or None,
        logDir=LOG_DIR,
        username=os.environ.get("NACRE_USERNAME"),
        password=os.environ.get("NACRE_PASSWORD"),
    )
    c.set_options(default_timeout=REQUEST_TIMEOUT_S)
    return c


def step(message):
    print("[%6.2fs] %s" % (time.monotonic() - _START, message), flush=True)


def on_exit(fn):
    """Run `fn` before the script exits (stop the client's timers and helper processes)."""
    _CLEANUPS.append(fn)


def finish(code=0):
    for fn in reversed(_CLEANUPS):
        try:
            fn()
        except Exception:  # Cleanup is best effort; the verdict is already decided.
            pass
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: the client leaves non-daemon timer threads behind that would keep a plain
    # exit waiting forever.
    os._exit(code)


def fail(message):
    print("FAIL: %s" % message, flush=True)
    log = os.path.join(LOG_DIR, "nacos-client-python.log")
    if os.path.exists(log):
        with open(log, encoding="utf-8", errors="replace") as f:
            # Its log lines without the tracebacks the client logs with many of them.
            lines = [line for line in f if line[:4].isdigit()]
        print("--- last lines of the client's own log ---", file=sys.stderr)
        sys.stderr.writelines(lines[-CLIENT_LOG_TAIL_LINES:])
    finish(1)


def check(condition, message):
    if not condition:
        fail(message)


def check_eq(actual, expected, what):
    if actual != expected:
        fail("%s: expected %r, got %r" % (what, expected, actual))


def call(what, fn, *a, **kw):
    """Call a client method; an exception becomes a failure that names the call."""
    try:
        return fn(*a, **kw)
    except Exception as e:
        traceback.print_exc()
        fail("%s raised %s: %s" % (what, type(e).__name__, e))


def wait_until(what, fn, timeout_s=REPLICATION_WAIT_S):
    """Poll `fn` until it returns a truthy value (returned); fail after `timeout_s`.

    Exceptions from `fn` count as "not yet" (a node may still be catching up), and the last
    value or exception seen is part of the failure message."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        try:
            value = fn()
            if value:
                return value
            last = value
        except Exception as e:
            last = "%s: %s" % (type(e).__name__, e)
        if time.monotonic() >= deadline:
            fail("timed out after %ss waiting for %s (last seen: %r)" % (timeout_s, what, last))
        time.sleep(POLL_S)


def main(scenario):
    """Run `scenario()`; an unexpected exception is a failure too."""
    try:
        scenario()
    except SystemExit:
        raise
    except Exception as e:
        traceback.print_exc()
        fail("unexpected %s: %s" % (type(e).__name__, e))
    step("PASS")
    finish(0)
