//! The hello plugin on a real mount: listing, reading, attributes, errors, options.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;

use fusehost_tests::{fusehost, is_mounted, run_to_end, stderr_text, target_dir, Host};

#[test]
fn lists_and_reads_the_files_its_options_describe() {
    let host = Host::mount("hello", &["greeting=Hi from a test,repeat=3"]);

    let names: BTreeSet<String> = std::fs::read_dir(host.mountpoint())
        .expect("the root lists")
        .map(|entry| entry.expect("an entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, BTreeSet::from(["hello.txt".into(), "many.txt".into(), "name.txt".into()]));

    assert_eq!(std::fs::read_to_string(host.path("hello.txt")).unwrap(), "Hi from a test\n");
    assert_eq!(std::fs::read_to_string(host.path("many.txt")).unwrap(), "Hi from a test\n".repeat(3));
    // `fusehost mount` names the mount after its plugin.
    assert_eq!(std::fs::read_to_string(host.path("name.txt")).unwrap(), "hello\n");

    // The plugin's own tracing event crossed the log bridge into the mount's span.
    assert!(host.wait_for_stderr("mount{mount=hello}: plugin: hello is ready files=3"), "{}", host.stderr());
}

#[test]
fn reports_attributes_and_missing_names() {
    let host = Host::mount("hello", &["greeting=abc"]);

    let root = std::fs::metadata(host.mountpoint()).unwrap();
    assert!(root.is_dir());
    assert_eq!(root.permissions().mode() & 0o7777, 0o555);

    let file = std::fs::metadata(host.path("hello.txt")).unwrap();
    assert!(file.is_file());
    assert_eq!(file.len(), 4, "abc plus a newline");
    assert_eq!(file.permissions().mode() & 0o7777, 0o444);

    let missing = std::fs::metadata(host.path("nope.txt")).unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    assert_eq!(missing.raw_os_error(), Some(rustix::io::Errno::NOENT.raw_os_error()));
}

#[test]
fn refuses_writes_as_a_read_only_plugin() {
    let host = Host::mount("hello", &[]);
    let error = std::fs::OpenOptions::new().write(true).open(host.path("hello.txt")).unwrap_err();
    // EROFS from the plugin, or EACCES from the kernel's mode check for non-root users.
    let code = error.raw_os_error();
    assert!(
        code == Some(rustix::io::Errno::ROFS.raw_os_error()) || code == Some(rustix::io::Errno::ACCESS.raw_os_error()),
        "{error}"
    );
    assert_eq!(std::fs::read_to_string(host.path("hello.txt")).unwrap(), "Hello, world!\n", "nothing changed");
}

#[test]
fn refuses_an_unknown_plugin_option_naming_the_nearest_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = fusehost();
    command.arg("mount").arg("hello").arg(dir.path()).arg("--plugin-dir").arg(target_dir());
    command.args(["-o", "gretting=hi"]);
    let output = run_to_end(command);
    let stderr = stderr_text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown option `gretting`: did you mean `greeting`?"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(!is_mounted(dir.path()));
}

#[test]
fn refuses_a_bad_host_option_value() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = fusehost();
    command.arg("mount").arg("hello").arg(dir.path()).arg("--plugin-dir").arg(target_dir());
    command.args(["-o", "threads=zero"]);
    let output = run_to_end(command);
    let stderr = stderr_text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("option `threads` is a whole number"), "{stderr}");
}

#[test]
fn refuses_a_missing_mountpoint_without_create() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-there");
    let mut command = fusehost();
    command.arg("mount").arg("hello").arg(&missing).arg("--plugin-dir").arg(target_dir());
    let output = run_to_end(command);
    let stderr = stderr_text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("the mountpoint does not exist"), "{stderr}");
}

#[test]
fn refuses_a_folder_with_files_unless_nonempty_and_names_the_mount() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("busy");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("kept.txt"), "mine").unwrap();
    let mut command = fusehost();
    command.arg("mount").arg("hello").arg(&folder).arg("--plugin-dir").arg(target_dir());
    let output = run_to_end(command);
    let stderr = stderr_text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not empty") && stderr.contains("nonempty"), "{stderr}");

    let mut command = fusehost();
    command.arg("mount").arg("hello").arg(&folder).arg("--plugin-dir").arg(target_dir());
    command.args(["-o", "nonempty", "--name", "greetings"]);
    let mut host = Host::spawn(command, tempfile::tempdir().unwrap(), vec![folder.clone()]);
    host.wait_until_mounted();
    assert!(folder.join("hello.txt").is_file(), "mounted over the files");
    assert!(host.stderr().contains("mount=greetings"), "{}", host.stderr());
}

#[test]
fn a_single_mount_answers_status_on_its_control_socket() {
    let dir = tempfile::tempdir().unwrap();
    let mountpoint = dir.path().join("mnt");
    std::fs::create_dir(&mountpoint).unwrap();
    let socket = dir.path().join("control.sock");
    let mut command = fusehost();
    command.arg("mount").arg("hello").arg(&mountpoint).arg("--plugin-dir").arg(target_dir());
    command.arg("--name").arg("hi").arg("--socket").arg(&socket);
    let mut host = Host::spawn(command, tempfile::tempdir().unwrap(), vec![mountpoint.clone()]);
    host.wait_until_mounted();
    std::fs::read_to_string(mountpoint.join("hello.txt")).unwrap();
    let status = fusehost_tests::status_json(&socket);
    let mount = &status["mounts"][0];
    assert_eq!(mount["name"], "hi", "{status}");
    assert_eq!(mount["plugin"], "hello", "{status}");
    assert!(mount["requests"]["read"]["requests"].as_u64().unwrap_or(0) >= 1, "{status}");
    let mut reload = fusehost();
    reload.arg("reload").arg("--socket").arg(&socket);
    let output = run_to_end(reload);
    assert_eq!(output.status.code(), Some(1), "nothing to reload");
    assert!(String::from_utf8_lossy(&output.stdout).contains("no config file to reload"));
}
