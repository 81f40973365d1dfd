//! Support for the real-mount integration tests in `tests/tests/`.
//!
//! Each test starts the real `fusehost` binary (built by `cargo build --workspace`) on a
//! mountpoint inside its own temporary folder and uses the mount with `std::fs`. A
//! [`Host`] guard kills the process and lazily unmounts the mountpoint when dropped, so
//! a failing test leaves nothing mounted; every wait is bounded by a timeout.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};
use tempfile::TempDir;
use wait_timeout::ChildExt;

pub mod garage;

/// How long anything may take to happen before a test gives up.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// `target/<profile>`, where cargo put the binary and the plugins this test was built
/// with (the test runs as `target/<profile>/deps/<name>-<hash>`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    exe.parent().and_then(Path::parent).expect("tests run from target/<profile>/deps").to_path_buf()
}

fn built(file_name: &str) -> PathBuf {
    let path = target_dir().join(file_name);
    assert!(path.is_file(), "{} is missing: build the workspace first (`cargo build --workspace`)", path.display());
    path
}

/// The `fusehost` binary.
pub fn fusehost_bin() -> PathBuf {
    built("fusehost")
}

/// A plugin library built in this workspace, by plugin name.
pub fn plugin_path(name: &str) -> PathBuf {
    built(&format!("libfusehost_{name}.so"))
}

/// A `fusehost` command that finds this workspace's plugins and logs without colour.
pub fn fusehost() -> Command {
    for_fusehost(Command::new(fusehost_bin()))
}

/// [`fusehost`] started by `launcher`, a program that runs the command named after its
/// own arguments (`prlimit --nofile=256: --`).
pub fn fusehost_through(launcher: &str, arguments: &[&str]) -> Command {
    let mut command = Command::new(launcher);
    command.args(arguments).arg(fusehost_bin());
    for_fusehost(command)
}

fn for_fusehost(mut command: Command) -> Command {
    command.env_remove("RUST_LOG").env_remove("FUSEHOST_PLUGIN_PATH").env("NO_COLOR", "1");
    command
}

/// Every mountpoint right now.
fn mountpoints() -> Vec<PathBuf> {
    fusehost::mount_table::mounts().into_iter().map(|mount| mount.mountpoint).collect()
}

/// Whether `path` is a mountpoint right now.
pub fn is_mounted(path: &Path) -> bool {
    let wanted = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    mountpoints().contains(&wanted)
}

/// A tmpfs of the test's own (a passthrough source), unmounted when dropped.
pub struct Tmpfs {
    pub dir: TempDir,
}

impl Tmpfs {
    pub fn new() -> Tmpfs {
        let dir = tempfile::tempdir().expect("a temporary folder");
        rustix::mount::mount("fusehost-test", dir.path(), "tmpfs", rustix::mount::MountFlags::empty(), None)
            .expect("mounting a tmpfs (tests run as root)");
        Tmpfs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for Tmpfs {
    fn default() -> Self {
        Tmpfs::new()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(self.dir.path(), rustix::mount::UnmountFlags::DETACH);
    }
}

/// One `[[mount]]` of a test config: name, plugin, and extra TOML lines.
pub struct MountLines<'a> {
    pub name: &'a str,
    pub plugin: &'a str,
    pub extra: &'a str,
}

pub fn mount_lines<'a>(name: &'a str, plugin: &'a str, extra: &'a str) -> MountLines<'a> {
    MountLines { name, plugin, extra }
}

/// Writes `dir/mounts.toml`: plugins from this build, the control socket at
/// `dir/control.sock`, and each mountpoint at `dir/mnt/NAME` (created on demand).
pub fn write_config(dir: &Path, mounts: &[MountLines<'_>]) -> PathBuf {
    let mut text =
        format!("[host]\nplugin_dir = {:?}\ncontrol_socket = \"control.sock\"\n", target_dir().display().to_string());
    for mount in mounts {
        text.push_str(&format!(
            "\n[[mount]]\nname = \"{0}\"\npath = \"mnt/{0}\"\nplugin = \"{1}\"\ncreate = true\n{2}\n",
            mount.name, mount.plugin, mount.extra
        ));
    }
    let file = dir.join("mounts.toml");
    std::fs::write(&file, text).expect("writing the test config");
    file
}

/// Where [`write_config`] puts mount `name`.
pub fn config_mountpoint(dir: &Path, name: &str) -> PathBuf {
    dir.join("mnt").join(name)
}

/// `fusehost status --json` of the host serving `socket`.
pub fn status_json(socket: &Path) -> serde_json::Value {
    let mut command = fusehost();
    command.arg("status").arg("--json").arg("--socket").arg(socket);
    let output = run_to_end(command);
    assert!(output.status.success(), "status failed: {}", stderr_text(&output));
    serde_json::from_slice(&output.stdout).expect("status --json is JSON")
}

/// The program `name` on `PATH` or in `~/.cargo/bin`, or `None` (after saying why and
/// how to install it) when it is missing outside CI; under `CI` a missing tool fails
/// the test, since `.ci/run` installs it.
pub fn tool(name: &str, install: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|path| std::env::split_paths(&path).collect()).unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    let found = dirs.into_iter().map(|dir| dir.join(name)).find(|path| path.is_file());
    if found.is_none() {
        let message = format!("{name} is not installed: {install}");
        assert!(std::env::var_os("CI").is_none(), "{message}");
        eprintln!("SKIPPED: {message}");
    }
    found
}

/// Text a child writes to stderr, gathered as it arrives; waiters are woken per line
/// and when the stream closes.
#[derive(Default)]
struct Transcript {
    text: Mutex<(String, bool)>,
    grew: Condvar,
}

fn collect_stderr(stream: impl Read + Send + 'static) -> Arc<Transcript> {
    let transcript = Arc::new(Transcript::default());
    let writer = Arc::clone(&transcript);
    thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let mut text = writer.text.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            text.0.push_str(&line);
            text.0.push('\n');
            writer.grew.notify_all();
        }
        writer.text.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).1 = true;
        writer.grew.notify_all();
    });
    transcript
}

/// A running `fusehost` process and the mountpoint(s) it owns. Dropping it kills the
/// process and detaches any mount it left.
pub struct Host {
    child: Child,
    stderr: Arc<Transcript>,
    stdout: Receiver<String>,
    /// Mountpoints to detach on drop.
    pub mountpoints: Vec<PathBuf>,
    /// The test's own folder; the mountpoint is `dir/mnt`.
    pub dir: TempDir,
}

impl Host {
    /// Runs `fusehost mount PLUGIN DIR/mnt -o OPTIONS` and waits until it is mounted.
    pub fn mount(plugin: &str, options: &[&str]) -> Host {
        Host::mount_with(fusehost(), plugin, options)
    }

    /// [`Host::mount`] with `command` (from [`fusehost`] or [`fusehost_through`]).
    pub fn mount_with(mut command: Command, plugin: &str, options: &[&str]) -> Host {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mountpoint = dir.path().join("mnt");
        std::fs::create_dir(&mountpoint).expect("the mountpoint folder");
        command.arg("mount").arg(plugin).arg(&mountpoint).arg("--plugin-dir").arg(target_dir());
        for option in options {
            command.arg("-o").arg(option);
        }
        let mut host = Host::spawn(command, dir, vec![mountpoint]);
        host.wait_until_mounted();
        host
    }

    /// Writes a config for `mounts` into a new folder, runs it, and waits until
    /// every mount is up.
    pub fn run_mounts(mounts: &[MountLines<'_>]) -> Host {
        Host::run_mounts_with(fusehost(), mounts)
    }

    /// [`Host::run_mounts`] with `command` (from [`fusehost`] or [`fusehost_through`]).
    pub fn run_mounts_with(command: Command, mounts: &[MountLines<'_>]) -> Host {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let config = write_config(dir.path(), mounts);
        let points = mounts.iter().map(|mount| config_mountpoint(dir.path(), mount.name)).collect();
        Host::run_config_with(command, &config, dir, points)
    }

    /// The control socket of a host started by [`Host::run_mounts`].
    pub fn control_socket(&self) -> PathBuf {
        self.dir.path().join("control.sock")
    }

    /// Runs `fusehost run CONFIG` and waits until every one of `mountpoints` is mounted.
    pub fn run_config(config: &Path, dir: TempDir, mountpoints: Vec<PathBuf>) -> Host {
        Host::run_config_with(fusehost(), config, dir, mountpoints)
    }

    /// [`Host::run_config`] with `command` (from [`fusehost`] or [`fusehost_through`]).
    pub fn run_config_with(mut command: Command, config: &Path, dir: TempDir, mountpoints: Vec<PathBuf>) -> Host {
        command.arg("run").arg(config);
        let mut host = Host::spawn(command, dir, mountpoints);
        host.wait_until_mounted();
        host
    }

    /// Starts `command` with piped output; `mountpoints` are detached on drop.
    pub fn spawn(mut command: Command, dir: TempDir, mountpoints: Vec<PathBuf>) -> Host {
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("fusehost starts");
        let stderr = collect_stderr(child.stderr.take().expect("piped stderr"));
        let stdout_pipe = child.stdout.take().expect("piped stdout");
        let (lines, stdout) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout_pipe).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        Host { child, stderr, stdout, mountpoints, dir }
    }

    /// The (first) mountpoint.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoints[0]
    }

    /// A path inside the (first) mountpoint.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.mountpoint().join(relative)
    }

    /// Waits for the readiness line of every mountpoint on stdout.
    pub fn wait_until_mounted(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        let mut waiting: Vec<PathBuf> = self.mountpoints.clone();
        while !waiting.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => waiting.retain(|path| !line.ends_with(&format!("mounted at {}", path.display()))),
                Err(RecvTimeoutError::Timeout) => panic!("not mounted within {TIMEOUT:?}; stderr:\n{}", self.stderr()),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("fusehost exited before mounting; stderr:\n{}", self.stderr())
                }
            }
        }
        for path in &self.mountpoints {
            assert!(is_mounted(path), "{} announced but not in mountinfo", path.display());
        }
    }

    /// Waits for the next stdout line containing `needle` (lines before it are
    /// dropped); `None` when none comes within [`TIMEOUT`].
    pub fn wait_for_stdout(&self, needle: &str) -> Option<String> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.stdout.recv_timeout(left).ok()?;
            if line.contains(needle) {
                return Some(line);
            }
        }
    }

    /// Everything the process wrote to stderr so far (after [`Host::wait_exit`]: all
    /// of it).
    pub fn stderr(&self) -> String {
        self.stderr.text.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).0.clone()
    }

    /// Waits until stderr contains `needle`; returns whether it did within [`TIMEOUT`].
    pub fn wait_for_stderr(&self, needle: &str) -> bool {
        let text = self.stderr.text.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (text, _) = self
            .stderr
            .grew
            .wait_timeout_while(text, TIMEOUT, |text| !text.0.contains(needle) && !text.1)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        text.0.contains(needle)
    }

    /// Waits (bounded) until the process's stderr is closed: everything it wrote is in.
    fn wait_stderr_closed(&self) {
        let text = self.stderr.text.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = self.stderr.grew.wait_timeout_while(text, TIMEOUT, |text| !text.1);
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_child(&self.child);
        kill_process(pid, signal).expect("fusehost can be signalled");
    }

    /// Waits up to `timeout` for the process to exit, and then for the last of its
    /// output, so that [`Host::stderr`] is complete when this returns `Some`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = self.child.wait_timeout(timeout).expect("waiting for fusehost")?;
        self.wait_stderr_closed();
        Some(status)
    }

    /// The process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Host {
    /// Stops the host (SIGTERM, then SIGKILL after a grace period) and detaches
    /// whatever is still mounted at its mountpoints or anywhere inside its folder,
    /// including mounts a reload added.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(Signal::TERM);
            if !matches!(self.child.wait_timeout(Duration::from_secs(5)), Ok(Some(_))) {
                let _ = self.child.kill();
                let _ = self.child.wait_timeout(TIMEOUT);
            }
        }
        let own_folder = self.dir.path().canonicalize().unwrap_or_else(|_| self.dir.path().to_path_buf());
        for path in mountpoints() {
            let ours = path.starts_with(&own_folder) || self.mountpoints.iter().any(|listed| listed == &path);
            if ours {
                let _ = rustix::mount::unmount(&path, rustix::mount::UnmountFlags::DETACH);
            }
        }
    }
}

/// Runs a `fusehost` command that is expected to finish, bounded by [`TIMEOUT`].
pub fn run_to_end(command: Command) -> Output {
    run_within(command, TIMEOUT)
}

/// Runs any command to its end with piped output; kills it and fails the test when it
/// runs over `limit`.
pub fn run_within(mut command: Command, limit: Duration) -> Output {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("the command starts");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stdout.read_to_end(&mut text);
        text
    });
    let err = thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        text
    });
    let status = match child.wait_timeout(limit).expect("waiting for the command") {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {limit:?}");
        }
    };
    Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() }
}

/// Runs `operation` on a thread of its own and waits up to [`TIMEOUT`] for it: a
/// caller stuck on an unanswered FUSE request cannot be killed, so a test never makes
/// one itself. `None` when it did not finish in time (the thread is left behind; the
/// host's guard ends the stuck request when it stops the host).
pub fn in_background<T: Send + 'static>(operation: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (done, result) = channel();
    thread::spawn(move || {
        let _ = done.send(operation());
    });
    result.recv_timeout(TIMEOUT).ok()
}

/// The process's stderr as text, without surrounding blank lines.
pub fn stderr_text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_owned()
}

/// How long a cargo build a test starts may take (fixtures build from scratch on CI).
pub const CARGO_TIMEOUT: Duration = Duration::from_secs(900);

/// Runs `cargo ARGS` in `dir` with its target folder at `target`, bounded by
/// [`CARGO_TIMEOUT`]; panics with cargo's output unless it succeeds, else returns it.
/// Builds keep line tables only, as the workspace's dependencies do: what the tests
/// build needs no debugger, and full debug info would take a gigabyte more of disk.
pub fn cargo(dir: &Path, args: &[&str], target: &Path) -> String {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let log = tempfile::NamedTempFile::new().expect("a log file");
    let mut child = Command::new(cargo)
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .env("CARGO_PROFILE_DEV_DEBUG", "line-tables-only")
        .stdin(Stdio::null())
        .stdout(log.reopen().expect("the log file"))
        .stderr(log.reopen().expect("the log file"))
        .spawn()
        .expect("cargo runs");
    let status = child.wait_timeout(CARGO_TIMEOUT).expect("waiting for cargo").unwrap_or_else(|| {
        let _ = child.kill();
        panic!("cargo {args:?} in {} took over {CARGO_TIMEOUT:?}", dir.display())
    });
    let output = std::fs::read_to_string(log.path()).unwrap_or_default();
    assert!(status.success(), "cargo {args:?} in {} failed:\n{output}", dir.display());
    output
}

/// Unmounts whatever is still mounted at these paths when dropped (a failed test).
pub struct Unmounted(pub Vec<PathBuf>);

impl Drop for Unmounted {
    fn drop(&mut self) {
        for path in &self.0 {
            if is_mounted(path) {
                let _ = rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH);
            }
        }
    }
}

/// Waits (bounded) until no process serves `mountpoint` any more.
pub fn daemon_gone(mountpoint: &Path) -> bool {
    let needle = mountpoint.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let serving = std::fs::read_dir("/proc").unwrap().filter_map(Result::ok).any(|entry| {
            std::fs::read(entry.path().join("cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(&needle))
        });
        if !serving {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
