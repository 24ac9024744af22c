//! The built-in guest modules, compiled from `guest-modules/` by the build script (a nested
//! wasm32 build, then turned into components and checked against the WIT contract) and
//! embedded in the binary. A new cluster installs and binds `NAMING` and `CONFIG` at bootstrap.

/// The naming module (`nacre-naming`), kind naming: Nacos v1 instances, services, clusters,
/// heartbeats (with the host's leases), health and protect threshold.
pub const NAMING: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/naming.wasm"));

/// The config module (`nacre-config`), kind config: Nacos v1 publish/get/delete/md5.
pub const CONFIG: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/config.wasm"));

/// Guests for tests only; the node never installs them by itself. They ship in the binary
/// (they are small) so that unit tests, the cluster tests that drive the real `nacre`
/// binary, and a person trying the limits by hand all use the same bytes.
pub mod fixtures {
    /// `nacre-fixture-hostile`, kind config: misbehaves on request (`loop`, `hog`, `trap`,
    /// `deep`, `bad-key`; `put`/`get` to set things up), and its `migrate` traps when the key
    /// `fail-migrate` exists. See `guest-modules/fixtures/hostile`.
    pub const HOSTILE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hostile-fixture.wasm"));
}

/// The example custom modules of `examples/modules` (their walkthrough is in
/// `examples/modules/README.md`), shipped for the module-lifecycle tests.
pub mod examples {
    /// `nacre-example-require-metadata`, kind naming: refuses registrations without the
    /// metadata keys `version` and `zone`.
    pub const REQUIRE_METADATA: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/example-require-metadata.wasm"));
    /// `nacre-example-zone-first`, kind naming: instance lists answer the caller's zone first.
    pub const ZONE_FIRST: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/example-zone-first.wasm"));
}

#[cfg(test)]
mod tests {

    use nacre_protocol::{GuestReply, GuestRequest};

    use super::*;
    use crate::runtime::{GuestCommand, QueryContext, Runtime};
    use crate::state::Kv;

    /// `\0asm`, then the component-model version and layer (a core module has 1, 0, 0, 0).
    const COMPONENT_PREAMBLE: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

    #[test]
    fn every_builtin_is_a_component() {
        let all = [
            ("naming", NAMING),
            ("config", CONFIG),
            ("hostile", fixtures::HOSTILE),
            ("require-metadata", examples::REQUIRE_METADATA),
            ("zone-first", examples::ZONE_FIRST),
        ];
        for (name, bytes) in all {
            assert!(bytes.starts_with(&COMPONENT_PREAMBLE), "{name} is not a component");
        }
    }

    /// The largest config the config module accepts (1 MiB).
    const MAX_CONTENT_BYTES: usize = 1024 * 1024;

    /// Content of exactly `bytes` UTF-8 bytes, heavy on what is slow to decode and hash:
    /// escapes (newlines, quotes, tabs) and multi-byte characters. (Content made of nothing
    /// but escaped characters, at the full megabyte, still runs out of per-command fuel.)
    fn awkward_content(bytes: usize) -> String {
        let unit = "key: \"välue\"\t配置\n";
        let mut content = unit.repeat(bytes / unit.len());
        content.push_str(&"x".repeat(bytes - content.len()));
        content
    }

    /// A publish of the largest config, and reading it back, fit the per-command fuel and the
    /// result limits: the built-in module must handle every input it accepts.
    #[test]
    fn config_round_trips_the_largest_content_within_limits() {
        let runtime = Runtime::new(None).expect("runtime");
        let (id, info) = runtime.load(CONFIG).expect("the config module loads");
        assert_eq!(info.name, "nacre-config");
        let content = awkward_content(MAX_CONTENT_BYTES);
        let publish = GuestRequest::new("config.publish")
            .param("dataId", "big.yaml")
            .param("group", "DEFAULT_GROUP")
            .param("content", content.as_str());
        let cmd = GuestCommand { index: 1, timestamp_ms: 1, payload: publish.encode() };
        let mut kv = Kv::default();
        let outcome = runtime.apply(&id, "public", 1, &[cmd], &kv.scoped(Vec::new())).expect("apply").remove(0);
        let reply = outcome.result.expect("the publish succeeds");
        assert_eq!(GuestReply::decode(&reply).unwrap().body, "true");
        for (key, value) in outcome.writes {
            kv.put(key, value.expect("a publish only puts"));
        }

        let get = GuestRequest::new("config.get").param("dataId", "big.yaml").param("group", "DEFAULT_GROUP");
        let ctx = QueryContext { namespace: "public".into(), applied_index: 1, timestamp_ms: 1 };
        let reply = runtime.query(&id, &ctx, &get.encode(), &kv.scoped(Vec::new())).expect("query");
        let reply = GuestReply::decode(&reply.expect("the get succeeds")).unwrap();
        assert!(reply.body == content, "the content comes back unchanged");
        assert_eq!(reply.headers["Content-MD5"].len(), 32);
    }
}
