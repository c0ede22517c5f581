//! The real fscrypt ioctls (and FIEMAP, syncfs, stat) as small safe functions.
//!
//! Layouts and numbers follow `fscrypt-spec.md` §1.4 and §1.5 (x86-64 values; every struct is
//! naturally packed). Each argument is built in a byte buffer at least as large as what the kernel
//! reads or writes for that request, so the `unsafe` calls only need "the buffer is big enough".

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// `_IOR('f', 19, struct fscrypt_policy_v1)`.
pub const FS_IOC_SET_ENCRYPTION_POLICY: u32 = 0x800c_6613;
/// `_IOWR('f', 22, __u8[9])`.
pub const FS_IOC_GET_ENCRYPTION_POLICY_EX: u32 = 0xc009_6616;
/// `_IOWR('f', 23, struct fscrypt_add_key_arg)`.
pub const FS_IOC_ADD_ENCRYPTION_KEY: u32 = 0xc050_6617;
/// `_IOWR('f', 24, struct fscrypt_remove_key_arg)`.
pub const FS_IOC_REMOVE_ENCRYPTION_KEY: u32 = 0xc040_6618;
/// `_IOWR('f', 25, struct fscrypt_remove_key_arg)`.
pub const FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS: u32 = 0xc040_6619;
/// `_IOWR('f', 26, struct fscrypt_get_key_status_arg)`.
pub const FS_IOC_GET_ENCRYPTION_KEY_STATUS: u32 = 0xc080_661a;
/// `_IOR('f', 27, __u8[16])`.
pub const FS_IOC_GET_ENCRYPTION_NONCE: u32 = 0x8010_661b;
/// `_IOWR('f', 11, struct fiemap)`.
pub const FS_IOC_FIEMAP: u32 = 0xc020_660b;

/// Key specifier type for v1 keys (by 8-byte descriptor).
pub const KEY_SPEC_TYPE_DESCRIPTOR: u32 = 1;
/// Key specifier type for v2 keys (by 16-byte identifier).
pub const KEY_SPEC_TYPE_IDENTIFIER: u32 = 2;

/// Key status: not in the keyring.
pub const KEY_STATUS_ABSENT: u32 = 1;
/// Key status: present.
pub const KEY_STATUS_PRESENT: u32 = 2;
/// Key status: removed, but files still use it.
pub const KEY_STATUS_INCOMPLETELY_REMOVED: u32 = 3;

/// Removal status flag: some files are still in use.
pub const KEY_REMOVAL_STATUS_FLAG_FILES_BUSY: u32 = 0x1;
/// Removal status flag: only this user's claim was removed.
pub const KEY_REMOVAL_STATUS_FLAG_OTHER_USERS: u32 = 0x2;

/// FIEMAP request flag: sync the file before mapping.
pub const FIEMAP_FLAG_SYNC: u32 = 0x1;
/// Extent flag: last extent of the file.
pub const FIEMAP_EXTENT_LAST: u32 = 0x1;
/// Extent flag: location unknown.
pub const FIEMAP_EXTENT_UNKNOWN: u32 = 0x2;
/// Extent flag: delayed allocation, no physical block yet.
pub const FIEMAP_EXTENT_DELALLOC: u32 = 0x4;
/// Extent flag: data is not block-aligned.
pub const FIEMAP_EXTENT_NOT_ALIGNED: u32 = 0x100;
/// Extent flag: data is inline in the inode.
pub const FIEMAP_EXTENT_DATA_INLINE: u32 = 0x200;
/// Extent flag: allocated but unwritten (reads as zeros).
pub const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;

/// Which master key a key ioctl is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySpec {
    /// A v1 key, by descriptor (type 1).
    Descriptor([u8; 8]),
    /// A v2 key, by identifier (type 2).
    Identifier([u8; 16]),
}

impl KeySpec {
    /// The 40-byte `struct fscrypt_key_specifier`.
    pub fn to_bytes(self) -> [u8; 40] {
        let mut b = [0u8; 40];
        match self {
            KeySpec::Descriptor(d) => {
                b[0..4].copy_from_slice(&KEY_SPEC_TYPE_DESCRIPTOR.to_ne_bytes());
                b[8..16].copy_from_slice(&d);
            }
            KeySpec::Identifier(id) => {
                b[0..4].copy_from_slice(&KEY_SPEC_TYPE_IDENTIFIER.to_ne_bytes());
                b[8..24].copy_from_slice(&id);
            }
        }
        b
    }
}

/// The output of FS_IOC_GET_ENCRYPTION_KEY_STATUS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyStatus {
    /// ABSENT (1), PRESENT (2) or INCOMPLETELY_REMOVED (3).
    pub status: u32,
    /// FSCRYPT_KEY_STATUS_FLAG_ADDED_BY_SELF (1) or 0.
    pub flags: u32,
    /// Number of users with a claim (v2 keys).
    pub user_count: u32,
}

/// One FIEMAP extent, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// Byte offset in the file.
    pub logical: u64,
    /// Byte offset on the device (here: in the image file).
    pub physical: u64,
    /// Length in bytes.
    pub length: u64,
    /// FIEMAP_EXTENT_* flags.
    pub flags: u32,
}

/// Calls `ioctl(fd, request, arg)`.
///
/// # Safety
/// `arg` must be valid for reads and writes of as many bytes as the kernel reads or writes for
/// `request` (for the variable-sized requests, including the trailing data the header describes).
unsafe fn ioctl_raw(fd: BorrowedFd<'_>, request: u32, arg: *mut u8) -> io::Result<()> {
    // SAFETY: `fd` is an open descriptor (borrowed for the call) and the caller guarantees `arg`
    // covers everything the kernel touches for `request`.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(b[off..off + 8].try_into().unwrap())
}

/// Opens a file or directory read-only (for ioctls that only need a descriptor).
pub fn open(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// FS_IOC_ADD_ENCRYPTION_KEY with an identifier spec: adds a v2 key, returns the identifier the
/// kernel computed.
pub fn add_key_v2(fs: impl AsFd, raw: &[u8]) -> io::Result<[u8; 16]> {
    let mut arg = add_key_arg(KeySpec::Identifier([0; 16]), raw);
    // SAFETY: `arg` holds the 80-byte `fscrypt_add_key_arg` followed by `raw_size` key bytes, which
    // is exactly what the kernel reads; it writes back only into the 40-byte key_spec at the start.
    unsafe { ioctl_raw(fs.as_fd(), FS_IOC_ADD_ENCRYPTION_KEY, arg.as_mut_ptr())? };
    Ok(arg[8..24].try_into().unwrap())
}

/// FS_IOC_ADD_ENCRYPTION_KEY with a descriptor spec: adds a v1 key (root only).
pub fn add_key_v1(fs: impl AsFd, descriptor: [u8; 8], raw: &[u8]) -> io::Result<()> {
    let mut arg = add_key_arg(KeySpec::Descriptor(descriptor), raw);
    // SAFETY: as in `add_key_v2`: an 80-byte header followed by `raw_size` bytes.
    unsafe { ioctl_raw(fs.as_fd(), FS_IOC_ADD_ENCRYPTION_KEY, arg.as_mut_ptr()) }
}

fn add_key_arg(spec: KeySpec, raw: &[u8]) -> Vec<u8> {
    let mut arg = vec![0u8; 80 + raw.len()];
    arg[..40].copy_from_slice(&spec.to_bytes());
    arg[40..44].copy_from_slice(&(raw.len() as u32).to_ne_bytes());
    arg[80..].copy_from_slice(raw);
    arg
}

/// FS_IOC_REMOVE_ENCRYPTION_KEY (or `_ALL_USERS`); returns the removal status flags.
pub fn remove_key(fs: impl AsFd, spec: KeySpec, all_users: bool) -> io::Result<u32> {
    let mut arg = [0u8; 64];
    arg[..40].copy_from_slice(&spec.to_bytes());
    let request = if all_users {
        FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS
    } else {
        FS_IOC_REMOVE_ENCRYPTION_KEY
    };
    // SAFETY: `arg` is a 64-byte `fscrypt_remove_key_arg`, the size encoded in the request.
    unsafe { ioctl_raw(fs.as_fd(), request, arg.as_mut_ptr())? };
    Ok(u32_at(&arg, 40))
}

/// FS_IOC_GET_ENCRYPTION_KEY_STATUS.
pub fn key_status(fs: impl AsFd, spec: KeySpec) -> io::Result<KeyStatus> {
    let mut arg = [0u8; 128];
    arg[..40].copy_from_slice(&spec.to_bytes());
    // SAFETY: `arg` is a 128-byte `fscrypt_get_key_status_arg`, the size encoded in the request.
    unsafe {
        ioctl_raw(
            fs.as_fd(),
            FS_IOC_GET_ENCRYPTION_KEY_STATUS,
            arg.as_mut_ptr(),
        )?
    };
    Ok(KeyStatus {
        status: u32_at(&arg, 64),
        flags: u32_at(&arg, 68),
        user_count: u32_at(&arg, 72),
    })
}

/// FS_IOC_SET_ENCRYPTION_POLICY with the raw policy bytes (12 for v1, 24 for v2; anything else is
/// passed as is, zero-extended). Returns the raw errno on failure.
pub fn set_policy(dir: impl AsFd, policy: &[u8]) -> Result<(), i32> {
    // The kernel reads the version byte, then 12 or 24 bytes: 32 zeroed bytes cover both.
    let mut arg = [0u8; 32];
    let n = policy.len().min(arg.len());
    arg[..n].copy_from_slice(&policy[..n]);
    // SAFETY: the kernel reads at most `sizeof(struct fscrypt_policy_v2)` = 24 bytes of the 32-byte
    // buffer and writes nothing.
    match unsafe { ioctl_raw(dir.as_fd(), FS_IOC_SET_ENCRYPTION_POLICY, arg.as_mut_ptr()) } {
        Ok(()) => Ok(()),
        Err(e) => Err(e.raw_os_error().unwrap_or(-1)),
    }
}

/// FS_IOC_GET_ENCRYPTION_POLICY_EX: the policy bytes (12 for v1, 24 for v2).
pub fn get_policy_ex(file: impl AsFd) -> io::Result<Vec<u8>> {
    let mut arg = [0u8; 8 + 24];
    arg[..8].copy_from_slice(&24u64.to_ne_bytes());
    // SAFETY: `arg` is an 8-byte `policy_size` (set to 24) followed by 24 bytes; the kernel reads
    // and writes at most `8 + policy_size` bytes.
    unsafe {
        ioctl_raw(
            file.as_fd(),
            FS_IOC_GET_ENCRYPTION_POLICY_EX,
            arg.as_mut_ptr(),
        )?
    };
    let size = u64_at(&arg, 0) as usize;
    assert!(
        size <= 24,
        "GET_ENCRYPTION_POLICY_EX returned policy_size {size}"
    );
    Ok(arg[8..8 + size].to_vec())
}

/// FS_IOC_GET_ENCRYPTION_NONCE: the inode's 16-byte nonce.
pub fn get_nonce(file: impl AsFd) -> io::Result<[u8; 16]> {
    let mut nonce = [0u8; 16];
    // SAFETY: the kernel writes exactly 16 bytes, the size encoded in the request.
    unsafe {
        ioctl_raw(
            file.as_fd(),
            FS_IOC_GET_ENCRYPTION_NONCE,
            nonce.as_mut_ptr(),
        )?
    };
    Ok(nonce)
}

/// The nonce of the regular file or directory at `path`. (A symlink cannot be opened for an ioctl;
/// read its nonce offline from its context.)
pub fn nonce_of(path: &Path) -> io::Result<[u8; 16]> {
    get_nonce(File::open(path)?)
}

/// FS_IOC_FIEMAP with FIEMAP_FLAG_SYNC over the whole file: every extent, in bytes.
pub fn fiemap(file: impl AsFd) -> io::Result<Vec<Extent>> {
    const HEADER: usize = 32;
    const EXTENT: usize = 56;
    let mut out = Vec::new();
    let mut start = 0u64;
    loop {
        let count = 256usize;
        let mut arg = vec![0u8; HEADER + count * EXTENT];
        arg[0..8].copy_from_slice(&start.to_ne_bytes());
        arg[8..16].copy_from_slice(&(u64::MAX - start).to_ne_bytes());
        arg[16..20].copy_from_slice(&FIEMAP_FLAG_SYNC.to_ne_bytes());
        arg[24..28].copy_from_slice(&(count as u32).to_ne_bytes());
        // SAFETY: `arg` is a 32-byte `struct fiemap` header followed by room for `fm_extent_count`
        // 56-byte `struct fiemap_extent`s, all the kernel reads or writes.
        unsafe { ioctl_raw(file.as_fd(), FS_IOC_FIEMAP, arg.as_mut_ptr())? };
        let mapped = u32_at(&arg, 20) as usize;
        let mut last = mapped == 0;
        for i in 0..mapped {
            let e = &arg[HEADER + i * EXTENT..HEADER + (i + 1) * EXTENT];
            let ext = Extent {
                logical: u64_at(e, 0),
                physical: u64_at(e, 8),
                length: u64_at(e, 16),
                flags: u32_at(e, 40),
            };
            last |= ext.flags & FIEMAP_EXTENT_LAST != 0;
            start = ext.logical + ext.length;
            out.push(ext);
        }
        if last || mapped < count {
            return Ok(out);
        }
    }
}

/// syncfs(2) on the filesystem holding `file`.
pub fn syncfs(file: impl AsFd) -> io::Result<()> {
    // SAFETY: syncfs only takes a descriptor, which is open for the duration of the call.
    let rc = unsafe { libc::syncfs(file.as_fd().as_raw_fd()) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The inode number of `path` (lstat: a symlink's own inode).
pub fn inode_number(path: &Path) -> u64 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()))
        .ino()
}

/// Opens `path` without following a final symlink (O_PATH is not usable for ioctls, so a symlink
/// itself cannot be opened; this is for regular files and directories).
pub fn open_dir(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)
}

/// `echo LEVEL > /proc/sys/vm/drop_caches` (1: page cache, 2: dentries and inodes, 3: both).
pub fn drop_caches(level: u8) {
    std::fs::write("/proc/sys/vm/drop_caches", format!("{level}\n"))
        .unwrap_or_else(|e| panic!("drop_caches {level}: {e}"));
}
