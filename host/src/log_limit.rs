//! Rate limits for log lines a client can provoke by repeating a request.
//!
//! A plugin bug (an impossible answer, a panic) or an unprivileged client looping on a
//! request the plugin mishandles must not flood the log: each [`LogLimiter`] lets a
//! few lines through per window and then counts what it holds back, saying how many
//! were suppressed when the next window opens. The check is two relaxed atomics and
//! sits only on error paths.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How many lines pass in one window, unless the limiter says otherwise.
const LINES_PER_WINDOW: u32 = 10;
/// The window's length.
const WINDOW: Duration = Duration::from_secs(10);

fn seconds_since_start() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs()
}

/// Lets a few lines through per `WINDOW` (`LINES_PER_WINDOW` by default).
#[derive(Debug)]
pub struct LogLimiter {
    what: &'static str,
    lines_per_window: u32,
    window_start: AtomicU64,
    in_window: AtomicU32,
    suppressed: AtomicU64,
}

impl LogLimiter {
    /// `what` names the kind of line in the "suppressed" summary.
    pub const fn new(what: &'static str) -> LogLimiter {
        LogLimiter::with_lines(what, LINES_PER_WINDOW)
    }

    /// A limiter that lets `lines_per_window` lines through per window.
    pub const fn with_lines(what: &'static str, lines_per_window: u32) -> LogLimiter {
        LogLimiter {
            what,
            lines_per_window,
            window_start: AtomicU64::new(0),
            in_window: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether one more line may be logged now.
    pub fn allow(&self) -> bool {
        let now = seconds_since_start();
        let start = self.window_start.load(Ordering::Relaxed);
        if now >= start + WINDOW.as_secs()
            && self.window_start.compare_exchange(start, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            self.in_window.store(0, Ordering::Relaxed);
            let held_back = self.suppressed.swap(0, Ordering::Relaxed);
            if held_back > 0 {
                tracing::warn!("{held_back} more {} were not logged in the last {}s", self.what, WINDOW.as_secs());
            }
        }
        if self.in_window.fetch_add(1, Ordering::Relaxed) < self.lines_per_window {
            true
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// Lines held back in the current window.
    #[cfg(test)]
    fn suppressed(&self) -> u64 {
        self.suppressed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_a_few_lines_through_then_counts_the_rest() {
        let limiter = LogLimiter::new("test lines");
        let passed = (0..1000).filter(|_| limiter.allow()).count();
        assert_eq!(passed, LINES_PER_WINDOW as usize);
        assert_eq!(limiter.suppressed(), 1000 - u64::from(LINES_PER_WINDOW));
    }
}
