//! fscrypt in userspace: the equivalent of Linux's `fs/crypto/`, minus the VFS.
//!
//! This crate knows nothing of FUSE and keeps no global state. It parses and validates policies and
//! contexts exactly as the kernel does, derives every key of the fscrypt hierarchy, and encrypts and
//! decrypts file contents, file names and symlink targets to the kernel's bytes. The filesystem calls
//! it; it never calls the filesystem.
//!
//! Modules, one concern each (the kernel file they mirror in brackets):
//! - [`mode`]: the encryption-mode table and the IV buffer;
//! - [`policy`]: policies v1/v2 and their validation (`policy.c`);
//! - [`context`]: per-inode contexts and nonces (`fscrypt_private.h`, `policy.c`);
//! - [`hkdf`]: HKDF-SHA512 (`hkdf.c`);
//! - [`keysetup`], [`keysetup_v1`]: master secrets to inode keys and IVs (`keysetup*.c`);
//! - [`cipher`]: the block-cipher modes (the kernel crypto API's `xts`, `cts`, `essiv`, `hctr2`,
//!   `adiantum`);
//! - [`contents`]: data units and their encryption loop (`crypto.c`);
//! - [`fname`], [`nokey`], [`symlink`]: names, no-key names, symlink targets (`fname.c`, `hooks.c`);
//! - [`extent`]: per-extent contexts and keys (the btrfs series);
//! - [`keyring`]: master keys, per-user claims, active references, soft removal (`keyring.c`);
//! - [`secret`]: locked, zeroized memory for every secret;
//! - [`uapi`]: the ioctl numbers and argument layouts, byte order explicit
//!   (`include/uapi/linux/fscrypt.h`), shared by the filesystem's handlers and the command line.

#![forbid(unsafe_op_in_unsafe_fn)]

pub mod cipher;
pub mod contents;
pub mod context;
pub mod error;
pub mod extent;
pub mod fname;
pub mod hkdf;
pub mod keyring;
pub mod keysetup;
pub mod keysetup_v1;
pub mod mode;
pub mod nokey;
pub mod policy;
pub mod secret;
pub mod symlink;
pub mod uapi;

pub use error::{Errno, Error, Result};
pub use mode::{EncryptionMode, Iv};
