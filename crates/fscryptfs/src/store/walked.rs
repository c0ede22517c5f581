//! The attributes of a backing object the daemon has just reached by name, without asking the
//! backing filesystem twice.
//!
//! A lookup opens a name `O_PATH` and then needs the object's attributes; an unlink needs the
//! identity of what its name is now. The kernel's path walk to that name already asked the
//! backing filesystem where asking is a round trip: on a FUSE filesystem whose entries have no
//! lifetime (`ceph-fuse` gives none), every walk revalidates the name with a LOOKUP, whose reply
//! carries the attributes and refreshes the kernel's copy of them. A plain `fstat` right after
//! sends a GETATTR all the same, as those attributes have no lifetime either: a second round trip
//! for what the first just brought. `statx(AT_STATX_DONT_SYNC)` takes the kernel's copy instead.
//!
//! On a local filesystem the flag changes nothing (the inode is the truth). On a kernel network
//! client (NFS, CephFS's kernel client, SMB, 9P, AFS) the walk may revalidate a name without
//! refreshing the attributes, and the cached copy may be older than what `fstat` would fetch:
//! there the daemon keeps asking ([`WalkedStat::Asked`]). An object's identity (device, inode
//! number) and type never change, so only the link count, size, owner, mode and times are at
//! stake, and on FUSE they are as fresh as the walk's LOOKUP (a FUSE server whose entries outlive
//! its attributes would give older ones: their age is then bounded by the entry lifetime it chose).

use std::ffi::OsStr;
use std::os::fd::AsFd;

use rustix::fs::{AtFlags, Stat, StatxFlags};

use super::features::KERNEL_NETWORK_CLIENTS;

/// How the daemon takes the attributes of an object its own walk has just reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkedStat {
    /// The kernel's copy, which the walk refreshed (`AT_STATX_DONT_SYNC`): local and FUSE
    /// filesystems.
    Cached,
    /// A plain `fstat`/`fstatat`, which asks the filesystem again: kernel network clients.
    Asked,
}

impl WalkedStat {
    /// The way for the filesystem of `fd` (a descriptor of the backing root): `Asked` on a kernel
    /// network client, whose walks may keep a name without refreshing its attributes, and when
    /// the filesystem's type cannot be told.
    pub fn of_filesystem(fd: impl AsFd) -> Self {
        match rustix::fs::fstatfs(fd) {
            Ok(st) if !KERNEL_NETWORK_CLIENTS.contains(&(st.f_type as u64)) => WalkedStat::Cached,
            _ => WalkedStat::Asked,
        }
    }

    /// The attributes of the object `fd`, opened by name a moment ago by this thread.
    pub fn fstat(self, fd: impl AsFd) -> rustix::io::Result<Stat> {
        match self {
            WalkedStat::Cached => cached(fd, OsStr::new(""), AtFlags::EMPTY_PATH),
            WalkedStat::Asked => rustix::fs::fstat(fd),
        }
    }

    /// The attributes of the entry `name` of `dir` itself (a symlink is not followed): the walk
    /// to it is this call's own.
    pub fn statat(self, dir: impl AsFd, name: &OsStr) -> rustix::io::Result<Stat> {
        match self {
            WalkedStat::Cached => cached(dir, name, AtFlags::SYMLINK_NOFOLLOW),
            WalkedStat::Asked => rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW),
        }
    }
}

/// `statx(AT_STATX_DONT_SYNC)` of `name` in `dir`, as a `stat`.
fn cached(dir: impl AsFd, name: &OsStr, flags: AtFlags) -> rustix::io::Result<Stat> {
    let x = match rustix::fs::statx(
        dir.as_fd(),
        name,
        flags | AtFlags::STATX_DONT_SYNC,
        StatxFlags::BASIC_STATS,
    ) {
        Ok(x) if StatxFlags::from_bits_retain(x.stx_mask).contains(StatxFlags::BASIC_STATS) => x,
        // No `statx` (a kernel before 4.11, a sandbox), or a filesystem that leaves out some of
        // the basic attributes: ask it plainly.
        Ok(_) | Err(rustix::io::Errno::NOSYS) => return rustix::fs::statat(dir, name, flags),
        Err(e) => return Err(e),
    };
    // SAFETY: `Stat` is a plain C struct of integers, for which all zeroes is a valid value; every
    // field the daemon reads is set below.
    let mut st: Stat = unsafe { std::mem::zeroed() };
    st.st_dev = rustix::fs::makedev(x.stx_dev_major, x.stx_dev_minor) as _;
    st.st_ino = x.stx_ino as _;
    st.st_nlink = x.stx_nlink as _;
    st.st_mode = u32::from(x.stx_mode) as _;
    st.st_uid = x.stx_uid as _;
    st.st_gid = x.stx_gid as _;
    st.st_rdev = rustix::fs::makedev(x.stx_rdev_major, x.stx_rdev_minor) as _;
    st.st_size = x.stx_size as _;
    st.st_blksize = x.stx_blksize as _;
    st.st_blocks = x.stx_blocks as _;
    st.st_atime = x.stx_atime.tv_sec as _;
    st.st_atime_nsec = x.stx_atime.tv_nsec as _;
    st.st_mtime = x.stx_mtime.tv_sec as _;
    st.st_mtime_nsec = x.stx_mtime.tv_nsec as _;
    st.st_ctime = x.stx_ctime.tv_sec as _;
    st.st_ctime_nsec = x.stx_ctime.tv_nsec as _;
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// On a local filesystem the kernel's copy is the inode itself: every field `fstat` gives.
    #[test]
    fn the_cached_attributes_of_a_local_object_are_its_fstat() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("f"), b"twelve bytes").expect("write");
        std::os::unix::fs::symlink("f", tmp.path().join("l")).expect("symlink");
        let dir = std::fs::File::open(tmp.path()).expect("open dir");
        let way = WalkedStat::of_filesystem(&dir);
        assert_eq!(way, WalkedStat::Cached, "tmp is local");
        for name in ["f", "l"] {
            let plain = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).expect("statat");
            let walked = way.statat(&dir, OsStr::new(name)).expect("walked statat");
            assert_eq!(format!("{plain:?}"), format!("{walked:?}"), "{name}");
            let fd = rustix::fs::openat(
                &dir,
                name,
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::NOFOLLOW,
                rustix::fs::Mode::empty(),
            )
            .expect("O_PATH");
            let walked_fd = way.fstat(&fd).expect("walked fstat");
            assert_eq!(
                format!("{plain:?}"),
                format!("{walked_fd:?}"),
                "{name} by fd"
            );
        }
        let md = std::fs::symlink_metadata(tmp.path().join("f")).expect("metadata");
        let st = way.statat(&dir, OsStr::new("f")).expect("statat");
        assert_eq!((st.st_ino, st.st_size, st.st_nlink), (md.ino(), 12, 1));
        assert_eq!(
            way.statat(&dir, OsStr::new("missing")).map(|_| ()),
            Err(rustix::io::Errno::NOENT)
        );
    }
}
