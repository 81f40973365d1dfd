//! `fusehost check CONFIG`: parses the config, loads every plugin and has it validate
//! its options, checks every mountpoint; builds and mounts nothing. One line per mount.

use std::path::Path;

use crate::commands::say;
use crate::config;
use crate::error::HostError;
use crate::loader::Loader;
use crate::supervisor::prepare;

/// Returns whether every mount would come up.
pub fn run(config_file: &Path) -> Result<bool, HostError> {
    let config = config::load(config_file).map_err(|error| HostError::Config(error.to_string()))?;
    let loader = Loader::new();
    let mut all_good = true;
    for spec in &config.mounts {
        match prepare(&loader, &config, spec, true) {
            Ok(ready) => {
                let plugin = &ready.plugin().description;
                say(format_args!(
                    "ok    {:<16} {} {} at {}",
                    spec.name,
                    plugin.name,
                    plugin.version,
                    spec.path.display()
                ));
            }
            Err(problem) => {
                all_good = false;
                say(format_args!("FAIL  {:<16} {}", spec.name, problem.message));
            }
        }
    }
    if config.mounts.is_empty() {
        say(format_args!("no [[mount]] in {}", config_file.display()));
    }
    Ok(all_good)
}
