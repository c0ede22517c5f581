//! Creating names: LOOKUP's entry, CREATE, MKDIR, SYMLINK, MKNOD and LINK, each new inode
//! inheriting its directory's policy (`new_inode`) and made under a temporary name, then renamed
//! into place.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use fscrypt::context::Context;
use fscrypt::keysetup::InodeKey;
use fscrypt::{Errno, Error, Result};
use rustix::fs::{AtFlags, Mode};

use super::backing::{new_file_header, write_dir_meta};
use super::inodes::TransitGuard;
use super::locks::{lock, rlock};
use super::mount::Fs;
use super::node::extent::secret_need;
use super::node::{FileContents, Keys, Kind, Node, PerFileState, State, Unlocked};
use super::types::{errno, Attr, Creds, Entry};
use crate::store::config::ContentsLayout;
use crate::store::meta::{DirMeta, SymlinkTarget};
use crate::store::names;
use crate::store::sys_err;

/// What a new inode in a directory gets: its context (inherited) and, when encrypted, its key.
pub(super) struct NewInode<'a> {
    pub(super) ino: u64,
    /// The number is in transit until the node is in the table: a LOOKUP of the new name (visible
    /// once renamed into place) waits instead of loading a second node. (Today the kernel already
    /// keeps LOOKUP and CREATE in one directory apart — no FUSE_PARALLEL_DIROPS — so this guards
    /// the table's invariant rather than a race seen.)
    pub(super) transit: TransitGuard<'a>,
    pub(super) ctx: Option<Context>,
    /// Regular files: the layout of its contents.
    pub(super) layout: ContentsLayout,
    /// The reference and, except for per-extent files (extent keys only), the inode's key.
    pub(super) key: Option<(fscrypt::keyring::ActiveRef, Option<InodeKey>)>,
}

impl Fs {
    /// Allocates an inode number and, in an encrypted directory, a context and an unlocked key for
    /// a new inode of `kind` (ENOKEY when the key cannot be used for new inodes).
    pub(super) fn new_inode(&self, dir: &Node, kind: Kind) -> Result<NewInode<'_>> {
        // The directory's policy, else the dummy policy if mounted with test_dummy_encryption.
        let ctx = fscrypt::hooks::prepare_new_inode(
            dir.ctx().as_ref().map(Context::policy),
            self.opts.dummy_policy.as_ref(),
            kind.hook_type(),
        )?;
        let ino = self.inodes.inos.alloc()?;
        let transit = self.inodes.claim_new_ino(ino);
        let layout = self.contents().new_file_layout(kind, ctx.as_ref());
        let need = secret_need(kind, layout == ContentsLayout::Extent);
        let key = match &ctx {
            Some(c) => Some(self.unlock_new(c, ino, kind, need)?),
            None => None,
        };
        Ok(NewInode {
            ino,
            transit,
            ctx,
            layout,
            key,
        })
    }

    /// The key state of a new inode, and its number's claim (for `insert_new`).
    pub(super) fn keys_for_new(ni: NewInode<'_>) -> (Keys, TransitGuard<'_>) {
        let unlocked = ni.key.map(|(active, k)| Unlocked {
            active,
            key: k.map(Arc::new),
        });
        let keys = Keys {
            ctx: ni.ctx,
            unlocked,
        };
        (keys, ni.transit)
    }

    pub(super) fn open_path(&self, dir: &Node, bname: &OsStr) -> Result<OwnedFd> {
        crate::store::io::open_entry(&*dir.fd(), bname, &self.describe_child(dir, bname))
    }

    /// Moves `from` to `to` in `dir` (whose directory lock the caller holds), which must not
    /// exist yet, as the backing filesystem allows (`store::io::rename_noreplace`).
    pub(super) fn rename_noreplace(
        &self,
        dir: &Node,
        from: &OsStr,
        to: &OsStr,
        is_dir: bool,
    ) -> Result<()> {
        crate::store::io::rename_noreplace(
            &*dir.fd(),
            from,
            to,
            is_dir,
            &self.opts.features,
            &self.describe_child(dir, to),
        )
    }

    /// Creates a regular file (CREATE, MKNOD of a regular file), opened when `open`; returns the
    /// node, the handle and the new file's `stat` for the reply.
    ///
    /// The file is made in place under its final backing name with `O_CREAT|O_EXCL` (nothing that
    /// exists is ever opened or replaced), then its header is written: no temporary name and no
    /// rename, two or three backing round trips fewer on a network filesystem. The directory lock
    /// and the kernel's lock of the parent keep everything of ours from seeing the name before the
    /// header is there; a crash in between leaves a file shorter than its header, which lookup
    /// shows as a damaged entry (open EUCLEAN, unlink works) and `fsck` notes as an interrupted
    /// create (`--repair` removes it).
    pub(super) fn do_create(
        &self,
        req: &Creds,
        parent: u64,
        name: &OsStr,
        mode: u32,
        open: bool,
    ) -> Result<(Arc<Node>, Option<u64>, rustix::fs::Stat)> {
        self.check_writable()?;
        let dir = self.inodes.usable_node(parent)?;
        let _g = lock(&dir.dir_lock);
        let (bname, ct) = self.new_backing_name(&dir, name)?;
        let ni = self.new_inode(&dir, Kind::File)?;
        let what = self.describe_child(&dir, &bname);
        // The long name's side file first: a crash before the entry leaves an orphan (a note).
        if let Some(ct) = &ct {
            self.write_side_file(&dir, &bname, ct)?;
        }
        let file = crate::store::io::create_new(&*dir.fd(), &bname, mode & 0o7777, &what)?;
        let cleanup = |e: Error| {
            let _ = rustix::fs::unlinkat(dir.fd(), &bname, AtFlags::empty());
            e
        };
        let ext = match (ni.layout, &ni.ctx) {
            (ContentsLayout::Extent, Some(c)) => Some(
                self.contents()
                    .create_extent_file(&file, ni.ino, c)
                    .map_err(cleanup)?,
            ),
            _ => {
                // The whole header block in one write (no separate size change: one backing
                // call fewer, which a network filesystem makes a round trip).
                file.write_all_at(&new_file_header(ni.ino, ni.ctx.as_ref()), 0)
                    .map_err(|e| cleanup(crate::store::io_err(&what, e)))?;
                None
            }
        };
        let st = self
            .chown_new_file(&file, self.owner_for(&dir, req), &what)
            .map_err(cleanup)?;
        // The node's O_PATH descriptor through the open file: no second lookup of the name.
        let pfd = crate::store::io::path_fd_of(&file, &what).map_err(cleanup)?;
        let ino = ni.ino;
        let (keys, transit) = Self::keys_for_new(ni);
        let contents = match ext {
            Some(e) => FileContents::PerExtent(Box::new(e)),
            // A duplicate of the new file's descriptor stays with the node (`KeptFile`).
            None => FileContents::PerFile(PerFileState::created().keeping(file.try_clone().ok())),
        };
        let state = State::File { keys, contents };
        let node = self.inodes.insert_new(
            pfd,
            Some(&st),
            ino,
            Kind::File,
            state,
            dir.ino,
            name,
            transit,
        );
        let fh = if open {
            let key = rlock(&node.state).key().cloned();
            Some(self.handles.add(&node, Some(file), key, req.pid()))
        } else {
            None
        };
        Ok((node, fh, st))
    }

    pub(super) fn do_mkdir(
        &self,
        req: &Creds,
        parent: u64,
        name: &OsStr,
        mode: u32,
    ) -> Result<Arc<Node>> {
        self.check_writable()?;
        let dir = self.inodes.usable_node(parent)?;
        let _g = lock(&dir.dir_lock);
        let (bname, ct) = self.new_backing_name(&dir, name)?;
        let ni = self.new_inode(&dir, Kind::Dir)?;
        let tmp = names::tmp_name()?;
        let what = self.describe_child(&dir, &bname);
        let mut mode = mode & 0o7777;
        if rustix::fs::fstat(dir.fd()).is_ok_and(|s| s.st_mode & 0o2000 != 0) {
            mode |= 0o2000;
        }
        rustix::fs::mkdirat(dir.fd(), &tmp, Mode::from_raw_mode(mode))
            .map_err(|e| sys_err(&what, e))?;
        let cleanup = |e: Error| {
            let _ = rustix::fs::unlinkat(dir.fd(), tmp.clone(), AtFlags::empty()).or_else(|_| {
                let _ = rustix::fs::unlinkat(
                    dir.fd(),
                    Path::new(&tmp).join(crate::store::meta::DIR_META_NAME),
                    AtFlags::empty(),
                );
                rustix::fs::unlinkat(dir.fd(), &tmp, AtFlags::REMOVEDIR)
            });
            e
        };
        let nfd = self.open_path(&dir, &tmp).map_err(cleanup)?;
        write_dir_meta(
            &nfd,
            &DirMeta {
                ino: ni.ino,
                ctx: ni.ctx,
            },
            &what,
        )
        .map_err(cleanup)?;
        self.chown_new(&dir.fd(), &tmp, self.owner_for(&dir, req))
            .map_err(cleanup)?;
        if let Some(ct) = &ct {
            self.write_side_file(&dir, &bname, ct).map_err(cleanup)?;
        }
        self.rename_noreplace(&dir, &tmp, &bname, true)
            .map_err(cleanup)?;
        let ino = ni.ino;
        let (keys, transit) = Self::keys_for_new(ni);
        let state = State::Dir { keys };
        Ok(self
            .inodes
            .insert_new(nfd, None, ino, Kind::Dir, state, dir.ino, name, transit))
    }

    pub(super) fn do_symlink(
        &self,
        req: &Creds,
        parent: u64,
        name: &OsStr,
        target: &Path,
    ) -> Result<Arc<Node>> {
        self.check_writable()?;
        let dir = self.inodes.usable_node(parent)?;
        let _g = lock(&dir.dir_lock);
        let (bname, ct) = self.new_backing_name(&dir, name)?;
        let tbytes = target.as_os_str().as_bytes();
        if tbytes.is_empty() {
            return Err(errno(Errno::NOENT, "empty symlink target"));
        }
        let ni = self.new_inode(&dir, Kind::Symlink)?;
        let link = match (&ni.ctx, &ni.key) {
            (Some(c), Some((_, Some(k)))) => SymlinkTarget::Encrypted {
                ino: ni.ino,
                ctx: *c,
                data: k.encrypt_symlink(tbytes)?,
            },
            _ => SymlinkTarget::Plain {
                ino: ni.ino,
                target: tbytes.to_vec(),
            },
        };
        let enc = link.encode()?;
        let what = self.describe_child(&dir, &bname);
        if let Some(ct) = &ct {
            self.write_side_file(&dir, &bname, ct)?;
        }
        rustix::fs::symlinkat(enc.as_slice(), dir.fd(), &bname).map_err(|e| sys_err(&what, e))?;
        self.chown_new(&dir.fd(), &bname, self.owner_for(&dir, req))?;
        let pfd = self.open_path(&dir, &bname)?;
        let ino = ni.ino;
        let (keys, transit) = Self::keys_for_new(ni);
        let st = State::Symlink { keys, target: link };
        Ok(self
            .inodes
            .insert_new(pfd, None, ino, Kind::Symlink, st, dir.ino, name, transit))
    }

    pub(super) fn do_mknod(
        &self,
        req: &Creds,
        parent: u64,
        name: &OsStr,
        mode: u32,
        rdev: u32,
    ) -> Result<Arc<Node>> {
        let ft = mode & libc::S_IFMT;
        if ft == libc::S_IFREG || ft == 0 {
            return self
                .do_create(req, parent, name, mode, false)
                .map(|(n, _, _)| n);
        }
        self.check_writable()?;
        let dir = self.inodes.usable_node(parent)?;
        let _g = lock(&dir.dir_lock);
        let (bname, ct) = self.new_backing_name(&dir, name)?;
        let kind = rustix::fs::FileType::from_raw_mode(mode);
        if !matches!(
            kind,
            rustix::fs::FileType::Fifo
                | rustix::fs::FileType::Socket
                | rustix::fs::FileType::CharacterDevice
                | rustix::fs::FileType::BlockDevice
        ) {
            return Err(errno(Errno::INVAL, "mknod of an unsupported file type"));
        }
        if let Some(ct) = &ct {
            self.write_side_file(&dir, &bname, ct)?;
        }
        let what = self.describe_child(&dir, &bname);
        // The number is recorded before the entry exists (FORMAT.md, "Special files").
        let ino = self.inodes.inos.alloc()?;
        self.update_specials(&dir, |r| {
            r.set(&bname, ino);
            true
        })?;
        if let Err(e) = rustix::fs::mknodat(
            dir.fd(),
            &bname,
            kind,
            Mode::from_raw_mode(mode & 0o7777),
            u64::from(rdev),
        ) {
            let _ = self.update_specials(&dir, |r| r.remove(&bname));
            return Err(sys_err(&what, e));
        }
        self.chown_new(&dir.fd(), &bname, self.owner_for(&dir, req))?;
        let fd = self.open_path(&dir, &bname)?;
        self.node_from_fd(fd, dir.ino, name, &bname, &what)
            .map(|(n, _)| n)
    }

    pub(super) fn do_link(&self, ino: u64, newparent: u64, newname: &OsStr) -> Result<Arc<Node>> {
        self.check_writable()?;
        let node = self.inodes.node(ino)?;
        let dir = self.inodes.usable_node(newparent)?;
        if node.kind == Kind::Dir {
            return Err(errno(Errno::PERM, "hard link to a directory"));
        }
        let _g = lock(&dir.dir_lock);
        let (bname, ct) = self.new_backing_name(&dir, newname)?;
        fscrypt::hooks::prepare_link(&self.dir_key(&dir)?, &dir.hook_inode(), &node.hook_inode())?;
        if let Some(ct) = &ct {
            self.write_side_file(&dir, &bname, ct)?;
        }
        let what = self.describe_child(&dir, &bname);
        if node.kind.is_special() {
            let ino = node.ino;
            self.update_specials(&dir, |r| {
                r.set(&bname, ino);
                true
            })?;
        }
        rustix::fs::linkat(node.fd(), "", dir.fd(), &bname, AtFlags::EMPTY_PATH)
            .or_else(|_| {
                rustix::fs::linkat(
                    rustix::fs::CWD,
                    node.proc_path(),
                    dir.fd(),
                    &bname,
                    AtFlags::SYMLINK_FOLLOW,
                )
            })
            .map_err(|e| sys_err(&what, e))?;
        {
            let mut m = lock(&node.meta);
            m.lookups += 1;
            m.parent = dir.ino;
            m.name = newname.to_os_string();
        }
        Ok(node)
    }

    /// LOOKUP: the child's entry (its lookup counted; given back if its attributes fail).
    pub(super) fn do_lookup(&self, parent: u64, name: &OsStr) -> Result<Entry> {
        let dir = self.inodes.usable_node(parent)?;
        let (node, st) = self.lookup_child(&dir, name)?;
        let attr = self.attr_of(&node, &st);
        Ok(self.entry_of(&dir, name, &node, attr))
    }

    /// The entry reply for `node`, named `name` in `dir`: its lifetimes, and, when the kernel may
    /// cache it in an encrypted directory, the name noted for key changes to make it forget.
    fn entry_of(&self, dir: &Node, name: &OsStr, node: &Node, attr: Attr) -> Entry {
        let entry_ttl = self.entry_ttl(dir, &attr);
        if entry_ttl > super::attr::UNCACHED && dir.is_encrypted() {
            let mut m = lock(&node.meta);
            if !m
                .cached_names
                .iter()
                .any(|(p, n)| *p == dir.ino && n == name)
            {
                m.cached_names.push((dir.ino, name.to_os_string()));
            }
        }
        Entry {
            attr_ttl: self.attr_ttl(node),
            entry_ttl,
            attr,
        }
    }

    /// The entry of a node just made as `name` in `parent` (MKNOD, MKDIR, SYMLINK, LINK).
    pub(super) fn new_entry(&self, parent: u64, name: &OsStr, node: &Arc<Node>) -> Result<Entry> {
        let attr = self.attr(node)?;
        let dir = self.inodes.node(parent)?;
        Ok(self.entry_of(&dir, name, node, attr))
    }

    /// CREATE: the new file's entry and its open handle.
    pub(super) fn do_create_open(
        &self,
        req: &Creds,
        parent: u64,
        name: &OsStr,
        mode: u32,
    ) -> Result<(Entry, u64)> {
        let (node, fh, st) = self.do_create(req, parent, name, mode, true)?;
        let attr = self.attr_of(&node, &st);
        let dir = self.inodes.usable_node(parent)?;
        Ok((self.entry_of(&dir, name, &node, attr), fh.unwrap_or(0)))
    }
}
