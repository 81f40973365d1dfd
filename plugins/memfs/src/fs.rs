//! The memfs filesystem: every FUSE operation over the inode table.
//!
//! The mount runs with `default_permissions` (fusehost's default), so the kernel
//! checks access from the mode bits, sticky directories, and who may chmod, chown
//! and utimens; memfs keeps the metadata those checks read, and does what the kernel
//! leaves to a filesystem: ownership of new files (setgid directories), link counts,
//! every timestamp, rename flags, space limits, holes, xattrs.
//!
//! Directory changes (create, link, unlink, rename, ...) take one namespace lock, so
//! they never see each other half done; lookups, listings, reads and writes never take
//! it. File data is copied under that file's own lock only.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use fusehost_plugin_api::flags::{self, rename::EXCHANGE as RENAME_EXCHANGE, rename::NOREPLACE as RENAME_NOREPLACE};
use fusehost_plugin_api::sync::{Mutex, RwLock};
use fusehost_plugin_api::{
    Capabilities, DirPlusSink, DirSink, Entry, Errno, FileAttr, FileKind, FileLock, Filesystem, MountHost, Negotiated,
    Opened, Operations, Reply, Request, Result, SetAttr, StatFs, TimeOrNow, ROOT_INO,
};
use rustc_hash::FxHashMap;

use crate::data::FileData;
use crate::dir::{Dir, Target};
use crate::inode::{attr_of, Body, Inode, Meta};
use crate::locks::Locks;
use crate::space::Space;
use crate::xattr;

const NAME_MAX: usize = 255;
const PATH_MAX: usize = 4096;
const S_ISGID: u16 = 0o2000;
const FALLOC_FL_KEEP_SIZE: i32 = 1;
const FALLOC_FL_PUNCH_HOLE: i32 = 2;
/// The most one copy_file_range request copies; callers loop over short copies.
const COPY_CHUNK: u64 = 16 << 20;

thread_local! {
    /// Where a read that memfs cannot answer from one piece of its storage (it
    /// crosses a chunk, or covers a hole) is gathered: one buffer per worker thread.
    static GATHERED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Who owns the root directory and its mode.
#[derive(Clone, Copy, Debug)]
pub struct RootOwner {
    pub uid: u32,
    pub gid: u32,
    pub perm: u16,
}

pub struct MemFs {
    inodes: RwLock<FxHashMap<u64, Arc<Inode>>>,
    next_ino: AtomicU64,
    namespace: Mutex<()>,
    space: Space,
    /// POSIX record locks, when the mount serves them (option `posix_locks`).
    locks: Option<Locks>,
    /// The mount's notifications: a mode changed by a write is not in its reply.
    host: OnceLock<MountHost>,
}

fn check_name(name: &OsStr) -> Result<&[u8]> {
    let bytes = name.as_bytes();
    if bytes.len() > NAME_MAX {
        Err(Errno::ENAMETOOLONG)
    } else {
        Ok(bytes)
    }
}

/// A new inode's body and its kind-specific metadata.
enum NewBody {
    File,
    Dir,
    Symlink(Vec<u8>),
    Node { rdev: u32 },
}

/// The one or two directories a rename changes, both write-locked.
struct RenameDirs<'a> {
    from: &'a mut Dir,
    to: Option<&'a mut Dir>,
}

impl RenameDirs<'_> {
    fn to(&mut self) -> &mut Dir {
        match &mut self.to {
            Some(to) => to,
            None => self.from,
        }
    }
}

impl MemFs {
    pub fn new(max_bytes: u64, max_inodes: u64, root: RootOwner) -> MemFs {
        let now = SystemTime::now();
        let root_inode = Inode {
            ino: ROOT_INO,
            meta: Mutex::new(Meta::new(FileKind::Directory, root.perm, root.uid, root.gid, now)),
            body: Body::Dir(RwLock::new(Dir::new(ROOT_INO))),
        };
        let space = Space::new(max_bytes, max_inodes);
        // The root counts against the inode limit like every other inode.
        let _ = space.reserve_inode();
        MemFs {
            inodes: RwLock::new(FxHashMap::from_iter([(ROOT_INO, Arc::new(root_inode))])),
            next_ino: AtomicU64::new(ROOT_INO + 1),
            namespace: Mutex::new(()),
            space,
            locks: None,
            host: OnceLock::new(),
        }
    }

    /// Serves POSIX record locks itself instead of leaving them to the kernel.
    pub fn with_posix_locks(mut self) -> MemFs {
        self.locks = Some(Locks::default());
        self
    }

    fn get(&self, ino: u64) -> Result<Arc<Inode>> {
        self.inodes.read().get(&ino).cloned().ok_or(Errno::ENOENT)
    }

    fn file(inode: &Inode) -> Result<&RwLock<FileData>> {
        match &inode.body {
            Body::File(data) => Ok(data),
            Body::Dir(_) => Err(Errno::EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }

    fn dir(inode: &Inode) -> Result<&RwLock<Dir>> {
        inode.as_dir().ok_or(Errno::ENOTDIR)
    }

    /// Drops an inode that has no name, no open handle and no kernel reference.
    fn free(&self, ino: u64) {
        let Some(inode) = self.inodes.write().remove(&ino) else { return };
        if let Body::File(data) = &inode.body {
            data.write().clear(&self.space);
        }
        self.space.release_inode();
    }

    /// Creates `name` in `parent`: the common part of create, mknod, mkdir, symlink.
    fn make(
        &self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        kind: FileKind,
        mode: u32,
        body: NewBody,
    ) -> Result<Arc<Inode>> {
        let name = check_name(name)?;
        let _namespace = self.namespace.lock();
        let parent_inode = self.get(parent)?;
        let mut dir = Self::dir(&parent_inode)?.write();
        if dir.get(name).is_some() {
            return Err(Errno::EEXIST);
        }
        let (parent_gid, parent_setgid) = {
            let meta = parent_inode.meta.lock();
            if meta.nlink == 0 {
                return Err(Errno::ENOENT);
            }
            (meta.gid, meta.perm & S_ISGID != 0)
        };
        let mut perm = (mode & 0o7777 & !req.umask) as u16;
        let gid = if parent_setgid {
            if kind == FileKind::Directory {
                perm |= S_ISGID;
            }
            parent_gid
        } else {
            req.gid
        };
        self.space.reserve_inode()?;
        let ino = self.next_ino.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now();
        let mut meta = Meta::new(kind, perm, req.uid, gid, now);
        let body = match body {
            NewBody::File => Body::File(RwLock::new(FileData::default())),
            NewBody::Dir => Body::Dir(RwLock::new(Dir::new(parent))),
            NewBody::Symlink(target) => {
                meta.size = target.len() as u64;
                Body::Symlink(target)
            }
            NewBody::Node { rdev } => {
                meta.rdev = rdev;
                Body::Node
            }
        };
        let inode = Arc::new(Inode { ino, meta: Mutex::new(meta), body });
        self.inodes.write().insert(ino, Arc::clone(&inode));
        dir.insert(name, Target { ino, kind });
        let mut parent_meta = parent_inode.meta.lock();
        if kind == FileKind::Directory {
            parent_meta.nlink += 1;
        }
        parent_meta.modified(now);
        Ok(inode)
    }

    /// Writes `data` at `offset` of a file and updates its size and times.
    fn write_at(&self, inode: &Inode, offset: u64, data: &[u8], kill_privileges: bool) -> Result<u32> {
        let mut pages = Self::file(inode)?.write();
        let written = pages.write(offset, data, &self.space)?;
        let mut meta = inode.meta.lock();
        meta.size = meta.size.max(offset + written as u64);
        meta.pages = pages.page_count();
        meta.modified(SystemTime::now());
        let dropped = kill_privileges && meta.drop_privileges();
        drop(meta);
        if dropped {
            self.mode_changed(inode.ino);
        }
        Ok(written as u32)
    }

    /// Tells the kernel that `ino`'s mode changed without a reply that carries it (a
    /// write or fallocate dropped setuid): its cached mode would show them until
    /// `attr_ttl` ran out.
    fn mode_changed(&self, ino: u64) {
        if let Some(host) = self.host.get() {
            // Best effort: the kernel may already have forgotten the node.
            let _ = host.invalidate_inode(ino, None);
        }
    }

    /// Answers a read whose bytes memfs stores in one piece with those bytes, under the
    /// file's lock; gives `reply` back for any other read.
    fn answer_from_storage(&self, ino: u64, offset: u64, size: u32, reply: Reply<Vec<u8>>) -> Option<Reply<Vec<u8>>> {
        let Ok(inode) = self.get(ino) else { return Some(reply) };
        let Ok(data) = Self::file(&inode) else { return Some(reply) };
        {
            let pages = data.read();
            let file_size = inode.meta.lock().size;
            let Some(bytes) = pages.stored(offset, size as usize, file_size) else { return Some(reply) };
            reply.data(bytes);
        }
        inode.meta.lock().accessed(SystemTime::now());
        None
    }

    fn exchange(&self, dirs: &mut RenameDirs<'_>, names: (&[u8], &[u8]), parents: (&Inode, &Inode)) -> Result<()> {
        let (name, new_name) = names;
        let (from_parent, to_parent) = parents;
        let source = dirs.from.get(name).ok_or(Errno::ENOENT)?;
        let target = dirs.to().get(new_name).ok_or(Errno::ENOENT)?;
        dirs.from.replace(name, target);
        dirs.to().replace(new_name, source);
        let moved_across = from_parent.ino != to_parent.ino;
        let (source_is_dir, target_is_dir) = (source.kind == FileKind::Directory, target.kind == FileKind::Directory);
        if moved_across && source_is_dir != target_is_dir {
            let (losing, gaining) = if source_is_dir { (from_parent, to_parent) } else { (to_parent, from_parent) };
            losing.meta.lock().nlink -= 1;
            gaining.meta.lock().nlink += 1;
        }
        let now = SystemTime::now();
        for (moved, new_parent) in [(source, to_parent.ino), (target, from_parent.ino)] {
            let inode = self.get(moved.ino)?;
            if let Some(dir) = inode.as_dir() {
                dir.write().parent = new_parent;
            }
            inode.meta.lock().ctime = now;
        }
        Ok(())
    }

    fn replace(
        &self,
        dirs: &mut RenameDirs<'_>,
        names: (&[u8], &[u8]),
        parents: (&Inode, &Inode),
        noreplace: bool,
    ) -> Result<()> {
        let (name, new_name) = names;
        let (from_parent, to_parent) = parents;
        let source = dirs.from.get(name).ok_or(Errno::ENOENT)?;
        let source_is_dir = source.kind == FileKind::Directory;
        let now = SystemTime::now();
        if let Some(target) = dirs.to().get(new_name) {
            if noreplace {
                return Err(Errno::EEXIST);
            }
            if target.ino == source.ino {
                // Two names of one file: POSIX says do nothing.
                return Ok(());
            }
            let target_inode = self.get(target.ino)?;
            let target_is_dir = target.kind == FileKind::Directory;
            if source_is_dir && !target_is_dir {
                return Err(Errno::ENOTDIR);
            }
            if !source_is_dir && target_is_dir {
                return Err(Errno::EISDIR);
            }
            if target_is_dir && !Self::dir(&target_inode)?.read().is_empty() {
                return Err(Errno::ENOTEMPTY);
            }
            let mut target_meta = target_inode.meta.lock();
            if target_is_dir {
                target_meta.nlink = 0;
                to_parent.meta.lock().nlink -= 1;
            } else {
                target_meta.nlink -= 1;
            }
            target_meta.ctime = now;
        }
        dirs.from.remove(name);
        dirs.to().insert(new_name, source);
        let source_inode = self.get(source.ino)?;
        if source_is_dir && from_parent.ino != to_parent.ino {
            from_parent.meta.lock().nlink -= 1;
            to_parent.meta.lock().nlink += 1;
            Self::dir(&source_inode)?.write().parent = to_parent.ino;
        }
        source_inode.meta.lock().ctime = now;
        Ok(())
    }

    /// How many inodes are unlinked but still held (for the destroy log line).
    fn unlinked_held(&self) -> usize {
        self.inodes.read().values().filter(|inode| inode.meta.lock().nlink == 0).count()
    }
}

impl Filesystem for MemFs {
    /// memfs serves everything from memory, so the kernel may cache writes; and it
    /// clears setuid/setgid itself (`drop_privileges`), sparing the kernel a
    /// `getxattr("security.capability")` before every write.
    fn capabilities(&self) -> Capabilities {
        let locks = if self.locks.is_some() { Capabilities::POSIX_LOCKS } else { Capabilities::NONE };
        // A symlink's target never changes in memfs: the kernel may cache it.
        Capabilities::WRITEBACK_CACHE | Capabilities::HANDLE_KILLPRIV_V2 | Capabilities::CACHE_SYMLINKS | locks
    }

    fn init(&self, _negotiated: &Negotiated, host: MountHost) {
        let _ = self.host.set(host);
    }

    fn getlk(&self, _req: &Request, ino: u64, _fh: u64, lock_owner: u64, lock: &FileLock) -> Result<FileLock> {
        self.locks.as_ref().ok_or(Errno::ENOSYS)?.get(ino, lock_owner, lock)
    }

    fn setlk(&self, _req: &Request, ino: u64, _fh: u64, lock_owner: u64, lock: &FileLock, sleep: bool) -> Result<()> {
        self.locks.as_ref().ok_or(Errno::ENOSYS)?.set(ino, lock_owner, lock, sleep)
    }

    fn lookup(&self, _req: &Request, parent: u64, name: &OsStr) -> Result<Entry> {
        let name = check_name(name)?;
        let parent_inode = self.get(parent)?;
        let dir = Self::dir(&parent_inode)?.read();
        let ino = match name {
            b"." => parent,
            b".." => dir.parent,
            _ => dir.get(name).ok_or(Errno::ENOENT)?.ino,
        };
        Ok(Entry::new(self.get(ino)?.attr()))
    }

    fn forget(&self, ino: u64) {
        let Ok(inode) = self.get(ino) else { return };
        let unreachable = {
            let meta = inode.meta.lock();
            meta.nlink == 0 && meta.open == 0
        };
        if unreachable {
            self.free(ino);
        }
    }

    fn getattr(&self, _req: &Request, ino: u64, _fh: Option<u64>) -> Result<FileAttr> {
        Ok(self.get(ino)?.attr())
    }

    fn setattr(&self, req: &Request, ino: u64, changes: &SetAttr) -> Result<FileAttr> {
        let inode = self.get(ino)?;
        let now = SystemTime::now();
        // Body before metadata, as everywhere.
        let mut pages = match changes.size {
            Some(_) => Some(Self::file(&inode)?.write()),
            None => None,
        };
        let mut meta = inode.meta.lock();
        if let (Some(size), Some(pages)) = (changes.size, pages.as_mut()) {
            if size != meta.size {
                pages.truncate(size, meta.size, &self.space);
                meta.size = size;
                meta.pages = pages.page_count();
                meta.mtime = now;
                // HANDLE_KILLPRIV_V2: an unprivileged truncate drops setuid/setgid
                // here, as the kernel would have (fuser 0.18 hides its KILL_SUIDGID bit).
                if req.uid != 0 {
                    meta.drop_privileges();
                }
            }
        }
        if let Some(mode) = changes.mode {
            meta.perm = (mode & 0o7777) as u16;
        }
        if changes.uid.is_some() || changes.gid.is_some() {
            meta.uid = changes.uid.unwrap_or(meta.uid);
            meta.gid = changes.gid.unwrap_or(meta.gid);
            if changes.mode.is_none() {
                meta.drop_privileges();
            }
        }
        let at = |time: TimeOrNow| match time {
            TimeOrNow::Now => now,
            TimeOrNow::At(time) => time,
        };
        if let Some(atime) = changes.atime {
            meta.atime = at(atime);
        }
        if let Some(mtime) = changes.mtime {
            meta.mtime = at(mtime);
        }
        meta.ctime = changes.ctime.unwrap_or(now);
        Ok(attr_of(ino, &meta))
    }

    fn readlink(&self, _req: &Request, ino: u64) -> Result<Vec<u8>> {
        match &self.get(ino)?.body {
            Body::Symlink(target) => Ok(target.clone()),
            _ => Err(Errno::EINVAL),
        }
    }

    fn mknod(&self, req: &Request, parent: u64, name: &OsStr, mode: u32, rdev: u32) -> Result<Entry> {
        let kind = FileKind::from_mode(mode).ok_or(Errno::EINVAL)?;
        let body = match kind {
            FileKind::RegularFile => NewBody::File,
            FileKind::Directory | FileKind::Symlink => return Err(Errno::EINVAL),
            _ => NewBody::Node { rdev },
        };
        Ok(Entry::new(self.make(req, parent, name, kind, mode, body)?.attr()))
    }

    fn mkdir(&self, req: &Request, parent: u64, name: &OsStr, mode: u32) -> Result<Entry> {
        Ok(Entry::new(self.make(req, parent, name, FileKind::Directory, mode, NewBody::Dir)?.attr()))
    }

    fn unlink(&self, _req: &Request, parent: u64, name: &OsStr) -> Result<()> {
        let name = check_name(name)?;
        let _namespace = self.namespace.lock();
        let parent_inode = self.get(parent)?;
        let mut dir = Self::dir(&parent_inode)?.write();
        let target = dir.get(name).ok_or(Errno::ENOENT)?;
        if target.kind == FileKind::Directory {
            return Err(Errno::EISDIR);
        }
        let child = self.get(target.ino)?;
        dir.remove(name);
        let now = SystemTime::now();
        let mut meta = child.meta.lock();
        meta.nlink = meta.nlink.saturating_sub(1);
        meta.ctime = now;
        drop(meta);
        parent_inode.meta.lock().modified(now);
        Ok(())
    }

    fn rmdir(&self, _req: &Request, parent: u64, name: &OsStr) -> Result<()> {
        let name = check_name(name)?;
        let _namespace = self.namespace.lock();
        let parent_inode = self.get(parent)?;
        let mut dir = Self::dir(&parent_inode)?.write();
        let target = dir.get(name).ok_or(Errno::ENOENT)?;
        let child = self.get(target.ino)?;
        if !Self::dir(&child)?.read().is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        dir.remove(name);
        let now = SystemTime::now();
        let mut meta = child.meta.lock();
        meta.nlink = 0;
        meta.ctime = now;
        drop(meta);
        let mut parent_meta = parent_inode.meta.lock();
        parent_meta.nlink -= 1;
        parent_meta.modified(now);
        Ok(())
    }

    fn symlink(&self, req: &Request, parent: u64, name: &OsStr, target: &OsStr) -> Result<Entry> {
        let target = target.as_bytes();
        if target.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let inode = self.make(req, parent, name, FileKind::Symlink, 0o777, NewBody::Symlink(target.to_vec()))?;
        Ok(Entry::new(inode.attr()))
    }

    fn rename(
        &self,
        _req: &Request,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        flags: u32,
    ) -> Result<()> {
        if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0 || flags == RENAME_NOREPLACE | RENAME_EXCHANGE {
            return Err(Errno::EINVAL);
        }
        let names = (check_name(name)?, check_name(new_name)?);
        let _namespace = self.namespace.lock();
        let from_parent = self.get(parent)?;
        let to_parent = self.get(new_parent)?;
        let mut from_dir = Self::dir(&from_parent)?.write();
        let mut to_dir = if parent == new_parent { None } else { Some(Self::dir(&to_parent)?.write()) };
        let mut dirs = RenameDirs { from: &mut from_dir, to: to_dir.as_deref_mut() };
        let parents = (&*from_parent, &*to_parent);
        if flags & RENAME_EXCHANGE != 0 {
            self.exchange(&mut dirs, names, parents)?;
        } else {
            self.replace(&mut dirs, names, parents, flags & RENAME_NOREPLACE != 0)?;
        }
        let now = SystemTime::now();
        from_parent.meta.lock().modified(now);
        if parent != new_parent {
            to_parent.meta.lock().modified(now);
        }
        Ok(())
    }

    fn link(&self, _req: &Request, ino: u64, new_parent: u64, new_name: &OsStr) -> Result<Entry> {
        let name = check_name(new_name)?;
        let _namespace = self.namespace.lock();
        let inode = self.get(ino)?;
        let parent_inode = self.get(new_parent)?;
        let mut dir = Self::dir(&parent_inode)?.write();
        if dir.get(name).is_some() {
            return Err(Errno::EEXIST);
        }
        let now = SystemTime::now();
        let attr = {
            let mut meta = inode.meta.lock();
            if meta.kind == FileKind::Directory {
                return Err(Errno::EPERM);
            }
            if meta.nlink == 0 {
                return Err(Errno::ENOENT);
            }
            meta.nlink += 1;
            meta.ctime = now;
            dir.insert(name, Target { ino, kind: meta.kind });
            attr_of(ino, &meta)
        };
        parent_inode.meta.lock().modified(now);
        Ok(Entry::new(attr))
    }

    fn open(&self, _req: &Request, ino: u64, _flags: i32) -> Result<Opened> {
        let inode = self.get(ino)?;
        inode.meta.lock().open += 1;
        // Only this mount changes the data, so the kernel's cached pages stay valid.
        Ok(Opened::handle(ino).keep_cache())
    }

    fn read(&self, _req: &Request, ino: u64, _fh: u64, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let inode = self.get(ino)?;
        let count = {
            let pages = Self::file(&inode)?.read();
            let size = inode.meta.lock().size;
            pages.read(offset, buf, size)
        };
        inode.meta.lock().accessed(SystemTime::now());
        Ok(count)
    }

    /// Reads are answered at once, through a reply rather than by filling the
    /// host's buffer (`read`, which a host older than ABI 1.2 calls instead).
    fn answers_later(&self) -> Operations {
        Operations::READ
    }

    /// A read that lies in one chunk's stored bytes (any aligned read of up to 1 MiB
    /// of written data) goes to the kernel straight from them: one copy fewer than
    /// `read`, which a 1 MiB O_DIRECT read spent 43 % of its CPU on. Any other read
    /// (across chunks, over a hole, or an error) is `read`'s, into a per-thread buffer.
    fn read_later(&self, req: &Request, ino: u64, fh: u64, offset: u64, size: u32, reply: Reply<Vec<u8>>) {
        let Some(reply) = self.answer_from_storage(ino, offset, size, reply) else { return };
        GATHERED.with_borrow_mut(|buffer| {
            buffer.resize(size as usize, 0);
            match self.read(req, ino, fh, offset, buffer) {
                Ok(count) => reply.data(&buffer[..count]),
                Err(errno) => reply.send(Err(errno)),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        ino: u64,
        _fh: u64,
        offset: u64,
        data: &[u8],
        write_flags: u32,
        _flags: i32,
    ) -> Result<u32> {
        let inode = self.get(ino)?;
        self.write_at(&inode, offset, data, write_flags & flags::write::KILL_SUIDGID != 0)
    }

    fn flush(&self, _req: &Request, ino: u64, _fh: u64, lock_owner: u64) -> Result<()> {
        // A closing owner's locks go with it (the kernel keeps none of them itself).
        // Without locks memfs has nothing to flush: ENOSYS tells the kernel to stop
        // sending FLUSH, which saves every close() a round trip (open+close is then
        // 2 requests, not 3). Written data is in memory at once, and the kernel still
        // writes back a writeback cache's dirty pages before the close returns.
        match &self.locks {
            Some(locks) => {
                locks.release_owner(ino, lock_owner);
                Ok(())
            }
            None => Err(Errno::ENOSYS),
        }
    }

    fn release(&self, _req: &Request, ino: u64, _fh: u64, _flags: i32, _flush: bool) -> Result<()> {
        let inode = self.get(ino)?;
        let mut meta = inode.meta.lock();
        meta.open = meta.open.saturating_sub(1);
        Ok(())
    }

    fn fsync(&self, _req: &Request, _ino: u64, _fh: u64, _datasync: bool) -> Result<()> {
        Ok(())
    }

    fn readdir(&self, _req: &Request, ino: u64, _fh: u64, offset: i64, sink: &mut dyn DirSink) -> Result<()> {
        let inode = self.get(ino)?;
        let dir = Self::dir(&inode)?.read();
        if offset < 1 && sink.add(ino, 1, FileKind::Directory, OsStr::new(".")) {
            return Ok(());
        }
        if offset < 2 && sink.add(dir.parent, 2, FileKind::Directory, OsStr::new("..")) {
            return Ok(());
        }
        for (next, name, target) in dir.entries_from(offset) {
            if sink.add(target.ino, next, target.kind, OsStr::from_bytes(name)) {
                break;
            }
        }
        Ok(())
    }

    fn readdirplus(&self, _req: &Request, ino: u64, _fh: u64, offset: i64, sink: &mut dyn DirPlusSink) -> Result<()> {
        let inode = self.get(ino)?;
        let dir = Self::dir(&inode)?.read();
        if offset < 1 && sink.add(1, OsStr::new("."), &Entry::new(inode.attr())) {
            return Ok(());
        }
        if offset < 2 {
            let parent = self.get(dir.parent).unwrap_or_else(|_| Arc::clone(&inode));
            if sink.add(2, OsStr::new(".."), &Entry::new(parent.attr())) {
                return Ok(());
            }
        }
        for (next, name, target) in dir.entries_from(offset) {
            // Being freed by a concurrent forget: leave it out, as a fresh listing would.
            let Ok(child) = self.get(target.ino) else { continue };
            if sink.add(next, OsStr::from_bytes(name), &Entry::new(child.attr())) {
                break;
            }
        }
        Ok(())
    }

    fn fsyncdir(&self, _req: &Request, _ino: u64, _fh: u64, _datasync: bool) -> Result<()> {
        Ok(())
    }

    fn statfs(&self, _req: &Request, _ino: u64) -> Result<StatFs> {
        Ok(self.space.statfs())
    }

    fn setxattr(&self, _req: &Request, ino: u64, name: &OsStr, value: &[u8], flags: i32, _position: u32) -> Result<()> {
        let inode = self.get(ino)?;
        let mut meta = inode.meta.lock();
        xattr::set(&mut meta.xattrs, name.as_bytes(), value, flags)?;
        meta.ctime = SystemTime::now();
        Ok(())
    }

    fn getxattr(&self, _req: &Request, ino: u64, name: &OsStr) -> Result<Vec<u8>> {
        xattr::get(&self.get(ino)?.meta.lock().xattrs, name.as_bytes())
    }

    fn listxattr(&self, _req: &Request, ino: u64) -> Result<Vec<u8>> {
        Ok(xattr::list(&self.get(ino)?.meta.lock().xattrs))
    }

    fn removexattr(&self, _req: &Request, ino: u64, name: &OsStr) -> Result<()> {
        let inode = self.get(ino)?;
        let mut meta = inode.meta.lock();
        xattr::remove(&mut meta.xattrs, name.as_bytes())?;
        meta.ctime = SystemTime::now();
        Ok(())
    }

    fn create(&self, req: &Request, parent: u64, name: &OsStr, mode: u32, _flags: i32) -> Result<(Entry, Opened)> {
        let inode = self.make(req, parent, name, FileKind::RegularFile, mode, NewBody::File)?;
        let attr = {
            let mut meta = inode.meta.lock();
            meta.open += 1;
            attr_of(inode.ino, &meta)
        };
        Ok((Entry::new(attr), Opened::handle(inode.ino).keep_cache()))
    }

    fn fallocate(&self, req: &Request, ino: u64, _fh: u64, offset: u64, length: u64, mode: i32) -> Result<()> {
        let inode = self.get(ino)?;
        let end = offset.checked_add(length).ok_or(Errno::EFBIG)?;
        let mut pages = Self::file(&inode)?.write();
        match mode {
            0 | FALLOC_FL_KEEP_SIZE => pages.allocate(offset, end, &self.space)?,
            mode if mode == FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE => pages.punch(offset, end, &self.space),
            _ => return Err(Errno::EOPNOTSUPP),
        }
        let mut meta = inode.meta.lock();
        if mode == 0 && end > meta.size {
            meta.size = end;
        }
        meta.pages = pages.page_count();
        meta.modified(SystemTime::now());
        // HANDLE_KILLPRIV_V2: the kernel leaves dropping setuid/setgid on any change by
        // someone other than root to us, fallocate included.
        let dropped = req.uid != 0 && meta.drop_privileges();
        drop(meta);
        if dropped {
            self.mode_changed(ino);
        }
        Ok(())
    }

    fn lseek(&self, _req: &Request, ino: u64, _fh: u64, offset: i64, whence: i32) -> Result<i64> {
        let inode = self.get(ino)?;
        let pages = Self::file(&inode)?.read();
        let size = inode.meta.lock().size;
        let offset = u64::try_from(offset).map_err(|_| Errno::EINVAL)?;
        let found = pages.seek(offset, whence, size)?;
        i64::try_from(found).map_err(|_| Errno::EOVERFLOW)
    }

    fn copy_file_range(
        &self,
        req: &Request,
        ino_in: u64,
        _fh_in: u64,
        offset_in: u64,
        ino_out: u64,
        _fh_out: u64,
        offset_out: u64,
        len: u64,
        _flags: u64,
    ) -> Result<u32> {
        let source = self.get(ino_in)?;
        let target = self.get(ino_out)?;
        // Read first, then write: correct even when both ranges are in one file.
        let bytes = {
            let pages = Self::file(&source)?.read();
            let size = source.meta.lock().size;
            let count = len.min(COPY_CHUNK).min(size.saturating_sub(offset_in));
            let mut bytes = vec![0; count as usize];
            pages.read(offset_in, &mut bytes, size);
            bytes
        };
        if bytes.is_empty() {
            return Ok(0);
        }
        self.write_at(&target, offset_out, &bytes, req.uid != 0)
    }

    fn destroy(&self) {
        let held = self.unlinked_held();
        let total = self.inodes.read().len();
        fusehost_plugin_api::tracing::info!("memfs destroyed: {total} inodes, {held} unlinked inodes still held");
    }
}
