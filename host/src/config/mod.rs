//! The mount configuration file (TOML): parsing, and every check that needs no plugin.
//!
//! ```toml
//! [host]
//! plugin_dir = "../target/release"   # relative paths resolve against this file's folder
//! log = "info"                       # an EnvFilter; RUST_LOG overrides it
//! control_socket = "/run/fusehost/fusehost.sock"
//! metrics_listen = "127.0.0.1:9464"   # serve Prometheus' /metrics (off by default)
//!
//! [[mount]]
//! name = "scratch"
//! path = "/tmp/fusehost/scratch"
//! plugin = "memfs"
//! threads = 2
//! [mount.options]                    # the plugin's own options
//! max_size = "512MiB"
//! ```
//!
//! Unknown keys are errors everywhere. Every error names `file:line:col` and what to
//! do; a misspelt key gets the nearest valid one as a hint, a value of the wrong type
//! names its key. A config without any `[[mount]]`, duplicate names or paths and
//! nested mountpoints are refused here, before anything mounts. Every check is near
//! linear in the file's size, and the file's size and its number of mounts are
//! bounded ([`MAX_CONFIG_BYTES`], [`MAX_MOUNTS`]) so that a runaway file is refused in
//! moments instead of eating memory.
//!
//! A config file `NAME.toml` may have drop-ins: every `NAME.d/*.toml`, read in name
//! order, adds `[[mount]]`s (and nothing else), so that packages can add mounts without
//! editing the operator's file. Reading files is in `files.rs`, positions in `place.rs`,
//! the checks across all mounts in `unique.rs`.

use std::fmt;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::{Spanned, Table, Value};

use crate::mount_options::MountOptions;

mod files;
mod place;
mod unique;

pub use files::{default_config_path, drop_in_dir, load};
use place::{with_suggestion, Place};

/// The largest config file accepted.
pub const MAX_CONFIG_BYTES: u64 = 8 << 20;

/// The most mounts one config may hold.
pub const MAX_MOUNTS: usize = 10_000;

/// How long a stop waits, by default, for files still open on busy mounts.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// An error in a config file, at a place in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the error has no place (the file could not be read).
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.column, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// The `[host]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSettings {
    pub plugin_dir: Option<PathBuf>,
    pub log: Option<String>,
    pub control_socket: Option<PathBuf>,
    /// Where to serve Prometheus' `/metrics` (off when absent).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// How long a stop keeps serving files still open on busy (lazily detached) mounts.
    pub stop_timeout: Duration,
}

impl Default for HostSettings {
    fn default() -> Self {
        HostSettings {
            plugin_dir: None,
            log: None,
            control_socket: None,
            metrics_listen: None,
            stop_timeout: DEFAULT_STOP_TIMEOUT,
        }
    }
}

/// One `[[mount]]`, checked and with its paths resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct MountSpec {
    pub name: String,
    /// Absolute, without `.` or `..`.
    pub path: PathBuf,
    /// A plugin name, or an absolute path to a `.so`.
    pub plugin: String,
    pub options: MountOptions,
    /// The `[mount.options]` table, handed to the plugin.
    pub plugin_options: Table,
    /// Where the `[[mount]]` is written, for messages.
    pub written: Written,
}

/// Where a `[[mount]]` is written: its file, and the line and column of the table, its
/// name and its path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// As given (for messages).
    pub file: PathBuf,
    /// The file's folder, absolute: what the mount's relative paths (its own, and the
    /// plugin options that are paths) resolve against.
    pub dir: PathBuf,
    /// The `[[mount]]` line (1-based).
    pub line: usize,
    pub name: (usize, usize),
    pub path: (usize, usize),
}

impl Written {
    fn error_at(&self, (line, column): (usize, usize), message: String) -> ConfigError {
        ConfigError { file: self.file.clone(), line, column, message }
    }

    /// "line 4", or "other.toml:4" when `self` is in another file than `from`.
    fn describe_relative_to(&self, from: &Written) -> String {
        if self.file == from.file {
            format!("line {}", self.line)
        } else {
            format!("{}:{}", self.file.display(), self.line)
        }
    }
}

/// A whole configuration file.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub file: PathBuf,
    pub host: HostSettings,
    pub mounts: Vec<MountSpec>,
}

/// A path written in a config file, resolved against `dir`, the file's folder
/// (absolute paths stay as they are), and without `.` or `..`.
pub fn resolve_in(dir: &Path, written: &str) -> PathBuf {
    normalize(&dir.join(written))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    host: Option<Spanned<RawHost>>,
    #[serde(default)]
    mount: Vec<Spanned<RawMount>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    plugin_dir: Option<Spanned<String>>,
    log: Option<Spanned<String>>,
    control_socket: Option<Spanned<String>>,
    metrics_listen: Option<Spanned<String>>,
    stop_timeout: Option<Spanned<Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMount {
    name: Spanned<String>,
    path: Spanned<String>,
    plugin: Spanned<String>,
    read_only: Option<Spanned<bool>>,
    allow_other: Option<Spanned<bool>>,
    allow_root: Option<Spanned<bool>>,
    default_permissions: Option<Spanned<bool>>,
    create: Option<Spanned<bool>>,
    writeback_cache: Option<Spanned<bool>>,
    allow_kernel_passthrough: Option<Spanned<bool>>,
    nonempty: Option<Spanned<bool>>,
    uid: Option<Spanned<i64>>,
    gid: Option<Spanned<i64>>,
    /// Octal, as a string (`"027"`): TOML has no octal strings for integers users write.
    umask: Option<Spanned<String>>,
    allow_panic_abort: Option<Spanned<bool>>,
    fsname: Option<Spanned<String>>,
    threads: Option<Spanned<i64>>,
    max_in_flight: Option<Spanned<i64>>,
    attr_ttl: Option<Spanned<Value>>,
    entry_ttl: Option<Spanned<Value>>,
    negative_ttl: Option<Spanned<Value>>,
    #[serde(default)]
    options: Table,
}

/// Which part a file plays in a config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// The file named on the command line (or the default): `[host]` and mounts.
    Main,
    /// A file of the main file's `.d` folder: mounts only.
    DropIn,
}

/// What one file contributes.
struct Parsed {
    host: HostSettings,
    mounts: Vec<MountSpec>,
}

/// Parses and checks config `text` read from `file` alone, without its drop-ins
/// (relative paths resolve against `file`'s folder).
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
    let parsed = parse_file(text, file, Role::Main)?;
    finish(file, parsed, Vec::new(), None)
}

/// Every check across the whole config, then the config.
fn finish(
    file: &Path,
    main: Parsed,
    drop_ins: Vec<MountSpec>,
    drop_in_dir: Option<&Path>,
) -> Result<Config, ConfigError> {
    let Parsed { host, mut mounts } = main;
    mounts.extend(drop_ins);
    let at_top = |message: String| ConfigError { file: file.to_path_buf(), line: 1, column: 1, message };
    if mounts.is_empty() {
        let also = drop_in_dir.map(|dir| format!(" nor in {}/*.toml", dir.display())).unwrap_or_default();
        return Err(at_top(format!(
            "no [[mount]] in this config{also}: a host with nothing to mount would serve nothing; add a [[mount]] \
             (see config/reference.toml)"
        )));
    }
    if mounts.len() > MAX_MOUNTS {
        return Err(at_top(format!(
            "more than {MAX_MOUNTS} [[mount]]s with its drop-ins: split them over several hosts"
        )));
    }
    unique::check_unique(&mounts)?;
    Ok(Config { file: file.to_path_buf(), host, mounts })
}

fn parse_file(text: &str, file: &Path, role: Role) -> Result<Parsed, ConfigError> {
    let place = Place::new(file, text);
    let raw: RawConfig = toml::from_str(text).map_err(|error| {
        // toml's messages may span lines; an error here is one line.
        let message = with_suggestion(&error.message().trim().replace('\n', "; "));
        match error.span() {
            Some(span) => {
                let message = match place.key_before(span.start) {
                    Some(key) if message.starts_with("invalid") => format!("`{key}`: {message}"),
                    _ => message,
                };
                place.error(span, message)
            }
            None => place.error(0..0, message),
        }
    })?;
    if raw.mount.len() > MAX_MOUNTS {
        let start = raw.mount[MAX_MOUNTS].span().start;
        return Err(place.error(
            start..start,
            format!("more than {MAX_MOUNTS} [[mount]]s in one config: split them over several hosts"),
        ));
    }
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = std::path::absolute(if dir.as_os_str().is_empty() { Path::new(".") } else { &dir })
        .map_err(|error| place.error(0..0, format!("cannot resolve the config's folder: {error}")))?;
    let resolve = |written: &str| resolve_in(&dir, written);

    let host = match (&raw.host, role) {
        (Some(host), Role::DropIn) => {
            return Err(place.error(
                host.span(),
                "[host] belongs in the main config file only: a drop-in file adds [[mount]]s".to_owned(),
            ))
        }
        (Some(host), Role::Main) => host_settings(&place, host.get_ref(), &resolve)?,
        (None, _) => HostSettings::default(),
    };

    let mut mounts = Vec::with_capacity(raw.mount.len());
    for raw_mount in &raw.mount {
        mounts.push(mount_spec(&place, raw_mount, &dir)?);
    }
    Ok(Parsed { host, mounts })
}

fn host_settings(
    place: &Place<'_>,
    raw: &RawHost,
    resolve: &impl Fn(&str) -> PathBuf,
) -> Result<HostSettings, ConfigError> {
    if let Some(log) = &raw.log {
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(log.get_ref()) {
            return Err(
                place.error(log.span(), format!("`log` is not a log filter (e.g. \"info,plugin=debug\"): {error}"))
            );
        }
    }
    let metrics_listen = match &raw.metrics_listen {
        Some(written) => Some(written.get_ref().parse().map_err(|_| {
            place.error(
                written.span(),
                format!(
                    "`metrics_listen` is an address and port to serve /metrics on, like \"127.0.0.1:9464\", not {:?}",
                    written.get_ref()
                ),
            )
        })?),
        None => None,
    };
    Ok(HostSettings {
        plugin_dir: raw.plugin_dir.as_ref().map(|dir| resolve(dir.get_ref())),
        log: raw.log.as_ref().map(|log| log.get_ref().clone()),
        control_socket: raw.control_socket.as_ref().map(|socket| resolve(socket.get_ref())),
        metrics_listen,
        stop_timeout: match &raw.stop_timeout {
            Some(written) => crate::mount_options::ttl("stop_timeout", &duration_text(written.get_ref()))
                .map_err(|message| place.error(written.span(), message))?,
            None => DEFAULT_STOP_TIMEOUT,
        },
    })
}

fn mount_spec(place: &Place<'_>, spanned: &Spanned<RawMount>, dir: &Path) -> Result<MountSpec, ConfigError> {
    let resolve = |written: &str| resolve_in(dir, written);
    let raw = spanned.get_ref();
    let name = raw.name.get_ref();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(
            place.error(raw.name.span(), format!("mount name {name:?} must be letters, digits, `-`, `_` or `.`"))
        );
    }
    if raw.path.get_ref().is_empty() {
        return Err(place.error(raw.path.span(), "`path` is empty: give the mountpoint folder".to_owned()));
    }
    let plugin = raw.plugin.get_ref();
    let plugin = if plugin.contains('/') { resolve(plugin).to_string_lossy().into_owned() } else { plugin.clone() };

    let mut options = MountOptions::default();
    let mut set = |key: &str, span: Range<usize>, value: String| {
        options.set(key, Some(&value)).map(|_| ()).map_err(|message| place.error(span, message))
    };
    for (key, flag) in [
        ("read_only", &raw.read_only),
        ("allow_other", &raw.allow_other),
        ("allow_root", &raw.allow_root),
        ("default_permissions", &raw.default_permissions),
        ("create", &raw.create),
        ("writeback_cache", &raw.writeback_cache),
        ("allow_kernel_passthrough", &raw.allow_kernel_passthrough),
        ("nonempty", &raw.nonempty),
        ("allow_panic_abort", &raw.allow_panic_abort),
    ] {
        if let Some(flag) = flag {
            set(key, flag.span(), flag.get_ref().to_string())?;
        }
    }
    if let Some(fsname) = &raw.fsname {
        set("fsname", fsname.span(), fsname.get_ref().clone())?;
    }
    for (key, count) in [("threads", &raw.threads), ("max_in_flight", &raw.max_in_flight)] {
        if let Some(count) = count {
            set(key, count.span(), count.get_ref().to_string())?;
        }
    }
    for (key, id) in [("uid", &raw.uid), ("gid", &raw.gid)] {
        if let Some(id) = id {
            set(key, id.span(), id.get_ref().to_string())?;
        }
    }
    if let Some(umask) = &raw.umask {
        set("umask", umask.span(), umask.get_ref().clone())?;
    }
    for (key, ttl) in [("attr_ttl", &raw.attr_ttl), ("entry_ttl", &raw.entry_ttl), ("negative_ttl", &raw.negative_ttl)]
    {
        if let Some(ttl) = ttl {
            set(key, ttl.span(), duration_text(ttl.get_ref()))?;
        }
    }
    Ok(MountSpec {
        name: name.clone(),
        path: resolve(raw.path.get_ref()),
        plugin,
        options,
        plugin_options: raw.options.clone(),
        written: Written {
            file: place.file().to_path_buf(),
            dir: dir.to_path_buf(),
            line: place.line_column(spanned.span().start).0,
            name: place.line_column(raw.name.span().start),
            path: place.line_column(raw.path.span().start),
        },
    })
}

/// A duration as written: a string (`"500ms"`) or a number of seconds (`0.5`).
fn duration_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Removes `.` and `..` components without touching the filesystem.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse_at(text: &str) -> Result<Config, ConfigError> {
        parse(text, Path::new("/etc/fusehost/mounts.toml"))
    }

    const TWO_MOUNTS: &str = r#"
[host]
plugin_dir = "../plugins"
log = "debug"

[[mount]]
name = "scratch"
path = "scratch"
plugin = "memfs"
threads = 4
attr_ttl = 0.5
entry_ttl = "2s"
read_only = true
uid = 1000
umask = "027"
nonempty = true
[mount.options]
max_size = "512MiB"

[[mount]]
name = "docs"
path = "/srv/docs"
plugin = "./libfusehost_hello.so"
"#;

    #[test]
    fn parses_and_resolves_relative_paths_against_the_file() {
        let config = parse_at(TWO_MOUNTS).unwrap();
        assert_eq!(config.host.plugin_dir, Some(PathBuf::from("/etc/plugins")));
        assert_eq!(config.host.log.as_deref(), Some("debug"));
        let scratch = &config.mounts[0];
        assert_eq!(scratch.path, PathBuf::from("/etc/fusehost/scratch"));
        assert_eq!(scratch.options.threads, 4);
        assert_eq!(scratch.options.attr_ttl, Duration::from_millis(500));
        assert_eq!(scratch.options.entry_ttl, Duration::from_secs(2));
        assert!(scratch.options.read_only);
        assert!(scratch.options.nonempty);
        assert_eq!(scratch.options.presentation.uid, Some(1000));
        assert_eq!(scratch.options.presentation.umask, Some(0o027));
        assert_eq!(scratch.plugin_options.get("max_size"), Some(&Value::String("512MiB".into())));
        assert_eq!(scratch.written.line, 6);
        assert_eq!(config.mounts[1].plugin, "/etc/fusehost/libfusehost_hello.so");
    }

    #[test]
    fn a_config_named_by_a_relative_path_resolves_against_its_absolute_folder() {
        let config =
            parse("[[mount]]\nname = \"a\"\npath = \"mnt\"\nplugin = \"x\"\n", Path::new("mounts.toml")).unwrap();
        let here = std::env::current_dir().unwrap();
        assert_eq!(config.mounts[0].written.dir, here, "plugin path options resolve against it");
        assert_eq!(config.mounts[0].path, here.join("mnt"));
    }

    #[test]
    fn a_typo_names_file_line_column_and_the_nearest_key() {
        let text = "[[mount]]\nname = \"a\"\npath = \"/a\"\nplgin = \"memfs\"\n";
        let error = parse_at(text).unwrap_err();
        assert_eq!((error.line, error.column), (4, 1), "{error}");
        assert!(error.to_string().starts_with("/etc/fusehost/mounts.toml:4:1: unknown field `plgin`"), "{error}");
        assert!(error.message.ends_with("did you mean `plugin`?"), "{error}");
    }

    #[test]
    fn a_bad_value_names_its_place() {
        let text = "[[mount]]\nname = \"a\"\npath = \"/a\"\nplugin = \"memfs\"\nthreads = 0\n";
        let error = parse_at(text).unwrap_err();
        assert_eq!((error.line, error.column), (5, 11), "{error}");
        assert!(error.message.contains("`threads`"), "{error}");
    }

    #[test]
    fn duplicate_names_and_paths_and_nesting_are_refused() {
        let duplicate_name = "[[mount]]\nname = \"a\"\npath = \"/a\"\nplugin = \"x\"\n[[mount]]\nname = \"a\"\npath = \"/b\"\nplugin = \"x\"\n";
        let error = parse_at(duplicate_name).unwrap_err();
        assert_eq!(error.line, 6);
        assert!(error.message.contains("already used by the mount at line 1"), "{error}");

        let same_path = "[[mount]]\nname = \"a\"\npath = \"/a\"\nplugin = \"x\"\n[[mount]]\nname = \"b\"\npath = \"/x/../a/\"\nplugin = \"x\"\n";
        let error = parse_at(same_path).unwrap_err();
        assert!(error.message.contains("is also the mountpoint of `a`"), "{error}");

        let nested = "[[mount]]\nname = \"a\"\npath = \"/a\"\nplugin = \"x\"\n[[mount]]\nname = \"b\"\npath = \"/a/b\"\nplugin = \"x\"\n";
        let error = parse_at(nested).unwrap_err();
        assert!(error.message.contains("are nested"), "{error}");
    }

    #[test]
    fn missing_keys_and_bad_names_are_explained() {
        let error = parse_at("[[mount]]\nname = \"a\"\npath = \"/a\"\n").unwrap_err();
        assert!(error.message.contains("missing field `plugin`"), "{error}");
        let error = parse_at("[[mount]]\nname = \"a b\"\npath = \"/a\"\nplugin = \"x\"\n").unwrap_err();
        assert!(error.message.contains("must be letters, digits"), "{error}");
        let one_mount = "[[mount]]\nname = \"a\"\npath = \"/a\"\nplugin = \"x\"\n";
        let error = parse_at(&format!("[host]\nlog = \"info,,=\"\n{one_mount}")).unwrap_err();
        assert!(error.message.contains("`log` is not a log filter"), "{error}");
        let error = parse_at(&format!("[host]\nstop_timeout = \"soon\"\n{one_mount}")).unwrap_err();
        assert!(error.message.contains("`stop_timeout` is a duration"), "{error}");
    }

    #[test]
    fn a_config_without_mounts_is_refused() {
        for text in ["", "[host]\nlog = \"info\"\n"] {
            let error = parse_at(text).unwrap_err();
            assert!(error.to_string().starts_with("/etc/fusehost/mounts.toml:1:1: no [[mount]]"), "{error}");
        }
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_key() {
        let text = "[[mount]]\nname = \"a\"\npath = \"/a\"\nplugin = \"memfs\"\nthreads = \"many\"\n";
        let error = parse_at(text).unwrap_err();
        assert_eq!(error.line, 5, "{error}");
        assert!(error.message.starts_with("`threads`: invalid type"), "{error}");
    }

    #[test]
    fn many_mounts_are_checked_without_quadratic_work_and_nesting_is_still_found() {
        let mut text = String::new();
        for index in 0..MAX_MOUNTS {
            text.push_str(&format!("[[mount]]\nname = \"m{index}\"\npath = \"/srv/m{index}\"\nplugin = \"memfs\"\n"));
        }
        assert_eq!(parse_at(&text).unwrap().mounts.len(), MAX_MOUNTS);
        let nested = format!("{text}[[mount]]\nname = \"inner\"\npath = \"/srv/m17/deeper\"\nplugin = \"memfs\"\n");
        let error = parse_at(&nested).unwrap_err();
        assert!(error.message.contains("more than 10000"), "{error}");
        let mut nested = text.replacen("path = \"/srv/m9999\"", "path = \"/srv/m17/deeper\"", 1);
        let error = parse_at(&nested).unwrap_err();
        assert!(error.message.contains("the mountpoint of `m17`"), "{error}");
        assert_eq!(error.line, 9999 * 4 + 3, "{error}");
        nested.push_str("[[mount]]\nname = \"late\"\npath = \"/srv\"\nplugin = \"memfs\"\n");
        assert!(parse_at(&nested).is_err());
    }
}
