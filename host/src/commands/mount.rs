//! `fusehost mount PLUGIN [SOURCE] MOUNTPOINT [-o key=value,...]`: one mount in the
//! foreground. SOURCE sets the option the plugin names as its source (ABI 1.1).

use std::path::PathBuf;
use std::sync::Arc;

use crate::commands::foreground::{announce, serve_until_stopped};
use crate::control::{self, ControlSocket};
use crate::error::HostError;
use crate::loader::{Loader, SearchPath};
use crate::mount_options::split_option_lists;
use crate::session::{self, MountRequest, MountTarget, RunningMount};
use crate::signals;
use crate::status_report::{HostStatus, MountStatus};
use crate::supervisor::identity_of;

/// The arguments of `fusehost mount`.
#[derive(Clone, Debug)]
pub struct MountArgs {
    pub plugin: String,
    /// The value of the plugin's source option.
    pub source: Option<PathBuf>,
    pub mountpoint: PathBuf,
    pub options: Vec<String>,
    pub plugin_dir: Option<PathBuf>,
    /// The mount's name in logs and status (default: the plugin's).
    pub name: Option<String>,
    /// Where to answer `fusehost status` (default: the default control socket).
    pub socket: Option<PathBuf>,
}

pub fn run(args: MountArgs) -> Result<(), HostError> {
    let signals =
        signals::listen().map_err(|source| HostError::Io { context: "installing signal handlers".into(), source })?;
    let socket_path = args.socket.clone();
    let (mount, plugin_version) = start(args)?;
    let _socket = serve_status(&mount, &plugin_version, socket_path);
    announce(&mount);
    tracing::info!(mount = %mount.name, "serving; Ctrl-C or SIGTERM unmounts");
    serve_until_stopped(vec![mount], &signals, crate::config::DEFAULT_STOP_TIMEOUT);
    Ok(())
}

/// Answers `fusehost status` for this one mount, as `run` does for its config, on
/// `--socket` or the default socket. A default socket another host holds is left to
/// it (the mount serves without one); an explicit one that cannot be bound is logged.
fn serve_status(mount: &RunningMount, plugin_version: &str, path: Option<PathBuf>) -> Option<ControlSocket> {
    let explicit = path.is_some();
    let path = path.unwrap_or_else(control::default_socket_path);
    let mut socket = match ControlSocket::bind(&path) {
        Ok(socket) => socket,
        Err(error) => {
            if explicit {
                tracing::warn!(mount = %mount.name, "no control socket: {error}");
            } else {
                tracing::debug!(mount = %mount.name, "no control socket: {error}");
            }
            return None;
        }
    };
    let identity = identity_of(mount, plugin_version);
    let (shared, started) = (Arc::clone(&mount.shared), mount.started);
    let served = socket.serve(move |request| {
        let answer = match request.command {
            control::Command::Status => {
                let status = MountStatus::now(identity.clone(), &shared, started);
                serde_json::to_string(&HostStatus::new(None, vec![status])).unwrap_or_default()
            }
            control::Command::Reload => r#"{"refused":"a single mount has no config file to reload"}"#.to_owned(),
        };
        request.reply.send(answer).is_ok()
    });
    match served {
        Ok(()) => {
            tracing::debug!(mount = %mount.name, "control socket at {}", socket.path().display());
            Some(socket)
        }
        Err(error) => {
            tracing::warn!(mount = %mount.name, "no control socket: {error}");
            None
        }
    }
}

/// Loads the plugin, checks the options and mounts: the mount, up and serving, and
/// the plugin's version.
pub fn start(args: MountArgs) -> Result<(RunningMount, String), HostError> {
    let (options, mut plugin_options) = split_option_lists(&args.options).map_err(HostError::Usage)?;
    let plugin = Loader::new().load_named(&args.plugin, &SearchPath::standard(args.plugin_dir.as_deref()))?;
    if let Some(source) = &args.source {
        let name = &plugin.description.name;
        let Some(key) = &plugin.description.source_option else {
            return Err(HostError::Usage(format!(
                "plugin `{name}` takes no source: give only the mountpoint, and its options with -o"
            )));
        };
        if plugin_options.contains_key(key) {
            return Err(HostError::Usage(format!(
                "the source {} and `-o {key}=...` both name what to mount: give one",
                source.display()
            )));
        }
        let source = std::path::absolute(source).unwrap_or_else(|_| source.clone());
        plugin_options.insert(key.clone(), toml::Value::String(source.to_string_lossy().into_owned()));
    }
    plugin.check_option_keys(plugin_options.keys()).map_err(HostError::Usage)?;
    let plugin_options = toml::to_string(&plugin_options)
        .map_err(|error| HostError::Usage(format!("the plugin options cannot be written as TOML: {error}")))?;
    // Refuse bad plugin options before touching the mountpoint.
    plugin.validate(&plugin_options).map_err(|refusal| HostError::PluginRefused {
        plugin: plugin.description.name.clone(),
        mount: plugin.description.name.clone(),
        message: refusal.message,
    })?;
    let plugin_name = plugin.description.name.clone();
    let target = MountTarget {
        name: args.name.unwrap_or_else(|| plugin_name.clone()),
        mountpoint: args.mountpoint,
        plugin_name,
        require_empty: !options.nonempty,
        options,
    };
    let plugin_version = plugin.description.version.clone();
    Ok((session::start(MountRequest { target, plugin, plugin_options })?, plugin_version))
}
