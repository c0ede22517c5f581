//! Making and removing a `.fscrypt` tree: `setup` builds `policies/` and `protectors/` under a
//! temporary name and renames the whole into place (so a half-made tree is never seen), and
//! `metadata destroy MNT` renames it away before deleting it. Nothing here follows a symlink: the
//! removal walks the tree's own three levels with `unlinkat` and `O_NOFOLLOW` directory opens.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::tree::{
    open_mount_dir, store_err, sys, SetupMode, Trust, FSCRYPT_DIR, POLICIES, PROTECTORS,
};
use super::{Error, Result};
use crate::store::io as sio;

/// Creates `MNT/.fscrypt` atomically (built under a temporary name, then renamed into place).
pub fn setup(mount: &Path, mode: SetupMode) -> Result<()> {
    setup_named(mount, FSCRYPT_DIR, mode)
}

/// Creates a tree named `tree_name` in directory `mount` (see [`MetadataDir::open_named`]).
pub fn setup_named(mount: &Path, tree_name: &str, mode: SetupMode) -> Result<()> {
    let mnt = open_mount_dir(mount, Trust::for_caller(false))?;
    let tmp = crate::store::names::tmp_name().map_err(store_err)?;
    let what = mount.join(&tmp);
    let mkdir = |dir: &OwnedFd, name: &OsStr, perm: u32| -> Result<OwnedFd> {
        let w = what.join(name);
        rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700))
            .map_err(|e| sys(w.display(), e))?;
        let fd = rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| sys(w.display(), e))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(perm)).map_err(|e| sys(w.display(), e))?;
        Ok(fd)
    };
    let sub_mode = match mode {
        SetupMode::SingleUser => 0o755,
        SetupMode::AllUsers => 0o1777,
    };
    let built = (|| -> Result<()> {
        let tmpdir = mkdir(&mnt, &tmp, 0o700)?;
        let base = mkdir(&tmpdir, OsStr::new(tree_name), 0o755)?;
        for sub in [POLICIES, PROTECTORS] {
            let fd = mkdir(&base, OsStr::new(sub), sub_mode)?;
            rustix::fs::fsync(&fd).map_err(|e| sys(what.display(), e))?;
        }
        rustix::fs::fsync(&base).map_err(|e| sys(what.display(), e))?;
        sio::rename_dir_noreplace_at(&tmpdir, OsStr::new(tree_name), &mnt, OsStr::new(tree_name))
            .map_err(|e| match e {
            Errno::EXIST | Errno::NOTEMPTY => Error::AlreadySetup(format!(
                "filesystem {} is already setup for use with fscrypt",
                mount.display()
            )),
            e => sys(mount.join(tree_name).display(), e),
        })?;
        Ok(())
    })();
    // Whatever happened, the temporary directory goes (with the tree if the rename failed).
    let _ = remove_tree(&mnt, &tmp);
    built?;
    sio::sync_dir(&mnt, &mount.to_string_lossy()).map_err(store_err)
}

/// Removes `MNT/.fscrypt` and everything in it (`metadata destroy MNT`): renamed away first, so a
/// half-removed tree is never seen as set up.
pub fn destroy(mount: &Path) -> Result<()> {
    let mnt = open_mount_dir(mount, Trust::for_caller(false))?;
    let tmp = crate::store::names::tmp_name().map_err(store_err)?;
    sio::rename_dir_noreplace_at(&mnt, OsStr::new(FSCRYPT_DIR), &mnt, &tmp).map_err(
        |e| match e {
            Errno::NOENT => Error::NotSetup(format!(
                "filesystem {} is not setup for use with fscrypt",
                mount.display()
            )),
            e => sys(mount.join(FSCRYPT_DIR).display(), e),
        },
    )?;
    remove_tree(&mnt, &tmp)?;
    sio::sync_dir(&mnt, &mount.to_string_lossy()).map_err(store_err)
}

/// Removes `name` in `parent`: a directory recursively (without following symlinks; only the
/// tree's own depth, three levels), anything else by unlinking it.
fn remove_tree(parent: &OwnedFd, name: &OsStr) -> Result<()> {
    fn inner(parent: &OwnedFd, name: &OsStr, depth: u32) -> Result<()> {
        let st = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| sys(name.to_string_lossy(), e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return rustix::fs::unlinkat(parent, name, AtFlags::empty())
                .map_err(|e| sys(name.to_string_lossy(), e));
        }
        if depth > 3 {
            return Err(Error::Insecure(format!(
                "{}: unexpected nested directory",
                name.to_string_lossy()
            )));
        }
        let dfd = rustix::fs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| sys(name.to_string_lossy(), e))?;
        let names: Vec<std::ffi::OsString> = rustix::fs::Dir::read_from(&dfd)
            .map_err(|e| sys(name.to_string_lossy(), e))?
            .filter_map(|e| e.ok())
            .map(|e| {
                use std::os::unix::ffi::OsStrExt;
                OsStr::from_bytes(e.file_name().to_bytes()).to_os_string()
            })
            .filter(|n| n != "." && n != "..")
            .collect();
        for n in names {
            inner(&dfd, &n, depth + 1)?;
        }
        rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)
            .map_err(|e| sys(name.to_string_lossy(), e))
    }
    inner(parent, name, 0)
}
