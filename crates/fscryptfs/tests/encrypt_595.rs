//! generic/595 on a real mount: no acknowledged write is lost to key removal (BRIEF promise 2).
//!
//! Single-threaded part (as fstests): a file is opened for writing, the key is removed ("…, but files
//! still busy"), data is written through the fd opened before the removal, the kernel's dentry and
//! inode caches are dropped (`echo 2 > /proc/sys/vm/drop_caches`), the fd is closed, the key is
//! added again and every byte must read back.
//!
//! Multi-threaded part: one thread adds and removes the key over and over (at least 1000 times, or
//! `FSCRYPTFS_595_RACES`), with a drop_caches now and then; one thread loops { open(O_APPEND) the
//! file, write one byte, on success append the same byte to a reference, close }; a third keeps an
//! fd open across removals for batches of appends (the "fd opened before removal" case under the
//! race). Afterwards the key is added back, the daemon is cycled (remount), and both files must equal
//! their references byte for byte. Both removal modes: in `deny-writes` a write may be refused with
//! ENOKEY (not acknowledged, so not in the reference); every acknowledged byte must be there.
//!
//! Every case runs twice: in a per-file volume (the default) and, suffixed `_extent`, in a
//! per-extent volume (`init --contents-layout=extent`).
//!
//! The hot loops use raw ioctls and syscalls, never process spawns; the steps fstests does with
//! xfs_io (`set_encpolicy`, `add_enckey`, `rm_enckey`, `enckey_status`) use the unmodified xfs_io.

mod encrypt_support;
mod support;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use encrypt_support::*;
use support::*;

const FILES_BUSY: u32 = 1;

/// A volume mounted with `removal=MODE`, `dir/` encrypted with fstests' test key: the policy is set
/// before the key is added (root may, CAP_FOWNER), then the key is added with xfs_io.
fn setup(layout: Layout, mode: &str) -> Option<Mounted> {
    let m = mount_in(layout, &format!("removal={mode}"))?;
    let dir = m.path("dir");
    fs::create_dir(&dir).unwrap();
    set_encpolicy(None, &dir, TEST_KEY_IDENTIFIER, "").ok();
    // The identifier xfs_io prints must be the kernel's for TEST_RAW_KEY.
    assert_eq!(
        add_enckey(None, &m.mnt, &TEST_RAW_KEY, "").ok(),
        format!("Added encryption key with identifier {TEST_KEY_IDENTIFIER}\n")
    );
    Some(m)
}

fn remove_busy(m: &Mounted) {
    // fstests' golden output: xfs_io prints this one line.
    assert_eq!(
        rm_enckey(None, &m.mnt, TEST_KEY_IDENTIFIER, "").ok(),
        format!(
            "Removed encryption key with identifier {TEST_KEY_IDENTIFIER}, but files still busy\n"
        )
    );
}

fn single_threaded_soft_in(layout: Layout) {
    let Some(m) = setup(layout, "soft") else {
        return;
    };
    let file = m.path("dir/file");
    // exec 3>dir/file
    let mut f = fs::File::create(&file).unwrap();
    f.write_all(b"before removal\n").unwrap();
    remove_busy(&m);
    assert_eq!(
        enckey_status(None, &m.mnt, TEST_KEY_IDENTIFIER),
        "Incompletely removed"
    );
    // echo contents >&3, with the caches dropped in between and after.
    f.write_all(b"contents\n").unwrap();
    drop_caches();
    f.write_all(&vec![b'x'; 10_000]).unwrap();
    f.sync_all().unwrap();
    drop_caches();
    f.write_all(b"after fsync\n").unwrap();
    drop(f); // exec 3>&-
    drop_caches();
    std::thread::sleep(Duration::from_millis(50));
    drop_caches();

    let mut want = b"before removal\ncontents\n".to_vec();
    want.extend(vec![b'x'; 10_000]);
    want.extend(b"after fsync\n");
    assert_eq!(
        add_enckey(None, &m.mnt, &TEST_RAW_KEY, "").ok(),
        format!("Added encryption key with identifier {TEST_KEY_IDENTIFIER}\n")
    );
    assert_eq!(
        fs::read(&file).unwrap(),
        want,
        "data written after removal was lost"
    );
    fs::remove_file(&file).unwrap();
}

fn single_threaded_soft_survives_remount_in(layout: Layout) {
    // The same, but the acknowledged data must also be in the backing store: the daemon is cycled
    // (its keyring and every cache go) before the file is read back.
    let Some(mut m) = setup(layout, "soft") else {
        return;
    };
    let file = m.path("dir/file");
    let mut f = fs::File::create(&file).unwrap();
    remove_busy(&m);
    f.write_all(b"contents\n").unwrap();
    drop_caches();
    drop(f);
    drop_caches();
    m.remount("removal=soft");
    add_enckey(None, &m.mnt, &TEST_RAW_KEY, "").ok();
    assert_eq!(fs::read(&file).unwrap(), b"contents\n");
}

fn single_threaded_deny_writes_in(layout: Layout) {
    // deny-writes: data accepted before the removal survives; writes after it are refused with
    // ENOKEY (never acknowledged, so nothing is lost); the key added back accepts writes again.
    let Some(mut m) = setup(layout, "deny-writes") else {
        return;
    };
    let file = m.path("dir/file");
    let mut f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&file)
        .unwrap();
    f.write_all(b"accepted\n").unwrap();
    remove_busy(&m);
    assert_errno(f.write_all(b"refused\n"), libc::ENOKEY);
    drop_caches();
    // Reads go on through the open handle.
    let mut s = String::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "accepted\n");
    drop(f);
    drop_caches();
    add_enckey(None, &m.mnt, &TEST_RAW_KEY, "").ok();
    assert_eq!(fs::read(&file).unwrap(), b"accepted\n");
    m.remount("removal=deny-writes");
    add_enckey(None, &m.mnt, &TEST_RAW_KEY, "").ok();
    assert_eq!(fs::read(&file).unwrap(), b"accepted\n");
}

// ---------------------------------------------------------------------------------------------
// The race

fn races() -> u64 {
    match std::env::var("FSCRYPTFS_595_RACES") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("FSCRYPTFS_595_RACES={s:?} is not a number")),
        Err(_) => 1000,
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
}

/// Counts of outcomes, by label.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<String, u64>>);

impl Tally {
    fn add(&self, what: &str, errno: i32) {
        let key = if errno == 0 {
            what.to_string()
        } else {
            format!("{what} {}", std::io::Error::from_raw_os_error(errno))
        };
        *self.0.lock().unwrap().entry(key).or_default() += 1;
    }
    fn get(&self, what: &str) -> u64 {
        self.0.lock().unwrap().get(what).copied().unwrap_or(0)
    }
    fn keys(&self) -> Vec<String> {
        self.0.lock().unwrap().keys().cloned().collect()
    }
    fn dump(&self) -> String {
        format!("{:#?}", self.0.lock().unwrap())
    }
}

/// The byte the `n`th acknowledged append writes (position-dependent, so a reordering or a lost
/// byte in the middle shows).
fn byte_for(n: usize, base: u8) -> u8 {
    base + (n % 26) as u8
}

/// One `open(O_WRONLY|O_APPEND); write(1 byte); close` (the fstests loop's `echo -n X >> file`).
fn append_once(path: &CString, reference: &mut Vec<u8>, tally: &Tally, base: u8) {
    // SAFETY: a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        tally.add("open", errno());
        return;
    }
    let b = [byte_for(reference.len(), base)];
    // SAFETY: `fd` is open; the buffer is 1 valid byte.
    let n = unsafe { libc::write(fd, b.as_ptr().cast(), 1) };
    if n == 1 {
        reference.push(b[0]);
        tally.add("append", 0);
    } else if n < 0 {
        tally.add("write", errno());
    } else {
        tally.add("short write", 0);
    }
    // SAFETY: closes the fd we opened.
    if unsafe { libc::close(fd) } < 0 {
        tally.add("close", errno());
    }
}

/// Keeps an fd open for a batch of appends (across whatever the remover does meanwhile), fsyncs,
/// closes, and starts again.
fn held_batch(path: &CString, reference: &mut Vec<u8>, tally: &Tally, base: u8) {
    // SAFETY: a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        tally.add("held open", errno());
        std::thread::sleep(Duration::from_micros(300));
        return;
    }
    for i in 0..48 {
        let b = [byte_for(reference.len(), base)];
        // SAFETY: `fd` is open; 1 valid byte.
        let n = unsafe { libc::write(fd, b.as_ptr().cast(), 1) };
        if n == 1 {
            reference.push(b[0]);
            tally.add("held append", 0);
        } else if n < 0 {
            tally.add("held write", errno());
        } else {
            tally.add("held short write", 0);
        }
        if i % 16 == 15 {
            // SAFETY: `fd` is open.
            if unsafe { libc::fsync(fd) } < 0 {
                tally.add("held fsync", errno());
            }
        }
    }
    // SAFETY: closes the fd we opened.
    if unsafe { libc::close(fd) } < 0 {
        tally.add("held close", errno());
    }
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or_else(|| (a.len() != b.len()).then(|| a.len().min(b.len())))
}

#[track_caller]
fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    if let Some(i) = first_difference(got, want) {
        let lo = i.saturating_sub(8);
        panic!(
            "{what}: file has {} bytes, {} acknowledged; first difference at byte {i}: \
             file {:?} vs acknowledged {:?}",
            got.len(),
            want.len(),
            String::from_utf8_lossy(&got[lo.min(got.len())..(i + 8).min(got.len())]),
            String::from_utf8_lossy(&want[lo.min(want.len())..(i + 8).min(want.len())]),
        );
    }
}

fn race(layout: Layout, mode: &str) {
    let Some(mut m) = setup(layout, mode) else {
        return;
    };
    let deny = mode == "deny-writes";
    let races = races();
    let file = m.path("dir/file");
    let held = m.path("dir/held");
    fs::File::create(&file).unwrap();
    fs::File::create(&held).unwrap();
    let cfile = CString::new(file.as_os_str().as_bytes()).unwrap();
    let cheld = CString::new(held.as_os_str().as_bytes()).unwrap();
    let id = test_key_id();
    let mnt: &Path = &m.mnt;

    let stop = AtomicBool::new(false);
    let busy_removals = AtomicU64::new(0);
    let tally = Tally::default();
    let started = Instant::now();
    let (reference, held_reference) = std::thread::scope(|s| {
        let remover = s.spawn(|| {
            let _stop_on_exit = StopOnDrop(&stop);
            for i in 0..races {
                if let Err(e) = add_key(mnt, &TEST_RAW_KEY) {
                    panic!("race {i}: add key: {e}");
                }
                // Leave the key present for a varying while (0..=4 ms), so that appends land in
                // every state and removals hit them at every point.
                std::thread::sleep(Duration::from_micros((i * 7919 % 9) * 500));
                match remove_key(mnt, &id, false) {
                    Ok(flags) => {
                        if flags & FILES_BUSY != 0 {
                            busy_removals.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) => panic!("race {i}: remove key: {e}"),
                }
                if i % 50 == 49 {
                    drop_caches();
                }
            }
        });
        let appender = s.spawn(|| {
            let mut reference = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                append_once(&cfile, &mut reference, &tally, b'a');
            }
            reference
        });
        let holder = s.spawn(|| {
            let mut reference = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                held_batch(&cheld, &mut reference, &tally, b'A');
            }
            reference
        });
        let r = remover.join();
        let a = appender.join().expect("appender panicked");
        let h = holder.join().expect("holder panicked");
        if let Err(p) = r {
            std::panic::resume_unwind(p);
        }
        (a, h)
    });
    let elapsed = started.elapsed();
    eprintln!(
        "generic/595 race ({mode}, {layout:?}): {races} add/remove races in {elapsed:.1?}, {} removals \
         reported busy; {} + {} bytes acknowledged; outcomes: {}",
        busy_removals.load(Ordering::Relaxed),
        reference.len(),
        held_reference.len(),
        tally.dump()
    );

    // Only the outcomes the semantics allow. open: ENOENT (the directory was locked: the plaintext
    // name is not there) or ENOKEY (the directory was still unlocked, the file was not).
    // write: never refused in soft mode; ENOKEY in deny-writes.
    let mut allowed = vec![
        "append".to_string(),
        "held append".to_string(),
        format!("open {}", std::io::Error::from_raw_os_error(libc::ENOENT)),
        format!("open {}", std::io::Error::from_raw_os_error(libc::ENOKEY)),
        format!(
            "held open {}",
            std::io::Error::from_raw_os_error(libc::ENOENT)
        ),
        format!(
            "held open {}",
            std::io::Error::from_raw_os_error(libc::ENOKEY)
        ),
    ];
    if deny {
        allowed.push(format!(
            "write {}",
            std::io::Error::from_raw_os_error(libc::ENOKEY)
        ));
        allowed.push(format!(
            "held write {}",
            std::io::Error::from_raw_os_error(libc::ENOKEY)
        ));
    }
    let unexpected: Vec<String> = tally
        .keys()
        .into_iter()
        .filter(|k| !allowed.contains(k))
        .collect();

    // The verdict that matters: every acknowledged byte is in the file, nothing else.
    add_enckey(None, &m.mnt, &TEST_RAW_KEY, "").ok();
    assert_same(
        "dir/file (key re-added)",
        &fs::read(&file).unwrap(),
        &reference,
    );
    assert_same(
        "dir/held (key re-added)",
        &fs::read(&held).unwrap(),
        &held_reference,
    );
    // Cycle the daemon: what was acknowledged must be in the backing store.
    m.remount(&format!("removal={mode}"));
    add_enckey(None, &m.mnt, &TEST_RAW_KEY, "").ok();
    assert_same(
        "dir/file (after remount)",
        &fs::read(&file).unwrap(),
        &reference,
    );
    assert_same(
        "dir/held (after remount)",
        &fs::read(&held).unwrap(),
        &held_reference,
    );

    assert!(
        unexpected.is_empty(),
        "outcomes the semantics do not allow ({mode}): {unexpected:?}"
    );
    // The race must have raced: appends were acknowledged and some were refused at open (the key
    // was away at times).
    assert!(
        tally.get("append") > 0 && tally.get("held append") > 0,
        "nothing was appended"
    );
    assert!(
        tally.get(&format!(
            "open {}",
            std::io::Error::from_raw_os_error(libc::ENOENT)
        )) + tally.get(&format!(
            "open {}",
            std::io::Error::from_raw_os_error(libc::ENOKEY)
        )) > 0,
        "no open ever saw the key removed"
    );
}

fn multi_threaded_race_soft_in(layout: Layout) {
    race(layout, "soft");
}

fn multi_threaded_race_deny_writes_in(layout: Layout) {
    race(layout, "deny-writes");
}

fn single_threaded_soft_mmap_pwrite_and_truncate_in(layout: Layout) {
    // Beyond fstests: other ways of writing through handles opened before the removal — a shared
    // writable mapping (stores and msync after the removal), an extending pwrite past a hole, and
    // ftruncate — must all reach the backing store.
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    let Some(mut m) = setup(layout, "soft") else {
        return;
    };
    let mapped = m.path("dir/mapped");
    let sparse = m.path("dir/sparse");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&mapped)
        .unwrap();
    f.set_len(8192).unwrap();
    // SAFETY: a fresh shared mapping of an 8192-byte file we own; unmapped below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            8192,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    assert_ne!(
        p,
        libc::MAP_FAILED,
        "mmap: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `p` maps 8192 writable bytes.
    let map = unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), 8192) };
    map[..4096].fill(b'A');
    let g = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&sparse)
        .unwrap();
    g.write_all_at(b"head", 0).unwrap();
    let t = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(m.path("dir/truncated"))
        .unwrap();
    t.write_all_at(&[b'T'; 10_000], 0).unwrap();

    remove_busy(&m);
    map[4096..].fill(b'B');
    // SAFETY: `p` is the mapping made above.
    assert_eq!(unsafe { libc::msync(p, 8192, libc::MS_SYNC) }, 0);
    drop_caches();
    g.write_all_at(b"tail", 1 << 20).unwrap();
    t.set_len(5000).unwrap();
    t.set_len(6000).unwrap();
    drop_caches();
    // SAFETY: unmaps the mapping made above; `map` is not used afterwards.
    assert_eq!(unsafe { libc::munmap(p, 8192) }, 0);
    drop((f, g, t));
    drop_caches();
    m.remount("removal=soft");
    add_enckey(None, &m.mnt, &TEST_RAW_KEY, "").ok();

    let mut want = vec![b'A'; 4096];
    want.extend(vec![b'B'; 4096]);
    assert_same("mapped", &fs::read(&mapped).unwrap(), &want);
    let s = fs::read(&sparse).unwrap();
    assert_eq!(s.len(), (1 << 20) + 4);
    assert_eq!(&s[..4], b"head");
    assert!(
        s[4..1 << 20].iter().all(|&b| b == 0),
        "the hole reads as zeros"
    );
    assert_eq!(&s[1 << 20..], b"tail");
    let mut want = vec![b'T'; 5000];
    want.extend(vec![0u8; 1000]);
    assert_same(
        "truncated",
        &fs::read(m.path("dir/truncated")).unwrap(),
        &want,
    );
}

/// The byte at absolute position `p` of the big-write file (position-dependent).
fn big_byte(p: usize) -> u8 {
    (p.wrapping_mul(31) ^ (p >> 12)) as u8
}

/// Appends of 1.25 MiB (more than FUSE's 1 MiB max_write, so the kernel splits each into two
/// WRITE requests) racing with key removal. A short count acknowledges exactly that many bytes:
/// in deny-writes the daemon may accept the first request and refuse the second.
fn big_write_race(layout: Layout, mode: &str) {
    let Some(mut m) = setup(layout, mode) else {
        return;
    };
    let file = m.path("dir/big");
    fs::File::create(&file).unwrap();
    let cfile = CString::new(file.as_os_str().as_bytes()).unwrap();
    let id = test_key_id();
    let mnt: &Path = &m.mnt;
    let stop = AtomicBool::new(false);
    let tally = Tally::default();
    const CHUNK: usize = 1_310_720;
    let deadline = Instant::now() + Duration::from_secs(8);
    let reference = std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                add_key(mnt, &TEST_RAW_KEY).expect("add key");
                std::thread::sleep(Duration::from_micros((i * 7919 % 7) * 1000));
                remove_key(mnt, &id, false).expect("remove key");
                std::thread::sleep(Duration::from_micros((i * 104_729 % 3) * 1000));
                i += 1;
            }
            // Leave the key present.
            add_key(mnt, &TEST_RAW_KEY).expect("add key");
        });
        let writer = s.spawn(|| {
            let _stop = StopOnDrop(&stop);
            let mut reference: Vec<u8> = Vec::new();
            let mut opened = 0;
            while opened < 24 && Instant::now() < deadline {
                // SAFETY: a NUL-terminated path.
                let fd = unsafe {
                    libc::open(
                        cfile.as_ptr(),
                        libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC,
                    )
                };
                if fd < 0 {
                    tally.add("open", errno());
                    std::thread::sleep(Duration::from_micros(500));
                    continue;
                }
                opened += 1;
                let base = reference.len();
                let buf: Vec<u8> = (base..base + CHUNK).map(big_byte).collect();
                // SAFETY: `fd` is open; `buf` holds CHUNK valid bytes.
                let n = unsafe { libc::write(fd, buf.as_ptr().cast(), CHUNK) };
                if n < 0 {
                    tally.add("write", errno());
                } else {
                    let n = n as usize;
                    tally.add(
                        if n == CHUNK {
                            "full write"
                        } else {
                            "short write"
                        },
                        0,
                    );
                    reference.extend_from_slice(&buf[..n]);
                }
                // SAFETY: closes the fd we opened.
                if unsafe { libc::close(fd) } < 0 {
                    tally.add("close", errno());
                }
            }
            reference
        });
        writer.join().expect("writer panicked")
    });
    eprintln!(
        "big writes ({mode}, {layout:?}): {} bytes acknowledged; outcomes: {}",
        reference.len(),
        tally.dump()
    );
    assert_same(
        "dir/big (key re-added)",
        &fs::read(&file).unwrap(),
        &reference,
    );
    m.remount(&format!("removal={mode}"));
    add_enckey(None, &m.mnt, &TEST_RAW_KEY, "").ok();
    assert_same(
        "dir/big (after remount)",
        &fs::read(&file).unwrap(),
        &reference,
    );
    let enokey = std::io::Error::from_raw_os_error(libc::ENOKEY);
    let enoent = std::io::Error::from_raw_os_error(libc::ENOENT);
    let mut allowed = vec![
        "full write".to_string(),
        format!("open {enokey}"),
        format!("open {enoent}"),
    ];
    if mode == "deny-writes" {
        allowed.push("short write".into());
        allowed.push(format!("write {enokey}"));
    }
    let unexpected: Vec<String> = tally
        .keys()
        .into_iter()
        .filter(|k| !allowed.contains(k))
        .collect();
    assert!(
        unexpected.is_empty(),
        "unexpected outcomes ({mode}): {unexpected:?}"
    );
    assert!(tally.get("full write") > 0, "no write got through");
}

fn big_write_race_soft_in(layout: Layout) {
    big_write_race(layout, "soft");
}

fn big_write_race_deny_writes_in(layout: Layout) {
    big_write_race(layout, "deny-writes");
}

/// A shared writable mapping made before the removal, stored to after it, then the fd closed and
/// the mapping unmapped without msync: the kernel writes the dirty pages back at munmap (FUSE's
/// vma close), as writeout of data already accepted — kept in both modes (docs/SEMANTICS.md: in
/// deny-writes, stores through a mapping cannot be refused, so they count as accepted).
fn mmap_store_after_removal(layout: Layout, mode: &str) {
    use std::os::fd::AsRawFd;
    let Some(mut m) = setup(layout, mode) else {
        return;
    };
    let path = m.path("dir/mapped");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    f.set_len(3 * 4096).unwrap();
    // SAFETY: a fresh shared mapping of a 12288-byte file we own; unmapped below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            3 * 4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    assert_ne!(
        p,
        libc::MAP_FAILED,
        "mmap: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `p` maps 12288 writable bytes.
    let map = unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), 3 * 4096) };
    map[..4096].fill(b'1');
    remove_busy(&m);
    map[4096..8192].fill(b'2');
    drop(f); // the mapping keeps the file open
    drop_caches();
    map[8192..].fill(b'3');
    // SAFETY: unmaps the mapping made above; `map` is not used afterwards.
    assert_eq!(unsafe { libc::munmap(p, 3 * 4096) }, 0);
    drop_caches();
    m.remount(&format!("removal={mode}"));
    add_enckey(None, &m.mnt, &TEST_RAW_KEY, "").ok();
    let mut want = vec![b'1'; 4096];
    want.extend(vec![b'2'; 4096]);
    want.extend(vec![b'3'; 4096]);
    assert_same(
        &format!("mapped ({mode})"),
        &fs::read(&path).unwrap(),
        &want,
    );
}

fn mmap_store_after_removal_soft_in(layout: Layout) {
    mmap_store_after_removal(layout, "soft");
}

fn mmap_store_after_removal_deny_writes_in(layout: Layout) {
    mmap_store_after_removal(layout, "deny-writes");
}

fn writes_after_removal_reach_the_store_at_lazy_unmount_in(layout: Layout) {
    // "On fsync, close or unmount": the mount is detached (lazy unmount) while a file written
    // after the key removal is still open; more is written, the fd is closed, the daemon exits by
    // itself. Everything acknowledged must be in the backing store.
    let Some(mut m) = setup(layout, "soft") else {
        return;
    };
    let file = m.path("dir/file");
    let mut f = fs::File::create(&file).unwrap();
    f.write_all(b"one\n").unwrap();
    remove_busy(&m);
    f.write_all(b"two\n").unwrap();
    assert!(std::process::Command::new("fusermount3")
        .arg("-uz")
        .arg(&m.mnt)
        .status()
        .unwrap()
        .success());
    f.write_all(b"three\n").unwrap();
    drop(f);
    m.stop(); // waits for the daemon to exit (it does once the last handle is gone)
    m.remount("removal=soft");
    add_enckey(None, &m.mnt, &TEST_RAW_KEY, "").ok();
    assert_eq!(fs::read(&file).unwrap(), b"one\ntwo\nthree\n");
}

// Every case in both layouts (`_extent`: a volume made with `--contents-layout=extent`, where
// data accepted before the removal is buffered in the daemon and written out as new extents with
// the retained secret; the race runs its full 1000 add/remove cycles there too).
in_both_layouts! {
    single_threaded_soft, single_threaded_soft_extent => single_threaded_soft_in;
    single_threaded_soft_survives_remount, single_threaded_soft_survives_remount_extent => single_threaded_soft_survives_remount_in;
    single_threaded_deny_writes, single_threaded_deny_writes_extent => single_threaded_deny_writes_in;
    multi_threaded_race_soft,
    multi_threaded_race_soft_extent => multi_threaded_race_soft_in;
    multi_threaded_race_deny_writes, multi_threaded_race_deny_writes_extent => multi_threaded_race_deny_writes_in;
    single_threaded_soft_mmap_pwrite_and_truncate, single_threaded_soft_mmap_pwrite_and_truncate_extent => single_threaded_soft_mmap_pwrite_and_truncate_in;
    big_write_race_soft, big_write_race_soft_extent => big_write_race_soft_in;
    big_write_race_deny_writes, big_write_race_deny_writes_extent => big_write_race_deny_writes_in;
    mmap_store_after_removal_soft, mmap_store_after_removal_soft_extent => mmap_store_after_removal_soft_in;
    mmap_store_after_removal_deny_writes, mmap_store_after_removal_deny_writes_extent => mmap_store_after_removal_deny_writes_in;
    writes_after_removal_reach_the_store_at_lazy_unmount, writes_after_removal_reach_the_store_at_lazy_unmount_extent => writes_after_removal_reach_the_store_at_lazy_unmount_in;
}
