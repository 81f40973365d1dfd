//! fusehost under a service manager: `sd_notify` messages on a real `NOTIFY_SOCKET`
//! datagram listener, the shipped unit's command line, and logs for journald
//! (`JOURNAL_STREAM`) and for log shippers (`--log-format json`).

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use fusehost_tests::{fusehost, fusehost_bin, is_mounted, mount_lines, run_to_end, write_config, Host};
use rustix::process::Signal;

/// A service manager's notification socket: the messages fusehost sends, one
/// datagram each.
struct NotifyListener {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl NotifyListener {
    fn new() -> NotifyListener {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        NotifyListener { socket, _dir: dir, path }
    }

    /// The next message (bounded wait).
    fn next(&self) -> String {
        let mut buffer = [0u8; 4096];
        let count = self.socket.recv(&mut buffer).expect("a notification within 30 s");
        String::from_utf8_lossy(&buffer[..count]).into_owned()
    }
}

/// `ExecStart=` of the shipped `fusehost@.service`, with this build's binary and
/// `config` for `/etc/fusehost/%i.toml`.
fn unit_command(config: &Path) -> Command {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/systemd/fusehost@.service");
    let text = std::fs::read_to_string(unit).unwrap();
    let line = text.lines().find_map(|line| line.strip_prefix("ExecStart=")).expect("the unit has ExecStart=");
    let words: Vec<String> = line
        .split_whitespace()
        .map(|word| match word {
            "/usr/bin/fusehost" => fusehost_bin().display().to_string(),
            "/etc/fusehost/%i.toml" => config.display().to_string(),
            other => other.to_owned(),
        })
        .collect();
    let mut command = Command::new(&words[0]);
    command.args(&words[1..]);
    command
}

#[test]
fn the_unit_command_tells_its_manager_ready_reloading_and_stopping() {
    let listener = NotifyListener::new();
    let dir = tempfile::tempdir().unwrap();
    let mounts = [mount_lines("one", "hello", ""), mount_lines("two", "memfs", "")];
    let config = write_config(dir.path(), &mounts);
    let points: Vec<_> =
        ["one", "two"].iter().map(|name| fusehost_tests::config_mountpoint(dir.path(), name)).collect();
    let mut command = unit_command(&config);
    command.env("NOTIFY_SOCKET", &listener.path);
    let mut host = Host::spawn(command, dir, points.clone());

    let ready = listener.next();
    assert!(ready.lines().any(|line| line == "READY=1"), "{ready}");
    assert!(ready.contains("STATUS=serving 2 mounts"), "{ready}");
    assert!(points.iter().all(|point| is_mounted(point)), "READY=1 only once every mount is up");

    host.signal(Signal::HUP);
    let reloading = listener.next();
    assert!(reloading.lines().any(|line| line == "RELOADING=1"), "{reloading}");
    assert!(reloading.contains("MONOTONIC_USEC="), "notify-reload needs the time: {reloading}");
    let reloaded = listener.next();
    assert!(reloaded.lines().any(|line| line == "READY=1"), "{reloaded}");

    // A config the plugin refuses: `fusehost reload` (the unit's ExecReload) fails, the
    // status says so, and the mounts keep serving.
    let refused_config =
        [mount_lines("one", "hello", "[mount.options]\ngretting = \"typo\""), mount_lines("two", "memfs", "")];
    write_config(host.dir.path(), &refused_config);
    let mut reload = fusehost();
    reload.arg("reload").arg("--config").arg(&config);
    let output = run_to_end(reload);
    assert_eq!(output.status.code(), Some(1), "systemctl reload would fail visibly");
    assert!(listener.next().contains("RELOADING=1"));
    let refused = listener.next();
    assert!(refused.contains("READY=1") && refused.contains("the last reload was refused"), "{refused}");

    host.signal(Signal::TERM);
    let stopping = listener.next();
    assert!(stopping.lines().any(|line| line == "STOPPING=1"), "{stopping}");
    let status = host.wait_exit(Duration::from_secs(30)).expect("fusehost stops");
    assert!(status.success(), "{}", host.stderr());
}

#[test]
fn a_single_mount_is_ready_once_mounted() {
    let listener = NotifyListener::new();
    let dir = tempfile::tempdir().unwrap();
    let mountpoint = dir.path().join("mnt");
    std::fs::create_dir(&mountpoint).unwrap();
    let mut command = fusehost();
    command.arg("mount").arg("hello").arg(&mountpoint).env("NOTIFY_SOCKET", &listener.path);
    let mut host = Host::spawn(command, tempfile::tempdir().unwrap(), vec![mountpoint.clone()]);
    let ready = listener.next();
    assert!(ready.contains("READY=1") && ready.contains("STATUS=serving 1 mount"), "{ready}");
    assert!(is_mounted(&mountpoint));
    host.signal(Signal::TERM);
    assert!(listener.next().contains("STOPPING=1"));
    assert!(host.wait_exit(Duration::from_secs(30)).is_some_and(|status| status.success()));
}

/// Runs `fusehost mount hello` with `configure` applied, until its plugin has logged,
/// then stops it; its whole stderr, which went through `stderr`.
fn logs_of_a_hello_mount(configure: impl FnOnce(&mut Command)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mountpoint = dir.path().join("mnt");
    std::fs::create_dir(&mountpoint).unwrap();
    let mut command = fusehost();
    command.arg("mount").arg("hello").arg(&mountpoint);
    configure(&mut command);
    let mut host = Host::spawn(command, tempfile::tempdir().unwrap(), vec![mountpoint]);
    host.wait_until_mounted();
    host.signal(Signal::TERM);
    assert!(host.wait_exit(Duration::from_secs(30)).is_some_and(|status| status.success()));
    host.stderr()
}

#[test]
fn on_the_journal_lines_carry_priorities_and_no_timestamps() {
    // The journal is recognised by its stream's device and inode in $JOURNAL_STREAM, as
    // systemd sets it: here a pipe of the test's own, whose identity we know.
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    let stat = rustix::fs::fstat(&writer).unwrap();
    #[allow(clippy::unnecessary_cast)]
    let stream = format!("{}:{}", stat.st_dev as u64, stat.st_ino as u64);
    let dir = tempfile::tempdir().unwrap();
    let mountpoint = dir.path().join("mnt");
    std::fs::create_dir(&mountpoint).unwrap();
    let mut child = fusehost()
        .arg("mount")
        .arg("hello")
        .arg(&mountpoint)
        .env("JOURNAL_STREAM", &stream)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(writer))
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut ready).unwrap();
    assert!(ready.contains("mounted at"), "{ready}");
    rustix::process::kill_process(rustix::process::Pid::from_child(&child), Signal::TERM).unwrap();
    assert!(child.wait().unwrap().success());
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(reader), &mut text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.iter().any(|line| line.starts_with("<6>") && line.contains("mount{mount=hello}")), "{text}");
    assert!(lines.iter().all(|line| line.starts_with('<') && !line.contains("Z ")), "no timestamps:\n{text}");
}

#[test]
fn json_logs_are_one_object_per_line_naming_the_mount() {
    let text = logs_of_a_hello_mount(|command| {
        command.args(["--log-format", "json"]);
    });
    let events: Vec<serde_json::Value> =
        text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"))).collect();
    let plugin_line = events
        .iter()
        .find(|event| event["target"] == "plugin")
        .unwrap_or_else(|| panic!("the plugin's line is there:\n{text}"));
    assert_eq!(plugin_line["span"]["mount"], "hello", "{plugin_line}");
    assert!(events.iter().all(|event| event["level"].is_string() && event["fields"]["message"].is_string()));
}

#[test]
fn the_shipped_units_say_what_they_run() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/systemd");
    for unit in ["fusehost@.service", "fusehost-user@.service"] {
        let text = std::fs::read_to_string(dir.join(unit)).unwrap();
        for needed in [
            "Type=notify",
            "ExecStart=/usr/bin/fusehost run ",
            "ExecReload=/usr/bin/fusehost reload --config ",
            "Restart=on-failure",
        ] {
            assert!(text.contains(needed), "{unit} lacks {needed}");
        }
    }
    // systemd's own check, where systemd is installed.
    if let Ok(output) = Command::new("systemd-analyze").arg("--version").output() {
        if output.status.success() {
            let copy = tempfile::tempdir().unwrap();
            let unit = copy.path().join("fusehost@check.service");
            let text = std::fs::read_to_string(dir.join("fusehost@.service")).unwrap();
            std::fs::write(&unit, text.replace("/usr/bin/fusehost", &fusehost_bin().display().to_string())).unwrap();
            // The man pages the units name come with the package, not with this build.
            let verify = Command::new("systemd-analyze").arg("verify").arg("--man=no").arg(&unit).output().unwrap();
            let complaints = String::from_utf8_lossy(&verify.stderr);
            assert!(verify.status.success() && complaints.trim().is_empty(), "{complaints}");
        }
    }
}
