//! Keeps the kernel's caches coherent with changes made in the source directly, not
//! through the mount (ABI 1.1 notifications).
//!
//! Every source directory the kernel knows is watched with inotify. A change inside
//! one (a name created, deleted, moved; a file written or its attributes changed)
//! invalidates the kernel's entry for that name, the directory's cached listing and
//! attributes, and, for a file the kernel holds, its attributes and cached data. So a
//! change is visible through the mount at once, whatever the TTLs; without it (a 1.0
//! host, `watch_source = false`, or inotify's watch limit reached) the mount's TTLs
//! bound how stale a view can be.
//!
//! Changes made through the mount are seen too. The kernel already knows about
//! those, and dropping what it just learnt would cost a lookup per created file, so
//! the watch keeps what the kernel was told: each name handed out in a watched folder
//! with its node, and each node's attributes as last reported. An event changes
//! nothing when the source still says exactly that (the name still names the node the
//! kernel holds; the file's ctime, mtime, size, mode, owner and link count are as
//! reported; a deleted name was not handed out, or was removed through the mount),
//! and invalidates otherwise. The comparison is against the source's state, not
//! against a list of expected events, so an outside change racing the mount's own is
//! never mistaken for it. A request that changes the source marks the names (and, for
//! an attribute change, the node) it is changing until it has recorded what it hands
//! out: events for those are judged in a later batch, so a request preempted between
//! its syscall and its record never has its own event taken for an outside change.
//! Events are read in batches a few milliseconds apart, which coalesces bursts.
//! Notifications are queued by the host and sent from its own thread, so sending them
//! while a request holds a directory lock cannot deadlock.
//!
//! The names handed out, and those the kernel was told are missing (negative entries,
//! kept until their TTL runs out), also serve the one event that names nothing:
//! inotify's queue overflowing (changes came faster than this thread read them). Then
//! every one of those names, every folder's listing and every file's attributes and
//! data are dropped from the kernel's caches, so that `cache = auto`'s long TTLs never
//! outlive a change the watch missed.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fusehost_plugin_api::sync::Mutex;
use fusehost_plugin_api::tracing;
use fusehost_plugin_api::{Errno, MountHost};
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use rustix::fs::{statat, AtFlags, Stat};

use crate::nodes::{Node, Nodes};

/// What the kernel was told about a file's attributes, compared with the source's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
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
    fn of(stat: &Stat) -> Stamp {
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
struct Watched {
    by_wd: HashMap<WatchDescriptor, u64>,
    by_id: HashMap<u64, WatchDescriptor>,
    names: HashMap<u64, HashMap<OsString, u64>>,
    /// The names the kernel was told are missing in each watched folder (negative
    /// entries), until when: nothing else can name them when the queue overflows.
    missing: HashMap<u64, HashMap<OsString, Instant>>,
    missing_count: usize,
    reported: HashMap<u64, Stamp>,
    /// Names (folder, name) and nodes requests are changing, once per request: a few
    /// entries at most, one or two per request in flight.
    names_changing: Vec<(u64, OsString)>,
    nodes_changing: Vec<u64>,
}

/// How many missing names the watch keeps at most: past that (more names looked up in
/// vain within one TTL), missing names get the mount's `negative_ttl` instead.
const MOST_MISSING_NAMES: usize = 65_536;

impl Watched {
    /// Keeps `name` as told missing in `dir` until `expires`; false when too many are
    /// kept already.
    fn keep_missing(&mut self, dir: u64, name: &OsStr, expires: Instant) -> bool {
        if self.missing_count >= MOST_MISSING_NAMES {
            // The kernel has forgotten those whose TTL ran out.
            let now = Instant::now();
            for names in self.missing.values_mut() {
                names.retain(|_, until| *until > now);
            }
            self.missing.retain(|_, names| !names.is_empty());
            self.missing_count = self.missing.values().map(HashMap::len).sum();
            if self.missing_count >= MOST_MISSING_NAMES {
                return false;
            }
        }
        let names = self.missing.entry(dir).or_default();
        match names.get_mut(name) {
            Some(until) => *until = expires,
            None => {
                names.insert(name.to_os_string(), expires);
                self.missing_count += 1;
            }
        }
        true
    }

    /// `name` in `dir` is no longer a negative entry of the kernel's.
    fn drop_missing(&mut self, dir: u64, name: &OsStr) {
        if let Some(names) = self.missing.get_mut(&dir) {
            if names.remove(name).is_some() {
                self.missing_count -= 1;
            }
        }
    }

    /// Whether a request is still changing `name` in `dir`, or node `id`.
    fn changing(&self, dir: u64, name: Option<&OsStr>, id: Option<u64>) -> bool {
        let name_changing = name.is_some_and(|name| {
            self.names_changing.iter().any(|(changing_dir, changing)| *changing_dir == dir && changing == name)
        });
        name_changing || id.is_some_and(|id| self.nodes_changing.contains(&id))
    }

    /// Whether an event first read at `read_at` about these waits for a later batch:
    /// while a request is changing them, for at most [`LONGEST_WAIT`].
    fn waits(&self, dir: u64, name: Option<&OsStr>, id: Option<u64>, read_at: Instant) -> bool {
        self.changing(dir, name, id) && read_at.elapsed() < LONGEST_WAIT
    }
}

/// A request's mark on what it is changing in the source; dropped once the request
/// has recorded what it hands the kernel.
pub struct Changing<'a> {
    watched: &'a Mutex<Watched>,
    names: [Option<(u64, &'a OsStr)>; 2],
    node: Option<u64>,
}

impl<'a> Changing<'a> {
    fn mark(watched: &'a Mutex<Watched>, names: &[(u64, &'a OsStr)], node: Option<u64>) -> Changing<'a> {
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

/// One mount's watch over its source.
pub struct SourceWatch {
    watches: Watches,
    watched: Arc<Mutex<Watched>>,
    stopping: Arc<AtomicBool>,
    /// Some folder the kernel knows is not watched (inotify's limit was reached, or
    /// the relay stopped): changes there show only after the mount's TTLs.
    blind: Arc<AtomicBool>,
}

fn changes() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::MODIFY
        | WatchMask::ATTRIB
        | WatchMask::CLOSE_WRITE
        | WatchMask::ONLYDIR
}

impl SourceWatch {
    /// Starts watching, with `root` (node 1) watched first; notifications go to `host`.
    pub fn start(host: MountHost, nodes: Arc<Nodes>) -> std::io::Result<SourceWatch> {
        let inotify = Inotify::init()?;
        let watch = SourceWatch {
            watches: inotify.watches(),
            watched: Arc::default(),
            stopping: Arc::default(),
            blind: Arc::default(),
        };
        let root =
            nodes.get(fusehost_plugin_api::ROOT_INO).map_err(|errno| std::io::Error::from_raw_os_error(errno.0))?;
        watch.watch(fusehost_plugin_api::ROOT_INO, &root);
        let relay = Relay {
            host,
            nodes,
            watched: Arc::clone(&watch.watched),
            stopping: Arc::clone(&watch.stopping),
            blind: Arc::clone(&watch.blind),
        };
        std::thread::Builder::new().name("passthrough-watch".to_owned()).spawn(move || relay.run(inotify))?;
        Ok(watch)
    }

    /// Whether every folder the kernel knows is watched, so that what it caches is
    /// dropped as soon as the source changes.
    pub fn sees_everything(&self) -> bool {
        !self.blind.load(Ordering::Relaxed)
    }

    /// Marks `names` (folder, name; at most two) and `node` as being changed by a
    /// request until the returned mark is dropped: their events wait for it.
    pub fn changing<'a>(&'a self, names: &[(u64, &'a OsStr)], node: Option<u64>) -> Changing<'a> {
        Changing::mark(&self.watched, names, node)
    }

    /// The kernel is being handed `name` in folder `dir`, naming node `id` with the
    /// attributes in `stat`.
    pub fn handed_out(&self, dir: u64, name: &OsStr, id: u64, stat: &Stat) {
        let mut watched = self.watched.lock();
        watched.reported.insert(id, Stamp::of(stat));
        watched.drop_missing(dir, name);
        if watched.by_id.contains_key(&dir) {
            let names = watched.names.entry(dir).or_default();
            match names.get_mut(name) {
                Some(known) => *known = id,
                None => {
                    names.insert(name.to_os_string(), id);
                }
            }
        }
    }

    /// The kernel is being told that `name` is missing in folder `dir`, for `ttl`;
    /// kept so that an overflow of the queue drops that too. False when too many
    /// missing names are kept: then the kernel must not be told for long.
    pub fn told_missing(&self, dir: u64, name: &OsStr, ttl: Duration) -> bool {
        let mut watched = self.watched.lock();
        watched.by_id.contains_key(&dir) && watched.keep_missing(dir, name, Instant::now() + ttl)
    }

    /// The kernel is being told node `id`'s attributes.
    pub fn reported(&self, id: u64, stat: &Stat) {
        self.watched.lock().reported.insert(id, Stamp::of(stat));
    }

    /// `name` in `dir` was removed through the mount: the kernel dropped its entry.
    pub fn removed(&self, dir: u64, name: &OsStr) {
        if let Some(names) = self.watched.lock().names.get_mut(&dir) {
            names.remove(name);
        }
    }

    /// `name` in `dir` was renamed through the mount to `new_name` in `new_dir`
    /// (`exchange`: the two names swapped their files): the kernel moved its entries.
    pub fn renamed(&self, (dir, name): (u64, &OsStr), (new_dir, new_name): (u64, &OsStr), exchange: bool) {
        let mut watched = self.watched.lock();
        let moved = watched.names.get_mut(&dir).and_then(|names| names.remove(name));
        let replaced = watched.names.get_mut(&new_dir).and_then(|names| names.remove(new_name));
        let watching = |watched: &Watched, dir| watched.by_id.contains_key(&dir);
        if let (Some(id), true) = (moved, watching(&watched, new_dir)) {
            watched.names.entry(new_dir).or_default().insert(new_name.to_os_string(), id);
        }
        if let (Some(id), true, true) = (replaced, exchange, watching(&watched, dir)) {
            watched.names.entry(dir).or_default().insert(name.to_os_string(), id);
        }
    }

    /// Watches directory `id` (once).
    pub fn watch(&self, id: u64, node: &Node) {
        if self.watched.lock().by_id.contains_key(&id) {
            return;
        }
        let added = node.fd().map_err(|errno| std::io::Error::from_raw_os_error(errno.0));
        match added.and_then(|fd| self.watches.clone().add(fd.proc_path(), changes())) {
            Ok(wd) => {
                let mut watched = self.watched.lock();
                watched.by_id.insert(id, wd.clone());
                watched.by_wd.insert(wd, id);
            }
            Err(error) => {
                if !self.blind.swap(true, Ordering::Relaxed) {
                    // ENOSPC is inotify's watch limit; anything else (EACCES: a folder
                    // this process may search but not read) is the folder's own.
                    let fix = match error.raw_os_error() {
                        Some(libc::ENOSPC) => " (raise fs.inotify.max_user_watches)",
                        _ => "",
                    };
                    tracing::warn!(
                        "cannot watch a source folder ({error}): changes made outside the mount show after the \
                         TTLs there{fix}"
                    );
                }
            }
        }
    }

    /// The kernel forgot node `id`: stop watching it.
    pub fn forget(&self, id: u64) {
        let removed = {
            let mut watched = self.watched.lock();
            let wd = watched.by_id.remove(&id);
            if let Some(wd) = &wd {
                watched.by_wd.remove(wd);
            }
            watched.names.remove(&id);
            if let Some(names) = watched.missing.remove(&id) {
                watched.missing_count -= names.len();
            }
            watched.reported.remove(&id);
            wd
        };
        if let Some(wd) = removed {
            let _ = self.watches.clone().remove(wd);
        }
    }

    /// Stops the relay thread: removing the root's watch wakes it.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let all: Vec<WatchDescriptor> = self.watched.lock().by_wd.keys().cloned().collect();
        for wd in all {
            let _ = self.watches.clone().remove(wd);
        }
    }
}

/// What one batch of events asks the kernel to drop.
#[derive(Default)]
struct Invalidations {
    entries: HashSet<(u64, OsString)>,
    /// Directories whose listing and attributes changed.
    directories: HashSet<u64>,
    /// Nodes whose attributes and data changed.
    nodes: HashSet<u64>,
}

impl Invalidations {
    /// What an overflow of inotify's queue asks for: every name handed out or told
    /// missing in a watched folder (forgotten here, as the kernel forgets them), every
    /// watched folder, and every node the kernel holds.
    fn everything(watched: &mut Watched, nodes: &Nodes) -> Invalidations {
        let mut batch = Invalidations::default();
        for (dir, names) in watched.names.drain() {
            batch.entries.extend(names.into_keys().map(|name| (dir, name)));
        }
        for (dir, names) in watched.missing.drain() {
            batch.entries.extend(names.into_keys().map(|name| (dir, name)));
        }
        watched.missing_count = 0;
        batch.directories.extend(watched.by_id.keys().copied());
        batch.nodes.extend(nodes.held());
        batch
    }
}

/// One inotify event, as the relay keeps it between reading and judging.
struct Change {
    dir: u64,
    mask: EventMask,
    name: Option<OsString>,
    /// When it was first read: a change the mount is still making is judged later,
    /// but never later than `LONGEST_WAIT` after this.
    read_at: Instant,
}

/// How long the relay waits after an event before judging it with what follows.
const BATCH_WINDOW: Duration = Duration::from_millis(5);

/// How long an event may wait for the request changing its name or node to finish.
const LONGEST_WAIT: Duration = Duration::from_secs(1);

/// The thread that turns inotify events into kernel notifications.
struct Relay {
    host: MountHost,
    nodes: Arc<Nodes>,
    watched: Arc<Mutex<Watched>>,
    stopping: Arc<AtomicBool>,
    blind: Arc<AtomicBool>,
}

impl Relay {
    fn run(self, mut inotify: Inotify) {
        let mut buffer = vec![0u8; 64 * 1024];
        // Events whose names or nodes a request was still changing when last judged.
        let mut waiting = Vec::new();
        while !self.stopping.load(Ordering::SeqCst) {
            let mut changes = std::mem::take(&mut waiting);
            let mut overflowed = false;
            if changes.is_empty() {
                match inotify.read_events_blocking(&mut buffer) {
                    Ok(events) => overflowed |= self.collect(events, &mut changes),
                    Err(error) => return self.stop_seeing(&error),
                }
            }
            std::thread::sleep(BATCH_WINDOW);
            // What else arrived meanwhile, a bounded number of buffers at a time.
            for _ in 0..16 {
                match inotify.read_events(&mut buffer) {
                    Ok(events) => {
                        let before = changes.len();
                        overflowed |= self.collect(events, &mut changes);
                        if changes.len() == before && !overflowed {
                            break;
                        }
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(error) => return self.stop_seeing(&error),
                }
            }
            let batch = if overflowed {
                tracing::warn!(
                    "the source changed faster than its watch could follow (inotify's queue overflowed): \
                     dropping every cached name, attribute and page of this mount"
                );
                Invalidations::everything(&mut self.watched.lock(), &self.nodes)
            } else {
                self.judge(changes, &mut waiting)
            };
            self.send(&batch);
        }
    }

    fn stop_seeing(&self, error: &std::io::Error) {
        self.blind.store(true, Ordering::Relaxed);
        tracing::warn!("watching the source stopped: {error}; changes made outside the mount show after the TTLs");
    }

    /// Keeps the events of watched folders; returns whether the queue overflowed.
    fn collect<'a>(&self, events: impl Iterator<Item = inotify::Event<&'a OsStr>>, into: &mut Vec<Change>) -> bool {
        let watched = self.watched.lock();
        let read_at = Instant::now();
        let mut overflowed = false;
        for event in events {
            overflowed |= event.mask.contains(EventMask::Q_OVERFLOW);
            if let Some(&dir) = watched.by_wd.get(&event.wd) {
                into.push(Change { dir, mask: event.mask, name: event.name.map(OsStr::to_os_string), read_at });
            }
        }
        overflowed
    }

    /// What the kernel must drop: whatever the source no longer says as the kernel
    /// was told it, and the data of every file written to (a write need not change
    /// what a stat shows by the time this runs, and the kernel may keep pages).
    /// Events of names and nodes a request is still changing go to `waiting`.
    fn judge(&self, changes: Vec<Change>, waiting: &mut Vec<Change>) -> Invalidations {
        let mut batch = Invalidations::default();
        // Every name (and every folder's own events) judged once, by the source's
        // state now and all its events.
        let mut by_name: HashMap<(u64, Option<OsString>), (EventMask, Instant)> = HashMap::new();
        for change in changes {
            let (mask, read_at) =
                by_name.entry((change.dir, change.name)).or_insert((EventMask::empty(), change.read_at));
            *mask |= change.mask;
            *read_at = (*read_at).min(change.read_at);
        }
        for ((dir, name), (mask, read_at)) in by_name {
            let Some(name) = name else {
                // The folder itself changed (its own attributes).
                let now = self.nodes.get(dir).ok().and_then(|folder| folder.stat().ok());
                let mut watched = self.watched.lock();
                if watched.waits(dir, None, Some(dir), read_at) {
                    waiting.push(Change { dir, mask, name: None, read_at });
                } else if now.is_none_or(|stat| watched.reported.get(&dir) != Some(&Stamp::of(&stat))) {
                    batch.directories.insert(dir);
                    watched.reported.remove(&dir);
                }
                continue;
            };
            let now = self
                .nodes
                .get(dir)
                .ok()
                .and_then(|folder| statat(folder.fd().ok()?, &name, AtFlags::SYMLINK_NOFOLLOW).ok());
            let held = now.as_ref().and_then(|stat| self.nodes.known(stat).map(|id| (id, Stamp::of(stat))));
            let mut watched = self.watched.lock();
            if watched.waits(dir, Some(&name), held.map(|(id, _)| id), read_at) {
                waiting.push(Change { dir, mask, name: Some(name), read_at });
                continue;
            }
            let told = watched.names.get(&dir).and_then(|names| names.get(&name)).copied();
            let entry_is_current = match (told, &held) {
                // Handed out, and still naming the same node.
                (Some(told), Some((id, _))) => told == *id,
                // Not handed out (or removed through the mount), and not there now.
                (None, None) => now.is_none(),
                _ => false,
            };
            if !entry_is_current {
                batch.directories.insert(dir);
                if let Some(names) = watched.names.get_mut(&dir) {
                    names.remove(&name);
                }
                watched.drop_missing(dir, &name);
                batch.entries.insert((dir, name));
            }
            if let Some((id, stamp)) = held {
                if mask.contains(EventMask::MODIFY) || watched.reported.get(&id) != Some(&stamp) {
                    batch.nodes.insert(id);
                    watched.reported.remove(&id);
                }
            }
        }
        batch
    }

    fn send(&self, batch: &Invalidations) {
        for (dir, name) in &batch.entries {
            self.notify(|| self.host.invalidate_entry(*dir, name));
        }
        for dir in &batch.directories {
            self.notify(|| self.host.invalidate_inode(*dir, Some((0, 0))));
        }
        for id in &batch.nodes {
            self.notify(|| self.host.invalidate_inode(*id, Some((0, 0))));
        }
    }

    /// Sends one notification, waiting while the host's queue is full (`EAGAIN`):
    /// dropping it would leave the kernel trusting what changed. Other errors (the
    /// kernel does not know the name or node) need nothing.
    fn notify(&self, send: impl Fn() -> fusehost_plugin_api::Result<()>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while send() == Err(Errno::EAGAIN) && Instant::now() < deadline && !self.stopping.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_names_are_kept_up_to_a_cap_until_they_expire_or_an_overflow_drops_them() {
        let mut watched = Watched::default();
        let name = |text: &str| OsString::from(text);
        let live = Instant::now() + Duration::from_secs(60);
        assert!(watched.keep_missing(1, &name("a"), live));
        assert!(watched.keep_missing(1, &name("a"), live), "kept again, counted once");
        assert!(watched.keep_missing(2, &name("b"), live));
        assert_eq!(watched.missing_count, 2);
        watched.drop_missing(1, &name("a"));
        assert_eq!(watched.missing_count, 1);

        // At the cap, names whose TTL ran out make room; live ones do not.
        let expired = Instant::now();
        for index in 1..MOST_MISSING_NAMES {
            assert!(watched.keep_missing(3, &name(&format!("gone{index}")), expired));
        }
        assert!(watched.keep_missing(4, &name("c"), live), "the expired names made room");
        assert_eq!(watched.missing_count, 2);
        for index in 2..MOST_MISSING_NAMES {
            assert!(watched.keep_missing(5, &name(&format!("live{index}")), live));
        }
        assert!(!watched.keep_missing(6, &name("d"), live), "full of live names");

        // An overflow drops every one of them from the kernel, and from here.
        let root = rustix::fs::open(std::env::temp_dir(), rustix::fs::OFlags::PATH, rustix::fs::Mode::empty());
        let nodes = Nodes::new(root.unwrap()).unwrap();
        let batch = Invalidations::everything(&mut watched, &nodes);
        assert_eq!(batch.entries.len(), MOST_MISSING_NAMES);
        assert!(batch.entries.contains(&(2, name("b"))) && batch.entries.contains(&(4, name("c"))));
        assert!(watched.missing.is_empty() && watched.missing_count == 0);
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
