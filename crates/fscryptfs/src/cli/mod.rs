//! The command line's rooms: one file per command family, each mapping its options onto the layer
//! (`fscrypt`), the filesystem (`fscryptfs`) or a mounted filesystem's ioctls. `main.rs` parses
//! the command and dispatches here (and to `fscryptfs::inspect` / `fscryptfs::fsck`).
//!
//! - [`keys`]: `add-key`, `remove-key`, `key-status`, and the key ID argument;
//! - [`policy`]: `set-policy`, `get-policy`, `get-nonce`, and fscryptctl's rendering of a policy;
//! - [`volume`]: `init` and `mount` (the daemon's front: daemonizing, logging, detaching);
//! - [`mount_helper`]: the binary as `mount(8)`'s helper (`mount.fuse.fscryptfs SOURCE DIR -o OPTS`);
//! - [`protect`]: the `fscrypt` tool's commands (`setup`, `encrypt`, `unlock`, `lock`, `status`,
//!   `metadata …`) on protectors and policies in its own format;
//! - [`docs`]: man pages and shell completions from the command definition;
//! - [`crypt`]: `crypt`, fstests' `fscrypt-crypt-util` interface;
//! - [`ioctl`]: the client's ioctls on top of `fscrypt::uapi`, opening targets, strerror;
//! - [`error`]: `CliError`, the library's `CommandError` that the offline tools return too, and the
//!   exit statuses (0 ok, 1 failure, 2 bad arguments).

pub mod crypt;
pub mod docs;
pub mod error;
pub mod ioctl;
pub mod keys;
pub mod mount_helper;
pub mod policy;
pub mod protect;
pub mod volume;
