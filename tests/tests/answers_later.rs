//! Requests a plugin answers later, from its own threads (ABI 1.2), on real mounts of
//! the `laterfs` test plugin: a worker thread is never held while the plugin waits, a
//! dropped reply is answered `EIO` and counted, and status shows what waits.

use std::os::unix::fs::MetadataExt;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use fusehost_tests::{in_background, mount_lines, status_json, Host};
use rustix::process::Signal;

const READERS: usize = 64;

fn laterfs(extra: &str) -> Host {
    Host::run_mounts(&[mount_lines("later", "laterfs", extra)])
}

fn mount_status(host: &Host) -> serde_json::Value {
    status_json(&host.control_socket())["mounts"][0].clone()
}

fn stop(mut host: Host) -> String {
    host.signal(Signal::TERM);
    let status = host.wait_exit(Duration::from_secs(20)).expect("fusehost exits on SIGTERM");
    assert!(status.success(), "{}", host.stderr());
    host.stderr()
}

#[test]
fn sixty_four_reads_of_different_files_wait_in_the_plugin_at_once_with_two_worker_threads() {
    let delay = Duration::from_millis(500);
    let host = laterfs(&format!("threads = 2\n[mount.options]\nfiles = {READERS}\ndelay_ms = {}", delay.as_millis()));
    let (done, finished) = channel();
    let started = Instant::now();
    for index in 0..READERS {
        let (path, done) = (host.path(&format!("f{index}")), done.clone());
        std::thread::spawn(move || {
            let _ = done.send((index, std::fs::read_to_string(path)));
        });
    }
    // Each read is a lookup and a read answered after the delay (plus a getattr when
    // the kernel asks). Two workers serving one at a time would need at least
    // 64 × 2 × 500 ms / 2 = 32 s; waiting in the plugin together, about a second.
    let serial = delay * 2 * READERS as u32 / 2;
    for _ in 0..READERS {
        let (index, contents) = finished.recv_timeout(serial).expect("every read finishes well before serial time");
        assert_eq!(contents.expect("the read succeeds"), format!("file {index}\n"));
    }
    let elapsed = started.elapsed();
    assert!(elapsed < serial / 4, "64 reads took {elapsed:?}; served one at a time they take {serial:?}");
    let later = &mount_status(&host)["answered_later"];
    let peak = later["peak"].as_u64().expect("status shows the peak");
    assert!(peak >= 16, "at most {peak} requests waited inside the plugin at once: {later}");
    assert_eq!(later["in_flight"], 0, "{later}");
    assert_eq!(later["dropped_replies"], 0, "{later}");
    assert!(later["total"].as_u64().unwrap() >= 2 * READERS as u64, "{later}");
    eprintln!("64 reads with 2 worker threads: {elapsed:?}, peak {peak} waiting in the plugin");
    stop(host);
}

#[test]
fn a_reply_dropped_without_an_answer_is_eio_logged_and_counted_and_the_mount_goes_on() {
    let host = laterfs("[mount.options]\nfiles = 2\ndelay_ms = 50");
    let dropped = host.path("dropped");
    let answer = in_background(move || std::fs::read(dropped)).expect("the read is answered");
    assert_eq!(answer.expect_err("the read fails").raw_os_error(), Some(libc::EIO));
    assert!(host.wait_for_stderr("plugin dropped the reply without answering; replying EIO"), "{}", host.stderr());
    let status = mount_status(&host);
    let later = &status["answered_later"];
    assert!(later["dropped_replies"].as_u64() >= Some(1), "{later}");
    assert_eq!(later["in_flight"], 0, "a dropped reply frees its slot: {later}");
    assert!(status["requests"]["read"]["errnos"]["EIO"].as_u64() >= Some(1), "{status}");
    let path = host.path("f1");
    let again = in_background(move || std::fs::read_to_string(path)).expect("answered");
    assert_eq!(again.expect("the mount still serves"), "file 1\n");
    let stderr = stop(host);
    assert!(stderr.contains("mount=later"), "the log names the mount: {stderr}");
}

#[test]
fn a_listing_answered_later_reaches_ls_and_the_text_status_shows_what_waits() {
    let host = laterfs("[mount.options]\nfiles = 300\ndelay_ms = 20");
    let root = host.mountpoint().to_path_buf();
    let names = in_background(move || {
        let mut names: Vec<String> =
            std::fs::read_dir(root).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    })
    .expect("the listing finishes");
    assert_eq!(names.len(), 301, "300 files and `dropped`, over several readdir replies");
    assert!(names.contains(&"f299".to_owned()) && names.contains(&"dropped".to_owned()));
    let mut command = fusehost_tests::fusehost();
    command.arg("status").arg("--socket").arg(host.control_socket());
    let output = fusehost_tests::run_to_end(command);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("answered later: 0 waiting (peak"), "{text}");
    assert!(text.contains("cap 1024"), "the default max_in_flight: {text}");
    stop(host);
}

#[test]
fn at_max_in_flight_new_requests_wait_for_a_free_slot() {
    let host = laterfs("threads = 2\nmax_in_flight = 2\n[mount.options]\nfiles = 8\ndelay_ms = 300");
    let (done, finished) = channel();
    for index in 0..8 {
        let (path, done) = (host.path(&format!("f{index}")), done.clone());
        std::thread::spawn(move || {
            let _ = done.send(std::fs::read_to_string(path).is_ok());
        });
    }
    for _ in 0..8 {
        assert!(finished.recv_timeout(Duration::from_secs(60)).expect("each read finishes"));
    }
    let later = &mount_status(&host)["answered_later"];
    assert_eq!(later["peak"], 2, "never more than max_in_flight waiting: {later}");
    assert_eq!(later["max_in_flight"], 2, "{later}");
    stop(host);
}

/// `getxattr(2)` of `name` on `path` into a buffer of `size` bytes: what it wrote, or
/// the errno.
fn getxattr(path: &std::path::Path, name: &str, size: usize) -> Result<Vec<u8>, i32> {
    let path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let name = std::ffi::CString::new(name).unwrap();
    let mut buffer = vec![0u8; size];
    // SAFETY: both strings are NUL-terminated and the buffer is `size` bytes long.
    let length = unsafe { libc::getxattr(path.as_ptr(), name.as_ptr(), buffer.as_mut_ptr().cast(), size) };
    if length < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    // A size probe (size 0) gets only the length: stand for it with that many zeros.
    buffer.resize(length as usize, 0);
    Ok(buffer)
}

#[test]
fn extended_attributes_answered_later_get_size_probes_values_and_erange_from_the_host() {
    let host = laterfs("[mount.options]\nfiles = 1\ndelay_ms = 20");
    let file = host.path("f0");
    let probe = in_background({
        let file = file.clone();
        move || getxattr(&file, "user.later", 0)
    })
    .expect("answered");
    assert_eq!(probe.map(|value| value.len()), Ok(14), "a size probe answers the value's size");
    let value = in_background({
        let file = file.clone();
        move || getxattr(&file, "user.later", 64)
    })
    .expect("answered");
    assert_eq!(value.as_deref(), Ok(&b"answered later"[..]));
    let short = in_background({
        let file = file.clone();
        move || getxattr(&file, "user.later", 4)
    })
    .expect("answered");
    assert_eq!(short, Err(libc::ERANGE), "a buffer too small is ERANGE");
    let missing = in_background(move || getxattr(&file, "user.other", 64)).expect("answered");
    assert_eq!(missing, Err(libc::ENODATA));
    let status = mount_status(&host);
    assert!(status["requests"]["getxattr"]["requests"].as_u64() >= Some(4), "{status}");
    stop(host);
}

#[test]
fn a_file_created_later_stays_visible_for_the_ttls_its_answer_gave_and_no_longer() {
    // laterfs forgets what it creates at once: only the kernel's cache of the create's
    // answer (ABI 1.3's `created_ttl`) keeps the file visible. The mounts' own TTLs
    // say the opposite of the answers', so the answer's are the ones that show.
    let kept = "attr_ttl = 0\nentry_ttl = 0\n[mount.options]\ndelay_ms = 5\ncreated_ttl_ms = 60000";
    let fleeting = "attr_ttl = 60\nentry_ttl = 60\n[mount.options]\ndelay_ms = 5\ncreated_ttl_ms = 0";
    let host = Host::run_mounts(&[mount_lines("kept", "laterfs", kept), mount_lines("fleeting", "laterfs", fleeting)]);
    let stat_after_create = |name: &str| {
        let path = host.mountpoint().with_file_name(name).join("new");
        in_background(move || {
            let created = std::fs::OpenOptions::new().write(true).create_new(true).open(&path).map(drop);
            (created, (0..5).map(|_| std::fs::metadata(&path).map(|meta| meta.ino())).collect::<Vec<_>>())
        })
        .expect("every request is answered")
    };
    let (created, stats) = stat_after_create("kept");
    created.expect("created");
    for stat in stats {
        assert!(stat.expect("the created file is still cached") >= 1 << 40, "the inode laterfs handed out");
    }
    // TTLs of 0: the kernel asks again at once, and laterfs knows no such file (the
    // open after the create may already fail, as default_permissions asks first).
    let (_, stats) = stat_after_create("fleeting");
    for stat in stats {
        assert_eq!(stat.expect_err("not cached").kind(), std::io::ErrorKind::NotFound);
    }
    stop(host);
}
