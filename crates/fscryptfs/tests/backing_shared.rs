//! A volume on a filesystem shared by two clients (issue 14): CephFS honours OFD locks between its
//! clients, so the volume lock keeps a second daemon, on another client, off a volume in use, and
//! says whose it is; once the first lets go, the second mounts. What the daemon found on the
//! backing filesystem (no rename flags: new names by hard link) is checked too, and that changes
//! made through the other client show through the volume (its lookups take the attributes their
//! walk brought, `store::walked`).
//!
//! Runs when `FSCRYPTFS_SHARED_CLIENTS=DIR1:DIR2` names one directory of a shared filesystem as
//! seen through two clients (`.ci/run` sets it on its one-node Ceph cluster, `scripts/ceph-cluster`,
//! with `FSCRYPTFS_REQUIRE_CEPHFS=1`); otherwise it says SKIPPED loudly, or fails when
//! `FSCRYPTFS_REQUIRE_CEPHFS=1`.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// The two clients' views of one shared directory.
fn clients() -> Option<(PathBuf, PathBuf)> {
    let v = std::env::var("FSCRYPTFS_SHARED_CLIENTS").unwrap_or_default();
    if let Some((a, b)) = v.split_once(':') {
        if !a.is_empty() && !b.is_empty() {
            return Some((PathBuf::from(a), PathBuf::from(b)));
        }
    }
    if std::env::var("FSCRYPTFS_REQUIRE_CEPHFS").as_deref() == Ok("1") {
        panic!("FSCRYPTFS_REQUIRE_CEPHFS=1 but FSCRYPTFS_SHARED_CLIENTS=DIR1:DIR2 is not set");
    }
    eprintln!(
        "\n******** SKIPPED (needs FSCRYPTFS_SHARED_CLIENTS=DIR1:DIR2, one directory of a shared \
         filesystem seen through two clients: .ci/run sets it on a one-node Ceph cluster) \
         ********\n"
    );
    None
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// A volume made on the shared filesystem through client 1, and where it is.
struct SharedVolume {
    /// Its scratch directory on the shared filesystem (removed at the end).
    _shared: tempfile::TempDir,
    /// The volume's backing directory through client 1 and through client 2.
    backing1: PathBuf,
    backing2: PathBuf,
    /// A local scratch directory for mount points.
    local: tempfile::TempDir,
}

/// `fscryptfs init` of a fresh volume through client 1, once client 2 sees its config; None (said
/// loudly) where there are no two clients or no FUSE.
fn shared_volume() -> Option<SharedVolume> {
    let (one, two) = clients()?;
    if !can_mount() {
        return None;
    }
    let (one, two) = (one.as_path(), two.as_path());
    let shared = tempfile::tempdir_in(one).expect("tempdir on the shared filesystem");
    let rel = shared.path().strip_prefix(one).expect("under DIR1");
    let (backing1, backing2) = (shared.path().join("vol"), two.join(rel).join("vol"));
    let out = Command::new(bin())
        .arg("init")
        .arg(&backing1)
        .output()
        .expect("init");
    assert!(out.status.success(), "init: {out:?}");
    let t0 = Instant::now();
    while !backing2.join(".fscryptfs.conf").exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "client 2 does not see the volume"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(SharedVolume {
        _shared: shared,
        backing1,
        backing2,
        local: tempfile::tempdir().expect("tempdir"),
    })
}

#[test]
fn a_second_client_is_kept_off_a_volume_in_use_and_told_whose_it_is() {
    // The second client sees the volume the first made.
    let Some(vol) = shared_volume() else {
        return;
    };
    let (backing1, backing2) = (vol.backing1.clone(), vol.backing2.clone());
    let (mnt1, mnt2) = (vol.local.path().join("m1"), vol.local.path().join("m2"));
    std::fs::create_dir(&mnt1).expect("mkdir");
    std::fs::create_dir(&mnt2).expect("mkdir");

    // What the daemon finds (on CephFS: no rename flags, hard links).
    let out = Command::new(bin())
        .args(["mount", "-o", "verbose"])
        .arg(&backing1)
        .arg(&mnt1)
        .output()
        .expect("mount");
    assert!(out.status.success(), "mount: {out:?}");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    // Unmounted before anything is asserted of it, so that a failure leaves no mount behind.
    wait_unmounted(&mnt1);
    assert!(
        said.contains("backing filesystem: rename NOREPLACE: "),
        "{said}"
    );
    if std::env::var("FSCRYPTFS_REQUIRE_CEPHFS").as_deref() == Ok("1") {
        assert!(
            said.contains("rename NOREPLACE: no — new names: hard link"),
            "{said}"
        );
    }

    let mut first = mount_backing(&backing1, &mnt1, "");
    std::fs::write(first.path("f"), b"written through client 1").expect("write");
    let pid = first.daemon_pid().expect("daemon pid");
    // The second daemon, on the other client: refused at once, naming the holder.
    let mut second = Command::new(bin())
        .args(["mount", "-f"])
        .arg(&backing2)
        .arg(&mnt2)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the second daemon");
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = second.try_wait().expect("wait") {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = second.kill();
            let _ = Command::new("umount").arg("-l").arg(&mnt2).status();
            panic!("the second daemon was not refused");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = {
        use std::io::Read;
        let mut s = String::new();
        let _ = second.stderr.take().expect("stderr").read_to_string(&mut s);
        s
    };
    assert!(!status.success(), "{err}");
    assert!(!is_mounted(&mnt2));
    // Both clients run on this machine here: the holder's host is named as "this host" (another
    // host's name otherwise: store::lock).
    assert!(
        err.contains("is in use")
            && err.contains(&format!("process {pid} "))
            && (err.contains("on this host") || err.contains(&hostname())),
        "the refusal names the holder (pid {pid} on {}): {err}",
        hostname()
    );
    // fsck through the second client is kept off too (shared against exclusive).
    let out = Command::new(bin())
        .arg("fsck")
        .arg(&backing2)
        .output()
        .expect("fsck");
    assert!(!out.status.success(), "fsck during a mount: {out:?}");

    // Once the first lets go, the second client mounts and reads what the first wrote.
    first.stop();
    let mut then = mount_backing(&backing2, &mnt2, "");
    assert_eq!(
        std::fs::read(then.path("f")).expect("read through client 2"),
        b"written through client 1"
    );
    then.stop();
    let out = Command::new(bin())
        .arg("fsck")
        .arg(&backing2)
        .output()
        .expect("fsck");
    assert!(out.status.success(), "fsck: {out:?}");
}

/// A change made through the other client shows through the volume once the mount's own caches
/// expire: a lookup takes the attributes its walk of the backing store brought (`store::walked`:
/// on `ceph-fuse`, whose entries have no lifetime, every walk asks the MDS's view again), so a
/// mode changed, a link added and a link removed by another client are what the volume shows,
/// and an unlink through the volume of a name that has another one leaves that one whole.
#[test]
fn a_change_through_the_other_client_shows_through_the_volume() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Some(vol) = shared_volume() else {
        return;
    };
    let (backing1, backing2) = (&vol.backing1, &vol.backing2);
    let mnt = vol.local.path().join("m");
    std::fs::create_dir(&mnt).expect("mkdir");
    let mut m = mount_backing(backing1, &mnt, "");
    let data = b"written through the volume on client 1".to_vec();
    std::fs::write(m.path("f"), &data).expect("write");
    let md = std::fs::metadata(m.path("f")).expect("stat");
    assert_eq!((md.nlink(), md.mode() & 0o777), (1, 0o644));
    // The mount's entries and attributes live a second: past that, a stat looks the name up again.
    let expire = || std::thread::sleep(Duration::from_millis(1200));

    // Through client 2: the mode changed, a second name linked.
    let t0 = Instant::now();
    while !backing2.join("f").exists() {
        assert!(t0.elapsed() < Duration::from_secs(10), "client 2 sees f");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::set_permissions(backing2.join("f"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod through client 2");
    std::fs::hard_link(backing2.join("f"), backing2.join("g")).expect("link through client 2");
    expire();
    let md = std::fs::metadata(m.path("f")).expect("stat f");
    assert_eq!(
        (md.nlink(), md.mode() & 0o777),
        (2, 0o600),
        "the mode and link count client 2 made"
    );
    let g = std::fs::metadata(m.path("g")).expect("stat g");
    assert_eq!((g.ino(), g.len()), (md.ino(), data.len() as u64), "g is f");

    // Unlinked through the volume: the other name keeps the file.
    std::fs::remove_file(m.path("f")).expect("unlink f");
    assert!(std::fs::read(m.path("g")).expect("read g") == data);
    expire();
    assert_eq!(std::fs::metadata(m.path("g")).expect("stat g").nlink(), 1);

    // A name removed through client 2 is gone from the volume.
    std::fs::remove_file(backing2.join("g")).expect("unlink through client 2");
    expire();
    assert_eq!(
        std::fs::metadata(m.path("g")).map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::NotFound)
    );
    m.stop();
    let out = Command::new(bin())
        .arg("fsck")
        .arg(backing1)
        .output()
        .expect("fsck");
    assert!(out.status.success(), "fsck: {out:?}");
}
