//! fusehost: one process, many mounts, each a FUSE filesystem that lives in a plugin.
//!
//! ```text
//!  config ──► supervisor ──► loader ──► plugin .so (abi_stable root module, checked ABI major)
//!                 │
//!                 └──► session ──► fuser::Session (n threads, clone_fd), one per mount
//!                                 │
//!  kernel ◄──► /dev/fuse ◄──► dispatch (fuser::Filesystem) ──► plugin's RawFilesystem
//!                                 │ lookup counts, thread model, panic-safe answers,
//!                                 │ per-mount span and counters
//! ```
//!
//! Each concern has its own module:
//! - [`config`]: the TOML mount configuration and its checks;
//! - [`supervisor`]: a config's mounts, all up or none, reload by difference, status;
//! - [`control`]: the Unix socket `fusehost status` and `reload` talk to;
//! - [`loader`]: finds `libfusehost_<name>.so`, checks its ABI, loads it once;
//! - [`dispatch`]: the `fuser::Filesystem` of one mount, the only code that knows both
//!   fuser and the plugin ABI;
//! - [`lookup_table`]: the kernel's references per inode, so plugins never count;
//! - [`backing`]: kernel FUSE passthrough, the backing files behind open handles;
//! - [`session`]: a mount's life, from mountpoint check to unmount;
//! - [`mount_options`]: the per-mount options the host understands;
//! - [`mount_table`]: what is mounted where (`/proc/self/mountinfo`);
//! - [`contract`]: every plugin answer checked as the kernel will check it;
//! - [`dir_sinks`]: directory entries from the plugin into the kernel's buffer;
//! - [`forgetter`]: telling plugins to forget, never blocking a request;
//! - [`crash`]: one line and no dead mounts when a plugin crashes the process;
//! - [`log_limit`]: rate limits for log lines a client can provoke;
//! - [`signals`], [`logging`], [`stats`], [`error`]: what their names say;
//! - [`commands`]: one file per `fusehost` subcommand.
//!
//! The choices behind them are recorded in the project's DESIGN.md: why abi_stable's
//! `load_from_file` is avoided, why the host unmounts itself instead of trusting
//! fuser's `AutoUnmount`, and why mounts default to two threads with `clone_fd`.

pub mod abi_adapters;
pub mod backing;
pub mod capabilities;
pub mod commands;
pub mod config;
pub mod contract;
pub mod control;
pub mod crash;
pub mod dir_sinks;
pub mod dispatch;
pub mod error;
pub mod forgetter;
pub mod later_requests;
pub mod loader;
pub mod log_limit;
pub mod logging;
pub mod lookup_table;
pub mod metrics_server;
pub mod mount_options;
pub mod mount_table;
pub mod notifications;
pub mod presentation;
pub mod prometheus;
pub mod session;
pub mod signals;
pub mod stats;
pub mod status_report;
pub mod supervisor;
pub mod systemd;
