//! The client's ioctls: every call the key and policy commands make on their target, on top of
//! `fscrypt::uapi` (numbers and argument layouts), plus opening the target and wording its errors.
//!
//! The same command works on a mounted fscryptfs volume and on a kernel filesystem with fscrypt
//! (ext4, f2fs), through the kernel's numbers: the daemon answers them as the kernel does (ADD_KEY,
//! SET_POLICY and GET_POLICY through its bridge into the caller's memory). Where that bridge
//! cannot reach us (an unprivileged daemon, a ptrace policy that forbids it), those three answer
//! ENOTTY and fscryptfs' own numbers (`uapi::FSCRYPTFS_IOC_*`), whose arguments FUSE carries
//! whole, follow. Errors carry the target's errno in strerror's words.
//!
//! One `unsafe` block, in [`ioctl`]: the raw call, whose buffer is checked at compile time to cover
//! everything the target may touch for that number (`uapi::arg_extent`).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use fscrypt::policy::KeySpec;
use fscrypt::uapi::{
    self, AddKeyArg, GetKeyStatusArg, GetPolicyExArg, RemoveKeyArg, BUSY_FILES_ARG_SIZE,
    FSCRYPTFS_SET_POLICY_ARG_SIZE, GET_POLICY_EX_ARG_SIZE, KEY_STATUS_ARG_SIZE, NONCE_SIZE,
    REMOVE_KEY_ARG_SIZE,
};
use rustix::ioctl::{Opcode, Updater};

use super::error::CliError;

pub use fscryptfs::error::strerror;

/// The operation `what` failed with `e` (exit 1).
pub fn failed(what: impl std::fmt::Display, e: &io::Error) -> CliError {
    CliError::failure(format!("{what}: {}", strerror(e)))
}

/// `what` failed on `path` with `e`; ENOTTY or EOPNOTSUPP from a filesystem that is not an
/// fscryptfs mount is said as such (exit 1).
pub fn failed_at(path: &Path, what: impl std::fmt::Display, e: &io::Error) -> CliError {
    if matches!(
        e.raw_os_error(),
        Some(libc::ENOTTY) | Some(libc::EOPNOTSUPP)
    ) {
        if let Ok(m) = fscryptfs::protectors::mounts::mount_of(path) {
            if !m.is_fscryptfs() {
                return CliError::failure(format!(
                    "{what}: {} is not on an fscryptfs mount, and its filesystem ({}) has no \
                     fscrypt support",
                    path.display(),
                    m.fs_type
                ));
            }
        }
    }
    failed(what, e)
}

fn is_enotty(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOTTY)
}

/// Opens `path` for ioctls as fscryptctl does: read-only, non-blocking (a FIFO or device cannot
/// hang us), close-on-exec (std adds it); `O_DIRECTORY` when only a directory will do.
pub fn open_target(path: &Path, directory: bool) -> Result<File, CliError> {
    let mut flags = libc::O_NONBLOCK;
    if directory {
        flags |= libc::O_DIRECTORY;
    }
    OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| failed(format_args!("error opening {}", path.display()), &e))
}

/// `uapi::arg_extent` of a rustix opcode.
// `Opcode` is `c_uint` or `c_ulong` by rustix backend; the numbers are 32-bit either way.
#[allow(clippy::unnecessary_cast)]
const fn extent(opcode: Opcode) -> usize {
    uapi::arg_extent(opcode as u32)
}

/// `ioctl(fd, OPCODE, arg)` with `arg` as the argument read and written in place. `N` is checked
/// at compile time to cover `uapi::arg_extent(OPCODE)`, the most any target touches.
fn ioctl<const OPCODE: Opcode, const N: usize>(
    fd: BorrowedFd<'_>,
    arg: &mut [u8; N],
) -> io::Result<()> {
    const { assert!(N >= extent(OPCODE)) };
    // SAFETY: `fd` is open for the call; `arg` is exclusively borrowed, and its N bytes cover every
    // byte the target reads or writes for OPCODE: FUSE's restricted ioctls copy exactly the encoded
    // size, and the kernel's fscrypt ioctls at most `uapi::arg_extent` (asserted above). The target
    // keeps no pointer past the call.
    unsafe { rustix::ioctl::ioctl(fd, Updater::<OPCODE, [u8; N]>::new(arg)) }
        .map_err(io::Error::from)
}

/// A layout the target broke (it answered bytes `uapi` cannot read) as an I/O error.
fn layout(e: fscrypt::Error) -> io::Error {
    io::Error::from(e)
}

/// The add-key buffer: `struct fscrypt_add_key_arg`, room for a 64-byte raw key, and one byte more
/// to detect a longer one on stdin.
pub const ADD_KEY_BUF: usize = uapi::FSCRYPTFS_ADD_KEY_ARG_SIZE + 1;

/// ADD_KEY: the kernel's number, else (ENOTTY) fscryptfs'. `arg` holds the encoded header and
/// the raw key after it. Returns the header as answered (a v2 key's identifier in its key
/// specifier).
pub fn add_key(fd: BorrowedFd<'_>, arg: &mut [u8; ADD_KEY_BUF]) -> io::Result<AddKeyArg> {
    match ioctl::<{ uapi::FS_IOC_ADD_ENCRYPTION_KEY as Opcode }, ADD_KEY_BUF>(fd, arg) {
        Err(e) if is_enotty(&e) => {
            ioctl::<{ uapi::FSCRYPTFS_IOC_ADD_KEY as Opcode }, ADD_KEY_BUF>(fd, arg)?
        }
        r => r?,
    }
    AddKeyArg::decode(arg).map_err(layout)
}

/// ADD_KEY of a raw key already in memory (`raw`, 16..=64 bytes): the argument is built in locked
/// memory that is zeroed on drop. Returns the header as answered.
pub fn add_raw_key(fd: BorrowedFd<'_>, spec: KeySpec, raw: &[u8]) -> io::Result<AddKeyArg> {
    let mut arg = fscrypt::secret::SecretBytes::zeroed(ADD_KEY_BUF);
    let buf: &mut [u8; ADD_KEY_BUF] = arg
        .as_mut()
        .try_into()
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let end = uapi::ADD_KEY_HEADER_SIZE + raw.len();
    let room = buf
        .get_mut(uapi::ADD_KEY_HEADER_SIZE..end)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    room.copy_from_slice(raw);
    let header = AddKeyArg::new(spec, raw.len() as u32).encode();
    buf[..uapi::ADD_KEY_HEADER_SIZE].copy_from_slice(&header);
    add_key(fd, buf)
}

/// SET_POLICY: the kernel's number, else (ENOTTY) fscryptfs'. `policy` is the policy struct.
pub fn set_policy(fd: BorrowedFd<'_>, policy: &[u8]) -> io::Result<()> {
    let mut arg = uapi::encode_set_policy(policy).map_err(layout)?;
    match ioctl::<{ uapi::FS_IOC_SET_ENCRYPTION_POLICY as Opcode }, FSCRYPTFS_SET_POLICY_ARG_SIZE>(
        fd, &mut arg,
    ) {
        Err(e) if is_enotty(&e) => {
            arg = uapi::encode_set_policy(policy).map_err(layout)?;
            ioctl::<{ uapi::FSCRYPTFS_IOC_SET_POLICY as Opcode }, FSCRYPTFS_SET_POLICY_ARG_SIZE>(
                fd, &mut arg,
            )
        }
        r => r,
    }
}

/// GET_POLICY_EX: the kernel's number, else (ENOTTY) fscryptfs'. Returns the policy bytes.
pub fn get_policy(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let mut arg = GetPolicyExArg::request().encode();
    match ioctl::<{ uapi::FS_IOC_GET_ENCRYPTION_POLICY_EX as Opcode }, GET_POLICY_EX_ARG_SIZE>(
        fd, &mut arg,
    ) {
        Err(e) if is_enotty(&e) => {
            arg = GetPolicyExArg::request().encode();
            ioctl::<{ uapi::FSCRYPTFS_IOC_GET_POLICY as Opcode }, GET_POLICY_EX_ARG_SIZE>(
                fd, &mut arg,
            )?
        }
        r => r?,
    }
    Ok(GetPolicyExArg::decode(&arg)
        .map_err(layout)?
        .policy()
        .to_vec())
}

/// REMOVE_KEY or REMOVE_KEY_ALL_USERS (kernel numbers). Returns the removal status flags.
pub fn remove_key(fd: BorrowedFd<'_>, spec: KeySpec, all_users: bool) -> io::Result<u32> {
    let mut arg = RemoveKeyArg::new(spec).encode();
    if all_users {
        ioctl::<{ uapi::FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS as Opcode }, REMOVE_KEY_ARG_SIZE>(
            fd, &mut arg,
        )?;
    } else {
        ioctl::<{ uapi::FS_IOC_REMOVE_ENCRYPTION_KEY as Opcode }, REMOVE_KEY_ARG_SIZE>(
            fd, &mut arg,
        )?;
    }
    Ok(RemoveKeyArg::decode(&arg)
        .map_err(layout)?
        .removal_status_flags)
}

/// GET_KEY_STATUS (kernel number): the answered argument (status, status_flags, user_count).
pub fn key_status(fd: BorrowedFd<'_>, spec: KeySpec) -> io::Result<GetKeyStatusArg> {
    let mut arg = GetKeyStatusArg::new(spec).encode();
    ioctl::<{ uapi::FS_IOC_GET_ENCRYPTION_KEY_STATUS as Opcode }, KEY_STATUS_ARG_SIZE>(
        fd, &mut arg,
    )?;
    GetKeyStatusArg::decode(&arg).map_err(layout)
}

/// GET_NONCE (kernel number).
pub fn get_nonce(fd: BorrowedFd<'_>) -> io::Result<[u8; NONCE_SIZE]> {
    let mut arg = [0u8; NONCE_SIZE];
    ioctl::<{ uapi::FS_IOC_GET_ENCRYPTION_NONCE as Opcode }, NONCE_SIZE>(fd, &mut arg)?;
    uapi::decode_nonce(&arg).map_err(layout)
}

/// FSCRYPTFS_IOC_BUSY_FILES: the files keeping a key busy that the caller may see, one
/// `ino path [pids]` per line, then the `hidden` counts (text layout in `uapi`).
pub fn busy_files(fd: BorrowedFd<'_>, spec: KeySpec) -> io::Result<String> {
    let mut arg = uapi::encode_busy_files_request(spec);
    ioctl::<{ uapi::FSCRYPTFS_IOC_BUSY_FILES as Opcode }, BUSY_FILES_ARG_SIZE>(fd, &mut arg)?;
    Ok(uapi::decode_busy_files_reply(&arg))
}

/// True if the filesystem holding `fd` is mounted read-only (`fstatvfs`'s ST_RDONLY).
pub fn is_read_only(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let st = rustix::fs::fstatvfs(fd)?;
    Ok(st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strerror_drops_the_os_error_suffix() {
        let e = io::Error::from_raw_os_error(libc::ENOKEY);
        assert_eq!(strerror(&e), "Required key not available");
    }
}
