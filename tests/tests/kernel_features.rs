//! ABI 1.1's kernel features on real mounts: negative entries, capabilities as
//! consent, passthrough's notifications for changes made in its source, read-only
//! plugins and the mount type, the source argument, request identity and generations.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use fusehost::mount_table::mounted_at;
use fusehost_tests::{fusehost, mount_lines, run_to_end, status_json, stderr_text, Host, MountLines};

fn mount_status(host: &Host) -> serde_json::Value {
    status_json(&host.control_socket())["mounts"][0].clone()
}

fn requests(host: &Host, op: &str) -> u64 {
    mount_status(host)["requests"][op]["requests"].as_u64().unwrap_or(0)
}

/// How many of `ops` mount `name` of `host` has served.
fn requests_of(host: &Host, name: &str, ops: &[&str]) -> u64 {
    let status = status_json(&host.control_socket());
    let mount = status["mounts"].as_array().unwrap().iter().find(|mount| mount["name"] == name).unwrap().clone();
    ops.iter().map(|op| mount["requests"][op]["requests"].as_u64().unwrap_or(0)).sum()
}

/// Polls `condition` for up to a second: there is no signal for "the kernel dropped
/// its cache", only the effect.
fn within_a_second(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A file's permission bits as a `statx` for the mode alone sees them: from the
/// kernel's cache when it holds the mode, even with other attributes expired.
fn mode_alone(path: &Path) -> u32 {
    let stat =
        rustix::fs::statx(rustix::fs::CWD, path, rustix::fs::AtFlags::empty(), rustix::fs::StatxFlags::MODE).unwrap();
    u32::from(stat.stx_mode) & 0o7777
}

/// Opens the host's folders and its mounts' roots to everyone, so that `as_nobody`
/// reaches the files inside.
fn let_nobody_in(host: &Host) {
    let folders = [host.dir.path().to_path_buf(), host.dir.path().join("mnt")];
    for folder in folders.iter().chain(&host.mountpoints) {
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
}

/// Runs `program` as the unprivileged user nobody (65534), asserting it succeeded.
fn as_nobody(program: &str, args: &[&str]) {
    let output = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", program])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{program}: {}", String::from_utf8_lossy(&output.stderr));
}

fn passthrough_lines<'a>(name: &'a str, extra: &'a str) -> MountLines<'a> {
    mount_lines(name, "passthrough", extra)
}

#[test]
fn a_missing_name_reaches_the_plugin_once_per_negative_ttl() {
    let source = tempfile::tempdir().unwrap();
    // Without its watch, passthrough's default `cache = auto` leaves the TTLs to the mount.
    let source_option =
        format!("[mount.options]\nsource = {:?}\nwatch_source = false", source.path().display().to_string());
    for plugin in ["memfs", "passthrough"] {
        let plugin_options = if plugin == "passthrough" { source_option.as_str() } else { "" };
        for (negative_ttl, remembered) in [("60", true), ("0", false)] {
            let extra = format!("negative_ttl = {negative_ttl}\n{plugin_options}");
            let host = Host::run_mounts(&[mount_lines("negative", plugin, &extra)]);
            let before = requests(&host, "lookup");
            for _ in 0..20 {
                assert!(std::fs::metadata(host.path("missing")).is_err());
            }
            let asked = requests(&host, "lookup") - before;
            if remembered {
                // Another test may drop the kernel's caches meanwhile: a few, not 20.
                assert!(asked <= 3, "{plugin}, negative_ttl {negative_ttl}: {asked} lookups for 20 stats");
                // Creating the name through the mount replaces the negative entry.
                std::fs::write(host.path("missing"), b"here").unwrap();
                assert_eq!(std::fs::read(host.path("missing")).unwrap(), b"here");
                std::fs::remove_file(host.path("missing")).unwrap();
            } else {
                assert!(asked >= 20, "{plugin}, negative_ttl 0: only {asked} lookups for 20 stats");
            }
        }
    }
}

#[test]
fn passthrough_remembers_a_missing_name_for_its_cache_modes_ttl_until_the_name_appears() {
    // `auto` (watched) under the mount's negative_ttl of 0, `never` under 60 s: the
    // mode decides, and a name created outside the mount shows at once in both.
    let source = tempfile::tempdir().unwrap();
    let lines = |cache: &str, negative_ttl: u32| {
        format!(
            "negative_ttl = {negative_ttl}\n[mount.options]\nsource = {:?}\ncache = {cache:?}",
            source.path().display().to_string()
        )
    };
    let (auto, never) = (lines("auto", 0), lines("never", 60));
    let host = Host::run_mounts(&[passthrough_lines("auto", &auto), passthrough_lines("never", &never)]);
    for (mount, remembered) in [("auto", true), ("never", false)] {
        let name = format!("{mount}-missing");
        let path = host.mountpoint().with_file_name(mount).join(&name);
        let before = requests_of(&host, mount, &["lookup"]);
        for _ in 0..20 {
            assert!(std::fs::symlink_metadata(&path).is_err());
        }
        let asked = requests_of(&host, mount, &["lookup"]) - before;
        std::fs::write(source.path().join(&name), b"here").unwrap();
        if remembered {
            // Another test may drop the kernel's caches meanwhile: a few, not 20.
            assert!(asked <= 3, "auto: {asked} lookups for 20 stats of a missing name");
            // The watch drops the negative entry as the name appears.
            assert!(within_a_second(|| std::fs::read(&path).is_ok_and(|data| data == b"here")), "auto");
        } else {
            assert!(asked >= 20, "never: only {asked} lookups for 20 stats of a missing name");
            assert_eq!(std::fs::read(&path).unwrap(), b"here", "never: the next stat finds it");
        }
    }
}

#[test]
fn a_change_made_in_the_source_shows_through_the_mount_within_a_second_despite_60s_ttls() {
    let source = tempfile::tempdir().unwrap();
    std::fs::create_dir(source.path().join("sub")).unwrap();
    std::fs::write(source.path().join("sub/file"), b"one").unwrap();
    let extra =
        format!("attr_ttl = 60\nentry_ttl = 60\n[mount.options]\nsource = {:?}", source.path().display().to_string());
    let host = Host::run_mounts(&[passthrough_lines("watched", &extra)]);
    let (file, new, sub) = (host.path("sub/file"), host.path("sub/new"), host.path("sub"));
    // Fill the kernel's caches: the name, the attributes, the listing, a negative entry.
    assert_eq!(std::fs::read(&file).unwrap(), b"one");
    assert!(std::fs::metadata(&new).is_err());
    assert_eq!(std::fs::read_dir(&sub).unwrap().count(), 1);

    std::fs::write(source.path().join("sub/file"), b"longer content").unwrap();
    assert!(within_a_second(|| std::fs::read(&file).is_ok_and(|data| data == b"longer content")), "content and size");
    std::fs::set_permissions(source.path().join("sub/file"), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(
        within_a_second(|| std::fs::metadata(&file).is_ok_and(|meta| meta.permissions().mode() & 0o777 == 0o600)),
        "attributes"
    );
    std::fs::write(source.path().join("sub/new"), b"new").unwrap();
    assert!(within_a_second(|| std::fs::read(&new).is_ok_and(|data| data == b"new")), "a name that was missing");
    assert!(within_a_second(|| std::fs::read_dir(&sub).unwrap().count() == 2), "the listing");
    std::fs::remove_file(source.path().join("sub/file")).unwrap();
    assert!(within_a_second(|| std::fs::metadata(&file).is_err()), "a deleted name");
    // The root's own attributes: only its own watch sees this (no watched folder holds it).
    std::fs::set_permissions(source.path(), std::fs::Permissions::from_mode(0o750)).unwrap();
    let root_mode =
        || std::fs::metadata(host.mountpoint()).is_ok_and(|meta| meta.permissions().mode() & 0o777 == 0o750);
    assert!(within_a_second(root_mode), "the root's attributes");
}

#[test]
fn without_the_source_watch_the_ttls_are_what_bounds_staleness() {
    let source = tempfile::tempdir().unwrap();
    std::fs::write(source.path().join("file"), b"one").unwrap();
    let extra = format!(
        "attr_ttl = 60\nentry_ttl = 60\n[mount.options]\nsource = {:?}\nwatch_source = false",
        source.path().display().to_string()
    );
    let host = Host::run_mounts(&[passthrough_lines("unwatched", &extra)]);
    assert_eq!(std::fs::metadata(host.path("file")).unwrap().len(), 3);
    std::fs::write(source.path().join("file"), b"longer content").unwrap();
    // The control for the test above: the size stays cached for the whole second.
    assert!(!within_a_second(|| std::fs::metadata(host.path("file")).unwrap().len() != 3));
}

/// The requests the kernel could have answered from its caches (lookups, attributes,
/// reads, listings) that three passes of `stat`, `cat` and `ls` over `sub/file` send
/// mount `name`, after one pass has filled those caches.
fn requests_for_three_passes(host: &Host, name: &str) -> u64 {
    let folder = host.mountpoint().with_file_name(name).join("sub");
    let file = folder.join("file");
    let total = || requests_of(host, name, &["lookup", "getattr", "read", "readdir", "readdirplus"]);
    let pass = || {
        std::fs::metadata(&file).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"one");
        std::fs::read_dir(&folder).unwrap().count()
    };
    pass();
    let before = total();
    for _ in 0..3 {
        pass();
    }
    total() - before
}

#[test]
fn passthrough_cache_auto_keeps_what_the_watch_covers_and_never_keeps_nothing() {
    let source = tempfile::tempdir().unwrap();
    std::fs::create_dir(source.path().join("sub")).unwrap();
    std::fs::write(source.path().join("sub/file"), b"one").unwrap();
    // Mount TTLs of 0: whatever the kernel keeps, the cache mode's own TTLs kept.
    let lines = |cache: &str, watch: bool| {
        format!(
            "attr_ttl = 0\nentry_ttl = 0\n[mount.options]\nsource = {:?}\ncache = {cache:?}\nwatch_source = {watch}",
            source.path().display().to_string()
        )
    };
    let (auto, never, unwatched) = (lines("auto", true), lines("never", true), lines("auto", false));
    let host = Host::run_mounts(&[
        passthrough_lines("auto", &auto),
        passthrough_lines("never", &never),
        passthrough_lines("unwatched", &unwatched),
    ]);
    let [kept, nothing_kept, mount_ttls] =
        ["auto", "never", "unwatched"].map(|name| requests_for_three_passes(&host, name));
    // auto, watched: names, attributes, data and the listing stay (another test may
    // drop the kernel's caches meanwhile: a few, not one per pass).
    assert!(kept <= 2, "auto: {kept} cacheable requests for three passes");
    // never: each pass looks up, stats, reads and lists again; auto without the
    // watch falls back to the mount's TTLs of 0 and drops data at each open.
    assert!(nothing_kept >= 3 * 5, "never: {nothing_kept} cacheable requests for three passes");
    assert!(mount_ttls >= 3 * 5, "auto without the watch: {mount_ttls} cacheable requests for three passes");

    // And what auto keeps still follows the source at once.
    std::fs::write(source.path().join("sub/file"), b"longer content").unwrap();
    let file = host.path("sub/file");
    assert!(within_a_second(|| std::fs::read(&file).is_ok_and(|data| data == b"longer content")));
}

#[test]
fn passthrough_keeps_what_the_kernel_learnt_from_changes_made_through_the_mount() {
    let source = tempfile::tempdir().unwrap();
    // Outside changes go to their own folder, so that they drop nothing the count covers.
    std::fs::create_dir(source.path().join("outside")).unwrap();
    let extra = format!("[mount.options]\nsource = {:?}", source.path().display().to_string());
    let host = Host::run_mounts(&[passthrough_lines("own", &extra)]);
    assert!(std::fs::metadata(host.path("outside")).unwrap().is_dir(), "the mount knows (and watches) the folder");
    let names: Vec<_> = (0..50).map(|index| host.path(&format!("file{index}"))).collect();
    for name in &names {
        // Created and closed, not written to: a write drops the file's attributes and
        // pages from the kernel (an outside write must never hide behind it).
        std::fs::File::create(name).unwrap();
    }
    std::fs::rename(&names[0], host.path("renamed")).unwrap();
    std::fs::remove_file(&names[1]).unwrap();
    // A folder's own attributes changed through the mount: the root's change is seen
    // only by the root's own watch, as an event naming no file.
    std::fs::set_permissions(host.mountpoint(), std::fs::Permissions::from_mode(0o750)).unwrap();
    // The watch judges events in order, batch after batch: once a later change made in
    // the source shows, the events of the mount's own changes above have been judged.
    // A new name shows before its batch drops the folder's attributes; a second change
    // (new contents, judged in a batch of its own) shows after that batch is sent.
    let sentinel = source.path().join("outside/sentinel");
    std::fs::write(&sentinel, b"outside").unwrap();
    assert!(within_a_second(|| std::fs::read(host.path("outside/sentinel")).is_ok()), "the outside change shows");
    std::fs::write(&sentinel, b"outside, again").unwrap();
    let again = || std::fs::read(host.path("outside/sentinel")).is_ok_and(|bytes| bytes == b"outside, again");
    assert!(within_a_second(again), "the second outside change shows");

    let before = requests(&host, "getattr");
    let root_mode = std::fs::metadata(host.mountpoint()).unwrap().permissions().mode();
    assert_eq!(root_mode & 0o777, 0o750);
    assert_eq!(requests(&host, "getattr"), before, "the root's attributes were asked for again");

    let before = requests(&host, "lookup") + requests(&host, "getattr");
    for name in &names[2..] {
        assert_eq!(std::fs::metadata(name).unwrap().len(), 0);
    }
    assert_eq!(std::fs::metadata(host.path("renamed")).unwrap().len(), 0);
    assert!(std::fs::metadata(&names[1]).is_err());
    let asked = requests(&host, "lookup") + requests(&host, "getattr") - before;
    // A few, not one per file: the rename and the deletion (2), and one more should
    // another test drop the kernel's caches meanwhile. Each create marks its name in
    // the watch until it has recorded what it handed out, so however long a create is
    // preempted, its own event is never judged as an outside change.
    assert!(asked <= 3, "{asked} lookups and getattrs for 50 stats of files made through the mount");

    // The same names changed in the source are dropped at once.
    std::fs::write(source.path().join("file2"), b"changed outside").unwrap();
    assert!(within_a_second(|| std::fs::metadata(&names[2]).is_ok_and(|meta| meta.len() == 15)), "size");
    std::fs::remove_file(source.path().join("renamed")).unwrap();
    assert!(within_a_second(|| std::fs::metadata(host.path("renamed")).is_err()), "a name deleted outside");
}

/// Two passthrough mounts of `source` whose own TTLs say the opposite of their cache
/// modes': `always` (a day) under mount TTLs of 0, `never` (0) under 60 s. What the
/// kernel then keeps shows whose TTLs an answer carried.
fn always_and_never_over(source: &Path) -> Host {
    let lines = |cache: &str, ttl: u32| {
        format!(
            "attr_ttl = {ttl}\nentry_ttl = {ttl}\n[mount.options]\nsource = {:?}\ncache = {cache:?}",
            source.display().to_string()
        )
    };
    let (always, never) = (lines("always", 0), lines("never", 60));
    Host::run_mounts(&[passthrough_lines("always", &always), passthrough_lines("never", &never)])
}

#[test]
fn passthrough_hands_out_what_it_creates_and_changes_with_its_cache_modes_ttls() {
    // Create, mkdir, symlink, link and setattr answer with the mode's TTLs (ABI 1.3),
    // so they, not the mount's, decide what is cached.
    let source = tempfile::tempdir().unwrap();
    let host = always_and_never_over(source.path());
    for (mount, cached) in [("always", true), ("never", false)] {
        let asked = || requests_of(&host, mount, &["lookup", "getattr"]);
        let path = |name: &str| host.mountpoint().with_file_name(mount).join(format!("{mount}-{name}"));
        let files: Vec<_> =
            (0..10).map(|index| std::fs::File::create(path(&format!("file{index}"))).unwrap()).collect();
        files[2].set_permissions(std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::create_dir(path("dir")).unwrap();
        std::os::unix::fs::symlink("file0", path("symlink")).unwrap();
        std::fs::hard_link(path("file1"), path("link")).unwrap();
        let mut made: Vec<_> = (0..10).map(|index| path(&format!("file{index}"))).collect();
        made.extend([path("dir"), path("symlink"), path("link")]);
        // By path (each walk also needs the root's attributes: `never` asks for those
        // every time) and by the created files' own handles (their attributes only).
        let (before, mut by_path) = (asked(), 0);
        for _ in 0..3 {
            for name in &made {
                std::fs::symlink_metadata(name).unwrap();
            }
        }
        by_path += asked() - before;
        let before = asked();
        for _ in 0..3 {
            for file in &files {
                file.metadata().unwrap();
            }
        }
        let by_handle = asked() - before;
        if cached {
            // Another test may drop the kernel's caches meanwhile: a few, not 39 or 30.
            assert!(by_path <= 3, "{mount}: {by_path} lookups and getattrs for 39 stats of what it made");
            assert!(by_handle <= 3, "{mount}: {by_handle} getattrs for 30 stats of the files it created");
        } else {
            assert!(by_handle >= 30, "{mount}: {by_handle} getattrs for 30 stats of new files, each must ask");
        }
    }
}

#[test]
fn passthrough_lists_a_folder_with_its_cache_modes_ttls() {
    // As above, for the entries a listing hands out (readdirplus, ABI 1.3): a folder
    // made in the source, listed through each mount, then each name stat'ed by path.
    let source = tempfile::tempdir().unwrap();
    for mount in ["always", "never"] {
        std::fs::create_dir(source.path().join(mount)).unwrap();
        for index in 0..10 {
            std::fs::write(source.path().join(format!("{mount}/file{index}")), b"listed").unwrap();
        }
    }
    let host = always_and_never_over(source.path());
    for (mount, cached) in [("always", true), ("never", false)] {
        let folder = host.mountpoint().with_file_name(mount).join(mount);
        let names: Vec<_> = std::fs::read_dir(&folder).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        assert_eq!(names.len(), 10, "{mount}: {names:?}");
        // Stat'ed from the open folder, so that no walk looks the folder itself up
        // again (`never` gives it TTLs of 0 too).
        let folder = std::fs::File::open(&folder).unwrap();
        assert!(requests_of(&host, mount, &["readdirplus"]) > 0, "{mount}: listed with attributes");
        let lookups = || requests_of(&host, mount, &["lookup"]);
        let lookups_and_getattrs = || requests_of(&host, mount, &["lookup", "getattr"]);
        let before = (lookups(), lookups_and_getattrs());
        for _ in 0..3 {
            for name in &names {
                rustix::fs::statat(&folder, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).unwrap();
            }
        }
        if cached {
            let asked = lookups_and_getattrs() - before.1;
            // Another test may drop the kernel's caches meanwhile: a few, not 30.
            assert!(asked <= 3, "{mount}: {asked} lookups and getattrs for 30 stats of listed names");
        } else {
            // Each stat also asks for the folder's attributes, which are not counted here.
            let asked = lookups() - before.0;
            assert!(asked >= 30, "{mount}: {asked} lookups for 30 stats of listed names, each must ask");
        }
    }
}

#[test]
fn passthrough_refuses_an_unknown_cache_mode_naming_the_choices() {
    let source = tempfile::tempdir().unwrap();
    let mountpoint = tempfile::tempdir().unwrap();
    let mut command = fusehost();
    command.arg("mount").arg("passthrough").arg(source.path()).arg(mountpoint.path());
    command.arg("--plugin-dir").arg(fusehost_tests::target_dir()).args(["-o", "cache=sometimes"]);
    let output = run_to_end(command);
    let stderr = stderr_text(&output);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("option `cache` is `sometimes`: use auto, always or never"), "{stderr}");
    assert!(mounted_at(mountpoint.path()).is_none());
}

#[test]
fn writeback_caching_needs_the_plugins_consent() {
    let source = tempfile::tempdir().unwrap();
    let mountpoint = tempfile::tempdir().unwrap();
    let mut command = fusehost();
    command
        .arg("mount")
        .arg("passthrough")
        .arg(mountpoint.path())
        .arg("--plugin-dir")
        .arg(fusehost_tests::target_dir());
    command.arg("-o").arg(format!("source={},writeback_cache", source.path().display()));
    let output = run_to_end(command);
    let stderr = stderr_text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one sentence:\n{stderr}");
    assert!(stderr.contains("plugin `passthrough` does not support writeback_cache"), "{stderr}");
    assert!(stderr.contains("remove `writeback_cache = true`"), "{stderr}");
    assert!(mounted_at(mountpoint.path()).is_none(), "nothing mounted");

    // memfs consents: appends through the page cache land where O_APPEND says.
    let host = Host::mount("memfs", &["writeback_cache"]);
    let mut log = std::fs::OpenOptions::new().create(true).append(true).mode(0o644).open(host.path("log")).unwrap();
    let mut expected = Vec::new();
    for line in 0..500 {
        let text = format!("line {line}\n");
        log.write_all(text.as_bytes()).unwrap();
        expected.extend_from_slice(text.as_bytes());
    }
    drop(log);
    assert_eq!(std::fs::read(host.path("log")).unwrap(), expected);
}

#[test]
fn memfs_clears_setuid_itself_so_writes_cost_no_capability_lookup() {
    let host = Host::run_mounts(&[mount_lines("killpriv", "memfs", "allow_other = true")]);
    let before = requests(&host, "getxattr");
    {
        let mut file = std::fs::File::create(host.path("plain")).unwrap();
        for _ in 0..100 {
            file.write_all(b"more\n").unwrap();
        }
    }
    // Without HANDLE_KILLPRIV_V2 the kernel asks for `security.capability` before every
    // write; with it, once per file at most (then it knows the file has no privileges).
    let asked = requests(&host, "getxattr") - before;
    assert!(asked < 5, "{asked} getxattr requests for 100 writes");

    let path = host.path("tool");
    std::fs::write(&path, b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"# more\n").unwrap();
    // Root keeps setuid on write (CAP_FSETID); an unprivileged truncate drops it.
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o4755);
    let_nobody_in(&host);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o4777)).unwrap();
    as_nobody("truncate", &["-s", "0", path.to_str().unwrap()]);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o0777, "setuid dropped");
}

#[test]
fn memfs_drops_setuid_when_someone_else_fallocates_or_copies_into_a_file() {
    // Under HANDLE_KILLPRIV_V2 the kernel leaves every such drop to memfs, not only
    // those of writes and truncates. `attr_ttl = 0`: the mode read back is memfs's.
    let host = Host::run_mounts(&[mount_lines("killpriv", "memfs", "allow_other = true\nattr_ttl = 0")]);
    let_nobody_in(&host);
    let (tool, source) = (host.path("tool"), host.path("source"));
    std::fs::write(&tool, b"#!/bin/sh\n").unwrap();
    std::fs::write(&source, b"# more\n").unwrap();
    let mode = || std::fs::metadata(&tool).unwrap().permissions().mode() & 0o7777;
    let tool_text = tool.to_str().unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o6777)).unwrap();
    as_nobody("fallocate", &["-l", "8192", tool_text]);
    assert_eq!(mode(), 0o0777, "setuid and setgid dropped by an unprivileged fallocate");

    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o6777)).unwrap();
    let copy = format!(
        "import os; os.copy_file_range(os.open({:?}, os.O_RDONLY), os.open({tool_text:?}, os.O_WRONLY), 7, None, 16)",
        source.to_str().unwrap()
    );
    as_nobody("/usr/bin/python3", &["-c", &copy]);
    assert_eq!(std::fs::read(&tool).unwrap()[16..23], *b"# more\n", "copied");
    assert_eq!(mode(), 0o0777, "setuid and setgid dropped by an unprivileged copy_file_range");

    // Root keeps them (CAP_FSETID), as the kernel would.
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o6777)).unwrap();
    let status = std::process::Command::new("fallocate").args(["-l", "16384", tool_text]).status().unwrap();
    assert!(status.success());
    assert_eq!(mode(), 0o6777);
}

#[test]
fn memfs_shows_a_dropped_setuid_at_once_whatever_the_attr_ttl() {
    // A write's or fallocate's reply carries no mode, and the kernel then drops only
    // the size and times it cached: a `statx` for the mode alone (what `stat -c %a`
    // asks) would show setuid for a minute here, had memfs not told the kernel.
    let host =
        Host::run_mounts(&[mount_lines("killpriv", "memfs", "allow_other = true\nattr_ttl = 60\nentry_ttl = 60")]);
    let_nobody_in(&host);
    let tool = host.path("tool");
    std::fs::write(&tool, b"#!/bin/sh\n").unwrap();
    let tool_text = tool.to_str().unwrap();
    let mode = || mode_alone(&tool);
    let append = format!("echo more >> {tool_text}");
    for (what, program, args) in
        [("write", "sh", vec!["-c", append.as_str()]), ("fallocate", "fallocate", vec!["-l", "8192", tool_text])]
    {
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o6777)).unwrap();
        assert_eq!(mode(), 0o6777);
        as_nobody(program, &args);
        // Without the notification, only the LOOKUP after the name's entry TTL (here
        // a minute) would bring the new mode.
        assert!(within_a_second(|| mode() == 0o0777), "the mount still shows setuid after an unprivileged {what}");
    }
}

#[test]
fn passthrough_clears_setuid_itself_so_writes_cost_no_capability_lookup() {
    // HANDLE_KILLPRIV_V2, watched (`auto`) and unwatched (`always`: attributes cached
    // for a day, so no watch event refreshes the kernel's view of the mode).
    let source = tempfile::tempdir().unwrap();
    let lines = |name: &str, extra: &str| {
        let folder = source.path().join(name);
        std::fs::create_dir(&folder).unwrap();
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777)).unwrap();
        format!("allow_other = true\n[mount.options]\nsource = {:?}\n{extra}", folder.display().to_string())
    };
    let (watched, unwatched) = (lines("watched", ""), lines("unwatched", "cache = \"always\"\nwatch_source = false"));
    let host = Host::run_mounts(&[passthrough_lines("watched", &watched), passthrough_lines("unwatched", &unwatched)]);
    let_nobody_in(&host);
    for mount in ["watched", "unwatched"] {
        let path = |name: &str| host.mountpoint().with_file_name(mount).join(name);
        let before = requests_of(&host, mount, &["getxattr"]);
        {
            let mut file = std::fs::File::create(path("plain")).unwrap();
            for _ in 0..100 {
                file.write_all(b"more\n").unwrap();
            }
        }
        let asked = requests_of(&host, mount, &["getxattr"]) - before;
        assert!(asked < 5, "{mount}: {asked} getxattr requests for 100 writes");

        let tool = path("tool");
        let in_source = source.path().join(mount).join("tool");
        std::fs::write(&tool, b"#!/bin/sh\n").unwrap();
        let tool_text = tool.to_str().unwrap().to_owned();
        let mode_of = |file: &Path| std::fs::metadata(file).unwrap().permissions().mode() & 0o7777;
        let set_uid = || std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o6777)).unwrap();
        let append = format!("echo more >> {tool_text}");
        for (what, program, args) in [
            ("write", "sh", vec!["-c", append.as_str()]),
            ("truncate", "truncate", vec!["-s", "1", tool_text.as_str()]),
            ("fallocate", "fallocate", vec!["-l", "8192", tool_text.as_str()]),
        ] {
            set_uid();
            assert_eq!(mode_of(&tool), 0o6777);
            as_nobody(program, &args);
            assert_eq!(mode_of(&in_source), 0o0777, "{mount}: an unprivileged {what} drops setuid and setgid");
            assert!(within_a_second(|| mode_alone(&tool) == 0o0777), "{mount}: the mount shows it after a {what}");
        }
        // Root keeps them (CAP_FSETID), as the kernel would.
        set_uid();
        std::fs::OpenOptions::new().append(true).open(&tool).unwrap().write_all(b"# root\n").unwrap();
        assert_eq!(mode_of(&in_source), 0o6777, "{mount}: root's write keeps setuid");
    }
}

#[test]
fn a_read_only_plugin_mounts_ro_as_fuse_fusehost_from_its_source_argument() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("greetings.tar");
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(6);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, "hello.txt", &b"hello\n"[..]).unwrap();
    std::fs::write(&archive, builder.into_inner().unwrap()).unwrap();
    let mountpoint = dir.path().join("mnt");
    std::fs::create_dir(&mountpoint).unwrap();

    let mut command = fusehost();
    command
        .arg("mount")
        .arg("archive")
        .arg(&archive)
        .arg(&mountpoint)
        .arg("--plugin-dir")
        .arg(fusehost_tests::target_dir());
    let mut host = Host::spawn(command, tempfile::tempdir().unwrap(), vec![mountpoint.clone()]);
    host.wait_until_mounted();
    assert_eq!(std::fs::read(mountpoint.join("hello.txt")).unwrap(), b"hello\n");
    let mounted = mounted_at(&mountpoint).expect("in the mount table");
    assert_eq!(mounted.fstype, "fuse.fusehost", "{mounted:?}");
    assert!(mounted.has_option("ro"), "{mounted:?}");
    assert_eq!(std::fs::write(mountpoint.join("new"), b"x").unwrap_err().raw_os_error(), Some(libc::EROFS));

    // A plugin without a source option refuses one, saying what to do instead.
    let mut command = fusehost();
    command
        .arg("mount")
        .arg("memfs")
        .arg(&archive)
        .arg(dir.path())
        .arg("--plugin-dir")
        .arg(fusehost_tests::target_dir());
    let output = run_to_end(command);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_text(&output).contains("plugin `memfs` takes no source"), "{}", stderr_text(&output));
}

#[test]
fn each_request_carries_its_kernel_id_and_the_plugin_learns_what_was_negotiated() {
    let host = Host::run_mounts(&[mount_lines("liar", "liar", "negative_ttl = 0")]);
    assert!(host.wait_for_stderr("negotiated capabilities=0x0 max_write=1048576"), "{}", host.stderr());
    for _ in 0..2 {
        assert!(std::fs::metadata(host.path("whoami")).is_err());
    }
    // Each lookup logs its line; wait until the second one is read from the host.
    assert!(host.wait_for_stderr("call=2"), "{}", host.stderr());
    let stderr = host.stderr();
    let ids: Vec<u64> = stderr
        .lines()
        .filter_map(|line| line.split("request id=").nth(1)?.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(ids.len() >= 2 && ids.iter().all(|&id| id > 0), "{ids:?}\n{stderr}");
    assert_ne!(ids[0], ids[1], "each request has its own id");
}

#[test]
fn an_inode_handed_out_again_under_a_new_generation_while_held_is_eio() {
    let host = Host::run_mounts(&[mount_lines("liar", "liar", "entry_ttl = 60\nattr_ttl = 60")]);
    let data = std::fs::File::open(host.path("data")).unwrap();
    let error = std::fs::metadata(host.path("data-again")).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc::EIO), "{error}");
    assert!(host.wait_for_stderr("new generation"), "{}", host.stderr());
    drop(data);
}

/// `fcntl` on `file` with `command` and a whole-file lock of `typ`; the filled-in lock.
fn fcntl_lock(file: &std::fs::File, command: i32, typ: i32) -> std::io::Result<libc::flock> {
    let mut lock = libc::flock { l_type: typ as i16, l_whence: libc::SEEK_SET as i16, l_start: 0, l_len: 0, l_pid: 0 };
    // SAFETY: `file` is an open descriptor and `lock` a valid flock the call may fill.
    let answer = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(file), command, &mut lock) };
    if answer == 0 {
        Ok(lock)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[test]
fn memfs_serves_posix_locks_itself_when_asked() {
    let host = Host::run_mounts(&[mount_lines("locks", "memfs", "threads = 4\n[mount.options]\nposix_locks = true")]);
    let path = host.path("shared");
    std::fs::write(&path, b"data").unwrap();
    // Another process holds a write lock until its stdin closes.
    let mut holder = std::process::Command::new("perl")
        .args([
            "-MFcntl",
            "-e",
            &format!(
                "open(my $f, '+<', '{}') or die; my $l = pack('s s x4 q q i x4', F_WRLCK, 0, 0, 0, 0); \
             fcntl($f, F_SETLK, $l) or die \"lock: $!\"; $| = 1; print \"locked\\n\"; <STDIN>;",
                path.display()
            ),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line, "locked\n");
    let setlk_before = requests(&host, "setlk");

    let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let conflict = fcntl_lock(&file, libc::F_GETLK, libc::F_RDLCK).unwrap();
    assert_eq!(i32::from(conflict.l_type), libc::F_WRLCK);
    assert_eq!(conflict.l_pid as u32, holder.id(), "the holder is named");
    assert_eq!(fcntl_lock(&file, libc::F_SETLK, libc::F_WRLCK).unwrap_err().raw_os_error(), Some(libc::EAGAIN));
    let waiter = {
        let file = file.try_clone().unwrap();
        std::thread::spawn(move || fcntl_lock(&file, libc::F_SETLKW, libc::F_WRLCK).map(|_| ()))
    };
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    let waited = fusehost_tests::in_background(move || waiter.join().unwrap()).expect("F_SETLKW returned");
    waited.unwrap();
    assert!(requests(&host, "setlk") > setlk_before, "memfs, not the kernel, answered");
}

#[test]
fn an_entry_with_its_own_ttls_is_trusted_no_longer_than_they_say() {
    let host = Host::run_mounts(&[mount_lines("liar", "liar", "entry_ttl = 60\nattr_ttl = 60")]);
    let asked = |host: &Host| requests(host, "lookup") + requests(host, "getattr");
    for (name, fresh_each_time) in [("data", false), ("fleeting", true)] {
        std::fs::metadata(host.path(name)).unwrap();
        let before = asked(&host);
        for _ in 0..10 {
            std::fs::metadata(host.path(name)).unwrap();
        }
        let more = asked(&host) - before;
        if fresh_each_time {
            assert!(more >= 10, "{name}: TTLs of zero, yet only {more} requests for 10 stats");
        } else {
            // Another test may drop the kernel's caches meanwhile: a few, not 10.
            assert!(more <= 3, "{name}: the mount's 60 s TTLs, yet {more} requests for 10 stats");
        }
    }
}

#[test]
fn memfs_lets_the_kernel_cache_symlink_targets() {
    let host = Host::run_mounts(&[mount_lines("links", "memfs", "")]);
    std::os::unix::fs::symlink("some/where", host.path("link")).unwrap();
    let before = requests(&host, "readlink");
    for _ in 0..10 {
        assert_eq!(std::fs::read_link(host.path("link")).unwrap(), Path::new("some/where"));
    }
    let asked = requests(&host, "readlink") - before;
    assert!(asked <= 3, "{asked} readlink requests for 10 reads of one link");
}

#[test]
fn memfs_without_locks_lets_the_kernel_stop_sending_flush() {
    let host = Host::run_mounts(&[
        mount_lines("plain", "memfs", ""),
        mount_lines("locking", "memfs", "[mount.options]\nposix_locks = true"),
    ]);
    let dir = host.dir.path();
    for name in ["plain", "locking"] {
        let file = fusehost_tests::config_mountpoint(dir, name).join("file");
        std::fs::write(&file, "x").unwrap();
        for _ in 0..20 {
            drop(std::fs::File::open(&file).unwrap());
        }
    }
    let status = status_json(&host.control_socket());
    let flushes = |index: usize| status["mounts"][index]["requests"]["flush"]["requests"].as_u64().unwrap_or(0);
    // One FLUSH answered ENOSYS, then none: open+close is two requests.
    assert_eq!(flushes(0), 1, "{}", status["mounts"][0]);
    assert_eq!(status["mounts"][0]["requests"]["flush"]["errnos"]["ENOSYS"], 1);
    // A mount that serves locks needs every close, to drop the closing owner's locks.
    assert!(flushes(1) >= 21, "{}", status["mounts"][1]);
}

/// A page-aligned block, as O_DIRECT wants.
#[repr(C, align(4096))]
struct Block([u8; 4096]);

#[test]
fn an_o_direct_handle_stays_coherent_with_cached_handles_and_can_be_mapped() {
    // The host serves O_DIRECT opens on the kernel's direct I/O path (FOPEN_DIRECT_IO),
    // and only where the kernel keeps such handles coherent with its page cache: a
    // direct read sees what a buffered write left dirty there (writeback caching), a
    // buffered read sees what a direct write wrote, and the handle can be mapped shared.
    use std::os::unix::fs::FileExt;
    let host = Host::mount("memfs", &["writeback_cache"]);
    let path = host.path("file");
    let mut buffered =
        std::fs::OpenOptions::new().read(true).write(true).create_new(true).mode(0o644).open(&path).unwrap();
    buffered.write_all(&[b'a'; 8192]).unwrap();
    let direct = std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_DIRECT).open(&path).unwrap();
    let mut block = Block([0; 4096]);
    assert_eq!(direct.read_at(&mut block.0, 0).unwrap(), 4096);
    assert!(block.0.iter().all(|&byte| byte == b'a'), "a direct read missed data still in the page cache");

    let mut cached = [0u8; 4096];
    buffered.read_exact_at(&mut cached, 4096).unwrap();
    block.0.fill(b'b');
    assert_eq!(direct.write_at(&block.0, 4096).unwrap(), 4096);
    buffered.read_exact_at(&mut cached, 4096).unwrap();
    assert!(cached.iter().all(|&byte| byte == b'b'), "a buffered read kept pages a direct write replaced");

    let fd = std::os::fd::AsRawFd::as_raw_fd(&direct);
    // SAFETY: a fresh shared read-only mapping of 8 KiB of an open file, read while
    // the file stays open and unmapped before the end of the block.
    unsafe {
        let mapped = libc::mmap(std::ptr::null_mut(), 8192, libc::PROT_READ, libc::MAP_SHARED, fd, 0);
        assert_ne!(mapped, libc::MAP_FAILED, "mmap: {}", std::io::Error::last_os_error());
        let bytes = std::slice::from_raw_parts(mapped.cast::<u8>(), 8192);
        assert_eq!((bytes[0], bytes[8191]), (b'a', b'b'));
        libc::munmap(mapped, 8192);
    }
}
