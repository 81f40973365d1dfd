//! The mount configuration file (TOML): parsing, and every check that needs no plugin.
//!
//! ```toml
//! [host]
//! plugin_dir = "../target/release"   # relative paths resolve against this file's folder
//! log = "info"                       # an EnvFilter; RUST_LOG overrides it
//! control_socket = "/run/fusehost/fusehost.sock"
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

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::{Spanned, Table, Value};

use crate::mount_options::MountOptions;

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
    /// How long a stop keeps serving files still open on busy (lazily detached) mounts.
    pub stop_timeout: Duration,
}

impl Default for HostSettings {
    fn default() -> Self {
        HostSettings { plugin_dir: None, log: None, control_socket: None, stop_timeout: DEFAULT_STOP_TIMEOUT }
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
    /// Where the `[[mount]]` starts, for messages.
    pub line: usize,
}

/// A whole configuration file.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub file: PathBuf,
    /// The file's folder, absolute: what relative paths in it are relative to.
    pub dir: PathBuf,
    pub host: HostSettings,
    pub mounts: Vec<MountSpec>,
}

impl Config {
    /// A path written in this config, resolved against its folder (absolute paths
    /// stay as they are) and without `.` or `..`.
    pub fn resolve(&self, written: &str) -> PathBuf {
        resolve_in(&self.dir, written)
    }
}

fn resolve_in(dir: &Path, written: &str) -> PathBuf {
    normalize(&dir.join(written))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    host: RawHost,
    #[serde(default)]
    mount: Vec<Spanned<RawMount>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    plugin_dir: Option<Spanned<String>>,
    log: Option<Spanned<String>>,
    control_socket: Option<Spanned<String>>,
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
    attr_ttl: Option<Spanned<Value>>,
    entry_ttl: Option<Spanned<Value>>,
    negative_ttl: Option<Spanned<Value>>,
    #[serde(default)]
    options: Table,
}

/// Reads and checks a config file.
pub fn load(file: &Path) -> Result<Config, ConfigError> {
    let unplaced = |message: String| ConfigError { file: file.to_path_buf(), line: 0, column: 0, message };
    let size =
        std::fs::metadata(file).map_err(|error| unplaced(format!("cannot read the config file: {error}")))?.len();
    if size > MAX_CONFIG_BYTES {
        return Err(unplaced(format!(
            "the config file is {size} bytes, more than the {MAX_CONFIG_BYTES} a config may hold: split it, or check \
             that this is the file you meant"
        )));
    }
    let text =
        std::fs::read_to_string(file).map_err(|error| unplaced(format!("cannot read the config file: {error}")))?;
    parse(&text, file)
}

/// Parses and checks config `text` read from `file` (relative paths resolve against
/// `file`'s folder).
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
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
    if raw.mount.is_empty() {
        return Err(place.error(
            0..0,
            "no [[mount]] in this config: a host with nothing to mount would serve nothing; add a [[mount]] \
             (see config/reference.toml)"
                .to_owned(),
        ));
    }
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

    let host = HostSettings {
        plugin_dir: raw.host.plugin_dir.as_ref().map(|dir| resolve(dir.get_ref())),
        log: raw.host.log.as_ref().map(|log| log.get_ref().clone()),
        control_socket: raw.host.control_socket.as_ref().map(|socket| resolve(socket.get_ref())),
        stop_timeout: match &raw.host.stop_timeout {
            Some(written) => crate::mount_options::ttl("stop_timeout", &duration_text(written.get_ref()))
                .map_err(|message| place.error(written.span(), message))?,
            None => DEFAULT_STOP_TIMEOUT,
        },
    };
    if let Some(log) = &raw.host.log {
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(log.get_ref()) {
            return Err(
                place.error(log.span(), format!("`log` is not a log filter (e.g. \"info,plugin=debug\"): {error}"))
            );
        }
    }

    let mut mounts = Vec::with_capacity(raw.mount.len());
    for raw_mount in &raw.mount {
        mounts.push(mount_spec(&place, raw_mount, &resolve)?);
    }
    check_unique(&place, &raw.mount, &mounts)?;
    Ok(Config { file: file.to_path_buf(), dir, host, mounts })
}

fn mount_spec(
    place: &Place<'_>,
    spanned: &Spanned<RawMount>,
    resolve: &impl Fn(&str) -> PathBuf,
) -> Result<MountSpec, ConfigError> {
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
    if let Some(threads) = &raw.threads {
        set("threads", threads.span(), threads.get_ref().to_string())?;
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
        line: place.line_column(spanned.span().start).0,
    })
}

/// A duration as written: a string (`"500ms"`) or a number of seconds (`0.5`).
fn duration_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Refuses duplicate names, duplicate paths and mountpoints inside one another, in
/// O(n log n): after sorting the paths component-wise, a mountpoint that lies inside
/// another sorts right after it or after another one inside it, so comparing
/// neighbours finds every nesting there is.
fn check_unique(place: &Place<'_>, raw: &[Spanned<RawMount>], mounts: &[MountSpec]) -> Result<(), ConfigError> {
    let mut names: HashMap<&str, usize> = HashMap::with_capacity(mounts.len());
    for (index, mount) in mounts.iter().enumerate() {
        if let Some(first) = names.insert(&mount.name, index) {
            let message = format!(
                "mount name `{}` is already used by the mount at line {}: names must be unique",
                mount.name, mounts[first].line
            );
            return Err(place.error(raw[index].get_ref().name.span(), message));
        }
    }
    let mut by_path: Vec<usize> = (0..mounts.len()).collect();
    by_path.sort_by(|&a, &b| mounts[a].path.cmp(&mounts[b].path).then(a.cmp(&b)));
    for pair in by_path.windows(2) {
        // Report at the one written later, naming the one written first.
        let (first, later) = (pair[0].min(pair[1]), pair[0].max(pair[1]));
        let (mount, other) = (&mounts[later], &mounts[first]);
        let message = if mount.path == other.path {
            format!("path {} is also the mountpoint of `{}`", mount.path.display(), other.name)
        } else if mount.path.starts_with(&other.path) || other.path.starts_with(&mount.path) {
            format!(
                "path {} and the mountpoint of `{}` ({}) are nested: one mount would hide the other",
                mount.path.display(),
                other.name,
                other.path.display()
            )
        } else {
            continue;
        };
        return Err(place.error(raw[later].get_ref().path.span(), message));
    }
    Ok(())
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

/// Adds "did you mean ...?" to serde's unknown-field message.
fn with_suggestion(message: &str) -> String {
    let message = message.trim_end();
    let Some(rest) = message.strip_prefix("unknown field `") else { return message.to_owned() };
    let Some((unknown, expected)) = rest.split_once('`') else { return message.to_owned() };
    let nearest = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|candidate| (strsim::levenshtein(unknown, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 3))
        .min();
    match nearest {
        Some((_, candidate)) => format!("{message}: did you mean `{candidate}`?"),
        None => message.to_owned(),
    }
}

/// Turns byte spans of one file into `file:line:col` errors.
struct Place<'a> {
    file: &'a Path,
    text: &'a str,
    /// Where each line starts, for a binary search instead of a scan per lookup.
    line_starts: Vec<usize>,
}

impl<'a> Place<'a> {
    fn new(file: &'a Path, text: &'a str) -> Place<'a> {
        let line_starts = std::iter::once(0).chain(text.match_indices('\n').map(|(at, _)| at + 1)).collect();
        Place { file, text, line_starts }
    }

    fn line_start(&self, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|&start| start <= offset).max(1);
        (line, self.line_starts[line - 1])
    }

    fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let (line, start) = self.line_start(offset);
        let column = self.text.get(start..offset).map_or(0, |text| text.chars().count()) + 1;
        (line, column)
    }

    /// The key of a `key = value` line whose value starts at `offset`.
    fn key_before(&self, offset: usize) -> Option<&'a str> {
        let (_, start) = self.line_start(offset.min(self.text.len()));
        let key = self.text.get(start..offset)?.trim_end().strip_suffix('=')?.trim();
        (!key.is_empty() && !key.contains(['[', '"', '\''])).then_some(key)
    }

    fn error(&self, span: Range<usize>, message: String) -> ConfigError {
        let (line, column) = self.line_column(span.start);
        ConfigError { file: self.file.to_path_buf(), line, column, message }
    }
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
        assert_eq!(scratch.line, 6);
        assert_eq!(config.mounts[1].plugin, "/etc/fusehost/libfusehost_hello.so");
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
