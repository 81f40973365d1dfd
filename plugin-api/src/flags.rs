//! Named bits for the numbers requests carry: rename flags, open flags, write flags,
//! and the mode bits a change by an unprivileged caller drops.
//!
//! ```
//! use fusehost_plugin_api::flags::{open, rename};
//!
//! fn rename_refuses_to_replace(flags: u32) -> bool {
//!     flags & rename::NOREPLACE != 0 // fail with EEXIST if new_name exists
//! }
//!
//! fn opened_only_for_writing(flags: i32) -> bool {
//!     flags & open::ACCESS_MODE == open::WRITE_ONLY
//! }
//! # assert!(rename_refuses_to_replace(rename::NOREPLACE | rename::WHITEOUT));
//! # assert!(opened_only_for_writing(libc::O_WRONLY | libc::O_APPEND));
//! # assert!(!opened_only_for_writing(libc::O_RDWR));
//! ```

/// [`Filesystem::rename`](crate::Filesystem::rename)'s `flags` (`renameat2(2)`).
pub mod rename {
    /// Fail with `EEXIST` instead of replacing an existing `new_name`.
    pub const NOREPLACE: u32 = 1;
    /// Swap the two names atomically; both must exist.
    pub const EXCHANGE: u32 = 2;
    /// Leave a whiteout (overlayfs) where the old name was.
    pub const WHITEOUT: u32 = 4;
}

/// The `flags` of [`Filesystem::open`](crate::Filesystem::open),
/// [`Filesystem::create`](crate::Filesystem::create), `read`, `write` and `release`
/// (`open(2)`'s, as this machine's C library spells them).
pub mod open {
    /// The bits that hold the access mode: compare `flags & ACCESS_MODE` with the next three.
    pub const ACCESS_MODE: i32 = libc::O_ACCMODE;
    pub const READ_ONLY: i32 = libc::O_RDONLY;
    pub const WRITE_ONLY: i32 = libc::O_WRONLY;
    pub const READ_WRITE: i32 = libc::O_RDWR;
    /// Writes go to the end of the file (with `writeback_cache` the kernel turns them
    /// into positioned writes).
    pub const APPEND: i32 = libc::O_APPEND;
    /// Truncate on open (the kernel usually sends a `setattr` with the size instead).
    pub const TRUNCATE: i32 = libc::O_TRUNC;
    pub const CREATE: i32 = libc::O_CREAT;
    pub const EXCLUSIVE: i32 = libc::O_EXCL;
    pub const NONBLOCK: i32 = libc::O_NONBLOCK;
    /// The caller bypasses the page cache.
    pub const DIRECT: i32 = libc::O_DIRECT;
    pub const SYNC: i32 = libc::O_SYNC;
    pub const NOATIME: i32 = libc::O_NOATIME;
}

/// The `write_flags` of [`Filesystem::write`](crate::Filesystem::write) (`FUSE_WRITE_*`).
pub mod write {
    /// A write of cached pages the kernel writes back (`writeback_cache`), not a caller's.
    pub const CACHE: u32 = 1 << 0;
    /// `lock_owner` is set.
    pub const LOCKOWNER: u32 = 1 << 1;
    /// Clear setuid and setgid: the writer is not privileged (`HANDLE_KILLPRIV_V2`).
    pub const KILL_SUIDGID: u32 = 1 << 2;
}

/// Permission bits of a file's mode (`FileAttr::perm`, `SetAttr::mode`) that change
/// with who may run it.
pub mod mode {
    pub const SETUID: u32 = 0o4000;
    pub const SETGID: u32 = 0o2000;
    pub const GROUP_EXECUTE: u32 = 0o0010;

    /// `mode` after a change by a caller without `CAP_FSETID`: without setuid, and
    /// without setgid where the group may execute (a setgid bit without group execute
    /// marks mandatory locking and stays). The kernel's rule, which a filesystem
    /// consenting to `HANDLE_KILLPRIV_V2` applies itself.
    ///
    /// ```
    /// use fusehost_plugin_api::flags::mode::without_privileges;
    /// assert_eq!(without_privileges(0o6755), 0o0755);
    /// assert_eq!(without_privileges(0o2745), 0o2745);
    /// ```
    pub fn without_privileges(mode: u32) -> u32 {
        let kept = mode & !SETUID;
        if kept & (SETGID | GROUP_EXECUTE) == (SETGID | GROUP_EXECUTE) {
            kept & !SETGID
        } else {
            kept
        }
    }
}
