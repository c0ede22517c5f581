//! The ioctl interface between the `fscryptfs` command and a mounted fscryptfs volume.
//!
//! The command talks to the daemon the way `fscryptctl` talks to the kernel: ioctls on a file or
//! directory of the mounted filesystem. FUSE forwards every ioctl to the daemon with the caller's
//! uid and pid (which decide key claims), so no socket has to be found or secured. FUSE only passes
//! *restricted* ioctls: the kernel copies exactly `_IOC_SIZE(cmd)` bytes in (`_IOC_WRITE`) and out
//! (`_IOC_READ`). The kernel's REMOVE_KEY, REMOVE_KEY_ALL_USERS, GET_KEY_STATUS and GET_NONCE fit,
//! so the daemon answers them as the kernel does and `fscryptctl` works unmodified. SET_POLICY
//! (encoded with the v1 size), GET_POLICY_EX (encoded with 9 bytes) and ADD_KEY (the raw key follows
//! the 80-byte header) do not fit; for them the daemon has its own numbers, below, whose encoded
//! sizes hold the whole payload. Layouts inside the payloads are the kernel's structs.
//!
//! On any other filesystem (ext4, f2fs) the command uses the kernel's own ioctls.

/// `_IOC(dir, type, nr, size)` as the kernel encodes ioctl numbers on x86-64 and arm64.
pub const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u32 {
    (dir << 30) | ((size as u32 & 0x3fff) << 16) | ((ty as u32) << 8) | nr as u32
}

/// `_IOC_WRITE`: userspace passes data in.
pub const IOC_WRITE: u32 = 1;
/// `_IOC_READ`: userspace receives data.
pub const IOC_READ: u32 = 2;

/// The size encoded in an ioctl number.
pub const fn ioc_size(cmd: u32) -> usize {
    ((cmd >> 16) & 0x3fff) as usize
}

// The kernel's fscrypt ioctls (include/uapi/linux/fscrypt.h).

/// `FS_IOC_SET_ENCRYPTION_POLICY` (encoded `_IOR`, 12 bytes: the v1 size).
pub const FS_IOC_SET_ENCRYPTION_POLICY: u32 = 0x800c_6613;
/// `FS_IOC_GET_ENCRYPTION_POLICY` (v1 only).
pub const FS_IOC_GET_ENCRYPTION_POLICY: u32 = 0x400c_6615;
/// `FS_IOC_GET_ENCRYPTION_POLICY_EX` (encoded with 9 bytes; really 8 + policy size).
pub const FS_IOC_GET_ENCRYPTION_POLICY_EX: u32 = 0xc009_6616;
/// `FS_IOC_ADD_ENCRYPTION_KEY` (80-byte header, raw key after it).
pub const FS_IOC_ADD_ENCRYPTION_KEY: u32 = 0xc050_6617;
/// `FS_IOC_REMOVE_ENCRYPTION_KEY` (64 bytes).
pub const FS_IOC_REMOVE_ENCRYPTION_KEY: u32 = 0xc040_6618;
/// `FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS` (64 bytes).
pub const FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS: u32 = 0xc040_6619;
/// `FS_IOC_GET_ENCRYPTION_KEY_STATUS` (128 bytes).
pub const FS_IOC_GET_ENCRYPTION_KEY_STATUS: u32 = 0xc080_661a;
/// `FS_IOC_GET_ENCRYPTION_NONCE` (16 bytes out).
pub const FS_IOC_GET_ENCRYPTION_NONCE: u32 = 0x8010_661b;

/// `struct fscrypt_key_specifier`: 40 bytes (type u32, reserved u32, 32-byte union).
pub const KEY_SPECIFIER_SIZE: usize = 40;
/// `FSCRYPT_KEY_SPEC_TYPE_DESCRIPTOR`.
pub const KEY_SPEC_TYPE_DESCRIPTOR: u32 = 1;
/// `FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER`.
pub const KEY_SPEC_TYPE_IDENTIFIER: u32 = 2;
/// `struct fscrypt_add_key_arg` without the raw key.
pub const ADD_KEY_HEADER_SIZE: usize = 80;
/// `struct fscrypt_remove_key_arg`.
pub const REMOVE_KEY_ARG_SIZE: usize = 64;
/// `struct fscrypt_get_key_status_arg`.
pub const KEY_STATUS_ARG_SIZE: usize = 128;
/// `struct fscrypt_get_policy_ex_arg` with room for a v2 policy.
pub const GET_POLICY_EX_ARG_SIZE: usize = 8 + 24;

// fscryptfs' own ioctls: the kernel structs at sizes FUSE's restricted path can carry.

/// Magic of fscryptfs' own ioctls ('f', as the kernel's; numbers from 0xe0 do not collide).
pub const FSCRYPTFS_IOC_MAGIC: u8 = b'f';
/// Add a key: `fscrypt_add_key_arg` (80 bytes) followed by the raw key, padded to 64 bytes.
/// The identifier is written back into the key specifier, as the kernel does.
pub const FSCRYPTFS_IOC_ADD_KEY: u32 = ioc(
    IOC_READ | IOC_WRITE,
    FSCRYPTFS_IOC_MAGIC,
    0xe0,
    ADD_KEY_HEADER_SIZE + 64,
);
/// Set a policy: the 12- or 24-byte policy, zero-padded to 24 bytes (the version byte says which).
pub const FSCRYPTFS_IOC_SET_POLICY: u32 = ioc(IOC_WRITE, FSCRYPTFS_IOC_MAGIC, 0xe1, 24);
/// Get a policy: `fscrypt_get_policy_ex_arg` (8-byte size in, then size and policy out).
pub const FSCRYPTFS_IOC_GET_POLICY: u32 = ioc(
    IOC_READ | IOC_WRITE,
    FSCRYPTFS_IOC_MAGIC,
    0xe2,
    GET_POLICY_EX_ARG_SIZE,
);
/// Which files keep a key busy, as far as the caller may see them: in, a key specifier (40
/// bytes); out, NUL-terminated UTF-8 text of at most 4096 bytes (with the NUL), one line (`\n`) per
/// busy inode shown:
///
/// ```text
/// INO PATH [PID,PID,...]        processes of other users also hold it: INO PATH [PIDS] +N
/// ```
///
/// then always, last, `hidden N M`: N busy inodes not shown (the caller does not own them), M
/// inodes that could have been shown but did not fit. PATH is the path from the mount root (`?` if
/// unknown) with `\` and control characters escaped as `\\` and `\u{HEX}`, so it never breaks a
/// line. Who sees what (docs/SEMANTICS.md §4): root every inode and process; anyone else only
/// inodes it owns and, on them, only processes whose real, effective and saved uids are its own;
/// the daemon filters, the rest never leaves it. Any key specifier may be asked about.
pub const FSCRYPTFS_IOC_BUSY_FILES: u32 =
    ioc(IOC_READ | IOC_WRITE, FSCRYPTFS_IOC_MAGIC, 0xe3, 4096);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_numbers_match_the_encoding() {
        assert_eq!(ioc(IOC_READ, b'f', 19, 12), FS_IOC_SET_ENCRYPTION_POLICY);
        assert_eq!(ioc(IOC_WRITE, b'f', 21, 12), FS_IOC_GET_ENCRYPTION_POLICY);
        assert_eq!(
            ioc(IOC_READ | IOC_WRITE, b'f', 22, 9),
            FS_IOC_GET_ENCRYPTION_POLICY_EX
        );
        assert_eq!(
            ioc(IOC_READ | IOC_WRITE, b'f', 23, 80),
            FS_IOC_ADD_ENCRYPTION_KEY
        );
        assert_eq!(
            ioc(IOC_READ | IOC_WRITE, b'f', 24, 64),
            FS_IOC_REMOVE_ENCRYPTION_KEY
        );
        assert_eq!(
            ioc(IOC_READ | IOC_WRITE, b'f', 25, 64),
            FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS
        );
        assert_eq!(
            ioc(IOC_READ | IOC_WRITE, b'f', 26, 128),
            FS_IOC_GET_ENCRYPTION_KEY_STATUS
        );
        assert_eq!(ioc(IOC_READ, b'f', 27, 16), FS_IOC_GET_ENCRYPTION_NONCE);
        assert_eq!(ioc_size(FSCRYPTFS_IOC_ADD_KEY), 144);
        assert_eq!(ioc_size(FSCRYPTFS_IOC_BUSY_FILES), 4096);
    }
}
