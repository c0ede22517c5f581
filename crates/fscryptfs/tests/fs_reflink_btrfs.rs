//! The per-extent layout on a btrfs backing filesystem (issue 5 item 5): `copy_file_range` between
//! two files under the same policy clones the source's ciphertext with `FICLONERANGE`, so the backing
//! files share blocks (FIEMAP_EXTENT_SHARED, same physical ranges); between directories under
//! different keys it falls back to a plaintext copy (fresh extents, nothing shared). Contents are
//! checked after a remount.
//!
//! The btrfs filesystem is a sparse 512 MiB image mounted with `mount -o loop` in a temporary
//! directory; both it and the fscryptfs mount are unmounted on drop, also when the test fails.
//! Prerequisites (/dev/fuse, root, mkfs.btrfs, a loop mount): when `FSCRYPTFS_REQUIRE_PRIVILEGED=1`
//! a missing one fails the test; otherwise the test prints a loud `SKIPPED (...)` line and returns.

mod support;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use fscryptfs::store::config::ContentsLayout;
use support::{add_key, backing_file_of, can_mount, pattern, policy_v2, set_policy, KEY};

const MIB: usize = 1 << 20;
/// The size of the file copied.
const SIZE: usize = 16 * MIB;

fn require_or_skip(what: &str) -> bool {
    if std::env::var("FSCRYPTFS_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("prerequisite missing: {what} (FSCRYPTFS_REQUIRE_PRIVILEGED=1)");
    }
    eprintln!("\n******** SKIPPED ({what}) ********\n");
    false
}

/// A btrfs image loop-mounted on `dir`; unmounted on drop (the loop device goes with it).
struct Btrfs {
    dir: PathBuf,
    mounted: bool,
}

impl Btrfs {
    /// Makes a sparse 512 MiB btrfs image at `img` and mounts it on `dir`. None (after SKIPPED)
    /// when mkfs.btrfs or the loop mount is unavailable.
    fn new(img: &Path, dir: &Path) -> Option<Btrfs> {
        fs::create_dir(dir).expect("mkdir lower");
        File::create(img)
            .and_then(|f| f.set_len(512 * MIB as u64))
            .expect("sparse image");
        match Command::new("mkfs.btrfs").arg("-q").arg(img).output() {
            Err(e) => {
                require_or_skip(&format!("mkfs.btrfs: {e} (apt-get install btrfs-progs)"));
                return None;
            }
            Ok(o) if !o.status.success() => {
                require_or_skip(&format!(
                    "mkfs.btrfs failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
                return None;
            }
            Ok(_) => {}
        }
        let out = Command::new("mount")
            .args(["-t", "btrfs", "-o", "loop"])
            .arg(img)
            .arg(dir)
            .output()
            .expect("run mount");
        if !out.status.success() {
            require_or_skip(&format!(
                "loop mount of a btrfs image: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            return None;
        }
        Some(Btrfs {
            dir: dir.to_path_buf(),
            mounted: true,
        })
    }
}

impl Drop for Btrfs {
    fn drop(&mut self) {
        if !self.mounted {
            return;
        }
        let ok = Command::new("umount")
            .arg(&self.dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        self.mounted = false;
    }
}

fn check_file(p: &Path, want: &[u8]) {
    let got = fs::read(p).unwrap();
    assert_eq!(got.len(), want.len(), "size of {}", p.display());
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{}: first difference at byte {i}", p.display());
    }
}

/// `copy_file_range` of all of `src` to `dst` (both from offset 0), looping over short copies.
fn copy_all(src: &Path, dst: &Path) {
    let s = File::open(src).unwrap();
    let d = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dst)
        .unwrap();
    let len = s.metadata().unwrap().len() as i64;
    let (mut i, mut o) = (0i64, 0i64);
    while i < len {
        // SAFETY: valid descriptors and offset pointers that outlive the call.
        let n = unsafe {
            libc::copy_file_range(
                s.as_raw_fd(),
                &mut i,
                d.as_raw_fd(),
                &mut o,
                (len - i) as usize,
                0,
            )
        };
        assert!(
            n > 0,
            "copy_file_range {} → {}: {}",
            src.display(),
            dst.display(),
            std::io::Error::last_os_error()
        );
    }
    d.sync_all().unwrap();
}

/// The backing file of the regular file with stable number `ino` in backing directory `dir` (a
/// per-extent one).
fn backing_of(dir: &Path, ino: u64) -> PathBuf {
    let (p, h) = backing_file_of(dir, ino);
    assert_eq!(
        h.layout,
        ContentsLayout::Extent,
        "{} is per-extent",
        p.display()
    );
    p
}

/// One FIEMAP extent: (logical, physical, length, flags).
type Fiemap = (u64, u64, u64, u32);

const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B;
const FIEMAP_FLAG_SYNC: u32 = 0x1;
const FIEMAP_EXTENT_LAST: u32 = 0x1;
const FIEMAP_EXTENT_SHARED: u32 = 0x2000;

/// The extents of `p` (FS_IOC_FIEMAP with FIEMAP_FLAG_SYNC), all of them.
fn fiemap(p: &Path) -> Vec<Fiemap> {
    const N: usize = 256;
    let f = File::open(p).unwrap();
    let mut out = Vec::new();
    let mut start = 0u64;
    loop {
        // struct fiemap (32 bytes) followed by N struct fiemap_extent (56 bytes each).
        let mut buf = vec![0u64; (32 + 56 * N) / 8];
        buf[0] = start;
        buf[1] = u64::MAX;
        let b: &mut [u8] =
            // SAFETY: reinterpreting an initialized u64 buffer as bytes (u8 has no alignment).
            unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast(), buf.len() * 8) };
        b[16..20].copy_from_slice(&FIEMAP_FLAG_SYNC.to_ne_bytes());
        b[24..28].copy_from_slice(&(N as u32).to_ne_bytes());
        // SAFETY: the buffer holds the header and N extents, as fm_extent_count says.
        let rc = unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_FIEMAP as _, b.as_mut_ptr()) };
        assert_eq!(
            rc,
            0,
            "FIEMAP {}: {}",
            p.display(),
            std::io::Error::last_os_error()
        );
        let mapped = u32::from_ne_bytes(b[20..24].try_into().unwrap()) as usize;
        let u64_at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().unwrap());
        let mut last = mapped == 0;
        for k in 0..mapped {
            let o = 32 + 56 * k;
            let flags = u32::from_ne_bytes(b[o + 40..o + 44].try_into().unwrap());
            let e = (u64_at(o), u64_at(o + 8), u64_at(o + 16), flags);
            start = e.0 + e.2;
            last |= flags & FIEMAP_EXTENT_LAST != 0;
            out.push(e);
        }
        if last {
            return out;
        }
    }
}

/// Bytes of `exts` carrying FIEMAP_EXTENT_SHARED.
fn shared_bytes(exts: &[Fiemap]) -> u64 {
    exts.iter()
        .filter(|e| e.3 & FIEMAP_EXTENT_SHARED != 0)
        .map(|e| e.2)
        .sum()
}

/// Bytes of `a`'s physical ranges that are also physical ranges of `b`.
fn physical_overlap(a: &[Fiemap], b: &[Fiemap]) -> u64 {
    let mut n = 0;
    for x in a {
        for y in b {
            let lo = x.1.max(y.1);
            let hi = (x.1 + x.2).min(y.1 + y.2);
            n += hi.saturating_sub(lo);
        }
    }
    n
}

fn describe(name: &str, exts: &[Fiemap]) -> String {
    format!(
        "{name}: {} extents, {} bytes, {} shared",
        exts.len(),
        exts.iter().map(|e| e.2).sum::<u64>(),
        shared_bytes(exts)
    )
}

#[test]
fn copy_file_range_shares_btrfs_blocks_under_one_key_and_copies_across_keys() {
    if !can_mount() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let lower = tmp.path().join("btrfs");
    // Declared first: dropped (unmounted) after the fscryptfs daemon below.
    let Some(btrfs) = Btrfs::new(&tmp.path().join("btrfs.img"), &lower) else {
        return;
    };
    let backing = btrfs.dir.join("volume");
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let out = Command::new(support::bin())
        .args(["init", "--contents-layout=extent"])
        .arg(&backing)
        .output()
        .expect("run init");
    assert!(
        out.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut m = support::mount_backing(&backing, &mnt, "");

    let id = add_key(&m.mnt, &KEY).expect("add key");
    let mut key2 = KEY;
    key2.reverse();
    let id2 = add_key(&m.mnt, &key2).expect("add second key");
    fs::create_dir(m.path("enc")).unwrap();
    set_policy(&m.path("enc"), &policy_v2(&id)).unwrap();
    fs::create_dir(m.path("other")).unwrap();
    set_policy(&m.path("other"), &policy_v2(&id2)).unwrap();

    let data = pattern(5, SIZE);
    let mut f = File::create(m.path("enc/src")).unwrap();
    f.write_all(&data).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let ino = |p: &str| fs::metadata(m.path(p)).unwrap().ino();

    // Same policy: a clone of the ciphertext. Different key: a plaintext copy.
    copy_all(&m.path("enc/src"), &m.path("enc/copy"));
    copy_all(&m.path("enc/src"), &m.path("other/copy"));
    check_file(&m.path("enc/copy"), &data);
    check_file(&m.path("other/copy"), &data);
    let (src_ino, copy_ino, other_ino) = (ino("enc/src"), ino("enc/copy"), ino("other/copy"));
    m.stop();

    let enc_dir = backing.join("enc");
    let src = fiemap(&backing_of(&enc_dir, src_ino));
    let copy = fiemap(&backing_of(&enc_dir, copy_ino));
    let other = fiemap(&backing_of(&backing.join("other"), other_ino));
    let du = Command::new("btrfs")
        .args(["filesystem", "du", "-s", "--raw"])
        .arg(&enc_dir)
        .arg(backing.join("other"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    eprintln!(
        "{}\n{}\n{}\nbtrfs filesystem du:\n{du}",
        describe("src", &src),
        describe("enc/copy", &copy),
        describe("other/copy", &other)
    );
    let size = SIZE as u64;
    assert!(
        shared_bytes(&copy) >= size,
        "the same-key copy shares its ciphertext blocks: {}",
        describe("enc/copy", &copy)
    );
    assert!(
        physical_overlap(&copy, &src) >= size,
        "the same-key copy's blocks are the source's ({} bytes in common)",
        physical_overlap(&copy, &src)
    );
    assert_eq!(
        physical_overlap(&other, &src),
        0,
        "a copy under another key shares nothing with the source"
    );
    assert!(
        shared_bytes(&other) == 0 && other.iter().map(|e| e.2).sum::<u64>() >= size,
        "the other-key copy has its own blocks: {}",
        describe("other/copy", &other)
    );

    // Contents after a remount (the daemon's keyring starts empty).
    m.remount("");
    add_key(&m.mnt, &KEY).unwrap();
    add_key(&m.mnt, &key2).unwrap();
    check_file(&m.path("enc/src"), &data);
    check_file(&m.path("enc/copy"), &data);
    check_file(&m.path("other/copy"), &data);
    m.stop();
    drop(m);
    drop(btrfs);
}
