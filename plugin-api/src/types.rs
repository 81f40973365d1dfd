//! The values a filesystem hands back: attributes, entries, open handles, setattr
//! changes, and their conversions to and from the ABI's plain `#[repr(C)]` forms.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fusehost_abi::abi_stable::std_types::RDuration;
use fusehost_abi::{open_flags, setattr_valid, Timespec};

pub use fusehost_abi::{Errno, FileLock, RequestCtx as Request, StatFs};

/// The result of every filesystem operation: a value or an errno for the caller.
pub type Result<T> = std::result::Result<T, Errno>;

/// Inode 1 is the root directory of every mount.
pub const ROOT_INO: u64 = 1;

/// The kind of a file, as the `S_IF*` bits of its mode say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    RegularFile,
    Directory,
    Symlink,
    NamedPipe,
    CharDevice,
    BlockDevice,
    Socket,
}

const S_IFMT: u32 = 0o170000;

impl FileKind {
    /// The `S_IF*` bits of this kind.
    pub const fn mode_bits(self) -> u32 {
        match self {
            FileKind::NamedPipe => 0o010000,
            FileKind::CharDevice => 0o020000,
            FileKind::Directory => 0o040000,
            FileKind::BlockDevice => 0o060000,
            FileKind::RegularFile => 0o100000,
            FileKind::Symlink => 0o120000,
            FileKind::Socket => 0o140000,
        }
    }

    /// The kind named by a mode's `S_IF*` bits, if they name one.
    pub const fn from_mode(mode: u32) -> Option<FileKind> {
        Some(match mode & S_IFMT {
            0o010000 => FileKind::NamedPipe,
            0o020000 => FileKind::CharDevice,
            0o040000 => FileKind::Directory,
            0o060000 => FileKind::BlockDevice,
            0o100000 => FileKind::RegularFile,
            0o120000 => FileKind::Symlink,
            0o140000 => FileKind::Socket,
            _ => return None,
        })
    }
}

/// A file's attributes, as `stat(2)` shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileAttr {
    pub ino: u64,
    pub size: u64,
    /// Allocated size in 512-byte blocks.
    pub blocks: u64,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub crtime: SystemTime,
    pub kind: FileKind,
    /// Permission bits, including setuid, setgid and sticky (`0o7777`).
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub blksize: u32,
    pub flags: u32,
}

impl FileAttr {
    /// Attributes of a file of `kind` with `perm`, owned by root, all times `time`,
    /// one link (two for a directory), size 0. Adjust the fields you need.
    pub fn new(ino: u64, kind: FileKind, perm: u16, time: SystemTime) -> FileAttr {
        FileAttr {
            ino,
            size: 0,
            blocks: 0,
            atime: time,
            mtime: time,
            ctime: time,
            crtime: time,
            kind,
            perm,
            nlink: if kind == FileKind::Directory { 2 } else { 1 },
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// From the ABI form; `None` when its mode names no file type.
    pub fn from_abi(raw: &fusehost_abi::Attr) -> Option<FileAttr> {
        Some(FileAttr {
            ino: raw.ino,
            size: raw.size,
            blocks: raw.blocks,
            atime: from_timespec(raw.atime),
            mtime: from_timespec(raw.mtime),
            ctime: from_timespec(raw.ctime),
            crtime: from_timespec(raw.crtime),
            kind: FileKind::from_mode(raw.mode)?,
            perm: (raw.mode & 0o7777) as u16,
            nlink: raw.nlink,
            uid: raw.uid,
            gid: raw.gid,
            rdev: raw.rdev,
            blksize: raw.blksize,
            flags: raw.flags,
        })
    }

    /// The ABI form of an answer with its own TTL (`None`: the mount's).
    pub fn to_abi_ttl(&self, ttl: Option<Duration>) -> fusehost_abi::AttrTtl {
        fusehost_abi::AttrTtl { attr: self.to_abi(), attr_ttl: ttl.map(RDuration::from).into() }
    }

    /// The ABI form.
    pub fn to_abi(&self) -> fusehost_abi::Attr {
        // A file's times are often equal (all four of a new file, mtime and ctime
        // after a write): each distinct one is converted once.
        let mtime = to_timespec(self.mtime);
        let like_mtime = |time| if time == self.mtime { mtime } else { to_timespec(time) };
        fusehost_abi::Attr {
            ino: self.ino,
            size: self.size,
            blocks: self.blocks,
            atime: like_mtime(self.atime),
            mtime,
            ctime: like_mtime(self.ctime),
            crtime: like_mtime(self.crtime),
            mode: self.kind.mode_bits() | u32::from(self.perm & 0o7777),
            nlink: self.nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: self.rdev,
            blksize: self.blksize,
            flags: self.flags,
        }
    }
}

/// What lookup, create, mkdir, mknod, symlink and link return: the entry the kernel
/// will remember. The host counts it; you learn when the kernel forgets it through
/// [`Filesystem::forget`](crate::Filesystem::forget).
///
/// From ABI 1.1 an entry may carry its own TTLs (see [`Entry::with_ttls`]), and a
/// lookup may answer [`Entry::negative`]. In a 1.0 host both fall back to the mount's
/// TTLs and a plain `ENOENT`. The TTLs reach the kernel from every answer that hands
/// out an entry in a host of ABI 1.3 or later (readdirplus listings included); before
/// 1.3 only from `lookup` and from the entries `mknod`, `mkdir`, `symlink` and `link`
/// answer later (see [`later`](crate::later)), and the rest take the mount's TTLs
/// until the kernel looks the name up again. `create` and readdirplus take the shorter
/// of the two (the kernel keeps one TTL for both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub attr: FileAttr,
    /// Tells apart two files that had the same inode number at different times.
    pub generation: u64,
    /// How long the kernel may trust the name (`None`: the mount's `entry_ttl`).
    pub entry_ttl: Option<Duration>,
    /// How long the kernel may trust the attributes (`None`: the mount's `attr_ttl`).
    pub attr_ttl: Option<Duration>,
}

impl Entry {
    pub fn new(attr: FileAttr) -> Entry {
        Entry { attr, generation: 0, entry_ttl: None, attr_ttl: None }
    }

    /// "No such name, and the kernel may remember that for `ttl`": answer this from
    /// `lookup` instead of `ENOENT` to choose the time (`ENOENT` gets the mount's
    /// `negative_ttl`). Anything created through the mount replaces it at once; a name
    /// that appears another way needs [`MountHost::invalidate_entry`](crate::MountHost::invalidate_entry).
    pub fn negative(ttl: Duration) -> Entry {
        let mut entry = Entry::new(FileAttr::new(0, FileKind::RegularFile, 0, UNIX_EPOCH));
        entry.entry_ttl = Some(ttl);
        entry
    }

    /// Whether this is a [negative](Entry::negative) entry.
    pub fn is_negative(&self) -> bool {
        self.attr.ino == 0
    }

    /// Sets this entry's own TTLs for the name and the attributes.
    pub fn with_ttls(mut self, entry_ttl: Duration, attr_ttl: Duration) -> Entry {
        self.entry_ttl = Some(entry_ttl);
        self.attr_ttl = Some(attr_ttl);
        self
    }

    /// The 1.1 ABI form, with TTLs.
    pub fn to_abi_ttl(&self) -> fusehost_abi::EntryTtl {
        fusehost_abi::EntryTtl {
            entry: self.to_abi(),
            entry_ttl: self.entry_ttl.map(RDuration::from).into(),
            attr_ttl: self.attr_ttl.map(RDuration::from).into(),
        }
    }

    /// The ABI form.
    pub fn to_abi(&self) -> fusehost_abi::Entry {
        fusehost_abi::Entry { attr: self.attr.to_abi(), generation: self.generation }
    }
}

/// The answer to open and opendir: a handle of your choosing and caching hints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Opened {
    /// Handed back on every later request for this open file.
    pub fh: u64,
    /// The data did not change since the file was last open: keep the page cache.
    /// Without it every `open()` drops the cached pages (22k against 809k random
    /// 4 KiB reads/s, measured).
    pub keep_cache: bool,
    /// Bypass the page cache: every read and write reaches the plugin. A file opened
    /// `O_DIRECT` gets it from the host without asking (where the kernel keeps such
    /// handles coherent with its page cache: Linux 6.6+).
    pub direct_io: bool,
    /// The file has no seekable position.
    pub nonseekable: bool,
    /// For opendir: the kernel may cache this directory's entries.
    pub cache_dir: bool,
    /// Do not send `flush` when the file is closed.
    pub no_flush: bool,
    /// A descriptor the kernel should read and write directly (FUSE passthrough,
    /// Linux 6.9+, root only). You keep owning it and close it on release. When the
    /// kernel takes it, the host drops `keep_cache` and `direct_io` (the descriptor's
    /// own page cache serves); they apply if passthrough is refused.
    pub passthrough_fd: Option<i32>,
}

impl Opened {
    /// An open handle `fh` with no hints.
    pub fn handle(fh: u64) -> Opened {
        Opened { fh, ..Opened::default() }
    }

    /// Sets `keep_cache`.
    pub fn keep_cache(mut self) -> Opened {
        self.keep_cache = true;
        self
    }

    /// Sets `direct_io`.
    pub fn direct_io(mut self) -> Opened {
        self.direct_io = true;
        self
    }

    /// The ABI form.
    pub fn to_abi(&self) -> fusehost_abi::Opened {
        let mut flags = 0;
        for (set, bit) in [
            (self.direct_io, open_flags::DIRECT_IO),
            (self.keep_cache, open_flags::KEEP_CACHE),
            (self.nonseekable, open_flags::NONSEEKABLE),
            (self.cache_dir, open_flags::CACHE_DIR),
            (self.no_flush, open_flags::NOFLUSH),
        ] {
            if set {
                flags |= bit;
            }
        }
        fusehost_abi::Opened { fh: self.fh, flags, passthrough_fd: self.passthrough_fd.unwrap_or(-1) }
    }
}

/// A time a setattr asks for: a given instant or "now".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeOrNow {
    At(SystemTime),
    Now,
}

/// The changes a setattr (chmod, chown, truncate, utimens) asks for; `None` means
/// "leave as it is".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeOrNow>,
    pub mtime: Option<TimeOrNow>,
    pub ctime: Option<SystemTime>,
    /// The open handle, when the change comes through one (`ftruncate`).
    pub fh: Option<u64>,
}

impl SetAttr {
    /// Reads the ABI form.
    pub fn from_abi(raw: &fusehost_abi::SetAttr) -> SetAttr {
        let has = |bit: u32| raw.valid & bit != 0;
        let time = |bit: u32, now_bit: u32, at: Timespec| {
            if has(now_bit) {
                Some(TimeOrNow::Now)
            } else if has(bit) {
                Some(TimeOrNow::At(from_timespec(at)))
            } else {
                None
            }
        };
        SetAttr {
            mode: has(setattr_valid::MODE).then_some(raw.mode),
            uid: has(setattr_valid::UID).then_some(raw.uid),
            gid: has(setattr_valid::GID).then_some(raw.gid),
            size: has(setattr_valid::SIZE).then_some(raw.size),
            atime: time(setattr_valid::ATIME, setattr_valid::ATIME_NOW, raw.atime),
            mtime: time(setattr_valid::MTIME, setattr_valid::MTIME_NOW, raw.mtime),
            ctime: has(setattr_valid::CTIME).then(|| from_timespec(raw.ctime)),
            fh: has(setattr_valid::FH).then_some(raw.fh),
        }
    }
}

/// A `SystemTime` as seconds and nanoseconds since the epoch (negative before it).
pub fn to_timespec(time: SystemTime) -> Timespec {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => Timespec { sec: i64::try_from(after.as_secs()).unwrap_or(i64::MAX), nsec: after.subsec_nanos() },
        Err(before) => {
            let before = before.duration();
            let mut sec = -i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            let mut nsec = before.subsec_nanos();
            if nsec > 0 {
                sec -= 1;
                nsec = 1_000_000_000 - nsec;
            }
            Timespec { sec, nsec }
        }
    }
}

/// The `SystemTime` of a timespec.
pub fn from_timespec(time: Timespec) -> SystemTime {
    let nanos = time.nsec.min(999_999_999);
    if time.sec >= 0 {
        UNIX_EPOCH + Duration::new(time.sec.unsigned_abs(), nanos)
    } else {
        UNIX_EPOCH - Duration::from_secs(time.sec.unsigned_abs()) + Duration::from_nanos(u64::from(nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespec_round_trips_before_and_after_the_epoch() {
        for time in [
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            UNIX_EPOCH - Duration::new(5, 250_000_000),
            UNIX_EPOCH,
        ] {
            assert_eq!(from_timespec(to_timespec(time)), time);
        }
        // Whatever a plugin sends converts without overflow.
        for sec in [i64::MIN, i64::MAX] {
            let time = from_timespec(Timespec { sec, nsec: u32::MAX });
            assert_eq!(to_timespec(time), Timespec { sec, nsec: 999_999_999 });
        }
        assert_eq!(to_timespec(UNIX_EPOCH - Duration::new(5, 250_000_000)), Timespec { sec: -6, nsec: 750_000_000 });
    }

    #[test]
    fn file_kind_round_trips_through_mode_bits() {
        for kind in [
            FileKind::RegularFile,
            FileKind::Directory,
            FileKind::Symlink,
            FileKind::NamedPipe,
            FileKind::CharDevice,
            FileKind::BlockDevice,
            FileKind::Socket,
        ] {
            assert_eq!(FileKind::from_mode(kind.mode_bits() | 0o644), Some(kind));
        }
        assert_eq!(FileKind::from_mode(0o644), None);
    }

    #[test]
    fn setattr_reads_only_valid_fields() {
        let raw = fusehost_abi::SetAttr {
            valid: setattr_valid::SIZE | setattr_valid::MTIME_NOW,
            size: 42,
            mode: 0o777,
            ..Default::default()
        };
        let set = SetAttr::from_abi(&raw);
        assert_eq!(set.size, Some(42));
        assert_eq!(set.mode, None);
        assert_eq!(set.mtime, Some(TimeOrNow::Now));
        assert_eq!(set.atime, None);
    }
}
