//! How an offline command fails: [`Failure`], an exit status and one line, the same shape as the
//! command line's `CliError` (which `main` builds from it field by field; `CliError` lives in the
//! binary, out of this library's reach). `inspect` and `fsck` return it; the reader's own errors
//! are `fscrypt::Error`s, turned into a failure of the operation by `?`.

use fscrypt::Error;

/// Exit status: the command failed (not found, corrupt, I/O error).
pub const EXIT_FAILURE: i32 = 1;
/// Exit status: bad arguments, or (fsck) the check could not run.
pub const EXIT_USAGE: i32 = 2;

/// How an offline tool failed: exit status and one line.
#[derive(Debug)]
pub struct Failure {
    /// The process exit status.
    pub exit_code: i32,
    /// What went wrong (one line).
    pub message: String,
}

impl Failure {
    /// A failure of the operation (exit 1).
    pub fn op(m: impl std::fmt::Display) -> Self {
        Failure {
            exit_code: EXIT_FAILURE,
            message: m.to_string(),
        }
    }

    /// Bad arguments or a check that cannot run (exit 2).
    pub fn usage(m: impl std::fmt::Display) -> Self {
        Failure {
            exit_code: EXIT_USAGE,
            message: m.to_string(),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::op(e.message())
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
