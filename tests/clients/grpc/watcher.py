"""A nacos-sdk-python 3.2.0 client that watches until it dies: it subscribes to SERVICE
(SubscribeServiceRequest) and listens to the config DATA_ID of DEFAULT_GROUP (add_listener: the
client's background task sends the ConfigBatchListenRequest), prints a line `WATCHING`, then
sleeps forever. The console test finds it among a service's subscribers and a config's
listeners, asked through any node.

Usage: python watcher.py SERVERS NAMESPACE SERVICE DATA_ID   (NAMESPACE may be "")
"""

import asyncio
import sys

from v2.nacos import SubscribeServiceParam

from common import args, call, config_client, fail, main, naming_client, step

GROUP = "DEFAULT_GROUP"


async def scenario():
    servers, _, namespace = args()
    if len(sys.argv) < 5:
        fail("usage: %s SERVERS NAMESPACE SERVICE DATA_ID" % sys.argv[0])
    service, data_id = sys.argv[3], sys.argv[4]

    async def on_push(_instances):
        pass

    async def on_change(_tenant, _group, _data_id, _content):
        pass

    naming = await naming_client(servers, namespace, "watcher")
    await call("subscribe", naming.subscribe(SubscribeServiceParam(service_name=service, group_name=GROUP,
                                                                   subscribe_callback=on_push)))
    config = await config_client(servers, namespace, "watcher")
    await call("add_listener", config.add_listener(data_id, GROUP, on_change))
    step("subscribed to %s and listening to %s" % (service, data_id))
    print("WATCHING", flush=True)
    await asyncio.Event().wait()  # never set: main() never gets to print PASS


main(scenario)
