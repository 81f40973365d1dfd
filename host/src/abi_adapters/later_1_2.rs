//! A 1.2 plugin's later-answering part, adapted to the current ABI.
//!
//! Its [`v1_2::LaterFilesystem`] takes the 1.2 [`v1_2::Reply`], which lacks what 1.3
//! appended (`created_ttl`, `add_dir_plus_entry_ttl`): abi_stable would refuse the plugin if the host handed it
//! the current, longer reply type. So each request's current reply is wrapped in a
//! 1.2 one ([`ReplyAsV1_2`], one small allocation per request answered later) that
//! forwards every 1.2 answer unchanged; everything else is forwarded as it is.

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, ROption, RSlice};
use fusehost_abi::{
    v1_2, AttrTtl, Created, Entry, EntryTtl, Errno, FileLock, LaterFilesystem, LaterFilesystem_TO, LaterFsObject,
    Opened, ReplyObject, RequestCtx, SetAttr, StatFs,
};

/// The later-answering part of a 1.2 plugin.
struct V1_2Later(v1_2::LaterFsObject);

/// Wraps a 1.2 plugin's later-answering part as a current one.
pub(super) fn from_v1_2(later: v1_2::LaterFsObject) -> LaterFsObject {
    LaterFilesystem_TO::from_ptr(RArc::new(V1_2Later(later)), TD_Opaque)
}

/// A current reply as a 1.2 plugin answers through it.
struct ReplyAsV1_2(ReplyObject);

fn reply_as_v1_2(reply: ReplyObject) -> v1_2::ReplyObject {
    v1_2::Reply_TO::from_value(ReplyAsV1_2(reply), TD_Opaque)
}

impl v1_2::Reply for ReplyAsV1_2 {
    fn error(&mut self, errno: Errno) {
        self.0.error(errno)
    }

    fn empty(&mut self) {
        self.0.empty()
    }

    fn entry(&mut self, entry: &EntryTtl) {
        self.0.entry(entry)
    }

    fn attr(&mut self, attr: &AttrTtl) {
        self.0.attr(attr)
    }

    fn data(&mut self, data: RSlice<'_, u8>) {
        self.0.data(data)
    }

    fn written(&mut self, count: u32) {
        self.0.written(count)
    }

    fn opened(&mut self, opened: &Opened) {
        self.0.opened(opened)
    }

    fn created(&mut self, created: &Created) {
        self.0.created(created)
    }

    fn statfs(&mut self, statfs: &StatFs) {
        self.0.statfs(statfs)
    }

    fn add_dir_entry(&mut self, ino: u64, next_offset: i64, kind: u32, name: RSlice<'_, u8>) -> bool {
        self.0.add_dir_entry(ino, next_offset, kind, name)
    }

    fn add_dir_plus_entry(&mut self, next_offset: i64, name: RSlice<'_, u8>, entry: &Entry) -> bool {
        self.0.add_dir_plus_entry(next_offset, name, entry)
    }

    fn offset(&mut self, offset: i64) {
        self.0.offset(offset)
    }

    fn lock(&mut self, lock: &FileLock) {
        self.0.lock(lock)
    }

    fn block(&mut self, block: u64) {
        self.0.block(block)
    }

    fn ioctl(&mut self, result: i32, output: RSlice<'_, u8>) {
        self.0.ioctl(result, output)
    }

    fn poll(&mut self, events: u32) {
        self.0.poll(events)
    }
}

impl LaterFilesystem for V1_2Later {
    fn operations(&self) -> u64 {
        self.0.operations()
    }

    fn lookup(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>, reply: ReplyObject) {
        self.0.lookup(ctx, parent, name, reply_as_v1_2(reply))
    }

    fn getattr(&self, ctx: &RequestCtx, ino: u64, fh: ROption<u64>, reply: ReplyObject) {
        self.0.getattr(ctx, ino, fh, reply_as_v1_2(reply))
    }

    fn setattr(&self, ctx: &RequestCtx, ino: u64, attr: &SetAttr, reply: ReplyObject) {
        self.0.setattr(ctx, ino, attr, reply_as_v1_2(reply))
    }

    fn readlink(&self, ctx: &RequestCtx, ino: u64, reply: ReplyObject) {
        self.0.readlink(ctx, ino, reply_as_v1_2(reply))
    }

    fn mknod(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>, mode: u32, rdev: u32, reply: ReplyObject) {
        self.0.mknod(ctx, parent, name, mode, rdev, reply_as_v1_2(reply))
    }

    fn mkdir(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>, mode: u32, reply: ReplyObject) {
        self.0.mkdir(ctx, parent, name, mode, reply_as_v1_2(reply))
    }

    fn unlink(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>, reply: ReplyObject) {
        self.0.unlink(ctx, parent, name, reply_as_v1_2(reply))
    }

    fn rmdir(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>, reply: ReplyObject) {
        self.0.rmdir(ctx, parent, name, reply_as_v1_2(reply))
    }

    fn symlink(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>, target: RSlice<'_, u8>, reply: ReplyObject) {
        self.0.symlink(ctx, parent, name, target, reply_as_v1_2(reply))
    }

    fn rename(
        &self,
        ctx: &RequestCtx,
        parent: u64,
        name: RSlice<'_, u8>,
        new_parent: u64,
        new_name: RSlice<'_, u8>,
        flags: u32,
        reply: ReplyObject,
    ) {
        self.0.rename(ctx, parent, name, new_parent, new_name, flags, reply_as_v1_2(reply))
    }

    fn link(&self, ctx: &RequestCtx, ino: u64, new_parent: u64, new_name: RSlice<'_, u8>, reply: ReplyObject) {
        self.0.link(ctx, ino, new_parent, new_name, reply_as_v1_2(reply))
    }

    fn open(&self, ctx: &RequestCtx, ino: u64, flags: i32, reply: ReplyObject) {
        self.0.open(ctx, ino, flags, reply_as_v1_2(reply))
    }

    fn read(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        offset: u64,
        size: u32,
        flags: i32,
        lock_owner: ROption<u64>,
        reply: ReplyObject,
    ) {
        self.0.read(ctx, ino, fh, offset, size, flags, lock_owner, reply_as_v1_2(reply))
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
        lock_owner: ROption<u64>,
        reply: ReplyObject,
    ) {
        self.0.write(ctx, ino, fh, offset, data, write_flags, flags, lock_owner, reply_as_v1_2(reply))
    }

    fn flush(&self, ctx: &RequestCtx, ino: u64, fh: u64, lock_owner: u64, reply: ReplyObject) {
        self.0.flush(ctx, ino, fh, lock_owner, reply_as_v1_2(reply))
    }

    fn release(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        flags: i32,
        lock_owner: ROption<u64>,
        flush: bool,
        reply: ReplyObject,
    ) {
        self.0.release(ctx, ino, fh, flags, lock_owner, flush, reply_as_v1_2(reply))
    }

    fn fsync(&self, ctx: &RequestCtx, ino: u64, fh: u64, datasync: bool, reply: ReplyObject) {
        self.0.fsync(ctx, ino, fh, datasync, reply_as_v1_2(reply))
    }

    fn opendir(&self, ctx: &RequestCtx, ino: u64, flags: i32, reply: ReplyObject) {
        self.0.opendir(ctx, ino, flags, reply_as_v1_2(reply))
    }

    fn readdir(&self, ctx: &RequestCtx, ino: u64, fh: u64, offset: i64, reply: ReplyObject) {
        self.0.readdir(ctx, ino, fh, offset, reply_as_v1_2(reply))
    }

    fn readdirplus(&self, ctx: &RequestCtx, ino: u64, fh: u64, offset: i64, reply: ReplyObject) {
        self.0.readdirplus(ctx, ino, fh, offset, reply_as_v1_2(reply))
    }

    fn releasedir(&self, ctx: &RequestCtx, ino: u64, fh: u64, flags: i32, reply: ReplyObject) {
        self.0.releasedir(ctx, ino, fh, flags, reply_as_v1_2(reply))
    }

    fn statfs(&self, ctx: &RequestCtx, ino: u64, reply: ReplyObject) {
        self.0.statfs(ctx, ino, reply_as_v1_2(reply))
    }

    fn create(&self, ctx: &RequestCtx, parent: u64, name: RSlice<'_, u8>, mode: u32, flags: i32, reply: ReplyObject) {
        self.0.create(ctx, parent, name, mode, flags, reply_as_v1_2(reply))
    }

    fn setxattr(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        name: RSlice<'_, u8>,
        value: RSlice<'_, u8>,
        flags: i32,
        position: u32,
        reply: ReplyObject,
    ) {
        self.0.setxattr(ctx, ino, name, value, flags, position, reply_as_v1_2(reply))
    }

    fn getxattr(&self, ctx: &RequestCtx, ino: u64, name: RSlice<'_, u8>, reply: ReplyObject) {
        self.0.getxattr(ctx, ino, name, reply_as_v1_2(reply))
    }

    fn listxattr(&self, ctx: &RequestCtx, ino: u64, reply: ReplyObject) {
        self.0.listxattr(ctx, ino, reply_as_v1_2(reply))
    }

    fn removexattr(&self, ctx: &RequestCtx, ino: u64, name: RSlice<'_, u8>, reply: ReplyObject) {
        self.0.removexattr(ctx, ino, name, reply_as_v1_2(reply))
    }

    fn access(&self, ctx: &RequestCtx, ino: u64, mask: i32, reply: ReplyObject) {
        self.0.access(ctx, ino, mask, reply_as_v1_2(reply))
    }

    fn fsyncdir(&self, ctx: &RequestCtx, ino: u64, fh: u64, datasync: bool, reply: ReplyObject) {
        self.0.fsyncdir(ctx, ino, fh, datasync, reply_as_v1_2(reply))
    }

    fn fallocate(&self, ctx: &RequestCtx, ino: u64, fh: u64, offset: u64, length: u64, mode: i32, reply: ReplyObject) {
        self.0.fallocate(ctx, ino, fh, offset, length, mode, reply_as_v1_2(reply))
    }

    fn lseek(&self, ctx: &RequestCtx, ino: u64, fh: u64, offset: i64, whence: i32, reply: ReplyObject) {
        self.0.lseek(ctx, ino, fh, offset, whence, reply_as_v1_2(reply))
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
        self.0.copy_file_range(
            ctx,
            ino_in,
            fh_in,
            offset_in,
            ino_out,
            fh_out,
            offset_out,
            len,
            flags,
            reply_as_v1_2(reply),
        )
    }

    fn getlk(&self, ctx: &RequestCtx, ino: u64, fh: u64, lock_owner: u64, lock: &FileLock, reply: ReplyObject) {
        self.0.getlk(ctx, ino, fh, lock_owner, lock, reply_as_v1_2(reply))
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
        self.0.setlk(ctx, ino, fh, lock_owner, lock, sleep, reply_as_v1_2(reply))
    }

    fn ioctl(
        &self,
        ctx: &RequestCtx,
        ino: u64,
        fh: u64,
        flags: u32,
        cmd: u32,
        input: RSlice<'_, u8>,
        output_size: u32,
        reply: ReplyObject,
    ) {
        self.0.ioctl(ctx, ino, fh, flags, cmd, input, output_size, reply_as_v1_2(reply))
    }

    fn poll(&self, ctx: &RequestCtx, ino: u64, fh: u64, wakeup: u64, events: u32, flags: u32, reply: ReplyObject) {
        self.0.poll(ctx, ino, fh, wakeup, events, flags, reply_as_v1_2(reply))
    }

    fn bmap(&self, ctx: &RequestCtx, ino: u64, block_size: u32, block: u64, reply: ReplyObject) {
        self.0.bmap(ctx, ino, block_size, block, reply_as_v1_2(reply))
    }
}
