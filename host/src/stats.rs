//! Per-mount request figures: requests, errors by errno, latency, bytes, in flight.
//!
//! Every counter is a relaxed atomic add to the operation's own counters; a request
//! costs two clock reads (start and end) and three adds, with no lock, allocation or
//! formatting, and no counter shared by all operations. Requests in flight are not
//! counted but derived: requests received minus requests answered (timed). The
//! figures are read by `fusehost status` and `/metrics` through
//! [`MountStats::snapshot`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

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

/// Upper bounds of the latency histogram's buckets, in nanoseconds (the last bucket,
/// `+Inf`, is implied). From a cached answer (~1 µs) to a slow network store (seconds).
pub const LATENCY_BOUNDS_NS: [u64; 14] = [
    1_000,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    5_000_000,
    25_000_000,
    100_000_000,
    500_000_000,
    2_500_000_000,
];
const BUCKETS: usize = LATENCY_BOUNDS_NS.len() + 1;

/// Errno values counted one by one: Linux's, 1 to 133 (`EHWPOISON`).
const LAST_NAMED_ERRNO: usize = 133;

/// The slot of every errno above `LAST_NAMED_ERRNO` (the kernel takes up to 511).
pub const OTHER_ERRNO: i32 = LAST_NAMED_ERRNO as i32 + 1;

const ERRNO_SLOTS: usize = LAST_NAMED_ERRNO + 2;

/// What "not found" answers are: lookups of absent names and absent extended
/// attributes are how the kernel asks, not failures.
pub fn is_not_found(errno: i32) -> bool {
    errno == libc::ENOENT || errno == libc::ENODATA
}

/// What "unsupported" answers are: a plugin declining an operation (`ENOSYS`, after
/// which the kernel stops asking for some, such as FLUSH) or an attribute namespace
/// (`EOPNOTSUPP`). How a plugin says "not here", not failures.
pub fn is_unsupported(errno: i32) -> bool {
    errno == libc::ENOSYS || errno == libc::EOPNOTSUPP
}

#[derive(Debug)]
struct OpCounters {
    requests: AtomicU64,
    errnos: [AtomicU64; ERRNO_SLOTS],
    latency: [AtomicU64; BUCKETS],
    latency_sum_ns: AtomicU64,
}

impl Default for OpCounters {
    fn default() -> Self {
        OpCounters {
            requests: AtomicU64::new(0),
            errnos: std::array::from_fn(|_| AtomicU64::new(0)),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_sum_ns: AtomicU64::new(0),
        }
    }
}

/// One mount's figures.
#[derive(Debug)]
pub struct MountStats {
    ops: Box<[OpCounters; OPS]>,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
}

impl Default for MountStats {
    fn default() -> Self {
        MountStats {
            ops: Box::new(std::array::from_fn(|_| OpCounters::default())),
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
        }
    }
}

/// One operation's figures, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpCount {
    pub op: Op,
    pub requests: u64,
    /// `(errno, answers)` for every errno answered at least once, ascending.
    pub errnos: Vec<(i32, u64)>,
    /// Answers per latency bucket (not cumulative), `LATENCY_BOUNDS_NS` then `+Inf`.
    pub latency: [u64; BUCKETS],
    pub latency_sum_ns: u64,
}

/// All of a mount's figures, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// The operations that saw at least one request.
    pub ops: Vec<OpCount>,
    pub in_flight: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

/// A request being served: its latency is recorded (and so it counts as answered) when
/// this is dropped.
pub struct Timing<'a> {
    stats: &'a MountStats,
    op: Op,
    started: Instant,
}

impl Drop for Timing<'_> {
    #[inline]
    fn drop(&mut self) {
        self.stats.answered(self.op, self.started);
    }
}

impl MountStats {
    /// Counts a request that has no reply (forget): it is never in flight.
    #[inline]
    pub fn request(&self, op: Op) {
        self.ops[op as usize].requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request and times it until the returned guard drops.
    #[inline]
    pub fn begin(&self, op: Op) -> Timing<'_> {
        self.request(op);
        Timing { stats: self, op, started: Instant::now() }
    }

    /// Records the latency of a request counted when it `started` and answered now
    /// (what a [`Timing`] does on drop; called directly for requests answered later).
    #[inline]
    pub fn answered(&self, op: Op, started: Instant) {
        let elapsed = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let counters = &self.ops[op as usize];
        let bucket = LATENCY_BOUNDS_NS.iter().position(|&bound| elapsed <= bound).unwrap_or(BUCKETS - 1);
        counters.latency[bucket].fetch_add(1, Ordering::Relaxed);
        counters.latency_sum_ns.fetch_add(elapsed, Ordering::Relaxed);
    }

    /// Counts an errno answer (1 to 133 each in its own slot, any other in
    /// [`OTHER_ERRNO`]'s).
    #[inline]
    pub fn error(&self, op: Op, errno: i32) {
        let slot = usize::try_from(errno).ok().filter(|&slot| slot <= LAST_NAMED_ERRNO).unwrap_or(OTHER_ERRNO as usize);
        self.ops[op as usize].errnos[slot].fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn read_bytes(&self, bytes: usize) {
        self.bytes_read.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    #[inline]
    pub fn written_bytes(&self, bytes: u64) {
        self.bytes_written.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let ops: Vec<OpCount> = Op::ALL
            .iter()
            .map(|&op| {
                let counters = &self.ops[op as usize];
                let errnos = (0..ERRNO_SLOTS)
                    .map(|slot| (slot as i32, counters.errnos[slot].load(Ordering::Relaxed)))
                    .filter(|&(_, answers)| answers > 0)
                    .collect();
                // Answers before requests: a request is counted before its answer, so
                // read in this order the difference is never negative.
                let latency = std::array::from_fn(|bucket| counters.latency[bucket].load(Ordering::Relaxed));
                OpCount {
                    op,
                    requests: counters.requests.load(Ordering::Relaxed),
                    errnos,
                    latency,
                    latency_sum_ns: counters.latency_sum_ns.load(Ordering::Relaxed),
                }
            })
            .filter(|count| count.requests > 0)
            .collect();
        let in_flight = ops
            .iter()
            .filter(|count| count.op != Op::Forget)
            .map(|count| count.requests.saturating_sub(count.latency.iter().sum()))
            .sum();
        StatsSnapshot {
            ops,
            in_flight,
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_errnos_latency_and_bytes() {
        let stats = MountStats::default();
        drop(stats.begin(Op::Read));
        let in_flight = stats.begin(Op::Read);
        assert_eq!(stats.snapshot().in_flight, 1);
        stats.error(Op::Read, libc::EIO);
        stats.error(Op::Read, libc::EIO);
        stats.error(Op::Read, 9999);
        stats.read_bytes(4096);
        drop(in_flight);
        // A forget has no answer: counted, never timed, never in flight.
        stats.request(Op::Forget);
        stats.written_bytes(10);
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.in_flight, 0, "a forget, which has no answer, is never in flight");
        assert_eq!((snapshot.bytes_read, snapshot.bytes_written), (4096, 10));
        let forget = &snapshot.ops[0];
        assert_eq!((forget.op, forget.requests, forget.latency.iter().sum::<u64>()), (Op::Forget, 1, 0));
        let read = &snapshot.ops[1];
        assert_eq!((read.op, read.requests), (Op::Read, 2));
        assert_eq!(read.errnos, vec![(libc::EIO, 2), (OTHER_ERRNO, 1)]);
        assert_eq!(read.latency.iter().sum::<u64>(), 2);
        assert_eq!(Op::CopyFileRange.name(), "copy_file_range");
    }

    #[test]
    fn latency_lands_in_the_first_bucket_that_holds_it() {
        let stats = MountStats::default();
        stats.request(Op::Statfs);
        stats.request(Op::Statfs);
        drop(Timing { stats: &stats, op: Op::Statfs, started: Instant::now() });
        drop(Timing { stats: &stats, op: Op::Statfs, started: Instant::now() - std::time::Duration::from_secs(10) });
        let statfs = &stats.snapshot().ops[0];
        assert_eq!(statfs.latency[BUCKETS - 1], 1, "10 s is beyond the last bound");
        assert!(statfs.latency_sum_ns >= 10_000_000_000);
    }
}
