//! ABI 1.2.0's filesystem object, its later-answering part and root module, frozen
//! exactly as released.
//!
//! The same reason as [`crate::v1_0`]: abi_stable refuses a plugin whose vtables have
//! fewer entries than the host's types, so a host loads a 1.2 plugin through 1.2's
//! interface and adapts the objects (`fusehost::abi_adapters`). 1.3 appended to
//! `RawFilesystem` (TTLs on what setattr, create, mknod, mkdir, symlink and link answer) and
//! to `Reply` (`created_ttl`, `add_dir_plus_entry_ttl`), so both are copied here, and
//! `LaterFilesystem` with them because its methods take a `Reply`; `DirPlusSink` grew
//! too, and its 1.0 copy (`v1_0`) serves here. Every other type is shared with the current
//! ABI, unchanged.
#![allow(missing_docs)]

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RArc, RBox, ROption, RResult, RSlice, RSliceMut, RStr},
    StableAbi,
};

use crate::v1_0::DirPlusSinkRef;
use crate::{
    Attr, AttrTtl, Created, DirSinkRef, Entry, EntryTtl, Errno, FileLock, HostServices, IoctlOut, MountHostObject,
    MountInit, Negotiated, Opened, PluginError, PluginInfo, PluginMetadata, RequestCtx, SetAttr, StatFs,
};

/// One mounted filesystem instance: the whole FUSE request set.
///
/// Every method answers a request; an unimplemented one answers `ENOSYS`. Inode 1 is
/// the root.
#[sabi_trait]
pub trait RawFilesystem: Send + Sync {
    fn lookup(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>) -> RResult<Entry, Errno>;
    /// The kernel no longer knows `ino`: called once when the host's count reaches 0.
    fn forget(&self, ino: u64);
    fn getattr(&self, ctx: &RequestCtx, ino: u64, fh: ROption<u64>) -> RResult<Attr, Errno>;
    fn setattr(&self, ctx: &RequestCtx, ino: u64, attr: &SetAttr) -> RResult<Attr, Errno>;
    /// Writes the link target into `buf` (up to its length) and returns the target's
    /// full length.
    fn readlink(&self, ctx: &RequestCtx, ino: u64, buf: RSliceMut<'_, u8>) -> RResult<u64, Errno>;
    fn mknod(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>, mode: u32, rdev: u32)
        -> RResult<Entry, Errno>;
    fn mkdir(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>, mode: u32) -> RResult<Entry, Errno>;
    fn unlink(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>) -> RResult<(), Errno>;
    fn rmdir(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>) -> RResult<(), Errno>;
    fn symlink(
        &self,
        ctx: &RequestCtx,
        parent: u64,
        name: RSlice<'_, u8>,
        target: RSlice<'_, u8>,
    ) -> RResult<Entry, Errno>;
    /// `flags` are `RENAME_NOREPLACE` (1), `RENAME_EXCHANGE` (2), `RENAME_WHITEOUT` (4).
    fn rename(
        &self,
        ctx: &RequestCtx,
        parent: u64,
        name: RSlice<'_, u8>,
        new_parent: u64,
        new_name: RSlice<'_, u8>,
        flags: u32,
    ) -> RResult<(), Errno>;
    fn link(&self, ctx: &RequestCtx, ino: u64, new_parent: u64, new_name: RSlice<'_, u8>) -> RResult<Entry, Errno>;
    fn open(&self, ctx: &RequestCtx, ino: u64, flags: i32) -> RResult<Opened, Errno>;
    /// Fills `buf` from `offset` and returns the byte count (short only at end of file).
    fn read(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        offset: u64,
        buf: RSliceMut<'_, u8>,
        flags: i32,
        lock_owner: ROption<u64>,
    ) -> RResult<u64, Errno>;
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
    ) -> RResult<u32, Errno>;
    fn flush(&self, ctx: &RequestCtx, ino: u64, fh: u64, lock_owner: u64) -> RResult<(), Errno>;
    fn release(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        flags: i32,
        lock_owner: ROption<u64>,
        flush: bool,
    ) -> RResult<(), Errno>;
    fn fsync(&self, ctx: &RequestCtx, ino: u64, fh: u64, datasync: bool) -> RResult<(), Errno>;
    fn opendir(&self, ctx: &RequestCtx, ino: u64, flags: i32) -> RResult<Opened, Errno>;
    fn readdir(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        offset: i64,
        sink: &mut DirSinkRef<'_, '_>,
    ) -> RResult<(), Errno>;
    fn readdirplus(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        offset: i64,
        sink: &mut DirPlusSinkRef<'_, '_>,
    ) -> RResult<(), Errno>;
    fn releasedir(&self, ctx: &RequestCtx, ino: u64, fh: u64, flags: i32) -> RResult<(), Errno>;
    fn fsyncdir(&self, ctx: &RequestCtx, ino: u64, fh: u64, datasync: bool) -> RResult<(), Errno>;
    fn statfs(&self, ctx: &RequestCtx, ino: u64) -> RResult<StatFs, Errno>;
    fn setxattr(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        name: RSlice<'_, u8>,
        value: RSlice<'_, u8>,
        flags: i32,
        position: u32,
    ) -> RResult<(), Errno>;
    /// Writes the value into `buf` (up to its length) and returns the value's full size.
    fn getxattr(&self, ctx: &RequestCtx, ino: u64, name: RSlice<'_, u8>, buf: RSliceMut<'_, u8>)
        -> RResult<u64, Errno>;
    /// Writes the NUL-terminated names into `buf` (up to its length) and returns their
    /// full size.
    fn listxattr(&self, ctx: &RequestCtx, ino: u64, buf: RSliceMut<'_, u8>) -> RResult<u64, Errno>;
    fn removexattr(&self, ctx: &RequestCtx, ino: u64, name: RSlice<'_, u8>) -> RResult<(), Errno>;
    fn access(&self, ctx: &RequestCtx, ino: u64, mask: i32) -> RResult<(), Errno>;
    fn create(
        &self,
        ctx: &RequestCtx,
        parent: u64,
        name: RSlice<'_, u8>,
        mode: u32,
        flags: i32,
    ) -> RResult<Created, Errno>;
    fn fallocate(&self, ctx: &RequestCtx, ino: u64, fh: u64, offset: u64, length: u64, mode: i32)
        -> RResult<(), Errno>;
    fn lseek(&self, ctx: &RequestCtx, ino: u64, fh: u64, offset: i64, whence: i32) -> RResult<i64, Errno>;
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
    ) -> RResult<u32, Errno>;
    /// The mount is gone: every inode was forgotten and every file released.
    #[sabi(last_prefix_field)]
    fn destroy(&self);

    // ---- Appended in 1.1.0. Each has a default: a 1.0 plugin never answers them,
    // ---- and the host adapts 1.0 objects (see `v1_0`).

    /// The `capability` bits this filesystem consents to. Asked once, before the
    /// mount; the host requests a kernel feature only when the operator asks for it
    /// (where an option exists) and the plugin consents.
    fn capabilities(&self) -> u64 {
        0
    }
    /// What was negotiated with the kernel, and the host's per-mount handle
    /// (notifications, request identity). Called once, before the first request.
    fn init(&self, negotiated: &Negotiated, host: MountHostObject) {
        let _ = (negotiated, host);
    }
    /// `lookup` with per-entry TTLs. An entry whose `attr.ino` is 0 is a *negative*
    /// entry: "no such name", remembered by the kernel for `entry_ttl`.
    fn lookup_ttl(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>) -> RResult<EntryTtl, Errno> {
        match self.lookup(ctx, parent, name) {
            RResult::ROk(entry) => {
                RResult::ROk(EntryTtl { entry, entry_ttl: ROption::RNone, attr_ttl: ROption::RNone })
            }
            RResult::RErr(errno) => RResult::RErr(errno),
        }
    }
    /// `getattr` with a per-answer attribute TTL.
    fn getattr_ttl(&self, ctx: &RequestCtx, ino: u64, fh: ROption<u64>) -> RResult<AttrTtl, Errno> {
        match self.getattr(ctx, ino, fh) {
            RResult::ROk(attr) => RResult::ROk(AttrTtl { attr, attr_ttl: ROption::RNone }),
            RResult::RErr(errno) => RResult::RErr(errno),
        }
    }
    /// POSIX record locks (`fcntl(F_GETLK)`): the conflicting lock, or one of type
    /// `F_UNLCK` when there is none. Only sent when the plugin consents to
    /// `capability::POSIX_LOCKS`; otherwise the kernel keeps locks node-local.
    fn getlk(&self, ctx: &RequestCtx, ino: u64, fh: u64, lock_owner: u64, lock: &FileLock) -> RResult<FileLock, Errno> {
        let _ = (ctx, ino, fh, lock_owner, lock);
        RResult::RErr(Errno::ENOSYS)
    }
    /// `fcntl(F_SETLK)`, or `F_SETLKW` when `sleep` (wait for the conflicting lock).
    fn setlk(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        lock_owner: u64,
        lock: &FileLock,
        sleep: bool,
    ) -> RResult<(), Errno> {
        let _ = (ctx, ino, fh, lock_owner, lock, sleep);
        RResult::RErr(Errno::ENOSYS)
    }
    /// `ioctl(2)` on an open file: `input` is what the caller passed in, `output` room
    /// for what goes back (the command's size). Answer `ENOTTY` for unknown commands.
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
        let _ = (ctx, ino, fh, flags, cmd, input, output);
        RResult::RErr(Errno::ENOSYS)
    }
    /// `poll(2)`: the `POLL*` events ready now. When `flags` has `FUSE_POLL_SCHEDULE_NOTIFY`
    /// (1), call `MountHost::poll_ready` with `wakeup` once readiness changes.
    fn poll(&self, ctx: &RequestCtx, ino: u64, fh: u64, wakeup: u64, events: u32, flags: u32) -> RResult<u32, Errno> {
        let _ = (ctx, ino, fh, wakeup, events, flags);
        RResult::RErr(Errno::ENOSYS)
    }
    /// `FIBMAP`: the device block of file block `block` (block devices only).
    fn bmap(&self, ctx: &RequestCtx, ino: u64, block_size: u32, block: u64) -> RResult<u64, Errno> {
        let _ = (ctx, ino, block_size, block);
        RResult::RErr(Errno::ENOSYS)
    }

    // ---- Appended in 1.2.0.

    /// The part of this filesystem that answers requests later, from any thread
    /// (`LaterFilesystem`), if it has one. Asked once, before the mount; a 1.1 host
    /// never asks and calls the synchronous methods only.
    fn answers_later(&self) -> ROption<LaterFsObject> {
        ROption::RNone
    }
}

/// A filesystem object as a 1.2 plugin hands it to the host.
pub type FsObject = RawFilesystem_TO<'static, RBox<()>>;

/// The answer to one request, given later and from any thread (ABI 1.2).
///
/// Implemented by the host; a plugin receives one in each `LaterFilesystem` method and calls
/// exactly one answering method on it: `Reply::error`, or the success that fits the
/// request (`entry` for lookup, mknod, mkdir, symlink and link; `attr` for getattr and
/// setattr; `data` for read, readlink, and getxattr and listxattr (the whole value:
/// the host answers size probes and `ERANGE`); `written` for write and
/// copy_file_range; `opened` for open and opendir; `created` for create; `statfs`;
/// `offset` for lseek; `lock` for getlk; `block` for bmap; `ioctl`; `poll`; `empty` for
/// the rest, and to end a listing after its `add_*` calls). The host checks the answer as it checks every
/// answer: one of the wrong kind is `EIO`. Dropping a reply without answering
/// answers `EIO`, once, and is logged and counted: a FUSE request is never left
/// unanswered.
#[sabi_trait]
pub trait Reply: Send {
    fn error(&mut self, errno: Errno);
    fn empty(&mut self);
    /// `entry.attr.ino == 0` is a negative entry (lookup only).
    fn entry(&mut self, entry: &EntryTtl);
    fn attr(&mut self, attr: &AttrTtl);
    fn data(&mut self, data: RSlice<'_, u8>);
    fn written(&mut self, count: u32);
    fn opened(&mut self, opened: &Opened);
    fn created(&mut self, created: &Created);
    fn statfs(&mut self, statfs: &StatFs);
    /// Adds a readdir entry; returns `true` when the listing is full (entry not added).
    fn add_dir_entry(&mut self, ino: u64, next_offset: i64, kind: u32, name: RSlice<'_, u8>) -> bool;
    /// Adds a readdirplus entry (counted as a lookup once sent); returns `true` when
    /// full (entry not added, not counted).
    fn add_dir_plus_entry(&mut self, next_offset: i64, name: RSlice<'_, u8>, entry: &Entry) -> bool;
    /// lseek's answer: the new offset.
    fn offset(&mut self, offset: i64);
    /// getlk's answer: the conflicting lock, or one of type `F_UNLCK`.
    fn lock(&mut self, lock: &FileLock);
    /// bmap's answer: the device block.
    fn block(&mut self, block: u64);
    /// ioctl's answer: its return value and the bytes that go back (at most the
    /// command's output size).
    fn ioctl(&mut self, result: i32, output: RSlice<'_, u8>);
    /// poll's answer: the `POLL*` events ready.
    #[sabi(last_prefix_field)]
    fn poll(&mut self, events: u32);
}

/// A reply handle as a plugin holds it: owned, `Send`, answered once.
pub type ReplyObject = Reply_TO<'static, RBox<()>>;

/// The part of a filesystem that answers requests later, from any thread (ABI 1.2).
///
/// Its `LaterFilesystem::operations` are the `operation` bits the host sends here
/// instead of to the synchronous method of `RawFilesystem`; every other request still
/// goes there. Each method gets the request's arguments (borrowed for the call only:
/// copy what you keep) and a `Reply` to answer through, now or later. The host never
/// calls a method whose bit is not in `operations()` (answer those `ENOSYS`).
#[sabi_trait]
pub trait LaterFilesystem: Send + Sync {
    /// The `operation` bits answered here. Asked once, before the mount.
    fn operations(&self) -> u64;
    fn lookup(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>, reply: ReplyObject);
    fn getattr(&self, ctx: &RequestCtx, ino: u64, fh: ROption<u64>, reply: ReplyObject);
    fn setattr(&self, ctx: &RequestCtx, ino: u64, attr: &SetAttr, reply: ReplyObject);
    fn readlink(&self, ctx: &RequestCtx, ino: u64, reply: ReplyObject);
    fn mknod(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>, mode: u32, rdev: u32, reply: ReplyObject);
    fn mkdir(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>, mode: u32, reply: ReplyObject);
    fn unlink(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>, reply: ReplyObject);
    fn rmdir(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>, reply: ReplyObject);
    fn symlink(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>, target: RSlice<'_, u8>, reply: ReplyObject);
    fn rename(
        &self,
        ctx: &RequestCtx,
        parent: u64,
        name: RSlice<'_, u8>,
        new_parent: u64,
        new_name: RSlice<'_, u8>,
        flags: u32,
        reply: ReplyObject,
    );
    fn link(&self, ctx: &RequestCtx, ino: u64, new_parent: u64, new_name: RSlice<'_, u8>, reply: ReplyObject);
    fn open(&self, ctx: &RequestCtx, ino: u64, flags: i32, reply: ReplyObject);
    /// Answers with `Reply::data`: at most `size` bytes, fewer only at end of file.
    fn read(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        offset: u64,
        size: u32,
        flags: i32,
        lock_owner: ROption<u64>,
        reply: ReplyObject,
    );
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
        reply: ReplyObject,
    );
    fn flush(&self, ctx: &RequestCtx, ino: u64, fh: u64, lock_owner: u64, reply: ReplyObject);
    fn release(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        flags: i32,
        lock_owner: ROption<u64>,
        flush: bool,
        reply: ReplyObject,
    );
    fn fsync(&self, ctx: &RequestCtx, ino: u64, fh: u64, datasync: bool, reply: ReplyObject);
    fn opendir(&self, ctx: &RequestCtx, ino: u64, flags: i32, reply: ReplyObject);
    /// Answers with `Reply::add_dir_entry` for each entry (until it returns `true`:
    /// full), then `Reply::empty`.
    fn readdir(&self, ctx: &RequestCtx, ino: u64, fh: u64, offset: i64, reply: ReplyObject);
    /// Answers with `Reply::add_dir_plus_entry` for each entry, then `Reply::empty`.
    fn readdirplus(&self, ctx: &RequestCtx, ino: u64, fh: u64, offset: i64, reply: ReplyObject);
    fn releasedir(&self, ctx: &RequestCtx, ino: u64, fh: u64, flags: i32, reply: ReplyObject);
    fn statfs(&self, ctx: &RequestCtx, ino: u64, reply: ReplyObject);
    fn create(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>, mode: u32, flags: i32, reply: ReplyObject);
    fn setxattr(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        name: RSlice<'_, u8>,
        value: RSlice<'_, u8>,
        flags: i32,
        position: u32,
        reply: ReplyObject,
    );
    /// Answers with `Reply::data`: the whole value.
    fn getxattr(&self, ctx: &RequestCtx, ino: u64, name: RSlice<'_, u8>, reply: ReplyObject);
    /// Answers with `Reply::data`: every name, each followed by a NUL byte.
    fn listxattr(&self, ctx: &RequestCtx, ino: u64, reply: ReplyObject);
    fn removexattr(&self, ctx: &RequestCtx, ino: u64, name: RSlice<'_, u8>, reply: ReplyObject);
    fn access(&self, ctx: &RequestCtx, ino: u64, mask: i32, reply: ReplyObject);
    fn fsyncdir(&self, ctx: &RequestCtx, ino: u64, fh: u64, datasync: bool, reply: ReplyObject);
    fn fallocate(&self, ctx: &RequestCtx, ino: u64, fh: u64, offset: u64, length: u64, mode: i32, reply: ReplyObject);
    fn lseek(&self, ctx: &RequestCtx, ino: u64, fh: u64, offset: i64, whence: i32, reply: ReplyObject);
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
        reply: ReplyObject,
    );
    fn getlk(&self, ctx: &RequestCtx, ino: u64, fh: u64, lock_owner: u64, lock: &FileLock, reply: ReplyObject);
    fn setlk(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        lock_owner: u64,
        lock: &FileLock,
        sleep: bool,
        reply: ReplyObject,
    );
    /// Answers with `Reply::ioctl`: at most `output_size` bytes go back.
    fn ioctl(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        flags: u32,
        cmd: u32,
        input: RSlice<'_, u8>,
        output_size: u32,
        reply: ReplyObject,
    );
    fn poll(&self, ctx: &RequestCtx, ino: u64, fh: u64, wakeup: u64, events: u32, flags: u32, reply: ReplyObject);
    #[sabi(last_prefix_field)]
    fn bmap(&self, ctx: &RequestCtx, ino: u64, block_size: u32, block: u64, reply: ReplyObject);
}

/// A filesystem's later-answering part as the host holds it.
pub type LaterFsObject = LaterFilesystem_TO<'static, RArc<()>>;

/// The root module every plugin exports. Frozen: fields are only ever appended, after
/// the `last_prefix_field` of this major.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModule_Ref)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// The ABI major the plugin was built for (also exported as a plain symbol).
    pub abi_major: u32,
    pub describe: extern "C" fn() -> PluginInfo,
    /// Gives the plugin the host's callbacks; called once, right after loading.
    pub attach_host: extern "C" fn(host: HostServices),
    /// Checks options without building anything (`fusehost check`).
    pub validate: extern "C" fn(options_toml: RStr<'_>) -> RResult<(), PluginError>,
    /// Builds one mount's filesystem.
    #[sabi(last_prefix_field)]
    pub new_filesystem: extern "C" fn(init: &MountInit<'_>) -> RResult<FsObject, PluginError>,
    /// Appended in 1.1.0.
    pub metadata: extern "C" fn() -> PluginMetadata,
}

impl RootModule for PluginModule_Ref {
    declare_root_module_statics! {PluginModule_Ref}
    const BASE_NAME: &'static str = "fusehost_plugin";
    const NAME: &'static str = "fusehost plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
