//! The contents of regular files, in two layouts behind one trait: [`layout`] defines the
//! `Contents` trait, [`per_file`] and [`per_extent`] implement it (the latter on the per-inode
//! state of `node::extent`, with the background [`writeout`] thread and log [`compaction`]), and
//! [`dispatch`] holds the operations the rest of `fs` calls, each choosing the file's layout in
//! one place.
//!
//! The room works on an [`Engine`]: the parts of the filesystem that contents need (parameters,
//! the inode and handle tables, the buffer budget, the layout of new files), borrowed from `Fs`
//! by `Fs::contents`. It imports `node`, `inodes`, `handle_table`, `locks` and `types`, never
//! `mount` or an operation room, and knows nothing of keys beyond the ones a handle or node holds.

use std::path::Path;
use std::sync::Arc;

use fscrypt::policy::FsParams;

use crate::fs::handle_table::HandleTable;
use crate::fs::inodes::Inodes;
use crate::fs::node::budget::Budget;
use crate::fs::node::Node;
use crate::store::config::ContentsLayout;
use crate::store::pending::CacheEpoch;

mod compaction;
mod dispatch;
mod layout;
mod per_extent;
mod per_file;
pub(super) mod writeout;

pub(in crate::fs) use per_extent::OpenedLog;

/// Why a file's contents are flushed, which says how durable they must be afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::fs) enum FlushFor {
    /// FLUSH, RELEASE: everything accepted reaches the backing store (a later reader of the
    /// backing file sees it), durable when the backing filesystem writes it back or at the next
    /// commit (`-o commit=N`), as a local filesystem's close promises. A per-extent log is not
    /// committed: replay keeps whole records past the last commit, so nothing needs the commit's
    /// two `fdatasync`s yet; a per-file size is recorded as a pending size, committed later.
    Close,
    /// Eviction (the kernel forgot the inode): as at close, and a per-extent log or a per-file size
    /// that still has a name is committed, since the commit timer forgets the node with it.
    Evict,
    /// fsync: durable now (a per-extent log committed, a per-file header synced).
    Fsync,
    /// Unmount: as at close, and per-extent logs committed, so the next mount trusts the whole log
    /// without re-reading it for checksums.
    Unmount,
}

/// What the contents operations act on: borrowed parts of the mounted filesystem.
pub(in crate::fs) struct Engine<'a> {
    /// The volume's fscrypt parameters (maximum file size, data unit sizes).
    pub(in crate::fs) fsp: &'a FsParams,
    /// The backing directory (for messages).
    pub(in crate::fs) backing: &'a Path,
    /// The inode table (compaction finds the parent and rebinds the backing identity).
    pub(in crate::fs) inodes: &'a Inodes,
    /// The open handles (compaction reopens them on the new inode).
    pub(in crate::fs) handles: &'a HandleTable,
    /// The volume-wide count of buffered bytes.
    pub(in crate::fs) budget: &'a Arc<Budget>,
    /// The volume's layout for new encrypted regular files.
    pub(in crate::fs) layout: ContentsLayout,
    /// A read-only mount (no compaction).
    pub(in crate::fs) read_only: bool,
    /// Where per-file sizes may be recorded at close as pending sizes (`store::pending`): the
    /// backing store's cache epoch, when there is one and the writeout thread commits them (a
    /// commit interval is set); None: close commits the size itself.
    pub(in crate::fs) pending_sizes: Option<&'a CacheEpoch>,
    /// The backing store's requests are round trips (`fs::read_order`).
    pub(in crate::fs) round_trips: bool,
}

impl Engine<'_> {
    /// The backing path of `node`, for messages.
    pub(in crate::fs) fn describe(&self, node: &Node) -> String {
        node.describe(self.backing)
    }

    /// The backing path of `node`, resolved only if a message is built from it.
    pub(in crate::fs) fn described<'n>(&'n self, node: &'n Node) -> impl std::fmt::Display + 'n {
        node.described(self.backing)
    }
}
