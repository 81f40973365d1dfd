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
//! Changes made through the mount are seen too and cost one needless invalidation
//! each; events are coalesced per read, so a stream of writes costs a few, not one per
//! write. Notifications are queued by the host and sent from its own thread, so
//! sending them while a request holds a directory lock cannot deadlock.
//!
//! The watch also keeps the names the kernel was handed in each watched folder, for
//! the one event that names nothing: inotify's queue overflowing (changes came faster
//! than this thread read them). Then every one of those names, every folder's listing
//! and every file's attributes and data are dropped from the kernel's caches, so that
//! `cache = auto`'s long TTLs never outlive a change the watch missed.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fusehost_plugin_api::sync::Mutex;
use fusehost_plugin_api::tracing;
use fusehost_plugin_api::{Errno, MountHost};
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use rustix::fs::{statat, AtFlags};

use crate::nodes::{Node, Nodes};

/// What is watched: the directories, by inotify's descriptor and by node id, and the
/// names the kernel was handed in each.
#[derive(Default)]
struct Watched {
    by_wd: HashMap<WatchDescriptor, u64>,
    by_id: HashMap<u64, WatchDescriptor>,
    names: HashMap<u64, HashSet<OsString>>,
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

    /// The kernel is being handed `name` in folder `dir`: remembered (in a watched
    /// folder) so that an overflow of inotify's queue can take it back.
    pub fn handed_out(&self, dir: u64, name: &OsStr) {
        let mut watched = self.watched.lock();
        if watched.by_id.contains_key(&dir) {
            let names = watched.names.entry(dir).or_default();
            if !names.contains(name) {
                names.insert(name.to_os_string());
            }
        }
    }

    /// Watches directory `id` (once).
    pub fn watch(&self, id: u64, node: &Node) {
        if self.watched.lock().by_id.contains_key(&id) {
            return;
        }
        match self.watches.clone().add(node.proc_path(), changes()) {
            Ok(wd) => {
                let mut watched = self.watched.lock();
                watched.by_id.insert(id, wd.clone());
                watched.by_wd.insert(wd, id);
            }
            Err(error) => {
                if !self.blind.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "cannot watch more source folders ({error}): changes made outside the mount show after the \
                         TTLs there (raise fs.inotify.max_user_watches)"
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
    /// Names whose file (if the kernel holds it) changed.
    contents: HashSet<(u64, OsString)>,
    /// Nodes whose attributes and data are dropped whatever they are (an overflow).
    nodes: Vec<u64>,
}

impl Invalidations {
    /// What an overflow of inotify's queue asks for: every name handed out in a
    /// watched folder (forgotten here, as the kernel forgets them), every watched
    /// folder, and every node the kernel holds.
    fn everything(watched: &mut Watched, nodes: &Nodes) -> Invalidations {
        let mut batch = Invalidations::default();
        for (dir, names) in watched.names.drain() {
            batch.entries.extend(names.into_iter().map(|name| (dir, name)));
        }
        batch.directories.extend(watched.by_id.keys().copied());
        batch.nodes = nodes.held();
        batch
    }

    /// Adds what one event says changed in watched folder `dir`.
    fn add(&mut self, watched: &mut Watched, dir: u64, mask: EventMask, name: Option<&OsStr>) {
        let Some(name) = name else {
            self.directories.insert(dir);
            return;
        };
        if mask.intersects(EventMask::CREATE | EventMask::DELETE | EventMask::MOVED_FROM | EventMask::MOVED_TO) {
            self.entries.insert((dir, name.to_os_string()));
            self.directories.insert(dir);
            // The kernel drops the entry: it is no longer handed out.
            if let Some(names) = watched.names.get_mut(&dir) {
                names.remove(name);
            }
        }
        self.contents.insert((dir, name.to_os_string()));
    }
}

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
        while !self.stopping.load(Ordering::SeqCst) {
            let events = match inotify.read_events_blocking(&mut buffer) {
                Ok(events) => events,
                Err(error) => {
                    self.blind.store(true, Ordering::Relaxed);
                    tracing::warn!(
                        "watching the source stopped: {error}; changes made outside the mount show after the TTLs"
                    );
                    return;
                }
            };
            let mut batch = Invalidations::default();
            {
                let mut watched = self.watched.lock();
                for event in events {
                    if event.mask.contains(EventMask::Q_OVERFLOW) {
                        tracing::warn!(
                            "the source changed faster than its watch could follow (inotify's queue overflowed): \
                             dropping every cached name, attribute and page of this mount"
                        );
                        batch = Invalidations::everything(&mut watched, &self.nodes);
                        break;
                    }
                    let Some(&dir) = watched.by_wd.get(&event.wd) else { continue };
                    batch.add(&mut watched, dir, event.mask, event.name);
                }
            }
            self.send(&batch);
        }
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
        for (dir, name) in &batch.contents {
            // The kernel knows the file by node id, which the table finds by (dev, ino).
            let Ok(parent) = self.nodes.get(*dir) else { continue };
            if let Ok(stat) = statat(&parent.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                if let Some(id) = self.nodes.known(&stat) {
                    self.notify(|| self.host.invalidate_inode(id, Some((0, 0))));
                }
            }
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
