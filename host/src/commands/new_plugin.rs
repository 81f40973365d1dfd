//! `fusehost new-plugin NAME DIR`: writes a plugin crate to start from, with the
//! right `Cargo.toml` (a `cdylib` named `fusehost_NAME`, the SDK as its only
//! dependency), hello's shape, and one test of each kind: the ABI harness (no root)
//! and an in-process mount.
//!
//! The SDK is taken from the fusehost sources this binary was built from when they
//! are still there (path dependencies), else from crates.io by version; `--sdk DIR`
//! points at a checkout.

use std::path::{Path, PathBuf};

use crate::commands::say;
use crate::error::HostError;

/// What `fusehost new-plugin` was asked for.
#[derive(Clone, Debug)]
pub struct NewPluginArgs {
    pub name: String,
    pub dir: PathBuf,
    /// A fusehost checkout whose `plugin-api/` to depend on.
    pub sdk: Option<PathBuf>,
}

const FILES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("new_plugin/Cargo.toml.tmpl")),
    ("src/lib.rs", include_str!("new_plugin/lib.rs.tmpl")),
    ("tests/harness.rs", include_str!("new_plugin/harness.rs.tmpl")),
    ("tests/mount.rs", include_str!("new_plugin/mount.rs.tmpl")),
];

/// The checkout this binary was built from, if it is still there.
fn built_from() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    root.join("plugin-api/Cargo.toml").is_file().then(|| root.to_path_buf())
}

/// A plugin name becomes a file name and a Rust crate name: lowercase letters,
/// digits and `_`, starting with a letter.
fn check_name(name: &str) -> Result<(), HostError> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|first| first.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(HostError::Usage(format!(
            "plugin name `{name}`: use lowercase letters, digits and `_`, starting with a letter (it becomes \
             libfusehost_{name}.so and a Rust crate name)"
        )))
    }
}

fn type_name(name: &str) -> String {
    name.split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect::<String>()
        + "Fs"
}

pub fn run(args: NewPluginArgs) -> Result<(), HostError> {
    check_name(&args.name)?;
    if args.dir.exists() && std::fs::read_dir(&args.dir).map(|mut entries| entries.next().is_some()).unwrap_or(true) {
        return Err(HostError::Usage(format!(
            "{} already exists and is not empty: give a new folder",
            args.dir.display()
        )));
    }
    let sdk = args.sdk.clone().or_else(built_from);
    let (sdk_dependency, test_dependency) = match &sdk {
        Some(root) => {
            let root =
                root.canonicalize().map_err(|error| HostError::Usage(format!("--sdk {}: {error}", root.display())))?;
            (
                format!("fusehost-plugin-api = {{ path = {:?} }}", root.join("plugin-api").display().to_string()),
                format!(
                    "fusehost-plugin-test = {{ path = {:?} }}",
                    root.join("plugin-api/test-support").display().to_string()
                ),
            )
        }
        None => (
            format!("fusehost-plugin-api = \"{}\"", fusehost_plugin_api::SDK_VERSION),
            "fusehost-plugin-test = \"0.1\"".to_owned(),
        ),
    };
    let crate_name = format!("fusehost_{}", args.name);
    for (relative, template) in FILES {
        let text = template
            .replace("{{name}}", &args.name)
            .replace("{{type}}", &type_name(&args.name))
            .replace("{{crate}}", &crate_name)
            .replace("{{sdk_dependency}}", &sdk_dependency)
            .replace("{{test_dependency}}", &test_dependency);
        let path = args.dir.join(relative);
        let io = |source| HostError::Io { context: format!("writing {}", path.display()), source };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, text).map_err(io)?;
    }
    say(format_args!(
        "created plugin `{}` in {}: `cargo test` there runs its harness test (and its mount test, as root); \
         `cargo build --release` makes target/release/libfusehost_{}.so",
        args.name,
        args.dir.display(),
        args.name
    ));
    Ok(())
}
