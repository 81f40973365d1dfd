//! The kernel's references to each inode, counted by the host so plugins never do.
//!
//! Every entry handed to the kernel (lookup, create, mkdir, mknod, symlink, link, and
//! readdirplus entries other than `.` and `..`) is one reference; `FORGET` and
//! `BATCH_FORGET` drop `n` of them. When an inode's count reaches zero the caller
//! confirms it (once no request can be handing the inode out again, see dispatch's
//! forget barrier) and then tells the plugin, once. The root (inode 1) is the kernel's own and never counted, and
//! inode 0 in an entry means "no inode" (a negative entry).
//!
//! Next to each count the table keeps the generation the inode was handed out with: a
//! plugin that hands out an inode number the kernel still holds under a new generation
//! broke the rule that numbers are reused only after `forget`: [`LookupTable::remember`]
//! refuses to count it, and dispatch answers `EIO`.
//!
//! The map is sharded (dashmap), so lookups and forgets of different inodes rarely meet
//! on a lock; a single `Mutex<HashMap>` would put one lock on every lookup of a mount.
//! Its keys are inode numbers the plugin chose, hashed with FxHash: SipHash's flooding
//! resistance would only protect a plugin from itself, and cost ~200 instructions per
//! request that hands out or forgets an entry (callgrind).
//! Anything the kernel should never do (forget an inode it was not given, or more
//! references than it holds) is counted as an anomaly and logged at warn.

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use rustc_hash::FxBuildHasher;

/// Per-mount reference counts of the inodes the kernel knows.
#[derive(Debug, Default)]
pub struct LookupTable {
    counts: DashMap<u64, Counted, FxBuildHasher>,
    anomalies: AtomicU64,
    forgotten: AtomicU64,
}

/// The kernel's references to one inode, and the generation it was handed out with.
#[derive(Debug, Clone, Copy)]
struct Counted {
    count: u64,
    generation: u64,
}

/// An inode number handed out again, under a new generation, while the kernel still
/// holds it under the old one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReusedInode;

fn is_counted(ino: u64) -> bool {
    ino > 1
}

impl LookupTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// One more entry for `ino` handed to the kernel. Call it before the reply is sent,
    /// so that a forget racing the reply always finds the count. Refused, and nothing
    /// counted, when the kernel still holds `ino` under another generation.
    pub fn remember(&self, ino: u64, generation: u64) -> Result<(), ReusedInode> {
        if !is_counted(ino) {
            return Ok(());
        }
        let mut counted = self.counts.entry(ino).or_insert(Counted { count: 0, generation });
        if counted.generation != generation {
            return Err(ReusedInode);
        }
        counted.count += 1;
        Ok(())
    }

    /// The kernel dropped `n` references to `ino`. Returns `true` when that was the
    /// last one; [`LookupTable::confirm_forgotten`] then decides whether the plugin is
    /// told.
    pub fn forget(&self, ino: u64, n: u64) -> bool {
        if !is_counted(ino) {
            return false;
        }
        match self.counts.entry(ino) {
            Entry::Occupied(mut counted) => {
                let count = &mut counted.get_mut().count;
                if *count > n {
                    *count -= n;
                    return false;
                }
                if *count < n {
                    let held = *count;
                    self.anomaly(format_args!("forget of {n} references to inode {ino}, which had {held}"));
                }
                counted.remove();
                true
            }
            Entry::Vacant(_) => {
                self.anomaly(format_args!("forget of {n} references to inode {ino}, which the kernel was never given"));
                false
            }
        }
    }

    /// After [`LookupTable::forget`] returned `true`, and with no request handing out
    /// entries in flight: whether `ino` is still unknown (no lookup handed it out again
    /// meanwhile), in which case the plugin must be told now.
    pub fn confirm_forgotten(&self, ino: u64) -> bool {
        let gone = !self.counts.contains_key(&ino);
        if gone {
            self.forgotten.fetch_add(1, Ordering::Relaxed);
        }
        gone
    }

    /// Empties the table (at unmount) and returns every inode that was still counted.
    pub fn drain(&self) -> Vec<u64> {
        let inodes: Vec<u64> = self.counts.iter().map(|counted| *counted.key()).collect();
        for ino in &inodes {
            if self.counts.remove(ino).is_some() {
                self.forgotten.fetch_add(1, Ordering::Relaxed);
            }
        }
        inodes
    }

    /// How many inodes the kernel currently holds references to.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The references the kernel holds to `ino` (0 when unknown).
    pub fn count(&self, ino: u64) -> u64 {
        self.counts.get(&ino).map_or(0, |counted| counted.count)
    }

    /// How many times the plugin was told to forget (confirmed zeros and the drain at
    /// unmount).
    pub fn forgotten(&self) -> u64 {
        self.forgotten.load(Ordering::Relaxed)
    }

    /// How many impossible forgets were seen.
    pub fn anomalies(&self) -> u64 {
        self.anomalies.load(Ordering::Relaxed)
    }

    fn anomaly(&self, what: std::fmt::Arguments<'_>) {
        self.anomalies.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("lookup-count anomaly: {what}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;

    #[test]
    fn reaches_zero_exactly_once() {
        let table = LookupTable::new();
        table.remember(7, 0).unwrap();
        table.remember(7, 0).unwrap();
        table.remember(7, 0).unwrap();
        assert!(!table.forget(7, 2));
        assert_eq!(table.count(7), 1);
        assert!(table.forget(7, 1));
        assert!(table.confirm_forgotten(7));
        assert_eq!(table.count(7), 0);
        assert!(table.is_empty());
        assert_eq!(table.anomalies(), 0);
        assert_eq!(table.forgotten(), 1);
    }

    #[test]
    fn a_zero_is_not_confirmed_when_the_inode_was_handed_out_again() {
        let table = LookupTable::new();
        table.remember(5, 0).unwrap();
        assert!(table.forget(5, 1));
        table.remember(5, 0).unwrap(); // a racing lookup returned it again
        assert!(!table.confirm_forgotten(5));
        assert_eq!(table.count(5), 1);
        assert_eq!(table.forgotten(), 0);
    }

    #[test]
    fn root_and_negative_entries_are_not_counted() {
        let table = LookupTable::new();
        table.remember(1, 0).unwrap();
        table.remember(0, 0).unwrap();
        assert!(table.is_empty());
        assert!(!table.forget(1, 5));
        assert_eq!(table.anomalies(), 0);
    }

    #[test]
    fn unknown_inode_and_underflow_are_anomalies() {
        let table = LookupTable::new();
        assert!(!table.forget(9, 1));
        assert_eq!(table.anomalies(), 1);
        table.remember(9, 0).unwrap();
        // More than held: still the last reference, and an anomaly.
        assert!(table.forget(9, 3));
        assert_eq!(table.anomalies(), 2);
        assert!(table.is_empty());
    }

    #[test]
    fn drain_returns_every_counted_inode() {
        let table = LookupTable::new();
        for ino in [2, 3, 3, 40] {
            table.remember(ino, 0).unwrap();
        }
        let mut drained = table.drain();
        drained.sort_unstable();
        assert_eq!(drained, vec![2, 3, 40]);
        assert!(table.is_empty());
        assert_eq!(table.forgotten(), 3);
    }

    #[test]
    fn a_number_held_under_another_generation_is_not_counted() {
        let table = LookupTable::new();
        table.remember(8, 1).unwrap();
        assert_eq!(table.remember(8, 2), Err(ReusedInode));
        assert_eq!(table.count(8), 1, "the refused entry was not counted");
        assert!(table.forget(8, 1));
        table.remember(8, 2).unwrap();
    }

    #[test]
    fn many_threads_remember_and_forget_at_once() {
        const THREADS: u64 = 8;
        const INODES: u64 = 64;
        const ROUNDS: u64 = 2_000;
        let table = Arc::new(LookupTable::new());
        let last_forgets = Arc::new(AtomicU64::new(0));
        let workers: Vec<_> = (0..THREADS)
            .map(|worker| {
                let table = Arc::clone(&table);
                let last_forgets = Arc::clone(&last_forgets);
                thread::spawn(move || {
                    for round in 0..ROUNDS {
                        let ino = 2 + (round * 7 + worker) % INODES;
                        table.remember(ino, 0).unwrap();
                        table.remember(ino, 0).unwrap();
                        for _ in 0..2 {
                            if table.forget(ino, 1) && table.confirm_forgotten(ino) {
                                last_forgets.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        assert_eq!(table.anomalies(), 0, "balanced remember/forget must never underflow");
        assert!(table.is_empty(), "every reference was dropped");
        assert_eq!(last_forgets.load(Ordering::Relaxed), table.forgotten());
        // The last zero of each inode is always confirmed: nothing hands it out after.
        assert!(table.forgotten() >= INODES, "every inode was forgotten at least once");
    }
}
