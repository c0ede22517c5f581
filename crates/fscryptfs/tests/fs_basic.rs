//! POSIX basics on a real mount, inside an encrypted directory: create, read, write, truncate, sparse
//! files, rename (plain, NOREPLACE, EXCHANGE), hard links, symlinks, user xattrs, long names, mkdir,
//! rmdir, unlink — and that it all survives a remount with the key added again.

mod support;

use std::ffi::CString;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;

use support::*;

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
fn posix_basics_in_an_encrypted_directory() {
    let Some((mut m, id)) = encrypted_volume() else {
        return;
    };
    let e = m.path("enc");

    // Create, write, read back; sizes not multiples of the data unit.
    let data = pattern(10_000, 1);
    fs::write(e.join("file"), &data).unwrap();
    assert_eq!(fs::read(e.join("file")).unwrap(), data);
    assert_eq!(fs::metadata(e.join("file")).unwrap().len(), 10_000);

    // Overwrite in the middle across a unit boundary, append.
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(e.join("file"))
        .unwrap();
    f.write_all_at(b"XYZ", 4095).unwrap();
    f.seek(SeekFrom::End(0)).unwrap();
    f.write_all(b"tail").unwrap();
    let mut want = data.clone();
    want[4095..4098].copy_from_slice(b"XYZ");
    want.extend_from_slice(b"tail");
    let mut got = Vec::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_end(&mut got).unwrap();
    assert_eq!(got, want);

    // Truncate down into a unit, then up: the gap reads as zeros.
    f.set_len(5000).unwrap();
    f.set_len(9000).unwrap();
    let mut got = vec![0u8; 9000];
    f.read_exact_at(&mut got, 0).unwrap();
    assert_eq!(&got[..5000], &want[..5000]);
    assert!(got[5000..].iter().all(|&b| b == 0));
    drop(f);

    // Sparse: a write far out leaves holes that read as zeros and are holes in the backing file.
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .read(true)
        .open(e.join("sparse"))
        .unwrap();
    f.write_all_at(b"end", (5u64 << 32) + 7).unwrap();
    assert_eq!(f.metadata().unwrap().len(), (5u64 << 32) + 10);
    let mut b = vec![1u8; 8192];
    f.read_exact_at(&mut b, 1 << 32).unwrap();
    assert!(b.iter().all(|&x| x == 0));
    let mut b = [0u8; 3];
    f.read_exact_at(&mut b, (5u64 << 32) + 7).unwrap();
    assert_eq!(&b, b"end");
    assert!(
        f.metadata().unwrap().blocks() < 64,
        "sparse file is not sparse"
    );
    drop(f);

    // Names: 255 bytes, and one of 1 byte.
    let long = "n".repeat(255);
    fs::write(e.join(&long), b"long").unwrap();
    fs::write(e.join("x"), b"short").unwrap();
    assert_eq!(fs::read(e.join(&long)).unwrap(), b"long");

    // Rename, NOREPLACE, EXCHANGE.
    fs::rename(e.join("x"), e.join("y")).unwrap();
    assert!(!e.join("x").exists());
    assert_eq!(fs::read(e.join("y")).unwrap(), b"short");
    assert_errno(
        renameat2(&e.join("y"), &e.join(&long), libc::RENAME_NOREPLACE),
        libc::EEXIST,
    );
    if m.log_text().contains("rename EXCHANGE: no") {
        // A backing filesystem without it (CephFS, NFS: scripts/test-backing): refused as there.
        assert_errno(
            renameat2(&e.join("y"), &e.join(&long), libc::RENAME_EXCHANGE),
            libc::EINVAL,
        );
        renameat2(&e.join("y"), &e.join("t"), 0).unwrap();
        renameat2(&e.join(&long), &e.join("y"), 0).unwrap();
        renameat2(&e.join("t"), &e.join(&long), 0).unwrap();
    } else {
        renameat2(&e.join("y"), &e.join(&long), libc::RENAME_EXCHANGE).unwrap();
    }
    assert_eq!(fs::read(e.join("y")).unwrap(), b"long");
    assert_eq!(fs::read(e.join(&long)).unwrap(), b"short");

    // Hard link shares contents.
    fs::hard_link(e.join("y"), e.join("y2")).unwrap();
    assert_eq!(fs::metadata(e.join("y")).unwrap().nlink(), 2);
    assert_eq!(
        fs::metadata(e.join("y")).unwrap().ino(),
        fs::metadata(e.join("y2")).unwrap().ino()
    );
    fs::write(e.join("y2"), b"changed").unwrap();
    assert_eq!(fs::read(e.join("y")).unwrap(), b"changed");

    // Symlinks.
    std::os::unix::fs::symlink("y", e.join("link")).unwrap();
    assert_eq!(fs::read_link(e.join("link")).unwrap(), Path::new("y"));
    assert_eq!(fs::read(e.join("link")).unwrap(), b"changed");
    assert_eq!(fs::symlink_metadata(e.join("link")).unwrap().len(), 1);

    // Directories.
    fs::create_dir(e.join("sub")).unwrap();
    fs::write(e.join("sub/inner"), b"in").unwrap();
    assert_errno(fs::remove_dir(e.join("sub")), libc::ENOTEMPTY);
    fs::rename(e.join("sub/inner"), e.join("inner")).unwrap();
    fs::remove_dir(e.join("sub")).unwrap();

    // user.* xattrs.
    let c = CString::new(e.join("y").as_os_str().as_bytes()).unwrap();
    let name = CString::new("user.test").unwrap();
    // SAFETY: valid C strings and a valid value buffer.
    let r = unsafe { libc::setxattr(c.as_ptr(), name.as_ptr(), b"v1".as_ptr().cast(), 2, 0) };
    assert_eq!(r, 0, "setxattr: {}", std::io::Error::last_os_error());
    let mut v = [0u8; 16];
    // SAFETY: as above, `v` is writable for its length.
    let n = unsafe { libc::getxattr(c.as_ptr(), name.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
    assert_eq!(&v[..n as usize], b"v1");

    // Unlink; listing.
    fs::remove_file(e.join("y2")).unwrap();
    let mut names: Vec<String> = fs::read_dir(&e)
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expect = vec!["file", "inner", "link", "sparse", "y", long.as_str()];
    expect.sort();
    assert_eq!(names, expect);

    // Everything is still there after a remount and re-adding the key.
    m.remount("");
    add_key(&m.mnt, &KEY).unwrap();
    let _ = id;
    assert_eq!(fs::read(e.join("y")).unwrap(), b"changed");
    assert_eq!(fs::read(e.join(&long)).unwrap(), b"short");
    assert_eq!(fs::read(e.join("file")).unwrap().len(), 9000);
    assert_eq!(fs::read_link(e.join("link")).unwrap(), Path::new("y"));
}

#[test]
fn unencrypted_names_that_look_like_ours_are_escaped() {
    let Some(m) = mount_volume(&[], "") else {
        return;
    };
    fs::write(m.path(".fscryptfs.dir"), b"mine").unwrap();
    fs::write(m.path(".fscryptfs.conf"), b"also mine").unwrap();
    assert_eq!(fs::read(m.path(".fscryptfs.dir")).unwrap(), b"mine");
    let mut names: Vec<String> = fs::read_dir(&m.mnt)
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".fscryptfs.conf", ".fscryptfs.dir"]);
    // The volume's own files are intact.
    assert!(fs::read_to_string(m.backing.join(".fscryptfs.conf"))
        .unwrap()
        .contains("format 1"));
}

fn fallocate(f: &fs::File, mode: i32, off: u64, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `f` is an open descriptor; fallocate reads no memory.
    let rc = unsafe { libc::fallocate(f.as_raw_fd(), mode, off as i64, len as i64) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[test]
fn punch_hole_and_zero_range_in_both_layouts() {
    // FALLOC_FL_PUNCH_HOLE | KEEP_SIZE and FALLOC_FL_ZERO_RANGE on encrypted files: the ranges read
    // as zeros (partial data units at their ends rewritten, whole ones dropped), the rest and the
    // size stay, and it all survives a remount. Collapse and insert range stay EOPNOTSUPP, as on
    // encrypted ext4.
    for layout in ["per-file", "extent"] {
        let arg = format!("--contents-layout={layout}");
        let Some((mut m, _id)) = encrypted_volume_made_with(&[&arg]) else {
            return;
        };
        let p = m.path("enc/f");
        let mut want = pattern(40_000, 7);
        fs::write(&p, &want).unwrap();
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        let punch = |off: u64, len: u64| {
            fallocate(
                &f,
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                off,
                len,
            )
            .unwrap_or_else(|e| panic!("{layout}: punch {len} bytes at {off}: {e}"))
        };
        // Unaligned at both ends, spanning whole units.
        punch(1000, 12_000);
        want[1000..13_000].fill(0);
        // Inside one unit.
        punch(20_100, 50);
        want[20_100..20_150].fill(0);
        // Past the end: nothing, and the size stays.
        punch(39_000, 10_000);
        want[39_000..].fill(0);
        // Zero range growing the file.
        fallocate(&f, libc::FALLOC_FL_ZERO_RANGE, 30_000, 15_000)
            .unwrap_or_else(|e| panic!("{layout}: zero range: {e}"));
        want[30_000..].fill(0);
        want.resize(45_000, 0);
        assert_eq!(f.metadata().unwrap().len(), 45_000, "{layout}");
        let mut got = Vec::new();
        (&f).read_to_end(&mut got).unwrap();
        assert!(got == want, "{layout}: contents after punch/zero");
        assert_errno(
            fallocate(&f, libc::FALLOC_FL_COLLAPSE_RANGE, 0, 4096),
            libc::EOPNOTSUPP,
        );
        drop(f);
        m.remount("");
        add_key(&m.mnt, &KEY).unwrap();
        assert!(fs::read(&p).unwrap() == want, "{layout}: after remount");
    }
}

/// The committed size and the pending size record (bytes 24..32, 80..88) of a per-file backing
/// file, and whether a record is there at all.
fn header_sizes(p: &Path) -> (u64, Option<u64>) {
    let mut h = [0u8; 120];
    fs::File::open(p).unwrap().read_exact_at(&mut h, 0).unwrap();
    let committed = u64::from_le_bytes(h[24..32].try_into().unwrap());
    let pending = h[80..120]
        .iter()
        .any(|&b| b != 0)
        .then(|| u64::from_le_bytes(h[80..88].try_into().unwrap()));
    (committed, pending)
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {secs} s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Close records a per-file size without a sync, as a pending size (header bytes 80..120), and the
/// commit interval commits it. The pending size outlives the daemon: killed before the commit, the
/// next mount reads every byte close returned for, and commits it. A pending size from another
/// cache epoch (what a crash or reboot before the commit leaves; forged here by changing the
/// record's boot id) is not trusted: the committed size holds, the lost tail is never exposed by a
/// later extension, and fsck and inspect say what happened without calling it a problem.
#[test]
fn sizes_pending_at_close_outlive_the_daemon_but_not_the_cache() {
    let Some(mut m) = mount_volume(&["--contents-layout=per-file"], "commit=600") else {
        return;
    };
    let id = add_key(&m.mnt, &KEY).unwrap();
    fs::create_dir(m.path("enc")).unwrap();
    set_policy(&m.path("enc"), &policy_v2(&id)).unwrap();
    let (a_data, b_data) = (pattern(3 * 4096 + 100, 11), pattern(14_000, 12));
    // Each file stays open on a descriptor of its own until the daemon is killed: another test
    // dropping the kernel's caches meanwhile cannot evict the node (an eviction commits).
    let pin_a = fs::File::create(m.path("enc/a")).unwrap();
    fs::write(m.path("enc/a"), &a_data).unwrap();
    let mut b = fs::File::create(m.path("enc/b")).unwrap();
    let pin_b = fs::File::open(m.path("enc/b")).unwrap();
    b.write_all(&b_data[..5000]).unwrap();
    b.sync_all().unwrap();
    b.write_all(&b_data[5000..]).unwrap();
    drop(b);
    let ino = |n: &str| fs::metadata(m.path(n)).unwrap().ino();
    let back = m.backing.join("enc");
    let (a_ino, b_ino) = (ino("enc/a"), ino("enc/b"));
    let (a_path, _) = backing_file_of(&back, a_ino);
    let (b_path, _) = backing_file_of(&back, b_ino);
    // Close wrote pending sizes; the commit (600 s away) did not happen.
    assert_eq!(header_sizes(&a_path), (0, Some(a_data.len() as u64)));
    assert_eq!(header_sizes(&b_path), (5000, Some(14_000)));

    m.signal(libc::SIGKILL);
    m.wait_exit(std::time::Duration::from_secs(10))
        .expect("the daemon dies on SIGKILL");
    drop((pin_a, pin_b));
    let _ = std::process::Command::new("fusermount3")
        .arg("-uz")
        .arg(&m.mnt)
        .status();
    // b's record as a crash would leave it: written in another boot.
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&b_path)
        .unwrap();
    let mut rec = [0u8; 40];
    f.read_exact_at(&mut rec, 80).unwrap();
    rec[8] ^= 0x5a;
    let sum = fscryptfs::store::checksum(&rec[..32]);
    rec[32..].copy_from_slice(&sum);
    f.write_all_at(&rec, 80).unwrap();
    drop(f);
    let report = fscryptfs::fsck::check(&m.backing).unwrap_or_else(|_| panic!("fsck ran"));
    assert_eq!(report.problems(), 0, "{:?}", report.findings);
    let said = |path: &Path, words: &str| {
        report
            .findings
            .iter()
            .any(|f| f.path == path && f.message.contains(words))
    };
    assert!(said(&a_path, "not yet committed"), "{:?}", report.findings);
    assert!(said(&b_path, "was lost"), "{:?}", report.findings);
    // inspect says which size holds and why.
    let inspect = |ino: u64| {
        let out = run_fscryptfs(
            &[
                "inspect".as_ref(),
                m.backing.as_os_str(),
                "inode".as_ref(),
                "--ino".as_ref(),
                ino.to_string().as_ref(),
            ],
            None,
        );
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let said_a = inspect(a_ino);
    for line in [
        format!("size {}", a_data.len()),
        "committed-size 0".to_string(),
        format!(
            "pending-size {} (this boot and backing mount: trusted)",
            a_data.len()
        ),
    ] {
        assert!(said_a.lines().any(|l| l == line), "{line:?} in {said_a}");
    }
    let said_b = inspect(b_ino);
    for line in [
        "size 5000",
        "pending-size 14000 (another boot or backing mount: lost)",
    ] {
        assert!(said_b.lines().any(|l| l == line), "{line:?} in {said_b}");
    }

    // The default commit interval (5 s) this time.
    m.start_again("");
    add_key(&m.mnt, &KEY).unwrap();
    assert!(
        fs::read(m.path("enc/a")).unwrap() == a_data,
        "a after the kill"
    );
    assert!(
        fs::read(m.path("enc/b")).unwrap() == b_data[..5000],
        "b after the lost cache"
    );
    wait_for("a's size committed", 20, || {
        header_sizes(&a_path) == (a_data.len() as u64, None)
    });
    wait_for("b's stale record cleared", 20, || {
        header_sizes(&b_path) == (5000, None)
    });
    // Extending b past the lost tail shows zeros there, not the lost bytes.
    let b = fs::OpenOptions::new()
        .write(true)
        .open(m.path("enc/b"))
        .unwrap();
    b.write_all_at(b"tail", 9000).unwrap();
    drop(b);
    let mut want = b_data[..5000].to_vec();
    want.resize(9000, 0);
    want.extend_from_slice(b"tail");
    assert!(fs::read(m.path("enc/b")).unwrap() == want, "b extended");
    m.stop();
    // Unmount commits what close left pending.
    assert_eq!(header_sizes(&b_path), (9004, None));
    let report = fscryptfs::fsck::check(&m.backing).unwrap_or_else(|_| panic!("fsck ran"));
    assert_eq!(
        (report.problems(), report.notes()),
        (0, 0),
        "{:?}",
        report.findings
    );
}

/// Per-file sizes recorded at close are committed: the header on disk says the new size while the
/// volume stays mounted (within the commit interval); files evicted (caches dropped) right after
/// their close keep their sizes (an eviction that finds a size still to commit commits it: it must
/// not wait on the node's own state lock); and everything reads back after a remount, with fsck
/// clean.
#[test]
fn sizes_recorded_after_close_reach_the_header_and_survive_eviction() {
    let Some((mut m, _id)) = encrypted_volume_made_with(&["--contents-layout=per-file"]) else {
        return;
    };
    let e = m.path("enc");
    let data = pattern(12_345, 9);
    fs::write(e.join("one"), &data).unwrap();
    let back = m.backing.join("enc");
    let header_size = || -> Option<u64> {
        let f = fs::read_dir(&back)
            .unwrap()
            .map(|d| d.unwrap().path())
            .find(|p| !p.file_name().unwrap().as_bytes().contains(&b'.'))?;
        let mut h = [0u8; 32];
        fs::File::open(f).ok()?.read_exact(&mut h).ok()?;
        Some(u64::from_le_bytes(h[24..32].try_into().unwrap()))
    };
    // Committed by the writeout thread after the default commit interval (5 s).
    wait_for("the header's committed size", 20, || {
        header_size() == Some(12_345)
    });

    // Many closes, every third followed by dropping the kernel's inodes and dentries, so FORGETs
    // evict the nodes just closed. That needs root: required where privileged tests are (CI),
    // said loudly elsewhere.
    let must_evict = std::env::var("FSCRYPTFS_REQUIRE_PRIVILEGED").as_deref() == Ok("1");
    let mut evicted = true;
    for i in 0..60u32 {
        let p = e.join(format!("f{i}"));
        fs::write(&p, pattern(1000 + i as usize * 77, i)).unwrap();
        if i % 3 == 0 {
            if let Err(err) = fs::write("/proc/sys/vm/drop_caches", "2") {
                assert!(!must_evict, "dropping caches: {err}");
                evicted = false;
            }
        }
    }
    if !evicted {
        eprintln!("\n******** NOT EVICTED: dropping caches needs root ********\n");
    }
    for i in 0..60u32 {
        assert_eq!(
            fs::metadata(e.join(format!("f{i}"))).unwrap().len(),
            1000 + i as u64 * 77
        );
    }
    m.stop();
    let report = fscryptfs::fsck::check(&m.backing).unwrap_or_else(|_| panic!("fsck ran"));
    assert_eq!(report.problems(), 0, "{:?}", report.findings);
    m.start_again("");
    add_key(&m.mnt, &KEY).unwrap();
    assert_eq!(fs::read(m.path("enc/one")).unwrap(), data);
    for i in 0..60u32 {
        assert_eq!(
            fs::read(m.path(&format!("enc/f{i}"))).unwrap(),
            pattern(1000 + i as usize * 77, i),
            "f{i}"
        );
    }
}

/// How many descriptors the daemon holds on the backing file `p` (a node's `O_PATH` descriptor,
/// and its kept file when the lookup opened the file to read its header).
fn daemon_fds_on(m: &Mounted, p: &Path) -> usize {
    let pid = m.daemon_pid().expect("the daemon's pid");
    fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l == p)
        .count()
}

/// Drops the kernel's inodes and dentries, then waits until the daemon evicted the node of the
/// backing file `p` (no descriptor left on it). False, said loudly, where that needs root and
/// this is not (required where privileged tests are: CI).
fn evict(m: &Mounted, p: &Path) -> bool {
    if let Err(err) = fs::write("/proc/sys/vm/drop_caches", "2") {
        assert!(
            std::env::var("FSCRYPTFS_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
            "dropping caches: {err}"
        );
        eprintln!("\n******** SKIPPED: dropping caches needs root ********\n");
        return false;
    }
    wait_for("the node's eviction", 10, || daemon_fds_on(m, p) == 0);
    true
}

/// `enc/f` written with `data`, then its node evicted: its path in the mount and its backing
/// file's. None where dropping caches is not allowed (said by `evict`).
fn written_then_evicted(
    m: &Mounted,
    data: &[u8],
) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let f = m.path("enc/f");
    fs::write(&f, data).unwrap();
    let ino = fs::metadata(&f).unwrap().ino();
    let (backing, _) = backing_file_of(&m.backing.join("enc"), ino);
    let backing = backing.canonicalize().unwrap();
    evict(m, &backing).then_some((f, backing))
}

/// A per-file file the kernel forgot is looked up again without opening its backing file while
/// the file is unchanged: the header as its evicted node left it (`fs::recall`), the same size
/// and bytes. Changed behind the mount, it is opened and its header read again. (The file is held
/// open while the daemon's descriptors are counted: another test dropping the kernel's caches then
/// cannot evict it in between.)
#[test]
fn a_forgotten_file_is_recalled_unless_it_changed() {
    let Some((m, _id)) = encrypted_volume_made_with(&["--contents-layout=per-file"]) else {
        return;
    };
    let data = pattern(3 * 4096 + 904, 21);
    let Some((f, backing)) = written_then_evicted(&m, &data) else {
        return;
    };
    let held = fs::File::open(&f).unwrap();
    assert_eq!(held.metadata().unwrap().len(), data.len() as u64);
    assert_eq!(
        daemon_fds_on(&m, &backing),
        2,
        "recalled: the O_PATH descriptor and the open's, no kept file (the lookup read nothing)"
    );
    assert!(fs::read(&f).unwrap() == data, "recalled: the same bytes");
    drop(held);

    assert!(evict(&m, &backing));
    let (committed, pending) = header_sizes(&backing);
    assert_eq!(
        (committed, pending),
        (data.len() as u64, None),
        "committed at eviction"
    );
    // Changed behind the mount (its mode: only the ctime and mode move, not the size).
    fs::set_permissions(&backing, fs::Permissions::from_mode(0o600)).unwrap();
    let held = fs::File::open(&f).unwrap();
    let md = held.metadata().unwrap();
    assert_eq!((md.len(), md.mode() & 0o777), (data.len() as u64, 0o600));
    assert_eq!(
        daemon_fds_on(&m, &backing),
        3,
        "read again: the O_PATH descriptor, the kept file the lookup opened, the open's"
    );
    assert!(fs::read(&f).unwrap() == data);
}

/// A per-extent file looked up again after its node was evicted, unchanged: its log is put back
/// without opening the backing file (the node holds only its `O_PATH` descriptor), and opens when
/// first used — from a user's open (a duplicate of that open's descriptor), or by the daemon
/// itself for a truncate without a handle, whose record is there after a remount. (An `O_PATH`
/// descriptor of the mount's file pins the inode in the kernel without opening it, so no other
/// test dropping caches evicts it while descriptors are counted.)
#[test]
fn a_recalled_extent_file_opens_its_log_only_when_used() {
    use rustix::fs::{Mode, OFlags};
    let Some((mut m, _id)) = encrypted_volume() else {
        return;
    };
    let data = pattern(3 * 4096 + 100, 7);
    // A file written in this mount is recalled too: its node left its log, committed, at the
    // eviction.
    let Some((f, backing)) = written_then_evicted(&m, &data) else {
        return;
    };
    assert_eq!(fs::metadata(&f).unwrap().len(), data.len() as u64);
    let recalled = || {
        assert!(evict(&m, &backing));
        let pin = rustix::fs::open(&f, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).unwrap();
        assert_eq!(fs::metadata(&f).unwrap().len(), data.len() as u64);
        pin
    };
    let pin = recalled();
    assert_eq!(
        daemon_fds_on(&m, &backing),
        1,
        "recalled and stat'ed: the node's O_PATH descriptor, no log opened"
    );
    {
        let mut held = fs::File::open(&f).unwrap();
        assert_eq!(
            daemon_fds_on(&m, &backing),
            3,
            "opened: the O_PATH descriptor, the open's, the log's duplicate of it"
        );
        let mut got = Vec::new();
        held.read_to_end(&mut got).unwrap();
        assert!(got == data, "recalled: the same bytes");
    }
    // RELEASE comes after close(2) has returned.
    wait_for("the log open with its node, the open's closed", 10, || {
        daemon_fds_on(&m, &backing) == 2
    });
    drop(pin);

    let pin = recalled();
    assert_eq!(daemon_fds_on(&m, &backing), 1);
    let path = CString::new(f.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path; truncate(2) reads it and nothing else.
    assert_eq!(unsafe { libc::truncate(path.as_ptr(), 5000) }, 0);
    assert_eq!(
        daemon_fds_on(&m, &backing),
        2,
        "truncated without a handle: the log opened itself for its record"
    );
    drop(pin);
    m.remount("");
    add_key(&m.mnt, &KEY).expect("add key");
    assert!(
        fs::read(&f).unwrap() == data[..5000],
        "the truncate outlived the daemon"
    );
}

/// A per-extent file written in this mount in several records, its node evicted: the next lookup
/// takes the log as the node left it, committed (`fs::recall`), without opening the file. Written
/// on from there — an overwrite across a record boundary and an extension — it reads right at
/// once, again after one more eviction and recall, and after a remount, which replays what is on
/// disk: the log put back is the one the node would have had, had it stayed.
#[test]
fn a_log_written_in_this_mount_is_recalled_and_written_on() {
    use rustix::fs::{Mode, OFlags};
    let Some((mut m, _id)) = encrypted_volume() else {
        return;
    };
    let mut data = pattern((3 << 20) + 777, 5);
    let Some((f, backing)) = written_then_evicted(&m, &data) else {
        return;
    };
    let pin = rustix::fs::open(&f, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).unwrap();
    assert_eq!(fs::metadata(&f).unwrap().len(), data.len() as u64);
    assert_eq!(
        daemon_fds_on(&m, &backing),
        1,
        "recalled at its first lookup: the node's O_PATH descriptor, no log opened"
    );
    {
        let w = fs::OpenOptions::new().write(true).open(&f).unwrap();
        let patch = pattern(300_000, 9);
        let at = (1 << 20) - 1000;
        w.write_all_at(&patch, at as u64).unwrap();
        data[at..at + patch.len()].copy_from_slice(&patch);
        let tail = pattern(200_000, 11);
        w.write_all_at(&tail, data.len() as u64).unwrap();
        data.extend_from_slice(&tail);
    }
    assert!(fs::read(&f).unwrap() == data, "written on after the recall");
    drop(pin);
    assert!(evict(&m, &backing));
    assert!(fs::read(&f).unwrap() == data, "recalled once more");
    m.remount("");
    add_key(&m.mnt, &KEY).expect("add key");
    assert!(
        fs::read(&f).unwrap() == data,
        "after a remount: the log on disk replays to the same bytes"
    );
}

/// A per-extent file its node only read, changed behind the mount while that node lived: the
/// eviction keeps nothing (the file is no longer what the node read), so the next lookup reads the
/// file again and sees the change. (Had the node written to the file, the eviction would keep the
/// node's log, which is then the file's: the test above.)
#[test]
fn a_log_changed_behind_its_reading_node_is_read_again() {
    use rustix::fs::{Mode, OFlags};
    let Some((m, _id)) = encrypted_volume() else {
        return;
    };
    let data = pattern(2 * 4096 + 300, 4);
    let Some((f, backing)) = written_then_evicted(&m, &data) else {
        return;
    };
    {
        // A node that reads the file and writes nothing to it.
        let held = fs::File::open(&f).unwrap();
        let mut got = Vec::new();
        (&held).read_to_end(&mut got).unwrap();
        assert!(got == data);
        // Changed behind the mount while the node lives (its mode: the ctime moves).
        fs::set_permissions(&backing, fs::Permissions::from_mode(0o600)).unwrap();
    }
    wait_for("the open's release", 10, || {
        daemon_fds_on(&m, &backing) <= 2
    });
    assert!(evict(&m, &backing));
    let pin = rustix::fs::open(&f, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).unwrap();
    let md = fs::metadata(&f).unwrap();
    assert_eq!((md.len(), md.mode() & 0o777), (data.len() as u64, 0o600));
    assert_eq!(
        daemon_fds_on(&m, &backing),
        2,
        "read again: the O_PATH descriptor and the log the lookup opened"
    );
    assert!(fs::read(&f).unwrap() == data);
    drop(pin);
}

/// The attack on a deferred log: after a per-extent file was recalled (its log not opened), a
/// writer of the backing store renames another valid file of the volume over its backing name.
/// Opening the file then reads what the lookup checked — the log opens through the node's `O_PATH`
/// descriptor, never by name — so the other file's bytes never show under this inode. (The file
/// is opened through the pinning `O_PATH` descriptor, not by path, so the kernel does not look the
/// name up again, which would rightly find the other file.)
#[test]
fn a_recalled_log_opens_the_object_its_lookup_checked_not_the_name() {
    use rustix::fs::{Mode, OFlags};
    let Some((m, _id)) = encrypted_volume() else {
        return;
    };
    let other = pattern(3 * 4096, 9);
    fs::write(m.path("enc/g"), &other).unwrap();
    let g_ino = fs::metadata(m.path("enc/g")).unwrap().ino();
    let (g_backing, _) = backing_file_of(&m.backing.join("enc"), g_ino);
    let data = pattern(2 * 4096 + 10, 3);
    let Some((f, backing)) = written_then_evicted(&m, &data) else {
        return;
    };
    assert_eq!(fs::metadata(&f).unwrap().len(), data.len() as u64);
    assert!(evict(&m, &backing));
    let pin = rustix::fs::open(&f, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).unwrap();
    assert_eq!(
        daemon_fds_on(&m, &backing),
        1,
        "recalled: the log not opened"
    );
    fs::rename(&g_backing, &backing).unwrap();
    let mut got = Vec::new();
    fs::File::open(format!("/proc/self/fd/{}", pin.as_raw_fd()))
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    assert!(
        got == data,
        "read {} bytes, the recalled file has {}: the other file's bytes showed",
        got.len(),
        data.len()
    );
}

/// The daemon's read system calls so far (`syscr` of `/proc/PID/io`: its reads of the FUSE device
/// and of the backing store).
fn daemon_reads(m: &Mounted) -> u64 {
    let pid = m.daemon_pid().expect("the daemon's pid");
    let io = fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("syscr: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("syscr in /proc/PID/io")
}

/// Per-extent files looked up again after their nodes were evicted: once changed behind the
/// mount, a lookup replays each log (reading it); the next one — the files unchanged since that
/// node's eviction — puts its log back on the file without reading it (`fs::recall`): at least one
/// read fewer per file, the same sizes and bytes.
/// A file changed behind the mount is replayed again. (Another test dropping the kernel's caches
/// during the first pass makes some of its lookups recalled too: that round is measured again.)
#[test]
fn forgotten_extent_files_are_recalled_without_reading_their_logs() {
    let Some((m, _id)) = encrypted_volume() else {
        return;
    };
    let files: Vec<(std::path::PathBuf, Vec<u8>)> = (0..40u32)
        .map(|i| {
            let p = m.path(&format!("enc/f{i}"));
            let d = pattern(5000 + 300 * i as usize, 100 + i);
            fs::write(&p, &d).unwrap();
            (p, d)
        })
        .collect();
    let back = m.backing.join("enc");
    let backing: Vec<std::path::PathBuf> = files
        .iter()
        .map(|(p, _)| {
            let ino = fs::metadata(p).unwrap().ino();
            backing_file_of(&back, ino).0.canonicalize().unwrap()
        })
        .collect();
    let evict_all = || -> bool {
        if !evict(&m, &backing[0]) {
            return false;
        }
        wait_for("every node's eviction", 10, || {
            backing.iter().all(|b| daemon_fds_on(&m, b) == 0)
        });
        true
    };
    let stat_all = || -> u64 {
        let r0 = daemon_reads(&m);
        for (p, d) in &files {
            assert_eq!(fs::metadata(p).unwrap().len(), d.len() as u64, "{p:?}");
        }
        daemon_reads(&m) - r0
    };
    let mut rounds = Vec::new();
    for round in 0..3u32 {
        if !evict_all() {
            return;
        }
        // Changed behind the mount (another mode, so a new ctime: CephFS leaves the ctime alone
        // at a chmod to the mode the file has), so nothing is recalled.
        let mode = if round % 2 == 0 { 0o640 } else { 0o644 };
        for b in &backing {
            fs::set_permissions(b, fs::Permissions::from_mode(mode)).unwrap();
        }
        let replayed = stat_all();
        assert!(evict_all());
        let recalled = stat_all();
        rounds.push((replayed, recalled));
        if recalled + files.len() as u64 <= replayed {
            break;
        }
    }
    assert!(
        rounds.iter().any(|(a, b)| b + files.len() as u64 <= *a),
        "reads (replayed, recalled) per round: {rounds:?}"
    );
    for (p, d) in &files {
        assert!(
            fs::read(p).unwrap() == *d,
            "{p:?}: recalled, the same bytes"
        );
    }
    // Changed behind the mount: replayed again, and still whole.
    assert!(evict_all());
    fs::set_permissions(&backing[3], fs::Permissions::from_mode(0o600)).unwrap();
    let md = fs::metadata(&files[3].0).unwrap();
    assert_eq!(
        (md.len(), md.mode() & 0o777),
        (files[3].1.len() as u64, 0o600)
    );
    assert!(fs::read(&files[3].0).unwrap() == files[3].1);
}

/// The mode bits of `p` as `statx(STATX_MODE)` shows them: the kernel answers that from its
/// cached mode unless it was told the mode changed (a full `stat` also asks for the times, which a
/// write makes the kernel fetch anyway). The cached mode is the one `execve` and permission
/// checks use.
fn mode_bits(p: &Path) -> u32 {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a zeroed statx is a valid output buffer for the call below.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a buffer of the right type, both live for the call.
    let rc = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), 0, libc::STATX_MODE, &mut st) };
    assert_eq!(
        rc,
        0,
        "statx {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
    u32::from(st.stx_mode) & 0o7777
}

/// The daemon asks for `FUSE_HANDLE_KILLPRIV_V2` (so the kernel stops asking for
/// `security.capability` at every write(2)), which makes clearing set-user-ID and set-group-ID
/// the daemon's job. A write, truncate, `O_TRUNC` open, fallocate and copy_file_range by a user
/// without CAP_FSETID clear them at once (a `stat` right after shows it); set-group-ID without
/// group execute stays; root's writes keep both; chown clears them whoever asks. Both layouts.
#[test]
fn set_id_bits_go_when_an_unprivileged_user_changes_a_file() {
    for layout in ["--contents-layout=per-file", "--contents-layout=extent"] {
        let Some(m) = mount_volume(&[layout], "allow_other") else {
            return;
        };
        make_reachable(&m);
        let id = add_key(&m.mnt, &KEY).unwrap();
        let e = m.path("enc");
        fs::create_dir(&e).unwrap();
        set_policy(&e, &policy_v2(&id)).unwrap();
        fs::set_permissions(&e, fs::Permissions::from_mode(0o777)).unwrap();
        let data = pattern(10_000, 7);
        let file_with = |name: &str, mode: u32| {
            let p = e.join(name);
            fs::write(&p, &data).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(mode_bits(&p), mode, "{layout}: {name} set up");
            p
        };
        let as_nobody = |what: &'static str, p: &Path, f: fn(&Path)| {
            let p = p.to_path_buf();
            as_fsuid(
                Some(NOBODY),
                std::time::Duration::from_secs(30),
                move || {
                    f(&p);
                    what
                },
            )
        };

        let w = file_with("write", 0o6777);
        as_nobody("write", &w, |p| {
            let f = fs::OpenOptions::new().write(true).open(p).unwrap();
            f.write_all_at(b"changed", 100).unwrap();
        });
        assert_eq!(mode_bits(&w), 0o777, "{layout}: an unprivileged write");
        let mut want = data.clone();
        want[100..107].copy_from_slice(b"changed");
        assert_eq!(fs::read(&w).unwrap(), want, "{layout}: the write itself");

        let g = file_with("setgid-no-group-exec", 0o2767);
        as_nobody("write", &g, |p| {
            let f = fs::OpenOptions::new().write(true).open(p).unwrap();
            f.write_all_at(b"x", 0).unwrap();
        });
        assert_eq!(
            mode_bits(&g),
            0o2767,
            "{layout}: set-group-ID without group execute"
        );

        let t = file_with("truncate", 0o4777);
        as_nobody("truncate", &t, |p| {
            fs::OpenOptions::new()
                .write(true)
                .open(p)
                .unwrap()
                .set_len(10)
                .unwrap();
        });
        assert_eq!(mode_bits(&t), 0o777, "{layout}: an unprivileged truncate");
        assert_eq!(fs::metadata(&t).unwrap().len(), 10);

        let o = file_with("o_trunc", 0o4777);
        as_nobody("open O_TRUNC", &o, |p| {
            fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(p)
                .unwrap();
        });
        assert_eq!(
            mode_bits(&o),
            0o777,
            "{layout}: an unprivileged O_TRUNC open"
        );
        assert_eq!(fs::metadata(&o).unwrap().len(), 0);

        let a = file_with("fallocate", 0o6777);
        as_nobody("fallocate", &a, |p| {
            let f = fs::OpenOptions::new().write(true).open(p).unwrap();
            fallocate(&f, 0, 0, 20_000).unwrap();
        });
        assert_eq!(mode_bits(&a), 0o777, "{layout}: an unprivileged fallocate");

        let c = file_with("copy_file_range", 0o4777);
        let src = e.join("write");
        as_nobody("copy_file_range", &c, |p| {
            let from = fs::File::open(p.with_file_name("write")).unwrap();
            let to = fs::OpenOptions::new().write(true).open(p).unwrap();
            let (mut off_in, mut off_out) = (0i64, 0i64);
            // SAFETY: two open descriptors and two offsets on this stack.
            let n = unsafe {
                libc::copy_file_range(
                    from.as_raw_fd(),
                    &mut off_in,
                    to.as_raw_fd(),
                    &mut off_out,
                    4096,
                    0,
                )
            };
            assert_eq!(n, 4096, "{}", std::io::Error::last_os_error());
        });
        assert_eq!(
            mode_bits(&c),
            0o777,
            "{layout}: an unprivileged copy_file_range"
        );
        assert_eq!(
            fs::read(&c).unwrap()[..4096],
            fs::read(&src).unwrap()[..4096]
        );

        let r = file_with("root", 0o6777);
        fs::OpenOptions::new()
            .write(true)
            .open(&r)
            .unwrap()
            .write_all_at(b"root", 0)
            .unwrap();
        fs::OpenOptions::new()
            .write(true)
            .open(&r)
            .unwrap()
            .set_len(5)
            .unwrap();
        assert_eq!(mode_bits(&r), 0o6777, "{layout}: root's write and truncate");

        let ch = file_with("chown", 0o6755);
        std::os::unix::fs::chown(&ch, Some(NOBODY), None).unwrap();
        assert_eq!(mode_bits(&ch), 0o755, "{layout}: chown");
    }
}
