//! generic/621 on a real mount: creating a duplicate name while the key is being added. One thread
//! tries, over and over, to create `dir/100` (which exists) with mkdir, mknod, symlink, link,
//! renameat2(RENAME_NOREPLACE) and open(O_CREAT|O_EXCL); another adds and removes the key. None of
//! them may ever succeed, `dir/100` must keep its inode number, readdir must show it once, and the
//! backing store must hold exactly the expected entries (fstests' `e2fsck -fD` duplicate check).
//! Runs in both layouts (`_extent`: `init --contents-layout=extent`).
//! Runs 5 s as fstests does (`FSCRYPTFS_621_SECS` to change it).

mod encrypt_support;
mod support;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use encrypt_support::*;
use support::*;

fn secs() -> u64 {
    std::env::var("FSCRYPTFS_621_SECS")
        .ok()
        .map(|s| s.parse().expect("FSCRYPTFS_621_SECS is a number"))
        .unwrap_or(5)
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
}

fn generic_621_no_duplicate_names_while_the_key_is_added_in(layout: Layout) {
    let Some(mut m) = mount_in(layout, "") else {
        return;
    };
    let dir = m.path("dir");
    fs::create_dir(&dir).unwrap();
    assert_eq!(
        add_enckey(None, &m.mnt, &TEST_RAW_KEY, "").ok(),
        format!("Added encryption key with identifier {TEST_KEY_IDENTIFIER}\n")
    );
    set_encpolicy(None, &dir, TEST_KEY_IDENTIFIER, "").ok();
    for i in 1..=100 {
        fs::write(dir.join(i.to_string()), b"").unwrap();
    }
    let inode = fs::metadata(dir.join("100")).unwrap().ino();
    fs::remove_file(dir.join("1")).unwrap();

    let c = |p: std::path::PathBuf| CString::new(p.as_os_str().as_bytes()).unwrap();
    let (target, src, dst) = (c("target".into()), c(dir.join("50")), c(dir.join("100")));
    let id = test_key_id();
    let stop = AtomicBool::new(false);
    let races = AtomicU64::new(0);
    let outcomes: Mutex<BTreeMap<(&str, i32), u64>> = Mutex::default();
    let runtime = Duration::from_secs(secs());
    std::thread::scope(|s| {
        // The add/remove key loop.
        s.spawn(|| {
            let end = Instant::now() + runtime;
            let mut i = 0u64;
            while Instant::now() < end {
                add_key(&m.mnt, &TEST_RAW_KEY).expect("add key");
                std::thread::sleep(Duration::from_micros((i * 7919 % 5) * 200));
                remove_key(&m.mnt, &id, false).expect("remove key");
                i += 1;
            }
            races.store(i, Ordering::Relaxed);
            stop.store(true, Ordering::Relaxed);
        });
        // The duplicate-filename creator.
        s.spawn(|| {
            let mut local: BTreeMap<(&str, i32), u64> = BTreeMap::new();
            let mut note = |op: &'static str, r: libc::c_int| {
                let e = if r < 0 { errno() } else { 0 };
                *local.entry((op, e)).or_default() += 1;
                if r >= 0 && op == "open(O_CREAT|O_EXCL)" {
                    // SAFETY: `r` is the fd open() just returned.
                    unsafe { libc::close(r) };
                }
            };
            while !stop.load(Ordering::Relaxed) {
                // SAFETY (all calls below): NUL-terminated paths that outlive the calls.
                note("mkdir", unsafe { libc::mkdir(dst.as_ptr(), 0o755) });
                note("mknod", unsafe {
                    libc::mknod(dst.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(5, 5))
                });
                note("symlink", unsafe {
                    libc::symlink(target.as_ptr(), dst.as_ptr())
                });
                note("link", unsafe { libc::link(src.as_ptr(), dst.as_ptr()) });
                note("rename_noreplace", unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        src.as_ptr(),
                        libc::AT_FDCWD,
                        dst.as_ptr(),
                        libc::RENAME_NOREPLACE,
                    )
                });
                note("open(O_CREAT|O_EXCL)", unsafe {
                    libc::open(
                        dst.as_ptr(),
                        libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                        0o644,
                    )
                });
            }
            *outcomes.lock().unwrap() = local;
        });
    });
    let outcomes = outcomes.into_inner().unwrap();
    eprintln!(
        "generic/621 ({layout:?}): {} add/remove races in {runtime:?}; outcomes (op, errno): {outcomes:?}",
        races.load(Ordering::Relaxed)
    );

    add_enckey(None, &m.mnt, &TEST_RAW_KEY, "").ok();
    let check = |m: &Mounted| {
        let dir = m.path("dir");
        // Checking for duplicate filenames via readdir
        let names = listing(&dir);
        assert_eq!(names.iter().filter(|n| *n == "100").count(), 1, "{names:?}");
        let mut want: Vec<String> = (2..=100).map(|i| i.to_string()).collect();
        want.sort();
        assert_eq!(names, want);
        // Checking for unexpected change in inode number
        let md = fs::symlink_metadata(dir.join("100")).unwrap();
        assert_eq!(md.ino(), inode, "dentry changed inode number");
        assert!(md.is_file());
        // The backing store (fsck's view): exactly 99 entries, no leftovers.
        let backing: Vec<String> = fs::read_dir(m.backing.join("dir"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != ".fscryptfs.dir")
            .collect();
        assert_eq!(backing.len(), 99, "backing entries: {backing:?}");
        assert!(
            backing.iter().all(|n| !n.starts_with(".fscryptfs")),
            "{backing:?}"
        );
    };
    check(&m);
    m.remount("");
    add_enckey(None, &m.mnt, &TEST_RAW_KEY, "").ok();
    check(&m);

    // Checking for operations that unexpectedly succeeded on an existing filename
    let succeeded: Vec<_> = outcomes.iter().filter(|((_, e), _)| *e == 0).collect();
    assert!(
        succeeded.is_empty(),
        "operations on an existing filename unexpectedly succeeded: {succeeded:?}"
    );
    // Only the errnos the semantics allow: EEXIST with the key, ENOKEY (or ENOENT for link's and
    // rename's source, whose plaintext name is not found) without it.
    let unexpected: Vec<_> = outcomes
        .iter()
        .filter(|((_, e), _)| ![libc::EEXIST, libc::ENOKEY, libc::ENOENT].contains(e))
        .collect();
    assert!(unexpected.is_empty(), "unexpected errnos: {unexpected:?}");
    assert!(
        outcomes.iter().any(|((_, e), _)| *e == libc::EEXIST)
            && outcomes.iter().any(|((_, e), _)| *e == libc::ENOKEY),
        "the race never saw both states: {outcomes:?}"
    );
}

in_both_layouts! {
    generic_621_no_duplicate_names_while_the_key_is_added, generic_621_no_duplicate_names_while_the_key_is_added_extent => generic_621_no_duplicate_names_while_the_key_is_added_in;
}
