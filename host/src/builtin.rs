//! The built-in guest modules, compiled from `guest-modules/` by the build script (a nested
//! wasm32 build, then turned into components and checked against the WIT contract) and
//! embedded in the binary. A new cluster installs and binds `NAMING` and `CONFIG` at bootstrap.

/// The naming module (`nacre-naming`), kind naming. Its operations answer 501 for now.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `\0asm`, then the component-model version and layer (a core module has 1, 0, 0, 0).
    const COMPONENT_PREAMBLE: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

    #[test]
    fn every_builtin_is_a_component() {
        for (name, bytes) in [
            ("naming", NAMING),
            ("config", CONFIG),
            ("hostile", fixtures::HOSTILE),
        ] {
            assert!(
                bytes.starts_with(&COMPONENT_PREAMBLE),
                "{name} is not a component"
            );
        }
    }
}
