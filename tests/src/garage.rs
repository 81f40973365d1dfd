//! A real Garage object store (a distributed S3-compatible server) for the objectstore
//! tests: one node on loopback ports of its own, in a temporary folder, with a bucket
//! and an access key made through Garage's own CLI. Killed when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};
use tempfile::TempDir;

use crate::{run_within, tool};

/// How Garage is installed, for the message when it is missing.
pub const INSTALL: &str =
    "cargo install garage --version 2.5.0 --locked --no-default-features --features bundled-libs,lmdb,sqlite";

/// How long Garage may take to start answering.
const STARTUP: Duration = Duration::from_secs(60);

/// A running single-node Garage.
pub struct Garage {
    binary: PathBuf,
    dir: TempDir,
    child: Option<Child>,
    s3_port: u16,
    pub key_id: String,
    pub secret: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).map(|address| address.port()).unwrap()
}

impl Garage {
    /// Starts Garage with a bucket named `bucket` and a key allowed to use it; `None`
    /// (the test is skipped, or fails under CI) when Garage is not installed.
    pub fn start(bucket: &str) -> Option<Garage> {
        let binary = tool("garage", INSTALL)?;
        let dir = tempfile::tempdir().unwrap();
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let secret: String = (0..32).map(|i| format!("{:02x}", (i * 37 + rpc as usize) % 256)).collect();
        let config = format!(
            "metadata_dir = \"{0}/meta\"\ndata_dir = \"{0}/data\"\ndb_engine = \"sqlite\"\nreplication_factor = 1\n\
             rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\n\
             [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\nroot_domain = \".s3.localhost\"\n\n\
             [admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\n",
            dir.path().display()
        );
        std::fs::write(dir.path().join("garage.toml"), config).unwrap();
        let mut garage = Garage { binary, dir, child: None, s3_port: s3, key_id: String::new(), secret: String::new() };
        garage.run_server();
        let node = garage.cli(&["node", "id", "-q"]);
        let node = node.trim().split('@').next().unwrap_or_default().to_owned();
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        garage.cli(&["layout", "apply", "--version", "1"]);
        garage.cli(&["bucket", "create", bucket]);
        let key = garage.cli(&["key", "create", "fusehost-tests"]);
        let field = |name: &str| {
            key.lines()
                .find_map(|line| line.strip_prefix(name))
                .map(|value| value.trim().to_owned())
                .unwrap_or_default()
        };
        garage.key_id = field("Key ID:");
        garage.secret = field("Secret key:");
        assert!(!garage.key_id.is_empty() && !garage.secret.is_empty(), "no key in:\n{key}");
        garage.cli(&["bucket", "allow", "--read", "--write", "--owner", bucket, "--key", "fusehost-tests"]);
        Some(garage)
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("garage.toml")
    }

    /// Runs one Garage CLI command against this node; its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new(&self.binary);
        command.arg("-c").arg(self.config()).args(args);
        let output = run_within(command, STARTUP);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "garage {args:?}: {text}{}", String::from_utf8_lossy(&output.stderr));
        text
    }

    /// Starts the server process and waits until its S3 port and its RPC answer.
    fn run_server(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(self.config())
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("garage starts");
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP;
        loop {
            let s3_up = TcpStream::connect(("127.0.0.1", self.s3_port)).is_ok();
            let mut status = Command::new(&self.binary);
            status.arg("-c").arg(self.config()).arg("status");
            if s3_up && run_within(status, STARTUP).status.success() {
                return;
            }
            assert!(Instant::now() < deadline, "garage did not start within {STARTUP:?}: {}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn pid(&self) -> Pid {
        let child = self.child.as_ref().expect("garage runs");
        Pid::from_raw(child.id() as i32).expect("a pid")
    }

    /// Kills the server: the store is down.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same data and ports.
    pub fn restart(&mut self) {
        self.stop();
        self.run_server();
    }

    /// Freezes the server (SIGSTOP): connections open, nothing answers.
    pub fn freeze(&self) {
        let _ = kill_process(self.pid(), Signal::STOP);
    }

    /// Lets a frozen server go on.
    pub fn thaw(&self) {
        let _ = kill_process(self.pid(), Signal::CONT);
    }

    /// The `[mount.options]` lines of a mount of `bucket` on this server.
    pub fn mount_options(&self, bucket: &str, extra: &str) -> String {
        format!(
            "[mount.options]\nbucket = \"{bucket}\"\nendpoint = \"{}\"\nregion = \"garage\"\n{extra}\n",
            self.endpoint()
        )
    }

    /// The environment that gives a process this server's key.
    pub fn credentials(&self) -> [(&'static str, String); 2] {
        [("AWS_ACCESS_KEY_ID", self.key_id.clone()), ("AWS_SECRET_ACCESS_KEY", self.secret.clone())]
    }

    /// The folder Garage lives in (for files a test wants next to it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.thaw();
        }
        self.stop();
    }
}
