//! memfs: a complete read-write POSIX filesystem in memory, and fusehost's
//! conformance reference (pjdfstest and fsx run against it in CI).
//!
//! Regular files (sparse, with holes), directories, symlinks, hard links, fifos,
//! sockets and device nodes; Linux ownership rules, nanosecond timestamps, rename
//! flags, xattrs, fallocate, SEEK_DATA/SEEK_HOLE, copy_file_range, and `statfs` figures
//! backed by real limits (`ENOSPC` when full). An unlinked file stays usable through
//! its open descriptors and is freed once the kernel has forgotten it.
#![forbid(unsafe_code)]

mod data;
mod dir;
mod fs;
mod inode;
mod locks;
mod space;
mod xattr;

use std::os::unix::fs::MetadataExt;

use fusehost_plugin_api::*;

pub use fs::{MemFs, RootOwner};

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::new("max_size", OptionKind::Size, "512MiB", "the most file data the mount holds (ENOSPC beyond)"),
    OptionSpec::new("max_inodes", OptionKind::Integer, "1000000", "the most files, directories and links it holds"),
    OptionSpec::new(
        "posix_locks",
        OptionKind::Bool,
        "false",
        "serve fcntl record locks in memfs, not the kernel (each waiting F_SETLKW holds a worker thread)",
    ),
];

impl Plugin for MemFs {
    const NAME: &'static str = "memfs";
    const DESCRIPTION: &'static str = "a read-write POSIX filesystem in memory";
    const OPTIONS: &'static [OptionSpec] = OPTIONS;

    fn validate(options: &Options) -> std::result::Result<(), SetupError> {
        if options.size("max_size").unwrap_or(0) < 4096 {
            return Err(SetupError::new("option `max_size` must be at least 4KiB"));
        }
        if options.integer("max_inodes").unwrap_or(0) < 2 {
            return Err(SetupError::new("option `max_inodes` must be at least 2"));
        }
        Ok(())
    }

    fn new(mount: &MountInfo, options: &Options) -> std::result::Result<Self, SetupError> {
        // The mounted root keeps the owner and mode of the folder it covers.
        let root = match std::fs::metadata(&mount.mountpoint) {
            Ok(meta) => RootOwner { uid: meta.uid(), gid: meta.gid(), perm: (meta.mode() & 0o7777) as u16 },
            Err(_) => RootOwner { uid: 0, gid: 0, perm: 0o755 },
        };
        let max_size = options.size("max_size").unwrap_or(512 << 20);
        let max_inodes = options.integer("max_inodes").unwrap_or(1_000_000).max(2) as u64;
        let memfs = MemFs::new(max_size, max_inodes, root);
        Ok(if options.bool("posix_locks").unwrap_or(false) { memfs.with_posix_locks() } else { memfs })
    }
}

export_plugin!(MemFs);
