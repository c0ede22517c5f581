//! Compaction: giving back the space of replaced extents. A compacted copy is the base header, then
//! one checkpoint record holding the map and every live piece's ciphertext (copied or reflinked,
//! never decrypted), committed before it is returned; the caller renames it over the original
//! (docs/FORMAT.md, "Per-extent layout"). Also the compacted size and the rule for when to compact.

use std::fs::File;
use std::os::unix::fs::FileExt;

use fscrypt::extent::EXTENT_CONTEXT_SIZE;
use fscrypt::Result;

use super::ciphertext::copy_ciphertext;
use super::format::{
    round_up, CheckpointEntry, Commit, PayloadSum, RecordHeader, RecordKind, ALIGN,
    CHECKPOINT_ENTRY_SIZE, COMMIT_SLOT_SIZE, RECORD_HEADER_BLOCK,
};
use super::{BackingPath, ExtentFile, CHECKPOINT_RUN_MAX, COMPACT_SLACK};
use crate::store::{io_err, read_full_at, FILE_HEADER_SIZE};

/// One entry of a checkpoint: the logical range `[start, end)` of a live piece (or of a part of one
/// at most [`CHECKPOINT_RUN_MAX`] long), the run holding it and the run's unit at `start`.
struct EntrySource {
    start: u64,
    end: u64,
    run: usize,
    unit: u64,
}

impl ExtentFile {
    /// The entries a checkpoint of the map has, in logical order: each live piece, split into
    /// runs of at most [`CHECKPOINT_RUN_MAX`] bytes (a checkpoint's runs are verified whole when
    /// read, so they are kept short even where the extent records were longer).
    fn checkpoint_entries(&self) -> impl Iterator<Item = EntrySource> + '_ {
        let du = self.du;
        let step = CHECKPOINT_RUN_MAX.max(du);
        self.map.iter().flat_map(move |(s, p)| {
            let parts = (p.end - s).div_ceil(step);
            (0..parts).map(move |k| {
                let start = s + k * step;
                EntrySource {
                    start,
                    end: (start + step).min(p.end),
                    run: p.run,
                    unit: p.unit + k * step / du,
                }
            })
        })
    }

    /// Where compaction puts each live piece's units, relative to the checkpoint record, and the
    /// record's payload length: packed at data-unit alignment, 4096-aligned when a piece is whole
    /// 4096-byte blocks (reflink needs that; small pieces of small units would waste it).
    fn checkpoint_layout(&self) -> (Vec<u64>, u64) {
        let entries = self.checkpoint_entries().count();
        let table = (entries as u64).saturating_mul(CHECKPOINT_ENTRY_SIZE as u64);
        let mut rel =
            RECORD_HEADER_BLOCK.saturating_add(round_up(table, ALIGN).unwrap_or(u64::MAX));
        let mut out = Vec::with_capacity(entries);
        for e in self.checkpoint_entries() {
            let bytes = (e.end - e.start).div_ceil(self.du) * self.du;
            if bytes.is_multiple_of(ALIGN) {
                rel = round_up(rel, ALIGN).unwrap_or(u64::MAX);
            }
            out.push(rel);
            rel = rel.saturating_add(bytes);
        }
        let payload = round_up(rel, ALIGN).unwrap_or(u64::MAX) - RECORD_HEADER_BLOCK;
        (out, payload)
    }

    /// Size the log would have right after compaction: header, checkpoint header and table, and
    /// every live piece's units.
    pub fn compacted_len(&self) -> u64 {
        let mut memo = self
            .compacted_memo
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((end, len)) = *memo {
            if end == self.end {
                return len;
            }
        }
        let (_, payload) = self.checkpoint_layout();
        let len = (FILE_HEADER_SIZE + RECORD_HEADER_BLOCK).saturating_add(payload);
        *memo = Some((self.end, len));
        len
    }

    /// True when the log is more than twice its compacted size plus [`COMPACT_SLACK`]: the caller
    /// should [`compact_into`](Self::compact_into) after this writeout. Keeping to it bounds the
    /// backing file at `2 · compacted_len() + COMPACT_SLACK` plus the last writeout's records.
    pub fn needs_compaction(&self) -> bool {
        self.end
            > self
                .compacted_len()
                .saturating_mul(2)
                .saturating_add(COMPACT_SLACK)
    }

    /// Writes a compacted copy of this file into `dst` (a new, empty file in the same backing
    /// directory): the base header unchanged, then one checkpoint record holding the map and every
    /// live piece's ciphertext (copied, or shared with `FICLONERANGE`; never decrypted), committed
    /// and `fdatasync`ed. Returns it opened. The caller then renames `dst` over this file's path,
    /// fsyncs the directory and uses the returned file from then on (see docs/FORMAT.md; not for
    /// files with several hard links, whose other names would keep the old inode).
    pub fn compact_into(&self, dst: File) -> Result<ExtentFile> {
        let dwhat = BackingPath::of(&dst);
        let du = self.du;
        let mut header = vec![0u8; FILE_HEADER_SIZE as usize];
        read_full_at(self.file()?, &mut header[..80], 0).map_err(|e| io_err(&self.what, e))?;
        dst.set_len(0).map_err(|e| io_err(&dwhat, e))?;
        let rec = FILE_HEADER_SIZE;
        let (rels, payload_len) = self.checkpoint_layout();
        let entries = rels.len() as u64;
        let table_len = entries * CHECKPOINT_ENTRY_SIZE as u64;
        // The checkpoint's algorithm, for its table and every entry: each run's copied bytes are
        // summed anew, never its stored sum reused (the source record may be an older SHA-256 one).
        let alg = PayloadSum::CURRENT;
        let mut table = Vec::with_capacity(table_len as usize);
        for (e, data_rel) in self.checkpoint_entries().zip(rels) {
            let run = self.runs[e.run];
            let nunits = (e.end - e.start).div_ceil(du);
            let (sum, _) = copy_ciphertext(
                alg,
                self.file()?,
                run.data_off + e.unit * du,
                &dst,
                rec + data_rel,
                nunits * du,
                &dwhat,
                false,
            )?;
            table.extend_from_slice(
                &CheckpointEntry {
                    logical: e.start,
                    len: e.end - e.start,
                    first_unit: run.first_unit + e.unit,
                    data_rel,
                    sum,
                    ctx: run.ctx.to_bytes(),
                }
                .to_bytes(),
            );
        }
        let h = RecordHeader {
            kind: RecordKind::Checkpoint,
            du_bits: self.du_bits,
            seq: 0,
            a: self.map.size(),
            b: entries,
            first_unit: 0,
            payload_len,
            checked_len: table_len,
            ctx: [0; EXTENT_CONTEXT_SIZE],
            sum_alg: alg,
            payload_sum: alg.digest(&table),
            block_table: [0; 6],
        };
        let end = rec + RECORD_HEADER_BLOCK + payload_len;
        // Both slots hold a commit of the checkpoint (generations 1 and 2).
        for gen in [1u64, 2] {
            let c = Commit {
                gen,
                durable_end: end,
                next_seq: 1,
            };
            let o = c.slot() as usize;
            header[o..o + COMMIT_SLOT_SIZE].copy_from_slice(&c.to_bytes());
        }
        dst.write_all_at(&header, 0)
            .and_then(|()| dst.write_all_at(&h.to_block(), rec))
            .and_then(|()| dst.write_all_at(&table, rec + RECORD_HEADER_BLOCK))
            .and_then(|()| dst.set_len(end))
            .and_then(|()| dst.sync_data())
            .map_err(|e| io_err(&dwhat, e))?;
        ExtentFile::open(dst, &self.policy, du as usize)
    }
}
