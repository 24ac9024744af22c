"""nacos-sdk-python 3.2.0 naming over gRPC, across nodes: client X on node A registers, client Y on
node C subscribes and must be pushed every change: register_instance (ephemeral, cluster,
metadata), batch_register_instances, an HTTP v1 persistent instance, batch_deregister_instances,
deregister_instance, and the HTTP v1 delete of the persistent one. Also list_services, and a one-off
list_instances through node C by a client that has not subscribed (Y's own list_instances would
only read its pushed cache).

Usage: python naming.py SERVERS [NAMESPACE]   (see common.py)

How the client maps onto the protocol: register_instance sends InstanceRequest registerInstance,
batch_register_instances BatchInstanceRequest (the connection's whole set for the service),
batch_deregister_instances a BatchInstanceRequest of the instances it keeps, deregister_instance
InstanceRequest deregisterInstance (which drops the connection's instances of the service),
subscribe and list_instances SubscribeServiceRequest, list_services ServiceListRequest.
"""

from v2.nacos import (BatchRegisterInstanceParam, DeregisterInstanceParam, ListInstanceParam, ListServiceParam,
                      RegisterInstanceParam, SubscribeServiceParam)

from common import (PUSH_WAIT_S, args, call, check, check_eq, http, http_login, main, naming_client, step, unique,
                    wait_until)

GROUP = "DEFAULT_GROUP"
ONE = ("10.0.0.1", 8001)
TWO = ("10.0.0.2", 8002)
# Loopback, so that a health check the server may run on a persistent instance stays local.
PERSISTENT = ("127.0.0.21", 9001)
METADATA = {ONE: {"k": "v"}, TWO: {"k": "v2"}}
# ServiceListRequest page size: far more than the services a test cluster holds.
PAGE_SIZE = 100


def instance(svc, addr):
    return RegisterInstanceParam(service_name=svc, group_name=GROUP, ip=addr[0], port=addr[1], cluster_name="c1",
                                 metadata=METADATA[addr])


def by_addr(instances):
    return {(i.ip, i.port): i for i in instances}


async def scenario():
    servers, nodes, namespace = args()
    node_a, node_c = nodes[0], nodes[-1]
    step("servers %s, namespace %r" % (servers, namespace))
    svc = unique("grpc-svc")
    x = await naming_client(node_a, namespace, "x")
    y = await naming_client(node_c, namespace, "y", keep_empty=True)

    pushes = []  # what Y was told, as {(ip, port): Instance}, latest last

    async def on_push(instances):
        pushes.append(by_addr(instances))

    def latest():
        return pushes[-1] if pushes else {}

    def seen():
        return {addr: i.metadata for addr, i in latest().items()}

    async def pushed(addrs, what):
        await wait_until(lambda: set(latest()) == set(addrs), "Y pushed %s" % what, PUSH_WAIT_S, seen)
        for addr in addrs:
            if addr in METADATA:
                check_eq(latest()[addr].metadata, METADATA[addr], "metadata of %s:%s pushed to Y" % addr)

    step("Y subscribes to %s through %s" % (svc, node_c))
    await call("subscribe", y.subscribe(SubscribeServiceParam(service_name=svc, group_name=GROUP,
                                                              subscribe_callback=on_push)))

    step("X registers %s:%s through %s (ephemeral, cluster c1, metadata); Y is pushed it" % (ONE + (node_a,)))
    check(await call("register_instance", x.register_instance(instance(svc, ONE))) is True,
          "register_instance did not return True")
    await pushed([ONE], "ONE")
    one = latest()[ONE]
    check_eq(one.clusterName, "c1", "clusterName of ONE")
    check(one.ephemeral and one.healthy and one.enabled and one.weight == 1.0,
          "ONE should be ephemeral, healthy, enabled, weight 1.0: %s" % one)

    step("X batch-registers ONE and TWO; Y is pushed both")
    check(await call("batch_register_instances", x.batch_register_instances(BatchRegisterInstanceParam(
        service_name=svc, group_name=GROUP, instances=[instance(svc, ONE), instance(svc, TWO)]))) is True,
          "batch_register_instances did not return True")
    await pushed([ONE, TWO], "ONE and TWO")

    step("a client on %s that has not subscribed lists both (SubscribeServiceRequest answered by the node)" % node_c)
    z = await naming_client(node_c, namespace, "z")
    listed = await call("list_instances", z.list_instances(ListInstanceParam(
        service_name=svc, group_name=GROUP, subscribe=False, healthy_only=None)))
    check_eq(sorted(by_addr(listed)), sorted([ONE, TWO]), "instances listed through %s" % node_c)

    step("Y's list_services includes %s" % svc)
    services = await call("list_services", y.list_services(ListServiceParam(group_name=GROUP, page_size=PAGE_SIZE)))
    check(svc in services.services, "%s not among the services listed through %s: %r" % (svc, node_c, services))
    check(services.count >= len(services.services), "count %d < the %d services listed" % (
        services.count, len(services.services)))

    step("a persistent instance registered over HTTP v1 through %s is pushed to Y" % node_a)
    token = await http_login(node_a)
    v1_instance = {"serviceName": svc, "groupName": GROUP, "ip": PERSISTENT[0], "port": PERSISTENT[1],
                   "ephemeral": "false", **({"namespaceId": namespace} if namespace else {})}
    status, body = await http("POST", node_a, "/nacos/v1/ns/instance", v1_instance, token)
    check(status == 200 and body == "ok", "POST /nacos/v1/ns/instance answered %s: %s" % (status, body))
    await pushed([ONE, TWO, PERSISTENT], "ONE, TWO and the persistent instance")
    check(latest()[PERSISTENT].ephemeral is False, "the HTTP instance is pushed as ephemeral: %s" % latest()[PERSISTENT])

    step("X batch-deregisters TWO (a batch of ONE alone); Y is pushed ONE and the persistent one")
    check(await call("batch_deregister_instances", x.batch_deregister_instances(BatchRegisterInstanceParam(
        service_name=svc, group_name=GROUP, instances=[instance(svc, TWO)]))) is True,
          "batch_deregister_instances did not return True")
    await pushed([ONE, PERSISTENT], "ONE and the persistent instance")

    step("X deregisters ONE; Y is pushed the persistent instance alone")
    check(await call("deregister_instance", x.deregister_instance(DeregisterInstanceParam(
        service_name=svc, group_name=GROUP, ip=ONE[0], port=ONE[1], cluster_name="c1"))) is True,
          "deregister_instance did not return True")
    await pushed([PERSISTENT], "the persistent instance alone")

    step("HTTP v1 DELETE of the persistent instance through %s; Y is pushed an empty service" % node_a)
    status, body = await http("DELETE", node_a, "/nacos/v1/ns/instance", v1_instance, token)
    check(status == 200 and body == "ok", "DELETE /nacos/v1/ns/instance answered %s: %s" % (status, body))
    await pushed([], "no instances")


main(scenario)
