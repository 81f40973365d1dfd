//! Turns SIGINT, SIGTERM and SIGHUP into messages on a channel.
//!
//! fuser has no signal handling of its own. signal-hook's handler only writes to a
//! pipe, and one thread reads it, so any thread may take the signal safely; the
//! handlers are installed before the first mount so that a signal during start-up is
//! never the default "terminate now" that would leave a dead mountpoint.

use std::sync::mpsc::{channel, Receiver};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// A signal the host acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostSignal {
    /// SIGINT or SIGTERM: unmount everything and exit.
    Stop(i32),
    /// SIGHUP: reload the configuration.
    Reload,
}

/// Starts listening; the receiver yields each signal as it arrives.
pub fn listen() -> std::io::Result<Receiver<HostSignal>> {
    let (sender, receiver) = channel();
    listen_with(move |signal| sender.send(signal).is_ok())?;
    Ok(receiver)
}

/// Starts listening; `deliver` gets each signal and returns `false` to stop listening.
pub fn listen_with(mut deliver: impl FnMut(HostSignal) -> bool + Send + 'static) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new().name("signals".to_owned()).spawn(move || {
        for signal in signals.forever() {
            let event = if signal == SIGHUP { HostSignal::Reload } else { HostSignal::Stop(signal) };
            if !deliver(event) {
                break;
            }
        }
    })?;
    Ok(())
}

/// The signal's name, for log lines.
pub fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}
