//! The host as the contract's enforcer: every plugin answer is checked the way the
//! kernel will check it, before anything is counted or replied.
//!
//! The kernel silently drops an entry whose mode names no file type, whose size
//! exceeds `i64::MAX`, whose inode is 0 or 1 from a creating request, or whose type is
//! not the one the request created: it never counts it, never sends `FORGET` for it,
//! and for `create` never sends `RELEASE`. An errno outside `1..=511` is worse: the
//! kernel rejects the reply before matching it to its request, and the caller hangs
//! for ever, unkillable. So each such answer becomes `EIO` here, is counted as an
//! anomaly (shown by `fusehost status`) and logged, rate-limited, naming the
//! operation; the mount's span names the mount. This is nbdkit's `backend.c` role: one
//! layer between the protocol and every plugin.

use std::any::Any;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use fusehost_abi::{Attr, Entry, Errno};
use fusehost_plugin_api::FileKind;
use fuser::{FileAttr, FileType, Generation, INodeNo};
use parking_lot::Mutex;

use crate::log_limit::LogLimiter;
use crate::stats::Op;

/// The largest errno the kernel accepts in a reply (`MAX_ERRNO` less the kernel's own
/// internal codes from 512 up).
pub const MAX_ERRNO: i32 = 511;

/// Why an entry is refused whose inode number the kernel still holds under another
/// generation: the plugin reused a number it was never told to forget.
pub const REUSED_INODE: &str = "an inode number the kernel still holds, handed out with a new generation";

/// What the kernel will think of a plugin's answer.
pub type Checked<T> = Result<T, &'static str>;

/// The errno to send for a plugin's error, or `None` when the kernel would reject it.
pub fn kernel_errno(errno: Errno) -> Option<fuser::Errno> {
    (1..=MAX_ERRNO).contains(&errno.0).then(|| fuser::Errno::from_i32(errno.0))
}

fn file_type(mode: u32) -> Option<FileType> {
    Some(match FileKind::from_mode(mode)? {
        FileKind::RegularFile => FileType::RegularFile,
        FileKind::Directory => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::NamedPipe => FileType::NamedPipe,
        FileKind::CharDevice => FileType::CharDevice,
        FileKind::BlockDevice => FileType::BlockDevice,
        FileKind::Socket => FileType::Socket,
    })
}

/// A directory entry's kind (`S_IF*` bits) as fuser's type, if it names one.
pub fn entry_kind(mode: u32) -> Checked<FileType> {
    file_type(mode).ok_or("a kind that names no file type")
}

/// Attributes the kernel will accept, as fuser's.
pub fn check_attr(attr: &Attr) -> Checked<FileAttr> {
    let kind = file_type(attr.mode).ok_or("attributes whose mode names no file type")?;
    if attr.size > i64::MAX as u64 {
        return Err("attributes with a size beyond i64::MAX");
    }
    // A file's times are often equal (all four of a new file, mtime and ctime after a
    // write): each distinct one is converted once.
    let mtime = fusehost_plugin_api::from_timespec(attr.mtime);
    let like_mtime = |time| if time == attr.mtime { mtime } else { fusehost_plugin_api::from_timespec(time) };
    Ok(FileAttr {
        ino: INodeNo(attr.ino),
        size: attr.size,
        blocks: attr.blocks,
        atime: like_mtime(attr.atime),
        mtime,
        ctime: like_mtime(attr.ctime),
        crtime: like_mtime(attr.crtime),
        kind,
        perm: (attr.mode & 0o7777) as u16,
        nlink: attr.nlink,
        uid: attr.uid,
        gid: attr.gid,
        rdev: attr.rdev,
        blksize: attr.blksize,
        flags: attr.flags,
    })
}

/// What a request that hands out an entry expects of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// lookup: any type; inode 0 is a negative entry, the root may come back.
    Found,
    /// link: a new name for an existing inode, never the root or 0.
    Linked,
    /// create, mkdir, mknod, symlink: a new inode of exactly these `S_IF*` bits.
    Created(u32),
}

/// An entry the kernel will accept, with its attributes as fuser's.
pub fn check_entry(entry: &Entry, expected: Expected) -> Checked<(FileAttr, Generation)> {
    let attr = check_attr(&entry.attr)?;
    let ino = entry.attr.ino;
    match expected {
        Expected::Found if ino == 1 && entry.generation != 0 => return Err("the root with a generation other than 0"),
        Expected::Found => {}
        Expected::Linked | Expected::Created(_) if ino <= 1 => {
            return Err("a new entry with inode 0 or 1 (the root)");
        }
        Expected::Created(kind) if FileKind::from_mode(entry.attr.mode) != FileKind::from_mode(kind) => {
            return Err("a new entry of another file type than the one requested");
        }
        Expected::Linked | Expected::Created(_) => {}
    }
    Ok((attr, Generation(entry.generation)))
}

/// One mount's protocol breaches: counted, and logged without flooding.
#[derive(Debug)]
pub struct Anomalies {
    count: AtomicU64,
    /// Inodes the kernel holds that the plugin denied, each logged once.
    denied: Mutex<HashSet<u64>>,
    breaches: LogLimiter,
}

impl Default for Anomalies {
    fn default() -> Self {
        Anomalies { count: AtomicU64::new(0), denied: Mutex::default(), breaches: LogLimiter::new("protocol breaches") }
    }
}

impl Anomalies {
    /// How many breaches were seen.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// A plugin answer the kernel would reject; the caller answers `EIO`.
    #[cold]
    pub fn invalid_answer(&self, op: Op, what: &str) -> fuser::Errno {
        self.count.fetch_add(1, Ordering::Relaxed);
        if self.breaches.allow() {
            tracing::error!(operation = op.name(), "plugin answered {what}; replying EIO");
        }
        fuser::Errno::EIO
    }

    /// A reply the plugin dropped without answering; the caller answers `EIO`.
    #[cold]
    pub fn dropped_reply(&self, op: Op) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if self.breaches.allow() {
            tracing::error!(operation = op.name(), "plugin dropped the reply without answering; replying EIO");
        }
    }

    /// An errno the kernel cannot carry.
    #[cold]
    pub fn invalid_errno(&self, op: Op, errno: Errno) -> fuser::Errno {
        self.count.fetch_add(1, Ordering::Relaxed);
        if self.breaches.allow() {
            tracing::error!(
                operation = op.name(),
                "plugin answered errno {} (outside 1..={MAX_ERRNO}, which would hang the caller); replying EIO",
                errno.0
            );
        }
        fuser::Errno::EIO
    }

    /// The plugin said `ENOENT` for an inode the kernel holds (it handed it out and
    /// was not told to forget it): `ls -l` shows `?????????`. Logged once per inode.
    #[cold]
    pub fn denied_inode(&self, op: Op, ino: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if self.denied.lock().insert(ino) {
            tracing::warn!(
                operation = op.name(),
                "plugin denies inode {ino} (ENOENT), which it handed out and the kernel still holds"
            );
        }
    }

    /// A panic inside the host while serving a request: answered `EIO`, and the
    /// worker thread goes on serving the mount.
    #[cold]
    pub fn host_panic(&self, op: Op, panic: &(dyn Any + Send)) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if self.breaches.allow() {
            let message = fusehost_plugin_api::panic_message(panic);
            tracing::error!(operation = op.name(), "the host panicked serving this request: {message}; replied EIO");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ino: u64, mode: u32, size: u64) -> Entry {
        Entry { attr: Attr { ino, mode, size, ..Attr::default() }, generation: 0 }
    }

    const REG: u32 = 0o100_644;
    const DIR: u32 = 0o040_755;

    #[test]
    fn errnos_outside_what_the_kernel_accepts_are_refused() {
        assert!(kernel_errno(Errno(0)).is_none());
        assert!(kernel_errno(Errno(-5)).is_none());
        assert!(kernel_errno(Errno(512)).is_none());
        assert!(kernel_errno(Errno(600)).is_none());
        assert_eq!(kernel_errno(Errno(2)), Some(fuser::Errno::ENOENT));
        assert!(kernel_errno(Errno(MAX_ERRNO)).is_some());
    }

    #[test]
    fn entries_are_checked_as_the_kernel_does() {
        assert!(check_entry(&entry(5, REG, 10), Expected::Found).is_ok());
        assert!(check_entry(&entry(5, 0o644, 10), Expected::Found).is_err(), "no type");
        assert!(check_entry(&entry(5, REG, u64::MAX), Expected::Found).is_err(), "size");
        assert!(check_entry(&entry(1, DIR, 0), Expected::Found).is_ok(), "lookup may return the root");
        assert!(check_entry(&entry(1, REG, 0), Expected::Created(REG)).is_err());
        assert!(check_entry(&entry(0, REG, 0), Expected::Linked).is_err());
        assert!(check_entry(&entry(5, REG, 0), Expected::Created(DIR)).is_err(), "mkdir made a file");
        assert!(check_entry(&entry(5, DIR, 0), Expected::Created(DIR)).is_ok());
    }
}
