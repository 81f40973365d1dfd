//! Telling the plugin to forget, off the request threads.
//!
//! A FORGET only decrements a count on the worker that receives it. When a count
//! reaches zero the inode is queued here, and one thread per mount confirms the zeros
//! and calls the plugin's `forget` in batches. Confirming needs a moment when no
//! request that hands out entries is inside the plugin (see dispatch's forget barrier):
//! the forgetter only *tries* to take the barrier for writing and backs off when it is
//! busy, so it never becomes a waiting writer that new lookups would queue behind, and
//! no worker ever waits for a forget. A slow lookup delays forgets, never reads.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tracing::Span;

/// Where confirmed forgets go: the mount's plugin, behind its barrier.
pub trait ForgetTarget: Send + Sync + 'static {
    /// Confirms each zero of `batch` and tells the plugin, unless a request handing
    /// out entries is in flight right now; returns `false` to be asked again later.
    fn try_forget(&self, batch: &[u64]) -> bool;
}

#[derive(Default)]
struct Queue {
    pending: Vec<u64>,
    stopping: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// One mount's forget queue and the thread that empties it.
pub struct Forgetter {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The first pause after finding the barrier busy, and the longest.
const FIRST_BACKOFF: Duration = Duration::from_micros(100);
const LONGEST_BACKOFF: Duration = Duration::from_millis(20);

impl Forgetter {
    /// Starts the thread; it logs inside `span` (the mount's).
    pub fn start(name: &str, target: Arc<dyn ForgetTarget>, span: Span) -> std::io::Result<Forgetter> {
        let shared = Arc::new(Shared::default());
        let queue = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("forget-{name}"))
            .spawn(move || span.in_scope(|| forget_loop(&queue, &*target)))?;
        Ok(Forgetter { shared, thread: Mutex::new(Some(thread)) })
    }

    /// Queues an inode whose count reached zero (or that was produced but never
    /// delivered to the kernel).
    pub fn push(&self, ino: u64) {
        self.shared.queue.lock().pending.push(ino);
        self.shared.wake.notify_one();
    }

    /// Stops the thread and returns the inodes still queued.
    pub fn stop(&self) -> Vec<u64> {
        self.shared.queue.lock().stopping = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
        std::mem::take(&mut self.shared.queue.lock().pending)
    }
}

impl Drop for Forgetter {
    fn drop(&mut self) {
        self.stop();
    }
}

fn forget_loop(shared: &Shared, target: &dyn ForgetTarget) {
    // Swapped with the queue's, so both keep their capacity: no allocation per batch.
    let mut batch = Vec::new();
    loop {
        {
            let mut queue = shared.queue.lock();
            while queue.pending.is_empty() && !queue.stopping {
                shared.wake.wait(&mut queue);
            }
            if queue.stopping {
                return;
            }
            std::mem::swap(&mut queue.pending, &mut batch);
        }
        batch.sort_unstable();
        batch.dedup();
        let mut backoff = FIRST_BACKOFF;
        while !target.try_forget(&batch) {
            let mut queue = shared.queue.lock();
            if queue.stopping {
                // Whoever stops the mount forgets what is left.
                queue.pending.append(&mut batch);
                return;
            }
            let _ = shared.wake.wait_for(&mut queue, backoff);
            backoff = (backoff * 2).min(LONGEST_BACKOFF);
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Default)]
    struct Recorder {
        busy: AtomicBool,
        forgotten: Mutex<Vec<u64>>,
        done: Condvar,
    }

    impl ForgetTarget for Recorder {
        fn try_forget(&self, batch: &[u64]) -> bool {
            if self.busy.load(Ordering::SeqCst) {
                return false;
            }
            self.forgotten.lock().extend_from_slice(batch);
            self.done.notify_all();
            true
        }
    }

    #[test]
    fn forgets_in_batches_once_the_barrier_is_free() {
        let recorder = Arc::new(Recorder::default());
        recorder.busy.store(true, Ordering::SeqCst);
        let forgetter = Forgetter::start("test", recorder.clone(), Span::none()).unwrap();
        for ino in [7, 3, 7, 9] {
            forgetter.push(ino);
        }
        std::thread::sleep(Duration::from_millis(30));
        assert!(recorder.forgotten.lock().is_empty(), "nothing is forgotten while the barrier is busy");
        recorder.busy.store(false, Ordering::SeqCst);
        let mut forgotten = recorder.forgotten.lock();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while forgotten.len() < 3 && std::time::Instant::now() < deadline {
            recorder.done.wait_for(&mut forgotten, Duration::from_millis(50));
        }
        let mut seen = forgotten.clone();
        drop(forgotten);
        seen.sort_unstable();
        assert_eq!(seen, vec![3, 7, 9], "each inode once");
        assert!(forgetter.stop().is_empty());
    }

    #[test]
    fn stopping_hands_back_what_was_not_forgotten() {
        let recorder = Arc::new(Recorder::default());
        recorder.busy.store(true, Ordering::SeqCst);
        let forgetter = Forgetter::start("test", recorder.clone(), Span::none()).unwrap();
        forgetter.push(4);
        forgetter.push(5);
        let mut left = forgetter.stop();
        left.sort_unstable();
        assert_eq!(left, vec![4, 5]);
        assert!(recorder.forgotten.lock().is_empty());
    }
}
