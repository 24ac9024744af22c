//! `nacre module new`: a guest module crate that builds with plain cargo, written from the
//! templates in `template/` (included in the binary) with `{{placeholder}}`s filled in.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;
use std::path::PathBuf;

use anyhow::Context as _;
use anyhow::bail;

/// The guest SDK this binary was built next to: the default `--sdk`. The SDK is not on
/// crates.io, so a new crate depends on it by path.
pub const DEFAULT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-modules/sdk");

/// The SDK's package name, looked for in `--sdk`'s Cargo.toml.
const SDK_PACKAGE: &str = "nacre-guest-sdk";

const CARGO_TOML: &str = include_str!("template/Cargo.toml.tmpl");
const CARGO_CONFIG: &str = include_str!("template/cargo-config.toml.tmpl");
const GITIGNORE: &str = include_str!("template/gitignore.tmpl");
const LIB_RS: &str = include_str!("template/lib.rs.tmpl");
const NAMING_HOST_QUERIES: &str = include_str!("template/naming-host-queries.rs.tmpl");
const README: &str = include_str!("template/README.md.tmpl");

/// The module kind a new crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Naming,
    Config,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Naming => "naming",
            Kind::Config => "config",
        }
    }

    /// The `ModuleKind` variant (and how `nacre module install` prints the kind).
    fn variant(self) -> &'static str {
        match self {
            Kind::Naming => "Naming",
            Kind::Config => "Config",
        }
    }

    /// Queries the host makes of every module of this kind by itself.
    fn host_queries(self) -> &'static str {
        match self {
            Kind::Naming => NAMING_HOST_QUERIES,
            Kind::Config => "",
        }
    }
}

/// What `nacre module new` writes: paths relative to the crate's directory, and contents.
pub fn files(name: &str, kind: Kind, sdk: &Path) -> anyhow::Result<Vec<(PathBuf, String)>> {
    check_name(name)?;
    let Some(sdk_path) = sdk.to_str() else { bail!("the SDK path {} is not UTF-8", sdk.display()) };
    let crate_name = name.replace('-', "_");
    let type_name = type_name(name);
    let sdk_path = toml_escape(sdk_path);
    let vars = [
        ("name", name),
        ("crate_name", crate_name.as_str()),
        ("type_name", type_name.as_str()),
        ("kind", kind.name()),
        ("kind_variant", kind.variant()),
        ("sdk_path", sdk_path.as_str()),
        ("host_queries", kind.host_queries()),
    ];
    let render = |template: &str| render(template, &vars);
    Ok(vec![
        (PathBuf::from("Cargo.toml"), render(CARGO_TOML)?),
        (PathBuf::from(".cargo/config.toml"), render(CARGO_CONFIG)?),
        (PathBuf::from(".gitignore"), render(GITIGNORE)?),
        (PathBuf::from("src/lib.rs"), render(LIB_RS)?),
        (PathBuf::from("README.md"), render(README)?),
    ])
}

/// Write a new crate `dir/name` for a module of `kind` over the SDK at `sdk`; refuses when
/// `dir/name` exists. Returns the crate's directory and the SDK's, as the crate names it.
pub fn create(dir: &Path, name: &str, kind: Kind, sdk: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let sdk = locate_sdk(sdk)?;
    let files = files(name, kind, &sdk)?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let root = dir.join(name);
    // One call that fails on an existing directory: nothing of it is ever overwritten.
    match fs::create_dir(&root) {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            bail!("{} already exists; refusing to overwrite it (choose another NAME or --dir)", root.display())
        }
        other => other.with_context(|| format!("creating {}", root.display()))?,
    }
    for (path, contents) in files {
        let path = root.join(path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok((root, sdk))
}

/// What `nacre module new` prints: what it made, and the next commands.
pub fn created_message(root: &Path, name: &str, kind: Kind, sdk: &Path) -> String {
    let crate_name = name.replace('-', "_");
    format!(
        "created {kind} module {name} in {root} (guest SDK: {sdk})\nnext:\n  cd {root}\n  cargo test\n  \
         cargo build --release --target wasm32-unknown-unknown\n  \
         nacre module install target/wasm32-unknown-unknown/release/{crate_name}.wasm\n  \
         nacre module activate --namespace NAMESPACE --kind {kind} MODULE_ID\n",
        kind = kind.name(),
        root = root.display(),
        sdk = sdk.display(),
    )
}

/// The SDK directory as an absolute path (the new crate lives elsewhere), checked to be the
/// SDK's.
pub fn locate_sdk(sdk: &Path) -> anyhow::Result<PathBuf> {
    let hint = "pass --sdk with the guest-modules/sdk directory of a Nacre checkout";
    let dir = fs::canonicalize(sdk).with_context(|| format!("no guest SDK at {}; {hint}", sdk.display()))?;
    let manifest = fs::read_to_string(dir.join("Cargo.toml"))
        .with_context(|| format!("no guest SDK at {} (no Cargo.toml); {hint}", dir.display()))?;
    if !manifest.lines().any(|line| line.trim() == format!("name = \"{SDK_PACKAGE}\"")) {
        bail!("{} is not the guest SDK (its Cargo.toml is not package {SDK_PACKAGE}); {hint}", dir.display());
    }
    Ok(dir)
}

/// A module name is a cargo package name that is also a plain directory name.
fn check_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !starts_with_letter || !chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        bail!("invalid module name {name:?}: letters, digits, `-` and `_`, starting with a letter");
    }
    Ok(())
}

/// `my-kv_store` → `MyKvStore`: the module's type in its lib.rs.
fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// The inside of a TOML basic string.
fn toml_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c if c.is_control() => format!("\\u{:04X}", u32::from(c)).chars().collect(),
            c => vec![c],
        })
        .collect()
}

/// `template` with every `{{key}}` replaced by its value in `vars`; an unknown or unclosed
/// placeholder is an error.
fn render(template: &str, vars: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { bail!("unclosed placeholder in a template: {:.40}", &rest[start..]) };
        let key = &after[..end];
        let Some((_, value)) = vars.iter().find(|(name, _)| *name == key) else {
            bail!("unknown placeholder {{{{{key}}}}} in a template");
        };
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file<'a>(files: &'a [(PathBuf, String)], path: &str) -> &'a str {
        files.iter().find(|(p, _)| p == Path::new(path)).map(|(_, c)| c.as_str()).unwrap()
    }

    #[test]
    fn placeholders_are_substituted_and_unknown_ones_refused() {
        let vars = [("name", "my-kv"), ("kind", "config")];
        assert_eq!(render("a {{name}} of {{kind}}, {}", &vars).unwrap(), "a my-kv of config, {}");
        assert_eq!(render("no placeholders", &vars).unwrap(), "no placeholders");
        assert!(render("{{nmae}}", &vars).unwrap_err().to_string().contains("unknown placeholder {{nmae}}"));
        assert!(render("{{name", &vars).unwrap_err().to_string().contains("unclosed"));
    }

    #[test]
    fn every_template_renders_completely_for_both_kinds() {
        for kind in [Kind::Naming, Kind::Config] {
            let files = files("my-kv_store", kind, Path::new("/opt/nacre/guest-modules/sdk")).unwrap();
            for (path, contents) in &files {
                assert!(!contents.contains("{{"), "{} keeps a placeholder:\n{contents}", path.display());
            }
            let cargo = file(&files, "Cargo.toml");
            assert!(cargo.contains("name = \"my-kv_store\""), "{cargo}");
            assert!(cargo.contains("crate-type = [\"cdylib\", \"rlib\"]"), "{cargo}");
            assert!(cargo.contains("nacre-guest-sdk = { path = \"/opt/nacre/guest-modules/sdk\" }"), "{cargo}");
            let lib = file(&files, "src/lib.rs");
            assert!(lib.contains("pub struct MyKvStore;"), "{lib}");
            assert!(lib.contains(&format!("kind: ModuleKind::{},", kind.variant())), "{lib}");
            assert!(lib.contains("export_state_machine!(MyKvStore);"), "{lib}");
            assert_eq!(lib.contains("\"naming.sweep\""), kind == Kind::Naming, "{lib}");
            let config = file(&files, ".cargo/config.toml");
            assert!(config.contains("link-arg=--initial-memory=4194304"), "{config}");
            let readme = file(&files, "README.md");
            assert!(readme.contains("target/wasm32-unknown-unknown/release/my_kv_store.wasm"), "{readme}");
            assert!(readme.contains(&format!("--kind {}", kind.name())), "{readme}");
        }
    }

    #[test]
    fn names_must_be_package_names_and_sdk_paths_are_toml_escaped() {
        for bad in ["", "1kv", "-kv", "my kv", "kv/..", "../kv", "kv.rs", "kvé"] {
            assert!(files(bad, Kind::Config, Path::new("/sdk")).is_err(), "{bad:?}");
        }
        assert_eq!(type_name("kv"), "Kv");
        assert_eq!(type_name("my-kv__2"), "MyKv2");
        assert_eq!(toml_escape(r#"C:\a "b""#), r#"C:\\a \"b\""#);
    }

    #[test]
    fn an_existing_directory_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (root, sdk) = create(dir.path(), "kv", Kind::Config, Path::new(DEFAULT_SDK)).unwrap();
        assert_eq!(root, dir.path().join("kv"));
        assert_eq!(sdk, fs::canonicalize(DEFAULT_SDK).unwrap());
        for path in ["Cargo.toml", ".cargo/config.toml", ".gitignore", "src/lib.rs", "README.md"] {
            assert!(root.join(path).is_file(), "{path}");
        }
        let cargo = fs::read_to_string(root.join("Cargo.toml")).unwrap();
        assert!(cargo.contains(&format!("path = \"{}\"", sdk.display())), "an absolute, clean SDK path: {cargo}");

        fs::write(root.join("src/lib.rs"), "// mine").unwrap();
        let err = create(dir.path(), "kv", Kind::Naming, Path::new(DEFAULT_SDK)).unwrap_err().to_string();
        assert!(err.contains("already exists; refusing to overwrite"), "{err}");
        assert_eq!(fs::read_to_string(root.join("src/lib.rs")).unwrap(), "// mine");

        let empty = dir.path().join("empty");
        fs::create_dir(&empty).unwrap();
        assert!(create(dir.path(), "empty", Kind::Config, Path::new(DEFAULT_SDK)).is_err(), "even an empty one");
    }

    #[test]
    fn an_sdk_path_that_is_not_the_sdk_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = create(dir.path(), "kv", Kind::Config, &dir.path().join("nowhere")).unwrap_err().to_string();
        assert!(err.contains("no guest SDK at") && err.contains("--sdk"), "{err}");
        let workspace = Path::new(DEFAULT_SDK).join("../..");
        let err = create(dir.path(), "kv", Kind::Config, &workspace).unwrap_err().to_string();
        assert!(err.contains("is not the guest SDK"), "{err}");
        assert!(!dir.path().join("kv").exists(), "nothing written");
    }
}
