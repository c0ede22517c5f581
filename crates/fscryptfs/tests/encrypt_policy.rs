//! generic/395 and generic/396 on a real mount, through the unmodified xfs_io's `set_encpolicy` /
//! `get_encpolicy` (as fstests) and, where xfs_io cannot express the input, raw ioctls.
//!
//! 395: an empty directory takes a policy; the same policy again is fine, a different one EEXIST;
//! a non-empty directory ENOTEMPTY; a non-directory ENOTDIR; another user's directory EACCES; a
//! read-only mount and a read-only bind mount EROFS; get on an unencrypted inode ENODATA.
//! 396: malformed policies are EINVAL (bad modes, flags, version, invalid mode pairs); it also runs
//! in a per-extent volume (`_extent`), which in addition refuses v1 policies and the DIRECT_KEY /
//! IV_INO_LBLK flags with EINVAL (as btrfs).

mod encrypt_support;
mod support;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use encrypt_support::*;
use support::*;

const ENODATA_TEXT: &str = "No data available";

/// A bind mount, unmounted on drop.
struct Bind(PathBuf);
impl Drop for Bind {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn run(cmd: &mut Command) -> bool {
    cmd.status().is_ok_and(|s| s.success())
}

#[test]
fn generic_395_set_and_get_policy() {
    let Some(mut m) = mount_volume_xfs_io(&["--contents-layout=per-file"], "allow_other") else {
        return;
    };
    make_reachable(&m);

    // *** Setting encryption policy on empty directory ***
    let empty = m.path("empty_dir");
    fs::create_dir(&empty).unwrap();
    get_encpolicy(None, &empty, "").fails_with(ENODATA_TEXT);
    set_encpolicy(None, &empty, TEST_KEY_DESCRIPTOR, "").ok();
    assert_eq!(
        get_encpolicy(None, &empty, "").ok(),
        default_policy_text(&empty, TEST_KEY_DESCRIPTOR)
    );

    // *** Setting encryption policy again ***
    set_encpolicy(None, &empty, TEST_KEY_DESCRIPTOR, "").ok();
    assert_eq!(
        get_encpolicy(None, &empty, "").ok(),
        default_policy_text(&empty, TEST_KEY_DESCRIPTOR)
    );
    set_encpolicy(None, &empty, "4444555566667777", "").fails_with("File exists");
    assert_eq!(
        get_encpolicy(None, &empty, "").ok(),
        default_policy_text(&empty, TEST_KEY_DESCRIPTOR)
    );

    // *** Setting encryption policy on nonempty directory ***
    let nonempty = m.path("nonempty_dir");
    fs::create_dir(&nonempty).unwrap();
    fs::write(nonempty.join("file"), b"").unwrap();
    set_encpolicy(None, &nonempty, "0000000000000000", "").fails_with("Directory not empty");
    get_encpolicy(None, &nonempty, "").fails_with(ENODATA_TEXT);

    // *** Setting encryption policy on nondirectory ***
    let nondir = m.path("nondirectory");
    fs::write(&nondir, b"").unwrap();
    set_encpolicy(None, &nondir, "0000000000000000", "").fails_with("Not a directory");
    // xfs_io opens the file and the daemon says ENOTDIR; so does the raw ioctl.
    let mut v1 = [0u8; 12];
    v1[1] = 1;
    v1[2] = 4;
    v1[3] = 2;
    assert_errno(set_policy(&nondir, &v1), libc::ENOTDIR);
    get_encpolicy(None, &nondir, "").fails_with(ENODATA_TEXT);

    // *** Setting encryption policy on another user's directory ***
    let unauth = m.path("unauthorized_dir");
    fs::create_dir(&unauth).unwrap();
    set_encpolicy(Some(NOBODY), &unauth, "0000000000000000", "").fails_with("Permission denied");
    get_encpolicy(None, &unauth, "").fails_with(ENODATA_TEXT);

    // *** Setting encryption policy on readonly filesystem ***
    fs::create_dir(m.path("ro_dir")).unwrap();
    m.remount("allow_other,ro");
    let ro_dir = m.path("ro_dir");
    set_encpolicy(None, &ro_dir, "0000000000000000", "").fails_with("Read-only file system");
    // xfs_io's ioctl reached the daemon, which refuses it; so does the raw ioctl.
    assert_errno(set_policy(&ro_dir, &v1), libc::EROFS);
    get_encpolicy(None, &ro_dir, "").fails_with(ENODATA_TEXT);
    m.remount("allow_other");

    // ... and on a read-only bind mount of the read-write mount. FUSE's ioctl path does not carry
    // the bind mount's flag: the daemon's bridge looks up the caller's descriptor's mount
    // (`/proc/TID/fdinfo`, `mountinfo`) as the kernel's mnt_want_write_file would, and our
    // command checks it itself (fstatvfs) before its own ioctl. This step is not in fstests.
    let bind_mnt = m.tmp.path().join("ro_bind_mnt");
    fs::create_dir(&bind_mnt).unwrap();
    assert!(run(Command::new("mount")
        .arg("--bind")
        .arg(&m.mnt)
        .arg(&bind_mnt)));
    let _bind = Bind(bind_mnt.clone());
    assert!(run(Command::new("mount")
        .args(["-o", "remount,ro,bind"])
        .arg(&bind_mnt)));
    let bound = bind_mnt.join("ro_dir");
    set_encpolicy(None, &bound, "0000000000000000", "").fails_with("Read-only file system");
    fscryptfs(&[
        OsStr::new("set-policy"),
        OsStr::new("--padding"),
        OsStr::new("16"),
        OsStr::new("0000000000000000"),
        bound.as_os_str(),
    ])
    .fails_with("Read-only file system");
    get_encpolicy(None, &bound, "").fails_with(ENODATA_TEXT);
    // Still settable through the read-write mount.
    set_encpolicy(None, &m.path("ro_dir"), TEST_KEY_DESCRIPTOR, "").ok();
}

/// `set_policy` through the raw ioctl: the errno.
fn raw_set(dir: &Path, p: &[u8]) -> i32 {
    errno_or_zero(&set_policy(dir, p))
}

fn generic_396_invalid_policies_are_einval_in(layout: Layout) {
    let Some(m) = mount_in(layout, "") else {
        return;
    };
    let dir = m.path("dir");
    fs::create_dir(&dir).unwrap();
    let id = add_key(&m.mnt, &TEST_RAW_KEY).unwrap();
    assert_eq!(hex(&id), TEST_KEY_IDENTIFIER);

    // xfs_io's default policy: v1, XTS/CTS, flags 0x02, descriptor 0000000000000000.
    let mut v1 = [0u8; 12];
    v1[1] = 1;
    v1[2] = 4;
    v1[3] = 2;
    let mut v2 = [0u8; 24];
    v2[0] = 2;
    v2[1] = 1;
    v2[2] = 4;
    v2[3] = 2;
    v2[8..24].copy_from_slice(&id);

    for base in [&v1[..], &v2[..]] {
        let ver = base[0];
        // *** Invalid contents encryption mode *** (-c 0xFF)
        let mut p = base.to_vec();
        p[1] = 0xff;
        assert_eq!(raw_set(&dir, &p), libc::EINVAL, "v{ver} contents 0xff");
        // *** Invalid filenames encryption mode *** (-n 0xFF)
        let mut p = base.to_vec();
        p[2] = 0xff;
        assert_eq!(raw_set(&dir, &p), libc::EINVAL, "v{ver} filenames 0xff");
        // *** Invalid flags *** (-f 0xFF)
        let mut p = base.to_vec();
        p[3] = 0xff;
        assert_eq!(raw_set(&dir, &p), libc::EINVAL, "v{ver} flags 0xff");
    }
    // *** Invalid policy version *** (-v 0xFF)
    let mut p = v2;
    p[0] = 0xff;
    assert_eq!(raw_set(&dir, &p), libc::EINVAL, "version 0xff");
    // v2-only fields in use: nonzero reserved bytes, a data unit size beyond the block size.
    let mut p = v2;
    p[5] = 1;
    assert_eq!(raw_set(&dir, &p), libc::EINVAL, "v2 reserved byte");
    let mut p = v2;
    p[4] = 13;
    assert_eq!(raw_set(&dir, &p), libc::EINVAL, "log2 data unit size 13");
    let mut p = v2;
    p[4] = 8;
    assert_eq!(raw_set(&dir, &p), libc::EINVAL, "log2 data unit size 8");
    // Kernel facts (encrypt-tests.md §5.3): v1 with XTS+HCTR2, v2 DIRECT_KEY with XTS.
    let mut p = v1;
    p[2] = 10;
    assert_eq!(raw_set(&dir, &p), libc::EINVAL, "v1 XTS+HCTR2");
    let mut p = v2;
    p[3] |= 0x04;
    assert_eq!(raw_set(&dir, &p), libc::EINVAL, "v2 DIRECT_KEY with XTS");

    // *** Invalid combinations of modes ***, through xfs_io (named modes).
    for key in ["0000000000000000", TEST_KEY_IDENTIFIER] {
        for (c, n) in [
            ("AES-256-CTS", "AES-256-CTS"),
            ("AES-256-CTS", "AES-256-XTS"),
            ("AES-256-XTS", "AES-256-XTS"),
        ] {
            let out = set_encpolicy(None, &dir, key, &format!("-c {c} -n {n}"));
            assert_eq!(out.code, 1, "{key} {c}/{n}: {out:?}");
            assert!(
                out.stderr.trim_end().ends_with("Invalid argument"),
                "{key} {c}/{n}: {out:?}"
            );
        }
    }
    // Nothing stuck: the directory is still unencrypted, and a valid policy goes on.
    assert_errno(get_policy(&dir), libc::ENODATA);
    if layout.is_extent() {
        // Valid elsewhere, refused in a per-extent volume (as btrfs): v1, DIRECT_KEY, IV_INO_LBLK.
        assert_extent_refuses_v1_and_iv_flags(None, &dir, &id);
    }
    set_encpolicy(None, &dir, TEST_KEY_IDENTIFIER, "").ok();
    assert_eq!(
        get_encpolicy(None, &dir, "").ok(),
        default_policy_text(&dir, TEST_KEY_IDENTIFIER)
    );
}

in_both_layouts! {
    generic_396_invalid_policies_are_einval, generic_396_invalid_policies_are_einval_extent => generic_396_invalid_policies_are_einval_in;
}
