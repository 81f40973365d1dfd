//! How a mount presents ownership and permissions whatever its plugin answers: the
//! `uid=`, `gid=` and `umask=` mount options, as sshfs, vfat and ntfs-3g offer them.
//! With `default_permissions` (the default) the kernel checks access against what is
//! presented, so `uid=1000` lets user 1000 use a mount whose plugin reports root.

/// Overrides applied to every attribute the kernel receives (getattr, setattr, lookup,
/// create, readdirplus).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Presentation {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Permission bits taken away from every file's mode.
    pub umask: Option<u16>,
}

impl Presentation {
    #[inline]
    pub fn apply(&self, attr: &mut fuser::FileAttr) {
        if let Some(uid) = self.uid {
            attr.uid = uid;
        }
        if let Some(gid) = self.gid {
            attr.gid = gid;
        }
        if let Some(umask) = self.umask {
            attr.perm &= !umask;
        }
    }
}
