"""nacos-sdk-python naming: add_naming_instance (ephemeral, metadata, with and without a cluster
name), list_naming_instance (hosts, healthyOnly), get_naming_instance, send_heartbeat,
modify_naming_instance, subscribe (ADDED, MODIFIED, DELETED), remove_naming_instance, a
persistent instance; registered through node A, seen through node C.

Usage: python naming.py SERVERS [NAMESPACE]   (see common.py)

Instance addresses are loopback (127.0.0.x) so that nothing a server might do with them (a
health check, say) ever leaves the machine. The script finishes well inside the 15 s after
which Nacos marks an ephemeral instance without heartbeats unhealthy.
"""

import threading

from nacos.listener import SubscribeListener

from common import args, call, check, check_eq, client, main, on_exit, step, unique, wait_until

GROUP = "DEFAULT_GROUP"
# subscribe() polls list_naming_instance every this many seconds (the client's default is 7).
SUBSCRIBE_INTERVAL_S = 1
# Longest from a change to the subscriber's event: a few polls plus replication.
SUBSCRIBE_WAIT_S = 10

ONE = ("127.0.0.11", 8001)  # cluster "c1", metadata
TWO = ("127.0.0.12", 8002)  # no cluster name: the client sends clusterName=None
SICK = ("127.0.0.13", 8003)  # registered with healthy=False
PERSISTENT = ("127.0.0.21", 9001)


def hosts_of(result):
    return {(h.get("ip"), int(h.get("port", 0))): h for h in (result or {}).get("hosts") or []}


class Events:
    """What the subscriber saw, as (event, ip, port, instance) in order."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seen = []

    def listener(self, event, slc):
        with self.lock:
            self.seen.append((event, slc.instance.get("ip"), int(slc.instance.get("port", 0)), slc.instance))

    def wait_for(self, kinds, addr, what, instance_ok=lambda instance: True):
        def found():
            with self.lock:
                return next((e for e in self.seen if e[0] in kinds and (e[1], e[2]) == addr and instance_ok(e[3])),
                            None)

        return wait_until(what, found, SUBSCRIBE_WAIT_S)


def scenario():
    servers, nodes, namespace = args()
    step("servers %s, namespace %r" % (servers, namespace))
    node_a, node_c = client(nodes[0], namespace), client(nodes[-1], namespace)
    svc = unique("py-svc")

    events = Events()
    step("subscribe to %s through %s (poll every %ss) before anything is registered"
         % (svc, nodes[-1], SUBSCRIBE_INTERVAL_S))
    # The client's first poll runs inside subscribe() and never notifies; subscribing to an
    # empty service first makes every later instance an ADDED event.
    call("subscribe", node_c.subscribe, SubscribeListener(events.listener, "nacre-test"),
         SUBSCRIBE_INTERVAL_S, service_name=svc)
    on_exit(node_c.stop_subscribe)

    step("add_naming_instance x3 through %s (ephemeral; metadata; cluster c1 / no cluster / healthy=False)"
         % nodes[0])
    check(call("add_naming_instance", node_a.add_naming_instance, svc, ONE[0], ONE[1], cluster_name="c1",
               metadata={"zone": "z1", "note": "é中文 spaces"}) is True,
          "add_naming_instance(ONE) did not return True (the server must answer exactly 'ok')")
    check(call("add_naming_instance", node_a.add_naming_instance, svc, TWO[0], TWO[1]) is True,
          "add_naming_instance(TWO) did not return True")
    check(call("add_naming_instance", node_a.add_naming_instance, svc, SICK[0], SICK[1], cluster_name="c1",
               healthy=False) is True, "add_naming_instance(SICK) did not return True")

    step("list_naming_instance through %s: the three hosts and their fields" % nodes[0])
    listed = hosts_of(call("list_naming_instance", node_a.list_naming_instance, svc))
    check_eq(sorted(listed), sorted([ONE, TWO, SICK]), "hosts listed through the node registered with")
    one, two = listed[ONE], listed[TWO]
    check_eq(one.get("metadata"), {"zone": "z1", "note": "é中文 spaces"}, "metadata of ONE")
    check_eq(float(one.get("weight", -1)), 1.0, "weight of ONE")
    check(one.get("healthy") is True, "ONE should be healthy: %r" % one)
    check(one.get("enabled", True) is True, "ONE should be enabled: %r" % one)
    check(one.get("instanceId"), "ONE has no instanceId (subscribe() needs it): %r" % one)
    check_eq(one.get("clusterName"), "c1", "clusterName of ONE")
    # The client sends clusterName=None for an instance without a cluster; real Nacos files it
    # under a cluster literally named "None".
    check_eq(two.get("clusterName"), "None", "clusterName of TWO (registered without a cluster name)")
    check(listed[SICK].get("healthy") is False,
          "SICK was registered with healthy=False and has sent no heartbeat; listed: %r" % listed[SICK])

    step("list_naming_instance through %s (another node) sees the same hosts" % nodes[-1])
    wait_until("the three instances listed through %s" % nodes[-1],
               lambda: sorted(hosts_of(node_c.list_naming_instance(svc))) == sorted([ONE, TWO, SICK]))

    step("list_naming_instance(healthy_only=True) leaves out SICK")
    healthy = hosts_of(call("list_naming_instance", node_c.list_naming_instance, svc, healthy_only=True))
    check_eq(sorted(healthy), sorted([ONE, TWO]), "hosts with healthyOnly=True")

    step("get_naming_instance(ONE, cluster c1)")
    got = call("get_naming_instance", node_c.get_naming_instance, svc, ONE[0], ONE[1], cluster_name="c1")
    check_eq((got.get("ip"), int(got.get("port", 0))), ONE, "get_naming_instance ip/port")
    check_eq(got.get("metadata"), {"zone": "z1", "note": "é中文 spaces"}, "get_naming_instance metadata")

    step("subscriber saw ADDED for the instances")
    events.wait_for(("ADDED",), ONE, "the subscriber's ADDED event for ONE")
    events.wait_for(("ADDED",), TWO, "the subscriber's ADDED event for TWO")

    step("send_heartbeat(ONE) through %s: the reply carries clientBeatInterval" % nodes[-1])
    beat = call("send_heartbeat", node_c.send_heartbeat, svc, ONE[0], ONE[1], cluster_name="c1",
                metadata={"zone": "z1", "note": "é中文 spaces"})
    check(isinstance(beat, dict) and int(beat.get("clientBeatInterval", 0)) > 0,
          "send_heartbeat reply has no positive clientBeatInterval: %r" % (beat,))

    step("modify_naming_instance(ONE): weight 2.0, new metadata; visible through %s" % nodes[-1])
    check(call("modify_naming_instance", node_a.modify_naming_instance, svc, ONE[0], ONE[1], cluster_name="c1",
               weight=2.0, metadata={"zone": "z2"}) is True, "modify_naming_instance did not return True")

    def modified():
        h = hosts_of(node_c.list_naming_instance(svc)).get(ONE) or {}
        return float(h.get("weight", 0)) == 2.0 and h.get("metadata") == {"zone": "z2"}

    wait_until("weight 2.0 and metadata {'zone': 'z2'} listed through %s" % nodes[-1], modified)
    events.wait_for(("MODIFIED",), ONE, "the subscriber's MODIFIED event for ONE with weight 2.0",
                    lambda instance: float(instance.get("weight", 0)) == 2.0)

    step("remove_naming_instance(ONE) through %s: gone everywhere, subscriber sees DELETED" % nodes[0])
    check(call("remove_naming_instance", node_a.remove_naming_instance, svc, ONE[0], ONE[1],
               cluster_name="c1") is True, "remove_naming_instance did not return True")
    check(ONE not in hosts_of(call("list_naming_instance", node_a.list_naming_instance, svc)),
          "ONE still listed through the node that removed it")
    wait_until("ONE gone through %s" % nodes[-1], lambda: ONE not in hosts_of(node_c.list_naming_instance(svc)))
    events.wait_for(("DELETED",), ONE, "the subscriber's DELETED event for ONE")

    if namespace:
        step("namespace isolation: the service is empty when listed without a namespace")
        outside = hosts_of(call("list_naming_instance", client(servers, "").list_naming_instance, svc))
        check_eq(sorted(outside), [], "hosts of %s listed outside namespace %r" % (svc, namespace))

    persistent_svc = svc + "-persistent"
    step("a persistent instance (ephemeral=False) in %s: registered, listed, removed" % persistent_svc)
    check(call("add_naming_instance", node_a.add_naming_instance, persistent_svc, PERSISTENT[0], PERSISTENT[1],
               cluster_name="c1", ephemeral=False) is True, "add_naming_instance(ephemeral=False)")
    listed = wait_until("the persistent instance listed through %s" % nodes[-1],
                        lambda: hosts_of(node_c.list_naming_instance(persistent_svc)).get(PERSISTENT))
    if "ephemeral" in listed:
        check(listed["ephemeral"] is False, "the persistent instance is listed as ephemeral: %r" % listed)
    check(call("remove_naming_instance", node_a.remove_naming_instance, persistent_svc, PERSISTENT[0],
               PERSISTENT[1], cluster_name="c1", ephemeral=False) is True, "remove_naming_instance(ephemeral=False)")
    wait_until("the persistent instance gone through %s" % nodes[-1],
               lambda: PERSISTENT not in hosts_of(node_c.list_naming_instance(persistent_svc)))


main(scenario)
