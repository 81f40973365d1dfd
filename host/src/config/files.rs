//! Finding and reading a config's files: the main file (given, or the default path)
//! and the drop-ins of its `.d` folder.

use std::path::{Path, PathBuf};

use super::{finish, parse_file, Config, ConfigError, Role, MAX_CONFIG_BYTES};

/// The drop-in folder of `file`: `mounts.toml` → `mounts.d`.
pub fn drop_in_dir(file: &Path) -> PathBuf {
    file.with_extension("d")
}

/// The config file used when none is given: `/etc/fusehost/mounts.toml` for root,
/// else `$XDG_CONFIG_HOME/fusehost/mounts.toml` (`~/.config/fusehost/mounts.toml`).
pub fn default_config_path() -> PathBuf {
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/etc/fusehost/mounts.toml");
    }
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    config_home.join("fusehost/mounts.toml")
}

/// Reads and checks a config file and its drop-ins.
pub fn load(file: &Path) -> Result<Config, ConfigError> {
    let main = parse_file(&read(file)?, file, Role::Main)?;
    let folder = drop_in_dir(file);
    let mut drop_ins = Vec::new();
    for drop_in in drop_in_files(&folder)? {
        drop_ins.extend(parse_file(&read(&drop_in)?, &drop_in, Role::DropIn)?.mounts);
    }
    finish(file, main, drop_ins, Some(&folder))
}

/// The `*.toml` files of `folder` in name order; none when it does not exist.
fn drop_in_files(folder: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let unreadable = |error: std::io::Error| ConfigError {
        file: folder.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("cannot read the drop-in folder: {error}"),
    };
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(unreadable(error)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(unreadable)?.path();
        // Editors' and package managers' leftovers (`x.toml~`, `x.toml.dpkg-old`) do
        // not end in `.toml`; hidden files are skipped too.
        let hidden = path.file_name().is_some_and(|name| name.as_encoded_bytes().starts_with(b"."));
        if path.extension().is_some_and(|extension| extension == "toml") && !hidden {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The text of `file`, refusing one larger than a config may be.
fn read(file: &Path) -> Result<String, ConfigError> {
    let unplaced = |message: String| ConfigError { file: file.to_path_buf(), line: 0, column: 0, message };
    let size = match std::fs::metadata(file) {
        Ok(found) => found.len(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(unplaced(
                "there is no config file here: write one (the sources' config/reference.toml, installed as \
                 /usr/share/doc/fusehost/reference.toml, explains every key) or name another"
                    .to_owned(),
            ))
        }
        Err(error) => return Err(unplaced(format!("cannot read the config file: {error}"))),
    };
    if size > MAX_CONFIG_BYTES {
        return Err(unplaced(format!(
            "the config file is {size} bytes, more than the {MAX_CONFIG_BYTES} a config may hold: split it, or check \
             that this is the file you meant"
        )));
    }
    std::fs::read_to_string(file).map_err(|error| unplaced(format!("cannot read the config file: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(name: &str, path: &str) -> String {
        format!("[[mount]]\nname = \"{name}\"\npath = \"{path}\"\nplugin = \"memfs\"\n")
    }

    /// A folder with `mounts.toml` holding `main` and an empty `mounts.d/`; returns the
    /// folder and the main file.
    fn config_with_drop_in_folder(main: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mounts.toml");
        std::fs::write(&file, main).unwrap();
        std::fs::create_dir(dir.path().join("mounts.d")).unwrap();
        (dir, file)
    }

    #[test]
    fn drop_ins_add_mounts_in_name_order_and_resolve_against_their_own_folder() {
        let (dir, main) = config_with_drop_in_folder(&mount("a", "/srv/a"));
        std::fs::write(dir.path().join("mounts.d/20-c.toml"), mount("c", "relative")).unwrap();
        std::fs::write(dir.path().join("mounts.d/10-b.toml"), mount("b", "/srv/b")).unwrap();
        std::fs::write(dir.path().join("mounts.d/skip.toml~"), "garbage").unwrap();
        let config = load(&main).unwrap();
        let names: Vec<&str> = config.mounts.iter().map(|mount| mount.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(config.mounts[2].path, dir.path().join("mounts.d/relative"));
        assert_eq!(config.mounts[2].written.file, dir.path().join("mounts.d/20-c.toml"));
    }

    #[test]
    fn a_clash_across_files_names_both_files_and_the_place_of_the_later_one() {
        let (dir, main) = config_with_drop_in_folder(&mount("a", "/srv/a"));
        let drop_in = dir.path().join("mounts.d/pkg.toml");
        std::fs::write(&drop_in, format!("\n{}", mount("a", "/srv/other"))).unwrap();
        let error = load(&main).unwrap_err();
        assert_eq!((error.file.as_path(), error.line, error.column), (drop_in.as_path(), 3, 8), "{error}");
        assert!(error.message.contains(&format!("already used by the mount at {}:1", main.display())), "{error}");

        std::fs::write(&drop_in, mount("b", "/srv/a/inner")).unwrap();
        let error = load(&main).unwrap_err();
        assert_eq!(error.file, drop_in, "{error}");
        assert!(error.message.contains("are nested") && error.message.contains("mounts.toml"), "{error}");
    }

    #[test]
    fn a_drop_in_may_not_set_host_settings_and_may_hold_every_mount() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("mounts.toml");
        std::fs::write(&main, "[host]\nlog = \"info\"\n").unwrap();
        let error = load(&main).unwrap_err();
        assert!(error.message.contains("no [[mount]] in this config nor in"), "{error}");
        std::fs::create_dir(dir.path().join("mounts.d")).unwrap();
        let drop_in = dir.path().join("mounts.d/pkg.toml");
        std::fs::write(&drop_in, mount("a", "/srv/a")).unwrap();
        assert_eq!(load(&main).unwrap().mounts.len(), 1);
        std::fs::write(&drop_in, format!("[host]\nlog = \"debug\"\n{}", mount("a", "/srv/a"))).unwrap();
        let error = load(&main).unwrap_err();
        assert_eq!(error.file, drop_in);
        assert!(error.message.contains("[host] belongs in the main config file only"), "{error}");
    }

    #[test]
    fn a_broken_drop_in_is_named_with_its_line() {
        let (dir, main) = config_with_drop_in_folder(&mount("a", "/srv/a"));
        let drop_in = dir.path().join("mounts.d/pkg.toml");
        std::fs::write(&drop_in, "[[mount]]\nname = \"b\"\npath = \"/srv/b\"\nplugn = \"memfs\"\n").unwrap();
        let error = load(&main).unwrap_err();
        assert!(error.to_string().starts_with(&format!("{}:4:1: unknown field `plugn`", drop_in.display())), "{error}");
    }
}
