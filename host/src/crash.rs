//! What a crashing plugin leaves behind: one line saying what died, and no dead mounts.
//!
//! A plugin that segfaults or aborts (or one built with `panic = "abort"` that
//! panics) takes the whole process with it; nothing can save the request. Without
//! help it also dies silently and leaves every mount of the process as "Transport
//! endpoint is not connected" until someone runs `umount -l`. So the host installs a
//! handler for SIGSEGV, SIGBUS, SIGILL, SIGABRT and SIGFPE that, async-signal-safely
//! (only `write(2)`, `umount2(2)` and `raise(3)`, no allocation, no locks), writes one
//! line naming the signal, the mount, the plugin and the request the crashing thread
//! was serving, detaches every mount of the process, and then dies of the same signal
//! (so the exit status, and a core dump where enabled, stay the signal's).
//!
//! The handler reads two things prepared in advance: a fixed table of the mounts that
//! are up (each with its description line and mountpoint as C strings, leaked so they
//! stay valid whatever the handler interrupts), and a per-thread slot that dispatch
//! fills while a request is inside the plugin.

use std::cell::Cell;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Once;

use crate::stats::Op;

/// How many mounts the table holds; a mount beyond it is still served, only not named
/// or detached by the handler.
const SLOTS: usize = 512;

struct Slot {
    /// "mount `NAME` (plugin `PLUGIN`)", leaked.
    line: AtomicPtr<u8>,
    line_len: AtomicUsize,
    /// The mountpoint as a C string, leaked; null when the slot is free.
    mountpoint: AtomicPtr<libc::c_char>,
}

#[allow(clippy::declare_interior_mutable_const)] // only the array initialiser below uses it
const FREE: Slot =
    Slot { line: AtomicPtr::new(null_mut()), line_len: AtomicUsize::new(0), mountpoint: AtomicPtr::new(null_mut()) };

static TABLE: [Slot; SLOTS] = [FREE; SLOTS];

thread_local! {
    /// (slot + 1, operation index) of the request this thread is serving; 0 when none.
    static SERVING: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// A mount's place in the table; freed when dropped.
#[derive(Debug)]
pub struct Registration {
    slot: usize,
}

impl Registration {
    /// Marks this thread as serving `op` for this mount until the guard drops.
    #[inline]
    pub fn serving(&self, op: Op) -> Serving {
        SERVING.with(|serving| serving.set((self.slot + 1, op as usize)));
        Serving
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // The strings stay leaked: a handler running right now may still read them.
        TABLE[self.slot].mountpoint.store(null_mut(), Ordering::SeqCst);
        TABLE[self.slot].line.store(null_mut(), Ordering::SeqCst);
    }
}

/// Clears this thread's slot when the request leaves the plugin.
pub struct Serving;

impl Drop for Serving {
    #[inline]
    fn drop(&mut self) {
        SERVING.with(|serving| serving.set((0, 0)));
    }
}

/// Puts a mount in the table, so a crash names it and detaches it.
pub fn register(mount: &str, plugin: &str, mountpoint: &Path) -> Option<Registration> {
    let line: &'static mut [u8] = format!("mount `{mount}` (plugin `{plugin}`)").into_bytes().leak();
    let mountpoint = CString::new(mountpoint.as_os_str().as_bytes()).ok()?.into_raw();
    for (slot, entry) in TABLE.iter().enumerate() {
        if entry.mountpoint.compare_exchange(null_mut(), mountpoint, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            entry.line_len.store(line.len(), Ordering::SeqCst);
            entry.line.store(line.as_mut_ptr(), Ordering::SeqCst);
            return Some(Registration { slot });
        }
    }
    tracing::warn!(mount, "more than {SLOTS} mounts: a crash will not name or detach this one");
    None
}

const FATAL: [libc::c_int; 5] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGABRT, libc::SIGFPE];

/// Installs the handler (once per process).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for signal in FATAL {
            // SAFETY: FFI. `action` is fully initialised (zeroed, then the handler,
            // flags and an empty mask set) before sigaction reads it. SA_ONSTACK uses
            // the alternate stack Rust gives each thread, so a stack overflow can still
            // be reported; SA_RESETHAND restores the default action for the re-raise.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_fatal_signal as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESETHAND;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
    });
}

fn signal_name(signal: libc::c_int) -> &'static [u8] {
    match signal {
        libc::SIGSEGV => b"SIGSEGV",
        libc::SIGBUS => b"SIGBUS",
        libc::SIGILL => b"SIGILL",
        libc::SIGABRT => b"SIGABRT",
        libc::SIGFPE => b"SIGFPE",
        _ => b"a fatal signal",
    }
}

/// write(2) to stderr; async-signal-safe.
fn say(bytes: &[u8]) {
    // SAFETY: FFI; `bytes` is valid for its length. A short or failed write loses
    // part of a message from a dying process, which is all that can be done.
    unsafe {
        libc::write(libc::STDERR_FILENO, bytes.as_ptr().cast(), bytes.len());
    }
}

extern "C" fn on_fatal_signal(signal: libc::c_int, _info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    say(b"fusehost: fatal ");
    say(signal_name(signal));
    let (slot, op) = SERVING.with(Cell::get);
    match TABLE.get(slot.wrapping_sub(1)) {
        Some(entry) if slot > 0 => {
            let line = entry.line.load(Ordering::SeqCst);
            let len = entry.line_len.load(Ordering::SeqCst);
            say(b" in ");
            if !line.is_null() {
                // SAFETY: `line` was leaked from a Vec of `len` bytes and is never freed.
                say(unsafe { std::slice::from_raw_parts(line, len) });
            }
            say(b" while serving ");
            say(Op::ALL.get(op).map_or(&b"a request"[..], |op| op.name().as_bytes()));
        }
        _ => say(b" outside any plugin request"),
    }
    say(b"; detaching every mount of this process\n");
    for entry in &TABLE {
        let mountpoint = entry.mountpoint.load(Ordering::SeqCst);
        if !mountpoint.is_null() {
            // SAFETY: FFI; `mountpoint` is a NUL-terminated string leaked by
            // `register` and never freed.
            unsafe {
                libc::umount2(mountpoint, libc::MNT_DETACH);
            }
        }
    }
    // SAFETY: FFI. SA_RESETHAND already restored the default action; the raised
    // signal is delivered when this handler returns (a fault re-executes and dies the
    // same way), so the process ends with this signal's status.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}
