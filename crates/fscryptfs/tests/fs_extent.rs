//! The per-extent layout on a real mount (`init --contents-layout=extent`): contents, the log on the
//! backing file (every writeout a new extent with a fresh nonce, decryptable from the raw key with
//! HKDF context 9), writeout of buffered data after a key removal (generic/595), soft removal and
//! deny-writes, and the policies such a volume refuses (v1, DIRECT_KEY, IV_INO_LBLK_*: EINVAL).

mod support;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use fscrypt::extent::ExtentKey;
use fscrypt::keysetup::MasterSecret;
use fscryptfs::store::config::ContentsLayout;
use fscryptfs::store::extent::{ExtentFile, ExtentInfo, RecordKind};
use fscryptfs::store::meta::FileHeader;
use support::*;

const FILES_BUSY: u32 = 1;
const INCOMPLETELY_REMOVED: u32 = 3;

/// An extent volume with [`KEY`] added and `enc/` encrypted (v2, AES-256-XTS).
fn extent_volume(init: &[&str]) -> Option<(Mounted, [u8; 16])> {
    extent_volume_mounted_with(init, "")
}

/// [`extent_volume`] mounted with `-o opts`.
fn extent_volume_mounted_with(init: &[&str], opts: &str) -> Option<(Mounted, [u8; 16])> {
    let mut args = vec!["--contents-layout=extent"];
    args.extend_from_slice(init);
    let m = mount_volume(&args, opts)?;
    let id = add_key(&m.mnt, &KEY).expect("add key");
    fs::create_dir(m.path("enc")).expect("mkdir enc");
    set_policy(&m.path("enc"), &policy_v2(&id)).expect("set policy");
    Some((m, id))
}

/// The backing file of the regular file with stable number `ino` in backing directory `dir`.
fn backing_of(dir: &Path, ino: u64) -> PathBuf {
    backing_file_of(dir, ino).0
}

/// Opens a per-extent backing file offline.
fn open_extent_file(p: &Path) -> ExtentFile {
    let mut b = [0u8; 80];
    let f = OpenOptions::new().read(true).write(true).open(p).unwrap();
    f.read_exact_at(&mut b, 0).unwrap();
    let h = FileHeader::parse(&b, &fscryptfs::store::fs_params(), "f").unwrap();
    assert_eq!(
        h.layout,
        ContentsLayout::Extent,
        "{} is a per-extent file",
        p.display()
    );
    let policy = *h.ctx.unwrap().policy();
    ExtentFile::open(f, &policy, 4096).unwrap()
}

fn check_file(p: &Path, want: &[u8]) {
    let got = fs::read(p).unwrap();
    assert_eq!(got.len(), want.len(), "size of {}", p.display());
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{}: first difference at byte {i}", p.display());
    }
}

#[test]
fn init_records_the_layout_and_refuses_policies_without_extents() {
    let Some((m, id)) = extent_volume(&[]) else {
        return;
    };
    let conf = fs::read_to_string(m.backing.join(".fscryptfs.conf")).unwrap();
    assert!(conf.contains("contents-layout extent\n"), "{conf}");
    // btrfs' rules: v1 policies and the IV flags cannot have per-extent keys.
    for d in ["v1", "direct", "iv64", "iv32", "ok"] {
        fs::create_dir(m.path(d)).unwrap();
    }
    let mut v1 = [0u8; 12];
    v1[1] = 1;
    v1[2] = 4;
    v1[4..12].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_errno(set_policy(&m.path("v1"), &v1), libc::EINVAL);
    let mut direct = policy_v2(&id);
    (direct[1], direct[2], direct[3]) = (9, 9, 0x04 | 0x02);
    assert_errno(set_policy(&m.path("direct"), &direct), libc::EINVAL);
    let mut iv64 = policy_v2(&id);
    iv64[3] |= 0x08;
    assert_errno(set_policy(&m.path("iv64"), &iv64), libc::EINVAL);
    let mut iv32 = policy_v2(&id);
    iv32[3] |= 0x10;
    assert_errno(set_policy(&m.path("iv32"), &iv32), libc::EINVAL);
    set_policy(&m.path("ok"), &policy_v2(&id)).unwrap();
    // Unencrypted files of an extent volume stay in the per-file layout.
    fs::write(m.path("plain"), b"plain data").unwrap();
    assert_eq!(fs::read(m.path("plain")).unwrap(), b"plain data");
    let mut b = [0u8; 80];
    File::open(m.backing.join("plain"))
        .unwrap()
        .read_exact_at(&mut b, 0)
        .unwrap();
    assert_eq!(b[9], 1);

    // The default layout is extent: a volume made without the option refuses the same.
    let Some(dflt) = mount_volume(&[], "") else {
        return;
    };
    let conf = fs::read_to_string(dflt.backing.join(".fscryptfs.conf")).unwrap();
    assert!(conf.contains("contents-layout extent\n"), "{conf}");
    let id3 = add_key(&dflt.mnt, &KEY).unwrap();
    fs::create_dir(dflt.path("iv64")).unwrap();
    let mut iv64 = policy_v2(&id3);
    iv64[3] |= 0x08;
    assert_errno(set_policy(&dflt.path("iv64"), &iv64), libc::EINVAL);
    drop(dflt);

    // A per-file volume still accepts what the extent volume refuses.
    let Some(pf) = mount_volume(&["--contents-layout=per-file"], "") else {
        return;
    };
    let conf = fs::read_to_string(pf.backing.join(".fscryptfs.conf")).unwrap();
    assert!(conf.contains("contents-layout per-file\n"), "{conf}");
    let id2 = add_key(&pf.mnt, &KEY).unwrap();
    fs::create_dir(pf.path("iv64")).unwrap();
    let mut iv64 = policy_v2(&id2);
    iv64[3] |= 0x08;
    set_policy(&pf.path("iv64"), &iv64).unwrap();
}

#[test]
fn contents_survive_overwrites_truncation_holes_and_a_remount() {
    let Some((mut m, _id)) = extent_volume(&[]) else {
        return;
    };
    let e = m.path("enc");
    let mut model: Vec<(String, Vec<u8>)> = Vec::new();

    // Small file, then overwrites in the middle (partial units: read-modify-write).
    let small = e.join("small");
    let mut want = pattern(1, 10_000);
    fs::write(&small, &want).unwrap();
    check_file(&small, &want);
    {
        let f = OpenOptions::new().write(true).open(&small).unwrap();
        let patch = pattern(2, 3000);
        f.write_all_at(&patch, 3000).unwrap();
        want[3000..6000].copy_from_slice(&patch);
        // Reads on another descriptor see the buffered data before any writeout.
        check_file(&small, &want);
        f.write_all_at(b"end", 9998).unwrap();
        want.truncate(9998);
        want.extend_from_slice(b"end");
        check_file(&small, &want);
    }
    check_file(&small, &want);
    model.push(("small".into(), want.clone()));

    // Truncate down mid-unit, then up: the tail reads as zeros.
    let t = e.join("trunc");
    let mut tw = pattern(3, 20_000);
    fs::write(&t, &tw).unwrap();
    {
        let f = OpenOptions::new().write(true).open(&t).unwrap();
        f.set_len(5000).unwrap();
        tw.truncate(5000);
        check_file(&t, &tw);
        f.set_len(12_000).unwrap();
        tw.resize(12_000, 0);
        check_file(&t, &tw);
        // Truncation with buffered data: written out first.
        f.write_all_at(b"xyz", 11_000).unwrap();
        tw[11_000..11_003].copy_from_slice(b"xyz");
        f.set_len(11_001).unwrap();
        tw.truncate(11_001);
    }
    check_file(&t, &tw);
    model.push(("trunc".into(), tw));

    // Sparse: a write far beyond the end; O_TRUNC; fallocate grows the size.
    let sp = e.join("sparse");
    {
        let mut f = File::create(&sp).unwrap();
        f.write_all(b"head").unwrap();
        f.seek(SeekFrom::Start(10 << 20)).unwrap();
        f.write_all(b"tail").unwrap();
    }
    let mut sw = vec![0u8; (10 << 20) + 4];
    sw[..4].copy_from_slice(b"head");
    sw[10 << 20..].copy_from_slice(b"tail");
    check_file(&sp, &sw);
    model.push(("sparse".into(), sw));
    let fa = e.join("falloc");
    {
        let f = File::create(&fa).unwrap();
        f.write_all_at(b"abc", 0).unwrap();
        // SAFETY: plain syscall on an open descriptor.
        let r = unsafe { libc::posix_fallocate(std::os::fd::AsRawFd::as_raw_fd(&f), 0, 70_000) };
        assert_eq!(r, 0);
    }
    let mut fw = vec![0u8; 70_000];
    fw[..3].copy_from_slice(b"abc");
    check_file(&fa, &fw);
    model.push(("falloc".into(), fw));
    let ot = e.join("otrunc");
    fs::write(&ot, pattern(9, 9000)).unwrap();
    fs::write(&ot, b"short").unwrap();
    check_file(&ot, b"short");
    model.push(("otrunc".into(), b"short".to_vec()));

    // Large: more than the 4 MiB buffer, in odd-sized writes, then random overwrites.
    let big = e.join("big");
    let mut bw = pattern(4, 9 << 20 | 123);
    {
        let mut f = File::create(&big).unwrap();
        for c in bw.chunks(777_777) {
            f.write_all(c).unwrap();
        }
        let mut x = 77u64;
        for i in 0..200 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let off = (x >> 20) as usize % bw.len();
            let len = (1 + (x >> 8) as usize % 20_000).min(bw.len() - off);
            let p = pattern(100 + i, len);
            f.write_all_at(&p, off as u64).unwrap();
            bw[off..off + len].copy_from_slice(&p);
            if i % 50 == 0 {
                f.sync_all().unwrap();
            }
        }
        let mut back = vec![0u8; bw.len()];
        let mut r = File::open(&big).unwrap();
        r.read_exact(&mut back).unwrap();
        assert!(back == bw, "big file differs before close");
    }
    check_file(&big, &bw);
    model.push(("big".into(), bw));

    // copy_file_range between two extent files (decrypt + encrypt).
    let cp = e.join("copy");
    {
        let src = File::open(e.join("small")).unwrap();
        let dst = File::create(&cp).unwrap();
        let mut off_in: i64 = 0;
        let mut off_out: i64 = 0;
        // SAFETY: valid descriptors and offset pointers.
        let n = unsafe {
            libc::copy_file_range(
                std::os::fd::AsRawFd::as_raw_fd(&src),
                &mut off_in,
                std::os::fd::AsRawFd::as_raw_fd(&dst),
                &mut off_out,
                10_001,
                0,
            )
        };
        assert_eq!(n, 10_001);
    }
    check_file(&cp, &model[0].1);
    model.push(("copy".into(), model[0].1.clone()));

    m.remount("");
    add_key(&m.mnt, &KEY).unwrap();
    for (name, want) in &model {
        check_file(&m.path(&format!("enc/{name}")), want);
    }
    // Every encrypted file is a per-extent file, and the offline checks find nothing wrong.
    m.stop();
    let report = fscryptfs::fsck::check(&m.backing).unwrap_or_else(|_| panic!("fsck ran"));
    assert_eq!(report.problems(), 0, "{:?}", report.findings);
    assert!(report.files >= model.len() as u64);
    for (name, want) in &model {
        let _ = name;
        let ino = {
            // Find by logical size among the backing files of enc/.
            let mut found = None;
            for en in fs::read_dir(m.backing.join("enc")).unwrap() {
                let p = en.unwrap().path();
                if p.file_name().unwrap().to_string_lossy().starts_with('.') || !p.is_file() {
                    continue;
                }
                let ef = open_extent_file(&p);
                if ef.logical_size() == want.len() as u64 {
                    found = Some(ef);
                }
            }
            found.expect("a backing file of that size")
        };
        let problems: Vec<_> = ino
            .check()
            .unwrap()
            .into_iter()
            .filter(|f| !f.note)
            .collect();
        assert!(problems.is_empty(), "{problems:?}");
    }
}

/// The live mappings, their ciphertext decrypted with a key derived from the raw key (HKDF
/// context 9 with each extent's nonce, IVs from the extent's start).
fn decrypt_mappings(p: &Path) -> Vec<(ExtentInfo, Vec<u8>)> {
    let ef = open_extent_file(p);
    let master = MasterSecret::new_v2(&KEY).unwrap();
    let f = File::open(p).unwrap();
    ef.extents()
        .into_iter()
        .map(|x| {
            let n = x.len.div_ceil(4096) as usize * 4096;
            let mut buf = vec![0u8; n];
            f.read_exact_at(&mut buf, x.backing_offset).unwrap();
            ExtentKey::derive(&master, &x.ctx)
                .unwrap()
                .decrypt_units(x.first_unit, 4096, &mut buf)
                .unwrap();
            buf.truncate(x.len as usize);
            (x, buf)
        })
        .collect()
}

#[test]
fn every_writeout_is_a_new_extent_with_a_fresh_nonce() {
    let Some((mut m, _id)) = extent_volume(&[]) else {
        return;
    };
    let p = m.path("enc/f");
    let mut want = pattern(5, 3 * 4096);
    let ino;
    {
        let f = File::create(&p).unwrap();
        ino = f.metadata().unwrap().ino();
        f.write_all_at(&want, 0).unwrap();
        f.sync_all().unwrap();
        for (i, fill) in [b'A', b'B'].into_iter().enumerate() {
            let unit = vec![fill; 4096];
            f.write_all_at(&unit, 4096).unwrap();
            want[4096..8192].copy_from_slice(&unit);
            f.sync_all().unwrap();
            let _ = i;
        }
        // Partial overwrite of the last unit: read-modify-write into a new extent.
        f.write_all_at(b"zz", 8192 + 100).unwrap();
        want[8192 + 100..8192 + 102].copy_from_slice(b"zz");
    }
    check_file(&p, &want);
    m.stop();
    let bp = backing_of(&m.backing.join("enc"), ino);
    let ef = open_extent_file(&bp);
    let extents: Vec<_> = ef
        .records()
        .iter()
        .filter(|r| r.kind == RecordKind::Extent)
        .collect();
    assert_eq!(extents.len(), 4, "one extent record per writeout");
    let maps = decrypt_mappings(&bp);
    assert_eq!(
        maps.len(),
        3,
        "{:?}",
        maps.iter().map(|m| m.0).collect::<Vec<_>>()
    );
    let mut nonces: Vec<[u8; 16]> = maps.iter().map(|(x, _)| x.ctx.nonce).collect();
    nonces.sort();
    nonces.dedup();
    assert_eq!(nonces.len(), 3, "each live unit from a different writeout");
    for (x, plain) in &maps {
        let lo = x.logical as usize;
        assert_eq!(plain[..], want[lo..lo + x.len as usize], "mapping at {lo}");
        // Unit 0 is from the first extent (IV 0); units 1 and 2 were rewritten as new extents
        // that start there (IV 0 again, under another nonce).
        assert_eq!(x.first_unit, 0);
    }
    // The ciphertext is not the plaintext, and differs between the two writes of unit 1.
    let raw = fs::read(&bp).unwrap();
    assert!(!raw.windows(4096).any(|w| w == [b'B'; 4096]));
}

#[test]
fn buffered_write_survives_key_removal_generic_595() {
    let Some((mut m, id)) = extent_volume(&[]) else {
        return;
    };
    let other = m.path("enc/other");
    fs::write(&other, b"other file").unwrap();
    let p = m.path("enc/busy");
    let first = pattern(6, 300_000);
    let second = pattern(7, 50_000);
    let mut f = File::create(&p).unwrap();
    f.write_all(&first).unwrap(); // buffered: no fsync
    let bdir = m.backing.join("enc");
    let bp = backing_of(&bdir, f.metadata().unwrap().ino());
    assert_eq!(open_extent_file(&bp).logical_size(), 0, "still buffered");
    let flags = remove_key(&m.mnt, &id, false).unwrap();
    assert_eq!(flags & FILES_BUSY, FILES_BUSY);
    assert_eq!(key_status(&m.mnt, &id).unwrap().0, INCOMPLETELY_REMOVED);
    // New opens need the key.
    assert_errno(File::open(&other), libc::ENOKEY);
    assert_errno(File::create(m.path("enc/new")), libc::ENOKEY);
    // Soft removal: the open file still writes and writes out new extents.
    f.write_all(&second).unwrap();
    f.sync_all().unwrap();
    let mut back = Vec::new();
    File::open(&p)
        .and_then(|mut r| r.read_to_end(&mut back))
        .map(|_| ())
        .unwrap_or_else(|e| panic!("reopening the busy file: {e}"));
    assert_eq!(
        open_extent_file(&bp).logical_size(),
        (first.len() + second.len()) as u64,
        "fsync wrote out the extents"
    );
    f.write_all(b"!").unwrap(); // stays buffered until close
    assert_eq!(
        open_extent_file(&bp).logical_size(),
        (first.len() + second.len()) as u64
    );
    drop(f); // writeout with the retained secret
    assert_eq!(
        open_extent_file(&bp).logical_size(),
        (first.len() + second.len() + 1) as u64,
        "close wrote out the last byte"
    );
    drop(back);
    m.stop();
    m.start_again("");
    add_key(&m.mnt, &KEY).unwrap();
    let mut want = first;
    want.extend_from_slice(&second);
    want.push(b'!');
    let names: Vec<_> = fs::read_dir(m.path("enc"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(names.iter().any(|n| n == "busy"), "{names:?}");
    check_file(&m.path("enc/busy"), &want);
    check_file(&m.path("enc/other"), b"other file");
}

#[test]
fn deny_writes_refuses_new_writes_and_writes_out_accepted_ones() {
    let Some((mut m, id)) = extent_volume(&["--removal=deny-writes"]) else {
        return;
    };
    let p = m.path("enc/f");
    let data = pattern(8, 100_000);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    f.write_all(&data).unwrap();
    let flags = remove_key(&m.mnt, &id, false).unwrap();
    assert_eq!(flags & FILES_BUSY, FILES_BUSY);
    assert_errno(f.write(b"more"), libc::ENOKEY);
    assert_errno(f.set_len(10), libc::ENOKEY);
    // Reads go on, buffered data included.
    let mut back = vec![0u8; data.len()];
    f.read_exact_at(&mut back, 0).unwrap();
    assert!(back == data);
    drop(f);
    m.stop();
    m.start_again("");
    add_key(&m.mnt, &KEY).unwrap();
    check_file(&m.path("enc/f"), &data);
}

fn copy_range(src: &File, off_in: i64, dst: &File, off_out: i64, len: usize) -> isize {
    use std::os::fd::AsRawFd;
    let (mut i, mut o) = (off_in, off_out);
    // SAFETY: valid descriptors and offset pointers.
    unsafe { libc::copy_file_range(src.as_raw_fd(), &mut i, dst.as_raw_fd(), &mut o, len, 0) }
}

#[test]
fn copy_file_range_clones_ciphertext_between_extent_files() {
    let Some((mut m, _id)) = extent_volume(&[]) else {
        return;
    };
    let data = pattern(11, 5 * 4096 + 100);
    fs::write(m.path("enc/src"), &data).unwrap();
    let src = File::open(m.path("enc/src")).unwrap();
    let src_ino = src.metadata().unwrap().ino();
    // Aligned: a clone (the whole file, its partial last unit included).
    let dst = File::create(m.path("enc/dst")).unwrap();
    let dst_ino = dst.metadata().unwrap().ino();
    assert_eq!(copy_range(&src, 0, &dst, 0, 1 << 20), data.len() as isize);
    // Aligned offsets but a partial unit in the middle of the destination: whole units are
    // cloned, the rest copied.
    let mid = File::create(m.path("enc/mid")).unwrap();
    mid.write_all_at(&vec![7u8; 8 * 4096], 0).unwrap();
    assert_eq!(copy_range(&src, 4096, &mid, 8192, 4096 + 50), 4096 + 50);
    let mut mw = vec![7u8; 8 * 4096];
    mw[8192..8192 + 4096 + 50].copy_from_slice(&data[4096..8192 + 50]);
    // Unaligned: through plaintext.
    let un = File::create(m.path("enc/unaligned")).unwrap();
    assert_eq!(copy_range(&src, 1, &un, 3, 10_000), 10_000);
    let mut uw = vec![0u8; 3];
    uw.extend_from_slice(&data[1..10_001]);
    drop((src, dst, mid, un));
    check_file(&m.path("enc/dst"), &data);
    check_file(&m.path("enc/mid"), &mw);
    check_file(&m.path("enc/unaligned"), &uw);
    m.stop();
    let bdir = m.backing.join("enc");
    let src_nonces: Vec<_> = open_extent_file(&backing_of(&bdir, src_ino))
        .extents()
        .iter()
        .map(|x| x.ctx.nonce)
        .collect();
    let dst_maps = decrypt_mappings(&backing_of(&bdir, dst_ino));
    assert!(!dst_maps.is_empty());
    for (x, plain) in &dst_maps {
        assert!(
            src_nonces.contains(&x.ctx.nonce),
            "the clone keeps the source's extents"
        );
        let lo = x.logical as usize;
        assert_eq!(plain[..], data[lo..lo + x.len as usize]);
    }
}

#[test]
fn appends_survive_eviction_churn() {
    // One node per inode, always: while lookups run in other threads and the dentry cache is
    // dropped every half millisecond, each append reopens the file (a LOOKUP, often of an inode
    // whose node the FORGET is evicting right then). Every append must land after the previous
    // one and every read see all of them. (A LOOKUP racing such a FORGET once loaded a node
    // without its log: EIO on write, an empty file on read. The generic/595 races in
    // encrypt_595.rs caught that under load, where key removal evicts nodes at close.)
    let Some((mut m, _id)) = extent_volume(&[]) else {
        return;
    };
    // (mount_volume needs root, as drop_caches does.)
    let path = m.path("enc/f");
    fs::write(&path, b"").unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut want = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                fs::write("/proc/sys/vm/drop_caches", b"2").expect("drop_caches");
                std::thread::sleep(std::time::Duration::from_micros(500));
            }
        });
        // Lookups from other threads, so that one is always in flight when a FORGET arrives.
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = fs::symlink_metadata(&path);
                }
            });
        }
        let _stop = StopOnDrop(&stop);
        for i in 0..2000u64 {
            let chunk = pattern(i, 97);
            OpenOptions::new()
                .append(true)
                .open(&path)
                .and_then(|mut f| f.write_all(&chunk))
                .unwrap_or_else(|e| panic!("append {i}: {e}"));
            want.extend_from_slice(&chunk);
            if i % 50 == 49 {
                let got = fs::read(&path).unwrap_or_else(|e| panic!("read after {i}: {e}"));
                assert!(
                    got == want,
                    "after append {i}: {} bytes, {} written",
                    got.len(),
                    want.len()
                );
            }
        }
    });
    m.remount("");
    add_key(&m.mnt, &KEY).unwrap();
    check_file(&path, &want);
}

/// Polls `cond` every 50 ms until it holds or `secs` pass; whether it held.
fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn commit_interval_writes_out_an_open_files_buffer() {
    // `-o commit=1`: data neither fsynced nor closed becomes committed extents within about a
    // second (the log on the backing file says so: a fresh reader replays it). With `commit=0`
    // the same data stays buffered until close. Without the FUSE writeback cache, so that the
    // data is in the daemon's buffer at once rather than in the kernel's page cache (written back
    // to the daemon at the kernel's own pace, vm.dirty_expire_centisecs).
    for (opts, by_age) in [
        ("commit=1,no_writeback_cache", true),
        ("commit=0,no_writeback_cache", false),
    ] {
        let Some((m, _id)) = extent_volume_mounted_with(&[], opts) else {
            return;
        };
        let p = m.path("enc/open");
        let data = pattern(41, 10_000);
        let mut f = File::create(&p).unwrap();
        f.write_all(&data).unwrap();
        let bp = backing_of(&m.backing.join("enc"), f.metadata().unwrap().ino());
        let written = eventually(if by_age { 20 } else { 3 }, || {
            open_extent_file(&bp).logical_size() == data.len() as u64
        });
        assert_eq!(written, by_age, "{opts}: written out while open");
        drop(f);
        assert_eq!(open_extent_file(&bp).logical_size(), data.len() as u64);
        check_file(&p, &data);
    }
}

#[test]
fn buffered_data_of_all_files_is_bounded() {
    // 20 files open at once, 3.5 MiB written to each and none closed or fsynced: each stays under
    // the per-file bound (4 MiB), but together (70 MiB) they pass the volume's high mark (64 MiB),
    // so the writeout thread writes the largest out until at most 32 MiB stay buffered. No commit
    // interval: memory alone must do it. No FUSE writeback cache either: the data must reach the
    // daemon when written (the kernel bounds its own page cache).
    let Some((m, _id)) = extent_volume_mounted_with(&[], "commit=0,no_writeback_cache") else {
        return;
    };
    let per_file = 3_500_000usize;
    let mut open = Vec::new();
    for i in 0..20u64 {
        let p = m.path(&format!("enc/f{i}"));
        let mut f = File::create(&p).unwrap();
        f.write_all(&pattern(i, per_file)).unwrap();
        let bp = backing_of(&m.backing.join("enc"), f.metadata().unwrap().ino());
        open.push((p, f, bp));
    }
    let total = 20 * per_file as u64;
    let in_logs = || -> u64 {
        open.iter()
            .map(|(_, _, bp)| open_extent_file(bp).logical_size())
            .sum()
    };
    let ok = eventually(30, || total - in_logs() <= 32 << 20);
    assert!(
        ok,
        "{} of {total} bytes still buffered with every file open",
        total - in_logs()
    );
    for (i, (p, f, _)) in open.into_iter().enumerate() {
        drop(f);
        check_file(&p, &pattern(i as u64, per_file));
    }
}

#[test]
fn a_failing_background_writeout_is_retried_sparingly_and_reported_at_fsync() {
    // The backing store on a 4 MiB tmpfs, a 6 MiB write buffered in the daemon (an open file, no
    // fsync), `commit=1`: the writeout thread fails with ENOSPC. It must keep the data buffered,
    // say so once rather than twice a second, and let fsync report the error.
    let Some((m, _id)) = extent_volume(&[]) else {
        return;
    };
    let opts = "commit=1,no_writeback_cache";
    let v = SmallVolume::move_onto_tmpfs(m, 4 << 20, opts);
    add_key(&v.m.mnt, &KEY).unwrap();
    let p = v.m.path("enc/big");
    let mut f = File::create(&p).unwrap();
    // Under the per-file bound (4 MiB), in writes smaller than those that go straight to the log
    // (128 KiB), so only the thread writes it out.
    let write_small = |f: &mut File, data: &[u8]| -> std::io::Result<()> {
        data.chunks(64 << 10).try_for_each(|c| f.write_all(c))
    };
    write_small(&mut f, &pattern(9, 3 << 20)).unwrap();
    write_small(&mut f, &pattern(10, 3 << 20)).unwrap_or_else(|e| {
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    });
    let warned = |log: &str| {
        log.matches("background writeout (commit interval) failed")
            .count()
    };
    assert!(
        eventually(20, || warned(&v.m.log_text()) >= 1),
        "no background writeout failure logged:\n{}",
        v.m.log_text()
    );
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(warned(&v.m.log_text()), 1, "retried (and logged) too often");
    assert_errno(f.sync_all(), libc::ENOSPC);
}

#[test]
fn close_writes_out_without_committing_and_the_commit_follows() {
    // FLUSH and RELEASE append the buffer to the log without the commit's two fdatasyncs (replay
    // keeps whole records past the last commit: a fresh reader sees the data at once); fsync
    // commits at once; the commit interval commits a closed file's log too; so does the eviction
    // of the inode (drop_caches: the kernel forgets it, the daemon evicts it and commits, since the
    // timer forgets the node); and unmount.
    for opts in ["commit=0,no_writeback_cache", "commit=1,no_writeback_cache"] {
        let Some((mut m, _id)) = extent_volume_mounted_with(&[], opts) else {
            return;
        };
        let committed = |bp: &Path| !open_extent_file(bp).uncommitted();
        let mut files = Vec::new();
        for (i, len) in [(0u64, 10_000usize), (1, 300_000), (2, 5_000)] {
            let p = m.path(&format!("enc/f{i}"));
            let data = pattern(70 + i, len);
            let mut f = File::create(&p).unwrap();
            f.write_all(&data).unwrap();
            let bp = backing_of(&m.backing.join("enc"), f.metadata().unwrap().ino());
            if i == 2 {
                f.sync_all().unwrap();
                assert!(committed(&bp), "{opts}: fsync commits");
            }
            drop(f);
            // Written out by the close: a fresh reader of the log sees every byte.
            assert_eq!(open_extent_file(&bp).logical_size(), len as u64, "{opts}");
            files.push((p, data, bp));
        }
        if opts.starts_with("commit=1") {
            assert!(!committed(&files[0].2), "{opts}: close does not commit");
            assert!(
                eventually(10, || files.iter().all(|f| committed(&f.2))),
                "{opts}: the commit interval commits closed files' logs"
            );
        } else {
            std::thread::sleep(std::time::Duration::from_millis(1500));
            assert!(
                !committed(&files[0].2),
                "{opts}: no commit interval, no commit"
            );
            fs::write("/proc/sys/vm/drop_caches", "2").unwrap();
            assert!(
                eventually(10, || committed(&files[0].2) && committed(&files[1].2)),
                "{opts}: evicting the inode commits its log"
            );
            fs::write(m.path("enc/f3"), b"unmount").unwrap();
            let bp = backing_of(
                &m.backing.join("enc"),
                fs::metadata(m.path("enc/f3")).unwrap().ino(),
            );
            assert!(!committed(&bp));
            m.remount(opts);
            assert!(committed(&bp), "{opts}: unmount commits");
            add_key(&m.mnt, &KEY).unwrap();
        }
        for (p, data, _) in &files {
            check_file(p, data);
        }
    }
}

#[test]
fn large_aligned_writes_go_to_the_log_and_supersede_buffered_units() {
    // A write of whole data units of at least 128 KiB becomes extents at once (no buffering);
    // smaller or partial writes are buffered. Where they meet, the later write wins per byte:
    // buffered units a large write covers are dropped, a small write over a large one reads the
    // unit back from the log. No writeback cache, so each write(2) is one FUSE WRITE.
    let Some((m, _id)) = extent_volume_mounted_with(&[], "commit=0,no_writeback_cache") else {
        return;
    };
    let p = m.path("enc/f");
    let mut want = vec![0u8; 1 << 20];
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    let mut put = |off: usize, data: Vec<u8>| {
        f.write_all_at(&data, off as u64).unwrap();
        if want.len() < off + data.len() {
            want.resize(off + data.len(), 0);
        }
        want[off..off + data.len()].copy_from_slice(&data);
    };
    put(3 * 4096, pattern(1, 4096)); // buffered
    put(20 * 4096 + 7, pattern(2, 100)); // buffered, partial unit
    put(0, pattern(3, 256 << 10)); // straight to the log, over both
    put(3 * 4096 + 10, pattern(4, 100)); // buffered, read-modify-write of a logged unit
    put(512 << 10, pattern(5, 128 << 10)); // straight to the log, past buffered nothing
    put((1 << 20) + (256 << 10), pattern(6, 192 << 10)); // straight to the log, beyond a hole
    let bp = backing_of(&m.backing.join("enc"), f.metadata().unwrap().ino());
    // The three large writes are in the log already (each at most 1 MiB: one extent each).
    let nonces: std::collections::HashSet<_> = open_extent_file(&bp)
        .extents()
        .iter()
        .map(|e| e.ctx.to_bytes())
        .collect();
    assert_eq!(nonces.len(), 3, "large writes bypass the buffer");
    let mut got = vec![0u8; want.len()];
    f.read_exact_at(&mut got, 0).unwrap();
    assert!(got == want, "read back while buffered");
    drop(f);
    check_file(&p, &want);
}
