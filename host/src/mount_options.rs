//! The per-mount options the host itself understands, and the split of a
//! `-o key=value,...` list into those and the plugin's own options.

use std::time::Duration;

use toml::{Table, Value};

use crate::presentation::Presentation;

/// How one mount is set up, whatever its plugin.
#[derive(Clone, Debug, PartialEq)]
pub struct MountOptions {
    pub read_only: bool,
    pub allow_other: bool,
    pub allow_root: bool,
    /// Let the kernel check permissions from the mode bits (default on).
    pub default_permissions: bool,
    /// Source name shown in `/proc/mounts` (default `fusehost:<plugin>`).
    pub fsname: Option<String>,
    /// FUSE worker threads; 2 with `clone_fd` measured 2.1-3.4x the round trips of 1
    /// unpinned (README "Per-mount options").
    pub threads: usize,
    pub attr_ttl: Duration,
    pub entry_ttl: Duration,
    /// How long "no such name" is remembered for plugins that do not choose
    /// (`None`: as long as `entry_ttl`; zero: not at all).
    pub negative_ttl: Option<Duration>,
    pub writeback_cache: bool,
    /// Let a plugin that consents hand open files to the kernel (FUSE passthrough).
    pub allow_kernel_passthrough: bool,
    /// Create a missing mountpoint.
    pub create: bool,
    /// Serve a plugin built with `panic = "abort"` (one panic kills every mount).
    pub allow_panic_abort: bool,
    /// Mount on a folder that has files in it (they are hidden while mounted).
    pub nonempty: bool,
    /// `uid=`, `gid=`, `umask=`: the ownership and permissions every file shows.
    pub presentation: Presentation,
    /// How many requests may wait inside a plugin that answers later (ABI 1.2)
    /// before new ones wait for a free slot.
    pub max_in_flight: usize,
    /// The kernel mount flags of mount(8).
    pub kernel: KernelFlags,
}

/// mount(8)'s generic flags, passed to the kernel (`nodev`, `nosuid` by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelFlags {
    pub dev: bool,
    pub suid: bool,
    pub exec: bool,
    /// `Some(false)`: `noatime`; `None`: the kernel's default (relatime).
    pub atime: Option<bool>,
    pub sync: bool,
    pub dirsync: bool,
}

impl Default for KernelFlags {
    fn default() -> Self {
        KernelFlags { dev: false, suid: false, exec: true, atime: None, sync: false, dirsync: false }
    }
}

/// fstab and mount(8) words that say nothing to fusehost itself: consumed silently.
const IGNORED: &[&str] = &["defaults", "auto", "noauto", "user", "users", "nouser", "nofail", "_netdev", "async"];

impl MountOptions {
    /// Refuses combinations that would hand every user the host's own rights. As root
    /// with `allow_other`, the kernel checks nothing unless `default_permissions` is
    /// on, and every request then runs with root's rights in the plugin (a passthrough
    /// plugin would let any user read, write and chmod anything in its source).
    pub fn check_safety(&self, running_as_root: bool) -> Result<(), String> {
        if running_as_root && self.allow_other && !self.default_permissions {
            return Err(
                "`default_permissions = false` with `allow_other`, as root, would let every user act as root \
                        through the plugin: keep default_permissions on, or run fusehost as the user who owns the data"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            read_only: false,
            allow_other: false,
            allow_root: false,
            default_permissions: true,
            fsname: None,
            threads: 2,
            attr_ttl: Duration::from_secs(1),
            entry_ttl: Duration::from_secs(1),
            negative_ttl: None,
            writeback_cache: false,
            allow_kernel_passthrough: true,
            create: false,
            allow_panic_abort: false,
            nonempty: false,
            presentation: Presentation::default(),
            max_in_flight: crate::later_requests::DEFAULT_MAX_IN_FLIGHT,
            kernel: KernelFlags::default(),
        }
    }
}

/// The keys [`MountOptions::set`] takes, for messages and for telling host keys from
/// plugin keys.
pub const HOST_KEYS: &[&str] = &[
    "ro",
    "rw",
    "read_only",
    "allow_other",
    "allow_root",
    "default_permissions",
    "fsname",
    "threads",
    "attr_ttl",
    "entry_ttl",
    "negative_ttl",
    "max_in_flight",
    "writeback_cache",
    "allow_kernel_passthrough",
    "create",
    "allow_panic_abort",
    "nonempty",
    "uid",
    "gid",
    "umask",
    "dev",
    "nodev",
    "suid",
    "nosuid",
    "exec",
    "noexec",
    "atime",
    "noatime",
    "sync",
    "dirsync",
];

/// The host key `key` was most likely meant to be, when it is a near miss (`fsnme`).
pub fn nearest_host_key(key: &str) -> Option<&'static str> {
    HOST_KEYS
        .iter()
        .map(|candidate| (strsim::levenshtein(key, candidate), *candidate))
        .filter(|(distance, candidate)| *distance > 0 && *distance <= 2.max(candidate.len() / 4))
        .min()
        .map(|(_, candidate)| candidate)
}

/// The most worker threads a mount may ask for.
pub const MAX_THREADS: usize = 256;

impl MountOptions {
    /// Sets host option `key` from its text form (`None` for a bare flag such as `ro`).
    /// Returns `Ok(false)` when `key` is not a host option.
    pub fn set(&mut self, key: &str, value: Option<&str>) -> Result<bool, String> {
        match key {
            "ro" => self.read_only = flag(key, value)?,
            "rw" => self.read_only = !flag(key, value)?,
            "read_only" => self.read_only = flag(key, value)?,
            "allow_other" => self.allow_other = flag(key, value)?,
            "allow_root" => self.allow_root = flag(key, value)?,
            "default_permissions" => self.default_permissions = flag(key, value)?,
            "writeback_cache" => self.writeback_cache = flag(key, value)?,
            "allow_kernel_passthrough" => self.allow_kernel_passthrough = flag(key, value)?,
            "create" => self.create = flag(key, value)?,
            "allow_panic_abort" => self.allow_panic_abort = flag(key, value)?,
            "nonempty" => self.nonempty = flag(key, value)?,
            "uid" => self.presentation.uid = Some(id(key, required(key, value)?)?),
            "gid" => self.presentation.gid = Some(id(key, required(key, value)?)?),
            "umask" => self.presentation.umask = Some(umask(required(key, value)?)?),
            "dev" | "nodev" => self.kernel.dev = key == "dev",
            "suid" | "nosuid" => self.kernel.suid = key == "suid",
            "exec" | "noexec" => self.kernel.exec = key == "exec",
            "atime" | "noatime" => self.kernel.atime = Some(key == "atime"),
            "sync" => self.kernel.sync = flag(key, value)?,
            "dirsync" => self.kernel.dirsync = flag(key, value)?,
            ignored if IGNORED.contains(&ignored) || ignored.starts_with("x-") => {}
            "fsname" => {
                let name = required(key, value)?;
                if name.is_empty() || name.contains([',', '\n']) {
                    return Err(format!("option `fsname` must be non-empty, without commas: {name:?}"));
                }
                self.fsname = Some(name.to_owned());
            }
            "threads" => self.threads = threads(required(key, value)?)?,
            "attr_ttl" => self.attr_ttl = ttl(key, required(key, value)?)?,
            "entry_ttl" => self.entry_ttl = ttl(key, required(key, value)?)?,
            "negative_ttl" => self.negative_ttl = Some(ttl(key, required(key, value)?)?),
            "max_in_flight" => self.max_in_flight = max_in_flight(required(key, value)?)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn id(key: &str, text: &str) -> Result<u32, String> {
    text.trim().parse().map_err(|_| format!("option `{key}` is a numeric id, not `{text}`"))
}

fn umask(text: &str) -> Result<u16, String> {
    u16::from_str_radix(text.trim(), 8)
        .ok()
        .filter(|mask| *mask <= 0o7777)
        .ok_or_else(|| format!("option `umask` is octal, 0 to 7777, not `{text}`"))
}

fn required<'v>(key: &str, value: Option<&'v str>) -> Result<&'v str, String> {
    value.ok_or_else(|| format!("option `{key}` needs a value: `{key}=...`"))
}

fn flag(key: &str, value: Option<&str>) -> Result<bool, String> {
    match value {
        None | Some("true" | "yes" | "on" | "1") => Ok(true),
        Some("false" | "no" | "off" | "0") => Ok(false),
        Some(other) => Err(format!("option `{key}` is true or false, not `{other}`")),
    }
}

/// A worker thread count, 1 to [`MAX_THREADS`].
pub fn threads(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(count @ 1..=MAX_THREADS) => Ok(count),
        _ => Err(format!("option `threads` is a whole number from 1 to {MAX_THREADS}, not `{text}`")),
    }
}

/// The most requests that may wait inside a plugin, 1 to 65536.
fn max_in_flight(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(count @ 1..=65_536) => Ok(count),
        _ => Err(format!("option `max_in_flight` is a whole number from 1 to 65536, not `{text}`")),
    }
}

/// A cache lifetime: seconds (`1`, `0.5`) or a duration (`500ms`, `2s`).
pub fn ttl(key: &str, text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let parsed = match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && (0.0..=86_400.0 * 365.0).contains(&seconds) => {
            Some(Duration::from_secs_f64(seconds))
        }
        Ok(_) => None,
        Err(_) => humantime::parse_duration(text).ok(),
    };
    parsed.ok_or_else(|| format!("option `{key}` is a duration such as 1, 0.5 or 500ms, not `{text}`"))
}

/// The items of one `-o` list: split at commas, except `\,`, which is a comma inside a
/// value (`\\` is a backslash), as mount(8) and fstab users write them.
pub fn list_items(list: &str) -> Vec<String> {
    let mut items = vec![String::new()];
    let mut chars = list.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ (',' | '\\')) => items.last_mut().map_or((), |item| item.push(escaped)),
                Some(other) => items.last_mut().map_or((), |item| {
                    item.push('\\');
                    item.push(other)
                }),
                None => items.last_mut().map_or((), |item| item.push('\\')),
            },
            ',' => items.push(String::new()),
            other => items.last_mut().map_or((), |item| item.push(other)),
        }
    }
    items
}

/// Splits `-o` lists into host options and the plugin's options (as a TOML table of
/// strings). Each list is `key[=value],...`; generic mount(8) words are consumed
/// (see [`MountOptions::set`]).
pub fn split_option_lists(lists: &[String]) -> Result<(MountOptions, Table), String> {
    let mut host = MountOptions::default();
    let mut plugin = Table::new();
    let items: Vec<String> = lists.iter().flat_map(|list| list_items(list)).collect();
    for item in items.iter().map(|item| item.trim()).filter(|item| !item.is_empty()) {
        let (key, value) = match item.split_once('=') {
            Some((key, value)) => (key.trim(), Some(value)),
            None => (item, None),
        };
        if key.is_empty() {
            return Err(format!("option `{item}` has no key"));
        }
        if !host.set(key, value)? {
            plugin.insert(key.to_owned(), Value::String(value.unwrap_or("").to_owned()));
        }
    }
    Ok((host, plugin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchecked_permissions_for_every_user_are_refused_as_root() {
        let mut options = MountOptions { allow_other: true, default_permissions: false, ..MountOptions::default() };
        assert!(options.check_safety(true).unwrap_err().contains("every user act as root"));
        assert!(options.check_safety(false).is_ok(), "a user's own rights are all a mount can lend");
        options.default_permissions = true;
        assert!(options.check_safety(true).is_ok());
    }

    #[test]
    fn fstab_words_are_consumed_flags_mapped_and_escaped_commas_kept() {
        let lists =
            vec![r"defaults,nofail,_netdev,x-systemd.automount,noexec,dev,uid=1000,umask=027,greeting=a\,b".to_owned()];
        let (host, plugin) = split_option_lists(&lists).unwrap();
        assert!(!host.kernel.exec && host.kernel.dev && !host.kernel.suid);
        assert_eq!(host.presentation, Presentation { uid: Some(1000), gid: None, umask: Some(0o027) });
        assert_eq!(plugin.len(), 1, "{plugin:?}");
        assert_eq!(plugin.get("greeting"), Some(&Value::String("a,b".into())));
        assert!(split_option_lists(&["umask=999".to_owned()]).unwrap_err().contains("octal"));
    }

    #[test]
    fn host_keys_are_taken_and_the_rest_goes_to_the_plugin() {
        let lists = vec!["ro,threads=4,greeting=hi there".to_owned(), "attr_ttl=500ms,verbose".to_owned()];
        let (host, plugin) = split_option_lists(&lists).unwrap();
        assert!(host.read_only);
        assert_eq!(host.threads, 4);
        assert_eq!(host.attr_ttl, Duration::from_millis(500));
        assert_eq!(plugin.get("greeting"), Some(&Value::String("hi there".into())));
        assert_eq!(plugin.get("verbose"), Some(&Value::String(String::new())));
        assert!(!plugin.contains_key("ro"));
    }

    #[test]
    fn defaults_follow_the_measured_choices() {
        let (host, plugin) = split_option_lists(&[]).unwrap();
        assert_eq!(host.threads, 2);
        assert!(host.default_permissions);
        assert!(plugin.is_empty());
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        for (list, key) in [("threads=0", "threads"), ("attr_ttl=soon", "attr_ttl"), ("ro=maybe", "ro")] {
            let error = split_option_lists(&[list.to_owned()]).unwrap_err();
            assert!(error.contains(&format!("`{key}`")), "{error}");
        }
    }

    #[test]
    fn every_host_key_is_known() {
        let mut options = MountOptions::default();
        for key in HOST_KEYS {
            let value = match *key {
                "fsname" => Some("x"),
                "threads" | "max_in_flight" => Some("3"),
                "attr_ttl" | "entry_ttl" | "negative_ttl" => Some("2"),
                "uid" | "gid" => Some("1000"),
                "umask" => Some("022"),
                _ => None,
            };
            assert_eq!(options.set(key, value), Ok(true), "{key}");
        }
    }
}
