"""nacos-sdk-rust-binding-py 0.8.0 (nacos-sdk 0.8) config over gRPC, across nodes, in short:
publish_config through node A and get_config through node C; a listener (add_listener) on C called
for a gRPC publish through A and for an HTTP v1 publish through A; remove_config, after which
get_config fails with ConfigNotFound.

Usage: python rust_config.py SERVERS [NAMESPACE]   (see common.py)

The Rust SDK calls the listener on a thread of its own, with a NacosConfigResponse.
"""

from nacos_sdk_rust_binding_py import AsyncNacosConfigClient

from common import (PUSH_WAIT_S, args, call, check, http, http_login, main, rust_client, step, unique,
                    wait_content, wait_until)

GROUP = "NACRE_GRPC_TEST"
V1, V2, V3 = "rust v1", "rust v2 é中文", "rust v3 via HTTP v1"


async def scenario():
    servers, nodes, namespace = args()
    node_a, node_c = nodes[0], nodes[-1]
    step("servers %s, namespace %r" % (servers, namespace))
    data_id = unique("rust-cfg")
    a = rust_client(AsyncNacosConfigClient, node_a, namespace)
    c = rust_client(AsyncNacosConfigClient, node_c, namespace)

    step("A publishes %r through %s; C gets it through %s" % (V1, node_a, node_c))
    check(await call("publish_config", a.publish_config(data_id, GROUP, V1)) is True,
          "publish_config did not return True")

    await wait_content(lambda: c.get_config(data_id, GROUP), V1, "%r from get_config through %s" % (V1, node_c))

    changes = []  # the contents C's listener was called with

    def on_change(response):
        changes.append(response.content)

    async def notified(content, what):
        await wait_until(lambda: content in changes, "C's listener called with %r after %s" % (content, what),
                         PUSH_WAIT_S, seen=lambda: changes)

    step("C adds a listener; A publishes %r; the listener sees it" % V2)
    await call("add_listener", c.add_listener(data_id, GROUP, on_change))
    check(await call("publish_config", a.publish_config(data_id, GROUP, V2)) is True,
          "publish_config did not return True")
    await notified(V2, "a gRPC publish through %s" % node_a)

    step("an HTTP v1 publish of %r through %s is pushed to C's listener" % (V3, node_a))
    token = await http_login(node_a)
    form = {"dataId": data_id, "group": GROUP, "content": V3, **({"tenant": namespace} if namespace else {})}
    status, body = await http("POST", node_a, "/nacos/v1/cs/configs", {}, token, form=form)
    check(status == 200 and body == "true", "POST /nacos/v1/cs/configs answered %s: %s" % (status, body))
    await notified(V3, "an HTTP v1 publish through %s" % node_a)

    # Not through C: once it listens to a key, its get_config answers from the listener's cache,
    # which keeps the last content when the key is removed.
    step("A removes it; get_config through A fails with ConfigNotFound")
    check(await call("remove_config", a.remove_config(data_id, GROUP)) is True, "remove_config did not return True")

    async def not_found():
        try:
            await a.get_config(data_id, GROUP)
        except RuntimeError as e:
            if "ConfigNotFound" in str(e):
                return True
            raise
        return False

    await wait_until(not_found, "get_config through %s to fail with ConfigNotFound" % node_a)


main(scenario)
