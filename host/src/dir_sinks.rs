//! Directory entries from the plugin straight into fuser's reply buffer.
//!
//! readdir entries need only a valid kind. readdirplus entries are handed to the
//! kernel like lookups, so each one that reaches the buffer is counted, each is checked
//! as the kernel will check it, and one the plugin produced but that did not reach the
//! kernel (the buffer was full, or the entry was invalid) is reported so that the
//! plugin still hears `forget` for it when nothing else holds it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use abi_stable::std_types::RSlice;
use fusehost_abi::{DirPlusSink, DirSink, Entry, EntryTtl};
use fuser::{INodeNo, ReplyDirectory, ReplyDirectoryPlus};

use crate::contract::{check_entry, entry_kind, Expected, REUSED_INODE};
use crate::dispatch::one_ttl;
use crate::lookup_table::LookupTable;
use crate::presentation::Presentation;

/// Puts readdir entries into fuser's reply buffer.
pub struct ReplyDirSink<'r> {
    pub reply: &'r mut ReplyDirectory,
    pub added: usize,
    /// Why an entry was refused, if one was.
    pub invalid: Option<&'static str>,
}

impl DirSink for ReplyDirSink<'_> {
    fn add(&mut self, ino: u64, next_offset: i64, kind: u32, name: RSlice<'_, u8>) -> bool {
        let kind = match entry_kind(kind) {
            Ok(kind) => kind,
            Err(why) => {
                self.invalid = Some(why);
                return true;
            }
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
pub struct ReplyDirPlusSink<'r> {
    pub reply: &'r mut ReplyDirectoryPlus,
    pub lookups: &'r LookupTable,
    /// The mount's TTLs, (attributes, entry), for entries that give none.
    pub mount_ttls: (Duration, Duration),
    pub presentation: Presentation,
    pub added: usize,
    pub invalid: Option<&'static str>,
    /// Inodes the plugin produced that the kernel will never hold through this reply
    /// (a per-thread list, so a listing allocates nothing).
    pub undelivered: &'r mut Vec<u64>,
}

fn is_dot_or_dotdot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

impl DirPlusSink for ReplyDirPlusSink<'_> {
    fn add(&mut self, next_offset: i64, name: RSlice<'_, u8>, entry: &Entry) -> bool {
        self.add_ttl(next_offset, name, &EntryTtl::with_mount_ttls(*entry))
    }

    /// fuser takes one TTL for a readdirplus entry's name and attributes: the shorter
    /// (`dispatch::one_ttl`).
    fn add_ttl(&mut self, next_offset: i64, name: RSlice<'_, u8>, answer: &EntryTtl) -> bool {
        let (entry, name) = (&answer.entry, name.as_slice());
        let refuse = |sink: &mut Self, why| {
            sink.invalid = Some(why);
            sink.undelivered.push(entry.attr.ino);
            true
        };
        let (mut attr, generation) = match check_entry(entry, Expected::Found) {
            Ok(checked) => checked,
            Err(why) => return refuse(self, why),
        };
        // Counted before it is added: the reply is sent only after the plugin returns,
        // so this is still before the kernel can see (and forget) the entry. The kernel
        // takes no references for `.` and `..`.
        let counted = !is_dot_or_dotdot(name);
        if counted && self.lookups.remember(entry.attr.ino, entry.generation).is_err() {
            return refuse(self, REUSED_INODE);
        }
        self.presentation.apply(&mut attr);
        let full = self.reply.add(
            INodeNo(entry.attr.ino),
            next_offset as u64,
            OsStr::from_bytes(name),
            &one_ttl(answer, self.mount_ttls),
            &attr,
            generation,
        );
        if full {
            // Not sent after all: uncount it, and let the plugin hear `forget` if
            // nothing else holds it.
            if counted {
                self.lookups.forget(entry.attr.ino, 1);
            }
            self.undelivered.push(entry.attr.ino);
        } else {
            self.added += 1;
        }
        full
    }
}
