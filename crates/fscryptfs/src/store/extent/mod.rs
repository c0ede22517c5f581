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

//!
//! The engine by concern (each file's header says what it owns):
//! - this file: the [`ExtentFile`] type, the [`LogFile`] it reads and writes (open, or opened at
//!   first use), the records and mappings it reports, its small accessors;
//! - `format`: the bytes (commit slots, record headers, checkpoint entries), no I/O;
//! - `map`: the in-memory map of logical ranges to stored units, pure arithmetic;
//! - `ciphertext`: streamed ciphertext I/O (checksum a range, copy or reflink it);
//! - `replay`: create and open, the recovery scan of the log;
//! - `apply`: what each record does to the map, with every field checked (replay and append share it);
//! - `read`: verified, decrypting reads (the blocks read checked against the record's block-sum
//!   table, or each whole run against its checksum, first);
//! - `blocksums`: the block-sum tables of extent records (bytes, checks, the verified-table cache);
//! - `write`: appending records (new extents, truncate, punch) and `sync`, the commit;
//! - `clone`: `clone_range` / `clone_within` (reflink as ciphertext);
//! - `compact`: the compacted size, when to compact, and writing the compacted copy;
//! - `check`: fsck's full consistency check.

mod apply;
mod blocksums;
mod check;
mod ciphertext;
mod clone;
mod compact;
mod format;
mod map;
mod read;
mod replay;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_blocks;
#[cfg(test)]
mod tests_sums;
mod write;

use std::collections::HashSet;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};

use fscrypt::extent::ExtentContext;
use fscrypt::policy::Policy;
use fscrypt::{Errno, Error, Result};

use crate::store::io_err;

pub use format::{PayloadSum, RecordKind};
use map::Map;
pub use read::ReadGate;
pub use replay::{LogSnapshot, SNAPSHOT_MAX_PARTS};
pub use write::SealedExtent;

/// `needs_compaction` answers yes once the log exceeds twice its compacted size plus this much.
pub const COMPACT_SLACK: u64 = 64 * 1024;

/// The bytes of a per-extent file's header that opening it reads: the base header and both commit
/// slots (the rest of the 4096-byte block is zero).
pub const HEADER_PREFIX: usize = (format::COMMIT_SLOTS[1] as usize) + format::COMMIT_SLOT_SIZE;

/// Largest chunk of ciphertext read or copied at once.
const CHUNK: u64 = 1 << 20;

/// Longest extent the engine writes as one record (longer writes are split). Its record has a
/// block-sum table (256 blocks), so a read verifies only the blocks it touches whatever the
/// extent's length; longer records mean fewer records per byte: fewer backing writes, key
/// derivations, table reads and, at open, record headers to read (round trips on a network
/// filesystem). BENCHMARKS.md "Extents of 1 MiB".
pub const EXTENT_MAX: u64 = 1 << 20;

/// Longest run of a checkpoint entry (compaction splits longer pieces): a checkpoint's runs have no
/// block-sum table, so a read verifies the whole run it falls in; short runs keep that cheap.
const CHECKPOINT_RUN_MAX: u64 = 256 << 10;

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
    /// Checksum of the run's ciphertext, with `sum_alg`.
    sum: [u8; 8],
    /// The algorithm of `sum`: that of the record holding the run.
    sum_alg: PayloadSum,
    /// Backing offset of the record holding the run.
    record_off: u64,
    /// The hash of the record's block-sum table (`blocksums`), all zero when it has none (`FSCXREC1`
    /// records, checkpoints, payloads of more than 496 blocks): then reads verify the whole run.
    table: [u8; 6],
}

/// One record of the log, as `inspect` and `fsck` list them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    /// Backing offset of the record's header block.
    pub offset: u64,
    /// Bytes the record occupies.
    pub len: u64,
    /// Its kind.
    pub kind: RecordKind,
    /// Its sequence number.
    pub seq: u64,
    /// The algorithm of its payload checksums (its magic: `FSCXREC1` or `FSCXREC2`).
    pub sum_alg: PayloadSum,
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
    file: LogFile,
    /// This opened instance's identity in the cache of verified runs (`read`).
    instance: u64,
    /// The backing path (from `/proc/self/fd`, when first needed), for messages.
    what: BackingPath,
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

/// The backing file a log lives in: open from the start (a log created, or opened and replayed),
/// or, for a log put back from a [`LogSnapshot`], opened at its first read or write from the
/// `O_PATH` descriptor it was recalled with. A file that is only looked up, listed, stat'ed or
/// removed is then never opened (on a network filesystem an open and its close are round trips).
pub struct LogFile {
    opened: std::sync::OnceLock<File>,
    /// Where a deferred log opens from (`None` for one opened from the start).
    deferred: Option<DeferredOpen>,
    /// Set once reads through the file are known to update the access time (`reads_touch_atime`).
    touches_atime: std::sync::atomic::AtomicBool,
}

/// How a deferred log opens: the `O_PATH` descriptor of the backing file, its `fstat`, the access.
struct DeferredOpen {
    fd: std::sync::Arc<OwnedFd>,
    st: rustix::fs::Stat,
    access: crate::store::io::Access,
}

impl LogFile {
    /// A log file opened already.
    pub fn opened(file: File) -> LogFile {
        LogFile {
            opened: std::sync::OnceLock::from(file),
            deferred: None,
            touches_atime: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// A log file to be opened from `fd` (an `O_PATH` descriptor of the regular file that `st`
    /// describes) with `access` when it is first read or written.
    pub fn deferred(
        fd: std::sync::Arc<OwnedFd>,
        st: rustix::fs::Stat,
        access: crate::store::io::Access,
    ) -> LogFile {
        LogFile {
            opened: std::sync::OnceLock::new(),
            deferred: Some(DeferredOpen { fd, st, access }),
            touches_atime: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the file is open (a deferred one: read or written since).
    pub fn is_open(&self) -> bool {
        self.opened.get().is_some()
    }

    /// The open file, opened now if deferred (the `O_PATH` descriptor pins the inode: it is the
    /// file that was recalled, whatever its name now is). Two threads that race here both open it,
    /// and one keeps its file.
    fn get(&self, what: &BackingPath) -> Result<&File> {
        if let Some(f) = self.opened.get() {
            return Ok(f);
        }
        let Some(d) = &self.deferred else {
            return Err(Error::new(
                Errno::BADF,
                format!("{what}: log file not open"),
            ));
        };
        let f = crate::store::io::reopen_stat_file(&d.fd, &d.st, d.access, what)?;
        Ok(self.opened.get_or_init(|| f))
    }

    /// Takes `file` (a descriptor of the same backing file, opened by a user's open) as this log's
    /// own if it has none yet: a duplicate, no open.
    fn adopt(&self, file: &File) -> std::io::Result<()> {
        if self.opened.get().is_none() {
            let f = file.try_clone()?;
            let _ = self.opened.set(f);
        }
        Ok(())
    }

    /// Makes reads through the open file update the access time as any reader's do: clears
    /// `O_NOATIME` (a lookup opens a log without it, so that a `stat` changes nothing) on its
    /// open file description. Nothing to do for a file not open yet.
    fn reads_touch_atime(&self) -> std::io::Result<()> {
        use std::sync::atomic::Ordering;
        let Some(f) = self.opened.get() else {
            return Ok(());
        };
        if self.touches_atime.load(Ordering::Relaxed) {
            return Ok(());
        }
        let flags = rustix::fs::fcntl_getfl(f)?;
        if flags.contains(rustix::fs::OFlags::NOATIME) {
            rustix::fs::fcntl_setfl(f, flags - rustix::fs::OFlags::NOATIME)?;
        }
        self.touches_atime.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The descriptor messages name the file by: the open file's, else the `O_PATH` one.
    fn raw_fd(&self) -> std::os::fd::RawFd {
        match (self.opened.get(), &self.deferred) {
            (Some(f), _) => f.as_raw_fd(),
            (None, Some(d)) => d.fd.as_raw_fd(),
            (None, None) => -1,
        }
    }
}

/// The path of an open backing file from `/proc/self/fd`, for messages: read the first time a
/// message needs it (a system call that most opened files, which never produce a message, need
/// not make: one per lookup of a per-extent file otherwise). Valid while that file stays open
/// under the same descriptor (the `ExtentFile` that holds both).
pub(crate) struct BackingPath {
    fd: std::os::fd::RawFd,
    path: std::sync::OnceLock<String>,
}

impl BackingPath {
    /// The path of `file`, to be read when first needed.
    fn of(file: &File) -> BackingPath {
        BackingPath::of_fd(file.as_raw_fd())
    }

    fn of_fd(fd: std::os::fd::RawFd) -> BackingPath {
        BackingPath {
            fd,
            path: std::sync::OnceLock::new(),
        }
    }

    fn get(&self) -> &str {
        self.path.get_or_init(|| {
            std::fs::read_link(format!("/proc/self/fd/{}", self.fd))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| format!("backing fd {}", self.fd))
        })
    }
}

impl std::ops::Deref for BackingPath {
    type Target = str;
    fn deref(&self) -> &str {
        self.get()
    }
}

impl std::fmt::Display for BackingPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.get())
    }
}

/// EUCLEAN naming the backing offset `off` of `what`, logged.
fn corrupt_at(
    what: &(impl std::fmt::Display + ?Sized),
    off: u64,
    msg: impl std::fmt::Display,
) -> Error {
    let e = Error::corrupt(format!("{what}: backing offset {off}: {msg}"));
    tracing::warn!("{e}");
    e
}

/// Where a log stands ([`ExtentFile::mark`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LogMark {
    end: u64,
    next_seq: u64,
    gen: u64,
}

impl ExtentFile {
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

    /// Whether records were appended since the last commit (`sync` would do something).
    pub fn uncommitted(&self) -> bool {
        self.end != self.durable_end
    }

    /// Where the log stands: it moves with every record appended and every commit, so two marks of
    /// one log differ when anything was written to it in between.
    pub fn mark(&self) -> LogMark {
        LogMark {
            end: self.end,
            next_seq: self.next_seq,
            gen: self.gen,
        }
    }

    /// The backing path, as messages name it.
    pub fn backing_path(&self) -> &str {
        &self.what
    }

    /// Reads the backing path again (after the caller renamed the file, e.g. a compacted copy
    /// over the original).
    pub fn refresh_path(&mut self) {
        self.what = BackingPath::of_fd(self.file.raw_fd());
    }

    /// The backing file, opened now if this log was put back from a snapshot and not yet read
    /// or written.
    fn file(&self) -> Result<&File> {
        self.file.get(&self.what)
    }

    /// Whether the backing file is open (a log put back from a snapshot opens at first use).
    pub fn is_open(&self) -> bool {
        self.file.is_open()
    }

    /// Takes `file`, a descriptor of this log's backing file that a user's open just opened, as
    /// the log's own when the log has none yet (duplicated: no open of its own). A log then
    /// writes back through a descriptor whose open already succeeded.
    pub fn adopt_file(&self, file: &File) -> Result<()> {
        self.file.adopt(file).map_err(|e| io_err(&self.what, e))
    }

    /// From a user's open on, reads of the log update the backing file's access time as that
    /// user's reads of the file would (a log opened by a lookup, `O_NOATIME`, leaves it).
    pub fn reads_touch_atime(&self) -> Result<()> {
        self.file
            .reads_touch_atime()
            .map_err(|e| io_err(&self.what, e))
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
}
