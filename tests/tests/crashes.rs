//! A plugin that crashes the process is named in one line and leaves no dead mount
//! behind, and a dead mount left by a killed host does not stop the next one.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use fusehost_tests::{fusehost, in_background, is_mounted, mount_lines, target_dir, Host};
use rustix::process::Signal;

const ENOTCONN: i32 = 107;

fn crash_with(how: &str, signal: i32, name: &str) {
    let extra = format!("[mount.options]\ncrash = \"{how}\"");
    let mut host = Host::run_mounts(&[mount_lines("liar", "liar", &extra), mount_lines("bystander", "hello", "")]);
    let crash = host.path("crash");
    // The reader's request dies with the process: it gets an error, it is not left hanging.
    let read = in_background(move || std::fs::read(crash));
    let status = host.wait_exit(Duration::from_secs(10)).expect("the host died");
    assert_eq!(status.signal(), Some(signal), "it dies of the plugin's signal: {status:?}");
    assert!(read.expect("the reader was answered").is_err());
    let stderr = host.stderr();
    let expected = format!(
        "fusehost: fatal {name} in mount `liar` (plugin `liar`) while serving read; detaching every mount of this process"
    );
    assert!(stderr.contains(&expected), "{stderr}");
    for mountpoint in &host.mountpoints {
        assert!(!is_mounted(mountpoint), "{} was detached", mountpoint.display());
    }
}

#[test]
fn a_segfaulting_plugin_is_named_and_every_mount_detached() {
    crash_with("segv", libc::SIGSEGV, "SIGSEGV");
}

#[test]
fn an_aborting_plugin_is_named_and_every_mount_detached() {
    crash_with("abort", libc::SIGABRT, "SIGABRT");
}

fn kill_leaving_a_dead_mount(options: &[&str]) -> Host {
    let mut host = Host::mount("hello", options);
    host.signal(Signal::KILL);
    host.wait_exit(Duration::from_secs(10)).expect("killed");
    let dead = std::fs::metadata(host.mountpoint()).expect_err("a dead mount");
    assert_eq!(dead.raw_os_error(), Some(ENOTCONN));
    host
}

fn mount_again(on: &Host) -> std::process::Command {
    let mut command = fusehost();
    command.arg("mount").arg("hello").arg(on.mountpoint()).arg("--plugin-dir").arg(target_dir());
    command
}

#[test]
fn a_dead_mount_left_by_a_killed_host_is_detached_by_the_next_one() {
    let killed = kill_leaving_a_dead_mount(&[]);
    let mut again = Host::spawn(mount_again(&killed), tempfile::tempdir().unwrap(), vec![killed.mountpoint().into()]);
    again.wait_until_mounted();
    assert!(again.wait_for_stderr("was a dead mount left by a fusehost that crashed or was killed: detached it"));
    assert_eq!(std::fs::read_to_string(killed.path("hello.txt")).unwrap(), "Hello, world!\n");
}

#[test]
fn a_dead_mount_of_another_program_is_refused_with_the_fix() {
    let killed = kill_leaving_a_dead_mount(&["fsname=someone-else"]);
    let output = fusehost_tests::run_to_end(mount_again(&killed));
    assert_eq!(output.status.code(), Some(2));
    let stderr = fusehost_tests::stderr_text(&output);
    assert!(stderr.contains("is a dead FUSE mount of another program"), "{stderr}");
    assert!(stderr.contains(&format!("umount -l {}", killed.mountpoint().display())), "{stderr}");
}
