//! The mounted filesystem: the `Fs` object with its tables and options, its construction, the
//! read-only switch, STATFS, the contents [`Engine`] the operations use, eviction's second half
//! (FORGET, last RELEASE) and the final flush at unmount. Below the operation rooms: it imports
//! the tables (`inodes`, `handle_table`), `node` and `contents`, never an operation room.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use fscrypt::keyring::Keyring;
use fscrypt::policy::FsParams;
use fscrypt::{Errno, Error, Result};

use super::contents::{self, Engine, FlushFor};
use super::handle_table::HandleTable;
use super::inodes::Inodes;
use super::locks::{lock, rlock, wlock};
use super::node::budget::Budget;
use super::node::{Keys, Kind, Meta, Node, State};
use super::recall::{self, Recalled};
use super::types::{errno, KernelCache};
use crate::store::config::{ContentsLayout, InoAllocator, ROOT_INO};
use crate::store::io as store_io;
use crate::store::meta::{read_dir_meta_at, DIR_META_NAME};
use crate::store::pending::CacheEpoch;
use crate::store::sys_err;
use crate::store::walked::WalkedStat;

/// Slow lookup groups in a row that make a mount look names up in parallel from then on (`handles`).
/// One is not enough: a cold cache or a busy host makes a single group of a local filesystem slow
/// now and then, and eight threads on a local filesystem cost more than they save.
pub(super) const SLOW_GROUPS: u32 = 4;

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
    /// What the backing filesystem offers (probed at mount; `store::features`).
    pub features: crate::store::features::BackingFeatures,
}

/// The filesystem.
pub struct Fs {
    pub(super) backing: PathBuf,
    pub(super) fsp: FsParams,
    pub(super) uuid: [u8; 16],
    pub(super) keyring: Keyring,
    pub(super) opts: FsOptions,
    /// The inode table (nodes, transit, stable numbers, the allocator).
    pub(super) inodes: Inodes,
    /// Bytes buffered by per-extent files, all together (`node::budget`).
    pub(super) budget: Arc<Budget>,
    /// Lookup groups in a row found slow (the backing calls are round trips); from
    /// [`SLOW_GROUPS`] on, READDIRPLUS looks names up in parallel (`handles`). A backing store on
    /// a network or FUSE filesystem starts there.
    pub(super) slow_lookups: std::sync::atomic::AtomicU32,
    /// The threads that do it, started the first time (None: they could not be started, and the
    /// names are looked up one after another).
    pub(super) lookup_pool: OnceLock<Option<rayon::ThreadPool>>,
    /// The backing store is on a filesystem whose every request is a round trip (a network or
    /// FUSE filesystem): a handle's large reads reach it in order (`fs::read_order`).
    pub(super) round_trips: bool,
    /// How the attributes of an object just reached by name are taken (`store::walked`): the
    /// kernel's copy, which the walk refreshed, but on a kernel network client.
    pub(super) walked: WalkedStat,
    /// The open files and directories.
    pub(super) handles: HandleTable,
    pub(super) notifier: Arc<OnceLock<Box<dyn KernelCache>>>,
    /// The daemon runs as root: new inodes are chowned to their creator.
    pub(super) is_root: bool,
    /// The backing store's cache epoch (`store::pending`), when the kernel says one.
    pub(super) epoch: Option<CacheEpoch>,
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
        let round_trips = crate::store::features::is_round_trip_filesystem(&root_fd);
        let walked = WalkedStat::of_filesystem(&root_fd);
        let meta = read_dir_meta_at(&root_fd, &fsp, &backing)?;
        let epoch = CacheEpoch::of(&root_fd);
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
            ident: Mutex::new(None),
            state: RwLock::new(State::Dir {
                keys: Keys::locked(meta.ctx),
            }),
            meta: Mutex::new(Meta {
                lookups: u64::MAX / 2,
                parent: ROOT_INO,
                ..Meta::default()
            }),
            dir_lock: Mutex::new(()),
        };
        Ok(Fs {
            slow_lookups: std::sync::atomic::AtomicU32::new(if round_trips {
                SLOW_GROUPS
            } else {
                0
            }),
            lookup_pool: OnceLock::new(),
            round_trips,
            walked,
            backing,
            fsp,
            uuid,
            keyring,
            opts,
            inodes: Inodes::new(root, inos),
            budget: Arc::new(Budget::default()),
            handles: HandleTable::default(),
            notifier: Arc::new(OnceLock::new()),
            is_root: rustix::process::geteuid().is_root(),
            epoch,
        })
    }

    /// The contents room's view of this filesystem (`fs::contents`): what reading, writing and
    /// writing out a regular file needs, and nothing of the operation rooms.
    pub(super) fn contents(&self) -> Engine<'_> {
        Engine {
            fsp: &self.fsp,
            backing: &self.backing,
            inodes: &self.inodes,
            handles: &self.handles,
            budget: &self.budget,
            layout: self.opts.layout,
            read_only: self.opts.read_only,
            round_trips: self.round_trips,
            pending_sizes: self
                .epoch
                .as_ref()
                .filter(|_| self.opts.commit.is_some() && !self.opts.read_only),
        }
    }

    /// FORGET: lowers the lookup count; a node neither looked up nor open is evicted.
    pub(super) fn forget(&self, ino: u64, n: u64) {
        if let Some(node) = self.inodes.unlist_forgotten(ino, n) {
            self.finish_eviction(&node);
        }
    }

    /// The second half of evicting a node already taken out of the table (and in transit):
    /// writes a dirty size, drops its key and `ActiveRef` now (not whenever the last `Arc` goes),
    /// then ends its transit. A key removal that cannot find the node in the table waits for
    /// this, so it never counts a reference that is on its way out as busy.
    pub(super) fn finish_eviction(&self, node: &Node) {
        if node.kind == Kind::File {
            match self.contents().flush_size(node, None, FlushFor::Evict) {
                Ok(()) => self.recall_evicted(node),
                Err(e) => tracing::error!("{e}"),
            }
        }
        {
            let mut st = wlock(&node.state);
            let (key, active) = st.take_keys();
            drop(active);
            drop(key);
        }
        self.inodes.end_transit(node.ino);
    }

    /// Remembers an evicted file's header (`fs::recall`): a per-file file's once its size is
    /// committed, a per-extent file's log as the node leaves it once everything is written out and
    /// committed (the eviction's flush did that, unless an error stopped it) — unless it has no
    /// name left (nobody can look it up) or its metadata is damaged. The file's `fstat` taken
    /// here is what a later lookup must find unchanged: since the flush nothing of this mount has
    /// written to it (the node is out of the table, with no handle), so the log put back then is
    /// the one the node would have had, had it stayed. A log this node did not write to is kept
    /// only if the file is also unchanged since the node read it (`ExtState::loaded`): what
    /// changed behind the mount meanwhile is read at the next lookup. Before the eviction ends: a
    /// lookup waiting for it then finds the entry.
    fn recall_evicted(&self, node: &Node) {
        // What there is to remember, from the state alone (no backing call for the rest).
        let (size, log, ctx) = {
            let s = rlock(&node.state);
            let (size, log) = match (s.per_file(), s.ext()) {
                (Some(p), _) if !p.size_dirty && p.uncommitted.is_none() => (p.size, None),
                (_, Some(e)) if e.buf.is_empty() && !e.file.uncommitted() => {
                    let Some(snap) = e.file.snapshot() else {
                        return;
                    };
                    // Read and not written since: the file as it was read.
                    let read_as = e
                        .loaded
                        .filter(|(_, mark)| *mark == e.file.mark())
                        .map(|(st, _)| st);
                    (0, Some((Arc::new(snap), read_as)))
                }
                _ => return,
            };
            (size, log, s.ctx())
        };
        if lock(&node.meta).removed.is_some() {
            return;
        }
        // One `fstat`: a name left (the link count), and for a log, unchanged since its replay.
        let Ok(now) = rustix::fs::fstat(node.fd()) else {
            return;
        };
        if now.st_nlink == 0 {
            return;
        }
        let log = match log {
            Some((_, Some(then))) if !recall::unchanged(&then, &now) => return,
            Some((snap, _)) => Some(snap),
            None => None,
        };
        let header = Recalled {
            ino: node.ino,
            size,
            ctx,
            log,
        };
        self.inodes.recall.remember(&now, header);
    }

    /// Whether the mount asks for the FUSE writeback cache.
    pub fn writeback_cache(&self) -> bool {
        self.opts.writeback_cache
    }

    /// Starts the background writeout of per-extent buffers (`contents::writeout`: age and memory).
    pub fn start_writeout(&self) -> Result<()> {
        contents::writeout::start(
            Arc::downgrade(&self.inodes.table),
            Arc::clone(&self.budget),
            self.opts.commit,
        )
    }

    /// Where the session's notifier goes once the session exists.
    pub fn notifier_cell(&self) -> Arc<OnceLock<Box<dyn KernelCache>>> {
        Arc::clone(&self.notifier)
    }

    pub(super) fn check_writable(&self) -> Result<()> {
        if self.opts.read_only {
            return Err(errno(Errno::ROFS, "read-only mount"));
        }
        Ok(())
    }

    /// Flushes every dirty size (unmount).
    pub fn flush_all(&self) {
        let nodes: Vec<Arc<Node>> = rlock(&self.inodes.table).values().cloned().collect();
        for n in nodes {
            if n.kind == Kind::File {
                if let Err(e) = self.contents().flush_size(&n, None, FlushFor::Unmount) {
                    tracing::error!("{e}");
                }
            }
        }
        if let Err(e) = self.inodes.inos.release_unused() {
            tracing::error!("{e}");
        }
    }

    /// STATFS: the backing filesystem's.
    pub(super) fn do_statfs(&self) -> Result<rustix::fs::StatVfs> {
        let root = self.inodes.node(ROOT_INO)?;
        rustix::fs::fstatvfs(root.fd()).map_err(|e| sys_err(self.backing.display(), e))
    }
}
