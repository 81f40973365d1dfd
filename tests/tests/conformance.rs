//! memfs and passthrough (over tmpfs) against the standard conformance tools, through
//! fusehost:
//! - pjdfstest 0.2.2 as root, `allow_other` and `default_permissions`, with a second
//!   mount of the same plugin for the cross-device tests. tmpfs on the same machine
//!   gives 384 passed, 0 failed, 14 skipped; the bar is 0 failed and at least 384
//!   passed. passthrough runs it twice: as usual, and under an open-file limit of 96,
//!   which it serves through file handles.
//! - fsx 0.3.2 with every operation type, 100,000 operations: memfs at two seeds,
//!   passthrough at one.
//!
//! `.ci/run` installs both tools and the `tests` user pjdfstest switches to. Elsewhere
//! a missing tool skips these tests with a message saying how to install it; under CI
//! (`CI` set) it fails them instead.

use std::process::Command;
use std::time::Duration;

use fusehost_tests::{fusehost, fusehost_through, run_within, tool, Host, Tmpfs};

const TOOL_TIMEOUT: Duration = Duration::from_secs(900);

/// Runs a conformance tool to the end (bounded) and returns its exit success and output.
fn run_tool(mut command: Command) -> (bool, String) {
    command.env("RUST_BACKTRACE", "0");
    let output = run_within(command, TOOL_TIMEOUT);
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// The `N word` count in pjdfstest's summary line.
fn count(summary: &str, word: &str) -> u64 {
    let words: Vec<&str> = summary.split([' ', ',']).filter(|word| !word.is_empty()).collect();
    words.windows(2).find(|pair| pair[1] == word).and_then(|pair| pair[0].parse().ok()).unwrap_or(0)
}

/// Runs pjdfstest on two mounts of `plugin`, each started with `options(i)` by
/// `launcher` (fusehost's command, or one that starts it).
fn pjdfstest_on(plugin: &str, options: impl Fn(usize) -> String, launcher: impl Fn() -> Command) {
    let Some(pjdfstest) = tool("pjdfstest", "cargo install pjdfstest --version 0.2.2 --locked") else { return };
    let users = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    if !users.lines().any(|line| line.starts_with("tests:")) {
        let message = "pjdfstest needs a `tests` user: useradd --system -M -U -s /usr/sbin/nologin tests";
        assert!(std::env::var_os("CI").is_none(), "{message}");
        eprintln!("SKIPPED: {message}");
        return;
    }
    let main = Host::mount_with(launcher(), plugin, &[&options(0)]);
    let secondary = Host::mount_with(launcher(), plugin, &[&options(1)]);
    for host in [&main, &secondary] {
        // Every test user must be able to reach the mount roots.
        std::fs::set_permissions(host.mountpoint(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        std::fs::set_permissions(host.dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let nobody_group = if std::fs::read_to_string("/etc/group").unwrap_or_default().contains("\nnogroup:") {
        "nogroup"
    } else {
        "nobody"
    };
    let config = main.dir.path().join("pjdfstest.toml");
    std::fs::write(
        &config,
        format!(
            "[features]\nposix_fallocate = {{}}\nutime_now = {{}}\nutimensat = {{}}\nrename_ctime = {{}}\n\n\
             [settings]\nnaptime = 0.01\nallow_remount = false\n\n\
             [dummy_auth]\nentries = [[\"nobody\", \"{nobody_group}\"], [\"tests\", \"tests\"]]\n"
        ),
    )
    .unwrap();

    let mut command = Command::new(pjdfstest);
    command.arg("-c").arg(&config).arg("-p").arg(main.mountpoint()).arg("-s").arg(secondary.mountpoint());
    command.current_dir(main.mountpoint());
    let (_, output) = run_tool(command);
    let summary = output.lines().find(|line| line.starts_with("Summary:")).unwrap_or_else(|| panic!("{output}"));
    println!("pjdfstest on {plugin}: {summary}");
    let failures: Vec<&str> = output.lines().filter(|line| line.contains("FAILED")).collect();
    assert_eq!(count(summary, "failed"), 0, "{summary}\n{}", failures.join("\n"));
    assert!(count(summary, "passed") >= 384, "{summary}");
}

#[test]
fn pjdfstest_passes_on_memfs_like_on_tmpfs() {
    pjdfstest_on("memfs", |_| "allow_other".to_owned(), fusehost);
}

#[test]
fn pjdfstest_passes_on_passthrough_over_tmpfs_like_on_tmpfs() {
    pjdfstest_on_passthrough(fusehost);
}

#[test]
fn pjdfstest_passes_on_passthrough_holding_file_handles_instead_of_descriptors() {
    // A hard limit of 96 descriptors: past 48 held, nodes are kept as file handles,
    // and pjdfstest's deepest paths alone need more folders than that.
    pjdfstest_on_passthrough(|| fusehost_through("prlimit", &["--nofile=96:96", "--"]));
}

fn pjdfstest_on_passthrough(launcher: impl Fn() -> Command) {
    let sources = [Tmpfs::new(), Tmpfs::new()];
    for source in &sources {
        std::fs::set_permissions(source.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    }
    pjdfstest_on("passthrough", |i| format!("allow_other,source={}", sources[i].path().display()), launcher);
}

fn fsx_at_seed(plugin: &str, options: &str, seed: u32) {
    let Some(fsx) = tool("fsx", "cargo install fsx --version 0.3.2 --locked") else { return };
    let host = Host::mount(plugin, &[options]);
    let config = host.dir.path().join("fsx.toml");
    // Every operation type fsx 0.3.2 has, with a non-zero weight.
    std::fs::write(
        &config,
        "flen = 262144\n\n[weights]\nclose_open = 1\ninvalidate = 1\nmapread = 10\nmapwrite = 10\nread = 10\n\
         write = 10\ntruncate = 10\nfsync = 2\nfdatasync = 2\nposix_fallocate = 5\npunch_hole = 5\nsendfile = 5\n\
         posix_fadvise = 2\ncopy_file_range = 5\n",
    )
    .unwrap();
    let mut command = Command::new(fsx);
    command.arg("-f").arg(&config).args(["-N", "100000", "-S", &seed.to_string(), "-P"]).arg(host.dir.path());
    command.arg(host.path("fsx.data"));
    let (success, output) = run_tool(command);
    let tail: Vec<&str> = output.lines().rev().take(30).collect();
    assert!(success, "fsx on {plugin}, seed {seed} failed:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    assert!(output.contains("All operations completed A-OK!"), "{output}");
    println!("fsx on {plugin}, seed {seed}: 100000 operations A-OK");
}

#[test]
fn fsx_runs_clean_on_memfs_seed_1() {
    fsx_at_seed("memfs", "", 1);
}

#[test]
fn fsx_runs_clean_on_memfs_seed_2() {
    fsx_at_seed("memfs", "", 2);
}

#[test]
fn fsx_runs_clean_on_passthrough_over_tmpfs() {
    let source = Tmpfs::new();
    fsx_at_seed("passthrough", &format!("source={}", source.path().display()), 3);
}
