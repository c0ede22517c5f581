//! The mounted filesystem: the `Fs` object with its tables and options, its construction, the
//! read-only switch, STATFS, and the final flush at unmount.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::time::Duration;

use fscrypt::keyring::Keyring;
use fscrypt::policy::FsParams;
use fscrypt::{Errno, Error, Result};

use super::backing::read_dir_meta;
use super::contents;
use super::handles::Handle;
use super::locks::rlock;
use super::node::{Keys, Kind, Meta, Node, State};
use super::types::{errno, KernelCache};
use crate::store::config::{ContentsLayout, InoAllocator, ROOT_INO};
use crate::store::io as store_io;
use crate::store::meta::DIR_META_NAME;
use crate::store::sys_err;

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
    pub(super) backing: PathBuf,
    pub(super) fsp: FsParams,
    pub(super) uuid: [u8; 16],
    pub(super) keyring: Keyring,
    pub(super) inos: InoAllocator,
    pub(super) opts: FsOptions,
    /// The node table (shared, weakly, with the writeout thread).
    pub(super) nodes: Arc<RwLock<HashMap<u64, Arc<Node>>>>,
    /// Bytes buffered by per-extent files, all together (`contents::budget`).
    pub(super) budget: Arc<contents::Budget>,
    /// Stable inode numbers by backing identity (st_dev, st_ino), for every object seen this mount:
    /// readdir reports them without opening entries. For special files and regular files with a
    /// corrupt header (no stored number) it is where their per-mount number is assigned.
    pub(super) known: Mutex<HashMap<(u64, u64), u64>>,
    pub(super) handles: RwLock<HashMap<u64, Arc<Handle>>>,
    /// Inode numbers between the table and the outside: nodes taken out of `nodes` whose key is not
    /// dropped yet (`finish_eviction`), and nodes a lookup is loading (`claim_ino`). Lookups of
    /// such a number wait for `transit_done`; key removal waits for them. A leaf lock, taken under
    /// the table lock.
    pub(super) transit: Mutex<HashSet<u64>>,
    pub(super) transit_done: Condvar,
    pub(super) next_fh: AtomicU64,
    pub(super) notifier: Arc<OnceLock<Box<dyn KernelCache>>>,
    /// The daemon runs as root: new inodes are chowned to their creator.
    pub(super) is_root: bool,
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
            budget: Arc::new(contents::Budget::default()),
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

    /// Starts the background writeout of per-extent buffers (`contents::writeout`: age and memory).
    pub fn start_writeout(&self) -> Result<()> {
        contents::writeout::start(
            Arc::downgrade(&self.nodes),
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

    /// STATFS: the backing filesystem's.
    pub(super) fn do_statfs(&self) -> Result<rustix::fs::StatVfs> {
        let root = self.node(crate::store::config::ROOT_INO)?;
        rustix::fs::fstatvfs(root.fd()).map_err(|e| sys_err(self.backing.display(), e))
    }
}
