//! FUSE requests onto the filesystem: each `fuser::Filesystem` method parses its arguments, calls
//! one `Fs` operation that returns a `Result`, and turns the errno into the reply. fscrypt's rules
//! (ENOKEY without the key, EXDEV across policies, the no-key view) are `fscrypt::hooks`, called by
//! the operations here and in the parent module.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use fscrypt::context::Context;
use fscrypt::hooks;
use fscrypt::keysetup::InodeKey;
use fscrypt::{Errno, Error, Result};
use fuser::{
    FileHandle, Filesystem, FopenFlags, Generation, INodeNo, KernelConfig, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyIoctl,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
};
use rustix::fs::{AtFlags, Mode};

use super::{
    errno, fuse_err, lock, new_file_header, rlock, wlock, write_dir_meta, DirEnt, Fs, Handle, Kind,
    Node, State, TransitGuard,
};
use crate::store::meta::{DirMeta, SymlinkTarget};
use crate::store::{names, sys_err};

macro_rules! tryr {
    ($reply:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => {
                log_err(&e);
                $reply.error(fuse_err(&e));
                return;
            }
        }
    };
}

/// Corruption and I/O failures are logged; ordinary errnos (ENOENT, ENOKEY, ...) only at debug.
fn log_err(e: &Error) {
    if e.errno() == Errno::UCLEAN || e.errno() == Errno::IO {
        tracing::error!("{e}");
    } else {
        tracing::debug!("{e}");
    }
}

/// What a new inode in a directory gets: its context (inherited) and, when encrypted, its key.
struct NewInode<'a> {
    ino: u64,
    /// The number is in transit until the node is in the table: a LOOKUP of the new name (visible
    /// once renamed into place) waits instead of loading a second node. (Today the kernel already
    /// keeps LOOKUP and CREATE in one directory apart — no FUSE_PARALLEL_DIROPS — so this guards
    /// the table's invariant rather than a race seen.)
    transit: TransitGuard<'a>,
    ctx: Option<Context>,
    /// Regular files: the header's layout byte.
    layout: u8,
    /// The reference and, except for per-extent files (extent keys only), the inode's key.
    key: Option<(fscrypt::keyring::ActiveRef, Option<InodeKey>)>,
}

impl Fs {
    /// Allocates an inode number and, in an encrypted directory, a context and an unlocked key for
    /// a new inode of `kind` (ENOKEY when the key cannot be used for new inodes).
    fn new_inode(&self, dir: &Node, kind: Kind) -> Result<NewInode<'_>> {
        // The directory's policy, else the dummy policy if mounted with test_dummy_encryption.
        let ctx = hooks::prepare_new_inode(
            dir.ctx().as_ref().map(Context::policy),
            self.opts.dummy_policy.as_ref(),
            kind.hook_type(),
        )?;
        let ino = self.inos.alloc()?;
        let transit = self.claim_new_ino(ino);
        let layout = self.new_file_layout(kind, ctx.as_ref());
        let need = super::extent::secret_need(kind, layout);
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

    /// The state of a new inode, and its number's claim (for `insert_new`).
    fn state_for_new(ni: NewInode<'_>) -> (State, TransitGuard<'_>) {
        let (active, key) = match ni.key {
            Some((a, k)) => (Some(a), k.map(Arc::new)),
            None => (None, None),
        };
        let state = State {
            ctx: ni.ctx,
            key,
            active,
            layout: ni.layout,
            trimmed: true,
            ..State::default()
        };
        (state, ni.transit)
    }

    fn open_path(&self, dir: &Node, bname: &OsStr) -> Result<OwnedFd> {
        crate::store::io::open_entry(&*dir.fd(), bname, &self.describe_child(dir, bname))
    }

    fn rename_noreplace(&self, dir: &Node, from: &OsStr, to: &OsStr) -> Result<()> {
        rustix::fs::renameat_with(
            dir.fd(),
            from,
            dir.fd(),
            to,
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| sys_err(self.describe_child(dir, to), e))
    }

    fn do_create(
        &self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        mode: u32,
        flags: i32,
        open: bool,
    ) -> Result<(Arc<Node>, Option<u64>)> {
        self.check_writable()?;
        let dir = self.usable_node(parent)?;
        let _g = lock(&dir.dir_lock);
        let (bname, ct) = self.new_backing_name(&dir, name)?;
        let ni = self.new_inode(&dir, Kind::File)?;
        let tmp = names::tmp_name()?;
        let what = self.describe_child(&dir, &bname);
        let file = crate::store::io::create_new(&*dir.fd(), &tmp, mode & 0o7777, &what)?;
        let cleanup = |e: Error| {
            let _ = rustix::fs::unlinkat(dir.fd(), &tmp, AtFlags::empty());
            e
        };
        let ext = match (ni.layout, &ni.ctx) {
            (crate::store::meta::LAYOUT_EXTENT, Some(c)) => {
                Some(self.create_extent_file(&file, ni.ino, c).map_err(cleanup)?)
            }
            _ => {
                file.write_all_at(
                    &new_file_header(ni.ino, ni.ctx.as_ref())
                        [..crate::store::meta::FILE_HEADER_USED],
                    0,
                )
                .and_then(|_| file.set_len(crate::store::FILE_HEADER_SIZE))
                .map_err(|e| cleanup(crate::store::io_err(&what, e)))?;
                None
            }
        };
        self.chown_new(&dir.fd(), &tmp, self.owner_for(&dir, req))
            .map_err(cleanup)?;
        if let Some(ct) = &ct {
            self.write_side_file(&dir, &bname, ct).map_err(cleanup)?;
        }
        self.rename_noreplace(&dir, &tmp, &bname).map_err(cleanup)?;
        let pfd = self.open_path(&dir, &bname)?;
        let ino = ni.ino;
        let (mut state, transit) = Self::state_for_new(ni);
        state.ext = ext;
        let node = self.insert_new(pfd, ino, Kind::File, state, dir.ino, name, transit);
        let fh = if open {
            let key = rlock(&node.state).key.clone();
            let _ = flags;
            Some(self.add_handle(&node, Some(file), key, req.pid()))
        } else {
            None
        };
        Ok((node, fh))
    }

    fn add_handle(
        &self,
        node: &Arc<Node>,
        file: Option<File>,
        key: Option<Arc<InodeKey>>,
        pid: u32,
    ) -> u64 {
        lock(&node.meta).opens += 1;
        self.add_reserved_handle(node, file, key, pid)
    }

    /// Adds a handle whose open was already counted in `meta.opens` (`do_open` counts it before
    /// taking the key, so the locker never takes the key of an inode being opened: a handle whose
    /// inode had lost its reference would accept writes it cannot write out).
    fn add_reserved_handle(
        &self,
        node: &Arc<Node>,
        file: Option<File>,
        key: Option<Arc<InodeKey>>,
        pid: u32,
    ) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&node.meta).pids.push(pid);
        let h = Handle {
            node: Arc::clone(node),
            file: RwLock::new(file.map(Arc::new)),
            key,
            pid,
            flushed: std::sync::atomic::AtomicBool::new(false),
            entries: Mutex::new(Vec::new()),
        };
        wlock(&self.handles).insert(fh, Arc::new(h));
        fh
    }

    fn do_open(&self, req: &Request, ino: u64, flags: OpenFlags) -> Result<u64> {
        let node = self.node(ino)?;
        let accmode = flags.0 & libc::O_ACCMODE;
        let write = accmode != libc::O_RDONLY || flags.0 & libc::O_TRUNC != 0;
        if write {
            self.check_writable()?;
        }
        match node.kind {
            Kind::File => {
                // Busy from here on (the locker re-checks `opens` under the state lock).
                lock(&node.meta).opens += 1;
                let r = (|| {
                    let key = self.ensure_key(&node)?;
                    let file = self.open_backing(&node, write)?;
                    if flags.0 & libc::O_TRUNC != 0 {
                        if let Some(a) = rlock(&node.state).active.as_ref() {
                            a.prepare_write()?;
                        }
                        self.set_size(&node, &file, key.as_deref(), 0)?;
                    }
                    Ok((file, key))
                })();
                match r {
                    Ok((file, key)) => {
                        Ok(self.add_reserved_handle(&node, Some(file), key, req.pid()))
                    }
                    Err(e) => {
                        {
                            let mut m = lock(&node.meta);
                            m.opens = m.opens.saturating_sub(1);
                        }
                        self.maybe_lock_after_close(&node);
                        Err(e)
                    }
                }
            }
            Kind::Dir => {
                super::check_usable(&node)?;
                Ok(self.add_handle(&node, None, None, req.pid()))
            }
            _ => Err(errno(
                Errno::NXIO,
                "cannot open this file type through fscryptfs",
            )),
        }
    }

    fn do_release(&self, fh: u64) -> Result<()> {
        let Some(h) = wlock(&self.handles).remove(&fh) else {
            return Err(errno(Errno::BADF, "no such handle"));
        };
        let node = Arc::clone(&h.node);
        let res = match h.file() {
            Some(f) => self.flush_size(&node, Some(&f), false),
            None => Ok(()),
        };
        self.ext_maybe_compact(&node);
        let gone = {
            let mut m = lock(&node.meta);
            m.opens = m.opens.saturating_sub(1);
            if h.flushed.load(Ordering::Relaxed) {
                m.flushed = m.flushed.saturating_sub(1);
            }
            if let Some(i) = m.pids.iter().position(|p| *p == h.pid) {
                m.pids.remove(i);
            }
            m.opens == 0 && m.lookups == 0
        };
        drop(h);
        self.maybe_lock_after_close(&node);
        if gone {
            let mut nodes = wlock(&self.nodes);
            let mut evict = false;
            if nodes.get(&node.ino).is_some_and(|n| Arc::ptr_eq(n, &node)) {
                let m = lock(&node.meta);
                if m.opens == 0 && m.lookups == 0 {
                    drop(m);
                    nodes.remove(&node.ino);
                    lock(&self.transit).insert(node.ino);
                    evict = true;
                }
            }
            drop(nodes);
            if evict {
                self.finish_eviction(&node);
            }
        }
        res
    }

    fn touch_handle(&self, h: &Handle) {
        if h.flushed.swap(false, Ordering::Relaxed) {
            let mut m = lock(&h.node.meta);
            m.flushed = m.flushed.saturating_sub(1);
        }
    }

    /// `writeback`: the kernel is writing back pages of its cache (`FUSE_WRITE_CACHE`: shared
    /// `mmap` stores), data the application already wrote. That is writeout (SEMANTICS.md §3.2),
    /// never refused by deny-writes.
    fn do_write(&self, fh: u64, off: u64, data: &[u8], writeback: bool) -> Result<u32> {
        self.check_writable()?;
        let h = self.handle(fh)?;
        self.touch_handle(&h);
        let file = h
            .file()
            .ok_or_else(|| errno(Errno::BADF, "not a file handle"))?;
        if !writeback {
            if let Some(a) = rlock(&h.node.state).active.as_ref() {
                a.prepare_write()?;
            }
        }
        self.write_data(&h.node, &file, h.key.as_deref(), off, data)?;
        // A write may have written the buffer out (full): the log may want compacting.
        self.ext_maybe_compact(&h.node);
        Ok(data.len() as u32)
    }

    fn do_read(&self, fh: u64, off: u64, size: u32) -> Result<Vec<u8>> {
        let h = self.handle(fh)?;
        self.touch_handle(&h);
        let file = h
            .file()
            .ok_or_else(|| errno(Errno::BADF, "not a file handle"))?;
        self.read_data(&h.node, &file, h.key.as_deref(), off, size)
    }

    #[allow(clippy::too_many_arguments)] // FUSE's setattr fields, one each
    fn do_setattr(
        &self,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        fh: Option<u64>,
    ) -> Result<fuser::FileAttr> {
        let node = self.node(ino)?;
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
                .and_then(|f| self.handle(f).ok())
                .filter(|h| h.file().is_some());
            match h {
                Some(h) => {
                    if let Some(a) = rlock(&node.state).active.as_ref() {
                        a.prepare_write()?;
                    }
                    let file = h.file().ok_or_else(|| errno(Errno::BADF, "no file"))?;
                    self.set_size(&node, &file, h.key.as_deref(), size)?;
                }
                None => {
                    let key = self.file_key_for_change(&node)?;
                    let file = self.open_backing(&node, true)?;
                    self.set_size(&node, &file, key.as_deref(), size)?;
                }
            }
            // A shrink leaves the log's records past the new size dead.
            self.ext_maybe_compact(&node);
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
        if atime.is_some() || mtime.is_some() {
            let conv = |t: Option<TimeOrNow>| -> rustix::fs::Timespec {
                match t {
                    None => rustix::fs::Timespec {
                        tv_sec: 0,
                        tv_nsec: rustix::fs::UTIME_OMIT,
                    },
                    Some(TimeOrNow::Now) => rustix::fs::Timespec {
                        tv_sec: 0,
                        tv_nsec: rustix::fs::UTIME_NOW,
                    },
                    Some(TimeOrNow::SpecificTime(t)) => {
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
            let r = if node.kind == Kind::Symlink {
                // The node's O_PATH fd is the symlink itself; AT_EMPTY_PATH sets its own times.
                rustix::fs::utimensat(
                    node.fd(),
                    "",
                    &ts,
                    AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
                )
            } else {
                rustix::fs::utimensat(rustix::fs::CWD, node.proc_path(), &ts, AtFlags::empty())
            };
            r.map_err(|e| sys_err(what(), e))?;
        }
        self.attr(&node)
    }

    fn do_mkdir(&self, req: &Request, parent: u64, name: &OsStr, mode: u32) -> Result<Arc<Node>> {
        self.check_writable()?;
        let dir = self.usable_node(parent)?;
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
        self.rename_noreplace(&dir, &tmp, &bname).map_err(cleanup)?;
        let ino = ni.ino;
        let (state, transit) = Self::state_for_new(ni);
        Ok(self.insert_new(nfd, ino, Kind::Dir, state, dir.ino, name, transit))
    }

    fn do_symlink(
        &self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        target: &Path,
    ) -> Result<Arc<Node>> {
        self.check_writable()?;
        let dir = self.usable_node(parent)?;
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
        let (mut st, transit) = Self::state_for_new(ni);
        st.link = Some(link);
        Ok(self.insert_new(pfd, ino, Kind::Symlink, st, dir.ino, name, transit))
    }

    fn do_mknod(
        &self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        mode: u32,
        rdev: u32,
    ) -> Result<Arc<Node>> {
        let ft = mode & libc::S_IFMT;
        if ft == libc::S_IFREG || ft == 0 {
            return self
                .do_create(req, parent, name, mode, 0, false)
                .map(|(n, _)| n);
        }
        self.check_writable()?;
        let dir = self.usable_node(parent)?;
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
        let ino = self.inos.alloc()?;
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
    }

    fn do_link(&self, ino: u64, newparent: u64, newname: &OsStr) -> Result<Arc<Node>> {
        self.check_writable()?;
        let node = self.node(ino)?;
        let dir = self.usable_node(newparent)?;
        if node.kind == Kind::Dir {
            return Err(errno(Errno::PERM, "hard link to a directory"));
        }
        let _g = lock(&dir.dir_lock);
        let (bname, ct) = self.new_backing_name(&dir, newname)?;
        hooks::prepare_link(&self.dir_key(&dir)?, &dir.hook_inode(), &node.hook_inode())?;
        if let Some(ct) = &ct {
            self.write_side_file(&dir, &bname, ct)?;
        }
        let what = self.describe_child(&dir, &bname);
        if matches!(node.kind, Kind::Special(_)) {
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

    fn do_unlink(&self, parent: u64, name: &OsStr, is_dir: bool) -> Result<()> {
        self.check_writable()?;
        let dir = self.usable_node(parent)?;
        let _g = lock(&dir.dir_lock);
        let (bname, _) = self.backing_name(&dir, name)?;
        let what = self.describe_child(&dir, &bname);
        if !is_dir {
            let st = rustix::fs::statat(dir.fd(), &bname, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| sys_err(&what, e))?;
            if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory {
                return Err(errno(Errno::ISDIR, "is a directory"));
            }
            rustix::fs::unlinkat(dir.fd(), &bname, AtFlags::empty())
                .map_err(|e| sys_err(&what, e))?;
            self.forget_backing(&st);
            if !matches!(
                rustix::fs::FileType::from_raw_mode(st.st_mode),
                rustix::fs::FileType::RegularFile | rustix::fs::FileType::Symlink
            ) {
                self.update_specials(&dir, |r| r.remove(&bname))?;
            }
        } else {
            let st = rustix::fs::statat(dir.fd(), &bname, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| sys_err(&what, e))?;
            self.remove_dir_entry(&dir, &bname)?;
            self.forget_backing(&st);
        }
        self.remove_side_file(&dir.fd(), &bname);
        Ok(())
    }

    /// Is the backing directory `fd` empty apart from our own files?
    pub(super) fn user_empty(&self, fd: &OwnedFd, what: &str) -> Result<bool> {
        let dfd = crate::store::io::open_listing(fd, what)?;
        let d = rustix::fs::Dir::new(dfd).map_err(|e| sys_err(what, e))?;
        for ent in d {
            let ent = ent.map_err(|e| sys_err(what, e))?;
            let n = ent.file_name().to_bytes();
            if n == b"." || n == b".." || names::is_reserved(n) {
                continue;
            }
            return Ok(false);
        }
        Ok(true)
    }

    /// Removes the (user-empty) directory entry `bname` of `dir`: moved aside to a temporary name
    /// first, so a crash never leaves a visible directory without its metadata.
    fn remove_dir_entry(&self, dir: &Node, bname: &OsStr) -> Result<()> {
        let what = self.describe_child(dir, bname);
        let cfd = crate::store::io::open_subdir(&*dir.fd(), bname, &what)?;
        if !self.user_empty(&cfd, &what)? {
            return Err(errno(Errno::NOTEMPTY, "directory not empty"));
        }
        let tmp = names::tmp_name()?;
        rustix::fs::renameat_with(
            dir.fd(),
            bname,
            dir.fd(),
            &tmp,
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| sys_err(&what, e))?;
        self.purge_dir(&dir.fd(), &tmp, &what)
    }

    /// Deletes a directory whose remaining entries are all ours.
    fn purge_dir(&self, parent: &OwnedFd, name: &OsStr, what: &str) -> Result<()> {
        let dfd = crate::store::io::open_subdir_listing(parent, name, what)?;
        let mut ours = Vec::new();
        {
            let d = rustix::fs::Dir::read_from(&dfd).map_err(|e| sys_err(what, e))?;
            for ent in d {
                let ent = ent.map_err(|e| sys_err(what, e))?;
                let n = ent.file_name().to_bytes();
                if n != b"." && n != b".." {
                    ours.push((OsStr::from_bytes(n).to_os_string(), ent.file_type()));
                }
            }
        }
        for (n, t) in ours {
            if t == rustix::fs::FileType::Directory {
                self.purge_dir(&dfd, &n, what)?;
            } else {
                rustix::fs::unlinkat(&dfd, &n, AtFlags::empty()).map_err(|e| sys_err(what, e))?;
            }
        }
        rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR).map_err(|e| sys_err(what, e))
    }

    fn do_rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Result<()> {
        self.check_writable()?;
        if flags.contains(RenameFlags::RENAME_WHITEOUT) {
            return Err(errno(Errno::INVAL, "RENAME_WHITEOUT is not supported"));
        }
        let exchange = flags.contains(RenameFlags::RENAME_EXCHANGE);
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let odir = self.usable_node(parent)?;
        let ndir = self.usable_node(newparent)?;
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
        let src = self.node_from_fd(ofd, odir.ino, name, &obname, &owhat)?;
        let res = (|| {
            let nwhat = self.describe_child(&ndir, &nbname);
            let dst = match crate::store::io::open_object(&*ndir.fd(), &nbname, &nwhat)? {
                Some(fd) => Some(self.node_from_fd(fd, ndir.ino, newname, &nbname, &nwhat)?),
                None => None,
            };
            let res = (|| {
                hooks::prepare_rename(
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
                    let at = |n: &Node| matches!(n.kind, Kind::Special(_)).then_some(n.ino);
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
                let replaced = dst.as_ref().and_then(|d| rustix::fs::fstat(d.fd()).ok());
                let src_special = matches!(src.kind, Kind::Special(_));
                if src_special {
                    let ino = src.ino;
                    self.update_specials(&ndir, |r| {
                        r.set(&nbname, ino);
                        true
                    })?;
                }
                let fl = if noreplace {
                    rustix::fs::RenameFlags::NOREPLACE
                } else {
                    rustix::fs::RenameFlags::empty()
                };
                rustix::fs::renameat_with(odir.fd(), &obname, ndir.fd(), &nbname, fl)
                    .map_err(|e| sys_err(&owhat, e))?;
                if let Some(st) = &replaced {
                    self.forget_backing(st);
                }
                if src_special {
                    self.update_specials(&odir, |r| r.remove(&obname))?;
                } else if dst
                    .as_ref()
                    .is_some_and(|d| matches!(d.kind, Kind::Special(_)))
                {
                    self.update_specials(&ndir, |r| r.remove(&nbname))?;
                }
                if odir.ino != ndir.ino || obname != nbname {
                    self.remove_side_file(&odir.fd(), &obname);
                }
                let mut m = lock(&src.meta);
                m.parent = ndir.ino;
                m.name = newname.to_os_string();
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

    fn list_dir(&self, node: &Node) -> Result<Vec<DirEnt>> {
        let what = self.describe(node);
        let dk = self.dir_key(node)?;
        let dfd = crate::store::io::open_listing(&*node.fd(), &what)?;
        let parent = if node.ino == crate::store::config::ROOT_INO {
            node.ino
        } else {
            lock(&node.meta).parent
        };
        let mut out = vec![
            DirEnt {
                ino: node.ino,
                kind: fuser::FileType::Directory,
                name: OsString::from("."),
            },
            DirEnt {
                ino: parent,
                kind: fuser::FileType::Directory,
                name: OsString::from(".."),
            },
        ];
        let dev = rustix::fs::fstat(&dfd)
            .map_err(|e| sys_err(&what, e))?
            .st_dev;
        let d = rustix::fs::Dir::read_from(&dfd).map_err(|e| sys_err(&what, e))?;
        for ent in d {
            let ent = ent.map_err(|e| sys_err(&what, e))?;
            let b = ent.file_name().to_bytes();
            if b == b"." || b == b".." {
                continue;
            }
            let bname = OsStr::from_bytes(b);
            let Some(shown) = self.display_name(&node.fd(), &dk, bname) else {
                continue;
            };
            let kind = match ent.file_type() {
                rustix::fs::FileType::Directory => fuser::FileType::Directory,
                rustix::fs::FileType::Symlink => fuser::FileType::Symlink,
                rustix::fs::FileType::Fifo => fuser::FileType::NamedPipe,
                rustix::fs::FileType::Socket => fuser::FileType::Socket,
                rustix::fs::FileType::CharacterDevice => fuser::FileType::CharDevice,
                rustix::fs::FileType::BlockDevice => fuser::FileType::BlockDevice,
                _ => fuser::FileType::RegularFile,
            };
            // No I/O per entry: the stable number if this mount has seen the object, else
            // FUSE_UNKNOWN_INO, as libfuse reports without `use_ino` (stat always has the real one).
            let ino = self
                .known_ino(dev, ent.ino())
                .unwrap_or(u64::from(u32::MAX));
            out.push(DirEnt {
                ino,
                kind,
                name: shown,
            });
        }
        Ok(out)
    }

    fn do_readdir(&self, fh: u64, offset: u64, reply: &mut ReplyDirectory) -> Result<()> {
        let h = self.handle(fh)?;
        if offset == 0 {
            let list = self.list_dir(&h.node)?;
            *lock(&h.entries) = list;
        }
        let entries = lock(&h.entries);
        for (i, e) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(e.ino), (i + 1) as u64, e.kind, &e.name) {
                break;
            }
        }
        Ok(())
    }

    fn xattr_path(&self, node: &Node) -> Result<String> {
        if node.kind == Kind::Symlink {
            return Err(errno(Errno::OPNOTSUPP, "no user xattrs on symlinks"));
        }
        Ok(node.proc_path())
    }

    fn check_xattr_name(name: &OsStr) -> Result<()> {
        if !name.as_bytes().starts_with(b"user.") {
            return Err(errno(
                Errno::OPNOTSUPP,
                "only user.* extended attributes are supported",
            ));
        }
        Ok(())
    }
}

/// Reads `size` bytes of an xattr or list into a reply.
fn xattr_reply(reply: ReplyXattr, size: u32, data: Result<Vec<u8>>) {
    match data {
        Ok(d) => {
            if size == 0 {
                reply.size(d.len() as u32);
            } else if d.len() > size as usize {
                reply.error(fuser::Errno::from_i32(libc::ERANGE));
            } else {
                reply.data(&d);
            }
        }
        Err(e) => {
            log_err(&e);
            reply.error(fuse_err(&e));
        }
    }
}

impl Filesystem for Fs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_HAS_IOCTL_DIR);
        let _ = config.set_max_write(1 << 20);
        if self.opts.writeback_cache
            && config
                .add_capabilities(fuser::InitFlags::FUSE_WRITEBACK_CACHE)
                .is_err()
        {
            tracing::warn!("the kernel offers no FUSE writeback cache: writes go through at once");
        }
        Ok(())
    }

    fn destroy(&mut self) {
        self.flush_all();
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let dir = tryr!(reply, self.usable_node(parent.0));
        let node = tryr!(reply, self.lookup_child(&dir, name));
        let attr = match self.attr(&node) {
            Ok(a) => a,
            Err(e) => {
                self.forget(node.ino, 1);
                log_err(&e);
                reply.error(fuse_err(&e));
                return;
            }
        };
        reply.entry_with_ttls(
            &self.attr_ttl(&node),
            &self.entry_ttl(&dir),
            &attr,
            Generation(0),
        );
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        Fs::forget(self, ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let node = tryr!(reply, self.node(ino.0));
        let attr = tryr!(reply, self.attr(&node));
        reply.attr(&self.attr_ttl(&node), &attr);
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let attr = tryr!(
            reply,
            self.do_setattr(ino.0, mode, uid, gid, size, atime, mtime, fh.map(|f| f.0))
        );
        let node = tryr!(reply, self.node(ino.0));
        reply.attr(&self.attr_ttl(&node), &attr);
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let node = tryr!(reply, self.node(ino.0));
        let t = tryr!(reply, Fs::readlink(self, &node));
        reply.data(&t);
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let node = tryr!(reply, self.do_mknod(req, parent.0, name, mode, rdev));
        self.reply_new_entry(parent.0, &node, reply);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let node = tryr!(reply, self.do_mkdir(req, parent.0, name, mode));
        self.reply_new_entry(parent.0, &node, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        tryr!(reply, self.do_unlink(parent.0, name, false));
        reply.ok();
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        tryr!(reply, self.do_unlink(parent.0, name, true));
        reply.ok();
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let node = tryr!(reply, self.do_symlink(req, parent.0, link_name, target));
        self.reply_new_entry(parent.0, &node, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        tryr!(
            reply,
            self.do_rename(parent.0, name, newparent.0, newname, flags)
        );
        reply.ok();
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let node = tryr!(reply, self.do_link(ino.0, newparent.0, newname));
        self.reply_new_entry(newparent.0, &node, reply);
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let fh = tryr!(reply, self.do_open(req, ino.0, flags));
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let d = tryr!(reply, self.do_read(fh.0, offset, size));
        reply.data(&d);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        let writeback = write_flags.contains(fuser::WriteFlags::FUSE_WRITE_CACHE);
        let n = tryr!(reply, self.do_write(fh.0, offset, data, writeback));
        reply.written(n);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        let h = tryr!(reply, self.handle(fh.0));
        if !h.flushed.swap(true, Ordering::Relaxed) {
            lock(&h.node.meta).flushed += 1;
        }
        if let Some(f) = h.file() {
            tryr!(reply, self.flush_size(&h.node, Some(&f), false));
            self.ext_maybe_compact(&h.node);
        }
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        tryr!(reply, self.do_release(fh.0));
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let h = tryr!(reply, self.handle(fh.0));
        if let Some(f) = h.file() {
            tryr!(reply, self.flush_size(&h.node, Some(&f), true));
            self.ext_maybe_compact(&h.node);
        }
        reply.ok();
    }

    fn opendir(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let fh = tryr!(
            reply,
            self.do_open(req, ino.0, OpenFlags(flags.0 & !libc::O_ACCMODE))
        );
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        tryr!(reply, self.do_readdir(fh.0, offset, &mut reply));
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        tryr!(reply, self.do_release(fh.0));
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let node = tryr!(reply, self.node(ino.0));
        tryr!(
            reply,
            crate::store::io::sync_dir(&*node.fd(), &self.describe(&node))
        );
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let root = tryr!(reply, self.node(crate::store::config::ROOT_INO));
        let s = tryr!(
            reply,
            rustix::fs::fstatvfs(root.fd()).map_err(|e| sys_err(self.backing.display(), e))
        );
        reply.statfs(
            s.f_blocks,
            s.f_bfree,
            s.f_bavail,
            s.f_files,
            s.f_ffree,
            s.f_bsize as u32,
            255,
            s.f_frsize as u32,
        );
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        tryr!(reply, self.check_writable());
        tryr!(reply, Self::check_xattr_name(name));
        let node = tryr!(reply, self.node(ino.0));
        let p = tryr!(reply, self.xattr_path(&node));
        let fl = rustix::fs::XattrFlags::from_bits_retain(flags as u32);
        tryr!(
            reply,
            rustix::fs::setxattr(&p, name, value, fl).map_err(|e| sys_err(self.describe(&node), e))
        );
        reply.ok();
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let r = (|| {
            Self::check_xattr_name(name).map_err(|_| errno(Errno::NODATA, "no such attribute"))?;
            let node = self.node(ino.0)?;
            let p = self
                .xattr_path(&node)
                .map_err(|_| errno(Errno::NODATA, "no such attribute"))?;
            let mut buf = vec![0u8; 65536];
            let n = rustix::fs::getxattr(&p, name, &mut buf[..])
                .map_err(|e| sys_err(self.describe(&node), e))?;
            buf.truncate(n);
            Ok(buf)
        })();
        xattr_reply(reply, size, r);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let r = (|| {
            let node = self.node(ino.0)?;
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
        })();
        xattr_reply(reply, size, r);
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        tryr!(reply, self.check_writable());
        if Self::check_xattr_name(name).is_err() {
            reply.error(fuser::Errno::from_i32(libc::ENODATA));
            return;
        }
        let node = tryr!(reply, self.node(ino.0));
        let p = tryr!(reply, self.xattr_path(&node));
        tryr!(
            reply,
            rustix::fs::removexattr(&p, name).map_err(|e| sys_err(self.describe(&node), e))
        );
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (node, fh) = tryr!(
            reply,
            self.do_create(req, parent.0, name, mode, flags, true)
        );
        let attr = tryr!(reply, self.attr(&node));
        let dir = tryr!(reply, self.usable_node(parent.0));
        let ttl = self.entry_ttl(&dir).min(self.attr_ttl(&node));
        reply.created(
            &ttl,
            &attr,
            Generation(0),
            FileHandle(fh.unwrap_or(0)),
            FopenFlags::empty(),
        );
    }

    fn ioctl(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: fuser::IoctlFlags,
        cmd: u32,
        in_data: &[u8],
        out_size: u32,
        reply: ReplyIoctl,
    ) {
        match self.do_ioctl(req, ino.0, fh.0, cmd, in_data, out_size) {
            Ok(out) => reply.ioctl(0, &out),
            Err(e) => {
                log_err(&e);
                reply.error(fuse_err(&e));
            }
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let r = (|| {
            self.check_writable()?;
            let h = self.handle(fh.0)?;
            let file = h.file().ok_or_else(|| errno(Errno::BADF, "not a file"))?;
            if let Some(a) = rlock(&h.node.state).active.as_ref() {
                a.prepare_write()?;
            }
            self.allocate(&h.node, &file, h.key.as_deref(), offset, length, mode)?;
            // A punched range leaves dead records.
            self.ext_maybe_compact(&h.node);
            Ok(())
        })();
        tryr!(reply, r);
        reply.ok();
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        _ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: fuser::CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let r = (|| -> Result<u32> {
            let len = len.min(u64::from(u32::MAX) & !0xfff);
            let mut done = 0u64;
            // Per-extent files under one policy: clone the ciphertext (reflink where aligned).
            {
                self.check_writable()?;
                let hi = self.handle(fh_in.0)?;
                let ho = self.handle(fh_out.0)?;
                if let Some(n) = self.ext_clone(&hi.node, offset_in, &ho.node, offset_out, len)? {
                    done = n;
                    self.ext_maybe_compact(&ho.node);
                }
            }
            while done < len {
                let chunk = (len - done).min(1 << 20) as u32;
                let d = self.do_read(fh_in.0, offset_in + done, chunk)?;
                if d.is_empty() {
                    break;
                }
                self.do_write(fh_out.0, offset_out + done, &d, false)?;
                done += d.len() as u64;
            }
            Ok(done as u32)
        })();
        let n = tryr!(reply, r);
        reply.written(n);
    }
}

impl Fs {
    fn reply_new_entry(&self, parent: u64, node: &Arc<Node>, reply: ReplyEntry) {
        let attr = tryr!(reply, self.attr(node));
        let ttl = match self.node(parent) {
            Ok(d) => self.entry_ttl(&d),
            Err(_) => Duration::ZERO,
        };
        reply.entry_with_ttls(&self.attr_ttl(node), &ttl, &attr, Generation(0));
    }
}
