//! The key and policy commands, fscryptctl-style: `add-key`, `remove-key`, `key-status`,
//! `set-policy`, `get-policy`, `get-nonce` (with fscryptctl's underscore spellings as aliases).
//!
//! Every command opens its target and issues ioctls on it, so the same command works on a mounted
//! fscryptfs volume and on a kernel filesystem with fscrypt (ext4, f2fs). REMOVE_KEY, GET_KEY_STATUS
//! and GET_NONCE use the kernel's numbers everywhere (the daemon answers them as the kernel does).
//! ADD_KEY, SET_POLICY and GET_POLICY first try fscryptfs' own numbers ([`crate::abi`]); ENOTTY
//! means "not an fscryptfs mount" and the kernel's ioctl follows. Errors carry the target's errno in
//! strerror's words; nothing the target validates is judged here beforehand.
//!
//! Exit status: 0 on success, 1 when the operation failed (the target's errno), 2 on bad arguments
//! (a malformed identifier, mode, padding or data unit size, a key of the wrong size on stdin).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use fscrypt::secret::SecretBytes;
use fscrypt::EncryptionMode;

use crate::cli_error::CliError;
use fscryptfs::abi;

const ADD_KEY_HELP: &str = "Read a raw key (16 to 64 bytes, binary) from stdin and add it to the \
filesystem mounted at MNT (any path on it will do). A v2 key is identified by its key identifier, \
which the filesystem computes and this command prints as 32 hex digits. With --descriptor, the key \
is added as a v1 key under that descriptor (root only) and `Added encryption key with descriptor \
DESC` is printed.\n\n\
Exit status: 0 on success, 1 if the operation failed, 2 on bad arguments or a key of the wrong size.";

const REMOVE_KEY_HELP: &str =
    "Remove the key ID (a 32-hex-digit key identifier, or a 16-hex-digit v1 \
descriptor) from the filesystem mounted at MNT. For a v2 key only the calling user's claim is \
removed; the key itself goes once no user has a claim. Prints `Removed encryption key with \
identifier ID`, `Removed encryption key with identifier ID, but files still busy` (on fscryptfs \
followed by the busy files, one per line, indented: root sees every busy file and process, other \
users only the files they own and their own processes, the rest as a count such as `and 3 more in \
use by other users`) or `Removed user's claim to encryption key with \
identifier ID` (other users still have it); v1 keys say `descriptor` instead of `identifier`.\n\n\
Exit status: 0 on success, 1 if the operation failed, 2 on bad arguments.";

const KEY_STATUS_HELP: &str = "Print the status of the key ID (32 hex digits, or 16 for a v1 \
descriptor) on the filesystem mounted at MNT: `Absent`, `Present`, `Present (user_count=N)`, \
`Present (user_count=N, added_by_self)` or `Incompletely removed`.\n\n\
Exit status: 0 on success, 1 if the operation failed, 2 on bad arguments.";

const SET_POLICY_HELP: &str =
    "Set an encryption policy on the empty directory DIR. ID is a v2 key \
identifier (32 hex digits) or a v1 key descriptor (16 hex digits, which makes a v1 policy). \
Defaults: AES-256-XTS contents, AES-256-CTS filenames, 32 bytes of filename padding, the \
filesystem's block size as data unit size. Whether the policy is valid is for the filesystem to \
say (errors are its errno). Setting the policy a directory already has succeeds.\n\n\
Exit status: 0 on success, 1 if the operation failed, 2 on bad arguments.";

const GET_POLICY_HELP: &str = "Print the encryption policy of the file or directory PATH, in \
fscryptctl's format: `Encryption policy for PATH:` followed by tab-indented lines `Policy version:`, \
`Master key identifier:` (v2) or `Master key descriptor:` (v1), `Contents encryption mode:`, \
`Filenames encryption mode:`, `Flags:` and (v2) `Data unit size:`.\n\n\
Exit status: 0 on success, 1 if the operation failed, 2 on bad arguments.";

const GET_NONCE_HELP: &str =
    "Print the 16-byte nonce of the encrypted file or directory PATH as 32 hex \
digits. No key is needed.\n\n\
Exit status: 0 on success, 1 if the operation failed, 2 on bad arguments.";

/// The key and policy subcommands.
#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Add a raw key (read from stdin) to a filesystem; print its identifier.
    #[command(visible_alias = "add_key", long_about = ADD_KEY_HELP)]
    AddKey(AddKeyArgs),
    /// Remove a key (or this user's claim to it) from a filesystem.
    #[command(visible_alias = "remove_key", long_about = REMOVE_KEY_HELP)]
    RemoveKey(RemoveKeyArgs),
    /// Print the status of a key on a filesystem.
    #[command(visible_alias = "key_status", long_about = KEY_STATUS_HELP)]
    KeyStatus(KeyStatusArgs),
    /// Set an encryption policy on an empty directory.
    #[command(visible_alias = "set_policy", long_about = SET_POLICY_HELP)]
    SetPolicy(SetPolicyArgs),
    /// Print the encryption policy of a file or directory.
    #[command(visible_alias = "get_policy", long_about = GET_POLICY_HELP)]
    GetPolicy(GetPolicyArgs),
    /// Print the 16-byte nonce of an encrypted file or directory in hex.
    #[command(visible_alias = "get_nonce", long_about = GET_NONCE_HELP)]
    GetNonce(GetNonceArgs),
}

/// Options of `fscryptfs add-key`.
#[derive(Args, Debug)]
pub struct AddKeyArgs {
    /// Add a v1 key under this 8-byte descriptor (16 hex digits) instead of a v2 key.
    #[arg(long, value_name = "HEX16")]
    descriptor: Option<String>,
    /// A path on the filesystem (usually its mount point).
    #[arg(value_name = "MNT")]
    mnt: PathBuf,
}

/// Options of `fscryptfs remove-key`.
#[derive(Args, Debug)]
pub struct RemoveKeyArgs {
    /// Remove every user's claim to the key (requires root).
    #[arg(long)]
    all_users: bool,
    /// The key: 32 hex digits (v2 identifier) or 16 hex digits (v1 descriptor).
    #[arg(value_name = "ID")]
    id: String,
    /// A path on the filesystem (usually its mount point).
    #[arg(value_name = "MNT")]
    mnt: PathBuf,
}

/// Options of `fscryptfs key-status`.
#[derive(Args, Debug)]
pub struct KeyStatusArgs {
    /// The key: 32 hex digits (v2 identifier) or 16 hex digits (v1 descriptor).
    #[arg(value_name = "ID")]
    id: String,
    /// A path on the filesystem (usually its mount point).
    #[arg(value_name = "MNT")]
    mnt: PathBuf,
}

/// Options of `fscryptfs set-policy`.
#[derive(Args, Debug)]
pub struct SetPolicyArgs {
    /// Contents encryption mode (AES-256-XTS, AES-128-CBC, SM4-XTS, Adiantum).
    #[arg(long, value_name = "MODE", default_value = "AES-256-XTS")]
    contents: String,
    /// Filenames encryption mode (AES-256-CTS, AES-128-CTS, SM4-CTS, Adiantum, AES-256-HCTR2).
    #[arg(long, value_name = "MODE", default_value = "AES-256-CTS")]
    filenames: String,
    /// Bytes of zero padding for filenames.
    #[arg(long, value_name = "BYTES", default_value = "32",
          value_parser = ["4", "8", "16", "32"])]
    padding: String,
    /// DIRECT_KEY flag (optimizes for Adiantum).
    #[arg(long)]
    direct_key: bool,
    /// IV_INO_LBLK_64 flag (for UFS inline crypto hardware).
    #[arg(long)]
    iv_ino_lblk_64: bool,
    /// IV_INO_LBLK_32 flag (for eMMC inline crypto hardware; not recommended).
    #[arg(long)]
    iv_ino_lblk_32: bool,
    /// Data unit size in bytes, a power of two (default: the filesystem block size; v2 only).
    #[arg(long, value_name = "BYTES")]
    data_unit_size: Option<String>,
    /// Make a v1 policy (implied by a 16-hex-digit ID).
    #[arg(long)]
    v1: bool,
    /// The key: 32 hex digits (v2 identifier) or 16 hex digits (v1 descriptor).
    #[arg(value_name = "ID")]
    id: String,
    /// The (empty) directory.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

/// Options of `fscryptfs get-policy`.
#[derive(Args, Debug)]
pub struct GetPolicyArgs {
    /// The file or directory.
    #[arg(value_name = "PATH")]
    path: PathBuf,
}

/// Options of `fscryptfs get-nonce`.
#[derive(Args, Debug)]
pub struct GetNonceArgs {
    /// The file or directory.
    #[arg(value_name = "PATH")]
    path: PathBuf,
}

/// Runs one of the key and policy subcommands.
pub fn run(cmd: KeyCommand) -> Result<(), CliError> {
    match cmd {
        KeyCommand::AddKey(a) => add_key(a),
        KeyCommand::RemoveKey(a) => remove_key(a),
        KeyCommand::KeyStatus(a) => key_status(a),
        KeyCommand::SetPolicy(a) => set_policy(a),
        KeyCommand::GetPolicy(a) => get_policy(a),
        KeyCommand::GetNonce(a) => get_nonce(a),
    }
}

// ---------------------------------------------------------------------------------------------
// Arguments

/// A key as the user names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeySpec {
    /// A v1 key: 8-byte descriptor.
    Descriptor([u8; 8]),
    /// A v2 key: 16-byte identifier.
    Identifier([u8; 16]),
}

impl KeySpec {
    fn parse(s: &str) -> Result<Self, CliError> {
        let bad = || {
            CliError::usage(format!(
                "invalid key identifier: {s} (expected 32 hex digits, or 16 for a v1 descriptor)"
            ))
        };
        let bytes = hex::decode(s).map_err(|_| bad())?;
        if let Ok(id) = <[u8; 16]>::try_from(bytes.as_slice()) {
            Ok(KeySpec::Identifier(id))
        } else if let Ok(d) = <[u8; 8]>::try_from(bytes.as_slice()) {
            Ok(KeySpec::Descriptor(d))
        } else {
            Err(bad())
        }
    }

    /// The 40-byte `struct fscrypt_key_specifier`.
    fn to_bytes(self) -> [u8; abi::KEY_SPECIFIER_SIZE] {
        let mut b = [0u8; abi::KEY_SPECIFIER_SIZE];
        match self {
            KeySpec::Descriptor(d) => {
                b[0..4].copy_from_slice(&abi::KEY_SPEC_TYPE_DESCRIPTOR.to_ne_bytes());
                b[8..16].copy_from_slice(&d);
            }
            KeySpec::Identifier(id) => {
                b[0..4].copy_from_slice(&abi::KEY_SPEC_TYPE_IDENTIFIER.to_ne_bytes());
                b[8..24].copy_from_slice(&id);
            }
        }
        b
    }

    /// `identifier HEX` or `descriptor HEX`, as xfs_io words it.
    fn describe(self) -> String {
        match self {
            KeySpec::Descriptor(d) => format!("descriptor {}", hex::encode(d)),
            KeySpec::Identifier(id) => format!("identifier {}", hex::encode(id)),
        }
    }
}

/// strerror's words for an OS error, without Rust's " (os error N)" suffix.
fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match (e.raw_os_error(), s.rfind(" (os error ")) {
        (Some(_), Some(i)) => s[..i].to_string(),
        _ => s,
    }
}

fn failed(what: impl std::fmt::Display, e: &io::Error) -> CliError {
    CliError::failure(format!("{what}: {}", strerror(e)))
}

fn is_enotty(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOTTY)
}

/// Opens `path` for ioctls as fscryptctl does: read-only, non-blocking (a FIFO or device cannot
/// hang us), close-on-exec (std adds it); `O_DIRECTORY` when only a directory will do.
fn open_target(path: &Path, directory: bool) -> Result<File, CliError> {
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

// ---------------------------------------------------------------------------------------------
// ioctl wrappers: each passes a buffer covering everything the target reads or writes.

/// `ioctl(fd, cmd, arg)`.
///
/// # Safety
/// `arg` must be valid for reads and writes of every byte the target reads or writes for `cmd`.
unsafe fn ioctl_raw(fd: BorrowedFd<'_>, cmd: u32, arg: *mut u8) -> io::Result<()> {
    // SAFETY: `fd` is open for the duration of the call; the caller vouches for `arg`.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), cmd as _, arg) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The native-endian u32 at `off` of an ioctl argument (0 past its end: the buffers are ours and
/// always long enough).
fn ne_u32(buf: &[u8], off: usize) -> u32 {
    buf.get(off..off + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_ne_bytes)
}

/// The native-endian u64 at `off` of an ioctl argument.
fn ne_u64(buf: &[u8], off: usize) -> u64 {
    buf.get(off..off + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_ne_bytes)
}

/// `struct fscrypt_add_key_arg` followed by room for a 64-byte raw key (plus one byte to detect a
/// longer one on stdin).
const ADD_KEY_BUF: usize = abi::ADD_KEY_HEADER_SIZE + 64 + 1;

/// ADD_KEY: fscryptfs' number, else (ENOTTY) the kernel's. `arg` is [`ADD_KEY_BUF`] bytes with
/// `raw_size` already set and the raw key at offset 80.
fn ioctl_add_key(fd: BorrowedFd<'_>, arg: &mut [u8]) -> io::Result<()> {
    assert_eq!(arg.len(), ADD_KEY_BUF);
    let raw_size = ne_u32(arg, 40) as usize;
    assert!(raw_size <= 64);
    // SAFETY: FSCRYPTFS_IOC_ADD_KEY encodes 144 bytes (header + 64), within the 145-byte buffer.
    match unsafe { ioctl_raw(fd, abi::FSCRYPTFS_IOC_ADD_KEY, arg.as_mut_ptr()) } {
        Err(e) if is_enotty(&e) => {
            // SAFETY: the kernel reads the 80-byte header and `raw_size` <= 64 bytes after it, and
            // writes back only into the header's key specifier; the buffer holds 145 bytes.
            unsafe { ioctl_raw(fd, abi::FS_IOC_ADD_ENCRYPTION_KEY, arg.as_mut_ptr()) }
        }
        r => r,
    }
}

/// SET_POLICY: fscryptfs' number, else (ENOTTY) the kernel's. `policy` is the 12- or 24-byte
/// policy zero-padded to 24 bytes.
fn ioctl_set_policy(fd: BorrowedFd<'_>, policy: &mut [u8; 24]) -> io::Result<()> {
    // SAFETY: FSCRYPTFS_IOC_SET_POLICY encodes 24 bytes (write-only), the buffer's size.
    match unsafe { ioctl_raw(fd, abi::FSCRYPTFS_IOC_SET_POLICY, policy.as_mut_ptr()) } {
        Err(e) if is_enotty(&e) => {
            // SAFETY: the kernel reads the version byte, then at most sizeof(fscrypt_policy_v2) =
            // 24 bytes, and writes nothing.
            unsafe { ioctl_raw(fd, abi::FS_IOC_SET_ENCRYPTION_POLICY, policy.as_mut_ptr()) }
        }
        r => r,
    }
}

/// GET_POLICY_EX: fscryptfs' number, else (ENOTTY) the kernel's. Returns the policy bytes.
fn ioctl_get_policy(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let mut arg = [0u8; abi::GET_POLICY_EX_ARG_SIZE];
    let room = (abi::GET_POLICY_EX_ARG_SIZE - 8) as u64;
    arg[..8].copy_from_slice(&room.to_ne_bytes());
    // SAFETY: FSCRYPTFS_IOC_GET_POLICY encodes 32 bytes, the buffer's size.
    let r = unsafe { ioctl_raw(fd, abi::FSCRYPTFS_IOC_GET_POLICY, arg.as_mut_ptr()) };
    match r {
        Err(e) if is_enotty(&e) => {
            arg = [0u8; abi::GET_POLICY_EX_ARG_SIZE];
            arg[..8].copy_from_slice(&room.to_ne_bytes());
            // SAFETY: the kernel reads and writes at most 8 + policy_size = 32 bytes.
            unsafe { ioctl_raw(fd, abi::FS_IOC_GET_ENCRYPTION_POLICY_EX, arg.as_mut_ptr())? }
        }
        r => r?,
    }
    let size = (ne_u64(&arg, 0) as usize).min(room as usize);
    Ok(arg[8..8 + size].to_vec())
}

/// REMOVE_KEY or REMOVE_KEY_ALL_USERS (kernel numbers). Returns the removal status flags.
fn ioctl_remove_key(fd: BorrowedFd<'_>, spec: KeySpec, all_users: bool) -> io::Result<u32> {
    let mut arg = [0u8; abi::REMOVE_KEY_ARG_SIZE];
    arg[..abi::KEY_SPECIFIER_SIZE].copy_from_slice(&spec.to_bytes());
    let cmd = if all_users {
        abi::FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS
    } else {
        abi::FS_IOC_REMOVE_ENCRYPTION_KEY
    };
    // SAFETY: the buffer is the 64-byte `fscrypt_remove_key_arg`, the size `cmd` encodes.
    unsafe { ioctl_raw(fd, cmd, arg.as_mut_ptr())? };
    Ok(ne_u32(&arg, 40))
}

/// GET_KEY_STATUS (kernel number): (status, status_flags, user_count).
fn ioctl_key_status(fd: BorrowedFd<'_>, spec: KeySpec) -> io::Result<(u32, u32, u32)> {
    let mut arg = [0u8; abi::KEY_STATUS_ARG_SIZE];
    arg[..abi::KEY_SPECIFIER_SIZE].copy_from_slice(&spec.to_bytes());
    // SAFETY: the buffer is the 128-byte `fscrypt_get_key_status_arg`, the size encoded.
    unsafe { ioctl_raw(fd, abi::FS_IOC_GET_ENCRYPTION_KEY_STATUS, arg.as_mut_ptr())? };
    let word = |off: usize| ne_u32(&arg, off);
    Ok((word(64), word(68), word(72)))
}

/// GET_NONCE (kernel number).
fn ioctl_get_nonce(fd: BorrowedFd<'_>) -> io::Result<[u8; 16]> {
    let mut nonce = [0u8; 16];
    // SAFETY: the target writes exactly the 16 bytes the number encodes.
    unsafe { ioctl_raw(fd, abi::FS_IOC_GET_ENCRYPTION_NONCE, nonce.as_mut_ptr())? };
    Ok(nonce)
}

/// The BUSY_FILES text (layout in `abi::FSCRYPTFS_IOC_BUSY_FILES`) as `remove-key` prints it: the
/// files shown as they come (`ino path [pids]`), a `+N` of other users' processes spelled out, then
/// what the daemon kept back as counts ("and 3 more in use by other users").
fn busy_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(counts) = line.strip_prefix("hidden ") {
            let mut n = counts.split(' ').map(|c| c.parse::<u64>().unwrap_or(0));
            let (hidden, cut) = (n.next().unwrap_or(0), n.next().unwrap_or(0));
            if cut > 0 {
                out.push(format!("and {cut} more not listed"));
            }
            if hidden > 0 {
                out.push(format!("and {hidden} more in use by other users"));
            }
            continue;
        }
        // `... [pids] +N`: N processes of other users hold this file too.
        let others = line
            .rsplit_once("] +")
            .and_then(|(head, n)| Some((head, n.parse::<u64>().ok()?)));
        match others {
            Some((head, n)) => {
                let what = if n == 1 { "process" } else { "processes" };
                out.push(format!("{head}] and {n} {what} of other users"));
            }
            None => out.push(line.to_string()),
        }
    }
    out
}

/// FSCRYPTFS_IOC_BUSY_FILES: the files keeping a key busy that the caller may see, one
/// `ino path [pids]` per line, then the `hidden` counts.
fn ioctl_busy_files(fd: BorrowedFd<'_>, spec: KeySpec) -> io::Result<String> {
    let mut buf = vec![0u8; abi::ioc_size(abi::FSCRYPTFS_IOC_BUSY_FILES)];
    buf[..abi::KEY_SPECIFIER_SIZE].copy_from_slice(&spec.to_bytes());
    // SAFETY: the buffer has the 4096 bytes the number encodes.
    unsafe { ioctl_raw(fd, abi::FSCRYPTFS_IOC_BUSY_FILES, buf.as_mut_ptr())? };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// True if the filesystem holding `fd` is mounted read-only (`fstatvfs`'s ST_RDONLY).
fn is_read_only(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `st` is a writable `struct statvfs`, all fstatvfs writes; `fd` is open.
    let rc = unsafe { libc::fstatvfs(fd.as_raw_fd(), st.as_mut_ptr()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatvfs succeeded, so it filled the struct (which was zeroed anyway).
    let st = unsafe { st.assume_init() };
    Ok(st.f_flag & libc::ST_RDONLY != 0)
}

// ---------------------------------------------------------------------------------------------
// Commands

/// Reads the raw key from stdin straight into `arg[80..]` (unbuffered, so no copy is left in a
/// stdio buffer); returns its length, checked to be 16..=64.
fn read_key_into(arg: &mut [u8]) -> Result<usize, CliError> {
    let dup = io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| failed("error reading from stdin", &e))?;
    let mut stdin = File::from(dup);
    let room = &mut arg[abi::ADD_KEY_HEADER_SIZE..];
    let mut pos = 0;
    while pos < room.len() {
        match stdin.read(&mut room[pos..]) {
            Ok(0) => break,
            Ok(n) => pos += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(failed("error reading from stdin", &e)),
        }
    }
    if pos < 16 {
        return Err(CliError::usage(
            "key was too short; it must be at least 16 bytes",
        ));
    }
    if pos > 64 {
        return Err(CliError::usage(
            "key was too long; it can be at most 64 bytes",
        ));
    }
    Ok(pos)
}

fn add_key(args: AddKeyArgs) -> Result<(), CliError> {
    let spec = match &args.descriptor {
        None => KeySpec::Identifier([0; 16]),
        Some(d) => match KeySpec::parse(d)? {
            spec @ KeySpec::Descriptor(_) => spec,
            KeySpec::Identifier(_) => {
                return Err(CliError::usage(format!(
                    "invalid key descriptor: {d} (expected 16 hex digits)"
                )))
            }
        },
    };
    // The whole argument lives in locked memory that is zeroed on drop.
    let mut arg = SecretBytes::zeroed(ADD_KEY_BUF);
    let raw_size = read_key_into(arg.as_mut())?;
    let buf = arg.as_mut();
    buf[..abi::KEY_SPECIFIER_SIZE].copy_from_slice(&spec.to_bytes());
    buf[40..44].copy_from_slice(&(raw_size as u32).to_ne_bytes());
    let target = open_target(&args.mnt, false)?;
    ioctl_add_key(target.as_fd(), buf).map_err(|e| {
        failed(
            format_args!("error adding key to {}", args.mnt.display()),
            &e,
        )
    })?;
    match spec {
        KeySpec::Identifier(_) => println!("{}", hex::encode(&buf[8..24])),
        KeySpec::Descriptor(_) => println!("Added encryption key with {}", spec.describe()),
    }
    Ok(())
}

fn remove_key(args: RemoveKeyArgs) -> Result<(), CliError> {
    let spec = KeySpec::parse(&args.id)?;
    let target = open_target(&args.mnt, false)?;
    let flags = ioctl_remove_key(target.as_fd(), spec, args.all_users)
        .map_err(|e| failed("error removing key", &e))?;
    const FILES_BUSY: u32 = 0x1;
    const OTHER_USERS: u32 = 0x2;
    if flags & OTHER_USERS != 0 {
        println!(
            "Removed user's claim to encryption key with {}",
            spec.describe()
        );
    } else if flags & FILES_BUSY != 0 {
        println!(
            "Removed encryption key with {}, but files still busy",
            spec.describe()
        );
        // Only fscryptfs can say which files; elsewhere (ENOTTY) there is nothing more to say.
        if let Ok(list) = ioctl_busy_files(target.as_fd(), spec) {
            for line in busy_lines(&list) {
                println!("  {line}");
            }
        }
    } else {
        println!("Removed encryption key with {}", spec.describe());
    }
    Ok(())
}

fn key_status(args: KeyStatusArgs) -> Result<(), CliError> {
    let spec = KeySpec::parse(&args.id)?;
    let target = open_target(&args.mnt, false)?;
    let (status, mut flags, user_count) = ioctl_key_status(target.as_fd(), spec)
        .map_err(|e| failed("error getting key status", &e))?;
    const ADDED_BY_SELF: u32 = 0x1;
    match status {
        1 => println!("Absent"),
        2 => {
            let mut line = String::from("Present");
            if user_count != 0 || flags != 0 {
                line.push_str(&format!(" (user_count={user_count}"));
                if flags & ADDED_BY_SELF != 0 {
                    line.push_str(", added_by_self");
                }
                flags &= !ADDED_BY_SELF;
                if flags != 0 {
                    line.push_str(&format!(", unknown_flags=0x{flags:08x}"));
                }
                line.push(')');
            }
            println!("{line}");
        }
        3 => println!("Incompletely removed"),
        other => println!("Unknown status ({other})"),
    }
    Ok(())
}

/// The policy flags byte from the options.
fn policy_flags(args: &SetPolicyArgs) -> u8 {
    use fscrypt::policy::flags;
    let mut f = match args.padding.as_str() {
        "4" => flags::PAD_4,
        "8" => flags::PAD_8,
        "16" => flags::PAD_16,
        _ => flags::PAD_32,
    };
    if args.direct_key {
        f |= flags::DIRECT_KEY;
    }
    if args.iv_ino_lblk_64 {
        f |= flags::IV_INO_LBLK_64;
    }
    if args.iv_ino_lblk_32 {
        f |= flags::IV_INO_LBLK_32;
    }
    f
}

fn parse_mode(what: &str, s: &str) -> Result<u8, CliError> {
    EncryptionMode::parse(s)
        .map(EncryptionMode::number)
        .map_err(|_| CliError::usage(format!("invalid {what} mode: {s}")))
}

/// `--data-unit-size`: a power of two greater than 1, as fscryptctl accepts; returns its log2.
fn parse_data_unit_size(s: &str) -> Result<u8, CliError> {
    match s.parse::<u64>() {
        Ok(n) if n > 1 && n.is_power_of_two() => Ok(n.trailing_zeros() as u8),
        _ => Err(CliError::usage(format!("invalid data unit size: {s}"))),
    }
}

/// The policy bytes the options describe, zero-padded to 24.
fn build_policy(args: &SetPolicyArgs) -> Result<[u8; 24], CliError> {
    let spec = KeySpec::parse(&args.id)?;
    let contents = parse_mode("contents", &args.contents)?;
    let filenames = parse_mode("filenames", &args.filenames)?;
    let log2_du = args
        .data_unit_size
        .as_deref()
        .map(parse_data_unit_size)
        .transpose()?;
    let flags = policy_flags(args);
    let mut p = [0u8; 24];
    p[1] = contents;
    p[2] = filenames;
    p[3] = flags;
    match spec {
        KeySpec::Descriptor(d) => {
            if log2_du.is_some() {
                return Err(CliError::usage(
                    "--data-unit-size needs a v2 policy (a 32-hex-digit key identifier)",
                ));
            }
            p[0] = fscrypt::policy::POLICY_V1_VERSION;
            p[4..12].copy_from_slice(&d);
        }
        KeySpec::Identifier(_) if args.v1 => {
            return Err(CliError::usage(format!(
                "invalid key descriptor: {} (a v1 policy needs 16 hex digits)",
                args.id
            )));
        }
        KeySpec::Identifier(id) => {
            p[0] = fscrypt::policy::POLICY_V2_VERSION;
            p[4] = log2_du.unwrap_or(0);
            p[8..24].copy_from_slice(&id);
        }
    }
    Ok(p)
}

fn set_policy(args: SetPolicyArgs) -> Result<(), CliError> {
    let mut policy = build_policy(&args)?;
    let dir = open_target(&args.dir, true)?;
    let what = format!("failed to set encryption policy on {}", args.dir.display());
    if is_read_only(dir.as_fd()).map_err(|e| failed(&what, &e))? {
        return Err(failed(&what, &io::Error::from_raw_os_error(libc::EROFS)));
    }
    ioctl_set_policy(dir.as_fd(), &mut policy).map_err(|e| failed(&what, &e))
}

fn mode_name(n: u8) -> String {
    match EncryptionMode::from_number(n) {
        Some(m) => m.friendly_name().to_string(),
        None => format!("Unknown ({n})"),
    }
}

fn flags_text(flags: u8) -> String {
    use fscrypt::policy::flags as f;
    let mut s = format!("PAD_{}", 4u32 << (flags & f::PAD_MASK));
    let mut rest = flags & !f::PAD_MASK;
    for (bit, name) in [
        (f::DIRECT_KEY, "DIRECT_KEY"),
        (f::IV_INO_LBLK_64, "IV_INO_LBLK_64"),
        (f::IV_INO_LBLK_32, "IV_INO_LBLK_32"),
    ] {
        if rest & bit != 0 {
            s.push_str(", ");
            s.push_str(name);
            rest &= !bit;
        }
    }
    if rest != 0 {
        s.push_str(&format!(", Unknown ({rest:02x})"));
    }
    s
}

/// fscryptctl's rendering of a policy (without the header line).
fn policy_text(p: &[u8]) -> String {
    let mut out = String::new();
    let Some(&version) = p.first() else {
        return out;
    };
    let shown = if version == fscrypt::policy::POLICY_V1_VERSION {
        1
    } else {
        version
    };
    out.push_str(&format!("\tPolicy version: {shown}\n"));
    let body = |key_line: String, out: &mut String| {
        out.push_str(&key_line);
        out.push_str(&format!(
            "\tContents encryption mode: {}\n",
            mode_name(p[1])
        ));
        out.push_str(&format!(
            "\tFilenames encryption mode: {}\n",
            mode_name(p[2])
        ));
        out.push_str(&format!("\tFlags: {}\n", flags_text(p[3])));
    };
    match (version, p.len()) {
        (fscrypt::policy::POLICY_V1_VERSION, 12) => body(
            format!("\tMaster key descriptor: {}\n", hex::encode(&p[4..12])),
            &mut out,
        ),
        (fscrypt::policy::POLICY_V2_VERSION, 24) => {
            body(
                format!("\tMaster key identifier: {}\n", hex::encode(&p[8..24])),
                &mut out,
            );
            if p[4] != 0 {
                out.push_str(&format!("\tData unit size: {}\n", 1u64 << p[4].min(63)));
            } else {
                out.push_str("\tData unit size: default\n");
            }
        }
        _ => {}
    }
    out
}

fn get_policy(args: GetPolicyArgs) -> Result<(), CliError> {
    let file = open_target(&args.path, false)?;
    let policy = ioctl_get_policy(file.as_fd()).map_err(|e| {
        failed(
            format_args!("error getting policy for {}", args.path.display()),
            &e,
        )
    })?;
    print!(
        "Encryption policy for {}:\n{}",
        args.path.display(),
        policy_text(&policy)
    );
    Ok(())
}

fn get_nonce(args: GetNonceArgs) -> Result<(), CliError> {
    let file = open_target(&args.path, false)?;
    let nonce = ioctl_get_nonce(file.as_fd()).map_err(|e| {
        failed(
            format_args!("error getting nonce for {}", args.path.display()),
            &e,
        )
    })?;
    println!("{}", hex::encode(nonce));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_specs_parse() {
        assert_eq!(
            KeySpec::parse("00112233445566778899aabbccddeeff").unwrap(),
            KeySpec::Identifier(hex_literal16())
        );
        assert_eq!(
            KeySpec::parse("0011223344556677").unwrap(),
            KeySpec::Descriptor([0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77])
        );
        for bad in [
            "",
            "00",
            "zz11223344556677",
            "00112233445566778899aabbccddeeff00",
        ] {
            assert_eq!(KeySpec::parse(bad).unwrap_err().exit_code, 2, "{bad}");
        }
    }

    fn hex_literal16() -> [u8; 16] {
        hex::decode("00112233445566778899aabbccddeeff")
            .unwrap()
            .try_into()
            .unwrap()
    }

    #[test]
    fn busy_lines_spell_out_the_counts() {
        let text = "12 /a/b [100,200]\n13 /a/c [] +2\n14 /a/d [7] +1\nhidden 3 1\n";
        assert_eq!(
            busy_lines(text),
            [
                "12 /a/b [100,200]",
                "13 /a/c [] and 2 processes of other users",
                "14 /a/d [7] and 1 process of other users",
                "and 1 more not listed",
                "and 3 more in use by other users",
            ]
        );
        assert!(busy_lines("hidden 0 0\n").is_empty());
        assert_eq!(
            busy_lines("hidden 2 0\n"),
            ["and 2 more in use by other users"]
        );
    }

    #[test]
    fn strerror_drops_the_os_error_suffix() {
        let e = io::Error::from_raw_os_error(libc::ENOKEY);
        assert_eq!(strerror(&e), "Required key not available");
    }

    #[test]
    fn policies_render_as_fscryptctl() {
        let mut v2 = [0u8; 24];
        v2[0] = 2;
        v2[1] = 1;
        v2[2] = 4;
        v2[3] = 0x0b;
        v2[4] = 12;
        v2[8..24].copy_from_slice(&hex_literal16());
        assert_eq!(
            policy_text(&v2),
            "\tPolicy version: 2\n\
             \tMaster key identifier: 00112233445566778899aabbccddeeff\n\
             \tContents encryption mode: AES-256-XTS\n\
             \tFilenames encryption mode: AES-256-CTS\n\
             \tFlags: PAD_32, IV_INO_LBLK_64\n\
             \tData unit size: 4096\n"
        );
        let v1 = [0u8, 9, 9, 0x24, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(
            policy_text(&v1),
            "\tPolicy version: 1\n\
             \tMaster key descriptor: 0102030405060708\n\
             \tContents encryption mode: Adiantum\n\
             \tFilenames encryption mode: Adiantum\n\
             \tFlags: PAD_4, DIRECT_KEY, Unknown (20)\n"
        );
    }
}
