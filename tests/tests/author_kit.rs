//! What a plugin author meets: `fusehost new-plugin`, the generated crate's own tests
//! (the ABI harness and the in-process mount), and the messages for the common
//! mistakes (a crate built as a Rust library, a library name that disagrees with the
//! plugin's NAME, a misspelt host option).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use fusehost_tests::{fusehost, run_to_end, stderr_text, target_dir, Host};

/// Runs cargo in `dir`, in a target folder the runs share.
fn cargo(dir: &Path, args: &[&str]) -> String {
    fusehost_tests::cargo(dir, args, &target_dir().parent().unwrap().join("new-plugin"))
}

/// A crate made by `fusehost new-plugin greeter` in a folder outside the repository,
/// its tests run and its plugin built, once per test process. Returns the built `.so`,
/// which lives in the shared target folder: the crate's folder is removed once it is
/// built (a static is never dropped, so a folder kept in one outlived every run).
fn generated_greeter() -> &'static PathBuf {
    static GENERATED: OnceLock<PathBuf> = OnceLock::new();
    GENERATED.get_or_init(|| {
        let outside = tempfile::tempdir().unwrap();
        let dir = outside.path().join("greeter");
        let mut command = fusehost();
        command.arg("new-plugin").arg("greeter").arg(&dir);
        let output = run_to_end(command);
        assert!(output.status.success(), "{}", stderr_text(&output));
        assert!(String::from_utf8_lossy(&output.stdout).contains("created plugin `greeter`"));

        // Generated code is what `cargo fmt` would write.
        cargo(&dir, &["fmt", "--check"]);
        // The workspace's lock pins the same dependency versions (and needs no download).
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        std::fs::copy(workspace.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
        let tested = cargo(&dir, &["test"]);
        assert!(tested.contains("lists_and_reads_the_greeting ... ok"), "{tested}");
        assert!(tested.contains("a_mount_serves_the_greeting ... ok"), "{tested}");
        // The harness needs no root: run its test binary as nobody.
        let built = cargo(&dir, &["test", "--test", "harness", "--no-run"]);
        let binary = built
            .lines()
            .find_map(|line| line.trim().strip_prefix("Executable tests/harness.rs (")?.strip_suffix(')'))
            .unwrap_or_else(|| panic!("no harness binary named in:\n{built}"));
        let as_nobody = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", binary])
            .current_dir("/")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&as_nobody.stdout);
        assert!(as_nobody.status.success() && text.contains("2 passed"), "{text}{}", stderr_text(&as_nobody));
        cargo(&dir, &["build"]);
        let library = target_dir().parent().unwrap().join("new-plugin/debug/libfusehost_greeter.so");
        assert!(library.is_file(), "{} built", library.display());
        library
    })
}

#[test]
fn a_generated_plugin_passes_its_tests_and_mounts() {
    let library = generated_greeter();
    let dir = tempfile::tempdir().unwrap();
    let mountpoint = dir.path().join("mnt");
    std::fs::create_dir(&mountpoint).unwrap();
    let mut command = fusehost();
    command.arg("mount").arg(library).arg(&mountpoint).args(["-o", "greeting=from a new crate"]);
    let mut host = Host::spawn(command, tempfile::tempdir().unwrap(), vec![mountpoint.clone()]);
    host.wait_until_mounted();
    assert_eq!(std::fs::read_to_string(mountpoint.join("hello.txt")).unwrap(), "from a new crate\n");
}

#[test]
fn new_plugin_refuses_a_bad_name_or_a_folder_in_use() {
    let dir = tempfile::tempdir().unwrap();
    for (name, folder, expected) in [
        ("My-Plugin", dir.path().join("a"), "use lowercase letters, digits and `_`"),
        ("fine", dir.path().to_path_buf(), "is not empty"),
    ] {
        std::fs::write(dir.path().join("occupied"), "x").unwrap();
        let mut command = fusehost();
        command.arg("new-plugin").arg(name).arg(&folder);
        let output = run_to_end(command);
        assert_eq!(output.status.code(), Some(2));
        assert!(stderr_text(&output).contains(expected), "{}", stderr_text(&output));
    }
}

#[test]
fn a_crate_built_as_a_rust_library_is_named_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("libfusehost_oops.rlib"), b"!<arch>\n").unwrap();
    let mut command = fusehost();
    command.arg("mount").arg("oops").arg(dir.path()).arg("--plugin-dir").arg(dir.path());
    let output = run_to_end(command);
    let stderr = stderr_text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("libfusehost_oops.rlib is there: its crate builds a Rust library"), "{stderr}");
    assert!(stderr.contains("crate-type = [\"cdylib\"]"), "{stderr}");
}

#[test]
fn a_library_named_unlike_its_plugin_says_which_name_to_use() {
    let library = generated_greeter();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(library, dir.path().join("libfusehost_salute.so")).unwrap();

    let mut listing = fusehost();
    listing.arg("plugins").arg("--plugin-dir").arg(dir.path());
    let listing = run_to_end(listing);
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(text.contains("salute 0.1.0"), "listed under the name mount uses:\n{text}");
    assert!(text.contains("calls itself `greeter`, but is mounted as `salute`"), "{text}");

    let mut mount = fusehost();
    mount.arg("mount").arg("greeter").arg(dir.path()).arg("--plugin-dir").arg(dir.path());
    let output = run_to_end(mount);
    let stderr = stderr_text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("calls itself `greeter`: mount it as `salute`"), "{stderr}");
    assert!(stderr.contains("[lib] name = \"fusehost_greeter\""), "{stderr}");
}

#[test]
fn a_misspelt_host_option_is_named_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = fusehost();
    command.arg("mount").arg("hello").arg(dir.path()).arg("--plugin-dir").arg(target_dir());
    command.args(["-o", "fsnme=greetings"]);
    let output = run_to_end(command);
    let stderr = stderr_text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown option `fsnme`: did you mean the host option `fsname`?"), "{stderr}");
}
