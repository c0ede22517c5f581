//! The trait a contents layout implements ([`Contents`]), and what its operations act on
//! ([`FileIo`]). The two layouts are `per_file.rs` (the kernel's ciphertext in place, one key per
//! file) and `per_extent.rs` (a log of extents, each with its own key, behind a write buffer).

use std::fs::File;

use fscrypt::keysetup::InodeKey;
use fscrypt::Result;

use super::{Engine, FlushFor};
use crate::fs::node::Node;
use crate::fs::read_order::ReadOrder;

/// One regular file's contents as an operation sees them: the node, its open backing file and,
/// for per-file-key files, the handle's key.
pub(super) struct FileIo<'a> {
    pub(super) eng: &'a Engine<'a>,
    pub(super) node: &'a Node,
    pub(super) file: &'a File,
    pub(super) key: Option<&'a InodeKey>,
    /// Reads: the handle's gate that takes large reads to the backing store in order, on a backing
    /// store whose requests are round trips (`fs::read_order`); None elsewhere.
    pub(super) reads: Option<&'a ReadOrder>,
}

impl<'a> FileIo<'a> {
    pub(super) fn new(
        eng: &'a Engine<'a>,
        node: &'a Node,
        file: &'a File,
        key: Option<&'a InodeKey>,
    ) -> Self {
        FileIo {
            eng,
            node,
            file,
            key,
            reads: None,
        }
    }
}

/// The contents operations whose implementation depends on the file's layout. Permission,
/// `prepare_write` and the fallocate mode are checked before (`dispatch.rs`).
pub(super) trait Contents: Sync {
    /// `len` bytes at `off` (fewer at the end of the file).
    fn read(&self, io: &FileIo<'_>, off: u64, len: u32) -> Result<Vec<u8>>;
    /// Writes `data` at `off`, growing the size.
    fn write(&self, io: &FileIo<'_>, off: u64, data: &[u8]) -> Result<()>;
    /// Changes the size (truncate, or growth by a hole).
    fn set_size(&self, io: &FileIo<'_>, new: u64) -> Result<()>;
    /// fallocate mode 0 or KEEP_SIZE over `[off, end)`.
    fn allocate(&self, io: &FileIo<'_>, off: u64, end: u64, keep_size: bool) -> Result<()>;
    /// Drops the whole data units `[lo, hi)` (`hi` may pass `size` by a partial unit).
    fn punch_units(&self, io: &FileIo<'_>, lo: u64, hi: u64, size: u64) -> Result<()>;
    /// Writes buffered data and the size to the backing store, as durably as `why` asks (FLUSH,
    /// RELEASE, fsync, eviction, unmount); with `file` None a descriptor is opened if one is needed.
    fn flush(
        &self,
        eng: &Engine<'_>,
        node: &Node,
        file: Option<&File>,
        why: FlushFor,
    ) -> Result<()>;
}
