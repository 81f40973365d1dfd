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
//!
//! What the kernel was told is kept in [`told`]; the thread that judges events and
//! sends notifications is [`relay`].

mod relay;
mod told;

use std::ffi::OsStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fusehost_plugin_api::sync::Mutex;
use fusehost_plugin_api::tracing;
use fusehost_plugin_api::MountHost;
use inotify::{Inotify, WatchDescriptor, WatchMask, Watches};
use rustix::fs::Stat;

use crate::nodes::{Node, Nodes};
use relay::Relay;
pub use told::Changing;
use told::{Stamp, Watched};

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
        watched.missing.remove(dir, name);
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
        watched.by_id.contains_key(&dir) && watched.missing.keep(dir, name, Instant::now() + ttl)
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
            watched.missing.forget_folder(id);
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
