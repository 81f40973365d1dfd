//! Write a FUSE filesystem as a fusehost plugin.
//!
//! A plugin is a `cdylib` that depends on this crate alone. It implements
//! [`Filesystem`] (one method per FUSE request, each with a default) and [`Plugin`]
//! (name, description, options, constructor), and exports itself with
//! [`export_plugin!`]. No `unsafe`, no `fuser`, no abi_stable types: the host owns the
//! FUSE session and the bookkeeping, this crate owns the boundary.
//!
//! ```text
//! #![forbid(unsafe_code)]
//! use fusehost_plugin_api::*;
//!
//! struct MyFs;
//! impl Filesystem for MyFs { /* the requests you support */ }
//! impl Plugin for MyFs {
//!     const NAME: &'static str = "myfs";
//!     const DESCRIPTION: &'static str = "what it shows";
//!     fn new(_mount: &MountInfo, _options: &Options) -> Result<Self, SetupError> { Ok(MyFs) }
//! }
//! export_plugin!(MyFs);
//! ```
//!
//! ```toml
//! [lib]
//! name = "fusehost_myfs"      # the host finds `plugin = "myfs"` as libfusehost_myfs.so
//! crate-type = ["cdylib"]
//! ```
//!
//! `plugins/hello` in the fusehost repository is the complete template.
//!
//! # Lifecycle
//!
//! 1. The host loads the library once and reads its description ([`Plugin::NAME`],
//!    [`Plugin::DESCRIPTION`], [`Plugin::OPTIONS`], [`Plugin::THREAD_MODEL`]).
//!    `fusehost check` calls [`Plugin::validate`] and builds nothing.
//! 2. For every mount it calls [`Plugin::new`] with that mount's [`Options`]. Two
//!    mounts of one plugin are two instances that share only the library's statics, so
//!    keep every piece of state in `self`.
//! 3. Requests arrive as [`Filesystem`] calls.
//! 4. [`Filesystem::forget`] tells you when the kernel lets go of an inode.
//! 5. At unmount every open file is released, every inode still known is forgotten,
//!    and then [`Filesystem::destroy`] is called once. Libraries are never unloaded.
//!
//! # Lookup counts: what the host does for you
//!
//! The kernel keeps a reference count per inode: each entry it receives (from lookup,
//! create, mkdir, mknod, symlink, link, and readdirplus entries other than `.` and
//! `..`) adds one, and it later sends `FORGET` with how many to drop. Counting this is
//! the classic source of FUSE bugs, so the host does it. You see one call,
//! [`Filesystem::forget`]`(ino)`, exactly once when the count reaches zero. From then
//! on the kernel will not name `ino` again, so an inode that is also unlinked (no links,
//! no open handles) may be freed and its number reused. Until then, an unlinked inode
//! must stay readable through the handles and references the kernel still has. The
//! root (inode 1) is never forgotten. `forget(ino)` never runs while another request
//! that may return `ino` (lookup, create, mkdir, mknod, symlink, link, readdirplus) is
//! in the plugin, so a plugin that reuses numbers for the same underlying file may drop
//! its state for `ino` without racing a lookup that is handing `ino` out again.
//!
//! # What the kernel guarantees (and what it does not)
//!
//! The kernel's VFS locking reaches the plugin:
//! - create, mkdir, mknod, symlink, link, unlink, rmdir and rename run with the parent
//!   directory's inode lock held for writing (rename holds both parents'), so no two of
//!   them change one directory at once;
//! - lookup holds the parent's lock for reading: lookups in one directory may run in
//!   parallel with each other, never with a change to that directory;
//! - writes to one inode are serialized by its inode lock unless the mount uses
//!   `writeback_cache`, in which case the kernel writes back cached pages in parallel;
//! - reads, getattr and readdir of different (or the same) files run in parallel.
//!
//! Nothing stops two requests on *different* directories from touching shared state,
//! so a [`ThreadModel::Parallel`] plugin still needs its own locks. Use [`sync`]'s
//! locks: a `std::sync::Mutex` held during a panic is poisoned and every later call
//! would panic too, while these stay usable after the guard answered `EIO`.
//!
//! # Thread model
//!
//! [`ThreadModel::Parallel`] (the default): the host calls the filesystem from all its
//! session threads at once. [`ThreadModel::Serialized`]: the host holds one lock around
//! every call, so the plugin needs no locking at all, at the cost of throughput.
//!
//! # Names are bytes
//!
//! Linux file names, link targets and xattr names and values are arbitrary bytes (no
//! `/` or NUL in a name), not UTF-8. They arrive as `&OsStr` (use
//! `std::os::unix::ffi::OsStrExt::as_bytes`) and `&[u8]`; treating them as `str` would
//! make files with such names unreachable.
//!
//! # Errors and panics
//!
//! Every method returns [`Result<T>`](Result), whose error is an [`Errno`]. A panic is
//! caught before it crosses into the host, logged with its message and location, and
//! answered `EIO`; the mount stays up. Plugins must be built with `panic = "unwind"`
//! (Cargo's default); `fusehost plugins` warns about those that are not.
//!
//! # Growing with the ABI: what each version gives you
//!
//! The host and your plugin meet at `fusehost-abi`, whose version your plugin records.
//! The promise: a plugin built against any `fusehost-abi` 1.x loads in every host that
//! speaks 1.y, older or newer. Minor releases only append (a defaulted method, a field
//! at the end of a table, a new type); a feature one side lacks behaves as `ENOSYS` or
//! "not supported", never as a crash. So use new features freely: in an older host
//! they are simply never asked for, and every one of them has a fallback below. The
//! meaning of each field is versioned too ([`abi::SEMANTICS_REVISION`]).
//!
//! | feature | what you write | first ABI version |
//! |---|---|---|
//! | every FUSE request, kernel passthrough of open files | [`Filesystem`], [`Opened::passthrough_fd`](Opened) | 1.0.0 |
//! | consent to kernel features | [`Filesystem::capabilities`] | 1.1.0 |
//! | what was negotiated, the host handle | [`Filesystem::init`], [`Negotiated`], [`MountHost`] | 1.1.0 |
//! | kernel notifications | [`MountHost::invalidate_entry`], [`MountHost::invalidate_inode`], [`MountHost::notify_delete`], [`MountHost::store`] | 1.1.0 |
//! | negative entries, per-entry TTLs | [`Entry::negative`], [`Entry::with_ttls`], [`Filesystem::getattr_with_ttl`] | 1.1.0 |
//! | record locks, ioctl, poll, bmap | [`Filesystem::getlk`], [`Filesystem::setlk`], [`Filesystem::ioctl`], [`Filesystem::poll`], [`Filesystem::bmap`] | 1.1.0 |
//! | read-only plugins, a source option | [`Plugin::READ_ONLY`], [`Plugin::SOURCE_OPTION`] | 1.1.0 |
//! | the kernel's id of the current request | [`MountHost::request_id`] | 1.1.0 |
//! | answers given later, from any thread | [`Filesystem::answers_later`], the `*_later` methods, [`Reply`] | 1.2.0 |
//! | TTLs on the entries create, mknod, mkdir, symlink, link and readdirplus hand out, and on setattr's answer | [`Entry::with_ttls`], [`Filesystem::setattr_with_ttl`], [`Reply::with_ttl`] | 1.3.0 |
//!
//! ## Capabilities: consent, not requests
//!
//! Some kernel features change what your filesystem sees. With **writeback caching**
//! the kernel gathers page-cache writes and sends them later, reads pages through
//! handles opened write-only, turns `O_APPEND` writes into positioned ones, and keeps
//! `mtime` and the size itself until it writes back; a filesystem that forwards each
//! open to a real file (passthrough) would then corrupt data. So the host asks the
//! kernel for a feature only when [`Filesystem::capabilities`] consents to it, and for
//! features behind an operator option (`writeback_cache`, `allow_kernel_passthrough`)
//! only when the operator asked too; a mount asking for a feature you did not consent to
//! is refused with one sentence before anything is mounted. The bits:
//! - [`Capabilities::WRITEBACK_CACHE`]: as above. memfs consents; passthrough does not.
//! - [`Capabilities::HANDLE_KILLPRIV_V2`]: you clear setuid/setgid yourself on a write
//!   whose flags carry `FUSE_WRITE_KILL_SUIDGID`, and on truncate, chown, fallocate and
//!   copy_file_range (into the file) by a caller that is not root: the kernel leaves
//!   all of them to you ([`flags::mode::without_privileges`] is its rule). It then skips the `getxattr("security.capability")` it
//!   otherwise sends before every write (memfs: 100 writes cost 100 getxattr requests
//!   without it, at most one per file with it).
//! - [`Capabilities::POSIX_LOCKS`]: `fcntl` record locks reach [`Filesystem::getlk`] and
//!   [`Filesystem::setlk`] instead of staying in this machine's kernel. Drop an owner's
//!   locks in [`Filesystem::flush`] (its `lock_owner`). A waiting `F_SETLKW` holds one
//!   of the mount's worker threads until you answer.
//! - [`Capabilities::PARALLEL_DIRECT_WRITES`], [`Capabilities::CACHE_SYMLINKS`],
//!   [`Capabilities::NO_OPEN`], [`Capabilities::NO_OPENDIR`]: as their names say.
//! - [`Capabilities::PASSTHROUGH`]: open files you return with `passthrough_fd` go to
//!   the kernel directly. (A 1.0 plugin keeps this consent: 1.0 hosts gave it to all.)
//!
//! [`Filesystem::init`] then tells you what is in effect ([`Negotiated`]), before the
//! first request: which capabilities, the largest write, the kernel's protocol,
//! whether the kernel checks permissions.
//!
//! ## Notifications: telling the kernel your data changed
//!
//! The kernel caches names, attributes and data for the TTLs you and the operator
//! set. When your data changes behind the kernel's back (another machine wrote, a
//! source folder was edited directly), tell it through the [`MountHost`] you got in
//! [`Filesystem::init`]: [`MountHost::invalidate_entry`] for a name (also drops a
//! negative entry), [`MountHost::invalidate_inode`] for attributes and cached data,
//! [`MountHost::notify_delete`] for a name that is gone, [`MountHost::store`] to put
//! data into the page cache. passthrough does this from inotify: a change made in its
//! source shows through the mount within milliseconds, even with 60 s TTLs.
//!
//! **The deadlock rule**, which the host enforces for you: the kernel's entry
//! invalidation takes the parent directory's lock exclusively, while a lookup in that
//! directory holds it shared until it is answered; a notification written from inside
//! that lookup would wait forever. The host therefore only queues notifications and
//! sends them from its own thread, so you may call them from anywhere, including from
//! inside a request. A full queue answers `EAGAIN`, a mount that is gone `ENOTCONN`;
//! the kernel ignores notifications about things it does not cache.
//!
//! ## Negative entries and per-entry TTLs
//!
//! A lookup that fails with `ENOENT` is remembered by the kernel for the mount's
//! `negative_ttl` (default: its `entry_ttl`), so a repeated `stat` of a missing name,
//! the most common request of build tools and shells, does not reach you again. Answer
//! [`Entry::negative`]`(ttl)` instead to choose the time (`Duration::ZERO`: do not
//! remember). Creating the name through the mount replaces the negative entry at once;
//! a name that appears another way needs [`MountHost::invalidate_entry`]. Likewise
//! [`Entry::with_ttls`] and [`Filesystem::getattr_with_ttl`] set how long one answer
//! is trusted: long for immutable data, short for a file that changes.
//!
//! ## Metadata
//!
//! [`Plugin::READ_ONLY`]: the plugin never changes anything; every mount of it is
//! read-only and shows `ro` in `/proc/mounts`. [`Plugin::SOURCE_OPTION`] names the
//! option that says what is mounted, so that `fusehost mount archive FILE MOUNTPOINT`
//! works and an fstab line's first field means something.
//!
//! ## Request identity and generations
//!
//! [`MountHost::request_id`] is the kernel's `unique` id of the request the calling
//! thread serves, for logs and for matching requests across layers. [`Entry::generation`]
//! tells apart two files that had one inode number at different times: hand a number out
//! again under a new generation only after [`Filesystem::forget`] for it. The host keeps
//! the generation next to the count, and an entry reusing a number the kernel still holds
//! under another generation is refused `EIO` and logged.
//!
//! ## Answering later (ABI 1.2)
//!
//! A filesystem that waits on the network should not hold a FUSE worker thread (a
//! mount has two by default) while it waits: list those requests in
//! [`Filesystem::answers_later`] and override their `*_later` methods, which receive a
//! [`Reply`] to send from wherever the answer comes (a tokio task, a thread pool, a
//! callback). Dropping a reply unanswered answers `EIO`; the host checks, counts and
//! caps them like every answer. The [`later`] module's documentation has the details
//! and an example, and `plugins/objectstore` is a complete one. Keep the synchronous
//! methods working (blocking on the same code is fine): a 1.0 or 1.1 host calls only
//! those. Memory and local-disk filesystems should not use it: answering directly costs
//! nothing extra, answering later costs an allocation and a hand-over per request.
//!
//! # Testing a plugin
//!
//! Two kinds of test, both from plain `cargo test`, with the crate
//! `fusehost-plugin-test` as a dev-dependency and the plugin crate built as
//! `crate-type = ["cdylib", "rlib"]` (the rlib is what `tests/` imports; the host
//! still loads the cdylib). `fusehost new-plugin NAME DIR` writes both.
//!
//! **The harness** drives the filesystem through the same ABI adapter the host calls
//! (options checked against [`Plugin::OPTIONS`] and [`Plugin::validate`], panics
//! answered `EIO`), with no mount and no root. It holds every inode it is handed, as
//! the kernel does, and forgets them all when dropped, so your `forget` runs too:
//!
//! ```
//! use fusehost_plugin_api::Errno;
//! use fusehost_plugin_test::Harness;
//! use fusehost_hello::Hello;
//!
//! // In tests/harness.rs, marked #[test]:
//! fn the_files_hold_the_greeting() {
//!     let mut fs = Harness::new::<Hello>(&[("greeting", "hi")]).unwrap();
//!     assert_eq!(fs.list("").unwrap(), ["hello.txt", "name.txt"]);
//!     assert_eq!(fs.read("hello.txt").unwrap(), b"hi\n");
//!     assert_eq!(fs.attr("nothing.txt").unwrap_err(), Errno::ENOENT);
//!     fs.forget_all();
//!     assert!(fs.held().is_empty());
//! }
//! # fn main() { the_files_hold_the_greeting() }
//! ```
//!
//! **The in-process mount** puts your filesystem type on a real kernel mount, through
//! the host's own session and dispatch, in a temporary folder that is unmounted when
//! the value is dropped. There is no `.so` to build, so no stale library is ever
//! tested. It needs root, or `fusermount3` (Debian: `apt install fuse3`):
//!
//! ```no_run
//! use fusehost_plugin_test::TestMount;
//! use fusehost_hello::Hello;
//!
//! // In tests/mount.rs, marked #[test]:
//! fn a_mount_serves_the_greeting() {
//!     let mount = TestMount::start::<Hello>(&[("greeting", "hi")]).expect("root, or fuse3");
//!     assert_eq!(std::fs::read_to_string(mount.path("hello.txt")).unwrap(), "hi\n");
//! }
//! # fn main() { a_mount_serves_the_greeting() }
//! ```
//!
//! Options are `(key, value)` pairs, as after `fusehost mount -o`: host keys (`ro`,
//! `attr_ttl`, `negative_ttl`, ...) set up the mount, the rest go to your plugin.
//! `plugins/hello/tests/` has both kinds.
//!
//! # Logging
//!
//! Use [`tracing`] (re-exported here). Events are forwarded to the host, which shows
//! them inside the span of the request being served, so each line names its mount.
//! The host's `-v` / `RUST_LOG` settings apply; `RUST_LOG=plugin=debug` selects plugin
//! events.
#![forbid(unsafe_code)]

mod adapter;
mod export;
mod filesystem;
pub mod flags;
pub mod later;
mod log_bridge;
mod mount_host;
mod options;
mod panic_guard;
mod plugin;
mod types;

pub use fusehost_abi as abi;

/// This SDK's version (`fusehost-plugin-api`), which plugins record.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");
pub use tracing;

pub use adapter::FfiFilesystem;
pub use export::into_fs_object;
pub use filesystem::{DirPlusSink, DirSink, Filesystem};
pub use later::{Operations, Ready, Reply, ReplyDir, ReplyDirPlus};
pub use mount_host::{Capabilities, MountHost, Negotiated};
pub use options::{OptionKind, OptionSpec, Options};
pub use panic_guard::payload_text as panic_message;
pub use plugin::{MountInfo, Plugin, SetupError, ThreadModel};
pub use types::{
    from_timespec, to_timespec, Entry, Errno, FileAttr, FileKind, FileLock, Opened, Request, Result, SetAttr, StatFs,
    TimeOrNow, ROOT_INO,
};

/// Locks that do not poison: a panic answered `EIO` leaves them usable.
pub mod sync {
    pub use parking_lot::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
}

#[doc(hidden)]
pub mod __private {
    pub use crate::export::{new_filesystem, root_module};
}
