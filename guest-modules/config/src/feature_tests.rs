//! History, rollback, beta, the long-poll check and search, natively through the adapter.

use nacre_guest_sdk::md5::md5_hex;
use nacre_guest_sdk::{Command, GuestError, GuestReply, GuestRequest, QueryContext, testing};
use serde_json::Value;

use super::*;
use crate::tests::{DATA_ID, GROUP, publish_at, publish_req, read};

fn query(req: GuestRequest) -> Result<GuestReply, GuestError> {
    testing::query::<Config>(&QueryContext::new(1, 1), &req)
}

fn json(reply: Result<GuestReply, GuestError>) -> Value {
    serde_json::from_str(&reply.unwrap().body).unwrap()
}

fn named(op: &str) -> GuestRequest {
    GuestRequest::new(op).param("dataId", DATA_ID).param("group", GROUP)
}

fn command(index: u64, timestamp_ms: u64, req: GuestRequest) -> Result<GuestReply, GuestError> {
    testing::apply::<Config>(&Command::new(index, timestamp_ms), &req)
}

fn history_page(page_no: u32, page_size: u32) -> Value {
    let req = named(HISTORY).param("search", "accurate").param("pageNo", page_no.to_string());
    json(query(req.param("pageSize", page_size.to_string())))
}

#[test]
fn history_records_every_change_as_nacos_does_newest_first() {
    testing::reset();
    publish_at(3, 1_000, publish_req("v1").param("appName", "shop")).unwrap();
    publish_at(5, 2_000, publish_req("v2")).unwrap();
    command(8, 3_000, named(DELETE).param("src_user", "ops")).unwrap();
    let page = history_page(1, 10);
    assert_eq!(page["totalCount"], 3);
    let items = page["pageItems"].as_array().unwrap();
    let rows: Vec<_> = items
        .iter()
        .map(|i| (i["id"].as_str().unwrap(), i["opType"].as_str().unwrap(), i["content"].as_str().unwrap()))
        .collect();
    // Nacos keeps the inserted content, then the content an update replaced, then the deleted.
    assert_eq!(rows, vec![("8", "D  ", "v2"), ("5", "U  ", "v1"), ("3", "I  ", "v1")]);
    assert_eq!(items[1]["md5"], md5_hex(b"v1"));
    assert_eq!(items[1]["appName"], "shop");
    assert_eq!(items[0]["srcUser"], "ops");
    assert_eq!(items[0]["createdTime"], 3_000);
    assert_eq!(items[0]["tenant"], "");

    let second = history_page(2, 2);
    assert_eq!((second["pagesAvailable"].as_u64(), second["pageItems"][0]["id"].as_str()), (Some(2), Some("3")));
    let one = json(query(GuestRequest::new(HISTORY).param("nid", "5")));
    assert_eq!(one["content"], "v1");
    let prev = json(query(GuestRequest::new(HISTORY_PREVIOUS).param("id", "8")));
    assert_eq!(prev["id"], "5");
    assert_eq!(query(GuestRequest::new(HISTORY_PREVIOUS).param("id", "3")).unwrap_err().code, 404);
    assert_eq!(query(GuestRequest::new(HISTORY).param("nid", "4")).unwrap_err().code, 404);
    let other_config = GuestRequest::new(HISTORY).param("nid", "5").param("dataId", "other");
    assert_eq!(query(other_config).unwrap_err().code, 404, "an entry of another config is not found");
}

#[test]
fn refused_commands_leave_no_history() {
    testing::reset();
    publish_at(1, 1, publish_req("v1")).unwrap();
    assert_eq!(publish_at(2, 2, publish_req("v2").param("casMd5", "stale")).unwrap_err().code, 409);
    assert_eq!(publish_at(3, 3, publish_req(" ")).unwrap_err().code, 400);
    assert_eq!(history_page(1, 10)["totalCount"], 1);
}

#[test]
fn rollback_republishes_an_entry_as_a_new_change() {
    testing::reset();
    publish_at(1, 1, publish_req("good").param("type", "yaml")).unwrap();
    publish_at(2, 2, publish_req("bad").param("type", "yaml")).unwrap();
    // Entry 2 holds "good", the content the bad publish replaced.
    command(4, 4, named(ROLLBACK).param("nid", "2")).unwrap();
    assert_eq!(read(GET).unwrap().body, "good");
    assert_eq!(read(GET).unwrap().headers["Config-Type"], "yaml", "the type is kept");
    let page = history_page(1, 10);
    assert_eq!(page["totalCount"], 3);
    assert_eq!(
        (page["pageItems"][0]["id"].as_str(), page["pageItems"][0]["content"].as_str()),
        (Some("4"), Some("bad"))
    );
    assert_eq!(command(5, 5, named(ROLLBACK).param("nid", "99")).unwrap_err().code, 404);
    assert_eq!(command(5, 5, named(ROLLBACK)).unwrap_err().code, 400);
    let foreign = GuestRequest::new(ROLLBACK).param("dataId", "other").param("group", GROUP).param("nid", "2");
    assert_eq!(command(5, 5, foreign).unwrap_err().code, 404, "an entry rolls back only its own config");
}

#[test]
fn history_older_than_the_retention_is_pruned_a_bounded_amount_per_command() {
    testing::reset();
    let count = history::MAX_PRUNED_PER_COMMAND as u64 + 4;
    for i in 0..count {
        publish_at(i + 1, 1_000 + i, publish_req(&format!("v{i}"))).unwrap();
    }
    let later = 1_000 + count + history::RETENTION_MS;
    publish_at(count + 1, later, publish_req("late")).unwrap();
    // The first command after the retention ran out removed only a bounded number of entries.
    assert_eq!(history_page(1, 500)["totalCount"], count + 1 - history::MAX_PRUNED_PER_COMMAND as u64);
    publish_at(count + 2, later + 1, publish_req("later")).unwrap();
    assert_eq!(history_page(1, 500)["totalCount"], 2, "the backlog drains; the two recent entries stay");
    let index_rows = testing::entries().keys().filter(|k| k.starts_with(b"h/")).count();
    assert_eq!(index_rows, 2, "the per-config index is pruned with the entries");
}

#[test]
fn each_config_keeps_its_newest_entries_up_to_the_cap() {
    testing::reset();
    let cap = u64::from(history::MAX_HISTORY_PER_CONFIG);
    let other = GuestRequest::new(PUBLISH).param("dataId", "other").param("group", GROUP).param("content", "o");
    publish_at(1, 1, other).unwrap();
    for i in 0..cap + 3 {
        publish_at(i + 2, i + 2, publish_req(&format!("v{i}"))).unwrap();
    }
    let page = history_page(1, 500);
    assert_eq!(page["totalCount"], cap, "the oldest three are gone");
    // An entry keeps the content a change replaced (a new config's: its own), as Nacos's do.
    assert_eq!(page["pageItems"][0]["content"], format!("v{}", cap + 1), "the newest first");
    let last_page = history_page(2, 500);
    let oldest = last_page["pageItems"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(oldest["content"], "v2", "the oldest kept is the first one past the cap");
    for removed in ["2", "3", "4"] {
        let gone = query(GuestRequest::new(HISTORY).param("nid", removed));
        assert_eq!(gone.unwrap_err().code, 404, "entry {removed} removed with its index row");
    }
    let entries = testing::entries();
    assert_eq!(entries.keys().filter(|k| k.starts_with(b"i/")).count() as u64, cap + 1, "and the other config's");
    assert_eq!(entries.keys().filter(|k| k.starts_with(b"h/")).count() as u64, cap + 1);
    let other = GuestRequest::new(HISTORY).param("search", "accurate").param("dataId", "other").param("group", GROUP);
    assert_eq!(json(query(other))["totalCount"], 1, "another config's history is its own");
}

fn beta_query(ip: &str, req: GuestRequest) -> Result<GuestReply, GuestError> {
    let mut req = req;
    req.client_ip = ip.into();
    query(req)
}

#[test]
fn beta_is_served_to_its_ips_only_until_stopped_or_promoted() {
    testing::reset();
    publish_at(1, 1, publish_req("stable")).unwrap();
    publish_at(2, 2, publish_req("gray").param("betaIps", "10.0.0.1, 10.0.0.2")).unwrap();
    let beta_get = beta_query("10.0.0.2", named(GET)).unwrap();
    assert_eq!((beta_get.body.as_str(), beta_get.headers.get("isBeta").map(String::as_str)), ("gray", Some("true")));
    assert_eq!(beta_get.headers["Content-MD5"], md5_hex(b"gray"));
    let other = beta_query("10.0.0.9", named(GET)).unwrap();
    assert_eq!((other.body.as_str(), other.headers.get("isBeta")), ("stable", None));
    assert_eq!(beta_query("10.0.0.1", named(MD5)).unwrap().body, md5_hex(b"gray"));
    assert_eq!(history_page(1, 10)["totalCount"], 1, "a beta publish is not a stable change");

    // A stable publish leaves the beta alone (Nacos).
    publish_at(3, 3, publish_req("stable2")).unwrap();
    assert_eq!(beta_query("10.0.0.1", named(GET)).unwrap().body, "gray");
    let info = json(query(named(GET).param("beta", "true")));
    assert_eq!((info["code"].as_u64(), info["message"].as_str()), (Some(200), Some("query beta ok")));
    assert_eq!(
        (info["data"]["content"].as_str(), info["data"]["betaIps"].as_str()),
        (Some("gray"), Some("10.0.0.1,10.0.0.2"))
    );

    command(4, 4, named(PROMOTE_BETA)).unwrap();
    assert_eq!(beta_query("10.0.0.9", named(GET)).unwrap().body, "gray", "promoted to everyone");
    assert_eq!(json(query(named(GET).param("beta", "true")))["data"], Value::Null, "and the beta is over");
    assert_eq!(history_page(1, 10)["pageItems"][0]["id"], "4");
    assert_eq!(command(5, 5, named(PROMOTE_BETA)).unwrap_err().code, 404);

    publish_at(6, 6, publish_req("gray2").param("betaIps", "10.0.0.1")).unwrap();
    testing::take_events();
    let stopped = json(command(7, 7, named(DELETE).param("beta", "true")));
    assert_eq!((stopped["message"].as_str(), stopped["data"].as_bool()), (Some("stop beta ok"), Some(true)));
    assert_eq!(beta_query("10.0.0.1", named(GET)).unwrap().body, "gray");
    assert_eq!(testing::take_events().len(), 1, "stopping a beta changes what its IPs are served");
    assert_eq!(read(GET).unwrap().body, "gray", "stopping the beta keeps the stable config");
}

#[test]
fn bad_beta_addresses_are_refused() {
    testing::reset();
    for ips in [" , ", "a b", &vec!["10.0.0.1"; beta::MAX_BETA_IPS + 1].join(",")] {
        let err = publish_at(1, 1, publish_req("x").param("betaIps", ips)).unwrap_err();
        assert!(err.code == 400 && err.message.contains("betaIps"), "{ips}: {err}");
    }
    assert!(testing::entries().is_empty());
}

fn listen(ip: &str, probes: &[(&str, &str, &str)]) -> Result<GuestReply, GuestError> {
    let probes = serde_json::to_string(probes).unwrap();
    beta_query(ip, GuestRequest::new(LISTEN).param(listen::PROBES_PARAM, probes))
}

#[test]
fn listen_names_the_stale_probes_and_watches_them_all() {
    testing::reset();
    publish_at(1, 1, publish_req("v1")).unwrap();
    let current = md5_hex(b"v1");
    let reply = listen(
        "10.0.0.1",
        &[(DATA_ID, GROUP, current.as_str()), (DATA_ID, GROUP, ""), ("missing", GROUP, ""), ("gone", GROUP, "abc")],
    )
    .unwrap();
    assert_eq!(reply.body, "[1,3]", "a client without the config, and one holding a deleted one, are stale");
    let watch: Vec<(String, String)> = serde_json::from_str(&reply.headers["Nacre-Watch"]).unwrap();
    assert_eq!(watch[0], ("config".to_owned(), "app.yaml+DEFAULT_GROUP".to_owned()));
    assert_eq!(watch.len(), 4);
    // Beta-aware: the beta's audience holding the stable md5 is stale, others are not.
    publish_at(2, 2, publish_req("gray").param("betaIps", "10.0.0.1")).unwrap();
    assert_eq!(listen("10.0.0.1", &[(DATA_ID, GROUP, current.as_str())]).unwrap().body, "[0]");
    assert_eq!(listen("10.0.0.2", &[(DATA_ID, GROUP, current.as_str())]).unwrap().body, "[]");
    let err = listen("", &[("a b", GROUP, "")]).unwrap_err();
    assert!(err.code == 400 && err.message.contains("Listening-Configs"), "{err}");
}

#[test]
fn search_filters_pages_and_counts() {
    testing::reset();
    let publish = |index, data_id: &str, group: &str, app: &str, tags: &str| {
        let req = GuestRequest::new(PUBLISH).param("dataId", data_id).param("group", group);
        let req = req.param("content", format!("c-{data_id}")).param("appName", app).param("config_tags", tags);
        publish_at(index, index, req).unwrap();
    };
    publish(1, "a.yaml", "G1", "shop", "x,y");
    publish(2, "b.yaml", "G1", "cart", "");
    publish(3, "a.json", "G2", "shop", "y");
    let search = |params: &[(&str, &str)]| {
        let mut req = GuestRequest::new(GET);
        for (k, v) in params {
            req = req.param(*k, *v);
        }
        json(query(req))
    };
    let ids = |page: &Value| -> Vec<String> {
        page["pageItems"].as_array().unwrap().iter().map(|i| i["dataId"].as_str().unwrap().to_owned()).collect()
    };
    // The Python client's get_configs: empty dataId and group mean "any".
    let all = search(&[("search", "accurate"), ("dataId", ""), ("group", ""), ("pageNo", "1"), ("pageSize", "1000")]);
    assert_eq!(
        (all["totalCount"].as_u64(), ids(&all)),
        (Some(3), vec!["a.yaml".into(), "b.yaml".into(), "a.json".into()])
    );
    assert_eq!(all["pageItems"][0]["content"], "c-a.yaml");
    assert_eq!(ids(&search(&[("search", "accurate"), ("group", "G1"), ("appName", "shop")])), vec!["a.yaml"]);
    assert_eq!(ids(&search(&[("search", "accurate"), ("dataId", "a")])), Vec::<String>::new());
    assert_eq!(ids(&search(&[("search", "blur"), ("dataId", "a.*")])), vec!["a.yaml", "a.json"]);
    assert_eq!(ids(&search(&[("search", "blur"), ("config_tags", "y")])), vec!["a.yaml", "a.json"]);
    // Content search (`config_detail`): the text anywhere in the content, counted before paging.
    let by_content = search(&[("search", "blur"), ("config_detail", "c-a."), ("pageSize", "1")]);
    assert_eq!((by_content["totalCount"].as_u64(), ids(&by_content)), (Some(2), vec!["a.yaml".to_owned()]));
    assert_eq!(ids(&search(&[("search", "blur"), ("config_detail", "c-*json")])), vec!["a.json"]);
    assert_eq!(ids(&search(&[("search", "accurate"), ("group", "G1"), ("config_detail", "b.y")])), vec!["b.yaml"]);
    assert_eq!(ids(&search(&[("search", "blur"), ("config_detail", "nowhere")])), Vec::<String>::new());
    let paged = search(&[("search", "blur"), ("dataId", "*"), ("pageNo", "2"), ("pageSize", "2")]);
    assert_eq!((paged["pagesAvailable"].as_u64(), ids(&paged)), (Some(2), vec!["a.json".to_owned()]));
    assert_eq!(query(GuestRequest::new(GET).param("search", "fuzzy")).unwrap_err().code, 400);
    assert_eq!(query(GuestRequest::new(COUNT)).unwrap().body, "3");

    let all_info = json(query(named(GET).param("dataId", "a.yaml").param("group", "G1").param("show", "all")));
    assert_eq!((all_info["appName"].as_str(), all_info["configTags"].as_str()), (Some("shop"), Some("x,y")));
    assert_eq!((all_info["createTime"].as_u64(), all_info["id"].as_str()), (Some(1), Some("1")));
}

/// Issue 16: a page whose configs would not fit one answer (the host refuses an answer over
/// 8 MiB with a 500) is a 400 naming `pageSize` and how many fit; smaller pages serve them all.
#[test]
fn a_search_page_too_large_for_one_answer_asks_for_smaller_pages() {
    testing::reset();
    let big = "x".repeat(900 * 1024);
    for i in 0..10u64 {
        let req =
            GuestRequest::new(PUBLISH).param("dataId", format!("big-{i}")).param("group", "G").param("content", &big);
        publish_at(i + 1, i + 1, req).unwrap();
    }
    let search = |size: &str, page: &str| {
        query(
            GuestRequest::new(GET)
                .param("search", "accurate")
                .param("group", "G")
                .param("pageSize", size)
                .param("pageNo", page),
        )
    };
    let error = search("10", "1").unwrap_err();
    assert_eq!(error.code, 400, "{error:?}");
    assert!(error.message.contains("pageSize") && error.message.contains("at most 6 items"), "{}", error.message);
    let mut served = 0;
    for page in ["1", "2"] {
        served += json(search("5", page))["pageItems"].as_array().unwrap().len();
    }
    assert_eq!(served, 10);
}
