//! The frozen binary interface between the fusehost host and its plugins.
//!
//! Everything that crosses the boundary between `fusehost` and a plugin `.so` is
//! declared here, and nothing else is. Plugin authors never use this crate directly:
//! they depend on `fusehost-plugin-api`, which re-exports it and wraps it in an
//! idiomatic Rust trait.
//!
//! # Why this is its own crate, and how it grows
//!
//! abi_stable stamps every type layout with the Cargo package name and version of the
//! crate that defines it, and refuses a library whose package major differs. Keeping
//! the ABI types in a crate of their own means the author SDK can evolve freely.
//!
//! The compatibility policy, which is the promise to plugin authors:
//! - **A minor release (`1.N.0`) only appends**: defaulted methods after the last one
//!   of a `#[sabi_trait]`, fields after the last one of a prefix-type module, new
//!   types. A **patch** release changes no layout. A **major** is only for removing or
//!   reordering, and gets a new folder.
//! - A plugin built against any 1.x loads in every host that speaks 1.y. A feature one
//!   side lacks behaves as `ENOSYS` / "not supported", never as a panic or undefined
//!   behaviour.
//! - abi_stable's own version is part of the ABI: this crate pins it exactly
//!   (`=0.11.3`).
//! - The meaning of fields is part of the ABI too: [`SEMANTICS_REVISION`] records it.
//!
//! abi_stable accepts a library with *more* trailing entries than the host expects,
//! never fewer (tried: a host whose filesystem vtable had one appended method refused
//! the released 1.0.0 hello plugin, "too many fields, expected 37, found 36"; the
//! reverse loaded and served). So each minor's grown types are kept frozen in a module
//! of their own ([`v1_0`], [`v1_1`], [`v1_2`]), and the host loads every plugin through the interface of
//! the minor it was built for (read from the library header before loading), adapting
//! older objects to the current trait. A newer plugin in an older host needs nothing:
//! the host calls what it knows, and the plugin's newer methods are never asked.
//!
//! | feature | first ABI version |
//! |---|---|
//! | the whole FUSE request set of 1.0, `Opened::passthrough_fd` | 1.0.0 |
//! | [`capability`] consent and [`Negotiated`] ([`RawFilesystem::capabilities`], [`RawFilesystem::init`]) | 1.1.0 |
//! | kernel notifications and request identity ([`MountHost`]) | 1.1.0 |
//! | negative entries and per-entry TTLs ([`RawFilesystem::lookup_ttl`], [`RawFilesystem::getattr_ttl`]) | 1.1.0 |
//! | `getlk`/`setlk`, `ioctl`, `poll`, `bmap` | 1.1.0 |
//! | [`PluginMetadata`]: read-only plugins, the source option, the semantics revision | 1.1.0 |
//! | answers given later, from any thread ([`RawFilesystem::answers_later`], [`LaterFilesystem`], [`Reply`]) | 1.2.0 |
//! | TTLs on what setattr and create, mknod, mkdir, symlink, link answer, and on readdirplus entries ([`RawFilesystem::setattr_ttl`], [`RawFilesystem::create_ttl`] and the other `*_ttl`; [`Reply::created_ttl`], [`DirPlusSink::add_ttl`], [`Reply::add_dir_plus_entry_ttl`]) | 1.3.0 |
//!
//! # How a plugin is recognised
//!
//! A plugin exports two symbols:
//! - [`ABI_MAJOR_SYMBOL`], a plain `u32` holding the ABI major it was built for. The
//!   loader reads it with `libloading` *before* any abi_stable check, so a foreign or
//!   too-new plugin gets one readable sentence instead of a layout dump;
//! - abi_stable's library header ([`ROOT_MODULE_LOADER_SYMBOL`]), whose root module is a
//!   [`PluginModule_Ref`].
//!
//! # Rules the types follow
//! - No Rust enums cross: file types are `S_IF*` bits, thread models plain integers,
//!   validated on receipt (an unknown discriminant from a newer peer would be UB).
//! - Names, link targets and xattr names and values are bytes, never `str`: Linux
//!   file names are arbitrary bytes without `/` and NUL.
//! - Errors are an errno ([`Errno`]).
//! - Data paths allocate nothing across the boundary: `read` fills a buffer the host
//!   lends, `write` borrows the kernel's payload, directory listings push into a sink.
// FUSE requests carry many arguments; the trait mirrors them one to one.
#![allow(non_local_definitions, non_camel_case_types, clippy::too_many_arguments)]

pub use abi_stable;

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::{RMut, VersionStrings},
    std_types::{RArc, RBox, RDuration, ROption, RResult, RSlice, RSliceMut, RStr, RString},
    StableAbi,
};

pub mod v1_0;
pub mod v1_1;
pub mod v1_2;

/// The ABI major this crate defines, taken from its package version.
pub const ABI_MAJOR: u32 = parse_major(env!("CARGO_PKG_VERSION"));

/// The full package version of this crate (`1.0.z`).
pub const ABI_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Name of the plain `u32` symbol holding the plugin's ABI major (NUL-terminated).
pub const ABI_MAJOR_SYMBOL: &[u8] = b"fusehost_abi_major\0";

/// Name of abi_stable's library-header symbol. `export_plugin!` must emit the header
/// itself (abi_stable's attribute would force every plugin to depend on abi_stable),
/// so the name is spelled out here and checked against abi_stable by a unit test.
pub const ROOT_MODULE_LOADER_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

const fn parse_major(version: &str) -> u32 {
    let bytes = version.as_bytes();
    let mut major = 0u32;
    let mut i = 0;
    while i < bytes.len() && bytes[i] != b'.' {
        major = major * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    major
}

/// An error number (`ENOENT`, `EIO`, ...), positive, as in `errno(3)`.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

macro_rules! errno_consts {
    ($($name:ident),* $(,)?) => {
        impl Errno {
            $(
                #[doc = concat!("`", stringify!($name), "`")]
                pub const $name: Errno = Errno(libc_errno::$name);
            )*
        }
    };
}

/// The errno values of Linux (x86_64 and aarch64 share them).
mod libc_errno {
    pub const EPERM: i32 = 1;
    pub const ENOENT: i32 = 2;
    pub const EINTR: i32 = 4;
    pub const EIO: i32 = 5;
    pub const ENXIO: i32 = 6;
    pub const E2BIG: i32 = 7;
    pub const EBADF: i32 = 9;
    pub const EAGAIN: i32 = 11;
    pub const ENOMEM: i32 = 12;
    pub const EACCES: i32 = 13;
    pub const EBUSY: i32 = 16;
    pub const EEXIST: i32 = 17;
    pub const EXDEV: i32 = 18;
    pub const ENODEV: i32 = 19;
    pub const ENOTDIR: i32 = 20;
    pub const EISDIR: i32 = 21;
    pub const EINVAL: i32 = 22;
    pub const ENFILE: i32 = 23;
    pub const EMFILE: i32 = 24;
    pub const EFBIG: i32 = 27;
    pub const ENOSPC: i32 = 28;
    pub const ESPIPE: i32 = 29;
    pub const EROFS: i32 = 30;
    pub const EMLINK: i32 = 31;
    pub const ERANGE: i32 = 34;
    pub const ENAMETOOLONG: i32 = 36;
    pub const ENOSYS: i32 = 38;
    pub const ENOTEMPTY: i32 = 39;
    pub const ELOOP: i32 = 40;
    pub const ENODATA: i32 = 61;
    pub const EOVERFLOW: i32 = 75;
    pub const EOPNOTSUPP: i32 = 95;
    pub const ETIMEDOUT: i32 = 110;
}

errno_consts!(
    EPERM,
    ENOENT,
    EINTR,
    EIO,
    ENXIO,
    E2BIG,
    EBADF,
    EAGAIN,
    ENOMEM,
    EACCES,
    EBUSY,
    EEXIST,
    EXDEV,
    ENODEV,
    ENOTDIR,
    EISDIR,
    EINVAL,
    ENFILE,
    EMFILE,
    EFBIG,
    ENOSPC,
    ESPIPE,
    EROFS,
    EMLINK,
    ERANGE,
    ENAMETOOLONG,
    ENOSYS,
    ENOTEMPTY,
    ELOOP,
    ENODATA,
    EOVERFLOW,
    EOPNOTSUPP,
    ETIMEDOUT,
);

impl Errno {
    /// The errno of an I/O error, `EIO` when it carries none.
    pub fn from_io(error: &std::io::Error) -> Errno {
        match error.raw_os_error() {
            Some(code) if code > 0 => Errno(code),
            _ => Errno::EIO,
        }
    }
}

impl From<std::io::Error> for Errno {
    fn from(error: std::io::Error) -> Self {
        Errno::from_io(&error)
    }
}

impl std::fmt::Debug for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Errno({}: {})", self.0, std::io::Error::from_raw_os_error(self.0))
    }
}

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", std::io::Error::from_raw_os_error(self.0))
    }
}

/// Who asked: the caller's credentials, and the umask for create/mkdir/mknod (0 elsewhere).
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestCtx {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    pub umask: u32,
}

/// A point in time as seconds and nanoseconds since the Unix epoch.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timespec {
    pub sec: i64,
    pub nsec: u32,
}

/// File attributes, as `stat(2)` reports them. `mode` holds the `S_IF*` type bits and
/// the permission bits together.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub size: u64,
    /// Allocated size in 512-byte blocks.
    pub blocks: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    pub crtime: Timespec,
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub blksize: u32,
    pub flags: u32,
}

/// A directory entry handed to the kernel (lookup, create, mkdir, ...). The host counts
/// every one it hands out; see the lookup-count rules in `fusehost-plugin-api`.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub attr: Attr,
    pub generation: u64,
}

/// `FOPEN_*` bits a plugin may set when it opens a file or directory.
pub mod open_flags {
    /// Bypass the page cache for this open file.
    pub const DIRECT_IO: u32 = 1 << 0;
    /// Keep the cached pages of this file: its data did not change since the last open.
    pub const KEEP_CACHE: u32 = 1 << 1;
    /// The file is not seekable.
    pub const NONSEEKABLE: u32 = 1 << 2;
    /// Allow caching this directory's entries.
    pub const CACHE_DIR: u32 = 1 << 3;
    /// The file is a stream: no file position at all.
    pub const STREAM: u32 = 1 << 4;
    /// Do not send FLUSH on close.
    pub const NOFLUSH: u32 = 1 << 5;
    /// Every bit above, for validating what a plugin returns.
    pub const ALL: u32 = DIRECT_IO | KEEP_CACHE | NONSEEKABLE | CACHE_DIR | STREAM | NOFLUSH;
}

/// The answer to open/opendir: a file handle of the plugin's choosing and `FOPEN_*` bits.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    pub fh: u64,
    /// Bits of [`open_flags`].
    pub flags: u32,
    /// A file descriptor the kernel should read and write directly (FUSE passthrough,
    /// Linux 6.9+), or -1. The host registers it and closes its own registration when
    /// the file is released; the plugin keeps ownership of the descriptor.
    pub passthrough_fd: i32,
}

impl Default for Opened {
    fn default() -> Self {
        Opened { fh: 0, flags: 0, passthrough_fd: -1 }
    }
}

/// The answer to create: the new entry and its open handle.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Created {
    pub entry: Entry,
    pub opened: Opened,
}

/// Which fields of a [`SetAttr`] are set (the kernel's `FATTR_*` bits).
pub mod setattr_valid {
    pub const MODE: u32 = 1 << 0;
    pub const UID: u32 = 1 << 1;
    pub const GID: u32 = 1 << 2;
    pub const SIZE: u32 = 1 << 3;
    pub const ATIME: u32 = 1 << 4;
    pub const MTIME: u32 = 1 << 5;
    pub const FH: u32 = 1 << 6;
    pub const ATIME_NOW: u32 = 1 << 7;
    pub const MTIME_NOW: u32 = 1 << 8;
    pub const CTIME: u32 = 1 << 10;
}

/// A setattr request: only the fields whose bit is in `valid` are meaningful.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    pub valid: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    pub fh: u64,
}

/// Figures for `statfs(2)`.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
    pub frsize: u32,
}

/// Where readdir puts entries; the host writes them straight into the kernel's buffer.
#[sabi_trait]
pub trait DirSink {
    /// Adds one entry. `kind` is its `S_IF*` bits, `next_offset` the offset the kernel
    /// passes back to continue after it. Returns `true` when the buffer is full: the
    /// entry was *not* added and the plugin must stop.
    #[sabi(last_prefix_field)]
    fn add(&mut self, ino: u64, next_offset: i64, kind: u32, name: RSlice<'_, u8>) -> bool;
}

/// Where readdirplus puts entries with their attributes.
#[sabi_trait]
pub trait DirPlusSink {
    /// Adds one entry with its attributes. Returns `true` when the buffer is full: the
    /// entry was *not* added (and not counted) and the plugin must stop.
    #[sabi(last_prefix_field)]
    fn add(&mut self, next_offset: i64, name: RSlice<'_, u8>, entry: &Entry) -> bool;

    // ---- Appended in 1.3.0.

    /// [`DirPlusSink::add`] with the entry's own TTLs (`RNone`: the mount's; the kernel
    /// keeps the shorter for both). On a host before 1.3, whose sinks lack this
    /// method, abi_stable calls this default: the mount's TTLs.
    fn add_ttl(&mut self, next_offset: i64, name: RSlice<'_, u8>, entry: &EntryTtl) -> bool {
        self.add(next_offset, name, &entry.entry)
    }
}

/// The readdir sink the host lends for one request.
pub type DirSinkRef<'a, 'b> = DirSink_TO<'a, RMut<'b, ()>>;
/// The readdirplus sink the host lends for one request.
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

    // ---- Appended in 1.1.0. Each has a default: a 1.0 plugin never answers them,
    // ---- and the host adapts 1.0 objects (see `v1_0`).

    /// The [`capability`] bits this filesystem consents to. Asked once, before the
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
        self.lookup(ctx, parent, name).map(EntryTtl::with_mount_ttls)
    }
    /// `getattr` with a per-answer attribute TTL.
    fn getattr_ttl(&self, ctx: &RequestCtx, ino: u64, fh: ROption<u64>) -> RResult<AttrTtl, Errno> {
        self.getattr(ctx, ino, fh).map(AttrTtl::with_mount_ttl)
    }
    /// POSIX record locks (`fcntl(F_GETLK)`): the conflicting lock, or one of type
    /// `F_UNLCK` when there is none. Only sent when the plugin consents to
    /// [`capability::POSIX_LOCKS`]; otherwise the kernel keeps locks node-local.
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
    /// (1), call [`MountHost::poll_ready`] with `wakeup` once readiness changes.
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
    /// ([`LaterFilesystem`]), if it has one. Asked once, before the mount; a 1.1 host
    /// never asks and calls the synchronous methods only.
    fn answers_later(&self) -> ROption<LaterFsObject> {
        ROption::RNone
    }

    // ---- Appended in 1.3.0: the answers that hand the kernel attributes or a new
    // ---- entry, with their own TTLs (`RNone`: the mount's), as `lookup_ttl` and
    // ---- `getattr_ttl` give them. Each defaults to its 1.0 method; a host before 1.3
    // ---- calls those.

    /// `setattr` with a per-answer attribute TTL.
    fn setattr_ttl(&self, ctx: &RequestCtx, ino: u64, attr: &SetAttr) -> RResult<AttrTtl, Errno> {
        self.setattr(ctx, ino, attr).map(AttrTtl::with_mount_ttl)
    }
    /// `mknod` with the new entry's TTLs.
    fn mknod_ttl(
        &self,
        ctx: &RequestCtx,
        parent: u64,
        name: RSlice<'_, u8>,
        mode: u32,
        rdev: u32,
    ) -> RResult<EntryTtl, Errno> {
        self.mknod(ctx, parent, name, mode, rdev).map(EntryTtl::with_mount_ttls)
    }
    /// `mkdir` with the new entry's TTLs.
    fn mkdir_ttl(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>, mode: u32) -> RResult<EntryTtl, Errno> {
        self.mkdir(ctx, parent, name, mode).map(EntryTtl::with_mount_ttls)
    }
    /// `symlink` with the new entry's TTLs.
    fn symlink_ttl(
        &self,
        ctx: &RequestCtx,
        parent: u64,
        name: RSlice<'_, u8>,
        target: RSlice<'_, u8>,
    ) -> RResult<EntryTtl, Errno> {
        self.symlink(ctx, parent, name, target).map(EntryTtl::with_mount_ttls)
    }
    /// `link` with the new entry's TTLs.
    fn link_ttl(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        new_parent: u64,
        new_name: RSlice<'_, u8>,
    ) -> RResult<EntryTtl, Errno> {
        self.link(ctx, ino, new_parent, new_name).map(EntryTtl::with_mount_ttls)
    }
    /// `create` with the new entry's TTLs.
    fn create_ttl(
        &self,
        ctx: &RequestCtx,
        parent: u64,
        name: RSlice<'_, u8>,
        mode: u32,
        flags: i32,
    ) -> RResult<CreatedTtl, Errno> {
        self.create(ctx, parent, name, mode, flags).map(CreatedTtl::from)
    }
}

/// Requests a filesystem may answer later (bits of [`LaterFilesystem::operations`]).
/// Bits only ever get added; a host ignores bits it does not know, and answers those
/// requests through the synchronous methods.
pub mod operation {
    pub const LOOKUP: u64 = 1 << 0;
    pub const GETATTR: u64 = 1 << 1;
    pub const SETATTR: u64 = 1 << 2;
    pub const READLINK: u64 = 1 << 3;
    pub const MKNOD: u64 = 1 << 4;
    pub const MKDIR: u64 = 1 << 5;
    pub const UNLINK: u64 = 1 << 6;
    pub const RMDIR: u64 = 1 << 7;
    pub const SYMLINK: u64 = 1 << 8;
    pub const RENAME: u64 = 1 << 9;
    pub const LINK: u64 = 1 << 10;
    pub const OPEN: u64 = 1 << 11;
    pub const READ: u64 = 1 << 12;
    pub const WRITE: u64 = 1 << 13;
    pub const FLUSH: u64 = 1 << 14;
    pub const RELEASE: u64 = 1 << 15;
    pub const FSYNC: u64 = 1 << 16;
    pub const OPENDIR: u64 = 1 << 17;
    pub const READDIR: u64 = 1 << 18;
    pub const READDIRPLUS: u64 = 1 << 19;
    pub const RELEASEDIR: u64 = 1 << 20;
    pub const STATFS: u64 = 1 << 21;
    pub const CREATE: u64 = 1 << 22;
    pub const SETXATTR: u64 = 1 << 23;
    pub const GETXATTR: u64 = 1 << 24;
    pub const LISTXATTR: u64 = 1 << 25;
    pub const REMOVEXATTR: u64 = 1 << 26;
    pub const ACCESS: u64 = 1 << 27;
    pub const FSYNCDIR: u64 = 1 << 28;
    pub const FALLOCATE: u64 = 1 << 29;
    pub const LSEEK: u64 = 1 << 30;
    pub const COPY_FILE_RANGE: u64 = 1 << 31;
    pub const GETLK: u64 = 1 << 32;
    pub const SETLK: u64 = 1 << 33;
    pub const IOCTL: u64 = 1 << 34;
    pub const POLL: u64 = 1 << 35;
    pub const BMAP: u64 = 1 << 36;
    /// Every bit of this version: every request that has an answer.
    pub const ALL: u64 = (1 << 37) - 1;
}

/// The answer to one request, given later and from any thread (ABI 1.2).
///
/// Implemented by the host; a plugin receives one in each [`LaterFilesystem`] method and calls
/// exactly one answering method on it: [`Reply::error`], or the success that fits the
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

    // ---- Appended in 1.3.0.

    /// create's answer with the new entry's TTLs. On a host before 1.3, whose replies
    /// lack this method, abi_stable calls this default: the entry goes out with the
    /// mount's TTLs, as through [`Reply::created`].
    fn created_ttl(&mut self, created: &CreatedTtl) {
        self.created(&Created::from(*created))
    }
    /// [`Reply::add_dir_plus_entry`] with the entry's own TTLs; before 1.3, as
    /// [`DirPlusSink::add_ttl`]: the mount's.
    fn add_dir_plus_entry_ttl(&mut self, next_offset: i64, name: RSlice<'_, u8>, entry: &EntryTtl) -> bool {
        self.add_dir_plus_entry(next_offset, name, &entry.entry)
    }
}

/// A reply handle as a plugin holds it: owned, `Send`, answered once.
pub type ReplyObject = Reply_TO<'static, RBox<()>>;

/// The part of a filesystem that answers requests later, from any thread (ABI 1.2).
///
/// Its [`LaterFilesystem::operations`] are the [`operation`] bits the host sends here
/// instead of to the synchronous method of [`RawFilesystem`]; every other request still
/// goes there. Each method gets the request's arguments (borrowed for the call only:
/// copy what you keep) and a [`Reply`] to answer through, now or later. The host never
/// calls a method whose bit is not in `operations()` (answer those `ENOSYS`).
#[sabi_trait]
pub trait LaterFilesystem: Send + Sync {
    /// The [`operation`] bits answered here. Asked once, before the mount.
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
    /// Answers with [`Reply::data`]: at most `size` bytes, fewer only at end of file.
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
    /// Answers with [`Reply::add_dir_entry`] for each entry (until it returns `true`:
    /// full), then [`Reply::empty`].
    fn readdir(&self, ctx: &RequestCtx, ino: u64, fh: u64, offset: i64, reply: ReplyObject);
    /// Answers with [`Reply::add_dir_plus_entry`] for each entry, then [`Reply::empty`].
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
    /// Answers with [`Reply::data`]: the whole value.
    fn getxattr(&self, ctx: &RequestCtx, ino: u64, name: RSlice<'_, u8>, reply: ReplyObject);
    /// Answers with [`Reply::data`]: every name, each followed by a NUL byte.
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
    /// Answers with [`Reply::ioctl`]: at most `output_size` bytes go back.
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

/// The host's services to one mount of a 1.1 plugin, handed over in
/// [`RawFilesystem::init`]. Implemented by the host; appended to like every trait.
///
/// Notifications are queued and sent from a host thread, never while the calling
/// request is still being answered: call them from anywhere, including from inside a
/// request, without deadlocking the kernel. They answer `EAGAIN` when the queue is full
/// and `ENOTCONN` once the mount is gone.
#[sabi_trait]
pub trait MountHost: Clone + Send + Sync {
    /// Drops cached attributes of `ino` and its cached data from `offset` for `len`
    /// bytes (`len` 0: to the end; `offset` negative: attributes only).
    fn invalidate_inode(&self, ino: u64, offset: i64, len: i64) -> RResult<(), Errno>;
    /// Drops the kernel's entry for `name` in `parent` (positive or negative).
    fn invalidate_entry(&self, parent: u64, name: RSlice<'_, u8>) -> RResult<(), Errno>;
    /// Tells the kernel `name` in `parent`, which was `child`, is gone.
    fn notify_delete(&self, parent: u64, child: u64, name: RSlice<'_, u8>) -> RResult<(), Errno>;
    /// Puts `data` into the kernel's page cache of `ino` at `offset`.
    fn store(&self, ino: u64, offset: u64, data: RSlice<'_, u8>) -> RResult<(), Errno>;
    /// Wakes the poller registered under `wakeup` (from [`RawFilesystem::poll`]).
    fn poll_ready(&self, wakeup: u64) -> RResult<(), Errno>;
    /// The kernel's `unique` id of the request the calling thread is serving, 0 when
    /// it serves none.
    #[sabi(last_prefix_field)]
    fn request_id(&self) -> u64;
}

/// The host's per-mount handle as a plugin holds it.
pub type MountHostObject = MountHost_TO<'static, RArc<()>>;

/// Kernel features a plugin consents to (bits of [`RawFilesystem::capabilities`] and of
/// [`Negotiated::capabilities`]). Bits only ever get added.
pub mod capability {
    /// Page-cache writes are gathered by the kernel and written back later
    /// (`writeback_cache = true`). Consent means: reads arrive through write-only
    /// handles, `O_APPEND` writes arrive as positioned writes, and the kernel owns
    /// `mtime` and the size until it flushes.
    pub const WRITEBACK_CACHE: u64 = 1 << 0;
    /// POSIX record locks are served by the plugin (`getlk`/`setlk`), so they hold
    /// across every machine that mounts the same data.
    pub const POSIX_LOCKS: u64 = 1 << 1;
    /// The plugin clears setuid/setgid bits itself on write, truncate and chown
    /// (`FUSE_HANDLE_KILLPRIV_V2`); the kernel then skips its `security.capability`
    /// lookup before every write.
    pub const HANDLE_KILLPRIV_V2: u64 = 1 << 2;
    /// Direct-I/O writes to one file may run in parallel.
    pub const PARALLEL_DIRECT_WRITES: u64 = 1 << 3;
    /// The kernel caches symlink targets.
    pub const CACHE_SYMLINKS: u64 = 1 << 4;
    /// `open` may be skipped: the plugin answers `ENOSYS` to open and serves reads
    /// without a handle.
    pub const NO_OPEN: u64 = 1 << 5;
    /// `opendir` may be skipped likewise.
    pub const NO_OPENDIR: u64 = 1 << 6;
    /// Open files may be handed to the kernel (`Opened::passthrough_fd`).
    pub const PASSTHROUGH: u64 = 1 << 7;
    /// Every bit of this version.
    pub const ALL: u64 = (1 << 8) - 1;
}

/// What the host and the kernel agreed on for one mount, before its first request.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Negotiated {
    /// The [`capability`] bits in effect.
    pub capabilities: u64,
    /// The largest write the kernel sends.
    pub max_write: u32,
    /// The kernel's FUSE protocol version.
    pub proto_major: u32,
    pub proto_minor: u32,
    /// The kernel checks permissions from the mode bits.
    pub default_permissions: bool,
    pub read_only: bool,
}

/// A lookup answer with its own TTLs (`RNone`: the mount's). `entry.attr.ino == 0`
/// makes it a negative entry.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryTtl {
    pub entry: Entry,
    pub entry_ttl: ROption<RDuration>,
    pub attr_ttl: ROption<RDuration>,
}

impl EntryTtl {
    /// An entry with the mount's TTLs (both `RNone`).
    pub fn with_mount_ttls(entry: Entry) -> EntryTtl {
        EntryTtl { entry, entry_ttl: ROption::RNone, attr_ttl: ROption::RNone }
    }
}

/// A create answer whose entry has its own TTLs (ABI 1.3; [`Created`] has none).
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreatedTtl {
    pub entry: EntryTtl,
    pub opened: Opened,
}

impl From<Created> for CreatedTtl {
    /// A 1.0 create answer: the mount's TTLs.
    fn from(created: Created) -> CreatedTtl {
        CreatedTtl { entry: EntryTtl::with_mount_ttls(created.entry), opened: created.opened }
    }
}

impl From<CreatedTtl> for Created {
    /// The answer as a host before 1.3 takes it: without the TTLs.
    fn from(created: CreatedTtl) -> Created {
        Created { entry: created.entry.entry, opened: created.opened }
    }
}

/// A getattr answer with its own attribute TTL (`RNone`: the mount's).
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttrTtl {
    pub attr: Attr,
    pub attr_ttl: ROption<RDuration>,
}

impl AttrTtl {
    /// Attributes with the mount's TTL (`RNone`).
    pub fn with_mount_ttl(attr: Attr) -> AttrTtl {
        AttrTtl { attr, attr_ttl: ROption::RNone }
    }
}

/// A POSIX record lock: bytes `start..=end` (`end` `u64::MAX`: to the end of file),
/// `typ` one of `F_RDLCK`, `F_WRLCK`, `F_UNLCK`, held by process `pid`.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileLock {
    pub start: u64,
    pub end: u64,
    pub typ: i32,
    pub pid: u32,
}

/// An ioctl's answer: its return value and how many bytes of `output` it filled.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoctlOut {
    pub result: i32,
    pub output_len: u32,
}

/// The revision of the documented meaning of every field and method, next to the
/// layout's version: a host can tell which promises a plugin was built against.
/// 1: as of `fusehost-abi` 1.0.0 to 1.3.0.
pub const SEMANTICS_REVISION: u32 = 1;

/// What a 1.1 plugin says about itself beyond [`PluginInfo`].
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct PluginMetadata {
    /// The [`SEMANTICS_REVISION`] the plugin was built with.
    pub semantics: u32,
    /// The plugin never changes anything: mounts are read-only in the mount table.
    pub read_only: bool,
    /// The option that names what is mounted (an archive, a folder), so that
    /// `fusehost mount PLUGIN SOURCE MNT` and fstab's first field mean something.
    /// Empty: none.
    pub source_option: RStr<'static>,
}

/// A filesystem object as a plugin hands it to the host.
pub type FsObject = RawFilesystem_TO<'static, RBox<()>>;

/// How the host may call a plugin's filesystem object.
pub mod thread_model {
    /// One call at a time: the host holds a lock around every call.
    pub const SERIALIZED: u32 = 0;
    /// Any number of calls at once, from every session thread.
    pub const PARALLEL: u32 = 1;
}

/// One option a plugin accepts, for `fusehost plugins` and for checking keys.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct OptionDoc {
    pub key: RStr<'static>,
    /// `string`, `bool`, `integer`, `size` (bytes, `512MiB`) or `path`.
    pub kind: RStr<'static>,
    /// The default, as the user would write it. Empty means required, except for a
    /// `string` option, where it is the empty string.
    pub default: RStr<'static>,
    pub help: RStr<'static>,
}

/// What a plugin says about itself.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct PluginInfo {
    pub name: RStr<'static>,
    pub version: RStr<'static>,
    pub description: RStr<'static>,
    pub options: RSlice<'static, OptionDoc>,
    /// A value of [`thread_model`].
    pub thread_model: u32,
    /// Whether the plugin was built with `panic = "unwind"` (otherwise a panic aborts
    /// the whole host).
    pub panic_unwind: bool,
    /// The version of `fusehost-plugin-api` the plugin was built with.
    pub sdk_version: RStr<'static>,
}

/// A plugin's refusal: an errno and a sentence for the operator.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct PluginError {
    pub errno: Errno,
    pub message: RString,
}

/// Log levels across the boundary (0 means off).
pub mod log_level {
    pub const OFF: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const WARN: u8 = 2;
    pub const INFO: u8 = 3;
    pub const DEBUG: u8 = 4;
    pub const TRACE: u8 = 5;
}

/// One log event from a plugin.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct LogRecord<'a> {
    /// A value of [`log_level`].
    pub level: u8,
    /// The event's target inside the plugin (usually its module path).
    pub target: RStr<'a>,
    pub message: RStr<'a>,
    /// The event's other fields, formatted `key=value key=value`.
    pub fields: RStr<'a>,
    pub file: RStr<'a>,
    pub line: u32,
}

/// The host's services to a plugin: a frozen table of callbacks.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct HostServices {
    /// Emits a plugin's log event inside the current request's span.
    pub log: extern "C" fn(record: &LogRecord<'_>),
    /// The most verbose level the host currently shows (a value of [`log_level`]).
    pub max_level: extern "C" fn() -> u8,
}

/// What the host tells a plugin when it builds one mount's filesystem.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct MountInit<'a> {
    pub mount_name: RStr<'a>,
    pub mountpoint: RStr<'a>,
    /// The plugin's options as a TOML document (a table of key = value).
    pub options_toml: RStr<'a>,
    pub read_only: bool,
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_symbol_matches_abi_stable() {
        assert_eq!(ROOT_MODULE_LOADER_SYMBOL, abi_stable::library::ROOT_MODULE_LOADER_NAME);
    }

    #[test]
    fn major_comes_from_the_package_version() {
        assert_eq!(parse_major("1.0.3"), 1);
        assert_eq!(parse_major("12.4.0"), 12);
        assert_eq!(ABI_MAJOR.to_string(), env!("CARGO_PKG_VERSION_MAJOR"));
    }
}
