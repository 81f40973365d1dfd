//! `fusehost mount PLUGIN [SOURCE] MOUNTPOINT [-o key=value,...]`: one mount in the
//! foreground. SOURCE sets the option the plugin names as its source (ABI 1.1).

use std::path::PathBuf;

use crate::commands::foreground::{announce, serve_until_stopped};
use crate::error::HostError;
use crate::loader::{Loader, SearchPath};
use crate::mount_options::split_option_lists;
use crate::session::{self, MountRequest, MountTarget, RunningMount};
use crate::signals;

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
}

pub fn run(args: MountArgs) -> Result<(), HostError> {
    let signals =
        signals::listen().map_err(|source| HostError::Io { context: "installing signal handlers".into(), source })?;
    let mount = start(args)?;
    announce(&mount);
    tracing::info!(mount = %mount.name, "serving; Ctrl-C or SIGTERM unmounts");
    serve_until_stopped(vec![mount], &signals, crate::config::DEFAULT_STOP_TIMEOUT);
    Ok(())
}

/// Loads the plugin, checks the options and mounts: the mount, up and serving.
pub fn start(args: MountArgs) -> Result<RunningMount, HostError> {
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
    session::start(MountRequest { target, plugin, plugin_options })
}
