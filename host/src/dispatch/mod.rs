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
//! it can take it at once, else by the mount's `Forgetter` thread later. The
//! plugin's `forget(ino)` never overlaps a request that returns `ino`, and no request
//! ever waits for a forget.
//!
//! The request methods themselves are in `requests.rs` (the only code that reads
//! fuser's request arguments), the checked answers in `replies.rs`; this file holds the
//! mount's state and what every request goes through.
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

use abi_stable::std_types::{RDuration, ROption, RSlice};
use fusehost_abi::{capability, open_flags, EntryTtl, RawFilesystem, RequestCtx, Timespec};
use fuser::{FopenFlags, INodeNo, LockOwner, Request};
use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard};
use tracing::span::EnteredSpan;
use tracing::Span;

use crate::contract::Anomalies;
use crate::crash;
use crate::forgetter::ForgetTarget;
use crate::later_requests::LaterRequests;
use crate::lookup_table::LookupTable;
use crate::notifications::{self, Notifications};
use crate::presentation::Presentation;
use crate::stats::{MountStats, Op, Timing};

mod later;
mod replies;
mod requests;

use later::Later;
use replies::Answers;

/// What a running mount shares with the rest of the host (status, tests).
#[derive(Debug, Default)]
pub struct MountShared {
    pub lookups: LookupTable,
    pub stats: MountStats,
    pub anomalies: Anomalies,
    /// The requests waiting inside a plugin that answers later.
    pub later: LaterRequests,
}

impl MountShared {
    pub fn with_max_in_flight(cap: usize) -> Self {
        MountShared { later: LaterRequests::new(cap), ..MountShared::default() }
    }
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
    /// `uid=`, `gid=`, `umask=`: what every attribute shows.
    pub presentation: Presentation,
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
        if self.shared.later.entries_pending() {
            return false;
        }
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

/// What answers need of the plugin behind them: forgets, and releasing the handle of
/// a create whose entry was refused.
pub(crate) trait MountTarget: ForgetTarget {
    fn release_refused(&self, ino: u64, fh: u64, flags: i32);
}

impl<O: RawFilesystem + 'static> MountTarget for Core<O> {
    fn release_refused(&self, ino: u64, fh: u64, flags: i32) {
        let _ = self.fs.release(&RequestCtx::default(), ino, fh, flags, ROption::RNone, false);
    }
}

/// One mount's `fuser::Filesystem`.
pub struct Dispatch<O: RawFilesystem + 'static> {
    core: Arc<Core<O>>,
    /// How answers are checked, counted and sent: shared with replies given later.
    answers: Arc<Answers>,
    /// The plugin's part that answers later, and the operations it takes.
    later: Option<Later>,
    notifications: Arc<Notifications>,
    name: String,
    /// This mount's place in the fatal-signal handler's table.
    crash: Option<crash::Registration>,
}

/// What every request holds while it runs: for serialized plugins the mount's call
/// lock, and for requests that hand out entries the forget barrier. (The mount's span
/// is entered once per session thread, see [`stay_in_span`].)
struct InCall<'a> {
    _crash: Option<crash::Serving>,
    _entries: Option<RwLockReadGuard<'a, ()>>,
    _serial: Option<MutexGuard<'a, ()>>,
    /// `None` for a request answered later: its latency is recorded when it is.
    _timing: Option<Timing<'a>>,
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
    /// The mount span this session thread stays in, entered at its first request.
    static ENTERED_SPAN: RefCell<Option<EnteredSpan>> = const { RefCell::new(None) };
}

/// Keeps the calling session thread inside `span`, so that every line logged while it
/// serves a request (the plugin's included) names the mount. A session's worker threads
/// serve that one mount, so the span is entered at a thread's first request and left
/// when the thread ends: entering and leaving it per request took `EnvFilter`'s
/// process-wide lock twice per request and was a quarter of the host's own CPU time
/// in a statfs profile.
#[inline]
fn stay_in_span(span: &Span) {
    ENTERED_SPAN.with_borrow_mut(|entered| {
        if span.is_disabled() || entered.as_ref().and_then(|current| current.id()) == span.id() {
            return;
        }
        // Leave the other mount's span first: a thread is in one mount's span at a time.
        *entered = None;
        *entered = Some(span.clone().entered());
    });
}

/// Whether `op`'s answer hands the kernel entries (each a lookup to count), so that
/// the request must hold the forget barrier while it runs.
#[inline]
fn hands_out_entries(op: Op) -> bool {
    matches!(op, Op::Lookup | Op::Mknod | Op::Mkdir | Op::Symlink | Op::Link | Op::Create | Op::Readdirplus)
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

/// The `FOPEN_*` flags of an open the plugin `answered`, with what the host adds:
/// parallel direct writes where the plugin consents, and, for a file opened
/// `O_DIRECT` (`direct`), the kernel's direct I/O path, as libfuse's passthrough_hp
/// does. The caller bypasses the page cache either way; the generic O_DIRECT path
/// (`generic_file_direct_write`, `fuse_direct_IO`) cost passthrough ~15 % of its
/// 1 MiB O_DIRECT write bandwidth. Only where the kernel keeps such handles coherent
/// with the page cache (`keep_direct_io_coherent`).
fn fopen_flags(answered: u32, granted: u64, direct: bool) -> FopenFlags {
    let mut flags = FopenFlags::from_bits_truncate(answered & open_flags::ALL);
    if granted & capability::PARALLEL_DIRECT_WRITES != 0 {
        flags |= FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES;
    }
    if direct {
        flags |= FopenFlags::FOPEN_DIRECT_IO;
    }
    flags
}

fn duration(ttl: ROption<RDuration>) -> Option<Duration> {
    ttl.into_option().map(Duration::from)
}

/// An entry answer's TTLs, (attributes, entry): its own, or `mount`'s where it gives
/// none.
pub(crate) fn entry_ttls(answer: &EntryTtl, mount: (Duration, Duration)) -> (Duration, Duration) {
    (duration(answer.attr_ttl).unwrap_or(mount.0), duration(answer.entry_ttl).unwrap_or(mount.1))
}

/// The one TTL fuser takes for a name and its attributes together (create's and
/// readdirplus's answers; the protocol has both): the shorter, so neither is trusted
/// for longer than the answer or the operator allowed.
pub(crate) fn one_ttl(answer: &EntryTtl, mount: (Duration, Duration)) -> Duration {
    let (attr_ttl, entry_ttl) = entry_ttls(answer, mount);
    attr_ttl.min(entry_ttl)
}

impl<O: RawFilesystem + 'static> Dispatch<O> {
    /// Dispatch for `fs`; its forgetter starts when the kernel's INIT arrives.
    pub fn new(fs: O, shared: Arc<MountShared>, config: DispatchConfig, name: &str, span: Span) -> Self {
        let serial = config.serialized.then(|| Mutex::new(()));
        let core = Arc::new(Core {
            fs,
            shared: Arc::clone(&shared),
            serial,
            forget_barrier: RwLock::new(()),
            destroyed: AtomicBool::new(false),
            span: span.clone(),
        });
        let target = Arc::clone(&core) as Arc<dyn MountTarget>;
        Dispatch {
            core,
            answers: Arc::new(Answers::new(shared, config, target, span.clone())),
            later: None,
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

    /// What a request holds while the plugin serves it: the crash slot, a
    /// serialized plugin's call lock and then (like `destroy_once`, in that order) the
    /// forget barrier for requests that hand out entries. `timing` is `None` for a
    /// request answered later: its latency is recorded when it is answered.
    #[inline]
    fn enter<'a>(&'a self, op: Op, timing: Option<Timing<'a>>) -> InCall<'a> {
        stay_in_span(&self.core.span);
        let crash = self.crash.as_ref().map(|registration| registration.serving(op));
        let serial = self.core.serial.as_ref().map(Mutex::lock);
        let entries = hands_out_entries(op).then(|| self.core.forget_barrier.read());
        InCall { _crash: crash, _entries: entries, _serial: serial, _timing: timing }
    }

    /// Runs one request inside its [`InCall`]; a panic in it is answered `EIO` (the
    /// reply's drop sends it while unwinding) and the worker thread lives on.
    #[inline]
    fn serve(&self, op: Op, request: impl FnOnce()) {
        let _call = self.enter(op, Some(self.core.shared.stats.begin(op)));
        self.catching_panics(op, request);
    }

    #[inline]
    fn catching_panics(&self, op: Op, request: impl FnOnce()) {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(request)) {
            self.core.shared.anomalies.host_panic(op, &*panic);
        }
    }
}

impl<O: RawFilesystem + 'static> Drop for Dispatch<O> {
    /// A dispatch dropped without its session's `destroy` (the mount failed after the
    /// plugin built its filesystem) still destroys the filesystem, once.
    fn drop(&mut self) {
        fuser::Filesystem::destroy(self);
    }
}
