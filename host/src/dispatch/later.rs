//! Requests a plugin answers later, from any thread (ABI 1.2).
//!
//! For the operations its [`LaterFilesystem`] lists, dispatch does not wait for the
//! answer: it admits the request ([`LaterRequests`], which caps how many wait inside
//! the plugin), hands the plugin a [`HostReply`] that owns fuser's reply, and returns
//! the worker thread to the kernel at once. Whenever and wherever the plugin answers,
//! the reply goes through the same checks as a synchronous answer ([`Answers`]):
//! entries are counted at the moment they are sent, an answer of the wrong kind is
//! `EIO`, and a reply dropped unanswered is answered `EIO` once, logged and counted.
//! No FUSE request is ever left unanswered: its caller could not even be killed.
//!
//! A request that hands out entries holds the mount's forget barrier while the
//! plugin is called, like a synchronous one, and then holds it *as a count*
//! (`LaterRequests::hold_entries`) until its entry is counted: the forgetter confirms
//! no zero while such a request waits, so the plugin never hears `forget` for an inode
//! a waiting lookup is about to return.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RResult, RSlice};
use fusehost_abi::{
    operation, AttrTtl, Created, CreatedTtl, Entry, EntryTtl, Errno, FileLock, LaterFsObject, Opened, RawFilesystem,
    Reply, ReplyObject, Reply_TO, StatFs,
};
use fuser::{
    PollEvents, ReplyAttr, ReplyBmap, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty,
    ReplyEntry, ReplyIoctl, ReplyLock, ReplyLseek, ReplyOpen, ReplyPoll, ReplyStatfs, ReplyWrite, ReplyXattr,
};

use super::{hands_out_entries, Answers, Dispatch, InCall};
use crate::contract::Expected;
use crate::dir_sinks::{ReplyDirPlusSink, ReplyDirSink};
use crate::stats::Op;
use fusehost_abi::DirPlusSink as _;
use fusehost_abi::DirSink as _;

/// A listing being answered entry by entry.
#[derive(Default)]
pub(super) struct Listing {
    added: usize,
    invalid: Option<&'static str>,
    /// Entries the plugin produced that will not reach the kernel (readdirplus).
    undelivered: Vec<u64>,
}

/// What the kernel waits for, and so which answer fits.
pub(super) enum Pending {
    Lookup(ReplyEntry),
    Entry(ReplyEntry, Expected),
    /// getattr and setattr, about this inode.
    Attr(ReplyAttr, u64),
    /// read and readlink: at most this many bytes.
    Data(ReplyData, usize),
    /// write of this many bytes.
    Written(ReplyWrite, usize),
    Empty(ReplyEmpty),
    /// open and opendir of this inode, with the request's open flags.
    Opened(ReplyOpen, u64, i32),
    /// create with these open flags (to release a refused entry's handle).
    Created(ReplyCreate, i32),
    Statfs(ReplyStatfs),
    Dir(ReplyDirectory, Listing),
    DirPlus(ReplyDirectoryPlus, Listing),
    /// getxattr and listxattr with the caller's buffer size (0: a size probe).
    Xattr(ReplyXattr, u32),
    Offset(ReplyLseek),
    Lock(ReplyLock),
    Block(ReplyBmap),
    /// ioctl with room for this many bytes back.
    Ioctl(ReplyIoctl, usize),
    Poll(ReplyPoll),
}

impl Pending {
    pub(super) fn dir(reply: ReplyDirectory) -> Pending {
        Pending::Dir(reply, Listing::default())
    }

    pub(super) fn dir_plus(reply: ReplyDirectoryPlus) -> Pending {
        Pending::DirPlus(reply, Listing::default())
    }
}

/// The reply handle a plugin holds: answers the kernel once, checked like any answer.
pub(super) struct HostReply {
    pending: Option<Pending>,
    answers: Arc<Answers>,
    op: Op,
    id: u64,
    started: Instant,
    holds_entries: bool,
}

impl HostReply {
    /// Runs `answer` with the pending reply, once; a second answer is a breach.
    fn answer(&mut self, answer: impl FnOnce(&Answers, Op, Pending)) {
        match self.pending.take() {
            Some(pending) => {
                answer(&self.answers, self.op, pending);
                self.finish();
            }
            None => {
                let _span = self.answers.span.enter();
                self.answers.invalid(self.op, "a second answer to one request (ignored)");
            }
        }
    }

    /// The request is answered: its latency is recorded, its slot freed, and an entry
    /// it handed out is counted by now, so the forget barrier it held is released.
    fn finish(&mut self) {
        let shared = &self.answers.shared;
        shared.stats.answered(self.op, self.started);
        shared.later.finish(self.id);
        if self.holds_entries {
            self.holds_entries = false;
            shared.later.release_entries();
        }
    }

    fn wrong_kind(answers: &Answers, op: Op, pending: Pending, what: &str) {
        let _span = answers.span.enter();
        let errno = answers.invalid(op, what);
        answer_error_with(answers, pending, errno);
    }
}

/// Answers `pending` with the kernel errno `errno`, already counted (a listing with
/// entries added sends them instead).
fn answer_error_with(answers: &Answers, pending: Pending, errno: fuser::Errno) {
    match pending {
        Pending::Lookup(reply) | Pending::Entry(reply, _) => reply.error(errno),
        Pending::Attr(reply, _) => reply.error(errno),
        Pending::Data(reply, _) => reply.error(errno),
        Pending::Written(reply, _) => reply.error(errno),
        Pending::Empty(reply) => reply.error(errno),
        Pending::Opened(reply, ..) => reply.error(errno),
        Pending::Created(reply, _) => reply.error(errno),
        Pending::Statfs(reply) => reply.error(errno),
        Pending::Xattr(reply, _) => reply.error(errno),
        Pending::Offset(reply) => reply.error(errno),
        Pending::Lock(reply) => reply.error(errno),
        Pending::Block(reply) => reply.error(errno),
        Pending::Ioctl(reply, _) => reply.error(errno),
        Pending::Poll(reply) => reply.error(errno),
        Pending::Dir(reply, listing) => {
            let outcome = if listing.added > 0 { Ok(()) } else { Err(errno) };
            send_listing(answers, listing, reply, outcome)
        }
        Pending::DirPlus(reply, listing) => {
            let outcome = if listing.added > 0 { Ok(()) } else { Err(errno) };
            send_listing(answers, listing, reply, outcome)
        }
    }
}

/// The two listing replies, ended alike.
trait ListingReply {
    fn ok(self);
    fn error(self, errno: fuser::Errno);
}

impl ListingReply for ReplyDirectory {
    fn ok(self) {
        ReplyDirectory::ok(self)
    }
    fn error(self, errno: fuser::Errno) {
        ReplyDirectory::error(self, errno)
    }
}

impl ListingReply for ReplyDirectoryPlus {
    fn ok(self) {
        ReplyDirectoryPlus::ok(self)
    }
    fn error(self, errno: fuser::Errno) {
        ReplyDirectoryPlus::error(self, errno)
    }
}

/// Ends a listing with the plugin's `answer`, checked and counted as
/// [`Answers::end_listing`] does.
fn end_listing(answers: &Answers, op: Op, listing: Listing, reply: impl ListingReply, answer: RResult<(), Errno>) {
    let outcome = answers.end_listing(op, listing.added, listing.invalid, answer);
    send_listing(answers, listing, reply, outcome)
}

/// Sends a listing's end; entries that never reached the kernel may be forgotten.
fn send_listing(answers: &Answers, listing: Listing, reply: impl ListingReply, outcome: Result<(), fuser::Errno>) {
    match outcome {
        Ok(()) => reply.ok(),
        Err(errno) => reply.error(errno),
    }
    for ino in listing.undelivered {
        answers.undelivered(ino);
    }
}

impl Reply for HostReply {
    fn error(&mut self, errno: Errno) {
        self.answer(|answers, op, pending| match pending {
            Pending::Lookup(reply) => answers.reply_lookup(RResult::RErr(errno), reply),
            Pending::Attr(reply, ino) => reply.error(answers.fail_on(op, ino, errno)),
            Pending::Opened(reply, ino, _) => reply.error(answers.fail_on(op, ino, errno)),
            // What a file without ioctls answers (the kernel would turn ENOSYS into it too).
            Pending::Ioctl(reply, _) if errno == Errno::ENOSYS => reply.error(fuser::Errno::ENOTTY),
            Pending::Dir(reply, listing) => end_listing(answers, op, listing, reply, RResult::RErr(errno)),
            Pending::DirPlus(reply, listing) => end_listing(answers, op, listing, reply, RResult::RErr(errno)),
            other => {
                let kernel = answers.fail(op, errno);
                answer_error_with(answers, other, kernel)
            }
        });
    }

    fn empty(&mut self) {
        self.answer(|answers, op, pending| match pending {
            Pending::Empty(reply) => reply.ok(),
            Pending::Dir(reply, listing) => end_listing(answers, op, listing, reply, RResult::ROk(())),
            Pending::DirPlus(reply, listing) => end_listing(answers, op, listing, reply, RResult::ROk(())),
            other => HostReply::wrong_kind(answers, op, other, "an empty answer where one with data was due"),
        });
    }

    fn entry(&mut self, entry: &EntryTtl) {
        self.answer(|answers, op, pending| match pending {
            Pending::Lookup(reply) => answers.reply_lookup(RResult::ROk(*entry), reply),
            Pending::Entry(reply, expected) => {
                answers.send_entry(op, expected, &entry.entry, answers.entry_ttls(entry), reply)
            }
            other => {
                HostReply::wrong_kind(answers, op, other, "an entry to a request that hands out none");
                answers.undelivered(entry.entry.attr.ino);
            }
        });
    }

    fn attr(&mut self, attr: &AttrTtl) {
        self.answer(|answers, op, pending| match pending {
            Pending::Attr(reply, ino) => answers.reply_attr(op, ino, RResult::ROk(*attr), reply),
            other => HostReply::wrong_kind(answers, op, other, "attributes where another answer was due"),
        });
    }

    fn data(&mut self, data: RSlice<'_, u8>) {
        self.answer(|answers, op, pending| match pending {
            Pending::Data(reply, most) if data.len() <= most => {
                if op == Op::Read {
                    answers.shared.stats.read_bytes(data.len());
                }
                reply.data(data.as_slice())
            }
            Pending::Data(reply, most) => {
                let why =
                    if op == Op::Readlink { "a link target longer than PATH_MAX" } else { "more bytes than asked" };
                HostReply::wrong_kind(answers, op, Pending::Data(reply, most), why)
            }
            Pending::Xattr(reply, size) => answers.send_xattr(op, size, data.len() as u64, data.as_slice(), reply),
            other => HostReply::wrong_kind(answers, op, other, "data where another answer was due"),
        });
    }

    fn written(&mut self, count: u32) {
        self.answer(|answers, op, pending| match pending {
            Pending::Written(reply, given) if count as usize <= given => {
                if op == Op::Write {
                    answers.shared.stats.written_bytes(u64::from(count));
                }
                reply.written(count)
            }
            Pending::Written(reply, given) => HostReply::wrong_kind(
                answers,
                op,
                Pending::Written(reply, given),
                "more bytes written than it was given",
            ),
            other => HostReply::wrong_kind(answers, op, other, "a write count where another answer was due"),
        });
    }

    fn opened(&mut self, opened: &Opened) {
        self.answer(|answers, op, pending| match pending {
            Pending::Opened(reply, ino, flags) => answers.reply_open(op, ino, flags, RResult::ROk(*opened), reply),
            other => HostReply::wrong_kind(answers, op, other, "an open handle where another answer was due"),
        });
    }

    fn created(&mut self, created: &Created) {
        self.created_ttl(&CreatedTtl::from(*created))
    }

    fn created_ttl(&mut self, created: &CreatedTtl) {
        self.answer(|answers, op, pending| match pending {
            Pending::Created(reply, flags) => answers.reply_created(flags, RResult::ROk(*created), reply, |ino, fh| {
                answers.target.release_refused(ino, fh, flags)
            }),
            other => {
                HostReply::wrong_kind(answers, op, other, "a created file where another answer was due");
                answers.undelivered(created.entry.entry.attr.ino);
            }
        });
    }

    fn statfs(&mut self, statfs: &StatFs) {
        self.answer(|answers, op, pending| match pending {
            Pending::Statfs(reply) => answers.reply_statfs(RResult::ROk(*statfs), reply),
            other => HostReply::wrong_kind(answers, op, other, "filesystem figures where another answer was due"),
        });
    }

    fn offset(&mut self, offset: i64) {
        self.answer(|answers, op, pending| match pending {
            Pending::Offset(reply) => reply.offset(offset),
            other => HostReply::wrong_kind(answers, op, other, "an offset where another answer was due"),
        });
    }

    fn lock(&mut self, lock: &FileLock) {
        self.answer(|answers, op, pending| match pending {
            Pending::Lock(reply) => reply.locked(lock.start, lock.end, lock.typ, lock.pid),
            other => HostReply::wrong_kind(answers, op, other, "a lock where another answer was due"),
        });
    }

    fn block(&mut self, block: u64) {
        self.answer(|answers, op, pending| match pending {
            Pending::Block(reply) => reply.bmap(block),
            other => HostReply::wrong_kind(answers, op, other, "a block number where another answer was due"),
        });
    }

    fn ioctl(&mut self, result: i32, output: RSlice<'_, u8>) {
        self.answer(|answers, op, pending| match pending {
            Pending::Ioctl(reply, room) if output.len() <= room => reply.ioctl(result, output.as_slice()),
            other => HostReply::wrong_kind(answers, op, other, "an ioctl answer to another request, or too long"),
        });
    }

    fn poll(&mut self, events: u32) {
        self.answer(|answers, op, pending| match pending {
            Pending::Poll(reply) => reply.poll(PollEvents::from_bits_truncate(events)),
            other => HostReply::wrong_kind(answers, op, other, "poll events where another answer was due"),
        });
    }

    fn add_dir_entry(&mut self, ino: u64, next_offset: i64, kind: u32, name: RSlice<'_, u8>) -> bool {
        match &mut self.pending {
            Some(Pending::Dir(reply, listing)) => {
                let mut sink = ReplyDirSink { reply, added: listing.added, invalid: listing.invalid };
                let full = sink.add(ino, next_offset, kind, name);
                (listing.added, listing.invalid) = (sink.added, sink.invalid);
                full
            }
            _ => {
                let (answers, op) = (&self.answers, self.op);
                let _span = answers.span.enter();
                answers.invalid(op, "a readdir entry to another request (ignored)");
                true
            }
        }
    }

    fn add_dir_plus_entry(&mut self, next_offset: i64, name: RSlice<'_, u8>, entry: &Entry) -> bool {
        self.add_dir_plus_entry_ttl(next_offset, name, &EntryTtl::with_mount_ttls(*entry))
    }

    fn add_dir_plus_entry_ttl(&mut self, next_offset: i64, name: RSlice<'_, u8>, entry: &EntryTtl) -> bool {
        let answers = &self.answers;
        match &mut self.pending {
            Some(Pending::DirPlus(reply, listing)) => {
                let mut sink = ReplyDirPlusSink {
                    reply,
                    lookups: &answers.shared.lookups,
                    mount_ttls: answers.mount_ttls(),
                    presentation: answers.config.presentation,
                    added: listing.added,
                    invalid: listing.invalid,
                    undelivered: &mut listing.undelivered,
                };
                let full = sink.add_ttl(next_offset, name, entry);
                (listing.added, listing.invalid) = (sink.added, sink.invalid);
                full
            }
            _ => {
                let _span = answers.span.enter();
                answers.invalid(self.op, "a readdirplus entry to another request (ignored)");
                answers.undelivered(entry.entry.attr.ino);
                true
            }
        }
    }
}

impl Drop for HostReply {
    /// A reply dropped unanswered (a cancelled task, a panic, a forgotten handle) is
    /// answered `EIO` now: the caller must never hang.
    fn drop(&mut self) {
        let Some(pending) = self.pending.take() else { return };
        let answers = Arc::clone(&self.answers);
        {
            let _span = answers.span.enter();
            answers.shared.later.dropped();
            answers.shared.stats.error(self.op, libc::EIO);
            answers.shared.anomalies.dropped_reply(self.op);
        }
        answer_error_with(&answers, pending, fuser::Errno::EIO);
        self.finish();
    }
}

/// The requests one mount's plugin answers later.
pub(super) struct Later {
    pub(super) fs: LaterFsObject,
    pub(super) operations: u64,
}

/// The `fusehost_abi::operation` bit of a request (0 for forget, which has no answer).
fn operation_bit(op: Op) -> u64 {
    match op {
        Op::Lookup => operation::LOOKUP,
        Op::Getattr => operation::GETATTR,
        Op::Setattr => operation::SETATTR,
        Op::Readlink => operation::READLINK,
        Op::Mknod => operation::MKNOD,
        Op::Mkdir => operation::MKDIR,
        Op::Unlink => operation::UNLINK,
        Op::Rmdir => operation::RMDIR,
        Op::Symlink => operation::SYMLINK,
        Op::Rename => operation::RENAME,
        Op::Link => operation::LINK,
        Op::Open => operation::OPEN,
        Op::Read => operation::READ,
        Op::Write => operation::WRITE,
        Op::Flush => operation::FLUSH,
        Op::Release => operation::RELEASE,
        Op::Fsync => operation::FSYNC,
        Op::Opendir => operation::OPENDIR,
        Op::Readdir => operation::READDIR,
        Op::Readdirplus => operation::READDIRPLUS,
        Op::Releasedir => operation::RELEASEDIR,
        Op::Statfs => operation::STATFS,
        Op::Create => operation::CREATE,
        Op::Setxattr => operation::SETXATTR,
        Op::Getxattr => operation::GETXATTR,
        Op::Listxattr => operation::LISTXATTR,
        Op::Removexattr => operation::REMOVEXATTR,
        Op::Access => operation::ACCESS,
        Op::Fsyncdir => operation::FSYNCDIR,
        Op::Fallocate => operation::FALLOCATE,
        Op::Lseek => operation::LSEEK,
        Op::CopyFileRange => operation::COPY_FILE_RANGE,
        Op::Getlk => operation::GETLK,
        Op::Setlk => operation::SETLK,
        Op::Ioctl => operation::IOCTL,
        Op::Poll => operation::POLL,
        Op::Bmap => operation::BMAP,
        _ => 0,
    }
}

impl<O: RawFilesystem + 'static> Dispatch<O> {
    /// The plugin's later-answering part, when it answers `op` later.
    #[inline]
    pub(super) fn later(&self, op: Op) -> Option<&LaterFsObject> {
        self.later.as_ref().filter(|later| later.operations & operation_bit(op) != 0).map(|later| &later.fs)
    }

    /// Hands one request to the plugin's later-answering part (`call`, given the reply
    /// handle for `pending`), and returns without waiting for the answer.
    pub(super) fn serve_later(&self, op: Op, pending: Pending, call: impl FnOnce(ReplyObject)) {
        let shared = &self.answers.shared;
        let started = Instant::now();
        let id = shared.later.admit(op, started);
        shared.stats.request(op);
        let holds_entries = hands_out_entries(op);
        let _call: InCall<'_> = self.enter(op, None);
        if holds_entries {
            shared.later.hold_entries();
        }
        let reply =
            HostReply { pending: Some(pending), answers: Arc::clone(&self.answers), op, id, started, holds_entries };
        let handle: ReplyObject = Reply_TO::from_value(reply, TD_Opaque);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| call(handle))) {
            shared.anomalies.host_panic(op, &*panic);
        }
    }
}
