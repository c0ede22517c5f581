//! Streamed ciphertext I/O on backing files, for the rest of the engine: reading a range whole,
//! checksumming a range (replay, check) and copying or reflinking a range with its checksum (clone,
//! compaction). Never more than [`CHUNK`] bytes in memory at once; never any key.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use fscrypt::{Errno, Error, Result};

use super::blocksums::{block_sum, blocks, BLOCK, TABLE_OFF};
use super::format::{PayloadSum, ALIGN};
use super::CHUNK;
use crate::store::{io_err, read_full_at, read_up_to_at};

#[cfg(test)]
thread_local! {
    /// Calls of [`read_exact_at`] and [`read_exact_new`] on this thread (the tests count a read's
    /// round trips with it).
    pub(super) static EXACT_READS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Fills `buf` from `f` at `off`; EIO naming `what` and the backing offset when the file ends first.
pub(super) fn read_exact_at(
    f: &File,
    buf: &mut [u8],
    off: u64,
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<()> {
    #[cfg(test)]
    EXACT_READS.with(|n| n.set(n.get() + 1));
    let got = read_full_at(f, buf, off)
        .map_err(|e| io_err(format!("{what}: backing offset {off}"), e))?;
    if got != buf.len() {
        return Err(short_read(what, off + got as u64));
    }
    Ok(())
}

/// EIO: the backing file ended at `at`, before what the format says is there.
fn short_read(what: &(impl std::fmt::Display + ?Sized), at: u64) -> Error {
    Error::new(
        Errno::IO,
        format!("{what}: backing offset {at}: short read"),
    )
}

/// `len` bytes of `f` at `off` in a new buffer, read into fresh memory (not zeroed first: every
/// byte is read or the call fails); EIO as [`read_exact_at`] says.
pub(super) fn read_exact_new(
    f: &File,
    len: usize,
    off: u64,
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<Vec<u8>> {
    #[cfg(test)]
    EXACT_READS.with(|n| n.set(n.get() + 1));
    let buf = read_up_to_at(f, len, off)
        .map_err(|e| io_err(format!("{what}: backing offset {off}"), e))?;
    if buf.len() != len {
        return Err(short_read(what, off + buf.len() as u64));
    }
    Ok(buf)
}

/// The block-sum table of `nblocks` blocks of the record at `record_off` (its header block's bytes
/// 128..), unchecked: the caller compares its hash with the header's.
pub(super) fn read_table(
    f: &File,
    record_off: u64,
    nblocks: u64,
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<Vec<u8>> {
    let mut t = vec![0u8; (nblocks * 8) as usize];
    read_exact_at(f, &mut t, record_off + TABLE_OFF, what)?;
    Ok(t)
}

/// Reads `len` bytes of `f` at `off` a chunk at a time, hands each chunk and its position within the
/// range to `each`, and returns their checksum with `alg`.
fn stream(
    alg: PayloadSum,
    f: &File,
    off: u64,
    len: u64,
    what: &(impl std::fmt::Display + ?Sized),
    mut each: impl FnMut(&[u8], u64) -> Result<()>,
) -> Result<[u8; 8]> {
    let mut h = alg.hasher();
    let mut buf = vec![0u8; len.min(CHUNK) as usize];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(CHUNK) as usize;
        read_exact_at(f, &mut buf[..n], off + done, what)?;
        h.update(&buf[..n]);
        each(&buf[..n], done)?;
        done += n as u64;
    }
    Ok(h.finish())
}

/// The checksum with `alg` (the algorithm of the record that holds the range) of `len` bytes of `f`
/// at `off` (streamed). EIO if they are not all there.
pub(super) fn sum_range(
    alg: PayloadSum,
    f: &File,
    off: u64,
    len: u64,
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<[u8; 8]> {
    stream(alg, f, off, len, what, |_, _| Ok(()))
}

/// The checksum with `alg` of `len` bytes of `f` at `off` (streamed), and the block sums
/// (`blocksums::block_sum`, 8 bytes per 4096-byte block, the last one possibly shorter) of every
/// block of the range. EIO if they are not all there.
pub(super) fn sum_range_blocks(
    alg: PayloadSum,
    f: &File,
    off: u64,
    len: u64,
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<([u8; 8], Vec<u8>)> {
    let mut table = Vec::new();
    let sum = stream(alg, f, off, len, what, |chunk, _| {
        table.extend(chunk.chunks(BLOCK as usize).flat_map(block_sum));
        Ok(())
    })?;
    Ok((sum, table))
}

/// Copies `len` bytes of ciphertext from `src` at `src_off` to `dst` at `dst_off` (4096-aligned):
/// `FICLONERANGE` (shared blocks) when both ranges are block-aligned and the backing filesystem can,
/// else a byte copy. Returns the checksum of the bytes with `alg`, the algorithm of the record
/// they are copied into (computed over the bytes copied, whatever the source record used), and with
/// `want_table` their block-sum table when they get one (`blocksums::blocks`).
#[allow(clippy::too_many_arguments)]
pub(super) fn copy_ciphertext(
    alg: PayloadSum,
    src: &File,
    src_off: u64,
    dst: &File,
    dst_off: u64,
    len: u64,
    what: &(impl std::fmt::Display + ?Sized),
    want_table: bool,
) -> Result<([u8; 8], Option<Vec<u8>>)> {
    let want_table = want_table && blocks(len).is_some();
    let mut table = Vec::new();
    let mut add_blocks = |chunk: &[u8]| {
        if want_table {
            table.extend(chunk.chunks(BLOCK as usize).flat_map(block_sum));
        }
    };
    let cloned = src_off.is_multiple_of(ALIGN)
        && dst_off.is_multiple_of(ALIGN)
        && len.is_multiple_of(ALIGN)
        && len > 0
        && ficlonerange(src, src_off, dst, dst_off, len);
    let sum = if cloned {
        stream(alg, src, src_off, len, what, |chunk, _| {
            add_blocks(chunk);
            Ok(())
        })?
    } else {
        stream(alg, src, src_off, len, what, |chunk, done| {
            add_blocks(chunk);
            dst.write_all_at(chunk, dst_off + done)
                .map_err(|e| io_err(format!("{what}: writing at {}", dst_off + done), e))
        })?
    };
    Ok((sum, want_table.then_some(table)))
}

/// `ioctl(FICLONERANGE)`; false when the backing filesystem cannot (EOPNOTSUPP, EXDEV, EINVAL, ...).
fn ficlonerange(src: &File, src_off: u64, dst: &File, dst_off: u64, len: u64) -> bool {
    let arg = libc::file_clone_range {
        src_fd: i64::from(src.as_raw_fd()),
        src_offset: src_off,
        src_length: len,
        dest_offset: dst_off,
    };
    // SAFETY: FICLONERANGE reads one `struct file_clone_range`, which `arg` is and outlives the
    // call; both descriptors are open for the duration.
    let rc = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONERANGE, &arg) };
    rc == 0
}
