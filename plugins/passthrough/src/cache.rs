//! How much the kernel may cache: the option `cache = auto | always | never`, as
//! libfuse's passthrough examples offer it, and the TTLs and open flags each mode means.
//!
//! - `never`: nothing is cached. Every stat, lookup and (without kernel passthrough)
//!   every read and write reaches the source: coherent with any change, wherever made.
//! - `auto` (the default): while the source watch sees every folder the kernel knows,
//!   names and attributes are kept for [`AUTO_TTL`] and file data and folder listings
//!   across opens, because the watch drops them the moment the source changes. Without
//!   the watch (`watch_source = false`, a 1.0 host, inotify's limit reached) this falls
//!   back to the mount's TTLs and drops file data at every open.
//! - `always`: names and attributes for [`ALWAYS_TTL`], data and listings kept across
//!   opens, watch or not: for a source nothing else changes.
//!
//! Each mode's TTL also bounds how long the kernel remembers that a name is missing
//! (a negative entry), in place of the mount's `negative_ttl`.
//!
//! What the mount itself creates or changes (create, mknod, mkdir, symlink, link,
//! setattr) and what a listing hands out (readdirplus) get the mode's TTLs too (ABI
//! 1.3). A host before 1.3 sends the mount's TTLs for those answers (1 s by default)
//! until the next lookup, so `never` there wants the mount's `attr_ttl = 0` and
//! `entry_ttl = 0` as well.

use std::time::Duration;

use fusehost_plugin_api::{Entry, Errno, Opened};

/// How long `auto` lets the kernel keep what the watch keeps coherent. Bounded, so a
/// change inotify cannot see (another machine writing to a network filesystem source,
/// a file changed through a hard link in an unwatched folder) shows after a minute.
pub const AUTO_TTL: Duration = Duration::from_secs(60);

/// What `always` gives: a day, as libfuse's passthrough_hp does.
pub const ALWAYS_TTL: Duration = Duration::from_secs(86_400);

/// The `cache` option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheMode {
    Never,
    Auto,
    Always,
}

impl CacheMode {
    pub fn parse(text: &str) -> Result<CacheMode, String> {
        match text {
            "never" => Ok(CacheMode::Never),
            "auto" => Ok(CacheMode::Auto),
            "always" => Ok(CacheMode::Always),
            other => Err(format!("option `cache` is `{other}`: use auto, always or never")),
        }
    }

    /// The TTL for names and attributes, given whether the source watch currently sees
    /// every folder the kernel knows; `None` leaves the mount's own TTLs.
    pub fn ttl(self, watched: bool) -> Option<Duration> {
        match self {
            CacheMode::Never => Some(Duration::ZERO),
            CacheMode::Auto if watched => Some(AUTO_TTL),
            CacheMode::Auto => None,
            CacheMode::Always => Some(ALWAYS_TTL),
        }
    }

    /// `entry` with this mode's TTLs.
    pub fn entry(self, entry: Entry, watched: bool) -> Entry {
        match self.ttl(watched) {
            Some(ttl) => entry.with_ttls(ttl, ttl),
            None => entry,
        }
    }

    /// The answer to a lookup of a name the source does not have: a negative entry for
    /// this mode's TTL (`never`: not remembered at all; `auto`: until the watch sees
    /// the name appear), or, where the mode leaves the mount's TTLs, `ENOENT` and the
    /// mount's `negative_ttl`.
    pub fn missing(self, watched: bool) -> fusehost_plugin_api::Result<Entry> {
        self.ttl(watched).map(Entry::negative).ok_or(Errno::ENOENT)
    }

    /// Whether the kernel may keep a file's data or a folder's listing across opens.
    pub fn keeps_data(self, watched: bool) -> bool {
        match self {
            CacheMode::Never => false,
            CacheMode::Auto => watched,
            CacheMode::Always => true,
        }
    }

    /// The caching hints of an open file: `never` bypasses the page cache. (The host
    /// drops both hints for a file the kernel then reads directly, passthrough.)
    pub fn open_file(self, opened: Opened, watched: bool) -> Opened {
        let mut opened = opened;
        opened.keep_cache = self.keeps_data(watched);
        opened.direct_io = self == CacheMode::Never;
        opened
    }

    /// The caching hints of an open folder: its listing may be cached and kept.
    pub fn open_folder(self, opened: Opened, watched: bool) -> Opened {
        let mut opened = opened;
        opened.cache_dir = self.keeps_data(watched);
        opened.keep_cache = opened.cache_dir;
        opened
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_caches_long_only_while_the_watch_sees_everything() {
        assert_eq!(CacheMode::Auto.ttl(true), Some(AUTO_TTL));
        assert_eq!(CacheMode::Auto.ttl(false), None);
        assert!(CacheMode::Auto.keeps_data(true) && !CacheMode::Auto.keeps_data(false));
        assert_eq!(CacheMode::Always.ttl(false), Some(ALWAYS_TTL));
        assert_eq!(CacheMode::Never.ttl(true), Some(Duration::ZERO));
    }

    #[test]
    fn a_missing_name_is_remembered_for_the_modes_ttl_or_the_mounts() {
        let remembered = |mode: CacheMode, watched| mode.missing(watched).map(|entry| entry.entry_ttl);
        assert_eq!(remembered(CacheMode::Never, true), Ok(Some(Duration::ZERO)));
        assert_eq!(remembered(CacheMode::Auto, true), Ok(Some(AUTO_TTL)));
        assert_eq!(remembered(CacheMode::Auto, false), Err(Errno::ENOENT), "the mount's negative_ttl");
        assert_eq!(remembered(CacheMode::Always, false), Ok(Some(ALWAYS_TTL)));
        assert!(CacheMode::Always.missing(false).is_ok_and(|entry| entry.is_negative()));
    }

    #[test]
    fn never_bypasses_the_page_cache_and_always_keeps_it() {
        let served = CacheMode::Never.open_file(Opened::handle(1), true);
        assert!(served.direct_io && !served.keep_cache);
        let kept = CacheMode::Always.open_file(Opened::handle(1), false);
        assert!(kept.keep_cache && !kept.direct_io);
        let kept = CacheMode::Always.open_folder(Opened::handle(1), false);
        assert!(kept.cache_dir && kept.keep_cache);
    }

    #[test]
    fn a_mistyped_mode_names_the_choices() {
        assert_eq!(CacheMode::parse("always"), Ok(CacheMode::Always));
        assert!(CacheMode::parse("sometimes").is_err_and(|message| message.contains("auto, always or never")));
    }
}
