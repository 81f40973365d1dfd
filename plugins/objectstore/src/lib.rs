//! objectstore: a bucket of an object store (or a prefix of it) as a folder, through
//! Apache OpenDAL, so S3-compatible stores (AWS, Garage, MinIO, Ceph) and the other
//! services OpenDAL speaks mount the same way.
//!
//! - Directories are key prefixes (and explicit `dir/` markers, which `mkdir` makes);
//!   sizes and mtimes come from the objects' metadata.
//! - Reads are ranged GETs of blocks, cached in memory and fetched ahead of sequential
//!   readers (`blocks.rs`). Writes are staged in a local file and uploaded whole on
//!   `close` (`flush`), `fsync` and the last `release`, in parts for large files
//!   (`staging.rs`): other clients see the old object or the new one, never half.
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
mod bucket;
mod namespace;
mod staging;
mod store;

use std::ffi::OsStr;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fusehost_plugin_api::sync::Mutex;
use fusehost_plugin_api::*;

use blocks::Blocks;
use bucket::Bucket;
use store::{Store, StoreConfig};

/// The plugin's filesystem: the shared state, and the runtime its answers run on.
pub struct ObjectStore {
    bucket: Arc<Bucket>,
    /// Answer from the plugin's runtime (ABI 1.2), or on the host's worker threads as
    /// in a 1.0 or 1.1 host (option `answer_later = false`).
    answer_later: bool,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::new(
        "service",
        OptionKind::String,
        "s3",
        "the OpenDAL service: s3 (or memory); others OpenDAL offers are a cargo feature away",
    ),
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
    OptionSpec::new(
        "answer_later",
        OptionKind::Bool,
        "true",
        "answer from the plugin's own threads; false waits on the host's workers, as in an older host",
    ),
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
        let blocks =
            Blocks::new(size("block_size", 8 << 20), size("cache_size", 256 << 20), size("readahead", 32 << 20));
        let bucket = Bucket::new(Store::new(&config)?, blocks, staging_dir, parse_ttl(options)?);
        tracing::info!(store = %config.describe, read_only = mount.read_only, "serving the bucket");
        Ok(ObjectStore {
            bucket: Arc::new(bucket),
            answer_later: options.bool("answer_later").unwrap_or(true),
            handle: runtime.handle().clone(),
            runtime: Mutex::new(Some(runtime)),
        })
    }
}

impl ObjectStore {
    /// Answers `reply` with `answer`, run on the plugin's runtime.
    fn later<T, F>(&self, reply: Reply<T>, answer: impl FnOnce(Arc<Bucket>) -> F)
    where
        T: later::Answer + Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        let future = answer(Arc::clone(&self.bucket));
        self.handle.spawn(async move { reply.send(future.await) });
    }

    /// Runs `answer` to its end on this thread (the synchronous path of a 1.1 host).
    fn now<T, F>(&self, answer: impl FnOnce(Arc<Bucket>) -> F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        self.handle.block_on(answer(Arc::clone(&self.bucket)))
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
        if self.answer_later {
            LATER
        } else {
            Operations::NONE
        }
    }

    fn init(&self, _negotiated: &Negotiated, host: MountHost) {
        self.bucket.attach(host);
    }

    fn forget(&self, ino: u64) {
        self.bucket.forget(ino);
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

    fn getattr_with_ttl(&self, _req: &Request, ino: u64, _fh: Option<u64>) -> Result<(FileAttr, Option<Duration>)> {
        self.now(|fs| async move { fs.getattr_with_ttl(ino).await })
    }

    fn getattr_later(&self, _req: &Request, ino: u64, _fh: Option<u64>, reply: Reply<(FileAttr, Option<Duration>)>) {
        self.later(reply, |fs| async move { fs.getattr_with_ttl(ino).await });
    }

    fn setattr(&self, _req: &Request, ino: u64, changes: &SetAttr) -> Result<FileAttr> {
        let changes = *changes;
        self.now(|fs| async move { fs.setattr(ino, &changes).await })
    }

    fn setattr_with_ttl(&self, _req: &Request, ino: u64, changes: &SetAttr) -> Result<(FileAttr, Option<Duration>)> {
        let changes = *changes;
        self.now(|fs| async move { fs.setattr_with_ttl(ino, &changes).await })
    }

    fn setattr_later(&self, _req: &Request, ino: u64, changes: &SetAttr, reply: Reply<FileAttr>) {
        let changes = *changes;
        self.later(reply.with_ttl(), |fs| async move { fs.setattr_with_ttl(ino, &changes).await });
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
        let fs = Arc::clone(&self.bucket);
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
        self.bucket.write(fh, offset, data)
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
        self.bucket.opendir(ino)
    }

    fn readdir(&self, _req: &Request, ino: u64, fh: u64, offset: i64, sink: &mut dyn DirSink) -> Result<()> {
        self.handle.block_on(self.bucket.readdir(ino, fh, offset, sink))
    }

    fn readdir_later(&self, _req: &Request, ino: u64, fh: u64, offset: i64, mut reply: ReplyDir) {
        let fs = Arc::clone(&self.bucket);
        self.handle.spawn(async move {
            let answer = fs.readdir(ino, fh, offset, &mut reply).await;
            reply.send(answer)
        });
    }

    fn readdirplus(&self, _req: &Request, ino: u64, fh: u64, offset: i64, sink: &mut dyn DirPlusSink) -> Result<()> {
        self.handle.block_on(self.bucket.readdirplus(ino, fh, offset, sink))
    }

    fn readdirplus_later(&self, _req: &Request, ino: u64, fh: u64, offset: i64, mut reply: ReplyDirPlus) {
        let fs = Arc::clone(&self.bucket);
        self.handle.spawn(async move {
            let answer = fs.readdirplus(ino, fh, offset, &mut reply).await;
            reply.send(answer)
        });
    }

    fn releasedir(&self, _req: &Request, _ino: u64, fh: u64, _flags: i32) -> Result<()> {
        self.bucket.releasedir(fh);
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
