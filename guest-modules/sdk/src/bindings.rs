//! The generated WIT bindings. Guests never name these: the SDK converts to its own types.
//!
//! `pub_export_macro` makes the generated export macro usable from the guest crates, and
//! `default_bindings_module` / `runtime_path` make the code it expands to resolve through this
//! crate, so a guest needs neither `wit-bindgen` as a dependency nor bindings of its own.

wit_bindgen::generate!({
    path: "../../wit",
    world: "state-machine",
    pub_export_macro: true,
    export_macro_name: "__export_state_machine_world",
    default_bindings_module: "::nacre_guest_sdk::bindings",
    runtime_path: "::nacre_guest_sdk::__wit_bindgen_rt",
});
