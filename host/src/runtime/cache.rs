//! Compiled components on disk, so that a restarting node does not recompile every module.
//!
//! A file is `<module sha256>-<engine compatibility hash>.cwasm`: a new Wasmtime version or
//! engine configuration gets new names instead of loading incompatible code, and old files are
//! simply never read again.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::{ModuleId, RuntimeError};

/// Tells concurrent writers' temporary files apart within this process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

pub(crate) struct DiskCache {
    dir: PathBuf,
    engine_hash: String,
}

impl DiskCache {
    pub fn open(dir: &Path, engine: &Engine) -> Result<DiskCache, RuntimeError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| RuntimeError::Cache(format!("cannot create cache directory {}: {e}", dir.display())))?;
        Ok(DiskCache { dir: dir.to_path_buf(), engine_hash: engine_hash(engine) })
    }

    pub fn path(&self, id: &ModuleId) -> PathBuf {
        self.dir.join(format!("{id}-{}.cwasm", self.engine_hash))
    }

    /// The cached compilation of `id`, if there is a usable one.
    pub fn read(&self, engine: &Engine, id: &ModuleId) -> Option<Component> {
        let path = self.path(id);
        // Read, not `deserialize_file`: that maps the file, and anything truncating it while
        // the module is loaded would crash the node with SIGBUS.
        let bytes = std::fs::read(&path).ok()?;
        // SAFETY: `deserialize` trusts the bytes to be Wasmtime's own output for a compatible
        // engine. Only this process writes this directory (through `write`, which renames
        // complete files into place), names carry the engine compatibility hash, and Wasmtime
        // still checks the header and the engine settings recorded in the file.
        match unsafe { Component::deserialize(engine, &bytes) } {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), error = %error, "unusable cached module; recompiling");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores `component` for `id`. Failure only costs a recompilation later, so it is logged.
    pub fn write(&self, id: &ModuleId, component: &Component) {
        if let Err(error) = self.try_write(id, component) {
            tracing::warn!(module = %id, error = %error, "cannot write module cache");
        }
    }

    fn try_write(&self, id: &ModuleId, component: &Component) -> Result<(), String> {
        let bytes = component.serialize().map_err(|e| format!("{e:#}"))?;
        let path = self.path(id);
        let tmp =
            self.dir.join(format!(".{id}.{}.{}.tmp", std::process::id(), TMP_COUNTER.fetch_add(1, Ordering::Relaxed)));
        // Write then rename: a reader never sees a half-written file, even after a crash.
        std::fs::write(&tmp, &bytes).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            e.to_string()
        })
    }
}

/// Lowercase hex of a digest of `Engine::precompile_compatibility_hash`.
fn engine_hash(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..16])
}

/// Feeds a `Hash` implementation into sha256: unlike `DefaultHasher`, stable across Rust
/// releases, so that an upgrade of the host compiler alone does not invalidate the cache.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("a sha256 digest has 32 bytes"))
    }
}
