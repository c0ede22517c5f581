//! The per-inode state of a per-extent regular file ([`ExtState`]): its open log
//! (`store::extent::ExtentFile`), the logical size, the write buffer of whole plaintext data units
//! (counted in the volume-wide [`Budget`]), and the LRU cache of extent keys derived through the
//! inode's `ActiveRef`; and [`writeout_locked`], which turns the buffer into new extents under the
//! node's `state` lock (every writeout, foreground or background, is this function). The
//! operations on it (read, write, truncate, clone, compaction) are `fs::contents::per_extent`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use fscrypt::context::Context;
use fscrypt::extent::{ExtentContext, ExtentKey, EXTENT_CONTEXT_SIZE};
use fscrypt::keyring::{ActiveRef, SecretNeed};
use fscrypt::policy::Policy;
use fscrypt::{Errno, Error, Result};

use super::budget::Budget;
use super::{FileContents, Keys, Kind, State, Unlocked};
use crate::fs::locks::lock;
use crate::fs::types::errno;
use crate::store::extent::{ExtentFile, LogMark, SealedExtent, EXTENT_MAX};

/// Most plaintext buffered per inode before a writeout is forced.
pub(in crate::fs) const BUFFER_MAX: u64 = 4 << 20;

/// The smallest write of whole data units that goes straight to the log
/// ([`WriteThrough`]); smaller ones are buffered, to be joined with their neighbours.
pub(in crate::fs) const WRITE_THROUGH_MIN: u64 = 128 << 10;

/// Extent keys kept per open inode.
const KEY_CACHE_MAX: usize = 256;

/// The open log of a per-extent file and its write buffer.
pub(in crate::fs) struct ExtState {
    pub(in crate::fs) file: ExtentFile,
    /// The logical size: the log's, or beyond it by buffered writes.
    pub(in crate::fs) size: u64,
    pub(in crate::fs) du: u64,
    /// Buffered whole units of plaintext by unit index (bytes beyond the size are zero).
    pub(in crate::fs) buf: BTreeMap<u64, Vec<u8>>,
    /// When the buffer last went from empty to not empty (the writeout timer's clock).
    dirty_since: Option<Instant>,
    /// Since when (as the writeout thread first saw it) the log has records no commit covers;
    /// None once committed. Behind a mutex: the thread notes it under the state's read lock.
    uncommitted_since: Mutex<Option<Instant>>,
    /// When a background writeout of this buffer last failed (the thread waits before retrying).
    pub(in crate::fs) background_failed: Option<Instant>,
    /// The volume-wide count of buffered bytes this buffer adds to.
    budget: Arc<Budget>,
    /// Keys of this file's extents, derived once each while the inode holds its `ActiveRef`
    /// (emptied whenever the reference is dropped: `State::take_keys`).
    pub(in crate::fs) keys: Mutex<KeyCache>,
    /// When this node took its log from the file (a replay or a recall, at lookup): the lookup's
    /// `fstat` and the log's mark then. An eviction that finds the mark unchanged (this node wrote
    /// nothing) keeps the log for `fs::recall` only if the file is unchanged since that `fstat`
    /// too, so that a change made behind the mount meanwhile is read at the next lookup. None
    /// for a file this node created.
    pub(in crate::fs) loaded: Option<(rustix::fs::Stat, LogMark)>,
    /// On a backing store whose requests are round trips, large writes sealed side by side are
    /// appended in the file's order through this gate (`fs::read_order`), so that a sequential
    /// writer's log is in the order a sequential reader reads it.
    pub(in crate::fs) appends: Arc<crate::fs::read_order::ReadOrder>,
}

/// A least-recently-used cache of extent keys by extent context (mode, key identifier, nonce: the
/// inputs of the derivation, so a cloned extent shares its source's entry). Each key is a
/// `PreparedKey` in locked memory, wiped when its last `Arc` drops.
#[derive(Default)]
pub(in crate::fs) struct KeyCache {
    map: HashMap<[u8; EXTENT_CONTEXT_SIZE], (Arc<ExtentKey>, u64)>,
    tick: u64,
}

impl KeyCache {
    /// The key of `ctx`: cached, or derived through `active` (required either way: an inode
    /// without its reference reads nothing) and cached.
    pub(in crate::fs) fn get(
        &mut self,
        active: Option<&ActiveRef>,
        ctx: &ExtentContext,
    ) -> Result<Arc<ExtentKey>> {
        let active =
            active.ok_or_else(|| Error::no_key("the file's encryption key is not available"))?;
        self.tick += 1;
        let id = ctx.to_bytes();
        if let Some((k, t)) = self.map.get_mut(&id) {
            *t = self.tick;
            return Ok(Arc::clone(k));
        }
        let k = Arc::new(active.derive_extent_key(ctx)?);
        self.insert(ctx, Arc::clone(&k));
        Ok(k)
    }

    fn insert(&mut self, ctx: &ExtentContext, k: Arc<ExtentKey>) {
        if self.map.len() >= KEY_CACHE_MAX {
            if let Some(old) = self
                .map
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(id, _)| *id)
            {
                self.map.remove(&old);
            }
        }
        self.tick += 1;
        self.map.insert(ctx.to_bytes(), (k, self.tick));
    }

    /// Drops every key (with the inode's `ActiveRef`).
    fn clear(&mut self) {
        self.map.clear();
    }
}

impl ExtState {
    pub(in crate::fs) fn new(file: ExtentFile, budget: Arc<Budget>) -> Self {
        let du = file.data_unit_size() as u64;
        ExtState {
            size: file.logical_size(),
            file,
            du,
            buf: BTreeMap::new(),
            dirty_since: None,
            uncommitted_since: Mutex::new(None),
            background_failed: None,
            budget,
            keys: Mutex::new(KeyCache::default()),
            loaded: None,
            appends: Arc::default(),
        }
    }

    /// Buffers a new unit (counted in the budget).
    pub(in crate::fs) fn insert_unit(&mut self, idx: u64, unit: Vec<u8>) {
        if self.buf.is_empty() {
            self.dirty_since = Some(Instant::now());
        }
        if self.buf.insert(idx, unit).is_none() {
            self.budget.add(self.du);
        }
    }

    /// Takes a unit out of the buffer (written out).
    fn remove_unit(&mut self, idx: u64) {
        if self.buf.remove(&idx).is_some() {
            self.budget.sub(self.du);
        }
        if self.buf.is_empty() {
            self.dirty_since = None;
        }
    }

    /// Bytes buffered and since when data has waited for a commit (buffered, or written to the
    /// log but not committed: noted now if this is the first look), if any.
    pub(in crate::fs) fn dirty(&self) -> Option<(u64, Instant)> {
        let uncommitted = if self.file.uncommitted() {
            let mut since = lock(&self.uncommitted_since);
            Some(*since.get_or_insert_with(Instant::now))
        } else {
            None
        };
        let since = match (self.dirty_since, uncommitted) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        since.map(|t| (self.buffered(), t))
    }

    /// Drops every cached extent key (the inode's reference is being dropped).
    pub(in crate::fs) fn drop_keys(&mut self) {
        self.keys
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    pub(in crate::fs) fn buffered(&self) -> u64 {
        self.buf.len() as u64 * self.du
    }
}

impl Drop for ExtState {
    fn drop(&mut self) {
        // Normally empty (eviction and unmount write out first); what a failed writeout left goes
        // with the node.
        self.budget.sub(self.buffered());
    }
}

/// What an inode's reference must keep: the secret for per-extent regular files (`extent`), else
/// setup only.
pub(in crate::fs) fn secret_need(kind: Kind, extent: bool) -> SecretNeed {
    if kind == Kind::File && extent {
        SecretNeed::Later
    } else {
        SecretNeed::SetupOnly
    }
}

/// A fresh extent context of `policy` (a nonce drawn now) and its key, derived now through the
/// inode's reference. Every extent made from plaintext gets its nonce and key here.
fn fresh_extent_key(
    policy: &Policy,
    unlocked: Option<&Unlocked>,
) -> Result<(ExtentContext, Arc<ExtentKey>)> {
    let ectx = ExtentContext::new_random(policy)?;
    let active = unlocked
        .map(|u| &u.active)
        .ok_or_else(|| Error::no_key("the file's encryption key is not available"))?;
    let key = Arc::new(active.derive_extent_key(&ectx)?);
    Ok((ectx, key))
}

/// Appends an extent sealed with `ectx` and `key`, and keeps the key in the cache (it is read
/// back soon, often).
fn append_sealed(
    ext: &mut ExtState,
    sealed: SealedExtent,
    ectx: &ExtentContext,
    key: Arc<ExtentKey>,
) -> Result<()> {
    let end = sealed.end();
    ext.file.append_sealed(sealed)?;
    ext.keys
        .get_mut()
        .unwrap_or_else(|p| p.into_inner())
        .insert(ectx, key);
    ext.size = ext.size.max(end);
    Ok(())
}

/// Appends `plain` at logical offset `start` (whole data units, or ending at the size) as one new
/// extent with a fresh nonce and key, under the node's `state` lock (a writeout).
fn append_extent(
    ext: &mut ExtState,
    policy: &Policy,
    unlocked: Option<&Unlocked>,
    start: u64,
    plain: &[u8],
) -> Result<()> {
    let (ectx, key) = fresh_extent_key(policy, unlocked)?;
    let sealed = SealedExtent::seal(ext.du, start, plain, &ectx, &key)?;
    append_sealed(ext, sealed, &ectx, key)
}

/// The policy of a per-extent file's context (every such file has one).
fn file_policy(ctx: Option<&Context>, ext: &ExtState) -> Result<Policy> {
    ctx.map(|c| *c.policy())
        .ok_or_else(|| Error::corrupt(format!("{}: no context", ext.file.backing_path())))
}

/// A write of whole data units going straight into the log, bypassing the buffer: the page
/// cache's writeback of a large range needs no read-modify-write, so buffering it would only copy
/// it twice. Split into extents of at most [`EXTENT_MAX`], each with its own nonce and key, exactly
/// as a writeout makes them, in three steps of which only the first and the last hold the node's
/// `state` lock: [`prepare`](Self::prepare) draws the nonces and derives the keys through the
/// inode's reference, [`seal`](Self::seal) encrypts and checksums (so writes to one file seal in
/// parallel, as per-file writes encrypt before their lock), [`append`](Self::append) appends them
/// and drops the buffered units they supersede (the rest of the buffer is disjoint from them and
/// keeps its place). The kernel never has two writes of one range in flight (writeback of a page
/// waits for the one before; without the writeback cache a write holds the inode's lock), so
/// nothing can come between the steps that the last one would wrongly undo. Not committed (see
/// `FlushFor::Close`).
pub(in crate::fs) struct WriteThrough {
    du: u64,
    off: u64,
    len: u64,
    keys: Vec<(ExtentContext, Arc<ExtentKey>)>,
}

impl WriteThrough {
    /// Under the node's `state` lock: a nonce and key for each extent of `len` bytes at `off`.
    pub(in crate::fs) fn prepare(st: &State, off: u64, len: u64) -> Result<WriteThrough> {
        let State::File {
            keys: Keys { ctx, unlocked },
            contents: FileContents::PerExtent(ext),
        } = st
        else {
            return Err(errno(Errno::IO, "not a per-extent file"));
        };
        let policy = file_policy(ctx.as_ref(), ext)?;
        let keys = (0..len.div_ceil(EXTENT_MAX))
            .map(|_| fresh_extent_key(&policy, unlocked.as_ref()))
            .collect::<Result<_>>()?;
        Ok(WriteThrough {
            du: ext.du,
            off,
            len,
            keys,
        })
    }

    /// Without the lock: `data` (the `len` bytes prepared for) encrypted and checksummed.
    pub(in crate::fs) fn seal(&self, data: &[u8]) -> Result<Vec<SealedExtent>> {
        if data.len() as u64 != self.len {
            return Err(errno(
                Errno::IO,
                "write-through of another length than prepared",
            ));
        }
        data.chunks(EXTENT_MAX as usize)
            .zip(&self.keys)
            .enumerate()
            .map(|(i, (piece, (ectx, key)))| {
                let at = self.off + i as u64 * EXTENT_MAX;
                SealedExtent::seal(self.du, at, piece, ectx, key)
            })
            .collect()
    }

    /// Under the node's `state` lock again: the sealed extents appended, the buffered units they
    /// cover dropped, the size grown.
    pub(in crate::fs) fn append(self, st: &mut State, sealed: Vec<SealedExtent>) -> Result<()> {
        let State::File {
            contents: FileContents::PerExtent(ext),
            ..
        } = st
        else {
            return Err(errno(Errno::IO, "not a per-extent file"));
        };
        let du = ext.du;
        for idx in self.off / du..(self.off + self.len).div_ceil(du) {
            ext.remove_unit(idx);
        }
        for (s, (ectx, key)) in sealed.into_iter().zip(self.keys) {
            append_sealed(ext, s, &ectx, key)?;
        }
        Ok(())
    }
}

/// Writes the buffer out as new extents (each run of consecutive units one extent, with a
/// fresh nonce and its key derived now), then, with `sync`, commits. Units written leave the
/// buffer; on an error the rest stays buffered.
pub(in crate::fs) fn writeout_locked(st: &mut State, sync: bool) -> Result<()> {
    let State::File {
        keys: Keys { ctx, unlocked },
        contents: FileContents::PerExtent(ext),
    } = st
    else {
        return Ok(());
    };
    if !ext.buf.is_empty() {
        let policy = file_policy(ctx.as_ref(), ext)?;
        let du = ext.du;
        while let Some((&first, _)) = ext.buf.first_key_value() {
            let mut last = first;
            while ext.buf.contains_key(&(last + 1)) && (last + 2 - first) * du <= EXTENT_MAX {
                last += 1;
            }
            let start = first * du;
            let stop = ((last + 1) * du).min(ext.size);
            if stop > start {
                let mut plain = Vec::with_capacity(((last + 1 - first) * du) as usize);
                for i in first..=last {
                    if let Some(u) = ext.buf.get(&i) {
                        plain.extend_from_slice(u);
                    }
                }
                plain.truncate((stop - start) as usize);
                append_extent(ext, &policy, unlocked.as_ref(), start, &plain)?;
            }
            for i in first..=last {
                ext.remove_unit(i);
            }
        }
    }
    if sync {
        ext.file.sync()?;
        *ext.uncommitted_since
            .get_mut()
            .unwrap_or_else(|p| p.into_inner()) = None;
    }
    Ok(())
}

/// EIO for a per-extent operation on a node without its log.
pub(in crate::fs) fn not_loaded() -> Error {
    errno(Errno::IO, "per-extent file without its log loaded")
}
