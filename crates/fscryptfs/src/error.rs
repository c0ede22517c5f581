//! How a command fails: [`CommandError`], an exit status and one line, for every `fscryptfs`
//! command — the ones in the binary's `cli` room (which call it `CliError`) and the offline tools
//! (`inspect`, `fsck`) in this library alike, so `main` prints and exits the same way for all.
//!
//! Exit status 0 is success, [`EXIT_FAILURE`] (1) a failure of the operation (not found, corrupt,
//! I/O, crypto, the daemon said no), [`EXIT_USAGE`] (2) bad arguments, or (fsck) a check that
//! could not run. `main` prints the line as `fscryptfs: <message>` on stderr, or nothing when the
//! message is empty ([`CommandError::silent`]: someone already printed it).

use std::fmt;

/// Exit status: the operation failed (not found, corrupt, I/O error, the daemon said no).
pub const EXIT_FAILURE: i32 = 1;
/// Exit status: bad arguments, or (fsck) the check could not run.
pub const EXIT_USAGE: i32 = 2;

/// An error that ends a command: its exit status and one line saying what went wrong.
#[derive(Debug)]
pub struct CommandError {
    /// The process exit status.
    pub exit_code: i32,
    /// One line saying what went wrong (empty: print nothing).
    pub message: String,
}

impl CommandError {
    /// Bad arguments, or a check that cannot run (exit 2).
    pub fn usage(message: impl fmt::Display) -> Self {
        CommandError {
            exit_code: EXIT_USAGE,
            message: message.to_string(),
        }
    }

    /// Bad arguments detected by the layer (exit 2), e.g. a key of the wrong size; the message
    /// keeps the errno's name.
    pub fn usage_from(e: fscrypt::Error) -> Self {
        Self::usage(e)
    }

    /// The operation failed (exit 1).
    pub fn failure(e: impl fmt::Display) -> Self {
        CommandError {
            exit_code: EXIT_FAILURE,
            message: e.to_string(),
        }
    }

    /// The operation failed (exit 1): the offline tools' name for [`CommandError::failure`].
    pub fn op(m: impl fmt::Display) -> Self {
        Self::failure(m)
    }

    /// Exit with `exit_code` and print nothing: someone (the daemon child) already printed the
    /// one line.
    pub fn silent(exit_code: i32) -> Self {
        CommandError {
            exit_code,
            message: String::new(),
        }
    }

    /// An I/O failure while doing `what` (exit 1).
    pub fn io(what: &str, e: std::io::Error) -> Self {
        CommandError {
            exit_code: EXIT_FAILURE,
            message: format!("{what}: {}", strerror(&e)),
        }
    }
}

/// strerror's words for an OS error, without Rust's " (os error N)" suffix.
pub fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match (e.raw_os_error(), s.rfind(" (os error ")) {
        (Some(_), Some(i)) => s[..i].to_string(),
        _ => s,
    }
}

impl From<fscrypt::Error> for CommandError {
    /// A failure of the operation (exit 1) with the layer's message alone (no errno name): how the
    /// offline tools report what the volume reader found.
    fn from(e: fscrypt::Error) -> Self {
        CommandError::op(e.message())
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CommandError {}
