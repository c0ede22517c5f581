//! The ioctl interface: numbers and argument layouts, as the kernel's
//! `include/uapi/linux/fscrypt.h` defines them, plus fscryptfs' own ioctls that carry the same
//! structs through FUSE.
//!
//! Every argument is a typed struct with `encode` (to the bytes the ioctl passes) and `decode`
//! (from them). Integers are little-endian, as the kernel's ABI on our targets (x86-64, arm64):
//! always `to_le_bytes` / `from_le_bytes`, never native order. `decode` checks the length and fails
//! with EINVAL on a short buffer, as the daemon always has; nothing here panics on input. Reserved
//! fields are kept as read, so an answer is the caller's argument with the output fields filled in,
//! as the kernel copies back its copy of it; the kernel's checks of them (`valid_key_spec`, the
//! `__reserved` arrays) are methods the ioctl handler calls in the kernel's order.
//!
//! Why fscryptfs has numbers of its own: FUSE passes only *restricted* ioctls, for which the kernel
//! copies exactly `_IOC_SIZE(cmd)` bytes in (`_IOC_WRITE`) and out (`_IOC_READ`). The kernel's
//! REMOVE_KEY, REMOVE_KEY_ALL_USERS, GET_KEY_STATUS and GET_NONCE fit, so fscryptfs answers them as
//! the kernel does and `fscryptctl` works unmodified. SET_POLICY (encoded with the v1 size),
//! GET_POLICY_EX (encoded with 9 bytes) and ADD_KEY (the raw key follows the 80-byte header) do
//! not; for them fscryptfs has `FSCRYPTFS_IOC_*` numbers whose encoded sizes hold the whole
//! payload. Layouts inside the payloads are the kernel's structs.
//! (The kernel's Documentation/filesystems/fscrypt.rst, "User API"; docs/SEMANTICS.md §4 for
//! BUSY_FILES.)

use crate::error::{Errno, Error, Result};
use crate::policy::{
    policy_size, KeySpec, KEY_DESCRIPTOR_SIZE, KEY_IDENTIFIER_SIZE, POLICY_V2_SIZE,
};

pub use crate::keyring::uapi::{
    KEY_REMOVAL_STATUS_FLAG_FILES_BUSY, KEY_REMOVAL_STATUS_FLAG_OTHER_USERS, KEY_STATUS_ABSENT,
    KEY_STATUS_FLAG_ADDED_BY_SELF, KEY_STATUS_INCOMPLETELY_REMOVED, KEY_STATUS_PRESENT,
};

// ---------------------------------------------------------------------------------------------
// Numbers

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

/// `FS_IOC_GETFLAGS` (`_IOR('f', 1, long)`; answered with a 4-byte flags word).
pub const FS_IOC_GETFLAGS: u32 = 0x8008_6601;
/// `FS_ENCRYPT_FL`: the inode is encrypted.
pub const FS_ENCRYPT_FL: u32 = 0x800;

/// `FS_IOC_SET_ENCRYPTION_POLICY` (encoded `_IOR`, 12 bytes: the v1 size).
pub const FS_IOC_SET_ENCRYPTION_POLICY: u32 = 0x800c_6613;
/// `FS_IOC_GET_ENCRYPTION_POLICY` (v1 only).
pub const FS_IOC_GET_ENCRYPTION_POLICY: u32 = 0x400c_6615;
/// `FS_IOC_GET_ENCRYPTION_PWSALT` (encoded `_IOW`, 16 bytes; really written: the volume's
/// passphrase salt, made on first use).
pub const FS_IOC_GET_ENCRYPTION_PWSALT: u32 = 0x4010_6614;
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

/// Magic of fscryptfs' own ioctls ('f', as the kernel's; numbers from 0xe0 do not collide).
pub const FSCRYPTFS_IOC_MAGIC: u8 = b'f';
/// Add a key: [`AddKeyArg`] (80 bytes) followed by the raw key, padded to 64 bytes.
/// The identifier is written back into the key specifier, as the kernel does.
pub const FSCRYPTFS_IOC_ADD_KEY: u32 = ioc(
    IOC_READ | IOC_WRITE,
    FSCRYPTFS_IOC_MAGIC,
    0xe0,
    FSCRYPTFS_ADD_KEY_ARG_SIZE,
);
/// Set a policy: the 12- or 24-byte policy, zero-padded to 24 bytes (the version byte says which).
pub const FSCRYPTFS_IOC_SET_POLICY: u32 = ioc(
    IOC_WRITE,
    FSCRYPTFS_IOC_MAGIC,
    0xe1,
    FSCRYPTFS_SET_POLICY_ARG_SIZE,
);
/// Get a policy: [`GetPolicyExArg`] (8-byte size in, then size and policy out).
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
pub const FSCRYPTFS_IOC_BUSY_FILES: u32 = ioc(
    IOC_READ | IOC_WRITE,
    FSCRYPTFS_IOC_MAGIC,
    0xe3,
    BUSY_FILES_ARG_SIZE,
);

/// The most bytes any target reads or writes at the argument of `cmd`: the encoded size, except
/// for the kernel's ioctls whose arguments outgrow it (ADD_KEY: the header and at most
/// `FSCRYPT_MAX_KEY_SIZE` raw bytes, longer is EINVAL before any is read; SET_POLICY and
/// GET_POLICY_EX: at most a v2 policy).
pub const fn arg_extent(cmd: u32) -> usize {
    match cmd {
        FS_IOC_ADD_ENCRYPTION_KEY => ADD_KEY_HEADER_SIZE + MAX_RAW_KEY_SIZE,
        FS_IOC_SET_ENCRYPTION_POLICY => POLICY_V2_SIZE,
        FS_IOC_GET_ENCRYPTION_POLICY_EX => GET_POLICY_EX_ARG_SIZE,
        _ => ioc_size(cmd),
    }
}

// ---------------------------------------------------------------------------------------------
// Sizes

/// `struct fscrypt_key_specifier`: 40 bytes (type u32, reserved u32, 32-byte union).
pub const KEY_SPECIFIER_SIZE: usize = 40;
/// `FSCRYPT_KEY_SPEC_TYPE_DESCRIPTOR`.
pub const KEY_SPEC_TYPE_DESCRIPTOR: u32 = 1;
/// `FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER`.
pub const KEY_SPEC_TYPE_IDENTIFIER: u32 = 2;
/// `struct fscrypt_add_key_arg` without the raw key.
pub const ADD_KEY_HEADER_SIZE: usize = 80;
/// `FSCRYPT_MAX_KEY_SIZE`: the longest raw key.
pub const MAX_RAW_KEY_SIZE: usize = 64;
/// [`FSCRYPTFS_IOC_ADD_KEY`]'s argument: the header and room for the longest raw key.
pub const FSCRYPTFS_ADD_KEY_ARG_SIZE: usize = ADD_KEY_HEADER_SIZE + MAX_RAW_KEY_SIZE;
/// `struct fscrypt_remove_key_arg`.
pub const REMOVE_KEY_ARG_SIZE: usize = 64;
/// `struct fscrypt_get_key_status_arg`.
pub const KEY_STATUS_ARG_SIZE: usize = 128;
/// `struct fscrypt_get_policy_ex_arg` with room for a v2 policy.
pub const GET_POLICY_EX_ARG_SIZE: usize = 8 + POLICY_V2_SIZE;
/// [`FSCRYPTFS_IOC_SET_POLICY`]'s argument: a policy zero-padded to the v2 size.
pub const FSCRYPTFS_SET_POLICY_ARG_SIZE: usize = POLICY_V2_SIZE;
/// `FSCRYPT_FILE_NONCE_SIZE`: GET_NONCE's answer.
pub const NONCE_SIZE: usize = 16;
/// [`FSCRYPTFS_IOC_BUSY_FILES`]'s argument: the key specifier in, the text out.
pub const BUSY_FILES_ARG_SIZE: usize = 4096;

// ---------------------------------------------------------------------------------------------
// Byte access: explicit little-endian, bounds checked.

fn too_short(what: &str, need: usize, got: usize) -> Error {
    Error::new(
        Errno::INVAL,
        format!("{what}: ioctl argument too short ({got} bytes, need {need})"),
    )
}

/// `b[..n]`, or EINVAL naming `what`.
fn head<'a>(b: &'a [u8], n: usize, what: &str) -> Result<&'a [u8]> {
    b.get(..n).ok_or_else(|| too_short(what, n, b.len()))
}

/// The `N` bytes at `off` of a buffer already checked to be long enough.
fn array<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    let mut a = [0u8; N];
    if let Some(s) = b.get(off..off + N) {
        a.copy_from_slice(s);
    }
    a
}

fn le_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(array(b, off))
}

fn le_u64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(array(b, off))
}

fn put(b: &mut [u8], off: usize, v: &[u8]) {
    b[off..off + v.len()].copy_from_slice(v);
}

fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

// ---------------------------------------------------------------------------------------------
// struct fscrypt_key_specifier

/// `struct fscrypt_key_specifier` as passed: type, reserved word, and the 32-byte union (descriptor
/// or identifier at its start). [`KeySpecifier::key_spec`] is the kernel's `valid_key_spec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySpecifier {
    /// `type`: [`KEY_SPEC_TYPE_DESCRIPTOR`] or [`KEY_SPEC_TYPE_IDENTIFIER`].
    pub spec_type: u32,
    /// `__reserved`: must be 0.
    pub reserved: u32,
    /// `u`: the descriptor (8 bytes) or identifier (16 bytes), then unused bytes.
    pub u: [u8; 32],
}

impl From<KeySpec> for KeySpecifier {
    fn from(spec: KeySpec) -> Self {
        let mut u = [0u8; 32];
        let spec_type = match spec {
            KeySpec::Descriptor(d) => {
                put(&mut u, 0, &d);
                KEY_SPEC_TYPE_DESCRIPTOR
            }
            KeySpec::Identifier(id) => {
                put(&mut u, 0, &id);
                KEY_SPEC_TYPE_IDENTIFIER
            }
        };
        KeySpecifier {
            spec_type,
            reserved: 0,
            u,
        }
    }
}

impl KeySpecifier {
    /// The 40 bytes.
    pub fn encode(&self) -> [u8; KEY_SPECIFIER_SIZE] {
        let mut b = [0u8; KEY_SPECIFIER_SIZE];
        put(&mut b, 0, &self.spec_type.to_le_bytes());
        put(&mut b, 4, &self.reserved.to_le_bytes());
        put(&mut b, 8, &self.u);
        b
    }

    /// From the first 40 bytes of `b` (EINVAL when shorter).
    pub fn decode(b: &[u8]) -> Result<Self> {
        let b = head(b, KEY_SPECIFIER_SIZE, "key specifier")?;
        Ok(KeySpecifier {
            spec_type: le_u32(b, 0),
            reserved: le_u32(b, 4),
            u: array(b, 8),
        })
    }

    /// The key it names, with the kernel's `valid_key_spec` check (EINVAL: reserved word not
    /// zero, unknown type).
    pub fn key_spec(&self) -> Result<KeySpec> {
        if self.reserved != 0 {
            return Err(Error::invalid("key specifier: reserved field is nonzero"));
        }
        match self.spec_type {
            KEY_SPEC_TYPE_DESCRIPTOR => Ok(KeySpec::Descriptor(array::<KEY_DESCRIPTOR_SIZE>(
                &self.u, 0,
            ))),
            KEY_SPEC_TYPE_IDENTIFIER => Ok(KeySpec::Identifier(array::<KEY_IDENTIFIER_SIZE>(
                &self.u, 0,
            ))),
            t => Err(Error::invalid(format!("key specifier: unknown type {t}"))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// struct fscrypt_add_key_arg

/// `struct fscrypt_add_key_arg` without its trailing raw key, which never passes through this type
/// (the caller reads and writes it in locked memory: [`AddKeyArg::raw_key`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddKeyArg {
    /// `key_spec`: in, the descriptor (v1) or an identifier type with zeros; out (v2), the
    /// identifier.
    pub key_spec: KeySpecifier,
    /// `raw_size`: bytes of raw key after the header.
    pub raw_size: u32,
    /// `key_id`: a kernel keyring key holding the raw key instead (0: none).
    pub key_id: u32,
    /// `__reserved[8]`: must be 0.
    pub reserved: [u8; 32],
}

impl AddKeyArg {
    /// A request to add a `raw_size`-byte key under `spec`.
    pub fn new(spec: KeySpec, raw_size: u32) -> Self {
        AddKeyArg {
            key_spec: spec.into(),
            raw_size,
            key_id: 0,
            reserved: [0; 32],
        }
    }

    /// The 80-byte header.
    pub fn encode(&self) -> [u8; ADD_KEY_HEADER_SIZE] {
        let mut b = [0u8; ADD_KEY_HEADER_SIZE];
        put(&mut b, 0, &self.key_spec.encode());
        put(&mut b, 40, &self.raw_size.to_le_bytes());
        put(&mut b, 44, &self.key_id.to_le_bytes());
        put(&mut b, 48, &self.reserved);
        b
    }

    /// From the first 80 bytes of `b` (EINVAL when shorter).
    pub fn decode(b: &[u8]) -> Result<Self> {
        let b = head(b, ADD_KEY_HEADER_SIZE, "add key")?;
        Ok(AddKeyArg {
            key_spec: KeySpecifier::decode(b)?,
            raw_size: le_u32(b, 40),
            key_id: le_u32(b, 44),
            reserved: array(b, 48),
        })
    }

    /// True when `__reserved` is all zero, as the kernel requires.
    pub fn reserved_is_zero(&self) -> bool {
        all_zero(&self.reserved)
    }

    /// The raw key of the argument `b` (header, then the key): `raw_size` bytes after the header,
    /// EINVAL when `b` is shorter. A view into `b`, never a copy.
    pub fn raw_key<'a>(&self, b: &'a [u8]) -> Result<&'a [u8]> {
        let n = self.raw_size as usize;
        b.get(ADD_KEY_HEADER_SIZE..)
            .and_then(|raw| raw.get(..n))
            .ok_or_else(|| too_short("add key", ADD_KEY_HEADER_SIZE + n, b.len()))
    }

    /// fscryptfs' answer to [`FSCRYPTFS_IOC_ADD_KEY`]: the header, then the raw key's room as
    /// zeros (never a copy of the key).
    pub fn encode_reply(&self) -> Vec<u8> {
        let mut out = self.encode().to_vec();
        out.resize(FSCRYPTFS_ADD_KEY_ARG_SIZE, 0);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// struct fscrypt_remove_key_arg

/// `struct fscrypt_remove_key_arg` (64 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoveKeyArg {
    /// `key_spec`: in, the key.
    pub key_spec: KeySpecifier,
    /// `removal_status_flags`: out, `KEY_REMOVAL_STATUS_FLAG_*`.
    pub removal_status_flags: u32,
    /// `__reserved[5]`: must be 0.
    pub reserved: [u8; 20],
}

impl RemoveKeyArg {
    /// A request to remove `spec`.
    pub fn new(spec: KeySpec) -> Self {
        RemoveKeyArg {
            key_spec: spec.into(),
            removal_status_flags: 0,
            reserved: [0; 20],
        }
    }

    /// The 64 bytes.
    pub fn encode(&self) -> [u8; REMOVE_KEY_ARG_SIZE] {
        let mut b = [0u8; REMOVE_KEY_ARG_SIZE];
        put(&mut b, 0, &self.key_spec.encode());
        put(&mut b, 40, &self.removal_status_flags.to_le_bytes());
        put(&mut b, 44, &self.reserved);
        b
    }

    /// From the first 64 bytes of `b` (EINVAL when shorter).
    pub fn decode(b: &[u8]) -> Result<Self> {
        let b = head(b, REMOVE_KEY_ARG_SIZE, "remove key")?;
        Ok(RemoveKeyArg {
            key_spec: KeySpecifier::decode(b)?,
            removal_status_flags: le_u32(b, 40),
            reserved: array(b, 44),
        })
    }

    /// True when `__reserved` is all zero, as the kernel requires.
    pub fn reserved_is_zero(&self) -> bool {
        all_zero(&self.reserved)
    }
}

// ---------------------------------------------------------------------------------------------
// struct fscrypt_get_key_status_arg

/// `struct fscrypt_get_key_status_arg` (128 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetKeyStatusArg {
    /// `key_spec`: in, the key.
    pub key_spec: KeySpecifier,
    /// `__reserved[6]`: must be 0.
    pub reserved: [u8; 24],
    /// `status`: out, `KEY_STATUS_*`.
    pub status: u32,
    /// `status_flags`: out, `KEY_STATUS_FLAG_*`.
    pub status_flags: u32,
    /// `user_count`: out, users with a claim to a v2 key.
    pub user_count: u32,
    /// `__out_reserved[13]`: out, zeros.
    pub out_reserved: [u8; 52],
}

impl GetKeyStatusArg {
    /// A request for the status of `spec`.
    pub fn new(spec: KeySpec) -> Self {
        GetKeyStatusArg {
            key_spec: spec.into(),
            reserved: [0; 24],
            status: 0,
            status_flags: 0,
            user_count: 0,
            out_reserved: [0; 52],
        }
    }

    /// The 128 bytes.
    pub fn encode(&self) -> [u8; KEY_STATUS_ARG_SIZE] {
        let mut b = [0u8; KEY_STATUS_ARG_SIZE];
        put(&mut b, 0, &self.key_spec.encode());
        put(&mut b, 40, &self.reserved);
        put(&mut b, 64, &self.status.to_le_bytes());
        put(&mut b, 68, &self.status_flags.to_le_bytes());
        put(&mut b, 72, &self.user_count.to_le_bytes());
        put(&mut b, 76, &self.out_reserved);
        b
    }

    /// From the first 128 bytes of `b` (EINVAL when shorter).
    pub fn decode(b: &[u8]) -> Result<Self> {
        let b = head(b, KEY_STATUS_ARG_SIZE, "key status")?;
        Ok(GetKeyStatusArg {
            key_spec: KeySpecifier::decode(b)?,
            reserved: array(b, 40),
            status: le_u32(b, 64),
            status_flags: le_u32(b, 68),
            user_count: le_u32(b, 72),
            out_reserved: array(b, 76),
        })
    }

    /// True when the input's `__reserved` is all zero, as the kernel requires.
    pub fn reserved_is_zero(&self) -> bool {
        all_zero(&self.reserved)
    }

    /// The answer: this argument with the output fields set and `__out_reserved` zeroed.
    pub fn with_status(self, status: u32, status_flags: u32, user_count: u32) -> Self {
        GetKeyStatusArg {
            status,
            status_flags,
            user_count,
            out_reserved: [0; 52],
            ..self
        }
    }
}

// ---------------------------------------------------------------------------------------------
// struct fscrypt_get_policy_ex_arg, and the policy argument of SET_POLICY

/// `struct fscrypt_get_policy_ex_arg` with room for a v2 policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetPolicyExArg {
    /// `policy_size`: in, the room for the policy; out, its size.
    pub policy_size: u64,
    /// `policy`: out, the policy struct (12 or 24 bytes), zero-padded.
    pub policy: [u8; POLICY_V2_SIZE],
}

impl GetPolicyExArg {
    /// A request with room for any policy.
    pub fn request() -> Self {
        GetPolicyExArg {
            policy_size: POLICY_V2_SIZE as u64,
            policy: [0; POLICY_V2_SIZE],
        }
    }

    /// The answer carrying `policy` (its struct bytes; EINVAL above 24 bytes).
    pub fn with_policy(policy: &[u8]) -> Result<Self> {
        let mut p = [0u8; POLICY_V2_SIZE];
        p.get_mut(..policy.len())
            .ok_or_else(|| Error::invalid("policy larger than a v2 policy"))?
            .copy_from_slice(policy);
        Ok(GetPolicyExArg {
            policy_size: policy.len() as u64,
            policy: p,
        })
    }

    /// The 32 bytes: the size, then the policy zero-padded.
    pub fn encode(&self) -> [u8; GET_POLICY_EX_ARG_SIZE] {
        let mut b = [0u8; GET_POLICY_EX_ARG_SIZE];
        put(&mut b, 0, &self.policy_size.to_le_bytes());
        put(&mut b, 8, &self.policy);
        b
    }

    /// The answer's bytes: the size, then the policy as far as `policy_size` says (at most 24), as
    /// the kernel's `copy_to_user(uarg, &arg, sizeof(arg.policy_size) + arg.policy_size)` writes
    /// nothing beyond.
    pub fn encode_reply(&self) -> Vec<u8> {
        let mut b = self.policy_size.to_le_bytes().to_vec();
        b.extend_from_slice(self.policy());
        b
    }

    /// From `b`: the 8-byte size (EINVAL when shorter; all a request carries), then as many policy
    /// bytes as follow, up to 24.
    pub fn decode(b: &[u8]) -> Result<Self> {
        let size = head(b, 8, "get policy")?;
        let mut policy = [0u8; POLICY_V2_SIZE];
        let rest = b.get(8..).unwrap_or_default();
        let n = rest.len().min(POLICY_V2_SIZE);
        policy[..n].copy_from_slice(&rest[..n]);
        Ok(GetPolicyExArg {
            policy_size: le_u64(size, 0),
            policy,
        })
    }

    /// The policy bytes: `policy_size` of them, at most 24.
    pub fn policy(&self) -> &[u8] {
        let n = usize::try_from(self.policy_size).map_or(POLICY_V2_SIZE, |n| n.min(POLICY_V2_SIZE));
        &self.policy[..n]
    }
}

/// The policy struct at the head of a SET_POLICY argument: its version byte picks the size (EINVAL:
/// empty, unknown version, shorter than that size). Validation is `Policy::parse`'s.
pub fn decode_set_policy(b: &[u8]) -> Result<&[u8]> {
    let version = *b.first().ok_or_else(|| too_short("set policy", 1, 0))?;
    let size = policy_size(version)
        .ok_or_else(|| Error::invalid(format!("unknown policy version {version}")))?;
    head(b, size, "set policy")
}

/// [`FSCRYPTFS_IOC_SET_POLICY`]'s argument: `policy` (its struct bytes) zero-padded to 24 bytes
/// (EINVAL above).
pub fn encode_set_policy(policy: &[u8]) -> Result<[u8; FSCRYPTFS_SET_POLICY_ARG_SIZE]> {
    let mut b = [0u8; FSCRYPTFS_SET_POLICY_ARG_SIZE];
    b.get_mut(..policy.len())
        .ok_or_else(|| Error::invalid("policy larger than a v2 policy"))?
        .copy_from_slice(policy);
    Ok(b)
}

// ---------------------------------------------------------------------------------------------
// GET_NONCE, GETFLAGS, BUSY_FILES

/// GET_NONCE's answer from its 16 bytes (EINVAL when shorter).
pub fn decode_nonce(b: &[u8]) -> Result<[u8; NONCE_SIZE]> {
    Ok(array(head(b, NONCE_SIZE, "get nonce")?, 0))
}

/// `FS_IOC_GETFLAGS`' answer: the flags word (4 bytes; the upper half of the kernel's `long` is
/// always zero and left to the caller's buffer).
pub fn encode_getflags(flags: u32) -> Vec<u8> {
    flags.to_le_bytes().to_vec()
}

/// [`FSCRYPTFS_IOC_BUSY_FILES`]' request: the key specifier, then zeros to 4096 bytes.
pub fn encode_busy_files_request(spec: KeySpec) -> [u8; BUSY_FILES_ARG_SIZE] {
    let mut b = [0u8; BUSY_FILES_ARG_SIZE];
    put(&mut b, 0, &KeySpecifier::from(spec).encode());
    b
}

/// [`FSCRYPTFS_IOC_BUSY_FILES`]' answer as text: the bytes before the first NUL (all of them
/// without one), invalid UTF-8 replaced.
pub fn decode_busy_files_reply(b: &[u8]) -> String {
    let end = b.iter().position(|&x| x == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// [`FSCRYPTFS_IOC_BUSY_FILES`]' answer from its text: the text and a NUL.
pub fn encode_busy_files_reply(text: &str) -> Vec<u8> {
    let mut b = text.as_bytes().to_vec();
    b.push(0);
    b
}

#[cfg(test)]
mod tests;
