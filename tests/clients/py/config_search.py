"""nacos-sdk-python get_configs: GET /nacos/v1/cs/configs?search=accurate&dataId=&group=G paged,
answered with Nacos's page JSON (totalCount, pageNumber, pagesAvailable, pageItems).

Usage: python config_search.py SERVERS [NAMESPACE]   (see common.py)
"""

from common import args, call, check, check_eq, client, main, step, unique, wait_until

CONFIGS = 3


def scenario():
    servers, nodes, namespace = args()
    step("servers %s, namespace %r" % (servers, namespace))
    node_a, node_c = client(nodes[0], namespace), client(nodes[-1], namespace)
    # A group of its own, so that the search sees exactly this run's configs.
    group = unique("PY_SEARCH").replace("-", "_")
    expected = {"%s.%d" % (group.lower(), i): "content %d é中文 with spaces" % i for i in range(CONFIGS)}
    for data_id, content in expected.items():
        check(call("publish_config", node_a.publish_config, data_id, group, content) is True,
              "publish_config(%s) did not return True" % data_id)
    step("published %d configs in group %s through %s" % (CONFIGS, group, nodes[0]))

    step("get_configs(group=%s) through %s: every config with its content" % (group, nodes[-1]))

    def whole_group():
        page = node_c.get_configs(group=group, page_no=1, page_size=100, no_snapshot=True)
        items = page.get("pageItems") or []
        return page if {i.get("dataId"): i.get("content") for i in items} == expected else None

    page = wait_until("get_configs to list the %d configs with their content" % CONFIGS, whole_group)
    check_eq(page.get("totalCount"), CONFIGS, "totalCount")
    check_eq(page.get("pageNumber"), 1, "pageNumber")
    check_eq(page.get("pagesAvailable"), 1, "pagesAvailable")
    for item in page["pageItems"]:
        check_eq(item.get("group"), group, "pageItems[].group of %s" % item.get("dataId"))

    step("paging: page_size=2 gives 2 pages that together hold every config once")
    first = call("get_configs", node_c.get_configs, group=group, page_no=1, page_size=2, no_snapshot=True)
    second = call("get_configs", node_c.get_configs, group=group, page_no=2, page_size=2, no_snapshot=True)
    check_eq(first.get("totalCount"), CONFIGS, "totalCount of page 1")
    check_eq(first.get("pagesAvailable"), 2, "pagesAvailable with page_size=2")
    check_eq(second.get("pageNumber"), 2, "pageNumber of page 2")
    check_eq(len(first.get("pageItems") or []), 2, "items on page 1")
    check_eq(len(second.get("pageItems") or []), 1, "items on page 2")
    seen = sorted(i["dataId"] for i in first["pageItems"] + second["pageItems"])
    check_eq(seen, sorted(expected), "dataIds over both pages")

    if namespace:
        step("namespace isolation: the same search without a namespace finds nothing")
        default_ns = client(servers, "")
        other = call("get_configs", default_ns.get_configs, group=group, page_size=100, no_snapshot=True)
        check_eq(other.get("totalCount"), 0, "totalCount of the group searched outside namespace %r" % namespace)

    for data_id in expected:
        check(call("remove_config", node_a.remove_config, data_id, group) is True, "remove_config(%s)" % data_id)
    step("removed them: get_configs finds none")
    wait_until("an empty search after removal",
               lambda: node_c.get_configs(group=group, page_size=100, no_snapshot=True).get("totalCount") == 0)


main(scenario)
