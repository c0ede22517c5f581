//! Pending sizes of per-file regular files: a size recorded at close without waiting for the data
//! it covers to be durable, and the rule for when a reader may trust it.
//!
//! A per-file file's committed size (header bytes 24..32) must never get ahead of its data on disk,
//! so it is written only after an `fdatasync` of the data; on a network filesystem that sync is a
//! round trip that costs more than the rest of a small file's create. Close must not wait for it,
//! yet a daemon that dies after close returned must not lose what close covered. So close writes a
//! *pending size record* (header bytes 80..120, no sync) and the committed size follows after the
//! data is synced (the writeout thread, `-o commit=N` seconds later; fsync, truncation, eviction and
//! unmount at once).
//!
//! The bytes a pending size covers may still be only in the page cache: they survive the daemon's
//! death but not the machine's, nor the backing filesystem's restart (a `ceph-fuse` that is
//! killed loses its dirty cache; its next mount is a new mount). The record therefore names that
//! cache's lifetime, a [`CacheEpoch`]: the kernel's boot id and the backing root's unique mount id
//! (`statx` `STATX_MNT_ID_UNIQUE`, never reused within a boot). A reader trusts the record only in
//! the same epoch and for a file on the backing root's own filesystem; anywhere else (after a crash,
//! a reboot, a copy restored elsewhere, a remounted backing store) the committed size holds and any
//! bytes beyond it are a stale tail, cut as after any crash between a data write and its size.
//! Where the kernel gives no unique mount id, there is no epoch and close commits as before.
//!
//! Record (little-endian): pending size u64 at 80, boot id (16 bytes) at 88, unique mount id u64 at
//! 104, checksum (first 8 bytes of SHA-256 of bytes 80..112) at 112. All zeros: no record. Every
//! write of the committed size clears it in the same write.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use fscrypt::Result;

use super::meta::{FileHeader, FILE_HEADER_USED};
use super::{checksum, io_err};

/// Where the record starts in the header block.
pub const PENDING_AT: usize = 80;
/// Where it ends (the header's reserved, all-zero bytes start here).
pub const PENDING_END: usize = 120;
/// Its length.
pub const PENDING_LEN: usize = PENDING_END - PENDING_AT;

/// `STATX_MNT_ID_UNIQUE` (Linux 6.8): a mount id never reused within a boot.
const STATX_MNT_ID_UNIQUE: u32 = 0x4000;

/// The lifetime of the page cache that holds data not yet synced to the backing store: this boot
/// of the kernel and this mount of the backing filesystem (`dev`: its device number, so that an
/// object on another filesystem mounted inside the backing directory is never covered).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheEpoch {
    boot_id: [u8; 16],
    mount_id: u64,
    dev: u64,
}

impl CacheEpoch {
    /// The epoch of the backing root `root` now; None where the kernel does not say the unique
    /// mount id or the boot id cannot be read (pending sizes are then never written nor trusted).
    pub fn of(root: &impl AsFd) -> Option<CacheEpoch> {
        let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let boot_id = parse_uuid(text.trim())?;
        let flags = rustix::fs::StatxFlags::from_bits_retain(STATX_MNT_ID_UNIQUE);
        let stx = rustix::fs::statx(root, "", rustix::fs::AtFlags::EMPTY_PATH, flags).ok()?;
        if stx.stx_mask & STATX_MNT_ID_UNIQUE == 0 {
            return None;
        }
        Some(CacheEpoch {
            boot_id,
            mount_id: stx.stx_mnt_id,
            dev: rustix::fs::makedev(stx.stx_dev_major, stx.stx_dev_minor),
        })
    }

    /// Whether an object on device `dev` is on the backing root's filesystem.
    pub fn covers(&self, dev: u64) -> bool {
        dev == self.dev
    }

    /// The record saying that the file's size is `size` in this epoch.
    pub fn record(&self, size: u64) -> [u8; PENDING_LEN] {
        let mut b = [0u8; PENDING_LEN];
        b[..8].copy_from_slice(&size.to_le_bytes());
        b[8..24].copy_from_slice(&self.boot_id);
        b[24..32].copy_from_slice(&self.mount_id.to_le_bytes());
        let sum = checksum(&b[..32]);
        b[32..].copy_from_slice(&sum);
        b
    }
}

/// Writes, into the open per-file `file`, the record saying its size is `size` in `epoch` (one
/// write of bytes 80..120, nothing synced); `what` names it in errors.
pub fn write_pending(
    file: &File,
    epoch: &CacheEpoch,
    size: u64,
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<()> {
    file.write_all_at(&epoch.record(size), PENDING_AT as u64)
        .map_err(|e| io_err(what, e))
}

/// Writes, into the open per-file `file`, the header `h` as its committed header and no pending
/// size record: one write of bytes 0..120 (the reserved bytes after it are left as they are,
/// zeros). The caller has synced the data `h.size` covers.
pub fn write_committed(
    file: &File,
    h: &FileHeader,
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<()> {
    let mut b = [0u8; PENDING_END];
    b[..FILE_HEADER_USED].copy_from_slice(&h.to_bytes());
    file.write_all_at(&b, 0).map_err(|e| io_err(what, e))
}

/// A pending size record read from a header block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingSize {
    /// Written in this epoch, for a file on the backing root's filesystem: the file's size.
    Trusted(u64),
    /// Written in another epoch (before a crash, a reboot or a remount of the backing store), or
    /// read where there is no epoch: the committed size holds; this size was lost with the cache.
    Stale(u64),
    /// The checksum does not match (or the size exceeds `max`): ignored.
    Damaged,
}

impl PendingSize {
    /// The record in `block` (a header block or its first bytes) of a per-file file on device
    /// `dev`, judged against `epoch`; None when there is none (all zeros, or a block too short to
    /// hold one). `max`: the largest size a file may have.
    pub fn parse(
        block: &[u8],
        epoch: Option<&CacheEpoch>,
        dev: u64,
        max: u64,
    ) -> Option<PendingSize> {
        let b = block.get(PENDING_AT..PENDING_END)?;
        if b.iter().all(|&x| x == 0) {
            return None;
        }
        let field = |r: std::ops::Range<usize>| {
            b.get(r)
                .and_then(|s| <[u8; 8]>::try_from(s).ok())
                .map_or(0, u64::from_le_bytes)
        };
        let size = field(0..8);
        if checksum(&b[..32]) != b[32..] || size > max {
            return Some(PendingSize::Damaged);
        }
        let same = epoch
            .is_some_and(|e| e.covers(dev) && b[8..24] == e.boot_id && field(24..32) == e.mount_id);
        Some(if same {
            PendingSize::Trusted(size)
        } else {
            PendingSize::Stale(size)
        })
    }
}

/// The 16 bytes of a UUID in its text form (`8-4-4-4-12` hex digits).
fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s.bytes().filter(|&c| c != b'-').collect();
    if hex.len() != 32 || s.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    for (o, pair) in out.iter_mut().zip(hex.chunks(2)) {
        *o = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_with(rec: &[u8; PENDING_LEN]) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        b[PENDING_AT..PENDING_END].copy_from_slice(rec);
        b
    }

    #[test]
    fn a_record_is_trusted_only_in_its_own_epoch_and_filesystem() {
        let root = std::fs::File::open("/").unwrap();
        let Some(here) = CacheEpoch::of(&root) else {
            panic!("this kernel gives no unique mount id (Linux 6.8+ does): pending sizes are off");
        };
        let b = block_with(&here.record(12_345));
        assert_eq!(
            PendingSize::parse(&b, Some(&here), here.dev, u64::MAX),
            Some(PendingSize::Trusted(12_345))
        );
        // Another filesystem inside the backing directory, another boot, another mount, no epoch.
        let other_dev = PendingSize::parse(&b, Some(&here), here.dev + 1, u64::MAX);
        assert_eq!(other_dev, Some(PendingSize::Stale(12_345)));
        let mut reboot = here;
        reboot.boot_id[0] ^= 1;
        assert_eq!(
            PendingSize::parse(&b, Some(&reboot), here.dev, u64::MAX),
            Some(PendingSize::Stale(12_345))
        );
        let mut remount = here;
        remount.mount_id += 1;
        assert_eq!(
            PendingSize::parse(&b, Some(&remount), here.dev, u64::MAX),
            Some(PendingSize::Stale(12_345))
        );
        assert_eq!(
            PendingSize::parse(&b, None, here.dev, u64::MAX),
            Some(PendingSize::Stale(12_345))
        );
        // Damage, a size beyond the limit, no record, a block too short to hold one.
        let mut bad = b.clone();
        bad[PENDING_AT + 3] ^= 0x40;
        assert_eq!(
            PendingSize::parse(&bad, Some(&here), here.dev, u64::MAX),
            Some(PendingSize::Damaged)
        );
        assert_eq!(
            PendingSize::parse(&b, Some(&here), here.dev, 12_344),
            Some(PendingSize::Damaged)
        );
        assert_eq!(
            PendingSize::parse(&[0u8; 4096], Some(&here), here.dev, u64::MAX),
            None
        );
        assert_eq!(
            PendingSize::parse(&b[..100], Some(&here), here.dev, u64::MAX),
            None
        );
    }

    #[test]
    fn boot_ids_parse_as_the_kernel_prints_them() {
        assert_eq!(
            parse_uuid("0123abcd-4567-89ef-0123-456789abcdef"),
            Some([
                0x01, 0x23, 0xab, 0xcd, 0x45, 0x67, 0x89, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
                0xcd, 0xef
            ])
        );
        assert_eq!(parse_uuid("0123abcd456789ef0123456789abcdef"), None);
        assert_eq!(parse_uuid("0123abcd-4567-89ef-0123-456789abcdeg"), None);
    }
}
