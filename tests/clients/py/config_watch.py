"""nacos-sdk-python add_config_watcher (long-poll POST /nacos/v1/cs/configs/listener): a
watcher on a client pointed at node C is called after a publish through a client pointed at
node A (bounded wait), again after a second publish (the poll re-arms), and with content None
after remove_config.

Usage: python config_watch.py SERVERS [NAMESPACE]   (see common.py)
"""

import queue
import time

from common import args, call, check, check_eq, client, fail, main, on_exit, step, unique, wait_until

GROUP = "NACRE_CLIENT_TEST"
# Longest from a publish (or remove) to the watcher's callback. The server must answer a held
# long-poll as soon as a watched key changes; the client adds a 1 s sleep before each poll.
NOTIFY_WAIT_S = 10
# How long the watcher is left alone before the first change, so that its first long-poll is
# being held by the server (rather than answered because the change came first).
SETTLE_S = 2.5


def expect_event(events, content, what):
    deadline = time.monotonic() + NOTIFY_WAIT_S
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            fail("the watcher was not called within %ss after %s (the server must answer the held "
                 "long-poll on POST /nacos/v1/cs/configs/listener as soon as the key changes)" % (NOTIFY_WAIT_S, what))
        try:
            event = events.get(timeout=remaining)
        except queue.Empty:
            continue
        if event.get("content") == content:
            return event
        step("  (watcher called with %r, still waiting for %r)" % (event.get("content"), content))


def scenario():
    servers, nodes, namespace = args()
    step("servers %s, namespace %r" % (servers, namespace))
    node_a, node_c = client(nodes[0], namespace), client(nodes[-1], namespace)
    data_id = unique("py-watch")
    first, second, third = "v1 first", "v2 é中文 with spaces", "v3\nmulti\nline\n"

    check(call("publish_config", node_a.publish_config, data_id, GROUP, first) is True, "publish_config v1")
    wait_until("v1 readable through %s" % nodes[-1],
               lambda: node_c.get_config(data_id, GROUP, no_snapshot=True) == first)

    events = queue.Queue()

    def watcher(params):
        events.put(params)

    step("add_config_watcher(%s) on a client pointed at %s" % (data_id, nodes[-1]))
    call("add_config_watcher", node_c.add_config_watcher, data_id, GROUP, watcher)
    on_exit(lambda: node_c.process_mgr.shutdown())
    on_exit(lambda: node_c.remove_config_watcher(data_id, GROUP, watcher, remove_all=True))
    time.sleep(SETTLE_S)
    check(events.empty(), "the watcher was called before any change: %r" % (events.queue and events.queue[0]))

    for content in (second, third):
        step("publish %r through %s; the watcher must see it within %ss" % (content, nodes[0], NOTIFY_WAIT_S))
        published_at = time.monotonic()
        check(call("publish_config", node_a.publish_config, data_id, GROUP, content) is True, "publish_config")
        event = expect_event(events, content, "a publish through %s" % nodes[0])
        step("  notified after %.2fs" % (time.monotonic() - published_at))
        check_eq(event.get("data_id"), data_id, "watcher params data_id")
        check_eq(event.get("group"), GROUP, "watcher params group")
        check_eq(event.get("namespace"), namespace, "watcher params namespace")

    step("remove_config through %s; the watcher must be called with content None" % nodes[0])
    removed_at = time.monotonic()
    check(call("remove_config", node_a.remove_config, data_id, GROUP) is True, "remove_config")
    expect_event(events, None, "remove_config through %s" % nodes[0])
    step("  notified after %.2fs" % (time.monotonic() - removed_at))


main(scenario)
