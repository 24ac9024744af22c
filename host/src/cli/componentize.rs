//! The module file an author hands to `nacre module install` or `dry-run`: a component is
//! uploaded as it is; a core module (what `cargo build --target wasm32-unknown-unknown` makes
//! of a crate over `nacre-guest-sdk`) is turned into a component here first, by the same code
//! and checks the build script applies to the built-in guests (`contract`).
//!
//! This is the client's work on purpose: a node accepts components only, so a core module,
//! hostile or not, never reaches a componentizer on the server.

mod contract;

use std::path::Path;

use anyhow::bail;
use wasmparser::Parser;

/// What a file's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A core WebAssembly module (`\0asm`, version 1, layer 0).
    Core,
    /// A component (`\0asm`, the component-model version, layer 1).
    Component,
}

/// The form of `bytes`, from their header; `None` for anything that is neither.
pub fn form(bytes: &[u8]) -> Option<Form> {
    if Parser::is_core_wasm(bytes) {
        Some(Form::Core)
    } else if Parser::is_component(bytes) {
        Some(Form::Component)
    } else {
        None
    }
}

/// A module file made ready to upload.
#[derive(Debug)]
pub struct Upload {
    /// The component to send.
    pub component: Vec<u8>,
    /// The line that says the file was a core module and was componentized here.
    pub notice: Option<String>,
}

/// The component to upload for `file`, whose contents are `bytes`: the bytes themselves when
/// they are a component, the component made from them when they are a core module that
/// meets the state-machine contract, else an error naming the file.
pub fn for_upload(file: &Path, bytes: Vec<u8>) -> anyhow::Result<Upload> {
    let name = file.display();
    match form(&bytes) {
        Some(Form::Component) => Ok(Upload { component: bytes, notice: None }),
        Some(Form::Core) => {
            let component = contract::componentize(&bytes).map_err(|reason| {
                anyhow::anyhow!(
                    "{name} is a core WebAssembly module but not a Nacre state-machine guest (a cdylib over \
                     nacre-guest-sdk with export_state_machine!): {reason}"
                )
            })?;
            let notice = format!(
                "componentized {name}: core module ({} KiB) → component ({} KiB)\n",
                bytes.len() / 1024,
                component.len() / 1024
            );
            Ok(Upload { component, notice: Some(notice) })
        }
        None => bail!(
            "{name} is neither a WebAssembly component nor a core module (no `\\0asm` header of either); \
             give the .wasm file that `cargo build --release --target wasm32-unknown-unknown` writes"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// The smallest core module: the header alone (a valid, empty module).
    const EMPTY_CORE: &[u8] = b"\0asm\x01\0\0\0";

    /// The config guest's core module, as the build script's nested build left it (the build
    /// script runs before this crate compiles, so it is there).
    fn config_core() -> Vec<u8> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/wasm-guests/wasm32-unknown-unknown/release/nacre_config.wasm");
        std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    #[test]
    fn tells_core_modules_from_components_and_from_anything_else() {
        assert_eq!(form(EMPTY_CORE), Some(Form::Core));
        assert_eq!(form(&config_core()), Some(Form::Core));
        assert_eq!(form(crate::builtin::CONFIG), Some(Form::Component));
        assert_eq!(form(crate::builtin::NAMING), Some(Form::Component));
        for other in [&b""[..], b"\0asm", b"\0asm\x02\0\0\0", b"\x7fELF\x02\x01\x01\0", b"(module)"] {
            assert_eq!(form(other), None, "{other:?}");
        }
    }

    #[test]
    fn a_component_passes_through_unchanged() {
        let upload = for_upload(Path::new("config.wasm"), crate::builtin::CONFIG.to_vec()).unwrap();
        assert_eq!(upload.component, crate::builtin::CONFIG);
        assert!(upload.notice.is_none());
    }

    #[test]
    fn a_guest_core_module_becomes_the_component_the_build_embeds() {
        let upload = for_upload(Path::new("nacre_config.wasm"), config_core()).unwrap();
        assert_eq!(form(&upload.component), Some(Form::Component));
        assert!(upload.component == crate::builtin::CONFIG, "the CLI and the build script componentize alike");
        let notice = upload.notice.unwrap();
        assert!(notice.starts_with("componentized nacre_config.wasm: core module ("), "{notice}");
    }

    #[test]
    fn a_core_module_without_the_contract_is_refused_naming_the_file() {
        let err = for_upload(Path::new("plain.wasm"), EMPTY_CORE.to_vec()).unwrap_err().to_string();
        assert!(
            err.starts_with("plain.wasm is a core WebAssembly module but not a Nacre state-machine guest"),
            "{err}"
        );
        assert!(err.contains("missing exports"), "{err}");
    }

    #[test]
    fn anything_else_is_refused_naming_the_file() {
        let err = for_upload(Path::new("notes.txt"), b"hello".to_vec()).unwrap_err().to_string();
        assert!(err.starts_with("notes.txt is neither a WebAssembly component nor a core module"), "{err}");
    }
}
