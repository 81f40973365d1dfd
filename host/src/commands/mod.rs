//! The `fusehost` subcommands, one file each.

pub mod check;
pub mod foreground;
pub mod mount;
pub mod mount_helper;
pub mod new_plugin;
pub mod package_files;
pub mod plugins;
pub mod run;
pub mod status;

use std::io::Write as _;

/// Writes one line to stdout. A closed stdout (`fusehost status | head`) is ignored:
/// `println!` would panic, and a host must not die over an output line.
pub fn say(line: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_fmt(line);
    let _ = stdout.write_all(b"\n");
    let _ = stdout.flush();
}
