//! How dispatch answers: each plugin answer checked the way the kernel will check it
//! ([`crate::contract`]), counted when it hands out an entry, and sent with the TTLs
//! the plugin or the mount chose.

use std::time::Duration;

use abi_stable::std_types::{RResult, RSliceMut};
use fusehost_abi::{Attr, Entry, EntryTtl, Errno, RawFilesystem};
use fuser::{FileHandle, ReplyAttr, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyXattr};

use super::{duration, fopen_flags, with_buffer, Dispatch, NEGATIVE_ATTR};
use crate::contract::{check_attr, check_entry, Expected, REUSED_INODE};
use crate::stats::Op;

impl<O: RawFilesystem + 'static> Dispatch<O> {
    /// [`check_entry`], and that the inode is not one the kernel still holds under
    /// another generation.
    pub(super) fn check_counted_entry(
        &self,
        entry: &Entry,
        expected: Expected,
    ) -> Result<(fuser::FileAttr, fuser::Generation), &'static str> {
        let mut checked = check_entry(entry, expected)?;
        self.config.presentation.apply(&mut checked.0);
        match self.core.shared.lookups.reused_with_new_generation(entry.attr.ino, entry.generation) {
            Some(_) => Err(REUSED_INODE),
            None => Ok(checked),
        }
    }

    /// Checks and counts the entry, then hands it to the kernel.
    pub(super) fn reply_entry(&self, op: Op, expected: Expected, answer: RResult<Entry, Errno>, reply: ReplyEntry) {
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
    pub(super) fn reply_lookup(&self, answer: RResult<EntryTtl, Errno>, reply: ReplyEntry) {
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

    pub(super) fn reply_attr(&self, op: Op, ino: u64, answer: RResult<Attr, Errno>, reply: ReplyAttr) {
        match answer.into_result() {
            Ok(attr) => match check_attr(&attr) {
                Ok(mut attr) => {
                    self.config.presentation.apply(&mut attr);
                    reply.attr(&self.config.attr_ttl, &attr)
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
