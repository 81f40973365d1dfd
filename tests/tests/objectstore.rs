//! The objectstore plugin against a real Garage server on loopback (see
//! `fusehost_tests::garage`): files from 0 bytes to 100 MiB byte-exact, listings,
//! renames and deletes; two mounts of one bucket seeing each other's closed files
//! after the TTL; 64 reads waiting in the plugin at once with 2 worker threads; a
//! store that dies or freezes mid-read failing the request, then working again; fsx.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use fusehost_tests::garage::Garage;
use fusehost_tests::{config_mountpoint, fusehost, mount_lines, run_to_end, status_json, tool, write_config, Host};
use rustix::process::Signal;

const BUCKET: &str = "fusehost";

/// Runs one host with a mount of `BUCKET` per `(name, host keys, plugin options)`.
fn mount(garage: &Garage, mounts: &[(&str, &str, &str)]) -> Host {
    let dir = tempfile::tempdir().unwrap();
    let extras: Vec<String> =
        mounts.iter().map(|(_, host, plugin)| format!("{host}\n{}", garage.mount_options(BUCKET, plugin))).collect();
    let lines: Vec<_> =
        mounts.iter().zip(&extras).map(|((name, _, _), extra)| mount_lines(name, "objectstore", extra)).collect();
    let config = write_config(dir.path(), &lines);
    let points = mounts.iter().map(|(name, _, _)| config_mountpoint(dir.path(), name)).collect();
    let mut command = fusehost();
    command.arg("run").arg(&config).envs(garage.credentials());
    let mut host = Host::spawn(command, dir, points);
    host.wait_until_mounted();
    host
}

fn stop(mut host: Host) -> String {
    host.signal(Signal::TERM);
    let status = host.wait_exit(Duration::from_secs(30)).expect("fusehost exits on SIGTERM");
    assert!(status.success(), "{}", host.stderr());
    host.stderr()
}

/// `len` bytes that differ from one position (and one seed) to the next.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Runs `operation` in the background, failing the test past `limit`.
fn within<T: Send + 'static>(limit: Duration, operation: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = channel();
    std::thread::spawn(move || {
        let _ = done.send(operation());
    });
    result.recv_timeout(limit).unwrap_or_else(|_| panic!("not done within {limit:?}"))
}

fn names(dir: &Path) -> Vec<String> {
    let dir = dir.to_path_buf();
    let mut names: Vec<String> = within(Duration::from_secs(30), move || {
        std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect()
    });
    names.sort();
    names
}

#[test]
fn files_from_empty_to_100_mib_round_trip_byte_exact_and_list_rename_and_delete() {
    let Some(garage) = Garage::start(BUCKET) else { return };
    let host = mount(&garage, &[("bucket", "", "")]);
    let root = host.mountpoint().to_path_buf();
    let sizes = [0usize, 1, 4095, 4096, 65_536, (4 << 20) + 1, 100 << 20];
    std::fs::create_dir(root.join("data")).unwrap();
    for (seed, &size) in sizes.iter().enumerate() {
        let (path, data) = (root.join(format!("data/file-{size}")), pattern(size, seed as u64));
        let written = data.clone();
        within(Duration::from_secs(120), move || std::fs::write(path, written).unwrap());
        let path = root.join(format!("data/file-{size}"));
        let read = within(Duration::from_secs(120), move || std::fs::read(path).unwrap());
        assert!(read == data, "file of {size} bytes read back differently");
    }
    let listed = names(&root.join("data"));
    let expected: Vec<String> = {
        let mut names: Vec<String> = sizes.iter().map(|size| format!("file-{size}")).collect();
        names.sort();
        names
    };
    assert_eq!(listed, expected);
    let big = std::fs::metadata(root.join(format!("data/file-{}", 100 << 20))).unwrap();
    assert_eq!(big.len(), 100 << 20);

    // A byte in the middle of a file, rewritten in place, uploads the whole new object.
    let path = root.join("data/file-65536");
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().write_all_at(b"X", 1000).unwrap();
    let mut expected = pattern(65_536, 4);
    expected[1000] = b'X';
    assert!(std::fs::read(&path).unwrap() == expected);

    std::fs::rename(root.join("data/file-4096"), root.join("renamed")).unwrap();
    assert_eq!(std::fs::read(root.join("renamed")).unwrap(), pattern(4096, 3));
    assert!(!names(&root.join("data")).contains(&"file-4096".to_owned()));
    let error = std::fs::rename(root.join("data"), root.join("moved")).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc::EXDEV), "a directory rename is refused with EXDEV (mv copies)");

    // Unlinked while open for writing: closing it does not bring the name back.
    let mut open = std::fs::File::create(root.join("scratch")).unwrap();
    std::io::Write::write_all(&mut open, b"never stored").unwrap();
    std::fs::remove_file(root.join("scratch")).unwrap();
    assert!(!names(&root).contains(&"scratch".to_owned()), "an unlinked file still open is listed");
    drop(open);
    assert!(!names(&root).contains(&"scratch".to_owned()), "an unlinked file came back at close");

    std::fs::remove_file(root.join("renamed")).unwrap();
    assert_eq!(std::fs::metadata(root.join("renamed")).unwrap_err().kind(), std::io::ErrorKind::NotFound);
    assert_eq!(std::fs::remove_dir(root.join("data")).unwrap_err().raw_os_error(), Some(libc::ENOTEMPTY));
    for size in sizes.iter().filter(|&&size| size != 4096) {
        std::fs::remove_file(root.join(format!("data/file-{size}"))).unwrap();
    }
    std::fs::remove_dir(root.join("data")).unwrap();
    assert_eq!(names(&root), Vec::<String>::new());
    let error = std::fs::hard_link(root.join("x"), root.join("y")).unwrap_err();
    assert!(matches!(error.raw_os_error(), Some(libc::EPERM) | Some(libc::ENOENT)), "{error}");
    std::fs::write(root.join("x"), b"x").unwrap();
    assert_eq!(std::fs::hard_link(root.join("x"), root.join("y")).unwrap_err().raw_os_error(), Some(libc::EPERM));
    assert_eq!(
        std::os::unix::fs::symlink("x", root.join("link")).unwrap_err().raw_os_error(),
        Some(libc::EPERM),
        "no symlinks in an object store"
    );
    stop(host);
}

/// What a 1.0 or 1.1 host does with this plugin: every request on the host's worker
/// threads, through the plugin's synchronous methods.
#[test]
fn the_synchronous_path_of_an_older_host_serves_the_same_files() {
    let Some(garage) = Garage::start(BUCKET) else { return };
    let host = mount(&garage, &[("bucket", "", "answer_later = false")]);
    let root = host.mountpoint().to_path_buf();
    std::fs::create_dir(root.join("dir")).unwrap();
    for (seed, size) in [0usize, 5000, (9 << 20) + 3].into_iter().enumerate() {
        let (path, data) = (root.join(format!("dir/f{size}")), pattern(size, seed as u64));
        let written = data.clone();
        within(Duration::from_secs(60), move || std::fs::write(path, written).unwrap());
        let path = root.join(format!("dir/f{size}"));
        assert!(within(Duration::from_secs(60), move || std::fs::read(path).unwrap()) == data, "{size} bytes");
    }
    assert_eq!(names(&root.join("dir")), vec!["f0", "f5000", "f9437187"]);
    std::fs::rename(root.join("dir/f5000"), root.join("moved")).unwrap();
    assert_eq!(std::fs::read(root.join("moved")).unwrap(), pattern(5000, 1));
    std::fs::remove_file(root.join("moved")).unwrap();
    let status = status_json(&host.control_socket());
    assert!(status["mounts"][0].get("answered_later").is_none(), "nothing answered later: {status}");
    stop(host);
}

#[test]
fn two_mounts_of_one_bucket_see_each_others_closed_files_after_the_ttl() {
    let Some(garage) = Garage::start(BUCKET) else { return };
    let ttl = Duration::from_secs(1);
    let options = format!("cache_ttl = \"{}ms\"", ttl.as_millis());
    let host = mount(&garage, &[("one", "", &options), ("two", "", &options)]);
    let (one, two) = (host.mountpoints[0].clone(), host.mountpoints[1].clone());
    // The second "machine" looks first, so that it holds an answer to outlive.
    assert_eq!(std::fs::metadata(two.join("shared")).unwrap_err().kind(), std::io::ErrorKind::NotFound);
    assert_eq!(names(&two), Vec::<String>::new());
    std::fs::write(one.join("shared"), b"from one\n").unwrap();
    let seen = wait_until(ttl * 10, || std::fs::read(two.join("shared")).ok());
    assert_eq!(seen.expect("the second mount sees the file after the TTL"), b"from one\n");
    assert_eq!(names(&two), vec!["shared".to_owned()]);

    std::fs::write(one.join("shared"), b"rewritten by one, longer\n").unwrap();
    let seen = wait_until(ttl * 10, || std::fs::read(two.join("shared")).ok().filter(|data| data.len() > 9));
    assert_eq!(seen.expect("the new content after the TTL"), b"rewritten by one, longer\n");

    std::fs::remove_file(two.join("shared")).unwrap();
    let gone = wait_until(ttl * 10, || std::fs::metadata(one.join("shared")).is_err().then_some(()));
    assert!(gone.is_some(), "the delete on two reaches one after the TTL");
    stop(host);
}

#[test]
fn a_truncate_is_cached_for_the_cache_ttl_not_the_mounts() {
    let Some(garage) = Garage::start(BUCKET) else { return };
    // The mount's TTLs (60 s) say the opposite of the plugin's (0 s): setattr's answer,
    // given later with its own TTL (ABI 1.3), decides.
    let host = mount(&garage, &[("bucket", "attr_ttl = 60\nentry_ttl = 60", "cache_ttl = \"0s\"")]);
    let file = std::fs::File::create(host.path("truncated")).unwrap();
    file.set_len(5).unwrap();
    let getattrs = || status_json(&host.control_socket())["mounts"][0]["requests"]["getattr"]["requests"].as_u64();
    let before = getattrs().unwrap_or(0);
    for _ in 0..3 {
        assert_eq!(file.metadata().unwrap().len(), 5);
    }
    let asked = getattrs().unwrap_or(0) - before;
    assert!(asked >= 3, "{asked} getattrs for 3 stats of a file whose attributes may not be cached");
    drop(file);
    stop(host);
}

/// Polls `check` until it gives a value or `limit` passes.
fn wait_until<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The process's threads by name, and how many have each.
fn thread_names(pid: u32) -> Vec<(String, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default().trim().to_owned();
        *counts.entry(name).or_insert(0) += 1;
    }
    counts.into_iter().collect()
}

#[test]
fn sixty_four_reads_wait_in_the_plugin_at_once_with_two_worker_threads() {
    let Some(garage) = Garage::start(BUCKET) else { return };
    let host = mount(&garage, &[("bucket", "threads = 2", "cache_ttl = \"60s\"")]);
    let root = host.mountpoint().to_path_buf();
    for index in 0..64 {
        std::fs::write(root.join(format!("object-{index}")), pattern(65_536, index)).unwrap();
    }
    // Known to the kernel (looked up, attributes cached), but no data cached yet: the
    // reads below must each ask the store.
    assert_eq!(names(&root).len(), 64);
    let socket = host.control_socket();
    let before = status_json(&socket)["mounts"][0]["answered_later"]["total"].as_u64().unwrap_or(0);
    garage.freeze();
    let (done, finished) = channel();
    for index in 0..64u64 {
        let (path, done) = (root.join(format!("object-{index}")), done.clone());
        std::thread::spawn(move || {
            let _ = done.send((index, std::fs::read(path)));
        });
    }
    // With the store frozen nothing can be answered: every read that reached the
    // plugin waits there. 64 of them at once, with 2 worker threads, is the proof that
    // no worker waits with them.
    let waiting = wait_until(Duration::from_secs(20), || {
        let status = status_json(&socket);
        let later = &status["mounts"][0]["answered_later"];
        let reads = later["in_flight"].as_u64().unwrap_or(0);
        (reads >= 64).then(|| later.clone())
    });
    let threads = thread_names(host.pid());
    garage.thaw();
    let later = waiting.expect("64 requests waiting in the plugin at once");
    eprintln!("with the store frozen: {later}; the host's threads: {threads:?}");
    let workers = threads.iter().filter(|(name, _)| name.starts_with("fuser-")).map(|(_, count)| count).sum::<usize>();
    assert_eq!(workers, 2, "the mount's two FUSE workers and no more: {threads:?}");
    for _ in 0..64 {
        let (index, data) = finished.recv_timeout(Duration::from_secs(60)).expect("each read finishes");
        assert!(data.expect("the read succeeds") == pattern(65_536, index), "object-{index} read back differently");
    }
    let status = status_json(&socket);
    let later = &status["mounts"][0]["answered_later"];
    assert!(later["peak"].as_u64() >= Some(64), "{later}");
    assert!(later["total"].as_u64().unwrap() >= before + 64, "{later}");
    assert_eq!(later["dropped_replies"], 0);
    stop(host);
}

/// Reads `path` on a thread of its own; the outcome and how long it took.
fn read_in_background(path: PathBuf) -> std::sync::mpsc::Receiver<(std::io::Result<Vec<u8>>, Duration)> {
    let (done, outcome) = channel();
    std::thread::spawn(move || {
        let started = Instant::now();
        let data = std::fs::read(path);
        let _ = done.send((data, started.elapsed()));
    });
    outcome
}

/// How many of the mount's requests wait inside the plugin now.
fn waiting_in_plugin(host: &Host) -> u64 {
    status_json(&host.control_socket())["mounts"][0]["answered_later"]["in_flight"].as_u64().unwrap_or(0)
}

#[test]
fn a_store_that_dies_or_freezes_mid_read_fails_the_request_within_the_timeout_and_works_again_when_back() {
    let Some(mut garage) = Garage::start(BUCKET) else { return };
    let timeout = Duration::from_secs(2);
    let options = format!("cache_ttl = \"0s\"\ntimeout = \"{}s\"\nretries = 1", timeout.as_secs());
    let host = mount(&garage, &[("bucket", "", &options)]);
    let root = host.mountpoint().to_path_buf();
    for name in ["a", "b", "c"] {
        std::fs::write(root.join(name), pattern(1 << 20, 7)).unwrap();
    }

    // Mid-read: the read is inside the plugin, waiting on the store, when the server dies.
    garage.freeze();
    let reading = read_in_background(root.join("a"));
    let waiting = wait_until(Duration::from_secs(20), || (waiting_in_plugin(&host) > 0).then_some(()));
    assert!(waiting.is_some(), "the read reached the store");
    garage.stop();
    let (outcome, took) = reading.recv_timeout(timeout * 10).expect("the read is answered, not hung");
    let error = outcome.expect_err("the store died under the read");
    assert!(matches!(error.raw_os_error(), Some(libc::EIO) | Some(libc::ETIMEDOUT)), "{error}");
    assert!(took < timeout * 3, "failed after {took:?}, the timeout is {timeout:?}");
    assert!(host.wait_for_stderr("requests fail until the store answers again"), "{}", host.stderr());

    // Down: refused at once.
    let (outcome, took) = read_in_background(root.join("b")).recv_timeout(timeout * 10).expect("answered");
    assert_eq!(outcome.expect_err("the store is down").raw_os_error(), Some(libc::EIO));
    assert!(took < timeout * 3, "failed after {took:?}");

    garage.restart();
    let (outcome, _) = read_in_background(root.join("a")).recv_timeout(Duration::from_secs(60)).expect("answered");
    assert!(outcome.expect("works again, no remount") == pattern(1 << 20, 7));
    assert!(host.wait_for_stderr("the store answers again"), "{}", host.stderr());

    // Frozen: nothing answers, and the request gives up after the timeout.
    garage.freeze();
    let (outcome, took) = read_in_background(root.join("c")).recv_timeout(timeout * 10).expect("answered");
    garage.thaw();
    let error = outcome.expect_err("the store does not answer");
    assert!(matches!(error.raw_os_error(), Some(libc::ETIMEDOUT) | Some(libc::EIO)), "{error}");
    assert!(took < timeout * 3, "failed after {took:?}, the timeout is {timeout:?}");
    let (outcome, _) = read_in_background(root.join("c")).recv_timeout(Duration::from_secs(60)).expect("answered");
    assert!(outcome.expect("works again") == pattern(1 << 20, 7));
    let stderr = stop(host);
    let failures = stderr.matches("requests fail until the store answers again").count();
    assert!((1..=3).contains(&failures), "one log line per failure streak, not per request:\n{stderr}");
}

#[test]
fn check_says_in_one_sentence_why_a_store_cannot_be_used() {
    let Some(garage) = Garage::start(BUCKET) else { return };
    let dir = tempfile::tempdir().unwrap();
    let check = |options: String, credentials: [(&str, String); 2]| {
        let config = write_config(dir.path(), &[mount_lines("bucket", "objectstore", &options)]);
        let mut command = fusehost();
        command.arg("check").arg(config).env_remove("AWS_ACCESS_KEY_ID").envs(credentials);
        let output = run_to_end(command);
        (output.status.success(), String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let good = garage.credentials();
    let (ok, text) = check(garage.mount_options(BUCKET, ""), good.clone());
    assert!(ok, "{text}");
    let wrong_secret = [good[0].clone(), ("AWS_SECRET_ACCESS_KEY", "wrong".to_owned())];
    let (ok, text) = check(garage.mount_options(BUCKET, ""), wrong_secret);
    assert!(!ok && text.contains("the store answered AccessDenied"), "{text}");
    let (ok, text) = check(garage.mount_options("no-such-bucket", ""), good.clone());
    assert!(!ok && text.contains("NoSuchBucket"), "{text}");
    let closed = garage.mount_options(BUCKET, "").replace(&garage.endpoint(), "http://127.0.0.1:9");
    let (ok, text) = check(closed, good);
    assert!(!ok && text.contains("the endpoint cannot be reached"), "{text}");
    for line in text.lines() {
        assert!(!line.contains(&garage.secret), "a secret in the output: {line}");
    }
    assert_eq!(text.lines().count(), 1, "one line: {text}");
}

#[test]
fn fsx_runs_clean_with_the_operations_the_plugin_supports() {
    let Some(garage) = Garage::start(BUCKET) else { return };
    let Some(fsx) = tool("fsx", "cargo install fsx --version 0.3.2 --locked") else { return };
    let host = mount(&garage, &[("bucket", "", "")]);
    let config: PathBuf = host.dir.path().join("fsx.toml");
    // No fallocate or hole punching: an object store has no preallocation or holes.
    std::fs::write(
        &config,
        "flen = 262144\n\n[weights]\nclose_open = 2\ninvalidate = 1\nmapread = 10\nmapwrite = 10\nread = 10\n\
         write = 10\ntruncate = 10\nfsync = 2\nfdatasync = 2\nsendfile = 5\nposix_fadvise = 2\n\
         posix_fallocate = 0\npunch_hole = 0\ncopy_file_range = 0\n",
    )
    .unwrap();
    let mut command = Command::new(fsx);
    command.arg("-f").arg(&config).args(["-N", "10000", "-S", "3", "-P"]).arg(host.dir.path());
    command.arg(host.path("fsx.data"));
    let output = fusehost_tests::run_within(command, Duration::from_secs(900));
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = text.lines().rev().take(30).collect();
    assert!(output.status.success(), "fsx failed:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    assert!(text.contains("All operations completed A-OK!"), "{text}");
    stop(host);
}
