//! Plugins built for an older ABI minor, adapted to the current one.
//!
//! The loader reads which `fusehost-abi` a plugin was built against from its library
//! header and loads it through that minor's frozen interface (abi_stable refuses a
//! plugin with fewer vtable entries than the host's type expects). The adapter here
//! turns such an object into a current [`FsObject`]: every method the old ABI has is
//! forwarded unchanged, everything added since answers as the old host did, through
//! the defaults the ABI declares for appended methods (`lookup_ttl` calls `lookup`,
//! `getlk` answers `ENOSYS`, no request is answered later, ...). The one exception is
//! [`capabilities`]: a 1.0 host offered kernel passthrough to every plugin, so a 1.0
//! plugin keeps that consent.
//!
//! The host's readdirplus sink is lent to such a plugin as the 1.0 sink it knows (1.3
//! grew the sink); and a 1.2 plugin's later-answering part needs one more step, since
//! 1.3 grew the [`Reply`](fusehost_abi::Reply) it answers through: see `later_1_2`.
//!
//! [`capabilities`]: RawFilesystem::capabilities

mod later_1_2;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RSlice, RSliceMut};
use fusehost_abi::{
    capability, v1_0, v1_1, v1_2, Attr, AttrTtl, Created, DirPlusSinkRef, DirSinkRef, Entry, EntryTtl, Errno, FileLock,
    FsObject, IoctlOut, LaterFsObject, MountHostObject, Negotiated, Opened, RawFilesystem, RawFilesystem_TO,
    RequestCtx, SetAttr, StatFs,
};

/// A filesystem object from a plugin built against `fusehost-abi` 1.0.
struct V1_0Filesystem(v1_0::FsObject);

/// Wraps a 1.0 plugin's filesystem object as a current one.
pub fn from_v1_0(fs: v1_0::FsObject) -> FsObject {
    RawFilesystem_TO::from_value(V1_0Filesystem(fs), TD_Opaque)
}

/// A filesystem object from a plugin built against `fusehost-abi` 1.1.
struct V1_1Filesystem(v1_1::FsObject);

/// Wraps a 1.1 plugin's filesystem object as a current one.
pub fn from_v1_1(fs: v1_1::FsObject) -> FsObject {
    RawFilesystem_TO::from_value(V1_1Filesystem(fs), TD_Opaque)
}

/// A filesystem object from a plugin built against `fusehost-abi` 1.2.
struct V1_2Filesystem(v1_2::FsObject);

/// Wraps a 1.2 plugin's filesystem object as a current one.
pub fn from_v1_2(fs: v1_2::FsObject) -> FsObject {
    RawFilesystem_TO::from_value(V1_2Filesystem(fs), TD_Opaque)
}

/// The host's readdirplus sink as a plugin before 1.3 fills it: through the 1.0 sink,
/// which lacks `add_ttl`.
struct SinkAsV1_0<'s, 'a, 'b>(&'s mut DirPlusSinkRef<'a, 'b>);

impl v1_0::DirPlusSink for SinkAsV1_0<'_, '_, '_> {
    fn add(&mut self, next_offset: i64, name: RSlice<'_, u8>, entry: &Entry) -> bool {
        self.0.add(next_offset, name, entry)
    }
}

/// The methods 1.0 has, forwarded unchanged to the wrapped object (`self.0`).
macro_rules! forward_1_0_methods {
    () => {
        fn lookup(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>) -> RResult<Entry, Errno> {
            self.0.lookup(ctx, parent, name)
        }

        fn forget(&self, ino: u64) {
            self.0.forget(ino)
        }

        fn getattr(&self, ctx: &RequestCtx, ino: u64, fh: ROption<u64>) -> RResult<Attr, Errno> {
            self.0.getattr(ctx, ino, fh)
        }

        fn setattr(&self, ctx: &RequestCtx, ino: u64, attr: &SetAttr) -> RResult<Attr, Errno> {
            self.0.setattr(ctx, ino, attr)
        }

        fn readlink(&self, ctx: &RequestCtx, ino: u64, buf: RSliceMut<'_, u8>) -> RResult<u64, Errno> {
            self.0.readlink(ctx, ino, buf)
        }

        fn mknod(
            &self,
            ctx: &RequestCtx,
            parent: u64,
            name: RSlice<'_, u8>,
            mode: u32,
            rdev: u32,
        ) -> RResult<Entry, Errno> {
            self.0.mknod(ctx, parent, name, mode, rdev)
        }

        fn mkdir(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>, mode: u32) -> RResult<Entry, Errno> {
            self.0.mkdir(ctx, parent, name, mode)
        }

        fn unlink(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>) -> RResult<(), Errno> {
            self.0.unlink(ctx, parent, name)
        }

        fn rmdir(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>) -> RResult<(), Errno> {
            self.0.rmdir(ctx, parent, name)
        }

        fn symlink(
            &self,
            ctx: &RequestCtx,
            parent: u64,
            name: RSlice<'_, u8>,
            target: RSlice<'_, u8>,
        ) -> RResult<Entry, Errno> {
            self.0.symlink(ctx, parent, name, target)
        }

        fn rename(
            &self,
            ctx: &RequestCtx,
            parent: u64,
            name: RSlice<'_, u8>,
            new_parent: u64,
            new_name: RSlice<'_, u8>,
            flags: u32,
        ) -> RResult<(), Errno> {
            self.0.rename(ctx, parent, name, new_parent, new_name, flags)
        }

        fn link(&self, ctx: &RequestCtx, ino: u64, new_parent: u64, new_name: RSlice<'_, u8>) -> RResult<Entry, Errno> {
            self.0.link(ctx, ino, new_parent, new_name)
        }

        fn open(&self, ctx: &RequestCtx, ino: u64, flags: i32) -> RResult<Opened, Errno> {
            self.0.open(ctx, ino, flags)
        }

        fn read(
            &self,
            ctx: &RequestCtx,
            ino: u64,
            fh: u64,
            offset: u64,
            buf: RSliceMut<'_, u8>,
            flags: i32,
            lock_owner: ROption<u64>,
        ) -> RResult<u64, Errno> {
            self.0.read(ctx, ino, fh, offset, buf, flags, lock_owner)
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
            lock_owner: ROption<u64>,
        ) -> RResult<u32, Errno> {
            self.0.write(ctx, ino, fh, offset, data, write_flags, flags, lock_owner)
        }

        fn flush(&self, ctx: &RequestCtx, ino: u64, fh: u64, lock_owner: u64) -> RResult<(), Errno> {
            self.0.flush(ctx, ino, fh, lock_owner)
        }

        fn release(
            &self,
            ctx: &RequestCtx,
            ino: u64,
            fh: u64,
            flags: i32,
            lock_owner: ROption<u64>,
            flush: bool,
        ) -> RResult<(), Errno> {
            self.0.release(ctx, ino, fh, flags, lock_owner, flush)
        }

        fn fsync(&self, ctx: &RequestCtx, ino: u64, fh: u64, datasync: bool) -> RResult<(), Errno> {
            self.0.fsync(ctx, ino, fh, datasync)
        }

        fn opendir(&self, ctx: &RequestCtx, ino: u64, flags: i32) -> RResult<Opened, Errno> {
            self.0.opendir(ctx, ino, flags)
        }

        fn readdir(
            &self,
            ctx: &RequestCtx,
            ino: u64,
            fh: u64,
            offset: i64,
            sink: &mut DirSinkRef<'_, '_>,
        ) -> RResult<(), Errno> {
            self.0.readdir(ctx, ino, fh, offset, sink)
        }

        fn readdirplus(
            &self,
            ctx: &RequestCtx,
            ino: u64,
            fh: u64,
            offset: i64,
            sink: &mut DirPlusSinkRef<'_, '_>,
        ) -> RResult<(), Errno> {
            let mut sink = SinkAsV1_0(sink);
            let mut lent = v1_0::DirPlusSink_TO::from_ptr(&mut sink, TD_Opaque);
            // Bound to a name so that `lent`, which borrows `sink`, is dropped first.
            let answer = self.0.readdirplus(ctx, ino, fh, offset, &mut lent);
            answer
        }

        fn releasedir(&self, ctx: &RequestCtx, ino: u64, fh: u64, flags: i32) -> RResult<(), Errno> {
            self.0.releasedir(ctx, ino, fh, flags)
        }

        fn fsyncdir(&self, ctx: &RequestCtx, ino: u64, fh: u64, datasync: bool) -> RResult<(), Errno> {
            self.0.fsyncdir(ctx, ino, fh, datasync)
        }

        fn statfs(&self, ctx: &RequestCtx, ino: u64) -> RResult<StatFs, Errno> {
            self.0.statfs(ctx, ino)
        }

        fn setxattr(
            &self,
            ctx: &RequestCtx,
            ino: u64,
            name: RSlice<'_, u8>,
            value: RSlice<'_, u8>,
            flags: i32,
            position: u32,
        ) -> RResult<(), Errno> {
            self.0.setxattr(ctx, ino, name, value, flags, position)
        }

        fn getxattr(
            &self,
            ctx: &RequestCtx,
            ino: u64,
            name: RSlice<'_, u8>,
            buf: RSliceMut<'_, u8>,
        ) -> RResult<u64, Errno> {
            self.0.getxattr(ctx, ino, name, buf)
        }

        fn listxattr(&self, ctx: &RequestCtx, ino: u64, buf: RSliceMut<'_, u8>) -> RResult<u64, Errno> {
            self.0.listxattr(ctx, ino, buf)
        }

        fn removexattr(&self, ctx: &RequestCtx, ino: u64, name: RSlice<'_, u8>) -> RResult<(), Errno> {
            self.0.removexattr(ctx, ino, name)
        }

        fn access(&self, ctx: &RequestCtx, ino: u64, mask: i32) -> RResult<(), Errno> {
            self.0.access(ctx, ino, mask)
        }

        fn create(
            &self,
            ctx: &RequestCtx,
            parent: u64,
            name: RSlice<'_, u8>,
            mode: u32,
            flags: i32,
        ) -> RResult<Created, Errno> {
            self.0.create(ctx, parent, name, mode, flags)
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
            self.0.fallocate(ctx, ino, fh, offset, length, mode)
        }

        fn lseek(&self, ctx: &RequestCtx, ino: u64, fh: u64, offset: i64, whence: i32) -> RResult<i64, Errno> {
            self.0.lseek(ctx, ino, fh, offset, whence)
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
            self.0.copy_file_range(ctx, ino_in, fh_in, offset_in, ino_out, fh_out, offset_out, len, flags)
        }

        fn destroy(&self) {
            self.0.destroy()
        }
    };
}

impl RawFilesystem for V1_0Filesystem {
    forward_1_0_methods!();

    fn capabilities(&self) -> u64 {
        capability::PASSTHROUGH
    }
}

/// The methods 1.1 added, forwarded unchanged to the wrapped object (`self.0`).
macro_rules! forward_1_1_methods {
    () => {
        fn capabilities(&self) -> u64 {
            self.0.capabilities()
        }

        fn init(&self, negotiated: &Negotiated, host: MountHostObject) {
            self.0.init(negotiated, host)
        }

        fn lookup_ttl(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>) -> RResult<EntryTtl, Errno> {
            self.0.lookup_ttl(ctx, parent, name)
        }

        fn getattr_ttl(&self, ctx: &RequestCtx, ino: u64, fh: ROption<u64>) -> RResult<AttrTtl, Errno> {
            self.0.getattr_ttl(ctx, ino, fh)
        }

        fn getlk(
            &self,
            ctx: &RequestCtx,
            ino: u64,
            fh: u64,
            lock_owner: u64,
            lock: &FileLock,
        ) -> RResult<FileLock, Errno> {
            self.0.getlk(ctx, ino, fh, lock_owner, lock)
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
            self.0.setlk(ctx, ino, fh, lock_owner, lock, sleep)
        }

        fn ioctl(
            &self,
            ctx: &RequestCtx,
            ino: u64,
            fh: u64,
            flags: u32,
            cmd: u32,
            input: RSlice<'_, u8>,
            output: RSliceMut<'_, u8>,
        ) -> RResult<IoctlOut, Errno> {
            self.0.ioctl(ctx, ino, fh, flags, cmd, input, output)
        }

        fn poll(
            &self,
            ctx: &RequestCtx,
            ino: u64,
            fh: u64,
            wakeup: u64,
            events: u32,
            flags: u32,
        ) -> RResult<u32, Errno> {
            self.0.poll(ctx, ino, fh, wakeup, events, flags)
        }

        fn bmap(&self, ctx: &RequestCtx, ino: u64, block_size: u32, block: u64) -> RResult<u64, Errno> {
            self.0.bmap(ctx, ino, block_size, block)
        }
    };
}

impl RawFilesystem for V1_1Filesystem {
    forward_1_0_methods!();
    forward_1_1_methods!();
}

impl RawFilesystem for V1_2Filesystem {
    forward_1_0_methods!();
    forward_1_1_methods!();

    fn answers_later(&self) -> ROption<LaterFsObject> {
        self.0.answers_later().map(later_1_2::from_v1_2)
    }
}
