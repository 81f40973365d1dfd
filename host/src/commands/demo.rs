//! `fusehost demo`: mounts the hello plugin at a fresh temporary folder.

use std::path::PathBuf;

use crate::commands::mount::{self, MountArgs};
use crate::error::HostError;

pub fn run(plugin_dir: Option<PathBuf>) -> Result<(), HostError> {
    let folder = tempfile::Builder::new()
        .prefix("fusehost-demo-")
        .tempdir()
        .map_err(|source| HostError::Io { context: "creating the demo mountpoint".into(), source })?;
    println!("fusehost demo: try `ls -l {0}` and `cat {0}/hello.txt`; Ctrl-C unmounts", folder.path().display());
    mount::run(MountArgs {
        plugin: "hello".to_owned(),
        mountpoint: folder.path().to_path_buf(),
        options: vec!["greeting=Hello from a fusehost plugin!,repeat=3".to_owned()],
        plugin_dir,
    })
}
