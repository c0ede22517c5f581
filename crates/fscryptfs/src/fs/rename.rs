//! Removing and moving names: UNLINK, RMDIR (with the emptiness check as the user sees the
//! directory) and RENAME (with RENAME_NOREPLACE and RENAME_EXCHANGE, and fscrypt's rule that a
//! name may only move under the same policy).

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use fscrypt::{Errno, Result};
use rustix::fs::AtFlags;

use super::locks::lock;
use super::mount::Fs;
use super::node::{Kind, Node};
use super::types::errno;
use crate::store::names;
use crate::store::sys_err;

impl Fs {
    pub(super) fn do_unlink(&self, parent: u64, name: &OsStr, is_dir: bool) -> Result<()> {
        self.check_writable()?;
        let dir = self.inodes.usable_node(parent)?;
        let _g = lock(&dir.dir_lock);
        let (bname, _) = self.backing_name(&dir, name)?;
        let what = self.describe_child(&dir, &bname);
        // What the name is now: the identity, type and link count that the walk to it brought.
        let st = self
            .walked
            .statat(&*dir.fd(), &bname)
            .map_err(|e| sys_err(&what, e))?;
        if !is_dir {
            if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory {
                return Err(errno(Errno::ISDIR, "is a directory"));
            }
            rustix::fs::unlinkat(dir.fd(), &bname, AtFlags::empty())
                .map_err(|e| sys_err(&what, e))?;
            self.inodes.name_removed(&st, dir.ino, name);
            self.inodes.forget_backing(&st);
            if !matches!(
                rustix::fs::FileType::from_raw_mode(st.st_mode),
                rustix::fs::FileType::RegularFile | rustix::fs::FileType::Symlink
            ) {
                self.update_specials(&dir, |r| r.remove(&bname))?;
            }
        } else {
            self.remove_dir_entry(&dir, &bname)?;
            self.inodes.name_removed(&st, dir.ino, name);
            self.inodes.forget_backing(&st);
        }
        self.remove_side_file(&dir.fd(), &bname);
        Ok(())
    }

    /// Is the backing directory `fd` empty apart from our own files?
    pub(super) fn user_empty(
        &self,
        fd: &OwnedFd,
        what: &(impl std::fmt::Display + ?Sized),
    ) -> Result<bool> {
        let dfd = crate::store::io::open_listing(fd, what)?;
        Ok(our_entries(&dfd, what)?.is_some())
    }

    /// Removes the (user-empty) directory entry `bname` of `dir`: moved aside to a temporary name
    /// first, so a crash never leaves a visible directory without its metadata. One listing serves
    /// the emptiness check and the removal of our files in it (through the same descriptor, which
    /// follows the directory to its temporary name); should something have appeared in between (a
    /// writer of the backing store), the directory is listed again and emptied.
    pub(super) fn remove_dir_entry(&self, dir: &Node, bname: &OsStr) -> Result<()> {
        let what = self.describe_child(dir, bname);
        let dfd = crate::store::io::open_subdir_listing(&*dir.fd(), bname, &what)?;
        let Some(entries) = our_entries(&dfd, &what)? else {
            return Err(errno(Errno::NOTEMPTY, "directory not empty"));
        };
        let tmp = names::tmp_name()?;
        self.rename_noreplace(dir, bname, &tmp, true)?;
        self.purge_entries(&dfd, &entries, &what)?;
        match rustix::fs::unlinkat(dir.fd(), &tmp, AtFlags::REMOVEDIR) {
            Err(rustix::io::Errno::NOTEMPTY) => self.purge_dir(&dir.fd(), &tmp, &what),
            r => r.map_err(|e| sys_err(&what, e)),
        }
    }

    /// Deletes a directory whose remaining entries are all ours.
    pub(super) fn purge_dir(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        what: &(impl std::fmt::Display + ?Sized),
    ) -> Result<()> {
        let dfd = crate::store::io::open_subdir_listing(parent, name, what)?;
        let mut entries = Vec::new();
        crate::store::io::read_entries(&dfd, what, |n, t| {
            entries.push((n.to_os_string(), t));
            true
        })?;
        self.purge_entries(&dfd, &entries, what)?;
        rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR).map_err(|e| sys_err(what, e))
    }

    /// Deletes `entries` of the directory `dfd` (directories with everything in them).
    fn purge_entries(
        &self,
        dfd: &OwnedFd,
        entries: &[(OsString, rustix::fs::FileType)],
        what: &(impl std::fmt::Display + ?Sized),
    ) -> Result<()> {
        for (n, t) in entries {
            if *t == rustix::fs::FileType::Directory {
                self.purge_dir(dfd, n, what)?;
            } else {
                rustix::fs::unlinkat(dfd, n, AtFlags::empty()).map_err(|e| sys_err(what, e))?;
            }
        }
        Ok(())
    }

    pub(super) fn do_rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
    ) -> Result<()> {
        self.check_writable()?;
        if flags & libc::RENAME_WHITEOUT != 0 {
            return Err(errno(Errno::INVAL, "RENAME_WHITEOUT is not supported"));
        }
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        let noreplace = flags & libc::RENAME_NOREPLACE != 0;
        if exchange && !self.opts.features.rename_exchange {
            // No crash-safe sequence of plain renames swaps two names (store/features.rs).
            return Err(errno(
                Errno::INVAL,
                "RENAME_EXCHANGE: the backing filesystem does not support it",
            ));
        }
        let odir = self.inodes.usable_node(parent)?;
        let ndir = self.inodes.usable_node(newparent)?;
        // Lock both directories, in inode order.
        let (_g1, _g2) = if odir.ino == ndir.ino {
            (Some(lock(&odir.dir_lock)), None)
        } else if odir.ino < ndir.ino {
            let a = lock(&odir.dir_lock);
            (Some(a), Some(lock(&ndir.dir_lock)))
        } else {
            let b = lock(&ndir.dir_lock);
            (Some(lock(&odir.dir_lock)), Some(b))
        };
        // fscrypt_prepare_rename: both directories' keys (the policies once both entries are known).
        let okey = self.dir_key(&odir)?;
        okey.require()?;
        let nkey = self.dir_key(&ndir)?;
        nkey.require()?;
        let (obname, _) = self.backing_name(&odir, name)?;
        let (nbname, nct) = self.new_backing_name(&ndir, newname)?;
        let owhat = self.describe_child(&odir, &obname);
        let ofd = self.open_path(&odir, &obname)?;
        let (src, _) = self.node_from_fd(ofd, odir.ino, name, &obname, &owhat)?;
        let res = (|| {
            let nwhat = self.describe_child(&ndir, &nbname);
            let dst = match crate::store::io::open_object(&*ndir.fd(), &nbname, &nwhat)? {
                Some(fd) => Some(self.node_from_fd(fd, ndir.ino, newname, &nbname, &nwhat)?.0),
                None => None,
            };
            let res = (|| {
                fscrypt::hooks::prepare_rename(
                    &okey,
                    &odir.hook_inode(),
                    &nkey,
                    &ndir.hook_inode(),
                    &src.hook_inode(),
                    dst.as_ref().map(|d| d.hook_inode()).as_ref(),
                    exchange,
                )?;
                if exchange {
                    if dst.is_none() {
                        return Err(errno(Errno::NOENT, "exchange target does not exist"));
                    }
                    // Names stay where they are: side files stay valid.
                    rustix::fs::renameat_with(
                        odir.fd(),
                        &obname,
                        ndir.fd(),
                        &nbname,
                        rustix::fs::RenameFlags::EXCHANGE,
                    )
                    .map_err(|e| sys_err(&owhat, e))?;
                    // Special-file numbers follow their objects.
                    let at = |n: &Node| n.kind.is_special().then_some(n.ino);
                    let (s_ino, d_ino) = (at(&src), dst.as_deref().and_then(at));
                    self.update_specials(&odir, |r| match d_ino {
                        Some(i) => {
                            r.set(&obname, i);
                            true
                        }
                        None => r.remove(&obname),
                    })?;
                    self.update_specials(&ndir, |r| match s_ino {
                        Some(i) => {
                            r.set(&nbname, i);
                            true
                        }
                        None => r.remove(&nbname),
                    })?;
                    // The kernel swaps the two entries.
                    if let Some(d) = &dst {
                        entry_moved(&src, (odir.ino, name), (ndir.ino, newname), &ndir);
                        entry_moved(d, (ndir.ino, newname), (odir.ino, name), &odir);
                    }
                    return Ok(());
                }
                if let Some(d) = &dst {
                    if noreplace {
                        return Err(errno(Errno::EXIST, "target exists"));
                    }
                    if Arc::ptr_eq(d, &src) {
                        return Ok(());
                    }
                    match (src.kind == Kind::Dir, d.kind == Kind::Dir) {
                        (true, false) => {
                            return Err(errno(Errno::NOTDIR, "target is not a directory"))
                        }
                        (false, true) => return Err(errno(Errno::ISDIR, "target is a directory")),
                        (true, true) => self.remove_dir_entry(&ndir, &nbname)?,
                        _ => {}
                    }
                }
                if let Some(ct) = &nct {
                    self.write_side_file(&ndir, &nbname, ct)?;
                }
                // The target was reached by name just above.
                let replaced = dst.as_ref().and_then(|d| self.walked.fstat(&*d.fd()).ok());
                let src_special = src.kind.is_special();
                if src_special {
                    let ino = src.ino;
                    self.update_specials(&ndir, |r| {
                        r.set(&nbname, ino);
                        true
                    })?;
                }
                // The target was found absent above, under both directory locks: the flag only
                // guards against other writers of the backing store, where it exists.
                let fl = if noreplace && self.opts.features.rename_noreplace {
                    rustix::fs::RenameFlags::NOREPLACE
                } else {
                    rustix::fs::RenameFlags::empty()
                };
                rustix::fs::renameat_with(odir.fd(), &obname, ndir.fd(), &nbname, fl)
                    .map_err(|e| sys_err(&owhat, e))?;
                if let Some(st) = &replaced {
                    self.inodes.forget_backing(st);
                }
                if src_special {
                    self.update_specials(&odir, |r| r.remove(&obname))?;
                } else if dst.as_ref().is_some_and(|d| d.kind.is_special()) {
                    self.update_specials(&ndir, |r| r.remove(&nbname))?;
                }
                if odir.ino != ndir.ino || obname != nbname {
                    self.remove_side_file(&odir.fd(), &obname);
                }
                if let Some(d) = &dst {
                    lock(&d.meta)
                        .cached_names
                        .retain(|(p, n)| !(*p == ndir.ino && n == newname));
                }
                entry_moved(&src, (odir.ino, name), (ndir.ino, newname), &ndir);
                Ok(())
            })();
            if let Some(d) = dst {
                self.forget(d.ino, 1);
            }
            res
        })();
        self.forget(src.ino, 1);
        res
    }
}

/// The kernel moved `node`'s entry `from` to `to` in directory `to_dir` (RENAME): its last known
/// name follows, and so does the cached entry a key change must make the kernel forget (dropped
/// when the new directory is not encrypted: key changes do not touch its names).
fn entry_moved(node: &Node, from: (u64, &OsStr), to: (u64, &OsStr), to_dir: &Node) {
    let keep = to_dir.is_encrypted();
    let mut m = lock(&node.meta);
    m.parent = to.0;
    m.name = to.1.to_os_string();
    let was_cached = m.cached_names.len();
    m.cached_names
        .retain(|(p, n)| !(*p == from.0 && n == from.1));
    if m.cached_names.len() != was_cached && keep {
        m.cached_names.push((to.0, to.1.to_os_string()));
    }
}

/// Our own entries (reserved names) of the directory open for listing as `dfd`, with their types;
/// None as soon as one of the user's is met (the rest is not read).
fn our_entries(
    dfd: &OwnedFd,
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<Option<Vec<(OsString, rustix::fs::FileType)>>> {
    let mut ours = Some(Vec::new());
    crate::store::io::read_entries(dfd, what, |n, t| match &mut ours {
        Some(v) if names::is_reserved(n.as_bytes()) => {
            v.push((n.to_os_string(), t));
            true
        }
        _ => {
            ours = None;
            false
        }
    })?;
    Ok(ours)
}
