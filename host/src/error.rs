//! The host's errors: each one sentence that names the thing and the fix, and each
//! with its exit code (2 for bad input or an unusable plugin, 1 for a failure at run
//! time).

use std::path::PathBuf;

use thiserror::Error;

/// Exit code for bad input: a usage error, a bad option, an unusable plugin.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code for a failure while running (a mount that would not come up).
pub const EXIT_FAILURE: i32 = 1;

fn list(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        return "no folder".to_owned();
    }
    dirs.iter().map(|dir| dir.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// Why a plugin library could not be used.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("plugin `{plugin}` not found: no {file_name} in {}; pass --plugin-dir DIR, set FUSEHOST_PLUGIN_PATH, or give the path to the .so", list(.searched))]
    NotFound { plugin: String, file_name: String, searched: Vec<PathBuf> },

    #[error("plugin `{plugin}` not found as {file_name}, but {} is there: its crate builds a Rust library, not a plugin; add `crate-type = [\"cdylib\"]` under [lib] in its Cargo.toml and build again", .found.display())]
    BuiltAsRlib { plugin: String, file_name: String, found: PathBuf },

    #[error("plugin `{plugin}` not found as {file_name}, but {} calls itself `{plugin}`: mount it as `{file_plugin}` (the file name decides), or set `[lib] name = \"fusehost_{plugin}\"` in its Cargo.toml so that both names agree", .found.display())]
    NamedOtherwise { plugin: String, file_name: String, found: PathBuf, file_plugin: String },

    #[error("plugin file {} does not exist", .path.display())]
    MissingFile { path: PathBuf },

    #[error("{} is not a loadable shared library: {reason}", .path.display())]
    NotALibrary { path: PathBuf, reason: String },

    #[error("{} is not a fusehost plugin: it exports no `fusehost_abi_major` symbol (plugins are built with fusehost-plugin-api's export_plugin!)", .path.display())]
    NotAPlugin { path: PathBuf },

    #[error("plugin {} was built for fusehost ABI {plugin_major}{}, but this host speaks ABI {host_major} (fusehost-abi {host_version}): rebuild the plugin against a fusehost-plugin-api for ABI {host_major}", .path.display(), .plugin_version.as_ref().map(|v| format!(" (fusehost-abi {v})")).unwrap_or_default())]
    IncompatibleAbi {
        path: PathBuf,
        plugin_major: u32,
        plugin_version: Option<String>,
        host_major: u32,
        host_version: String,
    },

    #[error("plugin {} claims fusehost ABI {plugin_version} but its types differ from this host's (fusehost-abi {host_version}): rebuild it against a released fusehost-plugin-api (run with -v for abi_stable's layout report)", .path.display())]
    LayoutMismatch { path: PathBuf, plugin_version: String, host_version: String, detail: String },

    #[error("plugin {} was refused by abi_stable's checks: {}", .path.display(), first_line(.detail))]
    Rejected { path: PathBuf, detail: String },

    #[error("refusing to load plugin {} as root: {reason}, so another user could put code into this process; fix it with `{fix}`", .path.display())]
    Unsafe { path: PathBuf, reason: String, fix: String },
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim()
}

impl LoadError {
    /// abi_stable's full report, for `-v`.
    pub fn detail(&self) -> Option<&str> {
        match self {
            LoadError::LayoutMismatch { detail, .. } | LoadError::Rejected { detail, .. } => Some(detail),
            _ => None,
        }
    }
}

/// Anything that stops a fusehost command.
#[derive(Debug, Error)]
pub enum HostError {
    #[error(transparent)]
    Load(#[from] LoadError),

    #[error("{0}")]
    Usage(String),

    /// A config file that cannot be used as it is.
    #[error("{0}")]
    Config(String),

    #[error("plugin `{plugin}` refused the options of mount `{mount}`: {message}")]
    PluginRefused { plugin: String, mount: String, message: String },

    #[error("plugin `{plugin}` could not set up mount `{mount}`: {message}")]
    PluginFailed { plugin: String, mount: String, message: String },

    #[error("mount `{mount}` at {}: {message}", .path.display())]
    Mountpoint { mount: String, path: PathBuf, message: String },

    #[error("mount `{mount}` at {} failed: {source}", .path.display())]
    MountFailed { mount: String, path: PathBuf, source: std::io::Error },

    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

impl HostError {
    pub fn exit_code(&self) -> i32 {
        match self {
            HostError::Load(_)
            | HostError::Usage(_)
            | HostError::Config(_)
            | HostError::PluginRefused { .. }
            | HostError::PluginFailed { .. }
            | HostError::Mountpoint { .. } => EXIT_BAD_INPUT,
            HostError::MountFailed { .. } | HostError::Io { .. } => EXIT_FAILURE,
        }
    }
}
