//! fscryptfs: the FUSE filesystem and the command's shared pieces. The fscrypt layer itself is the
//! `fscrypt` crate; this crate adapts it to a backing directory and to FUSE.

pub mod abi;
pub mod fs;
pub mod offline;
pub mod store;

pub use offline::{fsck, inspect};
