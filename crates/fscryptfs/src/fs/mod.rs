//! The filesystem: an encrypted view of a backing directory, served over FUSE, with fscrypt's
//! semantics as the kernel has them on ext4 (docs/SEMANTICS.md is the contract for keys).
//!
//! This module owns the daemon's in-memory state: the table of inodes the kernel knows (each with an
//! `O_PATH` descriptor of its backing object, its context, and — while unlocked — its `InodeKey` and
//! `ActiveRef`), open handles, and the key lifecycle around them (unlock on demand, the
//! [`InodeLocker`](fscrypt::keyring::InodeLocker) that locks idle inodes at key removal and tells the
//! kernel to forget their plaintext). Submodules: [`ops`] adapts FUSE requests, [`data`] is the
//! per-file-key contents path, [`ioctl`] answers the key and policy ioctls, [`daemon`] mounts.
//!
//! Why descriptors instead of paths: an `O_PATH` descriptor follows its inode through renames and
//! hard links, so no path bookkeeping can go stale, and per-directory operations are `*at` calls on
//! the parent's descriptor.
//!
//! Locks, in the order they may nest: a directory's `dir_lock` (entry changes), then a node's `state`
//! (key, size), then the keyring's own locks (inside `unlock` / `ActiveRef::drop`). The node table
//! and a node's `meta` are leaves. Kernel notifications are sent only with no lock held.

pub mod daemon;
mod data;
mod extent;
mod ioctl;
mod ops;
mod writeout;

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{
    Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
use std::time::Duration;

use fscrypt::context::Context;
use fscrypt::hooks::{self, DirKey, DiskName, FilenameLookup, UsrName};
use fscrypt::keyring::{
    ActiveRef, BusyInode, BusyReport, Caller, KeyStatus, Keyring, ProcessUids, SecretNeed,
};
use fscrypt::keysetup::{InodeKey, InodeKind, InodeParams};
use fscrypt::nokey::NokeyName;
use fscrypt::policy::{FsParams, KeySpec};
use fscrypt::{Errno, Error, Result};
use rustix::fs::AtFlags;

use crate::store::config::{ContentsLayout, InoAllocator, ROOT_INO};
use crate::store::io as store_io;
use crate::store::meta::{
    DirMeta, FileHeader, SymlinkTarget, DIR_META_NAME, DIR_META_SIZE, FILE_HEADER_USED,
    LAYOUT_PER_FILE,
};
use crate::store::names;
use crate::store::special::{SpecialRecords, SPECIAL_MAX, SPECIAL_NAME};
use crate::store::{read_full_at, sys_err, FILE_HEADER_SIZE};

/// Entry and attribute lifetime outside encrypted directories.
const PLAIN_TTL: Duration = Duration::from_secs(1);
/// Inside encrypted directories (and for encrypted inodes): zero, so a key change is seen at once.
const ENC_TTL: Duration = Duration::ZERO;
/// How long key removal waits for RELEASEs of handles already FLUSHed (closed by the application).
const RELEASE_WAIT: Duration = Duration::from_millis(500);

/// Takes a mutex, ignoring poisoning (no critical section leaves state half-done at a panic point).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
fn rlock<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}
fn wlock<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

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
    Special(fuser::FileType),
}

impl Kind {
    fn file_type(self) -> fuser::FileType {
        match self {
            Kind::File => fuser::FileType::RegularFile,
            Kind::Dir => fuser::FileType::Directory,
            Kind::Symlink => fuser::FileType::Symlink,
            Kind::Special(t) => t,
        }
    }
    /// The type fscrypt's hooks see.
    fn hook_type(self) -> hooks::FileType {
        match self {
            Kind::File => hooks::FileType::Regular,
            Kind::Dir => hooks::FileType::Directory,
            Kind::Symlink => hooks::FileType::Symlink,
            Kind::Special(_) => hooks::FileType::Special,
        }
    }
    fn inode_kind(self) -> InodeKind {
        match self {
            Kind::Dir => InodeKind::Directory,
            Kind::Symlink => InodeKind::Symlink,
            _ => InodeKind::Regular,
        }
    }
}

/// Key-related and size state of one inode, under the node's `state` lock.
#[derive(Default)]
struct State {
    /// The fscrypt context, for encrypted inodes.
    ctx: Option<Context>,
    /// The inode's key while unlocked.
    key: Option<Arc<InodeKey>>,
    /// Its hold on the master key while unlocked.
    active: Option<ActiveRef>,
    /// Regular files: the logical size (authoritative while the node is cached; for the per-extent
    /// layout it includes buffered writes).
    size: u64,
    /// Regular files: the header's layout byte (0 for a damaged header).
    layout: u8,
    /// Per-extent regular files: the opened log and the write buffer (`extent`).
    ext: Option<extent::ExtState>,
    /// The size changed and the header does not say so yet.
    size_dirty: bool,
    /// The backing file was trimmed of any stale tail beyond the last data unit (once per mount).
    trimmed: bool,
    /// Symlinks: the backing target, parsed.
    link: Option<SymlinkTarget>,
    /// Regular files, directories and symlinks whose stored metadata (header, `.fscryptfs.dir`,
    /// backing target) cannot be parsed: why (naming the backing path). Such a node exists so the
    /// entry can be looked up, stat'ed, renamed and deleted; opening it, reading the link, and any
    /// operation inside the directory give EUCLEAN.
    corrupt: Option<String>,
}

impl State {
    /// The state of an entry whose stored metadata is damaged (`e` says how).
    fn corrupt(e: &Error) -> State {
        State {
            corrupt: Some(e.message().to_string()),
            ..State::default()
        }
    }

    /// Locks the inode: takes its key and reference (the caller drops them) and drops every
    /// extent key cached under that reference.
    fn take_keys(&mut self) -> (Option<Arc<InodeKey>>, Option<ActiveRef>) {
        if let Some(e) = self.ext.as_mut() {
            e.drop_keys();
        }
        (self.key.take(), self.active.take())
    }
}

impl Node {
    /// A node the kernel has just learnt of (lookup count 1) as `name` in directory `parent`.
    fn looked_up(
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
struct Meta {
    /// The kernel's lookup count.
    lookups: u64,
    /// Open handles (files and directories).
    opens: u32,
    /// Handles FLUSHed but not yet RELEASEd (the application probably closed them).
    flushed: u32,
    /// Last known parent and name (for paths in busy reports and cache invalidation).
    parent: u64,
    name: OsString,
    /// Processes that opened handles.
    pids: Vec<u32>,
}

/// One inode the daemon knows.
pub struct Node {
    ino: u64,
    kind: Kind,
    /// `O_PATH | O_NOFOLLOW` descriptor of the backing object. Swapped only by compaction of a
    /// per-extent file (`extent::compact`, under the parent's `dir_lock` and this node's `state`
    /// write lock); a leaf lock, held only to clone the `Arc`.
    fd: RwLock<Arc<OwnedFd>>,
    state: RwLock<State>,
    meta: Mutex<Meta>,
    /// Serializes entry changes in a directory.
    dir_lock: Mutex<()>,
}

impl Node {
    /// The current backing descriptor.
    fn fd(&self) -> Arc<OwnedFd> {
        Arc::clone(&rlock(&self.fd))
    }

    /// A `/proc/self/fd` path of the backing object. The descriptor behind it lives as long as
    /// the node's current one: callers use it at once.
    fn proc_path(&self) -> String {
        format!("/proc/self/fd/{}", rlock(&self.fd).as_raw_fd())
    }

    fn is_encrypted(&self) -> bool {
        rlock(&self.state).ctx.is_some()
    }

    fn ctx(&self) -> Option<Context> {
        rlock(&self.state).ctx
    }

    /// The inode as fscrypt's hooks see it.
    fn hook_inode(&self) -> hooks::Inode {
        hooks::Inode {
            ino: self.ino,
            file_type: self.kind.hook_type(),
            policy: self.ctx().map(|c| *c.policy()),
        }
    }
}

/// An open file or directory.
pub struct Handle {
    node: Arc<Node>,
    /// Regular files: the backing file, opened read-write where possible (swapped with the node's
    /// descriptor by compaction of a per-extent file).
    file: RwLock<Option<Arc<File>>>,
    /// Regular files: the key, fixed at open (None for unencrypted files).
    key: Option<Arc<InodeKey>>,
    /// The opening process.
    pid: u32,
    /// FLUSH seen since the last read or write.
    flushed: AtomicBool,
    /// Directories: the listing taken at offset 0.
    entries: Mutex<Vec<DirEnt>>,
}

impl Handle {
    /// The backing file of a regular-file handle.
    fn file(&self) -> Option<Arc<File>> {
        rlock(&self.file).clone()
    }
}

/// One directory entry as listed.
#[derive(Clone)]
struct DirEnt {
    ino: u64,
    kind: fuser::FileType,
    name: OsString,
}

/// Options that change the daemon's behaviour.
#[derive(Clone, Debug, Default)]
pub struct FsOptions {
    /// Refuse every change.
    pub read_only: bool,
    /// `test_dummy_encryption`: the policy new inodes in unencrypted directories inherit
    /// (`fscrypt_policy_to_inherit`); its key is in the keyring.
    pub dummy_policy: Option<fscrypt::policy::Policy>,
    /// The volume's contents layout (the config's): new encrypted regular files of an `Extent`
    /// volume are per-extent files, and its policies must allow extents.
    pub layout: ContentsLayout,
    /// Age at which a dirty per-extent write buffer is written out (`None`: never by age).
    pub commit: Option<Duration>,
    /// Ask for the FUSE writeback cache (write(2) completes in the kernel's page cache; the
    /// daemon sees the pages at writeback, flagged `FUSE_WRITE_CACHE`).
    pub writeback_cache: bool,
}

/// The filesystem.
pub struct Fs {
    backing: PathBuf,
    fsp: FsParams,
    uuid: [u8; 16],
    keyring: Keyring,
    inos: InoAllocator,
    opts: FsOptions,
    /// The node table (shared, weakly, with the writeout thread).
    nodes: Arc<RwLock<HashMap<u64, Arc<Node>>>>,
    /// Bytes buffered by per-extent files, all together (`writeout`).
    budget: Arc<writeout::Budget>,
    /// Stable inode numbers by backing identity (st_dev, st_ino), for every object seen this mount:
    /// readdir reports them without opening entries. For special files and regular files with a
    /// corrupt header (no stored number) it is where their per-mount number is assigned.
    known: Mutex<HashMap<(u64, u64), u64>>,
    handles: RwLock<HashMap<u64, Arc<Handle>>>,
    /// Inode numbers between the table and the outside: nodes taken out of `nodes` whose key is not
    /// dropped yet (`finish_eviction`), and nodes a lookup is loading (`claim_ino`). Lookups of
    /// such a number wait for `transit_done`; key removal waits for them. A leaf lock, taken under
    /// the table lock.
    transit: Mutex<HashSet<u64>>,
    transit_done: Condvar,
    next_fh: AtomicU64,
    notifier: Arc<OnceLock<fuser::Notifier>>,
    /// The daemon runs as root: new inodes are chowned to their creator.
    is_root: bool,
}

/// What `Fs::claim_ino` found.
enum Claim<'a> {
    /// The node in the table (its lookup count raised).
    Cached(Arc<Node>),
    /// The number is the caller's to load and insert; dropping the guard ends the claim.
    Ours(TransitGuard<'a>),
}

/// A number in `Fs::transit`, taken out again (and its waiters woken) on drop.
struct TransitGuard<'a> {
    fs: &'a Fs,
    ino: u64,
}

impl Drop for TransitGuard<'_> {
    fn drop(&mut self) {
        self.fs.end_transit(self.ino);
    }
}

/// EUCLEAN for a node whose stored metadata is damaged.
fn check_usable(node: &Node) -> Result<()> {
    match &rlock(&node.state).corrupt {
        Some(why) => Err(Error::corrupt(why.clone())),
        None => Ok(()),
    }
}

/// The node of `ino` in the (locked) table, with its lookup count raised and its name updated.
fn cached_lookup(
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

/// Converts a layer error to a FUSE errno.
fn fuse_err(e: &Error) -> fuser::Errno {
    fuser::Errno::from_i32(e.raw_os_error())
}

fn errno(e: Errno, msg: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(e, msg)
}

impl Fs {
    /// A filesystem over the volume in `backing` (whose config was loaded), with `keyring`.
    pub fn new(
        backing: PathBuf,
        uuid: [u8; 16],
        inos: InoAllocator,
        keyring: Keyring,
        opts: FsOptions,
    ) -> Result<Self> {
        let mut fsp = crate::store::fs_params();
        fsp.per_extent_encryption = opts.layout == ContentsLayout::Extent;
        let root_fd = store_io::open_backing_root(&backing)?;
        let meta = read_dir_meta(&root_fd, &fsp, &backing.display().to_string())?;
        if meta.ino != ROOT_INO {
            return Err(Error::corrupt(format!(
                "{}/{DIR_META_NAME}: the root directory has inode number {}, expected {ROOT_INO}",
                backing.display(),
                meta.ino
            )));
        }
        let root = Node {
            ino: ROOT_INO,
            kind: Kind::Dir,
            fd: RwLock::new(Arc::new(root_fd)),
            state: RwLock::new(State {
                ctx: meta.ctx,
                ..State::default()
            }),
            meta: Mutex::new(Meta {
                lookups: u64::MAX / 2,
                parent: ROOT_INO,
                ..Meta::default()
            }),
            dir_lock: Mutex::new(()),
        };
        let mut nodes = HashMap::new();
        nodes.insert(ROOT_INO, Arc::new(root));
        Ok(Fs {
            backing,
            fsp,
            uuid,
            keyring,
            inos,
            opts,
            nodes: Arc::new(RwLock::new(nodes)),
            budget: Arc::new(writeout::Budget::default()),
            known: Mutex::new(HashMap::new()),
            handles: RwLock::new(HashMap::new()),
            transit: Mutex::new(HashSet::new()),
            transit_done: Condvar::new(),
            next_fh: AtomicU64::new(1),
            notifier: Arc::new(OnceLock::new()),
            is_root: rustix::process::geteuid().is_root(),
        })
    }

    /// Whether the mount asks for the FUSE writeback cache.
    pub fn writeback_cache(&self) -> bool {
        self.opts.writeback_cache
    }

    /// Starts the background writeout of per-extent buffers (`writeout`: age and memory).
    pub fn start_writeout(&self) -> Result<()> {
        writeout::start(
            Arc::downgrade(&self.nodes),
            Arc::clone(&self.budget),
            self.opts.commit,
        )
    }

    /// Where the session's notifier goes once the session exists.
    pub fn notifier_cell(&self) -> Arc<OnceLock<fuser::Notifier>> {
        Arc::clone(&self.notifier)
    }

    fn node(&self, ino: u64) -> Result<Arc<Node>> {
        rlock(&self.nodes)
            .get(&ino)
            .cloned()
            .ok_or_else(|| errno(Errno::STALE, format!("inode {ino} is not known")))
    }

    /// The node of an operation that needs its stored metadata — working inside a directory
    /// (whose context says how its names are stored), policy and nonce ioctls: EUCLEAN when that
    /// metadata is damaged.
    fn usable_node(&self, ino: u64) -> Result<Arc<Node>> {
        let node = self.node(ino)?;
        check_usable(&node)?;
        Ok(node)
    }

    fn handle(&self, fh: u64) -> Result<Arc<Handle>> {
        rlock(&self.handles)
            .get(&fh)
            .cloned()
            .ok_or_else(|| errno(Errno::BADF, format!("no open handle {fh}")))
    }

    fn check_writable(&self) -> Result<()> {
        if self.opts.read_only {
            return Err(errno(Errno::ROFS, "read-only mount"));
        }
        Ok(())
    }

    /// A human description of a backing object, for error messages.
    fn describe(&self, node: &Node) -> String {
        rustix::fs::readlink(node.proc_path(), Vec::new())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| format!("{} (inode {})", self.backing.display(), node.ino))
    }

    fn describe_child(&self, dir: &Node, bname: &OsStr) -> String {
        format!("{}/{}", self.describe(dir), bname.to_string_lossy())
    }

    // ---- keys ----

    /// The inode's key, setting it up if the master key is present. Ok(None) for unencrypted
    /// inodes and for unlocked per-extent files (they have an `ActiveRef` and extent keys, no
    /// inode key); ENOKEY when it cannot be unlocked.
    fn ensure_key(&self, node: &Node) -> Result<Option<Arc<InodeKey>>> {
        {
            let st = rlock(&node.state);
            match (&st.ctx, &st.key, &st.active) {
                (None, _, _) => return Ok(None),
                (Some(_), Some(k), _) => return Ok(Some(Arc::clone(k))),
                (Some(_), None, Some(_)) => return Ok(None),
                _ => {}
            }
        }
        let mut st = wlock(&node.state);
        if let Some(k) = &st.key {
            return Ok(Some(Arc::clone(k)));
        }
        if st.active.is_some() {
            return Ok(None);
        }
        let Some(ctx) = st.ctx else {
            return Ok(None);
        };
        let need = extent::secret_need(node.kind, st.layout);
        let (active, key) = self.unlock_new(&ctx, node.ino, node.kind, need)?;
        let key = key.map(Arc::new);
        st.key = key.clone();
        st.active = Some(active);
        Ok(key)
    }

    /// Unlocks a new reference for inode `ino`: `need` is `SecretNeed::Later` only for per-extent
    /// regular files (they derive extent keys at writeout and read, and get no inode key: None).
    fn unlock_new(
        &self,
        ctx: &Context,
        ino: u64,
        kind: Kind,
        need: SecretNeed,
    ) -> Result<(ActiveRef, Option<InodeKey>)> {
        let spec = ctx.policy().key_spec();
        let params = InodeParams {
            kind: kind.inode_kind(),
            ino,
            fs_uuid: self.uuid,
        };
        self.keyring.unlock_with(&spec, ino, need, |m| {
            if need == SecretNeed::Later {
                return Ok(None);
            }
            InodeKey::setup(m, ctx, &params, &self.fsp).map(Some)
        })
    }

    fn dir_key(&self, dir: &Node) -> Result<DirKey> {
        DirKey::from_setup(self.ensure_key(dir))
    }

    // ---- names ----

    /// The backing name of `name` in `dir`, and the ciphertext name when encrypted (the caller
    /// needs it for a side file). ENOENT for a name that cannot exist without the key.
    fn backing_name(&self, dir: &Node, name: &OsStr) -> Result<(OsString, Option<Vec<u8>>)> {
        if name.len() > names::NAME_MAX {
            return Err(errno(Errno::NAMETOOLONG, "name longer than 255 bytes"));
        }
        match hooks::setup_filename(&self.dir_key(dir)?, name.as_bytes(), true)? {
            FilenameLookup::Plain => Ok((names::plain_to_backing(name)?, None)),
            FilenameLookup::Ciphertext(ct) => Ok((names::ct_to_backing(&ct), Some(ct))),
            FilenameLookup::NoKey(n) => {
                if n.dirhash() != names::DIRHASH || !names::is_encrypted_entry(name.as_bytes()) {
                    return Err(errno(Errno::NOENT, "not a no-key name of this volume"));
                }
                Ok((name.to_os_string(), None))
            }
        }
    }

    /// The backing name for creating `name` in `dir`: needs the directory's key.
    fn new_backing_name(&self, dir: &Node, name: &OsStr) -> Result<(OsString, Option<Vec<u8>>)> {
        if name.len() > names::NAME_MAX {
            return Err(errno(Errno::NAMETOOLONG, "name longer than 255 bytes"));
        }
        match hooks::setup_filename(&self.dir_key(dir)?, name.as_bytes(), false)? {
            FilenameLookup::Ciphertext(ct) => Ok((names::ct_to_backing(&ct), Some(ct))),
            _ => Ok((names::plain_to_backing(name)?, None)),
        }
    }

    /// Writes the long-name side file of an entry (before the entry exists).
    fn write_side_file(&self, dir: &Node, bname: &OsStr, ct: &[u8]) -> Result<()> {
        if !names::needs_side_file(ct) {
            return Ok(());
        }
        let side = names::side_name(bname);
        let what = self.describe_child(dir, &side);
        // Replaced, not created: a side file left by a crash between its write and the entry's
        // creation may be there.
        store_io::replace(&*dir.fd_dir()?, &side, ct, 0o644, false, &what)
    }

    fn remove_side_file(&self, dirfd: &OwnedFd, bname: &OsStr) {
        if names::is_encrypted_entry(bname.as_bytes()) {
            let _ = rustix::fs::unlinkat(dirfd, names::side_name(bname), AtFlags::empty());
        }
    }

    /// The user-visible name of backing entry `bname` in `dir` given the key state.
    fn display_name(&self, dirfd: &OwnedFd, dk: &DirKey, bname: &OsStr) -> Option<OsString> {
        use std::os::unix::ffi::OsStringExt;
        let plain;
        let ct;
        let disk = match dk {
            DirKey::Plain => {
                plain = names::backing_to_plain(bname)?;
                DiskName::Plain(plain.as_bytes())
            }
            _ if !names::is_encrypted_entry(bname.as_bytes()) => return None,
            DirKey::NoKey => DiskName::Encrypted(None),
            DirKey::Key(_) => {
                // The full ciphertext: in the name, or in the side file of a long one (None:
                // the side file cannot be trusted, the no-key name is shown).
                let n = NokeyName::decode(bname.to_str()?).ok()?;
                ct = match n.full_ciphertext() {
                    Some(ct) => Some(ct.to_vec()),
                    None => {
                        let side = names::side_name(bname);
                        let what = format!("side file {}", side.to_string_lossy());
                        match store_io::read_bounded(dirfd, &side, names::NAME_MAX, &what) {
                            Ok(Some(buf)) if n.matches(&buf) => Some(buf),
                            Ok(Some(_)) => {
                                tracing::warn!(
                                    "side file of {} does not match its name; showing the no-key name",
                                    bname.to_string_lossy()
                                );
                                None
                            }
                            Ok(None) => return None,
                            Err(e) => {
                                tracing::error!("{e}; showing the no-key name");
                                None
                            }
                        }
                    }
                };
                DiskName::Encrypted(ct.as_deref())
            }
        };
        match hooks::fname_disk_to_usr(dk, disk) {
            UsrName::Name(n) => Some(OsString::from_vec(n)),
            UsrName::NoKeyName => Some(bname.to_os_string()),
            UsrName::Undecryptable => {
                tracing::warn!(
                    "cannot decrypt the name {}; showing the no-key name",
                    bname.to_string_lossy()
                );
                Some(bname.to_os_string())
            }
        }
    }

    // ---- nodes ----

    /// Looks up `name` in `dir`: the child node (lookup count incremented).
    fn lookup_child(&self, dir: &Arc<Node>, name: &OsStr) -> Result<Arc<Node>> {
        if dir.kind != Kind::Dir {
            return Err(errno(Errno::NOTDIR, "not a directory"));
        }
        let (bname, _) = self.backing_name(dir, name)?;
        let what = self.describe_child(dir, &bname);
        let fd = store_io::open_entry(&*dir.fd(), &bname, &what)?;
        self.node_from_fd(fd, dir.ino, name, &bname, &what)
    }

    /// The special-file record of `dir` (empty when it has none). A damaged one is logged and
    /// treated as empty: its files get per-mount numbers until they are recorded again.
    fn read_specials(&self, dir: &Node) -> SpecialRecords {
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
    fn update_specials(
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

    /// Reads what identifies the backing object `fd` (its stable inode number and metadata) and
    /// returns its node, creating or reusing it; lookup count +1.
    fn node_from_fd(
        &self,
        fd: OwnedFd,
        parent: u64,
        name: &OsStr,
        bname: &OsStr,
        what: &str,
    ) -> Result<Arc<Node>> {
        let st = rustix::fs::fstat(&fd).map_err(|e| sys_err(what, e))?;
        let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
        let (ino, kind, state) = match ft {
            rustix::fs::FileType::RegularFile => {
                let f = store_io::reopen_file(&fd, store_io::Access::ReadNoAtime, what)?;
                let mut buf = [0u8; FILE_HEADER_USED];
                let n = read_full_at(&f, &mut buf, 0).map_err(|e| crate::store::io_err(what, e))?;
                match FileHeader::parse(&buf[..n], &self.fsp, what) {
                    Ok(h) => {
                        self.remember_ino(&st, h.ino);
                        // A per-extent file's size is in its log, loaded once the number is ours.
                        (
                            h.ino,
                            Kind::File,
                            State {
                                ctx: h.ctx,
                                size: h.size,
                                layout: h.layout,
                                ..State::default()
                            },
                        )
                    }
                    Err(e) => {
                        // Still an entry: it can be stat'ed and deleted; open says EUCLEAN.
                        tracing::error!("{e}");
                        (self.per_mount_ino(&st)?, Kind::File, State::corrupt(&e))
                    }
                }
            }
            rustix::fs::FileType::Directory => {
                match read_dir_meta(&fd, &self.fsp, what) {
                    Ok(m) => {
                        self.remember_ino(&st, m.ino);
                        (
                            m.ino,
                            Kind::Dir,
                            State {
                                ctx: m.ctx,
                                ..State::default()
                            },
                        )
                    }
                    Err(e) if e.errno() == Errno::UCLEAN => {
                        // Damaged metadata: still an entry (stat, rename, rmdir when empty);
                        // everything inside says EUCLEAN.
                        tracing::error!("{e}");
                        (self.per_mount_ino(&st)?, Kind::Dir, State::corrupt(&e))
                    }
                    Err(e) => {
                        tracing::error!("{e}");
                        return Err(e);
                    }
                }
            }
            rustix::fs::FileType::Symlink => {
                // A cached symlink needs no readlinkat (which would bump the backing atime: a
                // symlink's target carries its number, so only an unknown one is read).
                if let Some(ino) = self.known_ino(st.st_dev, st.st_ino) {
                    let nodes = wlock(&self.nodes);
                    if let Some(node) =
                        cached_lookup(&nodes, ino, Kind::Symlink, parent, name, what)?
                    {
                        return Ok(node);
                    }
                }
                let t =
                    rustix::fs::readlinkat(&fd, "", Vec::new()).map_err(|e| sys_err(what, e))?;
                match SymlinkTarget::parse(t.as_bytes(), &self.fsp, what) {
                    Ok(l) => {
                        let ctx = match &l {
                            SymlinkTarget::Encrypted { ctx, .. } => Some(*ctx),
                            SymlinkTarget::Plain { .. } => None,
                        };
                        self.remember_ino(&st, l.ino());
                        (
                            l.ino(),
                            Kind::Symlink,
                            State {
                                ctx,
                                link: Some(l),
                                ..State::default()
                            },
                        )
                    }
                    Err(e) => {
                        // Damaged: still an entry (stat, rename, unlink); readlink says EUCLEAN.
                        tracing::error!("{e}");
                        (self.per_mount_ino(&st)?, Kind::Symlink, State::corrupt(&e))
                    }
                }
            }
            other => {
                let t = match other {
                    rustix::fs::FileType::Fifo => fuser::FileType::NamedPipe,
                    rustix::fs::FileType::Socket => fuser::FileType::Socket,
                    rustix::fs::FileType::CharacterDevice => fuser::FileType::CharDevice,
                    rustix::fs::FileType::BlockDevice => fuser::FileType::BlockDevice,
                    _ => return Err(Error::corrupt(format!("{what}: unknown file type"))),
                };
                let recorded = self
                    .node(parent)
                    .ok()
                    .and_then(|d| self.read_specials(&d).get(bname));
                let ino = match recorded {
                    Some(i) => {
                        self.remember_ino(&st, i);
                        i
                    }
                    None => self.per_mount_ino(&st)?,
                };
                (ino, Kind::Special(t), State::default())
            }
        };
        let mut state = state;
        let transit = match self.claim_ino(ino, kind, parent, name, what)? {
            Claim::Cached(node) => return Ok(node),
            Claim::Ours(t) => t,
        };
        // The number is ours: nobody else loads or evicts it until the node is in the table.
        if state.layout == crate::store::meta::LAYOUT_EXTENT && state.corrupt.is_none() {
            match self.load_extent_state(&fd, state.ctx.as_ref(), what) {
                Ok(ext) => {
                    state.size = ext.file.logical_size();
                    state.ext = Some(ext);
                }
                Err(e) => {
                    // Like a damaged header: the entry can be stat'ed and deleted; open says EUCLEAN.
                    tracing::error!("{e}");
                    state.corrupt = Some(e.message().to_string());
                }
            }
        }
        let node = Node::looked_up(ino, kind, fd, state, parent, name);
        wlock(&self.nodes).insert(ino, Arc::clone(&node));
        drop(transit);
        Ok(node)
    }

    /// The lookup side of the node table: the cached node of `ino` with its lookup count raised
    /// (under the table lock, so a concurrent FORGET cannot evict it in between), or the number
    /// claimed for the caller to load and insert. While the number is in transit (being loaded by
    /// another lookup, or its evicted node still dropping its references) this waits: two nodes of
    /// one inode would mean two logs appending to one backing file.
    fn claim_ino(
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
    fn claim_new_ino(&self, ino: u64) -> TransitGuard<'_> {
        lock(&self.transit).insert(ino);
        TransitGuard { fs: self, ino }
    }

    /// Takes `ino` out of transit and wakes the lookups waiting for it.
    fn end_transit(&self, ino: u64) {
        lock(&self.transit).remove(&ino);
        self.transit_done.notify_all();
    }

    /// Records the stable number of a backing object (for readdir).
    fn remember_ino(&self, st: &rustix::fs::Stat, ino: u64) {
        lock(&self.known).insert((st.st_dev, st.st_ino), ino);
    }

    /// The number of a backing object without a stored one, assigned once per mount.
    fn per_mount_ino(&self, st: &rustix::fs::Stat) -> Result<u64> {
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
    fn known_ino(&self, dev: u64, backing_ino: u64) -> Option<u64> {
        lock(&self.known).get(&(dev, backing_ino)).copied()
    }

    /// Forgets a backing object that is being deleted (its backing number may be reused).
    fn forget_backing(&self, st: &rustix::fs::Stat) {
        if st.st_nlink <= 1 || rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() {
            lock(&self.known).remove(&(st.st_dev, st.st_ino));
        }
    }

    /// Inserts a node just created (lookup count 1), then ends its number's claim.
    #[allow(clippy::too_many_arguments)] // a node's parts, and the claim it ends
    fn insert_new(
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

    fn forget(&self, ino: u64, n: u64) {
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
    fn finish_eviction(&self, node: &Node) {
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
    fn path_of(&self, node: &Node) -> String {
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

    // ---- attributes ----

    fn attr(&self, node: &Node) -> Result<fuser::FileAttr> {
        let st = rustix::fs::fstat(node.fd()).map_err(|e| sys_err(self.describe(node), e))?;
        let (size, encrypted) = {
            let s = rlock(&node.state);
            let size = match node.kind {
                Kind::File => s.size,
                Kind::Symlink => self
                    .link_text_locked(node, &s)
                    .map(|t| t.len() as u64)
                    .unwrap_or(0),
                _ => st.st_size as u64,
            };
            (size, s.ctx.is_some())
        };
        let _ = encrypted;
        let ts = |s: i64, ns: i64| -> std::time::SystemTime {
            if s >= 0 {
                std::time::UNIX_EPOCH + Duration::new(s as u64, ns as u32)
            } else {
                std::time::UNIX_EPOCH - Duration::from_secs(s.unsigned_abs())
            }
        };
        Ok(fuser::FileAttr {
            ino: fuser::INodeNo(node.ino),
            size,
            blocks: st.st_blocks as u64,
            atime: ts(st.st_atime as i64, st.st_atime_nsec as i64),
            mtime: ts(st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime: ts(st.st_ctime as i64, st.st_ctime_nsec as i64),
            crtime: ts(st.st_ctime as i64, st.st_ctime_nsec as i64),
            kind: node.kind.file_type(),
            perm: (st.st_mode & 0o7777) as u16,
            nlink: st.st_nlink as u32,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev as u32,
            blksize: 4096,
            flags: 0,
        })
    }

    /// Only an encrypted symlink's attributes depend on the key (its size is the plaintext or the
    /// no-key target's length); everything else the kernel may cache like any attribute.
    fn attr_ttl(&self, node: &Node) -> Duration {
        if node.is_encrypted() && node.kind == Kind::Symlink {
            ENC_TTL
        } else {
            PLAIN_TTL
        }
    }

    fn entry_ttl(&self, dir: &Node) -> Duration {
        if dir.is_encrypted() {
            ENC_TTL
        } else {
            PLAIN_TTL
        }
    }

    /// A symlink's target as the caller sees it: plaintext with the key, the no-key form without.
    fn link_text_locked(&self, node: &Node, st: &State) -> Result<Vec<u8>> {
        match &st.link {
            Some(SymlinkTarget::Plain { target, .. }) => Ok(target.clone()),
            Some(SymlinkTarget::Encrypted { data, .. }) => match &st.key {
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

    fn readlink(&self, node: &Node) -> Result<Vec<u8>> {
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

    // ---- ownership of new inodes ----

    fn owner_for(&self, dir: &Node, req: &fuser::Request) -> (u32, u32) {
        let mut gid = req.gid();
        if let Ok(st) = rustix::fs::fstat(dir.fd()) {
            if st.st_mode & 0o2000 != 0 {
                gid = st.st_gid;
            }
        }
        (req.uid(), gid)
    }

    fn chown_new(&self, dirfd: &OwnedFd, bname: &OsStr, owner: (u32, u32)) -> Result<()> {
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

    // ---- key removal ----

    /// Inodes that count as busy: open ones and every directory above one.
    fn busy_set(&self) -> HashSet<u64> {
        let nodes = rlock(&self.nodes);
        let mut busy = HashSet::new();
        for n in nodes.values() {
            let open = lock(&n.meta).opens > 0;
            if !open {
                continue;
            }
            let mut cur = n.ino;
            for _ in 0..4096 {
                if !busy.insert(cur) || cur == ROOT_INO {
                    break;
                }
                let Some(p) = nodes.get(&cur) else { break };
                cur = lock(&p.meta).parent;
            }
        }
        busy
    }

    /// How a busy inode is reported: its number, owner (the backing object's, which is the owner
    /// users see), path and the pids holding it open.
    fn busy_inode(&self, node: &Node) -> BusyInode {
        let pids = lock(&node.meta).pids.clone();
        let owner = match rustix::fs::fstat(node.fd()) {
            Ok(st) => Some(st.st_uid),
            Err(e) => {
                // Unknown owner: the report shows the inode to root only.
                tracing::debug!("busy report: {}: {e}", self.describe(node));
                None
            }
        };
        BusyInode {
            ino: node.ino,
            owner,
            path: Some(self.path_of(node)),
            pids,
        }
    }

    /// The inodes keeping `spec` busy, as `caller` may see them (`FSCRYPTFS_IOC_BUSY_FILES`;
    /// the rule is [`BusyReport`]'s: root sees all, anyone else its own inodes and processes).
    fn busy_report(&self, caller: Caller, spec: &KeySpec) -> BusyReport {
        let busy: Vec<BusyInode> = self
            .keyring
            .active_inodes(spec)
            .into_iter()
            .map(|ino| match rlock(&self.nodes).get(&ino).cloned() {
                Some(node) => self.busy_inode(&node),
                None => BusyInode {
                    ino,
                    ..BusyInode::default()
                },
            })
            .collect();
        BusyReport::for_caller(caller, busy, &process_uids)
    }

    /// The [`InodeLocker`](fscrypt::keyring::InodeLocker): locks every listed inode that is not
    /// busy, invalidates the kernel's caches of them (after releasing every lock), and reports the
    /// busy ones.
    fn lock_inodes(&self, _spec: &KeySpec, inos: &[u64]) -> Vec<BusyInode> {
        // RELEASE follows close() asynchronously: give handles already FLUSHed a moment to go.
        // Nodes being evicted right now drop their references within moments: wait for them too.
        let deadline = std::time::Instant::now() + RELEASE_WAIT;
        loop {
            // One lock at a time: `transit` is taken under the table lock elsewhere.
            let evicting = inos.iter().any(|i| lock(&self.transit).contains(i));
            let pending = evicting
                || inos.iter().any(|i| {
                    rlock(&self.nodes).get(i).is_some_and(|n| {
                        let m = lock(&n.meta);
                        m.opens > 0 && m.flushed >= m.opens
                    })
                });
            if !pending || std::time::Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let busy = self.busy_set();
        let mut reported = Vec::new();
        let mut dropped: Vec<(Option<Arc<InodeKey>>, Option<ActiveRef>)> = Vec::new();
        let mut locked_dirs = HashSet::new();
        let mut inval_inodes = Vec::new();
        for &ino in inos {
            let Some(node) = rlock(&self.nodes).get(&ino).cloned() else {
                continue;
            };
            if busy.contains(&ino) {
                reported.push(self.busy_inode(&node));
                continue;
            }
            let mut st = wlock(&node.state);
            if lock(&node.meta).opens > 0 {
                // Opened since the busy set was taken (`do_open` counts an open before it
                // takes the key): busy.
                drop(st);
                reported.push(self.busy_inode(&node));
                continue;
            }
            if let Err(e) = self.ext_writeout_locked(&node, &mut st, true) {
                // Accepted data that cannot be written out keeps the inode busy (SEMANTICS.md §3).
                tracing::error!("{e}");
                drop(st);
                reported.push(self.busy_inode(&node));
                continue;
            }
            dropped.push(st.take_keys());
            drop(st);
            if node.kind == Kind::Dir {
                locked_dirs.insert(ino);
            }
            inval_inodes.push(ino);
        }
        // Entries the kernel holds by plaintext name in directories now locked.
        let mut inval_entries = Vec::new();
        for n in rlock(&self.nodes).values() {
            let m = lock(&n.meta);
            if n.ino != ROOT_INO && locked_dirs.contains(&m.parent) {
                inval_entries.push((m.parent, m.name.clone()));
            }
        }
        drop(dropped);
        if let Some(notifier) = self.notifier.get() {
            for (parent, name) in inval_entries {
                if let Err(e) = notifier.inval_entry(fuser::INodeNo(parent), &name) {
                    tracing::debug!("inval_entry({parent}): {e}");
                }
            }
            for ino in inval_inodes {
                if let Err(e) = notifier.inval_inode(fuser::INodeNo(ino), 0, 0) {
                    tracing::debug!("inval_inode({ino}): {e}");
                }
            }
        }
        reported
    }

    /// The caller of a request.
    fn caller(req: &fuser::Request) -> Caller {
        Caller {
            uid: req.uid(),
            privileged: req.uid() == 0,
        }
    }

    /// At the last close of a handle: if the inode's key is being removed, the inode locks itself
    /// (drops its key and active reference; the keyring wipes the secret once nothing else holds it).
    fn maybe_lock_after_close(&self, node: &Node) {
        if lock(&node.meta).opens > 0 || self.busy_set().contains(&node.ino) {
            return;
        }
        {
            let mut st = wlock(&node.state);
            if !st.active.as_ref().is_some_and(|a| a.removal_started()) {
                return;
            }
            // Re-checked under the state lock, as `lock_inodes` does: an open that raced with this
            // close has counted itself before taking the key, so it keeps the inode unlocked (its
            // handle must not be left without the key reference its writes need).
            if lock(&node.meta).opens > 0 {
                return;
            }
            // Per-extent files: nothing accepted may be left behind by the key (RELEASE wrote the
            // buffer out; if that failed, try once more and stay unlocked on failure).
            if let Err(e) = self.ext_writeout_locked(node, &mut st, true) {
                tracing::error!("{e}");
                return;
            }
            // Dropped under the state lock (node state, then keyring locks: the documented
            // order): a removal racing with this RELEASE either finds the reference here and takes
            // it itself, or waits for the lock and finds it gone. Dropping it after the lock left a
            // window in which the reference was detached but still counted, and the racing
            // removal reported a file that was already closed as busy (generic/580's loop).
            let (key, active) = st.take_keys();
            drop(active);
            drop(key);
        }
        if let Some(n) = self.notifier.get() {
            let _ = n.inval_inode(fuser::INodeNo(node.ino), 0, 0);
        }
    }

    /// Key status for `spec` as `caller` sees it.
    fn key_status(&self, caller: Caller, spec: KeySpec) -> KeyStatus {
        self.keyring.status(caller, spec)
    }

    /// Flushes every dirty size (unmount).
    pub fn flush_all(&self) {
        let nodes: Vec<Arc<Node>> = rlock(&self.nodes).values().cloned().collect();
        for n in nodes {
            if n.kind == Kind::File {
                if let Err(e) = self.flush_size(&n, None, false) {
                    tracing::error!("{e}");
                }
            }
        }
        if let Err(e) = self.inos.release_unused() {
            tracing::error!("{e}");
        }
    }
}

impl Node {
    /// The directory descriptor for `*at` calls (an `O_PATH` descriptor works for them).
    fn fd_dir(&self) -> Result<Arc<OwnedFd>> {
        if self.kind != Kind::Dir {
            return Err(errno(Errno::NOTDIR, "not a directory"));
        }
        Ok(self.fd())
    }
}

/// Reads and parses a directory's `.fscryptfs.dir`.
fn read_dir_meta(dirfd: &impl AsFd, fsp: &FsParams, what: &str) -> Result<DirMeta> {
    let what = format!("{what}/{DIR_META_NAME}");
    let b = store_io::read_bounded(dirfd, OsStr::new(DIR_META_NAME), DIR_META_SIZE, &what)?
        .ok_or_else(|| Error::corrupt(format!("{what}: directory metadata is missing")))?;
    DirMeta::parse(&b, fsp, &what)
}

/// Writes a new directory's metadata file.
fn write_dir_meta(dirfd: &impl AsFd, meta: &DirMeta, what: &str) -> Result<()> {
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
fn new_file_header(ino: u64, ctx: Option<&Context>) -> Vec<u8> {
    let h = FileHeader {
        layout: LAYOUT_PER_FILE,
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

/// The longest prefix of `/proc/PID/status` read: its `Uid:` line comes within the first few
/// hundred bytes.
const PROC_STATUS_MAX: u64 = 4096;

/// The uids of process `pid` (`/proc/PID/status`, read with a bound); None when it is gone or the
/// line cannot be read (the busy report then drops the pid).
fn process_uids(pid: u32) -> Option<ProcessUids> {
    use std::io::Read;
    let f = File::open(format!("/proc/{pid}/status")).ok()?;
    let mut text = Vec::new();
    f.take(PROC_STATUS_MAX).read_to_end(&mut text).ok()?;
    parse_status_uids(&text)
}

/// The real, effective and saved uids of a `/proc/PID/status` text (`Uid:\tR\tE\tS\tFS`).
fn parse_status_uids(text: &[u8]) -> Option<ProcessUids> {
    let line = text
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"Uid:"))?;
    let line = std::str::from_utf8(line).ok()?;
    let mut ids = line.split_ascii_whitespace().map(str::parse::<u32>);
    let mut next = || ids.next()?.ok();
    Some(ProcessUids {
        real: next()?,
        effective: next()?,
        saved: next()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_report_reads_the_uid_line_of_proc_status() {
        let text = b"Name:\tcat\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t7\n\
                     Uid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(
            parse_status_uids(text),
            Some(ProcessUids {
                real: 1000,
                effective: 0,
                saved: 0
            })
        );
        assert_eq!(parse_status_uids(b"Name:\tx\n"), None);
        assert_eq!(parse_status_uids(b"Uid:\t1000\t0\n"), None);
        assert_eq!(parse_status_uids(b"Uid:\t1000\tx\t0\t0\n"), None);
        // This process exists and is ours.
        let me = process_uids(std::process::id()).expect("own status");
        assert_eq!(me.real, rustix::process::getuid().as_raw());
    }
}
