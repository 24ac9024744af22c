//! The config operations end to end through the SDK adapter, natively.

use nacre_guest_sdk::{Command, GuestError, GuestReply, GuestRequest, ModuleInfo, QueryContext, StateMachine, testing};

use super::*;
use crate::record::ConfigMeta;

pub(crate) const DATA_ID: &str = "app.yaml";
pub(crate) const GROUP: &str = "DEFAULT_GROUP";

pub(crate) fn publish_req(content: &str) -> GuestRequest {
    GuestRequest::new(PUBLISH).param("dataId", DATA_ID).param("group", GROUP).param("content", content)
}

pub(crate) fn publish_at(index: u64, timestamp_ms: u64, req: GuestRequest) -> Result<GuestReply, GuestError> {
    testing::apply::<Config>(&Command::new(index, timestamp_ms), &req)
}

pub(crate) fn read(op: &str) -> Result<GuestReply, GuestError> {
    let req = GuestRequest::new(op).param("dataId", DATA_ID).param("group", GROUP);
    testing::query::<Config>(&QueryContext::new(1, 1), &req)
}

fn stored_meta() -> ConfigMeta {
    let bytes = testing::entries().get(keys::meta(GROUP, DATA_ID).as_slice()).cloned().expect("metadata stored");
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn publish_then_get_serves_content_md5_and_type() {
    testing::reset();
    let reply = publish_at(5, 1_000, publish_req("a: 1").param("type", "yaml").param("appName", "shop")).unwrap();
    assert_eq!(reply.body, "true");
    let got = read(GET).unwrap();
    assert_eq!(got.body, "a: 1");
    assert_eq!(got.headers["Content-MD5"], nacre_guest_sdk::md5::md5_hex(b"a: 1"));
    assert_eq!(got.headers["Config-Type"], "yaml");
    assert_eq!(read(MD5).unwrap().body, got.headers["Content-MD5"]);
    assert_eq!(testing::take_events(), vec![("config".to_owned(), "app.yaml+DEFAULT_GROUP".to_owned())]);
    let meta = stored_meta();
    assert_eq!((meta.id, meta.created_ms, meta.modified_ms, meta.app_name.as_str()), (5, 1_000, 1_000, "shop"));
}

#[test]
fn republish_keeps_identity_and_creation_time() {
    testing::reset();
    publish_at(5, 1_000, publish_req("v1")).unwrap();
    publish_at(9, 2_000, publish_req("v2")).unwrap();
    assert_eq!(read(GET).unwrap().body, "v2");
    let meta = stored_meta();
    assert_eq!((meta.id, meta.created_ms, meta.modified_ms), (5, 1_000, 2_000));
    assert_eq!(meta.config_type, "text", "type defaults to text");
    assert_eq!(testing::take_events().len(), 2, "every publish is a change");
}

#[test]
fn md5_covers_utf8_content() {
    testing::reset();
    let content = "配置 ünïcode ✓";
    publish_at(1, 1, publish_req(content)).unwrap();
    // Reference value from an independent MD5 implementation over the UTF-8 bytes.
    assert_eq!(read(MD5).unwrap().body, "acce076f8b650b6c0443b2b05af4e43d");
    assert_eq!(read(GET).unwrap().body, content);
}

#[test]
fn missing_configs_are_404_with_the_nacos_message() {
    testing::reset();
    for op in [GET, MD5] {
        let err = read(op).unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (404, "config data not exist"));
    }
}

#[test]
fn delete_removes_and_is_idempotent() {
    testing::reset();
    let delete = || {
        let req = GuestRequest::new(DELETE).param("dataId", DATA_ID).param("group", GROUP);
        testing::apply::<Config>(&Command::new(3, 3), &req)
    };
    assert_eq!(delete().unwrap().body, "true", "deleting a missing config succeeds");
    assert!(testing::take_events().is_empty(), "nothing changed, nothing to tell");
    publish_at(1, 1, publish_req("x")).unwrap();
    testing::take_events();
    assert_eq!(delete().unwrap().body, "true");
    assert_eq!(read(GET).unwrap_err().code, 404);
    let left: Vec<_> =
        testing::entries().into_keys().filter(|k| k.starts_with(b"c/") || k.starts_with(b"d/")).collect();
    assert!(left.is_empty(), "metadata and content are both gone");
    assert_eq!(testing::take_events(), vec![("config".to_owned(), "app.yaml+DEFAULT_GROUP".to_owned())]);
}

#[test]
fn bad_input_is_400_naming_the_field_and_writes_nothing() {
    testing::reset();
    let cases = [
        (publish_req("x").param("dataId", "a/b"), "dataId"),
        (publish_req("x").param("group", ""), "group"),
        (publish_req(""), "content"),
        (publish_req("   "), "content"),
        (publish_req(&"x".repeat(validate::MAX_CONTENT_BYTES + 1)), "content"),
        (publish_req("x").param("desc", "d".repeat(validate::MAX_DESC_CHARS + 1)), "desc"),
        (publish_req("x").param("config_tags", "1,2,3,4,5,6"), "config_tags"),
    ];
    for (req, field) in cases {
        let err = publish_at(1, 1, req).unwrap_err();
        assert_eq!(err.code, 400, "{field}: {err}");
        assert!(err.message.contains(field), "{field}: {err}");
    }
    assert!(testing::entries().is_empty());
    assert!(testing::take_events().is_empty());
    let err = testing::query::<Config>(&QueryContext::new(1, 1), &GuestRequest::new(GET).param("group", GROUP));
    assert!(err.unwrap_err().message.contains("dataId"));
}

#[test]
fn events_name_the_tenant_outside_the_default_namespace() {
    testing::reset();
    let mut cmd = Command::new(1, 1);
    cmd.namespace = "dev".into();
    testing::apply::<Config>(&cmd, &publish_req("x")).unwrap();
    assert_eq!(testing::take_events(), vec![("config".to_owned(), "app.yaml+DEFAULT_GROUP+dev".to_owned())]);
}

#[test]
fn operations_are_routed_by_kind() {
    testing::reset();
    let err = publish_at(1, 1, GuestRequest::new(GET).param("dataId", DATA_ID).param("group", GROUP)).unwrap_err();
    assert_eq!(err.code, 400, "a read is not a command");
    let err = testing::query::<Config>(&QueryContext::new(1, 1), &publish_req("x")).unwrap_err();
    assert_eq!(err.code, 400, "a command is not a read");
}

#[test]
fn migrate_accepts_only_its_own_layout() {
    let info = |schema_version| ModuleInfo { schema_version, ..Config::describe() };
    assert_eq!(Config::migrate(None), Ok(()));
    assert_eq!(Config::migrate(Some(info(SCHEMA_VERSION))), Ok(()));
    assert!(Config::migrate(Some(info(SCHEMA_VERSION + 1))).is_err());
}

#[test]
fn cas_publish_needs_the_current_md5() {
    testing::reset();
    let cas = |md5: &str, content: &str| publish_at(2, 2, publish_req(content).param("casMd5", md5));
    assert_eq!(cas("anything", "v1").unwrap().body, "true", "a missing config is created");
    let err = cas("stale", "v2").unwrap_err();
    assert_eq!((err.code, err.message.as_str()), (409, configs::CAS_FAILED_MESSAGE));
    assert_eq!(read(GET).unwrap().body, "v1");
    assert_eq!(cas(&nacre_guest_sdk::md5::md5_hex(b"v1"), "v2").unwrap().body, "true");
    assert_eq!(read(GET).unwrap().body, "v2");
}

#[test]
fn tag_requests_are_refused_not_ignored() {
    testing::reset();
    let err = publish_at(1, 1, publish_req("x").param("tag", "blue")).unwrap_err();
    assert!(err.code == 501 && err.message.contains("tag"), "{err}");
    assert!(testing::entries().is_empty());
    let req = GuestRequest::new(GET).param("dataId", DATA_ID).param("group", GROUP).param("tag", "blue");
    assert_eq!(testing::query::<Config>(&QueryContext::new(1, 1), &req).unwrap_err().code, 501);
}
