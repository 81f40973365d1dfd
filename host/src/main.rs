//! The `fusehost` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand};
use fusehost::commands::{demo, mount};
use fusehost::error::{HostError, EXIT_BAD_INPUT};

/// Mount FUSE filesystems that live in plugin shared libraries.
#[derive(Debug, Parser)]
#[command(name = "fusehost", version, about)]
struct Cli {
    /// More log detail (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mount one plugin in the foreground; Ctrl-C or SIGTERM unmounts.
    Mount {
        /// A plugin name (found as libfusehost_NAME.so) or a path to a .so.
        plugin: String,
        /// An existing directory to mount on.
        mountpoint: PathBuf,
        /// Options: the host's (ro, allow_other, allow_root, default_permissions,
        /// fsname, threads, attr_ttl, entry_ttl, writeback_cache, create); every other
        /// key goes to the plugin. Repeatable; comma-separated.
        #[arg(short = 'o', value_name = "KEY[=VALUE],...")]
        options: Vec<String>,
        /// Look for plugins here first (then $FUSEHOST_PLUGIN_PATH, then next to fusehost).
        #[arg(long, value_name = "DIR")]
        plugin_dir: Option<PathBuf>,
    },
    /// Mount the hello plugin at a new temporary folder and print where.
    Demo {
        /// Look for plugins here first.
        #[arg(long, value_name = "DIR")]
        plugin_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    fusehost::logging::init(cli.verbose);
    let outcome = match cli.command {
        Command::Mount { plugin, mountpoint, options, plugin_dir } => {
            mount::run(mount::MountArgs { plugin, mountpoint, options, plugin_dir })
        }
        Command::Demo { plugin_dir } => demo::run(plugin_dir),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(&error, cli.verbose),
    }
}

/// One sentence on stderr (abi_stable's layout report only with -v) and the exit code.
fn report(error: &HostError, verbose: u8) -> ExitCode {
    eprintln!("fusehost: {error}");
    if let HostError::Load(load) = error {
        if let Some(detail) = load.detail().filter(|_| verbose > 0) {
            eprintln!("{detail}");
        }
    }
    let code = u8::try_from(error.exit_code()).unwrap_or(EXIT_BAD_INPUT as u8);
    ExitCode::from(code)
}
