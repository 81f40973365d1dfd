//! Plugins built against other versions of `fusehost-abi`.
//!
//! The 1.0.0 tests build from `tests/fixtures/abi-1.0.0`: the ABI crate, the SDK and the
//! hello plugin exactly as 1.0.0 was released, plus a small host that knows only
//! 1.0.0. Today's sources cannot fool them. `abi-1.1.0` and `abi-1.2.0` do the same
//! for those minors (1.2.0's with laterfs, which answers later, and a 1.2-only host).
//!
//! The other tests copy `plugin-api/` and `plugins/hello/` into a temporary workspace,
//! changes the ABI crate there (its version, or one struct's layout), builds the hello
//! plugin offline against it, and points this workspace's `fusehost` at the result.
//! The builds share `target/abi-fixtures`, so only the three small crates rebuild.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use fusehost_abi::ABI_VERSION;
use fusehost_tests::{cargo, fusehost, in_background, run_to_end, stderr_text, target_dir, Host};

/// Builds share one target folder: one at a time, and each copies its result out.
static BUILD: Mutex<()> = Mutex::new(());

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace").to_path_buf()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "target" {
                copy_tree(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn replace_once(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert_eq!(text.matches(from).count(), 1, "{from:?} once in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// Builds hello against a copy of the ABI crate changed by `change` (given the copy's
/// root), with the ABI crate at `version`; returns the plugin, copied into `into`.
fn build_hello_against(version: &str, change: impl FnOnce(&Path), into: &Path) -> PathBuf {
    let root = workspace_root();
    let fixture = tempfile::tempdir().unwrap();
    let copy = fixture.path();
    copy_tree(&root.join("plugin-api"), &copy.join("plugin-api"));
    copy_tree(&root.join("plugins/hello"), &copy.join("plugins/hello"));
    // Only the libraries are built: their tests' and examples' dependencies (the test
    // kit, the host) stay behind.
    for crate_folder in ["plugins/hello", "plugin-api"] {
        let crate_manifest = copy.join(crate_folder).join("Cargo.toml");
        let manifest = std::fs::read_to_string(&crate_manifest).unwrap();
        let library_only = manifest.split("\n[dev-dependencies]").next().unwrap().to_owned() + "\n";
        std::fs::write(&crate_manifest, library_only).unwrap();
    }
    std::fs::copy(root.join("Cargo.lock"), copy.join("Cargo.lock")).unwrap();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members_start = manifest.find("members = [").unwrap();
    let members_end = members_start + manifest[members_start..].find(']').unwrap() + 1;
    let mut manifest = format!(
        "{}members = [\"plugin-api\", \"plugin-api/abi\", \"plugins/hello\"]{}",
        &manifest[..members_start],
        &manifest[members_end..]
    );
    if let Some(start) = manifest.find("default-members = [") {
        let end = start + manifest[start..].find(']').unwrap() + 1;
        manifest.replace_range(start..end, "");
    }
    std::fs::write(copy.join("Cargo.toml"), manifest).unwrap();
    let current = format!("version = \"{ABI_VERSION}\"");
    replace_once(&copy.join("Cargo.toml"), &format!("{current} }}"), &format!("version = \"{version}\" }}"));
    replace_once(&copy.join("plugin-api/abi/Cargo.toml"), &current, &format!("version = \"{version}\""));
    change(copy);

    let _one_build = BUILD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let fixture_target = target_dir().parent().unwrap().join("abi-fixtures");
    cargo(copy, &["build", "--offline", "--quiet", "-p", "fusehost-hello"], &fixture_target);
    let built = into.join(format!("libfusehost_hello_abi_{version}.so"));
    std::fs::copy(fixture_target.join("debug/libfusehost_hello.so"), &built).unwrap();
    built
}

fn mount_command(plugin: &Path, mountpoint: &Path) -> Command {
    let mut command = fusehost();
    command.arg("mount").arg(plugin).arg(mountpoint);
    command
}

#[test]
fn a_plugin_built_for_another_abi_major_is_refused_in_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = build_hello_against("2.0.0", |_| {}, dir.path());
    let output = run_to_end(mount_command(&plugin, dir.path()));
    let stderr = stderr_text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one sentence:\n{stderr}");
    assert!(
        stderr.contains(
            &format!("was built for fusehost ABI 2 (fusehost-abi 2.0.0), but this host speaks ABI 1 (fusehost-abi {ABI_VERSION})")
        ),
        "{stderr}"
    );
}

#[test]
fn a_plugin_built_against_a_newer_abi_patch_release_loads() {
    let dir = tempfile::tempdir().unwrap();
    let patched = ABI_VERSION.rsplit_once('.').map(|(minor, _)| format!("{minor}.7")).unwrap();
    let plugin = build_hello_against(&patched, |_| {}, dir.path());
    let mountpoint = dir.path().join("mnt");
    std::fs::create_dir(&mountpoint).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut host = Host::spawn(mount_command(&plugin, &mountpoint), scratch, vec![mountpoint.clone()]);
    host.wait_until_mounted();
    assert_eq!(std::fs::read_to_string(mountpoint.join("hello.txt")).unwrap(), "Hello, world!\n");
}

#[test]
fn a_plugin_whose_layout_differs_under_the_same_version_is_refused_and_explained_with_v() {
    let dir = tempfile::tempdir().unwrap();
    // Two fields of one struct swapped: it still compiles, but the layout differs.
    let plugin = build_hello_against(
        ABI_VERSION,
        |copy| {
            replace_once(
                &copy.join("plugin-api/abi/src/lib.rs"),
                "    pub bfree: u64,\n    pub bavail: u64,",
                "    pub bavail: u64,\n    pub bfree: u64,",
            )
        },
        dir.path(),
    );
    let output = run_to_end(mount_command(&plugin, dir.path()));
    let stderr = stderr_text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one sentence without -v:\n{stderr}");
    assert!(stderr.contains(&format!("claims fusehost ABI {ABI_VERSION} but its types differ")), "{stderr}");

    let mut verbose = mount_command(&plugin, dir.path());
    verbose.arg("-v");
    let output = run_to_end(verbose);
    let stderr = stderr_text(&output);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.lines().count() > 10, "-v adds abi_stable's layout report:\n{stderr}");
    assert!(stderr.contains("bfree"), "the report names the fields that moved");
}

#[test]
fn a_plugin_built_with_panic_abort_is_refused_unless_the_mount_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = build_hello_against(
        ABI_VERSION,
        |copy| {
            replace_once(
                &copy.join("Cargo.toml"),
                "[profile.dev]\npanic = \"unwind\"",
                "[profile.dev]\npanic = \"abort\"",
            )
        },
        dir.path(),
    );
    let plugin = plugin.display().to_string();
    for (extra, allowed) in [("", false), ("allow_panic_abort = true", true)] {
        let config = fusehost_tests::write_config(dir.path(), &[fusehost_tests::mount_lines("abort", &plugin, extra)]);
        let mut command = fusehost();
        command.arg("check").arg(&config);
        let output = run_to_end(command);
        let text = String::from_utf8_lossy(&output.stdout).into_owned() + &stderr_text(&output);
        if allowed {
            assert!(output.status.success(), "allowed per mount:\n{text}");
        } else {
            assert_eq!(output.status.code(), Some(1), "{text}");
            assert!(text.contains("was built with panic = \"abort\""), "{text}");
            assert!(text.contains("set allow_panic_abort = true on this mount"), "{text}");
        }
    }
}

/// Builds the fixture of a released version (`tests/fixtures/abi-VERSION`) once;
/// returns its release folder.
fn build_released(version: &str) -> PathBuf {
    let fixture = workspace_root().join(format!("tests/fixtures/abi-{version}"));
    let fixture_target = target_dir().parent().unwrap().join(format!("abi-{version}"));
    let _one_build = BUILD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    cargo(&fixture, &["build", "--release", "--locked", "--quiet"], &fixture_target);
    fixture_target.join("release")
}

/// The released 1.0.0 fixture: its hello plugin and its 1.0-only host.
fn released_1_0_0() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| build_released("1.0.0")).clone()
}

/// Checks that `fusehost plugins` lists the plugins in `released` as built for ABI
/// `version`, then mounts `plugin` from there with `options` (`-o` each), logging at
/// debug level.
fn mount_released(released: &Path, version: &str, plugin: &str, options: &[&str]) -> Host {
    let mut listing = fusehost();
    listing.arg("plugins").env("FUSEHOST_PLUGIN_PATH", released);
    let listing = run_to_end(listing);
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(text.contains(&format!("(ABI {version}")), "listed with the ABI it was built for:\n{text}");

    let dir = tempfile::tempdir().unwrap();
    let mountpoint = dir.path().join("mnt");
    std::fs::create_dir(&mountpoint).unwrap();
    let mut command = mount_command(&released.join(format!("libfusehost_{plugin}.so")), &mountpoint);
    for option in options {
        command.args(["-o", option]);
    }
    // Debug logs: they say which requests the plugin answers later.
    command.arg("-v");
    let mut host = Host::spawn(command, dir, vec![mountpoint]);
    host.wait_until_mounted();
    host
}

/// Stops `host` with SIGTERM; its log.
fn stop(mut host: Host) -> String {
    host.signal(rustix::process::Signal::TERM);
    let status = host.wait_exit(Duration::from_secs(30)).expect("the host stops");
    assert!(status.success(), "{}", host.stderr());
    host.stderr()
}

#[test]
fn a_plugin_built_from_the_released_1_1_0_sources_serves_a_mount() {
    let host = mount_released(&build_released("1.1.0"), "1.1.0", "hello", &["greeting=from 1.1.0"]);
    let mountpoint = host.mountpoint().to_owned();
    assert_eq!(std::fs::read_to_string(mountpoint.join("hello.txt")).unwrap(), "from 1.1.0\n");
    // Served through the 1.1 adapter: lookups (negative entries included) as before.
    assert_eq!(std::fs::metadata(mountpoint.join("missing")).unwrap_err().kind(), std::io::ErrorKind::NotFound);
    let log = stop(host);
    assert!(!log.contains("answers these requests later"), "a 1.1 plugin answers nothing later");
}

#[test]
fn a_plugin_built_from_the_released_1_2_0_sources_answers_later_in_todays_host() {
    let host = mount_released(&build_released("1.2.0"), "1.2.0", "laterfs", &["files=3", "delay_ms=5"]);
    let mountpoint = host.mountpoint().to_owned();
    // Answered later, through the 1.2 reply the host wraps around its own.
    let (file, folder) = (mountpoint.join("f1"), mountpoint.clone());
    let read = in_background(move || std::fs::read_to_string(file)).expect("the read is answered");
    assert_eq!(read.unwrap(), "file 1\n");
    let names = in_background(move || {
        let mut names: Vec<_> = std::fs::read_dir(folder).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        names.sort();
        names
    })
    .expect("the listing is answered");
    assert_eq!(names, ["dropped", "f0", "f1", "f2"]);
    let log = stop(host);
    assert!(log.contains("answers these requests later"), "{log}");
}

#[test]
fn todays_plugins_answer_a_host_that_knows_only_1_2_through_the_methods_it_has() {
    // Today's SDK lists readdirplus entries with `add_ttl` and laterfs answers create
    // with `created_ttl` (1.3); a 1.2 host's sink and reply lack them, and abi_stable
    // falls back to the ABI's defaults: `add` and `created`.
    let old_host = build_released("1.2.0").join("fusehost-host-1-2");
    let created_later = format!("create answered: created ino {}", 1u64 << 40);
    for (plugin, options, expected) in
        [("memfs", "", "listed: . .. made-now"), ("laterfs", "delay_ms = 1", created_later.as_str())]
    {
        let mut command = Command::new(&old_host);
        command.arg(fusehost_tests::plugin_path(plugin)).arg(options);
        let output = run_to_end(command);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{plugin} in the 1.2 host:\n{stdout}{}", stderr_text(&output));
        assert!(stdout.contains(&format!("built for {ABI_VERSION}")), "{stdout}");
        assert!(stdout.contains(expected), "{plugin} answered the 1.2 host:\n{stdout}");
        assert!(stdout.ends_with("done\n"), "{stdout}");
    }
}

#[test]
fn a_plugin_built_from_the_released_1_0_0_sources_serves_a_mount() {
    let host = mount_released(&released_1_0_0(), "1.0.0", "hello", &["greeting=from 1.0.0", "negative_ttl=0"]);
    let mountpoint = host.mountpoint().to_owned();
    assert_eq!(std::fs::read_to_string(mountpoint.join("hello.txt")).unwrap(), "from 1.0.0\n");
    let names: Vec<_> = std::fs::read_dir(&mountpoint).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // Every 1.1 feature defaulted: no negative entries, ENOENT as before; no locks.
    assert_eq!(std::fs::metadata(mountpoint.join("missing")).unwrap_err().kind(), std::io::ErrorKind::NotFound);
    let file = std::fs::File::open(mountpoint.join("hello.txt")).unwrap();
    let mut lock = libc::flock { l_type: libc::F_RDLCK as i16, l_whence: 0, l_start: 0, l_len: 0, l_pid: 0 };
    // SAFETY: `file` is open and `lock` is a valid flock for F_GETLK to fill.
    let answer = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&file), libc::F_GETLK, &mut lock) };
    assert_eq!(answer, 0, "the kernel answers F_GETLK itself for a plugin without locks");
    assert_eq!(i32::from(lock.l_type), libc::F_UNLCK);
    drop(file);
    stop(host);
}

#[test]
fn a_plugin_using_1_1_features_loads_in_a_host_that_knows_only_1_0() {
    let old_host = released_1_0_0().join("fusehost-host-1-0");
    for (plugin, expected) in [("hello", "hello.txt 14 Hello, world!"), ("memfs", "done")] {
        let mut command = Command::new(&old_host);
        command.arg(fusehost_tests::plugin_path(plugin));
        let output = run_to_end(command);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{plugin} in the 1.0 host:\n{stdout}{}", stderr_text(&output));
        assert!(stdout.contains(&format!("built for {ABI_VERSION}")), "{stdout}");
        assert!(stdout.contains(expected), "{plugin} served the 1.0 host:\n{stdout}");
        assert!(stdout.ends_with("done\n"), "{stdout}");
    }
}
