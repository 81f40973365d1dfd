//! The `fusehost` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, CommandFactory, Parser, Subcommand};
use fusehost::commands::{check, mount, mount_helper, new_plugin, package_files, plugins, run, status};
use fusehost::error::{HostError, EXIT_BAD_INPUT, EXIT_FAILURE};
use fusehost::logging::{default_format, LogFormat};

/// Mount FUSE filesystems that live in plugin shared libraries.
#[derive(Debug, Parser)]
#[command(
    name = "fusehost",
    version,
    about,
    long_about = "Mount FUSE filesystems that live in plugin shared libraries (libfusehost_NAME.so).\n\n\
        `fusehost run` serves every mount of a config file (default /etc/fusehost/mounts.toml for root, \
        $XDG_CONFIG_HOME/fusehost/mounts.toml otherwise, with drop-ins in mounts.d/*.toml; see \
        fusehost.toml(5)); `fusehost mount` serves one plugin; installed as /sbin/mount.fusehost it is \
        mount(8)'s helper for fstab lines of type fusehost (and fuse.fusehost through mount.fuse3). \
        Plugins are looked up in --plugin-dir, $FUSEHOST_PLUGIN_PATH, the binary's folder and \
        lib/fusehost/plugins beside it, /usr/lib/fusehost/plugins and /usr/local/lib/fusehost/plugins.\n\n\
        The units fusehost@.service and fusehost-user@.service run `fusehost run` under systemd \
        (Type=notify). `fusehost status` and [host] metrics_listen report each mount's requests, \
        errors and latency."
)]
struct Cli {
    /// More log detail (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,

    /// How log lines look: text, json (one object per line), or journal (for
    /// journald: no timestamp, a priority per line). Default: journal when stderr is
    /// the journal, else text.
    #[arg(long, value_enum, global = true, value_name = "FORMAT")]
    log_format: Option<LogFormat>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mount every [[mount]] of a config file and serve them in the foreground;
    /// SIGHUP reloads the file, Ctrl-C or SIGTERM unmounts everything.
    Run {
        /// The mount configuration (TOML). Default: /etc/fusehost/mounts.toml for root,
        /// else $XDG_CONFIG_HOME/fusehost/mounts.toml; drop-ins in NAME.d/*.toml.
        config: Option<PathBuf>,
    },
    /// Check a config file: parse it, load every plugin, validate every plugin's
    /// options and mountpoint. Mounts nothing; exit 0 when all is well, else 1.
    Check {
        /// The mount configuration (TOML); default as for `run`.
        config: Option<PathBuf>,
    },
    /// List the plugins found, with versions, ABI status, thread model and options.
    Plugins {
        /// Look here first (then $FUSEHOST_PLUGIN_PATH, then next to fusehost).
        #[arg(long, value_name = "DIR")]
        plugin_dir: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the mounts of a running `fusehost run`, with request counters.
    Status {
        /// Print the status document as JSON (the same as --format json).
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// text (default), json, or prometheus (for node_exporter's textfile collector).
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: Option<status::StatusFormat>,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Ask a running `fusehost run` to reread its config (like SIGHUP).
    Reload {
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Write a new plugin crate to start from: hello's shape, the right Cargo.toml,
    /// and one passing test of each kind (ABI harness; in-process mount).
    NewPlugin {
        /// The plugin's name (lowercase, digits, `_`): `fusehost mount NAME` finds it.
        name: String,
        /// A new (or empty) folder for the crate.
        dir: PathBuf,
        /// Depend on the SDK in this fusehost checkout (default: the checkout this
        /// binary was built from, if present, else crates.io).
        #[arg(long, value_name = "DIR")]
        sdk: Option<PathBuf>,
    },
    /// Write the man pages and shell completions a package installs into DIR/man and
    /// DIR/completions.
    #[command(hide = true)]
    PackageFiles { dir: PathBuf },
    /// Mount one plugin in the foreground; Ctrl-C or SIGTERM unmounts.
    Mount {
        /// A plugin name (found as libfusehost_NAME.so) or a path to a .so.
        plugin: String,
        /// `[SOURCE] MOUNTPOINT`: what to mount, for a plugin that names a source option
        /// (archive's file, passthrough's folder; `fusehost plugins` shows it), and an
        /// existing directory to mount on.
        #[arg(num_args = 1..=2, value_name = "[SOURCE] MOUNTPOINT", required = true)]
        paths: Vec<PathBuf>,
        /// Options: the host's (ro, allow_other, allow_root, default_permissions,
        /// fsname, threads, max_in_flight, attr_ttl, entry_ttl, negative_ttl, writeback_cache,
        /// allow_kernel_passthrough, create, allow_panic_abort); every other key goes
        /// to the plugin. Repeatable; comma-separated.
        #[arg(short = 'o', value_name = "KEY[=VALUE],...")]
        options: Vec<String>,
        /// Look for plugins here first (then $FUSEHOST_PLUGIN_PATH, then next to fusehost).
        #[arg(long, value_name = "DIR")]
        plugin_dir: Option<PathBuf>,
        /// The mount's name in logs and status (default: the plugin's name).
        #[arg(long)]
        name: Option<String>,
        /// Answer `fusehost status --socket PATH` here (default: the default control
        /// socket, when no other fusehost holds it).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
}

/// Which running host to talk to.
#[derive(Debug, clap::Args)]
struct SocketArgs {
    /// The control socket (default: the config's, else $XDG_RUNTIME_DIR/fusehost.sock,
    /// else /run/fusehost/fusehost.sock).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Take the control socket from this config file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// `fusehost --version`: what this host speaks and where it looks, for bug reports.
fn version_text() -> String {
    let search = fusehost::loader::SearchPath::standard(None);
    let folders: Vec<String> = search.dirs.iter().map(|dir| format!("  {}", dir.display())).collect();
    format!(
        "fusehost {}\nplugin ABI: fusehost-abi {} (loads plugins built for any {}.x; semantics revision {})\n\
         abi_stable 0.11.3, fuser 0.18\nplugin search path (after --plugin-dir):\n{}",
        env!("CARGO_PKG_VERSION"),
        fusehost_abi::ABI_VERSION,
        fusehost_abi::ABI_MAJOR,
        fusehost_abi::SEMANTICS_REVISION,
        folders.join("\n")
    )
}

fn main() -> ExitCode {
    fusehost::crash::install();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.len() == 2 && matches!(args[1].to_str(), Some("--version" | "-V")) {
        println!("{}", version_text());
        return ExitCode::SUCCESS;
    }
    let definition = Cli::command();
    let mut subcommands: Vec<&str> = definition.get_subcommands().map(clap::Command::get_name).collect();
    subcommands.push("help");
    if let Some(helper) = mount_helper::recognise(&args, &subcommands) {
        // mount(8) or mount.fuse3 calling: `SOURCE MOUNTPOINT -o OPTIONS`.
        return match helper {
            Ok(helper) => ExitCode::from(mount_helper::run(helper, 0).clamp(0, 255) as u8),
            Err(usage) => {
                eprintln!("mount.fusehost: {usage}");
                ExitCode::from(EXIT_BAD_INPUT as u8)
            }
        };
    }
    let cli = Cli::parse_from(args);
    let verbose = cli.verbose;
    let log_format = cli.log_format.unwrap_or_else(default_format);
    if !matches!(cli.command, Command::Run { .. }) {
        fusehost::logging::init(verbose, None, log_format);
    }
    let outcome = match cli.command {
        Command::Run { config } => run::run(&config_or_default(config), verbose, log_format),
        // check answers yes (0) or no (1), whatever the reason for the no.
        Command::Check { config } => match check::run(&config_or_default(config)) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(EXIT_FAILURE as u8),
            Err(error) => {
                report(&error, verbose);
                return ExitCode::from(EXIT_FAILURE as u8);
            }
        },
        Command::Plugins { plugin_dir, json } => plugins::run(plugin_dir.as_deref(), json),
        Command::Status { json, format, socket } => {
            let format = if json { status::StatusFormat::Json } else { format.unwrap_or(status::StatusFormat::Text) };
            status::socket_path(socket.socket, socket.config.as_deref()).and_then(|path| status::status(&path, format))
        }
        Command::Reload { socket } => {
            match status::socket_path(socket.socket, socket.config.as_deref()).and_then(|path| status::reload(&path)) {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::from(EXIT_FAILURE as u8),
                Err(error) => Err(error),
            }
        }
        Command::PackageFiles { dir } => package_files::run(Cli::command(), &dir),
        Command::NewPlugin { name, dir, sdk } => new_plugin::run(new_plugin::NewPluginArgs { name, dir, sdk }),
        Command::Mount { plugin, mut paths, options, plugin_dir, name, socket } => {
            let mountpoint = paths.pop().unwrap_or_default();
            let source = paths.pop();
            mount::run(mount::MountArgs { plugin, source, mountpoint, options, plugin_dir, name, socket })
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(&error, verbose),
    }
}

/// The config file given, else the default one.
fn config_or_default(config: Option<PathBuf>) -> PathBuf {
    config.unwrap_or_else(fusehost::config::default_config_path)
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
