//! The volume lock for the offline tools: [`lock_for_reading`] takes `.fscryptfs.lock` shared
//! (`store::lock`), so a read-write mount can neither be running nor start while a tool reads; a
//! volume mounted read-write is refused unless `--force`, which only warns ([`warn_if_mounted_rw`],
//! from `/proc/self/mountinfo`). [`lock_for_repair`] takes it exclusive for `fsck --repair`, which
//! writes: any mount refuses it, `--force` or not.

use std::fs;
use std::path::Path;

use crate::error::CommandError;

/// Takes the volume lock shared for an offline tool (None: no lock file, or `force`). A volume
/// mounted read-write is refused with one line (`refused` gives the exit status) unless `force`,
/// which only warns. A lock file that cannot be used (damaged, unreadable) is said on stderr and
/// the tool goes on, as it would without one.
pub fn lock_for_reading(
    backing: &Path,
    force: bool,
    refused: fn(String) -> CommandError,
) -> Result<Option<crate::store::lock::VolumeLock>, CommandError> {
    if force {
        warn_if_mounted_rw(backing);
        return Ok(None);
    }
    // A missing or foreign backing directory is the tool's own error to give.
    if !backing.is_dir() {
        return Ok(None);
    }
    match crate::store::lock::VolumeLock::shared(backing) {
        Ok(Some(l)) => Ok(Some(l)),
        Ok(None) => {
            warn_if_mounted_rw(backing);
            Ok(None)
        }
        Err(e) if e.errno() == fscrypt::Errno::BUSY => Err(refused(format!(
            "{}; unmount it, or use --force to read it anyway",
            e.message()
        ))),
        Err(e) => {
            eprintln!(
                "fscryptfs: warning: {}; reading without the volume lock",
                e.message()
            );
            warn_if_mounted_rw(backing);
            Ok(None)
        }
    }
}

/// Takes the volume lock exclusive for `fsck --repair` (`VolumeLock::for_repair`). A volume in use
/// (mounted, read-write or read-only, or read by another offline tool) is refused with one line
/// (exit 2); so is one mounted read-write according to `/proc/self/mountinfo` (a daemon that holds
/// no lock), and one whose lock cannot be taken (a damaged or unwritable lock file).
pub fn lock_for_repair(backing: &Path) -> Result<crate::store::lock::VolumeLock, CommandError> {
    let lock = match crate::store::lock::VolumeLock::for_repair(backing) {
        Ok(l) => l,
        Err(e) if e.errno() == fscrypt::Errno::BUSY => {
            return Err(CommandError::usage(format!(
                "{}; unmount it to repair it",
                e.message()
            )))
        }
        Err(e) => {
            return Err(CommandError::usage(format!(
                "{}; cannot take the volume lock to repair",
                e.message()
            )))
        }
    };
    if let Some(mnt) = mounted_rw(backing) {
        return Err(CommandError::usage(format!(
            "{} is mounted read-write on {mnt}; unmount it to repair it",
            backing.display()
        )));
    }
    Ok(lock)
}

/// Warns on stderr when the volume is mounted read-write (what is on disk may lag behind).
pub fn warn_if_mounted_rw(backing: &Path) {
    if let Some(mnt) = mounted_rw(backing) {
        eprintln!(
            "fscryptfs: warning: {} is mounted read-write on {}; the backing store may change while it is read",
            backing.display(),
            mnt
        );
    }
}

/// The mountpoint of a read-write fscryptfs mount of `backing`, if any.
pub fn mounted_rw(backing: &Path) -> Option<String> {
    let canon = backing.canonicalize().ok()?;
    let want = canon.to_string_lossy().replace(' ', "\\040");
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mut r = right.split(' ');
        let (fstype, source) = (r.next()?, r.next()?);
        let mut lf = left.split(' ');
        let mnt = lf.nth(4)?;
        let opts = lf.next()?;
        ((fstype == "fuse.fscryptfs" || fstype == "fuse")
            && source == want
            && opts.split(',').any(|o| o == "rw"))
        .then(|| mnt.to_string())
    })
}
