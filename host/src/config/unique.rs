//! The checks across every mount of a config (its main file and its drop-ins): unique
//! names, unique mountpoints, no mountpoint inside another.

use std::collections::HashMap;

use super::{ConfigError, MountSpec};

/// Refuses duplicate names, duplicate paths and mountpoints inside one another, in
/// O(n log n): after sorting the paths component-wise, a mountpoint that lies inside
/// another sorts right after it or after another one inside it, so comparing
/// neighbours finds every nesting there is. Mounts are in the order they were read
/// (main file, then drop-ins by name); an error is reported at the later one.
pub fn check_unique(mounts: &[MountSpec]) -> Result<(), ConfigError> {
    let mut names: HashMap<&str, usize> = HashMap::with_capacity(mounts.len());
    for (index, mount) in mounts.iter().enumerate() {
        if let Some(first) = names.insert(&mount.name, index) {
            let message = format!(
                "mount name `{}` is already used by the mount at {}: names must be unique",
                mount.name,
                mounts[first].written.describe_relative_to(&mount.written)
            );
            return Err(mount.written.error_at(mount.written.name, message));
        }
    }
    let mut by_path: Vec<usize> = (0..mounts.len()).collect();
    by_path.sort_by(|&a, &b| mounts[a].path.cmp(&mounts[b].path).then(a.cmp(&b)));
    for pair in by_path.windows(2) {
        let (first, later) = (pair[0].min(pair[1]), pair[0].max(pair[1]));
        let (mount, other) = (&mounts[later], &mounts[first]);
        let message = if mount.path == other.path {
            format!("path {} is also the mountpoint of `{}`", mount.path.display(), other.name)
        } else if mount.path.starts_with(&other.path) || other.path.starts_with(&mount.path) {
            format!(
                "path {} and the mountpoint of `{}` ({}) are nested: one mount would hide the other",
                mount.path.display(),
                other.name,
                other.path.display()
            )
        } else {
            continue;
        };
        let message = if mount.written.file == other.written.file {
            message
        } else {
            format!("{message} (in {})", other.written.file.display())
        };
        return Err(mount.written.error_at(mount.written.path, message));
    }
    Ok(())
}
