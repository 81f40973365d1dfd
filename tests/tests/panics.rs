//! A panic inside a plugin answers EIO, is logged with its message and location, and
//! leaves the mount serving.

use std::io::Read;

use fusehost_tests::{is_mounted, Host};

#[test]
fn a_panicking_read_fails_with_eio_and_the_mount_keeps_serving() {
    let host = Host::mount("panicky", &[]);

    let mut boom = std::fs::File::open(host.path("boom")).expect("boom opens");
    let error = boom.read_to_end(&mut Vec::new()).expect_err("reading boom fails");
    assert_eq!(error.raw_os_error(), Some(rustix::io::Errno::IO.raw_os_error()), "{error}");

    assert!(
        host.wait_for_stderr("plugin panicked in read: boom was read at offset 0"),
        "the log names the panic; stderr:\n{}",
        host.stderr()
    );
    let stderr = host.stderr();
    assert!(stderr.contains("tests/plugins/panicky/src/lib.rs:"), "the log gives the location:\n{stderr}");
    assert!(stderr.contains("mount{mount=panicky}"), "the line carries the mount's span:\n{stderr}");

    // The same mount answers the next requests.
    assert!(is_mounted(host.mountpoint()));
    assert_eq!(std::fs::read_to_string(host.path("calm")).unwrap(), "still standing\n");
    let again = std::fs::read(host.path("boom")).expect_err("boom still fails, the host did not die");
    assert_eq!(again.raw_os_error(), Some(rustix::io::Errno::IO.raw_os_error()));
}
