//! The offline tools: `fscryptfs inspect` and `fscryptfs fsck` read a volume's backing store
//! without a mount and without any key.
//!
//! The room has two levels. Below, the volume reader that both commands share:
//!
//! - [`lock`]: the volume lock taken shared while a tool reads (`lock_for_reading`), and the
//!   warning about a read-write mount;
//! - [`objects`]: one backing object as the store keeps it (directory metadata, file header,
//!   symlink target, special file), read from its directory's descriptor, and an entry's name
//!   ciphertext without the key (no-key name or long-name side file);
//! - [`volume`]: an opened volume, walked by no-key path, by directory and by stable inode number.
//!
//! Above, the commands, which use the reader and never each other: [`inspect`] and [`fsck`].
//!
//! Everything on the backing store is read through the store's hardened primitives (`store::io`)
//! and its one reader of each object (`store::meta`, `store::special`, `store::config`): relative
//! to directory descriptors, never through a symlink, never opening a FIFO or device, metadata
//! with its bound. The room uses `store` and the `fscrypt` layer, never the filesystem (`fs`).
//! Both commands fail with the crate's [`CommandError`](crate::error::CommandError) (exit status
//! and one line), the type every command shares.

pub mod fsck;
pub mod inspect;
pub mod lock;
pub mod objects;
pub mod volume;
