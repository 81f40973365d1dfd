//! Libraries that cannot be used as plugins: each refused with one sentence and exit 2.

use std::path::Path;

use fusehost_tests::{fusehost, is_mounted, run_to_end, stderr_text, target_dir};

/// Runs `fusehost mount PLUGIN <tmp>` and returns (exit code, stderr).
fn mount_fails(plugin: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = fusehost();
    command.arg("mount").arg(plugin).arg(dir.path()).arg("--plugin-dir").arg(target_dir());
    let output = run_to_end(command);
    assert!(!is_mounted(dir.path()));
    (output.status.code(), stderr_text(&output))
}

fn assert_one_sentence(stderr: &str) {
    assert_eq!(stderr.lines().count(), 1, "exactly one line:\n{stderr}");
    assert!(stderr.starts_with("fusehost: "), "{stderr}");
}

#[test]
fn a_missing_plugin_name_says_where_it_looked() {
    let (code, stderr) = mount_fails("nosuch");
    assert_eq!(code, Some(2), "{stderr}");
    assert_one_sentence(&stderr);
    assert!(stderr.contains("plugin `nosuch` not found: no libfusehost_nosuch.so in"), "{stderr}");
    assert!(stderr.contains(&target_dir().display().to_string()), "names the folder searched: {stderr}");
}

#[test]
fn a_missing_plugin_file_is_named() {
    let (code, stderr) = mount_fails("/nonexistent/libfusehost_x.so");
    assert_eq!(code, Some(2), "{stderr}");
    assert_one_sentence(&stderr);
    assert!(stderr.contains("plugin file /nonexistent/libfusehost_x.so does not exist"), "{stderr}");
}

#[test]
fn a_shared_library_that_is_not_a_plugin_is_refused() {
    let library = target_dir().join("libfusehost_not_a_plugin.so");
    assert!(library.is_file(), "build the workspace first");
    let (code, stderr) = mount_fails(&library.display().to_string());
    assert_eq!(code, Some(2), "{stderr}");
    assert_one_sentence(&stderr);
    assert!(stderr.contains("is not a fusehost plugin: it exports no `fusehost_abi_major` symbol"), "{stderr}");
}

#[test]
fn a_file_that_is_not_a_shared_library_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libfusehost_fake.so");
    std::fs::write(&fake, "this is text, not ELF\n").unwrap();
    let (code, stderr) = mount_fails(&fake.display().to_string());
    assert_eq!(code, Some(2), "{stderr}");
    assert_one_sentence(&stderr);
    assert!(stderr.contains("is not a loadable shared library"), "{stderr}");
    assert!(stderr.contains(&fake.display().to_string()), "{stderr}");
}

#[test]
fn a_plugin_is_found_by_name_next_to_the_binary_without_flags() {
    // No --plugin-dir and no FUSEHOST_PLUGIN_PATH: the binary's own folder is searched.
    let dir = tempfile::tempdir().unwrap();
    let mut command = fusehost();
    command.arg("mount").arg("hello").arg(dir.path().join("missing-mountpoint"));
    let output = run_to_end(command);
    let stderr = stderr_text(&output);
    // It got past loading: the complaint is about the mountpoint, not the plugin.
    assert!(stderr.contains("the mountpoint does not exist"), "{stderr}");
    assert!(Path::new(&target_dir().join("libfusehost_hello.so")).is_file());
}

/// As root, a plugin file anyone else could change is refused before it is opened.
#[test]
fn as_root_a_plugin_others_can_change_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let folder = tempfile::tempdir().unwrap();
    let plugin = folder.path().join("libfusehost_hello.so");
    std::fs::copy(target_dir().join("libfusehost_hello.so"), &plugin).unwrap();

    std::fs::set_permissions(&plugin, PermissionsExt::from_mode(0o666)).unwrap();
    let (code, stderr) = mount_fails(&plugin.display().to_string());
    assert_eq!(code, Some(2), "{stderr}");
    assert_one_sentence(&stderr);
    assert!(stderr.contains("refusing to load plugin") && stderr.contains("writable by everyone"), "{stderr}");
    assert!(stderr.contains(&format!("chmod go-w {}", plugin.display())), "{stderr}");

    std::fs::set_permissions(&plugin, PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::set_permissions(folder.path(), PermissionsExt::from_mode(0o777)).unwrap();
    let (code, stderr) = mount_fails(&plugin.display().to_string());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("is writable by others"), "{stderr}");

    // `fusehost plugins` does not open it either, and says why.
    let mut command = fusehost();
    command.arg("plugins").arg("--plugin-dir").arg(folder.path());
    let listing = run_to_end(command);
    let text = String::from_utf8_lossy(&listing.stdout).into_owned() + &stderr_text(&listing);
    assert!(text.contains("refusing to load plugin"), "{text}");

    std::fs::set_permissions(folder.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut command = fusehost();
    command.arg("mount").arg(&plugin).arg(dir.path());
    let mut host = fusehost_tests::Host::spawn(command, tempfile::tempdir().unwrap(), vec![dir.path().into()]);
    host.wait_until_mounted();
}

#[test]
fn version_names_the_abi_and_the_plugin_search_path() {
    let mut command = fusehost();
    command.arg("--version");
    let output = run_to_end(command);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(text.contains(&format!("fusehost-abi {}", fusehost_abi::ABI_VERSION)), "{text}");
    assert!(text.contains("fuser 0.18"), "{text}");
    assert!(text.contains("/usr/lib/fusehost/plugins") && text.contains("/usr/local/lib/fusehost/plugins"), "{text}");
}
