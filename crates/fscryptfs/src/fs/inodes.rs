//! The inode table: `Inodes` holds the nodes the kernel knows by number (with their lookup counts
//! raised and lowered here), the "transit" set of numbers between the table and the outside (being
//! loaded by a lookup, or evicted and still dropping their keys), the map of backing identities to
//! stable inode numbers (readdir's `d_ino`, per-mount numbers of objects without a stored one), and
//! the inode-number allocator. Eviction's second half (writing a dirty size, dropping the key) needs
//! the contents room and lives in `fs::mount`; this room imports only `node`, `locks` and `types`.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex, RwLock};

use fscrypt::{Errno, Error, Result};

use super::locks::{lock, rlock, wlock};
use super::node::{check_usable, Kind, Node, State};
use super::recall::Recall;
use super::types::errno;
use crate::store::config::{InoAllocator, ROOT_INO};

/// The nodes by inode number.
pub(super) type NodeTable = RwLock<HashMap<u64, Arc<Node>>>;

/// The inode table and what goes with it.
pub(super) struct Inodes {
    /// The node table (shared, weakly, with the writeout thread).
    pub(super) table: Arc<NodeTable>,
    /// Stable inode numbers by backing identity (st_dev, st_ino), for every object seen this mount:
    /// readdir reports them without opening entries. For special files and regular files with a
    /// corrupt header (no stored number) it is where their per-mount number is assigned.
    known: Mutex<HashMap<(u64, u64), u64>>,
    /// Inode numbers between the table and the outside: nodes taken out of `table` whose key is
    /// not dropped yet (`Fs::finish_eviction`), and nodes a lookup is loading (`claim_ino`).
    /// Lookups of such a number wait for `transit_done`; key removal waits for them. A leaf lock,
    /// taken under the table lock.
    transit: Mutex<HashSet<u64>>,
    transit_done: Condvar,
    /// The volume's inode-number allocator.
    pub(super) inos: InoAllocator,
    /// What evicted regular-file nodes knew of their files, for the next lookup of the same,
    /// unchanged backing object (`fs::recall`).
    pub(super) recall: Recall,
}

/// What `Inodes::claim_ino` found.
pub(super) enum Claim<'a> {
    /// The node in the table (its lookup count raised).
    Cached(Arc<Node>),
    /// The number is the caller's to load and insert; dropping the guard ends the claim.
    Ours(TransitGuard<'a>),
    /// The number was in transit, and is no longer: what the caller read of the object before
    /// may predate what the evicted node wrote on its way out; read it again and claim again.
    Retry,
}

/// A number in `Inodes::transit`, taken out again (and its waiters woken) on drop.
pub(super) struct TransitGuard<'a> {
    pub(super) inodes: &'a Inodes,
    pub(super) ino: u64,
}

impl Drop for TransitGuard<'_> {
    fn drop(&mut self) {
        self.inodes.end_transit(self.ino);
    }
}

/// The node of `ino` in the (locked) table, with its lookup count raised and its name updated.
pub(super) fn cached_lookup(
    nodes: &HashMap<u64, Arc<Node>>,
    ino: u64,
    kind: Kind,
    parent: u64,
    name: &OsStr,
    what: &(impl std::fmt::Display + ?Sized),
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

impl Inodes {
    /// A table holding the root node `root`, numbers from `inos`.
    pub(super) fn new(root: Node, inos: InoAllocator) -> Inodes {
        let mut table = HashMap::new();
        table.insert(root.ino, Arc::new(root));
        Inodes {
            table: Arc::new(RwLock::new(table)),
            known: Mutex::new(HashMap::new()),
            transit: Mutex::new(HashSet::new()),
            transit_done: Condvar::new(),
            inos,
            recall: Recall::default(),
        }
    }

    pub(super) fn node(&self, ino: u64) -> Result<Arc<Node>> {
        rlock(&self.table)
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
    /// another lookup, or its evicted node still dropping its references and writing a dirty size)
    /// this waits: two nodes of one inode would mean two logs appending to one backing file. After
    /// a wait it answers `Retry` unless the node is now in the table: the caller's reading of the
    /// object came before the evicted node's last writes.
    pub(super) fn claim_ino(
        &self,
        ino: u64,
        kind: Kind,
        parent: u64,
        name: &OsStr,
        what: &(impl std::fmt::Display + ?Sized),
    ) -> Result<Claim<'_>> {
        loop {
            let nodes = wlock(&self.table);
            if let Some(node) = cached_lookup(&nodes, ino, kind, parent, name, what)? {
                return Ok(Claim::Cached(node));
            }
            let mut transit = lock(&self.transit);
            if transit.insert(ino) {
                return Ok(Claim::Ours(TransitGuard { inodes: self, ino }));
            }
            drop(nodes);
            // Woken when any number leaves transit; the table is looked at again.
            let transit = transit.wait(&self.transit_done);
            if !transit.contains(&ino) {
                drop(transit);
                let cached = cached_lookup(&wlock(&self.table), ino, kind, parent, name, what)?;
                if let Some(node) = cached {
                    return Ok(Claim::Cached(node));
                }
                return Ok(Claim::Retry);
            }
        }
    }

    /// Claims a newly allocated number until its node is inserted (`insert_new`).
    pub(super) fn claim_new_ino(&self, ino: u64) -> TransitGuard<'_> {
        lock(&self.transit).insert(ino);
        TransitGuard { inodes: self, ino }
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

    /// The name `name` in directory `parent` of the backing object `st` is gone (unlinked): the
    /// kernel drops its entry, so a key change need not make it forget it.
    pub(super) fn name_removed(&self, st: &rustix::fs::Stat, parent: u64, name: &OsStr) {
        let Some(ino) = self.known_ino(st.st_dev, st.st_ino) else {
            return;
        };
        if let Some(node) = rlock(&self.table).get(&ino) {
            let mut m = lock(&node.meta);
            m.cached_names.retain(|(p, n)| !(*p == parent && n == name));
            let is_dir = rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir();
            if st.st_nlink <= 1 && !is_dir {
                let mut gone = *st;
                gone.st_nlink = 0;
                m.removed = Some(gone);
            }
        }
    }

    /// Forgets a backing object that is being deleted (its backing number may be reused).
    pub(super) fn forget_backing(&self, st: &rustix::fs::Stat) {
        self.recall.drop_entry(st);
        if st.st_nlink <= 1 || rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() {
            lock(&self.known).remove(&(st.st_dev, st.st_ino));
        }
    }

    /// Inserts a node just created (lookup count 1), then ends its number's claim. `st`: a `stat`
    /// of its backing object the caller already has (else one is taken here), for its backing
    /// identity.
    #[allow(clippy::too_many_arguments)] // a node's parts, and the claim it ends
    pub(super) fn insert_new(
        &self,
        fd: OwnedFd,
        st: Option<&rustix::fs::Stat>,
        ino: u64,
        kind: Kind,
        state: State,
        parent: u64,
        name: &OsStr,
        transit: TransitGuard<'_>,
    ) -> Arc<Node> {
        let taken = match st {
            Some(_) => None,
            None => rustix::fs::fstat(&fd).ok(),
        };
        let st = st.or(taken.as_ref());
        let node = Node::looked_up(ino, kind, fd, state, parent, name);
        if let Some(st) = st {
            self.remember_ino(st, ino);
            node.set_ident(st);
        }
        wlock(&self.table).insert(ino, Arc::clone(&node));
        drop(transit);
        node
    }

    /// FORGET's side of the table: lowers the lookup count of `ino` by `n`; a node neither looked
    /// up nor open is taken out of the table and put in transit, and returned for the caller to
    /// finish its eviction (`Fs::finish_eviction`).
    pub(super) fn unlist_forgotten(&self, ino: u64, n: u64) -> Option<Arc<Node>> {
        if ino == ROOT_INO {
            return None;
        }
        let mut nodes = wlock(&self.table);
        let node = nodes.get(&ino).cloned()?;
        let drop_it = {
            let mut m = lock(&node.meta);
            m.lookups = m.lookups.saturating_sub(n);
            if m.lookups == 0 {
                m.cached_names.clear();
            }
            m.lookups == 0 && m.opens == 0
        };
        if drop_it {
            nodes.remove(&ino);
            lock(&self.transit).insert(ino);
        }
        drop(nodes);
        drop_it.then_some(node)
    }

    /// RELEASE's side of the table: when `node` is still the table's node of its number and is
    /// neither looked up nor open, takes it out and puts it in transit (true: the caller finishes
    /// its eviction).
    pub(super) fn unlist_if_unused(&self, node: &Arc<Node>) -> bool {
        let mut nodes = wlock(&self.table);
        let mut evict = false;
        if nodes.get(&node.ino).is_some_and(|n| Arc::ptr_eq(n, node)) {
            let m = lock(&node.meta);
            if m.opens == 0 && m.lookups == 0 {
                drop(m);
                nodes.remove(&node.ino);
                lock(&self.transit).insert(node.ino);
                evict = true;
            }
        }
        evict
    }

    /// Whether `ino` is in transit (being loaded, or evicted and still dropping its key).
    pub(super) fn in_transit(&self, ino: u64) -> bool {
        lock(&self.transit).contains(&ino)
    }

    /// A backing object was replaced by another (compaction): its stable number `ino` now belongs
    /// to backing identity `new`, no longer to `old`.
    pub(super) fn rebind_backing(&self, old: (u64, u64), new: Option<(u64, u64)>, ino: u64) {
        let mut known = lock(&self.known);
        known.remove(&old);
        if let Some(k) = new {
            known.insert(k, ino);
        }
    }

    /// The path of a node from the mount root, as far as known.
    pub(super) fn path_of(&self, node: &Node) -> String {
        let mut parts = Vec::new();
        let mut cur = node.ino;
        let nodes = rlock(&self.table);
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
