//! The backing store: how an fscryptfs volume is laid out as ordinary files, directories and
//! symlinks in a backing directory (docs/FORMAT.md, "Backing store", is the byte-level contract).
//!
//! This module owns every byte fscryptfs itself puts on the backing filesystem and nothing else: the
//! volume config with its inode-number counter ([`config`]), the per-directory metadata file, the
//! 4096-byte header of regular files and the backing form of symlink targets ([`meta`]), and the
//! mapping between user-visible names and backing names, reserved names and long-name side files
//! ([`names`]), and the numbers of special files ([`special`]); [`kind`] names the kinds of objects;
//! [`features`] probes what the backing filesystem offers and picks how to do without the rest;
//! [`pending`] says when a per-file size recorded at close without a sync may be trusted;
//! [`walked`] takes the attributes of an object just reached by name without asking twice. It
//! knows no FUSE and holds no keys: it stores contexts and ciphertext that the `fscrypt` layer
//! produced, so a backing store can be copied with `cp -a`/`rsync -a`, backed up while locked, and
//! read offline.

pub mod config;
pub mod extent;
pub mod features;
pub mod io;
pub mod kind;
pub mod lock;
pub mod meta;
pub mod names;
pub mod pending;
pub mod special;
pub mod walked;

use fscrypt::policy::FsParams;
use fscrypt::{Errno, Error};

/// The block size of the volume (`FsParams::block_bits`), also the size of a regular file's header.
pub const BLOCK_BITS: u8 = 12;

/// Size of the header at the start of every regular backing file; data starts here.
pub const FILE_HEADER_SIZE: u64 = 4096;

/// The longest backing symlink target we write (Linux's PATH_MAX - 1).
pub const BACKING_SYMLINK_MAX: usize = 4095;

/// The largest `fscrypt_symlink_data` ciphertext that fits a backing symlink target once wrapped as
/// `fscryptfs:1:` + base64url(ino ‖ context ‖ data): see docs/FORMAT.md.
pub const SYMLINK_CIPHERTEXT_MAX: usize = 3011;

/// The largest size of a per-extent file: the kernel's `MAX_LFS_FILESIZE`, which is FUSE's
/// `s_maxbytes`. With the writeback cache the kernel accepts `write(2)` into its page cache before
/// the daemon sees it, checking only its own limit; so the per-extent layout stores every size the
/// kernel accepts (its log maps logical offsets, sparse ranges cost nothing) and a write beyond it
/// fails with `EFBIG` at the call, in the kernel. Per-file files keep ext4's limit
/// ([`fs_params`]`.max_file_size`: their ciphertext sits at its logical offset in the backing
/// file, and IV_INO_LBLK_32 needs 32-bit block numbers).
pub const EXTENT_MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// The volume's filesystem parameters, as ext4 with 4 KiB blocks and `stable_inodes`: inode numbers
/// are stable and below 2^32, sub-block data units are supported, and the symlink limit is what a
/// backing symlink target can carry.
pub fn fs_params() -> FsParams {
    FsParams {
        block_bits: BLOCK_BITS,
        has_stable_inodes: true,
        has_32bit_inodes: true,
        supports_subblock_data_units: true,
        max_file_size: ((1u64 << 32) - 1) << BLOCK_BITS,
        per_extent_encryption: false,
        // fscrypt's limit counts the 2-byte header and a trailing NUL.
        symlink_max_len: SYMLINK_CIPHERTEXT_MAX + 3,
    }
}

/// An I/O error on `what` (a backing path or a description naming one), with its errno.
pub fn io_err(what: impl std::fmt::Display, e: std::io::Error) -> Error {
    let errno = e
        .raw_os_error()
        .map(Errno::from_raw_os_error)
        .unwrap_or(Errno::IO);
    Error::new(errno, format!("{what}: {}", crate::error::strerror(&e)))
}

/// A rustix error on `what`.
pub fn sys_err(what: impl std::fmt::Display, e: Errno) -> Error {
    Error::new(
        e,
        format!(
            "{what}: {}",
            crate::error::strerror(&std::io::Error::from(e))
        ),
    )
}

/// A 64-bit checksum: the first 8 bytes of SHA-256 over `bytes`, little-endian.
pub fn checksum(bytes: &[u8]) -> [u8; 8] {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(bytes);
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// Up to `len` bytes of `f` at `off` into a new buffer (shorter only at the end of the file), read
/// straight into uninitialized memory: a large read does not first zero what it then overwrites.
pub fn read_up_to_at(f: &std::fs::File, len: usize, off: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let at = off + buf.len() as u64;
        match rustix::io::pread(f, rustix::buffer::spare_capacity(&mut buf), at) {
            Ok(0) => break,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(buf)
}

/// Writes `parts`, one after another, at `off`: one `pwritev` when the kernel takes them whole
/// (a single request on a network filesystem, where separate writes are round trips each),
/// continuing after short writes and EINTR.
pub fn write_all_vectored_at(f: &std::fs::File, parts: &[&[u8]], off: u64) -> std::io::Result<()> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut done = 0;
    while done < total {
        // What is left of the parts: the first one cut at `done`.
        let mut skip = done;
        let mut left = Vec::with_capacity(parts.len());
        for p in parts {
            if skip >= p.len() {
                skip -= p.len();
            } else {
                left.push(std::io::IoSlice::new(&p[skip..]));
                skip = 0;
            }
        }
        match rustix::io::pwritev(f, &left, off + done as u64) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Reads at `off` until `buf` is full or the file ends (retrying EINTR); returns the bytes read.
pub fn read_full_at(f: &std::fs::File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut got = 0;
    while got < buf.len() {
        match f.read_at(&mut buf[got..], off + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
