//! Protectors and policies in the `fscrypt` tool's own format: the user-facing key management that
//! sits above the kernel's (and our) keyring.
//!
//! A *protector* turns a secret the user has (a passphrase, hashed with Argon2id, or a 32-byte key
//! file) into a 32-byte protector key; a *policy* holds a random 64-byte master key wrapped once per
//! protector. Both are protobuf records under `MNT/.fscrypt/`, byte for byte as Google's `fscrypt`
//! tool writes them, so either tool opens what the other made (docs/FORMAT.md, "The fscrypt tool's
//! metadata"). This module knows nothing of FUSE or of ioctls: it reads and writes records and
//! wraps keys; the command line (`cli/protect.rs`) hands the unwrapped master key to the kernel or
//! to our daemon through the ordinary `FS_IOC_ADD_ENCRYPTION_KEY`.
//!
//! - [`proto`]: the records and their validity checks.
//! - [`wrap`]: encrypt-then-MAC key wrapping and descriptors.
//! - [`passhash`]: Argon2id and cost calibration.
//! - [`config`]: the global configuration, `/etc/fscrypt.conf`.
//! - [`mounts`]: which mount a path is on (`/proc/self/mountinfo`).
//! - [`tree`]: the `.fscrypt` directory: trust checks, bounded reads, atomic writes.
//! - [`setup`]: making and removing a `.fscrypt` tree atomically.
//! - [`actions`]: create, unlock, rewrap, add and remove slots — the steps the commands combine.

pub mod actions;
pub mod config;
pub mod mounts;
pub mod passhash;
pub mod proto;
pub mod setup;
pub mod tree;
pub mod wrap;

use std::fmt;
use std::io;

pub use crate::passphrase::EXIT_BAD_PASSPHRASE;

/// Why a metadata operation failed.
#[derive(Debug)]
pub enum Error {
    /// The mount has no (usable) `.fscrypt` directory.
    NotSetup(String),
    /// `setup` on a mount that already has one.
    AlreadySetup(String),
    /// Metadata owned by someone we must not trust, a symlink, or insecure permissions.
    Insecure(String),
    /// A record failed to parse or to pass its checks.
    Corrupt(String),
    /// A named protector, policy or slot does not exist.
    NotFound(String),
    /// Something that must not exist already does.
    Exists(String),
    /// The wrapping's authentication failed: wrong passphrase or key.
    IncorrectKey(String),
    /// The request makes no sense (bad name, bad flag combination).
    Invalid(String),
    /// An I/O error while doing something.
    Io(String, io::Error),
}

impl Error {
    /// An I/O error while doing `what`.
    pub fn io(what: impl fmt::Display, e: io::Error) -> Self {
        Error::Io(what.to_string(), e)
    }

    /// The exit status a command reports for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::IncorrectKey(_) => EXIT_BAD_PASSPHRASE,
            Error::Invalid(_) => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotSetup(m)
            | Error::AlreadySetup(m)
            | Error::Insecure(m)
            | Error::NotFound(m)
            | Error::Exists(m)
            | Error::IncorrectKey(m)
            | Error::Invalid(m) => f.write_str(m),
            Error::Corrupt(m) => write!(f, "corrupt metadata: {m}"),
            Error::Io(what, e) => write!(f, "{what}: {}", crate::error::strerror(e)),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for crate::error::CommandError {
    fn from(e: Error) -> Self {
        crate::error::CommandError {
            exit_code: e.exit_code(),
            message: e.to_string(),
        }
    }
}

/// Results of this module.
pub type Result<T> = std::result::Result<T, Error>;
