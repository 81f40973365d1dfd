//! Serving mounts in the foreground until a signal (or an outside unmount) ends them.
//!
//! A stop unmounts every mount. A busy one (files still open) is detached lazily: it
//! disappears from the namespace at once, and its session goes on serving the open
//! files until the last one closes, for at most the stop timeout, or until a second
//! SIGINT/SIGTERM says to stop now. Only then does the host leave, destroying the
//! filesystems of sessions still alive itself, so every plugin gets its `destroy`.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::commands::say;
use crate::session::{Lingering, RunningMount, Unmounted};
use crate::signals::{self, HostSignal};

/// How long one mount's session may take to end after its unmount.
pub const UNMOUNT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often to notice a mount unmounted from outside.
pub const POLL: Duration = Duration::from_millis(250);

/// Tells the operator (and scripts waiting on stdout) that a mount is up.
pub fn announce(mount: &RunningMount) {
    say(format_args!("fusehost: {} mounted at {}", mount.name, mount.mountpoint.display()));
}

/// Waits for SIGINT/SIGTERM, then unmounts every mount. A mount unmounted from
/// outside ends the wait as well when it was the last one.
pub fn serve_until_stopped(mut mounts: Vec<RunningMount>, signals: &Receiver<HostSignal>, stop_timeout: Duration) {
    crate::systemd::ready(mounts.len());
    loop {
        match signals.recv_timeout(POLL) {
            Ok(HostSignal::Stop(signal)) => {
                tracing::info!("{} received: unmounting", signals::name(signal));
                crate::systemd::stopping();
                break;
            }
            Ok(HostSignal::Reload) => tracing::info!("SIGHUP received: nothing to reload without a config file"),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        mounts.retain(|mount| {
            let gone = mount.has_ended();
            if gone {
                tracing::info!(mount = %mount.name, "unmounted from outside");
            }
            !gone
        });
        if mounts.is_empty() {
            return;
        }
    }
    let lingering = unmount_all(mounts);
    finish(lingering, stop_timeout, |wait| matches!(signals.recv_timeout(wait), Ok(HostSignal::Stop(_))));
}

/// Unmounts every mount, in parallel, each bounded by [`UNMOUNT_TIMEOUT`]; returns
/// the sessions still serving (busy mounts, stuck sessions).
pub fn unmount_all(mounts: Vec<RunningMount>) -> Vec<Lingering> {
    std::thread::scope(|scope| {
        let unmounting: Vec<_> = mounts
            .into_iter()
            .map(|mount| {
                scope.spawn(move || {
                    let (name, path) = (mount.name.clone(), mount.mountpoint.clone());
                    match mount.unmount(UNMOUNT_TIMEOUT) {
                        Unmounted::Clean => {
                            tracing::info!(mount = %name, "unmounted {}", path.display());
                            None
                        }
                        Unmounted::Lazily(lingering) => {
                            tracing::warn!(
                                mount = %name,
                                "{} is busy: detached lazily; its open files keep working until they close",
                                path.display()
                            );
                            Some(lingering)
                        }
                        Unmounted::SessionStuck(lingering) => {
                            tracing::warn!(
                                mount = %name,
                                "unmounted {}, but its session did not end within {:?}",
                                path.display(),
                                UNMOUNT_TIMEOUT
                            );
                            Some(lingering)
                        }
                    }
                })
            })
            .collect();
        unmounting.into_iter().filter_map(|thread| thread.join().ok().flatten()).collect()
    })
}

/// Before the host leaves: serves the files still open on busy mounts until they
/// close, `limit` passes, or `stop_again` (waiting up to the time it is given) says a
/// second stop signal came; then destroys what is still alive.
pub fn finish(mut lingering: Vec<Lingering>, limit: Duration, mut stop_again: impl FnMut(Duration) -> bool) {
    lingering.retain(|session| !session.has_ended());
    if lingering.is_empty() {
        return;
    }
    let names: Vec<&str> = lingering.iter().map(|session| session.name.as_str()).collect();
    tracing::warn!(
        "waiting up to {limit:?} for files still open on {} to close; send the signal again to stop now",
        names.join(", ")
    );
    let deadline = Instant::now() + limit;
    while !lingering.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if stop_again(left.min(POLL)) {
            tracing::warn!("stop signal received again: stopping now");
            break;
        }
        lingering.retain(|session| {
            let ended = session.has_ended();
            if ended {
                tracing::info!(mount = %session.name, "last open file closed: {} is gone", session.mountpoint.display());
            }
            !ended
        });
    }
    for session in lingering {
        tracing::warn!(
            mount = %session.name,
            "leaving with files still open on {}: they fail from now on",
            session.mountpoint.display()
        );
        session.abandon();
    }
}
