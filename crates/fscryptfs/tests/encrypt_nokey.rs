//! generic/397, 398, 419 and 429 on a real mount: access with and without the key, policy
//! consistency across link/rename/exchange, renames without the key, and no-key dentries when the
//! key is added without a remount. fstests' legacy session-keyring keys become v1 keys in the
//! filesystem keyring (xfs_io's `add_enckey -d DESC`), or v2 keys; "unlink the key and cycle the
//! mount" becomes xfs_io's `rm_enckey` plus a remount (which also empties the daemon's keyring).
//! Keys and policies go through the unmodified xfs_io, as in fstests.

mod encrypt_support;
mod support;

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use encrypt_support::*;
use fscrypt::nokey::NokeyName;
use support::*;

const ABSENT: u32 = 1;
const INCOMPLETELY_REMOVED: u32 = 3;

/// xfs_io's `pwrite` pattern (0xcd).
fn pwrite_file(p: &Path, len: usize) {
    fs::write(p, vec![0xcdu8; len]).unwrap();
}

/// What `diff -r` compares: every entry's relative path, type and contents (or link target).
fn snapshot(root: &Path) -> Vec<(PathBuf, String, Vec<u8>)> {
    let mut v: Vec<_> = walk(root)
        .into_iter()
        .map(|(p, _)| {
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if md.file_type().is_symlink() {
                let t = fs::read_link(&p).unwrap();
                (
                    rel,
                    "symlink".into(),
                    t.into_os_string().into_encoded_bytes(),
                )
            } else if md.is_dir() {
                (rel, "dir".into(), Vec::new())
            } else {
                (rel, "file".into(), fs::read(&p).unwrap())
            }
        })
        .collect();
    v.sort();
    v
}

fn is_nokey_name(n: &str) -> bool {
    // _filter_nokey_filenames' character set, and a name fscrypt can decode.
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+,_-".contains(&b))
        && NokeyName::decode(n).is_ok()
}

/// The key a case uses: a v1 descriptor in a per-file volume (as fstests); in a per-extent volume,
/// which refuses v1 policies (checked on `dir` first, which must be an empty unencrypted
/// directory), the same raw key as a v2 key (its identifier).
fn key_for(layout: Layout, dir: &Path, desc: &str) -> String {
    if layout.is_extent() {
        assert_extent_refuses_v1_and_iv_flags(None, dir, &test_key_id());
        // The caller's raw key is bound by the identifier, computed where the key is added.
        String::new()
    } else {
        desc.to_string()
    }
}

/// Adds `raw` as a v1 key with descriptor `spec`, or (`spec` empty or 32 hex digits) as a v2 key;
/// returns the spec (the identifier for v2).
fn add_k(m: &Mounted, spec: &str, raw: &[u8]) -> String {
    if spec.len() == 16 {
        add_v1(m, spec, raw);
        spec.to_string()
    } else {
        let id = identifier_of(raw);
        assert!(
            spec.is_empty() || spec == id,
            "{spec} is not the key's identifier {id}"
        );
        assert_eq!(
            add_enckey(None, &m.mnt, raw, "").ok(),
            format!("Added encryption key with identifier {id}\n")
        );
        id
    }
}

/// Removes the key `spec` (v1 descriptor or v2 identifier), not busy.
fn remove_k(m: &Mounted, spec: &str) {
    let words = if spec.len() == 16 {
        "descriptor"
    } else {
        "identifier"
    };
    assert_eq!(
        rm_enckey(None, &m.mnt, spec, "").ok(),
        format!("Removed encryption key with {words} {spec}\n")
    );
}

fn add_v1(m: &Mounted, desc: &str, raw: &[u8]) {
    assert_eq!(
        add_enckey(None, &m.mnt, raw, &format!("-d {desc}")).ok(),
        format!("Added encryption key with descriptor {desc}\n")
    );
}

fn generic_397_access_with_and_without_the_key_in(layout: Layout) {
    let Some(mut m) = mount_in(layout, "") else {
        return;
    };
    let edir = m.path("edir");
    let ref_dir = m.path("ref_dir");
    fs::create_dir(&edir).unwrap();
    fs::create_dir(&ref_dir).unwrap();
    let key = match key_for(layout, &edir, TEST_KEY_DESCRIPTOR) {
        k if k.is_empty() => identifier_of(&TEST_RAW_KEY),
        k => k,
    };
    set_encpolicy(None, &edir, &key, "").ok();
    add_k(&m, &key, &TEST_RAW_KEY);
    let maxname = "y".repeat(255);
    for dir in [&edir, &ref_dir] {
        fs::write(dir.join("empty"), b"").unwrap();
        pwrite_file(&dir.join("a"), 4096);
        pwrite_file(&dir.join("abcdefghijklmnopqrstuvwxyz"), 33 * 1024);
        pwrite_file(&dir.join(&maxname), 1024);
        std::os::unix::fs::symlink("a", dir.join("symlink")).unwrap();
        std::os::unix::fs::symlink("abcdefghijklmnopqrstuvwxyz", dir.join("symlink2")).unwrap();
        std::os::unix::fs::symlink(&maxname, dir.join("symlink3")).unwrap();
        fs::create_dir(dir.join("subdir")).unwrap();
        fs::create_dir(dir.join("subdir/subsubdir")).unwrap();
    }
    // diff -r edir ref_dir
    let reference = snapshot(&ref_dir);
    assert_eq!(reference.len(), 9);
    assert_eq!(snapshot(&edir), reference);
    // Cycle mount (the daemon's keyring is emptied: add the key again) and diff again.
    m.remount("");
    add_k(&m, &key, &TEST_RAW_KEY);
    assert_eq!(snapshot(&edir), reference);

    // Without the key.
    remove_k(&m, &key);
    m.remount("");
    // Plaintext names are not there.
    assert_errno(fs::symlink_metadata(edir.join("empty")), libc::ENOENT);
    assert_errno(fs::symlink_metadata(edir.join("symlink")), libc::ENOENT);
    // The right numbers of entries, and the one subdirectory at depth 2.
    let names = listing(&edir);
    assert_eq!(names.len(), 8, "{names:?}");
    assert!(names.iter().all(|n| is_nokey_name(n)), "{names:?}");
    let depth2_dirs = walk(&edir)
        .into_iter()
        .filter(|(p, d)| *d == 2 && fs::symlink_metadata(p).unwrap().is_dir())
        .count();
    assert_eq!(depth2_dirs, 1);
    // Reading a regular file: ENOKEY ("Required key not available").
    let file = names
        .iter()
        .map(|n| edir.join(n))
        .find(|p| fs::symlink_metadata(p).unwrap().is_file())
        .unwrap();
    assert_errno(fs::read(&file), libc::ENOKEY);
    // Creating a file, directory or symlink: ENOKEY, whether or not the name is valid no-key base64.
    for name in ["newfile", "0123456789abcdef"] {
        assert_errno(
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(edir.join(name)),
            libc::ENOKEY,
        );
    }
    for name in ["newdir", "0123456789abcdef"] {
        assert_errno(fs::create_dir(edir.join(name)), libc::ENOKEY);
    }
    for name in ["newlink", "0123456789abcdef"] {
        assert_errno(
            std::os::unix::fs::symlink("foo", edir.join(name)),
            libc::ENOKEY,
        );
    }
    // rm -r of the whole tree succeeds.
    fs::remove_dir_all(&edir).unwrap();
    assert_errno(fs::symlink_metadata(&edir), libc::ENOENT);
    assert_eq!(listing(&m.mnt), ["ref_dir"]);
}

fn generic_398_policy_consistency_on_link_and_rename_in(layout: Layout) {
    let Some(mut m) = mount_in(layout, "") else {
        return;
    };
    let (edir1, edir2, udir) = (m.path("edir1"), m.path("edir2"), m.path("udir"));
    for d in [&edir1, &edir2, &udir] {
        fs::create_dir(d).unwrap();
    }
    let desc1 = key_for(layout, &edir1, "1111222233334444");
    let desc2 = key_for(layout, &edir2, "5555666677778888");
    let desc1 = add_k(&m, &desc1, &pseudo_key(1));
    let desc2 = add_k(&m, &desc2, &pseudo_key(2));
    set_encpolicy(None, &edir1, &desc1, "").ok();
    set_encpolicy(None, &edir2, &desc2, "").ok();
    fs::write(edir1.join("efile1"), b"efile1").unwrap();
    fs::write(edir2.join("efile2"), b"efile2").unwrap();
    fs::write(udir.join("ufile"), b"ufile").unwrap();

    // Encrypted into an encrypted directory with a different policy: EXDEV.
    assert_errno(
        fs::hard_link(edir1.join("efile1"), edir2.join("efile1")),
        libc::EXDEV,
    );
    assert_errno(
        fs::rename(edir1.join("efile1"), edir2.join("efile1")),
        libc::EXDEV,
    );
    // Unencrypted into encrypted: EXDEV.
    assert_errno(
        fs::hard_link(udir.join("ufile"), edir1.join("ufile")),
        libc::EXDEV,
    );
    assert_errno(
        fs::rename(udir.join("ufile"), edir1.join("ufile")),
        libc::EXDEV,
    );
    // Encrypted into unencrypted: allowed (and the file stays readable).
    fs::hard_link(edir1.join("efile1"), udir.join("efile1")).unwrap();
    assert_eq!(fs::read(udir.join("efile1")).unwrap(), b"efile1");
    fs::remove_file(udir.join("efile1")).unwrap();
    fs::rename(edir1.join("efile1"), udir.join("efile1")).unwrap();
    assert_eq!(fs::read(udir.join("efile1")).unwrap(), b"efile1");
    fs::rename(udir.join("efile1"), edir1.join("efile1")).unwrap();

    // Exchanges that would move a forbidden file into an encrypted directory: EXDEV.
    let x = libc::RENAME_EXCHANGE;
    assert_errno(
        renameat2(&edir1.join("efile1"), &edir2.join("efile2"), x),
        libc::EXDEV,
    );
    assert_errno(
        renameat2(&udir.join("ufile"), &edir1.join("efile1"), x),
        libc::EXDEV,
    );
    assert_errno(
        renameat2(&edir1.join("efile1"), &udir.join("ufile"), x),
        libc::EXDEV,
    );

    // Special files are exempt in every direction.
    mkfifo(&edir1.join("fifo")).unwrap();
    fs::rename(edir1.join("fifo"), edir2.join("fifo")).unwrap();
    fs::rename(edir2.join("fifo"), udir.join("fifo")).unwrap();
    fs::rename(udir.join("fifo"), edir1.join("fifo")).unwrap();
    mkfifo(&udir.join("fifo")).unwrap();
    renameat2(&udir.join("fifo"), &edir1.join("fifo"), x).unwrap();
    fs::hard_link(edir1.join("fifo"), edir2.join("fifo")).unwrap();
    for p in [edir1.join("fifo"), edir2.join("fifo"), udir.join("fifo")] {
        assert!(fs::symlink_metadata(&p).unwrap().file_type().is_fifo());
        fs::remove_file(&p).unwrap();
    }

    // Without the keys, an exchange cannot move a forbidden file in either: ENOKEY.
    remove_k(&m, &desc1);
    remove_k(&m, &desc2);
    m.remount("");
    let only_file = |d: &Path| {
        let n = listing(d);
        assert_eq!(n.len(), 1, "{n:?}");
        d.join(&n[0])
    };
    let (efile1, efile2) = (only_file(&edir1), only_file(&edir2));
    assert_errno(renameat2(&efile1, &efile2, x), libc::ENOKEY);
    assert_errno(renameat2(&efile1, &udir.join("ufile"), x), libc::ENOKEY);
    // Nothing moved.
    assert_eq!(listing(&udir), ["ufile"]);
    assert_eq!(fs::read(udir.join("ufile")).unwrap(), b"ufile");
}

fn generic_419_rename_without_the_key_is_enokey_in(layout: Layout) {
    let Some(mut m) = mount_in(layout, "") else {
        return;
    };
    let edir = m.path("edir");
    fs::create_dir(&edir).unwrap();
    set_encpolicy(None, &edir, TEST_KEY_IDENTIFIER, "").ok();
    add_enckey(None, &m.mnt, &TEST_RAW_KEY, "").ok();
    fs::write(edir.join("a"), b"a\n").unwrap();
    fs::write(edir.join("b"), b"b\n").unwrap();
    let check = |edir: &Path| {
        let names = listing(edir);
        assert_eq!(names.len(), 2);
        let (e1, e2) = (edir.join(&names[0]), edir.join(&names[1]));
        assert_errno(fs::rename(&e1, &e2), libc::ENOKEY);
        assert_errno(renameat2(&e1, &e2, libc::RENAME_EXCHANGE), libc::ENOKEY);
        assert_errno(
            renameat2(&e1, &edir.join("x"), libc::RENAME_NOREPLACE),
            libc::ENOKEY,
        );
        assert_eq!(listing(edir), names, "nothing moved");
    };
    // Removed without a remount (the kernel's caches must follow), then after a cycle mount.
    assert_eq!(
        rm_enckey(None, &m.mnt, TEST_KEY_IDENTIFIER, "").ok(),
        format!("Removed encryption key with identifier {TEST_KEY_IDENTIFIER}\n")
    );
    check(&edir);
    m.remount("");
    check(&edir);
    add_enckey(None, &m.mnt, &TEST_RAW_KEY, "").ok();
    assert_eq!(listing(&edir), ["a", "b"]);
    assert_eq!(fs::read(edir.join("a")).unwrap(), b"a\n");
    assert_eq!(fs::read(edir.join("b")).unwrap(), b"b\n");
}

fn cat(p: &Path) -> std::io::Result<String> {
    let mut s = String::new();
    fs::File::open(p)?.read_to_string(&mut s)?;
    Ok(s)
}

fn generic_429_nokey_dentries_and_adding_the_key_in(layout: Layout) {
    let Some(mut m) = mount_in(layout, "") else {
        return;
    };
    let edir = m.path("edir");
    fs::create_dir(&edir).unwrap();
    let raw = pseudo_key(3);
    let desc = key_for(layout, &edir, "9999888877776666");
    let desc = add_k(&m, &desc, &raw);
    let desc = desc.as_str();
    let words = if desc.len() == 16 {
        "descriptor"
    } else {
        "identifier"
    };
    set_encpolicy(None, &edir, desc, "").ok();
    // One name that is not valid no-key base64, one that is.
    fs::write(edir.join("@@@"), b"contents_@@@\n").unwrap();
    fs::write(edir.join("abcd"), b"contents_abcd\n").unwrap();

    // ***** Without encryption key *****
    remove_k(&m, desc);
    m.remount("");
    let nokey: Vec<PathBuf> = listing(&edir).iter().map(|n| edir.join(n)).collect();
    assert_eq!(nokey.len(), 2);
    for p in &nokey {
        assert!(is_nokey_name(&p.file_name().unwrap().to_string_lossy()));
    }
    // The plaintext names do not exist (and leave negative dentries behind) ...
    assert_errno(cat(&edir.join("@@@")), libc::ENOENT);
    assert_errno(cat(&edir.join("abcd")), libc::ENOENT);
    // ... and the no-key names cannot be read.
    for p in &nokey {
        assert_errno(cat(p), libc::ENOKEY);
    }

    // ***** With encryption key *****, added without a remount or drop_caches: the plaintext
    // names are all there, the no-key names are gone.
    add_k(&m, desc, &raw);
    assert_eq!(listing(&edir), ["@@@", "abcd"]);
    assert_eq!(cat(&edir.join("@@@")).unwrap(), "contents_@@@\n");
    assert_eq!(cat(&edir.join("abcd")).unwrap(), "contents_abcd\n");
    for p in &nokey {
        assert_errno(cat(p), libc::ENOENT);
    }

    // ***** Race conditions ***** (t_encrypted_d_revalidate, as a generic stress): negative
    // lookups below a directory that is created and deleted over and over. Only ENOENT may come
    // back, and the mount must still work afterwards.
    let stop = AtomicBool::new(false);
    let sub = edir.join("dir");
    std::thread::scope(|s| {
        s.spawn(|| {
            let end = Instant::now() + Duration::from_secs(1);
            while Instant::now() < end {
                let _ = fs::create_dir(&sub);
                let _ = fs::remove_dir(&sub);
            }
            stop.store(true, Ordering::Relaxed);
        });
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            match fs::symlink_metadata(sub.join("file")) {
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => n += 1,
                r => panic!("lookup below a racing directory: {r:?}"),
            }
        }
        assert!(n > 0);
    });
    let _ = fs::remove_dir_all(&sub);
    assert_eq!(listing(&edir), ["@@@", "abcd"]);

    // ***** After key removal with the files open *****: the directory and both files are busy,
    // so names stay plaintext and the files stay readable.
    {
        let _d = fs::File::open(&edir).unwrap();
        let _f1 = fs::File::open(edir.join("@@@")).unwrap();
        let _f2 = fs::File::open(edir.join("abcd")).unwrap();
        assert_eq!(
            rm_enckey(None, &m.mnt, desc, "")
                .ok()
                .lines()
                .next()
                .unwrap(),
            format!("Removed encryption key with {words} {desc}, but files still busy")
        );
        assert_eq!(
            key_status_v1(&m, desc),
            INCOMPLETELY_REMOVED,
            "status while busy"
        );
        assert_eq!(listing(&edir), ["@@@", "abcd"]);
        assert_eq!(cat(&edir.join("@@@")).unwrap(), "contents_@@@\n");
        assert_eq!(cat(&edir.join("abcd")).unwrap(), "contents_abcd\n");
    }
    // Closed: the removal completes. The kernel keeps closed inodes cached, so there a second
    // rm_enckey does it ("Removed ..."); fscryptfs locks an inode at its last close when its key is
    // being removed (docs/SEMANTICS.md: incompletely removed "until its last reference goes or a
    // retry completes"), so here the last close may already have finished the removal, and a second
    // removal then finds no key (ENOKEY) — as the kernel does after the inodes were evicted.
    let again = rm_enckey(None, &m.mnt, desc, "");
    if again.code == 0 {
        assert_eq!(
            again.stdout,
            format!("Removed encryption key with {words} {desc}\n")
        );
    } else {
        again.fails_with("Required key not available");
    }
    assert_eq!(key_status_v1(&m, desc), ABSENT);
    let names = listing(&edir);
    assert_eq!(names.len(), 2);
    assert!(names.iter().all(|n| is_nokey_name(n)), "{names:?}");
}

/// The status of a key (v1 or v2) through xfs_io's `enckey_status` ("Absent", "Present", "Incompletely removed").
fn key_status_v1(m: &Mounted, desc: &str) -> u32 {
    match enckey_status(None, &m.mnt, desc).as_str() {
        "Absent" => ABSENT,
        s if s.starts_with("Present") => 2,
        "Incompletely removed" => INCOMPLETELY_REMOVED,
        other => panic!("unexpected status {other:?}"),
    }
}

fn generic_397_inode_numbers_are_stable_across_lock_in(layout: Layout) {
    // Part of what 397's "rm -r succeeds" and 435 rely on: a locked tree shows the same inodes.
    let Some(m) = mount_in(layout, "") else {
        return;
    };
    let edir = m.path("edir");
    fs::create_dir(&edir).unwrap();
    set_encpolicy(None, &edir, TEST_KEY_IDENTIFIER, "").ok();
    add_enckey(None, &m.mnt, &TEST_RAW_KEY, "").ok();
    let mut inos: Vec<u64> = Vec::new();
    for i in 0..10 {
        let p = edir.join(format!("f{i}"));
        fs::write(&p, b"x").unwrap();
        inos.push(fs::metadata(&p).unwrap().ino());
    }
    inos.sort();
    rm_enckey(None, &m.mnt, TEST_KEY_IDENTIFIER, "").ok();
    let mut locked: Vec<u64> = listing(&edir)
        .iter()
        .map(|n| fs::symlink_metadata(edir.join(n)).unwrap().ino())
        .collect();
    locked.sort();
    assert_eq!(locked, inos);
}

// Every case in both layouts (`_extent`: `init --contents-layout=extent`; v1 policies are refused
// there with EINVAL, as on btrfs, so those cases check that and use the same raw key as a v2 key).
in_both_layouts! {
    generic_397_access_with_and_without_the_key, generic_397_access_with_and_without_the_key_extent => generic_397_access_with_and_without_the_key_in;
    generic_398_policy_consistency_on_link_and_rename, generic_398_policy_consistency_on_link_and_rename_extent => generic_398_policy_consistency_on_link_and_rename_in;
    generic_419_rename_without_the_key_is_enokey, generic_419_rename_without_the_key_is_enokey_extent => generic_419_rename_without_the_key_is_enokey_in;
    generic_429_nokey_dentries_and_adding_the_key, generic_429_nokey_dentries_and_adding_the_key_extent => generic_429_nokey_dentries_and_adding_the_key_in;
    generic_397_inode_numbers_are_stable_across_lock, generic_397_inode_numbers_are_stable_across_lock_extent => generic_397_inode_numbers_are_stable_across_lock_in;
}
