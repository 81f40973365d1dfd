//! hello driven through fusehost's ABI adapter, as the host would call it: no mount,
//! no root. The template for a plugin's unit tests.

use fusehost_hello::Hello;
use fusehost_plugin_api::Errno;
use fusehost_plugin_test::Harness;

#[test]
fn the_files_hold_the_greeting_and_the_mount_name() {
    let mut fs = Harness::new::<Hello>(&[("greeting", "hi"), ("repeat", "3")]).unwrap();
    assert_eq!(fs.list("").unwrap(), ["hello.txt", "name.txt", "many.txt"]);
    assert_eq!(fs.read("hello.txt").unwrap(), b"hi\n");
    assert_eq!(fs.read("many.txt").unwrap(), b"hi\nhi\nhi\n");
    assert_eq!(fs.attr("hello.txt").unwrap().perm, 0o444);
    assert_eq!(fs.attr("nothing.txt").unwrap_err(), Errno::ENOENT);
    fs.forget_all();
    assert!(fs.held().is_empty());
}

#[test]
fn options_are_checked_as_the_host_checks_them() {
    let refused = Harness::new::<Hello>(&[("repeat", "0")]).err().unwrap();
    assert!(refused.contains("`repeat` must be between 1 and 10000"), "{refused}");
    let refused = Harness::new::<Hello>(&[("gretting", "hi")]).err().unwrap();
    assert!(refused.contains("did you mean `greeting`"), "{refused}");
}
