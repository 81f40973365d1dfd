//! The Debian package `.ci/package` builds: unpacked into a clean folder, its own files
//! (binary, mount helper, plugin folder) mount hello; its man pages, completions and
//! units are where Debian looks for them, and it depends on fuse3.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fusehost_tests::{daemon_gone, is_mounted, run_within, stderr_text, target_dir, Unmounted};

/// The newest `target/debian/fusehost_*.deb`; CI builds it before the tests.
fn built_package() -> Option<PathBuf> {
    let folder = target_dir().join("../debian");
    let newest = std::fs::read_dir(&folder)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("fusehost_"))
                && path.extension().is_some_and(|extension| extension == "deb")
        })
        .max_by_key(|path| std::fs::metadata(path).and_then(|meta| meta.modified()).ok());
    if newest.is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI builds the package with .ci/package before the tests");
        eprintln!("SKIPPED: no package in {} (run .ci/package)", folder.display());
    }
    newest
}

fn run(command: &mut Command) -> String {
    let output = run_within(std::mem::replace(command, Command::new("true")), Duration::from_secs(60));
    assert!(output.status.success(), "{command:?}: {}", stderr_text(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `program` from the unpacked package, with nothing of this build in its environment.
fn installed(root: &Path, program: &str) -> Command {
    let mut command = Command::new(root.join(program));
    command.env_clear().env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin").current_dir("/");
    command
}

#[test]
fn the_package_unpacked_into_a_clean_folder_mounts_hello_from_its_own_files() {
    let Some(package) = built_package() else { return };
    let depends = run(Command::new("dpkg-deb").arg("--field").arg(&package).arg("Depends"));
    assert!(depends.split(',').any(|dependency| dependency.trim() == "fuse3"), "Depends: {depends}");

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    run(Command::new("dpkg-deb").arg("--extract").arg(&package).arg(&root));
    for file in [
        "usr/bin/fusehost",
        "usr/lib/fusehost/plugins/libfusehost_hello.so",
        "usr/lib/fusehost/plugins/libfusehost_memfs.so",
        "usr/lib/fusehost/plugins/libfusehost_passthrough.so",
        "usr/lib/fusehost/plugins/libfusehost_archive.so",
        "usr/lib/fusehost/plugins/libfusehost_objectstore.so",
        "usr/lib/systemd/system/fusehost@.service",
        "usr/lib/systemd/user/fusehost-user@.service",
        "usr/share/man/man1/fusehost.1.gz",
        "usr/share/man/man1/fusehost-run.1.gz",
        "usr/share/man/man5/fusehost.toml.5.gz",
        "usr/share/bash-completion/completions/fusehost",
        "usr/share/zsh/vendor-completions/_fusehost",
        "usr/share/fish/vendor_completions.d/fusehost.fish",
        "usr/share/doc/fusehost/reference.toml",
    ] {
        assert!(root.join(file).is_file(), "the package has {file}");
    }
    let plugins: Vec<String> = std::fs::read_dir(root.join("usr/lib/fusehost/plugins"))
        .unwrap()
        .filter_map(|entry| entry.ok().map(|entry| entry.file_name().to_string_lossy().into_owned()))
        .collect();
    assert_eq!(plugins.len(), 5, "only the bundled plugins, no test plugins: {plugins:?}");
    let helper = std::fs::read_link(root.join("sbin/mount.fusehost")).expect("sbin/mount.fusehost is a link");
    assert_eq!(helper, Path::new("/usr/bin/fusehost"));
    let manual = run(Command::new("zcat").arg(root.join("usr/share/man/man1/fusehost.1.gz")));
    assert!(manual.contains(".TH fusehost 1"), "a man page: {manual:.300}");
    assert!(manual.contains("mount"), "it documents the subcommands: {manual:.300}");
    run(Command::new("bash").arg("-n").arg(root.join("usr/share/bash-completion/completions/fusehost")));

    // The installed binary finds the installed plugins, and only those.
    let listed = run(installed(&root, "usr/bin/fusehost").args(["plugins", "--json"]));
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let hello = listed["plugins"].as_array().unwrap().iter().find(|plugin| plugin["name"] == "hello").unwrap();
    assert_eq!(hello["loadable"], true, "{hello}");
    assert!(hello["path"].as_str().unwrap().starts_with(&root.display().to_string()), "{hello}");

    // The mount helper as mount(8) runs it for `hello MNT fusehost ro 0 0` (the link
    // is absolute, as installed: run what it names in this root, under its name). It
    // returns once the mount is up, and the mount ends with umount.
    let mountpoint = dir.path().join("mnt");
    std::fs::create_dir(&mountpoint).unwrap();
    let _cleanup = Unmounted(vec![mountpoint.clone()]);
    let mut helper = installed(&root, "usr/bin/fusehost");
    helper.arg0("/sbin/mount.fusehost").arg("hello").arg(&mountpoint).args(["-o", "ro,defaults"]);
    run(&mut helper);
    assert!(is_mounted(&mountpoint));
    let greeting = std::fs::read_to_string(mountpoint.join("hello.txt")).unwrap();
    assert!(greeting.contains("Hello"), "{greeting}");
    run(Command::new("umount").arg(&mountpoint));
    assert!(!is_mounted(&mountpoint));
    assert!(daemon_gone(&mountpoint), "the helper's daemon ends with the mount");
}
