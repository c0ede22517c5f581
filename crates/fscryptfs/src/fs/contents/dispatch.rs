//! The contents operations the rest of the filesystem calls (`read_data`, `write_data`,
//! `set_size`, `allocate`, `flush_size`): each picks the file's layout once, in `Engine::layout_of`,
//! and hands the layout-specific part to its [`Contents`] implementation. What both layouts share
//! stays here: the fallocate modes and their limits, and zeroing the partial units at the ends of a
//! punched range.

use std::fs::File;

use fscrypt::keysetup::InodeKey;
use fscrypt::{Errno, Result};

use super::layout::{Contents, FileIo};
use super::per_extent::PerExtent;
use super::per_file::{round_up, PerFile};
use super::{Engine, FlushFor};
use crate::fs::locks::rlock;
use crate::fs::node::{Kind, Node};
use crate::fs::read_order::ReadOrder;
use crate::fs::types::errno;

impl Engine<'_> {
    /// The contents implementation of a regular file, by its layout.
    fn layout_of(&self, node: &Node) -> &'static dyn Contents {
        if self.is_extent(node) {
            &PerExtent
        } else {
            &PerFile
        }
    }

    /// Reads `len` bytes at `off` through a handle's key (and the handle's read gate, where the
    /// backing store's requests are round trips).
    pub(in crate::fs) fn read_data(
        &self,
        node: &Node,
        file: &File,
        key: Option<&InodeKey>,
        reads: Option<&ReadOrder>,
        off: u64,
        len: u32,
    ) -> Result<Vec<u8>> {
        let mut io = FileIo::new(self, node, file, key);
        io.reads = reads;
        self.layout_of(node).read(&io, off, len)
    }

    /// Writes `data` at `off` (the caller checked permission and `prepare_write`).
    pub(in crate::fs) fn write_data(
        &self,
        node: &Node,
        file: &File,
        key: Option<&InodeKey>,
        off: u64,
        data: &[u8],
    ) -> Result<()> {
        let io = FileIo::new(self, node, file, key);
        self.layout_of(node).write(&io, off, data)
    }

    /// Changes the size (truncate / ftruncate / O_TRUNC / fallocate growth).
    pub(in crate::fs) fn set_size(
        &self,
        node: &Node,
        file: &File,
        key: Option<&InodeKey>,
        new: u64,
    ) -> Result<()> {
        let io = FileIo::new(self, node, file, key);
        self.layout_of(node).set_size(&io, new)
    }

    /// fallocate: mode 0, KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE and ZERO_RANGE (with or without
    /// KEEP_SIZE); other modes are EOPNOTSUPP.
    pub(in crate::fs) fn allocate(
        &self,
        node: &Node,
        file: &File,
        key: Option<&InodeKey>,
        off: u64,
        len: u64,
        mode: i32,
    ) -> Result<()> {
        const KEEP_SIZE: i32 = 0x01;
        const PUNCH_HOLE: i32 = 0x02;
        const ZERO_RANGE: i32 = 0x10;
        let end = off
            .checked_add(len)
            .filter(|e| *e <= self.fsp.max_file_size)
            .ok_or_else(|| errno(Errno::FBIG, "fallocate beyond the maximum file size"))?;
        match mode {
            m if m == PUNCH_HOLE | KEEP_SIZE => return self.zero_range(node, file, key, off, end),
            m if m & !KEEP_SIZE == ZERO_RANGE => {
                self.zero_range(node, file, key, off, end)?;
                if m & KEEP_SIZE == 0 && end > rlock(&node.state).size() {
                    // The extension is a hole: zeros too.
                    return self.set_size(node, file, key, end);
                }
                return Ok(());
            }
            m if m & !KEEP_SIZE != 0 => {
                return Err(errno(
                    Errno::OPNOTSUPP,
                    "fallocate: only modes 0, KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE and ZERO_RANGE are \
                     supported",
                ));
            }
            _ => {}
        }
        let io = FileIo::new(self, node, file, key);
        self.layout_of(node)
            .allocate(&io, off, end, mode & KEEP_SIZE != 0)
    }

    /// PUNCH_HOLE and ZERO_RANGE within the size: `[off, end)` reads as zeros afterwards and the
    /// size stays. Whole data units inside the range are dropped — holes in the backing file (an
    /// all-zero unit reads as zeros, so no ciphertext of zeros is written), or a punch record in a
    /// per-extent log — and the partial units at its ends are rewritten with zeros. A unit that
    /// the end of the file cuts counts as whole.
    pub(in crate::fs) fn zero_range(
        &self,
        node: &Node,
        file: &File,
        key: Option<&InodeKey>,
        off: u64,
        end: u64,
    ) -> Result<()> {
        let (size, du) = {
            let st = rlock(&node.state);
            let du = match (st.ext(), key) {
                (Some(e), _) => e.file.data_unit_size() as u64,
                (None, Some(k)) => k.data_unit_size() as u64,
                // Unencrypted: the backing bytes are the file's; any range can be punched.
                (None, None) => 1,
            };
            (st.size(), du)
        };
        let end = end.min(size);
        if off >= end {
            return Ok(());
        }
        let whole_lo = round_up(off, du);
        let whole_hi = if end == size {
            round_up(end, du)
        } else {
            end / du * du
        };
        if whole_lo >= whole_hi {
            // Inside one unit: rewrite it.
            return self.write_data(node, file, key, off, &vec![0u8; (end - off) as usize]);
        }
        if off < whole_lo {
            self.write_data(node, file, key, off, &vec![0u8; (whole_lo - off) as usize])?;
        }
        if whole_hi < end {
            self.write_data(
                node,
                file,
                key,
                whole_hi,
                &vec![0u8; (end - whole_hi) as usize],
            )?;
        }
        let io = FileIo::new(self, node, file, key);
        self.layout_of(node)
            .punch_units(&io, whole_lo, whole_hi, size)
    }

    /// Writes buffered data and a changed size to the backing store, as durably as `why` asks
    /// (FLUSH, RELEASE, fsync, eviction, unmount). With `file` None a descriptor is opened for it.
    pub(in crate::fs) fn flush_size(
        &self,
        node: &Node,
        file: Option<&File>,
        why: FlushFor,
    ) -> Result<()> {
        if node.kind != Kind::File {
            return Ok(());
        }
        self.layout_of(node).flush(self, node, file, why)
    }
}
