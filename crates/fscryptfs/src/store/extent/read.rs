//! Reading a per-extent file, verified: the map's pieces over the range; for each whose record has
//! a block-sum table (`blocksums`: every extent record the engine writes), the table is loaded and
//! checked against its hash in the header (then cached, [`blocksums::TABLE_CACHE_BYTES`]), and only
//! the 4096-byte blocks covering the units requested are read (one read per chunk) and each checked
//! against its entry before it is decrypted; a mismatch is EIO naming the block's backing offset.
//! No ciphertext is cached on that path: every read checks what it reads.
//!
//! For a run without a table (`FSCXREC1` records, checkpoint entries), the ciphertext
//! of its whole run is read, checked against the run's stored checksum (of the ciphertext, with the
//! algorithm its record's magic names: the extent record's payload checksum or the checkpoint
//! entry's), and only then
//! decrypted with the key the caller derives for its context (IVs counted from the extent's start);
//! holes and the bytes of a unit beyond a piece's end read as zeros. A mismatch is EIO naming the
//! backing path, the backing offset of the run and the logical offset: never unverified bytes.
//!
//! The checksum covers a whole run (at most 1 MiB as this engine writes them), so a read of part of
//! a run reads and hashes all of it. Sequential reads would do that once per FUSE request (8 times
//! per 1 MiB run at 128 KiB each); a small process-wide cache keeps the *verified ciphertext* of
//! the last runs read ([`VERIFIED_CACHE_BYTES`]), keyed by the `ExtentFile` instance and the run.
//! Serving from it is as safe as verifying again: the bytes it holds are the bytes that were
//! checked, so a later change on disk cannot reach a reader through it (and the bytes of a live run
//! are never rewritten by the engine: the log only appends; compaction makes a new instance). It
//! holds ciphertext only, never plaintext or keys.
//!
//! Runs larger than [`WHOLE_RUN_MAX`] (none that this engine writes; a hostile file could claim
//! one) are not held in memory whole: their checksum is streamed first, then the units read are
//! read again and decrypted. Between those two reads a writer with access to the backing file
//! could change them; such runs are logged once per read as not fully protected.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fscrypt::extent::{ExtentContext, ExtentKey};
use fscrypt::{Errno, Error, Result};

use super::blocksums;
use super::ciphertext::{read_exact_at, read_exact_new, read_table, sum_range};
use super::format::PayloadSum;
use super::map::Piece;
use super::{corrupt_at, ExtentFile, Run, CHUNK};

/// Largest run read, verified and held in memory whole (4 × the engine's largest extent).
pub(super) const WHOLE_RUN_MAX: u64 = 4 << 20;

/// Bytes of verified ciphertext the process keeps for repeated reads of the same runs.
pub(super) const VERIFIED_CACHE_BYTES: usize = 16 << 20;

/// A caller's gate for the backing reads of one [`ExtentFile::read_ordered`]: it runs the function
/// it is given once, when the read's turn comes.
pub type ReadGate<'a> = dyn Fn(&mut dyn FnMut()) + 'a;

/// A fresh identity for an opened `ExtentFile` (keys the cache: never reused in a process).
pub(super) fn next_instance() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What identifies a run's verified bytes: the file instance, its offset, length, checksum and the
/// checksum's algorithm.
type RunKey = (u64, u64, u64, [u8; 8], PayloadSum);

/// Serializes the loading of runs that map to the same lock (by backing offset), so concurrent
/// reads of one run read and hash it once.
static LOADING: [Mutex<()>; 16] = [const { Mutex::new(()) }; 16];

/// The cache of verified runs, most recently used last.
static VERIFIED: Mutex<VecDeque<(RunKey, Arc<Vec<u8>>)>> = Mutex::new(VecDeque::new());

fn cache_get(key: &RunKey) -> Option<Arc<Vec<u8>>> {
    let mut c = VERIFIED.lock().unwrap_or_else(|e| e.into_inner());
    let i = c.iter().position(|(k, _)| k == key)?;
    let e = c.remove(i)?;
    let v = Arc::clone(&e.1);
    c.push_back(e);
    Some(v)
}

fn cache_put(key: RunKey, v: Arc<Vec<u8>>) {
    let mut c = VERIFIED.lock().unwrap_or_else(|e| e.into_inner());
    if c.iter().any(|(k, _)| *k == key) {
        return;
    }
    c.push_back((key, v));
    let mut total: usize = c.iter().map(|(_, v)| v.len()).sum();
    while total > VERIFIED_CACHE_BYTES && c.len() > 1 {
        if let Some((_, old)) = c.pop_front() {
            total -= old.len();
        }
    }
}

/// Largest gap of unwanted bytes between two backing ranges one read needs (a table and its
/// first blocks, the blocks of one record and the table of the next) for them to be read in one
/// call: the bytes between are read and dropped.
const WINDOW_GAP_MAX: u64 = 64 << 10;

/// Largest window: a request of [`CHUNK`] that spans two records, the table between them included.
const WINDOW_MAX: u64 = CHUNK + WINDOW_GAP_MAX;

/// Buffers of one read's per-block path: scratch space for blocks not aligned with the units
/// wanted, and the windows read ahead of their use (`read_windows`), not yet checked: each table
/// and block taken from them is checked exactly as if read on its own.
#[derive(Default)]
struct BlockBufs {
    scratch: Vec<u8>,
    windows: Vec<Window>,
}

/// Backing bytes from offset `at`, read in one call for several ranges a read needs.
struct Window {
    at: u64,
    bytes: Vec<u8>,
}

/// The backing bytes `[lo, hi)` when one of `windows` holds them all.
fn in_window(windows: &[Window], lo: u64, hi: u64) -> Option<&[u8]> {
    windows
        .iter()
        .find(|w| w.at <= lo && hi <= w.at + w.bytes.len() as u64)
        .map(|w| &w.bytes[(lo - w.at) as usize..(hi - w.at) as usize])
}

/// Where a run's ciphertext comes from for one read.
enum Source {
    /// The blocks read, each checked against the record's block-sum table (verified, cached).
    Blocks(Arc<Vec<u8>>),
    /// The whole run, verified, in memory.
    Whole(Arc<Vec<u8>>),
    /// A run too large to hold: verified streamed, its units read again as needed.
    Streamed,
}

impl ExtentFile {
    /// EIO for a run whose ciphertext does not match its checksum (the caller adds the file's
    /// identity and logs it once).
    fn mismatch(&self, run: &Run, logical: u64) -> Error {
        Error::new(
            Errno::IO,
            format!(
                "{}: backing offset {}: extent ciphertext checksum mismatch (record at {}, \
                 logical offset {logical}): refusing to return unverified data",
                self.what, run.data_off, run.record_off
            ),
        )
    }

    /// The backing range `[lo, hi)` of the 4096-byte blocks of `run` that cover the `len` bytes of
    /// its units from `unit` on (the last block may be shorter: the run's end).
    fn block_span(&self, run: &Run, unit: u64, len: u64) -> (u64, u64) {
        const B: u64 = blocksums::BLOCK;
        let start = unit * self.du;
        let b_lo = start / B * B;
        let b_hi = ((start + len).div_ceil(B) * B).min(run.nunits * self.du);
        (run.data_off + b_lo, run.data_off + b_hi)
    }

    /// The backing range of the block-sum table of `run`'s record.
    fn table_span(&self, run: &Run) -> (u64, u64) {
        let n = (run.nunits * self.du).div_ceil(blocksums::BLOCK);
        let lo = run.record_off + blocksums::TABLE_OFF;
        (lo, lo + n * 8)
    }

    /// Reads ahead what a read of `[offset, end)` over `pieces` will need from records with a
    /// block-sum table — each table not yet cached, and the blocks covering the units wanted —
    /// where ranges follow each other with at most [`WINDOW_GAP_MAX`] between them: in one call
    /// per window of at most [`WINDOW_MAX`]. A sequential reader's request at the start of a
    /// record gets the table and its blocks together, and one that spans the end of a record and
    /// the start of the next (appended after it) gets both records' blocks and the table between
    /// them: one round trip on a network filesystem instead of two. Ranges that join no other
    /// are left to be read where they are used, straight into place, unless `all` (the reads of a
    /// gated READ, [`read_ordered`](Self::read_ordered), are all made here). Nothing is checked
    /// here.
    fn read_windows(
        &self,
        pieces: &[(u64, Piece)],
        offset: u64,
        end: u64,
        all: bool,
    ) -> Result<Vec<Window>> {
        let du = self.du;
        let mut ranges = Vec::new();
        for &(s, p) in pieces {
            let Some(run) = self.runs.get(p.run) else {
                continue;
            };
            let lo = s.max(offset);
            let hi = p.end.min(end);
            let (u, u_end) = ((lo - s) / du, (hi - s).div_ceil(du));
            // A piece beyond its run is refused by the read itself.
            if !blocksums::has_table(&run.table)
                || p.unit.checked_add(u_end).is_none_or(|e| e > run.nunits)
            {
                continue;
            }
            if blocksums::cache_get(&(self.instance, run.record_off, run.table)).is_none() {
                ranges.push(self.table_span(run));
            }
            ranges.push(self.block_span(run, p.unit + u, (u_end - u) * du));
        }
        // Joined while ascending, close together and within the size bound; (start, end, count).
        let mut joined: Vec<(u64, u64, usize)> = Vec::new();
        for (lo, hi) in ranges {
            match joined.last_mut() {
                Some((a, b, k))
                    if lo >= *a && lo <= *b + WINDOW_GAP_MAX && hi.max(*b) - *a <= WINDOW_MAX =>
                {
                    *b = hi.max(*b);
                    *k += 1;
                }
                _ => joined.push((lo, hi, 1)),
            }
        }
        let mut windows = Vec::new();
        for (at, hi, _) in joined.into_iter().filter(|j| all || j.2 > 1) {
            let bytes = read_exact_new(self.file()?, (hi - at) as usize, at, &self.what)?;
            windows.push(Window { at, bytes });
        }
        Ok(windows)
    }

    /// The block-sum table of `run`'s record (which has one), checked against its hash in the
    /// header (cached once verified), taken from a window of `bufs` when one holds it. EIO on a
    /// mismatch.
    fn verified_table(&self, run: &Run, bufs: &BlockBufs) -> Result<Arc<Vec<u8>>> {
        let key = (self.instance, run.record_off, run.table);
        if let Some(t) = blocksums::cache_get(&key) {
            return Ok(t);
        }
        let (lo, hi) = self.table_span(run);
        // The table is copied out of a window (2 KiB for 1 MiB of payload): it is cached, and must
        // not keep the read's whole window alive with it.
        let t = match in_window(&bufs.windows, lo, hi) {
            Some(b) => b.to_vec(),
            None => read_table(self.file()?, run.record_off, (hi - lo) / 8, &self.what)?,
        };
        if blocksums::table_hash(&t) != run.table {
            return Err(Error::new(
                Errno::IO,
                format!(
                    "{}: backing offset {}: extent block-sum table checksum mismatch (record at \
                     {}): refusing to return unverified data",
                    self.what,
                    run.record_off + blocksums::TABLE_OFF,
                    run.record_off
                ),
            ));
        }
        let t = Arc::new(t);
        blocksums::cache_put(key, Arc::clone(&t));
        Ok(t)
    }

    /// Fills `ct` with the ciphertext of the run's units `unit..unit + ct.len() / du`: the
    /// 4096-byte blocks covering them are read (one read) and each checked against `table` before
    /// anything is copied out. EIO naming the first damaged block's backing offset. `logical`: the
    /// logical offset of the first unit, for the message.
    fn read_blocks(
        &self,
        run: &Run,
        table: &[u8],
        unit: u64,
        ct: &mut [u8],
        bufs: &mut BlockBufs,
        logical: u64,
    ) -> Result<()> {
        const B: u64 = blocksums::BLOCK;
        let start = unit * self.du;
        let (lo, hi) = self.block_span(run, unit, ct.len() as u64);
        let b_lo = lo - run.data_off;
        let aligned = b_lo == start && hi - lo == ct.len() as u64;
        let scratch = &mut bufs.scratch;
        let bytes: &mut [u8] = if aligned {
            ct
        } else {
            scratch.resize((hi - lo) as usize, 0);
            scratch
        };
        match in_window(&bufs.windows, lo, hi) {
            Some(w) => bytes.copy_from_slice(w),
            None => read_exact_at(self.file()?, bytes, lo, &self.what)?,
        }
        if let Some(i) = blocksums::first_mismatch(table, b_lo / B, bytes) {
            return Err(Error::new(
                Errno::IO,
                format!(
                    "{}: backing offset {}: extent ciphertext block checksum mismatch (block {i} \
                     of the run at backing offset {}, record at {}, logical offset {logical}): \
                     refusing to return unverified data",
                    self.what,
                    run.data_off + i * B,
                    run.data_off,
                    run.record_off
                ),
            ));
        }
        if !aligned {
            let from = (start - b_lo) as usize;
            ct.copy_from_slice(&bufs.scratch[from..from + ct.len()]);
        }
        Ok(())
    }

    /// The run's ciphertext, verified against its checksum (cached), or `Streamed` after a
    /// streamed check for a run larger than [`WHOLE_RUN_MAX`]. `logical`: the logical offset of
    /// the piece being read, for the message.
    fn verified_run(&self, run: &Run, logical: u64) -> Result<Source> {
        let len = run.nunits * self.du;
        let key = (
            self.instance,
            run.data_off,
            run.nunits,
            run.sum,
            run.sum_alg,
        );
        if len > WHOLE_RUN_MAX {
            if sum_range(run.sum_alg, self.file()?, run.data_off, len, &self.what)? != run.sum {
                return Err(self.mismatch(run, logical));
            }
            tracing::warn!(
                "{}: backing offset {}: a {len}-byte extent run is verified streamed, then read \
                 again (not held whole in memory)",
                self.what,
                run.data_off
            );
            return Ok(Source::Streamed);
        }
        if let Some(v) = cache_get(&key) {
            return Ok(Source::Whole(v));
        }
        // Readahead sends several reads of one run to several daemon threads at once: the first
        // reads and hashes it, the others wait for it here and find it cached.
        let _loading = LOADING[(run.data_off / super::format::ALIGN) as usize % LOADING.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(v) = cache_get(&key) {
            return Ok(Source::Whole(v));
        }
        let ct = read_exact_new(self.file()?, len as usize, run.data_off, &self.what)?;
        if run.sum_alg.digest(&ct) != run.sum {
            return Err(self.mismatch(run, logical));
        }
        let v = Arc::new(ct);
        cache_put(key, Arc::clone(&v));
        Ok(Source::Whole(v))
    }

    /// Reads up to `buf.len()` bytes at `offset`; holes read as zeros, nothing beyond the size.
    /// `key_for` gives the key of each extent met (called once per extent per call; owned or
    /// shared, e.g. `Arc<ExtentKey>` from the caller's cache). Every run read from is checked
    /// against its checksum before it is decrypted: EIO on a mismatch (nothing is returned), when
    /// a unit does not decrypt, or when the backing file is short.
    pub fn read<F, K>(&self, offset: u64, buf: &mut [u8], key_for: F) -> Result<usize>
    where
        F: Fn(&ExtentContext) -> Result<K>,
        K: std::borrow::Borrow<ExtentKey>,
    {
        self.read_ordered(offset, buf, key_for, None)
    }

    /// [`read`](Self::read), with the backing reads of records that have a block-sum table (the
    /// tables not cached yet and the blocks) made first, all together, inside `order` (which runs
    /// what it is given once: the caller's gate that takes a stream's reads to the backing store
    /// in order); checks and decryption follow outside it.
    pub fn read_ordered<F, K>(
        &self,
        offset: u64,
        buf: &mut [u8],
        key_for: F,
        order: Option<&ReadGate<'_>>,
    ) -> Result<usize>
    where
        F: Fn(&ExtentContext) -> Result<K>,
        K: std::borrow::Borrow<ExtentKey>,
    {
        let size = self.map.size();
        if offset >= size || buf.is_empty() {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(size - offset);
        let buf = &mut buf[..n as usize];
        // Only what no piece covers is zeroed (holes, bytes past a piece's end): the rest is
        // overwritten with plaintext, so zeroing it first would only cost a pass over the buffer.
        let mut zeroed_to = offset;
        let du = self.du;
        let mut keys: Vec<([u8; 16], K)> = Vec::new();
        let mut ct = Vec::new();
        let pieces = self.map.overlapping(offset, offset + n);
        let windows = match order {
            None => self.read_windows(&pieces, offset, offset + n, false)?,
            Some(order) => {
                let mut got = None;
                order(&mut || got = Some(self.read_windows(&pieces, offset, offset + n, true)));
                got.unwrap_or_else(|| Ok(Vec::new()))?
            }
        };
        let mut bufs = BlockBufs {
            scratch: Vec::new(),
            windows,
        };
        for (s, p) in pieces {
            let run = self.runs[p.run];
            let lo = s.max(offset);
            let hi = p.end.min(offset + n);
            if lo > zeroed_to {
                buf[(zeroed_to - offset) as usize..(lo - offset) as usize].fill(0);
            }
            zeroed_to = zeroed_to.max(hi);
            // Units [u, u_end) of the piece, processed in chunks.
            let mut u = (lo - s) / du;
            let u_end = (hi - s).div_ceil(du);
            if p.unit.checked_add(u_end).is_none_or(|e| e > run.nunits) {
                return Err(corrupt_at(&self.what, run.record_off, "map beyond its run"));
            }
            let source = if blocksums::has_table(&run.table) {
                Source::Blocks(self.verified_table(&run, &bufs)?)
            } else {
                self.verified_run(&run, lo)?
            };
            let ki = match keys.iter().position(|(nonce, _)| *nonce == run.ctx.nonce) {
                Some(i) => i,
                None => {
                    keys.push((run.ctx.nonce, key_for(&run.ctx)?));
                    keys.len() - 1
                }
            };
            while u < u_end {
                let cnt = (u_end - u).min((CHUNK / du).max(1));
                let unit_in_run = p.unit + u;
                let at = run.data_off + unit_in_run * du;
                let chunk_lo = s + u * du;
                let chunk_hi = chunk_lo + cnt * du;
                // A chunk wanted whole is read and decrypted where it belongs in `buf`; one that
                // is not (a unit cut by the range or by the piece's end) goes through `ct`.
                let direct = lo <= chunk_lo && chunk_hi <= hi;
                let dst: &mut [u8] = if direct {
                    &mut buf[(chunk_lo - offset) as usize..(chunk_hi - offset) as usize]
                } else {
                    ct.resize((cnt * du) as usize, 0);
                    &mut ct
                };
                let mut fill = |dst: &mut [u8]| -> Result<()> {
                    match &source {
                        Source::Blocks(t) => {
                            self.read_blocks(&run, t, unit_in_run, dst, &mut bufs, chunk_lo)?
                        }
                        Source::Whole(v) => {
                            let from = (unit_in_run * du) as usize;
                            dst.copy_from_slice(&v[from..from + dst.len()]);
                        }
                        Source::Streamed => read_exact_at(self.file()?, dst, at, &self.what)?,
                    }
                    keys[ki]
                        .1
                        .borrow()
                        .decrypt_units(run.first_unit + unit_in_run, du as usize, dst)
                        .map_err(|e| {
                            Error::new(
                                Errno::IO,
                                format!("{}: backing offset {at}: decrypting: {e}", self.what),
                            )
                        })
                };
                if let Err(e) = fill(dst) {
                    // Nothing unverified or undecrypted is left in the caller's buffer.
                    if direct {
                        buf[(chunk_lo - offset) as usize..(chunk_hi - offset) as usize].fill(0);
                    }
                    return Err(e);
                }
                if !direct {
                    let from = lo.max(chunk_lo);
                    let to = hi.min(chunk_hi);
                    buf[(from - offset) as usize..(to - offset) as usize]
                        .copy_from_slice(&ct[(from - chunk_lo) as usize..(to - chunk_lo) as usize]);
                }
                u += cnt;
            }
        }
        if offset + n > zeroed_to {
            buf[(zeroed_to - offset) as usize..].fill(0);
        }
        Ok(n as usize)
    }
}
