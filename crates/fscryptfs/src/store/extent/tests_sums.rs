//! Tests of the two payload-checksum algorithms (docs/FORMAT.md, "Per-extent layout"): logs that
//! hold `FSCXREC1` records (SHA-256 prefixes, as the engine wrote them before XXH3) and `FSCXREC2`
//! records (XXH3-64) open, replay, read and check, each record verified with its own algorithm; a
//! flipped payload byte of either kind is caught (EIO on a verified read, a torn tail on replay, a
//! finding for fsck); compaction and clones of such logs write `FSCXREC2` only.
//!
//! The `FSCXREC1` records are made as FORMAT.md describes them: a record the engine just wrote is
//! rewritten in place with the old magic, the SHA-256 payload checksum (for a checkpoint: of the
//! table and of every entry's run) and its header checksum recomputed.

use std::os::unix::fs::FileExt;
use std::path::Path;

use fscrypt::extent::ExtentKey;
use fscrypt::{EncryptionMode, Errno};

use super::format::{
    CheckpointEntry, PayloadSum, RecordHeader, RecordKind, CHECKPOINT_ENTRY_SIZE,
    RECORD_HEADER_BLOCK, RECORD_HEADER_USED, RECORD_MAGIC_SHA256, RECORD_MAGIC_XXH3,
};
use super::tests::{
    compact, create, flip, master, new_xts_file, open_rw, policy_for, read_all, reopen, write,
};
use super::ExtentFile;
use crate::store::checksum;

/// Rewrites the `FSCXREC2` record at `off` of `path` as the `FSCXREC1` record the engine used to
/// write: the old magic, SHA-256 payload checksums (a checkpoint's entries too), the header
/// checksum recomputed.
fn rewrite_as_sha256(path: &Path, off: u64) {
    let f = open_rw(path);
    let mut hb = [0u8; RECORD_HEADER_USED];
    f.read_exact_at(&mut hb, off).unwrap();
    let mut h = RecordHeader::parse(&hb).unwrap();
    assert_eq!(h.sum_alg, PayloadSum::Xxh3, "record at {off}");
    let payload_off = off + RECORD_HEADER_BLOCK;
    let mut payload = vec![0u8; h.checked_len as usize];
    f.read_exact_at(&mut payload, payload_off).unwrap();
    if h.kind == RecordKind::Checkpoint {
        let du = 1u64 << h.du_bits;
        for raw in payload.chunks_exact_mut(CHECKPOINT_ENTRY_SIZE) {
            let mut e = CheckpointEntry::parse(raw).unwrap();
            let mut ct = vec![0u8; (e.len.div_ceil(du) * du) as usize];
            f.read_exact_at(&mut ct, off + e.data_rel).unwrap();
            assert_eq!(e.sum, PayloadSum::Xxh3.digest(&ct));
            e.sum = checksum(&ct);
            raw.copy_from_slice(&e.to_bytes());
        }
        f.write_all_at(&payload, payload_off).unwrap();
    }
    h.sum_alg = PayloadSum::Sha256Trunc;
    h.payload_sum = checksum(&payload);
    // FSCXREC1 records had no block-sum table: bytes 98..104 and the rest of the block zero.
    h.block_table = [0; 6];
    let mut block = vec![0u8; RECORD_HEADER_BLOCK as usize];
    block[..RECORD_HEADER_USED].copy_from_slice(&h.to_bytes());
    f.write_all_at(&block, off).unwrap();
}

/// Flips bits of the byte at `off` of `path` (twice: put back).
fn magic_at(path: &Path, off: u64) -> [u8; 8] {
    let mut m = [0u8; 8];
    open_rw(path).read_exact_at(&mut m, off).unwrap();
    m
}

fn algs(ef: &ExtentFile) -> Vec<PayloadSum> {
    ef.records().iter().map(|r| r.sum_alg).collect()
}

/// EIO "checksum mismatch" naming `data_off` for a read of 4096 bytes at `off`.
fn assert_eio(ef: &ExtentFile, m: &fscrypt::keysetup::MasterSecret, off: u64, data_off: u64) {
    let mut buf = vec![0u8; 4096];
    let e = ef
        .read(off, &mut buf, |c| ExtentKey::derive(m, c))
        .unwrap_err();
    assert_eq!(e.errno(), Errno::IO, "{e}");
    assert!(
        e.message().contains("checksum mismatch")
            && e.message().contains(&format!("backing offset {data_off}")),
        "{e}"
    );
}

const SHA: PayloadSum = PayloadSum::Sha256Trunc;
const XXH: PayloadSum = PayloadSum::Xxh3;

/// A log of `FSCXREC1` records (extent and truncate, committed and uncommitted) interleaved with
/// `FSCXREC2` ones: it opens, reads back, checks clean; damage to either kind's payload is EIO on
/// a verified read and a finding for fsck when committed, a torn tail when not; a clone of an old
/// record's units, and new writes, are `FSCXREC2`.
#[test]
fn a_log_mixing_sha256_and_xxh3_records_reads_and_verifies_each_with_its_own_sum() {
    let (m, dir, path, mut ef) = new_xts_file(21);
    let policy = ef.policy;
    let pat = |seed: u8, n: usize| -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(seed) ^ seed)
            .collect()
    };
    write(&mut ef, &m, 0, &pat(3, 3 * 4096)); // 0: extent (→ FSCXREC1)
    write(&mut ef, &m, 3 * 4096, &pat(5, 5 * 4096)); // 1: extent
    ef.truncate(7 * 4096 + 100).unwrap(); // 2: truncate (→ FSCXREC1)
    write(&mut ef, &m, 8 * 4096, &pat(7, 2 * 4096)); // 3: extent
    ef.sync().unwrap();
    write(&mut ef, &m, 4096, &pat(9, 4096)); // 4: uncommitted extent (→ FSCXREC1)
    write(&mut ef, &m, 9 * 4096, &pat(11, 4096)); // 5: uncommitted extent
    let want = read_all(&ef, &m);
    let rec: Vec<u64> = ef.records().iter().map(|r| r.offset).collect();
    assert_eq!(algs(&ef), [XXH; 6], "the engine writes FSCXREC2 only");
    assert_eq!(&magic_at(&path, rec[1]), RECORD_MAGIC_XXH3);
    for i in [0, 2, 4] {
        rewrite_as_sha256(&path, rec[i]);
    }
    assert_eq!(&magic_at(&path, rec[0]), RECORD_MAGIC_SHA256);
    let mixed = reopen(&ef);
    assert_eq!(algs(&mixed), [SHA, XXH, SHA, XXH, SHA, XXH]);
    assert_eq!(read_all(&mixed, &m), want);
    let f = mixed.check().unwrap();
    assert!(f.iter().all(|x| x.note), "{f:?}");

    // Committed payloads: open trusts them; a verified read and fsck catch a flip in either kind
    // (the third unit of record 0, old, or of record 1, new), and the other record still reads.
    for (i, logical, other) in [(0usize, 2 * 4096u64, 5 * 4096u64), (1, 5 * 4096, 0)] {
        let data_off = rec[i] + RECORD_HEADER_BLOCK;
        flip(&path, data_off + 2 * 4096 + 7);
        let bad = reopen(&ef);
        assert_eio(&bad, &m, logical, data_off);
        let f = bad.check().unwrap();
        assert!(
            f.iter().any(|x| !x.note
                && x.offset == Some(data_off)
                && x.message.contains("checksum mismatch")),
            "record {i}: {f:?}"
        );
        let mut b = vec![0u8; 4096];
        bad.read(other, &mut b, |c| ExtentKey::derive(&m, c))
            .unwrap();
        assert_eq!(b, want[other as usize..other as usize + 4096]);
        flip(&path, data_off + 2 * 4096 + 7);
    }

    // Uncommitted payloads are checked at replay, each with its own algorithm: a flip in the old
    // record (4) drops it and everything after it; a flip in the new one (5) drops that one only.
    let prefix = |cut: u64| -> Vec<u8> {
        let p = dir.path().join("prefix");
        std::fs::write(&p, &std::fs::read(&path).unwrap()[..cut as usize]).unwrap();
        read_all(&ExtentFile::open(open_rw(&p), &policy, 4096).unwrap(), &m)
    };
    for (i, left) in [
        (4usize, [SHA, XXH, SHA, XXH].as_slice()),
        (5, &[SHA, XXH, SHA, XXH, SHA]),
    ] {
        let want_torn = prefix(rec[i]);
        assert_ne!(want_torn, want);
        flip(&path, rec[i] + RECORD_HEADER_BLOCK + 100);
        let torn = reopen(&ef);
        assert_eq!(algs(&torn), left, "flip in record {i}");
        assert_eq!(read_all(&torn, &m), want_torn);
        flip(&path, rec[i] + RECORD_HEADER_BLOCK + 100);
    }
    assert_eq!(read_all(&reopen(&ef), &m), want);

    // New records after old ones, and a clone of an old record's units: FSCXREC2, verified.
    let mut ef = reopen(&ef);
    ef.clone_within(0, 12 * 4096, 3 * 4096).unwrap();
    write(&mut ef, &m, 15 * 4096, &pat(13, 4096));
    ef.sync().unwrap();
    let want = read_all(&ef, &m);
    assert_eq!(want[12 * 4096..15 * 4096], want[..3 * 4096]);
    let again = reopen(&ef);
    assert_eq!(algs(&again)[..6], [SHA, XXH, SHA, XXH, SHA, XXH]);
    assert!(algs(&again)[6..].iter().all(|&a| a == XXH));
    assert_eq!(read_all(&again, &m), want);
    assert!(again.check().unwrap().is_empty());
}

/// Compaction of a mixed log writes an `FSCXREC2` checkpoint (table and entries in XXH3, every run
/// summed anew from its copied bytes) that opens, reads and checks clean; an `FSCXREC1`
/// checkpoint (as compaction wrote them before) still opens and is verified with SHA-256, and
/// compacting it again gives an `FSCXREC2` one.
#[test]
fn compaction_of_a_mixed_log_writes_a_valid_xxh3_checkpoint() {
    let m = master(22);
    let policy = policy_for(&m, 9, EncryptionMode::Aes256Xts);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let mut ef = create(&path, &policy);
    let data: Vec<u8> = (0..20 * 512u32).map(|i| (i * 31 + i / 509) as u8).collect();
    write(&mut ef, &m, 0, &data[..8 * 512]);
    write(&mut ef, &m, 8 * 512, &data[8 * 512..]);
    write(&mut ef, &m, 3 * 512, &data[100..100 + 2 * 512]);
    ef.punch_hole(12 * 512, 2 * 512).unwrap();
    ef.sync().unwrap();
    let want = read_all(&ef, &m);
    let rec: Vec<u64> = ef.records().iter().map(|r| r.offset).collect();
    for i in [0, 2, 3] {
        rewrite_as_sha256(&path, rec[i]);
    }
    let mixed = reopen(&ef);
    assert_eq!(algs(&mixed), [SHA, XXH, SHA, SHA]);
    assert_eq!(read_all(&mixed, &m), want);

    let compacted = compact(&mixed, &path);
    assert_eq!(algs(&compacted), [XXH]);
    assert_eq!(compacted.records()[0].kind, RecordKind::Checkpoint);
    assert_eq!(&magic_at(&path, 4096), RECORD_MAGIC_XXH3);
    let c = reopen(&compacted);
    assert_eq!(read_all(&c, &m), want);
    assert!(c.check().unwrap().is_empty());
    // Every entry's sum is XXH3 of its run (a flip in a run copied from an old record is caught).
    let run = c.extents().into_iter().find(|e| e.logical == 0).unwrap();
    flip(&path, run.backing_offset + 3);
    let bad = reopen(&c);
    assert_eio(&bad, &m, 0, run.backing_offset);
    assert!(bad.check().unwrap().iter().any(|x| !x.note));
    flip(&path, run.backing_offset + 3);

    // The checkpoint rewritten as FSCXREC1: still valid, verified with SHA-256.
    rewrite_as_sha256(&path, 4096);
    let old = reopen(&c);
    assert_eq!(algs(&old), [SHA]);
    assert_eq!(read_all(&old, &m), want);
    assert!(old.check().unwrap().is_empty());
    flip(&path, run.backing_offset + 3);
    assert_eio(&reopen(&c), &m, 0, run.backing_offset);
    flip(&path, run.backing_offset + 3);
    // A flipped table byte of the old checkpoint: its SHA-256 table checksum fails (EUCLEAN).
    flip(&path, 4096 + RECORD_HEADER_BLOCK + 9);
    let e = ExtentFile::open(open_rw(&path), &policy, 512)
        .err()
        .unwrap();
    assert_eq!(e.errno(), Errno::UCLEAN, "{e}");
    flip(&path, 4096 + RECORD_HEADER_BLOCK + 9);
    // Appending to it, then compacting again: FSCXREC2 throughout.
    let mut old = reopen(&c);
    write(&mut old, &m, 0, &[7; 512]);
    old.sync().unwrap();
    assert_eq!(algs(&old), [SHA, XXH]);
    let mut want2 = want.clone();
    want2[..512].fill(7);
    let again = compact(&old, &path);
    assert_eq!(algs(&again), [XXH]);
    assert_eq!(read_all(&reopen(&again), &m), want2);
    assert!(again.check().unwrap().is_empty());
    let mut b = [0u8; CHECKPOINT_ENTRY_SIZE];
    open_rw(&path)
        .read_exact_at(&mut b, 4096 + RECORD_HEADER_BLOCK)
        .unwrap();
    let e = CheckpointEntry::parse(&b).unwrap();
    let mut ct = vec![0u8; (e.len.div_ceil(512) * 512) as usize];
    open_rw(&path)
        .read_exact_at(&mut ct, 4096 + e.data_rel)
        .unwrap();
    assert_eq!(e.sum, PayloadSum::Xxh3.digest(&ct));
}
