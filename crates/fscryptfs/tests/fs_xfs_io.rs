//! Unmodified kernel tools on the mount: xfs_io's `enckey_status` and `rm_enckey` use the kernel's
//! GET_KEY_STATUS and REMOVE_KEY ioctls, which fit FUSE's restricted ioctl path, so the daemon
//! answers them exactly as the kernel does (fstests drives the keyring through these commands),
//! busy files included. Every other fscrypt command of xfs_io, compared with ext4 command by
//! command, is `tests/fs_ioctl_bridge.rs`.

mod support;

use std::process::Command;

use support::*;

fn xfs_io(cmd: &str, path: &std::path::Path) -> (bool, String) {
    let out = Command::new("xfs_io")
        .arg("-c")
        .arg(cmd)
        .arg(path)
        .output()
        .expect("xfs_io is needed (apt-get install xfsprogs)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text.trim_end().to_string())
}

#[test]
fn xfs_io_key_status_and_removal_work_unmodified() {
    if Command::new("xfs_io").arg("-V").output().is_err() {
        if std::env::var("FSCRYPTFS_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
            panic!("prerequisite missing: xfs_io (apt-get install xfsprogs)");
        }
        eprintln!("\n******** SKIPPED (xfs_io is missing: apt-get install xfsprogs) ********\n");
        return;
    }
    let Some((m, id)) = encrypted_volume() else {
        return;
    };
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(m.path("enc/file"), b"contents").expect("write");

    assert_eq!(
        xfs_io(&format!("enckey_status {hex}"), &m.mnt).1,
        "Present (user_count=1, added_by_self)"
    );
    let open = std::fs::File::open(m.path("enc/file")).expect("open");
    assert_eq!(
        xfs_io(&format!("rm_enckey {hex}"), &m.mnt).1,
        format!("Removed encryption key with identifier {hex}, but files still busy")
    );
    assert_eq!(
        xfs_io(&format!("enckey_status {hex}"), &m.mnt).1,
        "Incompletely removed"
    );
    drop(open);
    // RELEASE reaches the daemon after close() returns; the daemon waits for it briefly.
    assert_eq!(
        xfs_io(&format!("rm_enckey {hex}"), &m.mnt).1,
        format!("Removed encryption key with identifier {hex}")
    );
    assert_eq!(xfs_io(&format!("enckey_status {hex}"), &m.mnt).1, "Absent");
    let (ok, text) = xfs_io(&format!("rm_enckey {hex}"), &m.mnt);
    assert!(!ok || text.contains("Required key not available"), "{text}");
    assert!(text.contains("Required key not available"), "{text}");
}
