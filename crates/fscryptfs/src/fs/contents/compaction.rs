//! Compaction of per-extent logs: after a writeout, a log that `needs_compaction` is rewritten
//! into a sibling that replaces it by rename (`ext_compact`: the parent's `dir_lock`, then the
//! node's `state`), and the node, its log and its handles switch to the new backing inode.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use fscrypt::{Errno, Result};
use rustix::fs::Mode;

use super::Engine;
use crate::fs::handle_table::Handle;
use crate::fs::locks::{lock, rlock, wlock};
use crate::fs::node::{Kind, Node};
use crate::store::extent::ExtentFile;
use crate::store::sys_err;

impl Engine<'_> {
    /// After a writeout (write, fsync, FLUSH, RELEASE, clone): compacts the node's log when
    /// `ExtentFile::needs_compaction` says so and the file has one name. Failures are logged and
    /// leave the file as it was (compaction is never needed for correctness).
    pub(in crate::fs) fn ext_maybe_compact(&self, node: &Node) {
        if node.kind != Kind::File || self.read_only {
            return;
        }
        let wanted = rlock(&node.state)
            .ext()
            .is_some_and(|e| e.file.needs_compaction());
        if !wanted {
            return;
        }
        match self.ext_compact(node) {
            Ok(true) => tracing::debug!("{}: compacted", self.describe(node)),
            Ok(false) => {}
            Err(e) => tracing::warn!("{}: compaction failed: {e}", self.describe(node)),
        }
    }

    /// Compaction (docs/DESIGN.md, "Per-extent files"): under the parent's `dir_lock`, then the
    /// node's `state` write lock, `compact_into` a `.fscryptfs.tmp.*` sibling (same mode, owner,
    /// times and xattrs), fsync it, rename it over the file, fsync the directory, and swap the
    /// node's `O_PATH` descriptor, its log and every open handle's file to the new inode. Ok(false)
    /// when it does not apply (several hard links, the name not where the node's parent says, no
    /// log, no longer needed).
    fn ext_compact(&self, node: &Node) -> Result<bool> {
        use std::os::unix::ffi::OsStringExt;
        let parent = lock(&node.meta).parent;
        let Ok(dir) = self.inodes.node(parent) else {
            return Ok(false);
        };
        if dir.kind != Kind::Dir {
            return Ok(false);
        }
        let _dg = lock(&dir.dir_lock);
        let mut st = wlock(&node.state);
        let Some(ext) = st.ext_mut() else {
            return Ok(false);
        };
        if !ext.file.needs_compaction() {
            return Ok(false);
        }
        let what = self.describe(node);
        let fd = node.fd();
        let old = rustix::fs::fstat(&*fd).map_err(|e| sys_err(&what, e))?;
        if old.st_nlink != 1 {
            return Ok(false);
        }
        // The file's one name, checked against the parent: a stale parent means no compaction.
        let path =
            rustix::fs::readlink(node.proc_path(), Vec::new()).map_err(|e| sys_err(&what, e))?;
        let path = std::path::PathBuf::from(std::ffi::OsString::from_vec(path.into_bytes()));
        let Some(bname) = path.file_name().map(|n| n.to_os_string()) else {
            return Ok(false);
        };
        let dfd = dir.fd();
        match rustix::fs::statat(&*dfd, &bname, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(s) if s.st_dev == old.st_dev && s.st_ino == old.st_ino => {}
            _ => return Ok(false),
        }
        let tmp = crate::store::names::tmp_name()?;
        let new_file = crate::store::io::create_new(&*dfd, &tmp, 0o600, &what)?;
        let unlink_tmp = || {
            let _ = rustix::fs::unlinkat(&*dfd, &tmp, rustix::fs::AtFlags::empty());
        };
        type Reopened = Vec<(std::sync::Arc<Handle>, File)>;
        let prepared = (|| -> Result<(ExtentFile, OwnedFd, Reopened)> {
            copy_inode_attrs(&node.proc_path(), &new_file, &old).map_err(|e| sys_err(&what, e))?;
            let dst = new_file
                .try_clone()
                .map_err(|e| crate::store::io_err(&what, e))?;
            let compacted = ext.file.compact_into(dst)?;
            set_times(&new_file, &old).map_err(|e| sys_err(&what, e))?;
            new_file
                .sync_all()
                .map_err(|e| crate::store::io_err(&what, e))?;
            let pfd = crate::store::io::path_fd_of(&new_file, &what)?;
            // New files for the open handles, same access mode, before anything is renamed.
            let mut files = Vec::new();
            for h in self.handles.of_node(node) {
                if let Some(f) = h.file() {
                    let nf = crate::store::io::reopen_like(&pfd, &f, &what)?;
                    files.push((h, nf));
                }
            }
            Ok((compacted, pfd, files))
        })();
        let (mut compacted, pfd, files) = match prepared {
            Ok(p) => p,
            Err(e) => {
                unlink_tmp();
                return Err(e);
            }
        };
        if let Err(e) = rustix::fs::renameat(&*dfd, &tmp, &*dfd, &bname) {
            unlink_tmp();
            return Err(sys_err(&what, e));
        }
        // Renamed: from here on the new inode is the file, whatever else fails.
        let new_st = rustix::fs::fstat(&pfd).ok();
        compacted.refresh_path();
        ext.file = compacted;
        *wlock(&node.fd) = std::sync::Arc::new(pfd);
        match &new_st {
            Some(st) => node.set_ident(st),
            None => *crate::fs::locks::lock(&node.ident) = None,
        }
        // A handle opened meanwhile keeps the old inode (never used for the log's data; its
        // space comes back when it closes).
        for (h, f) in files {
            *wlock(&h.file) = Some(std::sync::Arc::new(f));
        }
        self.inodes.rebind_backing(
            (old.st_dev, old.st_ino),
            new_st.map(|s| (s.st_dev, s.st_ino)),
            node.ino,
        );
        drop(st);
        crate::store::io::sync_dir(&*dfd, &self.describe(&dir))?;
        Ok(true)
    }
}

/// Copies owner, mode and xattrs of the backing object at `src` (a `/proc/self/fd` path) onto `dst`.
fn copy_inode_attrs(src: &str, dst: &File, old: &rustix::fs::Stat) -> rustix::io::Result<()> {
    rustix::fs::fchown(
        dst,
        Some(rustix::fs::Uid::from_raw(old.st_uid)),
        Some(rustix::fs::Gid::from_raw(old.st_gid)),
    )?;
    rustix::fs::fchmod(dst, Mode::from_raw_mode(old.st_mode & 0o7777))?;
    let mut names = vec![0u8; 64 * 1024];
    let n = match rustix::fs::listxattr(src, &mut names[..]) {
        Ok(n) => n,
        Err(e) if e == Errno::OPNOTSUPP => 0,
        Err(e) => return Err(e),
    };
    let mut value = vec![0u8; 64 * 1024];
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = std::ffi::OsStr::from_bytes(name);
        let len = rustix::fs::getxattr(src, name, &mut value[..])?;
        match rustix::fs::fsetxattr(dst, name, &value[..len], rustix::fs::XattrFlags::empty()) {
            Ok(()) => {}
            // Only user xattrs are the file's own; others (security labels) are the backing's.
            Err(_) if !name.as_bytes().starts_with(b"user.") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Gives `dst` the access and modification times of `old`.
fn set_times(dst: &File, old: &rustix::fs::Stat) -> rustix::io::Result<()> {
    let ts = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: old.st_atime as _,
            tv_nsec: old.st_atime_nsec as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: old.st_mtime as _,
            tv_nsec: old.st_mtime_nsec as _,
        },
    };
    rustix::fs::futimens(dst, &ts)
}
