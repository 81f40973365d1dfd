//! The one place that knows both sides: fuser's requests in, plugin calls out.
//!
//! [`Dispatch`] implements `fuser::Filesystem` for one mount over any
//! [`RawFilesystem`]: a plugin's FFI object (`FsObject`, a vtable call) or an author's
//! filesystem linked into the binary (`FfiFilesystem<F>`, a direct call). Every FUSE
//! request passes through here, so the success path allocates nothing, takes no global
//! lock and formats no strings: reads go into a per-thread buffer lent to the plugin,
//! writes borrow the kernel's payload, directory entries go straight from the plugin
//! into fuser's reply buffer.
//!
//! Dispatch also owns the lookup counts (see [`crate::lookup_table`]): each entry
//! handed to the kernel is counted *before* the reply is sent, and the plugin's
//! `forget` is called only when a count reaches zero, plus once for every inode still
//! counted when the session ends, before `destroy`.
//!
//! A count can reach zero while a lookup that will return the same inode is still in
//! the plugin (the kernel evicted its old inode while resolving the name again). Told
//! to forget then, a plugin that reuses inode numbers (passthrough) would drop an inode
//! the kernel is about to hold. So requests that hand out entries hold the mount's
//! forget barrier for reading across the plugin call and the count, and a count that
//! reached zero is confirmed under the barrier held for writing before the plugin
//! hears of it: the plugin's `forget(ino)` never overlaps a request that returns `ino`.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RSlice, RSliceMut};
use fusehost_abi::{
    open_flags, setattr_valid, Attr, DirPlusSink, DirPlusSink_TO, DirSink, DirSink_TO, Entry, Errno, RawFilesystem,
    RequestCtx, SetAttr, Timespec,
};
use fuser::{
    AccessFlags, CopyFileRangeFlags, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request,
    TimeOrNow, WriteFlags,
};
use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard};
use tracing::span::Entered;
use tracing::Span;

use crate::backing::Backing;
use crate::lookup_table::LookupTable;
use crate::stats::{MountStats, Op};

/// What a running mount shares with the rest of the host (status, tests).
#[derive(Debug, Default)]
pub struct MountShared {
    pub lookups: LookupTable,
    pub stats: MountStats,
}

/// How dispatch treats one mount.
#[derive(Clone, Debug)]
pub struct DispatchConfig {
    pub serialized: bool,
    pub attr_ttl: Duration,
    pub entry_ttl: Duration,
    pub writeback_cache: bool,
}

/// One mount's `fuser::Filesystem`.
pub struct Dispatch<O> {
    fs: O,
    shared: Arc<MountShared>,
    serial: Option<Mutex<()>>,
    /// Read-held by requests that hand out entries, write-held to confirm a forget.
    forget_barrier: RwLock<()>,
    backing: Backing,
    config: DispatchConfig,
    span: Span,
}

/// What every request holds while it runs: the mount's span, for serialized plugins
/// the mount's call lock, and for requests that hand out entries the forget barrier.
struct InCall<'a> {
    _entries: Option<RwLockReadGuard<'a, ()>>,
    _serial: Option<MutexGuard<'a, ()>>,
    _span: Entered<'a>,
}

/// The longest symlink target the kernel accepts (`PATH_MAX`).
const LINK_MAX: usize = 4096;

thread_local! {
    /// Each session thread's buffer for read, readlink and getxattr answers, grown to
    /// the largest request seen and then reused.
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn with_buffer<R>(size: usize, use_buffer: impl FnOnce(&mut [u8]) -> R) -> R {
    BUFFER.with_borrow_mut(|buffer| {
        if buffer.len() < size {
            buffer.resize(size, 0);
        }
        use_buffer(&mut buffer[..size])
    })
}

fn bytes(name: &OsStr) -> RSlice<'_, u8> {
    RSlice::from_slice(name.as_bytes())
}

fn ctx(req: &Request, umask: u32) -> RequestCtx {
    RequestCtx { uid: req.uid(), gid: req.gid(), pid: req.pid(), umask }
}

fn lock_owner(owner: Option<LockOwner>) -> ROption<u64> {
    owner.map(|owner| owner.0).into()
}

fn to_system_time(time: Timespec) -> SystemTime {
    fusehost_plugin_api::from_timespec(time)
}

fn file_type(mode: u32) -> Option<FileType> {
    use fusehost_plugin_api::FileKind;
    Some(match FileKind::from_mode(mode)? {
        FileKind::RegularFile => FileType::RegularFile,
        FileKind::Directory => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::NamedPipe => FileType::NamedPipe,
        FileKind::CharDevice => FileType::CharDevice,
        FileKind::BlockDevice => FileType::BlockDevice,
        FileKind::Socket => FileType::Socket,
    })
}

/// fuser's attributes from the plugin's, or `None` when the mode names no file type.
fn to_fuser_attr(attr: &Attr) -> Option<FileAttr> {
    Some(FileAttr {
        ino: INodeNo(attr.ino),
        size: attr.size,
        blocks: attr.blocks,
        atime: to_system_time(attr.atime),
        mtime: to_system_time(attr.mtime),
        ctime: to_system_time(attr.ctime),
        crtime: to_system_time(attr.crtime),
        kind: file_type(attr.mode)?,
        perm: (attr.mode & 0o7777) as u16,
        nlink: attr.nlink,
        uid: attr.uid,
        gid: attr.gid,
        rdev: attr.rdev,
        blksize: attr.blksize,
        flags: attr.flags,
    })
}

fn to_timespec(time: SystemTime) -> Timespec {
    fusehost_plugin_api::to_timespec(time)
}

fn fopen_flags(flags: u32) -> FopenFlags {
    FopenFlags::from_bits_truncate(flags & open_flags::ALL)
}

/// The kernel's errno for a plugin's answer; a non-positive value is a plugin bug.
fn to_fuser_errno(errno: Errno) -> fuser::Errno {
    fuser::Errno::from_i32(errno.0)
}

impl<O: RawFilesystem> Dispatch<O> {
    pub fn new(fs: O, shared: Arc<MountShared>, config: DispatchConfig, span: Span) -> Self {
        let serial = config.serialized.then(|| Mutex::new(()));
        Dispatch { fs, shared, serial, forget_barrier: RwLock::new(()), backing: Backing::default(), config, span }
    }

    #[inline]
    fn begin(&self, op: Op) -> InCall<'_> {
        self.shared.stats.request(op);
        let span = self.span.enter();
        InCall { _entries: None, _serial: self.serial.as_ref().map(Mutex::lock), _span: span }
    }

    /// [`Dispatch::begin`] for a request that may hand out entries.
    #[inline]
    fn begin_handing_out(&self, op: Op) -> InCall<'_> {
        let mut call = self.begin(op);
        call._entries = Some(self.forget_barrier.read());
        call
    }

    #[inline]
    fn fail(&self, op: Op, errno: Errno) -> fuser::Errno {
        self.shared.stats.error(op);
        to_fuser_errno(errno)
    }

    /// A plugin answer that breaks the protocol (an impossible attribute, say).
    #[cold]
    fn invalid(&self, op: Op, what: &str) -> fuser::Errno {
        tracing::error!(operation = op.name(), "plugin answered {what}; replying EIO");
        self.shared.stats.error(op);
        fuser::Errno::EIO
    }

    /// Counts the entry, then hands it to the kernel.
    fn reply_entry(&self, op: Op, answer: RResult<Entry, Errno>, reply: ReplyEntry) {
        match answer.into_result() {
            Ok(entry) => match to_fuser_attr(&entry.attr) {
                Some(attr) => {
                    self.shared.lookups.remember(entry.attr.ino);
                    reply.entry_with_ttls(
                        &self.config.attr_ttl,
                        &self.config.entry_ttl,
                        &attr,
                        Generation(entry.generation),
                    );
                }
                None => reply.error(self.invalid(op, "an entry whose mode names no file type")),
            },
            Err(errno) => reply.error(self.fail(op, errno)),
        }
    }

    fn reply_attr(&self, op: Op, answer: RResult<Attr, Errno>, reply: ReplyAttr) {
        match answer.into_result() {
            Ok(attr) => match to_fuser_attr(&attr) {
                Some(attr) => reply.attr(&self.config.attr_ttl, &attr),
                None => reply.error(self.invalid(op, "attributes whose mode names no file type")),
            },
            Err(errno) => reply.error(self.fail(op, errno)),
        }
    }

    fn reply_empty(&self, op: Op, answer: RResult<(), Errno>, reply: ReplyEmpty) {
        match answer.into_result() {
            Ok(()) => reply.ok(),
            Err(errno) => reply.error(self.fail(op, errno)),
        }
    }

    fn reply_open(&self, op: Op, ino: u64, answer: RResult<fusehost_abi::Opened, Errno>, reply: ReplyOpen) {
        match answer.into_result() {
            Ok(opened) => {
                let (fh, flags) = (FileHandle(opened.fh), fopen_flags(opened.flags));
                match self.backing.share(ino, &opened, |fd| reply.open_backing(fd)) {
                    Some(id) => reply.opened_passthrough(fh, flags, &id),
                    None => reply.opened(fh, flags),
                }
            }
            Err(errno) => reply.error(self.fail(op, errno)),
        }
    }

    /// Answers getxattr/listxattr: a size probe (`size == 0`), the value, or `ERANGE`.
    fn reply_xattr(
        &self,
        op: Op,
        size: u32,
        reply: ReplyXattr,
        fetch: impl FnOnce(RSliceMut<'_, u8>) -> RResult<u64, Errno>,
    ) {
        with_buffer(size as usize, |buffer| match fetch(RSliceMut::from_mut_slice(buffer)).into_result() {
            Ok(full) if size == 0 => match u32::try_from(full) {
                Ok(full) => reply.size(full),
                Err(_) => reply.error(self.fail(op, Errno::E2BIG)),
            },
            Ok(full) if full <= u64::from(size) => reply.data(&buffer[..full as usize]),
            Ok(_) => reply.error(self.fail(op, Errno::ERANGE)),
            Err(errno) => reply.error(self.fail(op, errno)),
        })
    }
}

/// Puts readdir entries straight into fuser's reply buffer.
struct ReplyDirSink<'r> {
    reply: &'r mut ReplyDirectory,
    added: usize,
    bad_kind: bool,
}

impl DirSink for ReplyDirSink<'_> {
    fn add(&mut self, ino: u64, next_offset: i64, kind: u32, name: RSlice<'_, u8>) -> bool {
        let Some(kind) = file_type(kind) else {
            self.bad_kind = true;
            return true;
        };
        let full = self.reply.add(INodeNo(ino), next_offset as u64, kind, OsStr::from_bytes(name.as_slice()));
        if !full {
            self.added += 1;
        }
        full
    }
}

/// Puts readdirplus entries into fuser's reply buffer, counting each one the kernel
/// will hold a reference to.
struct ReplyDirPlusSink<'r> {
    reply: &'r mut ReplyDirectoryPlus,
    lookups: &'r LookupTable,
    ttl: Duration,
    added: usize,
    bad_attr: bool,
}

impl DirPlusSink for ReplyDirPlusSink<'_> {
    fn add(&mut self, next_offset: i64, name: RSlice<'_, u8>, entry: &Entry) -> bool {
        let Some(attr) = to_fuser_attr(&entry.attr) else {
            self.bad_attr = true;
            return true;
        };
        let name = name.as_slice();
        let full = self.reply.add(
            INodeNo(entry.attr.ino),
            next_offset as u64,
            OsStr::from_bytes(name),
            &self.ttl,
            &attr,
            Generation(entry.generation),
        );
        if !full {
            self.added += 1;
            // The reply is sent only after the plugin returns, so counting here is
            // still before the kernel can see (and forget) the entry.
            if name != b"." && name != b".." {
                self.lookups.remember(entry.attr.ino);
            }
        }
        full
    }
}

impl<O: RawFilesystem + 'static> fuser::Filesystem for Dispatch<O> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let mut wanted =
            InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO | InitFlags::FUSE_PARALLEL_DIROPS;
        if self.config.writeback_cache {
            wanted |= InitFlags::FUSE_WRITEBACK_CACHE;
        } else if config.capabilities().contains(InitFlags::FUSE_PASSTHROUGH) && config.set_max_stack_depth(1).is_ok() {
            // Lets plugins hand open files to the kernel (the kernel does not combine it
            // with writeback caching). Costs nothing until a plugin asks for it.
            wanted |= InitFlags::FUSE_PASSTHROUGH;
        }
        if let Err(unsupported) = config.add_capabilities(wanted) {
            tracing::debug!("kernel lacks capabilities {unsupported:?}");
            let _ = config.add_capabilities(wanted - unsupported);
        }
        Ok(())
    }

    fn destroy(&mut self) {
        let _span = self.span.enter();
        let _serial = self.serial.as_ref().map(Mutex::lock);
        let still_known = self.shared.lookups.drain();
        tracing::debug!(inodes = still_known.len(), "forgetting every inode still known before destroy");
        for ino in still_known {
            self.fs.forget(ino);
        }
        self.fs.destroy();
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let _call = self.begin_handing_out(Op::Lookup);
        let answer = self.fs.lookup(&ctx(req, 0), parent.0, bytes(name));
        self.reply_entry(Op::Lookup, answer, reply);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let _call = self.begin(Op::Forget);
        if self.shared.lookups.forget(ino.0, nlookup) {
            // Wait out every request that might be handing `ino` out again right now.
            let _barrier = self.forget_barrier.write();
            if self.shared.lookups.confirm_forgotten(ino.0) {
                self.fs.forget(ino.0);
            }
        }
    }

    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let _call = self.begin(Op::Getattr);
        let answer = self.fs.getattr(&ctx(req, 0), ino.0, fh.map(|fh| fh.0).into());
        self.reply_attr(Op::Getattr, answer, reply);
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let _call = self.begin(Op::Setattr);
        let mut change = SetAttr::default();
        if let Some(mode) = mode {
            change.valid |= setattr_valid::MODE;
            change.mode = mode;
        }
        if let Some(uid) = uid {
            change.valid |= setattr_valid::UID;
            change.uid = uid;
        }
        if let Some(gid) = gid {
            change.valid |= setattr_valid::GID;
            change.gid = gid;
        }
        if let Some(size) = size {
            change.valid |= setattr_valid::SIZE;
            change.size = size;
        }
        for (time, bit, now_bit, slot) in [
            (atime, setattr_valid::ATIME, setattr_valid::ATIME_NOW, &mut change.atime),
            (mtime, setattr_valid::MTIME, setattr_valid::MTIME_NOW, &mut change.mtime),
        ] {
            match time {
                Some(TimeOrNow::Now) => change.valid |= bit | now_bit,
                Some(TimeOrNow::SpecificTime(at)) => {
                    change.valid |= bit;
                    *slot = to_timespec(at);
                }
                None => {}
            }
        }
        if let Some(ctime) = ctime {
            change.valid |= setattr_valid::CTIME;
            change.ctime = to_timespec(ctime);
        }
        if let Some(fh) = fh {
            change.valid |= setattr_valid::FH;
            change.fh = fh.0;
        }
        let answer = self.fs.setattr(&ctx(req, 0), ino.0, &change);
        self.reply_attr(Op::Setattr, answer, reply);
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let _call = self.begin(Op::Readlink);
        with_buffer(LINK_MAX, |buffer| {
            match self.fs.readlink(&ctx(req, 0), ino.0, RSliceMut::from_mut_slice(buffer)).into_result() {
                Ok(full) if full <= LINK_MAX as u64 => reply.data(&buffer[..full as usize]),
                Ok(_) => reply.error(self.fail(Op::Readlink, Errno::ENAMETOOLONG)),
                Err(errno) => reply.error(self.fail(Op::Readlink, errno)),
            }
        });
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        let _call = self.begin_handing_out(Op::Mknod);
        let answer = self.fs.mknod(&ctx(req, umask), parent.0, bytes(name), mode, rdev);
        self.reply_entry(Op::Mknod, answer, reply);
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let _call = self.begin_handing_out(Op::Mkdir);
        let answer = self.fs.mkdir(&ctx(req, umask), parent.0, bytes(name), mode);
        self.reply_entry(Op::Mkdir, answer, reply);
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _call = self.begin(Op::Unlink);
        let answer = self.fs.unlink(&ctx(req, 0), parent.0, bytes(name));
        self.reply_empty(Op::Unlink, answer, reply);
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _call = self.begin(Op::Rmdir);
        let answer = self.fs.rmdir(&ctx(req, 0), parent.0, bytes(name));
        self.reply_empty(Op::Rmdir, answer, reply);
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &std::path::Path, reply: ReplyEntry) {
        let _call = self.begin_handing_out(Op::Symlink);
        let answer = self.fs.symlink(&ctx(req, 0), parent.0, bytes(link_name), bytes(target.as_os_str()));
        self.reply_entry(Op::Symlink, answer, reply);
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let _call = self.begin(Op::Rename);
        let answer = self.fs.rename(&ctx(req, 0), parent.0, bytes(name), newparent.0, bytes(newname), flags.bits());
        self.reply_empty(Op::Rename, answer, reply);
    }

    fn link(&self, req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let _call = self.begin_handing_out(Op::Link);
        let answer = self.fs.link(&ctx(req, 0), ino.0, newparent.0, bytes(newname));
        self.reply_entry(Op::Link, answer, reply);
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let _call = self.begin(Op::Open);
        let answer = self.fs.open(&ctx(req, 0), ino.0, flags.0);
        self.reply_open(Op::Open, ino.0, answer, reply);
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        flags: OpenFlags,
        owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let _call = self.begin(Op::Read);
        with_buffer(size as usize, |buffer| {
            let lent = RSliceMut::from_mut_slice(&mut *buffer);
            match self.fs.read(&ctx(req, 0), ino.0, fh.0, offset, lent, flags.0, lock_owner(owner)).into_result() {
                Ok(filled) => reply.data(&buffer[..(filled as usize).min(buffer.len())]),
                Err(errno) => reply.error(self.fail(Op::Read, errno)),
            }
        });
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        flags: OpenFlags,
        owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let _call = self.begin(Op::Write);
        let answer = self.fs.write(
            &ctx(req, 0),
            ino.0,
            fh.0,
            offset,
            RSlice::from_slice(data),
            write_flags.bits(),
            flags.0,
            lock_owner(owner),
        );
        match answer.into_result() {
            Ok(written) => reply.written(written),
            Err(errno) => reply.error(self.fail(Op::Write, errno)),
        }
    }

    fn flush(&self, req: &Request, ino: INodeNo, fh: FileHandle, owner: LockOwner, reply: ReplyEmpty) {
        let _call = self.begin(Op::Flush);
        let answer = self.fs.flush(&ctx(req, 0), ino.0, fh.0, owner.0);
        self.reply_empty(Op::Flush, answer, reply);
    }

    fn release(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        flags: OpenFlags,
        owner: Option<LockOwner>,
        flush: bool,
        reply: ReplyEmpty,
    ) {
        let _call = self.begin(Op::Release);
        let answer = self.fs.release(&ctx(req, 0), ino.0, fh.0, flags.0, lock_owner(owner), flush);
        self.backing.release(ino.0, fh.0);
        self.reply_empty(Op::Release, answer, reply);
    }

    fn fsync(&self, req: &Request, ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        let _call = self.begin(Op::Fsync);
        let answer = self.fs.fsync(&ctx(req, 0), ino.0, fh.0, datasync);
        self.reply_empty(Op::Fsync, answer, reply);
    }

    fn opendir(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let _call = self.begin(Op::Opendir);
        let answer = self.fs.opendir(&ctx(req, 0), ino.0, flags.0);
        self.reply_open(Op::Opendir, ino.0, answer, reply);
    }

    fn readdir(&self, req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let _call = self.begin(Op::Readdir);
        let mut sink = ReplyDirSink { reply: &mut reply, added: 0, bad_kind: false };
        let answer = {
            let mut lent = DirSink_TO::from_ptr(&mut sink, TD_Opaque);
            self.fs.readdir(&ctx(req, 0), ino.0, fh.0, offset as i64, &mut lent)
        };
        let (added, bad_kind) = (sink.added, sink.bad_kind);
        match answer.into_result() {
            _ if bad_kind => reply.error(self.invalid(Op::Readdir, "a directory entry whose kind names no file type")),
            Ok(()) => reply.ok(),
            // Entries already added are a valid partial listing; the kernel asks again.
            Err(_) if added > 0 => reply.ok(),
            Err(errno) => reply.error(self.fail(Op::Readdir, errno)),
        }
    }

    fn readdirplus(&self, req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        let _call = self.begin_handing_out(Op::Readdirplus);
        let mut sink = ReplyDirPlusSink {
            reply: &mut reply,
            lookups: &self.shared.lookups,
            ttl: self.config.entry_ttl,
            added: 0,
            bad_attr: false,
        };
        let answer = {
            let mut lent = DirPlusSink_TO::from_ptr(&mut sink, TD_Opaque);
            self.fs.readdirplus(&ctx(req, 0), ino.0, fh.0, offset as i64, &mut lent)
        };
        let (added, bad_attr) = (sink.added, sink.bad_attr);
        match answer.into_result() {
            // Entries already counted must reach the kernel, or their counts would
            // never come back down: send what was added, even alongside an error.
            _ if added > 0 => reply.ok(),
            _ if bad_attr => reply.error(self.invalid(Op::Readdirplus, "a directory entry with invalid attributes")),
            Ok(()) => reply.ok(),
            Err(errno) => reply.error(self.fail(Op::Readdirplus, errno)),
        }
    }

    fn releasedir(&self, req: &Request, ino: INodeNo, fh: FileHandle, flags: OpenFlags, reply: ReplyEmpty) {
        let _call = self.begin(Op::Releasedir);
        let answer = self.fs.releasedir(&ctx(req, 0), ino.0, fh.0, flags.0);
        self.reply_empty(Op::Releasedir, answer, reply);
    }

    fn fsyncdir(&self, req: &Request, ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        let _call = self.begin(Op::Fsyncdir);
        let answer = self.fs.fsyncdir(&ctx(req, 0), ino.0, fh.0, datasync);
        self.reply_empty(Op::Fsyncdir, answer, reply);
    }

    fn statfs(&self, req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        let _call = self.begin(Op::Statfs);
        match self.fs.statfs(&ctx(req, 0), ino.0).into_result() {
            Ok(s) => reply.statfs(s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize),
            Err(errno) => reply.error(self.fail(Op::Statfs, errno)),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        position: u32,
        reply: ReplyEmpty,
    ) {
        let _call = self.begin(Op::Setxattr);
        let answer = self.fs.setxattr(&ctx(req, 0), ino.0, bytes(name), RSlice::from_slice(value), flags, position);
        self.reply_empty(Op::Setxattr, answer, reply);
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let _call = self.begin(Op::Getxattr);
        let ctx = ctx(req, 0);
        self.reply_xattr(Op::Getxattr, size, reply, |buffer| self.fs.getxattr(&ctx, ino.0, bytes(name), buffer));
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let _call = self.begin(Op::Listxattr);
        let ctx = ctx(req, 0);
        self.reply_xattr(Op::Listxattr, size, reply, |buffer| self.fs.listxattr(&ctx, ino.0, buffer));
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _call = self.begin(Op::Removexattr);
        let answer = self.fs.removexattr(&ctx(req, 0), ino.0, bytes(name));
        self.reply_empty(Op::Removexattr, answer, reply);
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let _call = self.begin(Op::Access);
        let answer = self.fs.access(&ctx(req, 0), ino.0, mask.bits());
        self.reply_empty(Op::Access, answer, reply);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let _call = self.begin_handing_out(Op::Create);
        match self.fs.create(&ctx(req, umask), parent.0, bytes(name), mode, flags).into_result() {
            Ok(created) => match to_fuser_attr(&created.entry.attr) {
                Some(attr) => {
                    self.shared.lookups.remember(created.entry.attr.ino);
                    let (ttl, generation) = (&self.config.entry_ttl, Generation(created.entry.generation));
                    let (fh, flags) = (FileHandle(created.opened.fh), fopen_flags(created.opened.flags));
                    match self.backing.share(attr.ino.0, &created.opened, |fd| reply.open_backing(fd)) {
                        Some(id) => reply.created_passthrough(ttl, &attr, generation, fh, flags, &id),
                        None => reply.created(ttl, &attr, generation, fh, flags),
                    }
                }
                None => reply.error(self.invalid(Op::Create, "an entry whose mode names no file type")),
            },
            Err(errno) => reply.error(self.fail(Op::Create, errno)),
        }
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let _call = self.begin(Op::Fallocate);
        let answer = self.fs.fallocate(&ctx(req, 0), ino.0, fh.0, offset, length, mode);
        self.reply_empty(Op::Fallocate, answer, reply);
    }

    fn lseek(&self, req: &Request, ino: INodeNo, fh: FileHandle, offset: i64, whence: i32, reply: ReplyLseek) {
        let _call = self.begin(Op::Lseek);
        match self.fs.lseek(&ctx(req, 0), ino.0, fh.0, offset, whence).into_result() {
            Ok(position) => reply.offset(position),
            Err(errno) => reply.error(self.fail(Op::Lseek, errno)),
        }
    }

    fn copy_file_range(
        &self,
        req: &Request,
        ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let _call = self.begin(Op::CopyFileRange);
        let answer = self.fs.copy_file_range(
            &ctx(req, 0),
            ino_in.0,
            fh_in.0,
            offset_in,
            ino_out.0,
            fh_out.0,
            offset_out,
            len,
            flags.bits(),
        );
        match answer.into_result() {
            Ok(copied) => reply.written(copied),
            Err(errno) => reply.error(self.fail(Op::CopyFileRange, errno)),
        }
    }
}
