//! Changing a per-extent file: appending records at the end of the log — a new extent (encrypted
//! here with the caller's key), a truncate, a punch — and `sync`, which makes them durable and
//! writes the next commit slot. Every append goes through `ExtentFile::append` or
//! `ExtentFile::append_meta`: a torn or failed tail is cut first, and a failed write marks the
//! tail to be cut, so no stale record can ever follow a new one.

use std::fs::File;
use std::os::unix::fs::FileExt;

use fscrypt::extent::{ExtentContext, ExtentKey};
use fscrypt::{Errno, Error, Result};

use super::format::{Commit, PayloadSum, RecordHeader, RecordKind, RECORD_HEADER_BLOCK};
use super::{blocksums, BackingPath, ExtentFile};
use crate::store::{io_err, write_all_vectored_at, EXTENT_MAX_FILE_SIZE};

impl ExtentFile {
    /// Before writing beyond `end`: cut a torn or failed tail, durably, so that no stale record can
    /// ever follow the new one.
    fn prepare_append(&mut self) -> Result<()> {
        if self.trim_pending {
            let f = self.file()?;
            f.set_len(self.end)
                .and_then(|()| f.sync_data())
                .map_err(|e| io_err(format!("{}: cutting a torn tail", self.what), e))?;
            self.trim_pending = false;
        }
        Ok(())
    }

    /// Appends a record: writes the header block, the payload when given here (else it is
    /// already at `end + 4096`) and the padding, applies the record, advances the log.
    /// `table`: the payload's block-sum table, written into the header block (its hash into the
    /// header).
    fn finish_append(
        &mut self,
        mut h: RecordHeader,
        table: Option<&[u8]>,
        payload: Option<&[u8]>,
    ) -> Result<()> {
        h.seq = self.next_seq;
        h.du_bits = self.du_bits;
        if let Some(t) = table {
            h.block_table = blocksums::table_hash(t);
        }
        let mut block = h.to_block();
        if let Some(t) = table {
            let at = blocksums::TABLE_OFF as usize;
            block[at..at + t.len()].copy_from_slice(t);
        }
        let pos = self.end;
        let rec_len = h
            .record_len()
            .ok_or_else(|| Error::invalid("record too large"))?;
        let pad = vec![0u8; (rec_len - RECORD_HEADER_BLOCK - h.payload_len) as usize];
        let f = self.file()?;
        let res = match payload {
            // One write for the whole record: nothing orders its parts before the next sync.
            Some(p) => write_all_vectored_at(f, &[&block, p, &pad], pos),
            None => f
                .write_all_at(&block, pos)
                .and_then(|()| f.write_all_at(&pad, pos + RECORD_HEADER_BLOCK + h.payload_len)),
        };
        if let Err(e) = res {
            self.trim_pending = true;
            return Err(io_err(format!("{}: appending at {pos}", self.what), e));
        }
        self.apply_record(&h, pos, rec_len)?;
        self.end = pos + rec_len;
        self.next_seq += 1;
        Ok(())
    }

    /// Appends the record `h` with a payload: `write_payload(file, at, what)` writes the
    /// `h.payload_len` bytes at `at` (right after the record's header block) and returns their
    /// checksum with `h.sum_alg`, which goes into the header, and their block-sum table if they
    /// get one (`blocksums::table_of`; `FSCXREC2` extent records only).
    pub(super) fn append(
        &mut self,
        mut h: RecordHeader,
        write_payload: impl FnOnce(&File, u64, &BackingPath) -> Result<([u8; 8], Option<Vec<u8>>)>,
    ) -> Result<()> {
        self.prepare_append()?;
        let table = match write_payload(self.file()?, self.end + RECORD_HEADER_BLOCK, &self.what) {
            Ok((sum, table)) => {
                h.payload_sum = sum;
                table
            }
            Err(e) => {
                self.trim_pending = true;
                return Err(e);
            }
        };
        self.finish_append(h, table.as_deref(), None)
    }

    /// Appends the record `h` whose payload is `payload`, in memory, with its checksum `sum`
    /// (with `h.sum_alg`) and block-sum table (`FSCXREC2` records), computed before: the header
    /// block, the payload and the padding go out in one write.
    fn append_payload(
        &mut self,
        mut h: RecordHeader,
        payload: &[u8],
        sum: [u8; 8],
        table: Option<&[u8]>,
    ) -> Result<()> {
        self.prepare_append()?;
        h.payload_sum = sum;
        self.finish_append(h, table, Some(payload))
    }

    /// Appends a record without payload ([`RecordHeader::meta`]).
    pub(super) fn append_meta(&mut self, kind: RecordKind, a: u64, b: u64) -> Result<()> {
        self.prepare_append()?;
        self.finish_append(RecordHeader::meta(kind, a, b), None, None)
    }

    /// `off + len`, or EFBIG when it is beyond the maximum file size.
    pub(super) fn check_end(&self, off: u64, len: u64) -> Result<u64> {
        off.checked_add(len)
            .filter(|&e| e <= EXTENT_MAX_FILE_SIZE)
            .ok_or_else(|| {
                Error::new(
                    Errno::FBIG,
                    format!("{}: beyond the maximum file size", self.what),
                )
            })
    }

    /// Writes out one new extent: `plaintext` at logical `offset`, encrypted with `key` (derived
    /// from `ctx`, whose nonce was just drawn) with IVs 0, 1, ... from the extent's start, appended
    /// to the log: [`SealedExtent::seal`], then [`append_sealed`](Self::append_sealed). Not
    /// durable until `sync`.
    pub fn write_extent(
        &mut self,
        offset: u64,
        plaintext: &[u8],
        ctx: &ExtentContext,
        key: &ExtentKey,
    ) -> Result<()> {
        let sealed = SealedExtent::seal(self.du, offset, plaintext, ctx, key)?;
        self.append_sealed(sealed)
    }

    /// Appends an extent sealed without the log at hand. It replaces whole data units: its offset
    /// must be unit-aligned and its length a whole number of units unless the extent reaches the
    /// end of the file (the caller merges partial units, read-modify-write, before writeout).
    /// EINVAL for a misaligned extent, a context that does not match the file's policy or a nonce
    /// already used in this file (that would reuse a (key, IV) pair); EFBIG beyond the maximum
    /// size. Not durable until `sync`.
    pub fn append_sealed(&mut self, sealed: SealedExtent) -> Result<()> {
        let SealedExtent {
            offset,
            len,
            ctx,
            payload,
            sum,
            table,
        } = sealed;
        if len == 0 {
            return Ok(());
        }
        let du = self.du;
        ctx.validate_against(&self.policy)
            .map_err(|e| Error::invalid(format!("{}: new extent: {}", self.what, e.message())))?;
        if self.nonces.contains(&ctx.nonce) {
            return Err(Error::invalid(format!(
                "{}: new extent reuses a nonce already in the file",
                self.what
            )));
        }
        let end = self.check_end(offset, len)?;
        if !offset.is_multiple_of(du)
            || (!len.is_multiple_of(du) && end < self.map.size())
            || payload.len() as u64 != len.div_ceil(du) * du
        {
            return Err(Error::invalid(format!(
                "{}: extent [{offset}, {end}) is not whole data units of {du} bytes",
                self.what
            )));
        }
        let h = RecordHeader::extent(offset, len, 0, payload.len() as u64, ctx.to_bytes());
        self.append_payload(h, &payload, sum, table.as_deref())
    }

    /// Sets the logical size (a truncate record; extending makes a hole). Bytes beyond a
    /// smaller size are gone, also from a partial final unit. Not durable until `sync`.
    pub fn truncate(&mut self, len: u64) -> Result<()> {
        self.check_end(len, 0)?;
        if len == self.map.size() {
            return Ok(());
        }
        self.append_meta(RecordKind::Truncate, len, 0)
    }

    /// Makes `[offset, offset + len)` a hole (a punch record); the size is unchanged. `offset` must
    /// be unit-aligned and `len` whole units unless the range reaches the end of the file.
    pub fn punch_hole(&mut self, offset: u64, len: u64) -> Result<()> {
        let end = self.check_end(offset, len)?;
        if !offset.is_multiple_of(self.du)
            || (!len.is_multiple_of(self.du) && end < self.map.size())
        {
            return Err(Error::invalid(format!(
                "{}: hole [{offset}, {end}) is not whole data units",
                self.what
            )));
        }
        if len == 0 || offset >= self.map.size() {
            return Ok(());
        }
        self.append_meta(RecordKind::Punch, offset, len)
    }

    /// Makes everything appended so far durable: `fdatasync` (the records), then the next commit
    /// slot (the one not holding the latest commit), then `fdatasync` again.
    pub fn sync(&mut self) -> Result<()> {
        if self.end == self.durable_end {
            return Ok(());
        }
        let what = &self.what;
        let f = self.file()?;
        f.sync_data().map_err(|e| io_err(what, e))?;
        let c = Commit {
            gen: self.gen + 1,
            durable_end: self.end,
            next_seq: self.next_seq,
        };
        f.write_all_at(&c.to_bytes(), c.slot())
            .and_then(|()| f.sync_data())
            .map_err(|e| io_err(format!("{what}: commit"), e))?;
        self.gen = c.gen;
        self.durable_end = self.end;
        Ok(())
    }
}

/// A new extent encrypted (its units with IVs 0, 1, ... from its start under the key of its
/// context), not yet appended: sealing needs no log, so the filesystem seals the page cache's
/// writeback without the file's lock and holds it only to append ([`ExtentFile::append_sealed`],
/// which checks it against the log). Owns ciphertext and its checksums only.
pub struct SealedExtent {
    offset: u64,
    len: u64,
    ctx: ExtentContext,
    payload: Vec<u8>,
    /// The payload's checksum with [`PayloadSum::CURRENT`], the algorithm of every new record.
    sum: [u8; 8],
    /// Its block-sum table (`FSCXREC2` records).
    table: Option<Vec<u8>>,
}

impl SealedExtent {
    /// The logical end of the extent.
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }

    /// `plaintext` at logical `offset` of a file with data units of `du` bytes, encrypted with
    /// `key` (derived from `ctx`, whose nonce was just drawn); a last partial unit is padded with
    /// zeros. EINVAL for an offset that is not unit-aligned. The context is checked against the
    /// file's policy when it is appended.
    pub fn seal(
        du: u64,
        offset: u64,
        plaintext: &[u8],
        ctx: &ExtentContext,
        key: &ExtentKey,
    ) -> Result<SealedExtent> {
        if !offset.is_multiple_of(du) {
            return Err(Error::invalid(format!(
                "new extent at {offset}: not aligned to data units of {du} bytes"
            )));
        }
        let len = plaintext.len() as u64;
        // Copied then padded: no zeroing of bytes the plaintext overwrites.
        let padded = (len.div_ceil(du) * du) as usize;
        let mut payload = Vec::with_capacity(padded);
        payload.extend_from_slice(plaintext);
        payload.resize(padded, 0);
        key.encrypt_units(0, du as usize, &mut payload)?;
        let alg = PayloadSum::CURRENT;
        let table = (alg == PayloadSum::Xxh3)
            .then(|| blocksums::table_of(&payload))
            .flatten();
        Ok(SealedExtent {
            offset,
            len,
            ctx: *ctx,
            sum: alg.digest(&payload),
            table,
            payload,
        })
    }
}
