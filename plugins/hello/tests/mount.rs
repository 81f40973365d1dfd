//! hello on a real kernel mount, in-process (no .so to build): needs root, or
//! fusermount3.

use fusehost_hello::Hello;
use fusehost_plugin_test::TestMount;

#[test]
fn a_mount_serves_the_greeting_read_only() {
    let mount = TestMount::start::<Hello>(&[("greeting", "hi")]).expect("mounted (run as root, or install fuse3)");
    assert_eq!(std::fs::read_to_string(mount.path("hello.txt")).unwrap(), "hi\n");
    let refused = std::fs::write(mount.path("hello.txt"), "changed").unwrap_err();
    assert_eq!(refused.raw_os_error(), Some(30), "EROFS: hello is read-only");
}
