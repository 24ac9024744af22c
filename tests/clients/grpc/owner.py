"""A nacos-sdk-python 3.2.0 naming client that owns ephemeral instances until it dies: registers COUNT
instances of SERVICE in one batch (BatchInstanceRequest), prints a line `REGISTERED`, then sleeps
forever. The caller kills it and checks that the instances go with its connection.

Usage: python owner.py SERVERS NAMESPACE SERVICE [COUNT]   (COUNT default 3; NAMESPACE may be "")

The client is given exactly SERVERS:
* one address: that node owns the connection (SIGKILL the script, and every node must drop the
  instances once the TCP connection closes);
* several: the client connects to one of them at random (printed before `REGISTERED`, as an HTTP
  address). When that node dies the client reconnects to another and its redo re-registers the
  batch there, with no code here. Its redo task runs every 30 s, not on reconnect: allow up to
  30 s plus the reconnect before the instances reappear.
Instances are 10.0.1.1:7001, 10.0.1.2:7002, ... in cluster DEFAULT of DEFAULT_GROUP.
"""

import asyncio
import sys

from v2.nacos import BatchRegisterInstanceParam, RegisterInstanceParam

from common import args, call, check, fail, main, naming_client, step

GROUP = "DEFAULT_GROUP"
GRPC_PORT_OFFSET = 1000


async def scenario():
    servers, _, namespace = args()
    if len(sys.argv) < 4:
        fail("usage: %s SERVERS NAMESPACE SERVICE [COUNT]" % sys.argv[0])
    service = sys.argv[3]
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    client = await naming_client(servers, namespace, "owner")
    server = client.grpc_client_proxy.rpc_client.get_current_server()
    step("connected to %s:%d" % (server.server_ip, server.server_port - GRPC_PORT_OFFSET))

    instances = [RegisterInstanceParam(service_name=service, group_name=GROUP, ip="10.0.1.%d" % n, port=7000 + n)
                 for n in range(1, count + 1)]
    check(await call("batch_register_instances", client.batch_register_instances(BatchRegisterInstanceParam(
        service_name=service, group_name=GROUP, instances=instances))) is True,
          "batch_register_instances did not return True")
    step("registered %d instances of %s" % (count, service))
    print("REGISTERED", flush=True)
    await asyncio.Event().wait()  # never set: main() never gets to print PASS


main(scenario)
