//! Compaction of per-extent files through the mount (docs/DESIGN.md, "Per-extent files"): random
//! overwrites keep the backing file within the stated bound (backing ≤ 2·C + 64 KiB, C the
//! compacted size ≈ logical + 80 B per extent + 8 KiB) at every fsync, open descriptors keep
//! working across the inode swap, contents survive a remount, the daemon holds no deleted backing
//! inode afterwards, and a file with several hard links is never compacted.

mod support;

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use support::*;

const MIB: u64 = 1 << 20;

fn extent_volume() -> Option<Mounted> {
    let m = mount_volume(&["--contents-layout=extent"], "")?;
    let id = add_key(&m.mnt, &KEY).expect("add key");
    fs::create_dir(m.path("enc")).expect("mkdir enc");
    set_policy(&m.path("enc"), &policy_v2(&id)).expect("set policy");
    Some(m)
}

/// xorshift64.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill(&mut self, b: &mut [u8]) {
        for c in b.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// The backing file of the regular file with stable number `ino` in backing directory `dir`.
fn backing_of(dir: &Path, ino: u64) -> PathBuf {
    backing_file_of(dir, ino).0
}

/// Backing files the daemon still holds open after they were replaced or deleted.
fn deleted_fds(m: &Mounted) -> Vec<String> {
    let Some(pid) = m.daemon_pid() else {
        return Vec::new();
    };
    let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    rd.filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.display().to_string())
        .filter(|p| p.ends_with(" (deleted)") && p.starts_with(&*m.backing.to_string_lossy()))
        .collect()
}

/// The bound of docs/DESIGN.md for a file of `logical` bytes stored in at most `extents` pieces.
fn bound(logical: u64, extents: u64) -> u64 {
    let c = logical + 80 * extents + 8 * 1024;
    2 * c + 64 * 1024
}

/// `n` random 4 KiB overwrites of `f` (a file of `size` bytes mirrored in `want`), fsync every
/// `every`; `check` runs after each fsync.
fn overwrite(
    f: &File,
    want: &mut [u8],
    rng: &mut Rng,
    n: usize,
    every: usize,
    mut check: impl FnMut(usize, &[u8]),
) {
    let units = want.len() as u64 / 4096;
    let mut block = vec![0u8; 4096];
    for i in 1..=n {
        let u = rng.next() % units;
        rng.fill(&mut block);
        f.write_all_at(&block, u * 4096).unwrap();
        want[(u * 4096) as usize..(u * 4096 + 4096) as usize].copy_from_slice(&block);
        if i % every == 0 {
            f.sync_all().unwrap();
            check(i, want);
        }
    }
}

fn check_contents(p: &Path, want: &[u8]) {
    let got = fs::read(p).unwrap();
    assert_eq!(got.len(), want.len(), "size of {}", p.display());
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{}: first difference at byte {i}", p.display());
    }
}

#[test]
fn random_overwrites_stay_within_the_bound_and_survive_a_remount() {
    let Some(mut m) = extent_volume() else {
        return;
    };
    let size = 2 * MIB;
    let p = m.path("enc/f");
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let mut want = vec![0u8; size as usize];
    rng.fill(&mut want);
    fs::write(&p, &want).unwrap();
    let ino = fs::metadata(&p).unwrap().ino();
    let bpath = backing_of(&m.backing.join("enc"), ino);
    let lim = bound(size, size / 4096);
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    let reader = File::open(&p).unwrap();
    let mut last_ino = fs::metadata(&bpath).unwrap().ino();
    let mut swaps = 0;
    let (mut max, mut sum, mut checks) = (0u64, 0u64, 0u64);
    overwrite(&f, &mut want, &mut rng, 3000, 50, |i, want| {
        let md = fs::metadata(&bpath).unwrap();
        if md.ino() != last_ino {
            swaps += 1;
            last_ino = md.ino();
        }
        max = max.max(md.len());
        sum += md.len();
        checks += 1;
        assert!(
            md.len() <= lim,
            "after {i} overwrites: backing {} > bound {lim}",
            md.len()
        );
        assert_eq!(md.nlink(), 1);
        if i % 500 == 0 {
            // Descriptors opened before any compaction read the current contents.
            let mut got = vec![0u8; size as usize];
            reader.read_exact_at(&mut got, 0).unwrap();
            assert!(got == want, "contents after {i} overwrites");
        }
    });
    assert!(
        swaps > 0,
        "3000 overwrites of a 2 MiB file compacted it at least once"
    );
    eprintln!(
        "space amplification: logical {size}, bound {lim}, backing at {checks} fsyncs: max {max} \
         ({:.2}x), mean {} ({:.2}x); new backing inode seen at {swaps} of them",
        max as f64 / size as f64,
        sum / checks,
        (sum / checks) as f64 / size as f64,
    );
    // Attributes follow the file to its new inode.
    fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    overwrite(&f, &mut want, &mut rng, 600, 600, |_, _| {});
    assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o640);
    assert_eq!(fs::metadata(&p).unwrap().ino(), ino);
    drop(f);
    drop(reader);
    check_contents(&p, &want);
    assert_eq!(
        deleted_fds(&m),
        Vec::<String>::new(),
        "replaced inodes still held"
    );
    m.remount("");
    add_key(&m.mnt, &KEY).unwrap();
    check_contents(&p, &want);
    m.stop();
    let report = fscryptfs::fsck::check(&m.backing).unwrap_or_else(|_| panic!("fsck ran"));
    assert_eq!(report.problems(), 0, "{:?}", report.findings);
}

#[test]
fn a_hard_linked_file_is_never_compacted() {
    let Some(mut m) = extent_volume() else {
        return;
    };
    let size = MIB;
    let p = m.path("enc/a");
    let q = m.path("enc/b");
    let mut rng = Rng(0x5eed_cafe_f00d_0002);
    let mut want = vec![0u8; size as usize];
    rng.fill(&mut want);
    fs::write(&p, &want).unwrap();
    fs::hard_link(&p, &q).unwrap();
    let ino = fs::metadata(&p).unwrap().ino();
    let bpath = backing_of(&m.backing.join("enc"), ino);
    let bino = fs::metadata(&bpath).unwrap().ino();
    let f = OpenOptions::new().read(true).write(true).open(&q).unwrap();
    let mut grew = 0;
    overwrite(&f, &mut want, &mut rng, 1500, 100, |_, _| {
        let md = fs::metadata(&bpath).unwrap();
        assert_eq!(md.ino(), bino, "a hard-linked file keeps its backing inode");
        assert_eq!(md.nlink(), 2);
        grew = md.len();
    });
    assert!(grew > bound(size, size / 4096), "the log grew: {grew}");
    drop(f);
    check_contents(&p, &want);
    check_contents(&q, &want);
    m.remount("");
    add_key(&m.mnt, &KEY).unwrap();
    check_contents(&p, &want);
    check_contents(&q, &want);
    // With one name left, the next writeout compacts it.
    fs::remove_file(&q).unwrap();
    let bpath = backing_of(&m.backing.join("enc"), ino);
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    overwrite(&f, &mut want, &mut rng, 1, 1, |_, _| {});
    drop(f);
    let md = fs::metadata(&bpath).unwrap();
    assert_ne!(md.ino(), bino, "compacted once it has one name");
    assert!(md.len() <= bound(size, size / 4096), "{}", md.len());
    check_contents(&p, &want);
    m.stop();
    let report = fscryptfs::fsck::check(&m.backing).unwrap_or_else(|_| panic!("fsck ran"));
    assert_eq!(report.problems(), 0, "{:?}", report.findings);
}

#[test]
fn shrinking_and_punching_compact_the_log() {
    // A truncate or a punched hole leaves most of the log dead: compaction follows at once, with
    // the file still open and never closed or fsynced again.
    let Some(m) = extent_volume() else {
        return;
    };
    for (name, shrink) in [("truncated", true), ("punched", false)] {
        let p = m.path(&format!("enc/{name}"));
        let mut want: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
        let f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        f.write_all_at(&want, 0).unwrap();
        f.sync_all().unwrap();
        let dir = m.backing.join("enc");
        let ino = f.metadata().unwrap().ino();
        let before = fs::metadata(backing_of(&dir, ino)).unwrap().len();
        assert!(
            before > 8 << 20,
            "{name}: the log holds the data ({before})"
        );
        if shrink {
            f.set_len(4096).unwrap();
            want.truncate(4096);
        } else {
            // SAFETY: `f` is open; fallocate reads no memory.
            let rc = unsafe {
                libc::fallocate(
                    std::os::fd::AsRawFd::as_raw_fd(&f),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    4096,
                    (8 << 20) - 4096,
                )
            };
            assert_eq!(rc, 0, "{name}: {}", std::io::Error::last_os_error());
            want[4096..].fill(0);
        }
        let after = fs::metadata(backing_of(&dir, ino)).unwrap().len();
        assert!(
            after < 1 << 20,
            "{name}: backing file {after} bytes after compaction (was {before})"
        );
        check_contents(&p, &want);
    }
}
