//! One inode the daemon knows: `Node` (its `O_PATH` descriptor, kind, per-inode `State`, lookup
//! and open counts in `Meta`, the directory's `dir_lock`). The per-extent layout's per-inode state
//! is [`extent`] (log, write buffer, extent-key cache, writeout) with the volume-wide [`budget`]
//! its buffers count in. The table of nodes is `fs::inodes`; this room imports nothing of `fs`
//! but `locks` and `types`.
//!
//! `State` is an enum by kind, so only what a kind has can be written: a damaged entry holds why
//! and nothing else; a regular file its `Keys` (context and, while unlocked, `Unlocked`) and its
//! contents state (`FileContents`: per-file size, dirty and trimmed flags and the kept backing
//! file, or the per-extent `ExtState` with its own size); a directory its `Keys`; a symlink its
//! `Keys` and parsed target; a FIFO, socket or device nothing. Callers read it through its accessors (`ctx`, `key`, `active`,
//! `size`, `per_file`, `ext`, `link`, `corrupt_why`).

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use fscrypt::context::Context;
use fscrypt::keyring::ActiveRef;
use fscrypt::keysetup::InodeKey;
use fscrypt::{Errno, Error, Result};

use super::locks::{lock, rlock, Locked};
use super::types::errno;
pub(super) use crate::store::kind::Kind;
use crate::store::meta::SymlinkTarget;

pub(super) mod budget;
pub(super) mod extent;

/// An unlocked encrypted inode: its reference on the master key and, except for per-extent files
/// (which derive extent keys through the reference), its inode key. There is no key without the
/// reference.
pub(super) struct Unlocked {
    pub(super) active: ActiveRef,
    pub(super) key: Option<Arc<InodeKey>>,
}

/// The fscrypt side of an inode that has one: its context (None: unencrypted) and, while
/// unlocked, its key state.
pub(super) struct Keys {
    /// The fscrypt context, for encrypted inodes.
    pub(super) ctx: Option<Context>,
    /// Encrypted inodes while unlocked: the hold on the master key and the inode's key.
    pub(super) unlocked: Option<Unlocked>,
}

impl Keys {
    /// Unencrypted or locked (no key yet), with context `ctx`.
    pub(super) fn locked(ctx: Option<Context>) -> Keys {
        Keys {
            ctx,
            unlocked: None,
        }
    }
}

/// A per-file regular file's size state.
pub(super) struct PerFileState {
    /// The logical size (authoritative while the node is cached).
    pub(super) size: u64,
    /// The size changed and the header says so in neither its committed size nor its pending
    /// size record.
    pub(super) size_dirty: bool,
    /// The header's pending size record says `size` but its committed size does not yet: since
    /// when (`store::pending`; the writeout thread commits it after the commit interval).
    pub(super) uncommitted: Option<std::time::Instant>,
    /// The backing file was trimmed of any stale tail beyond the last data unit (once per mount).
    pub(super) trimmed: bool,
    /// The backing file as the lookup or create opened it (for writing), kept while the node is
    /// cached: the daemon's own changes duplicate it instead of opening the file again (on a
    /// network filesystem an open and its close are round trips).
    pub(super) kept: Option<KeptFile>,
}

/// A per-file node's backing file opened for writing, kept for the daemon's own changes to it.
pub(super) struct KeptFile {
    file: std::fs::File,
}

/// Kept files open now, in the whole process.
static KEPT_OPEN: AtomicUsize = AtomicUsize::new(0);
/// How many may be open at once ([`set_kept_file_budget`]); beyond that a node keeps none and its
/// users open the backing file as they need it.
static KEPT_MAX: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Bounds the kept files to `n` at once: with the descriptor limit they share, the `O_PATH`
/// descriptors of the nodes themselves and the logs of per-extent files (which must stay open),
/// they must not use up what lookups need.
pub(in crate::fs) fn set_kept_file_budget(n: usize) {
    KEPT_MAX.store(n, Ordering::Relaxed);
}

impl KeptFile {
    /// Keeps `file`, or closes it when it was opened read-only (the daemon changes nothing
    /// through it) or the budget of kept files is spent.
    pub(super) fn new(file: std::fs::File) -> Option<KeptFile> {
        let writable = rustix::fs::fcntl_getfl(&file).is_ok_and(|f| {
            let acc = f & rustix::fs::OFlags::RWMODE;
            acc == rustix::fs::OFlags::RDWR || acc == rustix::fs::OFlags::WRONLY
        });
        if !writable {
            return None;
        }
        if KEPT_OPEN.fetch_add(1, Ordering::Relaxed) >= KEPT_MAX.load(Ordering::Relaxed) {
            KEPT_OPEN.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(KeptFile { file })
    }

    /// A duplicate of the kept descriptor (None: no descriptor was left).
    pub(super) fn duplicate(&self) -> Option<std::fs::File> {
        self.file.try_clone().ok()
    }
}

impl Drop for KeptFile {
    fn drop(&mut self) {
        KEPT_OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PerFileState {
    /// A file whose header says `size` (its tail not yet checked this mount); `pending`: the size
    /// is a trusted pending size its header has not committed yet.
    pub(super) fn loaded(size: u64, pending: bool) -> PerFileState {
        PerFileState {
            size,
            size_dirty: false,
            uncommitted: pending.then(std::time::Instant::now),
            trimmed: false,
            kept: None,
        }
    }

    /// The same state, keeping `file` (the backing file, opened for I/O) while the node is cached.
    pub(super) fn keeping(self, file: Option<std::fs::File>) -> PerFileState {
        PerFileState {
            kept: file.and_then(KeptFile::new),
            ..self
        }
    }

    /// A new, empty file (no stale tail to trim).
    pub(super) fn created() -> PerFileState {
        PerFileState {
            trimmed: true,
            ..PerFileState::loaded(0, false)
        }
    }

    /// The size is now `size`, and the header does not say so yet.
    pub(super) fn set_dirty_size(&mut self, size: u64) {
        self.size = size;
        self.size_dirty = true;
    }
}

/// A regular file's contents state, by layout.
pub(super) enum FileContents {
    /// Per-file layout: the size is in the header.
    PerFile(PerFileState),
    /// Per-extent layout: the opened log, the write buffer and the logical size
    /// (`node::extent`; its operations in `contents::per_extent`).
    PerExtent(Box<extent::ExtState>),
}

/// The per-inode state by kind, under the node's `state` lock. Only a regular file has a size and
/// contents state (per-extent data only in the per-extent layout), only a symlink a target, and a
/// damaged entry nothing but why.
pub(super) enum State {
    /// A regular file, directory or symlink whose stored metadata (header, `.fscryptfs.dir`,
    /// backing target, per-extent log) cannot be parsed: why (naming the backing path). Such a node
    /// exists so the entry can be looked up, stat'ed, renamed and deleted; opening it, reading the
    /// link, and any operation inside the directory give EUCLEAN.
    Corrupt { why: String },
    /// A regular file.
    File { keys: Keys, contents: FileContents },
    /// A directory.
    Dir { keys: Keys },
    /// A symlink and its backing target, parsed.
    Symlink { keys: Keys, target: SymlinkTarget },
    /// A FIFO, socket or device: never encrypted.
    Special,
}

impl State {
    /// The state of an entry whose stored metadata is damaged (`e` says how).
    pub(super) fn corrupt(e: &Error) -> State {
        State::Corrupt {
            why: e.message().to_string(),
        }
    }

    /// Why the stored metadata is damaged, for a corrupt entry.
    pub(super) fn corrupt_why(&self) -> Option<&str> {
        match self {
            State::Corrupt { why } => Some(why),
            _ => None,
        }
    }

    /// The key state of a file, directory or symlink.
    pub(super) fn keys(&self) -> Option<&Keys> {
        match self {
            State::File { keys, .. } | State::Dir { keys } | State::Symlink { keys, .. } => {
                Some(keys)
            }
            State::Corrupt { .. } | State::Special => None,
        }
    }

    pub(super) fn keys_mut(&mut self) -> Option<&mut Keys> {
        match self {
            State::File { keys, .. } | State::Dir { keys } | State::Symlink { keys, .. } => {
                Some(keys)
            }
            State::Corrupt { .. } | State::Special => None,
        }
    }

    /// The fscrypt context, for encrypted inodes.
    pub(super) fn ctx(&self) -> Option<Context> {
        self.keys().and_then(|k| k.ctx)
    }

    /// The symlink's target, for a symlink.
    pub(super) fn link(&self) -> Option<&SymlinkTarget> {
        match self {
            State::Symlink { target, .. } => Some(target),
            _ => None,
        }
    }

    /// A regular file's logical size (for the per-extent layout it includes buffered writes);
    /// 0 for anything else.
    pub(super) fn size(&self) -> u64 {
        match self {
            State::File {
                contents: FileContents::PerFile(p),
                ..
            } => p.size,
            State::File {
                contents: FileContents::PerExtent(e),
                ..
            } => e.size,
            _ => 0,
        }
    }

    /// The per-file size state, for a per-file regular file.
    pub(super) fn per_file(&self) -> Option<&PerFileState> {
        match self {
            State::File {
                contents: FileContents::PerFile(p),
                ..
            } => Some(p),
            _ => None,
        }
    }

    /// A duplicate of a per-file file's kept descriptor, opened for writing ([`KeptFile`]).
    pub(super) fn kept_file(&self) -> Option<std::fs::File> {
        self.per_file()?.kept.as_ref()?.duplicate()
    }

    pub(super) fn per_file_mut(&mut self) -> Option<&mut PerFileState> {
        match self {
            State::File {
                contents: FileContents::PerFile(p),
                ..
            } => Some(p),
            _ => None,
        }
    }

    /// The log and buffer, for a per-extent regular file.
    pub(super) fn ext(&self) -> Option<&extent::ExtState> {
        match self {
            State::File {
                contents: FileContents::PerExtent(e),
                ..
            } => Some(e),
            _ => None,
        }
    }

    pub(super) fn ext_mut(&mut self) -> Option<&mut extent::ExtState> {
        self.ext_and_active().map(|(e, _)| e)
    }

    /// The log and buffer of a per-extent file with its hold on the master key (if unlocked).
    pub(super) fn ext_and_active(&mut self) -> Option<(&mut extent::ExtState, Option<&ActiveRef>)> {
        match self {
            State::File {
                keys,
                contents: FileContents::PerExtent(e),
            } => Some((e, keys.unlocked.as_ref().map(|u| &u.active))),
            _ => None,
        }
    }

    /// True for a per-extent regular file.
    pub(super) fn is_extent(&self) -> bool {
        self.ext().is_some()
    }

    /// Locks the inode: takes its key and reference (the caller drops them) and drops every
    /// extent key cached under that reference.
    pub(super) fn take_keys(&mut self) -> (Option<Arc<InodeKey>>, Option<ActiveRef>) {
        if let Some(e) = self.ext_mut() {
            e.drop_keys();
        }
        match self.keys_mut().and_then(|k| k.unlocked.take()) {
            Some(u) => (u.key, Some(u.active)),
            None => (None, None),
        }
    }

    /// The hold on the master key, while unlocked.
    pub(super) fn active(&self) -> Option<&ActiveRef> {
        self.keys()
            .and_then(|k| k.unlocked.as_ref())
            .map(|u| &u.active)
    }

    /// The inode's key, while unlocked (None for per-extent files: extent keys only).
    pub(super) fn key(&self) -> Option<&Arc<InodeKey>> {
        self.keys()
            .and_then(|k| k.unlocked.as_ref())
            .and_then(|u| u.key.as_ref())
    }
}

impl Node {
    /// A node the kernel has just learnt of (lookup count 1) as `name` in directory `parent`.
    pub(super) fn looked_up(
        ino: u64,
        kind: Kind,
        fd: impl Into<Arc<OwnedFd>>,
        state: State,
        parent: u64,
        name: &OsStr,
    ) -> Arc<Node> {
        Arc::new(Node {
            ino,
            kind,
            fd: RwLock::new(fd.into()),
            ident: Mutex::new(None),
            state: RwLock::new(state),
            meta: Mutex::new(Meta {
                lookups: 1,
                parent,
                name: name.to_os_string(),
                ..Meta::default()
            }),
            dir_lock: Mutex::new(()),
        })
    }

    /// Records the backing identity of the node's object from `st`, an `fstat` of it.
    pub(super) fn set_ident(&self, st: &rustix::fs::Stat) {
        *lock(&self.ident) = Some((st.st_dev, st.st_ino));
    }

    /// Whether the node's backing object still has a name: not when its last name was unlinked
    /// through us (known without a backing call), else as its link count says (an `fstat`).
    pub(super) fn has_name(&self) -> bool {
        if lock(&self.meta).removed.is_some() {
            return false;
        }
        rustix::fs::fstat(&*self.fd()).is_ok_and(|st| st.st_nlink > 0)
    }

    /// The device number of the node's backing object, when its identity is known.
    pub(super) fn backing_dev(&self) -> Option<u64> {
        lock(&self.ident).map(|(dev, _)| dev)
    }

    /// The backing identity of the node's object: as recorded, else asked of the kernel (an
    /// `fstat` of the descriptor; None if that fails).
    fn backing_ident(&self) -> Option<(u64, u64)> {
        let known = *lock(&self.ident);
        known.or_else(|| {
            rustix::fs::fstat(&*self.fd())
                .ok()
                .map(|s| (s.st_dev, s.st_ino))
        })
    }

    /// The header lock of the node's backing object ([`header_lock`]).
    pub(super) fn header_lock(&self) -> Locked<'static, HeaderLock> {
        let (dev, ino) = self.backing_ident().unwrap_or_default();
        header_lock(dev, ino)
    }

    /// Is `st` (an `fstat` of an object just opened) this node's backing object? The node's
    /// descriptor keeps its inode alive, so its number cannot belong to another object meanwhile.
    pub(super) fn is_object(&self, st: &rustix::fs::Stat) -> bool {
        self.backing_ident() == Some((st.st_dev, st.st_ino))
    }
}

/// What a header lock guards: nothing but the header's bytes on the backing store.
pub(super) struct HeaderLock;

/// How many header locks there are (backing objects share them by a hash of their identity).
const HEADER_LOCKS: usize = 64;

static HEADER_LOCK_TABLE: [Mutex<HeaderLock>; HEADER_LOCKS] =
    [const { Mutex::new(HeaderLock) }; HEADER_LOCKS];

/// The lock held by every write of a regular file's header in place (a size committed or recorded
/// as pending) and by a lookup's read of it, for the backing object (`dev`, `ino`). On ext4 and
/// tmpfs, buffered reads take no lock against writes: a read overlapping a write can return half
/// of each, a header whose checksum fails (EUCLEAN at open) or a pending size record that looks
/// damaged (the size cut back to the committed one). The writer may be a node the lookup cannot
/// see: one being evicted, still writing its size. A leaf lock: nothing is taken under it, and it
/// is held for one read or write.
pub(super) fn header_lock(dev: u64, ino: u64) -> Locked<'static, HeaderLock> {
    let mixed = dev.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ino;
    lock(&HEADER_LOCK_TABLE[(mixed % HEADER_LOCKS as u64) as usize])
}

/// Bookkeeping of one inode, under the node's `meta` lock.
#[derive(Default)]
pub(super) struct Meta {
    /// The kernel's lookup count.
    pub(super) lookups: u64,
    /// Open handles (files and directories).
    pub(super) opens: u32,
    /// Handles FLUSHed but not yet RELEASEd (the application probably closed them).
    pub(super) flushed: u32,
    /// Last known parent and name (for paths in busy reports).
    pub(super) parent: u64,
    pub(super) name: OsString,
    /// The entries in encrypted directories the kernel may hold for this inode with a lifetime
    /// (parent, name as the kernel knows it): what a key change makes it forget. Kept while the
    /// kernel holds lookups; a rename moves an entry, an unlink drops it.
    pub(super) cached_names: Vec<(u64, OsString)>,
    /// Processes that opened handles.
    pub(super) pids: Vec<u32>,
    /// The last name of this (non-directory) object was unlinked: its `stat` from just before,
    /// with no links. A timestamp change the kernel still sends for it (the writeback cache
    /// flushes the times of an inode it evicts) is answered from this, without backing calls.
    pub(super) removed: Option<rustix::fs::Stat>,
}

/// A node's backing path, resolved when formatted ([`Node::described`]).
pub(super) struct Described<'a> {
    node: &'a Node,
    backing: &'a std::path::Path,
}

impl std::fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.node.describe(self.backing))
    }
}

/// One inode the daemon knows.
pub struct Node {
    pub(super) ino: u64,
    pub(super) kind: Kind,
    /// `O_PATH | O_NOFOLLOW` descriptor of the backing object. Swapped only by compaction of a
    /// per-extent file (`ext_compact` in `contents::compaction`, under the parent's `dir_lock` and
    /// this node's `state` write lock); a leaf lock, held only to clone the `Arc`.
    pub(super) fd: RwLock<Arc<OwnedFd>>,
    /// The backing identity (device, inode number) of `fd`'s object when known (set with it): a
    /// lookup that finds the object again compares against it instead of an `fstat` of `fd`. A
    /// leaf lock.
    pub(super) ident: Mutex<Option<(u64, u64)>>,
    pub(super) state: RwLock<State>,
    pub(super) meta: Mutex<Meta>,
    /// Serializes entry changes in a directory.
    pub(super) dir_lock: Mutex<()>,
}

impl Node {
    /// The current backing descriptor.
    pub(super) fn fd(&self) -> Arc<OwnedFd> {
        Arc::clone(&rlock(&self.fd))
    }

    /// A `/proc/self/fd` path of the backing object. The descriptor behind it lives as long as
    /// the node's current one: callers use it at once.
    pub(super) fn proc_path(&self) -> String {
        format!("/proc/self/fd/{}", rlock(&self.fd).as_raw_fd())
    }

    pub(super) fn is_encrypted(&self) -> bool {
        rlock(&self.state).ctx().is_some()
    }

    pub(super) fn ctx(&self) -> Option<Context> {
        rlock(&self.state).ctx()
    }

    /// The backing path of the node (`/proc/self/fd` resolved), or the volume `backing` and the
    /// inode number when that fails: for messages.
    pub(super) fn describe(&self, backing: &std::path::Path) -> String {
        rustix::fs::readlink(self.proc_path(), Vec::new())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| format!("{} (inode {})", backing.display(), self.ino))
    }

    /// [`describe`](Self::describe) when formatted, for a message that is usually never built
    /// (resolving the path is a system call).
    pub(super) fn described<'a>(&'a self, backing: &'a std::path::Path) -> Described<'a> {
        Described {
            node: self,
            backing,
        }
    }

    /// The inode as fscrypt's hooks see it.
    pub(super) fn hook_inode(&self) -> fscrypt::hooks::Inode {
        fscrypt::hooks::Inode {
            ino: self.ino,
            file_type: self.kind.hook_type(),
            policy: self.ctx().map(|c| *c.policy()),
        }
    }
}

/// EUCLEAN for a node whose stored metadata is damaged.
pub(super) fn check_usable(node: &Node) -> Result<()> {
    match rlock(&node.state).corrupt_why() {
        Some(why) => Err(Error::corrupt(why.to_string())),
        None => Ok(()),
    }
}

impl Node {
    /// The directory descriptor for `*at` calls (an `O_PATH` descriptor works for them).
    pub(super) fn fd_dir(&self) -> Result<Arc<OwnedFd>> {
        if self.kind != Kind::Dir {
            return Err(errno(Errno::NOTDIR, "not a directory"));
        }
        Ok(self.fd())
    }
}
