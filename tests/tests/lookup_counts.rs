//! The host's lookup counting, seen from the plugin: `forget(ino)` exactly once each
//! time the kernel's references drop to zero, and every inode still known forgotten
//! at unmount, before `destroy`.

use std::time::Duration;

use fusehost_tests::Host;
use rustix::process::Signal;

fn occurrences(text: &str, needle: &str) -> usize {
    text.lines().filter(|line| line.ends_with(needle) || line.contains(&format!("{needle} "))).count()
}

#[test]
fn forget_comes_once_per_zero_count_and_everything_is_forgotten_before_destroy() {
    let mut host = Host::mount("panicky", &[]);

    // One lookup each for `calm` (inode 2) and `boom` (inode 3).
    std::fs::metadata(host.path("calm")).unwrap();
    std::fs::metadata(host.path("boom")).unwrap();

    // Make the kernel drop its dentries and inodes: it sends FORGET for both.
    std::fs::write("/proc/sys/vm/drop_caches", "2").expect("tests run as root (see README)");
    assert!(host.wait_for_stderr("forget ino=2"), "stderr:\n{}", host.stderr());
    assert!(host.wait_for_stderr("forget ino=3"), "stderr:\n{}", host.stderr());

    // Looked up again: a new reference, forgotten again at unmount.
    std::fs::metadata(host.path("calm")).unwrap();

    host.signal(Signal::TERM);
    let status = host.wait_exit(Duration::from_secs(5)).expect("fusehost exits");
    assert_eq!(status.code(), Some(0));
    let stderr = host.stderr();
    assert_eq!(occurrences(&stderr, "forget ino=2"), 2, "once per drop to zero:\n{stderr}");
    assert_eq!(occurrences(&stderr, "forget ino=3"), 1, "{stderr}");
    assert_eq!(occurrences(&stderr, "forget ino=1"), 0, "the root is never forgotten:\n{stderr}");
    let last_forget = stderr.rfind("forget ino=").unwrap();
    let destroy = stderr.find("plugin: destroy").expect("destroy was called");
    assert!(last_forget < destroy, "every forget before destroy:\n{stderr}");
    assert!(!stderr.contains("lookup-count anomaly"), "{stderr}");
}
