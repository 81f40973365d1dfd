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

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fusehost_plugin_api::sync::Mutex;
use fusehost_plugin_api::tracing;
use fusehost_plugin_api::MountHost;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use rustix::fs::{statat, AtFlags};

use crate::nodes::{Node, Nodes};

/// What is watched: the directories, by inotify's descriptor and by node id.
#[derive(Default)]
struct Watched {
    by_wd: HashMap<WatchDescriptor, u64>,
    by_id: HashMap<u64, WatchDescriptor>,
}

/// One mount's watch over its source.
pub struct SourceWatch {
    watches: Watches,
    watched: Arc<Mutex<Watched>>,
    stopping: Arc<AtomicBool>,
    /// Logged once: the watch limit (`fs.inotify.max_user_watches`) was reached.
    limit_reported: AtomicBool,
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
            limit_reported: AtomicBool::new(false),
        };
        let root =
            nodes.get(fusehost_plugin_api::ROOT_INO).map_err(|errno| std::io::Error::from_raw_os_error(errno.0))?;
        watch.watch(fusehost_plugin_api::ROOT_INO, &root);
        let (watched, stopping) = (Arc::clone(&watch.watched), Arc::clone(&watch.stopping));
        std::thread::Builder::new()
            .name("passthrough-watch".to_owned())
            .spawn(move || relay(inotify, &host, &nodes, &watched, &stopping))?;
        Ok(watch)
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
                if !self.limit_reported.swap(true, Ordering::Relaxed) {
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
}

fn relay(mut inotify: Inotify, host: &MountHost, nodes: &Nodes, watched: &Mutex<Watched>, stopping: &AtomicBool) {
    let mut buffer = vec![0u8; 64 * 1024];
    while !stopping.load(Ordering::SeqCst) {
        let events = match inotify.read_events_blocking(&mut buffer) {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!("watching the source stopped: {error}");
                return;
            }
        };
        let mut batch = Invalidations::default();
        {
            let watched = watched.lock();
            for event in events {
                let Some(dir) = watched.by_wd.get(&event.wd) else { continue };
                let name = event.name.map(OsStr::to_os_string);
                match name {
                    Some(name) => {
                        if event.mask.intersects(
                            EventMask::CREATE | EventMask::DELETE | EventMask::MOVED_FROM | EventMask::MOVED_TO,
                        ) {
                            batch.entries.insert((*dir, name.clone()));
                            batch.directories.insert(*dir);
                        }
                        batch.contents.insert((*dir, name));
                    }
                    None => {
                        batch.directories.insert(*dir);
                    }
                }
            }
        }
        send(host, &batch, nodes);
    }
}

fn send(host: &MountHost, batch: &Invalidations, nodes: &Nodes) {
    for (dir, name) in &batch.entries {
        let _ = host.invalidate_entry(*dir, name);
    }
    for dir in &batch.directories {
        let _ = host.invalidate_inode(*dir, Some((0, 0)));
    }
    for (dir, name) in &batch.contents {
        // The kernel knows the file by node id, which the table finds by (dev, ino).
        let Ok(parent) = nodes.get(*dir) else { continue };
        if let Ok(stat) = statat(&parent.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            if let Some(id) = nodes.known(&stat) {
                let _ = host.invalidate_inode(id, Some((0, 0)));
            }
        }
    }
}
