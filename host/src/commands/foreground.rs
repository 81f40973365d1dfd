//! Serving mounts in the foreground until a signal (or an outside unmount) ends them.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use crate::commands::say;
use crate::session::{RunningMount, Unmounted};
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
pub fn serve_until_stopped(mut mounts: Vec<RunningMount>, signals: &Receiver<HostSignal>) {
    loop {
        match signals.recv_timeout(POLL) {
            Ok(HostSignal::Stop(signal)) => {
                tracing::info!("{} received: unmounting", signals::name(signal));
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
    unmount_all(mounts);
}

/// Unmounts every mount, in parallel, each bounded by [`UNMOUNT_TIMEOUT`].
pub fn unmount_all(mounts: Vec<RunningMount>) {
    std::thread::scope(|scope| {
        for mount in mounts {
            scope.spawn(move || {
                let (name, path) = (mount.name.clone(), mount.mountpoint.clone());
                match mount.unmount(UNMOUNT_TIMEOUT) {
                    Unmounted::Clean => tracing::info!(mount = %name, "unmounted {}", path.display()),
                    Unmounted::Lazily => tracing::warn!(
                        mount = %name,
                        "{} was busy and is detached lazily; open files keep it alive until they close",
                        path.display()
                    ),
                    Unmounted::SessionStuck => tracing::warn!(
                        mount = %name,
                        "unmounted {}, but its session did not end within {:?}",
                        path.display(),
                        UNMOUNT_TIMEOUT
                    ),
                }
            });
        }
    });
}
