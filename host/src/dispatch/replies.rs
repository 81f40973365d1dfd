//! How dispatch answers: each plugin answer checked the way the kernel will check it
//! ([`crate::contract`]), counted when it hands out an entry, and sent with the TTLs
//! the plugin or the mount chose.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use abi_stable::std_types::{RResult, RSliceMut};
use fusehost_abi::{AttrTtl, CreatedTtl, Entry, EntryTtl, Errno, StatFs};
use fusehost_plugin_api::FileKind;
use fuser::{
    FileHandle, FopenFlags, ReplyAttr, ReplyCreate, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyXattr,
};

use super::{duration, fopen_flags, with_buffer, DispatchConfig, MountShared, MountTarget, NEGATIVE_ATTR};
use crate::backing::Backing;
use crate::contract::{check_attr, check_entry, kernel_errno, Expected, REUSED_INODE};
use crate::forgetter::Forgetter;
use crate::stats::Op;
use tracing::Span;

/// Everything a mount's answers need, apart from the plugin's filesystem: shared by
/// the request threads and by the replies a plugin gives later from its own threads.
pub(crate) struct Answers {
    pub(super) shared: Arc<MountShared>,
    pub(super) config: DispatchConfig,
    pub(super) backing: Backing,
    /// The capabilities in effect since the kernel's INIT.
    granted: AtomicU64,
    /// Whether `O_DIRECT` opens get the kernel's direct I/O path (set at INIT).
    direct_opens: AtomicBool,
    pub(super) target: Arc<dyn MountTarget>,
    /// Started at the kernel's INIT.
    pub(super) forgetter: OnceLock<Forgetter>,
    /// The mount's span, for what answers given later log from the plugin's threads.
    pub(super) span: Span,
}

impl Answers {
    pub(super) fn new(
        shared: Arc<MountShared>,
        config: DispatchConfig,
        target: Arc<dyn MountTarget>,
        span: Span,
    ) -> Self {
        Answers {
            shared,
            config,
            backing: Backing::default(),
            granted: AtomicU64::new(0),
            direct_opens: AtomicBool::new(false),
            target,
            forgetter: OnceLock::new(),
            span,
        }
    }

    pub(super) fn grant(&self, capabilities: u64, direct_io_coherent: bool) {
        self.granted.store(capabilities, Ordering::Relaxed);
        self.direct_opens.store(direct_io_coherent, Ordering::Relaxed);
    }

    #[inline]
    pub(super) fn granted(&self) -> u64 {
        self.granted.load(Ordering::Relaxed)
    }

    /// The `FOPEN_*` flags of the answer to an open (or create) with `open_flags`.
    #[inline]
    pub(super) fn fopen_flags(&self, answered: u32, open_flags: i32) -> FopenFlags {
        let direct = open_flags & libc::O_DIRECT != 0 && self.direct_opens.load(Ordering::Relaxed);
        fopen_flags(answered, self.granted(), direct)
    }
    #[inline]
    pub(super) fn fail(&self, op: Op, errno: Errno) -> fuser::Errno {
        let kernel = kernel_errno(errno);
        self.shared.stats.error(op, if kernel.is_some() { errno.0 } else { libc::EIO });
        kernel.unwrap_or_else(|| self.shared.anomalies.invalid_errno(op, errno))
    }

    /// [`Dispatch::fail`] for a request about inode `ino`: an `ENOENT` for an inode the
    /// kernel holds is the plugin denying what it handed out.
    #[inline]
    pub(super) fn fail_on(&self, op: Op, ino: u64, errno: Errno) -> fuser::Errno {
        if errno == Errno::ENOENT && self.shared.lookups.count(ino) > 0 {
            self.shared.anomalies.denied_inode(op, ino);
        }
        self.fail(op, errno)
    }

    /// A plugin answer that breaks the protocol.
    #[cold]
    pub(super) fn invalid(&self, op: Op, what: &str) -> fuser::Errno {
        self.shared.stats.error(op, libc::EIO);
        self.shared.anomalies.invalid_answer(op, what)
    }

    /// The plugin produced `ino` but the kernel will not hold it through this reply:
    /// if nothing else holds it, the plugin hears `forget` for it.
    pub(super) fn undelivered(&self, ino: u64) {
        if ino > 1 && self.shared.lookups.count(ino) == 0 {
            self.forget_when_free(ino);
        }
    }

    /// Confirms a zero count and tells the plugin right here when nothing handing out
    /// entries is in flight (the common case: an unlinked inode is freed as soon as it
    /// would have been), else leaves it to the forgetter thread. Never waits.
    pub(super) fn forget_when_free(&self, ino: u64) {
        if !self.target.try_forget(&[ino]) {
            if let Some(forgetter) = self.forgetter.get() {
                forgetter.push(ino);
            }
        }
    }

    /// An entry about to be handed to the kernel: checked as the kernel will
    /// ([`check_entry`]), counted (refused when the kernel still holds its number under
    /// another generation), and presented as the mount's `uid=`/`gid=`/`umask=` say.
    pub(super) fn count_entry(
        &self,
        entry: &Entry,
        expected: Expected,
    ) -> Result<(fuser::FileAttr, fuser::Generation), &'static str> {
        let (mut attr, generation) = check_entry(entry, expected)?;
        self.shared.lookups.remember(entry.attr.ino, entry.generation).map_err(|_| REUSED_INODE)?;
        self.config.presentation.apply(&mut attr);
        Ok((attr, generation))
    }

    /// Counts the entry and hands it to the kernel with these TTLs; an entry the
    /// kernel would refuse is `EIO`, and the plugin hears `forget` for it.
    pub(super) fn send_entry(
        &self,
        op: Op,
        expected: Expected,
        entry: &Entry,
        ttls: (Duration, Duration),
        reply: ReplyEntry,
    ) {
        match self.count_entry(entry, expected) {
            Ok((attr, generation)) => reply.entry_with_ttls(&ttls.0, &ttls.1, &attr, generation),
            Err(why) => {
                reply.error(self.invalid(op, why));
                self.undelivered(entry.attr.ino);
            }
        }
    }

    /// The mount's TTLs, (attributes, entry).
    pub(super) fn mount_ttls(&self) -> (Duration, Duration) {
        (self.config.attr_ttl, self.config.entry_ttl)
    }

    /// The TTLs of an entry answer, (attributes, entry): its own, or the mount's.
    pub(super) fn entry_ttls(&self, answer: &EntryTtl) -> (Duration, Duration) {
        super::entry_ttls(answer, self.mount_ttls())
    }

    /// Answers mknod, mkdir, symlink and link: the entry, with its own or the mount's
    /// TTLs.
    pub(super) fn reply_entry(&self, op: Op, expected: Expected, answer: RResult<EntryTtl, Errno>, reply: ReplyEntry) {
        match answer.into_result() {
            Ok(made) => self.send_entry(op, expected, &made.entry, self.entry_ttls(&made), reply),
            Err(errno) => reply.error(self.fail(op, errno)),
        }
    }

    /// Answers a lookup: an entry with its own or the mount's TTLs (counted), a
    /// negative entry (plugin's TTL, or the mount's `negative_ttl` for `ENOENT`), or
    /// an error.
    pub(super) fn reply_lookup(&self, answer: RResult<EntryTtl, Errno>, reply: ReplyEntry) {
        let negative = |reply: ReplyEntry, ttl: Duration| {
            reply.entry_with_ttls(&Duration::ZERO, &ttl, &NEGATIVE_ATTR, fuser::Generation(0))
        };
        match answer.into_result() {
            Ok(found) if found.entry.attr.ino == 0 => {
                negative(reply, duration(found.entry_ttl).unwrap_or(self.config.negative_ttl))
            }
            Ok(found) => self.send_entry(Op::Lookup, Expected::Found, &found.entry, self.entry_ttls(&found), reply),
            Err(errno) if errno == Errno::ENOENT && !self.config.negative_ttl.is_zero() => {
                self.shared.stats.error(Op::Lookup, libc::ENOENT);
                negative(reply, self.config.negative_ttl)
            }
            Err(errno) => reply.error(self.fail(Op::Lookup, errno)),
        }
    }

    /// Answers getattr and setattr: the attributes, presented, with their own TTL or
    /// the mount's.
    pub(super) fn reply_attr(&self, op: Op, ino: u64, answer: RResult<AttrTtl, Errno>, reply: ReplyAttr) {
        match answer.into_result() {
            Ok(found) => match check_attr(&found.attr) {
                Ok(mut attr) => {
                    self.config.presentation.apply(&mut attr);
                    reply.attr(&duration(found.attr_ttl).unwrap_or(self.config.attr_ttl), &attr)
                }
                Err(why) => reply.error(self.invalid(op, why)),
            },
            Err(errno) => reply.error(self.fail_on(op, ino, errno)),
        }
    }

    pub(super) fn reply_empty(&self, op: Op, answer: RResult<(), Errno>, reply: ReplyEmpty) {
        match answer.into_result() {
            Ok(()) => reply.ok(),
            Err(errno) => reply.error(self.fail(op, errno)),
        }
    }

    /// Answers open or opendir (a request with `open_flags`).
    pub(super) fn reply_open(
        &self,
        op: Op,
        ino: u64,
        open_flags: i32,
        answer: RResult<fusehost_abi::Opened, Errno>,
        reply: ReplyOpen,
    ) {
        match answer.into_result() {
            Ok(opened) => {
                let (fh, flags) = (FileHandle(opened.fh), self.fopen_flags(opened.flags, open_flags));
                match self.backing.share(ino, &opened, |fd| reply.open_backing(fd)) {
                    Some(id) => reply.opened_passthrough(fh, passed_through(flags), &id),
                    None => reply.opened(fh, flags),
                }
            }
            Err(errno) => reply.error(self.fail_on(op, ino, errno)),
        }
    }

    /// Answers create: the entry counted and the handle opened, under the shorter of
    /// its two TTLs (its own or the mount's: the kernel takes one for both); a refused
    /// entry is `EIO`, and its handle is handed to `release_refused(ino, fh)` (the
    /// kernel would never send RELEASE for it, nor FORGET).
    pub(super) fn reply_created(
        &self,
        open_flags: i32,
        answer: RResult<CreatedTtl, Errno>,
        reply: ReplyCreate,
        release_refused: impl FnOnce(u64, u64),
    ) {
        let created = match answer.into_result() {
            Ok(created) => created,
            Err(errno) => return reply.error(self.fail(Op::Create, errno)),
        };
        let entry = &created.entry.entry;
        let (attr, generation) = match self.count_entry(entry, Expected::Created(FileKind::RegularFile.mode_bits())) {
            Ok(checked) => checked,
            Err(why) => {
                reply.error(self.invalid(Op::Create, why));
                release_refused(entry.attr.ino, created.opened.fh);
                self.undelivered(entry.attr.ino);
                return;
            }
        };
        let ttl = super::one_ttl(&created.entry, self.mount_ttls());
        let (fh, flags) = (FileHandle(created.opened.fh), self.fopen_flags(created.opened.flags, open_flags));
        match self.backing.share(attr.ino.0, &created.opened, |fd| reply.open_backing(fd)) {
            Some(id) => reply.created_passthrough(&ttl, &attr, generation, fh, passed_through(flags), &id),
            None => reply.created(&ttl, &attr, generation, fh, flags),
        }
    }

    /// Answers statfs.
    pub(super) fn reply_statfs(&self, answer: RResult<StatFs, Errno>, reply: ReplyStatfs) {
        match answer.into_result() {
            Ok(s) => reply.statfs(s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize),
            Err(errno) => reply.error(self.fail(Op::Statfs, errno)),
        }
    }

    /// Answers getxattr/listxattr, whose value is `full` bytes long, of which `value`
    /// holds what fits the caller's buffer of `size`: the size for a probe
    /// (`size == 0`), the value when it fits, else `ERANGE`.
    pub(super) fn send_xattr(&self, op: Op, size: u32, full: u64, value: &[u8], reply: ReplyXattr) {
        if size == 0 {
            match u32::try_from(full) {
                Ok(full) => reply.size(full),
                Err(_) => reply.error(self.fail(op, Errno::E2BIG)),
            }
        } else if full <= u64::from(size) {
            reply.data(&value[..(full as usize).min(value.len())])
        } else {
            reply.error(self.fail(op, Errno::ERANGE))
        }
    }

    /// Answers getxattr/listxattr through a buffer of the caller's size lent to `fetch`.
    pub(super) fn reply_xattr(
        &self,
        op: Op,
        size: u32,
        reply: ReplyXattr,
        fetch: impl FnOnce(RSliceMut<'_, u8>) -> RResult<u64, Errno>,
    ) {
        with_buffer(size as usize, |buffer| match fetch(RSliceMut::from_mut_slice(buffer)).into_result() {
            Ok(full) => self.send_xattr(op, size, full, buffer, reply),
            Err(errno) => reply.error(self.fail(op, errno)),
        })
    }

    /// How a listing ends. Entries already added are sent whatever else happened: a
    /// partial listing is valid (the kernel asks again from there), and readdirplus
    /// entries are already counted, so they must reach the kernel. An invalid entry is
    /// counted and logged either way; an error is reported only when nothing was added.
    pub(super) fn end_listing(
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
}

/// The flags of an open the kernel serves from the plugin's file directly: without
/// page-cache hints, which mean nothing there (the backing file's own cache serves)
/// and make the kernel fail the open with `EIO` (`FOPEN_KEEP_CACHE`, seen on 6.18).
/// A plugin asks for the caching it wants should passthrough be refused.
fn passed_through(flags: FopenFlags) -> FopenFlags {
    flags - (FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_DIRECT_IO)
}

#[cfg(test)]
mod tests {
    use super::*;

    use fusehost_abi::capability;

    #[test]
    fn an_o_direct_open_takes_the_direct_io_path_and_parallel_writes_need_consent() {
        let plain = fopen_flags(FopenFlags::FOPEN_KEEP_CACHE.bits(), 0, false);
        assert_eq!(plain, FopenFlags::FOPEN_KEEP_CACHE);
        let direct = fopen_flags(FopenFlags::FOPEN_KEEP_CACHE.bits(), capability::PARALLEL_DIRECT_WRITES, true);
        let expected =
            FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES;
        assert_eq!(direct, expected);
    }

    #[test]
    fn a_passed_through_open_carries_no_page_cache_hints() {
        let asked = FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_NOFLUSH;
        assert_eq!(passed_through(asked), FopenFlags::FOPEN_NOFLUSH);
    }
}
