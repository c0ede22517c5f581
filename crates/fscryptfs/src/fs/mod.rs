//! The filesystem: an encrypted view of a backing directory, served over FUSE, with fscrypt's
//! semantics as the kernel has them on ext4 (docs/SEMANTICS.md is the contract for keys).
//!
//! `Fs` is one object; its parts and operations live in rooms on levels, each importing only
//! from levels below it (`tests/fs_layers.rs` checks this, and that no imports form a cycle):
//!
//! 1. [`locks`] (poison-tolerant lock helpers), [`types`] (what the adapter and the rooms
//!    exchange), [`read_ahead`] (the mount's read-ahead, raised through sysfs after INIT) and
//!    [`read_order`] (a handle's large reads taken to a network backing store in order, and a
//!    per-extent file's large writes appended in the file's order there).
//! 2. [`node`] — one inode: `Node` and the per-inode `State` (an enum by kind); `node::extent`, the
//!    per-extent layout's per-inode state (log, write buffer, extent-key cache, writeout);
//!    `node::budget`, the volume-wide count of buffered bytes. [`caller_memory`] — the ioctl
//!    bridge: the rest of a kernel fscrypt ioctl's argument, in the caller's memory.
//! 3. [`inodes`] — the inode table (`Inodes`: lookup counts, transit, stable numbers, the
//!    allocator) and [`handle_table`] — the open handles (`HandleTable`).
//! 4. [`contents`] — regular-file contents behind the `Contents` trait (per-file, per-extent,
//!    background writeout, compaction), working on its own `Engine`, not on `Fs`.
//! 5. [`mount`] — the `Fs` object: construction, options, the contents engine, eviction, STATFS,
//!    the unmount flush.
//! 6. The operations, as `impl Fs` blocks: [`backing`] (loading nodes from backing objects),
//!    [`keys`] (the key lifecycle: unlock on demand, busy report, the inode locker at key
//!    removal), [`names`] (user ↔ backing names, the filename view), [`namespace`] (lookup,
//!    create, mkdir, symlink, mknod, link), [`rename`] (unlink, rmdir, rename), [`attr`]
//!    (getattr/setattr, TTLs, xattrs), [`handles`] (open/release, read/write, readdir,
//!    flush/fsync, fallocate, copy_file_range), [`ioctl`] (the key and policy ioctls).
//! 7. [`fuse`] — the `fuser::Filesystem` adapter (decode, call one `Fs` method, encode) and
//!    [`daemon`] (mounting): the only files that name `fuser`.
//!
//! Why descriptors instead of paths: an `O_PATH` descriptor follows its inode through renames and
//! hard links, so no path bookkeeping can go stale, and per-directory operations are `*at` calls on
//! the parent's descriptor.
//!
//! Locks, in the order they may nest: a directory's `dir_lock` (entry changes), then a node's `state`
//! (key, size), then the keyring's own locks (inside `unlock` / `ActiveRef::drop`); a handle's
//! read gate (`read_order`) is waited for with a node's `state` held for reading (a wait bounded by
//! the reads before it), a node's append gate with no lock held (the `state` is taken for the
//! append once the turn has come), and a gate's own mutex is held only to take or give back a
//! turn. Inside the node table only a node's `meta` and the set of numbers in transit are taken,
//! and those are leaves. A regular file's header lock (`node::header_lock`, by backing identity) is
//! a leaf held for one read or write of the header. Kernel notifications are sent only with no
//! lock held. No thread takes a lock it holds, a read lock included; debug builds abort at that
//! and at two kinds of lock nested both ways round (`locks`).

mod attr;
mod backing;
mod caller_memory;
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
pub mod read_ahead;
mod read_order;
mod recall;
mod rename;
mod types;

pub use backing::init_root;
