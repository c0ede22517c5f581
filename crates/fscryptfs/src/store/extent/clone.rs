//! Cloning ranges as ciphertext (reflink, copy_file_range): every source piece becomes a new extent
//! record in the destination with the same context and original start, so its IVs are unchanged;
//! the units are shared with `FICLONERANGE` where the backing filesystem can, copied otherwise;
//! source holes become punch records. Nothing is decrypted and no key is needed.

use std::fs::File;

use fscrypt::{Errno, Error, Result};

use super::ciphertext::copy_ciphertext;
use super::format::{round_up, PayloadSum, RecordHeader, RecordKind};
use super::{ExtentFile, Run};
use crate::store::io_err;

/// One piece of a clone's source, clipped to the range: logical `[lo, hi)` of the source is stored
/// from unit `unit` of `run` on.
#[derive(Clone, Copy, Debug)]
struct SourcePiece {
    lo: u64,
    hi: u64,
    run: Run,
    unit: u64,
}

impl ExtentFile {
    /// Clones `len` bytes at `src_off` of `src` to `dst_off` of this file as ciphertext: every
    /// source extent piece becomes a new extent record here with the same context and original
    /// start (so its IVs are unchanged), its units copied with `FICLONERANGE` where the backing
    /// filesystem shares blocks, else byte by byte; source holes become holes. The caller has
    /// checked that both files use the same master key and policy (EXDEV here otherwise) and
    /// holds both files' locks. Offsets must be unit-aligned; a length that is not whole units is
    /// allowed only up to the source's end of file and when it reaches this file's end. Returns the
    /// bytes cloned (the range is clipped at the source's size). Each unit of the destination reads
    /// old or new data after a crash.
    pub fn clone_range(
        &mut self,
        src: &ExtentFile,
        src_off: u64,
        dst_off: u64,
        len: u64,
    ) -> Result<u64> {
        if src.policy != self.policy || src.du != self.du {
            return Err(Error::new(
                Errno::XDEV,
                format!(
                    "{} → {}: clone between different policies",
                    src.what, self.what
                ),
            ));
        }
        let (pieces, n) = src.clone_source(src_off, dst_off, len, self.map.size())?;
        let src_file = src.file()?.try_clone().map_err(|e| io_err(&src.what, e))?;
        self.clone_pieces(&src_file, pieces, src_off, dst_off, n)?;
        Ok(n)
    }

    /// [`clone_range`](Self::clone_range) within this file (ranges may overlap: the copy is taken
    /// from the extents as they were before it).
    pub fn clone_within(&mut self, src_off: u64, dst_off: u64, len: u64) -> Result<u64> {
        let (pieces, n) = self.clone_source(src_off, dst_off, len, self.map.size())?;
        let f = self
            .file()?
            .try_clone()
            .map_err(|e| io_err(&self.what, e))?;
        self.clone_pieces(&f, pieces, src_off, dst_off, n)?;
        Ok(n)
    }

    /// Validates a clone from this file and snapshots the source pieces clipped to the range, with
    /// the clipped length.
    fn clone_source(
        &self,
        src_off: u64,
        dst_off: u64,
        len: u64,
        dst_size: u64,
    ) -> Result<(Vec<SourcePiece>, u64)> {
        let du = self.du;
        if !src_off.is_multiple_of(du) || !dst_off.is_multiple_of(du) {
            return Err(Error::invalid(format!(
                "{}: clone offsets must be multiples of {du}",
                self.what
            )));
        }
        let size = self.map.size();
        if src_off >= size || len == 0 {
            return Ok((Vec::new(), 0));
        }
        let n = len.min(size - src_off);
        let dst_end = self.check_end(dst_off, n)?;
        if !n.is_multiple_of(du) && dst_end < dst_size {
            return Err(Error::invalid(format!(
                "{}: a clone ending inside a data unit must reach the destination's end",
                self.what
            )));
        }
        let pieces = self
            .map
            .overlapping(src_off, src_off + n)
            .into_iter()
            .map(|(s, p)| {
                let lo = s.max(src_off);
                SourcePiece {
                    lo,
                    hi: p.end.min(src_off + n),
                    run: self.runs[p.run],
                    unit: p.unit + (lo - s) / du,
                }
            })
            .collect();
        Ok((pieces, n))
    }

    /// Appends the clone of `pieces` (source range `[src_off, src_off + n)` of `src_file`) at
    /// `dst_off`: an extent record per piece, a punch record per hole between them, and a
    /// truncate record when the clone grows this file.
    fn clone_pieces(
        &mut self,
        src_file: &File,
        pieces: Vec<SourcePiece>,
        src_off: u64,
        dst_off: u64,
        n: u64,
    ) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let du = self.du;
        let to_dst = |x: u64| x - src_off + dst_off;
        let mut cursor = src_off;
        for SourcePiece { lo, hi, run, unit } in pieces {
            self.punch_gap(to_dst(cursor), to_dst(lo))?;
            let bytes = (hi - lo).div_ceil(du) * du;
            let h = RecordHeader::extent(
                to_dst(lo),
                hi - lo,
                run.first_unit + unit,
                bytes,
                run.ctx.to_bytes(),
            );
            // The copied bytes are summed anew with the new record's algorithm (the source run's
            // may be the older SHA-256 one), and get a block-sum table like any new extent.
            self.append(h, |f, at, what| {
                let src_at = run.data_off + unit * du;
                let want_table = h.sum_alg == PayloadSum::Xxh3;
                copy_ciphertext(h.sum_alg, src_file, src_at, f, at, bytes, what, want_table)
            })?;
            cursor = hi;
        }
        let dst_end = to_dst(src_off + n);
        self.punch_gap(to_dst(cursor), dst_end)?;
        if self.map.size() < dst_end {
            self.append_meta(RecordKind::Truncate, dst_end, 0)?;
        }
        Ok(())
    }

    /// Punches the whole units from `round_up(from)` to `to` (a clone's source hole).
    fn punch_gap(&mut self, from: u64, to: u64) -> Result<()> {
        let from = round_up(from, self.du).unwrap_or(u64::MAX);
        if from >= to || from >= self.map.size() {
            return Ok(());
        }
        self.append_meta(RecordKind::Punch, from, to - from)
    }
}
