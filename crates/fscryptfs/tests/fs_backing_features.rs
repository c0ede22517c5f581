//! A volume on a backing filesystem with few features (issue 14): the repository's no-op FUSE
//! passthrough (`examples/passthrough.rs`) refuses every rename flag with EINVAL, as CephFS and NFS
//! do, has no reflink, punch hole or xattrs, and hard links only with `--hard-links` (CephFS has
//! them). The daemon probes that at `init` and mount and does without (`store::features`): every
//! name operation works in both layouts, RENAME_NOREPLACE keeps its meaning, RENAME_EXCHANGE is
//! refused as the backing filesystem refuses it, data survives a remount and fsck finds the volume
//! clean. With `--slow-lookups` it is a backing store whose lookups are round trips, on which a
//! listing looks its names up on the daemon's lookup threads. With `--torn-reads` and
//! `--slow-syncs` it stretches the moments in which a read can see half of a write, so that a
//! lookup meets an eviction's header write every time.
//!
//! Needs root and /dev/fuse, and the passthrough example built (`cargo build --example
//! passthrough`; `scripts/test` builds it): a missing one is SKIPPED loudly, or fails with
//! `FSCRYPTFS_REQUIRE_PRIVILEGED=1` (CI).

mod support;

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// The built passthrough example, next to this test's binary (`target/debug/examples`).
fn passthrough_bin() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("examples").join("passthrough");
    if p.is_file() {
        return Some(p);
    }
    if std::env::var("FSCRYPTFS_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!(
            "prerequisite missing: {} (cargo build --example passthrough; scripts/test builds it)",
            p.display()
        );
    }
    eprintln!(
        "\n******** SKIPPED ({} is missing: cargo build --example passthrough) ********\n",
        p.display()
    );
    None
}

/// A passthrough mount serving `raw` at `mnt`, unmounted and reaped on drop.
struct Backing {
    _tmp: tempfile::TempDir,
    mnt: PathBuf,
    child: Child,
}

impl Backing {
    fn start(hard_links: bool) -> Option<Backing> {
        Backing::start_with(if hard_links { &["--hard-links"] } else { &[] })
    }

    /// A passthrough mount with these options of the example (`--hard-links`, `--fake-locks`).
    fn start_with(opts: &[&str]) -> Option<Backing> {
        if !can_mount() {
            return None;
        }
        let bin = passthrough_bin()?;
        let tmp = tempfile::tempdir().expect("tempdir");
        let (raw, mnt) = (tmp.path().join("raw"), tmp.path().join("back"));
        std::fs::create_dir(&raw).expect("mkdir");
        std::fs::create_dir(&mnt).expect("mkdir");
        let child = Command::new(bin)
            .args(opts)
            .arg(&raw)
            .arg(&mnt)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn passthrough");
        let mut b = Backing {
            _tmp: tmp,
            mnt,
            child,
        };
        let t0 = Instant::now();
        while !is_mounted(&b.mnt) {
            if let Ok(Some(st)) = b.child.try_wait() {
                panic!("passthrough exited: {st}");
            }
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "passthrough did not mount"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(b)
    }
}

impl Drop for Backing {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `p` is on ext4, XFS, btrfs or tmpfs (`statfs` magic numbers).
fn on_local_filesystem(p: &Path) -> bool {
    let st = rustix::fs::statfs(p).unwrap_or_else(|e| panic!("statfs {p:?}: {e}"));
    matches!(
        st.f_type as u64,
        0xEF53 | 0x5846_5342 | 0x9123_683E | 0x0102_1994
    )
}

/// A new volume of `layout` in `back`'s mount, mounted beside it (`mnt`).
fn volume_on(back: &Backing, layout: &str) -> Mounted {
    volume_on_with(back, layout, "")
}

/// [`volume_on`], mounted with the options `opts`.
fn volume_on_with(back: &Backing, layout: &str, opts: &str) -> Mounted {
    let backing = back.mnt.join("vol");
    let layout_arg = format!("--contents-layout={layout}");
    let out = run(&["init".as_ref(), layout_arg.as_ref(), backing.as_os_str()]);
    assert!(out.status.success(), "init: {out:?}");
    let mnt = back.mnt.parent().expect("parent").join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    mount_backing(&backing, &mnt, opts)
}

/// [`volume_on`] with an encrypted directory made in it (the key added): the mount and the
/// directory's path.
fn encrypted_volume_on(back: &Backing, layout: &str) -> (Mounted, PathBuf) {
    let m = volume_on(back, layout);
    let (_, enc) = make_encrypted_dir(&m);
    (m, enc)
}

fn renameat2(a: &Path, b: &Path, flags: u32) -> io::Result<()> {
    support::renameat2(a, b, flags)
}

fn run(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run fscryptfs")
}

/// The names of `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Every name operation in an encrypted directory of the volume at `m`, then a remount and fsck.
fn every_name_operation_works(back: &Backing, init_args: &[&str], strategy: &str) {
    let backing = back.mnt.join("vol");
    let mut init = vec!["init".as_ref()];
    init.extend(init_args.iter().map(std::ffi::OsStr::new));
    init.push(backing.as_os_str());
    let out = run(&init);
    assert!(out.status.success(), "init: {out:?}");
    let mnt = back.mnt.parent().expect("parent").join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    // `mount -o verbose` says what it found and chose.
    let out = run(&[
        "mount".as_ref(),
        "-o".as_ref(),
        "verbose".as_ref(),
        backing.as_os_str(),
        mnt.as_os_str(),
    ]);
    assert!(out.status.success(), "mount: {out:?}");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    // Unmounted before anything is asserted of it, so that a failure leaves no mount behind.
    wait_unmounted(&mnt);
    assert!(
        said.contains("backing filesystem: rename NOREPLACE: no")
            && said.contains(&format!("new names: {strategy}"))
            && said.contains("rename EXCHANGE: no"),
        "{said}"
    );

    let mut m = mount_backing(&backing, &mnt, "");
    let (_, enc) = make_encrypted_dir(&m);
    let long = "x".repeat(255);
    std::fs::write(enc.join("a"), pattern(1, 100_000)).expect("create a");
    std::fs::create_dir(enc.join("d")).expect("mkdir d");
    std::fs::write(enc.join("d/b"), b"bee").expect("create d/b");
    std::os::unix::fs::symlink("a", enc.join("s")).expect("symlink");
    std::fs::write(enc.join(&long), b"long").expect("create a long name");
    // Creating over an existing name fails as it should.
    assert_errno(
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(enc.join("a")),
        libc::EEXIST,
    );
    assert_errno(std::fs::create_dir(enc.join("d")), libc::EEXIST);
    std::fs::rename(enc.join("a"), enc.join("a2")).expect("rename");
    renameat2(&enc.join("d/b"), &enc.join("b2"), libc::RENAME_NOREPLACE).expect("noreplace");
    assert_errno(
        renameat2(&enc.join("a2"), &enc.join("b2"), libc::RENAME_NOREPLACE),
        libc::EEXIST,
    );
    assert_errno(
        renameat2(&enc.join("a2"), &enc.join("b2"), libc::RENAME_EXCHANGE),
        libc::EINVAL,
    );
    std::fs::rename(enc.join("d"), enc.join("d2")).expect("rename a directory");
    std::fs::create_dir(enc.join("e")).expect("mkdir e");
    std::fs::rename(enc.join("d2"), enc.join("e")).expect("a directory over an empty one");
    std::fs::create_dir(enc.join("f")).expect("mkdir f");
    std::fs::remove_dir(enc.join("f")).expect("rmdir");
    std::fs::remove_file(enc.join(&long)).expect("unlink a long name");
    std::fs::write(enc.join(&long), b"again").expect("create a long name again");
    let want = vec![
        "a2".to_string(),
        "b2".to_string(),
        "e".to_string(),
        "s".to_string(),
        long.clone(),
    ];
    assert_eq!(names(&enc), want);
    m.remount("");
    add_key(&m.mnt, &KEY).expect("add the key again");
    assert_eq!(names(&enc), want);
    assert_eq!(
        std::fs::read(enc.join("a2")).expect("read"),
        pattern(1, 100_000)
    );
    assert_eq!(std::fs::read(enc.join("b2")).expect("read"), b"bee");
    assert_eq!(std::fs::read(enc.join(&long)).expect("read"), b"again");
    assert_eq!(
        std::fs::read_link(enc.join("s")).expect("readlink"),
        Path::new("a")
    );
    assert!(names(&enc.join("e")).is_empty());
    m.stop();
    let out = run(&["fsck".as_ref(), backing.as_os_str()]);
    assert!(
        out.status.success(),
        "fsck: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn without_rename_flags_or_hard_links_per_file() {
    let Some(back) = Backing::start(false) else {
        return;
    };
    every_name_operation_works(
        &back,
        &["--contents-layout=per-file"],
        "checked rename under the directory lock",
    );
}

#[test]
fn without_rename_flags_or_hard_links_per_extent() {
    let Some(back) = Backing::start(false) else {
        return;
    };
    every_name_operation_works(&back, &[], "checked rename under the directory lock");
}

#[test]
fn without_rename_flags_with_hard_links() {
    let Some(back) = Backing::start(true) else {
        return;
    };
    every_name_operation_works(
        &back,
        &["--contents-layout=per-file"],
        "hard link to the new name, then unlink of the temporary one",
    );
}

/// A backing filesystem that grants every lock and enforces none (the passthrough with
/// `--fake-locks`) would let two daemons write one volume: `init` and `mount` refuse it in one
/// line naming the reason, ENOLCK's message, before anything is written.
#[test]
fn a_backing_store_whose_locks_do_not_hold_is_refused() {
    let Some(back) = Backing::start_with(&["--fake-locks"]) else {
        return;
    };
    // The lie itself: a second open file description gets the lock the first holds.
    let probe = back.mnt.join("probe");
    std::fs::write(&probe, b"x").unwrap();
    let a = std::fs::OpenOptions::new()
        .write(true)
        .open(&probe)
        .unwrap();
    let b = std::fs::OpenOptions::new()
        .write(true)
        .open(&probe)
        .unwrap();
    for f in [&a, &b] {
        assert_eq!(ofd_write_lock(f), 0, "the passthrough grants every lock");
    }
    init_is_refused(
        &back,
        &[
            "a second lock on a locked file granted",
            "one read-write mount per volume",
        ],
    );
}

/// `init` of a volume on `back` fails with one line saying each of `words`, and writes nothing.
fn init_is_refused(back: &Backing, words: &[&str]) {
    let vol = back.mnt.join("vol");
    let out = run(&["init".as_ref(), vol.as_os_str()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "init succeeded: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    for w in words {
        assert!(err.contains(w), "{w:?} in {err}");
    }
    assert!(!vol.join(".fscryptfs.conf").exists(), "init wrote a volume");
}

/// A backing filesystem whose rename reports success and moves nothing is refused at `init` with
/// one line, and writes no volume: every directory would be published by such a rename and lost.
#[test]
fn a_backing_store_whose_renames_do_not_hold_is_refused() {
    let Some(back) = Backing::start_with(&["--fake-renames"]) else {
        return;
    };
    // The lie itself, seen in the listing (the kernel's cache of names believes the reply).
    std::fs::write(back.mnt.join("x"), b"x").unwrap();
    std::fs::rename(back.mnt.join("x"), back.mnt.join("y")).expect("the rename claims success");
    let listed: Vec<_> = std::fs::read_dir(&back.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(listed.iter().any(|n| n == "x"), "{listed:?}");
    init_is_refused(
        &back,
        &["rename(2) reports success but the name does not move"],
    );
}

/// `fcntl(F_OFD_SETLK, F_WRLCK)` over all of `f`: 0, or the errno.
fn ofd_write_lock(f: &std::fs::File) -> i32 {
    use std::os::fd::AsRawFd;
    // SAFETY: an all-zero `flock` is a valid value; the fields are set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: F_OFD_SETLK reads the `flock` that lives across the call; `f` is open.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &fl) } == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    }
}

/// The daemon's threads named `name` (their `comm`, which the kernel cuts at 15 bytes).
fn threads_named(pid: u32, name: &str) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|c| c.trim_end() == &name[..name.len().min(15)])
        .count()
}

/// On a backing store whose lookups are round trips (the passthrough with `--slow-lookups`: a
/// FUSE filesystem, so from the first listing), a listing looks the names of each reply up on the
/// daemon's lookup threads at once
/// (`Fs::do_readdirplus`), and every entry still gets its own attributes and contents, in both
/// layouts (a per-file file keeps the descriptor its lookup opened: its reads go through it).
#[test]
fn a_listing_on_a_slow_backing_store_looks_names_up_in_parallel() {
    for layout in ["per-file", "extent"] {
        let Some(back) = Backing::start_with(&["--slow-lookups"]) else {
            return;
        };
        let (mut m, enc) = encrypted_volume_on(&back, layout);
        let files: Vec<(String, Vec<u8>)> = (0..60u64)
            .map(|i| (format!("file-{i:02}"), pattern(i, 100 + 37 * i as usize)))
            .collect();
        for (n, data) in &files {
            std::fs::write(enc.join(n), data).expect("create");
        }
        // A new daemon knows none of them, and once the backing mount's entries have expired
        // (its lifetime is 1 s) every lookup of the listing is a slow one.
        m.remount("");
        add_key(&m.mnt, &KEY).expect("add the key again");
        std::thread::sleep(Duration::from_millis(1500));
        let pid = m.daemon_pid().expect("daemon running");
        assert_eq!(
            threads_named(pid, "fscryptfs-lookup"),
            0,
            "no lookup threads yet"
        );
        let mut listed: Vec<(String, u64)> = std::fs::read_dir(&enc)
            .expect("read_dir")
            .map(|e| {
                let e = e.expect("entry");
                let len = e.metadata().expect("metadata").len();
                (e.file_name().to_string_lossy().into_owned(), len)
            })
            .collect();
        listed.sort();
        let want: Vec<(String, u64)> = files
            .iter()
            .map(|(n, d)| (n.clone(), d.len() as u64))
            .collect();
        assert_eq!(listed, want, "{layout}");
        assert!(
            threads_named(pid, "fscryptfs-lookup") > 1,
            "{layout}: the listing's names were not looked up in parallel"
        );
        for (n, data) in &files {
            assert_eq!(&std::fs::read(enc.join(n)).expect("read"), data, "{n}");
        }
        m.stop();
    }
}

/// On a backing store whose requests are round trips (here a FUSE filesystem: the passthrough),
/// the mount's read-ahead is 4 MiB by default, so a sequential reader keeps each of the daemon's
/// request threads busy; the passthrough itself, on a local filesystem, gets 1 MiB; `-o
/// read_ahead_kb=` still decides. Reads of a file larger than the window are whole in both
/// layouts.
#[test]
fn a_network_backing_store_gets_a_larger_read_ahead() {
    for layout in ["per-file", "extent"] {
        let Some(back) = Backing::start(false) else {
            return;
        };
        // The passthrough's own default follows its backing directory: 1 MiB on a local
        // filesystem, 4 MiB where the tests' temporary directory is on CephFS (CI's backing run).
        let raw = back.mnt.parent().expect("parent").join("raw");
        let want = if on_local_filesystem(&raw) {
            "1024"
        } else {
            "4096"
        };
        assert_eq!(
            read_ahead_kb_once(&back.mnt, want),
            want,
            "passthrough on {raw:?}"
        );
        let mut m = volume_on(&back, layout);
        assert_eq!(
            read_ahead_kb_once(&m.mnt, "4096"),
            "4096",
            "{layout}:\n{}",
            m.log_text()
        );
        let (_, enc) = make_encrypted_dir(&m);
        let data = pattern(7, (9 << 20) + 12345);
        std::fs::write(enc.join("big"), &data).expect("write");
        m.remount("");
        add_key(&m.mnt, &KEY).expect("add the key again");
        assert_eq!(
            std::fs::read(enc.join("big")).expect("read"),
            data,
            "{layout}"
        );
        m.remount("read_ahead_kb=512");
        assert_eq!(read_ahead_kb_once(&m.mnt, "512"), "512", "{layout}");
        m.stop();
    }
}

/// On a backing store whose requests are round trips, a handle's large reads reach it one at a
/// time and in offset order (`fs::read_order`), so that its own client's read-ahead holds. Readers
/// that jump about, several at once on one descriptor and on several, with the pages dropped
/// between rounds so that every read reaches the daemon, still get every byte right and never
/// hang: the gate's waits are bounded, whatever order the requests come in.
#[test]
fn concurrent_large_reads_on_a_network_backing_store_are_whole() {
    use std::os::unix::fs::FileExt;
    const M: u64 = 1 << 20;
    for layout in ["per-file", "extent"] {
        let Some(back) = Backing::start(false) else {
            return;
        };
        let (mut m, enc) = encrypted_volume_on(&back, layout);
        let data = std::sync::Arc::new(pattern(11, (16 * M + 5000) as usize));
        std::fs::write(enc.join("big"), &*data).expect("write");
        // A new daemon and a cold page cache: the reads below are the daemon's.
        m.remount("");
        add_key(&m.mnt, &KEY).expect("add the key again");
        let shared = std::sync::Arc::new(std::fs::File::open(enc.join("big")).expect("open"));
        for round in 0..3u64 {
            // The pages the round before read go, so that this round's reads are the daemon's too.
            rustix::fs::fadvise(&*shared, 0, None, rustix::fs::Advice::DontNeed).expect("fadvise");
            let readers: Vec<_> = (0..6u64)
                .map(|t| {
                    let (data, shared, path) = (data.clone(), shared.clone(), enc.join("big"));
                    std::thread::spawn(move || {
                        // Half share one descriptor, half open their own.
                        let own = (t % 2 == 1).then(|| std::fs::File::open(&path).expect("open"));
                        let f = own.as_ref().unwrap_or(&shared);
                        for k in 0..12u64 {
                            // Sequential, backwards and scattered, 1 MiB and odd lengths.
                            let off = match t % 3 {
                                0 => k * M,
                                1 => (15 - k) * M + 4096 * round,
                                _ => ((k * 7 + t * 5 + round) % 16) * M + 777,
                            };
                            let len = if k % 4 == 3 { 300_000 } else { M as usize };
                            let mut buf = vec![0u8; len];
                            let n = f.read_at(&mut buf, off).expect("read");
                            let want = &data[off as usize..(off as usize + len).min(data.len())];
                            assert_eq!(&buf[..n], want, "reader {t}, read {k} at {off}");
                        }
                    })
                })
                .collect();
            for r in readers {
                r.join()
                    .unwrap_or_else(|_| panic!("{layout}: a reader failed"));
            }
        }
        drop(shared);
        m.stop();
    }
}

/// On a backing store whose requests are round trips, a per-extent file's large writes, sealed
/// side by side, are appended in the file's order (`fs::read_order`, the node's gate). Writers
/// that jump about, on one descriptor and on several, with writeback's WRITEs of the dirty pages
/// coming on several threads at once, and rewrites behind the stream, still leave every byte
/// right and a log fsck finds clean, and never hang.
#[test]
fn concurrent_large_writes_on_a_network_backing_store_are_whole() {
    use std::os::unix::fs::FileExt;
    const M: u64 = 1 << 20;
    for layout in ["extent", "per-file"] {
        let Some(back) = Backing::start(false) else {
            return;
        };
        let (mut m, enc) = encrypted_volume_on(&back, layout);
        let path = enc.join("big");
        let mut want = vec![0u8; (16 * M) as usize];
        let shared = std::sync::Arc::new(
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&path)
                .expect("create"),
        );
        for round in 0..2u64 {
            // Each writer its own four MiB of the file: in order, backwards, scattered.
            let writers: Vec<_> = (0..4u64)
                .map(|t| {
                    let (shared, path) = (shared.clone(), path.clone());
                    std::thread::spawn(move || {
                        let own = (t % 2 == 1).then(|| {
                            std::fs::OpenOptions::new()
                                .write(true)
                                .open(&path)
                                .expect("open")
                        });
                        let f = own.as_ref().unwrap_or(&shared);
                        let mut order = [t, t + 4, t + 8, t + 12];
                        match t {
                            1 => order.reverse(),
                            2 => order.swap(0, 2),
                            _ => {}
                        }
                        for mib in order {
                            f.write_all_at(&pattern(round * 16 + mib, M as usize), mib * M)
                                .expect("write");
                        }
                        f.sync_all().expect("fsync");
                    })
                })
                .collect();
            for w in writers {
                w.join()
                    .unwrap_or_else(|_| panic!("{layout}: a writer failed"));
            }
            for mib in 0..16u64 {
                want[(mib * M) as usize..((mib + 1) * M) as usize]
                    .copy_from_slice(&pattern(round * 16 + mib, M as usize));
            }
            // What was written, read back through the mount.
            assert!(
                std::fs::read(&path).expect("read") == want,
                "{layout}, round {round}"
            );
        }
        drop(shared);
        // And from the backing store by a new daemon, with a cold page cache.
        m.remount("");
        add_key(&m.mnt, &KEY).expect("add the key again");
        assert!(std::fs::read(&path).expect("read") == want, "{layout}");
        m.stop();
        let out = run(&["fsck".as_ref(), back.mnt.join("vol").as_os_str()]);
        assert!(
            out.status.success(),
            "fsck: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A lookup never reads a per-file header half written. The header is written in place (a size
/// recorded at close, a size committed at eviction), and a lookup reads it before it knows the
/// node: the writer may be the file's old node, evicted and committing its size while the kernel
/// looks the name up again. On ext4 and tmpfs a read that overlaps a write can return half of
/// each, for microseconds (one CI run saw generic/595's race answer EUCLEAN for a healthy file).
/// Here the passthrough stretches a header read to 160 ms (`--torn-reads`) and each eviction's
/// sync to 25 ms (`--slow-syncs`), and the name is looked up again as the kernel forgets the file:
/// the eviction's header write falls inside the lookup's read, which ends after the eviction.
/// The file opens, with every byte, every time.
#[test]
fn a_lookup_never_reads_a_header_half_written() {
    let Some(back) = Backing::start_with(&["--torn-reads", "--slow-syncs"]) else {
        return;
    };
    // Close records sizes as pending; eviction commits them (`commit=600`: not the writeout
    // thread first).
    let mut m = volume_on_with(&back, "per-file", "commit=600");
    let (_, enc) = make_encrypted_dir(&m);
    let f = enc.join("f");
    let mut want = Vec::new();
    for round in 0..4u64 {
        let chunk = pattern(round, 5000);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&f)
            .and_then(|mut h| io::Write::write_all(&mut h, &chunk))
            .unwrap_or_else(|e| panic!("round {round}: append: {e}"));
        want.extend_from_slice(&chunk);
        std::fs::write("/proc/sys/vm/drop_caches", "2").expect("drop caches (root)");
        let got = std::fs::read(&f).unwrap_or_else(|e| panic!("round {round}: read: {e}"));
        assert!(
            got == want,
            "round {round}: {} bytes read, {} written",
            got.len(),
            want.len()
        );
    }
    m.remount("");
    add_key(&m.mnt, &KEY).expect("add the key again");
    assert!(std::fs::read(&f).expect("read after remount") == want);
    m.stop();
}
