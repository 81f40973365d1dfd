//! The requests of one mount that a plugin answers later (ABI 1.2), while they wait
//! inside the plugin: how many, the oldest, the peak, the cap that gives back-pressure,
//! and the replies the plugin dropped without answering.
//!
//! Only requests answered later pass through here (a lock per request is nothing next
//! to the network wait they stand for); the synchronous path never touches it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rustc_hash::FxHashMap;

use crate::stats::Op;

/// How many requests a mount lets wait inside its plugin unless the operator says
/// otherwise: far beyond what the kernel sends at once for ordinary use (each reader
/// has one read in flight, readahead a few), low enough to bound what a stuck store
/// can pin (each waiting read holds its buffer).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// How long an admission waits before it logs that the cap holds it back.
const SLOW_ADMISSION: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Waiting {
    /// By id: the ids are this mount's own sequence, so a fast hash is enough.
    requests: FxHashMap<u64, (Op, Instant)>,
    next_id: u64,
}

/// One mount's requests waiting inside the plugin.
pub struct LaterRequests {
    cap: usize,
    waiting: Mutex<Waiting>,
    freed: Condvar,
    peak: AtomicU64,
    total: AtomicU64,
    dropped: AtomicU64,
    /// Waiting requests that hand out entries: the forgetter confirms no zero while
    /// one is waiting (see dispatch's forget barrier).
    entries: AtomicUsize,
}

/// What `fusehost status` shows of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LaterSnapshot {
    pub in_flight: u64,
    pub peak: u64,
    pub cap: u64,
    pub total: u64,
    pub dropped: u64,
    /// The operation and age of the request that has waited longest.
    pub oldest: Option<(Op, Duration)>,
}

impl Default for LaterRequests {
    fn default() -> Self {
        LaterRequests::new(DEFAULT_MAX_IN_FLIGHT)
    }
}

impl std::fmt::Debug for LaterRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaterRequests").field("cap", &self.cap).finish_non_exhaustive()
    }
}

impl LaterRequests {
    pub fn new(cap: usize) -> Self {
        LaterRequests {
            cap: cap.max(1),
            waiting: Mutex::default(),
            freed: Condvar::new(),
            peak: AtomicU64::new(0),
            total: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            entries: AtomicUsize::new(0),
        }
    }

    /// A waiting request will hand out an entry: taken while the forget barrier is
    /// held for reading, so that no forget is confirmed in between.
    pub fn hold_entries(&self) {
        self.entries.fetch_add(1, Ordering::SeqCst);
    }

    /// Its entry was counted (or it was answered without one).
    pub fn release_entries(&self) {
        self.entries.fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether a waiting request will still hand out entries.
    pub fn entries_pending(&self) -> bool {
        self.entries.load(Ordering::SeqCst) > 0
    }

    /// Registers a request that arrived at `arrived` and is about to go to the plugin;
    /// at the cap, waits until one is answered (the FUSE worker thread waits, and the
    /// kernel queues the rest).
    pub fn admit(&self, op: Op, arrived: Instant) -> u64 {
        let mut waiting = self.waiting.lock();
        let mut logged = false;
        while waiting.requests.len() >= self.cap {
            if self.freed.wait_for(&mut waiting, SLOW_ADMISSION).timed_out() && !logged {
                logged = true;
                tracing::warn!(
                    operation = op.name(),
                    cap = self.cap,
                    "requests wait for the plugin: max_in_flight of them are already waiting inside it"
                );
            }
        }
        let id = waiting.next_id;
        waiting.next_id += 1;
        waiting.requests.insert(id, (op, arrived));
        self.peak.fetch_max(waiting.requests.len() as u64, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
        id
    }

    /// The request `id` was answered.
    pub fn finish(&self, id: u64) {
        self.waiting.lock().requests.remove(&id);
        self.freed.notify_one();
    }

    /// The plugin dropped a reply without answering it (it was answered `EIO`).
    pub fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> LaterSnapshot {
        let waiting = self.waiting.lock();
        let now = Instant::now();
        let oldest = waiting
            .requests
            .values()
            .min_by_key(|(_, since)| *since)
            .map(|&(op, since)| (op, now.saturating_duration_since(since)));
        LaterSnapshot {
            in_flight: waiting.requests.len() as u64,
            peak: self.peak.load(Ordering::Relaxed),
            cap: self.cap as u64,
            total: self.total.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            oldest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_the_waiting_their_peak_and_the_oldest() {
        let later = LaterRequests::new(8);
        let first = later.admit(Op::Read, Instant::now());
        let second = later.admit(Op::Lookup, Instant::now());
        let snapshot = later.snapshot();
        assert_eq!((snapshot.in_flight, snapshot.peak, snapshot.total), (2, 2, 2));
        assert_eq!(snapshot.oldest.map(|(op, _)| op), Some(Op::Read));
        later.finish(first);
        assert_eq!(later.snapshot().oldest.map(|(op, _)| op), Some(Op::Lookup));
        later.finish(second);
        let snapshot = later.snapshot();
        assert_eq!((snapshot.in_flight, snapshot.peak, snapshot.oldest), (0, 2, None));
    }

    #[test]
    fn at_the_cap_an_admission_waits_for_an_answer() {
        let later = Arc::new(LaterRequests::new(1));
        let first = later.admit(Op::Read, Instant::now());
        let (sender, receiver) = std::sync::mpsc::channel();
        let waiter = {
            let later = Arc::clone(&later);
            std::thread::spawn(move || {
                let id = later.admit(Op::Read, Instant::now());
                sender.send(id).unwrap();
            })
        };
        assert!(receiver.recv_timeout(Duration::from_millis(200)).is_err(), "admitted past the cap");
        later.finish(first);
        let second = receiver.recv_timeout(Duration::from_secs(10)).expect("admitted once a slot was free");
        waiter.join().unwrap();
        assert_eq!(later.snapshot().in_flight, 1);
        later.finish(second);
    }
}
