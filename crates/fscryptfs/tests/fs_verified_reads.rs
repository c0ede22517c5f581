//! Verified reads in the per-extent layout (issue 11, part 4) on a real mount: a flipped byte of
//! stored ciphertext makes reads of that extent EIO, with one log line naming the inode, the offset
//! and the backing path, never garbage; reads of other blocks of that extent (each read verifies
//! only the blocks it touches against the record's block-sum table), other extents and other files
//! still read; a tampered block-sum table or table hash is EIO the same way, a tampered payload
//! checksum (the header's own checksum recomputed) is found by fsck; a record header damaged outright makes the file EUCLEAN at open (damaged metadata,
//! found when the log is opened, before any read). Records of earlier versions (`FSCXREC1`, SHA-256
//! payload checksums) read and are verified next to today's (`FSCXREC2`, XXH3-64).

mod support;

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use fscryptfs::store::config::ContentsLayout;
use fscryptfs::store::extent::{ExtentFile, ExtentInfo};
use fscryptfs::store::meta::FileHeader;
use support::*;

const MIB: usize = 1 << 20;

/// The live extents of a per-extent backing file, read offline.
fn extents_of(p: &Path) -> Vec<ExtentInfo> {
    let mut b = [0u8; 80];
    let f = File::open(p).unwrap();
    f.read_exact_at(&mut b, 0).unwrap();
    let h = FileHeader::parse(&b, &fscryptfs::store::fs_params(), "f").unwrap();
    assert_eq!(h.layout, ContentsLayout::Extent, "{}", p.display());
    let policy = *h.ctx.unwrap().policy();
    ExtentFile::open(f, &policy, 4096).unwrap().extents()
}

/// Flips bits of the byte at `off` of `p`.
fn flip(p: &Path, off: u64, bits: u8) {
    let f = OpenOptions::new().read(true).write(true).open(p).unwrap();
    let mut x = [0u8; 1];
    f.read_exact_at(&mut x, off).unwrap();
    f.write_all_at(&[x[0] ^ bits], off).unwrap();
    f.sync_all().unwrap();
}

/// `len` bytes of `p` at `off`, read with pread through the mount.
fn pread(p: &Path, off: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let f = File::open(p)?;
    let mut b = vec![0u8; len];
    let n = f.read_at(&mut b, off)?;
    b.truncate(n);
    Ok(b)
}

/// A volume (default layout: per-extent) with `enc/big` (3 MiB, in extents of at most 256 KiB) and
/// `enc/small` (100 KB) written, fsynced and unmounted; returns the mount (stopped), both inode
/// numbers, the backing path of `big`, and the contents.
struct Setup {
    m: Mounted,
    big_ino: u64,
    small_ino: u64,
    big_backing: PathBuf,
    big: Vec<u8>,
    small: Vec<u8>,
}

fn setup() -> Option<Setup> {
    let (mut m, _id) = encrypted_volume()?;
    let big = pattern(1, 3 * MIB);
    let small = pattern(2, 100_000);
    for (name, data) in [("enc/big", &big), ("enc/small", &small)] {
        let mut f = File::create(m.path(name)).unwrap();
        std::io::Write::write_all(&mut f, data).unwrap();
        f.sync_all().unwrap();
    }
    let big_ino = fs::metadata(m.path("enc/big")).unwrap().ino();
    let small_ino = fs::metadata(m.path("enc/small")).unwrap().ino();
    m.stop();
    let big_backing = backing_file_of(&m.backing.join("enc"), big_ino).0;
    Some(Setup {
        m,
        big_ino,
        small_ino,
        big_backing,
        big,
        small,
    })
}

/// Mounts again and adds the key (the keyring starts empty).
fn remount(m: &mut Mounted) {
    m.start_again("");
    add_key(&m.mnt, &KEY).expect("add key");
}

#[test]
fn flipped_ciphertext_is_eio_and_logged_other_extents_and_files_read() {
    let Some(mut s) = setup() else {
        return;
    };
    let ext = extents_of(&s.big_backing);
    assert!(ext.len() >= 3, "{ext:?}");
    let second = *ext.iter().find(|e| e.logical == MIB as u64).unwrap();
    // One byte of the second extent's ciphertext, in its fifth unit.
    flip(&s.big_backing, second.backing_offset + 4 * 4096 + 123, 0x01);
    remount(&mut s.m);
    let big = s.m.path("enc/big");
    // Reads touching the damaged extent: EIO, never data.
    let e = fs::read(&big).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    let e = pread(&big, MIB as u64 + 4 * 4096, 4096).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    let e = pread(&big, MIB as u64 + 4 * 4096 + 100, 8192).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    // Other blocks of the same extent read (each read verifies only the blocks it touches; the
    // last block of the extent: readahead goes forward from it, never back to the damaged one).
    let last = second.logical + second.len - 4096;
    assert_eq!(
        pread(&big, last + 5, 10).unwrap(),
        &s.big[last as usize + 5..last as usize + 15]
    );
    // The other extents of the same file read correctly.
    assert_eq!(pread(&big, 0, 64 * 1024).unwrap(), &s.big[..64 * 1024]);
    assert_eq!(
        pread(&big, 2 * MIB as u64, MIB).unwrap(),
        &s.big[2 * MIB..3 * MIB]
    );
    // Other files are untouched.
    assert_eq!(fs::read(s.m.path("enc/small")).unwrap(), s.small);
    assert_ne!(s.small_ino, s.big_ino);
    // The log names the file (inode), the offset and the backing path.
    let log = s.m.log_text();
    let backing = s.big_backing.canonicalize().unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("checksum mismatch"))
        .unwrap_or_else(|| panic!("no mismatch line in the daemon log:\n{}", tail(&log, 40)));
    eprintln!("daemon log: {line}");
    assert!(line.contains("ERROR") || line.contains("WARN"), "{line}");
    assert!(line.contains(&format!("inode {}", s.big_ino)), "{line}");
    assert!(line.contains("at offset "), "{line}");
    assert!(line.contains(&backing.display().to_string()), "{line}");
    assert!(
        line.contains(&format!(
            "backing offset {}",
            second.backing_offset + 4 * 4096
        )) && line.contains(&format!("backing offset {}", second.backing_offset)),
        "{line}"
    );
    // Put back, the file reads whole again (after a remount: nothing was cached as bad).
    flip(&s.big_backing, second.backing_offset + 4 * 4096 + 123, 0x01);
    s.m.stop();
    remount(&mut s.m);
    assert_eq!(fs::read(&big).unwrap(), s.big);
}

/// Changes bytes `range` of the record header at `off` of `p` (XOR `bits` into the first) and
/// recomputes the header checksum, so the header stays valid.
fn tamper_header(p: &Path, off: u64, at: usize, bits: u8) {
    let f = OpenOptions::new().read(true).write(true).open(p).unwrap();
    let mut h = [0u8; 120];
    f.read_exact_at(&mut h, off).unwrap();
    h[at] ^= bits;
    let sum = fscryptfs::store::checksum(&h[..112]);
    h[112..120].copy_from_slice(&sum);
    f.write_all_at(&h, off).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn tampered_sums_in_a_record_header_are_found_and_a_bad_table_is_eio() {
    let Some(mut s) = setup() else {
        return;
    };
    let ext = extents_of(&s.big_backing);
    let third = *ext.iter().find(|e| e.logical == 2 * MIB as u64).unwrap();
    let big = s.m.path("enc/big");
    // The whole-payload checksum (bytes 104..112) changed, the header checksum (112..120, over
    // 0..112) recomputed: reads verify the blocks they touch against the block-sum table and still
    // return the right data; fsck checks the whole payload and finds it.
    tamper_header(&s.big_backing, third.record_offset, 106, 0x80);
    let (code, out) = fsck(&s.m.backing);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("checksum mismatch"), "{out}");
    remount(&mut s.m);
    assert_eq!(
        pread(&big, 2 * MIB as u64 + 5, 100).unwrap(),
        &s.big[2 * MIB + 5..2 * MIB + 105]
    );
    s.m.stop();
    tamper_header(&s.big_backing, third.record_offset, 106, 0x80);
    // The block-sum table's hash (bytes 98..104) changed, or an entry of the table (header-block
    // bytes 128..): every read of the extent is EIO and logged; fsck finds it.
    for damage in 0..2 {
        if damage == 0 {
            tamper_header(&s.big_backing, third.record_offset, 100, 0x10);
        } else {
            flip(&s.big_backing, third.record_offset + 128 + 8 * 3 + 1, 0x10);
        }
        let (code, out) = fsck(&s.m.backing);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("block-sum table checksum mismatch"), "{out}");
        remount(&mut s.m);
        let e = pread(&big, 2 * MIB as u64 + 5, 100).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
        assert_eq!(pread(&big, 0, MIB).unwrap(), &s.big[..MIB]);
        assert_eq!(fs::read(s.m.path("enc/small")).unwrap(), s.small);
        let log = s.m.log_text();
        assert!(
            log.lines()
                .any(|l| l.contains("block-sum table checksum mismatch")
                    && l.contains(&format!("inode {}", s.big_ino))),
            "{}",
            tail(&log, 40)
        );
        s.m.stop();
        if damage == 0 {
            tamper_header(&s.big_backing, third.record_offset, 100, 0x10);
        } else {
            flip(&s.big_backing, third.record_offset + 128 + 8 * 3 + 1, 0x10);
        }
    }
    remount(&mut s.m);
    assert_eq!(fs::read(&big).unwrap(), s.big);
}

#[test]
fn damaged_record_header_is_euclean_at_open_never_garbage() {
    let Some(mut s) = setup() else {
        return;
    };
    let ext = extents_of(&s.big_backing);
    let first = *ext.iter().find(|e| e.logical == 0).unwrap();
    // A byte of the header's stored payload checksum flipped without fixing the header checksum.
    flip(&s.big_backing, first.record_offset + 105, 0x04);
    remount(&mut s.m);
    let big = s.m.path("enc/big");
    // Damaged metadata: the log cannot be opened, so the file cannot be (EUCLEAN, as a damaged
    // file header); it can still be stat'ed and deleted.
    let e = File::open(&big).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EUCLEAN), "{e}");
    assert!(fs::metadata(&big).is_ok());
    assert_eq!(fs::read(s.m.path("enc/small")).unwrap(), s.small);
    let log = s.m.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("record header checksum mismatch")),
        "{}",
        tail(&log, 40)
    );
    fs::remove_file(&big).unwrap();
}

/// Rewrites the `FSCXREC2` extent record at `off` of `p` as an `FSCXREC1` one, as FORMAT.md
/// describes them (and earlier versions wrote them): the old magic, SHA-256(payload)[0..8] as the
/// payload checksum, the header checksum recomputed.
fn rewrite_as_sha256(p: &Path, off: u64) {
    let f = OpenOptions::new().read(true).write(true).open(p).unwrap();
    let mut h = [0u8; 120];
    f.read_exact_at(&mut h, off).unwrap();
    assert_eq!(&h[..8], b"FSCXREC2");
    let checked = u64::from_le_bytes(h[56..64].try_into().unwrap());
    let mut payload = vec![0u8; checked as usize];
    f.read_exact_at(&mut payload, off + 4096).unwrap();
    h[..8].copy_from_slice(b"FSCXREC1");
    // FSCXREC1 records had no block-sum table: bytes 98..104 and 128..4096 zero.
    h[98..104].fill(0);
    h[104..112].copy_from_slice(&fscryptfs::store::checksum(&payload));
    let sum = fscryptfs::store::checksum(&h[..112]);
    h[112..120].copy_from_slice(&sum);
    f.write_all_at(&h, off).unwrap();
    f.write_all_at(&[0u8; 4096 - 128], off + 128).unwrap();
    f.sync_all().unwrap();
}

fn fsck(backing: &Path) -> (i32, String) {
    let out = std::process::Command::new(bin())
        .arg("fsck")
        .arg(backing)
        .output()
        .expect("run fsck");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn sha256_records_of_earlier_versions_read_and_are_verified_next_to_xxh3_ones() {
    let Some(mut s) = setup() else {
        return;
    };
    let ext = extents_of(&s.big_backing);
    let first = *ext.iter().find(|e| e.logical == 0).unwrap();
    let second = *ext.iter().find(|e| e.logical == MIB as u64).unwrap();
    rewrite_as_sha256(&s.big_backing, first.record_offset);
    remount(&mut s.m);
    let big = s.m.path("enc/big");
    assert_eq!(fs::read(&big).unwrap(), s.big);
    // A new write appends an FSCXREC2 record after the old one.
    let f = OpenOptions::new().write(true).open(&big).unwrap();
    f.write_all_at(&[0xab; 4096], 8192).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let mut want = s.big.clone();
    want[8192..12288].fill(0xab);
    assert_eq!(fs::read(&big).unwrap(), want);
    s.m.stop();
    let magic = |off: u64| {
        let mut m = [0u8; 8];
        File::open(&s.big_backing)
            .unwrap()
            .read_exact_at(&mut m, off)
            .unwrap();
        m
    };
    assert_eq!(&magic(first.record_offset), b"FSCXREC1");
    assert_eq!(&magic(second.record_offset), b"FSCXREC2");
    let last = ExtentFile::open(File::open(&s.big_backing).unwrap(), &big_policy(&s), 4096)
        .unwrap()
        .records()
        .last()
        .map(|r| r.offset)
        .unwrap();
    assert_eq!(&magic(last), b"FSCXREC2");
    let (code, out) = fsck(&s.m.backing);
    assert_eq!(code, 0, "{out}");
    // A flipped ciphertext byte in either kind of record: fsck finds it, reads of it are EIO,
    // the other record reads.
    for (bad, good) in [(first, second), (second, first)] {
        let at = bad.backing_offset + 5 * 4096 + 11;
        flip(&s.big_backing, at, 0x02);
        let (code, out) = fsck(&s.m.backing);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("checksum mismatch"), "{out}");
        remount(&mut s.m);
        let e = pread(&big, bad.logical + 5 * 4096, 4096).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
        let g = good.logical as usize + 5 * 4096;
        assert_eq!(pread(&big, g as u64, 4096).unwrap(), &want[g..g + 4096]);
        s.m.stop();
        flip(&s.big_backing, at, 0x02);
    }
    remount(&mut s.m);
    assert_eq!(fs::read(&big).unwrap(), want);
}

/// The policy of `big`'s backing file (from its header).
fn big_policy(s: &Setup) -> fscrypt::policy::Policy {
    let mut b = [0u8; 80];
    File::open(&s.big_backing)
        .unwrap()
        .read_exact_at(&mut b, 0)
        .unwrap();
    let h = FileHeader::parse(&b, &fscryptfs::store::fs_params(), "f").unwrap();
    *h.ctx.unwrap().policy()
}
