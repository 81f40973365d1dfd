//! `fuser-memfs MOUNTPOINT [THREADS]`: the benchmark suite's Rust peer, an in-memory
//! filesystem written directly against fuser, tuned as its author would tune it: the
//! same session settings as fusehost (worker threads on cloned `/dev/fuse`
//! descriptors, 1 s TTLs, `default_permissions`), file data in one contiguous buffer per
//! file, a read-write lock per file, and no FLUSH handler (the kernel stops sending
//! FLUSH after the first `ENOSYS`). Enough of POSIX for the suite's workloads: files,
//! directories, create/open/read/write/truncate/unlink/rename, readdir, statfs.
//! Serves until SIGINT or SIGTERM.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, LockOwner, MountOption, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use parking_lot::{Mutex, RwLock};

const TTL: Duration = Duration::from_secs(1);
const ROOT: u64 = 1;

struct Node {
    attr: Mutex<FileAttr>,
    data: RwLock<Vec<u8>>,
    children: Mutex<BTreeMap<OsString, u64>>,
}

impl Node {
    fn new(ino: u64, kind: FileType, perm: u16, (uid, gid): (u32, u32)) -> Node {
        let now = SystemTime::now();
        Node {
            attr: Mutex::new(FileAttr {
                ino: INodeNo(ino),
                size: 0,
                blocks: 0,
                atime: now,
                mtime: now,
                ctime: now,
                crtime: now,
                kind,
                perm,
                nlink: if kind == FileType::Directory { 2 } else { 1 },
                uid,
                gid,
                rdev: 0,
                blksize: 4096,
                flags: 0,
            }),
            data: RwLock::new(Vec::new()),
            children: Mutex::new(BTreeMap::new()),
        }
    }
}

struct MemFs {
    nodes: RwLock<HashMap<u64, Arc<Node>>>,
    next_ino: AtomicU64,
}

impl MemFs {
    fn node(&self, ino: INodeNo) -> Result<Arc<Node>, Errno> {
        self.nodes.read().get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    fn make(&self, req: &Request, parent: INodeNo, name: &OsStr, kind: FileType, mode: u32) -> Result<FileAttr, Errno> {
        let dir = self.node(parent)?;
        let mut children = dir.children.lock();
        if children.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino.fetch_add(1, Ordering::Relaxed);
        let node = Arc::new(Node::new(ino, kind, (mode & 0o7777) as u16, (req.uid(), req.gid())));
        let attr = *node.attr.lock();
        self.nodes.write().insert(ino, node);
        children.insert(name.to_owned(), ino);
        Ok(attr)
    }

    fn remove(&self, parent: INodeNo, name: &OsStr, want_dir: bool) -> Result<(), Errno> {
        let dir = self.node(parent)?;
        let mut children = dir.children.lock();
        let ino = *children.get(name).ok_or(Errno::ENOENT)?;
        let node = self.node(INodeNo(ino))?;
        let is_dir = node.attr.lock().kind == FileType::Directory;
        if is_dir != want_dir {
            return Err(if want_dir { Errno::ENOTDIR } else { Errno::EISDIR });
        }
        if is_dir && !node.children.lock().is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        children.remove(name);
        // Open files keep their node alive through the Arc a handle would hold; this
        // peer keeps none and drops the data at once, as the suite never reads an
        // unlinked file.
        self.nodes.write().remove(&ino);
        Ok(())
    }
}

impl fuser::Filesystem for MemFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = self.node(parent).and_then(|dir| {
            let ino = *dir.children.lock().get(name).ok_or(Errno::ENOENT)?;
            Ok(*self.node(INodeNo(ino))?.attr.lock())
        });
        match found {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(errno) => reply.error(errno),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.node(ino) {
            Ok(node) => reply.attr(&TTL, &node.attr.lock()),
            Err(errno) => reply.error(errno),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let node = match self.node(ino) {
            Ok(node) => node,
            Err(errno) => return reply.error(errno),
        };
        if let Some(size) = size {
            let mut data = node.data.write();
            data.resize(size as usize, 0);
        }
        let mut attr = node.attr.lock();
        let time = |t: TimeOrNow| match t {
            TimeOrNow::SpecificTime(time) => time,
            TimeOrNow::Now => SystemTime::now(),
        };
        if let Some(size) = size {
            attr.size = size;
            attr.blocks = size.div_ceil(512);
        }
        if let Some(mode) = mode {
            attr.perm = (mode & 0o7777) as u16;
        }
        if let Some(uid) = uid {
            attr.uid = uid;
        }
        if let Some(gid) = gid {
            attr.gid = gid;
        }
        if let Some(atime) = atime {
            attr.atime = time(atime);
        }
        if let Some(mtime) = mtime {
            attr.mtime = time(mtime);
        }
        attr.ctime = SystemTime::now();
        reply.attr(&TTL, &attr);
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let made = self.make(req, parent, name, FileType::Directory, mode & !umask);
        match made {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(errno) => reply.error(errno),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.remove(parent, name, false) {
            Ok(()) => reply.ok(),
            Err(errno) => reply.error(errno),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.remove(parent, name, true) {
            Ok(()) => reply.ok(),
            Err(errno) => reply.error(errno),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let moved = (|| {
            let from = self.node(parent)?;
            let ino = from.children.lock().remove(name).ok_or(Errno::ENOENT)?;
            let to = self.node(newparent)?;
            if let Some(replaced) = to.children.lock().insert(newname.to_owned(), ino) {
                self.nodes.write().remove(&replaced);
            }
            Ok(())
        })();
        match moved {
            Ok(()) => reply.ok(),
            Err(errno) => reply.error(errno),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.node(ino) {
            Ok(node) => {
                if flags.0 & libc::O_TRUNC != 0 {
                    node.data.write().clear();
                    let mut attr = node.attr.lock();
                    attr.size = 0;
                    attr.blocks = 0;
                }
                reply.opened(FileHandle(0), FopenFlags::empty());
            }
            Err(errno) => reply.error(errno),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.node(ino) {
            Ok(node) => {
                let data = node.data.read();
                let start = (offset as usize).min(data.len());
                let end = (start + size as usize).min(data.len());
                reply.data(&data[start..end]);
            }
            Err(errno) => reply.error(errno),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        bytes: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.node(ino) {
            Ok(node) => {
                let end = offset as usize + bytes.len();
                let size = {
                    let mut data = node.data.write();
                    if data.len() < end {
                        data.resize(end, 0);
                    }
                    data[offset as usize..end].copy_from_slice(bytes);
                    data.len() as u64
                };
                let mut attr = node.attr.lock();
                attr.size = size;
                attr.blocks = size.div_ceil(512);
                attr.mtime = SystemTime::now();
                reply.written(bytes.len() as u32);
            }
            Err(errno) => reply.error(errno),
        }
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let node = match self.node(ino) {
            Ok(node) => node,
            Err(errno) => return reply.error(errno),
        };
        let children = node.children.lock();
        let nodes = self.nodes.read();
        let dots = [(ino.0, FileType::Directory, OsStr::new(".")), (ROOT, FileType::Directory, OsStr::new(".."))];
        let entries = dots.into_iter().chain(children.iter().filter_map(|(name, &child)| {
            let kind = nodes.get(&child)?.attr.lock().kind;
            Some((child, kind, name.as_os_str()))
        }));
        for (index, (child, kind, name)) in entries.enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), index as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let files = self.nodes.read().len() as u64;
        reply.statfs(1 << 24, 1 << 23, 1 << 23, files, 1 << 20, 4096, 255, 4096);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        match self.make(req, parent, name, FileType::RegularFile, mode & !umask) {
            Ok(attr) => reply.created(&TTL, &attr, Generation(0), FileHandle(0), FopenFlags::empty()),
            Err(errno) => reply.error(errno),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        reply.ok();
    }
}

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(mountpoint) = args.next().map(PathBuf::from) else {
        eprintln!("usage: fuser-memfs MOUNTPOINT [THREADS]");
        std::process::exit(2);
    };
    let threads = args.next().and_then(|n| n.to_str()?.parse().ok()).unwrap_or(2);
    let root = Arc::new(Node::new(ROOT, FileType::Directory, 0o755, (0, 0)));
    let fs = MemFs { nodes: RwLock::new(HashMap::from([(ROOT, root)])), next_ino: AtomicU64::new(2) };
    let mut config = fuser::Config::default();
    config.mount_options =
        vec![MountOption::FSName("fuser-memfs".into()), MountOption::DefaultPermissions, MountOption::RW];
    config.n_threads = Some(threads);
    config.clone_fd = true;
    let session = match fuser::Session::new(fs, &mountpoint, &config).and_then(fuser::Session::spawn) {
        Ok(session) => session,
        Err(error) => {
            eprintln!("fuser-memfs: mounting {}: {error}", mountpoint.display());
            std::process::exit(1);
        }
    };
    println!("fuser-memfs mounted at {}", mountpoint.display());
    let mut signals = match signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM]) {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("fuser-memfs: signals: {error}");
            std::process::exit(1);
        }
    };
    signals.forever().next();
    drop(session);
}
