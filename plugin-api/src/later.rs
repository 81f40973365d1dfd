//! Answering requests later, from any thread (ABI 1.2).
//!
//! A filesystem that waits on something slow (a network store, a remote server)
//! should not hold one of the host's few FUSE worker threads while it waits. It lists
//! those requests in [`Filesystem::answers_later`] and overrides their `*_later`
//! methods, which get the request and a typed [`Reply`] instead of returning the
//! answer. The method may answer at once, or move the reply to a task, a thread pool
//! or a callback and answer from there; the worker thread goes on to the next
//! request as soon as the method returns.
//!
//! ```
//! # use std::sync::Arc;
//! # use fusehost_plugin_api::{Errno, Filesystem, Operations, Reply, Request};
//! # struct Store;
//! # impl Store {
//! #     fn read(&self, _ino: u64, _offset: u64, _size: u32) -> Result<Vec<u8>, Errno> {
//! #         Ok(Vec::new())
//! #     }
//! # }
//! struct Remote {
//!     store: Arc<Store>,
//! }
//!
//! impl Filesystem for Remote {
//!     fn answers_later(&self) -> Operations {
//!         Operations::READ
//!     }
//!
//!     fn read_later(&self, _req: &Request, ino: u64, _fh: u64, offset: u64, size: u32, reply: Reply<Vec<u8>>) {
//!         let store = self.store.clone();
//!         // A task on an async runtime, a thread pool or a callback would do as well.
//!         std::thread::spawn(move || reply.send(store.read(ino, offset, size)));
//!     }
//! }
//! ```
//!
//! Rules the host enforces: each reply answers once; a reply dropped without an
//! answer (a task cancelled, a panic) is answered `EIO` for you and counted in
//! `fusehost status`, so a caller never hangs. Lookup counts move to the moment an
//! entry is actually sent. The host caps the requests a mount has waiting in the
//! plugin (`max_in_flight`); at the cap, new requests wait for a free slot.
//!
//! When to use it: for requests that wait on I/O you do not control. A filesystem
//! answering from memory or a local disk is faster answering directly: the default
//! (nothing listed) costs nothing. One exception: a filesystem that holds a read's
//! bytes in memory in one piece may answer READ later, at once, with
//! [`Reply::data`]: the kernel copies them straight from its memory, where `read`
//! copies them into the host's buffer first (memfs does this; its 1 MiB O_DIRECT reads
//! spent 43 % of their CPU on that copy, and its 4 KiB reads execute fewer
//! instructions either way). In a host that speaks only ABI 1.0 or 1.1 the
//! `*_later` methods are never called, so keep the synchronous methods working too
//! (blocking on the same code is fine there).
//!
//! [`Filesystem::answers_later`]: crate::Filesystem::answers_later

use std::ffi::OsStr;
use std::marker::PhantomData;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::Duration;

use fusehost_abi::abi_stable::std_types::{ROption, RSlice};
use fusehost_abi::{operation, CreatedTtl, LaterFilesystem, ReplyObject, RequestCtx, SetAttr as AbiSetAttr};

use crate::adapter::schedules_notify;
use crate::filesystem::{DirPlusSink, DirSink, Filesystem};
use crate::panic_guard::guarded_unit;
use crate::types::{Entry, FileAttr, FileKind, FileLock, Opened, Result, SetAttr, StatFs};

/// The requests a filesystem answers later (see [`Filesystem::answers_later`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Operations(u64);

impl Operations {
    pub const NONE: Operations = Operations(0);
    pub const LOOKUP: Operations = Operations(operation::LOOKUP);
    pub const GETATTR: Operations = Operations(operation::GETATTR);
    pub const SETATTR: Operations = Operations(operation::SETATTR);
    pub const READLINK: Operations = Operations(operation::READLINK);
    pub const MKNOD: Operations = Operations(operation::MKNOD);
    pub const MKDIR: Operations = Operations(operation::MKDIR);
    pub const UNLINK: Operations = Operations(operation::UNLINK);
    pub const RMDIR: Operations = Operations(operation::RMDIR);
    pub const SYMLINK: Operations = Operations(operation::SYMLINK);
    pub const RENAME: Operations = Operations(operation::RENAME);
    pub const LINK: Operations = Operations(operation::LINK);
    pub const OPEN: Operations = Operations(operation::OPEN);
    pub const READ: Operations = Operations(operation::READ);
    pub const WRITE: Operations = Operations(operation::WRITE);
    pub const FLUSH: Operations = Operations(operation::FLUSH);
    pub const RELEASE: Operations = Operations(operation::RELEASE);
    pub const FSYNC: Operations = Operations(operation::FSYNC);
    pub const OPENDIR: Operations = Operations(operation::OPENDIR);
    pub const READDIR: Operations = Operations(operation::READDIR);
    pub const READDIRPLUS: Operations = Operations(operation::READDIRPLUS);
    pub const RELEASEDIR: Operations = Operations(operation::RELEASEDIR);
    pub const STATFS: Operations = Operations(operation::STATFS);
    pub const CREATE: Operations = Operations(operation::CREATE);
    pub const SETXATTR: Operations = Operations(operation::SETXATTR);
    pub const GETXATTR: Operations = Operations(operation::GETXATTR);
    pub const LISTXATTR: Operations = Operations(operation::LISTXATTR);
    pub const REMOVEXATTR: Operations = Operations(operation::REMOVEXATTR);
    pub const ACCESS: Operations = Operations(operation::ACCESS);
    pub const FSYNCDIR: Operations = Operations(operation::FSYNCDIR);
    pub const FALLOCATE: Operations = Operations(operation::FALLOCATE);
    pub const LSEEK: Operations = Operations(operation::LSEEK);
    pub const COPY_FILE_RANGE: Operations = Operations(operation::COPY_FILE_RANGE);
    pub const GETLK: Operations = Operations(operation::GETLK);
    pub const SETLK: Operations = Operations(operation::SETLK);
    pub const IOCTL: Operations = Operations(operation::IOCTL);
    pub const POLL: Operations = Operations(operation::POLL);
    pub const BMAP: Operations = Operations(operation::BMAP);
    /// Every request that can be answered later.
    pub const ALL: Operations = Operations(operation::ALL);

    /// The ABI's bits.
    pub const fn bits(self) -> u64 {
        self.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn contains(self, other: Operations) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets (`|` in a `const`).
    pub const fn union(self, other: Operations) -> Operations {
        Operations(self.0 | other.0)
    }
}

impl std::ops::BitOr for Operations {
    type Output = Operations;
    fn bitor(self, other: Operations) -> Operations {
        self.union(other)
    }
}

/// The answer to one request, given now or later from any thread: call
/// [`Reply::send`] once. Dropped unanswered, it answers `EIO` (and the host logs it).
#[must_use = "a reply dropped without an answer answers EIO"]
pub struct Reply<T> {
    raw: ReplyObject,
    answer: PhantomData<fn(T)>,
}

/// What a [`Reply`] carries: an entry, attributes, bytes, a count, a handle, ...
pub trait Answer: sealed::Sealed {
    #[doc(hidden)]
    fn send_to(self, raw: &mut ReplyObject);
}

mod sealed {
    pub trait Sealed {}
}

impl<T: Answer> Reply<T> {
    fn new(raw: ReplyObject) -> Self {
        Reply { raw, answer: PhantomData }
    }

    /// Answers the request.
    pub fn send(mut self, answer: Result<T>) {
        match answer {
            Ok(value) => value.send_to(&mut self.raw),
            Err(errno) => self.raw.error(errno),
        }
    }
}

impl Reply<FileAttr> {
    /// This setattr reply as one that also carries the attributes' own TTL (`None`:
    /// the mount's), as getattr's does and as
    /// [`Filesystem::setattr_with_ttl`] gives it
    /// directly.
    pub fn with_ttl(self) -> Reply<(FileAttr, Option<Duration>)> {
        Reply::new(self.raw)
    }
}

impl Reply<Vec<u8>> {
    /// Answers a read or readlink with borrowed bytes.
    pub fn data(mut self, data: &[u8]) {
        self.raw.data(RSlice::from_slice(data));
    }
}

macro_rules! answers {
    ($($ty:ty => |$value:ident, $raw:ident| $send:expr;)*) => {
        $(
            impl sealed::Sealed for $ty {}
            impl Answer for $ty {
                fn send_to(self, $raw: &mut ReplyObject) {
                    let $value = self;
                    $send
                }
            }
        )*
    };
}

answers! {
    () => |_unit, raw| raw.empty();
    Entry => |entry, raw| raw.entry(&entry.to_abi_ttl());
    FileAttr => |attr, raw| raw.attr(&attr.to_abi_ttl(None));
    (FileAttr, Option<Duration>) => |answer, raw| {
        raw.attr(&answer.0.to_abi_ttl(answer.1))
    };
    Vec<u8> => |bytes, raw| raw.data(RSlice::from_slice(&bytes));
    u32 => |count, raw| raw.written(count);
    Opened => |opened, raw| raw.opened(&opened.to_abi());
    (Entry, Opened) => |created, raw| {
        raw.created_ttl(&CreatedTtl { entry: created.0.to_abi_ttl(), opened: created.1.to_abi() })
    };
    StatFs => |statfs, raw| raw.statfs(&statfs);
    i64 => |offset, raw| raw.offset(offset);
    FileLock => |lock, raw| raw.lock(&lock);
    u64 => |block, raw| raw.block(block);
    (i32, Vec<u8>) => |answer, raw| raw.ioctl(answer.0, RSlice::from_slice(&answer.1));
    Ready => |ready, raw| raw.poll(ready.0);
}

/// poll's answer: the `POLL*` events ready now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready(pub u32);

/// A readdir answer: [`ReplyDir::add`] entries until it says full, then
/// [`ReplyDir::send`].
#[must_use = "a reply dropped without an answer answers EIO"]
pub struct ReplyDir {
    raw: ReplyObject,
}

impl ReplyDir {
    /// Adds one entry; returns `true` when the listing is full (entry not added).
    pub fn add(&mut self, ino: u64, next_offset: i64, kind: FileKind, name: &OsStr) -> bool {
        self.raw.add_dir_entry(ino, next_offset, kind.mode_bits(), RSlice::from_slice(name.as_bytes()))
    }

    /// Ends the listing (the entries added are sent), or answers an error when none was.
    pub fn send(mut self, answer: Result<()>) {
        match answer {
            Ok(()) => self.raw.empty(),
            Err(errno) => self.raw.error(errno),
        }
    }
}

impl DirSink for ReplyDir {
    fn add(&mut self, ino: u64, next_offset: i64, kind: FileKind, name: &OsStr) -> bool {
        ReplyDir::add(self, ino, next_offset, kind, name)
    }
}

/// A readdirplus answer: entries with attributes (each counted as a lookup once sent).
#[must_use = "a reply dropped without an answer answers EIO"]
pub struct ReplyDirPlus {
    raw: ReplyObject,
}

impl ReplyDirPlus {
    /// Adds one entry; returns `true` when the listing is full (entry not added).
    pub fn add(&mut self, next_offset: i64, name: &OsStr, entry: &Entry) -> bool {
        self.raw.add_dir_plus_entry_ttl(next_offset, RSlice::from_slice(name.as_bytes()), &entry.to_abi_ttl())
    }

    /// Ends the listing, or answers an error when no entry was added.
    pub fn send(mut self, answer: Result<()>) {
        match answer {
            Ok(()) => self.raw.empty(),
            Err(errno) => self.raw.error(errno),
        }
    }
}

impl DirPlusSink for ReplyDirPlus {
    fn add(&mut self, next_offset: i64, name: &OsStr, entry: &Entry) -> bool {
        ReplyDirPlus::add(self, next_offset, name, entry)
    }
}

/// An author's filesystem's later-answering part, seen through the ABI. Shares the
/// filesystem with its [`FfiFilesystem`](crate::FfiFilesystem).
pub(crate) struct LaterFfi<F> {
    pub(crate) fs: Arc<F>,
    pub(crate) operations: Operations,
}

fn name(bytes: RSlice<'_, u8>) -> &OsStr {
    OsStr::from_bytes(bytes.as_slice())
}

impl<F: Filesystem> LaterFilesystem for LaterFfi<F> {
    fn operations(&self) -> u64 {
        self.operations.bits()
    }

    fn lookup(&self, ctx: &RequestCtx, parent: u64, n: RSlice<'_, u8>, reply: ReplyObject) {
        guarded_unit("lookup", || self.fs.lookup_later(ctx, parent, name(n), Reply::new(reply)))
    }

    fn getattr(&self, ctx: &RequestCtx, ino: u64, fh: ROption<u64>, reply: ReplyObject) {
        guarded_unit("getattr", || self.fs.getattr_later(ctx, ino, fh.into_option(), Reply::new(reply)))
    }

    fn setattr(&self, ctx: &RequestCtx, ino: u64, attr: &AbiSetAttr, reply: ReplyObject) {
        guarded_unit("setattr", || self.fs.setattr_later(ctx, ino, &SetAttr::from_abi(attr), Reply::new(reply)))
    }

    fn readlink(&self, ctx: &RequestCtx, ino: u64, reply: ReplyObject) {
        guarded_unit("readlink", || self.fs.readlink_later(ctx, ino, Reply::new(reply)))
    }

    fn mknod(&self, ctx: &RequestCtx, parent: u64, n: RSlice<'_, u8>, mode: u32, rdev: u32, reply: ReplyObject) {
        guarded_unit("mknod", || self.fs.mknod_later(ctx, parent, name(n), mode, rdev, Reply::new(reply)))
    }

    fn mkdir(&self, ctx: &RequestCtx, parent: u64, n: RSlice<'_, u8>, mode: u32, reply: ReplyObject) {
        guarded_unit("mkdir", || self.fs.mkdir_later(ctx, parent, name(n), mode, Reply::new(reply)))
    }

    fn unlink(&self, ctx: &RequestCtx, parent: u64, n: RSlice<'_, u8>, reply: ReplyObject) {
        guarded_unit("unlink", || self.fs.unlink_later(ctx, parent, name(n), Reply::new(reply)))
    }

    fn rmdir(&self, ctx: &RequestCtx, parent: u64, n: RSlice<'_, u8>, reply: ReplyObject) {
        guarded_unit("rmdir", || self.fs.rmdir_later(ctx, parent, name(n), Reply::new(reply)))
    }

    fn symlink(&self, ctx: &RequestCtx, parent: u64, n: RSlice<'_, u8>, target: RSlice<'_, u8>, reply: ReplyObject) {
        guarded_unit("symlink", || self.fs.symlink_later(ctx, parent, name(n), name(target), Reply::new(reply)))
    }

    fn rename(
        &self,
        ctx: &RequestCtx,
        parent: u64,
        n: RSlice<'_, u8>,
        new_parent: u64,
        new_name: RSlice<'_, u8>,
        flags: u32,
        reply: ReplyObject,
    ) {
        guarded_unit("rename", || {
            self.fs.rename_later(ctx, parent, name(n), new_parent, name(new_name), flags, Reply::new(reply))
        })
    }

    fn link(&self, ctx: &RequestCtx, ino: u64, new_parent: u64, new_name: RSlice<'_, u8>, reply: ReplyObject) {
        guarded_unit("link", || self.fs.link_later(ctx, ino, new_parent, name(new_name), Reply::new(reply)))
    }

    fn open(&self, ctx: &RequestCtx, ino: u64, flags: i32, reply: ReplyObject) {
        guarded_unit("open", || self.fs.open_later(ctx, ino, flags, Reply::new(reply)))
    }

    fn read(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        offset: u64,
        size: u32,
        _flags: i32,
        _lock_owner: ROption<u64>,
        reply: ReplyObject,
    ) {
        guarded_unit("read", || self.fs.read_later(ctx, ino, fh, offset, size, Reply::new(reply)))
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
        reply: ReplyObject,
    ) {
        guarded_unit("write", || {
            self.fs.write_later(ctx, ino, fh, offset, data.as_slice(), write_flags, flags, Reply::new(reply))
        })
    }

    fn flush(&self, ctx: &RequestCtx, ino: u64, fh: u64, lock_owner: u64, reply: ReplyObject) {
        guarded_unit("flush", || self.fs.flush_later(ctx, ino, fh, lock_owner, Reply::new(reply)))
    }

    fn release(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        flags: i32,
        _lock_owner: ROption<u64>,
        flush: bool,
        reply: ReplyObject,
    ) {
        guarded_unit("release", || self.fs.release_later(ctx, ino, fh, flags, flush, Reply::new(reply)))
    }

    fn fsync(&self, ctx: &RequestCtx, ino: u64, fh: u64, datasync: bool, reply: ReplyObject) {
        guarded_unit("fsync", || self.fs.fsync_later(ctx, ino, fh, datasync, Reply::new(reply)))
    }

    fn opendir(&self, ctx: &RequestCtx, ino: u64, flags: i32, reply: ReplyObject) {
        guarded_unit("opendir", || self.fs.opendir_later(ctx, ino, flags, Reply::new(reply)))
    }

    fn readdir(&self, ctx: &RequestCtx, ino: u64, fh: u64, offset: i64, reply: ReplyObject) {
        guarded_unit("readdir", || self.fs.readdir_later(ctx, ino, fh, offset, ReplyDir { raw: reply }))
    }

    fn readdirplus(&self, ctx: &RequestCtx, ino: u64, fh: u64, offset: i64, reply: ReplyObject) {
        guarded_unit("readdirplus", || self.fs.readdirplus_later(ctx, ino, fh, offset, ReplyDirPlus { raw: reply }))
    }

    fn releasedir(&self, ctx: &RequestCtx, ino: u64, fh: u64, flags: i32, reply: ReplyObject) {
        guarded_unit("releasedir", || self.fs.releasedir_later(ctx, ino, fh, flags, Reply::new(reply)))
    }

    fn statfs(&self, ctx: &RequestCtx, ino: u64, reply: ReplyObject) {
        guarded_unit("statfs", || self.fs.statfs_later(ctx, ino, Reply::new(reply)))
    }

    fn create(&self, ctx: &RequestCtx, parent: u64, n: RSlice<'_, u8>, mode: u32, flags: i32, reply: ReplyObject) {
        guarded_unit("create", || self.fs.create_later(ctx, parent, name(n), mode, flags, Reply::new(reply)))
    }

    fn setxattr(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        n: RSlice<'_, u8>,
        value: RSlice<'_, u8>,
        flags: i32,
        position: u32,
        reply: ReplyObject,
    ) {
        guarded_unit("setxattr", || {
            self.fs.setxattr_later(ctx, ino, name(n), value.as_slice(), flags, position, Reply::new(reply))
        })
    }

    fn getxattr(&self, ctx: &RequestCtx, ino: u64, n: RSlice<'_, u8>, reply: ReplyObject) {
        guarded_unit("getxattr", || self.fs.getxattr_later(ctx, ino, name(n), Reply::new(reply)))
    }

    fn listxattr(&self, ctx: &RequestCtx, ino: u64, reply: ReplyObject) {
        guarded_unit("listxattr", || self.fs.listxattr_later(ctx, ino, Reply::new(reply)))
    }

    fn removexattr(&self, ctx: &RequestCtx, ino: u64, n: RSlice<'_, u8>, reply: ReplyObject) {
        guarded_unit("removexattr", || self.fs.removexattr_later(ctx, ino, name(n), Reply::new(reply)))
    }

    fn access(&self, ctx: &RequestCtx, ino: u64, mask: i32, reply: ReplyObject) {
        guarded_unit("access", || self.fs.access_later(ctx, ino, mask, Reply::new(reply)))
    }

    fn fsyncdir(&self, ctx: &RequestCtx, ino: u64, fh: u64, datasync: bool, reply: ReplyObject) {
        guarded_unit("fsyncdir", || self.fs.fsyncdir_later(ctx, ino, fh, datasync, Reply::new(reply)))
    }

    fn fallocate(&self, ctx: &RequestCtx, ino: u64, fh: u64, offset: u64, length: u64, mode: i32, reply: ReplyObject) {
        guarded_unit("fallocate", || self.fs.fallocate_later(ctx, ino, fh, offset, length, mode, Reply::new(reply)))
    }

    fn lseek(&self, ctx: &RequestCtx, ino: u64, fh: u64, offset: i64, whence: i32, reply: ReplyObject) {
        guarded_unit("lseek", || self.fs.lseek_later(ctx, ino, fh, offset, whence, Reply::new(reply)))
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
        reply: ReplyObject,
    ) {
        guarded_unit("copy_file_range", || {
            let reply = Reply::new(reply);
            self.fs.copy_file_range_later(ctx, ino_in, fh_in, offset_in, ino_out, fh_out, offset_out, len, flags, reply)
        })
    }

    fn getlk(&self, ctx: &RequestCtx, ino: u64, fh: u64, lock_owner: u64, lock: &FileLock, reply: ReplyObject) {
        guarded_unit("getlk", || self.fs.getlk_later(ctx, ino, fh, lock_owner, lock, Reply::new(reply)))
    }

    fn setlk(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        lock_owner: u64,
        lock: &FileLock,
        sleep: bool,
        reply: ReplyObject,
    ) {
        guarded_unit("setlk", || self.fs.setlk_later(ctx, ino, fh, lock_owner, lock, sleep, Reply::new(reply)))
    }

    fn ioctl(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        _flags: u32,
        cmd: u32,
        input: RSlice<'_, u8>,
        output_size: u32,
        reply: ReplyObject,
    ) {
        guarded_unit("ioctl", || {
            self.fs.ioctl_later(ctx, ino, fh, cmd, input.as_slice(), output_size, Reply::new(reply))
        })
    }

    fn poll(&self, ctx: &RequestCtx, ino: u64, fh: u64, wakeup: u64, events: u32, flags: u32, reply: ReplyObject) {
        guarded_unit("poll", || {
            self.fs.poll_later(ctx, ino, fh, wakeup, events, schedules_notify(flags), Reply::new(reply))
        })
    }

    fn bmap(&self, ctx: &RequestCtx, ino: u64, block_size: u32, block: u64, reply: ReplyObject) {
        guarded_unit("bmap", || self.fs.bmap_later(ctx, ino, block_size, block, Reply::new(reply)))
    }
}
