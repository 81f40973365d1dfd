//! The bridge from the ABI's `RawFilesystem` to the author's [`Filesystem`]:
//! converts bytes to names, ABI structs to idiomatic ones and back, and runs every call
//! inside the panic guard.
//!
//! The host uses this same adapter for filesystems linked into its own binary, so a
//! `.so` plugin and an in-process filesystem go through identical code; only the vtable
//! call differs (which is how the benchmarks measure what the ABI costs).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use fusehost_abi::abi_stable::sabi_trait::TD_Opaque;
use fusehost_abi::abi_stable::std_types::{RArc, ROption, RResult, RSlice, RSliceMut};
use fusehost_abi::{
    Attr, AttrTtl, Created, CreatedTtl, DirPlusSinkRef, DirSinkRef, Entry as AbiEntry, EntryTtl, FileLock, IoctlOut,
    LaterFilesystem_TO, LaterFsObject, MountHostObject, Negotiated as AbiNegotiated, Opened as AbiOpened,
    RawFilesystem, RequestCtx, SetAttr as AbiSetAttr, StatFs,
};

use crate::filesystem::{DirPlusSink, DirSink, Filesystem};
use crate::later::LaterFfi;
use crate::mount_host::{MountHost, Negotiated};
use crate::panic_guard::{guarded, guarded_unit};
use crate::types::{Entry, Errno, FileKind, SetAttr};

/// Whether a poll request's `flags` ask to be told when readiness changes
/// (`FUSE_POLL_SCHEDULE_NOTIFY`).
pub(crate) fn schedules_notify(flags: u32) -> bool {
    const FUSE_POLL_SCHEDULE_NOTIFY: u32 = 1;
    flags & FUSE_POLL_SCHEDULE_NOTIFY != 0
}

/// An author's filesystem seen through the ABI. The filesystem is shared with its
/// later-answering part (`LaterFfi`).
pub struct FfiFilesystem<F> {
    fs: Arc<F>,
}

impl<F: Filesystem> FfiFilesystem<F> {
    pub fn new(fs: F) -> Self {
        FfiFilesystem { fs: Arc::new(fs) }
    }

    /// The wrapped filesystem.
    pub fn inner(&self) -> &F {
        &self.fs
    }
}

fn name(bytes: RSlice<'_, u8>) -> &OsStr {
    OsStr::from_bytes(bytes.as_slice())
}

/// Copies as much of `value` as fits into `buf`; returns the full length.
fn copy_out(value: &[u8], mut buf: RSliceMut<'_, u8>) -> u64 {
    let buf = buf.as_mut_slice();
    let fits = value.len().min(buf.len());
    buf[..fits].copy_from_slice(&value[..fits]);
    value.len() as u64
}

fn entry(entry: Entry) -> AbiEntry {
    entry.to_abi()
}

struct AbiDirSink<'s, 'a, 'b> {
    inner: &'s mut DirSinkRef<'a, 'b>,
}

impl DirSink for AbiDirSink<'_, '_, '_> {
    fn add(&mut self, ino: u64, next_offset: i64, kind: FileKind, name: &OsStr) -> bool {
        self.inner.add(ino, next_offset, kind.mode_bits(), RSlice::from_slice(name.as_bytes()))
    }
}

struct AbiDirPlusSink<'s, 'a, 'b> {
    inner: &'s mut DirPlusSinkRef<'a, 'b>,
}

impl DirPlusSink for AbiDirPlusSink<'_, '_, '_> {
    fn add(&mut self, next_offset: i64, name: &OsStr, entry: &Entry) -> bool {
        self.inner.add_ttl(next_offset, RSlice::from_slice(name.as_bytes()), &entry.to_abi_ttl())
    }
}

impl<F: Filesystem> RawFilesystem for FfiFilesystem<F> {
    fn lookup(&self, ctx: &RequestCtx, parent: u64, n: RSlice<'_, u8>) -> RResult<AbiEntry, Errno> {
        // A 1.0 host knows no negative entries: "no such name" is ENOENT there.
        guarded("lookup", || match self.fs.lookup(ctx, parent, name(n)) {
            Ok(found) if found.is_negative() => Err(Errno::ENOENT),
            other => other.map(entry),
        })
    }

    fn forget(&self, ino: u64) {
        guarded_unit("forget", || self.fs.forget(ino))
    }

    fn getattr(&self, ctx: &RequestCtx, ino: u64, fh: ROption<u64>) -> RResult<Attr, Errno> {
        guarded("getattr", || self.fs.getattr(ctx, ino, fh.into_option()).map(|attr| attr.to_abi()))
    }

    fn setattr(&self, ctx: &RequestCtx, ino: u64, attr: &AbiSetAttr) -> RResult<Attr, Errno> {
        self.setattr_ttl(ctx, ino, attr).map(|answer| answer.attr)
    }

    fn readlink(&self, ctx: &RequestCtx, ino: u64, buf: RSliceMut<'_, u8>) -> RResult<u64, Errno> {
        guarded("readlink", || self.fs.readlink(ctx, ino).map(|target| copy_out(&target, buf)))
    }

    fn mknod(
        &self,
        ctx: &RequestCtx,
        parent: u64,
        n: RSlice<'_, u8>,
        mode: u32,
        rdev: u32,
    ) -> RResult<AbiEntry, Errno> {
        self.mknod_ttl(ctx, parent, n, mode, rdev).map(|made| made.entry)
    }

    fn mkdir(&self, ctx: &RequestCtx, parent: u64, n: RSlice<'_, u8>, mode: u32) -> RResult<AbiEntry, Errno> {
        self.mkdir_ttl(ctx, parent, n, mode).map(|made| made.entry)
    }

    fn unlink(&self, ctx: &RequestCtx, parent: u64, n: RSlice<'_, u8>) -> RResult<(), Errno> {
        guarded("unlink", || self.fs.unlink(ctx, parent, name(n)))
    }

    fn rmdir(&self, ctx: &RequestCtx, parent: u64, n: RSlice<'_, u8>) -> RResult<(), Errno> {
        guarded("rmdir", || self.fs.rmdir(ctx, parent, name(n)))
    }

    fn symlink(
        &self,
        ctx: &RequestCtx,
        parent: u64,
        n: RSlice<'_, u8>,
        target: RSlice<'_, u8>,
    ) -> RResult<AbiEntry, Errno> {
        self.symlink_ttl(ctx, parent, n, target).map(|made| made.entry)
    }

    fn rename(
        &self,
        ctx: &RequestCtx,
        parent: u64,
        n: RSlice<'_, u8>,
        new_parent: u64,
        new_name: RSlice<'_, u8>,
        flags: u32,
    ) -> RResult<(), Errno> {
        guarded("rename", || self.fs.rename(ctx, parent, name(n), new_parent, name(new_name), flags))
    }

    fn link(&self, ctx: &RequestCtx, ino: u64, new_parent: u64, new_name: RSlice<'_, u8>) -> RResult<AbiEntry, Errno> {
        self.link_ttl(ctx, ino, new_parent, new_name).map(|made| made.entry)
    }

    fn open(&self, ctx: &RequestCtx, ino: u64, flags: i32) -> RResult<AbiOpened, Errno> {
        guarded("open", || self.fs.open(ctx, ino, flags).map(|opened| opened.to_abi()))
    }

    fn read(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        offset: u64,
        mut buf: RSliceMut<'_, u8>,
        _flags: i32,
        _lock_owner: ROption<u64>,
    ) -> RResult<u64, Errno> {
        guarded("read", || {
            let buf = buf.as_mut_slice();
            let filled = self.fs.read(ctx, ino, fh, offset, buf)?;
            // A plugin claiming more than it was lent would make the host read past it.
            Ok(filled.min(buf.len()) as u64)
        })
    }

    fn write(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        offset: u64,
        data: RSlice<'_, u8>,
        write_flags: u32,
        flags: i32,
        _lock_owner: ROption<u64>,
    ) -> RResult<u32, Errno> {
        guarded("write", || self.fs.write(ctx, ino, fh, offset, data.as_slice(), write_flags, flags))
    }

    fn flush(&self, ctx: &RequestCtx, ino: u64, fh: u64, lock_owner: u64) -> RResult<(), Errno> {
        guarded("flush", || self.fs.flush(ctx, ino, fh, lock_owner))
    }

    fn release(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        flags: i32,
        _lock_owner: ROption<u64>,
        flush: bool,
    ) -> RResult<(), Errno> {
        guarded("release", || self.fs.release(ctx, ino, fh, flags, flush))
    }

    fn fsync(&self, ctx: &RequestCtx, ino: u64, fh: u64, datasync: bool) -> RResult<(), Errno> {
        guarded("fsync", || self.fs.fsync(ctx, ino, fh, datasync))
    }

    fn opendir(&self, ctx: &RequestCtx, ino: u64, flags: i32) -> RResult<AbiOpened, Errno> {
        guarded("opendir", || self.fs.opendir(ctx, ino, flags).map(|opened| opened.to_abi()))
    }

    fn readdir(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        offset: i64,
        sink: &mut DirSinkRef<'_, '_>,
    ) -> RResult<(), Errno> {
        guarded("readdir", || self.fs.readdir(ctx, ino, fh, offset, &mut AbiDirSink { inner: sink }))
    }

    fn readdirplus(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        offset: i64,
        sink: &mut DirPlusSinkRef<'_, '_>,
    ) -> RResult<(), Errno> {
        guarded("readdirplus", || self.fs.readdirplus(ctx, ino, fh, offset, &mut AbiDirPlusSink { inner: sink }))
    }

    fn releasedir(&self, ctx: &RequestCtx, ino: u64, fh: u64, flags: i32) -> RResult<(), Errno> {
        guarded("releasedir", || self.fs.releasedir(ctx, ino, fh, flags))
    }

    fn fsyncdir(&self, ctx: &RequestCtx, ino: u64, fh: u64, datasync: bool) -> RResult<(), Errno> {
        guarded("fsyncdir", || self.fs.fsyncdir(ctx, ino, fh, datasync))
    }

    fn statfs(&self, ctx: &RequestCtx, ino: u64) -> RResult<StatFs, Errno> {
        guarded("statfs", || self.fs.statfs(ctx, ino))
    }

    fn setxattr(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        n: RSlice<'_, u8>,
        value: RSlice<'_, u8>,
        flags: i32,
        position: u32,
    ) -> RResult<(), Errno> {
        guarded("setxattr", || self.fs.setxattr(ctx, ino, name(n), value.as_slice(), flags, position))
    }

    fn getxattr(&self, ctx: &RequestCtx, ino: u64, n: RSlice<'_, u8>, buf: RSliceMut<'_, u8>) -> RResult<u64, Errno> {
        guarded("getxattr", || self.fs.getxattr(ctx, ino, name(n)).map(|value| copy_out(&value, buf)))
    }

    fn listxattr(&self, ctx: &RequestCtx, ino: u64, buf: RSliceMut<'_, u8>) -> RResult<u64, Errno> {
        guarded("listxattr", || self.fs.listxattr(ctx, ino).map(|names| copy_out(&names, buf)))
    }

    fn removexattr(&self, ctx: &RequestCtx, ino: u64, n: RSlice<'_, u8>) -> RResult<(), Errno> {
        guarded("removexattr", || self.fs.removexattr(ctx, ino, name(n)))
    }

    fn access(&self, ctx: &RequestCtx, ino: u64, mask: i32) -> RResult<(), Errno> {
        guarded("access", || self.fs.access(ctx, ino, mask))
    }

    fn create(
        &self,
        ctx: &RequestCtx,
        parent: u64,
        n: RSlice<'_, u8>,
        mode: u32,
        flags: i32,
    ) -> RResult<Created, Errno> {
        self.create_ttl(ctx, parent, n, mode, flags).map(Created::from)
    }

    fn fallocate(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> RResult<(), Errno> {
        guarded("fallocate", || self.fs.fallocate(ctx, ino, fh, offset, length, mode))
    }

    fn lseek(&self, ctx: &RequestCtx, ino: u64, fh: u64, offset: i64, whence: i32) -> RResult<i64, Errno> {
        guarded("lseek", || self.fs.lseek(ctx, ino, fh, offset, whence))
    }

    fn copy_file_range(
        &self,
        ctx: &RequestCtx,
        ino_in: u64,
        fh_in: u64,
        offset_in: u64,
        ino_out: u64,
        fh_out: u64,
        offset_out: u64,
        len: u64,
        flags: u64,
    ) -> RResult<u32, Errno> {
        guarded("copy_file_range", || {
            self.fs.copy_file_range(ctx, ino_in, fh_in, offset_in, ino_out, fh_out, offset_out, len, flags)
        })
    }

    fn destroy(&self) {
        guarded_unit("destroy", || self.fs.destroy())
    }

    fn capabilities(&self) -> u64 {
        guarded("capabilities", || Ok(self.fs.capabilities().bits())).into_result().unwrap_or(0)
    }

    fn init(&self, negotiated: &AbiNegotiated, host: MountHostObject) {
        let negotiated = Negotiated::from_abi(negotiated);
        guarded_unit("init", || self.fs.init(&negotiated, MountHost::from_abi(host)))
    }

    fn lookup_ttl(&self, ctx: &RequestCtx, parent: u64, n: RSlice<'_, u8>) -> RResult<EntryTtl, Errno> {
        guarded("lookup", || self.fs.lookup(ctx, parent, name(n)).map(|entry| entry.to_abi_ttl()))
    }

    fn getattr_ttl(&self, ctx: &RequestCtx, ino: u64, fh: ROption<u64>) -> RResult<AttrTtl, Errno> {
        guarded("getattr", || {
            self.fs.getattr_with_ttl(ctx, ino, fh.into_option()).map(|(attr, ttl)| attr.to_abi_ttl(ttl))
        })
    }

    fn answers_later(&self) -> ROption<LaterFsObject> {
        let operations = self.fs.answers_later();
        if operations.is_empty() {
            return ROption::RNone;
        }
        let later = LaterFfi { fs: Arc::clone(&self.fs), operations };
        ROption::RSome(LaterFilesystem_TO::from_ptr(RArc::new(later), TD_Opaque))
    }

    fn setattr_ttl(&self, ctx: &RequestCtx, ino: u64, attr: &AbiSetAttr) -> RResult<AttrTtl, Errno> {
        guarded("setattr", || {
            self.fs.setattr_with_ttl(ctx, ino, &SetAttr::from_abi(attr)).map(|(attr, ttl)| attr.to_abi_ttl(ttl))
        })
    }

    fn mknod_ttl(
        &self,
        ctx: &RequestCtx,
        parent: u64,
        n: RSlice<'_, u8>,
        mode: u32,
        rdev: u32,
    ) -> RResult<EntryTtl, Errno> {
        guarded("mknod", || self.fs.mknod(ctx, parent, name(n), mode, rdev).map(|entry| entry.to_abi_ttl()))
    }

    fn mkdir_ttl(&self, ctx: &RequestCtx, parent: u64, n: RSlice<'_, u8>, mode: u32) -> RResult<EntryTtl, Errno> {
        guarded("mkdir", || self.fs.mkdir(ctx, parent, name(n), mode).map(|entry| entry.to_abi_ttl()))
    }

    fn symlink_ttl(
        &self,
        ctx: &RequestCtx,
        parent: u64,
        n: RSlice<'_, u8>,
        target: RSlice<'_, u8>,
    ) -> RResult<EntryTtl, Errno> {
        guarded("symlink", || self.fs.symlink(ctx, parent, name(n), name(target)).map(|entry| entry.to_abi_ttl()))
    }

    fn link_ttl(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        new_parent: u64,
        new_name: RSlice<'_, u8>,
    ) -> RResult<EntryTtl, Errno> {
        guarded("link", || self.fs.link(ctx, ino, new_parent, name(new_name)).map(|entry| entry.to_abi_ttl()))
    }

    fn create_ttl(
        &self,
        ctx: &RequestCtx,
        parent: u64,
        n: RSlice<'_, u8>,
        mode: u32,
        flags: i32,
    ) -> RResult<CreatedTtl, Errno> {
        guarded("create", || {
            let (created, opened) = self.fs.create(ctx, parent, name(n), mode, flags)?;
            Ok(CreatedTtl { entry: created.to_abi_ttl(), opened: opened.to_abi() })
        })
    }

    fn getlk(&self, ctx: &RequestCtx, ino: u64, fh: u64, lock_owner: u64, lock: &FileLock) -> RResult<FileLock, Errno> {
        guarded("getlk", || self.fs.getlk(ctx, ino, fh, lock_owner, lock))
    }

    fn setlk(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        lock_owner: u64,
        lock: &FileLock,
        sleep: bool,
    ) -> RResult<(), Errno> {
        guarded("setlk", || self.fs.setlk(ctx, ino, fh, lock_owner, lock, sleep))
    }

    fn ioctl(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        _flags: u32,
        cmd: u32,
        input: RSlice<'_, u8>,
        mut output: RSliceMut<'_, u8>,
    ) -> RResult<IoctlOut, Errno> {
        guarded("ioctl", || {
            let output = output.as_mut_slice();
            let (result, filled) = self.fs.ioctl(ctx, ino, fh, cmd, input.as_slice(), output)?;
            Ok(IoctlOut { result, output_len: filled.min(output.len()) as u32 })
        })
    }

    fn poll(&self, ctx: &RequestCtx, ino: u64, fh: u64, wakeup: u64, events: u32, flags: u32) -> RResult<u32, Errno> {
        guarded("poll", || self.fs.poll(ctx, ino, fh, wakeup, events, schedules_notify(flags)))
    }

    fn bmap(&self, ctx: &RequestCtx, ino: u64, block_size: u32, block: u64) -> RResult<u64, Errno> {
        guarded("bmap", || self.fs.bmap(ctx, ino, block_size, block))
    }
}
