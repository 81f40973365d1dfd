//! The process's mount table (`/proc/self/mountinfo`), read for what the host must
//! know about a mountpoint: whether something is mounted there, and by whom.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One line of the mount table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mounted {
    pub mountpoint: PathBuf,
    /// `fuse`, `fuse.sshfs`, `tmpfs`, ...
    pub fstype: String,
    /// The source field (`fusehost:memfs` for a fusehost mount).
    pub source: String,
    /// The per-mount options (`ro,nosuid,nodev,noexec,relatime`).
    pub options: String,
}

impl Mounted {
    pub fn is_fuse(&self) -> bool {
        self.fstype == "fuse" || self.fstype.starts_with("fuse.")
    }

    /// Whether the per-mount options hold `option` (`ro`, `noexec`, ...).
    pub fn has_option(&self, option: &str) -> bool {
        self.options.split(',').any(|given| given == option)
    }
}

/// Every mount, in mount order (a later line for a path is mounted on top of an
/// earlier one); empty when the table cannot be read.
pub fn mounts() -> Vec<Mounted> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|table| table.lines().filter_map(parse).collect())
        .unwrap_or_default()
}

/// The mount on top at `path` (compared as written, made absolute: a dead mount
/// cannot be canonicalized).
pub fn mounted_at(path: &Path) -> Option<Mounted> {
    let wanted = std::path::absolute(path).ok()?;
    mounts().into_iter().rev().find(|mount| mount.mountpoint == wanted)
}

/// `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER`
fn parse(line: &str) -> Option<Mounted> {
    let mountpoint = unescape(line.split(' ').nth(4)?);
    let options = line.split(' ').nth(5)?.to_owned();
    let mut after_separator = line.split(" - ").nth(1)?.split(' ');
    let fstype = after_separator.next()?.to_owned();
    let source = unescape(after_separator.next()?).to_string_lossy().into_owned();
    Some(Mounted { mountpoint, fstype, source, options })
}

/// Undoes the table's octal escapes (`\040` for a space).
fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape =
            bytes.get(i + 1..i + 4).filter(|digits| bytes[i] == b'\\' && digits.iter().all(u8::is_ascii_digit));
        match escape {
            Some(digits) => {
                out.push(digits.iter().fold(0u8, |code, digit| code.wrapping_mul(8).wrapping_add(digit - b'0')));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_read_with_its_escapes_undone() {
        let line = "36 35 0:31 / /tmp/with\\040space rw,nosuid shared:1 - fuse fusehost:memfs rw,user_id=0";
        let mounted = parse(line).unwrap();
        assert_eq!(mounted.mountpoint, PathBuf::from("/tmp/with space"));
        assert_eq!((mounted.fstype.as_str(), mounted.source.as_str()), ("fuse", "fusehost:memfs"));
        assert!(mounted.is_fuse());
    }
}
