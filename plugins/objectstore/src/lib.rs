//! objectstore: a bucket of an object store (or a prefix of it) as a folder, through
//! Apache OpenDAL, so S3-compatible stores (AWS, Garage, MinIO, Ceph) and the other
//! services OpenDAL speaks mount the same way.
//!
//! - Directories are key prefixes (and explicit `dir/` markers, which `mkdir` makes);
//!   sizes and mtimes come from the objects' metadata.
//! - Reads are ranged GETs of blocks, cached in memory and fetched ahead of sequential
//!   readers ([`blocks`]). Writes are staged in a local file and uploaded whole on
//!   `close` (`flush`), `fsync` and the last `release`, in parts for large files
//!   ([`staging`]): other clients see the old object or the new one, never half.
//! - Names and attributes are cached for `cache_ttl` (and the kernel is told the
//!   same TTL), so another client's change shows after at most that long; a
//!   listing that finds changes invalidates what the kernel cached (ABI 1.1).
//! - Every request that waits on the store is answered later (ABI 1.2) from the
//!   plugin's own runtime: the host's worker threads never wait on the network.
//! - A store that is down or slow fails the request with `EIO` or `ETIMEDOUT` after
//!   `timeout`, logged once per failure streak; the mount works again when the store
//!   does.
//! - Unsupported: hard links, symlinks and special files (`EPERM`), renaming a
//!   directory (`EXDEV`: `mv` then copies and deletes), permissions and owners
//!   (accepted and not stored: an object store has none).
#![deny(unsafe_code)]

mod blocks;
mod namespace;
mod staging;
mod store;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use fusehost_plugin_api::sync::Mutex;
use fusehost_plugin_api::*;
use futures::TryStreamExt;

use blocks::{Blocks, Object};
use namespace::{child_path, split, Known, Namespace};
use staging::{Staged, Staging};
use store::{Store, StoreConfig};

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

struct Inner {
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

/// The plugin's filesystem: the shared state, and the runtime its answers run on.
pub struct ObjectStore {
    inner: Arc<Inner>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::new("service", OptionKind::String, "s3", "the OpenDAL service: s3, or another OpenDAL scheme"),
    OptionSpec::new("bucket", OptionKind::String, "", "the bucket to mount (s3; required there)"),
    OptionSpec::new("endpoint", OptionKind::String, "", "the store's URL, e.g. http://127.0.0.1:3900 (s3: AWS when empty)"),
    OptionSpec::new("region", OptionKind::String, "us-east-1", "the bucket's region (s3)"),
    OptionSpec::new("prefix", OptionKind::String, "", "mount only the keys under this prefix"),
    OptionSpec::new(
        "credentials_file",
        OptionKind::String,
        "",
        "an AWS-style credentials file (absolute path); without it AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are used",
    ),
    OptionSpec::new("profile", OptionKind::String, "default", "the profile to read from credentials_file"),
    OptionSpec::new("settings", OptionKind::String, "", "more OpenDAL settings for the service: key=value,key=value"),
    OptionSpec::new("timeout", OptionKind::String, "30s", "how long one store request may take before ETIMEDOUT"),
    OptionSpec::new("retries", OptionKind::Integer, "2", "retries of a request that failed for a passing reason"),
    OptionSpec::new("cache_ttl", OptionKind::String, "5s", "how long names and attributes are trusted"),
    OptionSpec::new("cache_size", OptionKind::Size, "256MiB", "memory for cached blocks of object data"),
    OptionSpec::new("block_size", OptionKind::Size, "8MiB", "the unit of ranged reads"),
    OptionSpec::new("readahead", OptionKind::Size, "32MiB", "how far ahead a sequential reader is fetched"),
    OptionSpec::new("staging_dir", OptionKind::String, "", "where writes are staged before upload (empty: the temp dir)"),
];

fn parse_ttl(options: &Options) -> std::result::Result<Duration, SetupError> {
    humantime::parse_duration(&options.string("cache_ttl").unwrap_or_else(|| "5s".to_owned()))
        .map_err(|error| SetupError::new(format!("option `cache_ttl` is a duration such as 5s or 0s: {error}")))
}

fn runtime() -> std::result::Result<tokio::runtime::Runtime, SetupError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("objectstore")
        .enable_all()
        .build()
        .map_err(|error| SetupError::new(format!("starting the I/O runtime: {error}")))
}

impl Plugin for ObjectStore {
    const NAME: &'static str = "objectstore";
    const DESCRIPTION: &'static str = "a bucket of an object store (S3 and the other OpenDAL services) as a folder";
    const OPTIONS: &'static [OptionSpec] = OPTIONS;
    const SOURCE_OPTION: Option<&'static str> = Some("bucket");

    /// Checks the options and that the store answers with these credentials: wrong
    /// endpoints, buckets and keys fail `fusehost check` in one sentence.
    fn validate(options: &Options) -> std::result::Result<(), SetupError> {
        parse_ttl(options)?;
        let config = StoreConfig::from_options(options)?;
        let store = Store::new(&config)?;
        let runtime = runtime()?;
        runtime
            .block_on(async { tokio::time::timeout(config.timeout, store.operator.check()).await })
            .map_err(|_| SetupError::new(format!("{} did not answer within {:?}", config.describe, config.timeout)))?
            .map_err(|error| SetupError::new(format!("cannot use {}: {}", config.describe, store::explain(&error))))
    }

    fn new(mount: &MountInfo, options: &Options) -> std::result::Result<Self, SetupError> {
        let config = StoreConfig::from_options(options)?;
        let staging_dir = options.string("staging_dir").filter(|dir| !dir.is_empty()).map(PathBuf::from);
        let staging_dir = staging_dir.unwrap_or_else(std::env::temp_dir);
        let size = |key: &str, default: u64| options.size(key).unwrap_or(default);
        let runtime = runtime()?;
        let inner = Inner {
            store: Arc::new(Store::new(&config)?),
            names: Namespace::new(),
            blocks: Arc::new(Blocks::new(
                size("block_size", 4 << 20),
                size("cache_size", 256 << 20),
                size("readahead", 16 << 20),
            )),
            staging: Staging::new(staging_dir),
            listings: Mutex::default(),
            handles: Mutex::default(),
            next_fh: AtomicU64::new(1),
            ttl: parse_ttl(options)?,
            host: OnceLock::new(),
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
            mounted: SystemTime::now(),
        };
        tracing::info!(store = %config.describe, read_only = mount.read_only, "serving the bucket");
        Ok(ObjectStore { inner: Arc::new(inner), handle: runtime.handle().clone(), runtime: Mutex::new(Some(runtime)) })
    }
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

impl Inner {
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
    /// their directory's listing too.
    fn add_staged(&self, dir: &str, children: &mut Vec<Child>) {
        let staged = self.staging.inodes();
        for ino in staged {
            let Some((path, known, _)) = self.names.known(ino) else { continue };
            let (parent, name) = split(&path);
            if parent == dir && children.binary_search_by(|child| child.name.as_str().cmp(name)).is_err() {
                let size = self.staging.get(ino).map_or(known.size, |staged| staged.size());
                children.push(Child { name: name.to_owned(), known: Known { size, ..known } });
                children.sort_by(|a, b| a.name.cmp(&b.name));
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

    async fn lookup(&self, parent: u64, name: &OsStr) -> Result<Entry> {
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

    async fn getattr(&self, ino: u64) -> Result<FileAttr> {
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

    async fn setattr(&self, ino: u64, changes: &SetAttr) -> Result<FileAttr> {
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
                        self.upload(ino, &path, &staged).await
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

    /// Uploads `staged` to `path` when it changed; the mount then knows the new object.
    async fn upload(&self, ino: u64, path: &str, staged: &Staged) -> Result<()> {
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

    async fn open(&self, ino: u64, flags: i32) -> Result<Opened> {
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

    async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Bytes> {
        match &*self.handle(fh)? {
            OpenFile::Reading { object, next_offset, .. } => {
                let sequential = next_offset.swap(offset + u64::from(size), Ordering::Relaxed) == offset;
                self.blocks.read(&self.store, object, offset, size, sequential).await
            }
            OpenFile::Staged { staged, .. } => staged.read(offset, size).map(Bytes::from),
            OpenFile::Directory { .. } => Err(Errno::EISDIR),
        }
    }

    fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        match &*self.handle(fh)? {
            OpenFile::Staged { staged, .. } => staged.write(offset, data),
            _ => Err(Errno::EBADF),
        }
    }

    /// Uploads what was written through `fh`, if anything.
    async fn flush(&self, fh: u64) -> Result<()> {
        if let OpenFile::Staged { ino, staged } = &*self.handle(fh)? {
            let path = self.path_of(*ino)?;
            self.upload(*ino, &path, staged).await?;
        }
        Ok(())
    }

    async fn release(&self, fh: u64) -> Result<()> {
        let outcome = self.flush(fh).await;
        if let Some(open) = self.handles.lock().remove(&fh) {
            if let OpenFile::Staged { ino, .. } = &*open {
                self.staging.close(*ino);
            }
        }
        outcome
    }

    async fn create(&self, parent: u64, name: &OsStr, flags: i32) -> Result<(Entry, Opened)> {
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

    async fn mkdir(&self, parent: u64, name: &OsStr) -> Result<Entry> {
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

    async fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
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

    async fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
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

    async fn rename(&self, parent: u64, name: &OsStr, new_parent: u64, new_name: &OsStr, flags: u32) -> Result<()> {
        let (name, new_name) = (name.to_str().ok_or(Errno::ENOENT)?, new_name.to_str().ok_or(Errno::EINVAL)?);
        let (dir, new_dir) = (self.path_of(parent)?, self.path_of(new_parent)?);
        let (from, to) = (child_path(&dir, name), child_path(&new_dir, new_name));
        if flags & flags::rename::EXCHANGE != 0 {
            return Err(Errno::EINVAL);
        }
        if let Some(ino) = self.names.ino_of(&from) {
            if let Some(staged) = self.staging.get(ino) {
                self.upload(ino, &from, &staged).await?;
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

    fn opendir(&self, ino: u64) -> Result<Opened> {
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

    async fn readdir<S: DirSink + ?Sized>(&self, ino: u64, fh: u64, offset: i64, sink: &mut S) -> Result<()> {
        let (dir, children) = self.dir_listing(fh, offset).await?;
        for (entry_ino, next, known, name) in self.entries(ino, &dir, &children, offset) {
            if sink.add(entry_ino, next, known.kind, OsStr::new(name)) {
                break;
            }
        }
        Ok(())
    }

    async fn readdirplus<S: DirPlusSink + ?Sized>(&self, ino: u64, fh: u64, offset: i64, sink: &mut S) -> Result<()> {
        let (dir, children) = self.dir_listing(fh, offset).await?;
        for (entry_ino, next, known, name) in self.entries(ino, &dir, &children, offset) {
            if sink.add(next, OsStr::new(name), &self.entry(entry_ino, &known)) {
                break;
            }
        }
        Ok(())
    }

    fn releasedir(&self, fh: u64) {
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

impl ObjectStore {
    /// Answers `reply` with `answer`, run on the plugin's runtime.
    fn later<T, F>(&self, reply: Reply<T>, answer: impl FnOnce(Arc<Inner>) -> F)
    where
        T: later::Answer + Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        let future = answer(Arc::clone(&self.inner));
        self.handle.spawn(async move { reply.send(future.await) });
    }

    /// Runs `answer` to its end on this thread (the synchronous path of a 1.1 host).
    fn now<T, F>(&self, answer: impl FnOnce(Arc<Inner>) -> F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        self.handle.block_on(answer(Arc::clone(&self.inner)))
    }
}

/// Requests that wait on the store are answered later; the rest (local writes,
/// opendir, statfs) at once.
const LATER: Operations = Operations::LOOKUP
    .union(Operations::GETATTR)
    .union(Operations::SETATTR)
    .union(Operations::MKDIR)
    .union(Operations::UNLINK)
    .union(Operations::RMDIR)
    .union(Operations::RENAME)
    .union(Operations::OPEN)
    .union(Operations::READ)
    .union(Operations::FLUSH)
    .union(Operations::RELEASE)
    .union(Operations::FSYNC)
    .union(Operations::READDIR)
    .union(Operations::READDIRPLUS)
    .union(Operations::CREATE);

impl Filesystem for ObjectStore {
    fn answers_later(&self) -> Operations {
        LATER
    }

    fn init(&self, _negotiated: &Negotiated, host: MountHost) {
        let _ = self.inner.host.set(host);
    }

    fn forget(&self, ino: u64) {
        if self.inner.staging.get(ino).is_none() {
            self.inner.names.forget(ino);
        }
    }

    fn destroy(&self) {
        if let Some(runtime) = self.runtime.lock().take() {
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }

    fn lookup(&self, _req: &Request, parent: u64, name: &OsStr) -> Result<Entry> {
        let name = name.to_owned();
        self.now(|fs| async move { fs.lookup(parent, &name).await })
    }

    fn lookup_later(&self, _req: &Request, parent: u64, name: &OsStr, reply: Reply<Entry>) {
        let name = name.to_owned();
        self.later(reply, |fs| async move { fs.lookup(parent, &name).await });
    }

    fn getattr(&self, _req: &Request, ino: u64, _fh: Option<u64>) -> Result<FileAttr> {
        self.now(|fs| async move { fs.getattr(ino).await })
    }

    fn getattr_later(&self, _req: &Request, ino: u64, _fh: Option<u64>, reply: Reply<(FileAttr, Option<Duration>)>) {
        self.later(reply, |fs| async move { fs.getattr(ino).await.map(|attr| (attr, Some(fs.ttl))) });
    }

    fn setattr(&self, _req: &Request, ino: u64, changes: &SetAttr) -> Result<FileAttr> {
        let changes = *changes;
        self.now(|fs| async move { fs.setattr(ino, &changes).await })
    }

    fn setattr_later(&self, _req: &Request, ino: u64, changes: &SetAttr, reply: Reply<FileAttr>) {
        let changes = *changes;
        self.later(reply, |fs| async move { fs.setattr(ino, &changes).await });
    }

    fn mknod(&self, _req: &Request, _parent: u64, _name: &OsStr, _mode: u32, _rdev: u32) -> Result<Entry> {
        Err(Errno::EPERM)
    }

    fn mkdir(&self, _req: &Request, parent: u64, name: &OsStr, _mode: u32) -> Result<Entry> {
        let name = name.to_owned();
        self.now(|fs| async move { fs.mkdir(parent, &name).await })
    }

    fn mkdir_later(&self, _req: &Request, parent: u64, name: &OsStr, _mode: u32, reply: Reply<Entry>) {
        let name = name.to_owned();
        self.later(reply, |fs| async move { fs.mkdir(parent, &name).await });
    }

    fn unlink(&self, _req: &Request, parent: u64, name: &OsStr) -> Result<()> {
        let name = name.to_owned();
        self.now(|fs| async move { fs.unlink(parent, &name).await })
    }

    fn unlink_later(&self, _req: &Request, parent: u64, name: &OsStr, reply: Reply<()>) {
        let name = name.to_owned();
        self.later(reply, |fs| async move { fs.unlink(parent, &name).await });
    }

    fn rmdir(&self, _req: &Request, parent: u64, name: &OsStr) -> Result<()> {
        let name = name.to_owned();
        self.now(|fs| async move { fs.rmdir(parent, &name).await })
    }

    fn rmdir_later(&self, _req: &Request, parent: u64, name: &OsStr, reply: Reply<()>) {
        let name = name.to_owned();
        self.later(reply, |fs| async move { fs.rmdir(parent, &name).await });
    }

    fn symlink(&self, _req: &Request, _parent: u64, _name: &OsStr, _target: &OsStr) -> Result<Entry> {
        Err(Errno::EPERM)
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
        let (name, new_name) = (name.to_owned(), new_name.to_owned());
        self.now(|fs| async move { fs.rename(parent, &name, new_parent, &new_name, flags).await })
    }

    fn rename_later(
        &self,
        _req: &Request,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        flags: u32,
        reply: Reply<()>,
    ) {
        let (name, new_name) = (name.to_owned(), new_name.to_owned());
        self.later(reply, |fs| async move { fs.rename(parent, &name, new_parent, &new_name, flags).await });
    }

    fn link(&self, _req: &Request, _ino: u64, _new_parent: u64, _new_name: &OsStr) -> Result<Entry> {
        Err(Errno::EPERM)
    }

    fn open(&self, _req: &Request, ino: u64, flags: i32) -> Result<Opened> {
        self.now(|fs| async move { fs.open(ino, flags).await })
    }

    fn open_later(&self, _req: &Request, ino: u64, flags: i32, reply: Reply<Opened>) {
        self.later(reply, |fs| async move { fs.open(ino, flags).await });
    }

    fn read(&self, _req: &Request, _ino: u64, fh: u64, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let size = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let data = self.now(|fs| async move { fs.read(fh, offset, size).await })?;
        buf[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }

    fn read_later(&self, _req: &Request, _ino: u64, fh: u64, offset: u64, size: u32, reply: Reply<Vec<u8>>) {
        let fs = Arc::clone(&self.inner);
        // Straight from the cached block: no copy of the data on its way to the host.
        self.handle.spawn(async move {
            match fs.read(fh, offset, size).await {
                Ok(data) => reply.data(&data),
                Err(errno) => reply.send(Err(errno)),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        _ino: u64,
        fh: u64,
        offset: u64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
    ) -> Result<u32> {
        self.inner.write(fh, offset, data)
    }

    fn flush(&self, _req: &Request, _ino: u64, fh: u64, _lock_owner: u64) -> Result<()> {
        self.now(|fs| async move { fs.flush(fh).await })
    }

    fn flush_later(&self, _req: &Request, _ino: u64, fh: u64, _lock_owner: u64, reply: Reply<()>) {
        self.later(reply, |fs| async move { fs.flush(fh).await });
    }

    fn release(&self, _req: &Request, _ino: u64, fh: u64, _flags: i32, _flush: bool) -> Result<()> {
        self.now(|fs| async move { fs.release(fh).await })
    }

    fn release_later(&self, _req: &Request, _ino: u64, fh: u64, _flags: i32, _flush: bool, reply: Reply<()>) {
        self.later(reply, |fs| async move { fs.release(fh).await });
    }

    fn fsync(&self, _req: &Request, _ino: u64, fh: u64, _datasync: bool) -> Result<()> {
        self.now(|fs| async move { fs.flush(fh).await })
    }

    fn fsync_later(&self, _req: &Request, _ino: u64, fh: u64, _datasync: bool, reply: Reply<()>) {
        self.later(reply, |fs| async move { fs.flush(fh).await });
    }

    fn opendir(&self, _req: &Request, ino: u64, _flags: i32) -> Result<Opened> {
        self.inner.opendir(ino)
    }

    fn readdir(&self, _req: &Request, ino: u64, fh: u64, offset: i64, sink: &mut dyn DirSink) -> Result<()> {
        self.handle.block_on(self.inner.readdir(ino, fh, offset, sink))
    }

    fn readdir_later(&self, _req: &Request, ino: u64, fh: u64, offset: i64, mut reply: ReplyDir) {
        let fs = Arc::clone(&self.inner);
        self.handle.spawn(async move {
            let answer = fs.readdir(ino, fh, offset, &mut reply).await;
            reply.send(answer)
        });
    }

    fn readdirplus(&self, _req: &Request, ino: u64, fh: u64, offset: i64, sink: &mut dyn DirPlusSink) -> Result<()> {
        self.handle.block_on(self.inner.readdirplus(ino, fh, offset, sink))
    }

    fn readdirplus_later(&self, _req: &Request, ino: u64, fh: u64, offset: i64, mut reply: ReplyDirPlus) {
        let fs = Arc::clone(&self.inner);
        self.handle.spawn(async move {
            let answer = fs.readdirplus(ino, fh, offset, &mut reply).await;
            reply.send(answer)
        });
    }

    fn releasedir(&self, _req: &Request, _ino: u64, fh: u64, _flags: i32) -> Result<()> {
        self.inner.releasedir(fh);
        Ok(())
    }

    /// An object store has no fixed size: a large, mostly free filesystem, as s3fs
    /// and rclone report, so that `df` and tools that check for space go ahead.
    fn statfs(&self, _req: &Request, _ino: u64) -> Result<StatFs> {
        const BLOCKS: u64 = 1 << 40;
        Ok(StatFs {
            blocks: BLOCKS,
            bfree: BLOCKS,
            bavail: BLOCKS,
            files: 1 << 32,
            ffree: 1 << 32,
            bsize: 4096,
            namelen: 1024,
            frsize: 4096,
        })
    }

    fn create(&self, _req: &Request, parent: u64, name: &OsStr, _mode: u32, flags: i32) -> Result<(Entry, Opened)> {
        let name = name.to_owned();
        self.now(|fs| async move { fs.create(parent, &name, flags).await })
    }

    fn create_later(
        &self,
        _req: &Request,
        parent: u64,
        name: &OsStr,
        _mode: u32,
        flags: i32,
        reply: Reply<(Entry, Opened)>,
    ) {
        let name = name.to_owned();
        self.later(reply, |fs| async move { fs.create(parent, &name, flags).await });
    }
}

export_plugin!(ObjectStore);
