//! The inode table: one `O_PATH` descriptor per source file the kernel knows, keyed by
//! the source's (device, inode) so that every name of a file is one FUSE inode.
//!
//! A source file keeps its id for the life of the mount, even after the kernel forgot
//! it: the id is the `st_ino` users see, and a file whose inode number changed when
//! the kernel's cache was dropped (or invalidated because the source changed) would
//! confuse `find -inum`, `tar` and `rsync -H`. That costs one map entry per source file
//! ever looked up; the descriptor itself is closed at forget.
//!
//! Every operation starts from such a descriptor and uses `*at()` calls relative to
//! it, never a path re-joined from names, so a rename under the mount cannot make an
//! operation land on another file (as libfuse's passthrough_ll does).
//!
//! Descriptors are bounded by the process's open-file limit, files the kernel holds
//! are not (it keeps every inode of a walked tree while memory lasts). Once the nodes
//! of all passthrough mounts in the process hold half the limit, a new node is kept as
//! a file handle instead, reopened for each
//! operation (one `open_by_handle_at` more), where this process may reopen handles
//! (`CAP_DAC_READ_SEARCH`) and the file is on the source root's filesystem. Elsewhere
//! the mount answers `EMFILE` at the limit, as libfuse's passthrough_hp does.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use fusehost_plugin_api::sync::RwLock;
use fusehost_plugin_api::{Errno, Result, ROOT_INO};
use rustix::fs::{fstat, openat, Mode, OFlags, Stat, CWD};

use crate::handle::{self, FileHandle};

pub fn errno(error: rustix::io::Errno) -> Errno {
    Errno(error.raw_os_error())
}

/// `/proc/self/fd/N` for a descriptor: a name for exactly the file it refers to.
pub fn proc_path_of(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// One source file the kernel holds a reference to.
#[derive(Debug)]
pub struct Node {
    reach: Reach,
}

/// How a node reaches its source file.
#[derive(Debug)]
enum Reach {
    /// An `O_PATH` descriptor, held while the kernel holds the node.
    Held(CountedFd),
    /// A handle, reopened (through the anchor, a descriptor of the source's root) for
    /// each operation.
    Handle(FileHandle, Arc<CountedFd>),
}

/// The descriptors the nodes of every passthrough mount in this process hold: the
/// open-file limit is the process's, and one process serves many mounts.
static ALL_DESCRIPTORS: AtomicUsize = AtomicUsize::new(0);

/// A descriptor counted in [`ALL_DESCRIPTORS`] for as long as it is open.
#[derive(Debug)]
struct CountedFd(OwnedFd);

impl CountedFd {
    fn new(fd: OwnedFd) -> CountedFd {
        ALL_DESCRIPTORS.fetch_add(1, Ordering::Relaxed);
        CountedFd(fd)
    }
}

impl Drop for CountedFd {
    fn drop(&mut self) {
        ALL_DESCRIPTORS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A descriptor of a node's source file for one operation: the node's own, or one
/// reopened from its handle and closed when this is dropped.
pub enum NodeFd<'a> {
    Held(BorrowedFd<'a>),
    Reopened(OwnedFd),
}

impl AsFd for NodeFd<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            NodeFd::Held(fd) => *fd,
            NodeFd::Reopened(fd) => fd.as_fd(),
        }
    }
}

impl NodeFd<'_> {
    /// `/proc/self/fd/N`: the path through which an `O_PATH` descriptor can be
    /// reopened, chmod'ed or given xattrs (which `O_PATH` descriptors refuse). Valid
    /// while this descriptor lives.
    pub fn proc_path(&self) -> String {
        proc_path_of(&self.as_fd())
    }
}

impl Node {
    /// A descriptor of the source file (`ESTALE` if it was kept as a handle and is
    /// gone from the source since).
    pub fn fd(&self) -> Result<NodeFd<'_>> {
        match &self.reach {
            Reach::Held(fd) => Ok(NodeFd::Held(fd.0.as_fd())),
            Reach::Handle(handle, anchor) => handle.open(anchor.0.as_fd()).map(NodeFd::Reopened).map_err(Errno::from),
        }
    }

    pub fn stat(&self) -> Result<Stat> {
        fstat(self.fd()?).map_err(errno)
    }
}

#[derive(Debug)]
pub struct Nodes {
    /// The nodes the kernel holds.
    by_id: RwLock<HashMap<u64, Arc<Node>>>,
    /// Every source file's id, held or not.
    by_key: RwLock<HashMap<(u64, u64), u64>>,
    next_id: AtomicU64,
    /// A descriptor of the root through which handles are reopened (`None` if the root
    /// cannot be opened for reading: no handles then), and the root's device.
    anchor: Option<Arc<CountedFd>>,
    root_dev: u64,
    /// From how many descriptors new nodes are kept as handles (`None`: never), settled
    /// at the first new node, once the host has raised the open-file limit.
    handles_from: OnceLock<Option<usize>>,
}

// `struct stat`'s field types differ between architectures: the casts are for the others.
#[allow(clippy::unnecessary_cast)]
fn key_of(stat: &Stat) -> (u64, u64) {
    (stat.st_dev as u64, stat.st_ino as u64)
}

impl Nodes {
    /// A table whose root is the `O_PATH` descriptor `root`.
    pub fn new(root: OwnedFd) -> Result<Nodes> {
        let key = key_of(&fstat(&root).map_err(errno)?);
        // open_by_handle_at refuses an `O_PATH` descriptor as its anchor.
        let anchor = openat(&root, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).ok();
        let root = Arc::new(Node { reach: Reach::Held(CountedFd::new(root)) });
        Ok(Nodes {
            by_id: RwLock::new(HashMap::from([(ROOT_INO, root)])),
            by_key: RwLock::new(HashMap::from([(key, ROOT_INO)])),
            next_id: AtomicU64::new(ROOT_INO + 1),
            anchor: anchor.map(|fd| Arc::new(CountedFd::new(fd))),
            root_dev: key.0,
            handles_from: OnceLock::new(),
        })
    }

    /// Half the open-file limit, where handles can be reopened.
    fn handles_from(&self) -> Option<usize> {
        *self.handles_from.get_or_init(|| {
            let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current?;
            let reopenable = self.anchor.as_ref().is_some_and(|anchor| handle::reopenable(anchor.0.as_fd()));
            reopenable.then(|| usize::try_from(limit / 2).unwrap_or(usize::MAX))
        })
    }

    /// How a new node for `fd` (whose attributes are `stat`) should reach its file.
    fn reach(&self, fd: OwnedFd, stat: &Stat) -> Reach {
        let short = self.handles_from().is_some_and(|from| ALL_DESCRIPTORS.load(Ordering::Relaxed) >= from);
        let anchor = self.anchor.as_ref().filter(|_| short && key_of(stat).0 == self.root_dev);
        if let Some(anchor) = anchor {
            if let Ok(handle) = FileHandle::of(fd.as_fd()) {
                return Reach::Handle(handle, Arc::clone(anchor));
            }
        }
        Reach::Held(CountedFd::new(fd))
    }

    pub fn get(&self, id: u64) -> Result<Arc<Node>> {
        // A node the kernel forgot cannot be named again: ESTALE, as NFS says.
        self.by_id.read().get(&id).cloned().ok_or(Errno(rustix::io::Errno::STALE.raw_os_error()))
    }

    /// Opens `name` in `parent` and returns its node id (the same id for every name
    /// of one file) and its attributes.
    pub fn look_up(&self, parent: &Node, name: &OsStr) -> Result<(u64, Stat)> {
        let fd = openat(parent.fd()?, name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
            .map_err(errno)?;
        self.register(fd)
    }

    /// The node of the file behind `file` (any descriptor of it), found again by name
    /// never: through `/proc/self/fd`, which names exactly that file.
    pub fn node_of(&self, file: &impl AsRawFd) -> Result<(u64, Stat)> {
        // Following the /proc link (no O_NOFOLLOW, which would open the link itself)
        // lands on the file the descriptor refers to, a symlink included, never on what
        // a symlink points to.
        let fd = openat(CWD, proc_path_of(file), OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).map_err(errno)?;
        self.register(fd)
    }

    /// The id of the file `fd` (an `O_PATH` descriptor) refers to, kept if it is new.
    fn register(&self, fd: OwnedFd) -> Result<(u64, Stat)> {
        let stat = fstat(&fd).map_err(errno)?;
        let key = key_of(&stat);
        if let Some(&id) = self.by_key.read().get(&key) {
            if self.by_id.read().contains_key(&id) {
                return Ok((id, stat));
            }
        }
        // Chosen outside the locks (it may take a handle); dropped if another request
        // registered the file meanwhile.
        let node = Node { reach: self.reach(fd, &stat) };
        let mut by_key = self.by_key.write();
        let id = *by_key.entry(key).or_insert_with(|| self.next_id.fetch_add(1, Ordering::Relaxed));
        // Known before and forgotten since: held again, under the same id.
        self.by_id.write().entry(id).or_insert_with(|| Arc::new(node));
        Ok((id, stat))
    }

    /// The kernel forgot `id`: close its descriptor (the id stays the file's).
    pub fn forget(&self, id: u64) {
        if id != ROOT_INO {
            self.by_id.write().remove(&id);
        }
    }

    /// The id of the file `stat` describes, if the kernel holds it.
    pub fn known(&self, stat: &Stat) -> Option<u64> {
        let id = *self.by_key.read().get(&key_of(stat))?;
        self.by_id.read().contains_key(&id).then_some(id)
    }

    /// The ids of every node the kernel holds.
    pub fn held(&self) -> Vec<u64> {
        self.by_id.read().keys().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.by_id.read().len()
    }
}
