//! Runs the mounts of one config: all up or none, reload by difference, status, stop.
//!
//! Start-up checks everything before anything mounts: each plugin is found, loaded and
//! asked to validate its options, and each mountpoint is checked. Then the mounts come
//! up one by one, each on its own session threads; if one fails, those already up are
//! unmounted again and the error names the mount and the cause.
//!
//! A reload compares mounts by name: removed ones are unmounted, added ones mounted,
//! changed ones (any setting or plugin option differs) remounted, and unchanged ones
//! are not touched, so files open on them keep working. A new config is checked in
//! full first; if anything in it is wrong, nothing changes.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::commands::foreground::{announce, unmount_all};
use crate::config::{resolve_in, Config, MountSpec, Written};
use crate::error::HostError;
use crate::loader::{LoadedPlugin, Loader, OptionDescription, SearchPath};
use crate::session::{self, check_mountpoint, Lingering, MountRequest, MountTarget, RunningMount};
use crate::status_report::{HostStatus, MountIdentity, MountStatus};

/// A mount that passed every check and is ready to come up.
pub struct Prepared {
    spec: MountSpec,
    plugin: Arc<LoadedPlugin>,
    plugin_options: String,
}

impl Prepared {
    pub fn plugin(&self) -> &LoadedPlugin {
        &self.plugin
    }

    fn target(&self) -> MountTarget {
        MountTarget {
            name: self.spec.name.clone(),
            mountpoint: self.spec.path.clone(),
            plugin_name: self.plugin.description.name.clone(),
            options: self.spec.options.clone(),
            require_empty: !self.spec.options.nonempty,
        }
    }

    fn request(&self) -> MountRequest {
        MountRequest {
            target: self.target(),
            plugin: Arc::clone(&self.plugin),
            plugin_options: self.plugin_options.clone(),
        }
    }
}

/// Why one mount of a config cannot come up.
#[derive(Debug, thiserror::Error)]
#[error("mount `{mount}` ({file}:{line}): {message}")]
pub struct MountProblem {
    pub mount: String,
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// Finds and loads the plugin of `spec`, validates its options, and (unless the
/// mountpoint is already ours) checks the mountpoint. Builds and mounts nothing.
pub fn prepare(loader: &Loader, config: &Config, spec: &MountSpec, check_path: bool) -> Result<Prepared, MountProblem> {
    let problem = |message: String| MountProblem {
        mount: spec.name.clone(),
        file: spec.written.file.display().to_string(),
        line: spec.written.line,
        message,
    };
    let search = SearchPath::standard(config.host.plugin_dir.as_deref());
    let plugin = loader.load_named(&spec.plugin, &search).map_err(|error| problem(error.to_string()))?;
    plugin.check_option_keys(spec.plugin_options.keys()).map_err(problem)?;
    let options = resolve_path_options(&spec.plugin_options, &plugin.description.options, &spec.written.dir);
    let plugin_options = toml::to_string(&options)
        .map_err(|error| problem(format!("[mount.options] cannot be handed over: {error}")))?;
    plugin.validate(&plugin_options).map_err(|refusal| {
        problem(format!("plugin `{}` refused its options: {}", plugin.description.name, refusal.message))
    })?;
    let prepared = Prepared { spec: spec.clone(), plugin, plugin_options };
    session::check_request(&prepared.request()).map_err(problem)?;
    if check_path {
        check_mountpoint(&prepared.target())
            .map_err(|message| problem(format!("{}: {message}", spec.path.display())))?;
    }
    Ok(prepared)
}

/// Resolves the options the plugin declares as paths against the folder of the file
/// they are written in, as every other path in a config is.
fn resolve_path_options(options: &toml::Table, reference: &[OptionDescription], dir: &Path) -> toml::Table {
    let mut resolved = options.clone();
    for (key, value) in resolved.iter_mut() {
        let is_path = reference.iter().any(|option| &option.key == key && option.kind == "path");
        if let (true, toml::Value::String(written)) = (is_path, &*value) {
            *value = toml::Value::String(resolve_in(dir, written).display().to_string());
        }
    }
    resolved
}

struct Supervised {
    spec: MountSpec,
    plugin_version: String,
    running: RunningMount,
}

/// The mounts of one config, up and served.
pub struct Supervisor {
    loader: Loader,
    config: Config,
    mounts: Vec<Supervised>,
    /// Busy mounts a reload took down, still serving their open files.
    lingering: Vec<Lingering>,
}

/// What a reload changed.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ReloadReport {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
    /// Mounts that should have come up but did not, with the reason.
    pub failed: Vec<String>,
    /// Why nothing changed, when the new config was refused.
    pub refused: Option<String>,
}

/// The status of one running mount.
pub fn mount_status(running: &RunningMount, plugin_version: &str) -> MountStatus {
    MountStatus::now(identity_of(running, plugin_version), &running.shared, running.started)
}

/// What names `running` in its status.
pub fn identity_of(running: &RunningMount, plugin_version: &str) -> MountIdentity {
    MountIdentity {
        name: running.name.clone(),
        path: running.mountpoint.clone(),
        plugin: running.plugin_name.clone(),
        plugin_version: plugin_version.to_owned(),
    }
}

impl Supervisor {
    /// Checks every mount of `config`, then brings them all up, or none.
    pub fn start(config: Config) -> Result<Supervisor, HostError> {
        let loader = Loader::new();
        let prepared = config
            .mounts
            .iter()
            .map(|spec| prepare(&loader, &config, spec, true))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|problem| HostError::Config(problem.to_string()))?;
        let mut supervisor = Supervisor { loader, config, mounts: Vec::new(), lingering: Vec::new() };
        for ready in prepared {
            if let Err(error) = supervisor.bring_up(ready) {
                supervisor.stop_now();
                return Err(error);
            }
        }
        Ok(supervisor)
    }

    fn bring_up(&mut self, ready: Prepared) -> Result<(), HostError> {
        let running = session::start(ready.request())?;
        announce(&running);
        self.mounts.push(Supervised {
            plugin_version: ready.plugin.description.version.clone(),
            spec: ready.spec,
            running,
        });
        Ok(())
    }

    /// Applies `new`: see the module documentation.
    pub fn reload(&mut self, new: Config) -> ReloadReport {
        let mut report = ReloadReport::default();
        let current = |name: &str| self.mounts.iter().find(|mount| mount.spec.name == name);
        let mut to_start = Vec::new();
        for spec in &new.mounts {
            match current(&spec.name) {
                Some(mount) if same_mount(&mount.spec, spec) => report.unchanged.push(spec.name.clone()),
                existing => {
                    // A changed mount keeps its path while it is still ours: check it
                    // only when the path moves.
                    let check_path = existing.is_none_or(|mount| mount.spec.path != spec.path);
                    match prepare(&self.loader, &new, spec, check_path) {
                        Ok(ready) => to_start.push((ready, existing.is_some())),
                        Err(problem) => {
                            report.refused = Some(problem.to_string());
                            return report;
                        }
                    }
                }
            }
        }
        if new.host != self.config.host {
            tracing::warn!("[host] changes (plugin_dir applies to new mounts; log and control_socket need a restart)");
        }

        // Everything but the unchanged mounts goes down: removed ones for good,
        // changed ones to come back up with their new settings.
        let (keep, leave): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.mounts).into_iter().partition(|mount| report.unchanged.contains(&mount.spec.name));
        self.mounts = keep;
        report.removed = leave
            .iter()
            .filter(|mount| !new.mounts.iter().any(|spec| spec.name == mount.spec.name))
            .map(|mount| mount.spec.name.clone())
            .collect();
        let lingering = unmount_all(leave.into_iter().map(|mount| mount.running).collect());
        self.lingering.extend(lingering);
        self.lingering.retain(|session| !session.has_ended());
        for (ready, was_there) in to_start {
            let name = ready.spec.name.clone();
            match self.bring_up(ready) {
                Ok(()) if was_there => report.changed.push(name),
                Ok(()) => report.added.push(name),
                Err(error) => {
                    tracing::error!(mount = %name, "did not come up after the reload: {error}");
                    report.failed.push(format!("{name}: {error}"));
                }
            }
        }
        self.config = new;
        report
    }

    /// Drops mounts whose session ended on its own (unmounted from outside).
    pub fn reap_ended(&mut self) {
        self.mounts.retain(|mount| {
            let ended = mount.running.has_ended();
            if ended {
                tracing::warn!(mount = %mount.spec.name, "was unmounted from outside");
            }
            !ended
        });
    }

    /// How many mounts are up.
    pub fn len(&self) -> usize {
        self.mounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.mounts.is_empty()
    }

    pub fn status(&self) -> HostStatus {
        let mounts = self.mounts.iter().map(|mount| mount_status(&mount.running, &mount.plugin_version)).collect();
        HostStatus::new(Some(self.config.file.clone()), mounts)
    }

    /// Unmounts everything, in parallel; returns the sessions still serving open files
    /// on busy mounts (see `commands::foreground::finish`).
    pub fn stop(mut self) -> Vec<Lingering> {
        self.take_down()
    }

    /// Unmounts everything and leaves no session behind (a failed start).
    fn stop_now(&mut self) {
        self.take_down().into_iter().for_each(Lingering::abandon);
    }

    fn take_down(&mut self) -> Vec<Lingering> {
        let mounts = std::mem::take(&mut self.mounts).into_iter().map(|mount| mount.running).collect();
        let mut lingering = unmount_all(mounts);
        lingering.append(&mut self.lingering);
        lingering
    }

    /// How long a stop waits for open files (the config's `stop_timeout`).
    pub fn stop_timeout(&self) -> std::time::Duration {
        self.config.host.stop_timeout
    }
}

/// Whether two specs describe the same mount: where it is written does not count, the
/// folder its relative paths resolve against does.
fn same_mount(a: &MountSpec, b: &MountSpec) -> bool {
    let unplaced = |spec: &MountSpec| MountSpec {
        written: Written { dir: spec.written.dir.clone(), ..Written::default() },
        ..spec.clone()
    };
    unplaced(a) == unplaced(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_declared_path_options_resolve_against_the_config_folder() {
        let reference = vec![
            OptionDescription {
                key: "source".into(),
                kind: "path".into(),
                default: String::new(),
                help: String::new(),
            },
            OptionDescription {
                key: "label".into(),
                kind: "string".into(),
                default: String::new(),
                help: String::new(),
            },
        ];
        let config = crate::config::parse(
            "[[mount]]\nname = \"a\"\npath = \"/a\"\nplugin = \"x\"\n",
            Path::new("/etc/fusehost/mounts.toml"),
        )
        .unwrap();
        let options: toml::Table = toml::from_str("source = \"data\"\nlabel = \"data\"").unwrap();
        let resolved = resolve_path_options(&options, &reference, &config.mounts[0].written.dir);
        assert_eq!(resolved["source"].as_str(), Some("/etc/fusehost/data"));
        assert_eq!(resolved["label"].as_str(), Some("data"));
        let absolute: toml::Table = toml::from_str("source = \"/srv/x\"").unwrap();
        let resolved = resolve_path_options(&absolute, &reference, &config.mounts[0].written.dir);
        assert_eq!(resolved["source"].as_str(), Some("/srv/x"));
    }
}
