//! Per-mount request and error counters, one relaxed atomic add per request.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! operations {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// Every FUSE request dispatch forwards.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Op { $($variant),* }

        impl Op {
            pub const ALL: &'static [Op] = &[$(Op::$variant),*];

            pub const fn name(self) -> &'static str {
                match self { $(Op::$variant => $name),* }
            }
        }
    };
}

operations! {
    Lookup => "lookup", Forget => "forget", Getattr => "getattr", Setattr => "setattr",
    Readlink => "readlink", Mknod => "mknod", Mkdir => "mkdir", Unlink => "unlink",
    Rmdir => "rmdir", Symlink => "symlink", Rename => "rename", Link => "link",
    Open => "open", Read => "read", Write => "write", Flush => "flush",
    Release => "release", Fsync => "fsync", Opendir => "opendir", Readdir => "readdir",
    Readdirplus => "readdirplus", Releasedir => "releasedir", Fsyncdir => "fsyncdir",
    Statfs => "statfs", Setxattr => "setxattr", Getxattr => "getxattr",
    Listxattr => "listxattr", Removexattr => "removexattr", Access => "access",
    Create => "create", Fallocate => "fallocate", Lseek => "lseek",
    CopyFileRange => "copy_file_range", Ioctl => "ioctl", Poll => "poll", Getlk => "getlk",
    Setlk => "setlk", Bmap => "bmap",
}

const OPS: usize = Op::ALL.len();

/// Requests and errors per operation for one mount.
#[derive(Debug)]
pub struct MountStats {
    requests: [AtomicU64; OPS],
    errors: [AtomicU64; OPS],
}

impl Default for MountStats {
    fn default() -> Self {
        MountStats {
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// One operation's figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpCount {
    pub op: Op,
    pub requests: u64,
    pub errors: u64,
}

impl MountStats {
    #[inline]
    pub fn request(&self, op: Op) {
        self.requests[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn error(&self, op: Op) {
        self.errors[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The operations that saw at least one request.
    pub fn snapshot(&self) -> Vec<OpCount> {
        Op::ALL
            .iter()
            .map(|&op| OpCount {
                op,
                requests: self.requests[op as usize].load(Ordering::Relaxed),
                errors: self.errors[op as usize].load(Ordering::Relaxed),
            })
            .filter(|count| count.requests > 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_and_errors_per_operation() {
        let stats = MountStats::default();
        stats.request(Op::Read);
        stats.request(Op::Read);
        stats.error(Op::Read);
        stats.request(Op::CopyFileRange);
        let snapshot = stats.snapshot();
        assert_eq!(
            snapshot,
            vec![
                OpCount { op: Op::Read, requests: 2, errors: 1 },
                OpCount { op: Op::CopyFileRange, requests: 1, errors: 0 },
            ]
        );
        assert_eq!(Op::CopyFileRange.name(), "copy_file_range");
    }
}
