//! The table of open files and directories: `Handle` (the node, the backing file opened for I/O,
//! the key fixed at open, the opener, a directory's listing) and `HandleTable` (handles by number;
//! adding one counts the open in the node's `meta`). The operations on handles are `fs::handles`.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use fscrypt::keysetup::InodeKey;
use fscrypt::{Errno, Result};

use super::locks::{lock, rlock, wlock};
use super::node::Node;
use super::read_order::ReadOrder;
use super::types::{errno, DirEnt};

/// An open file or directory.
pub struct Handle {
    pub(super) node: Arc<Node>,
    /// Regular files: the backing file, opened read-write where possible (swapped with the node's
    /// descriptor by compaction of a per-extent file).
    pub(super) file: RwLock<Option<Arc<File>>>,
    /// Regular files: the key, fixed at open (None for unencrypted files).
    pub(super) key: Option<Arc<InodeKey>>,
    /// The opening process.
    pub(super) pid: u32,
    /// FLUSH seen since the last read or write.
    pub(super) flushed: AtomicBool,
    /// Directories: the listing taken at offset 0.
    pub(super) entries: Mutex<Vec<DirEnt>>,
    /// Regular files on a backing store whose requests are round trips: the gate that takes large
    /// reads to it in order (`fs::read_order`).
    pub(super) reads: ReadOrder,
}

impl Handle {
    /// The backing file of a regular-file handle.
    pub(super) fn file(&self) -> Option<Arc<File>> {
        rlock(&self.file).clone()
    }
}

/// The open handles by number, and the next number.
pub(super) struct HandleTable {
    map: RwLock<HashMap<u64, Arc<Handle>>>,
    next_fh: AtomicU64,
}

impl Default for HandleTable {
    fn default() -> Self {
        HandleTable {
            map: RwLock::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        }
    }
}

impl HandleTable {
    /// The handle `fh` (EBADF when there is none).
    pub(super) fn get(&self, fh: u64) -> Result<Arc<Handle>> {
        rlock(&self.map)
            .get(&fh)
            .cloned()
            .ok_or_else(|| errno(Errno::BADF, format!("no open handle {fh}")))
    }

    /// Adds a handle of `node`, counting the open in its `meta.opens`.
    pub(super) fn add(
        &self,
        node: &Arc<Node>,
        file: Option<File>,
        key: Option<Arc<InodeKey>>,
        pid: u32,
    ) -> u64 {
        lock(&node.meta).opens += 1;
        self.add_reserved(node, file, key, pid)
    }

    /// Adds a handle whose open was already counted in `meta.opens` (`do_open` counts it before
    /// taking the key, so the locker never takes the key of an inode being opened: a handle whose
    /// inode had lost its reference would accept writes it cannot write out).
    pub(super) fn add_reserved(
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
            flushed: AtomicBool::new(false),
            entries: Mutex::new(Vec::new()),
            reads: ReadOrder::default(),
        };
        wlock(&self.map).insert(fh, Arc::new(h));
        fh
    }

    /// Takes handle `fh` out of the table (RELEASE).
    pub(super) fn remove(&self, fh: u64) -> Option<Arc<Handle>> {
        wlock(&self.map).remove(&fh)
    }

    /// The open handles of `node`.
    pub(super) fn of_node(&self, node: &Node) -> Vec<Arc<Handle>> {
        rlock(&self.map)
            .values()
            .filter(|h| std::ptr::eq(&*h.node, node))
            .cloned()
            .collect()
    }
}
