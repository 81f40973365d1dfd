//! The bucket as a tree of folders and files: lookups, listings and attributes from
//! the store (cached for the mount's TTL, with the kernel told when a listing finds
//! changes), reads through the block cache, writes through staged copies, and the
//! namespace operations an object store can do (mkdir as a marker, rename of a file
//! as copy and delete). Every method is `async`: the plugin answers from its runtime.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use fusehost_plugin_api::sync::Mutex;
use fusehost_plugin_api::*;
use futures::TryStreamExt;

use crate::blocks::{Blocks, Object};
use crate::namespace::{child_path, split, Known, Namespace};
use crate::staging::{Staged, Staging};
use crate::store::Store;

/// One entry of a listing.
#[derive(Clone, Debug)]
struct Child {
    name: String,
    known: Known,
}

/// A directory's children as last listed.
struct Listing {
    fetched: Instant,
    children: Arc<Vec<Child>>,
}

/// What an open handle reads from and writes to.
enum OpenFile {
    /// A file opened for reading only: blocks of this version of the object.
    Reading { object: Object, next_offset: AtomicU64 },
    /// A file opened for writing (or read while a staged copy exists).
    Staged { ino: u64, staged: Arc<Staged> },
    /// A directory, with the listing its readdir calls page through.
    Directory { ino: u64, listing: Mutex<Option<Arc<Vec<Child>>>> },
}

pub(crate) struct Bucket {
    store: Arc<Store>,
    names: Namespace,
    blocks: Arc<Blocks>,
    staging: Staging,
    listings: Mutex<HashMap<String, Listing>>,
    handles: Mutex<HashMap<u64, Arc<OpenFile>>>,
    next_fh: AtomicU64,
    ttl: Duration,
    host: OnceLock<MountHost>,
    uid: u32,
    gid: u32,
    mounted: SystemTime,
}

fn is_write(flags: i32) -> bool {
    flags & libc_flags::ACCMODE != libc_flags::RDONLY || flags & libc_flags::TRUNC != 0
}

/// `open(2)` flag bits (the same on every Linux architecture this host runs on).
mod libc_flags {
    pub const ACCMODE: i32 = 0o3;
    pub const RDONLY: i32 = 0;
    pub const TRUNC: i32 = 0o1000;
}

impl Bucket {
    pub(crate) fn new(store: Store, blocks: Blocks, staging_dir: PathBuf, ttl: Duration) -> Bucket {
        Bucket {
            store: Arc::new(store),
            names: Namespace::new(),
            blocks: Arc::new(blocks),
            staging: Staging::new(staging_dir),
            listings: Mutex::default(),
            handles: Mutex::default(),
            next_fh: AtomicU64::new(1),
            ttl,
            host: OnceLock::new(),
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
            mounted: SystemTime::now(),
        }
    }

    /// The kernel's handle for notifications (ABI 1.1), once the mount is up.
    pub(crate) fn attach(&self, host: MountHost) {
        let _ = self.host.set(host);
    }

    /// The kernel forgot `ino`; a file still being written keeps its inode.
    pub(crate) fn forget(&self, ino: u64) {
        if self.staging.get(ino).is_none() {
            self.names.forget(ino);
        }
    }

    fn attr(&self, ino: u64, known: &Known) -> FileAttr {
        let perm = if known.kind == FileKind::Directory { 0o755 } else { 0o644 };
        let mtime = if known.mtime == SystemTime::UNIX_EPOCH { self.mounted } else { known.mtime };
        let mut attr = FileAttr::new(ino, known.kind, perm, mtime);
        attr.size = known.size;
        attr.blocks = known.size.div_ceil(512);
        attr.uid = self.uid;
        attr.gid = self.gid;
        attr
    }

    fn entry(&self, ino: u64, known: &Known) -> Entry {
        Entry::new(self.attr(ino, known)).with_ttls(self.ttl, self.ttl)
    }

    fn is_fresh(&self, fetched: Instant) -> bool {
        fetched.elapsed() < self.ttl
    }

    fn path_of(&self, ino: u64) -> Result<String> {
        self.names.path(ino).ok_or(Errno::ENOENT)
    }

    fn handle(&self, fh: u64) -> Result<Arc<OpenFile>> {
        self.handles.lock().get(&fh).cloned().ok_or(Errno::EBADF)
    }

    fn add_handle(&self, open: OpenFile) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.lock().insert(fh, Arc::new(open));
        fh
    }

    /// Forgets the listing of `dir`: the next readdir or lookup in it asks the store.
    fn drop_listing(&self, dir: &str) {
        self.listings.lock().remove(dir);
    }

    /// What the store holds at `path` (a file, a directory, or nothing): a HEAD, and
    /// for a name that is no object, a one-key listing of the prefix.
    async fn stat(&self, path: &str) -> Result<Option<Known>> {
        match self.store.call("stat", self.store.operator.stat(path)).await {
            Ok(metadata) if metadata.is_file() => return Ok(Some(known_file(&metadata))),
            Ok(_) => return Ok(Some(Known::directory())),
            Err(errno) if errno == Errno::ENOENT => {}
            Err(errno) => return Err(errno),
        }
        match self.first_keys(&format!("{path}/"), 1).await {
            Ok(keys) if !keys.is_empty() => Ok(Some(Known::directory())),
            Ok(_) => Ok(None),
            Err(errno) if errno == Errno::ENOENT => Ok(None),
            Err(errno) => Err(errno),
        }
    }

    /// Up to `count` keys under `prefix` (the prefix's own marker included), from one
    /// page of the listing: `list` would fetch every page of a large folder.
    async fn first_keys(&self, prefix: &str, count: usize) -> Result<Vec<String>> {
        let mut lister = self.store.call("list", self.store.operator.lister_with(prefix).limit(count)).await?;
        let mut keys = Vec::new();
        while keys.len() < count {
            match self.store.call("list", lister.try_next()).await? {
                Some(entry) => keys.push(entry.path().to_owned()),
                None => break,
            }
        }
        Ok(keys)
    }

    /// The children of directory `dir`, from the cache while fresh.
    async fn list(&self, dir: &str) -> Result<Arc<Vec<Child>>> {
        if let Some(listing) = self.listings.lock().get(dir) {
            if self.is_fresh(listing.fetched) {
                return Ok(Arc::clone(&listing.children));
            }
        }
        let key = if dir.is_empty() { "/".to_owned() } else { format!("{dir}/") };
        let entries = match self.store.call("list", self.store.operator.list(&key)).await {
            Ok(entries) => entries,
            Err(errno) if errno == Errno::ENOENT => Vec::new(),
            Err(errno) => return Err(errno),
        };
        let mut children: Vec<Child> = entries
            .iter()
            .filter(|entry| entry.path() != key && !entry.name().is_empty())
            .filter_map(|entry| {
                let name = entry.name().trim_end_matches('/');
                if name.is_empty() || name.contains('/') {
                    return None;
                }
                let known = if entry.metadata().is_dir() { Known::directory() } else { known_file(entry.metadata()) };
                Some(Child { name: name.to_owned(), known })
            })
            .collect();
        children.sort_by(|a, b| a.name.cmp(&b.name));
        children.dedup_by(|a, b| a.name == b.name);
        self.add_staged(dir, &mut children);
        let children = Arc::new(children);
        let previous = self
            .listings
            .lock()
            .insert(dir.to_owned(), Listing { fetched: Instant::now(), children: Arc::clone(&children) });
        self.learn(dir, previous.map(|listing| listing.children), &children);
        Ok(children)
    }

    /// Files being written through this mount, not yet in the store, belong in
    /// their directory's listing too; one unlinked while still open does not.
    fn add_staged(&self, dir: &str, children: &mut Vec<Child>) {
        for (ino, staged) in self.staging.files() {
            let Some((path, known)) = self.names.named(ino) else { continue };
            let (parent, name) = split(&path);
            if parent != dir {
                continue;
            }
            if let Err(at) = children.binary_search_by(|child| child.name.as_str().cmp(name)) {
                let known = Known { size: staged.size(), ..known };
                children.insert(at, Child { name: name.to_owned(), known });
            }
        }
    }

    /// Records what a fresh listing of `dir` says of its children, and tells the
    /// kernel about what changed behind its back since the last one.
    fn learn(&self, dir: &str, previous: Option<Arc<Vec<Child>>>, children: &[Child]) {
        for child in children {
            let path = child_path(dir, &child.name);
            if let Some(ino) = self.names.ino_of(&path) {
                if self.staging.get(ino).is_none() {
                    self.names.remember(&path, child.known.clone());
                }
            }
        }
        let (Some(previous), Some(host), Some(parent)) = (previous, self.host.get(), self.names.ino_of(dir)) else {
            return;
        };
        let now: HashMap<&str, &Known> = children.iter().map(|child| (child.name.as_str(), &child.known)).collect();
        let changed = previous.len() != children.len()
            || previous.iter().any(|old| now.get(old.name.as_str()).is_none_or(|known| **known != old.known));
        if changed {
            // The kernel's cached listing of the directory is stale too.
            let _ = host.invalidate_inode(parent, Some((0, 0)));
        }
        for old in previous.iter() {
            let path = child_path(dir, &old.name);
            match now.get(old.name.as_str()) {
                Some(known) if **known == old.known => continue,
                Some(_) => {
                    if let Some(ino) = self.names.ino_of(&path) {
                        let _ = host.invalidate_inode(ino, Some((0, 0)));
                    }
                }
                None => {
                    let _ = host.invalidate_entry(parent, OsStr::new(&old.name));
                }
            }
        }
        let before: std::collections::HashSet<&str> = previous.iter().map(|child| child.name.as_str()).collect();
        for child in children.iter().filter(|child| !before.contains(child.name.as_str())) {
            // A negative entry the kernel may hold for the new name.
            let _ = host.invalidate_entry(parent, OsStr::new(&child.name));
        }
    }

    pub(crate) async fn lookup(&self, parent: u64, name: &OsStr) -> Result<Entry> {
        let name = name.to_str().ok_or(Errno::ENOENT)?;
        let dir = self.path_of(parent)?;
        let path = child_path(&dir, name);
        if let Some(ino) = self.names.ino_of(&path) {
            if let Some(staged) = self.staging.get(ino) {
                let (_, known, _) = self.names.known(ino).ok_or(Errno::ENOENT)?;
                return Ok(self.entry(ino, &Known { size: staged.size(), ..known }));
            }
            if let Some((_, known, fetched)) = self.names.known(ino) {
                if self.is_fresh(fetched) {
                    return Ok(self.entry(ino, &known));
                }
            }
        }
        let cached = self
            .listings
            .lock()
            .get(&dir)
            .filter(|listing| self.is_fresh(listing.fetched))
            .map(|listing| Arc::clone(&listing.children));
        let found = match cached {
            Some(children) => match children.binary_search_by(|child| child.name.as_str().cmp(name)) {
                Ok(index) => Some(children[index].known.clone()),
                Err(_) => None,
            },
            None => self.stat(&path).await?,
        };
        match found {
            Some(known) => {
                let ino = self.names.remember(&path, known.clone());
                Ok(self.entry(ino, &known))
            }
            None => Ok(Entry::negative(self.ttl)),
        }
    }

    /// [`Bucket::getattr`] with the TTL the kernel may trust it for: `cache_ttl`.
    pub(crate) async fn getattr_with_ttl(&self, ino: u64) -> Result<(FileAttr, Option<Duration>)> {
        Ok((self.getattr(ino).await?, Some(self.ttl)))
    }

    pub(crate) async fn getattr(&self, ino: u64) -> Result<FileAttr> {
        let (path, known, fetched) = self.names.known(ino).ok_or(Errno::ENOENT)?;
        if let Some(staged) = self.staging.get(ino) {
            return Ok(self.attr(ino, &Known { size: staged.size(), ..known }));
        }
        if self.is_fresh(fetched) || ino == ROOT_INO {
            return Ok(self.attr(ino, &known));
        }
        match self.stat(&path).await? {
            Some(now) if now.kind == known.kind => {
                self.names.update(ino, |known| *known = now.clone());
                Ok(self.attr(ino, &now))
            }
            _ => Err(Errno::ENOENT),
        }
    }

    pub(crate) async fn setattr_with_ttl(&self, ino: u64, changes: &SetAttr) -> Result<(FileAttr, Option<Duration>)> {
        Ok((self.setattr(ino, changes).await?, Some(self.ttl)))
    }

    pub(crate) async fn setattr(&self, ino: u64, changes: &SetAttr) -> Result<FileAttr> {
        if let Some(size) = changes.size {
            let path = self.path_of(ino)?;
            let (_, known, _) = self.names.known(ino).ok_or(Errno::ENOENT)?;
            if known.kind == FileKind::Directory {
                return Err(Errno::EISDIR);
            }
            match self.staging.get(ino) {
                Some(staged) => staged.truncate(size)?,
                None => {
                    let staged = self.stage(ino, &path, known.size, size == 0).await?;
                    let outcome = async {
                        staged.truncate(size)?;
                        self.upload(ino, &staged).await
                    }
                    .await;
                    self.staging.close(ino);
                    outcome?;
                }
            }
        }
        // Permissions, owners and times: an object store keeps none of them.
        self.getattr(ino).await
    }

    /// The staged copy of `ino`, filled from the store unless `empty`.
    async fn stage(&self, ino: u64, path: &str, size: u64, empty: bool) -> Result<Arc<Staged>> {
        let store = &self.store;
        self.staging
            .open(ino, |staged| async move {
                if empty {
                    Ok(())
                } else {
                    staged.fill_from(store, path, size).await
                }
            })
            .await
    }

    /// Uploads `staged` to the path of `ino` when it changed; the mount then knows the
    /// new object. A file unlinked (or replaced by a rename) while open is not
    /// uploaded: its name no longer leads to it, and uploading would bring the deleted
    /// name back.
    async fn upload(&self, ino: u64, staged: &Staged) -> Result<()> {
        let Some((path, _)) = self.names.named(ino) else { return Ok(()) };
        let path = path.as_str();
        if let Some((size, version)) = staged.upload(&self.store, path).await? {
            self.names.update(ino, |known| {
                known.size = size;
                known.version = version;
                known.mtime = SystemTime::now();
            });
            self.drop_listing(split(path).0);
        }
        Ok(())
    }

    pub(crate) async fn open(&self, ino: u64, flags: i32) -> Result<Opened> {
        let (path, known, _) = self.names.known(ino).ok_or(Errno::ENOENT)?;
        if known.kind == FileKind::Directory {
            return Err(Errno::EISDIR);
        }
        let open = if is_write(flags) || self.staging.get(ino).is_some() {
            let truncate = flags & libc_flags::TRUNC != 0;
            let staged = self.stage(ino, &path, known.size, truncate || known.size == 0).await?;
            if truncate {
                staged.truncate(0)?;
            }
            OpenFile::Staged { ino, staged }
        } else {
            let attr = self.getattr(ino).await?;
            let (_, known, _) = self.names.known(ino).ok_or(Errno::ENOENT)?;
            let version = if known.version.is_empty() {
                format!("{}-{:?}", attr.size, attr.mtime)
            } else {
                known.version.clone()
            };
            let object = Object { path: path.into(), version: version.into(), size: attr.size };
            OpenFile::Reading { object, next_offset: AtomicU64::new(0) }
        };
        Ok(Opened { fh: self.add_handle(open), ..Opened::default() })
    }

    pub(crate) async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Bytes> {
        match &*self.handle(fh)? {
            OpenFile::Reading { object, next_offset, .. } => {
                let sequential = next_offset.swap(offset + u64::from(size), Ordering::Relaxed) == offset;
                self.blocks.read(&self.store, object, offset, size, sequential).await
            }
            OpenFile::Staged { staged, .. } => staged.read(offset, size).map(Bytes::from),
            OpenFile::Directory { .. } => Err(Errno::EISDIR),
        }
    }

    pub(crate) fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        match &*self.handle(fh)? {
            OpenFile::Staged { staged, .. } => staged.write(offset, data),
            _ => Err(Errno::EBADF),
        }
    }

    /// Uploads what was written through `fh`, if anything.
    pub(crate) async fn flush(&self, fh: u64) -> Result<()> {
        if let OpenFile::Staged { ino, staged } = &*self.handle(fh)? {
            self.upload(*ino, staged).await?;
        }
        Ok(())
    }

    pub(crate) async fn release(&self, fh: u64) -> Result<()> {
        let outcome = self.flush(fh).await;
        if let Some(open) = self.handles.lock().remove(&fh) {
            if let OpenFile::Staged { ino, staged } = &*open {
                if let Err(errno) = &outcome {
                    // The last chance to store what was written (close already saw
                    // the same error unless the writes came after it, through mmap).
                    let path = self.names.path(*ino).unwrap_or_default();
                    tracing::error!(path, size = staged.size(), "upload failed ({errno}); the new content is lost");
                }
                self.staging.close(*ino);
            }
        }
        outcome
    }

    pub(crate) async fn create(&self, parent: u64, name: &OsStr, flags: i32) -> Result<(Entry, Opened)> {
        let name = name.to_str().ok_or(Errno::EINVAL)?;
        let dir = self.path_of(parent)?;
        let path = child_path(&dir, name);
        if flags & 0o200 != 0 && self.stat(&path).await?.is_some() {
            return Err(Errno::EEXIST); // O_EXCL
        }
        let known = Known { kind: FileKind::RegularFile, size: 0, mtime: SystemTime::now(), version: String::new() };
        let ino = self.names.remember(&path, known.clone());
        let staged = self.staging.create(ino)?;
        self.drop_listing(&dir);
        let fh = self.add_handle(OpenFile::Staged { ino, staged });
        Ok((self.entry(ino, &known), Opened { fh, ..Opened::default() }))
    }

    pub(crate) async fn mkdir(&self, parent: u64, name: &OsStr) -> Result<Entry> {
        let name = name.to_str().ok_or(Errno::EINVAL)?;
        let dir = self.path_of(parent)?;
        let path = child_path(&dir, name);
        if self.stat(&path).await?.is_some() {
            return Err(Errno::EEXIST);
        }
        self.store.call("mkdir", self.store.operator.create_dir(&format!("{path}/"))).await?;
        self.drop_listing(&dir);
        let ino = self.names.remember(&path, Known::directory());
        Ok(self.entry(ino, &Known::directory()))
    }

    pub(crate) async fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        let name = name.to_str().ok_or(Errno::ENOENT)?;
        let dir = self.path_of(parent)?;
        let path = child_path(&dir, name);
        let staged_only = self.names.ino_of(&path).and_then(|ino| self.staging.get(ino)).is_some();
        match self.stat(&path).await? {
            Some(known) if known.kind == FileKind::Directory => return Err(Errno::EISDIR),
            None if !staged_only => return Err(Errno::ENOENT),
            _ => {}
        }
        self.store.call("delete", self.store.operator.delete(&path)).await?;
        self.names.unlink(&path);
        self.drop_listing(&dir);
        Ok(())
    }

    pub(crate) async fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
        let name = name.to_str().ok_or(Errno::ENOENT)?;
        let dir = self.path_of(parent)?;
        let path = child_path(&dir, name);
        let prefix = format!("{path}/");
        let keys = self.first_keys(&prefix, 2).await?;
        if keys.iter().any(|key| *key != prefix) {
            return Err(Errno::ENOTEMPTY);
        }
        match self.stat(&path).await? {
            Some(known) if known.kind != FileKind::Directory => return Err(Errno::ENOTDIR),
            None if keys.is_empty() => return Err(Errno::ENOENT),
            _ => {}
        }
        self.store.call("rmdir", self.store.operator.delete(&prefix)).await?;
        self.names.unlink(&path);
        self.drop_listing(&dir);
        self.drop_listing(&path);
        Ok(())
    }

    pub(crate) async fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        flags: u32,
    ) -> Result<()> {
        let (name, new_name) = (name.to_str().ok_or(Errno::ENOENT)?, new_name.to_str().ok_or(Errno::EINVAL)?);
        let (dir, new_dir) = (self.path_of(parent)?, self.path_of(new_parent)?);
        let (from, to) = (child_path(&dir, name), child_path(&new_dir, new_name));
        if flags & flags::rename::EXCHANGE != 0 {
            return Err(Errno::EINVAL);
        }
        if let Some(ino) = self.names.ino_of(&from) {
            if let Some(staged) = self.staging.get(ino) {
                self.upload(ino, &staged).await?;
            }
        }
        match self.stat(&from).await? {
            None => return Err(Errno::ENOENT),
            // Keys cannot be renamed in one step; mv(1) copies and deletes on EXDEV.
            Some(known) if known.kind == FileKind::Directory => return Err(Errno::EXDEV),
            Some(_) => {}
        }
        match self.stat(&to).await? {
            Some(_) if flags & flags::rename::NOREPLACE != 0 => return Err(Errno::EEXIST),
            Some(known) if known.kind == FileKind::Directory => return Err(Errno::EISDIR),
            _ => {}
        }
        if from != to {
            self.store.call("copy", self.store.operator.copy(&from, &to)).await?;
            self.store.call("delete", self.store.operator.delete(&from)).await?;
        }
        self.names.rename(&from, &to);
        self.drop_listing(&dir);
        self.drop_listing(&new_dir);
        Ok(())
    }

    pub(crate) fn opendir(&self, ino: u64) -> Result<Opened> {
        let (_, known, _) = self.names.known(ino).ok_or(Errno::ENOENT)?;
        if known.kind != FileKind::Directory {
            return Err(Errno::ENOTDIR);
        }
        // The kernel may keep this listing while ours is fresh: a warm `ls` then asks
        // nothing. A listing that finds changes drops the kernel's copy (`learn`).
        let dir = self.path_of(ino)?;
        let fresh = self.listings.lock().get(&dir).is_some_and(|listing| self.is_fresh(listing.fetched));
        let fh = self.add_handle(OpenFile::Directory { ino, listing: Mutex::new(None) });
        Ok(Opened { fh, cache_dir: true, keep_cache: fresh, ..Opened::default() })
    }

    /// The listing a directory handle pages through: taken at its first readdir (or
    /// again when the listing restarts at offset 0).
    async fn dir_listing(&self, fh: u64, offset: i64) -> Result<(String, Arc<Vec<Child>>)> {
        let open = self.handle(fh)?;
        let OpenFile::Directory { ino, listing } = &*open else { return Err(Errno::ENOTDIR) };
        let dir = self.path_of(*ino)?;
        if offset > 0 {
            if let Some(children) = listing.lock().clone() {
                return Ok((dir, children));
            }
        }
        let children = self.list(&dir).await?;
        *listing.lock() = Some(Arc::clone(&children));
        Ok((dir, children))
    }

    /// `.` and `..`, then the children, from `offset`: (inode, next offset, kind, name).
    fn entries<'a>(
        &'a self,
        dir_ino: u64,
        dir: &'a str,
        children: &'a [Child],
        offset: i64,
    ) -> impl Iterator<Item = (u64, i64, Known, &'a str)> + 'a {
        let dots = [(dir_ino, ".", Known::directory()), (dir_ino, "..", Known::directory())];
        let dots = dots.into_iter().map(|(ino, name, known)| (ino, known, name));
        let named = children.iter().map(move |child| {
            let ino = self.names.remember(&child_path(dir, &child.name), child.known.clone());
            (ino, child.known.clone(), child.name.as_str())
        });
        dots.chain(named)
            .enumerate()
            .skip(offset.max(0) as usize)
            .map(|(index, (ino, known, name))| (ino, index as i64 + 1, known, name))
    }

    pub(crate) async fn readdir<S: DirSink + ?Sized>(
        &self,
        ino: u64,
        fh: u64,
        offset: i64,
        sink: &mut S,
    ) -> Result<()> {
        let (dir, children) = self.dir_listing(fh, offset).await?;
        for (entry_ino, next, known, name) in self.entries(ino, &dir, &children, offset) {
            if sink.add(entry_ino, next, known.kind, OsStr::new(name)) {
                break;
            }
        }
        Ok(())
    }

    pub(crate) async fn readdirplus<S: DirPlusSink + ?Sized>(
        &self,
        ino: u64,
        fh: u64,
        offset: i64,
        sink: &mut S,
    ) -> Result<()> {
        let (dir, children) = self.dir_listing(fh, offset).await?;
        for (entry_ino, next, known, name) in self.entries(ino, &dir, &children, offset) {
            if sink.add(next, OsStr::new(name), &self.entry(entry_ino, &known)) {
                break;
            }
        }
        Ok(())
    }

    pub(crate) fn releasedir(&self, fh: u64) {
        self.handles.lock().remove(&fh);
    }
}

fn known_file(metadata: &opendal::Metadata) -> Known {
    Known {
        kind: FileKind::RegularFile,
        size: metadata.content_length(),
        mtime: metadata.last_modified().map(SystemTime::from).unwrap_or(SystemTime::UNIX_EPOCH),
        version: metadata.etag().unwrap_or_default().to_owned(),
    }
}
