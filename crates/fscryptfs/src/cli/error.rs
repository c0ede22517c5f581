//! Command-line errors and exit codes: `CliError`, one line with its exit status, for any command.
//!
//! Exit status 0 is success, 1 a failure of the operation (I/O, crypto, the daemon said no), 2 bad
//! arguments. Every error is one line on stderr: `fscryptfs: <what went wrong>`.

use std::fmt;

/// Exit status for a failed operation.
pub const EXIT_FAILURE: i32 = 1;
/// Exit status for bad arguments.
pub const EXIT_USAGE: i32 = 2;

/// An error that ends a command, with its exit status.
#[derive(Debug)]
pub struct CliError {
    /// The process exit status.
    pub exit_code: i32,
    /// One line saying what went wrong.
    pub message: String,
}

impl CliError {
    /// Bad arguments (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            exit_code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// Bad arguments detected by the layer (exit 2), e.g. a key of the wrong size.
    pub fn usage_from(e: fscrypt::Error) -> Self {
        Self::usage(e.to_string())
    }

    /// The operation failed (exit 1).
    pub fn failure(e: impl fmt::Display) -> Self {
        CliError {
            exit_code: EXIT_FAILURE,
            message: e.to_string(),
        }
    }

    /// Exit with `exit_code` and print nothing: someone (the daemon child) already printed the
    /// one line.
    pub fn silent(exit_code: i32) -> Self {
        CliError {
            exit_code,
            message: String::new(),
        }
    }

    /// An I/O failure while doing `what` (exit 1).
    pub fn io(what: &str, e: std::io::Error) -> Self {
        CliError {
            exit_code: EXIT_FAILURE,
            message: format!("{what}: {e}"),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
