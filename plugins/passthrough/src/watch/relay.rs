//! The watch's thread: reads inotify's events in batches, judges each against the
//! source's state and what the kernel was told, and sends the kernel what it must
//! drop.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fusehost_plugin_api::sync::Mutex;
use fusehost_plugin_api::tracing;
use fusehost_plugin_api::{Errno, MountHost};
use inotify::{EventMask, Inotify};
use rustix::fs::{statat, AtFlags};

use super::told::{Stamp, Watched};
use crate::nodes::Nodes;

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
        batch.entries.extend(watched.missing.drain());
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

/// Whether a name's events say it is gone: removed (deleted, or moved away) and neither
/// created nor moved back since. Judging it then needs no `statat`, which matters: on a
/// filesystem that keeps no negative dentries (tmpfs), looking up a removed name takes
/// the folder's lock and stalls the requests removing the names beside it (unlinking
/// 5,000 files through a mount ran at 12k/s instead of 19k/s while the watch did).
fn removed_for_good(mask: EventMask) -> bool {
    mask.intersects(EventMask::DELETE | EventMask::MOVED_FROM)
        && !mask.intersects(EventMask::CREATE | EventMask::MOVED_TO)
}

/// The thread that turns inotify events into kernel notifications.
pub(super) struct Relay {
    pub(super) host: MountHost,
    pub(super) nodes: Arc<Nodes>,
    pub(super) watched: Arc<Mutex<Watched>>,
    pub(super) stopping: Arc<AtomicBool>,
    pub(super) blind: Arc<AtomicBool>,
}

impl Relay {
    pub(super) fn run(self, mut inotify: Inotify) {
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
            let now = if removed_for_good(mask) {
                None
            } else {
                self.nodes
                    .get(dir)
                    .ok()
                    .and_then(|folder| statat(folder.fd().ok()?, &name, AtFlags::SYMLINK_NOFOLLOW).ok())
            };
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
                watched.missing.remove(dir, &name);
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
    fn only_a_name_removed_and_not_added_back_is_gone_without_a_look() {
        assert!(removed_for_good(EventMask::DELETE | EventMask::ATTRIB));
        assert!(removed_for_good(EventMask::MOVED_FROM | EventMask::CLOSE_WRITE));
        assert!(!removed_for_good(EventMask::DELETE | EventMask::CREATE), "created again");
        assert!(!removed_for_good(EventMask::MOVED_FROM | EventMask::MOVED_TO), "an exchange");
        assert!(!removed_for_good(EventMask::MODIFY | EventMask::ATTRIB), "still there");
    }

    #[test]
    fn an_overflow_drops_every_missing_name_the_kernel_was_told() {
        let mut watched = Watched::default();
        let live = Instant::now() + Duration::from_secs(60);
        assert!(watched.missing.keep(1, OsStr::new("a"), live) && watched.missing.keep(2, OsStr::new("b"), live));
        let root = rustix::fs::open(std::env::temp_dir(), rustix::fs::OFlags::PATH, rustix::fs::Mode::empty());
        let nodes = Nodes::new(root.unwrap()).unwrap();
        let batch = Invalidations::everything(&mut watched, &nodes);
        assert!(batch.entries.contains(&(1, OsString::from("a"))) && batch.entries.contains(&(2, OsString::from("b"))));
        assert_eq!(watched.missing.len(), 0, "forgotten here too");
    }
}
