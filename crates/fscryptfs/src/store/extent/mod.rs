//! The per-extent layout's storage engine: one regular backing file as a log of self-describing,
//! copy-on-write extents (the btrfs v6 model; docs/FORMAT.md, "Per-extent layout").
//!
//! This module owns the bytes of a layout-2 backing file from offset 128 of its header onwards: the
//! two commit slots in the header's reserved area and the log that starts at 4096. It owns nothing
//! else — the base header (bytes 0..80: inode number, the file's fscrypt context) belongs to
//! `store::meta`, keys belong to the keyring — and it knows no FUSE. Keys come in from the caller:
//! an `ExtentKey` with the fresh `ExtentContext` of each extent being written, and a closure that
//! derives the key of any existing extent when reading. So the engine can never derive a key the
//! caller's active reference would not allow, and the offline tools can list and check a file
//! without any key.
//!
//! Why a log: every extent has its own nonce and key and its IVs count from the extent's start, so
//! ciphertext is never rewritten in place (that would reuse a (key, IV) pair); an overwrite is a new
//! extent with a fresh nonce, and a clone copies ciphertext with its context and original start.
//! Space held by replaced extents comes back by compaction, which copies live ciphertext into a new
//! file without decrypting it. Crash safety comes from appending only, checksums over every record
//! header and payload, and a commit slot (two, alternating) written after each `fdatasync`.

mod format;
mod map;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use fscrypt::context::Context;
use fscrypt::extent::{extent_policy, ExtentContext, ExtentKey, EXTENT_CONTEXT_SIZE};
use fscrypt::policy::Policy;
use fscrypt::{Errno, Error, Result};
use sha2::{Digest, Sha256};

use format::{
    encode_base_header, parse_base_header, round_up, CheckpointEntry, Commit, RecordHeader, ALIGN,
    CHECKPOINT_ENTRY_SIZE, COMMIT_SLOTS, COMMIT_SLOT_SIZE, RECORD_HEADER_BLOCK, RECORD_HEADER_USED,
};
pub use format::{Kind, LAYOUT_EXTENT};
use map::Map;

use super::{checksum, io_err, read_full_at, FILE_HEADER_SIZE};

/// `needs_compaction` answers yes once the log exceeds twice its compacted size plus this much.
pub const COMPACT_SLACK: u64 = 64 * 1024;

/// Largest chunk of ciphertext read or copied at once.
const CHUNK: u64 = 1 << 20;

/// A run of stored ciphertext units of one extent (the payload of an extent record, or one entry of
/// a checkpoint).
#[derive(Clone, Copy, Debug)]
struct Run {
    ctx: ExtentContext,
    /// Backing offset of the run's first unit.
    data_off: u64,
    nunits: u64,
    /// Extent-relative index of the run's first unit: the IV of unit `k` of the run is
    /// `first_unit + k`.
    first_unit: u64,
    /// SHA-256 of the run's ciphertext, first 8 bytes.
    sum: [u8; 8],
    /// Backing offset of the record holding the run.
    record_off: u64,
}

/// One record of the log, as `inspect` and `fsck` list them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    /// Backing offset of the record's header block.
    pub offset: u64,
    /// Bytes the record occupies.
    pub len: u64,
    /// Its kind.
    pub kind: Kind,
    /// Its sequence number.
    pub seq: u64,
}

/// One live mapping of the file, for `inspect`: logical bytes `[logical, logical + len)` are
/// stored as consecutive units of one extent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtentInfo {
    /// Logical offset (a multiple of the data-unit size).
    pub logical: u64,
    /// Logical length in bytes.
    pub len: u64,
    /// The extent's context (mode, master key identifier, nonce).
    pub ctx: ExtentContext,
    /// Extent-relative index of the unit at `logical`: its IV (`fscryptfs crypt --extent-nonce
    /// NONCE --data-unit-index first_unit`).
    pub first_unit: u64,
    /// Backing offset of that unit's ciphertext; the following units follow it.
    pub backing_offset: u64,
    /// Backing offset of the record that stores it.
    pub record_offset: u64,
}

/// A problem (or, with `note`, a legitimate crash leftover) found by [`ExtentFile::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Backing offset concerned, when there is one.
    pub offset: Option<u64>,
    /// True for what a crash legitimately leaves and the engine handles.
    pub note: bool,
    /// What is wrong.
    pub message: String,
}

/// One per-extent backing file, opened and recovered.
pub struct ExtentFile {
    file: File,
    /// The backing path (from `/proc/self/fd`), for messages.
    what: String,
    policy: Policy,
    du: u64,
    du_bits: u8,
    runs: Vec<Run>,
    map: Map,
    records: Vec<RecordInfo>,
    /// Nonces of every run in the file: a new extent must not reuse one.
    nonces: HashSet<[u8; 16]>,
    /// End of the valid log (where the next record goes).
    end: u64,
    /// End of the log as of the last commit.
    durable_end: u64,
    next_seq: u64,
    /// Generation of the last commit (0: none yet).
    gen: u64,
    /// Bytes beyond `end` (a torn tail, or a failed append) must be cut, durably, before the next
    /// append, so no stale record can follow a new one.
    trim_pending: bool,
    /// `compacted_len` as of log end `.0` (every change appends, so the end keys it): a writer
    /// asks after every write, and the answer costs a walk of the whole map.
    compacted_memo: std::sync::Mutex<Option<(u64, u64)>>,
}

fn backing_name(file: &File) -> String {
    let fd = file.as_raw_fd();
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| format!("backing fd {fd}"))
}

fn corrupt_at(what: &str, off: u64, msg: impl std::fmt::Display) -> Error {
    let e = Error::corrupt(format!("{what}: backing offset {off}: {msg}"));
    tracing::warn!("{e}");
    e
}

/// First 8 bytes of SHA-256 over `len` bytes of `f` at `off` (streamed). EIO if they are not all there.
fn sum_range(f: &File, off: u64, len: u64, what: &str) -> Result<[u8; 8]> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; len.min(CHUNK) as usize];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(CHUNK) as usize;
        let got = read_full_at(f, &mut buf[..n], off + done)
            .map_err(|e| io_err(format!("{what}: backing offset {}", off + done), e))?;
        if got != n {
            return Err(Error::new(
                Errno::IO,
                format!(
                    "{what}: backing offset {}: short read",
                    off + done + got as u64
                ),
            ));
        }
        h.update(&buf[..n]);
        done += n as u64;
    }
    let d = h.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    Ok(out)
}

/// Copies `len` bytes of ciphertext from `src` at `src_off` to `dst` at `dst_off` (4096-aligned):
/// `FICLONERANGE` (shared blocks) when both ranges are block-aligned and the backing filesystem can,
/// else a byte copy. Returns the checksum of the bytes.
fn copy_ciphertext(
    src: &File,
    src_off: u64,
    dst: &File,
    dst_off: u64,
    len: u64,
    what: &str,
) -> Result<[u8; 8]> {
    let cloned = src_off.is_multiple_of(ALIGN)
        && dst_off.is_multiple_of(ALIGN)
        && len.is_multiple_of(ALIGN)
        && len > 0
        && ficlonerange(src, src_off, dst, dst_off, len);
    if cloned {
        return sum_range(src, src_off, len, what);
    }
    let mut h = Sha256::new();
    let mut buf = vec![0u8; len.min(CHUNK) as usize];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(CHUNK) as usize;
        let got = read_full_at(src, &mut buf[..n], src_off + done)
            .map_err(|e| io_err(format!("{what}: backing offset {}", src_off + done), e))?;
        if got != n {
            return Err(Error::new(
                Errno::IO,
                format!("{what}: backing offset {}: short read", src_off + done),
            ));
        }
        h.update(&buf[..n]);
        dst.write_all_at(&buf[..n], dst_off + done)
            .map_err(|e| io_err(format!("{what}: writing at {}", dst_off + done), e))?;
        done += n as u64;
    }
    let d = h.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    Ok(out)
}

/// `ioctl(FICLONERANGE)`; false when the backing filesystem cannot (EOPNOTSUPP, EXDEV, EINVAL, ...).
fn ficlonerange(src: &File, src_off: u64, dst: &File, dst_off: u64, len: u64) -> bool {
    let arg = libc::file_clone_range {
        src_fd: i64::from(src.as_raw_fd()),
        src_offset: src_off,
        src_length: len,
        dest_offset: dst_off,
    };
    // SAFETY: FICLONERANGE reads one `struct file_clone_range`, which `arg` is and outlives the
    // call; both descriptors are open for the duration.
    let rc = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONERANGE, &arg) };
    rc == 0
}

impl ExtentFile {
    /// Writes the header of a new, empty per-extent file (layout 2, no commit yet) into `file`
    /// (which must be empty) and opens it. The caller makes it durable (`sync`) and names it.
    pub fn create(file: File, ino: u64, ctx: &Context) -> Result<ExtentFile> {
        let what = backing_name(&file);
        let policy = *ctx.policy();
        extent_policy(&policy)?;
        let mut block = vec![0u8; FILE_HEADER_SIZE as usize];
        block[..80].copy_from_slice(&encode_base_header(ino, 0, ctx));
        file.set_len(0)
            .and_then(|()| file.write_all_at(&block, 0))
            .map_err(|e| io_err(&what, e))?;
        let du = 1usize << policy.data_unit_bits(&super::fs_params());
        ExtentFile::open(file, &policy, du)
    }

    /// Opens a per-extent backing file and recovers its map: replays the log from 4096 in sequence
    /// order, trusting (header checksums only) what the last commit covers and checking payloads
    /// beyond it, and drops a torn tail. Every extent's context is checked against `policy`
    /// (EUCLEAN naming the backing offset, logged, on a mismatch). EINVAL when `policy` cannot have
    /// extents or `du_size` is not its data-unit size; EUCLEAN for a damaged header or committed
    /// record.
    pub fn open(file: File, policy: &Policy, du_size: usize) -> Result<ExtentFile> {
        let what = backing_name(&file);
        extent_policy(policy)?;
        let fsp = super::fs_params();
        let du_bits = policy.data_unit_bits(&fsp);
        if du_size != 1usize << du_bits {
            return Err(Error::invalid(format!(
                "{what}: data-unit size {du_size} is not the policy's ({})",
                1u64 << du_bits
            )));
        }
        let mut header = vec![0u8; FILE_HEADER_SIZE as usize];
        read_full_at(&file, &mut header, 0).map_err(|e| io_err(&what, e))?;
        let (_ino, ctx) = parse_base_header(&header, &what)?;
        if ctx.policy() != policy {
            return Err(Error::invalid(format!(
                "{what}: the file's policy is not the policy given"
            )));
        }
        let commit = COMMIT_SLOTS
            .iter()
            .filter_map(|&o| Commit::parse(&header[o as usize..o as usize + COMMIT_SLOT_SIZE]))
            .max_by_key(|c| c.gen);
        let file_len = file.metadata().map_err(|e| io_err(&what, e))?.len();
        let mut ef = ExtentFile {
            file,
            what,
            policy: *policy,
            du: du_size as u64,
            du_bits,
            runs: Vec::new(),
            map: Map::default(),
            records: Vec::new(),
            nonces: HashSet::new(),
            end: FILE_HEADER_SIZE,
            durable_end: commit.map_or(FILE_HEADER_SIZE, |c| c.durable_end),
            next_seq: 0,
            gen: commit.map_or(0, |c| c.gen),
            trim_pending: false,
            compacted_memo: std::sync::Mutex::new(None),
        };
        ef.replay(file_len)?;
        if let Some(c) = commit {
            ef.next_seq = ef.next_seq.max(c.next_seq);
        }
        Ok(ef)
    }

    /// The recovery scan (see [`open`](Self::open)).
    fn replay(&mut self, file_len: u64) -> Result<()> {
        let mut pos = FILE_HEADER_SIZE;
        let mut seq = 0u64;
        loop {
            let trusted = pos < self.durable_end;
            // A committed record that fails is corruption; a later one is a torn tail.
            let torn = |why: &str| -> Result<()> {
                if trusted {
                    return Err(corrupt_at(&self.what, pos, why));
                }
                tracing::info!(
                    "{}: backing offset {pos}: dropping an incomplete record ({why})",
                    self.what
                );
                Ok(())
            };
            if pos >= file_len {
                // The end of the log: torn only if a commit promised more.
                if trusted {
                    torn("the log ends before its last commit")?;
                }
                break;
            }
            let mut hb = [0u8; RECORD_HEADER_USED];
            let got = read_full_at(&self.file, &mut hb, pos).map_err(|e| io_err(&self.what, e))?;
            let h = match RecordHeader::parse(&hb[..got]) {
                Ok(h) if h.seq == seq => h,
                Ok(_) => {
                    torn("out-of-sequence record")?;
                    break;
                }
                Err(why) => {
                    torn(why)?;
                    break;
                }
            };
            let Some(rec_end) = h.record_len().and_then(|l| pos.checked_add(l)) else {
                return Err(corrupt_at(&self.what, pos, "record length overflows"));
            };
            if rec_end > file_len {
                torn("record extends beyond the end of the file")?;
                break;
            }
            if trusted && rec_end > self.durable_end {
                return Err(corrupt_at(
                    &self.what,
                    pos,
                    "record straddles the last commit",
                ));
            }
            if h.checked_len > h.payload_len {
                return Err(corrupt_at(&self.what, pos, "bad checked length"));
            }
            let payload = pos + RECORD_HEADER_BLOCK;
            if !trusted
                && sum_range(&self.file, payload, h.checked_len, &self.what)? != h.payload_sum
            {
                torn("payload checksum mismatch")?;
                break;
            }
            self.apply(&h, pos)?;
            self.records.push(RecordInfo {
                offset: pos,
                len: rec_end - pos,
                kind: h.kind,
                seq: h.seq,
            });
            pos = rec_end;
            seq += 1;
        }
        if pos < self.durable_end {
            return Err(corrupt_at(
                &self.what,
                pos,
                format!("log ends before its last commit ({})", self.durable_end),
            ));
        }
        self.end = pos;
        self.next_seq = seq;
        self.trim_pending = file_len > pos;
        Ok(())
    }

    /// Parses, validates and checks against the policy an extent context found at `off`.
    fn load_ctx(&self, bytes: &[u8; EXTENT_CONTEXT_SIZE], off: u64) -> Result<ExtentContext> {
        let ctx = ExtentContext::parse(bytes).map_err(|e| corrupt_at(&self.what, off, e))?;
        ctx.validate_against(&self.policy)
            .map_err(|e| corrupt_at(&self.what, off, e))?;
        Ok(ctx)
    }

    fn add_run(&mut self, run: Run) -> usize {
        self.nonces.insert(run.ctx.nonce);
        self.runs.push(run);
        self.runs.len() - 1
    }

    /// Applies one record (read back at recovery, or just appended) to the map. EUCLEAN for a
    /// record whose fields are inconsistent.
    fn apply(&mut self, h: &RecordHeader, pos: u64) -> Result<()> {
        let du = self.du;
        let max = super::EXTENT_MAX_FILE_SIZE;
        let bad = |m: &str| corrupt_at(&self.what, pos, m);
        if h.du_bits != self.du_bits {
            return Err(bad("record data-unit size differs from the policy's"));
        }
        let fields_zero = h.first_unit == 0 && h.ctx.iter().all(|&x| x == 0);
        match h.kind {
            format::Kind::Extent => {
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
                let ctx = self.load_ctx(&h.ctx, pos)?;
                let run = self.add_run(Run {
                    ctx,
                    data_off: pos + RECORD_HEADER_BLOCK,
                    nunits,
                    first_unit: h.first_unit,
                    sum: h.payload_sum,
                    record_off: pos,
                });
                self.map.map(h.a, h.a + h.b, run, 0, du);
            }
            format::Kind::Truncate => {
                if h.a > max || h.b != 0 || h.payload_len != 0 || !fields_zero {
                    return Err(bad("inconsistent truncate record"));
                }
                self.map.truncate(h.a);
            }
            format::Kind::Punch => {
                let end = h.a.checked_add(h.b).and_then(|e| round_up(e, du));
                let (true, Some(end), 0, true) =
                    (h.a.is_multiple_of(du), end, h.payload_len, fields_zero)
                else {
                    return Err(bad("inconsistent punch record"));
                };
                self.map.unmap(h.a, end, du);
            }
            format::Kind::Checkpoint => self.apply_checkpoint(h, pos)?,
        }
        Ok(())
    }

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
            || h.a > super::EXTENT_MAX_FILE_SIZE
            || h.first_unit != 0
            || h.ctx.iter().any(|&x| x != 0)
        {
            return Err(bad("inconsistent checkpoint record"));
        }
        // The table's length comes from the record: it is checked and read in bounded pieces
        // (streamed checksum first, then the entries a chunk at a time), never allocated whole.
        let table_off = pos + RECORD_HEADER_BLOCK;
        match sum_range(&self.file, table_off, table_len, &self.what) {
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
            let got = read_full_at(&self.file, &mut chunk[..n], table_off + done)
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
        {
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
            let run = self.add_run(Run {
                ctx,
                data_off: pos + e.data_rel,
                nunits,
                first_unit: e.first_unit,
                sum: e.sum,
                record_off: pos,
            });
            self.map.map(e.logical, e.logical + e.len, run, 0, du);
            Ok(e.logical + e.len)
        }
    }

    /// Before writing beyond `end`: cut a torn or failed tail, durably, so that no stale record can
    /// ever follow the new one.
    fn prepare_append(&mut self) -> Result<()> {
        if self.trim_pending {
            self.file
                .set_len(self.end)
                .and_then(|()| self.file.sync_data())
                .map_err(|e| io_err(format!("{}: cutting a torn tail", self.what), e))?;
            self.trim_pending = false;
        }
        Ok(())
    }

    /// Appends a record whose payload (if any) the caller already wrote at `end + 4096`: writes the
    /// header block and the padding, applies the record, advances the log.
    fn finish_append(&mut self, mut h: RecordHeader) -> Result<()> {
        h.seq = self.next_seq;
        h.du_bits = self.du_bits;
        let pos = self.end;
        let rec_len = h
            .record_len()
            .ok_or_else(|| Error::invalid("record too large"))?;
        let mut block = vec![0u8; RECORD_HEADER_BLOCK as usize];
        block[..RECORD_HEADER_USED].copy_from_slice(&h.to_bytes());
        let res = self.file.write_all_at(&block, pos).and_then(|()| {
            let pad = rec_len - RECORD_HEADER_BLOCK - h.payload_len;
            if pad > 0 {
                let zeros = vec![0u8; pad as usize];
                self.file
                    .write_all_at(&zeros, pos + RECORD_HEADER_BLOCK + h.payload_len)
            } else {
                Ok(())
            }
        });
        if let Err(e) = res {
            self.trim_pending = true;
            return Err(io_err(format!("{}: appending at {pos}", self.what), e));
        }
        self.apply(&h, pos)?;
        self.records.push(RecordInfo {
            offset: pos,
            len: rec_len,
            kind: h.kind,
            seq: h.seq,
        });
        self.end = pos + rec_len;
        self.next_seq += 1;
        Ok(())
    }

    fn meta_record(kind: Kind, a: u64, b: u64) -> RecordHeader {
        RecordHeader {
            kind,
            du_bits: 0,
            seq: 0,
            a,
            b,
            first_unit: 0,
            payload_len: 0,
            checked_len: 0,
            ctx: [0; EXTENT_CONTEXT_SIZE],
            payload_sum: checksum(&[]),
        }
    }

    fn check_end(&self, off: u64, len: u64) -> Result<u64> {
        off.checked_add(len)
            .filter(|&e| e <= super::EXTENT_MAX_FILE_SIZE)
            .ok_or_else(|| {
                Error::new(
                    Errno::FBIG,
                    format!("{}: beyond the maximum file size", self.what),
                )
            })
    }

    /// The logical (plaintext) size.
    pub fn logical_size(&self) -> u64 {
        self.map.size()
    }

    /// Bytes the log occupies in the backing file (the header included).
    pub fn backing_len(&self) -> u64 {
        self.end
    }

    /// The data-unit size.
    pub fn data_unit_size(&self) -> usize {
        self.du as usize
    }

    /// The backing path, as messages name it.
    pub fn backing_path(&self) -> &str {
        &self.what
    }

    /// Reads the backing path again (after the caller renamed the file, e.g. a compacted copy
    /// over the original).
    pub fn refresh_path(&mut self) {
        self.what = backing_name(&self.file);
    }

    /// Reads up to `buf.len()` bytes at `offset`; holes read as zeros, nothing beyond the size.
    /// `key_for` gives the key of each extent met (called once per extent per call; owned or
    /// shared, e.g. `Arc<ExtentKey>` from the caller's cache). EIO when a unit does not decrypt or
    /// the backing file is short.
    pub fn read<F, K>(&self, offset: u64, buf: &mut [u8], key_for: F) -> Result<usize>
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
        buf.fill(0);
        let du = self.du;
        let mut keys: Vec<([u8; 16], K)> = Vec::new();
        let mut ct = Vec::new();
        for (s, p) in self.map.overlapping(offset, offset + n) {
            let run = self.runs[p.run];
            let ki = match keys.iter().position(|(nonce, _)| *nonce == run.ctx.nonce) {
                Some(i) => i,
                None => {
                    keys.push((run.ctx.nonce, key_for(&run.ctx)?));
                    keys.len() - 1
                }
            };
            let lo = s.max(offset);
            let hi = p.end.min(offset + n);
            // Units [u, u_end) of the piece, processed in chunks.
            let mut u = (lo - s) / du;
            let u_end = (hi - s).div_ceil(du);
            while u < u_end {
                let cnt = (u_end - u).min((CHUNK / du).max(1));
                let unit_in_run = p.unit + u;
                if unit_in_run + cnt > run.nunits {
                    return Err(corrupt_at(&self.what, run.record_off, "map beyond its run"));
                }
                let at = run.data_off + unit_in_run * du;
                ct.resize((cnt * du) as usize, 0);
                let got = read_full_at(&self.file, &mut ct, at)
                    .map_err(|e| io_err(format!("{}: backing offset {at}", self.what), e))?;
                if got != ct.len() {
                    return Err(Error::new(
                        Errno::IO,
                        format!("{}: backing offset {at}: short read", self.what),
                    ));
                }
                keys[ki]
                    .1
                    .borrow()
                    .decrypt_units(run.first_unit + unit_in_run, du as usize, &mut ct)
                    .map_err(|e| {
                        Error::new(
                            Errno::IO,
                            format!("{}: backing offset {at}: decrypting: {e}", self.what),
                        )
                    })?;
                let chunk_lo = s + u * du;
                let from = lo.max(chunk_lo);
                let to = hi.min(chunk_lo + cnt * du);
                buf[(from - offset) as usize..(to - offset) as usize]
                    .copy_from_slice(&ct[(from - chunk_lo) as usize..(to - chunk_lo) as usize]);
                u += cnt;
            }
        }
        Ok(n as usize)
    }

    /// Writes out one new extent: `plaintext` at logical `offset`, encrypted with `key` (derived
    /// from `ctx`, whose nonce was just drawn) with IVs 0, 1, ... from the extent's start, appended
    /// to the log. It replaces whole data units: `offset` must be unit-aligned and the length a
    /// whole number of units unless the extent reaches the end of the file (the caller merges
    /// partial units, read-modify-write, before writeout). EINVAL for a misaligned extent, a
    /// context that does not match the file's policy or a nonce already used in this file (that
    /// would reuse a (key, IV) pair); EFBIG beyond the maximum size. Not durable until `sync`.
    pub fn write_extent(
        &mut self,
        offset: u64,
        plaintext: &[u8],
        ctx: &ExtentContext,
        key: &ExtentKey,
    ) -> Result<()> {
        if plaintext.is_empty() {
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
        let len = plaintext.len() as u64;
        let end = self.check_end(offset, len)?;
        if !offset.is_multiple_of(du) || (!len.is_multiple_of(du) && end < self.map.size()) {
            return Err(Error::invalid(format!(
                "{}: extent [{offset}, {end}) is not whole data units of {du} bytes",
                self.what
            )));
        }
        let mut buf = vec![0u8; (len.div_ceil(du) * du) as usize];
        buf[..plaintext.len()].copy_from_slice(plaintext);
        key.encrypt_units(0, du as usize, &mut buf)?;
        self.prepare_append()?;
        let payload_at = self.end + RECORD_HEADER_BLOCK;
        if let Err(e) = self.file.write_all_at(&buf, payload_at) {
            self.trim_pending = true;
            return Err(io_err(
                format!("{}: appending at {payload_at}", self.what),
                e,
            ));
        }
        self.finish_append(RecordHeader {
            kind: Kind::Extent,
            du_bits: 0,
            seq: 0,
            a: offset,
            b: len,
            first_unit: 0,
            payload_len: buf.len() as u64,
            checked_len: buf.len() as u64,
            ctx: ctx.to_bytes(),
            payload_sum: checksum(&buf),
        })
    }

    /// Sets the logical size (a truncate record; extending makes a hole). Bytes beyond a
    /// smaller size are gone, also from a partial final unit. Not durable until `sync`.
    pub fn truncate(&mut self, len: u64) -> Result<()> {
        self.check_end(len, 0)?;
        if len == self.map.size() {
            return Ok(());
        }
        self.prepare_append()?;
        self.finish_append(Self::meta_record(Kind::Truncate, len, 0))
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
        self.prepare_append()?;
        self.finish_append(Self::meta_record(Kind::Punch, offset, len))
    }

    /// Makes everything appended so far durable: `fdatasync` (the records), then the next commit
    /// slot (the one not holding the latest commit), then `fdatasync` again.
    pub fn sync(&mut self) -> Result<()> {
        if self.end == self.durable_end {
            return Ok(());
        }
        let what = self.what.clone();
        self.file.sync_data().map_err(|e| io_err(&what, e))?;
        let c = Commit {
            gen: self.gen + 1,
            durable_end: self.end,
            next_seq: self.next_seq,
        };
        let slot = COMMIT_SLOTS[(c.gen % 2) as usize];
        self.file
            .write_all_at(&c.to_bytes(), slot)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| io_err(format!("{what}: commit"), e))?;
        self.gen = c.gen;
        self.durable_end = self.end;
        Ok(())
    }

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
        let src_file = src.file.try_clone().map_err(|e| io_err(&src.what, e))?;
        self.clone_pieces(&src_file, pieces, src_off, dst_off, n)?;
        Ok(n)
    }

    /// [`clone_range`](Self::clone_range) within this file (ranges may overlap: the copy is taken
    /// from the extents as they were before it).
    pub fn clone_within(&mut self, src_off: u64, dst_off: u64, len: u64) -> Result<u64> {
        let (pieces, n) = self.clone_source(src_off, dst_off, len, self.map.size())?;
        let f = self.file.try_clone().map_err(|e| io_err(&self.what, e))?;
        self.clone_pieces(&f, pieces, src_off, dst_off, n)?;
        Ok(n)
    }

    /// Validates a clone from this file and snapshots the source pieces: (logical start, logical
    /// end, run, unit in run) clipped to the range, and the clipped length.
    #[allow(clippy::type_complexity)]
    fn clone_source(
        &self,
        src_off: u64,
        dst_off: u64,
        len: u64,
        dst_size: u64,
    ) -> Result<(Vec<(u64, u64, Run, u64)>, u64)> {
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
                (
                    lo,
                    p.end.min(src_off + n),
                    self.runs[p.run],
                    p.unit + (lo - s) / du,
                )
            })
            .collect();
        Ok((pieces, n))
    }

    fn clone_pieces(
        &mut self,
        src_file: &File,
        pieces: Vec<(u64, u64, Run, u64)>,
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
        for (lo, hi, run, unit) in pieces {
            self.punch_gap(to_dst(cursor), to_dst(lo))?;
            let nunits = (hi - lo).div_ceil(du);
            self.prepare_append()?;
            let payload_at = self.end + RECORD_HEADER_BLOCK;
            let sum = match copy_ciphertext(
                src_file,
                run.data_off + unit * du,
                &self.file,
                payload_at,
                nunits * du,
                &self.what,
            ) {
                Ok(s) => s,
                Err(e) => {
                    self.trim_pending = true;
                    return Err(e);
                }
            };
            self.finish_append(RecordHeader {
                kind: Kind::Extent,
                du_bits: 0,
                seq: 0,
                a: to_dst(lo),
                b: hi - lo,
                first_unit: run.first_unit + unit,
                payload_len: nunits * du,
                checked_len: nunits * du,
                ctx: run.ctx.to_bytes(),
                payload_sum: sum,
            })?;
            cursor = hi;
        }
        let dst_end = to_dst(src_off + n);
        self.punch_gap(to_dst(cursor), dst_end)?;
        if self.map.size() < dst_end {
            self.prepare_append()?;
            self.finish_append(Self::meta_record(Kind::Truncate, dst_end, 0))?;
        }
        Ok(())
    }

    /// Punches the whole units from `round_up(from)` to `to` (a clone's source hole).
    fn punch_gap(&mut self, from: u64, to: u64) -> Result<()> {
        let from = round_up(from, self.du).unwrap_or(u64::MAX);
        if from >= to || from >= self.map.size() {
            return Ok(());
        }
        self.prepare_append()?;
        self.finish_append(Self::meta_record(Kind::Punch, from, to - from))
    }

    /// Where compaction puts each live piece's units, relative to the checkpoint record, and the
    /// record's payload length: packed at data-unit alignment, 4096-aligned when a piece is whole
    /// 4096-byte blocks (reflink needs that; small pieces of small units would waste it).
    fn checkpoint_layout(&self) -> (Vec<u64>, u64) {
        let table = (self.map.len() as u64).saturating_mul(CHECKPOINT_ENTRY_SIZE as u64);
        let mut rel =
            RECORD_HEADER_BLOCK.saturating_add(round_up(table, ALIGN).unwrap_or(u64::MAX));
        let mut out = Vec::with_capacity(self.map.len());
        for (s, p) in self.map.iter() {
            let bytes = (p.end - s).div_ceil(self.du) * self.du;
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
        let dwhat = backing_name(&dst);
        let du = self.du;
        let mut header = vec![0u8; FILE_HEADER_SIZE as usize];
        read_full_at(&self.file, &mut header[..80], 0).map_err(|e| io_err(&self.what, e))?;
        dst.set_len(0).map_err(|e| io_err(&dwhat, e))?;
        let rec = FILE_HEADER_SIZE;
        let table_len = self.map.len() as u64 * CHECKPOINT_ENTRY_SIZE as u64;
        let (rels, payload_len) = self.checkpoint_layout();
        let mut table = Vec::with_capacity(table_len as usize);
        for ((s, p), data_rel) in self.map.iter().zip(rels) {
            let run = self.runs[p.run];
            let nunits = (p.end - s).div_ceil(du);
            let sum = copy_ciphertext(
                &self.file,
                run.data_off + p.unit * du,
                &dst,
                rec + data_rel,
                nunits * du,
                &dwhat,
            )?;
            table.extend_from_slice(
                &CheckpointEntry {
                    logical: s,
                    len: p.end - s,
                    first_unit: run.first_unit + p.unit,
                    data_rel,
                    sum,
                    ctx: run.ctx.to_bytes(),
                }
                .to_bytes(),
            );
        }
        let h = RecordHeader {
            kind: Kind::Checkpoint,
            du_bits: self.du_bits,
            seq: 0,
            a: self.map.size(),
            b: self.map.len() as u64,
            first_unit: 0,
            payload_len,
            checked_len: table_len,
            ctx: [0; EXTENT_CONTEXT_SIZE],
            payload_sum: checksum(&table),
        };
        let end = rec + RECORD_HEADER_BLOCK + payload_len;
        let mut block = vec![0u8; RECORD_HEADER_BLOCK as usize];
        block[..RECORD_HEADER_USED].copy_from_slice(&h.to_bytes());
        for gen in [1u64, 2] {
            let c = Commit {
                gen,
                durable_end: end,
                next_seq: 1,
            };
            let o = COMMIT_SLOTS[(gen % 2) as usize] as usize;
            header[o..o + COMMIT_SLOT_SIZE].copy_from_slice(&c.to_bytes());
        }
        dst.write_all_at(&header, 0)
            .and_then(|()| dst.write_all_at(&block, rec))
            .and_then(|()| dst.write_all_at(&table, rec + RECORD_HEADER_BLOCK))
            .and_then(|()| dst.set_len(end))
            .and_then(|()| dst.sync_data())
            .map_err(|e| io_err(&dwhat, e))?;
        ExtentFile::open(dst, &self.policy, du as usize)
    }

    /// The live mappings in logical order (for `inspect`).
    pub fn extents(&self) -> Vec<ExtentInfo> {
        self.map
            .iter()
            .map(|(s, p)| {
                let run = self.runs[p.run];
                ExtentInfo {
                    logical: s,
                    len: p.end - s,
                    ctx: run.ctx,
                    first_unit: run.first_unit + p.unit,
                    backing_offset: run.data_off + p.unit * self.du,
                    record_offset: run.record_off,
                }
            })
            .collect()
    }

    /// The records of the log in order (for `inspect`).
    pub fn records(&self) -> &[RecordInfo] {
        &self.records
    }

    /// The full check for `fsck`: every stored run's ciphertext against its checksum (committed ones
    /// included, which `open` trusts), the map's invariants, and what lies beyond the log (notes:
    /// a torn tail, records not yet committed). Headers and contexts were checked by `open`.
    /// Err only when the check cannot run (I/O).
    pub fn check(&self) -> Result<Vec<Finding>> {
        let mut out = Vec::new();
        if let Err(m) = self.map.check(self.du) {
            out.push(Finding {
                offset: None,
                note: false,
                message: m,
            });
        }
        let mut seen = HashSet::new();
        for run in &self.runs {
            if !seen.insert((run.data_off, run.nunits)) {
                continue;
            }
            let len = run.nunits * self.du;
            if run.data_off + len > self.end {
                out.push(Finding {
                    offset: Some(run.record_off),
                    note: false,
                    message: "extent data beyond the end of the log".into(),
                });
                continue;
            }
            if sum_range(&self.file, run.data_off, len, &self.what)? != run.sum {
                out.push(Finding {
                    offset: Some(run.data_off),
                    note: false,
                    message: format!(
                        "extent ciphertext checksum mismatch (record at {})",
                        run.record_off
                    ),
                });
            }
        }
        let file_len = self
            .file
            .metadata()
            .map_err(|e| io_err(&self.what, e))?
            .len();
        if file_len > self.end {
            out.push(Finding {
                offset: Some(self.end),
                note: true,
                message: format!(
                    "{} bytes beyond the end of the log (an incomplete write; cut at the next change)",
                    file_len - self.end
                ),
            });
        }
        if self.durable_end < self.end {
            out.push(Finding {
                offset: Some(self.durable_end),
                note: true,
                message: "records after the last commit (written but not yet fsynced)".into(),
            });
        }
        Ok(out)
    }
}
