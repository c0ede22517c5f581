//! generic/580, 581 (and 593's "rejected cleanly") on a real mount, through the unmodified xfs_io as
//! fstests does (`add_enckey`, `rm_enckey`, `enckey_status`, `set_encpolicy`, `get_encpolicy`): the
//! filesystem keyring with v1 and v2 keys, key status strings, removal with a file open
//! ("files still busy", "Incompletely removed"), and per-user claims for an unprivileged user
//! (uid 65534 on an `allow_other` mount): v1 keys need root, a v2 policy needs the caller's claim,
//! the per-user quota (EDQUOT), "Removed user's claim", `rm_enckey -a` needs root.

mod encrypt_support;
mod support;

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use encrypt_support::*;
use support::*;

/// "descriptor X" / "identifier X", as xfs_io words it.
fn spec_words(key: &str) -> String {
    if key.len() == 16 {
        format!("descriptor {key}")
    } else {
        format!("identifier {key}")
    }
}

fn add(uid: Option<u32>, m: &Mounted, key: &str) -> Out {
    if key.len() == 16 {
        add_enckey(uid, &m.mnt, &TEST_RAW_KEY, &format!("-d {key}"))
    } else {
        add_enckey(uid, &m.mnt, &TEST_RAW_KEY, "")
    }
}

#[track_caller]
fn assert_added(out: &Out, key: &str) {
    // xfs_io's words; for v2 the identifier must be the kernel's identifier of TEST_RAW_KEY.
    assert_eq!(
        out.ok(),
        format!("Added encryption key with {}\n", spec_words(key))
    );
}

fn cat(p: &Path) -> std::io::Result<String> {
    let mut s = String::new();
    fs::File::open(p)?.read_to_string(&mut s)?;
    Ok(s)
}

fn test_with_policy_version(m: &mut Mounted, vers: u32) {
    let key = if vers == 1 {
        TEST_KEY_DESCRIPTOR
    } else {
        TEST_KEY_IDENTIFIER
    };
    let words = spec_words(key);
    let dir = m.path("dir");
    fs::create_dir(&dir).unwrap();
    // Setting vN encryption policy (root needs no key yet); getting it.
    set_encpolicy(None, &dir, key, "").ok();
    assert_eq!(
        get_encpolicy(None, &dir, "").ok(),
        default_policy_text(&dir, key)
    );
    // Trying to create file without key added yet
    assert_errno(fs::write(dir.join("file"), b""), libc::ENOKEY);
    assert_eq!(enckey_status(None, &m.mnt, key), "Absent");
    // Adding encryption key; creating encrypted file
    assert_added(&add(None, m, key), key);
    fs::write(dir.join("file"), b"contents\n").unwrap();
    let present = if vers == 1 {
        "Present"
    } else {
        "Present (user_count=1, added_by_self)"
    };
    assert_eq!(enckey_status(None, &m.mnt, key), present);
    // Removing encryption key
    assert_eq!(
        rm_enckey(None, &m.mnt, key, "").ok(),
        format!("Removed encryption key with {words}\n")
    );
    assert_eq!(enckey_status(None, &m.mnt, key), "Absent");
    // Verifying that the encrypted directory was "locked"
    assert_errno(cat(&dir.join("file")), libc::ENOENT);
    let names = listing(&dir);
    assert_eq!(names.len(), 1);
    assert_errno(cat(&dir.join(&names[0])), libc::ENOKEY);

    // Re-adding encryption key; creating another encrypted file
    assert_added(&add(None, m, key), key);
    fs::write(dir.join("file2"), b"foo\n").unwrap();
    // Removing key while an encrypted file is open
    let fd3 = fs::File::open(dir.join("file")).unwrap();
    // `fscryptfs remove-key` rather than xfs_io's `rm_enckey` (same first line): only our command
    // also lists the busy files, checked below.
    let out = fscryptfs(&[OsStr::new("remove-key"), OsStr::new(key), m.mnt.as_os_str()]);
    let mut lines = out.ok().lines();
    assert_eq!(
        lines.next().unwrap(),
        format!("Removed encryption key with {words}, but files still busy")
    );
    // fscryptfs also says which files (indented); the open one must be among them.
    let busy: Vec<&str> = lines.collect();
    assert!(busy.iter().all(|l| l.starts_with("  ")), "{busy:?}");
    assert!(
        busy.is_empty() || busy.iter().any(|l| l.contains("file")),
        "{busy:?}"
    );
    // Non-open file should have been evicted; the open file not.
    assert_errno(cat(&dir.join("file2")), libc::ENOKEY);
    assert_eq!(cat(&dir.join("file")).unwrap(), "contents\n");
    assert_eq!(enckey_status(None, &m.mnt, key), "Incompletely removed");
    // Closing file and removing key for real now (straight after close(): the RELEASE that FUSE
    // sends after close() returns must not make this report busy). The daemon completes an
    // incomplete removal at the last close (SEMANTICS.md §2, remove-key): when that RELEASE
    // arrives first the retry finds the key already gone, ENOKEY, where the kernel, which keeps the
    // closed inode cached, still has it. Either way it is absent afterwards.
    drop(fd3);
    let retry = rm_enckey(None, &m.mnt, key, "");
    if retry.code != 0 {
        assert_eq!(
            retry.stderr,
            "Error removing encryption key: Required key not available\n"
        );
    } else {
        assert_eq!(
            retry.stdout,
            format!("Removed encryption key with {words}\n")
        );
    }
    assert_errno(cat(&dir.join("file")), libc::ENOENT);
    assert_eq!(enckey_status(None, &m.mnt, key), "Absent");
    // Cleaning up
    fs::remove_dir_all(&dir).unwrap();
    m.remount("");
}

fn generic_580_fs_keyring_v1_and_v2_in(layout: Layout) {
    let Some(mut m) = mount_in(layout, "") else {
        return;
    };
    if layout.is_extent() {
        // Per-extent volumes refuse v1 policies (as btrfs); the v1 key itself is still accepted
        // by the filesystem keyring and removed again.
        let dir = m.path("dir");
        fs::create_dir(&dir).unwrap();
        assert_extent_refuses_v1_and_iv_flags(None, &dir, &test_key_id());
        fs::remove_dir(&dir).unwrap();
        assert_added(&add(None, &m, TEST_KEY_DESCRIPTOR), TEST_KEY_DESCRIPTOR);
        assert_eq!(enckey_status(None, &m.mnt, TEST_KEY_DESCRIPTOR), "Present");
        assert_eq!(
            rm_enckey(None, &m.mnt, TEST_KEY_DESCRIPTOR, "").ok(),
            format!("Removed encryption key with descriptor {TEST_KEY_DESCRIPTOR}\n")
        );
    } else {
        test_with_policy_version(&mut m, 1);
    }
    test_with_policy_version(&mut m, 2);
    // Trying to remove absent key
    rm_enckey(None, &m.mnt, "abcdabcdabcdabcd", "").fails_with("Required key not available");
    rm_enckey(None, &m.mnt, TEST_KEY_IDENTIFIER, "").fails_with("Required key not available");
}

fn generic_580_close_then_remove_repeatedly_in(layout: Layout) {
    // The async-RELEASE pitfall (encrypt-tests.md §5.3): `exec 3<&-` then `rm_enckey` at once must
    // report a complete removal, every time.
    let Some(m) = mount_in(layout, "") else {
        return;
    };
    let id = add_key(&m.mnt, &TEST_RAW_KEY).unwrap();
    let dir = m.path("dir");
    fs::create_dir(&dir).unwrap();
    set_policy(&dir, &policy_v2(&id)).unwrap();
    fs::write(dir.join("file"), b"contents\n").unwrap();
    for i in 0..50 {
        let f = fs::File::open(dir.join("file")).unwrap();
        assert_eq!(
            remove_key(&m.mnt, &id, false).unwrap(),
            1,
            "round {i}: busy"
        );
        drop(f);
        // Never busy. When the RELEASE after close() reaches the daemon first, the removal is
        // already complete and the retry finds no key (ENOKEY; SEMANTICS.md §2, as above).
        match remove_key(&m.mnt, &id, false) {
            Ok(flags) => assert_eq!(
                flags, 0,
                "round {i}: removal right after close() still reported busy"
            ),
            Err(e) => assert_eq!(errno_of(&e), libc::ENOKEY, "round {i}: {e}"),
        }
        assert_eq!(key_status(&m.mnt, &id).unwrap().0, 1, "round {i}: absent");
        add_key(&m.mnt, &TEST_RAW_KEY).unwrap();
        assert_eq!(cat(&dir.join("file")).unwrap(), "contents\n");
    }
}

/// Distinct pseudo-random 64-byte keys.
fn random_key(n: u64) -> [u8; 64] {
    let mut x = n
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(std::process::id() as u64)
        | 1;
    let mut k = [0u8; 64];
    for b in &mut k {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    k
}

fn generic_581_unprivileged_user_in(layout: Layout) {
    let Some(mut m) = mount_in(layout, "allow_other") else {
        return;
    };
    make_reachable(&m);
    fs::set_permissions(&m.mnt, fs::Permissions::from_mode(0o777)).unwrap();
    let user = Some(NOBODY);
    let dir = m.path("dir");
    let user_mkdir = |dir: &Path| {
        let out = std::process::Command::new("mkdir")
            .arg(dir)
            .uid_gid(NOBODY)
            .status()
            .unwrap();
        assert!(out.success());
    };

    // Setting and getting a v1 policy as regular user (should succeed)
    user_mkdir(&dir);
    if layout.is_extent() {
        // ... refused with EINVAL in a per-extent volume (as btrfs), the directory unencrypted.
        assert_extent_refuses_v1_and_iv_flags(user, &dir, &test_key_id());
        get_encpolicy(user, &dir, "").fails_with("No data available");
    } else {
        set_encpolicy(user, &dir, TEST_KEY_DESCRIPTOR, "").ok();
        assert_eq!(
            get_encpolicy(user, &dir, "").ok(),
            default_policy_text(&dir, TEST_KEY_DESCRIPTOR)
        );
    }
    // Adding v1 policy key as regular user (should fail with EACCES)
    add_enckey(
        user,
        &m.mnt,
        &TEST_RAW_KEY,
        &format!("-d {TEST_KEY_DESCRIPTOR}"),
    )
    .fails_with("Permission denied");
    fs::remove_dir_all(&dir).unwrap();

    user_mkdir(&dir);
    // Setting v2 policy as regular user without key already added (should fail with ENOKEY)
    set_encpolicy(user, &dir, TEST_KEY_IDENTIFIER, "").fails_with("Required key not available");
    // Adding v2 policy key as regular user (should succeed)
    assert_added(
        &add_enckey(user, &m.mnt, &TEST_RAW_KEY, ""),
        TEST_KEY_IDENTIFIER,
    );
    // Setting and getting the v2 policy as regular user with key added (should succeed)
    set_encpolicy(user, &dir, TEST_KEY_IDENTIFIER, "").ok();
    assert_eq!(
        get_encpolicy(user, &dir, "").ok(),
        default_policy_text(&dir, TEST_KEY_IDENTIFIER)
    );
    // Creating encrypted file as regular user (should succeed)
    let sh = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("echo contents > {}/file", dir.display()))
        .uid_gid(NOBODY)
        .status()
        .unwrap();
    assert!(sh.success());
    assert_eq!(cat(&dir.join("file")).unwrap(), "contents\n");
    // Removing v2 policy key as regular user (should succeed)
    assert_eq!(
        rm_enckey(user, &m.mnt, TEST_KEY_IDENTIFIER, "").ok(),
        format!("Removed encryption key with identifier {TEST_KEY_IDENTIFIER}\n")
    );
    m.remount("allow_other"); // Clear all keys

    // Testing user key quota: fstests lowers /proc/sys/kernel/keys/maxkeys to 5; the daemon takes
    // its quota from that sysctl at mount, or from `-o maxkeys=` (which leaves the host alone).
    let fill_quota = |m: &Mounted| -> u64 {
        let mut added = 0;
        let failure = loop {
            let out = add_enckey(user, &m.mnt, &random_key(added), "");
            if out.code != 0 {
                break out;
            }
            added += 1;
            assert!(added <= 1000, "no quota after 1000 keys");
        };
        failure.fails_with("Disk quota exceeded");
        added
    };
    let sysctl_maxkeys: u64 = fs::read_to_string("/proc/sys/kernel/keys/maxkeys")
        .map(|s| s.trim().parse().expect("maxkeys is a number"))
        .unwrap_or(200);
    assert_eq!(
        fill_quota(&m),
        sysctl_maxkeys,
        "claims accepted before EDQUOT (the host's maxkeys)"
    );
    m.remount("allow_other,maxkeys=5"); // Clear all keys; fstests' quota
    assert_eq!(
        fill_quota(&m),
        5,
        "claims accepted before EDQUOT (maxkeys=5)"
    );
    // Root is not limited.
    for i in 0..5 {
        assert_eq!(
            add_enckey(None, &m.mnt, &random_key(10_000 + i), "").code,
            0
        );
    }

    fs::remove_dir_all(&dir).unwrap();
    user_mkdir(&dir);
    m.remount("allow_other"); // Clear all keys

    // Test multiple users adding the same key.
    assert_added(
        &add_enckey(None, &m.mnt, &TEST_RAW_KEY, ""),
        TEST_KEY_IDENTIFIER,
    );
    assert_eq!(
        enckey_status(user, &m.mnt, TEST_KEY_IDENTIFIER),
        "Present (user_count=1)"
    );
    // Removing key only added by another user (should fail with ENOKEY)
    rm_enckey(user, &m.mnt, TEST_KEY_IDENTIFIER, "").fails_with("Required key not available");
    // Setting v2 encryption policy with key only added by another user (should fail with ENOKEY)
    set_encpolicy(user, &dir, TEST_KEY_IDENTIFIER, "").fails_with("Required key not available");
    // Adding second user of key
    assert_added(
        &add_enckey(user, &m.mnt, &TEST_RAW_KEY, ""),
        TEST_KEY_IDENTIFIER,
    );
    assert_eq!(
        enckey_status(user, &m.mnt, TEST_KEY_IDENTIFIER),
        "Present (user_count=2, added_by_self)"
    );
    // Setting v2 encryption policy as regular user
    set_encpolicy(user, &dir, TEST_KEY_IDENTIFIER, "").ok();
    // Removing this user's claim to the key
    assert_eq!(
        rm_enckey(user, &m.mnt, TEST_KEY_IDENTIFIER, "").ok(),
        format!("Removed user's claim to encryption key with identifier {TEST_KEY_IDENTIFIER}\n")
    );
    assert_eq!(
        enckey_status(user, &m.mnt, TEST_KEY_IDENTIFIER),
        "Present (user_count=1)"
    );
    // Adding back second user of key
    assert_added(
        &add_enckey(user, &m.mnt, &TEST_RAW_KEY, ""),
        TEST_KEY_IDENTIFIER,
    );
    // Remove key for "all users", as regular user (should fail with EACCES)
    rm_enckey(user, &m.mnt, TEST_KEY_IDENTIFIER, "-a").fails_with("Permission denied");
    assert_eq!(
        enckey_status(None, &m.mnt, TEST_KEY_IDENTIFIER),
        "Present (user_count=2, added_by_self)"
    );
    // Remove key for "all users", as root
    assert_eq!(
        rm_enckey(None, &m.mnt, TEST_KEY_IDENTIFIER, "-a").ok(),
        format!("Removed encryption key with identifier {TEST_KEY_IDENTIFIER}\n")
    );
    assert_eq!(enckey_status(None, &m.mnt, TEST_KEY_IDENTIFIER), "Absent");
    assert_eq!(enckey_status(user, &m.mnt, TEST_KEY_IDENTIFIER), "Absent");
}

trait UidGid {
    fn uid_gid(&mut self, id: u32) -> &mut Self;
}
impl UidGid for std::process::Command {
    fn uid_gid(&mut self, id: u32) -> &mut Self {
        use std::os::unix::process::CommandExt;
        self.uid(id).gid(id).current_dir("/")
    }
}

#[test]
fn generic_593_keys_from_kernel_keyrings_are_refused_cleanly() {
    // `add_enckey -k KEYID` (an fscrypt-provisioning key in a kernel keyring) cannot reach a FUSE
    // daemon: the ioctl must fail with an errno, add nothing, and leave the mount working.
    let Some(m) = mount_volume_xfs_io(&[], "") else {
        return;
    };
    let f = open_any(&m.mnt).unwrap();
    let mut buf = vec![0u8; fscryptfs::abi::ADD_KEY_HEADER_SIZE + 64];
    buf[..4].copy_from_slice(&fscryptfs::abi::KEY_SPEC_TYPE_IDENTIFIER.to_le_bytes());
    buf[44..48].copy_from_slice(&12345u32.to_le_bytes()); // key_id
    let r = ioctl(&f, fscryptfs::abi::FSCRYPTFS_IOC_ADD_KEY, &mut buf);
    let e = errno_or_zero(&r);
    assert!(
        e == libc::EOPNOTSUPP || e == libc::EINVAL,
        "add key by key_id: {r:?}"
    );
    assert_eq!(enckey_status(None, &m.mnt, TEST_KEY_IDENTIFIER), "Absent");
    assert_added(
        &add_enckey(None, &m.mnt, &TEST_RAW_KEY, ""),
        TEST_KEY_IDENTIFIER,
    );
}

fn generic_580_busy_ancestors_stay_unlocked_and_the_rest_locks_in(layout: Layout) {
    // 580's "removing key while an encrypted file is open", on a deeper tree: every directory above
    // the open file keeps plaintext names, everything else (siblings, their subtrees, a hard link
    // to a locked file from an unencrypted directory) is locked at once; re-adding the key while
    // incompletely removed makes it all usable again.
    let Some(m) = mount_in(layout, "") else {
        return;
    };
    let e = m.path("edir");
    fs::create_dir(&e).unwrap();
    set_encpolicy(None, &e, TEST_KEY_IDENTIFIER, "").ok();
    add_enckey(None, &m.mnt, &TEST_RAW_KEY, "").ok();
    fs::create_dir_all(e.join("a/b")).unwrap();
    fs::create_dir_all(e.join("a/x/y")).unwrap();
    fs::write(e.join("a/b/open"), b"open\n").unwrap();
    fs::write(e.join("a/b/closed"), b"closed\n").unwrap();
    fs::write(e.join("a/x/y/deep"), b"deep\n").unwrap();
    fs::write(e.join("top"), b"top\n").unwrap();
    fs::create_dir(m.path("udir")).unwrap();
    fs::hard_link(e.join("top"), m.path("udir/top-link")).unwrap();

    let f = fs::File::open(e.join("a/b/open")).unwrap();
    let out = rm_enckey(None, &m.mnt, TEST_KEY_IDENTIFIER, "");
    assert!(out.ok().starts_with(&format!(
        "Removed encryption key with identifier {TEST_KEY_IDENTIFIER}, but files still busy\n"
    )));
    // Ancestors: plaintext.
    assert_eq!(listing(&e), ["a", "top"]);
    assert_eq!(listing(&e.join("a")), ["b", "x"]);
    assert_eq!(listing(&e.join("a/b")), ["closed", "open"]);
    assert_eq!(cat(&e.join("a/b/open")).unwrap(), "open\n");
    // Everything else: locked.
    assert_errno(cat(&e.join("a/b/closed")), libc::ENOKEY);
    assert_errno(cat(&e.join("top")), libc::ENOKEY);
    assert_errno(cat(&m.path("udir/top-link")), libc::ENOKEY);
    let x = listing(&e.join("a/x"));
    assert_eq!(x.len(), 1);
    assert_ne!(
        x[0], "y",
        "a/x is not above the open file: it must be locked"
    );
    let y = e.join("a/x").join(&x[0]);
    let deep = listing(&y);
    assert_eq!(deep.len(), 1);
    assert_ne!(deep[0], "deep");
    assert_errno(cat(&y.join(&deep[0])), libc::ENOKEY);
    assert_errno(fs::write(e.join("a/b/new"), b""), libc::ENOKEY);

    // Added back while incompletely removed: present again, everything usable.
    add_enckey(None, &m.mnt, &TEST_RAW_KEY, "").ok();
    assert_eq!(
        enckey_status(None, &m.mnt, TEST_KEY_IDENTIFIER),
        "Present (user_count=1, added_by_self)"
    );
    assert_eq!(listing(&e.join("a/x")), ["y"]);
    assert_eq!(cat(&e.join("a/x/y/deep")).unwrap(), "deep\n");
    assert_eq!(cat(&m.path("udir/top-link")).unwrap(), "top\n");
    fs::write(e.join("a/b/new"), b"new\n").unwrap();
    drop(f);
    assert_eq!(
        rm_enckey(None, &m.mnt, TEST_KEY_IDENTIFIER, "").ok(),
        format!("Removed encryption key with identifier {TEST_KEY_IDENTIFIER}\n")
    );
    assert_errno(cat(&e.join("a/b/open")), libc::ENOENT);
    assert_errno(cat(&m.path("udir/top-link")), libc::ENOKEY);
}

fn generic_580_no_plaintext_from_the_page_cache_after_a_lock_in(layout: Layout) {
    // Promise 3: once an inode is locked, the kernel's caches serve no plaintext. A file is read
    // (its pages cached), a directory listed, then the key goes: mmap-ing, reading through a hard
    // link in an unencrypted directory and listing all fail or show no-key names.
    let Some(m) = mount_in(layout, "") else {
        return;
    };
    let e = m.path("edir");
    fs::create_dir(&e).unwrap();
    set_encpolicy(None, &e, TEST_KEY_IDENTIFIER, "").ok();
    add_enckey(None, &m.mnt, &TEST_RAW_KEY, "").ok();
    let secret = "secret plaintext ".repeat(1000);
    fs::write(e.join("f"), &secret).unwrap();
    fs::create_dir(m.path("udir")).unwrap();
    fs::hard_link(e.join("f"), m.path("udir/f")).unwrap();
    for _ in 0..3 {
        assert_eq!(cat(&e.join("f")).unwrap(), secret);
        assert_eq!(cat(&m.path("udir/f")).unwrap(), secret);
    }
    assert_eq!(listing(&e), ["f"]);
    rm_enckey(None, &m.mnt, TEST_KEY_IDENTIFIER, "").ok();
    assert_errno(cat(&m.path("udir/f")), libc::ENOKEY);
    assert_errno(cat(&e.join("f")), libc::ENOENT);
    let names = listing(&e);
    assert_eq!(names.len(), 1);
    assert_ne!(names[0], "f");
    assert_errno(cat(&e.join(&names[0])), libc::ENOKEY);
    // The size is still visible (as on ext4), the contents are not.
    assert_eq!(
        fs::metadata(m.path("udir/f")).unwrap().len(),
        secret.len() as u64
    );
}

// The cases where the layout matters, in both layouts (`_extent`: `init --contents-layout=extent`,
// where v1 policies are refused with EINVAL and the rest runs with the v2 policy).
in_both_layouts! {
    generic_580_fs_keyring_v1_and_v2, generic_580_fs_keyring_v1_and_v2_extent => generic_580_fs_keyring_v1_and_v2_in;
    generic_580_close_then_remove_repeatedly, generic_580_close_then_remove_repeatedly_extent => generic_580_close_then_remove_repeatedly_in;
    generic_581_unprivileged_user, generic_581_unprivileged_user_extent => generic_581_unprivileged_user_in;
    generic_580_busy_ancestors_stay_unlocked_and_the_rest_locks, generic_580_busy_ancestors_stay_unlocked_and_the_rest_locks_extent => generic_580_busy_ancestors_stay_unlocked_and_the_rest_locks_in;
    generic_580_no_plaintext_from_the_page_cache_after_a_lock, generic_580_no_plaintext_from_the_page_cache_after_a_lock_extent => generic_580_no_plaintext_from_the_page_cache_after_a_lock_in;
}
