//! Telling systemd (or any service manager speaking its protocol) what the host is
//! doing, for `Type=notify` and `Type=notify-reload` units: `READY=1` once every mount
//! is up, `RELOADING=1` and `READY=1` around a reload, `STOPPING=1` when the mounts come
//! down, each with a `STATUS=` line `systemctl status` shows. Without `$NOTIFY_SOCKET`
//! (not started by a service manager) every call does nothing.

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(error) = sd_notify::notify(false, states) {
        tracing::warn!("cannot notify the service manager: {error}");
    }
}

fn mounts(count: usize) -> String {
    match count {
        1 => "serving 1 mount".to_owned(),
        count => format!("serving {count} mounts"),
    }
}

/// Every mount is up.
pub fn ready(mount_count: usize) {
    send(&[NotifyState::Ready, NotifyState::Status(&mounts(mount_count))]);
}

/// A reload starts (the monotonic time lets systemd tell this reload from an older one).
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading, NotifyState::Status("reloading")];
    states.extend(NotifyState::monotonic_usec_now().ok());
    send(&states);
}

/// A reload ended: applied, or refused with `refused` (the old mounts keep serving).
pub fn reloaded(mount_count: usize, refused: Option<&str>) {
    let status = match refused {
        Some(reason) => format!("{}; the last reload was refused: {reason}", mounts(mount_count)),
        None => mounts(mount_count),
    };
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// The mounts are coming down.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("unmounting")]);
}
