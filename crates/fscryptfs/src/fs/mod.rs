//! The filesystem: an encrypted view of a backing directory, served over FUSE, with fscrypt's
//! semantics as the kernel has them on ext4 (docs/SEMANTICS.md is the contract for keys).
//!
//! `Fs` is one object; its operations live in rooms by concern:
//!
//! - [`fuse`] — the `fuser::Filesystem` adapter (decode, call one `Fs` method, encode); with
//!   [`daemon`] (mounting) the only files that name `fuser`. [`types`] holds what they exchange.
//! - [`mount`] — the `Fs` object, its options and tables, construction, unmount flush.
//! - [`node`] — `Node` and the per-inode `State` (an enum by kind), the inode table, lookup
//!   counts, FORGET and eviction, transit, stable inode numbers. [`backing`] loads nodes from
//!   backing objects.
//! - [`keys`] — the key lifecycle: unlock on demand, the busy report and the inode locker at key
//!   removal, kernel cache invalidation.
//! - [`names`] — user names ↔ backing names, the filename view with and without the key.
//! - [`namespace`] (create, mkdir, symlink, mknod, link, lookup) and [`rename`] (unlink, rmdir,
//!   rename).
//! - [`attr`] — getattr/setattr, TTLs, symlink targets, ownership of new inodes, xattrs.
//! - [`handles`] — open files: open/release, read/write, readdir, flush/fsync, fallocate.
//! - [`data`] (per-file contents), [`extent`] (per-extent contents) with [`writeout`] (its buffer
//!   budget and the writeout thread).
//! - [`ioctl`] — the key and policy ioctls.
//!
//! Why descriptors instead of paths: an `O_PATH` descriptor follows its inode through renames and
//! hard links, so no path bookkeeping can go stale, and per-directory operations are `*at` calls on
//! the parent's descriptor.
//!
//! Locks, in the order they may nest: a directory's `dir_lock` (entry changes), then a node's `state`
//! (key, size), then the keyring's own locks (inside `unlock` / `ActiveRef::drop`). The node table
//! and a node's `meta` are leaves. Kernel notifications are sent only with no lock held.

mod attr;
mod backing;
mod contents;
pub mod daemon;
mod fuse;
mod handle_table;
mod handles;
mod inodes;
mod ioctl;
mod keys;
mod locks;
mod mount;
mod names;
mod namespace;
mod node;
mod rename;
mod types;

pub use backing::init_root;
