//! fusehost mounted the way mount(8) users do it: fstab lines of type `fusehost`
//! through `/sbin/mount.fusehost`, and type `fuse.fusehost` through `mount.fuse3`,
//! with the real `mount` and `umount` commands and an alternate fstab file.
//!
//! mount(8) finds helpers only in its own folders (`/sbin/mount.TYPE`), and
//! `mount.fuse3` runs `fusehost` with a fixed PATH, so the test links this build there
//! for its duration (only where nothing is installed) and removes the links after.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fusehost::mount_table::mounted_at;
use fusehost_tests::{daemon_gone, fusehost_bin, is_mounted, run_within, stderr_text, Unmounted};

const MOUNT_TIMEOUT: Duration = Duration::from_secs(60);

/// Symlinks to this build, removed when dropped.
struct Installed(Vec<PathBuf>);

impl Installed {
    fn link(paths: &[&str]) -> Installed {
        let mut made = Vec::new();
        for path in paths {
            let path = PathBuf::from(path);
            match std::fs::read_link(&path) {
                Ok(target) if target == fusehost_bin() => {}
                Ok(_) | Err(_) if path.exists() => panic!("{} is installed already: not replacing it", path.display()),
                _ => {
                    std::os::unix::fs::symlink(fusehost_bin(), &path).unwrap();
                    made.push(path);
                }
            }
        }
        Installed(made)
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn command(program: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Command {
    let mut command = Command::new(program);
    for arg in args {
        command.arg(arg);
    }
    command
}

#[test]
fn fstab_lines_mount_with_mount_and_go_with_umount() {
    let _installed = Installed::link(&["/sbin/mount.fusehost", "/usr/sbin/fusehost"]);
    let dir = tempfile::tempdir().unwrap();
    let (scratch, archive_mnt, broken) =
        (dir.path().join("scratch"), dir.path().join("archive"), dir.path().join("broken"));
    let _cleanup = Unmounted(vec![scratch.clone(), archive_mnt.clone(), broken.clone()]);
    for folder in [&scratch, &archive_mnt, &broken] {
        std::fs::create_dir(folder).unwrap();
    }
    let archive = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/demo-archive.tar.gz").canonicalize().unwrap();
    let fstab = dir.path().join("fstab");
    std::fs::write(
        &fstab,
        format!(
            "# an alternate fstab, as mount --fstab reads it\n\
             memfs {}  fusehost  defaults,nofail,_netdev,x-systemd.automount,noexec,uid=1234,umask=027,max_size=16MiB  0 0\n\
             {}  {}  fusehost  plugin=archive  0 0\n\
             nosuchplugin  {}  fusehost  defaults  0 0\n",
            scratch.display(),
            archive.display(),
            archive_mnt.display(),
            broken.display()
        ),
    )
    .unwrap();

    // A plugin by name: generic words consumed, noexec mapped, uid/umask presented.
    let mounted = run_within(command("mount", &[&"--fstab", &fstab, &scratch]), MOUNT_TIMEOUT);
    assert!(mounted.status.success(), "mount: {}", stderr_text(&mounted));
    let mounted = mounted_at(&scratch).expect("in the mount table");
    assert!(mounted.fstype == "fuse.fusehost" && mounted.has_option("noexec"), "{mounted:?}");
    std::fs::write(scratch.join("file"), b"data").unwrap();
    let meta = std::fs::metadata(scratch.join("file")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 1234);
    assert_eq!(std::os::unix::fs::MetadataExt::mode(&meta) & 0o777, 0o640);

    // A source for a plugin named by plugin=: the archive, read-only.
    let mounted = run_within(command("mount", &[&"--fstab", &fstab, &archive_mnt]), MOUNT_TIMEOUT);
    assert!(mounted.status.success(), "mount: {}", stderr_text(&mounted));
    assert!(archive_mnt.join("README.txt").is_file());
    assert!(mounted_at(&archive_mnt).is_some_and(|mounted| mounted.has_option("ro")));

    // A mistake: mount fails, saying why, and nothing is left mounted.
    let failed = run_within(command("mount", &[&"--fstab", &fstab, &broken]), MOUNT_TIMEOUT);
    assert!(!failed.status.success());
    assert!(stderr_text(&failed).contains("plugin `nosuchplugin` not found"), "{}", stderr_text(&failed));
    assert!(!is_mounted(&broken));

    // umount ends each mount and its daemon.
    for mountpoint in [&scratch, &archive_mnt] {
        let unmounted = run_within(command("umount", &[mountpoint]), MOUNT_TIMEOUT);
        assert!(unmounted.status.success(), "umount: {}", stderr_text(&unmounted));
        assert!(!is_mounted(mountpoint));
        assert!(daemon_gone(mountpoint), "the daemon of {} exits", mountpoint.display());
    }

    // Type fuse.fusehost, through mount.fuse3 (the fuse3 package).
    if !Path::new("/sbin/mount.fuse3").exists() {
        assert!(std::env::var_os("CI").is_none(), "CI installs fuse3 (mount.fuse3)");
        eprintln!("SKIPPED fuse.fusehost: mount.fuse3 is missing (apt install fuse3)");
        return;
    }
    let mounted = run_within(
        command("mount", &[&"-t", &"fuse.fusehost", &"memfs", &scratch, &"-o", &"uid=42,max_size=8MiB"]),
        MOUNT_TIMEOUT,
    );
    assert!(mounted.status.success(), "mount -t fuse.fusehost: {}", stderr_text(&mounted));
    std::fs::write(scratch.join("other"), b"x").unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(scratch.join("other")).unwrap()), 42);
    let unmounted = run_within(command("umount", &[&scratch]), MOUNT_TIMEOUT);
    assert!(unmounted.status.success());
    assert!(daemon_gone(&scratch));
}
