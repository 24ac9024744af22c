//! Module bytes: `runtime::Runtime::load` (a Cranelift compile, then the guest's `describe`)
//! on mutated built-in components and random bytes, and `Operation::InstallModule`'s
//! validation of the same bytes.

use std::time::Duration;

use super::Inputs;
use super::Plan;
use super::mutate::Rng;
use crate::builtin;
use crate::runtime::Runtime;
use crate::runtime::RuntimeError;
use crate::runtime::limits::MAX_MODULE_BYTES;
use crate::state::Operation;

/// Longest one load may take before it counts as a hang (a compile takes about half a second).
const LOAD_DEADLINE: Duration = Duration::from_secs(120);
/// Loads per runtime: loaded modules stay in their runtime, so a long run starts new ones.
const LOADS_PER_RUNTIME: u64 = 16;

/// The wasm preambles: a component's, and a core module's.
const COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";
const CORE: &[u8] = b"\0asm\x01\0\0\0";

fn generate(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(256);
    let tail = rng.bytes(len);
    match rng.below(32) {
        0 => [COMPONENT, &vec![0; MAX_MODULE_BYTES + 1 - COMPONENT.len()]].concat(),
        1..=10 => [COMPONENT, &tail].concat(),
        11..=16 => [CORE, &tail].concat(),
        17..=20 => [b"\0asm".as_slice(), &tail].concat(),
        // The start of a built-in, cut short.
        21..=24 => builtin::CONFIG[..rng.below(builtin::CONFIG.len())].to_vec(),
        _ => tail,
    }
}

/// One input: the load's verdict and validation agree, and neither panics or hangs.
fn check(runtime: &Runtime, input: &[u8]) -> &'static str {
    let verdict = Operation::InstallModule { bytes: input.to_vec() }.validate();
    if verdict.is_ok() {
        assert!(
            input.starts_with(b"\0asm") && input.len() <= MAX_MODULE_BYTES,
            "validate accepted {} bytes that are not a bounded wasm binary",
            input.len()
        );
    }
    let loaded = {
        let (runtime, bytes) = (runtime.clone(), input.to_vec());
        super::within(LOAD_DEADLINE, move || runtime.load(&bytes))
    };
    match loaded {
        Ok((id, info)) => {
            assert_eq!(id, crate::runtime::module_id(input), "a module's id is the sha256 of its bytes");
            assert!(verdict.is_ok(), "a module that loads is refused by validate: {verdict:?}");
            assert!(!info.name.is_empty() && !info.version.is_empty(), "a module loaded without a name or version");
            let again = runtime.load(input).expect("a loaded module loads again");
            assert_eq!((again.0, again.1.name), (id, info.name), "a second load answers differently");
            "loaded"
        }
        Err(error) => {
            assert!(error.is_deterministic(), "a verdict on module bytes that is not deterministic: {error}");
            let too_large = matches!(error, RuntimeError::TooLarge { .. });
            assert_eq!(too_large, input.len() > MAX_MODULE_BYTES, "TooLarge for {} bytes", input.len());
            if too_large {
                assert_eq!(
                    verdict.as_ref().map_err(|e| e.field.as_str()),
                    Err("module"),
                    "validate took a module over the limit"
                );
            }
            if verdict.is_ok() { "valid but refused" } else { "refused" }
        }
    }
}

#[test]
fn load() {
    let plan = Plan::slow_from_env("modules::load");
    let corpus = vec![builtin::NAMING.to_vec(), builtin::CONFIG.to_vec(), builtin::fixtures::HOSTILE.to_vec()];
    let inputs = Inputs { corpus: &corpus, generate: &generate, max_ops: 3 };
    let mut runtime = Runtime::new(None).expect("runtime");
    let mut loads = 0;
    super::run(&plan, &inputs, |_, input| {
        loads += 1;
        if loads % LOADS_PER_RUNTIME == 0 {
            runtime = Runtime::new(None).expect("runtime");
        }
        check(&runtime, input)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_ins_load_and_garbage_does_not() {
        let runtime = Runtime::new(None).expect("runtime");
        assert_eq!(check(&runtime, builtin::CONFIG), "loaded");
        assert_eq!(check(&runtime, b"hello"), "refused");
        assert_eq!(check(&runtime, &[COMPONENT, b"junk"].concat()), "valid but refused");
        let too_large = [COMPONENT, &vec![0; MAX_MODULE_BYTES]].concat();
        assert_eq!(check(&runtime, &too_large), "refused");
    }
}
