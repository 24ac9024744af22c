"""nacos-sdk-rust-binding-py 0.8.0 (nacos-sdk 0.8) naming over gRPC, across nodes, in short: client X
on node A registers, client Y on node C subscribes and must be pushed every change:
register_instance (cluster, metadata), batch_register_instance twice (the second replaces the
first), deregister_instance down to an empty service. Also a one-off get_all_instances through node
C without subscribing (ServiceQueryRequest).

Usage: python rust_naming.py SERVERS [NAMESPACE]   (see common.py)

The Rust SDK calls Y's listener on a thread of its own, each push as a task of its own; so the
checks look for a matching push among those since the change rather than at the last one only.
"""

from nacos_sdk_rust_binding_py import AsyncNacosNamingClient, NacosServiceInstance

from common import PUSH_WAIT_S, args, call, check, check_eq, main, rust_client, step, unique, wait_until

GROUP = "DEFAULT_GROUP"
ONE = ("10.0.0.11", 8011)
TWO = ("10.0.0.12", 8012)


def instance(addr):
    return NacosServiceInstance(addr[0], addr[1], cluster_name="c1", metadata={"k": addr[0]})


async def scenario():
    servers, nodes, namespace = args()
    node_a, node_c = nodes[0], nodes[-1]
    step("servers %s, namespace %r" % (servers, namespace))
    svc = unique("rust-svc")
    x = rust_client(AsyncNacosNamingClient, node_a, namespace)
    # Without push-empty protection, so that Y reports the service going empty.
    y = rust_client(AsyncNacosNamingClient, node_c, namespace, naming_push_empty_protection=False)

    pushes = []  # what Y was told, as {(ip, port): instance}

    def on_push(instances):
        pushes.append({(i.ip, i.port): i for i in instances})

    async def change(what, awaitable, expected):
        """Make a change through X, then wait for Y to be pushed exactly `expected`."""
        since = len(pushes)
        await call(what, awaitable)
        matches = await wait_until(lambda: [p for p in pushes[since:] if set(p) == set(expected)],
                                   "Y pushed %s after %s" % (sorted(expected), what), PUSH_WAIT_S,
                                   seen=lambda: [sorted(p) for p in pushes[since:]])
        return matches[-1]

    step("Y subscribes to %s through %s" % (svc, node_c))
    await call("subscribe", y.subscribe(svc, GROUP, None, on_push))

    step("X registers %s:%s through %s (cluster c1, metadata); Y is pushed it" % (ONE + (node_a,)))
    one = (await change("register_instance", x.register_instance(svc, GROUP, instance(ONE)), [ONE]))[ONE]
    check_eq(one.metadata, {"k": ONE[0]}, "metadata of ONE")
    check_eq(one.cluster_name, "c1", "cluster_name of ONE")
    check(one.ephemeral and one.healthy and one.enabled, "ONE should be ephemeral, healthy, enabled: %r" % (
        (one.ephemeral, one.healthy, one.enabled),))

    step("get_all_instances through %s without subscribing sees it" % node_c)
    listed = await call("get_all_instances", y.get_all_instances(svc, GROUP, subscribe=False))
    check_eq(sorted((i.ip, i.port) for i in listed), [ONE], "instances queried through %s" % node_c)

    step("X batch-registers ONE and TWO, then TWO alone; Y is pushed each set")
    await change("batch_register_instance", x.batch_register_instance(svc, GROUP, [instance(ONE), instance(TWO)]),
                 [ONE, TWO])
    await change("batch_register_instance", x.batch_register_instance(svc, GROUP, [instance(TWO)]), [TWO])

    step("X deregisters TWO; Y is pushed an empty service")
    await change("deregister_instance", x.deregister_instance(svc, GROUP, instance(TWO)), [])


main(scenario)
