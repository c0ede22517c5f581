//! Tests of block-sum tables (docs/FORMAT.md, "Per-extent layout" and "Verified reads"): extent
//! records the engine writes (and clones) carry one; a read verifies only the 4096-byte blocks it
//! touches, so a damaged block is EIO for the reads touching it and the rest of its run still
//! reads; a damaged table or table hash is EIO for every read of the run; fsck reports each; runs
//! without a table (checkpoints, `FSCXREC1`) are verified whole, as before.

use std::os::unix::fs::FileExt;

use fscrypt::extent::ExtentKey;
use fscrypt::keysetup::MasterSecret;
use fscrypt::Errno;

use super::blocksums::{self, TABLE_OFF};
use super::ciphertext::EXACT_READS;
use super::format::{RecordHeader, RecordKind, RECORD_HEADER_BLOCK, RECORD_HEADER_USED};
use super::tests::{compact, flip, new_xts_file, open_rw, read_all, read_at, reopen, write, Rng};
use super::{CHECKPOINT_RUN_MAX, EXTENT_MAX};

/// Verified reads: a flipped byte of an extent record's payload makes every read touching that
/// block EIO naming its backing offset, in the instance that wrote it too; the other blocks of the
/// run and other runs still read; fsck finds it. A run of a compacted checkpoint (no block-sum
/// table) is verified whole: every read touching it is EIO.
#[test]
fn reads_verify_every_run_against_its_checksum() {
    let (m, _dir, path, mut ef) = new_xts_file(11);
    let mut rng = Rng(0x5eed);
    let a = rng.bytes(3 * 4096);
    let b = rng.bytes(5 * 4096);
    write(&mut ef, &m, 0, &a);
    write(&mut ef, &m, 3 * 4096, &b);
    ef.sync().unwrap();
    let want: Vec<u8> = a.iter().chain(&b).copied().collect();
    assert_eq!(read_all(&ef, &m), want);
    // The second extent's third unit.
    let ext = ef.extents();
    let second = ext.iter().find(|e| e.logical == 3 * 4096).unwrap();
    flip(&path, second.backing_offset + 2 * 4096 + 17);
    // The run has a block-sum table: every read checks the blocks it reads, so this instance
    // sees the damage too. A new instance (a remount) the same way: EIO for any read touching the
    // damaged block, naming its backing offset, never data.
    let fresh = reopen(&ef);
    let bad_block = second.backing_offset + 2 * 4096;
    for inst in [&ef, &fresh] {
        for (off, len) in [(5 * 4096, 4096), (0, 8 * 4096), (4 * 4096 + 5, 4096)] {
            let mut buf = vec![0u8; len];
            let e = inst
                .read(off, &mut buf, |c| ExtentKey::derive(&m, c))
                .unwrap_err();
            assert_eq!(e.errno(), Errno::IO, "read at {off}: {e}");
            assert!(
                e.message().contains("checksum mismatch")
                    && e.message().contains(&format!("backing offset {bad_block}"))
                    && e.message()
                        .contains(&format!("backing offset {}", second.backing_offset)),
                "{e}"
            );
            // Nothing of the damaged run reached the buffer (the filesystem drops it all on Err).
            let bad_from = (3 * 4096u64).saturating_sub(off).min(len as u64) as usize;
            assert!(buf[bad_from..].iter().all(|&x| x == 0), "read at {off}");
        }
        // The other blocks of the same run still read, verified.
        assert_eq!(read_at(inst, &m, 3 * 4096, 2 * 4096), b[..2 * 4096]);
        assert_eq!(
            read_at(inst, &m, 6 * 4096 + 1, 4096),
            b[3 * 4096 + 1..4 * 4096 + 1]
        );
        assert_eq!(read_at(inst, &m, 7 * 4096, 4096), b[4 * 4096..]);
    }
    // fsck finds the block, and the run's whole checksum.
    let f = fresh.check().unwrap();
    assert!(
        f.iter()
            .any(|x| x.offset == Some(bad_block) && x.message.contains("block 2")),
        "{f:?}"
    );
    assert!(
        f.iter().any(|x| x.offset == Some(second.backing_offset)),
        "{f:?}"
    );
    // The first extent is untouched and reads.
    assert_eq!(read_at(&fresh, &m, 0, 3 * 4096), a);
    // Flipped back, then compacted: the checkpoint's runs are verified the same way.
    flip(&path, second.backing_offset + 2 * 4096 + 17);
    let fresh = reopen(&ef);
    assert_eq!(read_all(&fresh, &m), want);
    let compacted = compact(&fresh, &path);
    let run = compacted
        .extents()
        .into_iter()
        .find(|e| e.logical == 0)
        .unwrap();
    flip(&path, run.backing_offset + 5);
    let again = reopen(&compacted);
    let mut buf = vec![0u8; 100];
    let e = again
        .read(4000, &mut buf, |c| ExtentKey::derive(&m, c))
        .unwrap_err();
    assert_eq!(e.errno(), Errno::IO, "{e}");
    assert_eq!(read_at(&again, &m, 3 * 4096, 5 * 4096), b);
}

/// Backing reads (calls of `read_exact_at`) a read of `len` bytes at `off` makes, and its bytes.
fn counted_read(ef: &super::ExtentFile, m: &MasterSecret, off: u64, len: usize) -> (u64, Vec<u8>) {
    let before = EXACT_READS.with(|n| n.get());
    let got = read_at(ef, m, off, len);
    (EXACT_READS.with(|n| n.get()) - before, got)
}

/// A read that spans the end of one record and the start of the next, appended right after it
/// (a sequential reader whose requests are not aligned with the records), reads both records'
/// blocks and the table between them in one backing read; every block and both tables are still
/// checked: a flipped byte in either record, or in the second table, is EIO. Records that are not
/// adjacent in the log are read apart.
#[test]
fn a_read_across_two_adjacent_records_is_one_backing_read_and_still_verified() {
    let (m, _dir, path, mut ef) = new_xts_file(41);
    let mut rng = Rng(0xada);
    let data = rng.bytes(24 * 4096);
    write(&mut ef, &m, 0, &data[..10 * 4096]);
    write(&mut ef, &m, 10 * 4096, &data[10 * 4096..20 * 4096]);
    // Out of order in the log: [20, 24) is written before [16, 20) is overwritten.
    write(&mut ef, &m, 20 * 4096, &data[20 * 4096..]);
    write(&mut ef, &m, 16 * 4096, &data[16 * 4096..20 * 4096]);
    ef.sync().unwrap();
    let (lo, hi): (u64, u64) = (6 * 4096 + 100, 14 * 4096 - 7);
    // A new instance (a remount): no table is cached. The first record's table and first blocks
    // are one read; the span across both records then one more.
    let fresh = reopen(&ef);
    assert_eq!(
        counted_read(&fresh, &m, 0, 4096),
        (1, data[..4096].to_vec())
    );
    assert_eq!(
        counted_read(&fresh, &m, lo, (hi - lo) as usize),
        (1, data[lo as usize..hi as usize].to_vec())
    );
    // Across [16, 20) and [20, 24), which the log holds the other way round: apart.
    let fresh = reopen(&ef);
    let (reads, got) = counted_read(&fresh, &m, 18 * 4096, 4 * 4096);
    assert_eq!(got, data[18 * 4096..22 * 4096]);
    assert!(reads >= 2, "{reads} reads across records out of order");
    // Damage in the first record's blocks, the second record's table or its blocks: EIO.
    let ext = ef.extents();
    let second = ext.iter().find(|e| e.logical == 10 * 4096).unwrap();
    let first = ext.iter().find(|e| e.logical == 0).unwrap();
    for at in [
        first.backing_offset + 8 * 4096 + 5,
        second.record_offset + TABLE_OFF + 8,
        second.backing_offset + 3 * 4096 + 1,
    ] {
        flip(&path, at);
        let fresh = reopen(&ef);
        let mut buf = vec![0u8; (hi - lo) as usize];
        let e = fresh
            .read(lo, &mut buf, |c| ExtentKey::derive(&m, c))
            .unwrap_err();
        assert_eq!(e.errno(), Errno::IO, "flipped at {at}: {e}");
        assert!(e.message().contains("mismatch"), "{e}");
        flip(&path, at);
    }
    assert_eq!(read_all(&reopen(&ef), &m), data);
}

/// The table hash (bytes 98..104) of the record header at `off`.
fn table_hash_at(path: &std::path::Path, off: u64) -> [u8; 6] {
    let mut hb = [0u8; RECORD_HEADER_USED];
    open_rw(path).read_exact_at(&mut hb, off).unwrap();
    RecordHeader::parse(&hb).unwrap().block_table
}

/// Every extent record written or cloned carries a table that matches its payload; any sub-range
/// reads correctly; a flipped table entry, or a table hash changed with the header checksum
/// recomputed, is EIO for every read of that run (nothing returned) and a finding for fsck, while
/// other runs read.
#[test]
fn tables_are_written_and_a_damaged_table_or_hash_is_eio_and_found() {
    let (m, _dir, path, mut ef) = new_xts_file(31);
    let mut rng = Rng(0xb10c);
    let a = rng.bytes(64 * 4096 + 1000);
    write(&mut ef, &m, 0, &a[..20 * 4096]);
    write(&mut ef, &m, 20 * 4096, &a[20 * 4096..]);
    ef.clone_within(0, 80 * 4096, 7 * 4096).unwrap();
    ef.sync().unwrap();
    let mut want = a.clone();
    want.resize(80 * 4096, 0);
    want.extend_from_slice(&a[..7 * 4096]);
    assert_eq!(read_all(&ef, &m), want);
    let recs: Vec<_> = ef
        .records()
        .iter()
        .filter(|r| r.kind == RecordKind::Extent)
        .collect();
    assert_eq!(recs.len(), 3);
    let f = open_rw(&path);
    for r in &recs {
        let mut hb = vec![0u8; RECORD_HEADER_BLOCK as usize];
        f.read_exact_at(&mut hb, r.offset).unwrap();
        let h = RecordHeader::parse(&hb).unwrap();
        let mut payload = vec![0u8; h.checked_len as usize];
        f.read_exact_at(&mut payload, r.offset + RECORD_HEADER_BLOCK)
            .unwrap();
        let t = blocksums::table_of(&payload).unwrap();
        let at = TABLE_OFF as usize;
        assert_eq!(&hb[at..at + t.len()], &t[..], "record at {}", r.offset);
        assert!(hb[at + t.len()..].iter().all(|&x| x == 0));
        assert_eq!(h.block_table, blocksums::table_hash(&t));
    }
    // Sub-ranges of every size and alignment read correctly from a fresh instance.
    let fresh = reopen(&ef);
    for _ in 0..200 {
        let off = rng.next() % want.len() as u64;
        let len = (rng.next() % (40 * 4096)) as usize + 1;
        let end = (off as usize + len).min(want.len());
        assert_eq!(
            read_at(&fresh, &m, off, len),
            want[off as usize..end],
            "{off}+{len}"
        );
    }
    drop(f);
    let second = recs[1].offset;
    let set_hash = |hash: [u8; 6]| {
        let f = open_rw(&path);
        let mut hb = [0u8; RECORD_HEADER_USED];
        f.read_exact_at(&mut hb, second).unwrap();
        let mut h = RecordHeader::parse(&hb).unwrap();
        h.block_table = hash;
        f.write_all_at(&h.to_bytes(), second).unwrap();
    };
    let good_hash = table_hash_at(&path, second);
    let mut bad_hash = good_hash;
    bad_hash[3] ^= 1;
    // A table entry (block 30's) flipped; the table hash changed (header checksum recomputed).
    for damage in 0..2 {
        if damage == 0 {
            flip(&path, second + TABLE_OFF + 8 * 30 + 2);
        } else {
            set_hash(bad_hash);
        }
        let bad = reopen(&ef);
        for (off, len) in [(20 * 4096, 1), (40 * 4096, 8192), (0, 30 * 4096)] {
            let mut buf = vec![0u8; len];
            let e = bad
                .read(off, &mut buf, |c| ExtentKey::derive(&m, c))
                .unwrap_err();
            assert_eq!(e.errno(), Errno::IO, "{e}");
            assert!(
                e.message().contains("block-sum table checksum mismatch"),
                "{e}"
            );
            assert!(e.message().contains(&format!("record at {second}")), "{e}");
            let from = (20 * 4096u64).saturating_sub(off).min(len as u64) as usize;
            assert!(buf[from..].iter().all(|&x| x == 0));
        }
        assert_eq!(read_at(&bad, &m, 0, 20 * 4096), want[..20 * 4096]);
        assert_eq!(read_at(&bad, &m, 80 * 4096, 7 * 4096), want[80 * 4096..]);
        let f = bad.check().unwrap();
        assert!(
            f.iter().any(|x| !x.note
                && x.offset == Some(second + TABLE_OFF)
                && x.message.contains("block-sum table checksum mismatch")),
            "{f:?}"
        );
        if damage == 0 {
            flip(&path, second + TABLE_OFF + 8 * 30 + 2);
        } else {
            set_hash(good_hash);
        }
    }
    let again = reopen(&ef);
    assert_eq!(read_all(&again, &m), want);
    assert!(again.check().unwrap().is_empty());
}

/// Uncommitted records are checked at replay against their table too: a torn table (its bytes
/// after the header's used bytes lost) drops the record as a torn tail. Compaction writes a
/// checkpoint without tables, and a header that claims a table on a checkpoint, or on a payload
/// too large for one, is refused.
#[test]
fn a_torn_table_is_a_torn_tail_and_checkpoints_have_none() {
    let (m, _dir, path, mut ef) = new_xts_file(32);
    let policy = ef.policy;
    let mut rng = Rng(0x7011);
    let a = rng.bytes(8 * 4096);
    let b = rng.bytes(4 * 4096);
    write(&mut ef, &m, 0, &a);
    ef.sync().unwrap();
    write(&mut ef, &m, 8 * 4096, &b);
    let last = ef.records().last().unwrap().offset;
    let zeros = vec![0u8; (RECORD_HEADER_BLOCK - TABLE_OFF) as usize];
    open_rw(&path)
        .write_all_at(&zeros, last + TABLE_OFF)
        .unwrap();
    let torn = reopen(&ef);
    assert_eq!(torn.records().len(), 1);
    assert_eq!(read_all(&torn, &m), a);
    assert!(torn.check().unwrap().iter().all(|x| x.note));

    let mut ef = reopen(&ef);
    write(&mut ef, &m, 8 * 4096, &b);
    ef.sync().unwrap();
    let c = compact(&ef, &path);
    assert_eq!(c.records()[0].kind, RecordKind::Checkpoint);
    assert_eq!(table_hash_at(&path, c.records()[0].offset), [0; 6]);
    assert!(c.check().unwrap().is_empty());
    // A checkpoint claiming a table: refused at open.
    let off = c.records()[0].offset;
    let f = open_rw(&path);
    let mut hb = [0u8; RECORD_HEADER_USED];
    f.read_exact_at(&mut hb, off).unwrap();
    let mut h = RecordHeader::parse(&hb).unwrap();
    h.block_table = [1; 6];
    f.write_all_at(&h.to_bytes(), off).unwrap();
    let e = super::ExtentFile::open(open_rw(&path), &policy, 4096)
        .err()
        .unwrap();
    assert!(e.message().contains("block-sum table on a record"), "{e}");
}

/// An extent as long as the engine writes them ([`EXTENT_MAX`]) is one record with a block-sum
/// table; a sequential read of a fresh instance takes each record's table and first blocks in one
/// backing read and still checks them (a damaged first block is EIO); a checkpoint splits the
/// extent into runs of at most [`CHECKPOINT_RUN_MAX`] (verified whole when read) with their IVs
/// continuing where the previous part ended, and reads back the same bytes.
#[test]
fn long_extents_are_one_record_and_checkpoints_split_them() {
    let (m, _dir, path, mut ef) = new_xts_file(21);
    let mut rng = Rng(0x10e6);
    let long = rng.bytes(EXTENT_MAX as usize);
    let tail = rng.bytes(5 * 4096 + 100);
    write(&mut ef, &m, 0, &long);
    write(&mut ef, &m, EXTENT_MAX, &tail);
    ef.sync().unwrap();
    let want: Vec<u8> = long.iter().chain(&tail).copied().collect();
    let ext = ef.extents();
    assert_eq!(ext.len(), 2, "{ext:?}");
    assert_eq!(ext[0].len, EXTENT_MAX);
    let records = ef.records().iter().filter(|r| r.kind == RecordKind::Extent);
    assert_eq!(records.count(), 2);
    assert!(blocksums::has_table(&table_hash_at(
        &path,
        ext[0].record_offset
    )));
    // Sequential reads of fresh instances, in requests of 128 KiB as the kernel sends them.
    for _ in 0..2 {
        let fresh = reopen(&ef);
        let mut got = Vec::new();
        while (got.len() as u64) < fresh.logical_size() {
            got.extend(read_at(&fresh, &m, got.len() as u64, 128 << 10));
        }
        assert_eq!(got, want);
        // Each table read with its first blocks was cached alone, not with the read's buffer.
        for run in &fresh.runs {
            let t = blocksums::cache_get(&(fresh.instance, run.record_off, run.table)).unwrap();
            assert_eq!(t.capacity(), t.len());
        }
    }
    // The first block of the long extent, damaged: the first read of a fresh instance (its table
    // and that block in one backing read) is EIO naming it.
    let at = ext[0].backing_offset + 9;
    flip(&path, at);
    let fresh = reopen(&ef);
    let mut buf = vec![0u8; 128 << 10];
    let e = fresh
        .read(0, &mut buf, |c| ExtentKey::derive(&m, c))
        .unwrap_err();
    assert_eq!(e.errno(), Errno::IO, "{e}");
    assert!(
        e.message()
            .contains(&format!("backing offset {}", ext[0].backing_offset)),
        "{e}"
    );
    assert_eq!(read_at(&fresh, &m, 4096, 8192), long[4096..3 * 4096]);
    flip(&path, at);
    // Compacted: the long extent becomes four runs of 256 KiB, one extent context, consecutive IVs.
    let compacted = compact(&reopen(&ef), &path);
    let parts = compacted.extents();
    assert_eq!(parts.len(), 5, "{parts:?}");
    for (k, p) in parts[..4].iter().enumerate() {
        assert_eq!(p.len, CHECKPOINT_RUN_MAX);
        assert_eq!(p.logical, k as u64 * CHECKPOINT_RUN_MAX);
        assert_eq!(p.ctx.nonce, ext[0].ctx.nonce);
        assert_eq!(p.first_unit, k as u64 * CHECKPOINT_RUN_MAX / 4096);
    }
    assert_eq!(read_all(&compacted, &m), want);
    assert_eq!(read_all(&reopen(&compacted), &m), want);
    assert!(compacted.check().unwrap().is_empty());
}
