//! Byte layouts of the per-extent data area (docs/FORMAT.md, "Per-extent layout"): the base header
//! with layout byte 2, the two commit slots in the header's reserved area, record headers and
//! checkpoint entries. Pure encoding and decoding, no I/O.

use fscrypt::context::{Context, CONTEXT_V2_SIZE};
use fscrypt::extent::EXTENT_CONTEXT_SIZE;
use fscrypt::{Error, Result};

use crate::store::checksum;
use crate::store::config::ContentsLayout;
use crate::store::meta::{FileHeader, FILE_HEADER_USED};

/// Alignment of records and of ciphertext in the backing file (reflink and direct I/O need it).
pub const ALIGN: u64 = 4096;
/// Size of a record's header block; its payload starts right after it.
pub const RECORD_HEADER_BLOCK: u64 = 4096;
/// Bytes of the record header that are used (the rest of its block is zero).
pub const RECORD_HEADER_USED: usize = 120;
/// Magic of a record header whose payload checksums are SHA-256 prefixes (written before XXH3).
pub const RECORD_MAGIC_SHA256: &[u8; 8] = b"FSCXREC1";
/// Magic of a record header whose payload checksums are XXH3-64 (every record written now).
pub const RECORD_MAGIC_XXH3: &[u8; 8] = b"FSCXREC2";
/// Magic of a commit slot.
pub const COMMIT_MAGIC: &[u8; 8] = b"FSCXCMT1";
/// Offsets of the two commit slots inside the 4096-byte file header.
pub const COMMIT_SLOTS: [u64; 2] = [128, 192];
/// Size of one commit slot.
pub const COMMIT_SLOT_SIZE: usize = 64;
/// Size of one checkpoint entry.
pub const CHECKPOINT_ENTRY_SIZE: usize = 80;

/// `x` rounded up to a multiple of `m` (a power of two); None on overflow.
pub fn round_up(x: u64, m: u64) -> Option<u64> {
    x.checked_add(m - 1).map(|v| v & !(m - 1))
}

/// The algorithm of a record's payload checksum and of its checkpoint entries' checksums, named by
/// the record's magic (docs/FORMAT.md, "Per-extent layout"). Unkeyed either way: both catch torn
/// writes and accidental damage, neither an attacker (docs/SECURITY.md, "No integrity"). The record
/// header's own checksum is SHA-256 in both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadSum {
    /// `FSCXREC1`: SHA-256(bytes)[0..8] (records written before XXH3; read, never written).
    Sha256Trunc,
    /// `FSCXREC2`: XXH3-64(bytes), little-endian.
    Xxh3,
}

impl PayloadSum {
    /// The algorithm of every record the engine writes.
    pub const CURRENT: PayloadSum = PayloadSum::Xxh3;

    /// The record magic that says this algorithm.
    pub fn magic(self) -> &'static [u8; 8] {
        match self {
            PayloadSum::Sha256Trunc => RECORD_MAGIC_SHA256,
            PayloadSum::Xxh3 => RECORD_MAGIC_XXH3,
        }
    }

    /// The algorithm a record magic says; None for anything else.
    pub fn from_magic(m: &[u8]) -> Option<PayloadSum> {
        if m == RECORD_MAGIC_SHA256 {
            Some(PayloadSum::Sha256Trunc)
        } else if m == RECORD_MAGIC_XXH3 {
            Some(PayloadSum::Xxh3)
        } else {
            None
        }
    }

    /// The 8-byte checksum of `bytes`, all in memory.
    pub fn digest(self, bytes: &[u8]) -> [u8; 8] {
        match self {
            PayloadSum::Sha256Trunc => checksum(bytes),
            PayloadSum::Xxh3 => xxhash_rust::xxh3::xxh3_64(bytes).to_le_bytes(),
        }
    }

    /// A streaming hasher: the same result as [`digest`](Self::digest) over everything fed to it.
    pub fn hasher(self) -> SumHasher {
        match self {
            PayloadSum::Sha256Trunc => SumHasher::Sha256(Box::default()),
            PayloadSum::Xxh3 => SumHasher::Xxh3(Box::default()),
        }
    }
}

/// A payload checksum being computed a chunk at a time ([`PayloadSum::hasher`]).
pub enum SumHasher {
    /// SHA-256, truncated at the end.
    Sha256(Box<sha2::Sha256>),
    /// XXH3-64.
    Xxh3(Box<xxhash_rust::xxh3::Xxh3>),
}

impl SumHasher {
    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            SumHasher::Sha256(h) => sha2::Digest::update(&mut **h, bytes),
            SumHasher::Xxh3(h) => h.update(bytes),
        }
    }

    /// The checksum of everything fed.
    pub fn finish(self) -> [u8; 8] {
        match self {
            SumHasher::Sha256(h) => {
                let d = sha2::Digest::finalize(*h);
                let mut out = [0u8; 8];
                out.copy_from_slice(&d[..8]);
                out
            }
            SumHasher::Xxh3(h) => h.digest().to_le_bytes(),
        }
    }
}

/// What a record does to the map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// New ciphertext: maps logical `[a, a + b)`, replacing whole units `[a, round_up(a + b))`.
    Extent = 1,
    /// Sets the logical size to `a` (drops everything beyond it).
    Truncate = 2,
    /// Unmaps whole units `[a, round_up(a + b))` (a hole; the size is unchanged).
    Punch = 3,
    /// Replaces the whole map by the payload's table; the size becomes `a`, `b` entries.
    Checkpoint = 4,
}

impl RecordKind {
    fn from_u8(v: u8) -> Option<RecordKind> {
        match v {
            1 => Some(RecordKind::Extent),
            2 => Some(RecordKind::Truncate),
            3 => Some(RecordKind::Punch),
            4 => Some(RecordKind::Checkpoint),
            _ => None,
        }
    }
}

/// A record header (the first [`RECORD_HEADER_USED`] bytes of a 4096-byte block).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// What the record does.
    pub kind: RecordKind,
    /// log2 of the data-unit size the payload is encrypted in.
    pub du_bits: u8,
    /// Sequence number: 0 for the first record of the file, then +1 per record.
    pub seq: u64,
    /// Extent: logical offset; Truncate: new size; Punch: offset; Checkpoint: logical size.
    pub a: u64,
    /// Extent: logical length; Punch: length; Checkpoint: number of entries; Truncate: 0.
    pub b: u64,
    /// Extent: index of the payload's first unit in the extent as written (the IV counts from it).
    pub first_unit: u64,
    /// Payload bytes after the header block (the record occupies 4096 + round_up(this, 4096)).
    pub payload_len: u64,
    /// Payload bytes the payload checksum covers (Extent: all; Checkpoint: the table).
    pub checked_len: u64,
    /// Extent: the extent context; others: zeros.
    pub ctx: [u8; EXTENT_CONTEXT_SIZE],
    /// The algorithm of `payload_sum` and of a checkpoint's entries' sums (the magic says it).
    pub sum_alg: PayloadSum,
    /// `sum_alg`(payload[..checked_len]).
    pub payload_sum: [u8; 8],
    /// Bytes 98..104: `FSCXREC2` extent records only, the hash of the block-sum table at header
    /// bytes 128.. (`blocksums::table_hash`); all zero: no table (and always so in `FSCXREC1`).
    pub block_table: [u8; 6],
}

impl RecordHeader {
    /// The used bytes of the header block.
    pub fn to_bytes(self) -> [u8; RECORD_HEADER_USED] {
        let mut b = [0u8; RECORD_HEADER_USED];
        b[..8].copy_from_slice(self.sum_alg.magic());
        b[8] = self.kind as u8;
        b[9] = self.du_bits;
        b[16..24].copy_from_slice(&self.seq.to_le_bytes());
        b[24..32].copy_from_slice(&self.a.to_le_bytes());
        b[32..40].copy_from_slice(&self.b.to_le_bytes());
        b[40..48].copy_from_slice(&self.first_unit.to_le_bytes());
        b[48..56].copy_from_slice(&self.payload_len.to_le_bytes());
        b[56..64].copy_from_slice(&self.checked_len.to_le_bytes());
        b[64..98].copy_from_slice(&self.ctx);
        b[98..104].copy_from_slice(&self.block_table);
        b[104..112].copy_from_slice(&self.payload_sum);
        let sum = checksum(&b[..112]);
        b[112..120].copy_from_slice(&sum);
        b
    }

    /// Parses a header block. `Err(reason)` when it is not a valid record header (the caller
    /// decides whether that is a torn tail or corruption).
    pub fn parse(b: &[u8]) -> std::result::Result<Self, &'static str> {
        if b.len() < RECORD_HEADER_USED {
            return Err("record header truncated");
        }
        let sum_alg = PayloadSum::from_magic(&b[..8]).ok_or("bad record magic")?;
        if checksum(&b[..112]) != b[112..120] {
            return Err("record header checksum mismatch");
        }
        let kind = RecordKind::from_u8(b[8]).ok_or("unknown record kind")?;
        // Bytes 98..104 are the block-sum table's hash in `FSCXREC2`, reserved in `FSCXREC1`.
        let reserved_98 = sum_alg == PayloadSum::Sha256Trunc && b[98..104].iter().any(|&x| x != 0);
        if b[10..16].iter().any(|&x| x != 0) || reserved_98 {
            return Err("nonzero reserved bytes in record header");
        }
        let mut block_table = [0u8; 6];
        block_table.copy_from_slice(&b[98..104]);
        let mut ctx = [0u8; EXTENT_CONTEXT_SIZE];
        ctx.copy_from_slice(&b[64..98]);
        let mut payload_sum = [0u8; 8];
        payload_sum.copy_from_slice(&b[104..112]);
        Ok(RecordHeader {
            kind,
            du_bits: b[9],
            seq: le64(&b[16..24]),
            a: le64(&b[24..32]),
            b: le64(&b[32..40]),
            first_unit: le64(&b[40..48]),
            payload_len: le64(&b[48..56]),
            checked_len: le64(&b[56..64]),
            ctx,
            sum_alg,
            payload_sum,
            block_table,
        })
    }

    /// Bytes the record occupies in the backing file; None on overflow.
    pub fn record_len(&self) -> Option<u64> {
        round_up(self.payload_len, ALIGN)?.checked_add(RECORD_HEADER_BLOCK)
    }

    /// The whole 4096-byte header block: the used bytes, then zeros.
    pub fn to_block(self) -> Vec<u8> {
        let mut block = vec![0u8; RECORD_HEADER_BLOCK as usize];
        block[..RECORD_HEADER_USED].copy_from_slice(&self.to_bytes());
        block
    }

    /// An extent record: logical `[a, a + b)` stored as the `payload_len` bytes of ciphertext that
    /// follow, the IV of their first unit `first_unit`, all of them checked, with the current
    /// checksum algorithm ([`PayloadSum::CURRENT`]). The payload checksum,
    /// sequence number and data-unit size are filled in when it is appended.
    pub fn extent(
        a: u64,
        b: u64,
        first_unit: u64,
        payload_len: u64,
        ctx: [u8; EXTENT_CONTEXT_SIZE],
    ) -> RecordHeader {
        RecordHeader {
            kind: RecordKind::Extent,
            du_bits: 0,
            seq: 0,
            a,
            b,
            first_unit,
            payload_len,
            checked_len: payload_len,
            ctx,
            sum_alg: PayloadSum::CURRENT,
            payload_sum: [0; 8],
            block_table: [0; 6],
        }
    }

    /// A record without payload (truncate or punch): `a` and `b` as the kind defines them, the
    /// rest zero, the checksum that of the empty payload. Sequence number and data-unit size are
    /// filled in when it is appended.
    pub fn meta(kind: RecordKind, a: u64, b: u64) -> RecordHeader {
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
            sum_alg: PayloadSum::CURRENT,
            payload_sum: PayloadSum::CURRENT.digest(&[]),
            block_table: [0; 6],
        }
    }
}

/// One entry of a checkpoint's table: a run of stored ciphertext units and where it is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointEntry {
    /// Logical offset (unit-aligned).
    pub logical: u64,
    /// Logical length in bytes (> 0).
    pub len: u64,
    /// Extent-relative index of the run's first unit.
    pub first_unit: u64,
    /// Offset of the run's ciphertext from the start of the checkpoint record: a multiple of the
    /// data-unit size, and of 4096 when the run is a whole number of 4096-byte blocks (so it can
    /// be reflinked).
    pub data_rel: u64,
    /// Checksum of the run's ciphertext, with the checkpoint record's algorithm.
    pub sum: [u8; 8],
    /// The extent's context.
    pub ctx: [u8; EXTENT_CONTEXT_SIZE],
}

impl CheckpointEntry {
    /// The 80-byte form.
    pub fn to_bytes(self) -> [u8; CHECKPOINT_ENTRY_SIZE] {
        let mut b = [0u8; CHECKPOINT_ENTRY_SIZE];
        b[..8].copy_from_slice(&self.logical.to_le_bytes());
        b[8..16].copy_from_slice(&self.len.to_le_bytes());
        b[16..24].copy_from_slice(&self.first_unit.to_le_bytes());
        b[24..32].copy_from_slice(&self.data_rel.to_le_bytes());
        b[32..40].copy_from_slice(&self.sum);
        b[40..74].copy_from_slice(&self.ctx);
        b
    }

    /// Parses 80 bytes (the table's checksum was verified by the caller).
    pub fn parse(b: &[u8]) -> std::result::Result<Self, &'static str> {
        if b.len() != CHECKPOINT_ENTRY_SIZE {
            return Err("checkpoint entry truncated");
        }
        if b[74..80].iter().any(|&x| x != 0) {
            return Err("nonzero reserved bytes in checkpoint entry");
        }
        let mut sum = [0u8; 8];
        sum.copy_from_slice(&b[32..40]);
        let mut ctx = [0u8; EXTENT_CONTEXT_SIZE];
        ctx.copy_from_slice(&b[40..74]);
        Ok(CheckpointEntry {
            logical: le64(&b[..8]),
            len: le64(&b[8..16]),
            first_unit: le64(&b[16..24]),
            data_rel: le64(&b[24..32]),
            sum,
            ctx,
        })
    }
}

/// A commit slot: "records up to `durable_end` were made durable" (written after an fdatasync).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Commit {
    /// Generation; the valid slot with the larger one wins. Slot index = `gen % 2`.
    pub gen: u64,
    /// End of the last durable record (a record boundary, ≥ 4096).
    pub durable_end: u64,
    /// Sequence number the next record will get.
    pub next_seq: u64,
}

impl Commit {
    /// The 64-byte form.
    pub fn to_bytes(self) -> [u8; COMMIT_SLOT_SIZE] {
        let mut b = [0u8; COMMIT_SLOT_SIZE];
        b[..8].copy_from_slice(COMMIT_MAGIC);
        b[8..16].copy_from_slice(&self.gen.to_le_bytes());
        b[16..24].copy_from_slice(&self.durable_end.to_le_bytes());
        b[24..32].copy_from_slice(&self.next_seq.to_le_bytes());
        let sum = checksum(&b[..56]);
        b[56..64].copy_from_slice(&sum);
        b
    }

    /// Offset of the slot this commit goes to (`gen % 2`).
    pub fn slot(self) -> u64 {
        COMMIT_SLOTS[(self.gen % 2) as usize]
    }

    /// A valid slot, or None (zeros, torn, or damaged: the other slot then decides).
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() != COMMIT_SLOT_SIZE
            || &b[..8] != COMMIT_MAGIC
            || checksum(&b[..56]) != b[56..64]
            || b[32..56].iter().any(|&x| x != 0)
        {
            return None;
        }
        Some(Commit {
            gen: le64(&b[8..16]),
            durable_end: le64(&b[16..24]),
            next_seq: le64(&b[24..32]),
        })
    }
}

/// The base header (bytes 0..80) of a per-extent file: the regular-file header of
/// `store::meta` with layout byte 2. `size` is informational for this layout (the map is
/// authoritative); this module writes 0.
pub fn encode_base_header(ino: u64, size: u64, ctx: &Context) -> [u8; FILE_HEADER_USED] {
    FileHeader {
        layout: ContentsLayout::Extent,
        ino,
        size,
        ctx: Some(*ctx),
    }
    .to_bytes()
}

/// Parses a per-extent file's base header with `FileHeader::parse` (which checks magic, version,
/// checksum, inode number, size and the v2 context of layout 2) and checks that it is layout 2.
/// EUCLEAN naming `what`.
pub fn parse_base_header(
    b: &[u8],
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<(u64, Context)> {
    let h = FileHeader::parse(b, &crate::store::fs_params(), what)?;
    if h.layout != ContentsLayout::Extent {
        return Err(Error::corrupt(format!(
            "{what}: contents layout {} is not the per-extent layout",
            h.layout.name()
        )));
    }
    let ctx = h.ctx.ok_or_else(|| {
        Error::corrupt(format!(
            "{what}: per-extent file without an encryption context"
        ))
    })?;
    if ctx.to_bytes().len() != CONTEXT_V2_SIZE {
        return Err(Error::corrupt(format!(
            "{what}: per-extent file with a v1 context"
        )));
    }
    Ok((h.ino, ctx))
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrips_and_rejects_damage() {
        let h = RecordHeader {
            kind: RecordKind::Extent,
            du_bits: 12,
            seq: 7,
            a: 8192,
            b: 5000,
            first_unit: 3,
            payload_len: 8192,
            checked_len: 8192,
            ctx: [5; EXTENT_CONTEXT_SIZE],
            sum_alg: PayloadSum::Xxh3,
            payload_sum: [9; 8],
            block_table: [0; 6],
        };
        for alg in [PayloadSum::Sha256Trunc, PayloadSum::Xxh3] {
            let h = RecordHeader { sum_alg: alg, ..h };
            let b = h.to_bytes();
            assert_eq!(&b[..8], alg.magic());
            assert_eq!(RecordHeader::parse(&b).unwrap(), h);
            for i in 0..RECORD_HEADER_USED {
                let mut d = b;
                d[i] ^= 0x10;
                assert!(RecordHeader::parse(&d).is_err(), "byte {i}");
            }
        }
        // Another magic with a valid header checksum is still refused.
        let mut b = h.to_bytes();
        b[..8].copy_from_slice(b"FSCXREC3");
        let sum = checksum(&b[..112]);
        b[112..120].copy_from_slice(&sum);
        assert_eq!(RecordHeader::parse(&b), Err("bad record magic"));
        let c = Commit {
            gen: 3,
            durable_end: 4096 * 9,
            next_seq: 4,
        };
        assert_eq!(Commit::parse(&c.to_bytes()), Some(c));
        assert_eq!(Commit::parse(&[0u8; COMMIT_SLOT_SIZE]), None);
        let e = CheckpointEntry {
            logical: 4096,
            len: 1,
            first_unit: 2,
            data_rel: 8192,
            sum: [1; 8],
            ctx: [2; EXTENT_CONTEXT_SIZE],
        };
        assert_eq!(CheckpointEntry::parse(&e.to_bytes()).unwrap(), e);
    }

    #[test]
    fn constructors_and_blocks() {
        let block = RecordHeader::meta(RecordKind::Punch, 4096, 8192).to_block();
        assert_eq!(block.len() as u64, RECORD_HEADER_BLOCK);
        assert!(block[RECORD_HEADER_USED..].iter().all(|&x| x == 0));
        let h = RecordHeader::parse(&block).unwrap();
        assert_eq!(
            (h.kind, h.a, h.b, h.payload_len),
            (RecordKind::Punch, 4096, 8192, 0)
        );
        assert_eq!(h.sum_alg, PayloadSum::Xxh3);
        assert_eq!(h.payload_sum, PayloadSum::Xxh3.digest(&[]));
        let x = RecordHeader::extent(0, 5000, 7, 8192, [3; EXTENT_CONTEXT_SIZE]);
        assert_eq!(
            (x.kind, x.checked_len, x.first_unit),
            (RecordKind::Extent, 8192, 7)
        );
        assert_eq!(x.record_len(), Some(3 * 4096));
        let slot = |gen| {
            Commit {
                gen,
                durable_end: 4096,
                next_seq: 0,
            }
            .slot()
        };
        assert_eq!([slot(1), slot(2), slot(3)], [192, 128, 192]);
    }

    #[test]
    fn payload_sums_are_sha256_prefix_and_xxh3_le_streamed_or_whole() {
        // XXH3-64 of the empty input (the reference value), stored little-endian.
        assert_eq!(
            PayloadSum::Xxh3.digest(&[]),
            0x2D06_8005_38D3_94C2u64.to_le_bytes()
        );
        assert_eq!(PayloadSum::Sha256Trunc.digest(b"abc"), checksum(b"abc"));
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        for alg in [PayloadSum::Sha256Trunc, PayloadSum::Xxh3] {
            assert_eq!(PayloadSum::from_magic(alg.magic()), Some(alg));
            let mut h = alg.hasher();
            for part in data.chunks(999) {
                h.update(part);
            }
            assert_eq!(h.finish(), alg.digest(&data), "{alg:?}");
        }
        assert_ne!(
            PayloadSum::Xxh3.digest(&data),
            PayloadSum::Sha256Trunc.digest(&data)
        );
        assert_eq!(PayloadSum::from_magic(b"FSCXCMT1"), None);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..20_000 {
            let mut b = [0u8; RECORD_HEADER_USED];
            for v in b.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *v = x as u8;
            }
            b[..8].copy_from_slice(if x & 1 == 0 {
                RECORD_MAGIC_SHA256
            } else {
                RECORD_MAGIC_XXH3
            });
            let _ = RecordHeader::parse(&b);
            let _ = CheckpointEntry::parse(&b[..CHECKPOINT_ENTRY_SIZE]);
            let _ = Commit::parse(&b[..COMMIT_SLOT_SIZE]);
            let _ = parse_base_header(&b[..FILE_HEADER_USED], "x");
        }
    }
}
