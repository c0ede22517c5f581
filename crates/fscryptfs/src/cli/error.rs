//! Command-line errors and exit codes: `CliError`, one line with its exit status, for any command.
//!
//! The type is the library's [`fscryptfs::error::CommandError`], shared with the offline tools
//! (`inspect`, `fsck`), so every command fails the same way: exit status 0 success, 1 a failure of
//! the operation (I/O, crypto, the daemon said no), 2 bad arguments; one line on stderr,
//! `fscryptfs: <what went wrong>`.

pub use fscryptfs::error::{CommandError as CliError, EXIT_USAGE};
