//! The mount's read-ahead: the kernel gives a FUSE mount 128 KiB and lets the daemon only lower it
//! in the INIT reply, so a root daemon raises it through sysfs once INIT is done (`-o
//! read_ahead_kb=N`). Its own module because it is not about mounting or serving: one write to the
//! mount's backing-device-info, checked to be a FUSE device first.

use std::path::Path;

use fscrypt::Result;

use crate::store::io_err;

/// The read-ahead a mount gets unless `-o read_ahead_kb=` says otherwise: one FUSE request of the
/// largest size (`max_write`, 1 MiB) and one extent record. The kernel gives a FUSE mount 128 KiB,
/// and lets the daemon lower but not raise it at INIT; sequential reads at 128 KiB wait on one
/// round trip to the daemon per 128 KiB (docs/BENCHMARKS.md "Read-ahead").
pub const READ_AHEAD_KB_DEFAULT: u64 = 1024;

/// The read-ahead unless `-o read_ahead_kb=` says otherwise when the backing store is one where
/// every request is a round trip (a network or FUSE filesystem): four requests of 1 MiB in flight,
/// one for each of the daemon's request threads, whose reads of the backing store then overlap.
/// With one window of 1 MiB a sequential reader kept one or two of them busy; on the one-node
/// CephFS cluster four were busy with this one (docs/BENCHMARKS.md "Read-ahead on a network
/// filesystem"). Not the default elsewhere: a memory-mapped file's page fault reads the whole
/// window around itself.
pub const READ_AHEAD_KB_REMOTE: u64 = 4096;

/// The read-ahead a mount of the backing directory `backing` gets by default:
/// [`READ_AHEAD_KB_REMOTE`] on a network or FUSE filesystem
/// ([`on_round_trip_filesystem`](crate::store::features::on_round_trip_filesystem)), else
/// [`READ_AHEAD_KB_DEFAULT`].
pub fn default_read_ahead_kb(backing: &Path) -> u64 {
    if crate::store::features::on_round_trip_filesystem(backing) {
        READ_AHEAD_KB_REMOTE
    } else {
        READ_AHEAD_KB_DEFAULT
    }
}

/// On a thread of its own: waits until the mount answers (a `stat` of the mountpoint, answered only
/// after the kernel has taken the INIT reply, which would otherwise lower the read-ahead again to
/// what the kernel offered), sets its read-ahead to `kb` KiB
/// (`/sys/class/bdi/MAJOR:MINOR/read_ahead_kb` of the mount's device; none when `kb` is 0), then
/// runs `then`. The caller reports the mount ready in `then`, not before: the `stat` holds the
/// mount, and an unmount that came while it waited would fail with EBUSY. The device found is
/// changed only if it is a FUSE mount (someone who swapped the mountpoint's path meanwhile could
/// at most have their own FUSE mount's read-ahead changed, never a disk's). Not root (sysfs
/// refuses): said in the log, and the kernel's default stays.
pub fn set_read_ahead_then(
    mountpoint: &Path,
    kb: u64,
    then: impl FnOnce() + Send + 'static,
) -> Result<()> {
    let mnt = mountpoint.to_path_buf();
    std::thread::Builder::new()
        .name("read-ahead".into())
        .spawn(move || {
            match rustix::fs::stat(&mnt) {
                Ok(st) if kb > 0 => set_read_ahead(&mnt, st.st_dev, kb),
                Ok(_) => {}
                Err(e) => tracing::info!("read_ahead_kb: {}: {e}", mnt.display()),
            }
            then();
        })
        .map(|_| ())
        .map_err(|e| io_err("starting the read-ahead thread", e))
}

/// Writes `kb` to the read-ahead of the mount of device `st_dev` on `mnt`, if it is a FUSE mount.
fn set_read_ahead(mnt: &Path, st_dev: u64, kb: u64) {
    let dev = format!(
        "{}:{}",
        rustix::fs::major(st_dev),
        rustix::fs::minor(st_dev)
    );
    if !is_fuse_mount(&dev) {
        tracing::info!(
            "read_ahead_kb: {} is not a FUSE mount (device {dev}): left alone",
            mnt.display()
        );
        return;
    }
    let path = format!("/sys/class/bdi/{dev}/read_ahead_kb");
    match std::fs::write(&path, format!("{kb}\n")) {
        Ok(()) => tracing::info!("read-ahead {kb} KiB ({path})"),
        Err(e) => tracing::info!(
            "read_ahead_kb={kb} not set ({path}: {e}; only a daemon running as root can): \
             the kernel's read-ahead stays"
        ),
    }
}

/// Whether a mount of device `dev` (`MAJOR:MINOR`) in this mount namespace is a FUSE mount
/// (`/proc/self/mountinfo`: field 3 the device, the first field after ` - ` the type).
fn is_fuse_mount(dev: &str) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines().any(|line| {
        let fstype = line
            .split_once(" - ")
            .and_then(|(_, rest)| rest.split(' ').next());
        line.split(' ').nth(2) == Some(dev)
            && fstype.is_some_and(|t| t == "fuse" || t.starts_with("fuse."))
    })
}
