//! Key removal and the no-key view (generic/580, 429, 419 semantics on a real mount): names become
//! no-key names, plaintext lookups fail with ENOENT, opening and creating fail with ENOKEY, deleting
//! works; adding the key back shows plaintext again without a remount; an open file keeps working
//! through removal (FILES_BUSY, "incompletely removed") and a later removal completes once it is closed.

mod support;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;

use fscrypt::nokey::NokeyName;
use support::*;

const FILES_BUSY: u32 = 1;
const ABSENT: u32 = 1;
const PRESENT: u32 = 2;
const INCOMPLETELY_REMOVED: u32 = 3;

fn listing(p: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p)
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn nokey_view_and_readding_the_key() {
    let Some((m, id)) = encrypted_volume() else {
        return;
    };
    let e = m.path("enc");
    fs::write(e.join("a"), b"secret a").unwrap();
    fs::create_dir(e.join("d")).unwrap();
    fs::write(e.join("d/inner"), b"secret inner").unwrap();
    std::os::unix::fs::symlink("a", e.join("s")).unwrap();
    fs::write(e.join("gone"), b"to delete").unwrap();
    assert_eq!(listing(&e), ["a", "d", "gone", "s"]);
    assert_eq!(key_status(&m.mnt, &id).unwrap(), (PRESENT, 1, 1));

    assert_eq!(remove_key(&m.mnt, &id, false).unwrap(), 0);
    assert_eq!(key_status(&m.mnt, &id).unwrap().0, ABSENT);

    // The listing is the backing listing: no-key names (what the kernel would show).
    let locked = listing(&e);
    assert_eq!(locked.len(), 4);
    let mut backing: Vec<String> = fs::read_dir(m.backing.join("enc"))
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    backing.sort();
    assert_eq!(locked, backing);
    for n in &locked {
        let d = NokeyName::decode(n).expect("a valid no-key name");
        assert_eq!(d.dirhash(), [0; 8]);
    }
    // Plaintext names are gone; contents and creation need the key; deletion does not.
    assert_errno(fs::metadata(e.join("a")), libc::ENOENT);
    let mut saw_link = false;
    for n in &locked {
        let p = e.join(n);
        let md = fs::symlink_metadata(&p).unwrap();
        if md.is_file() {
            assert_errno(fs::read(&p), libc::ENOKEY);
            assert_errno(
                fs::OpenOptions::new().write(true).truncate(true).open(&p),
                libc::ENOKEY,
            );
        } else if md.file_type().is_symlink() {
            let t = fs::read_link(&p).unwrap();
            assert!(
                NokeyName::decode(&t.to_string_lossy()).is_ok(),
                "encoded target {t:?}"
            );
            saw_link = true;
        } else {
            assert_eq!(listing(&p).len(), 1);
        }
    }
    assert!(saw_link);
    assert_errno(fs::write(e.join("new"), b"x"), libc::ENOKEY);
    assert_errno(fs::create_dir(e.join("newdir")), libc::ENOKEY);
    assert_errno(
        std::os::unix::fs::symlink("x", e.join("newlink")),
        libc::ENOKEY,
    );
    fs::write(m.path("plain"), b"x").unwrap();
    assert_errno(fs::hard_link(m.path("plain"), e.join("hl")), libc::ENOKEY);
    assert_errno(
        fs::rename(e.join(&locked[0]), e.join(&locked[0]).with_extension("x")),
        libc::ENOKEY,
    );

    // Unlink by no-key name works. Find "gone" by its contents after re-adding: first delete the
    // one regular file whose name we learn from the kernel's view with the key.
    add_key(&m.mnt, &KEY).unwrap();
    // Names are back at once, no remount, no stale no-key entries.
    assert_eq!(listing(&e), ["a", "d", "gone", "s"]);
    assert_eq!(fs::read(e.join("a")).unwrap(), b"secret a");
    assert_eq!(fs::read(e.join("d/inner")).unwrap(), b"secret inner");
    assert_errno(fs::metadata(e.join(&locked[0])), libc::ENOENT);
    assert_eq!(
        fs::read_link(e.join("s")).unwrap().as_os_str().as_bytes(),
        b"a"
    );
    let before = listing(&e);

    // Lock again and delete everything without the key (rm -r works).
    assert_eq!(remove_key(&m.mnt, &id, false).unwrap(), 0);
    for n in listing(&e) {
        let p = e.join(&n);
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            fs::remove_dir_all(&p).unwrap();
        } else {
            fs::remove_file(&p).unwrap();
        }
    }
    assert!(listing(&e).is_empty());
    add_key(&m.mnt, &KEY).unwrap();
    assert!(listing(&e).is_empty(), "was {before:?}");
    // Side files of long names go with them.
    let long = "L".repeat(200);
    fs::write(e.join(&long), b"l").unwrap();
    assert_eq!(remove_key(&m.mnt, &id, false).unwrap(), 0);
    let n = listing(&e);
    assert_eq!(n.len(), 1);
    fs::remove_file(e.join(&n[0])).unwrap();
    let left: Vec<_> = fs::read_dir(m.backing.join("enc"))
        .unwrap()
        .map(|d| d.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "left behind: {left:?}");
}

#[test]
fn open_file_keeps_working_through_removal() {
    let Some((m, id)) = encrypted_volume() else {
        return;
    };
    let e = m.path("enc");
    fs::write(e.join("file"), b"contents").unwrap();
    fs::write(e.join("file2"), b"other").unwrap();
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(e.join("file"))
        .unwrap();

    let flags = remove_key(&m.mnt, &id, false).unwrap();
    assert_eq!(flags & FILES_BUSY, FILES_BUSY);
    assert_eq!(key_status(&m.mnt, &id).unwrap().0, INCOMPLETELY_REMOVED);
    // The parent stays unlocked (it is above an open file); its other children are locked.
    assert_errno(fs::read(e.join("file2")), libc::ENOKEY);
    assert_eq!(fs::read(e.join("file")).unwrap(), b"contents");
    assert_errno(fs::write(e.join("new"), b"x"), libc::ENOKEY);
    // Reads and writes through the open handle go on, and reach the backing store.
    f.seek(SeekFrom::End(0)).unwrap();
    f.write_all(b" and more").unwrap();
    f.sync_all().unwrap();
    let mut s = String::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "contents and more");
    drop(f);

    // Closed: removing again completes it.
    assert_eq!(remove_key(&m.mnt, &id, false).unwrap(), 0);
    assert_eq!(key_status(&m.mnt, &id).unwrap().0, ABSENT);
    assert_errno(fs::metadata(e.join("file")), libc::ENOENT);
    assert_errno(remove_key(&m.mnt, &id, false), libc::ENOKEY);
    add_key(&m.mnt, &KEY).unwrap();
    assert_eq!(fs::read(e.join("file")).unwrap(), b"contents and more");
}

#[test]
fn deny_writes_refuses_new_writes_after_removal() {
    let Some(m) = mount_volume(&["--removal=deny-writes"], "") else {
        return;
    };
    let id = add_key(&m.mnt, &KEY).unwrap();
    let e = m.path("enc");
    fs::create_dir(&e).unwrap();
    set_policy(&e, &policy_v2(&id)).unwrap();
    let mut f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(e.join("f"))
        .unwrap();
    f.write_all(b"accepted").unwrap();
    assert_eq!(
        remove_key(&m.mnt, &id, false).unwrap() & FILES_BUSY,
        FILES_BUSY
    );
    assert_errno(f.write_all(b"refused"), libc::ENOKEY);
    let mut s = String::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "accepted");
    // Added back: writes are accepted again.
    add_key(&m.mnt, &KEY).unwrap();
    f.write_all(b"!").unwrap();
    drop(f);
    assert_eq!(fs::read(e.join("f")).unwrap(), b"accepted!");
}

/// Promise 3/7 on a real mount: in the per-file layout the master secret is wiped when removal
/// starts, even while a file is open; the open file's own key lives until it is closed and a retry
/// completes the removal (generic/580's sequence: status stays "incompletely removed" after the
/// close, and the second removal reports plain success). The daemon's memory is searched.
#[test]
fn master_secret_dies_at_removal_while_a_file_is_busy() {
    let Some((m, id)) = encrypted_per_file_volume() else {
        return;
    };
    let pid = m.daemon_pid().expect("daemon pid");
    let e = m.path("enc");
    fs::write(e.join("file"), b"contents").unwrap();
    let f = fs::File::open(e.join("file")).unwrap();
    let nonce = get_nonce(&e.join("file")).unwrap();
    let prk = prk_of(&KEY);
    let file_key = fscrypt::hkdf::HkdfKey::extract(&KEY)
        .derive(fscrypt::hkdf::HkdfContext::PerFileEncKey, &nonce, 64)
        .unwrap();
    // The raw key is gone as soon as ADD_KEY returned: the keyring wipes its copy after
    // HKDF-Extract and the (patched) fuser wipes the request buffer after every ioctl.
    let needles: [(&str, &[u8]); 3] = [
        ("raw key", &KEY),
        ("PRK", &prk),
        ("file key", file_key.as_ref()),
    ];
    let alive = scan_process(pid, &needles);
    assert!(!alive.contains(&"raw key".to_string()), "{alive:?}");
    assert!(alive.contains(&"PRK".to_string()), "control: {alive:?}");
    assert!(
        alive.contains(&"file key".to_string()),
        "control: {alive:?}"
    );

    assert_eq!(remove_key(&m.mnt, &id, false).unwrap(), FILES_BUSY);
    assert_eq!(key_status(&m.mnt, &id).unwrap().0, INCOMPLETELY_REMOVED);
    let busy = scan_process(pid, &needles);
    assert_eq!(
        busy,
        ["file key"],
        "while busy only the open file's key may remain"
    );
    let mut s = String::new();
    std::io::Read::read_to_string(&mut &f, &mut s).unwrap();
    assert_eq!(s, "contents", "the open file still reads");

    drop(f);
    std::thread::sleep(std::time::Duration::from_millis(100)); // RELEASE is asynchronous
    assert_eq!(key_status(&m.mnt, &id).unwrap().0, INCOMPLETELY_REMOVED);
    assert_eq!(remove_key(&m.mnt, &id, false).unwrap(), 0);
    assert_eq!(key_status(&m.mnt, &id).unwrap().0, ABSENT);
    let after = scan_process(pid, &needles);
    assert!(after.is_empty(), "left after close and retry: {after:?}");
}

/// Deny-writes refuses new write(2)s after removal but never the kernel's writeback of pages
/// already stored through a shared mapping (`FUSE_WRITE_CACHE`): that data was accepted.
#[test]
fn deny_writes_still_writes_back_mmap_stores() {
    use std::os::fd::AsRawFd;
    let Some(mut m) = mount_volume(&["--removal=deny-writes"], "") else {
        return;
    };
    let id = add_key(&m.mnt, &KEY).unwrap();
    let e = m.path("enc");
    fs::create_dir(&e).unwrap();
    set_policy(&e, &policy_v2(&id)).unwrap();
    fs::write(e.join("f"), vec![b'a'; 8192]).unwrap();
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(e.join("f"))
        .unwrap();
    // SAFETY: a fresh shared mapping of 8192 bytes of an open file; unmapped below before `f` goes.
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
    assert_ne!(p, libc::MAP_FAILED);
    assert_eq!(
        remove_key(&m.mnt, &id, false).unwrap() & FILES_BUSY,
        FILES_BUSY
    );
    assert_errno((&f).write_all(b"refused"), libc::ENOKEY);
    // SAFETY: `p` maps 8192 writable bytes; msync/munmap get exactly that range.
    unsafe {
        std::ptr::write_bytes(p.cast::<u8>().add(100), b'Z', 4000);
        assert_eq!(
            libc::msync(p, 8192, libc::MS_SYNC),
            0,
            "{}",
            std::io::Error::last_os_error()
        );
        assert_eq!(libc::munmap(p, 8192), 0);
    }
    f.sync_all().unwrap();
    drop(f);
    m.remount("");
    add_key(&m.mnt, &KEY).unwrap();
    let mut want = vec![b'a'; 8192];
    want[100..4100].fill(b'Z');
    assert!(fs::read(e.join("f")).unwrap() == want, "mmap stores lost");
}

#[test]
fn cached_entries_follow_key_changes_at_once() {
    // The kernel caches entries in encrypted directories for a second (attr::TTL); every name it
    // holds must still go at once when the key goes, and no-key names at once when it comes back:
    // names reached by lookup, by create, through a rename (plain and RENAME_EXCHANGE, within and
    // across directories), a second hard link made after the first name was cached, and a
    // subdirectory's children. Each name is stat'ed just before the change, so it is in the
    // kernel's cache when the key goes; nothing here waits out a lifetime.
    let Some((m, id)) = encrypted_volume() else {
        return;
    };
    let e = m.path("enc");
    fs::create_dir(e.join("sub")).unwrap();
    for n in ["a", "b", "c", "x", "y", "sub/deep"] {
        fs::write(e.join(n), n.as_bytes()).unwrap();
    }
    fs::rename(e.join("a"), e.join("a2")).unwrap();
    fs::rename(e.join("b"), e.join("sub/b2")).unwrap();
    renameat2(&e.join("x"), &e.join("sub/deep"), libc::RENAME_EXCHANGE).unwrap();
    fs::hard_link(e.join("c"), e.join("c-link")).unwrap();
    fs::write(m.path("plain"), b"p").unwrap();
    let names = ["a2", "sub/b2", "x", "y", "sub/deep", "c", "c-link", "sub"];
    for round in 0..2 {
        for n in names {
            fs::symlink_metadata(e.join(n))
                .unwrap_or_else(|err| panic!("round {round}: {n}: {err}"));
        }
        assert_eq!(fs::read(e.join("x")).unwrap(), b"sub/deep");
        assert_eq!(fs::read(e.join("sub/deep")).unwrap(), b"x");
        assert_eq!(remove_key(&m.mnt, &id, false).unwrap(), 0);
        for n in names {
            assert_errno(fs::symlink_metadata(e.join(n)), libc::ENOENT);
        }
        // The no-key names, each looked up (cached) while locked.
        let nokey = listing(&e);
        assert_eq!(nokey.len(), 6, "{nokey:?}");
        for n in &nokey {
            fs::symlink_metadata(e.join(n)).unwrap();
        }
        add_key(&m.mnt, &KEY).unwrap();
        for n in &nokey {
            assert_errno(fs::symlink_metadata(e.join(n)), libc::ENOENT);
        }
        assert_eq!(
            listing(&e),
            ["a2", "c", "c-link", "sub", "x", "y"],
            "round {round}"
        );
    }
}
