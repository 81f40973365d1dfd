//! Kernel notifications from plugins (ABI 1.1's [`MountHost`]), and the id of the
//! request each session thread is serving.
//!
//! A plugin calls its handle from anywhere, often from inside a request. Sending the
//! notification right there can deadlock in the kernel: invalidating an entry takes
//! the parent directory's lock exclusively, while a lookup in that directory holds it
//! shared until it is answered. So the handle only queues; a per-mount thread sends
//! each notification once it can, after the request that queued it was answered. A
//! full queue answers `EAGAIN`, a mount that is gone `ENOTCONN`; notifications the
//! kernel rejects (an inode it no longer knows) are not errors anyone could act on, and
//! are logged at debug level only.

use std::cell::Cell;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, RResult, RSlice};
use fusehost_abi::{Errno, MountHost, MountHostObject, MountHost_TO};
use fuser::{INodeNo, Notifier, PollHandle};
use parking_lot::Mutex;
use tracing::Span;

/// Notifications a mount may have waiting before the plugin hears `EAGAIN`.
const QUEUE_DEPTH: usize = 4096;

/// How often the sending thread checks whether its mount ended.
const IDLE_CHECK: Duration = Duration::from_secs(1);

thread_local! {
    /// The kernel's `unique` id of the request this session thread is serving.
    static CURRENT_REQUEST: Cell<u64> = const { Cell::new(0) };
}

/// Records the request the calling session thread now serves.
#[inline]
pub fn serving_request(unique: u64) {
    CURRENT_REQUEST.set(unique);
}

enum Notification {
    InvalidateInode { ino: u64, offset: i64, len: i64 },
    InvalidateEntry { parent: u64, name: Vec<u8> },
    Delete { parent: u64, child: u64, name: Vec<u8> },
    Store { ino: u64, offset: u64, data: Vec<u8> },
    PollReady { wakeup: u64 },
}

/// One mount's queue: the plugin's handles push, [`Sender::start`]'s thread sends.
#[derive(Clone)]
struct Queue {
    sender: SyncSender<Notification>,
    closed: Arc<AtomicBool>,
}

impl Queue {
    fn push(&self, notification: Notification) -> RResult<(), Errno> {
        if self.closed.load(Ordering::Relaxed) {
            return RResult::RErr(Errno(libc::ENOTCONN));
        }
        match self.sender.try_send(notification) {
            Ok(()) => RResult::ROk(()),
            Err(TrySendError::Full(_)) => RResult::RErr(Errno::EAGAIN),
            Err(TrySendError::Disconnected(_)) => RResult::RErr(Errno(libc::ENOTCONN)),
        }
    }
}

impl MountHost for Queue {
    fn invalidate_inode(&self, ino: u64, offset: i64, len: i64) -> RResult<(), Errno> {
        self.push(Notification::InvalidateInode { ino, offset, len })
    }

    fn invalidate_entry(&self, parent: u64, name: RSlice<'_, u8>) -> RResult<(), Errno> {
        self.push(Notification::InvalidateEntry { parent, name: name.to_vec() })
    }

    fn notify_delete(&self, parent: u64, child: u64, name: RSlice<'_, u8>) -> RResult<(), Errno> {
        self.push(Notification::Delete { parent, child, name: name.to_vec() })
    }

    fn store(&self, ino: u64, offset: u64, data: RSlice<'_, u8>) -> RResult<(), Errno> {
        self.push(Notification::Store { ino, offset, data: data.to_vec() })
    }

    fn poll_ready(&self, wakeup: u64) -> RResult<(), Errno> {
        self.push(Notification::PollReady { wakeup })
    }

    fn request_id(&self) -> u64 {
        CURRENT_REQUEST.get()
    }
}

/// The plugin's side of one mount's notifications.
pub struct Notifications {
    queue: Queue,
    receiver: Mutex<Option<Receiver<Notification>>>,
}

impl Default for Notifications {
    fn default() -> Self {
        let (sender, receiver) = sync_channel(QUEUE_DEPTH);
        Notifications {
            queue: Queue { sender, closed: Arc::new(AtomicBool::new(false)) },
            receiver: Mutex::new(Some(receiver)),
        }
    }
}

impl Notifications {
    /// A handle for the plugin.
    pub fn handle(&self) -> MountHostObject {
        MountHost_TO::from_ptr(RArc::new(self.queue.clone()), TD_Opaque)
    }

    /// Starts sending what is queued through `notifier`, from a thread of its own
    /// that ends after [`Notifications::close`].
    pub fn start(&self, name: &str, notifier: Notifier, span: &Span) -> std::io::Result<()> {
        let Some(receiver) = self.receiver.lock().take() else { return Ok(()) };
        let closed = Arc::clone(&self.queue.closed);
        let span = span.clone();
        std::thread::Builder::new().name(format!("notify-{name}")).spawn(move || {
            let _span = span.entered();
            while !closed.load(Ordering::Relaxed) {
                match receiver.recv_timeout(IDLE_CHECK) {
                    Ok(notification) => send(&notifier, notification),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        })?;
        Ok(())
    }

    /// The mount is gone: later notifications answer `ENOTCONN`.
    pub fn close(&self) {
        self.queue.closed.store(true, Ordering::Relaxed);
    }
}

fn send(notifier: &Notifier, notification: Notification) {
    let outcome = match &notification {
        Notification::InvalidateInode { ino, offset, len } => notifier.inval_inode(INodeNo(*ino), *offset, *len),
        Notification::InvalidateEntry { parent, name } => {
            notifier.inval_entry(INodeNo(*parent), OsStr::from_bytes(name))
        }
        Notification::Delete { parent, child, name } => {
            notifier.delete(INodeNo(*parent), INodeNo(*child), OsStr::from_bytes(name))
        }
        Notification::Store { ino, offset, data } => notifier.store(INodeNo(*ino), *offset, data),
        Notification::PollReady { wakeup } => notifier.poll(PollHandle(*wakeup)),
    };
    if let Err(error) = outcome {
        // ENOENT: the kernel no longer caches what was invalidated; nothing to do.
        tracing::debug!("a notification was not taken: {error}");
    }
}
