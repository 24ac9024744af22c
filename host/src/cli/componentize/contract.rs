//! The state-machine contract, checked where a core module becomes a component: by
//! `host/build.rs` for the built-in guests and by `nacre module install` and `dry-run` for an
//! author's module, so that both accept exactly the same modules.
//!
//! The build script includes this file by path (`#[path]`): a build script cannot depend on
//! the crate it builds. So this file uses only `std` and `wit-component` (the build script's
//! one dependency) and names nothing of the crate; its errors are plain strings.

use std::collections::BTreeSet;

use wit_component::{ComponentEncoder, DecodedWasm};

/// The only interfaces a guest may import: the WIT contract's, and nothing of WASI.
pub const ALLOWED_IMPORTS: &[&str] = &[
    "nacre:machine/types@0.1.0",
    "nacre:machine/store@0.1.0",
    "nacre:machine/events@0.1.0",
    "nacre:machine/progress@0.1.0",
];

/// The world's functions every guest exports.
pub const REQUIRED_EXPORTS: &[&str] = &["describe", "apply", "query", "migrate"];

/// Wraps a core module (built against `nacre-guest-sdk`, which embeds the world's type
/// information) into a component, validated, and checks it against the contract.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>, String> {
    let component = ComponentEncoder::default()
        .module(core)
        .and_then(|encoder| encoder.validate(true).encode())
        .map_err(|e| format!("{e:#}"))?;
    check(&component)?;
    Ok(component)
}

/// A component imports only the contract's interfaces and exports the four world functions.
pub fn check(component: &[u8]) -> Result<(), String> {
    let decoded = wit_component::decode(component).map_err(|e| format!("{e:#}"))?;
    let DecodedWasm::Component(resolve, world) = decoded else {
        return Err("not a component".into());
    };
    let world = &resolve.worlds[world];
    let imports: BTreeSet<String> = world.imports.keys().map(|key| resolve.name_world_key(key)).collect();
    let exports: BTreeSet<String> = world.exports.keys().map(|key| resolve.name_world_key(key)).collect();
    // The world's `use types.{..}` shows up as imports of bare type names; anything else
    // (WASI, say) is an interface or function, which must be one of the contract's.
    let is_type = |name: &str| resolve.types.iter().any(|(_, ty)| ty.name.as_deref() == Some(name));
    let foreign: Vec<_> =
        imports.iter().filter(|name| !ALLOWED_IMPORTS.contains(&name.as_str()) && !is_type(name.as_str())).collect();
    if !foreign.is_empty() {
        return Err(format!("imports outside the contract: {foreign:?}"));
    }
    let missing: Vec<_> = REQUIRED_EXPORTS.iter().filter(|name| !exports.contains(**name)).collect();
    if !missing.is_empty() {
        return Err(format!("missing exports {missing:?} (exports: {exports:?})"));
    }
    Ok(())
}
