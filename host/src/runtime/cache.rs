//! Compiled components on disk, so that a restarting node does not recompile every module.
//!
//! A file is `<module sha256>-<engine compatibility hash>.cwasm`: a new Wasmtime version or
//! engine configuration gets new names instead of loading incompatible code, and old files are
//! simply never read again.
//!
//! Two directories: the node's own (in its data directory, read first, so a restart never
//! depends on anything outside it) and, optionally, one shared by this user's nodes on this
//! machine. A compile takes the shared directory's lock for its module, so nodes started
//! together (a fresh cluster, a test's) compile each module once and the others read it: a
//! compile of the naming module is most of a second of CPU, most of a fresh node's start.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::{ModuleId, RuntimeError};

/// Tells concurrent writers' temporary files apart within this process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Longest a compile waits for another process compiling the same module; past it, it
/// compiles too (the other may be stuck, and a second compile only costs CPU).
pub const SHARED_COMPILE_WAIT_MS: u64 = 60_000;
/// How often a waiting compile looks at the other's lock.
const SHARED_LOCK_POLL_MS: u64 = 20;

pub(crate) struct DiskCache {
    dir: PathBuf,
    /// The directory shared with this user's other nodes on this machine, when usable.
    shared: Option<PathBuf>,
    engine_hash: String,
}

impl DiskCache {
    /// The node's cache in `dir`, and the machine's in `shared` (left out, with a warning,
    /// unless it is a directory of this user's that no one else may open).
    pub fn open(dir: &Path, shared: Option<&Path>, engine: &Engine) -> Result<DiskCache, RuntimeError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| RuntimeError::Cache(format!("cannot create cache directory {}: {e}", dir.display())))?;
        let shared = shared.and_then(|shared| match private_dir(shared) {
            Ok(()) => Some(shared.to_path_buf()),
            Err(why) => {
                tracing::warn!(dir = %shared.display(), %why, "not sharing compiled modules there");
                None
            }
        });
        Ok(DiskCache { dir: dir.to_path_buf(), shared, engine_hash: engine_hash(engine) })
    }

    pub fn path(&self, id: &ModuleId) -> PathBuf {
        self.dir.join(self.file_name(id))
    }

    fn file_name(&self, id: &ModuleId) -> String {
        format!("{id}-{}.cwasm", self.engine_hash)
    }

    /// The cached compilation of `id`, if there is a usable one: the node's own, else the
    /// shared one (then also kept as the node's own).
    pub fn read(&self, engine: &Engine, id: &ModuleId) -> Option<Component> {
        if let Some(component) = read_file(engine, &self.path(id)) {
            return Some(component);
        }
        let shared = self.shared.as_ref()?.join(self.file_name(id));
        let component = read_file(engine, &shared)?;
        if let Err(error) = write_file(&self.dir, id, &self.path(id), &component) {
            tracing::warn!(module = %id, %error, "cannot keep a shared compiled module in the node's cache");
        }
        Some(component)
    }

    /// Hold the shared directory's compile lock of `id` (at most [`SHARED_COMPILE_WAIT_MS`]):
    /// another node on this machine compiling it finishes first, and then it is read, not
    /// compiled again. `None`: nothing to wait for (no shared directory, or its lock failed).
    pub fn compile_turn(&self, id: &ModuleId) -> Option<std::fs::File> {
        let shared = self.shared.as_ref()?;
        let path = shared.join(format!("{id}-{}.lock", self.engine_hash));
        let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).ok()?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(SHARED_COMPILE_WAIT_MS);
        loop {
            match lock.try_lock() {
                Ok(()) => return Some(lock),
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(SHARED_LOCK_POLL_MS));
                }
                Err(_) => return None,
            }
        }
    }
    /// Stores `component` for `id`, in the node's directory and the shared one. Failure only
    /// costs a recompilation later, so it is logged.
    pub fn write(&self, id: &ModuleId, component: &Component) {
        let shared = self.shared.as_ref().map(|shared| (shared.as_path(), shared.join(self.file_name(id))));
        for (dir, path) in [(self.dir.as_path(), self.path(id))].into_iter().chain(shared) {
            if let Err(error) = write_file(dir, id, &path, component) {
                tracing::warn!(module = %id, dir = %dir.display(), %error, "cannot write module cache");
            }
        }
    }
}

/// A compiled component from `path`, if it is a usable one; an unusable file is removed.
fn read_file(engine: &Engine, path: &Path) -> Option<Component> {
    // Read, not `deserialize_file`: that maps the file, and anything truncating it while the
    // module is loaded would crash the node with SIGBUS.
    let bytes = std::fs::read(path).ok()?;
    // SAFETY: `deserialize` trusts the bytes to be Wasmtime's own output for a compatible
    // engine. Only this user's nodes write these directories (the shared one is used only
    // when it is this user's and closed to everyone else, `private_dir`), always through
    // `write_file`, which renames complete files into place; names carry the engine
    // compatibility hash, and Wasmtime still checks the header and the engine settings
    // recorded in the file.
    match unsafe { Component::deserialize(engine, &bytes) } {
        Ok(component) => Some(component),
        Err(error) => {
            tracing::warn!(path = %path.display(), error = %error, "unusable cached module; recompiling");
            let _ = std::fs::remove_file(path);
            None
        }
    }
}

fn write_file(dir: &Path, id: &ModuleId, path: &Path, component: &Component) -> Result<(), String> {
    let bytes = component.serialize().map_err(|e| format!("{e:#}"))?;
    let tmp = dir.join(format!(".{id}.{}.{}.tmp", std::process::id(), TMP_COUNTER.fetch_add(1, Ordering::Relaxed)));
    // Write then rename: a reader never sees a half-written file, even after a crash.
    std::fs::write(&tmp, &bytes).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        e.to_string()
    })
}

/// Make `dir` (mode 0700 when created) and check that it is a directory of this user's that
/// no one else may read or write: the shared cache holds code the node will run.
fn private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt as _;
    use std::os::unix::fs::MetadataExt as _;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| e.to_string())?;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| e.to_string())?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.is_dir() {
        return Err("not a directory".into());
    }
    if meta.uid() != me {
        return Err(format!("owned by uid {}, not this user ({me})", meta.uid()));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!("mode {:o}: others may open it (it must be 0700)", meta.mode() & 0o777));
    }
    Ok(())
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
