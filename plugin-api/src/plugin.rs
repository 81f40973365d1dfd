//! What a plugin says about itself and how the host builds one instance per mount.

use std::fmt;
use std::path::PathBuf;

use crate::filesystem::Filesystem;
use crate::options::{OptionSpec, Options};

/// How the host may call a plugin (after nbdkit's thread models).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadModel {
    /// One call at a time per mount: the host holds a lock around every call.
    Serialized,
    /// Calls arrive from every session thread at once; the filesystem does its own
    /// locking (prefer [`crate::sync`]'s locks, which do not poison).
    Parallel,
}

impl ThreadModel {
    /// The ABI's integer for this model.
    pub const fn to_abi(self) -> u32 {
        match self {
            ThreadModel::Serialized => fusehost_abi::thread_model::SERIALIZED,
            ThreadModel::Parallel => fusehost_abi::thread_model::PARALLEL,
        }
    }
}

/// Which mount an instance serves.
#[derive(Clone, Debug)]
pub struct MountInfo {
    /// The mount's name in the host's config (`fusehost mount` uses the plugin name).
    pub name: String,
    pub mountpoint: PathBuf,
    /// The operator mounted read-only; the kernel already refuses writes.
    pub read_only: bool,
}

/// Why a plugin refused its options or could not build its filesystem: one sentence
/// for the operator. Any error converts into it with `?`.
#[derive(Clone, PartialEq, Eq)]
pub struct SetupError {
    message: String,
}

impl SetupError {
    pub fn new(message: impl Into<String>) -> SetupError {
        SetupError { message: message.into() }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl<E: std::error::Error> From<E> for SetupError {
    fn from(error: E) -> Self {
        SetupError::new(error.to_string())
    }
}

impl fmt::Debug for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A filesystem the host can load: its description and constructor.
/// Export it with [`export_plugin!`](crate::export_plugin).
pub trait Plugin: Filesystem + Sized {
    /// The plugin's name, as operators write it (`plugin = "hello"`).
    const NAME: &'static str;
    /// One line for `fusehost plugins`.
    const DESCRIPTION: &'static str;
    /// Every option the plugin accepts. Others are refused before `new` is called.
    const OPTIONS: &'static [OptionSpec] = &[];
    const THREAD_MODEL: ThreadModel = ThreadModel::Parallel;
    /// The plugin never changes anything: its mounts are read-only, and show `ro` in
    /// the mount table (ABI 1.1; a 1.0 host mounts it as the operator says).
    const READ_ONLY: bool = false;
    /// The option that names what is mounted (an archive file, a source folder), so
    /// that `fusehost mount PLUGIN SOURCE MOUNTPOINT` and fstab's first field set it.
    const SOURCE_OPTION: Option<&'static str> = None;

    /// Checks options beyond their kinds, without building anything
    /// (`fusehost check`). Also run before every `new`.
    fn validate(options: &Options) -> Result<(), SetupError> {
        let _ = options;
        Ok(())
    }

    /// Builds the filesystem of one mount. Two mounts of the same plugin are two
    /// instances: keep all state in `Self`, never in statics.
    fn new(mount: &MountInfo, options: &Options) -> Result<Self, SetupError>;
}
