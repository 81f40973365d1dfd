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
fn a_busy_mount_is_detached_lazily_and_a_second_signal_stops_at_once() {
    let mut host = Host::mount("hello", &[]);
    // Holding a directory open makes a plain unmount fail with EBUSY.
    let held_open = std::fs::File::open(host.mountpoint()).expect("the root opens");

    host.signal(Signal::TERM);
    assert!(host.wait_for_stderr("send the signal again to stop now"), "stderr:\n{}", host.stderr());
    assert!(!is_mounted(host.mountpoint()), "detached from the mount table");
    host.signal(Signal::TERM);
    let status = host.wait_exit(Duration::from_secs(10)).expect("fusehost exits on the second signal");
    assert_eq!(status.code(), Some(0), "stderr:\n{}", host.stderr());
    let stderr = host.stderr();
    assert!(stderr.contains("detaching it lazily") && stderr.contains("stopping now"), "stderr:\n{stderr}");
    let detach_line = stderr.lines().find(|line| line.contains("detaching it lazily")).unwrap_or_default();
    assert!(detach_line.contains("mount=hello"), "the line names its mount: {detach_line}");
    assert!(stderr.contains("destroy") || stderr.contains("leaving with files still open"), "stderr:\n{stderr}");
    drop(held_open);
}

/// What the README promises: a file open when the host is told to stop keeps working
/// until it is closed, and every byte written to it lands.
#[test]
fn a_file_being_written_when_the_host_stops_is_written_whole() {
    use std::io::Write;
    let source = fusehost_tests::Tmpfs::new();
    let mut host = Host::mount("passthrough", &[&format!("source={}", source.path().display())]);
    let mut file = std::fs::File::create(host.path("stream")).expect("created");
    let chunk = vec![7u8; 64 << 10];
    for _ in 0..16 {
        file.write_all(&chunk).expect("written before the stop");
    }
    host.signal(Signal::TERM);
    assert!(host.wait_for_stderr("detached lazily"), "stderr:\n{}", host.stderr());
    for _ in 0..48 {
        file.write_all(&chunk).expect("still written after the stop");
    }
    file.sync_all().expect("fsync after the stop");
    drop(file);
    let status = host.wait_exit(Duration::from_secs(10)).expect("fusehost exits once the file is closed");
    assert_eq!(status.code(), Some(0), "stderr:\n{}", host.stderr());
    assert!(host.stderr().contains("last open file closed"), "stderr:\n{}", host.stderr());
    let written = std::fs::read(source.path().join("stream")).unwrap();
    assert_eq!(written.len(), 64 * (64 << 10));
    assert!(written.iter().all(|&byte| byte == 7));
}
