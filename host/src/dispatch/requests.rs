//! The transport side of dispatch: one `fuser::Filesystem` method per FUSE request,
//! each turning fuser's arguments into a plugin call inside the request's
//! [`InCall`](super) and the answer into a reply.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::SystemTime;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RSlice, RSliceMut};
use fusehost_abi::{
    operation, setattr_valid, DirPlusSink_TO, DirSink_TO, Errno, FileLock, Negotiated, RawFilesystem, SetAttr,
};
use fuser::{
    AccessFlags, CopyFileRangeFlags, FileHandle, INodeNo, IoctlFlags, KernelConfig, LockOwner, OpenFlags, PollEvents,
    PollFlags, PollNotifier, RenameFlags, ReplyAttr, ReplyBmap, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyLock, ReplyLseek, ReplyOpen, ReplyPoll, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use fusehost_plugin_api::FileKind;

use crate::capabilities;
use crate::contract::Expected;
use crate::dir_sinks::{ReplyDirPlusSink, ReplyDirSink};
use crate::forgetter::{ForgetTarget, Forgetter};
use crate::stats::Op;

use super::later::{Later, Pending};
use super::{bytes, ctx, lock_owner, to_timespec, with_buffer, Dispatch, MountCore, LINK_MAX, MAX_WRITE, UNDELIVERED};

/// The kernel's limit on background requests (readahead, async writes) for a mount
/// whose plugin answers later; the kernel's default is 12.
const LATER_MAX_BACKGROUND: u16 = 64;

impl<O: RawFilesystem + 'static> fuser::Filesystem for Dispatch<O> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _span = self.core.span.enter();
        self.later = self.core.fs.answers_later().into_option().and_then(|fs| {
            let operations = fs.operations() & operation::ALL;
            (operations != 0).then_some(Later { fs, operations })
        });
        let later = self.later.as_ref().map_or(0, |later| later.operations);
        if later != 0 {
            tracing::debug!(operations = format_args!("{later:#x}"), "the plugin answers these requests later");
        }
        let asked = capabilities::Asked {
            writeback_cache: self.answers.config.writeback_cache,
            kernel_passthrough: self.answers.config.allow_kernel_passthrough,
            readdirplus: later & operation::READDIR == 0 || later & operation::READDIRPLUS != 0,
        };
        let granted = capabilities::negotiate(config, self.answers.config.consent, asked);
        self.answers.grant(granted, capabilities::keep_direct_io_coherent(config));
        let _ = config.set_max_write(MAX_WRITE);
        if later != 0 {
            // Readahead and other background requests of a plugin that answers later
            // wait on its store, not on a worker: let the kernel keep more of them going.
            let _ = config.set_max_background(LATER_MAX_BACKGROUND);
        }
        let target = Arc::clone(&self.core) as Arc<dyn ForgetTarget>;
        let _ = self.answers.forgetter.set(Forgetter::start(&self.name, target, self.core.span.clone())?);
        let fuser::Version(proto_major, proto_minor) = config.kernel_abi();
        let negotiated = Negotiated {
            capabilities: granted,
            max_write: MAX_WRITE,
            proto_major,
            proto_minor,
            default_permissions: self.answers.config.default_permissions,
            read_only: self.answers.config.read_only,
        };
        self.core.fs.init(&negotiated, self.notifications.handle());
        Ok(())
    }

    fn destroy(&mut self) {
        self.notifications.close();
        let left = self.answers.forgetter.get().map(Forgetter::stop).unwrap_or_default();
        self.core.destroy_once(&left);
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if let Some(later) = self.later(Op::Lookup) {
            return self.serve_later(Op::Lookup, Pending::Lookup(reply), |reply| {
                later.lookup(&ctx(req, 0), parent.0, bytes(name), reply)
            });
        }
        self.serve(Op::Lookup, || {
            let answer = self.core.fs.lookup_ttl(&ctx(req, 0), parent.0, bytes(name));
            self.answers.reply_lookup(answer, reply);
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        // Only the count changes under the request; the plugin hears of a zero when no
        // request handing out entries is in flight.
        self.answers.shared.stats.request(Op::Forget);
        self.catching_panics(Op::Forget, || {
            if self.answers.shared.lookups.forget(ino.0, nlookup) {
                self.answers.forget_when_free(ino.0);
            }
        });
    }

    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        if let Some(later) = self.later(Op::Getattr) {
            return self.serve_later(Op::Getattr, Pending::Attr(reply, ino.0), |reply| {
                later.getattr(&ctx(req, 0), ino.0, fh.map(|fh| fh.0).into(), reply)
            });
        }
        self.serve(Op::Getattr, || {
            let answer = self.core.fs.getattr_ttl(&ctx(req, 0), ino.0, fh.map(|fh| fh.0).into());
            self.answers.reply_attr(Op::Getattr, ino.0, answer, reply);
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
        let mut change = SetAttr::default();
        {
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
        }
        if let Some(later) = self.later(Op::Setattr) {
            return self.serve_later(Op::Setattr, Pending::Attr(reply, ino.0), |reply| {
                later.setattr(&ctx(req, 0), ino.0, &change, reply)
            });
        }
        self.serve(Op::Setattr, || {
            let answer = self.core.fs.setattr_ttl(&ctx(req, 0), ino.0, &change);
            self.answers.reply_attr(Op::Setattr, ino.0, answer, reply);
        });
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        if let Some(later) = self.later(Op::Readlink) {
            return self.serve_later(Op::Readlink, Pending::Data(reply, LINK_MAX), |reply| {
                later.readlink(&ctx(req, 0), ino.0, reply)
            });
        }
        self.serve(Op::Readlink, || {
            with_buffer(LINK_MAX, |buffer| {
                match self.core.fs.readlink(&ctx(req, 0), ino.0, RSliceMut::from_mut_slice(buffer)).into_result() {
                    Ok(full) if full <= LINK_MAX as u64 => reply.data(&buffer[..full as usize]),
                    Ok(_) => reply.error(self.answers.fail(Op::Readlink, Errno::ENAMETOOLONG)),
                    Err(errno) => reply.error(self.answers.fail_on(Op::Readlink, ino.0, errno)),
                }
            });
        });
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        if let Some(later) = self.later(Op::Mknod) {
            return self.serve_later(Op::Mknod, Pending::Entry(reply, Expected::Created(mode)), |reply| {
                later.mknod(&ctx(req, umask), parent.0, bytes(name), mode, rdev, reply)
            });
        }
        self.serve(Op::Mknod, || {
            let answer = self.core.fs.mknod_ttl(&ctx(req, umask), parent.0, bytes(name), mode, rdev);
            self.answers.reply_entry(Op::Mknod, Expected::Created(mode), answer, reply);
        });
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        if let Some(later) = self.later(Op::Mkdir) {
            return self.serve_later(
                Op::Mkdir,
                Pending::Entry(reply, Expected::Created(FileKind::Directory.mode_bits())),
                |reply| later.mkdir(&ctx(req, umask), parent.0, bytes(name), mode, reply),
            );
        }
        self.serve(Op::Mkdir, || {
            let answer = self.core.fs.mkdir_ttl(&ctx(req, umask), parent.0, bytes(name), mode);
            self.answers.reply_entry(Op::Mkdir, Expected::Created(FileKind::Directory.mode_bits()), answer, reply);
        });
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if let Some(later) = self.later(Op::Unlink) {
            return self.serve_later(Op::Unlink, Pending::Empty(reply), |reply| {
                later.unlink(&ctx(req, 0), parent.0, bytes(name), reply)
            });
        }
        self.serve(Op::Unlink, || {
            let answer = self.core.fs.unlink(&ctx(req, 0), parent.0, bytes(name));
            self.answers.reply_empty(Op::Unlink, answer, reply);
        });
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if let Some(later) = self.later(Op::Rmdir) {
            return self.serve_later(Op::Rmdir, Pending::Empty(reply), |reply| {
                later.rmdir(&ctx(req, 0), parent.0, bytes(name), reply)
            });
        }
        self.serve(Op::Rmdir, || {
            let answer = self.core.fs.rmdir(&ctx(req, 0), parent.0, bytes(name));
            self.answers.reply_empty(Op::Rmdir, answer, reply);
        });
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &std::path::Path, reply: ReplyEntry) {
        if let Some(later) = self.later(Op::Symlink) {
            return self.serve_later(
                Op::Symlink,
                Pending::Entry(reply, Expected::Created(FileKind::Symlink.mode_bits())),
                |reply| later.symlink(&ctx(req, 0), parent.0, bytes(link_name), bytes(target.as_os_str()), reply),
            );
        }
        self.serve(Op::Symlink, || {
            let answer = self.core.fs.symlink_ttl(&ctx(req, 0), parent.0, bytes(link_name), bytes(target.as_os_str()));
            self.answers.reply_entry(Op::Symlink, Expected::Created(FileKind::Symlink.mode_bits()), answer, reply);
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
        if let Some(later) = self.later(Op::Rename) {
            return self.serve_later(Op::Rename, Pending::Empty(reply), |reply| {
                later.rename(&ctx(req, 0), parent.0, bytes(name), newparent.0, bytes(newname), flags.bits(), reply)
            });
        }
        self.serve(Op::Rename, || {
            let answer =
                self.core.fs.rename(&ctx(req, 0), parent.0, bytes(name), newparent.0, bytes(newname), flags.bits());
            self.answers.reply_empty(Op::Rename, answer, reply);
        });
    }

    fn link(&self, req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        if let Some(later) = self.later(Op::Link) {
            return self.serve_later(Op::Link, Pending::Entry(reply, Expected::Linked), |reply| {
                later.link(&ctx(req, 0), ino.0, newparent.0, bytes(newname), reply)
            });
        }
        self.serve(Op::Link, || {
            let answer = self.core.fs.link_ttl(&ctx(req, 0), ino.0, newparent.0, bytes(newname));
            self.answers.reply_entry(Op::Link, Expected::Linked, answer, reply);
        });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if let Some(later) = self.later(Op::Open) {
            return self.serve_later(Op::Open, Pending::Opened(reply, ino.0, flags.0), |reply| {
                later.open(&ctx(req, 0), ino.0, flags.0, reply)
            });
        }
        self.serve(Op::Open, || {
            let answer = self.core.fs.open(&ctx(req, 0), ino.0, flags.0);
            self.answers.reply_open(Op::Open, ino.0, flags.0, answer, reply);
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
        if let Some(later) = self.later(Op::Read) {
            return self.serve_later(Op::Read, Pending::Data(reply, size as usize), |reply| {
                later.read(&ctx(req, 0), ino.0, fh.0, offset, size, flags.0, lock_owner(owner), reply)
            });
        }
        self.serve(Op::Read, || {
            with_buffer(size as usize, |buffer| {
                let lent = RSliceMut::from_mut_slice(&mut *buffer);
                let answer = self.core.fs.read(&ctx(req, 0), ino.0, fh.0, offset, lent, flags.0, lock_owner(owner));
                match answer.into_result() {
                    Ok(filled) => {
                        let filled = (filled as usize).min(buffer.len());
                        self.answers.shared.stats.read_bytes(filled);
                        reply.data(&buffer[..filled]);
                    }
                    Err(errno) => reply.error(self.answers.fail(Op::Read, errno)),
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
        if let Some(later) = self.later(Op::Write) {
            return self.serve_later(Op::Write, Pending::Written(reply, data.len()), |reply| {
                later.write(
                    &ctx(req, 0),
                    ino.0,
                    fh.0,
                    offset,
                    RSlice::from_slice(data),
                    write_flags.bits(),
                    flags.0,
                    lock_owner(owner),
                    reply,
                )
            });
        }
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
                Ok(written) if written as usize <= data.len() => {
                    self.answers.shared.stats.written_bytes(u64::from(written));
                    reply.written(written);
                }
                Ok(_) => reply.error(self.answers.invalid(Op::Write, "more bytes written than it was given")),
                Err(errno) => reply.error(self.answers.fail(Op::Write, errno)),
            }
        });
    }

    fn flush(&self, req: &Request, ino: INodeNo, fh: FileHandle, owner: LockOwner, reply: ReplyEmpty) {
        if let Some(later) = self.later(Op::Flush) {
            return self.serve_later(Op::Flush, Pending::Empty(reply), |reply| {
                later.flush(&ctx(req, 0), ino.0, fh.0, owner.0, reply)
            });
        }
        self.serve(Op::Flush, || {
            let answer = self.core.fs.flush(&ctx(req, 0), ino.0, fh.0, owner.0);
            self.answers.reply_empty(Op::Flush, answer, reply);
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
        if let Some(later) = self.later(Op::Release) {
            self.answers.backing.release(ino.0, fh.0);
            return self.serve_later(Op::Release, Pending::Empty(reply), |reply| {
                later.release(&ctx(req, 0), ino.0, fh.0, flags.0, lock_owner(owner), flush, reply)
            });
        }
        self.serve(Op::Release, || {
            let answer = self.core.fs.release(&ctx(req, 0), ino.0, fh.0, flags.0, lock_owner(owner), flush);
            self.answers.backing.release(ino.0, fh.0);
            self.answers.reply_empty(Op::Release, answer, reply);
        });
    }

    fn fsync(&self, req: &Request, ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        if let Some(later) = self.later(Op::Fsync) {
            return self.serve_later(Op::Fsync, Pending::Empty(reply), |reply| {
                later.fsync(&ctx(req, 0), ino.0, fh.0, datasync, reply)
            });
        }
        self.serve(Op::Fsync, || {
            let answer = self.core.fs.fsync(&ctx(req, 0), ino.0, fh.0, datasync);
            self.answers.reply_empty(Op::Fsync, answer, reply);
        });
    }

    fn opendir(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        // A folder's handle never takes the direct I/O path, whatever its flags.
        if let Some(later) = self.later(Op::Opendir) {
            return self.serve_later(Op::Opendir, Pending::Opened(reply, ino.0, 0), |reply| {
                later.opendir(&ctx(req, 0), ino.0, flags.0, reply)
            });
        }
        self.serve(Op::Opendir, || {
            let answer = self.core.fs.opendir(&ctx(req, 0), ino.0, flags.0);
            self.answers.reply_open(Op::Opendir, ino.0, 0, answer, reply);
        });
    }

    fn readdir(&self, req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        if let Some(later) = self.later(Op::Readdir) {
            return self.serve_later(Op::Readdir, Pending::dir(reply), |reply| {
                later.readdir(&ctx(req, 0), ino.0, fh.0, offset as i64, reply)
            });
        }
        self.serve(Op::Readdir, || {
            let mut sink = ReplyDirSink { reply: &mut reply, added: 0, invalid: None };
            let answer = {
                let mut lent = DirSink_TO::from_ptr(&mut sink, TD_Opaque);
                self.core.fs.readdir(&ctx(req, 0), ino.0, fh.0, offset as i64, &mut lent)
            };
            match self.answers.end_listing(Op::Readdir, sink.added, sink.invalid, answer) {
                Ok(()) => reply.ok(),
                Err(errno) => reply.error(errno),
            }
        });
    }

    fn readdirplus(&self, req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        if let Some(later) = self.later(Op::Readdirplus) {
            return self.serve_later(Op::Readdirplus, Pending::dir_plus(reply), |reply| {
                later.readdirplus(&ctx(req, 0), ino.0, fh.0, offset as i64, reply)
            });
        }
        UNDELIVERED.with_borrow_mut(|undelivered| {
            self.serve(Op::Readdirplus, || {
                let mut sink = ReplyDirPlusSink {
                    reply: &mut reply,
                    lookups: &self.answers.shared.lookups,
                    mount_ttls: self.answers.mount_ttls(),
                    presentation: self.answers.config.presentation,
                    added: 0,
                    invalid: None,
                    undelivered: &mut *undelivered,
                };
                let answer = {
                    let mut lent = DirPlusSink_TO::from_ptr(&mut sink, TD_Opaque);
                    self.core.fs.readdirplus(&ctx(req, 0), ino.0, fh.0, offset as i64, &mut lent)
                };
                match self.answers.end_listing(Op::Readdirplus, sink.added, sink.invalid, answer) {
                    Ok(()) => reply.ok(),
                    Err(errno) => reply.error(errno),
                }
            });
            // Out of the request, the forget barrier is free again: the entries the plugin
            // produced but the kernel never got are usually forgotten right here.
            for ino in undelivered.drain(..) {
                self.answers.undelivered(ino);
            }
        });
    }

    fn releasedir(&self, req: &Request, ino: INodeNo, fh: FileHandle, flags: OpenFlags, reply: ReplyEmpty) {
        if let Some(later) = self.later(Op::Releasedir) {
            return self.serve_later(Op::Releasedir, Pending::Empty(reply), |reply| {
                later.releasedir(&ctx(req, 0), ino.0, fh.0, flags.0, reply)
            });
        }
        self.serve(Op::Releasedir, || {
            let answer = self.core.fs.releasedir(&ctx(req, 0), ino.0, fh.0, flags.0);
            self.answers.reply_empty(Op::Releasedir, answer, reply);
        });
    }

    fn fsyncdir(&self, req: &Request, ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        if let Some(later) = self.later(Op::Fsyncdir) {
            return self.serve_later(Op::Fsyncdir, Pending::Empty(reply), |reply| {
                later.fsyncdir(&ctx(req, 0), ino.0, fh.0, datasync, reply)
            });
        }
        self.serve(Op::Fsyncdir, || {
            let answer = self.core.fs.fsyncdir(&ctx(req, 0), ino.0, fh.0, datasync);
            self.answers.reply_empty(Op::Fsyncdir, answer, reply);
        });
    }

    fn statfs(&self, req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        if let Some(later) = self.later(Op::Statfs) {
            return self
                .serve_later(Op::Statfs, Pending::Statfs(reply), |reply| later.statfs(&ctx(req, 0), ino.0, reply));
        }
        self.serve(Op::Statfs, || self.answers.reply_statfs(self.core.fs.statfs(&ctx(req, 0), ino.0), reply));
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
        if let Some(later) = self.later(Op::Setxattr) {
            return self.serve_later(Op::Setxattr, Pending::Empty(reply), |reply| {
                later.setxattr(&ctx(req, 0), ino.0, bytes(name), RSlice::from_slice(value), flags, position, reply)
            });
        }
        self.serve(Op::Setxattr, || {
            let answer =
                self.core.fs.setxattr(&ctx(req, 0), ino.0, bytes(name), RSlice::from_slice(value), flags, position);
            self.answers.reply_empty(Op::Setxattr, answer, reply);
        });
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        if let Some(later) = self.later(Op::Getxattr) {
            return self.serve_later(Op::Getxattr, Pending::Xattr(reply, size), |reply| {
                later.getxattr(&ctx(req, 0), ino.0, bytes(name), reply)
            });
        }
        self.serve(Op::Getxattr, || {
            let ctx = ctx(req, 0);
            self.answers.reply_xattr(Op::Getxattr, size, reply, |buffer| {
                self.core.fs.getxattr(&ctx, ino.0, bytes(name), buffer)
            });
        });
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        if let Some(later) = self.later(Op::Listxattr) {
            return self.serve_later(Op::Listxattr, Pending::Xattr(reply, size), |reply| {
                later.listxattr(&ctx(req, 0), ino.0, reply)
            });
        }
        self.serve(Op::Listxattr, || {
            let ctx = ctx(req, 0);
            self.answers.reply_xattr(Op::Listxattr, size, reply, |buffer| self.core.fs.listxattr(&ctx, ino.0, buffer));
        });
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if let Some(later) = self.later(Op::Removexattr) {
            return self.serve_later(Op::Removexattr, Pending::Empty(reply), |reply| {
                later.removexattr(&ctx(req, 0), ino.0, bytes(name), reply)
            });
        }
        self.serve(Op::Removexattr, || {
            let answer = self.core.fs.removexattr(&ctx(req, 0), ino.0, bytes(name));
            self.answers.reply_empty(Op::Removexattr, answer, reply);
        });
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        if let Some(later) = self.later(Op::Access) {
            return self.serve_later(Op::Access, Pending::Empty(reply), |reply| {
                later.access(&ctx(req, 0), ino.0, mask.bits(), reply)
            });
        }
        self.serve(Op::Access, || {
            let answer = self.core.fs.access(&ctx(req, 0), ino.0, mask.bits());
            self.answers.reply_empty(Op::Access, answer, reply);
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
        if let Some(later) = self.later(Op::Create) {
            return self.serve_later(Op::Create, Pending::Created(reply, flags), |reply| {
                later.create(&ctx(req, umask), parent.0, bytes(name), mode, flags, reply)
            });
        }
        self.serve(Op::Create, || {
            let answer = self.core.fs.create_ttl(&ctx(req, umask), parent.0, bytes(name), mode, flags);
            self.answers.reply_created(flags, answer, reply, |ino, fh| {
                let _ = self.core.fs.release(&ctx(req, 0), ino, fh, flags, ROption::RNone, false);
            });
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
        if let Some(later) = self.later(Op::Fallocate) {
            return self.serve_later(Op::Fallocate, Pending::Empty(reply), |reply| {
                later.fallocate(&ctx(req, 0), ino.0, fh.0, offset, length, mode, reply)
            });
        }
        self.serve(Op::Fallocate, || {
            let answer = self.core.fs.fallocate(&ctx(req, 0), ino.0, fh.0, offset, length, mode);
            self.answers.reply_empty(Op::Fallocate, answer, reply);
        });
    }

    fn lseek(&self, req: &Request, ino: INodeNo, fh: FileHandle, offset: i64, whence: i32, reply: ReplyLseek) {
        if let Some(later) = self.later(Op::Lseek) {
            return self.serve_later(Op::Lseek, Pending::Offset(reply), |reply| {
                later.lseek(&ctx(req, 0), ino.0, fh.0, offset, whence, reply)
            });
        }
        self.serve(Op::Lseek, || match self.core.fs.lseek(&ctx(req, 0), ino.0, fh.0, offset, whence).into_result() {
            Ok(position) => reply.offset(position),
            Err(errno) => reply.error(self.answers.fail(Op::Lseek, errno)),
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
        if let Some(later) = self.later(Op::CopyFileRange) {
            return self.serve_later(
                Op::CopyFileRange,
                Pending::Written(reply, usize::try_from(len).unwrap_or(usize::MAX)),
                |reply| {
                    later.copy_file_range(
                        &ctx(req, 0),
                        ino_in.0,
                        fh_in.0,
                        offset_in,
                        ino_out.0,
                        fh_out.0,
                        offset_out,
                        len,
                        flags.bits(),
                        reply,
                    )
                },
            );
        }
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
                Err(errno) => reply.error(self.answers.fail(Op::CopyFileRange, errno)),
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
        if let Some(later) = self.later(Op::Ioctl) {
            return self.serve_later(Op::Ioctl, Pending::Ioctl(reply, out_size as usize), |reply| {
                later.ioctl(&ctx(req, 0), ino.0, fh.0, flags.bits(), cmd, RSlice::from_slice(in_data), out_size, reply)
            });
        }
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
                    RResult::RErr(errno) => reply.error(self.answers.fail(Op::Ioctl, errno)),
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
        if let Some(later) = self.later(Op::Poll) {
            return self.serve_later(Op::Poll, Pending::Poll(reply), |reply| {
                later.poll(&ctx(req, 0), ino.0, fh.0, ph.handle().0, events.bits(), flags.bits(), reply)
            });
        }
        self.serve(Op::Poll, || {
            let wakeup = ph.handle().0;
            let answer = self.core.fs.poll(&ctx(req, 0), ino.0, fh.0, wakeup, events.bits(), flags.bits());
            match answer.into_result() {
                Ok(ready) => reply.poll(PollEvents::from_bits_truncate(ready)),
                // The kernel stops asking and treats files as always ready.
                Err(errno) => reply.error(self.answers.fail(Op::Poll, errno)),
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
        if let Some(later) = self.later(Op::Getlk) {
            return self.serve_later(Op::Getlk, Pending::Lock(reply), |reply| {
                later.getlk(&ctx(req, 0), ino.0, fh.0, lock_owner.0, &FileLock { start, end, typ, pid }, reply)
            });
        }
        self.serve(Op::Getlk, || {
            let asked = FileLock { start, end, typ, pid };
            match self.core.fs.getlk(&ctx(req, 0), ino.0, fh.0, lock_owner.0, &asked).into_result() {
                Ok(lock) => reply.locked(lock.start, lock.end, lock.typ, lock.pid),
                Err(errno) => reply.error(self.answers.fail(Op::Getlk, errno)),
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
        if let Some(later) = self.later(Op::Setlk) {
            return self.serve_later(Op::Setlk, Pending::Empty(reply), |reply| {
                later.setlk(&ctx(req, 0), ino.0, fh.0, lock_owner.0, &FileLock { start, end, typ, pid }, sleep, reply)
            });
        }
        self.serve(Op::Setlk, || {
            let lock = FileLock { start, end, typ, pid };
            let answer = self.core.fs.setlk(&ctx(req, 0), ino.0, fh.0, lock_owner.0, &lock, sleep);
            self.answers.reply_empty(Op::Setlk, answer, reply);
        });
    }

    fn bmap(&self, req: &Request, ino: INodeNo, blocksize: u32, idx: u64, reply: ReplyBmap) {
        if let Some(later) = self.later(Op::Bmap) {
            return self.serve_later(Op::Bmap, Pending::Block(reply), |reply| {
                later.bmap(&ctx(req, 0), ino.0, blocksize, idx, reply)
            });
        }
        self.serve(Op::Bmap, || match self.core.fs.bmap(&ctx(req, 0), ino.0, blocksize, idx).into_result() {
            Ok(block) => reply.bmap(block),
            Err(errno) => reply.error(self.answers.fail(Op::Bmap, errno)),
        });
    }
}
