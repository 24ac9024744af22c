//! The per-call host state a guest's imports work on: the committed base, the overlay of writes
//! made earlier in the same `apply`, the current command's writes and events, and the
//! `begin-command` bookkeeping that seals each command's effects.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::limits::{
    GuestLimiter, MAX_EVENT_FIELD_BYTES, MAX_EVENTS_PER_COMMAND, MAX_KEY_BYTES, MAX_MIGRATE_WRITE_BYTES,
    MAX_MIGRATE_WRITES, MAX_SCAN_BYTES, MAX_SCAN_ROWS, MAX_VALUE_BYTES, MAX_WRITE_BYTES_PER_COMMAND,
    MAX_WRITES_PER_COMMAND, WARM_BATCH_MARGIN_FUEL,
};
use super::{Event, KvRead, Write};

/// Why the host stopped a guest. Returned as the error of a host import or of the resource
/// limiter, which makes Wasmtime unwind the guest as a trap; the runtime finds it again in the
/// call's error chain to classify the failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HostFault {
    #[error("out of fuel")]
    OutOfFuel,
    #[error("memory limit exceeded")]
    MemoryLimit,
    #[error("table limit exceeded")]
    TableLimit,
    /// A host call with arguments over a limit, or not allowed in this kind of call.
    #[error("{0}")]
    Rejected(String),
    /// `begin-command` called out of order: the call's batching cannot be trusted.
    #[error("{0}")]
    Protocol(String),
    /// The machine, not the guest, failed (e.g. the OS refused memory the limits allow). Never
    /// a guest outcome: that would make the replicated result depend on one replica's health.
    #[error("host resources: {0}")]
    HostResources(String),
}

/// A key and its value, as `scan` returns them.
pub(crate) type Row = (Vec<u8>, Vec<u8>);

/// Writes by key; `None` is a delete. A `BTreeMap` so that scans merge in key order and the
/// writes a command reports come out sorted, whatever order the guest made them in.
pub(crate) type Overlay = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// What one command did: its net writes and its events (in emit order).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Effects {
    pub writes: Overlay,
    pub events: Vec<Event>,
    /// `put`/`delete` calls and their key+value bytes, counted against the limits.
    write_calls: usize,
    write_bytes: usize,
}

impl Effects {
    pub fn into_parts(self) -> (Vec<Write>, Vec<Event>) {
        (self.writes.into_iter().collect(), self.events)
    }
}

/// Which export is running; it decides what the imports allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `apply` over `len` commands, each starting with `command_fuel` (less the warm-batch
    /// margin after the first).
    Apply {
        len: u32,
        command_fuel: u64,
    },
    Query,
    Migrate,
    Describe,
}

/// The committed state one call reads.
///
/// It holds a lifetime-erased pointer because `Store<T>` requires `T: 'static` while the
/// caller's [`KvRead`] is borrowed. SAFETY (the invariant the whole runtime keeps): a `BaseRef`
/// is created only by [`super::call::run`] from a `&dyn KvRead` that outlives that function,
/// lives only inside the `Store` that function creates, and that store is dropped (or turned
/// back into data with the base removed) before the function returns. No `Store` ever leaves
/// `run`, so no dereference can happen after the borrow ends.
pub(crate) struct BaseRef(*const (dyn KvRead + 'static));

impl BaseRef {
    /// SAFETY: the caller guarantees `base` outlives every use of the returned value (see the
    /// type's documentation).
    pub unsafe fn new(base: &dyn KvRead) -> BaseRef {
        let pointer: *const (dyn KvRead + '_) = base;
        // SAFETY: only the trait object's lifetime bound changes; the layout is identical.
        BaseRef(unsafe { std::mem::transmute::<*const (dyn KvRead + '_), *const (dyn KvRead + 'static)>(pointer) })
    }

    fn get(&self) -> &dyn KvRead {
        // SAFETY: see the type's documentation: the pointee outlives the store holding `self`.
        unsafe { &*self.0 }
    }
}

/// The data of one call's `Store`.
pub(crate) struct HostState {
    mode: Mode,
    pub limiter: GuestLimiter,
    base: BaseRef,
    /// Writes of commands sealed before this call (earlier calls of the same `apply`).
    prior: Overlay,
    /// Net writes of the commands sealed during this call, for reads of later commands.
    sealed_overlay: Overlay,
    /// Effects of each command sealed during this call, by position.
    sealed: Vec<Effects>,
    /// Effects of the command running now (or of the whole call outside `apply`).
    current: Effects,
    /// How many `begin-command` calls were accepted, i.e. the next position expected.
    begun: u32,
}

impl HostState {
    pub fn new(mode: Mode, base: BaseRef, prior: Overlay) -> HostState {
        HostState {
            mode,
            limiter: GuestLimiter::default(),
            base,
            prior,
            sealed_overlay: Overlay::new(),
            sealed: Vec::new(),
            current: Effects::default(),
            begun: 0,
        }
    }

    /// Everything the call recorded, without the base reference: the overlay of earlier calls
    /// (untouched), the sealed commands' effects, the current effects and the commands begun.
    pub fn into_parts(self) -> (Overlay, Vec<Effects>, Effects, u32) {
        (self.prior, self.sealed, self.current, self.begun)
    }

    /// Accepts `begin-command(position)` in an `apply`: seals the previous command.
    /// Returns the fuel the new command starts with, which the caller must set: every command
    /// gets its own budget, whatever ran before it in this call; after the first, less a
    /// margin for the warm-up it was spared (see `WARM_BATCH_MARGIN_FUEL`).
    pub fn begin_command(&mut self, position: u32) -> Result<Option<u64>, HostFault> {
        let Mode::Apply { len, command_fuel } = self.mode else {
            // Outside `apply` there are no commands: the call is ignored.
            return Ok(None);
        };
        if position != self.begun || position >= len {
            return Err(HostFault::Protocol(format!(
                "begin-command({position}) out of order: expected {} of {len}",
                self.begun
            )));
        }
        if position > 0 {
            self.seal_current();
        }
        self.begun += 1;
        Ok(Some(if position == 0 { command_fuel } else { command_fuel.saturating_sub(WARM_BATCH_MARGIN_FUEL) }))
    }

    /// Moves the current command's effects to the sealed list; later reads see its writes.
    pub fn seal_current(&mut self) {
        let effects = std::mem::take(&mut self.current);
        for (key, value) in &effects.writes {
            self.sealed_overlay.insert(key.clone(), value.clone());
        }
        self.sealed.push(effects);
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, HostFault> {
        check_key("get", key)?;
        for layer in [&self.current.writes, &self.sealed_overlay, &self.prior] {
            if let Some(value) = layer.get(key) {
                return Ok(value.clone());
            }
        }
        Ok(self.base.get().get(key))
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), HostFault> {
        check_key("put", &key)?;
        self.check_writable("put", &key)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(HostFault::Rejected(format!(
                "put: value of {} bytes over the limit of {MAX_VALUE_BYTES}",
                value.len()
            )));
        }
        self.count_write(key.len() + value.len())?;
        self.current.writes.insert(key, Some(value));
        Ok(())
    }

    pub fn delete(&mut self, key: Vec<u8>) -> Result<(), HostFault> {
        check_key("delete", &key)?;
        self.check_writable("delete", &key)?;
        self.count_write(key.len())?;
        self.current.writes.insert(key, None);
        Ok(())
    }

    /// Refuses a write the view marks read-only (e.g. the other half of a split keyspace).
    fn check_writable(&self, call: &str, key: &[u8]) -> Result<(), HostFault> {
        if self.base.get().writable(key) {
            Ok(())
        } else {
            Err(HostFault::Rejected(format!(
                "{call}: key {:?} is read-only in this call",
                String::from_utf8_lossy(key)
            )))
        }
    }

    fn count_write(&mut self, bytes: usize) -> Result<(), HostFault> {
        let (max_calls, max_bytes) = match self.mode {
            Mode::Apply { .. } => (MAX_WRITES_PER_COMMAND, MAX_WRITE_BYTES_PER_COMMAND),
            Mode::Migrate => (MAX_MIGRATE_WRITES, MAX_MIGRATE_WRITE_BYTES),
            Mode::Query => return Err(HostFault::Rejected("query tried to write".into())),
            Mode::Describe => return Err(HostFault::Rejected("describe tried to write".into())),
        };
        let effects = &mut self.current;
        effects.write_calls += 1;
        effects.write_bytes += bytes;
        if effects.write_calls > max_calls {
            return Err(HostFault::Rejected(format!("more than {max_calls} writes in one command")));
        }
        if effects.write_bytes > max_bytes {
            return Err(HostFault::Rejected(format!("more than {max_bytes} bytes written in one command")));
        }
        Ok(())
    }

    pub fn emit(&mut self, topic: String, key: String) -> Result<(), HostFault> {
        match self.mode {
            Mode::Apply { .. } => {}
            // Migrations and descriptions have no watchers to tell; their events are dropped.
            Mode::Migrate | Mode::Describe => return Ok(()),
            Mode::Query => return Err(HostFault::Rejected("query tried to emit an event".into())),
        }
        for (what, field) in [("topic", &topic), ("key", &key)] {
            if field.len() > MAX_EVENT_FIELD_BYTES {
                return Err(HostFault::Rejected(format!(
                    "emit: {what} of {} bytes over the limit of {MAX_EVENT_FIELD_BYTES}",
                    field.len()
                )));
            }
        }
        if self.current.events.len() >= MAX_EVENTS_PER_COMMAND {
            return Err(HostFault::Rejected(format!("more than {MAX_EVENTS_PER_COMMAND} events in one command")));
        }
        self.current.events.push(super::Event { topic, key });
        Ok(())
    }

    /// Keys in `[start, end)` of base + overlays, ascending, at most `limit`.
    pub fn scan(&self, start: &[u8], end: &[u8], limit: u32) -> Result<Vec<Row>, HostFault> {
        check_key("scan start", start)?;
        check_key("scan end", end)?;
        let limit = limit as usize;
        if limit > MAX_SCAN_ROWS {
            return Err(HostFault::Rejected(format!("scan: limit {limit} over the maximum of {MAX_SCAN_ROWS} rows")));
        }
        let layers = [&self.current.writes, &self.sealed_overlay, &self.prior];
        merged_scan(self.base.get(), &layers, start, end, limit)
    }
}

fn check_key(what: &str, key: &[u8]) -> Result<(), HostFault> {
    if key.len() > MAX_KEY_BYTES {
        return Err(HostFault::Rejected(format!(
            "{what}: key of {} bytes over the limit of {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

/// Merges overlay layers (earlier layers win) over pages of the base. Overlay deletes hide
/// base rows, so the base is read page by page until `limit` visible rows are found.
pub(crate) fn merged_scan(
    base: &dyn KvRead,
    layers: &[&Overlay],
    start: &[u8],
    end: &[u8],
    limit: usize,
) -> Result<Vec<Row>, HostFault> {
    if limit == 0 || (!end.is_empty() && end <= start) {
        return Ok(Vec::new());
    }
    let upper = if end.is_empty() { Bound::Unbounded } else { Bound::Excluded(end) };
    let mut overlay = OverlayMerge::new(layers, (Bound::Included(start), upper));
    let mut page: std::vec::IntoIter<Row> = Vec::new().into_iter();
    let mut base_cursor = start.to_vec();
    let mut base_done = false;
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    while rows.len() < limit {
        if page.as_slice().is_empty() && !base_done {
            let want = limit - rows.len();
            let fetched = base.scan(&base_cursor, end, want);
            debug_assert!(fetched.len() <= want, "KvRead::scan returned over its limit");
            base_done = fetched.len() < want;
            if let Some((last, _)) = fetched.last() {
                // The smallest key after `last`: the next page starts strictly past it.
                base_cursor = last.clone();
                base_cursor.push(0);
            }
            page = fetched.into_iter();
        }
        let base_key = page.as_slice().first().map(|(key, _)| key.as_slice());
        let row = match (base_key, overlay.peek_key()) {
            (None, None) => break,
            (Some(_), None) => page.next(),
            (Some(b), Some(o)) if b < o => page.next(),
            (Some(b), Some(o)) => {
                if b == o {
                    // The overlay's entry replaces (or deletes) the base row.
                    page.next();
                }
                overlay.next_visible()
            }
            (None, Some(_)) => overlay.next_visible(),
        };
        if let Some((key, value)) = row {
            debug_assert!(rows.last().is_none_or(|(prev, _)| *prev < key));
            bytes += key.len() + value.len();
            if bytes > MAX_SCAN_BYTES {
                return Err(HostFault::Rejected(format!("scan: more than {MAX_SCAN_BYTES} bytes in one call")));
            }
            rows.push((key, value));
        }
    }
    Ok(rows)
}

type Range<'a> = std::collections::btree_map::Range<'a, Vec<u8>, Option<Vec<u8>>>;
type KeyRange<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// A k-way merge of overlay layers in key order; for a key in several layers the first layer
/// wins and the others' entries are skipped.
struct OverlayMerge<'a> {
    heads: Vec<std::iter::Peekable<Range<'a>>>,
}

impl<'a> OverlayMerge<'a> {
    fn new(layers: &[&'a Overlay], range: KeyRange<'_>) -> OverlayMerge<'a> {
        let heads = layers.iter().map(|layer| layer.range::<[u8], _>(range).peekable()).collect();
        OverlayMerge { heads }
    }

    fn peek_key(&mut self) -> Option<&[u8]> {
        self.heads.iter_mut().filter_map(|head| head.peek().map(|(key, _)| key.as_slice())).min()
    }

    /// Takes the smallest key; `None` inside `Some` for a delete (it hides the base row but
    /// yields nothing).
    fn next_entry(&mut self) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
        let key = self.peek_key()?.to_vec();
        let mut winner = None;
        for head in &mut self.heads {
            if head.peek().is_some_and(|(k, _)| **k == key) {
                let (_, value) = head.next().expect("peeked");
                if winner.is_none() {
                    winner = Some(value.clone());
                }
            }
        }
        Some((key, winner.expect("the smallest key is in some layer")))
    }

    /// The next overlay entry as a visible row, or `None` for a delete.
    fn next_visible(&mut self) -> Option<Row> {
        let (key, value) = self.next_entry()?;
        value.map(|value| (key, value))
    }
}
