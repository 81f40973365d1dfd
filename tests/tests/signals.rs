//! Stopping: SIGTERM and SIGINT unmount, wait for the session and exit 0.

use std::time::Duration;

use fusehost_tests::{is_mounted, Host};
use rustix::process::Signal;

fn stops_cleanly_on(signal: Signal) {
    let mut host = Host::mount("hello", &[]);
    assert!(std::fs::read_to_string(host.path("hello.txt")).is_ok());

    host.signal(signal);
    let status = host.wait_exit(Duration::from_secs(5)).expect("fusehost exits within 5 s");
    assert_eq!(status.code(), Some(0), "stderr:\n{}", host.stderr());
    assert!(!is_mounted(host.mountpoint()), "the mountpoint is gone from the mount table");
    assert!(host.stderr().contains("unmounted"), "stderr:\n{}", host.stderr());
}

#[test]
fn sigterm_unmounts_and_exits_zero_within_five_seconds() {
    stops_cleanly_on(Signal::TERM);
}

#[test]
fn sigint_unmounts_and_exits_zero() {
    stops_cleanly_on(Signal::INT);
}

#[test]
fn a_busy_mount_is_detached_lazily_and_the_host_still_exits_zero() {
    let mut host = Host::mount("hello", &[]);
    // Holding a directory open makes a plain unmount fail with EBUSY.
    let held_open = std::fs::File::open(host.mountpoint()).expect("the root opens");

    host.signal(Signal::TERM);
    let status = host.wait_exit(Duration::from_secs(15)).expect("fusehost exits even when busy");
    assert_eq!(status.code(), Some(0), "stderr:\n{}", host.stderr());
    assert!(host.stderr().contains("detaching it lazily"), "stderr:\n{}", host.stderr());
    assert!(!is_mounted(host.mountpoint()), "detached from the mount table");
    drop(held_open);
}
