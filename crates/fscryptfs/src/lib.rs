//! fscryptfs: the FUSE filesystem and the command's shared pieces. The fscrypt layer itself is the
//! `fscrypt` crate; this crate adapts it to a backing directory and to FUSE.

/// The ioctl numbers and argument layouts under their older name: the definitions are the layer's
/// [`fscrypt::uapi`] (the kernel's and fscryptfs' own ioctls, byte order explicit).
pub use fscrypt::uapi as abi;
pub mod fs;
pub mod offline;
pub mod passphrase;
pub mod protectors;
pub mod store;

pub use offline::{fsck, inspect};
