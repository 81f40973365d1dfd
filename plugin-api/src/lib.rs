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
mod log_bridge;
mod mount_host;
mod options;
mod panic_guard;
mod plugin;
mod types;

pub use fusehost_abi as abi;
pub use tracing;

pub use adapter::FfiFilesystem;
pub use export::into_fs_object;
pub use filesystem::{DirPlusSink, DirSink, Filesystem};
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
    pub use crate::export::root_module;
}
