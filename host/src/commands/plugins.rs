//! `fusehost plugins`: every plugin library on the search path, what it says about
//! itself, and whether this host can load it (and why not), like `nbdkit --dump-plugin`
//! for all plugins at once.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::commands::say;
use crate::error::{HostError, LoadError};
use crate::loader::{name_from_file, Loader, SearchPath, FILE_PREFIX};

#[derive(Debug, Serialize)]
struct OptionReport {
    key: String,
    kind: String,
    default: String,
    help: String,
}

/// What `fusehost plugins --json` prints.
#[derive(Debug, Serialize)]
struct PluginsReport {
    /// Changes only when a field changes meaning or goes away.
    version: u32,
    plugins: Vec<PluginReport>,
}

/// The version of [`PluginsReport`].
const PLUGINS_REPORT_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
struct PluginReport {
    /// The plugin's own name, or the one its file name implies when it cannot load.
    name: String,
    path: PathBuf,
    loadable: bool,
    /// Why this host cannot load it.
    problem: Option<String>,
    version: Option<String>,
    abi_version: Option<String>,
    /// The revision of the ABI's documented meaning the plugin was built against.
    abi_semantics: Option<u32>,
    sdk_version: Option<String>,
    thread_model: Option<&'static str>,
    panic_unwind: Option<bool>,
    /// Mounted read-only whatever the options say (ABI 1.1).
    read_only: Option<bool>,
    /// The option `fusehost mount PLUGIN SOURCE MOUNTPOINT` sets (ABI 1.1).
    source_option: Option<String>,
    description: Option<String>,
    options: Vec<OptionReport>,
}

fn report(loader: &Loader, path: PathBuf) -> PluginReport {
    match loader.load(&path) {
        Ok(plugin) => {
            let description = &plugin.description;
            // `mount` and configs find a plugin by its file name: list it under that
            // name, and say so when the plugin calls itself something else.
            let name = name_from_file(&path);
            let problem = (description.name != name).then(|| {
                format!(
                    "calls itself `{}`, but is mounted as `{name}` (the file name decides): set `[lib] name = \"fusehost_{}\"` in its Cargo.toml so that both agree",
                    description.name, description.name
                )
            });
            PluginReport {
                name,
                path,
                loadable: true,
                problem,
                version: Some(description.version.clone()),
                abi_version: Some(description.abi_version.clone()),
                abi_semantics: Some(description.semantics),
                sdk_version: Some(description.sdk_version.clone()),
                thread_model: Some(description.thread_model.name()),
                panic_unwind: Some(description.panic_unwind),
                read_only: Some(description.read_only),
                source_option: description.source_option.clone(),
                description: Some(description.description.clone()),
                options: description
                    .options
                    .iter()
                    .map(|option| OptionReport {
                        key: option.key.clone(),
                        kind: option.kind.clone(),
                        default: option.default.clone(),
                        help: option.help.clone(),
                    })
                    .collect(),
            }
        }
        Err(error) => {
            let abi_version = match &error {
                LoadError::IncompatibleAbi { plugin_version, .. } => plugin_version.clone(),
                LoadError::LayoutMismatch { plugin_version, .. } => Some(plugin_version.clone()),
                _ => None,
            };
            PluginReport {
                name: name_from_file(&path),
                path,
                loadable: false,
                problem: Some(error.to_string()),
                version: None,
                abi_version,
                abi_semantics: None,
                sdk_version: None,
                thread_model: None,
                panic_unwind: None,
                read_only: None,
                source_option: None,
                description: None,
                options: Vec::new(),
            }
        }
    }
}

pub fn run(plugin_dir: Option<&Path>, json: bool) -> Result<(), HostError> {
    let search = SearchPath::standard(plugin_dir);
    let loader = Loader::new();
    let reports: Vec<PluginReport> = search.libraries().into_iter().map(|path| report(&loader, path)).collect();
    if json {
        let text = serde_json::to_string_pretty(&PluginsReport { version: PLUGINS_REPORT_VERSION, plugins: reports })
            .map_err(|error| HostError::Usage(format!("cannot write JSON: {error}")))?;
        say(format_args!("{text}"));
        return Ok(());
    }
    if reports.is_empty() {
        let searched: Vec<String> = search.dirs.iter().map(|dir| dir.display().to_string()).collect();
        say(format_args!("no {FILE_PREFIX}*.so in {}", searched.join(", ")));
    }
    for plugin in &reports {
        if !plugin.loadable {
            say(format_args!("{}  CANNOT LOAD  {}", plugin.name, plugin.path.display()));
            say(format_args!("    {}", plugin.problem.as_deref().unwrap_or("unknown problem")));
            continue;
        }
        say(format_args!(
            "{} {}  (ABI {}, {}{}{})  {}",
            plugin.name,
            plugin.version.as_deref().unwrap_or("?"),
            plugin.abi_version.as_deref().unwrap_or("?"),
            plugin.thread_model.unwrap_or("?"),
            if plugin.read_only == Some(true) { ", read-only" } else { "" },
            if plugin.panic_unwind == Some(false) { ", panic=abort!" } else { "" },
            plugin.path.display()
        ));
        say(format_args!("    {}", plugin.description.as_deref().unwrap_or("")));
        if let Some(problem) = &plugin.problem {
            say(format_args!("    warning: {problem}"));
        }
        if let Some(source) = &plugin.source_option {
            say(format_args!(
                "    source: the value of -o {source} (fusehost mount {} SOURCE MOUNTPOINT)",
                plugin.name
            ));
        }
        for option in &plugin.options {
            let default = if option.default.is_empty() && option.kind != "string" {
                "required".to_owned()
            } else {
                format!("default {:?}", option.default)
            };
            say(format_args!("    -o {:<14} {:<8} {:<24} {}", option.key, option.kind, default, option.help));
        }
    }
    Ok(())
}
