//! A volume opened for offline reading ([`Volume`]): its config and root descriptor, and the walk
//! through it by *no-key path* ([`Volume::resolve`]), by directory ([`Volume::list`]) and by stable
//! inode number ([`Volume::find_ino`]), yielding [`Entry`]s that remember where they are (their
//! directory's descriptor and name) to be opened again without a path walk.
//!
//! A no-key path is what `ls` shows on a mount without the keys: in an encrypted directory a
//! component is the entry's no-key name, which is also its backing name; in an unencrypted one it is
//! the user's name (a name starting with `.fscryptfs` is looked up under its escaped backing name).

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use fscrypt::context::Context;
use fscrypt::policy::FsParams;
use fscrypt::{Error, Result};

use super::objects::{list_names, open_entry_md, read_object_at, Kind, Stored};
use crate::error::CommandError;
use crate::store::config::{VolumeConfig, ROOT_INO};
use crate::store::io as store_io;
use crate::store::meta::read_dir_meta_at;
use crate::store::pending::CacheEpoch;
use crate::store::{fs_params, io_err, names};

/// An opened volume.
pub struct Volume {
    /// The backing directory.
    pub root: PathBuf,
    /// The backing directory's `O_PATH` descriptor: everything is opened relative to it.
    root_fd: Arc<OwnedFd>,
    /// The volume's filesystem parameters.
    pub fsp: FsParams,
    /// The backing store's cache epoch (`store::pending`), by which pending sizes are judged.
    pub epoch: Option<CacheEpoch>,
    /// The parsed config.
    pub config: VolumeConfig,
}

/// A directory entry whose backing object cannot be read.
#[derive(Debug)]
pub struct Damaged {
    /// Its shown (no-key) name.
    pub name: OsString,
    /// Its kind, when the backing object could be stat'ed.
    pub kind: Option<Kind>,
    /// What is wrong.
    pub error: Error,
}

/// Where a backing object is: the root, or a name in a directory (held open).
#[derive(Clone)]
enum Loc {
    Root(Arc<OwnedFd>),
    Child { dir: Arc<OwnedFd>, name: OsString },
}

/// One inode found by path or number.
pub struct Entry {
    /// Its no-key path relative to the volume root (`.` for the root).
    pub path: PathBuf,
    /// Its backing path.
    pub backing: PathBuf,
    /// What the store keeps for it.
    pub stored: Stored,
    /// The backing object's metadata.
    pub md: Metadata,
    /// The context of the directory holding this entry (None at the root or when unencrypted).
    pub parent_ctx: Option<Context>,
    /// The inode number of the directory holding this entry (None at the root).
    pub parent_ino: Option<u64>,
    loc: Loc,
}

impl Entry {
    /// Opens this directory again (`O_PATH`, never through a symlink: ENOTDIR when it is not one).
    pub fn open_dir(&self) -> Result<OwnedFd> {
        let what = self.backing.display().to_string();
        match &self.loc {
            Loc::Root(fd) => fd.try_clone().map_err(|e| io_err(&what, e)),
            Loc::Child { dir, name } => store_io::open_subdir(&**dir, name, &what),
        }
    }

    /// Opens this regular file again for reading (never through a symlink, type checked first).
    pub fn open_file(&self) -> Result<File> {
        let what = self.backing.display().to_string();
        match &self.loc {
            Loc::Root(_) => Err(Error::corrupt(format!("{what}: not a regular file"))),
            Loc::Child { dir, name } => {
                store_io::open_file(&**dir, name, store_io::Access::Read, &what)?.ok_or_else(|| {
                    Error::new(fscrypt::Errno::NOENT, format!("{what}: no longer exists"))
                })
            }
        }
    }
}

impl Volume {
    /// Opens the volume in `backing` (its config must parse).
    pub fn open(backing: &Path) -> std::result::Result<Volume, CommandError> {
        let md = fs::metadata(backing)
            .map_err(|e| CommandError::op(format!("{}: {e}", backing.display())))?;
        if !md.is_dir() {
            return Err(CommandError::op(format!(
                "{}: not a directory",
                backing.display()
            )));
        }
        let config = VolumeConfig::load(backing)?;
        let root_fd = store_io::open_backing_root(backing)?;
        Ok(Volume {
            root: backing.to_path_buf(),
            epoch: CacheEpoch::of(&root_fd),
            root_fd: Arc::new(root_fd),
            fsp: fs_params(),
            config,
        })
    }

    fn root_entry(&self) -> Result<Entry> {
        let f = File::from(
            self.root_fd
                .try_clone()
                .map_err(|e| io_err(self.root.display(), e))?,
        );
        let md = f.metadata().map_err(|e| io_err(self.root.display(), e))?;
        Ok(Entry {
            path: PathBuf::from("."),
            backing: self.root.clone(),
            stored: Stored::Dir(read_dir_meta_at(&*self.root_fd, &self.fsp, &self.root)?),
            md,
            parent_ctx: None,
            parent_ino: None,
            loc: Loc::Root(self.root_fd.clone()),
        })
    }

    /// The backing name of the user-visible (no-key) name `name` in directory `dir`.
    pub fn backing_name(dir: &Entry, name: &OsStr) -> Result<OsString> {
        match dir.stored.ctx() {
            Some(_) => Ok(name.to_os_string()),
            None => names::plain_to_backing(name),
        }
    }

    /// The shown (no-key) name of backing name `bname` in `dir`; None for our own files and side
    /// files.
    fn shown_name(dir: &Entry, bname: &OsStr) -> Option<OsString> {
        match dir.stored.ctx() {
            Some(_) => names::is_encrypted_entry(bname.as_bytes()).then(|| bname.to_os_string()),
            None => names::backing_to_plain(bname),
        }
    }

    /// The entry `bname` (shown as `shown`) of directory `dir`, open as `dir_fd`.
    fn child(
        &self,
        dir: &Entry,
        dir_fd: &Arc<OwnedFd>,
        shown: &OsStr,
        bname: &OsStr,
    ) -> Result<Entry> {
        let backing = dir.backing.join(bname);
        let what = backing.display().to_string();
        let (fd, md) = open_entry_md(&**dir_fd, bname, &what)?;
        let stored = read_object_at(&fd, &md, &backing, &self.fsp, self.epoch.as_ref())?;
        let path = if dir.path == Path::new(".") {
            PathBuf::from(shown)
        } else {
            dir.path.join(shown)
        };
        Ok(Entry {
            path,
            backing,
            stored,
            md,
            parent_ctx: dir.stored.ctx().copied(),
            parent_ino: dir.stored.ino(),
            loc: Loc::Child {
                dir: dir_fd.clone(),
                name: bname.to_os_string(),
            },
        })
    }

    /// Finds the inode at no-key path `path` (relative to the volume root; a leading `/` is allowed).
    pub fn resolve(&self, path: &Path) -> Result<Entry> {
        let mut cur = self.root_entry()?;
        for c in path.components() {
            let name = match c {
                Component::RootDir | Component::CurDir => continue,
                Component::Normal(n) => n,
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(Error::invalid(format!(
                        "{}: `..` is not allowed in volume paths",
                        path.display()
                    )))
                }
            };
            if cur.stored.kind() != Kind::Dir {
                return Err(Error::new(
                    fscrypt::Errno::NOTDIR,
                    format!("{}: not a directory", cur.path.display()),
                ));
            }
            let bname = Self::backing_name(&cur, name)?;
            if Self::shown_name(&cur, &bname).is_none() {
                return Err(Error::new(
                    fscrypt::Errno::NOENT,
                    format!(
                        "{}: no such entry (in an encrypted directory, use the no-key name)",
                        cur.path.join(name).display()
                    ),
                ));
            }
            let dir_fd = Arc::new(cur.open_dir()?);
            cur = self.child(&cur, &dir_fd, name, &bname).map_err(|e| {
                if e.errno() == fscrypt::Errno::NOENT {
                    Error::new(
                        fscrypt::Errno::NOENT,
                        format!("{}: no such entry", cur.path.join(name).display()),
                    )
                } else {
                    e
                }
            })?;
        }
        Ok(cur)
    }

    /// The entries of directory `dir`, sorted by backing name; an entry whose backing object cannot
    /// be read is listed as [`Damaged`].
    pub fn list(&self, dir: &Entry) -> Result<Vec<std::result::Result<Entry, Damaged>>> {
        let dir_fd = Arc::new(dir.open_dir()?);
        let names = list_names(&*dir_fd, &dir.backing.display().to_string())?;
        let mut out = Vec::new();
        for bname in names {
            if let Some(shown) = Self::shown_name(dir, &bname) {
                out.push(self.child(dir, &dir_fd, &shown, &bname).map_err(|error| {
                    Damaged {
                        kind: open_entry_md(&*dir_fd, &bname, "")
                            .ok()
                            .and_then(|(_, md)| Kind::of(&md)),
                        name: shown,
                        error,
                    }
                }));
            }
        }
        Ok(out)
    }

    /// Every path of stable inode number `ino` (several for hard links), found by walking the tree.
    pub fn find_ino(&self, ino: u64) -> Result<Vec<Entry>> {
        let root = self.root_entry()?;
        if ino == ROOT_INO {
            return Ok(vec![root]);
        }
        let mut found: Vec<Entry> = Vec::new();
        let mut damaged = 0;
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for e in self.list(&dir)? {
                let Ok(e) = e else {
                    damaged += 1;
                    continue;
                };
                if e.stored.ino() == Some(ino) {
                    if let Some(f) = found.first() {
                        if !same_backing_inode(&f.md, &e.md) {
                            return Err(Error::corrupt(format!(
                                "inode number {ino} is used by {} and {} (run fscryptfs fsck)",
                                f.path.display(),
                                e.path.display()
                            )));
                        }
                    }
                    found.push(e);
                } else if e.stored.kind() == Kind::Dir {
                    stack.push(e);
                }
            }
        }
        if found.is_empty() {
            let also = if damaged > 0 {
                format!(" ({damaged} entries could not be read; run fscryptfs fsck)")
            } else {
                String::new()
            };
            return Err(Error::new(
                fscrypt::Errno::NOENT,
                format!("no inode numbered {ino} in this volume{also}"),
            ));
        }
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }

    /// The data-unit size of a regular file with context `ctx` (4096 when unencrypted).
    pub fn data_unit_size(&self, ctx: Option<&Context>) -> u64 {
        ctx.map_or(4096, |c| 1u64 << c.policy().data_unit_bits(&self.fsp))
    }
}

/// Are two backing objects the same inode (hard links)?
pub fn same_backing_inode(a: &Metadata, b: &Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}
