//! Attributes: GETATTR/SETATTR (size changes through the contents path, ownership, mode, times),
//! the attribute and entry lifetimes the kernel may cache, symlink targets as the caller sees them,
//! the owner of new inodes, and the `user.*` extended attributes; and [`advance_clock_past`], which
//! makes the next change's timestamps later than this one's (docs/SEMANTICS.md, "Timestamps").

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime};

use fscrypt::{Errno, Error, Result};
use rustix::fs::{AtFlags, Mode};

use super::locks::{lock, rlock};
use super::mount::Fs;
use super::node::{check_usable, Kind, Node, State};
use super::types::{errno, Attr, Creds, FileType, SetAttr, SetTime};
use crate::store::meta::SymlinkTarget;
use crate::store::names;
use crate::store::sys_err;

/// Entry and attribute lifetime: how long the kernel may trust what a reply said without asking
/// again. One second, as gocryptfs and libfuse's examples use: the backing store may change behind
/// the mount (a synced folder), and that is how soon such a change shows. Key changes do not wait
/// for it: adding or removing a key tells the kernel to forget the entries it changes
/// ([`Fs::forget_entries_in`](super::mount::Fs)).
pub(super) const TTL: Duration = Duration::from_secs(1);

/// What cannot be told to the kernel is not cached: the second name of a hard-linked file in an
/// encrypted directory (the daemon remembers one name per inode, so key removal could not make the
/// kernel forget the others) and an encrypted symlink's attributes (its size is the plaintext or
/// the no-key target's length, and FUSE has no notification for one entry's attributes by name).
pub(super) const UNCACHED: Duration = Duration::ZERO;

impl Fs {
    /// The attributes of `node` as a reply reports them: the backing inode's, with the logical size
    /// and the symlink target's length. Every reply carrying timestamps goes through here, so this
    /// is where [`advance_clock_past`] makes every later change's stamps later than these, where
    /// the kernel stamps the next change itself ([`Fs::kernel_may_show`]).
    pub(super) fn attr(&self, node: &Node) -> Result<Attr> {
        let st = rustix::fs::fstat(node.fd()).map_err(|e| sys_err(self.describe(node), e))?;
        Ok(self.attr_of(node, &st))
    }

    /// [`Fs::attr`] from a `stat` of the node's backing object the caller already has (a new
    /// file's, taken through its open descriptor: no second backing call).
    pub(super) fn attr_of(&self, node: &Node, st: &rustix::fs::Stat) -> Attr {
        if let Some(newest) = self.kernel_may_show(node, st) {
            advance_clock_past(newest);
        }
        self.attr_fields(node, st)
    }

    /// The attributes of `node` from its backing object's `st`, with no clock advance.
    fn attr_fields(&self, node: &Node, st: &rustix::fs::Stat) -> Attr {
        let (size, encrypted) = {
            let s = rlock(&node.state);
            let size = match node.kind {
                Kind::File => s.size(),
                Kind::Symlink => self
                    .link_text_locked(node, &s)
                    .map(|t| t.len() as u64)
                    .unwrap_or(0),
                _ => st.st_size as u64,
            };
            (size, s.ctx().is_some())
        };
        let _ = encrypted;
        let ts = |s: i64, ns: i64| -> std::time::SystemTime {
            if s >= 0 {
                std::time::UNIX_EPOCH + Duration::new(s as u64, ns as u32)
            } else {
                std::time::UNIX_EPOCH - Duration::from_secs(s.unsigned_abs())
            }
        };
        Attr {
            ino: node.ino,
            size,
            blocks: st.st_blocks as u64,
            atime: ts(st.st_atime, st.st_atime_nsec as i64),
            mtime: ts(st.st_mtime, st.st_mtime_nsec as i64),
            ctime: ts(st.st_ctime, st.st_ctime_nsec as i64),
            kind: FileType::of_kind(node.kind),
            perm: (st.st_mode & 0o7777) as u16,
            nlink: st.st_nlink as u32,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev as u32,
            blksize: 4096,
        }
    }

    /// The newest timestamp the kernel may show for `node` (nanoseconds since the epoch) when the
    /// kernel, not the backing filesystem, stamps the node's next change; None when it does not.
    /// With the writeback cache the kernel keeps a regular file's ctime and mtime itself:
    /// directories, symlinks and special files are stamped by the backing filesystem, whose own
    /// multigrain timestamps make a change after our `stat` later than what it showed. A file
    /// unlinked and closed: None, nobody can see a later change. A closed file: the newest of
    /// `st`'s ctime and mtime, as the kernel stamps nothing without a request to us in between
    /// (link, unlink, rename and truncate send their stamps in a SETATTR). An open file: any
    /// stamp (`i64::MAX`), as a write(2) into the page cache stamps it without telling us.
    fn kernel_may_show(&self, node: &Node, st: &rustix::fs::Stat) -> Option<i64> {
        if !self.writeback_cache() || node.kind != Kind::File {
            return None;
        }
        let m = lock(&node.meta);
        if m.opens > 0 {
            Some(i64::MAX)
        } else if m.removed.is_some() {
            None
        } else {
            Some(
                stamp_ns(st.st_ctime, st.st_ctime_nsec as i64)
                    .max(stamp_ns(st.st_mtime, st.st_mtime_nsec as i64)),
            )
        }
    }

    /// Only an encrypted symlink's attributes depend on the key (its size is the plaintext or the
    /// no-key target's length); everything else the kernel may cache like any attribute.
    pub(super) fn attr_ttl(&self, node: &Node) -> Duration {
        if node.is_encrypted() && node.kind == Kind::Symlink {
            UNCACHED
        } else {
            TTL
        }
    }

    /// How long the kernel may keep the entry of `attr`'s inode in directory `dir`: [`TTL`], but
    /// [`UNCACHED`] for a file with more than one name in an encrypted directory.
    pub(super) fn entry_ttl(&self, dir: &Node, attr: &Attr) -> Duration {
        if dir.is_encrypted() && attr.nlink > 1 && attr.kind != FileType::Directory {
            UNCACHED
        } else {
            TTL
        }
    }

    /// A symlink's target as the caller sees it: plaintext with the key, the no-key form without.
    pub(super) fn link_text_locked(&self, node: &Node, st: &State) -> Result<Vec<u8>> {
        match st.link() {
            Some(SymlinkTarget::Plain { target, .. }) => Ok(target.clone()),
            Some(SymlinkTarget::Encrypted { data, .. }) => match st.key() {
                Some(k) => k.decrypt_symlink(data),
                None => {
                    let ct = fscrypt::symlink::ciphertext(data)
                        .map_err(|e| Error::corrupt(format!("{}: {e}", self.describe(node))))?;
                    Ok(names::ct_to_backing(ct).as_bytes().to_vec())
                }
            },
            None => Err(errno(Errno::INVAL, "not a symlink")),
        }
    }

    pub(super) fn readlink(&self, node: &Node) -> Result<Vec<u8>> {
        if node.kind != Kind::Symlink {
            return Err(errno(Errno::INVAL, "not a symlink"));
        }
        check_usable(node)?;
        match self.ensure_key(node) {
            Ok(_) => {}
            Err(e) if e.errno() == Errno::NOKEY => {}
            Err(e) => return Err(e),
        }
        let st = rlock(&node.state);
        self.link_text_locked(node, &st)
    }

    pub(super) fn owner_for(&self, dir: &Node, req: &Creds) -> (u32, u32) {
        let mut gid = req.gid();
        if let Ok(st) = rustix::fs::fstat(dir.fd()) {
            if st.st_mode & 0o2000 != 0 {
                gid = st.st_gid;
            }
        }
        (req.uid(), gid)
    }

    pub(super) fn chown_new(
        &self,
        dirfd: &OwnedFd,
        bname: &OsStr,
        owner: (u32, u32),
    ) -> Result<()> {
        if !self.is_root {
            return Ok(());
        }
        // SAFETY-free: rustix ids from raw are plain integers.
        let (u, g) = (
            rustix::fs::Uid::from_raw(owner.0),
            rustix::fs::Gid::from_raw(owner.1),
        );
        rustix::fs::chownat(dirfd, bname, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| sys_err(bname.to_string_lossy(), e))
    }

    /// [`Fs::chown_new`] for a new regular file through its open descriptor, returning the file's
    /// `stat` afterwards: nothing changes when it already has that owner (root creating, as the
    /// daemon is), so no backing call is made beyond the `fstat` the reply needs anyway.
    pub(super) fn chown_new_file(
        &self,
        file: &std::fs::File,
        owner: (u32, u32),
        what: &(impl std::fmt::Display + ?Sized),
    ) -> Result<rustix::fs::Stat> {
        let st = rustix::fs::fstat(file).map_err(|e| sys_err(what, e))?;
        if !self.is_root || (st.st_uid, st.st_gid) == owner {
            return Ok(st);
        }
        let (u, g) = (
            rustix::fs::Uid::from_raw(owner.0),
            rustix::fs::Gid::from_raw(owner.1),
        );
        rustix::fs::fchown(file, Some(u), Some(g)).map_err(|e| sys_err(what, e))?;
        rustix::fs::fstat(file).map_err(|e| sys_err(what, e))
    }

    /// SETATTR: the new attributes and their lifetime.
    pub(super) fn do_setattr(&self, ino: u64, change: &SetAttr) -> Result<(Attr, Duration)> {
        let attr = self.set_attr(ino, change)?;
        let node = self.inodes.node(ino)?;
        Ok((attr, self.attr_ttl(&node)))
    }

    pub(super) fn set_attr(&self, ino: u64, change: &SetAttr) -> Result<Attr> {
        let SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
            fh,
        } = *change;
        let node = self.inodes.node(ino)?;
        if mode.is_some()
            || uid.is_some()
            || gid.is_some()
            || size.is_some()
            || atime.is_some()
            || mtime.is_some()
        {
            self.check_writable()?;
        }
        let what = || self.describe(&node);
        if let Some(size) = size {
            if node.kind != Kind::File {
                return Err(errno(Errno::INVAL, "size change of a non-regular file"));
            }
            let h = fh
                .and_then(|f| self.handles.get(f).ok())
                .filter(|h| h.file().is_some());
            match h {
                Some(h) => {
                    if let Some(a) = rlock(&node.state).active() {
                        a.prepare_write()?;
                    }
                    let file = h.file().ok_or_else(|| errno(Errno::BADF, "no file"))?;
                    self.contents()
                        .set_size(&node, &file, h.key.as_deref(), size)?;
                }
                None => {
                    let key = self.file_key_for_change(&node)?;
                    let file = self.contents().backing_for_change(&node)?;
                    self.contents()
                        .set_size(&node, &file, key.as_deref(), size)?;
                }
            }
            // A shrink leaves the log's records past the new size dead.
            self.contents().ext_maybe_compact(&node);
        }
        if uid.is_some() || gid.is_some() {
            rustix::fs::chownat(
                node.fd(),
                "",
                uid.map(rustix::fs::Uid::from_raw),
                gid.map(rustix::fs::Gid::from_raw),
                AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| sys_err(what(), e))?;
        }
        if let Some(m) = mode {
            if node.kind != Kind::Symlink {
                rustix::fs::chmod(node.proc_path(), Mode::from_raw_mode(m & 0o7777))
                    .map_err(|e| sys_err(what(), e))?;
            }
        }
        let only_times = mode.is_none() && uid.is_none() && gid.is_none() && size.is_none();
        if only_times {
            let m = lock(&node.meta);
            if let (Some(gone), 0) = (m.removed, m.opens) {
                // Unlinked and closed: nobody can see these times any more.
                drop(m);
                return Ok(self.attr_of(&node, &gone));
            }
        }
        if atime.is_some() || mtime.is_some() {
            let conv = |t: Option<SetTime>| -> rustix::fs::Timespec {
                match t {
                    None => rustix::fs::Timespec {
                        tv_sec: 0,
                        tv_nsec: rustix::fs::UTIME_OMIT,
                    },
                    Some(SetTime::Now) => rustix::fs::Timespec {
                        tv_sec: 0,
                        tv_nsec: rustix::fs::UTIME_NOW,
                    },
                    Some(SetTime::At(t)) => {
                        let (s, ns) = match t.duration_since(SystemTime::UNIX_EPOCH) {
                            Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
                            Err(e) => {
                                let d = e.duration();
                                let mut s = -(d.as_secs() as i64);
                                let mut ns = d.subsec_nanos();
                                if ns > 0 {
                                    s -= 1;
                                    ns = 1_000_000_000 - ns;
                                }
                                (s, ns)
                            }
                        };
                        rustix::fs::Timespec {
                            tv_sec: s,
                            tv_nsec: ns.into(),
                        }
                    }
                }
            };
            let ts = rustix::fs::Timestamps {
                last_access: conv(atime),
                last_modification: conv(mtime),
            };
            // The node's O_PATH descriptor is the object itself (a symlink's too): AT_EMPTY_PATH
            // sets its own times, with no path through /proc to resolve.
            rustix::fs::utimensat(
                node.fd(),
                "",
                &ts,
                AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| sys_err(what(), e))?;
        }
        // The kernel stamped this change with a ctime of its own, which it shows and we do not
        // keep: advance past whatever it was, not only past the backing object's stamps.
        let st = rustix::fs::fstat(node.fd()).map_err(|e| sys_err(self.describe(&node), e))?;
        if self.kernel_may_show(&node, &st).is_some() {
            advance_clock_past(i64::MAX);
        }
        Ok(self.attr_fields(&node, &st))
    }

    /// Clears the set-user-ID bit of `ino`, and its set-group-ID bit when group execute is set,
    /// where the kernel asked for it (`FUSE_HANDLE_KILLPRIV_V2`: a write, truncate or chown by a
    /// caller without CAP_FSETID, an open with `O_TRUNC`) or would have (fallocate and
    /// copy_file_range by anyone but root). The kernel keeps the mode it cached: with `notify`
    /// (a WRITE, whose reply carries no attributes) it is told to forget it once the bits went.
    pub(super) fn kill_suidgid(&self, ino: u64, notify: bool) -> Result<()> {
        let node = self.inodes.node(ino)?;
        if matches!(node.kind, Kind::Dir | Kind::Symlink) {
            return Ok(());
        }
        let st = rustix::fs::fstat(node.fd()).map_err(|e| sys_err(self.describe(&node), e))?;
        let mode = st.st_mode & 0o7777;
        let killed = mode_without_suidgid(mode);
        if killed == mode {
            return Ok(());
        }
        self.check_writable()?;
        rustix::fs::chmod(node.proc_path(), Mode::from_raw_mode(killed))
            .map_err(|e| sys_err(self.describe(&node), e))?;
        if notify {
            if let Some(n) = self.notifier.get() {
                let _ = n.inval_attrs(ino);
            }
        }
        Ok(())
    }

    pub(super) fn xattr_path(&self, node: &Node) -> Result<String> {
        if node.kind == Kind::Symlink {
            return Err(errno(Errno::OPNOTSUPP, "no user xattrs on symlinks"));
        }
        Ok(node.proc_path())
    }

    pub(super) fn check_xattr_name(name: &OsStr) -> Result<()> {
        if !name.as_bytes().starts_with(b"user.") {
            return Err(errno(
                Errno::OPNOTSUPP,
                "only user.* extended attributes are supported",
            ));
        }
        Ok(())
    }

    /// GETATTR: the attributes and their lifetime.
    pub(super) fn do_getattr(&self, ino: u64) -> Result<(Attr, Duration)> {
        let node = self.inodes.node(ino)?;
        let attr = self.attr(&node)?;
        Ok((attr, self.attr_ttl(&node)))
    }

    /// READLINK.
    pub(super) fn do_readlink(&self, ino: u64) -> Result<Vec<u8>> {
        let node = self.inodes.node(ino)?;
        self.readlink(&node)
    }

    /// SETXATTR (`user.*` only).
    pub(super) fn do_setxattr(
        &self,
        ino: u64,
        name: &OsStr,
        value: &[u8],
        flags: i32,
    ) -> Result<()> {
        self.check_writable()?;
        Self::check_xattr_name(name)?;
        let node = self.inodes.node(ino)?;
        let p = self.xattr_path(&node)?;
        let fl = rustix::fs::XattrFlags::from_bits_retain(flags as u32);
        rustix::fs::setxattr(&p, name, value, fl).map_err(|e| sys_err(self.describe(&node), e))
    }

    /// GETXATTR: the value (ENODATA for names we do not keep).
    pub(super) fn do_getxattr(&self, ino: u64, name: &OsStr) -> Result<Vec<u8>> {
        Self::check_xattr_name(name).map_err(|_| errno(Errno::NODATA, "no such attribute"))?;
        let node = self.inodes.node(ino)?;
        let p = self
            .xattr_path(&node)
            .map_err(|_| errno(Errno::NODATA, "no such attribute"))?;
        let mut buf = vec![0u8; 65536];
        let n = rustix::fs::getxattr(&p, name, &mut buf[..])
            .map_err(|e| sys_err(self.describe(&node), e))?;
        buf.truncate(n);
        Ok(buf)
    }

    /// LISTXATTR: the `user.*` names, each NUL-terminated.
    pub(super) fn do_listxattr(&self, ino: u64) -> Result<Vec<u8>> {
        let node = self.inodes.node(ino)?;
        let Ok(p) = self.xattr_path(&node) else {
            return Ok(Vec::new());
        };
        let mut buf = vec![0u8; 65536];
        let n = rustix::fs::listxattr(&p, &mut buf[..])
            .map_err(|e| sys_err(self.describe(&node), e))?;
        let mut out = Vec::new();
        for name in buf[..n]
            .split(|&b| b == 0)
            .filter(|n| n.starts_with(b"user."))
        {
            out.extend_from_slice(name);
            out.push(0);
        }
        Ok(out)
    }

    /// REMOVEXATTR (ENODATA for names we do not keep).
    pub(super) fn do_removexattr(&self, ino: u64, name: &OsStr) -> Result<()> {
        self.check_writable()?;
        Self::check_xattr_name(name).map_err(|_| errno(Errno::NODATA, "no such attribute"))?;
        let node = self.inodes.node(ino)?;
        let p = self.xattr_path(&node)?;
        rustix::fs::removexattr(&p, name).map_err(|e| sys_err(self.describe(&node), e))
    }
}

/// Makes every timestamp the kernel hands out from now on later than `newest_ns` (a stamp in
/// nanoseconds since the epoch that a reply is about to show), so the next change of the inode
/// gets a later ctime (and mtime) than the one being answered — even within one clock tick.
///
/// Why: with the writeback cache the kernel owns a regular file's ctime and mtime (it ignores the
/// daemon's values for them) and stamps them with `current_time()`, which for FUSE is the coarse
/// clock (one tick: 4 ms at HZ=250) raised to the multigrain floor (Linux ≥ 6.13). Two changes a
/// millisecond apart got the same ctime. The floor rises whenever a multigrain filesystem (ext4,
/// xfs, btrfs, tmpfs) hands out a fine-grained stamp, which it does for an inode whose ctime was
/// looked at since its last change. So: change a private tmpfs inode (a memfd) — its new ctime X1
/// is at least any stamp handed out so far —, look at its ctime, change it again — X2 > X1, and
/// either a fine stamp that raised the floor to X2 or a coarse clock already past X1. Either way
/// `current_time()` returns at least X2 from then on. Three system calls, serialized; on a kernel
/// without multigrain timestamps this changes nothing (and costs as much).
///
/// Skipped when `newest_ns` is below the X1 of an advance that has completed: every stamp since
/// is at least that advance's X2 > X1 > `newest_ns` already. So a file changed before the last
/// advance (a `find`, an `ls -lR` or an `rm -rf` of files written earlier) costs nothing here;
/// a file just changed (a create, a write) costs one advance.
///
/// Called by [`Fs::attr`] for the files whose next change the kernel stamps, so after every reply
/// that reports their timestamps (LOOKUP, GETATTR, CREATE, MKNOD, LINK, SETATTR): what multigrain
/// timestamps promise — a change after a timestamp was observed gets a later one — holds for what
/// the kernel observes through us. SETATTR covers chmod, chown, truncate, ftruncate and utimes
/// (whose ctime the kernel computed before sending it) and the times the kernel computed at link,
/// rename, unlink and writes, which it sends in a SETATTR right after them or at close.
pub(super) fn advance_clock_past(newest_ns: i64) {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::OnceLock;
    // The X1 of the newest advance that has completed (its second change done).
    static ADVANCED_PAST: AtomicI64 = AtomicI64::new(i64::MIN);
    // No lock: the calls are independent, and threads interleaving them still each advance it.
    static CLOCK: OnceLock<Option<OwnedFd>> = OnceLock::new();
    if newest_ns < ADVANCED_PAST.load(Ordering::Acquire) {
        return;
    }
    let clock = CLOCK.get_or_init(|| {
        rustix::fs::memfd_create(
            "fscryptfs-clock",
            rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
        )
        .map_err(|e| tracing::warn!("memfd for timestamps: {e}; ctime may repeat within a tick"))
        .ok()
    });
    let Some(fd) = clock else {
        return;
    };
    let mode = Mode::from_raw_mode(0o600);
    if rustix::fs::fchmod(fd, mode).is_err() {
        return;
    }
    let x1 = rustix::fs::fstat(fd);
    if rustix::fs::fchmod(fd, mode).is_ok() {
        if let Ok(st) = x1 {
            ADVANCED_PAST.fetch_max(
                stamp_ns(st.st_ctime, st.st_ctime_nsec as i64),
                Ordering::Release,
            );
        }
    }
}

/// A timestamp as nanoseconds since the epoch (saturating: a stamp beyond 2262 compares as the
/// largest, one before 1678 as the smallest).
fn stamp_ns(sec: i64, nsec: i64) -> i64 {
    sec.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// `mode` as a write, truncate or chown by a caller without CAP_FSETID leaves it (the kernel's
/// `should_remove_suid`): no set-user-ID bit, and no set-group-ID bit when group execute is set
/// (without group execute, set-group-ID means mandatory locking and stays).
fn mode_without_suidgid(mode: u32) -> u32 {
    let mut m = mode & !libc::S_ISUID;
    if m & libc::S_IXGRP != 0 {
        m &= !libc::S_ISGID;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::mode_without_suidgid;

    #[test]
    fn set_user_id_always_goes_and_set_group_id_only_with_group_execute() {
        assert_eq!(mode_without_suidgid(0o4755), 0o755);
        assert_eq!(mode_without_suidgid(0o2755), 0o755);
        assert_eq!(mode_without_suidgid(0o6755), 0o755);
        assert_eq!(mode_without_suidgid(0o2745), 0o2745);
        assert_eq!(mode_without_suidgid(0o6644), 0o2644);
        assert_eq!(mode_without_suidgid(0o1777), 0o1777);
        assert_eq!(mode_without_suidgid(0o644), 0o644);
    }
}
