//! The per-inode state of a per-extent regular file ([`ExtState`]): its open log
//! (`store::extent::ExtentFile`), the logical size, the write buffer of whole plaintext data units
//! (counted in the volume-wide [`Budget`]), and the LRU cache of extent keys derived through the
//! inode's `ActiveRef`; and [`writeout_locked`], which turns the buffer into new extents under the
//! node's `state` lock (every writeout, foreground or background, is this function). The
//! operations on it (read, write, truncate, clone, compaction) are `fs::contents::per_extent`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use fscrypt::extent::{ExtentContext, ExtentKey, EXTENT_CONTEXT_SIZE};
use fscrypt::keyring::{ActiveRef, SecretNeed};
use fscrypt::{Errno, Error, Result};

use super::budget::Budget;
use super::{FileContents, Keys, Kind, State};
use crate::fs::types::errno;
use crate::store::extent::ExtentFile;

/// Most plaintext buffered per inode before a writeout is forced.
pub(in crate::fs) const BUFFER_MAX: u64 = 4 << 20;

/// Longest extent one writeout appends (longer runs are split).
const EXTENT_MAX: u64 = 1 << 20;

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
    /// When a background writeout of this buffer last failed (the thread waits before retrying).
    pub(in crate::fs) background_failed: Option<Instant>,
    /// The volume-wide count of buffered bytes this buffer adds to.
    budget: Arc<Budget>,
    /// Keys of this file's extents, derived once each while the inode holds its `ActiveRef`
    /// (emptied whenever the reference is dropped: `State::take_keys`).
    pub(in crate::fs) keys: Mutex<KeyCache>,
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
            background_failed: None,
            budget,
            keys: Mutex::new(KeyCache::default()),
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

    /// Bytes buffered and since when, if any.
    pub(in crate::fs) fn dirty(&self) -> Option<(u64, Instant)> {
        self.dirty_since.map(|t| (self.buffered(), t))
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
        let policy = *ctx
            .as_ref()
            .ok_or_else(|| Error::corrupt(format!("{}: no context", ext.file.backing_path())))?
            .policy();
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
                let ectx = ExtentContext::new_random(&policy)?;
                let active = unlocked
                    .as_ref()
                    .map(|u| &u.active)
                    .ok_or_else(|| Error::no_key("the file's encryption key is not available"))?;
                let key = Arc::new(active.derive_extent_key(&ectx)?);
                ext.file.write_extent(start, &plain, &ectx, &key)?;
                // Read back soon, often: keep its key.
                ext.keys
                    .get_mut()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(&ectx, key);
            }
            for i in first..=last {
                ext.remove_unit(i);
            }
        }
    }
    if sync {
        ext.file.sync()?;
    }
    Ok(())
}

/// EIO for a per-extent operation on a node without its log.
pub(in crate::fs) fn not_loaded() -> Error {
    errno(Errno::IO, "per-extent file without its log loaded")
}
