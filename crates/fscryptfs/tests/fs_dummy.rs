//! `-o test_dummy_encryption`: the kernel's testing mount option. New inodes in unencrypted
//! directories inherit the dummy v2 policy (AES-256-XTS/AES-256-CTS, PAD_32) keyed by fstests'
//! TEST_RAW_KEY, which the daemon adds itself; existing unencrypted content stays as it is.

mod support;

use std::fs;
use std::os::unix::ffi::OsStrExt;

use fscrypt::keysetup::key_identifier;
use support::*;

fn test_raw_key() -> Vec<u8> {
    (1..=64u8).collect()
}

const TEST_KEY_IDENTIFIER: &str = "69b2f6edeee720cce0577937eb8a6751";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn dummy_encryption_encrypts_new_inodes_with_the_test_key() {
    let Some(mut m) = mount_volume(&[], "") else {
        return;
    };
    // Content from before the option: stays unencrypted.
    fs::write(m.path("old"), b"old plaintext").unwrap();
    fs::create_dir(m.path("olddir")).unwrap();
    m.remount("test_dummy_encryption");
    let id: [u8; 16] = key_identifier(&test_raw_key()).unwrap();
    assert_eq!(hex(&id), TEST_KEY_IDENTIFIER);
    // The test key is present without anyone adding it (root sees it; no user claim needed).
    assert_eq!(key_status(&m.mnt, &id).unwrap().0, 2);
    // The root stays unencrypted (as on ext4): its own names are plaintext.
    assert_errno(get_policy(&m.mnt), libc::ENODATA);
    assert_errno(get_policy(&m.path("old")), libc::ENODATA);
    assert_errno(get_policy(&m.path("olddir")), libc::ENODATA);
    assert_eq!(fs::read(m.path("old")).unwrap(), b"old plaintext");

    let mut dummy = policy_v2(&id);
    dummy[3] = 0x03; // PAD_32
    fs::write(m.path("new"), b"new secret contents").unwrap();
    fs::create_dir(m.path("d")).unwrap();
    fs::write(m.path("d/inner"), b"inner secret").unwrap();
    fs::create_dir(m.path("olddir/sub")).unwrap();
    std::os::unix::fs::symlink("target-name", m.path("d/link")).unwrap();
    for p in ["new", "d", "d/inner", "olddir/sub"] {
        assert_eq!(get_policy(&m.path(p)).unwrap(), dummy, "{p}");
    }
    // On the backing store: contents are ciphertext, names inside the new directory are no-key
    // names; names in the (unencrypted) root are not.
    assert!(m.backing.join("new").exists());
    let raw = fs::read(m.backing.join("new")).unwrap();
    assert!(!raw.windows(6).any(|w| w == b"secret"));
    let inner: Vec<_> = fs::read_dir(m.backing.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.as_bytes().starts_with(b".fscryptfs"))
        .collect();
    assert_eq!(inner.len(), 2);
    assert!(inner.iter().all(|n| n != "inner" && n != "link"));
    assert_eq!(fs::read(m.path("d/inner")).unwrap(), b"inner secret");
    assert_eq!(
        fs::read_link(m.path("d/link")).unwrap().as_os_str(),
        "target-name"
    );
    // Moving old unencrypted content into a dummy-encrypted directory: EXDEV, as the kernel.
    assert_errno(fs::rename(m.path("old"), m.path("d/old")), libc::EXDEV);

    // Without the option the test key is not there: the new inodes are locked until it is added.
    m.remount("");
    assert_errno(fs::read(m.path("new")), libc::ENOKEY);
    assert_eq!(fs::read(m.path("old")).unwrap(), b"old plaintext");
    add_key(&m.mnt, &test_raw_key()).unwrap();
    assert_eq!(fs::read(m.path("new")).unwrap(), b"new secret contents");
    assert_eq!(fs::read(m.path("d/inner")).unwrap(), b"inner secret");
}

#[test]
fn dummy_encryption_serves_ordinary_users_without_a_claim() {
    let Some(m) = mount_volume(&[], "test_dummy_encryption,allow_other") else {
        return;
    };
    fs::create_dir(m.path("pub")).unwrap();
    std::os::unix::fs::chown(m.path("pub"), Some(65534), Some(65534)).unwrap();
    use std::os::unix::process::CommandExt;
    let script = format!(
        "set -e; cd {}; echo hi > f; mkdir s; echo x > s/y; cat f s/y",
        m.path("pub").display()
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        m.log_text()
    );
    assert_eq!(out.stdout, b"hi\nx\n");
    let id = key_identifier(&test_raw_key()).unwrap();
    assert_eq!(get_policy(&m.path("pub/s/y")).unwrap()[8..], id);
}
