//! Nodes and the inode table: `Node` (an inode the kernel knows: its `O_PATH` descriptor, kind,
//! per-inode `State` and counts), the table with its lookup counts, FORGET and eviction, the
//! "transit" set of numbers between the table and the outside, and stable inode numbers.
//!
//! `State` is an enum by kind, so only what a kind has can be written: a damaged entry holds why
//! and nothing else; a regular file its `Keys` (context and, while unlocked, `Unlocked`) and its
//! contents state (`FileContents`: per-file size, dirty and trimmed flags, or the per-extent
//! `ExtState` with its own size); a directory its `Keys`; a symlink its `Keys` and parsed target; a
//! FIFO, socket or device nothing. Callers read it through its accessors (`ctx`, `key`, `active`,
//! `size`, `per_file`, `ext`, `link`, `corrupt_why`).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, RwLock};

use fscrypt::context::Context;
use fscrypt::keyring::ActiveRef;
use fscrypt::keysetup::{InodeKey, InodeKind};
use fscrypt::{Errno, Error, Result};

use super::contents;
use super::locks::{lock, rlock, wlock};
use super::mount::Fs;
use super::types::{errno, FileType};
use crate::store::config::ROOT_INO;
use crate::store::meta::SymlinkTarget;

/// What kind of inode a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Regular file (with a 4096-byte header).
    File,
    /// Directory (with `.fscryptfs.dir`).
    Dir,
    /// Symlink (target in our backing form).
    Symlink,
    /// FIFO, socket or device: never encrypted.
    Special(FileType),
}

impl Kind {
    pub(super) fn file_type(self) -> FileType {
        match self {
            Kind::File => FileType::RegularFile,
            Kind::Dir => FileType::Directory,
            Kind::Symlink => FileType::Symlink,
            Kind::Special(t) => t,
        }
    }
    /// The type fscrypt's hooks see.
    pub(super) fn hook_type(self) -> fscrypt::hooks::FileType {
        match self {
            Kind::File => fscrypt::hooks::FileType::Regular,
            Kind::Dir => fscrypt::hooks::FileType::Directory,
            Kind::Symlink => fscrypt::hooks::FileType::Symlink,
            Kind::Special(_) => fscrypt::hooks::FileType::Special,
        }
    }
    pub(super) fn inode_kind(self) -> InodeKind {
        match self {
            Kind::Dir => InodeKind::Directory,
            Kind::Symlink => InodeKind::Symlink,
            _ => InodeKind::Regular,
        }
    }
}

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
    /// The size changed and the header does not say so yet.
    pub(super) size_dirty: bool,
    /// The backing file was trimmed of any stale tail beyond the last data unit (once per mount).
    pub(super) trimmed: bool,
}

impl PerFileState {
    /// A file whose header says `size` (its tail not yet checked this mount).
    pub(super) fn loaded(size: u64) -> PerFileState {
        PerFileState {
            size,
            size_dirty: false,
            trimmed: false,
        }
    }
}

/// A regular file's contents state, by layout.
pub(super) enum FileContents {
    /// Per-file layout: the size is in the header.
    PerFile(PerFileState),
    /// Per-extent layout: the opened log, the write buffer and the logical size
    /// (`contents::per_extent`).
    PerExtent(Box<contents::ExtState>),
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
    pub(super) fn ext(&self) -> Option<&contents::ExtState> {
        match self {
            State::File {
                contents: FileContents::PerExtent(e),
                ..
            } => Some(e),
            _ => None,
        }
    }

    pub(super) fn ext_mut(&mut self) -> Option<&mut contents::ExtState> {
        self.ext_and_active().map(|(e, _)| e)
    }

    /// The log and buffer of a per-extent file with its hold on the master key (if unlocked).
    pub(super) fn ext_and_active(
        &mut self,
    ) -> Option<(&mut contents::ExtState, Option<&ActiveRef>)> {
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
        fd: OwnedFd,
        state: State,
        parent: u64,
        name: &OsStr,
    ) -> Arc<Node> {
        Arc::new(Node {
            ino,
            kind,
            fd: RwLock::new(Arc::new(fd)),
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
    /// Last known parent and name (for paths in busy reports and cache invalidation).
    pub(super) parent: u64,
    pub(super) name: OsString,
    /// Processes that opened handles.
    pub(super) pids: Vec<u32>,
}

/// One inode the daemon knows.
pub struct Node {
    pub(super) ino: u64,
    pub(super) kind: Kind,
    /// `O_PATH | O_NOFOLLOW` descriptor of the backing object. Swapped only by compaction of a
    /// per-extent file (`ext_compact` in `contents::per_extent`, under the parent's `dir_lock` and
    /// this node's `state` write lock); a leaf lock, held only to clone the `Arc`.
    pub(super) fd: RwLock<Arc<OwnedFd>>,
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

    /// The inode as fscrypt's hooks see it.
    pub(super) fn hook_inode(&self) -> fscrypt::hooks::Inode {
        fscrypt::hooks::Inode {
            ino: self.ino,
            file_type: self.kind.hook_type(),
            policy: self.ctx().map(|c| *c.policy()),
        }
    }
}

/// What `Fs::claim_ino` found.
pub(super) enum Claim<'a> {
    /// The node in the table (its lookup count raised).
    Cached(Arc<Node>),
    /// The number is the caller's to load and insert; dropping the guard ends the claim.
    Ours(TransitGuard<'a>),
}

/// A number in `Fs::transit`, taken out again (and its waiters woken) on drop.
pub(super) struct TransitGuard<'a> {
    pub(super) fs: &'a Fs,
    pub(super) ino: u64,
}

impl Drop for TransitGuard<'_> {
    fn drop(&mut self) {
        self.fs.end_transit(self.ino);
    }
}

/// EUCLEAN for a node whose stored metadata is damaged.
pub(super) fn check_usable(node: &Node) -> Result<()> {
    match rlock(&node.state).corrupt_why() {
        Some(why) => Err(Error::corrupt(why.to_string())),
        None => Ok(()),
    }
}

/// The node of `ino` in the (locked) table, with its lookup count raised and its name updated.
pub(super) fn cached_lookup(
    nodes: &HashMap<u64, Arc<Node>>,
    ino: u64,
    kind: Kind,
    parent: u64,
    name: &OsStr,
    what: &str,
) -> Result<Option<Arc<Node>>> {
    let Some(node) = nodes.get(&ino) else {
        return Ok(None);
    };
    if node.kind != kind {
        return Err(Error::corrupt(format!(
            "{what}: inode number {ino} is used by two objects of different types"
        )));
    }
    let mut m = lock(&node.meta);
    m.lookups += 1;
    if ino != ROOT_INO {
        m.parent = parent;
        m.name = name.to_os_string();
    }
    drop(m);
    Ok(Some(Arc::clone(node)))
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

impl Fs {
    pub(super) fn node(&self, ino: u64) -> Result<Arc<Node>> {
        rlock(&self.nodes)
            .get(&ino)
            .cloned()
            .ok_or_else(|| errno(Errno::STALE, format!("inode {ino} is not known")))
    }

    /// The node of an operation that needs its stored metadata — working inside a directory
    /// (whose context says how its names are stored), policy and nonce ioctls: EUCLEAN when that
    /// metadata is damaged.
    pub(super) fn usable_node(&self, ino: u64) -> Result<Arc<Node>> {
        let node = self.node(ino)?;
        check_usable(&node)?;
        Ok(node)
    }

    /// The lookup side of the node table: the cached node of `ino` with its lookup count raised
    /// (under the table lock, so a concurrent FORGET cannot evict it in between), or the number
    /// claimed for the caller to load and insert. While the number is in transit (being loaded by
    /// another lookup, or its evicted node still dropping its references) this waits: two nodes of
    /// one inode would mean two logs appending to one backing file.
    pub(super) fn claim_ino(
        &self,
        ino: u64,
        kind: Kind,
        parent: u64,
        name: &OsStr,
        what: &str,
    ) -> Result<Claim<'_>> {
        loop {
            let nodes = wlock(&self.nodes);
            if let Some(node) = cached_lookup(&nodes, ino, kind, parent, name, what)? {
                return Ok(Claim::Cached(node));
            }
            let mut transit = lock(&self.transit);
            if transit.insert(ino) {
                return Ok(Claim::Ours(TransitGuard { fs: self, ino }));
            }
            drop(nodes);
            // Woken when any number leaves transit; the table is looked at again.
            drop(
                self.transit_done
                    .wait(transit)
                    .unwrap_or_else(|p| p.into_inner()),
            );
        }
    }

    /// Claims a newly allocated number until its node is inserted (`insert_new`).
    pub(super) fn claim_new_ino(&self, ino: u64) -> TransitGuard<'_> {
        lock(&self.transit).insert(ino);
        TransitGuard { fs: self, ino }
    }

    /// Takes `ino` out of transit and wakes the lookups waiting for it.
    pub(super) fn end_transit(&self, ino: u64) {
        lock(&self.transit).remove(&ino);
        self.transit_done.notify_all();
    }

    /// Records the stable number of a backing object (for readdir).
    pub(super) fn remember_ino(&self, st: &rustix::fs::Stat, ino: u64) {
        lock(&self.known).insert((st.st_dev, st.st_ino), ino);
    }

    /// The number of a backing object without a stored one, assigned once per mount.
    pub(super) fn per_mount_ino(&self, st: &rustix::fs::Stat) -> Result<u64> {
        let key = (st.st_dev, st.st_ino);
        let mut known = lock(&self.known);
        if let Some(i) = known.get(&key) {
            return Ok(*i);
        }
        let i = self.inos.alloc()?;
        known.insert(key, i);
        Ok(i)
    }

    /// The stable number readdir reports for backing entry (dev, d_ino), if seen this mount.
    pub(super) fn known_ino(&self, dev: u64, backing_ino: u64) -> Option<u64> {
        lock(&self.known).get(&(dev, backing_ino)).copied()
    }

    /// Forgets a backing object that is being deleted (its backing number may be reused).
    pub(super) fn forget_backing(&self, st: &rustix::fs::Stat) {
        if st.st_nlink <= 1 || rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() {
            lock(&self.known).remove(&(st.st_dev, st.st_ino));
        }
    }

    /// Inserts a node just created (lookup count 1), then ends its number's claim.
    #[allow(clippy::too_many_arguments)] // a node's parts, and the claim it ends
    pub(super) fn insert_new(
        &self,
        fd: OwnedFd,
        ino: u64,
        kind: Kind,
        state: State,
        parent: u64,
        name: &OsStr,
        transit: TransitGuard<'_>,
    ) -> Arc<Node> {
        if let Ok(st) = rustix::fs::fstat(&fd) {
            self.remember_ino(&st, ino);
        }
        let node = Node::looked_up(ino, kind, fd, state, parent, name);
        wlock(&self.nodes).insert(ino, Arc::clone(&node));
        drop(transit);
        node
    }

    pub(super) fn forget(&self, ino: u64, n: u64) {
        if ino == ROOT_INO {
            return;
        }
        let mut nodes = wlock(&self.nodes);
        let Some(node) = nodes.get(&ino).cloned() else {
            return;
        };
        let drop_it = {
            let mut m = lock(&node.meta);
            m.lookups = m.lookups.saturating_sub(n);
            m.lookups == 0 && m.opens == 0
        };
        if drop_it {
            nodes.remove(&ino);
            lock(&self.transit).insert(ino);
        }
        drop(nodes);
        if drop_it {
            self.finish_eviction(&node);
        }
    }

    /// The second half of evicting a node already taken out of the table (and listed in
    /// `transit`): writes a dirty size, drops its key and `ActiveRef` now (not whenever the last
    /// `Arc` goes), then unlists it. A key removal that cannot find the node in the table waits for
    /// this, so it never counts a reference that is on its way out as busy.
    pub(super) fn finish_eviction(&self, node: &Node) {
        if node.kind == Kind::File {
            if let Err(e) = self.flush_size(node, None, false) {
                tracing::error!("{e}");
            }
        }
        {
            let mut st = wlock(&node.state);
            let (key, active) = st.take_keys();
            drop(active);
            drop(key);
        }
        self.end_transit(node.ino);
    }

    /// The path of a node from the mount root, as far as known.
    pub(super) fn path_of(&self, node: &Node) -> String {
        let mut parts = Vec::new();
        let mut cur = node.ino;
        let nodes = rlock(&self.nodes);
        for _ in 0..4096 {
            if cur == ROOT_INO {
                break;
            }
            let Some(n) = nodes.get(&cur) else {
                parts.push("?".to_string());
                break;
            };
            let m = lock(&n.meta);
            parts.push(m.name.to_string_lossy().into_owned());
            cur = m.parent;
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }
}
