//! What the kernel was told about the source, as the watch keeps it: the names it was
//! handed in each watched folder, the names it was told are missing, each node's
//! attributes as last reported, and what requests are changing right now.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::time::{Duration, Instant};

use fusehost_plugin_api::sync::Mutex;
use inotify::WatchDescriptor;
use rustix::fs::Stat;

/// What the kernel was told about a file's attributes, compared with the source's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Stamp {
    ctime: (i64, i64),
    mtime: (i64, i64),
    size: i64,
    mode: u32,
    nlink: u64,
    owner: (u32, u32),
}

impl Stamp {
    // `struct stat`'s field types differ between architectures: the casts are for the others.
    #[allow(clippy::unnecessary_cast)]
    pub(super) fn of(stat: &Stat) -> Stamp {
        Stamp {
            ctime: (stat.st_ctime as i64, stat.st_ctime_nsec as i64),
            mtime: (stat.st_mtime as i64, stat.st_mtime_nsec as i64),
            size: stat.st_size as i64,
            mode: stat.st_mode as u32,
            nlink: stat.st_nlink as u64,
            owner: (stat.st_uid, stat.st_gid),
        }
    }
}

/// What is watched (the directories, by inotify's descriptor and by node id), what
/// the kernel was told (the names it was handed in each, with their nodes, and the
/// attributes of each node), and what the mount is changing right now.
#[derive(Default)]
pub(super) struct Watched {
    pub(super) by_wd: HashMap<WatchDescriptor, u64>,
    pub(super) by_id: HashMap<u64, WatchDescriptor>,
    pub(super) names: HashMap<u64, HashMap<OsString, u64>>,
    /// The names the kernel was told are missing (negative entries): nothing else can
    /// name them when the queue overflows.
    pub(super) missing: MissingNames,
    pub(super) reported: HashMap<u64, Stamp>,
    /// Names (folder, name) and nodes requests are changing, once per request: a few
    /// entries at most, one or two per request in flight.
    pub(super) names_changing: Vec<(u64, OsString)>,
    pub(super) nodes_changing: Vec<u64>,
}

/// How long an event may wait for the request changing its name or node to finish.
pub(super) const LONGEST_WAIT: Duration = Duration::from_secs(1);

/// How many missing names the watch keeps at most: past that (more names looked up in
/// vain within one TTL), missing names get the mount's `negative_ttl` instead.
pub(super) const MOST_MISSING_NAMES: usize = 65_536;

/// The names the kernel was told are missing in each watched folder, until when, at
/// most [`MOST_MISSING_NAMES`] of them.
#[derive(Default)]
pub(super) struct MissingNames {
    by_folder: HashMap<u64, HashMap<OsString, Instant>>,
    count: usize,
    /// When the expired ones were last swept out (at most once a second: a sweep
    /// reads them all).
    swept: Option<Instant>,
}

impl MissingNames {
    /// Keeps `name` as told missing in `dir` until `expires`; false when too many are
    /// kept already.
    pub(super) fn keep(&mut self, dir: u64, name: &OsStr, expires: Instant) -> bool {
        if self.count >= MOST_MISSING_NAMES && !self.sweep() {
            return false;
        }
        let names = self.by_folder.entry(dir).or_default();
        match names.get_mut(name) {
            Some(until) => *until = expires,
            None => {
                names.insert(name.to_os_string(), expires);
                self.count += 1;
            }
        }
        true
    }

    /// Forgets those whose TTL ran out (the kernel has forgotten them); whether that
    /// made room. Does nothing within a second of the last sweep.
    fn sweep(&mut self) -> bool {
        let now = Instant::now();
        if self.swept.is_some_and(|swept| now < swept + Duration::from_secs(1)) {
            return false;
        }
        self.swept = Some(now);
        for names in self.by_folder.values_mut() {
            names.retain(|_, until| *until > now);
        }
        self.by_folder.retain(|_, names| !names.is_empty());
        self.count = self.by_folder.values().map(HashMap::len).sum();
        self.count < MOST_MISSING_NAMES
    }

    /// `name` in `dir` is no longer a negative entry of the kernel's.
    pub(super) fn remove(&mut self, dir: u64, name: &OsStr) {
        if let Some(names) = self.by_folder.get_mut(&dir) {
            if names.remove(name).is_some() {
                self.count -= 1;
            }
        }
    }

    /// Folder `dir` is forgotten, and with it the names under it.
    pub(super) fn forget_folder(&mut self, dir: u64) {
        if let Some(names) = self.by_folder.remove(&dir) {
            self.count -= names.len();
        }
    }

    /// Every one of them, (folder, name), forgotten here.
    pub(super) fn drain(&mut self) -> impl Iterator<Item = (u64, OsString)> + '_ {
        self.count = 0;
        self.by_folder.drain().flat_map(|(dir, names)| names.into_keys().map(move |name| (dir, name)))
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.count
    }
}

impl Watched {
    /// Whether a request is still changing `name` in `dir`, or node `id`.
    pub(super) fn changing(&self, dir: u64, name: Option<&OsStr>, id: Option<u64>) -> bool {
        let name_changing = name.is_some_and(|name| {
            self.names_changing.iter().any(|(changing_dir, changing)| *changing_dir == dir && changing == name)
        });
        name_changing || id.is_some_and(|id| self.nodes_changing.contains(&id))
    }

    /// Whether an event first read at `read_at` about these waits for a later batch:
    /// while a request is changing them, for at most [`LONGEST_WAIT`].
    pub(super) fn waits(&self, dir: u64, name: Option<&OsStr>, id: Option<u64>, read_at: Instant) -> bool {
        self.changing(dir, name, id) && read_at.elapsed() < LONGEST_WAIT
    }
}

/// A request's mark on what it is changing in the source; dropped once the request
/// has recorded what it hands the kernel.
pub struct Changing<'a> {
    watched: &'a Mutex<Watched>,
    pub(super) names: [Option<(u64, &'a OsStr)>; 2],
    node: Option<u64>,
}

impl<'a> Changing<'a> {
    pub(super) fn mark(watched: &'a Mutex<Watched>, names: &[(u64, &'a OsStr)], node: Option<u64>) -> Changing<'a> {
        let mut mark = Changing { watched, names: [None, None], node };
        let mut watched = watched.lock();
        for (slot, &(dir, name)) in mark.names.iter_mut().zip(names) {
            watched.names_changing.push((dir, name.to_os_string()));
            *slot = Some((dir, name));
        }
        watched.nodes_changing.extend(node);
        mark
    }
}

impl Drop for Changing<'_> {
    fn drop(&mut self) {
        let mut watched = self.watched.lock();
        for (dir, name) in self.names.iter().flatten() {
            let found = watched
                .names_changing
                .iter()
                .position(|(changing_dir, changing)| changing_dir == dir && changing == name);
            if let Some(index) = found {
                watched.names_changing.swap_remove(index);
            }
        }
        let node = self.node.and_then(|id| watched.nodes_changing.iter().position(|&changing| changing == id));
        if let Some(index) = node {
            watched.nodes_changing.swap_remove(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_names_are_kept_up_to_a_cap_and_swept_once_their_ttl_ran_out() {
        let mut missing = MissingNames::default();
        let name = |text: &str| OsString::from(text);
        let live = Instant::now() + Duration::from_secs(60);
        assert!(missing.keep(1, &name("a"), live));
        assert!(missing.keep(1, &name("a"), live), "kept again, counted once");
        assert!(missing.keep(2, &name("b"), live));
        assert_eq!(missing.len(), 2);
        missing.remove(1, &name("a"));
        assert_eq!(missing.len(), 1);

        // At the cap, names whose TTL ran out make room; live ones do not.
        let expired = Instant::now();
        for index in 1..MOST_MISSING_NAMES {
            assert!(missing.keep(3, &name(&format!("gone{index}")), expired));
        }
        assert!(missing.keep(4, &name("c"), live), "the expired names made room");
        assert_eq!(missing.len(), 2);
        for index in 2..MOST_MISSING_NAMES {
            assert!(missing.keep(5, &name(&format!("live{index}")), live));
        }
        assert!(!missing.keep(6, &name("d"), live), "full of live names");

        // A sweep reads every name: at most one a second, however many lookups fail.
        for until in missing.by_folder.get_mut(&5).unwrap().values_mut() {
            *until = expired;
        }
        assert!(!missing.keep(6, &name("d"), live), "swept less than a second ago");
        missing.swept = missing.swept.map(|swept| swept - Duration::from_secs(2));
        assert!(missing.keep(6, &name("d"), live), "swept again a second later");
        assert_eq!(missing.len(), 3);
    }

    #[test]
    fn a_name_or_node_stays_marked_until_the_last_request_changing_it_is_done() {
        let watched = Mutex::new(Watched::default());
        let is_changing = |dir, name: &str, id| watched.lock().changing(dir, Some(OsStr::new(name)), id);
        let rename = Changing::mark(&watched, &[(1, OsStr::new("a")), (2, OsStr::new("b"))], None);
        let create = Changing::mark(&watched, &[(1, OsStr::new("a"))], Some(7));
        assert!(is_changing(1, "a", None) && is_changing(2, "b", None));
        assert!(!is_changing(2, "a", None), "the same name in another folder");
        assert!(is_changing(3, "other", Some(7)), "a node being changed, whatever its name");
        drop(rename);
        assert!(is_changing(1, "a", None), "the create still changes it");
        assert!(!is_changing(2, "b", None));
        drop(create);
        assert!(!is_changing(1, "a", None) && !is_changing(3, "other", Some(7)));
        let watched = watched.lock();
        assert!(watched.names_changing.is_empty() && watched.nodes_changing.is_empty(), "nothing left behind");
    }
}
