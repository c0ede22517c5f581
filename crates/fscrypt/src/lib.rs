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
//! - [`hooks`]: the rules a filesystem applies around its operations — a directory's key state,
//!   permitted contexts for link and rename, names looked up and shown with and without the key,
//!   the policy a new inode inherits, set-policy's checks (`hooks.c`, `policy.c`:
//!   `fscrypt_require_key`, `fscrypt_has_permitted_context`, `__fscrypt_prepare_link`,
//!   `__fscrypt_prepare_rename`, `fscrypt_setup_filename`, `fscrypt_fname_disk_to_usr`,
//!   `fscrypt_policy_to_inherit`, `fscrypt_prepare_new_inode`, `fscrypt_ioctl_set_policy`);
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
pub mod hooks;
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
