//! `fusehost run CONFIG` with several mounts: concurrency, reload, failure isolation,
//! config errors, and the `check`, `plugins`, `status` and `reload` commands.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Output;

use fusehost_tests::{
    config_mountpoint, fusehost, is_mounted, mount_lines, run_to_end, status_json, stderr_text, target_dir,
    write_config, Host, MountLines,
};
use rustix::process::Signal;
use serde_json::Value;

fn mount(name: &'static str, plugin: &'static str, extra: &'static str) -> MountLines<'static> {
    mount_lines(name, plugin, extra)
}

fn mountpoint(dir: &Path, name: &str) -> PathBuf {
    config_mountpoint(dir, name)
}

fn start(mounts: &[MountLines<'_>]) -> (Host, PathBuf) {
    let host = Host::run_mounts(mounts);
    let config = host.dir.path().join("mounts.toml");
    (host, config)
}

fn fusehost_with(args: &[&str]) -> Output {
    let mut command = fusehost();
    command.args(args);
    run_to_end(command)
}

fn socket_of(host: &Host) -> String {
    host.control_socket().display().to_string()
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

#[test]
fn three_mounts_come_up_serve_concurrently_and_report_status() {
    let (host, _) = start(&[
        mount("alpha", "hello", "[mount.options]\ngreeting = \"I am alpha\""),
        mount("beta", "hello", "[mount.options]\ngreeting = \"I am beta\""),
        mount("gamma", "panicky", ""),
    ]);
    let dir = host.dir.path().to_path_buf();
    std::thread::scope(|scope| {
        for (name, file, expected) in [
            ("alpha", "hello.txt", "I am alpha\n"),
            ("beta", "hello.txt", "I am beta\n"),
            ("gamma", "calm", "still standing\n"),
        ] {
            let path = mountpoint(&dir, name).join(file);
            scope.spawn(move || {
                for _ in 0..200 {
                    assert_eq!(read(path.clone()), expected);
                }
            });
        }
    });

    let status = status_json(&host.control_socket());
    let mounts = status["mounts"].as_array().expect("mounts");
    let names: Vec<&str> = mounts.iter().filter_map(|m| m["name"].as_str()).collect();
    assert_eq!(names, ["alpha", "beta", "gamma"]);
    assert!(status["pid"].as_u64().is_some_and(|pid| pid > 1), "{status}");
    for mount in mounts {
        assert!(mount["requests"]["read"]["requests"].as_u64().unwrap_or(0) >= 1, "{mount}");
        assert_eq!(mount["anomalies"], 0, "{mount}");
        // Held by the kernel, or dropped (other tests drop its caches) and forgotten.
        let counted = mount["inodes_known"].as_u64().unwrap() + mount["forgets"].as_u64().unwrap();
        assert!(counted >= 1, "{mount}");
        assert!(mount["uptime_secs"].as_f64().unwrap() >= 0.0);
    }
    assert_eq!(mounts[2]["plugin"], "panicky");
    assert_eq!(mounts[0]["path"], mountpoint(&dir, "alpha").display().to_string());

    let human = fusehost_with(&["status", "--socket", &socket_of(&host)]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("alpha") && text.contains("requests/errors/not-found"), "{text}");
}

#[test]
fn two_instances_of_one_plugin_keep_their_own_options() {
    let (host, _) = start(&[
        mount("one", "hello", "[mount.options]\ngreeting = \"first\""),
        mount("two", "hello", "read_only = true\n[mount.options]\ngreeting = \"second\"\nrepeat = 2"),
    ]);
    let dir = host.dir.path();
    assert_eq!(read(mountpoint(dir, "one").join("hello.txt")), "first\n");
    assert_eq!(read(mountpoint(dir, "two").join("hello.txt")), "second\n");
    assert_eq!(read(mountpoint(dir, "one").join("name.txt")), "one\n");
    assert_eq!(read(mountpoint(dir, "two").join("name.txt")), "two\n");
    assert!(!mountpoint(dir, "one").join("many.txt").exists());
    assert_eq!(read(mountpoint(dir, "two").join("many.txt")), "second\nsecond\n");
}

#[test]
fn sighup_removes_a_mount_while_a_file_on_another_stays_open_and_readable() {
    let (host, config) =
        start(&[mount("keep", "hello", "[mount.options]\ngreeting = \"kept\""), mount("drop", "hello", "")]);
    let dir = host.dir.path().to_path_buf();
    let mut open_file = std::fs::File::open(mountpoint(&dir, "keep").join("hello.txt")).unwrap();

    write_config(&dir, &[mount("keep", "hello", "[mount.options]\ngreeting = \"kept\"")]);
    assert!(config.is_file());
    host.signal(Signal::HUP);
    assert!(host.wait_for_stderr("reloaded: added [], removed [\"drop\"]"), "{}", host.stderr());

    assert!(!is_mounted(&mountpoint(&dir, "drop")), "the removed mount is gone");
    assert!(is_mounted(&mountpoint(&dir, "keep")));
    let mut text = String::new();
    open_file.seek(SeekFrom::Start(0)).unwrap();
    open_file.read_to_string(&mut text).expect("the open file still reads");
    assert_eq!(text, "kept\n");
}

#[test]
fn sighup_with_a_broken_config_changes_nothing() {
    let (host, config) = start(&[mount("steady", "hello", ""), mount("also", "hello", "")]);
    let dir = host.dir.path().to_path_buf();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[[mount]]\nname = \"broken\"\nplgin = \"hello\"\n");
    std::fs::write(&config, text).unwrap();

    host.signal(Signal::HUP);
    assert!(host.wait_for_stderr("reload refused, nothing changed"), "{}", host.stderr());
    let stderr = host.stderr();
    assert!(stderr.contains(&format!("{}:", config.display())), "names the file: {stderr}");
    assert!(stderr.contains("did you mean `plugin`?"), "{stderr}");
    for name in ["steady", "also"] {
        assert!(is_mounted(&mountpoint(&dir, name)));
        assert_eq!(read(mountpoint(&dir, name).join("hello.txt")), "Hello, world!\n");
    }
    assert!(!mountpoint(&dir, "broken").exists());
}

#[test]
fn the_reload_command_adds_changes_and_reports() {
    let (host, _) =
        start(&[mount("same", "hello", ""), mount("edited", "hello", "[mount.options]\ngreeting = \"before\"")]);
    let dir = host.dir.path().to_path_buf();
    write_config(
        &dir,
        &[
            mount("same", "hello", ""),
            mount("edited", "hello", "[mount.options]\ngreeting = \"after\""),
            mount("new", "hello", "[mount.options]\ngreeting = \"newcomer\""),
        ],
    );
    let output = fusehost_with(&["reload", "--socket", &socket_of(&host)]);
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}{}", stderr_text(&output));
    assert!(report.contains("added: new"), "{report}");
    assert!(report.contains("changed: edited"), "{report}");
    assert!(report.contains("unchanged: same"), "{report}");
    assert_eq!(read(mountpoint(&dir, "edited").join("hello.txt")), "after\n");
    assert_eq!(read(mountpoint(&dir, "new").join("hello.txt")), "newcomer\n");
}

#[test]
fn a_bad_option_on_one_mount_refuses_the_start_before_anything_mounts() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &[mount("fine", "hello", ""), mount("typo", "hello", "[mount.options]\ngretting = \"x\"")],
    );
    let output = fusehost_with(&["run", &config.display().to_string()]);
    let stderr = stderr_text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("mount `typo`"), "{stderr}");
    assert!(stderr.contains("did you mean `greeting`?"), "{stderr}");
    assert!(!is_mounted(&mountpoint(dir.path(), "fine")));
    assert!(!String::from_utf8_lossy(&output.stdout).contains("mounted at"), "nothing came up");
}

#[test]
fn a_mount_that_fails_to_come_up_takes_the_others_down_again() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &[
            mount("first", "hello", ""),
            mount("second", "hello", ""),
            mount("failing", "panicky", "[mount.options]\nfail_new = true"),
        ],
    );
    let output = fusehost_with(&["run", &config.display().to_string()]);
    let stderr = stderr_text(&output);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("mount `failing`") && stderr.contains("asked to fail by fail_new"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("first mounted at"), "the first mounts came up before the failure: {stdout}");
    for name in ["first", "second", "failing"] {
        assert!(!is_mounted(&mountpoint(dir.path(), name)), "{name} was unmounted again");
    }
}

#[test]
fn a_non_empty_mountpoint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[mount("busy", "hello", "")]);
    std::fs::create_dir_all(mountpoint(dir.path(), "busy")).unwrap();
    std::fs::write(mountpoint(dir.path(), "busy").join("precious.txt"), "data").unwrap();
    let output = fusehost_with(&["run", &config.display().to_string()]);
    let stderr = stderr_text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert_eq!(std::fs::read_to_string(mountpoint(dir.path(), "busy").join("precious.txt")).unwrap(), "data");
}

#[test]
fn a_typo_in_the_config_names_its_file_line_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("typo.toml");
    std::fs::write(&config, "[[mount]]\nname = \"x\"\npath = \"mnt\"\nplgin = \"hello\"\n").unwrap();
    for (command, code) in [("run", 2), ("check", 1)] {
        let output = fusehost_with(&[command, &config.display().to_string()]);
        let stderr = stderr_text(&output);
        assert_eq!(output.status.code(), Some(code), "{command}: {stderr}");
        assert!(stderr.contains(&format!("{}:4:1: unknown field `plgin`", config.display())), "{command}: {stderr}");
        assert!(stderr.ends_with("did you mean `plugin`?"), "{command}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

#[test]
fn check_prints_one_line_per_mount_and_fails_on_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_config(dir.path(), &[mount("a", "hello", ""), mount("b", "panicky", "")]);
    let output = fusehost_with(&["check", &good.display().to_string()]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", stderr_text(&output));
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(stdout.lines().all(|line| line.starts_with("ok ")), "{stdout}");

    let bad = write_config(dir.path(), &[mount("a", "hello", ""), mount("b", "nosuch", "")]);
    let output = fusehost_with(&["check", &bad.display().to_string()]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL  b") && stdout.contains("plugin `nosuch` not found"), "{stdout}");
    assert!(!is_mounted(&mountpoint(dir.path(), "a")), "check mounts nothing");
}

#[test]
fn the_reference_config_is_accepted_by_check() {
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/reference.toml");
    let output = fusehost_with(&["check", &reference.display().to_string()]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", stderr_text(&output));
    assert!(stdout.starts_with("ok "), "{stdout}");
}

#[test]
fn plugins_json_describes_every_library_found() {
    let output = fusehost_with(&["plugins", "--json", "--plugin-dir", &target_dir().display().to_string()]);
    assert!(output.status.success(), "{}", stderr_text(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("plugins --json is JSON");
    assert_eq!(report["version"], 1, "{report}");
    let plugins = &report["plugins"];
    let find = |name: &str| {
        plugins.as_array().unwrap().iter().find(|p| p["name"] == name).cloned().unwrap_or_else(|| panic!("{name}"))
    };
    let hello = find("hello");
    assert_eq!(hello["loadable"], true);
    assert_eq!(hello["abi_version"], fusehost_abi::ABI_VERSION);
    assert_eq!(hello["read_only"], true);
    assert_eq!(hello["abi_semantics"], fusehost_abi::SEMANTICS_REVISION);
    assert_eq!(hello["thread_model"], "parallel");
    assert_eq!(hello["panic_unwind"], true);
    let keys: Vec<&str> = hello["options"].as_array().unwrap().iter().filter_map(|o| o["key"].as_str()).collect();
    assert_eq!(keys, ["greeting", "repeat"]);
    assert_eq!(hello["options"][0]["default"], "Hello, world!");

    let stranger = find("not_a_plugin");
    assert_eq!(stranger["loadable"], false);
    assert!(stranger["problem"].as_str().unwrap().contains("is not a fusehost plugin"), "{stranger}");
}

#[test]
fn sigterm_unmounts_every_mount_and_detaches_a_busy_one_lazily() {
    let (mut host, _) = start(&[mount("idle", "hello", ""), mount("busy", "hello", "")]);
    let dir = host.dir.path().to_path_buf();
    let held_open = std::fs::File::open(mountpoint(&dir, "busy")).unwrap();

    host.signal(Signal::TERM);
    // The busy mount is gone from the namespace at once, and served until its file closes.
    assert!(host.wait_for_stderr("waiting up to 30s for files still open on busy"), "{}", host.stderr());
    for name in ["idle", "busy"] {
        assert!(!is_mounted(&mountpoint(&dir, name)), "{name}");
    }
    drop(held_open);
    let status = host.wait_exit(std::time::Duration::from_secs(15)).expect("fusehost exits once the file closed");
    assert_eq!(status.code(), Some(0), "{}", host.stderr());
    let stderr = host.stderr();
    assert!(stderr.contains("detaching it lazily"), "{stderr}");
    assert!(stderr.contains("unmounted") && stderr.contains("mount=idle"), "{stderr}");
    assert!(stderr.contains("last open file closed"), "{stderr}");
    assert!(!dir.join("control.sock").exists(), "the control socket is removed");
}

#[test]
fn two_memfs_mounts_of_one_host_do_not_share_state() {
    let (host, _) = start(&[mount("left", "memfs", ""), mount("right", "memfs", "")]);
    let dir = host.dir.path().to_path_buf();
    std::fs::write(mountpoint(&dir, "left").join("only-left"), "L").unwrap();
    std::fs::create_dir(mountpoint(&dir, "right").join("only-right")).unwrap();
    assert!(!mountpoint(&dir, "right").join("only-left").exists());
    assert!(!mountpoint(&dir, "left").join("only-right").exists());
    assert_eq!(read(mountpoint(&dir, "left").join("only-left")), "L");
    let status = status_json(&host.control_socket());
    let plugins: Vec<&str> = status["mounts"].as_array().unwrap().iter().filter_map(|m| m["plugin"].as_str()).collect();
    assert_eq!(plugins, ["memfs", "memfs"]);
}

#[test]
fn a_config_without_mounts_is_refused_by_check_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[]);
    let path = config.display().to_string();
    for command in ["check", "run"] {
        let output = fusehost_with(&[command, &path]);
        assert!(!output.status.success(), "{command} refuses it");
        let stderr = stderr_text(&output);
        assert!(stderr.contains(&format!("{path}:1:1: no [[mount]] in this config")), "{command}: {stderr}");
    }
}

#[test]
fn a_control_socket_path_naming_a_regular_file_is_refused_and_the_file_kept() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[mount("one", "hello", "")]);
    let precious = dir.path().join("control.sock");
    std::fs::write(&precious, "not a socket").unwrap();
    let output = fusehost_with(&["run", &config.display().to_string()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr_text(&output));
    let stderr = stderr_text(&output);
    assert!(stderr.contains("is an existing file that is not a socket"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "not a socket");
    assert!(!is_mounted(&mountpoint(dir.path(), "one")), "nothing was mounted");
}

#[test]
fn without_a_config_argument_the_default_file_and_its_drop_ins_are_read() {
    let system_default = Path::new("/etc/fusehost/mounts.toml");
    if !system_default.exists() {
        let output = fusehost_with(&["check"]);
        assert!(!output.status.success());
        let stderr = stderr_text(&output);
        assert!(stderr.contains("/etc/fusehost/mounts.toml: there is no config file here"), "{stderr}");
    }

    // Another user's default is $XDG_CONFIG_HOME/fusehost/mounts.toml.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let config_dir = dir.path().join("fusehost");
    std::fs::create_dir_all(config_dir.join("mounts.d")).unwrap();
    let plugins = target_dir().display().to_string();
    let mount = |name: &str| {
        format!("[[mount]]\nname = \"{name}\"\npath = \"../mnt/{name}\"\nplugin = \"hello\"\ncreate = true\n")
    };
    std::fs::write(config_dir.join("mounts.toml"), format!("[host]\nplugin_dir = {plugins:?}\n{}", mount("main")))
        .unwrap();
    std::fs::write(config_dir.join("mounts.d/10-package.toml"), mount("added")).unwrap();
    std::fs::write(config_dir.join("mounts.d/20-broken.toml~"), "not toml at all [[").unwrap();
    let mut command = std::process::Command::new("runuser");
    command.args(["-u", "tests", "--", "env"]).arg(format!("XDG_CONFIG_HOME={}", dir.path().display()));
    command.arg(fusehost_tests::fusehost_bin()).arg("check");
    let output = run_to_end(command);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", stderr_text(&output));
    assert!(stdout.contains("ok    main") && stdout.contains("ok    added"), "{stdout}");
    // Relative paths of a drop-in resolve against the drop-in's own folder.
    assert!(stdout.contains(&format!("at {}", config_dir.join("mnt/added").display())), "{stdout}");
}
