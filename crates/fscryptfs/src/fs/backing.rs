//! Raw backing I/O for nodes: loading a node from its backing object (`node_from_fd`: the file
//! header, `.fscryptfs.dir`, the symlink target, the `.fscryptfs.special` records of special files),
//! looking up a child by name, and writing the metadata of new files and directories.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use fscrypt::context::Context;
use fscrypt::{Errno, Error, Result};
use rustix::fs::AtFlags;

use super::contents::OpenedLog;
use super::inodes::{cached_lookup, Claim};
use super::locks::{rlock, wlock};
use super::mount::Fs;
use super::node::{header_lock, FileContents, Keys, Kind, Node, PerFileState, State};
use super::types::errno;
use crate::store::config::{ContentsLayout, ROOT_INO};
use crate::store::extent::HEADER_PREFIX;
use crate::store::io as store_io;
use crate::store::meta::{
    read_dir_meta_at, DirMeta, FileHeader, SymlinkTarget, DIR_META_NAME, FILE_HEADER_USED,
};
use crate::store::pending::PendingSize;
use crate::store::special::{SpecialRecords, SPECIAL_MAX, SPECIAL_NAME};
use crate::store::walked::WalkedStat;
use crate::store::{read_full_at, sys_err, FILE_HEADER_SIZE};

/// Writes a new directory's metadata file.
pub(super) fn write_dir_meta(
    dirfd: &impl AsFd,
    meta: &DirMeta,
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<()> {
    let what = format!("{what}/{DIR_META_NAME}");
    store_io::write_new(
        dirfd,
        OsStr::new(DIR_META_NAME),
        &meta.to_bytes(),
        0o644,
        &what,
    )
}

/// The header block of a new regular file.
pub(super) fn new_file_header(ino: u64, ctx: Option<&Context>) -> Vec<u8> {
    let h = FileHeader {
        layout: ContentsLayout::PerFile,
        ino,
        size: 0,
        ctx: ctx.cloned(),
    };
    let mut b = vec![0u8; FILE_HEADER_SIZE as usize];
    b[..FILE_HEADER_USED].copy_from_slice(&h.to_bytes());
    b
}

/// Writes the root directory's metadata into a fresh backing directory (`fscryptfs init`).
pub fn init_root(backing: &std::path::Path) -> Result<()> {
    let fd = store_io::open_backing_root(backing)?;
    write_dir_meta(
        &fd,
        &DirMeta {
            ino: ROOT_INO,
            ctx: None,
        },
        &backing.display().to_string(),
    )
}

impl Fs {
    /// Looks up `name` in `dir`: the child node (lookup count incremented) and the `fstat` of its
    /// backing object taken on the way (the reply's attributes without another backing call).
    pub(super) fn lookup_child(
        &self,
        dir: &Arc<Node>,
        name: &OsStr,
    ) -> Result<(Arc<Node>, rustix::fs::Stat)> {
        if dir.kind != Kind::Dir {
            return Err(errno(Errno::NOTDIR, "not a directory"));
        }
        let (bname, _) = self.backing_name(dir, name)?;
        let what = self.describe_child(dir, &bname);
        // A missing entry (a lookup's usual negative answer, before every create) costs no
        // message: formatting `what` reads the directory's path from /proc.
        let fd = store_io::open_object(&*dir.fd(), &bname, &what)?
            .ok_or_else(|| errno(Errno::NOENT, "no such file or directory"))?;
        self.node_from_fd(fd, dir.ino, name, &bname, &what)
    }

    /// The special-file record of `dir` (empty when it has none). A damaged one is logged and
    /// treated as empty: its files get per-mount numbers until they are recorded again.
    pub(super) fn read_specials(&self, dir: &Node) -> SpecialRecords {
        let what = self.describe_child(dir, OsStr::new(SPECIAL_NAME));
        let b = match store_io::read_bounded(
            &*dir.fd(),
            OsStr::new(SPECIAL_NAME),
            SPECIAL_MAX,
            &what,
        ) {
            Ok(Some(b)) => b,
            Ok(None) => return SpecialRecords::default(),
            Err(e) => {
                tracing::error!("{e}");
                return SpecialRecords::default();
            }
        };
        SpecialRecords::parse(&b, &what).unwrap_or_else(|e| {
            tracing::error!("{e}");
            SpecialRecords::default()
        })
    }

    /// Changes `dir`'s special-file record under its `dir_lock` (`f` says whether it changed
    /// anything); replaced atomically, deleted when empty.
    pub(super) fn update_specials(
        &self,
        dir: &Node,
        f: impl FnOnce(&mut SpecialRecords) -> bool,
    ) -> Result<()> {
        let mut r = self.read_specials(dir);
        if !f(&mut r) {
            return Ok(());
        }
        let what = self.describe_child(dir, OsStr::new(SPECIAL_NAME));
        if r.is_empty() {
            return match rustix::fs::unlinkat(dir.fd(), SPECIAL_NAME, AtFlags::empty()) {
                Ok(()) => Ok(()),
                Err(e) if e == Errno::NOENT => Ok(()),
                Err(e) => Err(sys_err(&what, e)),
            };
        }
        let bytes = r.to_bytes();
        if bytes.len() > SPECIAL_MAX {
            return Err(errno(
                Errno::NOSPC,
                format!("{what}: the directory has too many special files to record"),
            ));
        }
        store_io::replace(
            &*dir.fd(),
            OsStr::new(SPECIAL_NAME),
            &bytes,
            0o644,
            true,
            &what,
        )
    }

    /// Reads what identifies the backing object `fd`, just opened by name (its stable inode
    /// number and metadata), and returns its node, creating or reusing it (lookup count +1), with
    /// the object's `fstat` (the one taken to identify it; reading its metadata changes none of
    /// it).
    pub(super) fn node_from_fd(
        &self,
        fd: OwnedFd,
        parent: u64,
        name: &OsStr,
        bname: &OsStr,
        what: &(impl std::fmt::Display + ?Sized),
    ) -> Result<(Arc<Node>, rustix::fs::Stat)> {
        // Shared from here: a recalled per-extent log opens through it when first used.
        let fd = Arc::new(fd);
        // Read, then claim the number; read again when the claim had to wait. The first read
        // takes what the walk to `fd` brought (`store::walked`); a read again asks.
        let mut way = self.walked;
        let (st, ino, kind, found, transit) = loop {
            let st = way.fstat(&*fd).map_err(|e| sys_err(what, e))?;
            way = WalkedStat::Asked;
            let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
            if let Some(node) = self.cached_node_of(&st, ft, parent, name, what)? {
                return Ok((node, st));
            }
            let (ino, kind, found) = self.identify(&fd, &st, ft, parent, bname, what)?;
            match self.inodes.claim_ino(ino, kind, parent, name, what)? {
                Claim::Cached(node) => return Ok((node, st)),
                Claim::Ours(t) => break (st, ino, kind, found, t),
                // Its evicted node was still writing (a dirty size at eviction): what was read above
                // may be older than what it wrote. Read again.
                Claim::Retry => continue,
            }
        };
        // The number is ours: nobody else loads or evicts it until the node is in the table.
        let state = match found {
            Found::State(s) => s,
            // Its logical size is in the log.
            Found::Extent(ctx, opened) => {
                match self
                    .contents()
                    .load_extent_state(&fd, &st, ctx.as_ref(), opened, what)
                {
                    Ok(ext) => State::File {
                        keys: Keys::locked(ctx),
                        contents: FileContents::PerExtent(Box::new(ext)),
                    },
                    Err(e) => {
                        // Like a damaged header: the entry can be stat'ed and deleted; open says EUCLEAN.
                        tracing::error!("{e}");
                        State::corrupt(&e)
                    }
                }
            }
        };
        let node = Node::looked_up(ino, kind, fd, state, parent, name);
        node.set_ident(&st);
        wlock(&self.inodes.table).insert(ino, Arc::clone(&node));
        drop(transit);
        Ok((node, st))
    }

    /// The size state of a per-file file whose header (the first bytes of its block: `block`)
    /// commits `committed`, on device `dev`: a pending size record trusted in this cache epoch
    /// says the size (still to be committed, unless the mount is read-only); any other record
    /// leaves the committed size, and the commit clears it (`store::pending`).
    fn per_file_state(
        &self,
        committed: u64,
        block: &[u8],
        dev: u64,
        what: &(impl std::fmt::Display + ?Sized),
    ) -> PerFileState {
        match PendingSize::parse(block, self.epoch.as_ref(), dev, self.fsp.max_file_size) {
            Some(PendingSize::Trusted(size)) if size != committed => {
                PerFileState::loaded(size, !self.opts.read_only)
            }
            Some(PendingSize::Stale(size)) if size != committed => {
                tracing::warn!(
                    "{what}: a size change to {size} recorded at close was lost with the backing \
                     store's cache (a crash, a reboot or a remount of the backing store before \
                     it was committed); the committed size {committed} holds"
                );
                PerFileState::loaded(committed, !self.opts.read_only)
            }
            Some(PendingSize::Damaged) => {
                tracing::warn!("{what}: damaged pending size record ignored");
                PerFileState::loaded(committed, !self.opts.read_only)
            }
            _ => PerFileState::loaded(committed, false),
        }
    }

    /// What the backing object `fd` (whose `fstat` is `st`, of type `ft`) is: its stable number,
    /// its kind and its state (damaged metadata makes a damaged entry with a per-mount number).
    /// The number is remembered for the object's backing identity.
    fn identify(
        &self,
        fd: &Arc<OwnedFd>,
        st: &rustix::fs::Stat,
        ft: rustix::fs::FileType,
        parent: u64,
        bname: &OsStr,
        what: &(impl std::fmt::Display + ?Sized),
    ) -> Result<(u64, Kind, Found)> {
        Ok(match ft {
            rustix::fs::FileType::RegularFile => {
                // A file evicted this mount and unchanged since: its header as the node left it,
                // with no read — a per-file file not even opened (the node opens it when it needs
                // it), a per-extent file's log put back on the state its node left (opened when
                // it is first read or written).
                if let Some(r) = self.inodes.recall.take(st) {
                    let contents = match r.log {
                        None => FileContents::PerFile(PerFileState::loaded(r.size, false)),
                        Some(snap) => FileContents::PerExtent(Box::new(
                            self.contents().recalled_extent_state(fd, st, snap),
                        )),
                    };
                    self.inodes.remember_ino(st, r.ino);
                    let state = State::File {
                        keys: Keys::locked(r.ctx),
                        contents,
                    };
                    return Ok((r.ino, Kind::File, Found::State(state)));
                }
                // The descriptor that reads the header stays open while the node is cached: a
                // per-extent file's log, a per-file file's kept file (`KeptFile`). So it is
                // opened for writing at once where it may be written (one open, read and
                // `fstat` fewer per lookup, and no close; each a round trip on a network
                // filesystem). Without touching the access time (a lookup must not change what
                // `stat` shows; a per-extent file's log, which serves its users' reads too, lets
                // them update it from their first open on: `Engine::open_backing`), and a
                // per-file volume's read-only on a read-only mount.
                let access = if self.opts.layout == ContentsLayout::Extent {
                    store_io::Access::ReadWriteOrReadNoAtime
                } else if self.opts.read_only {
                    store_io::Access::ReadNoAtime
                } else {
                    store_io::Access::ReadWriteOrReadNoAtime
                };
                let f = store_io::reopen_stat_file(fd, st, access, what)?;
                let mut buf = [0u8; HEADER_PREFIX];
                // Never overlapping a write of it by an older node of the file (`header_lock`).
                let header = header_lock(st.st_dev, st.st_ino);
                let n = read_full_at(&f, &mut buf, 0).map_err(|e| crate::store::io_err(what, e))?;
                drop(header);
                match FileHeader::parse(&buf[..n], &self.fsp, what) {
                    Ok(h) => {
                        self.inodes.remember_ino(st, h.ino);
                        // A per-extent file's size is in its log, loaded once the number is ours.
                        let found =
                            if h.layout == ContentsLayout::Extent {
                                let opened = (access == store_io::Access::ReadWriteOrReadNoAtime)
                                    .then(|| OpenedLog {
                                        file: f,
                                        header: buf,
                                        len: st.st_size as u64,
                                    });
                                Found::Extent(h.ctx, opened)
                            } else {
                                Found::State(State::File {
                                    keys: Keys::locked(h.ctx),
                                    contents: FileContents::PerFile(
                                        self.per_file_state(h.size, &buf[..n], st.st_dev, what)
                                            .keeping(Some(f)),
                                    ),
                                })
                            };
                        (h.ino, Kind::File, found)
                    }
                    Err(e) => {
                        // Still an entry: it can be stat'ed and deleted; open says EUCLEAN.
                        tracing::error!("{e}");
                        (
                            self.inodes.per_mount_ino(st)?,
                            Kind::File,
                            Found::State(State::corrupt(&e)),
                        )
                    }
                }
            }
            rustix::fs::FileType::Directory => {
                match read_dir_meta_at(fd, &self.fsp, what.to_string()) {
                    Ok(m) => {
                        self.inodes.remember_ino(st, m.ino);
                        (
                            m.ino,
                            Kind::Dir,
                            Found::State(State::Dir {
                                keys: Keys::locked(m.ctx),
                            }),
                        )
                    }
                    Err(e) if e.errno() == Errno::UCLEAN => {
                        // Damaged metadata: still an entry (stat, rename, rmdir when empty);
                        // everything inside says EUCLEAN.
                        tracing::error!("{e}");
                        (
                            self.inodes.per_mount_ino(st)?,
                            Kind::Dir,
                            Found::State(State::corrupt(&e)),
                        )
                    }
                    Err(e) => {
                        tracing::error!("{e}");
                        return Err(e);
                    }
                }
            }
            rustix::fs::FileType::Symlink => {
                let t = rustix::fs::readlinkat(fd, "", Vec::new()).map_err(|e| sys_err(what, e))?;
                match SymlinkTarget::parse(t.as_bytes(), &self.fsp, what) {
                    Ok(l) => {
                        let ctx = match &l {
                            SymlinkTarget::Encrypted { ctx, .. } => Some(*ctx),
                            SymlinkTarget::Plain { .. } => None,
                        };
                        self.inodes.remember_ino(st, l.ino());
                        (
                            l.ino(),
                            Kind::Symlink,
                            Found::State(State::Symlink {
                                keys: Keys::locked(ctx),
                                target: l,
                            }),
                        )
                    }
                    Err(e) => {
                        // Damaged: still an entry (stat, rename, unlink); readlink says EUCLEAN.
                        tracing::error!("{e}");
                        (
                            self.inodes.per_mount_ino(st)?,
                            Kind::Symlink,
                            Found::State(State::corrupt(&e)),
                        )
                    }
                }
            }
            other => {
                let kind = Kind::of_type(other)
                    .filter(|k| k.is_special())
                    .ok_or_else(|| Error::corrupt(format!("{what}: unknown file type")))?;
                let recorded = self
                    .inodes
                    .node(parent)
                    .ok()
                    .and_then(|d| self.read_specials(&d).get(bname));
                let ino = match recorded {
                    Some(i) => {
                        self.inodes.remember_ino(st, i);
                        i
                    }
                    None => self.inodes.per_mount_ino(st)?,
                };
                (ino, kind, Found::State(State::Special))
            }
        })
    }
}

impl Fs {
    /// The node this mount already holds for the backing object `st`, its lookup count raised:
    /// found by the object's backing identity (device and inode number, remembered when it was
    /// loaded) and confirmed by the node's own descriptor, which keeps that inode alive, so its
    /// number cannot have been reused by another object. Nothing is read from the object: a
    /// cached file's header, a directory's metadata, a symlink's target (whose `readlinkat` would
    /// also bump the backing atime) are already in the node. None when the object is new to the
    /// node table.
    fn cached_node_of(
        &self,
        st: &rustix::fs::Stat,
        ft: rustix::fs::FileType,
        parent: u64,
        name: &OsStr,
        what: &(impl std::fmt::Display + ?Sized),
    ) -> Result<Option<Arc<Node>>> {
        let (Some(ino), Some(kind)) = (
            self.inodes.known_ino(st.st_dev, st.st_ino),
            Kind::of_type(ft),
        ) else {
            return Ok(None);
        };
        // The read lock keeps FORGET (which takes the write lock) from evicting it meanwhile.
        let nodes = rlock(&self.inodes.table);
        let same = nodes
            .get(&ino)
            .is_some_and(|n| n.kind == kind && n.is_object(st));
        if !same {
            return Ok(None);
        }
        cached_lookup(&nodes, ino, kind, parent, name, what)
    }
}

/// What a backing object turned out to be, before its number is claimed.
enum Found {
    /// Its state, complete.
    State(State),
    /// A per-extent file with this context: its log is opened once the number is ours (from the
    /// descriptor and header bytes identifying it read, when it was opened for writing).
    Extent(Option<fscrypt::context::Context>, Option<OpenedLog>),
}
