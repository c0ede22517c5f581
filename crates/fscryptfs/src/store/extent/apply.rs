//! What each record does to the in-memory map, with every field checked first (EUCLEAN naming the
//! backing offset for a record whose fields are inconsistent): extent, truncate, punch, and the
//! checkpoint, whose table is read in bounded pieces. Shared by recovery (records read back) and
//! appends (records just written), so both build the same map from the same bytes.

use fscrypt::extent::{ExtentContext, EXTENT_CONTEXT_SIZE};
use fscrypt::{Errno, Result};

use super::blocksums;
use super::ciphertext::sum_range;
use super::format::{
    round_up, CheckpointEntry, RecordHeader, RecordKind, ALIGN, CHECKPOINT_ENTRY_SIZE,
    RECORD_HEADER_BLOCK,
};
use super::{corrupt_at, ExtentFile, RecordInfo, Run, CHUNK};
use crate::store::{io_err, read_full_at, EXTENT_MAX_FILE_SIZE, FILE_HEADER_SIZE};

impl ExtentFile {
    /// Applies the record `h` at `pos`, `len` bytes long, to the map and lists it in the records.
    pub(super) fn apply_record(&mut self, h: &RecordHeader, pos: u64, len: u64) -> Result<()> {
        self.apply(h, pos)?;
        self.records.push(RecordInfo {
            offset: pos,
            len,
            kind: h.kind,
            seq: h.seq,
            sum_alg: h.sum_alg,
        });
        Ok(())
    }

    /// Parses, validates and checks against the policy an extent context found at `off`.
    fn load_ctx(&self, bytes: &[u8; EXTENT_CONTEXT_SIZE], off: u64) -> Result<ExtentContext> {
        let ctx = ExtentContext::parse(bytes).map_err(|e| corrupt_at(&self.what, off, e))?;
        ctx.validate_against(&self.policy)
            .map_err(|e| corrupt_at(&self.what, off, e))?;
        Ok(ctx)
    }

    /// Adds `run` to the run table and maps logical `[logical, logical + len)` to its units.
    fn map_run(&mut self, logical: u64, len: u64, run: Run) {
        self.nonces.insert(run.ctx.nonce);
        self.runs.push(run);
        self.map
            .map(logical, logical + len, self.runs.len() - 1, 0, self.du);
    }

    /// Applies one record (read back at recovery, or just appended) to the map. EUCLEAN for a
    /// record whose fields are inconsistent.
    fn apply(&mut self, h: &RecordHeader, pos: u64) -> Result<()> {
        let du = self.du;
        let max = EXTENT_MAX_FILE_SIZE;
        let bad = |m: &str| corrupt_at(&self.what, pos, m);
        if h.du_bits != self.du_bits {
            return Err(bad("record data-unit size differs from the policy's"));
        }
        let fields_zero = h.first_unit == 0 && h.ctx.iter().all(|&x| x == 0);
        if h.kind != RecordKind::Extent && blocksums::has_table(&h.block_table) {
            return Err(bad("block-sum table on a record other than an extent"));
        }
        match h.kind {
            RecordKind::Extent => {
                let end = h.a.checked_add(h.b).filter(|&e| e <= max);
                let nunits = h.b.div_ceil(du);
                if !h.a.is_multiple_of(du)
                    || h.b == 0
                    || end.is_none()
                    || h.payload_len != nunits * du
                    || h.checked_len != h.payload_len
                    || h.first_unit.checked_add(nunits).is_none()
                {
                    return Err(bad("inconsistent extent record"));
                }
                // A block-sum table only in `FSCXREC2` (parse refuses it in `FSCXREC1`), and only
                // for a payload that has room for one.
                if blocksums::has_table(&h.block_table)
                    && blocksums::blocks(h.checked_len).is_none()
                {
                    return Err(bad("block-sum table on an extent record too large for one"));
                }
                let ctx = self.load_ctx(&h.ctx, pos)?;
                let run = Run {
                    ctx,
                    data_off: pos + RECORD_HEADER_BLOCK,
                    nunits,
                    first_unit: h.first_unit,
                    sum: h.payload_sum,
                    sum_alg: h.sum_alg,
                    record_off: pos,
                    table: h.block_table,
                };
                self.map_run(h.a, h.b, run);
            }
            RecordKind::Truncate => {
                if h.a > max || h.b != 0 || h.payload_len != 0 || !fields_zero {
                    return Err(bad("inconsistent truncate record"));
                }
                self.map.truncate(h.a);
            }
            RecordKind::Punch => {
                let end = h.a.checked_add(h.b).and_then(|e| round_up(e, du));
                let (true, Some(end), 0, true) =
                    (h.a.is_multiple_of(du), end, h.payload_len, fields_zero)
                else {
                    return Err(bad("inconsistent punch record"));
                };
                self.map.unmap(h.a, end, du);
            }
            RecordKind::Checkpoint => self.apply_checkpoint(h, pos)?,
        }
        Ok(())
    }

    /// A checkpoint (only ever the first record): checks its header and table checksum, then maps
    /// every entry of the table and sets the size.
    fn apply_checkpoint(&mut self, h: &RecordHeader, pos: u64) -> Result<()> {
        let bad = |m: &str| corrupt_at(&self.what, pos, m);
        let table_len = h.b.checked_mul(CHECKPOINT_ENTRY_SIZE as u64);
        let data_start = table_len
            .and_then(|t| round_up(t, ALIGN))
            .and_then(|t| t.checked_add(RECORD_HEADER_BLOCK));
        let (Some(table_len), Some(data_start)) = (table_len, data_start) else {
            return Err(bad("checkpoint table size overflows"));
        };
        let payload_end = RECORD_HEADER_BLOCK + h.payload_len;
        if pos != FILE_HEADER_SIZE
            || h.seq != 0
            || h.checked_len != table_len
            || data_start > payload_end
            || h.a > EXTENT_MAX_FILE_SIZE
            || h.first_unit != 0
            || h.ctx.iter().any(|&x| x != 0)
        {
            return Err(bad("inconsistent checkpoint record"));
        }
        // The table's length comes from the record: it is checked and read in bounded pieces
        // (streamed checksum first, then the entries a chunk at a time), never allocated whole.
        let table_off = pos + RECORD_HEADER_BLOCK;
        match sum_range(h.sum_alg, self.file()?, table_off, table_len, &self.what) {
            Ok(sum) if sum == h.payload_sum => {}
            Ok(_) => return Err(bad("checkpoint table checksum mismatch")),
            Err(e) if e.errno() == Errno::IO => return Err(bad("checkpoint table truncated")),
            Err(e) => return Err(e),
        }
        const TABLE_CHUNK: u64 =
            (CHUNK / CHECKPOINT_ENTRY_SIZE as u64) * CHECKPOINT_ENTRY_SIZE as u64;
        let mut chunk = vec![0u8; table_len.min(TABLE_CHUNK) as usize];
        let mut prev_end = 0u64;
        let mut done = 0u64;
        while done < table_len {
            let n = (table_len - done).min(TABLE_CHUNK) as usize;
            let got = read_full_at(self.file()?, &mut chunk[..n], table_off + done)
                .map_err(|e| io_err(&self.what, e))?;
            if got != n {
                return Err(corrupt_at(&self.what, pos, "checkpoint table truncated"));
            }
            for (i, raw) in chunk[..n].chunks_exact(CHECKPOINT_ENTRY_SIZE).enumerate() {
                let at = table_off + done + (i * CHECKPOINT_ENTRY_SIZE) as u64;
                prev_end = self.apply_checkpoint_entry(h, pos, raw, at, data_start, prev_end)?;
            }
            done += n as u64;
        }
        self.map.truncate(h.a);
        Ok(())
    }

    /// Applies one checkpoint entry `raw` (at backing offset `at`) of the checkpoint `h` at
    /// `pos`; returns its logical end (entries are sorted and disjoint).
    fn apply_checkpoint_entry(
        &mut self,
        h: &RecordHeader,
        pos: u64,
        raw: &[u8],
        at: u64,
        data_start: u64,
        prev_end: u64,
    ) -> Result<u64> {
        let du = self.du;
        let payload_end = RECORD_HEADER_BLOCK + h.payload_len;
        let e = CheckpointEntry::parse(raw).map_err(|m| corrupt_at(&self.what, at, m))?;
        let nunits = e.len.div_ceil(du);
        let ok = e.logical.is_multiple_of(du)
            && e.len > 0
            && e.logical >= prev_end
            && e.logical.checked_add(e.len).is_some_and(|end| end <= h.a)
            && e.data_rel.is_multiple_of(du)
            && e.data_rel >= data_start
            && e.first_unit.checked_add(nunits).is_some()
            && e.data_rel
                .checked_add(nunits * du)
                .is_some_and(|end| end <= payload_end);
        if !ok {
            return Err(corrupt_at(&self.what, at, "inconsistent checkpoint entry"));
        }
        let ctx = self.load_ctx(&e.ctx, at)?;
        let run = Run {
            ctx,
            data_off: pos + e.data_rel,
            nunits,
            first_unit: e.first_unit,
            sum: e.sum,
            sum_alg: h.sum_alg,
            record_off: pos,
            table: [0; 6],
        };
        self.map_run(e.logical, e.len, run);
        Ok(e.logical + e.len)
    }
}
