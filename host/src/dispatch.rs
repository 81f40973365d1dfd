//! The one place that knows both sides: fuser's requests in, plugin calls out.
//!
//! [`Dispatch`] implements `fuser::Filesystem` for one mount over any
//! [`RawFilesystem`]: a plugin's FFI object (`FsObject`, a vtable call) or an author's
//! filesystem linked into the binary (`FfiFilesystem<F>`, a direct call). Every FUSE
//! request passes through here, so the success path allocates nothing, takes no global
//! lock and formats no strings: reads go into a per-thread buffer lent to the plugin,
//! writes borrow the kernel's payload, directory entries go straight from the plugin
//! into fuser's reply buffer ([`crate::dir_sinks`]).
//!
//! Every answer is checked before it is counted or sent ([`crate::contract`]): an
//! entry or errno the kernel would drop or choke on becomes `EIO`, and a rejected
//! create's handle is released. A panic inside the host while serving a request is
//! caught here: the request is answered `EIO` and the worker thread goes on serving.
//!
//! Dispatch owns the lookup counts (see [`crate::lookup_table`]): each entry handed to
//! the kernel is counted *before* the reply is sent. A count can reach zero while a
//! lookup that will return the same inode is still in the plugin (the kernel evicted
//! its old inode while resolving the name again). Told to forget then, a plugin that
//! reuses inode numbers (passthrough) would drop an inode the kernel is about to hold.
//! So requests that hand out entries hold the mount's forget barrier for reading
//! across the plugin call and the count, and a zero is confirmed under the barrier
//! held for writing, taken only when free: by the worker that received the FORGET when
//! it can take it at once, else by the mount's [`Forgetter`] thread later. The
//! plugin's `forget(ino)` never overlaps a request that returns `ino`, and no request
//! ever waits for a forget.
//!
//! Every filesystem gets exactly one `destroy()`: at the end of its session, when it
//! is dropped without a session (the mount failed), or from the host on its way out
//! while a lazily detached session is still alive ([`MountCore::destroy_once`]).

use std::cell::RefCell;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RDuration, ROption, RResult, RSlice, RSliceMut};
use fusehost_abi::{
    capability, open_flags, setattr_valid, Attr, DirPlusSink_TO, DirSink_TO, Entry, EntryTtl, Errno, FileLock,
    Negotiated, RawFilesystem, RequestCtx, SetAttr, Timespec,
};
use fuser::{
    AccessFlags, CopyFileRangeFlags, FileHandle, FopenFlags, INodeNo, IoctlFlags, KernelConfig, LockOwner, OpenFlags,
    PollEvents, PollFlags, PollNotifier, RenameFlags, ReplyAttr, ReplyBmap, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyLock, ReplyLseek, ReplyOpen, ReplyPoll, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard};
use tracing::span::Entered;
use tracing::Span;

use fusehost_plugin_api::FileKind;

use crate::backing::Backing;
use crate::capabilities;
use crate::contract::{check_attr, check_entry, kernel_errno, Anomalies, Expected, REUSED_INODE};
use crate::crash;
use crate::dir_sinks::{ReplyDirPlusSink, ReplyDirSink};
use crate::forgetter::{ForgetTarget, Forgetter};
use crate::lookup_table::LookupTable;
use crate::notifications::{self, Notifications};
use crate::stats::{MountStats, Op};

/// What a running mount shares with the rest of the host (status, tests).
#[derive(Debug, Default)]
pub struct MountShared {
    pub lookups: LookupTable,
    pub stats: MountStats,
    pub anomalies: Anomalies,
}

/// How dispatch treats one mount.
#[derive(Clone, Debug)]
pub struct DispatchConfig {
    pub serialized: bool,
    pub attr_ttl: Duration,
    pub entry_ttl: Duration,
    /// How long the kernel remembers "no such name" for a plugin that answers
    /// `ENOENT` without choosing (zero: not at all).
    pub negative_ttl: Duration,
    pub writeback_cache: bool,
    pub allow_kernel_passthrough: bool,
    /// The [`capability`] bits the plugin consents to (asked before the mount).
    pub consent: u64,
    pub default_permissions: bool,
    pub read_only: bool,
}

/// The plugin's filesystem and the locks around it, shared by the request threads,
/// the mount's forgetter and the host (for a last `destroy` on its way out).
pub struct Core<O> {
    fs: O,
    shared: Arc<MountShared>,
    serial: Option<Mutex<()>>,
    /// Read-held by requests that hand out entries, write-held to confirm forgets.
    forget_barrier: RwLock<()>,
    destroyed: AtomicBool,
    span: Span,
}

/// What the host keeps of a mount's core: the means to destroy it once.
pub trait MountCore: Send + Sync {
    /// Forgets every inode still counted (and `also`), then destroys the filesystem;
    /// does nothing the second time.
    fn destroy_once(&self, also: &[u64]);
}

impl<O: RawFilesystem> MountCore for Core<O> {
    fn destroy_once(&self, also: &[u64]) {
        if self.destroyed.swap(true, Ordering::SeqCst) {
            return;
        }
        let _span = self.span.enter();
        let _serial = self.serial.as_ref().map(Mutex::lock);
        let _barrier = self.forget_barrier.write();
        let mut still_known = self.shared.lookups.drain();
        still_known.extend(also.iter().copied().filter(|&ino| ino > 1));
        still_known.sort_unstable();
        still_known.dedup();
        tracing::debug!(inodes = still_known.len(), "forgetting every inode still known before destroy");
        for ino in still_known {
            self.fs.forget(ino);
        }
        self.fs.destroy();
    }
}

impl<O: RawFilesystem + 'static> ForgetTarget for Core<O> {
    fn try_forget(&self, batch: &[u64]) -> bool {
        // Never wait: a waiting writer would make new lookups queue behind it. The
        // call lock of a serialized plugin comes first, as it does for requests.
        let _serial = match &self.serial {
            Some(lock) => match lock.try_lock() {
                Some(held) => Some(held),
                None => return false,
            },
            None => None,
        };
        let Some(_barrier) = self.forget_barrier.try_write() else { return false };
        if self.destroyed.load(Ordering::SeqCst) {
            return true;
        }
        for &ino in batch {
            if self.shared.lookups.confirm_forgotten(ino) {
                self.fs.forget(ino);
            }
        }
        true
    }
}

/// One mount's `fuser::Filesystem`.
pub struct Dispatch<O: RawFilesystem + 'static> {
    core: Arc<Core<O>>,
    forgetter: Option<Forgetter>,
    backing: Backing,
    config: DispatchConfig,
    /// The capabilities in effect since the kernel's INIT.
    granted: u64,
    notifications: Arc<Notifications>,
    name: String,
    /// This mount's place in the fatal-signal handler's table.
    crash: Option<crash::Registration>,
}

/// What every request holds while it runs: the mount's span, for serialized plugins
/// the mount's call lock, and for requests that hand out entries the forget barrier.
struct InCall<'a> {
    _crash: Option<crash::Serving>,
    _entries: Option<RwLockReadGuard<'a, ()>>,
    _serial: Option<MutexGuard<'a, ()>>,
    _span: Entered<'a>,
}

/// The longest symlink target the kernel accepts (`PATH_MAX`).
const LINK_MAX: usize = 4096;

/// The largest write the host lets the kernel send: what the kernel's default page
/// limit (256 pages) allows anyway, set explicitly so that plugins are told the truth.
const MAX_WRITE: u32 = 1 << 20;

/// The attributes of a negative entry: the kernel reads none of them (nodeid 0).
const NEGATIVE_ATTR: fuser::FileAttr = fuser::FileAttr {
    ino: INodeNo(0),
    size: 0,
    blocks: 0,
    atime: SystemTime::UNIX_EPOCH,
    mtime: SystemTime::UNIX_EPOCH,
    ctime: SystemTime::UNIX_EPOCH,
    crtime: SystemTime::UNIX_EPOCH,
    kind: fuser::FileType::RegularFile,
    perm: 0,
    nlink: 0,
    uid: 0,
    gid: 0,
    rdev: 0,
    blksize: 0,
    flags: 0,
};

thread_local! {
    /// Each session thread's buffer for read, readlink and getxattr answers, grown to
    /// the largest request seen and then reused.
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Each session thread's list of readdirplus entries that did not reach the kernel.
    static UNDELIVERED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
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
    notifications::serving_request(req.unique().0);
    RequestCtx { uid: req.uid(), gid: req.gid(), pid: req.pid(), umask }
}

fn lock_owner(owner: Option<LockOwner>) -> ROption<u64> {
    owner.map(|owner| owner.0).into()
}

fn to_timespec(time: SystemTime) -> Timespec {
    fusehost_plugin_api::to_timespec(time)
}

fn fopen_flags(flags: u32, granted: u64) -> FopenFlags {
    let mut flags = FopenFlags::from_bits_truncate(flags & open_flags::ALL);
    if granted & capability::PARALLEL_DIRECT_WRITES != 0 {
        flags |= FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES;
    }
    flags
}

fn duration(ttl: ROption<RDuration>) -> Option<Duration> {
    ttl.into_option().map(Duration::from)
}

impl<O: RawFilesystem + 'static> Dispatch<O> {
    /// Dispatch for `fs`; its forgetter starts when the kernel's INIT arrives.
    pub fn new(fs: O, shared: Arc<MountShared>, config: DispatchConfig, name: &str, span: Span) -> Self {
        let serial = config.serialized.then(|| Mutex::new(()));
        let core = Arc::new(Core {
            fs,
            shared,
            serial,
            forget_barrier: RwLock::new(()),
            destroyed: AtomicBool::new(false),
            span,
        });
        Dispatch {
            core,
            forgetter: None,
            backing: Backing::default(),
            config,
            granted: 0,
            notifications: Arc::default(),
            name: name.to_owned(),
            crash: None,
        }
    }

    /// The queue of the plugin's kernel notifications, to start once the session
    /// (and with it the kernel's notification channel) exists.
    pub fn notifications(&self) -> Arc<Notifications> {
        Arc::clone(&self.notifications)
    }

    /// Names this mount in the report of a fatal signal, and detaches it then.
    pub fn report_crashes_as(&mut self, registration: Option<crash::Registration>) {
        self.crash = registration;
    }

    /// The handle the host keeps to destroy the filesystem once, whatever happens to
    /// the session.
    pub fn core(&self) -> Arc<dyn MountCore> {
        Arc::clone(&self.core) as Arc<dyn MountCore>
    }

    #[inline]
    fn begin(&self, op: Op) -> InCall<'_> {
        self.core.shared.stats.request(op);
        let span = self.core.span.enter();
        let crash = self.crash.as_ref().map(|registration| registration.serving(op));
        InCall { _crash: crash, _entries: None, _serial: self.core.serial.as_ref().map(Mutex::lock), _span: span }
    }

    /// [`Dispatch::begin`] for a request that may hand out entries.
    #[inline]
    fn begin_handing_out(&self, op: Op) -> InCall<'_> {
        let mut call = self.begin(op);
        call._entries = Some(self.core.forget_barrier.read());
        call
    }

    /// Runs one request inside its [`InCall`]; a panic in it is answered `EIO` (the
    /// reply's drop sends it while unwinding) and the worker thread lives on.
    #[inline]
    fn serve(&self, op: Op, request: impl FnOnce()) {
        let _call = self.begin(op);
        self.catching_panics(op, request);
    }

    /// [`Dispatch::serve`] for a request that may hand out entries.
    #[inline]
    fn serve_handing_out(&self, op: Op, request: impl FnOnce()) {
        let _call = self.begin_handing_out(op);
        self.catching_panics(op, request);
    }

    #[inline]
    fn catching_panics(&self, op: Op, request: impl FnOnce()) {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(request)) {
            self.core.shared.anomalies.host_panic(op, &*panic);
        }
    }

    #[inline]
    fn fail(&self, op: Op, errno: Errno) -> fuser::Errno {
        self.core.shared.stats.error(op);
        match kernel_errno(errno) {
            Some(errno) => errno,
            None => self.core.shared.anomalies.invalid_errno(op, errno),
        }
    }

    /// [`Dispatch::fail`] for a request about inode `ino`: an `ENOENT` for an inode the
    /// kernel holds is the plugin denying what it handed out.
    #[inline]
    fn fail_on(&self, op: Op, ino: u64, errno: Errno) -> fuser::Errno {
        if errno == Errno::ENOENT && self.core.shared.lookups.count(ino) > 0 {
            self.core.shared.anomalies.denied_inode(op, ino);
        }
        self.fail(op, errno)
    }

    /// A plugin answer that breaks the protocol.
    #[cold]
    fn invalid(&self, op: Op, what: &str) -> fuser::Errno {
        self.core.shared.stats.error(op);
        self.core.shared.anomalies.invalid_answer(op, what)
    }

    /// The plugin produced `ino` but the kernel will not hold it through this reply:
    /// if nothing else holds it, the plugin hears `forget` for it.
    fn undelivered(&self, ino: u64) {
        if ino > 1 && self.core.shared.lookups.count(ino) == 0 {
            self.forget_when_free(ino);
        }
    }

    /// Confirms a zero count and tells the plugin right here when nothing handing out
    /// entries is in flight (the common case: an unlinked inode is freed as soon as it
    /// would have been), else leaves it to the forgetter thread. Never waits.
    fn forget_when_free(&self, ino: u64) {
        if !self.core.try_forget(&[ino]) {
            if let Some(forgetter) = &self.forgetter {
                forgetter.push(ino);
            }
        }
    }

    /// [`check_entry`], and that the inode is not one the kernel still holds under
    /// another generation.
    fn check_counted_entry(
        &self,
        entry: &Entry,
        expected: Expected,
    ) -> Result<(fuser::FileAttr, fuser::Generation), &'static str> {
        let checked = check_entry(entry, expected)?;
        match self.core.shared.lookups.reused_with_new_generation(entry.attr.ino, entry.generation) {
            Some(_) => Err(REUSED_INODE),
            None => Ok(checked),
        }
    }

    /// Checks and counts the entry, then hands it to the kernel.
    fn reply_entry(&self, op: Op, expected: Expected, answer: RResult<Entry, Errno>, reply: ReplyEntry) {
        match answer.into_result() {
            Ok(entry) => match self.check_counted_entry(&entry, expected) {
                Ok((attr, generation)) => {
                    self.core.shared.lookups.remember(entry.attr.ino, entry.generation);
                    reply.entry_with_ttls(&self.config.attr_ttl, &self.config.entry_ttl, &attr, generation);
                }
                Err(why) => {
                    reply.error(self.invalid(op, why));
                    self.undelivered(entry.attr.ino);
                }
            },
            Err(errno) => reply.error(self.fail(op, errno)),
        }
    }

    /// Answers a lookup: an entry with its own or the mount's TTLs (counted), a
    /// negative entry (plugin's TTL, or the mount's `negative_ttl` for `ENOENT`), or
    /// an error.
    fn reply_lookup(&self, answer: RResult<EntryTtl, Errno>, reply: ReplyEntry) {
        let negative = |reply: ReplyEntry, ttl: Duration| {
            reply.entry_with_ttls(&Duration::ZERO, &ttl, &NEGATIVE_ATTR, fuser::Generation(0))
        };
        match answer.into_result() {
            Ok(found) if found.entry.attr.ino == 0 => {
                negative(reply, duration(found.entry_ttl).unwrap_or(self.config.negative_ttl))
            }
            Ok(found) => match self.check_counted_entry(&found.entry, Expected::Found) {
                Ok((attr, generation)) => {
                    self.core.shared.lookups.remember(found.entry.attr.ino, found.entry.generation);
                    let attr_ttl = duration(found.attr_ttl).unwrap_or(self.config.attr_ttl);
                    let entry_ttl = duration(found.entry_ttl).unwrap_or(self.config.entry_ttl);
                    reply.entry_with_ttls(&attr_ttl, &entry_ttl, &attr, generation);
                }
                Err(why) => {
                    reply.error(self.invalid(Op::Lookup, why));
                    self.undelivered(found.entry.attr.ino);
                }
            },
            Err(errno) if errno == Errno::ENOENT && !self.config.negative_ttl.is_zero() => {
                self.core.shared.stats.error(Op::Lookup);
                negative(reply, self.config.negative_ttl)
            }
            Err(errno) => reply.error(self.fail(Op::Lookup, errno)),
        }
    }

    fn reply_attr(&self, op: Op, ino: u64, answer: RResult<Attr, Errno>, reply: ReplyAttr) {
        match answer.into_result() {
            Ok(attr) => match check_attr(&attr) {
                Ok(attr) => reply.attr(&self.config.attr_ttl, &attr),
                Err(why) => reply.error(self.invalid(op, why)),
            },
            Err(errno) => reply.error(self.fail_on(op, ino, errno)),
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
                let (fh, flags) = (FileHandle(opened.fh), fopen_flags(opened.flags, self.granted));
                match self.backing.share(ino, &opened, |fd| reply.open_backing(fd)) {
                    Some(id) => reply.opened_passthrough(fh, flags, &id),
                    None => reply.opened(fh, flags),
                }
            }
            Err(errno) => reply.error(self.fail_on(op, ino, errno)),
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

    /// How a listing ends. Entries already added are sent whatever else happened: a
    /// partial listing is valid (the kernel asks again from there), and readdirplus
    /// entries are already counted, so they must reach the kernel. An invalid entry is
    /// counted and logged either way; an error is reported only when nothing was added.
    fn end_listing(
        &self,
        op: Op,
        added: usize,
        invalid: Option<&'static str>,
        answer: RResult<(), Errno>,
    ) -> Result<(), fuser::Errno> {
        let refused = invalid.map(|why| self.invalid(op, why));
        match (answer.into_result(), refused) {
            _ if added > 0 => Ok(()),
            (_, Some(errno)) => Err(errno),
            (Ok(()), None) => Ok(()),
            (Err(errno), None) => Err(self.fail(op, errno)),
        }
    }

    /// The TTL of a reply that carries an entry and its attributes under one TTL
    /// (create, readdirplus): the shorter one, so neither is trusted for longer than
    /// the operator allowed.
    fn combined_ttl(&self) -> Duration {
        self.config.attr_ttl.min(self.config.entry_ttl)
    }
}

impl<O: RawFilesystem + 'static> Drop for Dispatch<O> {
    /// A dispatch dropped without its session's `destroy` (the mount failed after the
    /// plugin built its filesystem) still destroys the filesystem, once.
    fn drop(&mut self) {
        fuser::Filesystem::destroy(self);
    }
}

impl<O: RawFilesystem + 'static> fuser::Filesystem for Dispatch<O> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let asked = capabilities::Asked {
            writeback_cache: self.config.writeback_cache,
            kernel_passthrough: self.config.allow_kernel_passthrough,
        };
        self.granted = capabilities::negotiate(config, self.config.consent, asked);
        let _ = config.set_max_write(MAX_WRITE);
        let target = Arc::clone(&self.core) as Arc<dyn ForgetTarget>;
        self.forgetter = Some(Forgetter::start(&self.name, target, self.core.span.clone())?);
        let fuser::Version(proto_major, proto_minor) = config.kernel_abi();
        let negotiated = Negotiated {
            capabilities: self.granted,
            max_write: MAX_WRITE,
            proto_major,
            proto_minor,
            default_permissions: self.config.default_permissions,
            read_only: self.config.read_only,
        };
        let _span = self.core.span.enter();
        self.core.fs.init(&negotiated, self.notifications.handle());
        Ok(())
    }

    fn destroy(&mut self) {
        self.notifications.close();
        let left = self.forgetter.as_mut().map(Forgetter::stop).unwrap_or_default();
        self.core.destroy_once(&left);
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.serve_handing_out(Op::Lookup, || {
            let answer = self.core.fs.lookup_ttl(&ctx(req, 0), parent.0, bytes(name));
            self.reply_lookup(answer, reply);
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        // Only the count changes under the request; the plugin hears of a zero when no
        // request handing out entries is in flight.
        self.core.shared.stats.request(Op::Forget);
        self.catching_panics(Op::Forget, || {
            if self.core.shared.lookups.forget(ino.0, nlookup) {
                self.forget_when_free(ino.0);
            }
        });
    }

    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        self.serve(Op::Getattr, || {
            let answer = self.core.fs.getattr_ttl(&ctx(req, 0), ino.0, fh.map(|fh| fh.0).into());
            match answer.into_result() {
                Ok(found) => match check_attr(&found.attr) {
                    Ok(attr) => reply.attr(&duration(found.attr_ttl).unwrap_or(self.config.attr_ttl), &attr),
                    Err(why) => reply.error(self.invalid(Op::Getattr, why)),
                },
                Err(errno) => reply.error(self.fail_on(Op::Getattr, ino.0, errno)),
            }
        });
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
        self.serve(Op::Setattr, || {
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
            let answer = self.core.fs.setattr(&ctx(req, 0), ino.0, &change);
            self.reply_attr(Op::Setattr, ino.0, answer, reply);
        });
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        self.serve(Op::Readlink, || {
            with_buffer(LINK_MAX, |buffer| {
                match self.core.fs.readlink(&ctx(req, 0), ino.0, RSliceMut::from_mut_slice(buffer)).into_result() {
                    Ok(full) if full <= LINK_MAX as u64 => reply.data(&buffer[..full as usize]),
                    Ok(_) => reply.error(self.fail(Op::Readlink, Errno::ENAMETOOLONG)),
                    Err(errno) => reply.error(self.fail_on(Op::Readlink, ino.0, errno)),
                }
            });
        });
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        self.serve_handing_out(Op::Mknod, || {
            let answer = self.core.fs.mknod(&ctx(req, umask), parent.0, bytes(name), mode, rdev);
            self.reply_entry(Op::Mknod, Expected::Created(mode), answer, reply);
        });
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        self.serve_handing_out(Op::Mkdir, || {
            let answer = self.core.fs.mkdir(&ctx(req, umask), parent.0, bytes(name), mode);
            self.reply_entry(Op::Mkdir, Expected::Created(FileKind::Directory.mode_bits()), answer, reply);
        });
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.serve(Op::Unlink, || {
            let answer = self.core.fs.unlink(&ctx(req, 0), parent.0, bytes(name));
            self.reply_empty(Op::Unlink, answer, reply);
        });
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.serve(Op::Rmdir, || {
            let answer = self.core.fs.rmdir(&ctx(req, 0), parent.0, bytes(name));
            self.reply_empty(Op::Rmdir, answer, reply);
        });
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &std::path::Path, reply: ReplyEntry) {
        self.serve_handing_out(Op::Symlink, || {
            let answer = self.core.fs.symlink(&ctx(req, 0), parent.0, bytes(link_name), bytes(target.as_os_str()));
            self.reply_entry(Op::Symlink, Expected::Created(FileKind::Symlink.mode_bits()), answer, reply);
        });
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
        self.serve(Op::Rename, || {
            let answer =
                self.core.fs.rename(&ctx(req, 0), parent.0, bytes(name), newparent.0, bytes(newname), flags.bits());
            self.reply_empty(Op::Rename, answer, reply);
        });
    }

    fn link(&self, req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        self.serve_handing_out(Op::Link, || {
            let answer = self.core.fs.link(&ctx(req, 0), ino.0, newparent.0, bytes(newname));
            self.reply_entry(Op::Link, Expected::Linked, answer, reply);
        });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.serve(Op::Open, || {
            let answer = self.core.fs.open(&ctx(req, 0), ino.0, flags.0);
            self.reply_open(Op::Open, ino.0, answer, reply);
        });
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
        self.serve(Op::Read, || {
            with_buffer(size as usize, |buffer| {
                let lent = RSliceMut::from_mut_slice(&mut *buffer);
                let answer = self.core.fs.read(&ctx(req, 0), ino.0, fh.0, offset, lent, flags.0, lock_owner(owner));
                match answer.into_result() {
                    Ok(filled) => reply.data(&buffer[..(filled as usize).min(buffer.len())]),
                    Err(errno) => reply.error(self.fail(Op::Read, errno)),
                }
            });
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
        self.serve(Op::Write, || {
            let answer = self.core.fs.write(
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
                Ok(written) if written as usize <= data.len() => reply.written(written),
                Ok(_) => reply.error(self.invalid(Op::Write, "more bytes written than it was given")),
                Err(errno) => reply.error(self.fail(Op::Write, errno)),
            }
        });
    }

    fn flush(&self, req: &Request, ino: INodeNo, fh: FileHandle, owner: LockOwner, reply: ReplyEmpty) {
        self.serve(Op::Flush, || {
            let answer = self.core.fs.flush(&ctx(req, 0), ino.0, fh.0, owner.0);
            self.reply_empty(Op::Flush, answer, reply);
        });
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
        self.serve(Op::Release, || {
            let answer = self.core.fs.release(&ctx(req, 0), ino.0, fh.0, flags.0, lock_owner(owner), flush);
            self.backing.release(ino.0, fh.0);
            self.reply_empty(Op::Release, answer, reply);
        });
    }

    fn fsync(&self, req: &Request, ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        self.serve(Op::Fsync, || {
            let answer = self.core.fs.fsync(&ctx(req, 0), ino.0, fh.0, datasync);
            self.reply_empty(Op::Fsync, answer, reply);
        });
    }

    fn opendir(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.serve(Op::Opendir, || {
            let answer = self.core.fs.opendir(&ctx(req, 0), ino.0, flags.0);
            self.reply_open(Op::Opendir, ino.0, answer, reply);
        });
    }

    fn readdir(&self, req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        self.serve(Op::Readdir, || {
            let mut sink = ReplyDirSink { reply: &mut reply, added: 0, invalid: None };
            let answer = {
                let mut lent = DirSink_TO::from_ptr(&mut sink, TD_Opaque);
                self.core.fs.readdir(&ctx(req, 0), ino.0, fh.0, offset as i64, &mut lent)
            };
            match self.end_listing(Op::Readdir, sink.added, sink.invalid, answer) {
                Ok(()) => reply.ok(),
                Err(errno) => reply.error(errno),
            }
        });
    }

    fn readdirplus(&self, req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        UNDELIVERED.with_borrow_mut(|undelivered| {
            self.serve_handing_out(Op::Readdirplus, || {
                let mut sink = ReplyDirPlusSink {
                    reply: &mut reply,
                    lookups: &self.core.shared.lookups,
                    ttl: self.combined_ttl(),
                    added: 0,
                    invalid: None,
                    undelivered: &mut *undelivered,
                };
                let answer = {
                    let mut lent = DirPlusSink_TO::from_ptr(&mut sink, TD_Opaque);
                    self.core.fs.readdirplus(&ctx(req, 0), ino.0, fh.0, offset as i64, &mut lent)
                };
                match self.end_listing(Op::Readdirplus, sink.added, sink.invalid, answer) {
                    Ok(()) => reply.ok(),
                    Err(errno) => reply.error(errno),
                }
            });
            // Out of the request, the forget barrier is free again: the entries the plugin
            // produced but the kernel never got are usually forgotten right here.
            for ino in undelivered.drain(..) {
                self.undelivered(ino);
            }
        });
    }

    fn releasedir(&self, req: &Request, ino: INodeNo, fh: FileHandle, flags: OpenFlags, reply: ReplyEmpty) {
        self.serve(Op::Releasedir, || {
            let answer = self.core.fs.releasedir(&ctx(req, 0), ino.0, fh.0, flags.0);
            self.reply_empty(Op::Releasedir, answer, reply);
        });
    }

    fn fsyncdir(&self, req: &Request, ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        self.serve(Op::Fsyncdir, || {
            let answer = self.core.fs.fsyncdir(&ctx(req, 0), ino.0, fh.0, datasync);
            self.reply_empty(Op::Fsyncdir, answer, reply);
        });
    }

    fn statfs(&self, req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        self.serve(Op::Statfs, || match self.core.fs.statfs(&ctx(req, 0), ino.0).into_result() {
            Ok(s) => reply.statfs(s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize),
            Err(errno) => reply.error(self.fail(Op::Statfs, errno)),
        });
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
        self.serve(Op::Setxattr, || {
            let answer =
                self.core.fs.setxattr(&ctx(req, 0), ino.0, bytes(name), RSlice::from_slice(value), flags, position);
            self.reply_empty(Op::Setxattr, answer, reply);
        });
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.serve(Op::Getxattr, || {
            let ctx = ctx(req, 0);
            self.reply_xattr(Op::Getxattr, size, reply, |buffer| {
                self.core.fs.getxattr(&ctx, ino.0, bytes(name), buffer)
            });
        });
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.serve(Op::Listxattr, || {
            let ctx = ctx(req, 0);
            self.reply_xattr(Op::Listxattr, size, reply, |buffer| self.core.fs.listxattr(&ctx, ino.0, buffer));
        });
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.serve(Op::Removexattr, || {
            let answer = self.core.fs.removexattr(&ctx(req, 0), ino.0, bytes(name));
            self.reply_empty(Op::Removexattr, answer, reply);
        });
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        self.serve(Op::Access, || {
            let answer = self.core.fs.access(&ctx(req, 0), ino.0, mask.bits());
            self.reply_empty(Op::Access, answer, reply);
        });
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
        self.serve_handing_out(Op::Create, || {
            let created = match self.core.fs.create(&ctx(req, umask), parent.0, bytes(name), mode, flags).into_result()
            {
                Ok(created) => created,
                Err(errno) => return reply.error(self.fail(Op::Create, errno)),
            };
            let (attr, generation) = match self
                .check_counted_entry(&created.entry, Expected::Created(FileKind::RegularFile.mode_bits()))
            {
                Ok(checked) => checked,
                Err(why) => {
                    reply.error(self.invalid(Op::Create, why));
                    // The kernel would never send RELEASE for this handle, nor FORGET.
                    let ino = created.entry.attr.ino;
                    let _ = self.core.fs.release(&ctx(req, 0), ino, created.opened.fh, flags, ROption::RNone, false);
                    self.undelivered(ino);
                    return;
                }
            };
            self.core.shared.lookups.remember(created.entry.attr.ino, created.entry.generation);
            let ttl = self.combined_ttl();
            let (fh, open_flags) = (FileHandle(created.opened.fh), fopen_flags(created.opened.flags, self.granted));
            match self.backing.share(attr.ino.0, &created.opened, |fd| reply.open_backing(fd)) {
                Some(id) => reply.created_passthrough(&ttl, &attr, generation, fh, open_flags, &id),
                None => reply.created(&ttl, &attr, generation, fh, open_flags),
            }
        });
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
        self.serve(Op::Fallocate, || {
            let answer = self.core.fs.fallocate(&ctx(req, 0), ino.0, fh.0, offset, length, mode);
            self.reply_empty(Op::Fallocate, answer, reply);
        });
    }

    fn lseek(&self, req: &Request, ino: INodeNo, fh: FileHandle, offset: i64, whence: i32, reply: ReplyLseek) {
        self.serve(Op::Lseek, || match self.core.fs.lseek(&ctx(req, 0), ino.0, fh.0, offset, whence).into_result() {
            Ok(position) => reply.offset(position),
            Err(errno) => reply.error(self.fail(Op::Lseek, errno)),
        });
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
        self.serve(Op::CopyFileRange, || {
            let answer = self.core.fs.copy_file_range(
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
        });
    }

    // Requests ABI 1.1 added. A plugin without them answers ENOSYS through the ABI's
    // defaults, quietly (fuser's own defaults log a multi-line warning per request,
    // which any client could repeat to flood the log).

    fn ioctl(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        flags: IoctlFlags,
        cmd: u32,
        in_data: &[u8],
        out_size: u32,
        reply: ReplyIoctl,
    ) {
        self.serve(Op::Ioctl, || {
            with_buffer(out_size as usize, |buffer| {
                let output = RSliceMut::from_mut_slice(buffer);
                match self.core.fs.ioctl(
                    &ctx(req, 0),
                    ino.0,
                    fh.0,
                    flags.bits(),
                    cmd,
                    RSlice::from_slice(in_data),
                    output,
                ) {
                    RResult::ROk(done) => {
                        let filled = (done.output_len as usize).min(out_size as usize);
                        reply.ioctl(done.result, &buffer[..filled]);
                    }
                    // What a file without ioctls answers (the kernel would turn ENOSYS into it too).
                    RResult::RErr(Errno::ENOSYS) => reply.error(fuser::Errno::ENOTTY),
                    RResult::RErr(errno) => reply.error(self.fail(Op::Ioctl, errno)),
                }
            })
        });
    }

    fn poll(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        ph: PollNotifier,
        events: PollEvents,
        flags: PollFlags,
        reply: ReplyPoll,
    ) {
        self.serve(Op::Poll, || {
            let wakeup = ph.handle().0;
            let answer = self.core.fs.poll(&ctx(req, 0), ino.0, fh.0, wakeup, events.bits(), flags.bits());
            match answer.into_result() {
                Ok(ready) => reply.poll(PollEvents::from_bits_truncate(ready)),
                // The kernel stops asking and treats files as always ready.
                Err(errno) => reply.error(self.fail(Op::Poll, errno)),
            }
        });
    }

    fn getlk(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        pid: u32,
        reply: ReplyLock,
    ) {
        self.serve(Op::Getlk, || {
            let asked = FileLock { start, end, typ, pid };
            match self.core.fs.getlk(&ctx(req, 0), ino.0, fh.0, lock_owner.0, &asked).into_result() {
                Ok(lock) => reply.locked(lock.start, lock.end, lock.typ, lock.pid),
                Err(errno) => reply.error(self.fail(Op::Getlk, errno)),
            }
        });
    }

    fn setlk(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        pid: u32,
        sleep: bool,
        reply: ReplyEmpty,
    ) {
        self.serve(Op::Setlk, || {
            let lock = FileLock { start, end, typ, pid };
            let answer = self.core.fs.setlk(&ctx(req, 0), ino.0, fh.0, lock_owner.0, &lock, sleep);
            self.reply_empty(Op::Setlk, answer, reply);
        });
    }

    fn bmap(&self, req: &Request, ino: INodeNo, blocksize: u32, idx: u64, reply: ReplyBmap) {
        self.serve(Op::Bmap, || match self.core.fs.bmap(&ctx(req, 0), ino.0, blocksize, idx).into_result() {
            Ok(block) => reply.bmap(block),
            Err(errno) => reply.error(self.fail(Op::Bmap, errno)),
        });
    }
}
