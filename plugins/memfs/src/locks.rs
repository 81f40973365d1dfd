//! POSIX record locks (`fcntl` `F_GETLK`, `F_SETLK`, `F_SETLKW`), kept by memfs
//! instead of the kernel when option `posix_locks` is on (ABI 1.1's `POSIX_LOCKS`
//! capability). For one machine the kernel's own locks are as good; this is the shape a
//! networked filesystem needs, where locks must hold across machines, and the
//! reference for plugins that serve locks.
//!
//! A lock belongs to a lock owner (the kernel's id for a process's open file table)
//! and covers bytes `start..=end`. Locks of one owner never overlap: setting a range
//! replaces what the owner held there, splitting locks at its edges. The kernel drops
//! an owner's locks by sending `flush` with its id when the owner closes the file.
//!
//! `F_SETLKW` waits inside the request, holding one of the mount's worker threads
//! until the lock is free (async replies will lift that): with N waiters at once the
//! mount needs more than N threads, or the unlock that would wake them cannot be
//! served. A waiter whose process is gone stops waiting (`EINTR`), since the kernel
//! does not pass interrupts on.

use std::collections::HashMap;
use std::time::Duration;

use fusehost_plugin_api::sync::{Condvar, Mutex};
use fusehost_plugin_api::{Errno, FileLock, Result};

const F_RDLCK: i32 = 0;
const F_WRLCK: i32 = 1;
const F_UNLCK: i32 = 2;

/// How often a waiting `F_SETLKW` checks that its process still exists.
const WAITER_CHECK: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    owner: u64,
    pid: u32,
    write: bool,
    start: u64,
    end: u64,
}

impl Held {
    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.start <= end && start <= self.end
    }
}

/// Every inode's locks.
#[derive(Default)]
pub struct Locks {
    held: Mutex<HashMap<u64, Vec<Held>>>,
    released: Condvar,
}

fn kind(lock: &FileLock) -> Result<Option<bool>> {
    match lock.typ {
        F_RDLCK => Ok(Some(false)),
        F_WRLCK => Ok(Some(true)),
        F_UNLCK => Ok(None),
        _ => Err(Errno::EINVAL),
    }
}

fn conflict(held: &[Held], owner: u64, write: bool, start: u64, end: u64) -> Option<Held> {
    held.iter().copied().find(|lock| lock.owner != owner && lock.overlaps(start, end) && (write || lock.write))
}

impl Locks {
    /// The lock that keeps `owner` from taking `lock` on `ino`, or `lock` as `F_UNLCK`.
    pub fn get(&self, ino: u64, owner: u64, lock: &FileLock) -> Result<FileLock> {
        let write = kind(lock)?.ok_or(Errno::EINVAL)?;
        let held = self.held.lock();
        let found = held.get(&ino).and_then(|locks| conflict(locks, owner, write, lock.start, lock.end));
        Ok(match found {
            Some(lock) => FileLock {
                start: lock.start,
                end: lock.end,
                typ: if lock.write { F_WRLCK } else { F_RDLCK },
                pid: lock.pid,
            },
            None => FileLock { typ: F_UNLCK, ..*lock },
        })
    }

    /// Takes, changes or drops (`F_UNLCK`) `owner`'s lock on `ino`; with `wait`, waits
    /// for a conflicting lock to go.
    pub fn set(&self, ino: u64, owner: u64, lock: &FileLock, wait: bool) -> Result<()> {
        let wanted = kind(lock)?;
        let (start, end) = (lock.start, lock.end);
        if start > end {
            return Err(Errno::EINVAL);
        }
        let mut held = self.held.lock();
        if let Some(write) = wanted {
            while held.get(&ino).and_then(|locks| conflict(locks, owner, write, start, end)).is_some() {
                if !wait {
                    return Err(Errno::EAGAIN);
                }
                self.released.wait_for(&mut held, WAITER_CHECK);
                if !process_exists(lock.pid) {
                    return Err(Errno::EINTR);
                }
            }
        }
        let locks = held.entry(ino).or_default();
        carve(locks, owner, start, end);
        if let Some(write) = wanted {
            locks.push(Held { owner, pid: lock.pid, write, start, end });
        } else {
            self.released.notify_all();
        }
        if locks.is_empty() {
            held.remove(&ino);
        }
        Ok(())
    }

    /// `owner` closed the file: its locks on `ino` go.
    pub fn release_owner(&self, ino: u64, owner: u64) {
        let mut held = self.held.lock();
        if let Some(locks) = held.get_mut(&ino) {
            let before = locks.len();
            locks.retain(|lock| lock.owner != owner);
            if locks.len() != before {
                self.released.notify_all();
            }
            if locks.is_empty() {
                held.remove(&ino);
            }
        }
    }
}

/// Removes `start..=end` from `owner`'s locks, keeping the parts outside it.
fn carve(locks: &mut Vec<Held>, owner: u64, start: u64, end: u64) {
    let mut kept = Vec::with_capacity(locks.len() + 1);
    for lock in locks.drain(..) {
        if lock.owner != owner || !lock.overlaps(start, end) {
            kept.push(lock);
            continue;
        }
        if lock.start < start {
            kept.push(Held { end: start - 1, ..lock });
        }
        if lock.end > end {
            kept.push(Held { start: end + 1, ..lock });
        }
    }
    *locks = kept;
}

fn process_exists(pid: u32) -> bool {
    pid == 0 || std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(typ: i32, start: u64, end: u64) -> FileLock {
        FileLock { start, end, typ, pid: 0 }
    }

    #[test]
    fn readers_share_and_a_writer_waits_for_them() {
        let locks = Locks::default();
        locks.set(5, 1, &lock(F_RDLCK, 0, 99), false).unwrap();
        locks.set(5, 2, &lock(F_RDLCK, 50, 150), false).unwrap();
        assert_eq!(locks.set(5, 3, &lock(F_WRLCK, 90, 95), false), Err(Errno::EAGAIN));
        assert_eq!(locks.get(5, 3, &lock(F_WRLCK, 120, 130)).unwrap().start, 50);
        locks.release_owner(5, 2);
        locks.set(5, 3, &lock(F_WRLCK, 120, 130), false).unwrap();
    }

    #[test]
    fn unlocking_the_middle_splits_a_lock() {
        let locks = Locks::default();
        locks.set(5, 1, &lock(F_WRLCK, 0, 99), false).unwrap();
        locks.set(5, 1, &lock(F_UNLCK, 40, 59), false).unwrap();
        assert_eq!(locks.get(5, 2, &lock(F_WRLCK, 40, 59)).unwrap().typ, F_UNLCK);
        assert_eq!(locks.get(5, 2, &lock(F_WRLCK, 60, 60)).unwrap().start, 60);
        assert_eq!(locks.get(5, 2, &lock(F_WRLCK, 0, 0)).unwrap().end, 39);
    }

    #[test]
    fn a_waiter_gets_the_lock_when_it_is_released() {
        let locks = std::sync::Arc::new(Locks::default());
        locks.set(5, 1, &lock(F_WRLCK, 0, u64::MAX), false).unwrap();
        let waiter = {
            let locks = std::sync::Arc::clone(&locks);
            std::thread::spawn(move || locks.set(5, 2, &lock(F_WRLCK, 0, 10), true))
        };
        locks.set(5, 1, &lock(F_UNLCK, 0, u64::MAX), false).unwrap();
        assert_eq!(waiter.join().unwrap(), Ok(()));
        assert_eq!(locks.get(5, 1, &lock(F_RDLCK, 5, 5)).unwrap().typ, F_WRLCK);
    }
}
