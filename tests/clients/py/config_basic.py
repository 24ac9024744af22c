"""nacos-sdk-python config basics: publish_config -> get_config (same node at once, other nodes
within a bounded wait), overwrite, remove_config -> get_config returns None, awkward content
(non-ASCII, spaces, form-encoding metacharacters, newlines), namespace isolation.

Usage: python config_basic.py SERVERS [NAMESPACE]   (see common.py)
"""

from common import args, call, check, check_eq, client, main, step, unique, wait_until

GROUP = "NACRE_CLIENT_TEST"

CONTENTS = {
    "plain": "hello nacre",
    "unicode": "é中文 with  two spaces and a trailing one ",
    # urlencode turns ' ' into '+' and escapes these: the server must form-decode properly.
    "symbols": "a+b=c&d%20e;f?g#h 100% \"quoted\" 'single'",
    "multiline": "line one\nline two: é中文\n\n\tindented after a blank line\nends with a newline\n",
}


def scenario():
    servers, nodes, namespace = args()
    step("servers %s, namespace %r" % (servers, namespace))
    node_a, node_c = client(nodes[0], namespace), client(nodes[-1], namespace)
    any_node = client(servers, namespace)
    run = unique("py-basic")

    for name, content in CONTENTS.items():
        data_id = "%s.%s" % (run, name)
        step("publish_config %s through %s (%d chars)" % (data_id, nodes[0], len(content)))
        check(call("publish_config", node_a.publish_config, data_id, GROUP, content) is True,
              "publish_config(%s) did not return True (the server must answer exactly 'true')" % data_id)
        # Read-your-write on the node that took the write.
        got = call("get_config", node_a.get_config, data_id, GROUP, no_snapshot=True)
        check_eq(got, content, "get_config(%s) through the node written to" % data_id)
        step("get_config %s through %s and through the client given every node" % (data_id, nodes[-1]))
        wait_until("%s readable through %s" % (data_id, nodes[-1]),
                   lambda: node_c.get_config(data_id, GROUP, no_snapshot=True) == content)
        wait_until("%s readable through the client given every node" % data_id,
                   lambda: any_node.get_config(data_id, GROUP, no_snapshot=True) == content)

    data_id = "%s.plain" % run
    step("overwrite %s through %s, read the new content through %s" % (data_id, nodes[-1], nodes[0]))
    check(call("publish_config", node_c.publish_config, data_id, GROUP, "second version") is True,
          "publish_config (overwrite) did not return True")
    wait_until("the new content through %s" % nodes[0],
               lambda: node_a.get_config(data_id, GROUP, no_snapshot=True) == "second version")

    step("get_config of a dataId never published returns None (the server answers 404)")
    check_eq(call("get_config", node_a.get_config, run + ".never", GROUP, no_snapshot=True), None,
             "get_config of a missing config")

    if namespace:
        step("namespace isolation: the client without a namespace does not see %s" % data_id)
        default_ns = client(servers, "")
        check_eq(call("get_config", default_ns.get_config, data_id, GROUP, no_snapshot=True), None,
                 "get_config of a config published in namespace %r, asked without a namespace" % namespace)

    for name in CONTENTS:
        data_id = "%s.%s" % (run, name)
        step("remove_config %s through %s" % (data_id, nodes[-1]))
        check(call("remove_config", node_c.remove_config, data_id, GROUP) is True,
              "remove_config(%s) did not return True" % data_id)
        check_eq(call("get_config", node_c.get_config, data_id, GROUP, no_snapshot=True), None,
                 "get_config(%s) right after remove_config through the same node" % data_id)
        wait_until("%s gone through %s" % (data_id, nodes[0]),
                   lambda: node_a.get_config(data_id, GROUP, no_snapshot=True) is None)

    step("remove_config of a config that does not exist still returns True (as Nacos)")
    check(call("remove_config", node_a.remove_config, run + ".never", GROUP) is True,
          "remove_config of a missing config did not return True")


main(scenario)
