//! Every FUSE request, forwarded to the source directory through the node's `O_PATH`
//! descriptor and `*at()` calls.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

use fusehost_plugin_api::sync::{Mutex, RwLock};
use fusehost_plugin_api::{
    flags, Capabilities, DirSink, Entry, Errno, FileAttr, FileKind, Filesystem, MountHost, Negotiated, Opened, Request,
    Result, SetAttr, StatFs, TimeOrNow,
};
use rustix::fs::{
    chmod, copy_file_range, fallocate, fdatasync, fstatvfs, fsync, ftruncate, linkat, mkdirat, mknodat, openat,
    readlinkat, renameat_with, seek, symlinkat, unlinkat, utimensat, AtFlags, Dir, FallocateFlags, Gid, Mode, OFlags,
    RenameFlags, SeekFrom, Stat, Timespec, Timestamps, Uid, XattrFlags, CWD, UTIME_NOW, UTIME_OMIT,
};
use rustix::io::{pread, pwrite};

use crate::cache::CacheMode;
use crate::nodes::{errno, proc_path_of, Node, NodeFd, Nodes};
use crate::watch::{Changing, SourceWatch};

/// One directory listing, read whole by the first readdir (and again at offset 0).
/// Not at opendir: a kernel that caches the listing opens the folder without
/// reading it (reading 10,000 entries there made each `ls` 4x slower).
struct Listing {
    fd: OwnedFd,
    entries: Option<Vec<(OsString, u64, FileKind)>>,
}

pub struct Passthrough {
    nodes: Arc<Nodes>,
    files: RwLock<HashMap<u64, Arc<OwnedFd>>>,
    dirs: RwLock<HashMap<u64, Arc<Mutex<Listing>>>>,
    next_handle: AtomicU64,
    /// Hand open files to the kernel's FUSE passthrough.
    kernel_passthrough: bool,
    /// Running as root: new files get the caller's ownership.
    as_root: bool,
    /// Watch the source for changes made outside the mount (ABI 1.1 hosts only).
    watch_source: bool,
    watch: OnceLock<SourceWatch>,
    /// How much the kernel may cache.
    cache: CacheMode,
    /// The mount's notifications, for the attributes a dropped setuid changes.
    host: OnceLock<MountHost>,
}

fn time_of(seconds: i64, nanos: u64) -> std::time::SystemTime {
    let nanos = Duration::from_nanos(nanos.min(999_999_999));
    if seconds >= 0 {
        UNIX_EPOCH + Duration::from_secs(seconds as u64) + nanos
    } else {
        UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs()) + nanos
    }
}

// `struct stat`'s field types differ between architectures: the casts are for the others.
#[allow(clippy::unnecessary_cast)]
fn attr_of(id: u64, stat: &Stat) -> Result<FileAttr> {
    let mode = stat.st_mode as u32;
    Ok(FileAttr {
        ino: id,
        size: stat.st_size as u64,
        blocks: stat.st_blocks as u64,
        atime: time_of(stat.st_atime as i64, stat.st_atime_nsec as u64),
        mtime: time_of(stat.st_mtime as i64, stat.st_mtime_nsec as u64),
        ctime: time_of(stat.st_ctime as i64, stat.st_ctime_nsec as u64),
        crtime: time_of(stat.st_ctime as i64, stat.st_ctime_nsec as u64),
        kind: FileKind::from_mode(mode).ok_or(Errno::EIO)?,
        perm: (mode & 0o7777) as u16,
        nlink: stat.st_nlink as u32,
        uid: stat.st_uid,
        gid: stat.st_gid,
        rdev: stat.st_rdev as u32,
        blksize: stat.st_blksize as u32,
        flags: 0,
    })
}

/// Drops setuid, and setgid where the group may execute, from `file` in the source;
/// returns whether there were any. What the kernel does when a caller without
/// `CAP_FSETID` changes a file, and leaves to a filesystem with `HANDLE_KILLPRIV_V2`.
fn drop_privileges(file: &impl AsFd) -> Result<bool> {
    let mode = permissions(&rustix::fs::fstat(file).map_err(errno)?);
    let kept = flags::mode::without_privileges(mode);
    if kept == mode {
        return Ok(false);
    }
    chmod(proc_path_of(&file.as_fd()), Mode::from_raw_mode(kept)).map_err(errno)?;
    Ok(true)
}

/// A stat's permission bits, setuid, setgid and sticky included.
// `st_mode` is a `u32` on some architectures and narrower on others.
#[allow(clippy::unnecessary_cast)]
fn permissions(stat: &Stat) -> u32 {
    stat.st_mode as u32 & 0o7777
}

fn kind_of(file_type: rustix::fs::FileType) -> FileKind {
    use rustix::fs::FileType as T;
    match file_type {
        T::Directory => FileKind::Directory,
        T::Symlink => FileKind::Symlink,
        T::Fifo => FileKind::NamedPipe,
        T::Socket => FileKind::Socket,
        T::CharacterDevice => FileKind::CharDevice,
        T::BlockDevice => FileKind::BlockDevice,
        _ => FileKind::RegularFile,
    }
}

fn timespec(time: Option<TimeOrNow>) -> Timespec {
    match time {
        None => Timespec { tv_sec: 0, tv_nsec: UTIME_OMIT },
        Some(TimeOrNow::Now) => Timespec { tv_sec: 0, tv_nsec: UTIME_NOW },
        Some(TimeOrNow::At(at)) => {
            let spec = fusehost_plugin_api::to_timespec(at);
            Timespec { tv_sec: spec.sec, tv_nsec: spec.nsec.into() }
        }
    }
}

impl Passthrough {
    pub fn new(root: OwnedFd, kernel_passthrough: bool, watch_source: bool, cache: CacheMode) -> Result<Passthrough> {
        Ok(Passthrough {
            nodes: Arc::new(Nodes::new(root)?),
            files: RwLock::new(HashMap::new()),
            dirs: RwLock::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            kernel_passthrough,
            as_root: rustix::process::geteuid().is_root(),
            watch_source,
            watch: OnceLock::new(),
            cache,
            host: OnceLock::new(),
        })
    }

    /// Whether this mount clears setuid and setgid itself (`HANDLE_KILLPRIV_V2`): not
    /// when open files go to the kernel, whose writes never reach this daemon; and
    /// only as root, since otherwise the source's own write drops them for us.
    fn kills_privileges(&self) -> bool {
        !self.kernel_passthrough && self.as_root
    }

    /// Drops setuid and setgid from `file` when `killing` and this mount does so
    /// itself, then tells the kernel, whose cached mode still shows them.
    fn drop_privileges_of(&self, ino: u64, file: &impl AsFd, killing: bool) -> Result<()> {
        if killing && self.kills_privileges() && drop_privileges(file)? {
            if let Some(host) = self.host.get() {
                // Best effort: the kernel may already have forgotten the node.
                let _ = host.invalidate_inode(ino, None);
            }
        }
        Ok(())
    }

    fn entry(&self, parent_id: u64, parent: &Node, name: &OsStr) -> Result<Entry> {
        let (id, stat) = self.nodes.look_up(parent, name)?;
        self.known(parent_id, name, id, &stat)
    }

    /// The entry for `name` in `parent_id` of the file behind `file`, found through
    /// the descriptor, not the name.
    fn entry_of(&self, parent_id: u64, name: &OsStr, file: &OwnedFd) -> Result<Entry> {
        let (id, stat) = self.nodes.node_of(file)?;
        self.known(parent_id, name, id, &stat)
    }

    /// An entry the kernel will hold, with the cache mode's TTLs: the watch remembers
    /// what the kernel was told, and a directory is watched from now on.
    fn known(&self, parent_id: u64, name: &OsStr, id: u64, stat: &Stat) -> Result<Entry> {
        let attr = attr_of(id, stat)?;
        if let Some(watch) = self.watch.get() {
            watch.handed_out(parent_id, name, id, stat);
            if attr.kind == FileKind::Directory {
                watch.watch(id, &*self.nodes.get(id)?);
            }
        }
        Ok(self.cache.entry(Entry::new(attr), self.watched()))
    }

    /// `ino`'s attributes, read through `file` (its descriptor), as the kernel will be
    /// told them.
    fn reported_attr(&self, ino: u64, file: impl AsFd) -> Result<FileAttr> {
        let stat = rustix::fs::fstat(file).map_err(errno)?;
        if let Some(watch) = self.watch.get() {
            watch.reported(ino, &stat);
        }
        attr_of(ino, &stat)
    }

    /// `name` in `parent` was removed through the mount.
    fn removed(&self, parent: u64, name: &OsStr) {
        if let Some(watch) = self.watch.get() {
            watch.removed(parent, name);
        }
    }

    /// Marks the names (folder, name) and the node a request is about to change in the
    /// source, until the mark is dropped after the request recorded what it hands out:
    /// the watch judges their events only then.
    fn changing<'a>(&'a self, names: &[(u64, &'a OsStr)], node: Option<u64>) -> Option<Changing<'a>> {
        self.watch.get().map(|watch| watch.changing(names, node))
    }

    /// The answer for `name`, which the source does not have in `parent`: a negative
    /// entry for the cache mode's TTL, kept by the watch (when it runs) so that an
    /// overflow of its queue drops it too; `ENOENT` (the mount's `negative_ttl`) where
    /// the mode leaves the mount's TTLs or the watch keeps too many already.
    fn missing(&self, parent: u64, name: &OsStr) -> Result<Entry> {
        let negative = self.cache.missing(self.watched())?;
        let ttl = negative.entry_ttl.unwrap_or_default();
        match self.watch.get() {
            Some(watch) if !ttl.is_zero() && !watch.told_missing(parent, name, ttl) => Err(Errno::ENOENT),
            _ => Ok(negative),
        }
    }

    /// Whether the source watch sees every folder the kernel knows.
    fn watched(&self) -> bool {
        self.watch.get().is_some_and(SourceWatch::sees_everything)
    }

    fn file(&self, fh: u64) -> Result<Arc<OwnedFd>> {
        self.files.read().get(&fh).cloned().ok_or(Errno::EBADF)
    }

    /// Finishes a creation through a descriptor of the new file itself, never by
    /// name (a name in the source can be swapped for a symlink at any moment): the
    /// caller's ownership when running as root (keeping the group a setgid directory
    /// handed down), then the exact mode the caller asked for. The host process's own
    /// umask also applied to the `*at()` call; the caller's umask is already in `mode`,
    /// and a setgid bit the new directory inherited stays. Returns the new file's node.
    fn settle(
        &self,
        req: &Request,
        (parent_id, parent): (u64, &NodeFd),
        name: &OsStr,
        file: &OwnedFd,
        mode: Option<u32>,
    ) -> Result<Entry> {
        if self.as_root {
            let parent_setgid = permissions(&rustix::fs::fstat(parent).map_err(errno)?) & flags::mode::SETGID != 0;
            let gid = (!parent_setgid).then(|| Gid::from_raw(req.gid));
            rustix::fs::chownat(
                file,
                "",
                Some(Uid::from_raw(req.uid)),
                gid,
                AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(errno)?;
        }
        if let Some(mode) = mode {
            let current = permissions(&rustix::fs::fstat(file).map_err(errno)?);
            let wanted = (mode & 0o7777 & !req.umask) | (current & flags::mode::SETGID);
            if wanted != current {
                // The /proc link names exactly this file, whatever its name now is.
                chmod(proc_path_of(file), Mode::from_raw_mode(wanted)).map_err(errno)?;
            }
        }
        self.entry_of(parent_id, name, file)
    }

    /// Opens what `mknodat`/`mkdirat`/`symlinkat` just made under `name`, refusing to
    /// follow a symlink and checking it is still of the kind that was made.
    fn just_made(parent: &NodeFd, name: &OsStr, kind: rustix::fs::FileType) -> Result<OwnedFd> {
        let fd =
            openat(parent, name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()).map_err(errno)?;
        let made = rustix::fs::fstat(&fd).map_err(errno)?;
        if rustix::fs::FileType::from_raw_mode(made.st_mode) != kind {
            // Someone replaced it in the source between the two calls: touch nothing.
            return Err(Errno::EEXIST);
        }
        Ok(fd)
    }

    fn remember_handle<T>(&self, map: &RwLock<HashMap<u64, Arc<T>>>, value: T) -> u64 {
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        map.write().insert(fh, Arc::new(value));
        fh
    }

    fn opened(&self, fd: OwnedFd) -> Opened {
        let raw = fd.as_raw_fd();
        let fh = self.remember_handle(&self.files, fd);
        // Nothing to do at close: the source file is closed at release.
        let mut opened = Opened { no_flush: true, ..Opened::handle(fh) };
        if self.kernel_passthrough {
            opened.passthrough_fd = Some(raw);
        }
        self.cache.open_file(opened, self.watched())
    }

    fn read_listing(fd: &OwnedFd) -> Result<Vec<(OsString, u64, FileKind)>> {
        let mut dir = Dir::read_from(fd).map_err(errno)?;
        let mut entries = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(errno)?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes()).to_os_string();
            entries.push((name, entry.ino(), kind_of(entry.file_type())));
        }
        Ok(entries)
    }
}

impl Filesystem for Passthrough {
    /// Open files may go straight to the kernel. Not writeback caching: the kernel
    /// would read through write-only descriptors and turn appends into positioned
    /// writes on the source.
    fn capabilities(&self) -> Capabilities {
        if self.kills_privileges() {
            // Clearing setuid here spares every write the kernel's
            // `security.capability` lookup: a round trip per `write()`.
            Capabilities::PASSTHROUGH | Capabilities::HANDLE_KILLPRIV_V2
        } else {
            Capabilities::PASSTHROUGH
        }
    }

    fn lookup(&self, _req: &Request, parent: u64, name: &OsStr) -> Result<Entry> {
        match self.entry(parent, &*self.nodes.get(parent)?, name) {
            Err(errno) if errno == Errno::ENOENT => self.missing(parent, name),
            found => found,
        }
    }

    fn init(&self, _negotiated: &Negotiated, host: MountHost) {
        let _ = self.host.set(host.clone());
        if !self.watch_source {
            return;
        }
        match SourceWatch::start(host, Arc::clone(&self.nodes)) {
            Ok(watch) => {
                let _ = self.watch.set(watch);
            }
            Err(error) => fusehost_plugin_api::tracing::warn!(
                "cannot watch the source ({error}): changes made outside the mount show after the TTLs"
            ),
        }
    }

    fn forget(&self, ino: u64) {
        if let Some(watch) = self.watch.get() {
            watch.forget(ino);
        }
        self.nodes.forget(ino);
    }

    fn getattr(&self, _req: &Request, ino: u64, _fh: Option<u64>) -> Result<FileAttr> {
        self.reported_attr(ino, self.nodes.get(ino)?.fd()?)
    }

    fn getattr_with_ttl(&self, req: &Request, ino: u64, fh: Option<u64>) -> Result<(FileAttr, Option<Duration>)> {
        Ok((self.getattr(req, ino, fh)?, self.cache.ttl(self.watched())))
    }

    fn setattr_with_ttl(&self, req: &Request, ino: u64, changes: &SetAttr) -> Result<(FileAttr, Option<Duration>)> {
        Ok((self.setattr(req, ino, changes)?, self.cache.ttl(self.watched())))
    }

    fn setattr(&self, req: &Request, ino: u64, changes: &SetAttr) -> Result<FileAttr> {
        let node = self.nodes.get(ino)?;
        let fd = node.fd()?;
        let _changing = self.changing(&[], Some(ino));
        if let Some(mode) = changes.mode {
            chmod(fd.proc_path(), Mode::from_raw_mode(mode & 0o7777)).map_err(errno)?;
        }
        if changes.uid.is_some() || changes.gid.is_some() {
            rustix::fs::chownat(
                &fd,
                "",
                changes.uid.map(Uid::from_raw),
                changes.gid.map(Gid::from_raw),
                AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(errno)?;
        }
        if let Some(size) = changes.size {
            match changes.fh.and_then(|fh| self.file(fh).ok()) {
                Some(file) => ftruncate(&*file, size).map_err(errno)?,
                None => {
                    let file =
                        openat(CWD, fd.proc_path(), OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty()).map_err(errno)?;
                    ftruncate(&file, size).map_err(errno)?;
                }
            }
            // A truncate by someone other than root (fuser 0.18 hides the kernel's
            // FATTR_KILL_SUIDGID). A chown needs nothing: the source's own chown drops
            // the bits.
            self.drop_privileges_of(ino, &fd, req.uid != 0 && changes.mode.is_none())?;
        }
        if changes.atime.is_some() || changes.mtime.is_some() {
            let times = Timestamps { last_access: timespec(changes.atime), last_modification: timespec(changes.mtime) };
            utimensat(&fd, "", &times, AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW).map_err(errno)?;
        }
        self.reported_attr(ino, &fd)
    }

    fn readlink(&self, _req: &Request, ino: u64) -> Result<Vec<u8>> {
        let node = self.nodes.get(ino)?;
        Ok(readlinkat(node.fd()?, "", Vec::new()).map_err(errno)?.into_bytes())
    }

    fn mknod(&self, req: &Request, parent_id: u64, name: &OsStr, mode: u32, rdev: u32) -> Result<Entry> {
        let parent_node = self.nodes.get(parent_id)?;
        let file_type = rustix::fs::FileType::from_raw_mode(mode);
        let permissions = Mode::from_raw_mode(mode & 0o7777 & !req.umask);
        let parent = parent_node.fd()?;
        let _changing = self.changing(&[(parent_id, name)], None);
        mknodat(&parent, name, file_type, permissions, u64::from(rdev)).map_err(errno)?;
        let made = Self::just_made(&parent, name, file_type)?;
        self.settle(req, (parent_id, &parent), name, &made, Some(mode))
    }

    fn mkdir(&self, req: &Request, parent_id: u64, name: &OsStr, mode: u32) -> Result<Entry> {
        let parent_node = self.nodes.get(parent_id)?;
        let parent = parent_node.fd()?;
        let _changing = self.changing(&[(parent_id, name)], None);
        mkdirat(&parent, name, Mode::from_raw_mode(mode & 0o7777 & !req.umask)).map_err(errno)?;
        let made = Self::just_made(&parent, name, rustix::fs::FileType::Directory)?;
        self.settle(req, (parent_id, &parent), name, &made, Some(mode))
    }

    fn unlink(&self, _req: &Request, parent: u64, name: &OsStr) -> Result<()> {
        let _changing = self.changing(&[(parent, name)], None);
        unlinkat(self.nodes.get(parent)?.fd()?, name, AtFlags::empty()).map_err(errno)?;
        self.removed(parent, name);
        Ok(())
    }

    fn rmdir(&self, _req: &Request, parent: u64, name: &OsStr) -> Result<()> {
        let _changing = self.changing(&[(parent, name)], None);
        unlinkat(self.nodes.get(parent)?.fd()?, name, AtFlags::REMOVEDIR).map_err(errno)?;
        self.removed(parent, name);
        Ok(())
    }

    fn symlink(&self, req: &Request, parent_id: u64, name: &OsStr, target: &OsStr) -> Result<Entry> {
        let parent_node = self.nodes.get(parent_id)?;
        let parent = parent_node.fd()?;
        let _changing = self.changing(&[(parent_id, name)], None);
        symlinkat(target, &parent, name).map_err(errno)?;
        let made = Self::just_made(&parent, name, rustix::fs::FileType::Symlink)?;
        self.settle(req, (parent_id, &parent), name, &made, None)
    }

    fn rename(
        &self,
        _req: &Request,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        flags: u32,
    ) -> Result<()> {
        let flags = RenameFlags::from_bits(flags).ok_or(Errno::EINVAL)?;
        let (from, to) = (self.nodes.get(parent)?, self.nodes.get(new_parent)?);
        let _changing = self.changing(&[(parent, name), (new_parent, new_name)], None);
        renameat_with(from.fd()?, name, to.fd()?, new_name, flags).map_err(errno)?;
        if let Some(watch) = self.watch.get() {
            watch.renamed((parent, name), (new_parent, new_name), flags.contains(RenameFlags::EXCHANGE));
        }
        Ok(())
    }

    fn link(&self, _req: &Request, ino: u64, new_parent: u64, new_name: &OsStr) -> Result<Entry> {
        let (node, parent) = (self.nodes.get(ino)?, self.nodes.get(new_parent)?);
        let _changing = self.changing(&[(new_parent, new_name)], Some(ino));
        // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the /proc link works for everyone else.
        let (fd, parent_fd) = (node.fd()?, parent.fd()?);
        linkat(&fd, "", &parent_fd, new_name, AtFlags::EMPTY_PATH)
            .or_else(|_| linkat(CWD, fd.proc_path(), &parent_fd, new_name, AtFlags::SYMLINK_FOLLOW))
            .map_err(errno)?;
        self.entry(new_parent, &parent, new_name)
    }

    fn open(&self, _req: &Request, ino: u64, flags: i32) -> Result<Opened> {
        let node = self.nodes.get(ino)?;
        let flags = OFlags::from_bits_retain(flags as u32) & !(OFlags::NOFOLLOW | OFlags::CREATE | OFlags::EXCL)
            | OFlags::CLOEXEC;
        let fd = openat(CWD, node.fd()?.proc_path(), flags, Mode::empty()).map_err(errno)?;
        Ok(self.opened(fd))
    }

    fn read(&self, _req: &Request, _ino: u64, fh: u64, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let file = self.file(fh)?;
        let mut filled = 0;
        // pread may return short counts before end of file; the kernel wants it full.
        while filled < buf.len() {
            let count = pread(&*file, &mut buf[filled..], offset + filled as u64).map_err(errno)?;
            if count == 0 {
                break;
            }
            filled += count;
        }
        Ok(filled)
    }

    fn write(
        &self,
        _req: &Request,
        ino: u64,
        fh: u64,
        offset: u64,
        data: &[u8],
        write_flags: u32,
        _flags: i32,
    ) -> Result<u32> {
        let file = self.file(fh)?;
        self.drop_privileges_of(ino, &*file, write_flags & flags::write::KILL_SUIDGID != 0)?;
        let written = pwrite(&*file, data, offset).map_err(errno)?;
        Ok(written as u32)
    }

    fn flush(&self, _req: &Request, _ino: u64, _fh: u64, _lock_owner: u64) -> Result<()> {
        Ok(())
    }

    fn release(&self, _req: &Request, _ino: u64, fh: u64, _flags: i32, _flush: bool) -> Result<()> {
        self.files.write().remove(&fh);
        Ok(())
    }

    fn fsync(&self, _req: &Request, _ino: u64, fh: u64, datasync: bool) -> Result<()> {
        let file = self.file(fh)?;
        if datasync { fdatasync(&*file) } else { fsync(&*file) }.map_err(errno)
    }

    fn opendir(&self, _req: &Request, ino: u64, _flags: i32) -> Result<Opened> {
        let node = self.nodes.get(ino)?;
        let fd = openat(node.fd()?, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(errno)?;
        let fh = self.remember_handle(&self.dirs, Mutex::new(Listing { fd, entries: None }));
        Ok(self.cache.open_folder(Opened::handle(fh), self.watched()))
    }

    fn readdir(&self, _req: &Request, _ino: u64, fh: u64, offset: i64, sink: &mut dyn DirSink) -> Result<()> {
        let listing = self.dirs.read().get(&fh).cloned().ok_or(Errno::EBADF)?;
        let mut listing = listing.lock();
        let entries = match listing.entries.take() {
            Some(entries) if offset != 0 => entries,
            // rewinddir, or the first read (at any offset: the kernel may have the start
            // of the listing cached): see the directory as it is now.
            _ => Self::read_listing(&listing.fd)?,
        };
        let entries = &*listing.entries.insert(entries);
        for (index, (name, ino, kind)) in entries.iter().enumerate().skip(offset.max(0) as usize) {
            if sink.add(*ino, index as i64 + 1, *kind, name) {
                break;
            }
        }
        Ok(())
    }

    fn releasedir(&self, _req: &Request, _ino: u64, fh: u64, _flags: i32) -> Result<()> {
        self.dirs.write().remove(&fh);
        Ok(())
    }

    fn fsyncdir(&self, _req: &Request, _ino: u64, fh: u64, _datasync: bool) -> Result<()> {
        let listing = self.dirs.read().get(&fh).cloned().ok_or(Errno::EBADF)?;
        let listing = listing.lock();
        fsync(&listing.fd).map_err(errno)
    }

    fn statfs(&self, _req: &Request, ino: u64) -> Result<StatFs> {
        let figures = fstatvfs(self.nodes.get(ino)?.fd()?).map_err(errno)?;
        Ok(StatFs {
            blocks: figures.f_blocks,
            bfree: figures.f_bfree,
            bavail: figures.f_bavail,
            files: figures.f_files,
            ffree: figures.f_ffree,
            bsize: figures.f_bsize as u32,
            namelen: figures.f_namemax as u32,
            frsize: figures.f_frsize as u32,
        })
    }

    fn setxattr(&self, _req: &Request, ino: u64, name: &OsStr, value: &[u8], flags: i32, _position: u32) -> Result<()> {
        let flags = XattrFlags::from_bits(flags as u32).ok_or(Errno::EINVAL)?;
        rustix::fs::setxattr(self.nodes.get(ino)?.fd()?.proc_path(), name, value, flags).map_err(errno)
    }

    fn getxattr(&self, _req: &Request, ino: u64, name: &OsStr) -> Result<Vec<u8>> {
        let node = self.nodes.get(ino)?;
        let fd = node.fd()?;
        let path = fd.proc_path();
        let size = rustix::fs::getxattr_query(&path, name).map_err(errno)?;
        let mut value = vec![0; size];
        let size = rustix::fs::getxattr(&path, name, &mut value).map_err(errno)?;
        value.truncate(size);
        Ok(value)
    }

    fn listxattr(&self, _req: &Request, ino: u64) -> Result<Vec<u8>> {
        let node = self.nodes.get(ino)?;
        let fd = node.fd()?;
        let path = fd.proc_path();
        let size = rustix::fs::listxattr_query(&path).map_err(errno)?;
        let mut names = vec![0; size];
        let size = rustix::fs::listxattr(&path, &mut names).map_err(errno)?;
        names.truncate(size);
        Ok(names)
    }

    fn removexattr(&self, _req: &Request, ino: u64, name: &OsStr) -> Result<()> {
        rustix::fs::removexattr(self.nodes.get(ino)?.fd()?.proc_path(), name).map_err(errno)
    }

    fn create(&self, req: &Request, parent_id: u64, name: &OsStr, mode: u32, flags: i32) -> Result<(Entry, Opened)> {
        let parent_node = self.nodes.get(parent_id)?;
        // Never follow a symlink planted in the source: O_NOFOLLOW, and only a file this
        // call made itself (O_EXCL) gets the caller's ownership and mode.
        let asked = OFlags::from_bits_retain(flags as u32) | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let permissions = Mode::from_raw_mode(mode & 0o7777 & !req.umask);
        let parent = parent_node.fd()?;
        let _changing = self.changing(&[(parent_id, name)], None);
        match openat(&parent, name, asked | OFlags::CREATE | OFlags::EXCL, permissions) {
            Ok(fd) => {
                let entry = self.settle(req, (parent_id, &parent), name, &fd, Some(mode))?;
                Ok((entry, self.opened(fd)))
            }
            Err(rustix::io::Errno::EXIST) if !asked.contains(OFlags::EXCL) => {
                // Made in the source since the kernel's lookup: open it as it is.
                let fd = openat(&parent, name, asked - OFlags::CREATE, Mode::empty()).map_err(errno)?;
                Ok((self.entry_of(parent_id, name, &fd)?, self.opened(fd)))
            }
            Err(error) => Err(errno(error)),
        }
    }

    fn fallocate(&self, req: &Request, ino: u64, fh: u64, offset: u64, length: u64, mode: i32) -> Result<()> {
        let flags = FallocateFlags::from_bits(mode as u32).ok_or(Errno::EOPNOTSUPP)?;
        let file = self.file(fh)?;
        self.drop_privileges_of(ino, &*file, req.uid != 0)?;
        fallocate(&*file, flags, offset, length).map_err(errno)
    }

    fn lseek(&self, _req: &Request, _ino: u64, fh: u64, offset: i64, whence: i32) -> Result<i64> {
        let position = match whence {
            3 => SeekFrom::Data(offset.max(0) as u64),
            4 => SeekFrom::Hole(offset.max(0) as u64),
            _ => return Err(Errno::EINVAL),
        };
        let found = seek(&*self.file(fh)?, position).map_err(errno)?;
        i64::try_from(found).map_err(|_| Errno::EOVERFLOW)
    }

    fn copy_file_range(
        &self,
        req: &Request,
        _ino_in: u64,
        fh_in: u64,
        offset_in: u64,
        ino_out: u64,
        fh_out: u64,
        offset_out: u64,
        len: u64,
        _flags: u64,
    ) -> Result<u32> {
        let (source, target) = (self.file(fh_in)?, self.file(fh_out)?);
        self.drop_privileges_of(ino_out, &*target, req.uid != 0)?;
        let (mut from, mut to) = (offset_in, offset_out);
        let len = usize::try_from(len.min(1 << 30)).unwrap_or(1 << 30);
        let copied = copy_file_range(&*source, Some(&mut from), &*target, Some(&mut to), len).map_err(errno)?;
        Ok(copied as u32)
    }

    fn destroy(&self) {
        if let Some(watch) = self.watch.get() {
            watch.stop();
        }
        fusehost_plugin_api::tracing::debug!("passthrough destroyed with {} nodes still open", self.nodes.len());
    }
}
