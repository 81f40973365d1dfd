//! fusehost as a mount(8) helper: `/sbin/mount.fusehost` (this binary under that
//! name) for fstab type `fusehost`, and `fusehost SOURCE MOUNTPOINT -o ...` as
//! `mount.fuse3` runs it for type `fuse.fusehost`.
//!
//! An fstab line is `SOURCE MOUNTPOINT fusehost OPTIONS 0 0`. With `plugin=NAME` among
//! the options, SOURCE is what the plugin mounts (the value of its source option:
//! `/srv/a.tar.gz /mnt/a fusehost ro,plugin=archive 0 0`); without it SOURCE is the
//! plugin's name (`memfs /mnt/scratch fusehost defaults,nofail 0 0`). Generic mount
//! words are consumed or mapped to kernel flags (`mount_options`), `\,` is a comma inside
//! a value.
//!
//! mount(8) waits for its helper, so the helper daemonizes only once the mount is up:
//! the parent exits 0 then, or non-zero with the error; `-f` stays in the foreground.
//! `umount MOUNTPOINT` ends the session, and with it the daemon.

use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;

use crate::commands::foreground::serve_until_stopped;
use crate::commands::mount::{self, MountArgs};
use crate::error::HostError;
use crate::mount_options::list_items;
use crate::signals;

/// A helper invocation, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperArgs {
    pub source: String,
    pub mountpoint: PathBuf,
    pub options: Vec<String>,
    pub foreground: bool,
}

/// Whether this command line is a mount helper's, and its arguments: the program is
/// called `mount.fusehost` (or `mount.fuse.fusehost`), or the first argument is no
/// subcommand and no flag (how `mount.fuse3` runs `fusehost`). `subcommands` are the
/// command line's own (from its clap definition), which a helper's never starts with.
pub fn recognise(args: &[OsString], subcommands: &[&str]) -> Option<Result<HelperArgs, String>> {
    let program = args.first().map(PathBuf::from)?;
    let called = program.file_name().and_then(|name| name.to_str()).unwrap_or_default().to_owned();
    let as_helper = called == "mount.fusehost" || called == "mount.fuse.fusehost";
    let first = args.get(1).and_then(|arg| arg.to_str()).unwrap_or_default();
    let fuse3_style = !first.is_empty() && !first.starts_with('-') && !subcommands.contains(&first) && args.len() >= 3;
    (as_helper || fuse3_style).then(|| parse(&args[1..]))
}

fn parse(args: &[OsString]) -> Result<HelperArgs, String> {
    let mut positional = Vec::new();
    let mut options = Vec::new();
    let mut foreground = false;
    let mut words = args.iter().map(|arg| arg.to_string_lossy().into_owned());
    while let Some(word) = words.next() {
        match word.as_str() {
            "-o" => options.push(words.next().ok_or("-o needs a list of options")?),
            "-f" => foreground = true,
            // mount(8)'s own: no mtab (there is none), sloppy, verbose, the type.
            "-n" | "-s" | "-v" => {}
            "-t" | "-N" => {
                words.next();
            }
            option if option.starts_with("-o") => options.push(option[2..].to_owned()),
            flag if flag.starts_with('-') => return Err(format!("unknown flag `{flag}`")),
            _ => positional.push(word),
        }
    }
    match <[String; 2]>::try_from(positional) {
        Ok([source, mountpoint]) => Ok(HelperArgs { source, mountpoint: mountpoint.into(), options, foreground }),
        Err(_) => Err("usage: mount.fusehost SOURCE MOUNTPOINT [-o OPTIONS] [-f]".to_owned()),
    }
}

/// What `fusehost mount` is asked for by a helper invocation: `plugin=` taken out of
/// the options, and SOURCE the plugin's name or the value of its source option.
fn mount_args(helper: HelperArgs) -> MountArgs {
    let mut plugin = None;
    let mut kept = Vec::new();
    for item in helper.options.iter().flat_map(|list| list_items(list)) {
        match item.trim().strip_prefix("plugin=") {
            Some(name) => plugin = Some(name.to_owned()),
            None => kept.push(item.replace('\\', "\\\\").replace(',', "\\,")),
        }
    }
    let (plugin, source) = match plugin {
        Some(plugin) => (plugin, Some(PathBuf::from(helper.source))),
        None => (helper.source, None),
    };
    MountArgs {
        plugin,
        source,
        mountpoint: helper.mountpoint,
        options: vec![kept.join(",")],
        plugin_dir: None,
        name: None,
        socket: None,
    }
}

/// Runs a helper invocation; returns the process's exit code.
pub fn run(helper: HelperArgs, verbosity: u8) -> i32 {
    let foreground = helper.foreground;
    let args = mount_args(helper);
    if foreground {
        crate::logging::init(verbosity, None, crate::logging::default_format());
        return match mount_and_serve(args, || {}) {
            Ok(()) => 0,
            Err(error) => report(&error),
        };
    }
    match daemonize() {
        Ok(Side::Parent(mut from_child)) => {
            let mut said = String::new();
            let _ = from_child.read_to_string(&mut said);
            if said.starts_with("ok") {
                0
            } else {
                let message = if said.is_empty() { "the mount daemon ended before mounting" } else { said.trim() };
                eprintln!("mount.fusehost: {message}");
                1
            }
        }
        Ok(Side::Child(to_parent)) => {
            // Quiet on mount(8)'s terminal: warnings and errors only (-f shows it all).
            crate::logging::init(verbosity, Some("warn,fuser=error"), crate::logging::default_format());
            let mut to_parent = Some(to_parent);
            let outcome = mount_and_serve(args, || {
                // Closing the pipe is what lets the parent (and mount(8)) return.
                if let Some(mut pipe) = to_parent.take() {
                    let _ = pipe.write_all(b"ok\n");
                }
                detach_stdio();
            });
            match outcome {
                Ok(()) => 0,
                Err(error) => {
                    if let Some(mut pipe) = to_parent.take() {
                        let _ = writeln!(pipe, "{error}");
                    }
                    1
                }
            }
        }
        Err(error) => report(&HostError::Io { context: "starting the mount daemon".into(), source: error }),
    }
}

fn report(error: &HostError) -> i32 {
    eprintln!("mount.fusehost: {error}");
    error.exit_code()
}

/// Mounts, calls `ready` once the mount is up, and serves until a signal or an
/// `umount`.
fn mount_and_serve(args: MountArgs, ready: impl FnOnce()) -> Result<(), HostError> {
    let signals =
        signals::listen().map_err(|source| HostError::Io { context: "installing signal handlers".into(), source })?;
    let (running, _) = mount::start(args)?;
    tracing::info!(mount = %running.name, "mounted at {}; umount ends it", running.mountpoint.display());
    ready();
    serve_until_stopped(vec![running], &signals, crate::config::DEFAULT_STOP_TIMEOUT);
    Ok(())
}

enum Side {
    Parent(std::fs::File),
    Child(std::fs::File),
}

/// Forks: the parent gets the read end of a pipe on which the child says whether it
/// mounted; the child, in a session of its own, gets the write end.
fn daemonize() -> std::io::Result<Side> {
    let (reader, writer) = rustix::pipe::pipe()?;
    // SAFETY: the helper forks first thing, before logging, signal handling or any
    // session has started a thread, so the child is a copy of a single-threaded process
    // and may go on running normal Rust code.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            drop(reader);
            let _ = rustix::process::setsid();
            Ok(Side::Child(std::fs::File::from(writer)))
        }
        _ => {
            drop(writer);
            Ok(Side::Parent(std::fs::File::from(reader)))
        }
    }
}

/// Once mounted, the daemon lets go of mount(8)'s terminal and pipes.
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
        let _ = rustix::stdio::dup2_stderr(&null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBCOMMANDS: &[&str] = &["run", "mount", "help"];

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn helper_command_lines_are_recognised() {
        let helper = recognise(&args(&["/sbin/mount.fusehost", "memfs", "/mnt/x", "-o", "rw,uid=1"]), SUBCOMMANDS)
            .unwrap()
            .unwrap();
        assert_eq!(helper.source, "memfs");
        assert_eq!(helper.options, ["rw,uid=1"]);
        let fuse3 = recognise(&args(&["fusehost", "/srv/a.tar", "/mnt/a", "-o", "plugin=archive"]), SUBCOMMANDS)
            .unwrap()
            .unwrap();
        assert_eq!(fuse3.mountpoint, PathBuf::from("/mnt/a"));
        assert!(recognise(&args(&["fusehost", "mount", "memfs", "/mnt"]), SUBCOMMANDS).is_none());
        assert!(recognise(&args(&["fusehost", "-v", "run", "x.toml"]), SUBCOMMANDS).is_none());
    }

    #[test]
    fn plugin_picks_the_plugin_and_source_becomes_its_source() {
        let helper = HelperArgs {
            source: "/srv/a.tar".into(),
            mountpoint: "/mnt/a".into(),
            options: vec![r"ro,plugin=archive,note=a\,b".into()],
            foreground: false,
        };
        let mount = mount_args(helper);
        assert_eq!(mount.plugin, "archive");
        assert_eq!(mount.source, Some(PathBuf::from("/srv/a.tar")));
        assert_eq!(mount.options, [r"ro,note=a\,b"]);
    }
}
