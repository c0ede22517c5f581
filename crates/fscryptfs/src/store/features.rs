//! What the backing filesystem offers, and how the daemon does without what it lacks.
//!
//! "Any backing filesystem" means not depending silently on optional features. At `init` and at
//! every read-write mount, [`BackingFeatures::probe`] tries each feature the daemon would use in a
//! fresh scratch directory of the backing root (a reserved temporary name, removed afterwards),
//! and the daemon picks a strategy per feature that keeps every promise without it
//! ([`BackingFeatures::report`] says which; `mount -o verbose` prints it, the log always has it):
//!
//! - **Publishing a new name** (a created file, directory or symlink appears under its final name
//!   only once complete, and never replaces anything): `renameat2(RENAME_NOREPLACE)` of the
//!   temporary name; without it, a hard link to the final name (which fails with EEXIST, atomically)
//!   and then the temporary name's removal; without hard links either (and always for directories,
//!   which cannot be linked), a rename under the directory's lock after checking that the final
//!   name is free. Only the daemon makes names in the volume's directories (under that lock), so
//!   the check cannot race with any mount user; a hostile writer of the backing store racing it
//!   can at worst have its own object replaced (a directory only when empty) — no object is ever
//!   opened or followed there.
//! - **RENAME_EXCHANGE** asked by a user: passed on when the backing filesystem has it; otherwise
//!   refused with EINVAL, as CephFS and NFS themselves refuse it (no crash-safe sequence of plain
//!   renames exchanges two names: a crash between the steps would leave one name missing).
//! - **Reflink** (`FICLONERANGE`, per-extent `copy_file_range`): a byte copy without it.
//! - **Punch hole**: zeros written without it (per-file truncation and hole punching).
//! - **Renames that hold**: required — every directory is published by a rename, and a crash-safe
//!   replacement is a rename; a plain rename that reports success must have moved the name, which
//!   the probe checks in the directory's listing (not through the kernel's cache of names, which
//!   believes the reply). A backing filesystem whose rename lies is refused with one line.
//! - **OFD locks**: required — the volume lock (one read-write daemon per volume, also between
//!   hosts) rests on them; without them, or when a second open file description is granted a
//!   conflicting lock (a filesystem that accepts locks but enforces none), the mount is refused
//!   with one line saying so.
//! - **User xattrs**: passed on; without them `setxattr` fails as the backing filesystem says.
//!
//! Nothing here is trusted for safety: a feature that claims to work and does not is an I/O error
//! at the call, and fsck's checks still catch what a misbehaving backing filesystem leaves behind.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use fscrypt::{Errno, Error, Result};
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};

use super::names;
use super::sys_err;

/// What the probe found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackingFeatures {
    /// A plain `rename(2)` that reports success moves the name (the directory's listing says so
    /// afterwards; a filesystem whose rename claims success and does nothing fails this).
    pub renames_hold: bool,
    /// `renameat2(RENAME_NOREPLACE)`.
    pub rename_noreplace: bool,
    /// `renameat2(RENAME_EXCHANGE)`.
    pub rename_exchange: bool,
    /// `linkat(2)` of regular files.
    pub hard_links: bool,
    /// `O_TMPFILE` (not used; reported).
    pub tmpfile: bool,
    /// `ioctl(FICLONERANGE)`.
    pub clone_range: bool,
    /// `fallocate(PUNCH_HOLE | KEEP_SIZE)`.
    pub punch_hole: bool,
    /// `fallocate(ZERO_RANGE)` (not used: the daemon zeroes ranges itself; reported).
    pub zero_range: bool,
    /// `copy_file_range(2)` between two backing files (reported).
    pub copy_range: bool,
    /// `user.*` extended attributes.
    pub user_xattrs: bool,
    /// Open-file-description (POSIX record) locks.
    pub ofd_locks: bool,
    /// The finest timestamp step kept, in nanoseconds (1, 1000, 1_000_000_000, ...).
    pub timestamp_ns: u32,
}

impl BackingFeatures {
    /// Everything a local Linux filesystem such as ext4 offers: what a read-only mount assumes (it
    /// writes nothing, so none of it is used).
    pub fn assumed() -> BackingFeatures {
        BackingFeatures {
            renames_hold: true,
            rename_noreplace: true,
            rename_exchange: true,
            hard_links: true,
            tmpfile: true,
            clone_range: false,
            punch_hole: true,
            zero_range: true,
            copy_range: true,
            user_xattrs: true,
            ofd_locks: true,
            timestamp_ns: 1,
        }
    }

    /// What the daemon assumes when the probe itself could not run (a full backing filesystem):
    /// the strategies that work everywhere — new names by a checked rename, no reflink or punch
    /// hole relied on (both fall back at the call anyway) — while RENAME_EXCHANGE, OFD locks and
    /// xattrs are passed on and fail as the backing filesystem says, if they do.
    pub fn conservative() -> BackingFeatures {
        BackingFeatures {
            rename_noreplace: false,
            hard_links: false,
            clone_range: false,
            punch_hole: false,
            ..BackingFeatures::assumed()
        }
    }

    /// What the backing filesystem lacks that changes what the daemon does, in one line (None:
    /// nothing).
    pub fn lacks(&self) -> Option<String> {
        let mut v = Vec::new();
        if !self.rename_noreplace {
            v.push(format!(
                "RENAME_NOREPLACE (new names: {})",
                self.publish_strategy()
            ));
        }
        if !self.rename_exchange {
            v.push("RENAME_EXCHANGE (refused with EINVAL)".to_string());
        }
        if !self.hard_links {
            v.push("hard links".to_string());
        }
        if !self.punch_hole {
            v.push("punch hole (zeros written)".to_string());
        }
        if !self.user_xattrs {
            v.push("user xattrs".to_string());
        }
        (!v.is_empty()).then(|| format!("the backing filesystem lacks {}", v.join(", ")))
    }

    /// Probes the backing filesystem under `root` (the backing root's descriptor) in a fresh
    /// scratch directory, removed again (also when a probe fails). Errors only when the scratch
    /// directory cannot be made or a probe fails in a way that says nothing about the feature
    /// (no space, I/O error).
    pub fn probe(root: &impl AsFd) -> Result<BackingFeatures> {
        let name = names::tmp_name()?;
        let what = format!(
            "probing the backing filesystem ({})",
            name.to_string_lossy()
        );
        rustix::fs::mkdirat(root, &name, Mode::from_raw_mode(0o700))
            .map_err(|e| sys_err(&what, e))?;
        let r = probe_in(root, &name, &what);
        let _ = remove_scratch(root, &name);
        r
    }

    /// The strategy for a name that must not exist yet: how it is published.
    pub fn publish_strategy(&self) -> &'static str {
        if self.rename_noreplace {
            "rename with RENAME_NOREPLACE"
        } else if self.hard_links {
            "hard link to the new name, then unlink of the temporary one (directories: checked \
             rename under the directory lock)"
        } else {
            "checked rename under the directory lock"
        }
    }

    /// One line per feature: what was found and what the daemon does about it.
    pub fn report(&self) -> Vec<String> {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let ts = match self.timestamp_ns {
            1 => "1 ns".to_string(),
            n if n.is_multiple_of(1_000_000_000) => format!("{} s", n / 1_000_000_000),
            n if n.is_multiple_of(1_000_000) => format!("{} ms", n / 1_000_000),
            n if n.is_multiple_of(1000) => format!("{} µs", n / 1000),
            n => format!("{n} ns"),
        };
        vec![
            format!(
                "rename: {} — {}",
                if self.renames_hold {
                    "moves the name"
                } else {
                    "reports success but the name does not move"
                },
                if self.renames_hold {
                    "used to publish directories and to replace"
                } else {
                    "required: the volume cannot be kept"
                }
            ),
            format!(
                "rename NOREPLACE: {} — new names: {}",
                yes(self.rename_noreplace),
                self.publish_strategy()
            ),
            format!(
                "rename EXCHANGE: {} — {}",
                yes(self.rename_exchange),
                if self.rename_exchange {
                    "passed on"
                } else {
                    "RENAME_EXCHANGE is refused (EINVAL), as the backing filesystem refuses it"
                }
            ),
            format!(
                "hard links: {} — {}",
                yes(self.hard_links),
                if self.hard_links {
                    "passed on"
                } else {
                    "link(2) fails as the backing filesystem says"
                }
            ),
            format!(
                "reflink (FICLONERANGE): {} — {}",
                yes(self.clone_range),
                if self.clone_range {
                    "per-extent copies share ciphertext"
                } else {
                    "per-extent copies copy ciphertext bytes"
                }
            ),
            format!(
                "punch hole: {} — {}",
                yes(self.punch_hole),
                if self.punch_hole {
                    "holes are punched"
                } else {
                    "zeros are written instead"
                }
            ),
            format!(
                "zero range, copy_file_range, O_TMPFILE: {}, {}, {} — not used",
                yes(self.zero_range),
                yes(self.copy_range),
                yes(self.tmpfile)
            ),
            format!(
                "user xattrs: {} — {}",
                yes(self.user_xattrs),
                if self.user_xattrs {
                    "passed on"
                } else {
                    "setxattr fails as the backing filesystem says"
                }
            ),
            format!(
                "OFD locks: {} — {}",
                yes(self.ofd_locks),
                if self.ofd_locks {
                    "the volume lock"
                } else {
                    "required: the volume lock cannot be held (or is not enforced)"
                }
            ),
            format!("timestamps: {ts} steps"),
        ]
    }

    /// Refuses a backing filesystem no strategy can serve (one whose renames do not hold, one
    /// without OFD locks that hold), with one line naming the missing feature.
    pub fn require_usable(&self, backing: &std::path::Path) -> Result<()> {
        if !self.renames_hold {
            return Err(Error::new(
                Errno::IO,
                format!(
                    "{}: the backing filesystem's rename(2) reports success but the name does not \
                     move (the directory listing still shows the old name), and every directory \
                     and replacement is published by a rename",
                    backing.display()
                ),
            ));
        }
        if !self.ofd_locks {
            return Err(Error::new(
                Errno::NOLCK,
                format!(
                    "{}: the backing filesystem has no POSIX record (OFD) locks that hold (none \
                     taken, or a second lock on a locked file granted), which the volume lock \
                     needs (one read-write mount per volume)",
                    backing.display()
                ),
            ));
        }
        Ok(())
    }
}

impl Default for BackingFeatures {
    /// [`BackingFeatures::assumed`].
    fn default() -> Self {
        BackingFeatures::assumed()
    }
}

/// True when `r` failed because the feature is missing (not because of space or I/O).
fn missing<T>(r: &rustix::io::Result<T>) -> bool {
    matches!(
        r,
        Err(e) if matches!(
            *e,
            Errno::INVAL | Errno::OPNOTSUPP | Errno::NOSYS | Errno::XDEV | Errno::PERM
                | Errno::NOTTY | Errno::ISDIR | Errno::BADF | Errno::NOLCK | Errno::ACCESS
        )
    )
}

/// A probe's verdict: supported, missing, or an error that says nothing about the feature.
fn verdict<T>(r: rustix::io::Result<T>, what: &str) -> Result<bool> {
    if r.is_ok() {
        return Ok(true);
    }
    if missing(&r) {
        return Ok(false);
    }
    Err(sys_err(what, r.err().unwrap_or(Errno::IO)))
}

fn new_file(dir: &OwnedFd, name: &str, what: &str) -> Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| sys_err(what, e))
}

/// Tries an OFD write lock on all of `f`: Ok(true) taken, Ok(false) held by another open file
/// description (EAGAIN, EACCES), Err for any other answer (no such locks).
fn ofd_write_lock(f: &OwnedFd) -> std::result::Result<bool, Errno> {
    // SAFETY: an all-zero `flock` is a valid value; the fields are set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: F_OFD_SETLK reads the `flock` that lives across the call; `f` is open.
    let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if rc == 0 {
        return Ok(true);
    }
    match Errno::from_io_error(&std::io::Error::last_os_error()) {
        Some(e) if e == Errno::AGAIN || e == Errno::ACCESS => Ok(false),
        Some(e) => Err(e),
        None => Err(Errno::IO),
    }
}

fn probe_in(root: &impl AsFd, name: &OsStr, what: &str) -> Result<BackingFeatures> {
    let dir = rustix::fs::openat(
        root,
        name,
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| sys_err(what, e))?;
    let a = new_file(&dir, "a", what)?;
    let b = new_file(&dir, "b", what)?;
    // A plain rename, and back: each must show in the listing.
    let renames_hold = {
        let listed = |name: &str| -> Result<bool> {
            let listing = super::io::open_listing(&dir, what)?;
            let mut found = false;
            super::io::read_entries(&listing, what, |n, _| {
                found = n == name;
                !found
            })?;
            Ok(found)
        };
        rustix::fs::renameat(&dir, "a", &dir, "e").map_err(|e| sys_err(what, e))?;
        let moved = listed("e")? && !listed("a")?;
        rustix::fs::renameat(&dir, "e", &dir, "a").map_err(|e| sys_err(what, e))?;
        moved && listed("a")? && !listed("e")?
    };
    let block = [0x5au8; 8192];
    for f in [&a, &b] {
        let n = rustix::io::pwrite(f, &block, 0).map_err(|e| sys_err(what, e))?;
        if n != block.len() {
            return Err(Error::new(Errno::IO, format!("{what}: short write")));
        }
    }
    // NOREPLACE onto a free name (onto an existing one the VFS itself answers EEXIST, before the
    // filesystem sees the flag), and back.
    let noreplace = verdict(
        rustix::fs::renameat_with(&dir, "a", &dir, "d", RenameFlags::NOREPLACE),
        what,
    )?;
    if noreplace {
        rustix::fs::renameat(&dir, "d", &dir, "a").map_err(|e| sys_err(what, e))?;
    }
    let exchange = verdict(
        rustix::fs::renameat_with(&dir, "a", &dir, "b", RenameFlags::EXCHANGE),
        what,
    )?;
    let hard_links = verdict(
        rustix::fs::linkat(&dir, "a", &dir, "c", AtFlags::empty()),
        what,
    )?;
    let tmpfile = verdict(
        rustix::fs::openat(
            &dir,
            ".",
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ),
        what,
    )?;
    let clone_range = {
        let arg = libc::file_clone_range {
            src_fd: i64::from(a.as_raw_fd()),
            src_offset: 0,
            src_length: 4096,
            dest_offset: 4096,
        };
        // SAFETY: FICLONERANGE reads one `file_clone_range` that lives across the call; both
        // descriptors are open.
        let rc = unsafe { libc::ioctl(b.as_raw_fd(), libc::FICLONERANGE, &arg) };
        rc == 0
    };
    let punch_hole = verdict(
        rustix::fs::fallocate(
            &b,
            rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE,
            0,
            4096,
        ),
        what,
    )?;
    let zero_range = verdict(
        rustix::fs::fallocate(&b, rustix::fs::FallocateFlags::ZERO_RANGE, 0, 4096),
        what,
    )?;
    let copy_range = {
        let (mut src_off, mut dst_off) = (0u64, 0u64);
        verdict(
            rustix::fs::copy_file_range(&a, Some(&mut src_off), &b, Some(&mut dst_off), 4096),
            what,
        )?
    };
    let user_xattrs = match rustix::fs::fsetxattr(
        &a,
        "user.fscryptfs.probe",
        b"1",
        rustix::fs::XattrFlags::empty(),
    ) {
        Err(Errno::NOSPC) | Err(Errno::DQUOT) => false,
        r => verdict(r, what)?,
    };
    // Taken, and honoured: a second open file description of the same file must be refused the
    // conflicting lock (a filesystem that accepts every lock and enforces none would let two
    // daemons write one volume).
    let ofd_locks = ofd_write_lock(&a) == Ok(true) && {
        // The same inode for certain (the rename probes above may have moved the name "a"):
        // through the descriptor's /proc link, which is our own open file.
        let other = rustix::fs::open(
            format!("/proc/self/fd/{}", a.as_raw_fd()),
            OFlags::RDWR | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| sys_err(what, e))?;
        ofd_write_lock(&other) == Ok(false)
    };
    let timestamp_ns = timestamp_step(&a, what)?;
    Ok(BackingFeatures {
        renames_hold,
        rename_noreplace: noreplace,
        rename_exchange: exchange,
        hard_links,
        tmpfile,
        clone_range,
        punch_hole,
        zero_range,
        copy_range,
        user_xattrs,
        ofd_locks,
        timestamp_ns,
    })
}

/// The finest step of the timestamps the backing filesystem keeps: an mtime with 123456789 ns set,
/// read back.
fn timestamp_step(f: &OwnedFd, what: &str) -> Result<u32> {
    let t = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 1_000_000_000,
            tv_nsec: 123_456_789,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 1_000_000_000,
            tv_nsec: 123_456_789,
        },
    };
    rustix::fs::futimens(f, &t).map_err(|e| sys_err(what, e))?;
    let st = rustix::fs::fstat(f).map_err(|e| sys_err(what, e))?;
    let ns = st.st_mtime_nsec as u32;
    Ok(match ns {
        123_456_789 => 1,
        _ if ns == 0 => 1_000_000_000,
        _ => {
            // The largest power of ten dividing what was kept.
            let mut step = 1u32;
            while step < 1_000_000_000 && ns.is_multiple_of(step * 10) {
                step *= 10;
            }
            step
        }
    })
}

/// Removes the scratch directory and what the probes left in it (files only; nothing is
/// followed).
fn remove_scratch(root: &impl AsFd, name: &OsStr) -> rustix::io::Result<()> {
    let dir = rustix::fs::openat(
        root,
        name,
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for n in ["a", "b", "c", "d", "e"] {
        let _ = rustix::fs::unlinkat(&dir, n, AtFlags::empty());
    }
    rustix::fs::unlinkat(root, name, AtFlags::REMOVEDIR)
}

/// `statfs` `f_type` of FUSE filesystems.
const FUSE_FILESYSTEM: u64 = 0x6573_5546;

/// Kernel clients of network filesystems (`statfs` `f_type`): NFS, CephFS, SMB/CIFS (both magics),
/// 9P, AFS (both magics). With FUSE, the filesystems whose every request is a round trip to
/// another process or host.
pub const KERNEL_NETWORK_CLIENTS: &[u64] = &[
    0x6969,
    0x00c3_6400,
    0xfe53_4d42,
    0xff53_4d42,
    0x0102_1997,
    0x6b41_4653,
    0x5346_414f,
];

/// Whether the backing root `backing` is on a filesystem whose every request is a round trip (it
/// only picks defaults, such as the read-ahead: false when it cannot be told). An `fstatfs` of the
/// root's `O_PATH` descriptor: nothing inside the backing store is looked at.
pub fn on_round_trip_filesystem(backing: &std::path::Path) -> bool {
    super::io::open_backing_root(backing).is_ok_and(|root| is_round_trip_filesystem(&root))
}

/// [`on_round_trip_filesystem`] of the filesystem `fd` (a descriptor of the backing root) is on.
pub fn is_round_trip_filesystem(fd: impl std::os::fd::AsFd) -> bool {
    rustix::fs::fstatfs(fd).is_ok_and(|st| {
        let t = st.f_type as u64;
        t == FUSE_FILESYSTEM || KERNEL_NETWORK_CLIENTS.contains(&t)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_filesystem_has_what_the_daemon_uses_and_the_scratch_directory_goes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = crate::store::io::open_backing_root(tmp.path()).expect("root");
        let f = BackingFeatures::probe(&root).expect("probe");
        assert!(
            f.renames_hold
                && f.rename_noreplace
                && f.rename_exchange
                && f.hard_links
                && f.ofd_locks
                && f.punch_hole,
            "{f:?}"
        );
        assert_eq!(
            std::fs::read_dir(tmp.path()).expect("read_dir").count(),
            0,
            "the scratch directory is gone"
        );
        assert_eq!(f.report().len(), 10);
        f.require_usable(tmp.path()).expect("usable");
        let no_locks = BackingFeatures {
            ofd_locks: false,
            ..f
        };
        let e = no_locks.require_usable(tmp.path()).unwrap_err();
        assert!(e.to_string().contains("OFD"), "{e}");
        let lying_renames = BackingFeatures {
            renames_hold: false,
            ..f
        };
        let e = lying_renames.require_usable(tmp.path()).unwrap_err();
        assert!(e.to_string().contains("the name does not move"), "{e}");
        // When the probe cannot run, the strategies that work everywhere, said in one line.
        let c = BackingFeatures::conservative();
        assert!(!c.rename_noreplace && !c.hard_links && c.rename_exchange && c.ofd_locks);
        let said = c.lacks().expect("lacks");
        assert!(
            said.contains("RENAME_NOREPLACE (new names: checked rename under the directory lock)"),
            "{said}"
        );
        assert_eq!(BackingFeatures::assumed().lacks(), None);
    }
}
