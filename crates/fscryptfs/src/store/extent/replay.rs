//! Creating and opening a per-extent file, and recovery: the scan that replays the log from 4096 in
//! sequence order up to the first record that is not whole, trusting what the last commit covers
//! and dropping a torn tail beyond it (docs/FORMAT.md, "Per-extent layout"), and the state a
//! replay produced, kept to be put back on the same, unchanged file without reading it again
//! ([`LogSnapshot`]). What each record does to the map is `apply`'s.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;

use fscrypt::context::Context;
use fscrypt::extent::extent_policy;
use fscrypt::policy::Policy;
use fscrypt::{Error, Result};

use super::blocksums;
use super::ciphertext::{read_table, sum_range_blocks};
use super::format::{
    encode_base_header, parse_base_header, Commit, RecordHeader, COMMIT_SLOTS, COMMIT_SLOT_SIZE,
    RECORD_HEADER_BLOCK, RECORD_HEADER_USED,
};
use super::map::Map;
use super::{corrupt_at, BackingPath, ExtentFile, LogFile, RecordInfo, Run, HEADER_PREFIX};
use crate::store::{fs_params, io_err, read_full_at, FILE_HEADER_SIZE};

/// Only logs of at most this many records, runs and map pieces each are kept as
/// [`LogSnapshot`]s (a record holds up to 1 MiB written at once: small files, and files written
/// sequentially up to about 512 MiB; `fs::recall` bounds what all of them hold together).
pub const SNAPSHOT_MAX_PARTS: usize = 512;

/// What replaying a log found — its runs, map, records, nonces, ends, sequence and generation —
/// without the file: to be put back on the same file when it is unchanged since
/// ([`ExtentFile::from_snapshot`]), so that opening it again reads nothing.
#[derive(Clone)]
pub struct LogSnapshot {
    policy: Policy,
    du_bits: u8,
    runs: Vec<Run>,
    map: Map,
    records: Vec<RecordInfo>,
    nonces: HashSet<[u8; 16]>,
    end: u64,
    durable_end: u64,
    next_seq: u64,
    gen: u64,
    trim_pending: bool,
}

impl LogSnapshot {
    /// Its size in parts (records, runs and map pieces: each some tens of bytes), for a cache
    /// that bounds what it keeps.
    pub fn parts(&self) -> usize {
        self.records.len() + self.runs.len() + self.map.pieces()
    }
}

impl ExtentFile {
    /// This log's state, when it has at most [`SNAPSHOT_MAX_PARTS`] records, runs and pieces: what
    /// [`from_snapshot`](Self::from_snapshot) puts back on the same file, unchanged since, as if
    /// this `ExtentFile` had stayed (the caller takes it once everything is written out and
    /// committed: `fs::recall`).
    pub fn snapshot(&self) -> Option<LogSnapshot> {
        let parts = [self.records.len(), self.runs.len(), self.map.pieces()];
        parts
            .iter()
            .all(|&n| n <= SNAPSHOT_MAX_PARTS)
            .then(|| LogSnapshot {
                policy: self.policy,
                du_bits: self.du_bits,
                runs: self.runs.clone(),
                map: self.map.clone(),
                records: self.records.clone(),
                nonces: self.nonces.clone(),
                end: self.end,
                durable_end: self.durable_end,
                next_seq: self.next_seq,
                gen: self.gen,
                trim_pending: self.trim_pending,
            })
    }

    /// The log `snap` was taken of, put back on `file` (open, or deferred: opened at the first
    /// read or write) without reading it. `file` must be the file
    /// the snapshot was taken of, unchanged since — the caller's to know (`fs::recall` compares
    /// its ctime, mtime, size, links and mode) —: nothing here can tell.
    /// The snapshot is moved in (a lookup takes it out of `fs::recall`, so nothing is copied).
    pub fn from_snapshot(file: LogFile, snap: LogSnapshot) -> ExtentFile {
        let what = BackingPath::of_fd(file.raw_fd());
        ExtentFile {
            runs: snap.runs,
            map: snap.map,
            records: snap.records,
            nonces: snap.nonces,
            end: snap.end,
            durable_end: snap.durable_end,
            next_seq: snap.next_seq,
            gen: snap.gen,
            trim_pending: snap.trim_pending,
            ..ExtentFile::empty_on(file, what, snap.policy, snap.du_bits)
        }
    }

    /// Writes the header of a new, empty per-extent file (layout 2, no commit yet) into `file`,
    /// which must be empty (just made with `O_EXCL`), and returns it opened, with an empty log:
    /// one backing call (nothing is read back). The caller makes it durable (`sync`).
    pub fn create(file: File, ino: u64, ctx: &Context) -> Result<ExtentFile> {
        let what = BackingPath::of(&file);
        let policy = *ctx.policy();
        extent_policy(&policy)?;
        let mut block = vec![0u8; FILE_HEADER_SIZE as usize];
        block[..80].copy_from_slice(&encode_base_header(ino, 0, ctx));
        file.write_all_at(&block, 0).map_err(|e| io_err(&what, e))?;
        let du_bits = policy.data_unit_bits(&fs_params());
        Ok(ExtentFile::empty(file, what, policy, du_bits))
    }

    /// An opened file with an empty log (nothing replayed or committed yet).
    fn empty(file: File, what: BackingPath, policy: Policy, du_bits: u8) -> ExtentFile {
        ExtentFile::empty_on(LogFile::opened(file), what, policy, du_bits)
    }

    /// [`empty`](Self::empty) on a log file that may be deferred.
    fn empty_on(file: LogFile, what: BackingPath, policy: Policy, du_bits: u8) -> ExtentFile {
        ExtentFile {
            file,
            instance: super::read::next_instance(),
            what,
            policy,
            du: 1u64 << du_bits,
            du_bits,
            runs: Vec::new(),
            map: Map::default(),
            records: Vec::new(),
            nonces: HashSet::new(),
            end: FILE_HEADER_SIZE,
            durable_end: FILE_HEADER_SIZE,
            next_seq: 0,
            gen: 0,
            trim_pending: false,
            compacted_memo: std::sync::Mutex::new(None),
        }
    }

    /// Opens a per-extent backing file and recovers its map: replays the log from 4096 in sequence
    /// order, trusting (header checksums only) what the last commit covers and checking payloads
    /// beyond it, and drops a torn tail. Every extent's context is checked against `policy`
    /// (EUCLEAN naming the backing offset, logged, on a mismatch). EINVAL when `policy` cannot have
    /// extents or `du_size` is not its data-unit size; EUCLEAN for a damaged header or committed
    /// record.
    pub fn open(file: File, policy: &Policy, du_size: usize) -> Result<ExtentFile> {
        let mut header = [0u8; HEADER_PREFIX];
        read_full_at(&file, &mut header, 0).map_err(|e| io_err(BackingPath::of(&file), e))?;
        let file_len = file
            .metadata()
            .map_err(|e| io_err(BackingPath::of(&file), e))?
            .len();
        Self::open_read(file, policy, du_size, &header, file_len)
    }

    /// [`open`](Self::open) with the file's first [`HEADER_PREFIX`] bytes (zeros where the file
    /// is shorter) and its length already read by the caller (a lookup that read the header to
    /// identify the file: on a network filesystem each is a round trip). A wrong length or stale
    /// bytes are no risk: recovery checks every record against the file as it is.
    pub fn open_read(
        file: File,
        policy: &Policy,
        du_size: usize,
        header: &[u8; HEADER_PREFIX],
        file_len: u64,
    ) -> Result<ExtentFile> {
        let what = BackingPath::of(&file);
        extent_policy(policy)?;
        let du_bits = policy.data_unit_bits(&fs_params());
        if du_size != 1usize << du_bits {
            return Err(Error::invalid(format!(
                "{what}: data-unit size {du_size} is not the policy's ({})",
                1u64 << du_bits
            )));
        }
        let (_ino, ctx) = parse_base_header(header, &what)?;
        if ctx.policy() != policy {
            return Err(Error::invalid(format!(
                "{what}: the file's policy is not the policy given"
            )));
        }
        let commit = COMMIT_SLOTS
            .iter()
            .filter_map(|&o| Commit::parse(&header[o as usize..o as usize + COMMIT_SLOT_SIZE]))
            .max_by_key(|c| c.gen);
        let mut ef = ExtentFile {
            durable_end: commit.map_or(FILE_HEADER_SIZE, |c| c.durable_end),
            gen: commit.map_or(0, |c| c.gen),
            ..ExtentFile::empty(file, what, *policy, du_bits)
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
            let got =
                read_full_at(self.file()?, &mut hb, pos).map_err(|e| io_err(&self.what, e))?;
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
            // An uncommitted record's payload is checked against its checksum, and its block-sum
            // table (the header block may be torn after its used bytes) against its hash and the
            // payload; a committed one's table when it is read, and by fsck.
            if !trusted {
                let (sum, sums) =
                    sum_range_blocks(h.sum_alg, self.file()?, payload, h.checked_len, &self.what)?;
                if sum != h.payload_sum {
                    torn("payload checksum mismatch")?;
                    break;
                }
                if let (true, Some(n)) = (
                    blocksums::has_table(&h.block_table),
                    blocksums::blocks(h.checked_len),
                ) {
                    let t = read_table(self.file()?, pos, n, &self.what)?;
                    if blocksums::table_hash(&t) != h.block_table || t != sums {
                        torn("block-sum table mismatch")?;
                        break;
                    }
                }
            }
            self.apply_record(&h, pos, rec_end - pos)?;
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
}
