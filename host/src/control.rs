//! The control socket of a running host: `fusehost status` and `fusehost reload` talk
//! to it.
//!
//! A Unix stream socket, mode 0600 (only the host's user may talk to it). The protocol
//! is one line each way: the client sends a command (`status` or `reload`), the host
//! answers with one line of JSON. The path comes from `[host] control_socket`, else
//! `$XDG_RUNTIME_DIR/fusehost.sock`, else `/run/fusehost/fusehost.sock`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

use crate::error::HostError;

/// How long either side waits for the other.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The socket path when the config names none.
pub fn default_socket_path() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("fusehost.sock"),
        None => PathBuf::from("/run/fusehost/fusehost.sock"),
    }
}

/// What a client asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Status,
    Reload,
}

/// One client's question, with where to send the answer (one line of JSON).
pub struct Request {
    pub command: Command,
    pub reply: Sender<String>,
}

/// A bound control socket; the file is removed when this is dropped.
pub struct ControlSocket {
    path: PathBuf,
    listener: Option<UnixListener>,
}

impl ControlSocket {
    /// Binds `path` with mode 0600, refusing when another host answers there and
    /// clearing a stale socket left by one that died.
    pub fn bind(path: &Path) -> Result<ControlSocket, HostError> {
        let io = |context: String| move |source| HostError::Io { context, source };
        if let Some(folder) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(folder)
                .map_err(io(format!("creating {}", folder.display())))?;
        }
        if let Ok(found) = std::fs::symlink_metadata(path) {
            if !found.file_type().is_socket() {
                return Err(HostError::Usage(format!(
                    "control_socket {} is an existing file that is not a socket: fusehost will not remove it; \
                     point [host] control_socket at a free path",
                    path.display()
                )));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(HostError::Usage(format!(
                    "another fusehost is running with control socket {}: stop it, or set [host] control_socket",
                    path.display()
                )));
            }
            std::fs::remove_file(path).map_err(io(format!("removing the stale socket {}", path.display())))?;
        }
        let listener = UnixListener::bind(path).map_err(io(format!("binding {}", path.display())))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(io(format!("restricting {}", path.display())))?;
        Ok(ControlSocket { path: path.to_path_buf(), listener: Some(listener) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answers clients on a thread of its own, handing each request to `deliver`.
    pub fn serve(&mut self, deliver: impl Fn(Request) -> bool + Send + 'static) -> std::io::Result<()> {
        let Some(listener) = self.listener.take() else { return Ok(()) };
        std::thread::Builder::new().name("control".to_owned()).spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                if !answer(stream, &deliver) {
                    break;
                }
            }
        })?;
        Ok(())
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serves one connection; returns `false` when the host no longer takes requests.
fn answer(stream: UnixStream, deliver: &impl Fn(Request) -> bool) -> bool {
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    let _ = stream.set_write_timeout(Some(TIMEOUT));
    let mut line = String::new();
    if BufReader::new(&stream).read_line(&mut line).is_err() {
        return true;
    }
    let command = match line.trim() {
        "status" => Command::Status,
        "reload" => Command::Reload,
        other => {
            let refusal = serde_json::json!({ "error": format!("unknown command {other:?}: use status or reload") });
            let _ = writeln!(&stream, "{refusal}");
            return true;
        }
    };
    let (reply, answer) = channel();
    if !deliver(Request { command, reply }) {
        return false;
    }
    // A reload may remount several filesystems: give it the unmount timeouts too.
    if let Ok(text) = answer.recv_timeout(TIMEOUT * 3) {
        let _ = writeln!(&stream, "{text}");
    }
    true
}

/// Sends `command` to the host at `path` and returns its one-line answer.
pub fn ask(path: &Path, command: &str) -> Result<String, HostError> {
    let io = |context: String| move |source| HostError::Io { context, source };
    let stream = UnixStream::connect(path).map_err(|source| HostError::Io {
        context: format!("no fusehost answers at {} (is it running? pass --socket or --config)", path.display()),
        source,
    })?;
    stream.set_read_timeout(Some(TIMEOUT * 4)).map_err(io("setting a timeout".into()))?;
    writeln!(&stream, "{command}").map_err(io(format!("writing to {}", path.display())))?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).map_err(io(format!("reading from {}", path.display())))?;
    if answer.is_empty() {
        return Err(HostError::Io {
            context: format!("the host at {} closed the connection without answering", path.display()),
            source: std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
        });
    }
    Ok(answer.trim_end().to_owned())
}
