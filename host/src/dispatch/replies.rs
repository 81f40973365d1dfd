//! How dispatch answers: each plugin answer checked the way the kernel will check it
//! ([`crate::contract`]), counted when it hands out an entry, and sent with the TTLs
//! the plugin or the mount chose.

use std::time::Duration;

use abi_stable::std_types::{RResult, RSliceMut};
use fusehost_abi::{AttrTtl, Entry, EntryTtl, Errno, RawFilesystem};
use fuser::{FileHandle, ReplyAttr, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyXattr};

use super::{duration, fopen_flags, with_buffer, Dispatch, NEGATIVE_ATTR};
use crate::contract::{check_attr, check_entry, Expected, REUSED_INODE};
use crate::stats::Op;

impl<O: RawFilesystem + 'static> Dispatch<O> {
    /// An entry about to be handed to the kernel: checked as the kernel will
    /// ([`check_entry`]), counted (refused when the kernel still holds its number under
    /// another generation), and presented as the mount's `uid=`/`gid=`/`umask=` say.
    pub(super) fn count_entry(
        &self,
        entry: &Entry,
        expected: Expected,
    ) -> Result<(fuser::FileAttr, fuser::Generation), &'static str> {
        let (mut attr, generation) = check_entry(entry, expected)?;
        self.core.shared.lookups.remember(entry.attr.ino, entry.generation).map_err(|_| REUSED_INODE)?;
        self.config.presentation.apply(&mut attr);
        Ok((attr, generation))
    }

    /// Counts the entry and hands it to the kernel with these TTLs; an entry the
    /// kernel would refuse is `EIO`, and the plugin hears `forget` for it.
    fn send_entry(&self, op: Op, expected: Expected, entry: &Entry, ttls: (Duration, Duration), reply: ReplyEntry) {
        match self.count_entry(entry, expected) {
            Ok((attr, generation)) => reply.entry_with_ttls(&ttls.0, &ttls.1, &attr, generation),
            Err(why) => {
                reply.error(self.invalid(op, why));
                self.undelivered(entry.attr.ino);
            }
        }
    }

    /// Answers mknod, mkdir, symlink and link: the entry, with the mount's TTLs.
    pub(super) fn reply_entry(&self, op: Op, expected: Expected, answer: RResult<Entry, Errno>, reply: ReplyEntry) {
        match answer.into_result() {
            Ok(entry) => self.send_entry(op, expected, &entry, (self.config.attr_ttl, self.config.entry_ttl), reply),
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
            Ok(found) => {
                let attr_ttl = duration(found.attr_ttl).unwrap_or(self.config.attr_ttl);
                let entry_ttl = duration(found.entry_ttl).unwrap_or(self.config.entry_ttl);
                self.send_entry(Op::Lookup, Expected::Found, &found.entry, (attr_ttl, entry_ttl), reply)
            }
            Err(errno) if errno == Errno::ENOENT && !self.config.negative_ttl.is_zero() => {
                self.core.shared.stats.error(Op::Lookup, libc::ENOENT);
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

    pub(super) fn reply_open(&self, op: Op, ino: u64, answer: RResult<fusehost_abi::Opened, Errno>, reply: ReplyOpen) {
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
    pub(super) fn reply_xattr(
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

    /// The TTL of a reply that carries an entry and its attributes under one TTL
    /// (create, readdirplus): the shorter one, so neither is trusted for longer than
    /// the operator allowed.
    pub(super) fn combined_ttl(&self) -> Duration {
        self.config.attr_ttl.min(self.config.entry_ttl)
    }
}
