//! One inode: its metadata behind a small mutex, and its body (file pages, directory
//! entries, link target) behind its own lock.
//!
//! Lock order, everywhere: the namespace lock (directory changes only), then body
//! locks (several only under the namespace lock), then metadata locks, which are
//! leaves: nothing is ever locked while a metadata lock is held. File data is copied
//! under the file's own body lock only, never under a lock shared by the whole
//! filesystem.

use std::time::{Duration, SystemTime};

use fusehost_plugin_api::sync::{Mutex, RwLock};
use fusehost_plugin_api::{flags, FileAttr, FileKind};

use crate::data::FileData;
use crate::dir::Dir;
use crate::xattr::Xattrs;

/// What an inode holds besides its metadata.
#[derive(Debug)]
pub enum Body {
    File(RwLock<FileData>),
    Dir(RwLock<Dir>),
    Symlink(Vec<u8>),
    /// fifos, sockets, character and block devices: metadata only.
    Node,
}

#[derive(Debug)]
pub struct Meta {
    pub kind: FileKind,
    /// Permission bits with setuid, setgid and sticky (`0o7777`).
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub rdev: u32,
    /// Bytes for files, the target's length for symlinks.
    pub size: u64,
    /// Pages a file holds, mirrored here so getattr needs no body lock.
    pub pages: u64,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub crtime: SystemTime,
    pub xattrs: Xattrs,
    /// Open file handles.
    pub open: u32,
}

impl Meta {
    pub fn new(kind: FileKind, perm: u16, uid: u32, gid: u32, now: SystemTime) -> Meta {
        Meta {
            kind,
            perm: perm & 0o7777,
            uid,
            gid,
            nlink: if kind == FileKind::Directory { 2 } else { 1 },
            rdev: 0,
            size: 0,
            pages: 0,
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            xattrs: Xattrs::new(),
            open: 0,
        }
    }

    /// A change of content: mtime and ctime move.
    pub fn modified(&mut self, now: SystemTime) {
        self.mtime = now;
        self.ctime = now;
    }

    /// Linux drops setuid, and setgid when group-executable, when a file's owner
    /// changes or an unprivileged write lands (`should_remove_suid`). Returns whether
    /// there were any.
    pub fn drop_privileges(&mut self) -> bool {
        if self.kind == FileKind::Directory {
            return false;
        }
        let before = self.perm;
        // Permission bits fit in 12 bits: the rule only clears some of them.
        self.perm = flags::mode::without_privileges(u32::from(before)) as u16;
        self.perm != before
    }

    /// relatime: move atime on access only when it is older than mtime or ctime, or
    /// more than a day old.
    pub fn accessed(&mut self, now: SystemTime) {
        let stale = self.atime <= self.mtime
            || self.atime <= self.ctime
            || now.duration_since(self.atime).is_ok_and(|age| age > Duration::from_secs(24 * 3600));
        if stale {
            self.atime = now;
        }
    }
}

#[derive(Debug)]
pub struct Inode {
    pub ino: u64,
    pub meta: Mutex<Meta>,
    pub body: Body,
}

impl Inode {
    pub fn attr(&self) -> FileAttr {
        attr_of(self.ino, &self.meta.lock())
    }

    pub fn as_dir(&self) -> Option<&RwLock<Dir>> {
        match &self.body {
            Body::Dir(dir) => Some(dir),
            _ => None,
        }
    }
}

/// Attributes from metadata already locked.
pub fn attr_of(ino: u64, meta: &Meta) -> FileAttr {
    FileAttr {
        ino,
        size: if meta.kind == FileKind::Directory { 4096 } else { meta.size },
        blocks: meta.pages * 8,
        atime: meta.atime,
        mtime: meta.mtime,
        ctime: meta.ctime,
        crtime: meta.crtime,
        kind: meta.kind,
        perm: meta.perm,
        nlink: meta.nlink,
        uid: meta.uid,
        gid: meta.gid,
        rdev: meta.rdev,
        blksize: 4096,
        flags: 0,
    }
}
