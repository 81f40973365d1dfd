//! Finds plugin libraries and loads them, refusing anything that is not a compatible
//! fusehost plugin with one readable sentence.
//!
//! Loading goes in three steps, each with its own error:
//! 1. open the `.so` with `libloading` (missing file, not a shared library);
//! 2. read the plain `fusehost_abi_major` symbol before any abi_stable check (not a
//!    plugin; a plugin built for another ABI major);
//! 3. read abi_stable's header, and check the root module's layout through the
//!    interface of the ABI minor the plugin was built for (its header says which;
//!    older minors are adapted, see [`crate::abi_adapters`])
//!    (`lib_header_from_path(..).init_root_module()`). abi_stable's own
//!    `RootModule::load_from_file` keeps one module per root-module type, so a second
//!    plugin would come back as the first; going through the header loads each path
//!    on its own. A layout mismatch explains itself in a ~128,000-character dump, kept
//!    for `-v` only.
//!
//! Libraries are never unloaded (abi_stable leaks them on purpose), so each path is
//! loaded once and cached.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use abi_stable::library::{lib_header_from_path, LibHeader, LibraryError};
use fusehost_abi::abi_stable::std_types::{RResult, RStr};
use fusehost_abi::{
    thread_model, v1_0, v1_1, v1_2, FsObject, HostServices, MountInit, PluginError, PluginInfo, PluginMetadata,
    PluginModule_Ref, ABI_MAJOR, ABI_MAJOR_SYMBOL, ABI_VERSION,
};
use parking_lot::Mutex;

use crate::abi_adapters;
use crate::error::LoadError;
use crate::logging::host_services;

/// Plugin files are named `lib<prefix><name>.so`; the prefix keeps them apart from
/// system libraries such as `libzip.so`.
pub const FILE_PREFIX: &str = "libfusehost_";

/// Where packages install plugins: the distribution's folder, then the local one.
pub const SYSTEM_PLUGIN_DIRS: &[&str] = &["/usr/lib/fusehost/plugins", "/usr/local/lib/fusehost/plugins"];

/// Where plugin names are looked up, in order.
#[derive(Clone, Debug, Default)]
pub struct SearchPath {
    pub dirs: Vec<PathBuf>,
}

impl SearchPath {
    /// `--plugin-dir` (if given), then `$FUSEHOST_PLUGIN_PATH`, then the folder of the
    /// running `fusehost` binary, so plugins built by the same `cargo build` are found
    /// with no flag, then `lib/fusehost/plugins` beside that folder (an install under
    /// another prefix, such as `/opt/fusehost` or a package unpacked into a folder, finds
    /// its own plugins), then the system plugin folders ([`SYSTEM_PLUGIN_DIRS`]). A
    /// folder is listed once.
    pub fn standard(plugin_dir: Option<&Path>) -> SearchPath {
        let mut dirs: Vec<PathBuf> = plugin_dir.into_iter().map(Path::to_path_buf).collect();
        if let Some(path) = std::env::var_os("FUSEHOST_PLUGIN_PATH") {
            dirs.extend(std::env::split_paths(&path).filter(|dir| !dir.as_os_str().is_empty()));
        }
        if let Some(own_dir) = std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_path_buf)) {
            let beside = own_dir.parent().map(|prefix| prefix.join("lib/fusehost/plugins"));
            dirs.push(own_dir);
            dirs.extend(beside);
        }
        dirs.extend(SYSTEM_PLUGIN_DIRS.iter().map(PathBuf::from));
        let mut seen = std::collections::HashSet::new();
        dirs.retain(|dir| seen.insert(dir.clone()));
        SearchPath { dirs }
    }

    /// The library file for `plugin`: a path when it contains `/`, else the first
    /// `libfusehost_<plugin>.so` on the search path.
    pub fn resolve(&self, plugin: &str) -> Result<PathBuf, LoadError> {
        if plugin.contains('/') {
            let path = PathBuf::from(plugin);
            return if path.is_file() { Ok(path) } else { Err(LoadError::MissingFile { path }) };
        }
        let file_name = file_name_for(plugin);
        if let Some(found) = self.dirs.iter().map(|dir| dir.join(&file_name)).find(|candidate| candidate.is_file()) {
            return Ok(found);
        }
        let file_name = file_name.to_string_lossy().into_owned();
        // The common mistake: a crate built without `crate-type = ["cdylib"]`.
        let rlib = format!("{FILE_PREFIX}{plugin}.rlib");
        if let Some(found) = self.dirs.iter().map(|dir| dir.join(&rlib)).find(|candidate| candidate.is_file()) {
            return Err(LoadError::BuiltAsRlib { plugin: plugin.to_owned(), file_name, found });
        }
        Err(LoadError::NotFound { plugin: plugin.to_owned(), file_name, searched: self.dirs.clone() })
    }

    /// Every plugin file (`libfusehost_*.so`) in the search folders, each real file
    /// once, in search order.
    pub fn libraries(&self) -> Vec<PathBuf> {
        let mut seen = std::collections::HashSet::new();
        let mut found = Vec::new();
        for dir in &self.dirs {
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            let mut here: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| {
                    path.file_name()
                        .and_then(|name| name.to_str())
                        .is_some_and(|name| name.starts_with(FILE_PREFIX) && name.ends_with(".so"))
                })
                .collect();
            here.sort();
            for path in here {
                if seen.insert(path.canonicalize().unwrap_or_else(|_| path.clone())) {
                    found.push(path);
                }
            }
        }
        found
    }
}

/// The plugin name a library file stands for: `libfusehost_NAME.so` is `NAME`, the
/// name `mount` and configs use.
pub fn name_from_file(path: &Path) -> String {
    let file = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    file.trim_start_matches(FILE_PREFIX).trim_end_matches(".so").to_owned()
}

/// `libfusehost_<name>.so`
pub fn file_name_for(plugin: &str) -> OsString {
    format!("{FILE_PREFIX}{plugin}.so").into()
}

/// How the host may call a plugin's filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadModel {
    Serialized,
    Parallel,
}

impl ThreadModel {
    pub fn name(self) -> &'static str {
        match self {
            ThreadModel::Serialized => "serialized",
            ThreadModel::Parallel => "parallel",
        }
    }
}

/// One option from a plugin's reference.
#[derive(Clone, Debug)]
pub struct OptionDescription {
    pub key: String,
    pub kind: String,
    pub default: String,
    pub help: String,
}

/// What a loaded plugin says about itself, copied out of the library.
#[derive(Clone, Debug)]
pub struct PluginDescription {
    pub name: String,
    pub version: String,
    pub description: String,
    pub options: Vec<OptionDescription>,
    pub thread_model: ThreadModel,
    pub panic_unwind: bool,
    pub sdk_version: String,
    /// The `fusehost-abi` version the plugin was built with.
    pub abi_version: String,
    /// The plugin never changes anything (ABI 1.1): mounted read-only.
    pub read_only: bool,
    /// The option naming what is mounted (ABI 1.1), if the plugin has one.
    pub source_option: Option<String>,
    /// The revision of the ABI's documented meaning the plugin was built with.
    pub semantics: u32,
}

/// A plugin library, loaded and checked.
pub struct LoadedPlugin {
    pub path: PathBuf,
    module: RootModule,
    pub description: PluginDescription,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin").field("path", &self.path).field("description", &self.description).finish()
    }
}

impl LoadedPlugin {
    /// Refuses a plugin built with `panic = "abort"` unless the mount allows it: one
    /// panic in it would end the process and every mount in it.
    pub fn check_panic_strategy(&self, allowed: bool) -> Result<(), String> {
        if self.description.panic_unwind || allowed {
            return Ok(());
        }
        Err(format!(
            "plugin `{}` was built with panic = \"abort\": one panic in it would kill every mount of this host; \
             rebuild it with panic = \"unwind\" (the default), or set allow_panic_abort = true on this mount",
            self.description.name
        ))
    }
}

/// `$body` with `$module` bound to the root module of whichever minor was loaded: for
/// the fields every minor has, which are the same functions in each.
macro_rules! any_minor {
    ($root:expr, $module:ident => $body:expr) => {
        match $root {
            RootModule::V1_0($module) => $body,
            RootModule::V1_1($module) => $body,
            RootModule::V1_2($module) => $body,
            RootModule::Current($module) => $body,
        }
    };
}

/// A plugin's root module, through the interface of the ABI minor it was built for.
enum RootModule {
    V1_0(v1_0::PluginModule_Ref),
    V1_1(v1_1::PluginModule_Ref),
    V1_2(v1_2::PluginModule_Ref),
    /// 1.3 or newer: a newer plugin's extra entries are never asked for.
    Current(PluginModule_Ref),
}

impl RootModule {
    fn load(header: &LibHeader, plugin_minor: u32) -> Result<RootModule, LibraryError> {
        Ok(match plugin_minor {
            0 => RootModule::V1_0(header.init_root_module::<v1_0::PluginModule_Ref>()?),
            1 => RootModule::V1_1(header.init_root_module::<v1_1::PluginModule_Ref>()?),
            2 => RootModule::V1_2(header.init_root_module::<v1_2::PluginModule_Ref>()?),
            _ => RootModule::Current(header.init_root_module::<PluginModule_Ref>()?),
        })
    }

    fn attach_host(&self) -> extern "C" fn(HostServices) {
        any_minor!(self, module => module.attach_host())
    }

    fn describe(&self) -> extern "C" fn() -> PluginInfo {
        any_minor!(self, module => module.describe())
    }

    fn metadata(&self) -> Option<PluginMetadata> {
        match self {
            RootModule::V1_0(_) => None,
            RootModule::V1_1(module) => Some((module.metadata())()),
            RootModule::V1_2(module) => Some((module.metadata())()),
            RootModule::Current(module) => Some((module.metadata())()),
        }
    }

    fn validate(&self, options_toml: &str) -> RResult<(), PluginError> {
        any_minor!(self, module => (module.validate())(RStr::from_str(options_toml)))
    }

    /// The plugin's filesystem, an older minor's adapted to the current interface.
    fn new_filesystem(&self, init: &MountInit<'_>) -> RResult<FsObject, PluginError> {
        match self {
            RootModule::V1_0(module) => (module.new_filesystem())(init).map(abi_adapters::from_v1_0),
            RootModule::V1_1(module) => (module.new_filesystem())(init).map(abi_adapters::from_v1_1),
            RootModule::V1_2(module) => (module.new_filesystem())(init).map(abi_adapters::from_v1_2),
            RootModule::Current(module) => (module.new_filesystem())(init),
        }
    }
}

impl LoadedPlugin {
    /// Catches a misspelt *host* key before the plugin blames itself for it: a key the
    /// plugin does not declare that is a near miss of a host key (`fsnme`).
    pub fn check_option_keys<'k>(&self, keys: impl IntoIterator<Item = &'k String>) -> Result<(), String> {
        let declared = |key: &str| self.description.options.iter().any(|option| option.key == key);
        for key in keys.into_iter().filter(|key| !declared(key)) {
            if let Some(host_key) = crate::mount_options::nearest_host_key(key) {
                return Err(format!(
                    "unknown option `{key}`: did you mean the host option `{host_key}`? (plugin `{}` has no option \
                     `{key}` either)",
                    self.description.name
                ));
            }
        }
        Ok(())
    }
}

/// Why a plugin refused to check its options or build a filesystem.
#[derive(Clone, Debug)]
pub struct PluginRefusal {
    pub message: String,
}

impl LoadedPlugin {
    /// Checks options without building anything.
    pub fn validate(&self, options_toml: &str) -> Result<(), PluginRefusal> {
        self.module
            .validate(options_toml)
            .into_result()
            .map_err(|error| PluginRefusal { message: error.message.into_string() })
    }

    /// Builds one mount's filesystem object.
    pub fn new_filesystem(
        &self,
        mount_name: &str,
        mountpoint: &Path,
        options_toml: &str,
        read_only: bool,
    ) -> Result<fusehost_abi::FsObject, PluginRefusal> {
        let mountpoint = mountpoint.to_string_lossy();
        let init = MountInit {
            mount_name: RStr::from_str(mount_name),
            mountpoint: RStr::from_str(&mountpoint),
            options_toml: RStr::from_str(options_toml),
            read_only,
        };
        self.module
            .new_filesystem(&init)
            .into_result()
            .map_err(|error| PluginRefusal { message: error.message.into_string() })
    }
}

/// Loads plugins, once per path.
#[derive(Default)]
pub struct Loader {
    loaded: Mutex<HashMap<PathBuf, Arc<LoadedPlugin>>>,
}

impl Loader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Resolves `plugin` on `search` and loads it. When no file has that name, a
    /// library that *calls itself* `plugin` is looked for, to say which name to use.
    pub fn load_named(&self, plugin: &str, search: &SearchPath) -> Result<Arc<LoadedPlugin>, LoadError> {
        let path = match search.resolve(plugin) {
            Ok(path) => path,
            Err(LoadError::NotFound { plugin, file_name, searched }) => {
                let calls_itself = search
                    .libraries()
                    .into_iter()
                    .find(|library| self.load(library).is_ok_and(|loaded| loaded.description.name == plugin));
                return Err(match calls_itself {
                    Some(found) => {
                        LoadError::NamedOtherwise { file_plugin: name_from_file(&found), plugin, file_name, found }
                    }
                    None => LoadError::NotFound { plugin, file_name, searched },
                });
            }
            Err(other) => return Err(other),
        };
        self.load(&path)
    }

    /// Loads the library at `path` (or returns it, if already loaded). As root, a file
    /// that anyone but root could change is refused before it is opened (opening a
    /// library runs its code).
    pub fn load(&self, path: &Path) -> Result<Arc<LoadedPlugin>, LoadError> {
        let key = path.canonicalize().map_err(|_| LoadError::MissingFile { path: path.to_path_buf() })?;
        if rustix::process::geteuid().is_root() {
            check_only_root_can_change(&key)?;
        }
        let mut loaded = self.loaded.lock();
        if let Some(plugin) = loaded.get(&key) {
            return Ok(Arc::clone(plugin));
        }
        let plugin = Arc::new(load_library(&key)?);
        loaded.insert(key, Arc::clone(&plugin));
        Ok(plugin)
    }
}

/// Whether anyone but root could replace or change `file` (a canonical path): the file
/// itself, or any folder above it, owned by another user or writable by group or
/// others, as sudo and OpenSSH's StrictModes judge it. A world-writable folder with the
/// sticky bit owned by root (`/tmp`) is fine: nobody can rename what they do not own
/// there.
fn check_only_root_can_change(file: &Path) -> Result<(), LoadError> {
    use std::os::unix::fs::MetadataExt;
    const GROUP_OR_OTHER_WRITE: u32 = 0o022;
    const STICKY: u32 = 0o1000;
    let refuse = |reason: String, fix: String| LoadError::Unsafe { path: file.to_path_buf(), reason, fix };
    let meta = std::fs::metadata(file).map_err(|_| LoadError::MissingFile { path: file.to_path_buf() })?;
    if meta.uid() != 0 {
        return Err(refuse(format!("it is owned by uid {}", meta.uid()), format!("chown root {}", file.display())));
    }
    if meta.mode() & GROUP_OR_OTHER_WRITE != 0 {
        return Err(refuse(
            format!("it is writable by {}", if meta.mode() & 0o002 != 0 { "everyone" } else { "its group" }),
            format!("chmod go-w {}", file.display()),
        ));
    }
    for folder in file.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(folder) else { continue };
        let sticky_root_folder = meta.mode() & STICKY != 0 && meta.uid() == 0;
        if meta.uid() != 0 {
            return Err(refuse(
                format!("the folder {} is owned by uid {}", folder.display(), meta.uid()),
                format!("chown root {}", folder.display()),
            ));
        }
        if meta.mode() & GROUP_OR_OTHER_WRITE != 0 && !sticky_root_folder {
            return Err(refuse(
                format!("the folder {} is writable by others", folder.display()),
                format!("chmod go-w {}", folder.display()),
            ));
        }
    }
    Ok(())
}

fn load_library(path: &Path) -> Result<LoadedPlugin, LoadError> {
    let plugin_major = read_abi_major(path)?;
    if plugin_major != ABI_MAJOR {
        return Err(LoadError::IncompatibleAbi {
            path: path.to_path_buf(),
            plugin_major,
            plugin_version: header_version(path),
            host_major: ABI_MAJOR,
            host_version: ABI_VERSION.to_owned(),
        });
    }
    let header = lib_header_from_path(path).map_err(|error| library_error(path, error))?;
    let abi_version = header.version_strings().version.as_str().to_owned();
    let plugin_minor = abi_version.split('.').nth(1).and_then(|minor| minor.parse().ok()).unwrap_or(0);
    let module = RootModule::load(header, plugin_minor).map_err(|error| library_error(path, error))?;
    (module.attach_host())(host_services());
    let info = (module.describe())();
    let metadata = module.metadata();
    let description = PluginDescription {
        name: info.name.as_str().to_owned(),
        version: info.version.as_str().to_owned(),
        description: info.description.as_str().to_owned(),
        options: info
            .options
            .iter()
            .map(|doc| OptionDescription {
                key: doc.key.as_str().to_owned(),
                kind: doc.kind.as_str().to_owned(),
                default: doc.default.as_str().to_owned(),
                help: doc.help.as_str().to_owned(),
            })
            .collect(),
        thread_model: match info.thread_model {
            thread_model::PARALLEL => ThreadModel::Parallel,
            thread_model::SERIALIZED => ThreadModel::Serialized,
            unknown => {
                tracing::warn!(plugin = %path.display(), "unknown thread model {unknown}; calling it serialized");
                ThreadModel::Serialized
            }
        },
        panic_unwind: info.panic_unwind,
        sdk_version: info.sdk_version.as_str().to_owned(),
        abi_version,
        read_only: metadata.is_some_and(|metadata| metadata.read_only),
        source_option: metadata
            .map(|metadata| metadata.source_option.as_str().to_owned())
            .filter(|option| !option.is_empty()),
        semantics: metadata.map_or(1, |metadata| metadata.semantics),
    };
    if !description.panic_unwind {
        tracing::warn!(
            plugin = %description.name,
            "built with panic = \"abort\": a panic in it will take the whole host down"
        );
    }
    Ok(LoadedPlugin { path: path.to_path_buf(), module, description })
}

/// Reads the plugin's `fusehost_abi_major` symbol.
fn read_abi_major(path: &Path) -> Result<u32, LoadError> {
    // SAFETY: opening a library runs its initialisers. The operator named this file as
    // a plugin; this is the one trust decision a plugin host cannot avoid.
    let library = unsafe { libloading::Library::new(path) }
        .map_err(|error| LoadError::NotALibrary { path: path.to_path_buf(), reason: error.to_string() })?;
    // SAFETY: `export_plugin!` declares this symbol as a `u32` static; we only read it
    // while `library` is open.
    let symbol = unsafe { library.get::<*const u32>(ABI_MAJOR_SYMBOL) };
    let major = match symbol {
        // SAFETY: the symbol's address points at the `u32` static described above.
        Ok(address) => unsafe { std::ptr::read(*address) },
        Err(_) => return Err(LoadError::NotAPlugin { path: path.to_path_buf() }),
    };
    // Plugins are never unloaded: abi_stable keeps its own handle leaked as well, and
    // unloading code whose statics the host may still reference would be unsound.
    std::mem::forget(library);
    Ok(major)
}

/// The `fusehost-abi` version in the plugin's abi_stable header, if it can be read.
fn header_version(path: &Path) -> Option<String> {
    let header = lib_header_from_path(path).ok()?;
    Some(header.version_strings().version.as_str().to_owned())
}

fn library_error(path: &Path, error: LibraryError) -> LoadError {
    match error {
        error @ LibraryError::OpenError { .. } => {
            LoadError::NotALibrary { path: path.to_path_buf(), reason: error.to_string() }
        }
        LibraryError::GetSymbolError { .. } => LoadError::NotAPlugin { path: path.to_path_buf() },
        LibraryError::IncompatibleVersionNumber { expected_version, actual_version, .. } => {
            LoadError::IncompatibleAbi {
                path: path.to_path_buf(),
                plugin_major: actual_version.major,
                plugin_version: Some(actual_version.to_string()),
                host_major: ABI_MAJOR,
                host_version: expected_version.to_string(),
            }
        }
        other @ LibraryError::AbiInstability(_) => LoadError::LayoutMismatch {
            path: path.to_path_buf(),
            plugin_version: header_version(path).unwrap_or_else(|| "unknown".to_owned()),
            host_version: ABI_VERSION.to_owned(),
            detail: other.to_string(),
        },
        other => LoadError::Rejected { path: path.to_path_buf(), detail: other.to_string() },
    }
}
