//! `fusehost mount PLUGIN MOUNTPOINT [-o key=value,...]`: one mount in the foreground.

use std::path::PathBuf;

use crate::commands::foreground::{announce, serve_until_stopped};
use crate::error::HostError;
use crate::loader::{Loader, SearchPath};
use crate::mount_options::split_option_lists;
use crate::session::{self, MountRequest, MountTarget};
use crate::signals;

/// The arguments of `fusehost mount`.
#[derive(Clone, Debug)]
pub struct MountArgs {
    pub plugin: String,
    pub mountpoint: PathBuf,
    pub options: Vec<String>,
    pub plugin_dir: Option<PathBuf>,
}

pub fn run(args: MountArgs) -> Result<(), HostError> {
    let (options, plugin_options) = split_option_lists(&args.options).map_err(HostError::Usage)?;
    let plugin = Loader::new().load_named(&args.plugin, &SearchPath::standard(args.plugin_dir.as_deref()))?;
    let plugin_options = toml::to_string(&plugin_options)
        .map_err(|error| HostError::Usage(format!("the plugin options cannot be written as TOML: {error}")))?;
    // Refuse bad plugin options before touching the mountpoint.
    plugin.validate(&plugin_options).map_err(|refusal| HostError::PluginRefused {
        plugin: plugin.description.name.clone(),
        mount: plugin.description.name.clone(),
        message: refusal.message,
    })?;
    let signals =
        signals::listen().map_err(|source| HostError::Io { context: "installing signal handlers".into(), source })?;
    let name = plugin.description.name.clone();
    let target = MountTarget {
        name: name.clone(),
        mountpoint: args.mountpoint,
        plugin_name: name,
        options,
        require_empty: false,
    };
    let mount = session::start(MountRequest { target, plugin, plugin_options })?;
    announce(&mount);
    tracing::info!(mount = %mount.name, "serving; Ctrl-C or SIGTERM unmounts");
    serve_until_stopped(vec![mount], &signals, crate::config::DEFAULT_STOP_TIMEOUT);
    Ok(())
}
