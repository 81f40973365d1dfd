//! Keeps panics from crossing the ABI.
//!
//! A panic unwinding out of an `extern "C"`/sabi_trait method aborts the whole host and
//! leaves every mount "Transport endpoint is not connected". So every call into the
//! author's code runs inside [`guarded`]: a panic is caught, logged with its message
//! and location, and answered `EIO`, and the mount keeps serving.
//!
//! Each cdylib has its own copy of std, so the panic hook installed here (by
//! `export_plugin!`, inside the plugin) sees only the plugin's panics. It records the
//! message and location for the guard to log; a panic outside any guarded call (in a
//! thread the plugin spawned) is logged by the hook itself.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use fusehost_abi::abi_stable::std_types::RResult;

use crate::types::Errno;

thread_local! {
    static IN_GUARDED_CALL: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the recording panic hook (once per plugin library).
pub(crate) fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        panic::set_hook(Box::new(|info| {
            let message = payload_text(info.payload());
            let described = match info.location() {
                Some(location) => format!("{message} (at {}:{})", location.file(), location.line()),
                None => message,
            };
            if IN_GUARDED_CALL.with(Cell::get) {
                LAST_PANIC.with(|last| *last.borrow_mut() = Some(described));
            } else {
                tracing::error!("plugin thread panicked: {described}");
            }
        }));
    });
}

/// The message a panic carried (its `&str` or `String` payload).
pub fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}

/// Runs one call into the author's code; a panic becomes `EIO` and one error line.
#[inline]
pub fn guarded<T>(operation: &'static str, call: impl FnOnce() -> Result<T, Errno>) -> RResult<T, Errno> {
    guard(operation, call).unwrap_or(Err(Errno::EIO)).into()
}

/// Runs one call that answers nothing (forget, destroy); a panic is only logged.
#[inline]
pub fn guarded_unit(operation: &'static str, call: impl FnOnce()) {
    let _ = guard(operation, call);
}

fn guard<T>(operation: &'static str, call: impl FnOnce() -> T) -> Option<T> {
    let was_guarded = IN_GUARDED_CALL.with(|flag| flag.replace(true));
    let outcome = panic::catch_unwind(AssertUnwindSafe(call));
    IN_GUARDED_CALL.with(|flag| flag.set(was_guarded));
    match outcome {
        Ok(value) => Some(value),
        Err(payload) => {
            let described =
                LAST_PANIC.with(|last| last.borrow_mut().take()).unwrap_or_else(|| payload_text(payload.as_ref()));
            tracing::error!(operation, "plugin panicked in {operation}: {described}; answered EIO");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_eio_and_the_next_call_works() {
        let answer = guarded("read", || -> Result<u32, Errno> { panic!("boom") });
        assert_eq!(answer.into_result(), Err(Errno::EIO));
        let answer = guarded("read", || Ok(7));
        assert_eq!(answer.into_result(), Ok(7));
    }

    #[test]
    fn errors_pass_through_unchanged() {
        let answer = guarded("lookup", || -> Result<(), Errno> { Err(Errno::ENOENT) });
        assert_eq!(answer.into_result(), Err(Errno::ENOENT));
    }
}
