//! The trait a plugin author implements: one method per FUSE request, each with a
//! default, so a filesystem implements only what it supports.

use std::ffi::OsStr;

use std::time::Duration;

use crate::later::{Operations, Ready, Reply, ReplyDir, ReplyDirPlus};
use crate::mount_host::{Capabilities, MountHost, Negotiated};
use crate::types::{Entry, Errno, FileAttr, FileKind, FileLock, Opened, Request, Result, SetAttr, StatFs};

/// Receives readdir entries; the host writes each straight into the kernel's buffer.
pub trait DirSink {
    /// Adds one entry. `next_offset` is what the kernel passes back as `offset` to
    /// continue *after* this entry. Returns `true` when the buffer is full: the entry
    /// was not added, stop and return `Ok(())`.
    fn add(&mut self, ino: u64, next_offset: i64, kind: FileKind, name: &OsStr) -> bool;
}

/// Receives readdirplus entries with their attributes. Every entry added other than
/// `.` and `..` counts as a lookup (the host does the counting). An entry's own TTLs
/// ([`Entry::with_ttls`](crate::Entry::with_ttls)) reach the kernel in a host of ABI
/// 1.3 or later, the shorter of the two for both; before, the mount's.
pub trait DirPlusSink {
    /// Adds one entry; returns `true` when the buffer is full (entry not added).
    fn add(&mut self, next_offset: i64, name: &OsStr, entry: &Entry) -> bool;
}

/// A FUSE filesystem, as a plugin implements it.
///
/// Inode 1 ([`ROOT_INO`](crate::ROOT_INO)) is the root. Names are raw bytes (`&OsStr`,
/// see `OsStrExt::as_bytes`): Linux names need not be UTF-8. Every method that is not
/// overridden answers `ENOSYS` unless its documentation says otherwise; for optional
/// requests (xattrs, flush, fsync, fallocate, access) the kernel then stops asking.
///
/// Calls arrive from several threads at once unless the plugin declares
/// [`ThreadModel::Serialized`](crate::ThreadModel::Serialized). A panic in any method
/// is caught, logged with its message and location, and answered `EIO`; the mount
/// keeps serving.
#[allow(unused_variables, clippy::too_many_arguments)]
pub trait Filesystem: Send + Sync + 'static {
    /// Looks up `name` in directory `parent`. Each success is one more reference the
    /// kernel holds to the returned inode (counted by the host).
    fn lookup(&self, req: &Request, parent: u64, name: &OsStr) -> Result<Entry> {
        Err(Errno::ENOSYS)
    }

    /// The kernel holds no reference to `ino` any more (the host's count reached 0).
    /// An unlinked inode may now be freed, and its number reused. Called exactly once
    /// per time the count drops to zero, and for every inode still known at unmount.
    fn forget(&self, ino: u64) {}

    fn getattr(&self, req: &Request, ino: u64, fh: Option<u64>) -> Result<FileAttr> {
        Err(Errno::ENOSYS)
    }

    /// chmod, chown, truncate and utimens; returns the attributes after the change.
    fn setattr(&self, req: &Request, ino: u64, changes: &SetAttr) -> Result<FileAttr> {
        Err(Errno::ENOSYS)
    }

    /// The target of symlink `ino`, as bytes.
    fn readlink(&self, req: &Request, ino: u64) -> Result<Vec<u8>> {
        Err(Errno::ENOSYS)
    }

    /// Creates a file node (regular, fifo, socket, device). `mode` carries the type
    /// bits; apply `req.umask` yourself.
    fn mknod(&self, req: &Request, parent: u64, name: &OsStr, mode: u32, rdev: u32) -> Result<Entry> {
        Err(Errno::ENOSYS)
    }

    /// Creates a directory; apply `req.umask` to `mode` yourself.
    fn mkdir(&self, req: &Request, parent: u64, name: &OsStr, mode: u32) -> Result<Entry> {
        Err(Errno::ENOSYS)
    }

    fn unlink(&self, req: &Request, parent: u64, name: &OsStr) -> Result<()> {
        Err(Errno::ENOSYS)
    }

    fn rmdir(&self, req: &Request, parent: u64, name: &OsStr) -> Result<()> {
        Err(Errno::ENOSYS)
    }

    fn symlink(&self, req: &Request, parent: u64, name: &OsStr, target: &OsStr) -> Result<Entry> {
        Err(Errno::ENOSYS)
    }

    /// `flags` holds bits of [`flags::rename`](crate::flags::rename): `NOREPLACE` and `EXCHANGE`.
    fn rename(
        &self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        flags: u32,
    ) -> Result<()> {
        Err(Errno::ENOSYS)
    }

    fn link(&self, req: &Request, ino: u64, new_parent: u64, new_name: &OsStr) -> Result<Entry> {
        Err(Errno::ENOSYS)
    }

    /// Opens a file. The default accepts every open with handle 0.
    fn open(&self, req: &Request, ino: u64, flags: i32) -> Result<Opened> {
        Ok(Opened::default())
    }

    /// Fills `buf` with the data at `offset` and returns how many bytes it wrote;
    /// fewer than `buf.len()` only at end of file.
    fn read(&self, req: &Request, ino: u64, fh: u64, offset: u64, buf: &mut [u8]) -> Result<usize> {
        Err(Errno::ENOSYS)
    }

    /// Writes `data` at `offset`; returns the bytes written.
    fn write(
        &self,
        req: &Request,
        ino: u64,
        fh: u64,
        offset: u64,
        data: &[u8],
        write_flags: u32,
        flags: i32,
    ) -> Result<u32> {
        Err(Errno::ENOSYS)
    }

    /// Called on every `close()` of a descriptor (there may be several per open).
    fn flush(&self, req: &Request, ino: u64, fh: u64, lock_owner: u64) -> Result<()> {
        Err(Errno::ENOSYS)
    }

    /// The last descriptor of an open file is closed. The default does nothing.
    fn release(&self, req: &Request, ino: u64, fh: u64, flags: i32, flush: bool) -> Result<()> {
        Ok(())
    }

    fn fsync(&self, req: &Request, ino: u64, fh: u64, datasync: bool) -> Result<()> {
        Err(Errno::ENOSYS)
    }

    /// Opens a directory. The default accepts every open with handle 0.
    fn opendir(&self, req: &Request, ino: u64, flags: i32) -> Result<Opened> {
        Ok(Opened::default())
    }

    /// Lists directory `ino` from `offset` (0 at the start, else a `next_offset` you
    /// gave earlier) into `sink` until it is full or the listing ends.
    fn readdir(&self, req: &Request, ino: u64, fh: u64, offset: i64, sink: &mut dyn DirSink) -> Result<()> {
        Err(Errno::ENOSYS)
    }

    /// Lists a directory with attributes. The default lists through
    /// [`readdir`](Filesystem::readdir) and [`lookup`](Filesystem::lookup)s each entry,
    /// which is correct for every filesystem; override it when attributes come cheaper
    /// with the listing.
    fn readdirplus(&self, req: &Request, ino: u64, fh: u64, offset: i64, sink: &mut dyn DirPlusSink) -> Result<()> {
        let mut looked_up = LookupEachEntry { fs: self, req, parent: ino, inner: sink };
        self.readdir(req, ino, fh, offset, &mut looked_up)
    }

    /// The directory is closed. The default does nothing.
    fn releasedir(&self, req: &Request, ino: u64, fh: u64, flags: i32) -> Result<()> {
        Ok(())
    }

    fn fsyncdir(&self, req: &Request, ino: u64, fh: u64, datasync: bool) -> Result<()> {
        Err(Errno::ENOSYS)
    }

    /// Filesystem figures for `df`. The default reports an empty filesystem with
    /// 255-byte names.
    fn statfs(&self, req: &Request, ino: u64) -> Result<StatFs> {
        Ok(StatFs { bsize: 512, namelen: 255, frsize: 512, ..StatFs::default() })
    }

    /// `flags` holds `XATTR_CREATE` (1) and `XATTR_REPLACE` (2).
    fn setxattr(&self, req: &Request, ino: u64, name: &OsStr, value: &[u8], flags: i32, position: u32) -> Result<()> {
        Err(Errno::ENOSYS)
    }

    /// The whole value of xattr `name` (`ENODATA` when absent); the host answers
    /// size probes and `ERANGE` itself.
    fn getxattr(&self, req: &Request, ino: u64, name: &OsStr) -> Result<Vec<u8>> {
        Err(Errno::ENOSYS)
    }

    /// Every xattr name, each followed by a NUL byte.
    fn listxattr(&self, req: &Request, ino: u64) -> Result<Vec<u8>> {
        Err(Errno::ENOSYS)
    }

    fn removexattr(&self, req: &Request, ino: u64, name: &OsStr) -> Result<()> {
        Err(Errno::ENOSYS)
    }

    /// Only asked when the mount runs without `default_permissions`.
    fn access(&self, req: &Request, ino: u64, mask: i32) -> Result<()> {
        Err(Errno::ENOSYS)
    }

    /// Creates and opens a regular file in one step; apply `req.umask` yourself.
    fn create(&self, req: &Request, parent: u64, name: &OsStr, mode: u32, flags: i32) -> Result<(Entry, Opened)> {
        Err(Errno::ENOSYS)
    }

    /// `mode` holds `FALLOC_FL_KEEP_SIZE` (1) and `FALLOC_FL_PUNCH_HOLE` (2).
    fn fallocate(&self, req: &Request, ino: u64, fh: u64, offset: u64, length: u64, mode: i32) -> Result<()> {
        Err(Errno::ENOSYS)
    }

    /// `SEEK_DATA` (3) and `SEEK_HOLE` (4); the kernel handles the other whences.
    fn lseek(&self, req: &Request, ino: u64, fh: u64, offset: i64, whence: i32) -> Result<i64> {
        Err(Errno::ENOSYS)
    }

    fn copy_file_range(
        &self,
        req: &Request,
        ino_in: u64,
        fh_in: u64,
        offset_in: u64,
        ino_out: u64,
        fh_out: u64,
        offset_out: u64,
        len: u64,
        flags: u64,
    ) -> Result<u32> {
        Err(Errno::ENOSYS)
    }

    /// The mount is gone: every file was released and every inode forgotten.
    fn destroy(&self) {}

    // ---- ABI 1.1. In a 1.0 host none of these is called (see each).

    /// The kernel features this filesystem consents to (see [`Capabilities`]); asked
    /// once, before the mount. In a 1.0 host: none is requested.
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    /// What was negotiated, and the host's handle for notifications; called once,
    /// before the first request. In a 1.0 host: never called.
    fn init(&self, negotiated: &Negotiated, host: MountHost) {}

    /// `getattr` with this answer's own attribute TTL (`None`: the mount's). The
    /// default calls [`Filesystem::getattr`]. In a 1.0 host the TTL is ignored.
    fn getattr_with_ttl(&self, req: &Request, ino: u64, fh: Option<u64>) -> Result<(FileAttr, Option<Duration>)> {
        self.getattr(req, ino, fh).map(|attr| (attr, None))
    }

    /// `setattr` with this answer's own attribute TTL (`None`: the mount's). The
    /// default calls [`Filesystem::setattr`]. In a host before ABI 1.3 the TTL is
    /// ignored.
    fn setattr_with_ttl(&self, req: &Request, ino: u64, changes: &SetAttr) -> Result<(FileAttr, Option<Duration>)> {
        self.setattr(req, ino, changes).map(|attr| (attr, None))
    }

    /// `fcntl(F_GETLK)`: the lock that conflicts with `lock`, or `lock` with type
    /// `F_UNLCK` when none does. Sent only with [`Capabilities::POSIX_LOCKS`].
    fn getlk(&self, req: &Request, ino: u64, fh: u64, lock_owner: u64, lock: &FileLock) -> Result<FileLock> {
        Err(Errno::ENOSYS)
    }

    /// `fcntl(F_SETLK)`, or `F_SETLKW` when `sleep` is set (wait for the conflicting
    /// lock; it is interruptible only by unmounting, so prefer `EAGAIN` when unsure).
    fn setlk(&self, req: &Request, ino: u64, fh: u64, lock_owner: u64, lock: &FileLock, sleep: bool) -> Result<()> {
        Err(Errno::ENOSYS)
    }

    /// `ioctl(2)`: returns the call's result and the bytes written into `output`.
    /// Answer `ENOTTY` for commands you do not know.
    fn ioctl(
        &self,
        req: &Request,
        ino: u64,
        fh: u64,
        cmd: u32,
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(i32, usize)> {
        Err(Errno::ENOSYS)
    }

    /// `poll(2)`: the `POLL*` events ready now. When `schedule` is set, call
    /// [`MountHost::poll_ready`] with `wakeup` once that changes.
    fn poll(&self, req: &Request, ino: u64, fh: u64, wakeup: u64, events: u32, schedule: bool) -> Result<u32> {
        Err(Errno::ENOSYS)
    }

    /// `FIBMAP`: the device block holding block `block` of the file.
    fn bmap(&self, req: &Request, ino: u64, block_size: u32, block: u64) -> Result<u64> {
        Err(Errno::ENOSYS)
    }

    // ---- ABI 1.2: answers given later (see the `later` module's docs). In a 1.0 or
    // ---- 1.1 host none of these is called: the synchronous methods answer.

    /// The requests this filesystem answers through its `*_later` methods. The
    /// default, none, costs nothing.
    fn answers_later(&self) -> Operations {
        Operations::NONE
    }

    fn lookup_later(&self, req: &Request, parent: u64, name: &OsStr, reply: Reply<Entry>) {
        reply.send(self.lookup(req, parent, name))
    }

    fn getattr_later(&self, req: &Request, ino: u64, fh: Option<u64>, reply: Reply<(FileAttr, Option<Duration>)>) {
        reply.send(self.getattr_with_ttl(req, ino, fh))
    }

    /// Answer through [`Reply::with_ttl`] to give the attributes their own TTL.
    fn setattr_later(&self, req: &Request, ino: u64, changes: &SetAttr, reply: Reply<FileAttr>) {
        reply.with_ttl().send(self.setattr_with_ttl(req, ino, changes))
    }

    fn readlink_later(&self, req: &Request, ino: u64, reply: Reply<Vec<u8>>) {
        reply.send(self.readlink(req, ino))
    }

    fn mknod_later(&self, req: &Request, parent: u64, name: &OsStr, mode: u32, rdev: u32, reply: Reply<Entry>) {
        reply.send(self.mknod(req, parent, name, mode, rdev))
    }

    fn mkdir_later(&self, req: &Request, parent: u64, name: &OsStr, mode: u32, reply: Reply<Entry>) {
        reply.send(self.mkdir(req, parent, name, mode))
    }

    fn unlink_later(&self, req: &Request, parent: u64, name: &OsStr, reply: Reply<()>) {
        reply.send(self.unlink(req, parent, name))
    }

    fn rmdir_later(&self, req: &Request, parent: u64, name: &OsStr, reply: Reply<()>) {
        reply.send(self.rmdir(req, parent, name))
    }

    fn symlink_later(&self, req: &Request, parent: u64, name: &OsStr, target: &OsStr, reply: Reply<Entry>) {
        reply.send(self.symlink(req, parent, name, target))
    }

    fn rename_later(
        &self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        flags: u32,
        reply: Reply<()>,
    ) {
        reply.send(self.rename(req, parent, name, new_parent, new_name, flags))
    }

    fn link_later(&self, req: &Request, ino: u64, new_parent: u64, new_name: &OsStr, reply: Reply<Entry>) {
        reply.send(self.link(req, ino, new_parent, new_name))
    }

    fn open_later(&self, req: &Request, ino: u64, flags: i32, reply: Reply<Opened>) {
        reply.send(self.open(req, ino, flags))
    }

    /// Answer at most `size` bytes, fewer only at end of file.
    fn read_later(&self, req: &Request, ino: u64, fh: u64, offset: u64, size: u32, reply: Reply<Vec<u8>>) {
        let mut buf = vec![0; size as usize];
        reply.send(self.read(req, ino, fh, offset, &mut buf).map(|filled| {
            buf.truncate(filled.min(buf.len()));
            buf
        }))
    }

    /// `data` is borrowed for this call only: copy what you keep.
    fn write_later(
        &self,
        req: &Request,
        ino: u64,
        fh: u64,
        offset: u64,
        data: &[u8],
        write_flags: u32,
        flags: i32,
        reply: Reply<u32>,
    ) {
        reply.send(self.write(req, ino, fh, offset, data, write_flags, flags))
    }

    fn flush_later(&self, req: &Request, ino: u64, fh: u64, lock_owner: u64, reply: Reply<()>) {
        reply.send(self.flush(req, ino, fh, lock_owner))
    }

    fn release_later(&self, req: &Request, ino: u64, fh: u64, flags: i32, flush: bool, reply: Reply<()>) {
        reply.send(self.release(req, ino, fh, flags, flush))
    }

    fn fsync_later(&self, req: &Request, ino: u64, fh: u64, datasync: bool, reply: Reply<()>) {
        reply.send(self.fsync(req, ino, fh, datasync))
    }

    fn opendir_later(&self, req: &Request, ino: u64, flags: i32, reply: Reply<Opened>) {
        reply.send(self.opendir(req, ino, flags))
    }

    fn readdir_later(&self, req: &Request, ino: u64, fh: u64, offset: i64, mut reply: ReplyDir) {
        let answer = self.readdir(req, ino, fh, offset, &mut reply);
        reply.send(answer)
    }

    fn readdirplus_later(&self, req: &Request, ino: u64, fh: u64, offset: i64, mut reply: ReplyDirPlus) {
        let answer = self.readdirplus(req, ino, fh, offset, &mut reply);
        reply.send(answer)
    }

    fn releasedir_later(&self, req: &Request, ino: u64, fh: u64, flags: i32, reply: Reply<()>) {
        reply.send(self.releasedir(req, ino, fh, flags))
    }

    fn statfs_later(&self, req: &Request, ino: u64, reply: Reply<StatFs>) {
        reply.send(self.statfs(req, ino))
    }

    fn create_later(
        &self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        mode: u32,
        flags: i32,
        reply: Reply<(Entry, Opened)>,
    ) {
        reply.send(self.create(req, parent, name, mode, flags))
    }

    fn setxattr_later(
        &self,
        req: &Request,
        ino: u64,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        position: u32,
        reply: Reply<()>,
    ) {
        reply.send(self.setxattr(req, ino, name, value, flags, position))
    }

    /// Answer the whole value; the host answers size probes and `ERANGE`.
    fn getxattr_later(&self, req: &Request, ino: u64, name: &OsStr, reply: Reply<Vec<u8>>) {
        reply.send(self.getxattr(req, ino, name))
    }

    fn listxattr_later(&self, req: &Request, ino: u64, reply: Reply<Vec<u8>>) {
        reply.send(self.listxattr(req, ino))
    }

    fn removexattr_later(&self, req: &Request, ino: u64, name: &OsStr, reply: Reply<()>) {
        reply.send(self.removexattr(req, ino, name))
    }

    fn access_later(&self, req: &Request, ino: u64, mask: i32, reply: Reply<()>) {
        reply.send(self.access(req, ino, mask))
    }

    fn fsyncdir_later(&self, req: &Request, ino: u64, fh: u64, datasync: bool, reply: Reply<()>) {
        reply.send(self.fsyncdir(req, ino, fh, datasync))
    }

    fn fallocate_later(&self, req: &Request, ino: u64, fh: u64, offset: u64, length: u64, mode: i32, reply: Reply<()>) {
        reply.send(self.fallocate(req, ino, fh, offset, length, mode))
    }

    fn lseek_later(&self, req: &Request, ino: u64, fh: u64, offset: i64, whence: i32, reply: Reply<i64>) {
        reply.send(self.lseek(req, ino, fh, offset, whence))
    }

    fn copy_file_range_later(
        &self,
        req: &Request,
        ino_in: u64,
        fh_in: u64,
        offset_in: u64,
        ino_out: u64,
        fh_out: u64,
        offset_out: u64,
        len: u64,
        flags: u64,
        reply: Reply<u32>,
    ) {
        reply.send(self.copy_file_range(req, ino_in, fh_in, offset_in, ino_out, fh_out, offset_out, len, flags))
    }

    fn getlk_later(&self, req: &Request, ino: u64, fh: u64, lock_owner: u64, lock: &FileLock, reply: Reply<FileLock>) {
        reply.send(self.getlk(req, ino, fh, lock_owner, lock))
    }

    fn setlk_later(
        &self,
        req: &Request,
        ino: u64,
        fh: u64,
        lock_owner: u64,
        lock: &FileLock,
        sleep: bool,
        reply: Reply<()>,
    ) {
        reply.send(self.setlk(req, ino, fh, lock_owner, lock, sleep))
    }

    /// Answer the call's result and at most `output_size` bytes.
    fn ioctl_later(
        &self,
        req: &Request,
        ino: u64,
        fh: u64,
        cmd: u32,
        input: &[u8],
        output_size: u32,
        reply: Reply<(i32, Vec<u8>)>,
    ) {
        let mut output = vec![0; output_size as usize];
        reply.send(self.ioctl(req, ino, fh, cmd, input, &mut output).map(|(result, filled)| {
            output.truncate(filled.min(output.len()));
            (result, output)
        }))
    }

    fn poll_later(
        &self,
        req: &Request,
        ino: u64,
        fh: u64,
        wakeup: u64,
        events: u32,
        schedule: bool,
        reply: Reply<Ready>,
    ) {
        reply.send(self.poll(req, ino, fh, wakeup, events, schedule).map(Ready))
    }

    fn bmap_later(&self, req: &Request, ino: u64, block_size: u32, block: u64, reply: Reply<u64>) {
        reply.send(self.bmap(req, ino, block_size, block))
    }
}

/// The default readdirplus: looks up every entry readdir yields.
struct LookupEachEntry<'a, F: ?Sized> {
    fs: &'a F,
    req: &'a Request,
    parent: u64,
    inner: &'a mut dyn DirPlusSink,
}

impl<F: Filesystem + ?Sized> DirSink for LookupEachEntry<'_, F> {
    fn add(&mut self, ino: u64, next_offset: i64, kind: FileKind, name: &OsStr) -> bool {
        if name == "." || name == ".." {
            // The kernel takes no reference for these; it only needs the name.
            let attr = FileAttr::new(ino, kind, 0, std::time::UNIX_EPOCH);
            return self.inner.add(next_offset, name, &Entry::new(attr));
        }
        match self.fs.lookup(self.req, self.parent, name) {
            Ok(entry) if !entry.is_negative() => self.inner.add(next_offset, name, &entry),
            // Gone since readdir saw it: leave it out, as a fresh listing would.
            _ => false,
        }
    }
}
