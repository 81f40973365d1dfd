//! ABI 1.0.0's filesystem object and root module, frozen exactly as released.
//!
//! abi_stable lets a library carry *more* trailing vtable entries or root-module
//! fields than the host expects, never fewer: a host whose `RawFilesystem` had grown
//! refused every 1.0.0 plugin (`too many fields, expected 37, found 36`, tried with the
//! released 1.0.0 hello plugin). So a host loads each plugin through the interface of
//! the minor it was built for, and these are 1.0's, kept byte for byte (the layout
//! snapshot test holds them). The host adapts a 1.0 object to the current trait
//! (`fusehost::abi_adapters`); everything 1.1 added answers as a 1.0 plugin would.
//! Only the types that grew are copied (`DirPlusSink` too, which 1.3 grew: 1.0 to 1.2
//! share this copy): every other type is shared with the current ABI, unchanged.
#![allow(missing_docs)]

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::{RMut, VersionStrings},
    std_types::{RBox, ROption, RResult, RSlice, RSliceMut, RStr},
    StableAbi,
};

use crate::{
    Attr, Created, DirSinkRef, Entry, Errno, HostServices, MountInit, Opened, PluginError, PluginInfo, RequestCtx,
    SetAttr, StatFs,
};

/// Where readdirplus puts entries with their attributes (1.0 to 1.2).
#[sabi_trait]
pub trait DirPlusSink {
    /// Adds one entry with its attributes. Returns `true` when the buffer is full: the
    /// entry was *not* added (and not counted) and the plugin must stop.
    #[sabi(last_prefix_field)]
    fn add(&mut self, next_offset: i64, name: RSlice<'_, u8>, entry: &Entry) -> bool;
}

/// The readdirplus sink a host before 1.3 lends for one request.
pub type DirPlusSinkRef<'a, 'b> = DirPlusSink_TO<'a, RMut<'b, ()>>;

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
}

/// A 1.0 filesystem object as a 1.0 plugin hands it to the host.
pub type FsObject = RawFilesystem_TO<'static, RBox<()>>;

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
}

impl RootModule for PluginModule_Ref {
    declare_root_module_statics! {PluginModule_Ref}
    const BASE_NAME: &'static str = "fusehost_plugin";
    const NAME: &'static str = "fusehost plugin";
    /// abi_stable only compares the major of these (every 1.x is accepted).
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
