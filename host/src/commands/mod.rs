//! The `fusehost` subcommands, one file each.

pub mod demo;
pub mod foreground;
pub mod mount;
