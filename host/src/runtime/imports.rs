//! The host side of the world's imports (`store`, `events`, `progress`), wired into the linker
//! by hand rather than through `bindgen!`'s `Host` traits: `begin-command` must set the store's
//! fuel and every import charges fuel for the bytes it moves, and the generated traits only see
//! the store's data (store access in bindings needs Wasmtime's component-model-async feature).
//!
//! Exactly the world's imports are defined: a component that imports anything else (WASI, a
//! clock, another version of the package) fails to link and is rejected at load.

use wasmtime::StoreContextMut;
use wasmtime::component::Linker;

use super::host_state::{HostFault, HostState};
use super::limits::{HOST_CALL_BYTES_PER_FUEL, HOST_CALL_FUEL};

const TYPES_INTERFACE: &str = "nacre:machine/types@0.1.0";
const STORE_INTERFACE: &str = "nacre:machine/store@0.1.0";
const EVENTS_INTERFACE: &str = "nacre:machine/events@0.1.0";
const PROGRESS_INTERFACE: &str = "nacre:machine/progress@0.1.0";

type Cx<'a> = StoreContextMut<'a, HostState>;

pub(crate) fn define(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    // The types interface carries no functions, but a component that uses its types imports it.
    linker.instance(TYPES_INTERFACE)?;

    let mut store = linker.instance(STORE_INTERFACE)?;
    store.func_wrap("get", |mut cx: Cx<'_>, (key,): (Vec<u8>,)| {
        charge(&mut cx, HOST_CALL_FUEL, key.len())?;
        let value = cx.data().get(&key)?;
        charge(&mut cx, 0, value.as_ref().map_or(0, Vec::len))?;
        Ok((value,))
    })?;
    store.func_wrap("put", |mut cx: Cx<'_>, (key, value): (Vec<u8>, Vec<u8>)| {
        charge(&mut cx, HOST_CALL_FUEL, key.len() + value.len())?;
        cx.data_mut().put(key, value)?;
        Ok(())
    })?;
    store.func_wrap("delete", |mut cx: Cx<'_>, (key,): (Vec<u8>,)| {
        charge(&mut cx, HOST_CALL_FUEL, key.len())?;
        cx.data_mut().delete(key)?;
        Ok(())
    })?;
    store.func_wrap("scan", |mut cx: Cx<'_>, (start, end, limit): (Vec<u8>, Vec<u8>, u32)| {
        charge(&mut cx, HOST_CALL_FUEL, start.len() + end.len())?;
        let rows = cx.data().scan(&start, &end, limit)?;
        let bytes = rows.iter().map(|(k, v)| k.len() + v.len()).sum();
        charge(&mut cx, 0, bytes)?;
        Ok((rows,))
    })?;

    let mut events = linker.instance(EVENTS_INTERFACE)?;
    events.func_wrap("emit", |mut cx: Cx<'_>, (topic, key): (String, String)| {
        charge(&mut cx, HOST_CALL_FUEL, topic.len() + key.len())?;
        cx.data_mut().emit(topic, key)?;
        Ok(())
    })?;

    let mut progress = linker.instance(PROGRESS_INTERFACE)?;
    progress.func_wrap("begin-command", |mut cx: Cx<'_>, (position,): (u32,)| {
        if let Some(fuel) = cx.data_mut().begin_command(position)? {
            cx.set_fuel(fuel)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// Charges fuel for host work: `fixed` plus one unit per [`HOST_CALL_BYTES_PER_FUEL`] bytes
/// moved. Deterministic like the guest's own fuel, so it may decide outcomes.
fn charge(cx: &mut Cx<'_>, fixed: u64, bytes: usize) -> wasmtime::Result<()> {
    let cost = fixed + bytes as u64 / HOST_CALL_BYTES_PER_FUEL;
    let fuel = cx.get_fuel()?;
    if fuel < cost {
        cx.set_fuel(0)?;
        return Err(HostFault::OutOfFuel.into());
    }
    cx.set_fuel(fuel - cost)?;
    Ok(())
}
