//! What a filesystem learns and gets at the start of its mount (ABI 1.1): the
//! capabilities it consents to, what was negotiated with the kernel, and the
//! [`MountHost`] handle for kernel notifications.
//!
//! # Notifications and the deadlock they avoid
//!
//! A plugin whose data changes behind the kernel's back (another machine, a source
//! folder edited directly) tells the kernel to drop what it cached. The host queues
//! each notification and sends it from its own thread, never while the request that
//! asked is still being answered: the kernel's entry invalidation takes the parent
//! directory's lock exclusively, and a lookup in that directory holds it shared until
//! it is answered, so sending from inside the lookup would deadlock. Calling these
//! methods from anywhere, inside a request or not, is therefore safe.
//!
//! In a host that speaks only ABI 1.0 there is no handle: [`Filesystem::init`] is
//! never called and a plugin keeps working on the mount's TTLs alone.
//!
//! [`Filesystem::init`]: crate::Filesystem::init

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use fusehost_abi::abi_stable::std_types::RSlice;
use fusehost_abi::{capability, MountHostObject};

use crate::types::{Errno, Result};

/// Kernel features a filesystem consents to, from [`Filesystem::capabilities`].
///
/// The host asks the kernel for a feature only when the filesystem consents, and for
/// those an operator switches on (`writeback_cache`), only when the operator asked too;
/// a mount that asks for a feature its plugin does not consent to is refused with one
/// sentence.
///
/// [`Filesystem::capabilities`]: crate::Filesystem::capabilities
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Capabilities(u64);

impl Capabilities {
    /// Nothing beyond what every filesystem gets.
    pub const NONE: Capabilities = Capabilities(0);
    /// The kernel may cache writes and write them back later (operator option
    /// `writeback_cache`). Consent means: reads arrive through write-only handles,
    /// `O_APPEND` writes arrive as positioned writes, and the kernel keeps `mtime` and
    /// the size until it writes back.
    pub const WRITEBACK_CACHE: Capabilities = Capabilities(capability::WRITEBACK_CACHE);
    /// POSIX record locks are served by [`Filesystem::getlk`] and
    /// [`Filesystem::setlk`] instead of being kept by the kernel on this machine only.
    ///
    /// [`Filesystem::getlk`]: crate::Filesystem::getlk
    /// [`Filesystem::setlk`]: crate::Filesystem::setlk
    pub const POSIX_LOCKS: Capabilities = Capabilities(capability::POSIX_LOCKS);
    /// The filesystem clears the setuid and setgid bits itself on write, truncate,
    /// chown, fallocate and copy_file_range (into the file) by an unprivileged caller;
    /// the kernel then skips the `getxattr("security.capability")` it otherwise sends
    /// before every write, and drops the bits for none of these.
    pub const HANDLE_KILLPRIV_V2: Capabilities = Capabilities(capability::HANDLE_KILLPRIV_V2);
    /// Direct-I/O writes to one file may run in parallel (on handles opened `O_DIRECT`
    /// or answered with `direct_io`).
    pub const PARALLEL_DIRECT_WRITES: Capabilities = Capabilities(capability::PARALLEL_DIRECT_WRITES);
    /// The kernel may cache symlink targets.
    pub const CACHE_SYMLINKS: Capabilities = Capabilities(capability::CACHE_SYMLINKS);
    /// `open` answers `ENOSYS` and reads work without a handle: the kernel stops
    /// sending `open` and `release`.
    pub const NO_OPEN: Capabilities = Capabilities(capability::NO_OPEN);
    /// Likewise for `opendir` and `releasedir`.
    pub const NO_OPENDIR: Capabilities = Capabilities(capability::NO_OPENDIR);
    /// Open files may be handed to the kernel ([`Opened::passthrough_fd`](crate::Opened)).
    pub const PASSTHROUGH: Capabilities = Capabilities(capability::PASSTHROUGH);

    /// The ABI's bits.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// From the ABI's bits; bits this SDK does not know are dropped.
    pub const fn from_bits(bits: u64) -> Capabilities {
        Capabilities(bits & capability::ALL)
    }

    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Capabilities {
    type Output = Capabilities;
    fn bitor(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }
}

/// What the host and the kernel agreed on, given to [`Filesystem::init`](crate::Filesystem::init)
/// before the first request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Negotiated {
    /// The capabilities in effect: those consented to, asked for and offered by the kernel.
    pub capabilities: Capabilities,
    /// The largest write the kernel sends.
    pub max_write: u32,
    /// The kernel's FUSE protocol version, `(7, minor)`.
    pub protocol: (u32, u32),
    /// The kernel checks permissions from the mode bits before calling the plugin.
    pub default_permissions: bool,
    pub read_only: bool,
}

impl Negotiated {
    pub fn from_abi(raw: &fusehost_abi::Negotiated) -> Negotiated {
        Negotiated {
            capabilities: Capabilities::from_bits(raw.capabilities),
            max_write: raw.max_write,
            protocol: (raw.proto_major, raw.proto_minor),
            default_permissions: raw.default_permissions,
            read_only: raw.read_only,
        }
    }
}

/// The host's per-mount handle: kernel notifications and the current request's id.
/// Cheap to clone; keep one in your filesystem (it outlives every request).
#[derive(Clone)]
pub struct MountHost {
    raw: MountHostObject,
}

impl std::fmt::Debug for MountHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MountHost")
    }
}

impl MountHost {
    pub fn from_abi(raw: MountHostObject) -> MountHost {
        MountHost { raw }
    }

    /// Drops the kernel's cached attributes of `ino` and, when `data` is given, its
    /// cached data in `(offset, len)` (`len` 0: to the end of the file).
    pub fn invalidate_inode(&self, ino: u64, data: Option<(u64, u64)>) -> Result<()> {
        let (offset, len) = match data {
            Some((offset, len)) => (i64::try_from(offset).map_err(|_| Errno::EINVAL)?, len.min(i64::MAX as u64) as i64),
            None => (-1, 0),
        };
        self.raw.invalidate_inode(ino, offset, len).into_result()
    }

    /// Drops the kernel's entry for `name` in `parent`, positive or negative: the next
    /// access looks it up again.
    pub fn invalidate_entry(&self, parent: u64, name: &OsStr) -> Result<()> {
        self.raw.invalidate_entry(parent, RSlice::from_slice(name.as_bytes())).into_result()
    }

    /// Tells the kernel that `name` in `parent`, which was inode `child`, is gone.
    pub fn notify_delete(&self, parent: u64, child: u64, name: &OsStr) -> Result<()> {
        self.raw.notify_delete(parent, child, RSlice::from_slice(name.as_bytes())).into_result()
    }

    /// Puts `data` into the kernel's page cache of `ino` at `offset`.
    pub fn store(&self, ino: u64, offset: u64, data: &[u8]) -> Result<()> {
        self.raw.store(ino, offset, RSlice::from_slice(data)).into_result()
    }

    /// Wakes the `poll(2)` caller registered under `wakeup`.
    pub fn poll_ready(&self, wakeup: u64) -> Result<()> {
        self.raw.poll_ready(wakeup).into_result()
    }

    /// The kernel's id of the request this thread is serving (0 outside a request).
    pub fn request_id(&self) -> u64 {
        self.raw.request_id()
    }
}
