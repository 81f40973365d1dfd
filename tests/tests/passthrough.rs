//! The passthrough plugin on a real mount over a tmpfs source.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use std::process::Command;

use fusehost_tests::{fusehost, fusehost_through, mount_lines, Host, Tmpfs};

fn mount_over(source: &Tmpfs, extra: &str) -> Host {
    mount_over_with(fusehost(), source, extra)
}

/// [`mount_over`], fusehost started by `command` (from [`fusehost_through`]).
fn mount_over_with(command: Command, source: &Tmpfs, extra: &str) -> Host {
    Host::mount_with(command, "passthrough", &[&format!("source={}{extra}", source.path().display())])
}

#[test]
fn changes_through_the_mount_land_in_the_source() {
    let source = Tmpfs::new();
    let host = mount_over(&source, "");
    std::fs::write(host.path("new.txt"), "written through fusehost").unwrap();
    assert_eq!(std::fs::read_to_string(source.path().join("new.txt")).unwrap(), "written through fusehost");

    std::fs::create_dir(host.path("dir")).unwrap();
    std::fs::rename(host.path("new.txt"), host.path("dir/moved.txt")).unwrap();
    assert!(!source.path().join("new.txt").exists());
    assert!(source.path().join("dir/moved.txt").is_file());

    std::fs::hard_link(host.path("dir/moved.txt"), host.path("link.txt")).unwrap();
    assert_eq!(std::fs::metadata(source.path().join("link.txt")).unwrap().nlink(), 2);
    let (a, b) =
        (std::fs::metadata(host.path("link.txt")).unwrap(), std::fs::metadata(host.path("dir/moved.txt")).unwrap());
    assert_eq!(a.ino(), b.ino(), "every name of one file is one inode in the mount");

    std::fs::remove_file(host.path("dir/moved.txt")).unwrap();
    assert!(!source.path().join("dir/moved.txt").exists());
    std::os::unix::fs::symlink("link.txt", host.path("sym")).unwrap();
    assert_eq!(std::fs::read_link(source.path().join("sym")).unwrap().to_str(), Some("link.txt"));
}

#[test]
fn changes_made_in_the_source_appear_in_the_mount() {
    let source = Tmpfs::new();
    // Nothing cached: each change shows at once, without waiting for the source watch.
    let host = mount_over(&source, ",cache=never");
    std::fs::write(source.path().join("outside.txt"), "made in the source").unwrap();
    assert_eq!(std::fs::read_to_string(host.path("outside.txt")).unwrap(), "made in the source");
    std::fs::write(source.path().join("outside.txt"), "changed in the source").unwrap();
    assert_eq!(std::fs::read_to_string(host.path("outside.txt")).unwrap(), "changed in the source");
    std::fs::remove_file(source.path().join("outside.txt")).unwrap();
    assert!(!host.path("outside.txt").exists());
}

#[test]
fn new_files_belong_to_their_creator() {
    let source = Tmpfs::new();
    let host = mount_over(&source, ",allow_other");
    std::fs::set_permissions(source.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    std::fs::set_permissions(host.dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let target = host.path("by-nobody");
    let status = std::process::Command::new("su")
        .args(["-s", "/bin/sh", "nobody", "-c"])
        .arg(format!("umask 027; touch {}", target.display()))
        .status()
        .expect("su runs");
    assert!(status.success());
    let meta = std::fs::metadata(source.path().join("by-nobody")).unwrap();
    assert_eq!(meta.uid(), 65534, "owned by nobody in the source");
    assert_eq!(meta.mode() & 0o777, 0o640, "the caller's umask, not the host's");
}

#[test]
fn kernel_passthrough_serves_the_same_bytes() {
    let source = Tmpfs::new();
    let data: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 253) as u8).collect();
    std::fs::write(source.path().join("data"), &data).unwrap();
    let host = mount_over(&source, ",kernel_passthrough=true");
    assert_eq!(std::fs::read(host.path("data")).unwrap(), data);
    let mut file = std::fs::OpenOptions::new().append(true).open(host.path("data")).unwrap();
    std::io::Write::write_all(&mut file, b"tail").unwrap();
    drop(file);
    assert!(std::fs::read(source.path().join("data")).unwrap().ends_with(b"tail"));
    // On kernels without FUSE passthrough the host says so once and serves normally.
    let refused = host.stderr().contains("kernel passthrough unavailable");
    println!("kernel passthrough {}", if refused { "refused by this kernel" } else { "in use" });
}

#[test]
fn a_missing_source_is_refused_before_mounting() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = fusehost_tests::fusehost();
    command.arg("mount").arg("passthrough").arg(dir.path()).arg("--plugin-dir").arg(fusehost_tests::target_dir());
    command.args(["-o", "source=/nonexistent/source"]);
    let output = fusehost_tests::run_to_end(command);
    let stderr = fusehost_tests::stderr_text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("source /nonexistent/source"), "{stderr}");
}

#[test]
fn without_kernel_support_files_are_served_through_the_plugin_and_the_log_says_so() {
    let source = Tmpfs::new();
    std::fs::write(source.path().join("a"), "first").unwrap();
    std::fs::write(source.path().join("b"), "second").unwrap();
    // The operator keeps the kernel feature off, as an older kernel would.
    let host = mount_over(&source, ",kernel_passthrough=true,allow_kernel_passthrough=false");
    assert_eq!(std::fs::read_to_string(host.path("a")).unwrap(), "first");
    assert_eq!(std::fs::read_to_string(host.path("b")).unwrap(), "second");
    assert!(host.wait_for_stderr("kernel passthrough unavailable"), "{}", host.stderr());
    assert_eq!(host.stderr().matches("kernel passthrough unavailable").count(), 1, "said once: {}", host.stderr());
}

/// The race from the hardening review: while a symlink to a root-owned file outside the
/// source is planted and removed in the source, creating the same name through the
/// mount (as root, O_NOFOLLOW) must never truncate, chmod or chown that file.
#[test]
fn creating_through_the_mount_never_follows_a_symlink_planted_in_the_source() {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let source = Tmpfs::new();
    let outside = tempfile::tempdir().unwrap();
    let canary = outside.path().join("canary");
    std::fs::write(&canary, "precious").unwrap();
    std::fs::set_permissions(&canary, PermissionsExt::from_mode(0o600)).unwrap();
    let host = mount_over(&source, ",allow_other,entry_ttl=0,attr_ttl=0");

    let stop = Arc::new(AtomicBool::new(false));
    let planter = std::thread::spawn({
        let (stop, source, canary) = (Arc::clone(&stop), source.path().to_path_buf(), canary.clone());
        move || {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let name = source.join(format!("v{}", round % 8));
                let _ = std::os::unix::fs::symlink(&canary, &name);
                let _ = std::fs::remove_file(&name);
                round += 1;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut creates = 0u64;
    while Instant::now() < deadline {
        for index in 0..8 {
            let path = host.path(&format!("v{index}"));
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o777)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path);
            if created.is_ok() {
                creates += 1;
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    planter.join().unwrap();
    assert!(creates > 0, "the race ran");
    let meta = std::fs::metadata(&canary).unwrap();
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "precious", "the canary was truncated");
    assert_eq!(meta.mode() & 0o7777, 0o600, "the canary was chmod'ed");
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "the canary was chown'ed");
}

#[test]
fn extended_attributes_act_on_the_file_itself() {
    let source = Tmpfs::new();
    let host = mount_over(&source, "");
    let file = host.path("tagged");
    std::fs::write(&file, "x").unwrap();
    let name = "user.colour";
    rustix::fs::setxattr(&file, name, b"blue", rustix::fs::XattrFlags::empty()).expect("setxattr through the mount");
    let mut value = [0u8; 16];
    let size = rustix::fs::getxattr(source.path().join("tagged"), name, &mut value).expect("landed on the source file");
    assert_eq!(&value[..size], b"blue");
    let size = rustix::fs::getxattr(&file, name, &mut value).expect("getxattr through the mount");
    assert_eq!(&value[..size], b"blue");
    let mut names = [0u8; 64];
    let size = rustix::fs::listxattr(&file, &mut names).expect("listxattr");
    assert!(names[..size].split(|&byte| byte == 0).any(|listed| listed == name.as_bytes()));
    let mut small = [0u8; 2];
    assert_eq!(rustix::fs::getxattr(&file, name, &mut small), Err(rustix::io::Errno::RANGE));
    rustix::fs::removexattr(&file, name).expect("removexattr");
    assert_eq!(rustix::fs::getxattr(&file, name, &mut value), Err(rustix::io::Errno::NODATA));
    assert_eq!(rustix::fs::getxattr(&file, "user.never-set", &mut value), Err(rustix::io::Errno::NODATA));
}

#[test]
fn every_user_acting_as_root_through_the_mount_is_refused() {
    let source = Tmpfs::new();
    let dir = tempfile::tempdir().unwrap();
    let mut command = fusehost_tests::fusehost();
    command
        .arg("mount")
        .arg("passthrough")
        .arg(dir.path())
        .arg("--plugin-dir")
        .arg(fusehost_tests::target_dir())
        .arg("-o")
        .arg(format!("source={},allow_other,default_permissions=false", source.path().display()));
    let output = fusehost_tests::run_to_end(command);
    assert_eq!(output.status.code(), Some(2));
    let stderr = fusehost_tests::stderr_text(&output);
    assert!(stderr.contains("would let every user act as root"), "{stderr}");
    assert!(!fusehost_tests::is_mounted(dir.path()));
}

#[test]
fn more_files_than_the_soft_open_file_limit_it_started_with() {
    // passthrough keeps a descriptor per file the kernel holds; the host raises its
    // soft open-file limit to the hard one, so a soft limit of 256 does not cap it.
    let source = Tmpfs::new();
    let host = mount_over_with(fusehost_through("prlimit", &["--nofile=256:", "--"]), &source, "");
    let names: Vec<_> = (0..600).map(|index| host.path(&format!("file{index}"))).collect();
    for name in &names {
        std::fs::write(name, b"x").unwrap();
    }
    for name in &names {
        assert_eq!(std::fs::metadata(name).unwrap().len(), 1);
    }
}

#[test]
fn a_source_root_the_host_may_only_search_is_still_served() {
    // Without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, a root of mode 0111 can be
    // searched but not read: nothing to reopen file handles through, nothing to watch.
    let source = Tmpfs::new();
    std::fs::create_dir(source.path().join("inner")).unwrap();
    std::fs::write(source.path().join("inner/file"), b"served").unwrap();
    std::fs::set_permissions(source.path(), std::fs::Permissions::from_mode(0o111)).unwrap();
    let command = fusehost_through("setpriv", &["--bounding-set=-dac_override,-dac_read_search", "--"]);
    let host = mount_over_with(command, &source, "");
    assert_eq!(std::fs::read(host.path("inner/file")).unwrap(), b"served");
    assert!(host.wait_for_stderr("cannot watch a source folder (Permission denied"), "{}", host.stderr());
    assert!(!host.stderr().contains("max_user_watches"), "{}", host.stderr());
}

#[test]
fn passthrough_mounts_in_one_process_share_its_open_file_limit() {
    // Under a limit of 256, each mount alone would hold its 120 files by descriptor;
    // the three together would pass the limit. They count their descriptors together.
    let sources = [Tmpfs::new(), Tmpfs::new(), Tmpfs::new()];
    let names = ["one", "two", "three"];
    let extras: Vec<String> = sources
        .iter()
        .map(|source| format!("[mount.options]\nsource = {:?}", source.path().display().to_string()))
        .collect();
    let mounts: Vec<_> =
        names.iter().zip(&extras).map(|(name, extra)| mount_lines(name, "passthrough", extra)).collect();
    let host = Host::run_mounts_with(fusehost_through("prlimit", &["--nofile=256:256", "--"]), &mounts);
    for name in names {
        let folder = host.mountpoint().with_file_name(name);
        for index in 0..120 {
            std::fs::write(folder.join(format!("file{index}")), format!("{name} {index}")).unwrap();
        }
    }
    for name in names {
        let folder = host.mountpoint().with_file_name(name);
        for index in 0..120 {
            assert_eq!(
                std::fs::read_to_string(folder.join(format!("file{index}"))).unwrap(),
                format!("{name} {index}")
            );
        }
    }
}

#[test]
fn more_files_than_the_hard_open_file_limit_are_served_through_file_handles() {
    // Past half the limit, new files are kept as file handles (reopened per
    // operation) instead of descriptors: every operation still works on them.
    let source = Tmpfs::new();
    let host = mount_over_with(fusehost_through("prlimit", &["--nofile=256:256", "--"]), &source, "");
    let names: Vec<_> = (0..600).map(|index| host.path(&format!("file{index}"))).collect();
    for (index, name) in names.iter().enumerate() {
        std::fs::write(name, format!("contents of {index}")).unwrap();
    }
    let inodes: Vec<u64> = names.iter().map(|name| std::fs::metadata(name).unwrap().ino()).collect();
    for (index, name) in names.iter().enumerate() {
        assert_eq!(std::fs::read_to_string(name).unwrap(), format!("contents of {index}"));
    }
    // The last files are the ones kept as handles: change them in every way there is.
    let last = &names[599];
    std::fs::set_permissions(last, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(std::fs::metadata(last).unwrap().permissions().mode() & 0o777, 0o600);
    std::fs::OpenOptions::new().write(true).open(last).unwrap().set_len(3).unwrap();
    assert_eq!(std::fs::read(source.path().join("file599")).unwrap(), b"con");
    std::fs::hard_link(last, host.path("another name")).unwrap();
    assert_eq!(std::fs::metadata(host.path("another name")).unwrap().ino(), inodes[599]);
    std::fs::rename(&names[598], host.path("renamed")).unwrap();
    assert_eq!(std::fs::read_to_string(host.path("renamed")).unwrap(), "contents of 598");
    std::os::unix::fs::symlink("file597", host.path("link")).unwrap();
    assert_eq!(std::fs::read_link(host.path("link")).unwrap(), Path::new("file597"));
    std::fs::remove_file(&names[597]).unwrap();
    assert!(!source.path().join("file597").exists());
    // A file still open after its name is gone is still served.
    let mut open = std::fs::OpenOptions::new().read(true).write(true).open(&names[596]).unwrap();
    std::fs::remove_file(&names[596]).unwrap();
    open.write_all(b"more ").unwrap();
    assert_eq!(open.metadata().unwrap().len(), "contents of 596".len() as u64);
    assert_eq!(open.metadata().unwrap().nlink(), 0);
    // Every file is still the inode it was, and the folder lists all of them.
    for (index, name) in names.iter().enumerate().take(596) {
        assert_eq!(std::fs::metadata(name).unwrap().ino(), inodes[index], "{}", name.display());
    }
    assert_eq!(std::fs::read_dir(host.mountpoint()).unwrap().count(), 600);
}
