//! Contents of regular files in the per-extent layout (the btrfs v6 model): the filesystem side of
//! `store::extent`, on the per-inode state of `node::extent` (`ExtState`, `writeout_locked`).
//!
//! Writes are buffered per inode, in whole data units of plaintext (a unit not yet buffered is read
//! first when the write covers it partly: read-modify-write), and become new extents only at
//! writeout: each run of consecutive buffered units is one `ExtentFile::write_extent` with a fresh
//! `ExtentContext` drawn then, its key derived then through the inode's `ActiveRef`
//! (`SecretNeed::Later`, so the master secret survives a soft key removal while the file is open).
//! Writeout happens at fsync, FLUSH, RELEASE, eviction, key removal (the locker), unmount, in the
//! background (`writeout`: by age and by the volume-wide memory budget) and when the buffer would
//! exceed `BUFFER_MAX` (or the volume's buffers `node::budget::BUDGET_HARD`); all but the last end
//! with `ExtentFile::sync`. Reads
//! decrypt what the log maps — each run checked against its checksum first, EIO naming the inode,
//! the offset and the backing path on a mismatch — and overlay the buffer. Truncation writes the buffer out first, then
//! appends a truncate record. Everything happens under the node's `state` lock (write for changes,
//! read for reads) but the sealing of a large write of whole units (`WriteThrough`: encrypted and
//! checksummed between two holds of the lock); the keyring's locks nest inside it, as everywhere.
//!
//! After a writeout at write, fsync, FLUSH, RELEASE or clone, and after a truncate or a punched
//! hole, a log that `needs_compaction` is compacted into a sibling that replaces it by rename
//! (`ext_compact` in `compaction.rs`: the parent's `dir_lock`, then the node's `state`), and the
//! node, its log and its handles switch to the new backing inode.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use fscrypt::context::Context;
use fscrypt::{Errno, Error, Result};

use super::layout::{Contents, FileIo};
use super::{Engine, FlushFor};
use crate::fs::locks::{lock, rlock, wlock};
use crate::fs::node::extent::{
    not_loaded, writeout_locked, ExtState, WriteThrough, BUFFER_MAX, WRITE_THROUGH_MIN,
};
use crate::fs::node::{Kind, Node, State};
use crate::fs::read_order::{in_order, ReadOrder};
use crate::fs::types::errno;
use crate::store::config::ContentsLayout;
use crate::store::extent::{ExtentFile, LogFile, LogSnapshot, ReadGate, HEADER_PREFIX};

impl Engine<'_> {
    /// The layout of a new regular file with context `ctx`: per-extent for encrypted files of an
    /// extent volume, else per-file.
    pub(in crate::fs) fn new_file_layout(
        &self,
        kind: Kind,
        ctx: Option<&Context>,
    ) -> ContentsLayout {
        if kind == Kind::File && ctx.is_some() && self.layout == ContentsLayout::Extent {
            ContentsLayout::Extent
        } else {
            ContentsLayout::PerFile
        }
    }

    /// True for a per-extent regular file.
    pub(in crate::fs) fn is_extent(&self, node: &Node) -> bool {
        node.kind == Kind::File && rlock(&node.state).is_extent()
    }

    /// At lookup of a per-extent file not in the table (the caller holds its number in transit):
    /// opens and recovers its log (its logical size is there, not in the header), from what the
    /// lookup already opened and read when it has it. No key is needed. `st` (the lookup's
    /// `fstat`, taken before anything was read) is kept with the replayed log's mark: what the
    /// node's log is at its eviction is what `fs::recall` keeps, under the rule `loaded` says.
    pub(in crate::fs) fn load_extent_state(
        &self,
        fd: &OwnedFd,
        st: &rustix::fs::Stat,
        ctx: Option<&Context>,
        opened: Option<OpenedLog>,
        what: &(impl std::fmt::Display + ?Sized),
    ) -> Result<ExtState> {
        let mut ext = self.replay_extent_log(fd, ctx, opened, what)?;
        ext.loaded = Some((*st, ext.file.mark()));
        Ok(ext)
    }

    /// At lookup of a per-extent file that `fs::recall` found unchanged since its evicted node
    /// left it with the log `snap` (`st`: the lookup's `fstat`): its log put back on that state,
    /// nothing read and nothing opened (the node's `O_PATH` descriptor `fd` opens the file at the first read
    /// or write of the log, unless a user's open lent it a duplicate of its own first).
    pub(in crate::fs) fn recalled_extent_state(
        &self,
        fd: &Arc<OwnedFd>,
        st: &rustix::fs::Stat,
        snap: Arc<LogSnapshot>,
    ) -> ExtState {
        let log = LogFile::deferred(
            Arc::clone(fd),
            *st,
            crate::store::io::Access::ReadWriteOrReadNoAtime,
        );
        let mut ext = ExtState::new(
            // Taken out of the recall table, so normally ours alone: moved, not copied.
            ExtentFile::from_snapshot(log, Arc::unwrap_or_clone(snap)),
            Arc::clone(self.budget),
        );
        ext.loaded = Some((*st, ext.file.mark()));
        ext
    }

    /// A user's open of `node` just opened `file`. A per-extent log put back from a snapshot and
    /// not opened yet takes a duplicate of it (`ExtentFile::adopt_file`), so a log a user writes
    /// through is open before anything is written to it; a log a lookup opened without touching
    /// the access time touches it from now on, since it serves this user's reads
    /// (`ExtentFile::reads_touch_atime`). Nothing for other nodes.
    pub(in crate::fs) fn ext_opened_by_user(&self, node: &Node, file: &File) -> Result<()> {
        let st = rlock(&node.state);
        let Some(ext) = st.ext() else {
            return Ok(());
        };
        if ext.file.is_open() {
            ext.file.reads_touch_atime()
        } else {
            ext.file.adopt_file(file)
        }
    }

    fn replay_extent_log(
        &self,
        fd: &OwnedFd,
        ctx: Option<&Context>,
        opened: Option<OpenedLog>,
        what: &(impl std::fmt::Display + ?Sized),
    ) -> Result<ExtState> {
        let ctx = ctx
            .ok_or_else(|| Error::corrupt(format!("{what}: per-extent file without a context")))?;
        let policy = *ctx.policy();
        let du = 1usize << policy.data_unit_bits(self.fsp);
        let log = match opened {
            Some(o) => ExtentFile::open_read(o.file, &policy, du, &o.header, o.len)?,
            None => {
                let f = crate::store::io::reopen_file(
                    fd,
                    crate::store::io::Access::ReadWriteOrReadNoAtime,
                    what,
                )?;
                ExtentFile::open(f, &policy, du)?
            }
        };
        Ok(ExtState::new(log, Arc::clone(self.budget)))
    }

    /// Creates the log of a new per-extent file in `file` (empty, not yet named).
    pub(in crate::fs) fn create_extent_file(
        &self,
        file: &File,
        ino: u64,
        ctx: &Context,
    ) -> Result<ExtState> {
        let f = file
            .try_clone()
            .map_err(|e| crate::store::io_err("new per-extent file", e))?;
        Ok(ExtState::new(
            ExtentFile::create(f, ino, ctx)?,
            Arc::clone(self.budget),
        ))
    }

    /// Reads `len` bytes at `off`: the log (its backing reads through the handle's gate `reads`,
    /// when there is one: `fs::read_order`), then the buffer over it.
    pub(in crate::fs) fn ext_read(
        &self,
        node: &Node,
        reads: Option<&ReadOrder>,
        off: u64,
        len: u32,
    ) -> Result<Vec<u8>> {
        let st = rlock(&node.state);
        let ext = st.ext().ok_or_else(not_loaded)?;
        let size = ext.size;
        if off >= size || len == 0 {
            return Ok(Vec::new());
        }
        let end = size.min(off.saturating_add(u64::from(len)));
        let mut out = vec![0u8; (end - off) as usize];
        let active = st.active();
        let order = |fetch: &mut dyn FnMut()| in_order(reads, off, len, fetch);
        ext.file
            .read_ordered(
                off,
                &mut out,
                |c| lock(&ext.keys).get(active, c),
                reads.map(|_| &order as &ReadGate<'_>),
            )
            .map_err(|e| self.ext_read_failed(node, off, end - off, e))?;
        let du = ext.du;
        for (&idx, unit) in ext.buf.range(off / du..=(end - 1) / du) {
            let us = idx * du;
            let lo = us.max(off);
            let hi = (us + du).min(end);
            out[(lo - off) as usize..(hi - off) as usize]
                .copy_from_slice(&unit[(lo - us) as usize..(hi - us) as usize]);
        }
        Ok(out)
    }

    /// A failed read of the log (a checksum mismatch, a short backing file, a unit that does not
    /// decrypt: EIO) with the file's inode number and the range read in front of the engine's
    /// message (which names the backing path and offset); the FUSE reply logs it once.
    fn ext_read_failed(&self, node: &Node, off: u64, len: u64, e: Error) -> Error {
        if e.errno() != Errno::IO {
            return e;
        }
        Error::new(
            Errno::IO,
            format!(
                "inode {}: read of {len} bytes at offset {off}: {}",
                node.ino,
                e.message()
            ),
        )
    }

    /// Accepts a write into the buffer (the caller checked permission and `prepare_write`).
    pub(in crate::fs) fn ext_write(&self, node: &Node, off: u64, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let end = off
            .checked_add(data.len() as u64)
            .filter(|e| *e <= crate::store::EXTENT_MAX_FILE_SIZE)
            .ok_or_else(|| errno(Errno::FBIG, "write beyond the maximum file size"))?;
        let mut guard = wlock(&node.state);
        if guard.active().is_none() {
            // Never accept what could not be written out (an open handle keeps the reference).
            return Err(Error::no_key("the file's encryption key is not available"));
        }
        {
            let ext = guard.ext().ok_or_else(not_loaded)?;
            if ext.buffered() > 0
                && (ext.buffered() + data.len() as u64 > BUFFER_MAX || self.budget.over_hard())
            {
                self.ext_writeout_locked(node, &mut guard, false)?;
            }
        }
        let du = guard.ext().ok_or_else(not_loaded)?.du;
        if off.is_multiple_of(du)
            && end.is_multiple_of(du)
            && data.len() as u64 >= WRITE_THROUGH_MIN
        {
            // Sealed (encrypted, checksummed) without the lock: only the appends are serialized,
            // in the file's order where the backing store's requests are round trips.
            let through = WriteThrough::prepare(&guard, off, data.len() as u64)?;
            let appends = self
                .round_trips
                .then(|| guard.ext().map(|e| Arc::clone(&e.appends)))
                .flatten();
            drop(guard);
            let seal = move || {
                let sealed = through.seal(data);
                (through, sealed)
            };
            let append = |(through, sealed): (WriteThrough, Result<_>)| {
                through.append(&mut wlock(&node.state), sealed?)
            };
            return match appends {
                Some(gate) => gate.run_prepared(off, data.len() as u64, seal, append),
                None => append(seal()),
            };
        }
        let (ext, active) = guard.ext_and_active().ok_or_else(not_loaded)?;
        for idx in off / du..=(end - 1) / du {
            let us = idx * du;
            let lo = us.max(off);
            let hi = (us + du).min(end);
            if !ext.buf.contains_key(&idx) {
                let mut unit = vec![0u8; du as usize];
                if (lo != us || hi != us + du) && us < ext.file.logical_size() {
                    let keys = &ext.keys;
                    ext.file
                        .read(us, &mut unit, |c| lock(keys).get(active, c))
                        .map_err(|e| self.ext_read_failed(node, us, du, e))?;
                }
                ext.insert_unit(idx, unit);
            }
            if let Some(unit) = ext.buf.get_mut(&idx) {
                unit[(lo - us) as usize..(hi - us) as usize]
                    .copy_from_slice(&data[(lo - off) as usize..(hi - off) as usize]);
            }
        }
        if end > ext.size {
            ext.size = end;
        }
        Ok(())
    }

    /// Writes the node's buffer out ([`writeout_locked`]).
    pub(in crate::fs) fn ext_writeout_locked(
        &self,
        _node: &Node,
        st: &mut State,
        sync: bool,
    ) -> Result<()> {
        writeout_locked(st, sync)
    }

    /// Writeout (FLUSH, RELEASE), and the commit too for fsync, unmount and the eviction of a
    /// file that still has a name ([`FlushFor`]).
    pub(in crate::fs) fn ext_flush(&self, node: &Node, why: FlushFor) -> Result<()> {
        let commit = match why {
            FlushFor::Close => false,
            FlushFor::Fsync | FlushFor::Unmount => true,
            // Only a log with something to commit asks whether the file still has a name.
            FlushFor::Evict => {
                rlock(&node.state)
                    .ext()
                    .is_some_and(|e| e.dirty().is_some())
                    && node.has_name()
            }
        };
        let mut st = wlock(&node.state);
        self.ext_writeout_locked(node, &mut st, commit)
    }

    /// Changes the size: the buffer is written out first, then a truncate record (extending makes
    /// a hole).
    pub(in crate::fs) fn ext_set_size(&self, node: &Node, new: u64) -> Result<()> {
        if new > crate::store::EXTENT_MAX_FILE_SIZE {
            return Err(errno(Errno::FBIG, "size beyond the maximum file size"));
        }
        let mut st = wlock(&node.state);
        self.ext_writeout_locked(node, &mut st, false)?;
        let ext = st.ext_mut().ok_or_else(not_loaded)?;
        ext.file.truncate(new)?;
        ext.size = new;
        Ok(())
    }

    /// Punches whole units `[off, off + len)` (`len` may end at the size with a partial unit):
    /// the buffer is written out first (so the log holds the whole size), then the log gets a
    /// punch record.
    pub(in crate::fs) fn ext_punch(&self, node: &Node, off: u64, len: u64) -> Result<()> {
        let mut st = wlock(&node.state);
        writeout_locked(&mut st, false)?;
        let ext = st.ext_mut().ok_or_else(not_loaded)?;
        ext.file.punch_hole(off, len)
    }

    /// fallocate (mode and range already checked by `allocate`): mode 0 grows the size to `end`
    /// (a hole: a log has nothing to preallocate); KEEP_SIZE does nothing.
    pub(in crate::fs) fn ext_allocate(&self, node: &Node, end: u64, keep_size: bool) -> Result<()> {
        if !keep_size && end > rlock(&node.state).size() {
            self.ext_set_size(node, end)?;
        }
        Ok(())
    }

    /// copy_file_range between per-extent files under the same policy, at unit-aligned offsets:
    /// a ciphertext clone (`ExtentFile::clone_range`: the source's extents keep their nonces and
    /// IVs; blocks shared with `FICLONERANGE` where the backing filesystem can). Both buffers are
    /// written out first. `Ok(None)`: not clonable, the caller copies through plaintext.
    pub(in crate::fs) fn ext_clone(
        &self,
        src: &Node,
        off_in: u64,
        dst: &Node,
        off_out: u64,
        len: u64,
    ) -> Result<Option<u64>> {
        if !self.is_extent(src) || !self.is_extent(dst) || len == 0 {
            return Ok(None);
        }
        let (Some(sp), Some(dp)) = (src.ctx(), dst.ctx()) else {
            return Ok(None);
        };
        if sp.policy() != dp.policy() {
            return Ok(None);
        }
        let du = 1u64 << sp.policy().data_unit_bits(self.fsp);
        if !off_in.is_multiple_of(du) || !off_out.is_multiple_of(du) {
            return Ok(None);
        }
        if off_out
            .checked_add(len)
            .is_none_or(|e| e > crate::store::EXTENT_MAX_FILE_SIZE)
        {
            return Err(errno(Errno::FBIG, "copy beyond the maximum file size"));
        }
        // The clone length: clipped at the source's end; a partial final unit only when it also
        // reaches the destination's end, else whole units (the caller copies the rest).
        let clip = |src_size: u64, dst_size: u64| -> u64 {
            if off_in >= src_size {
                return 0;
            }
            let n = len.min(src_size - off_in);
            if n.is_multiple_of(du) || (off_in + n == src_size && off_out + n >= dst_size) {
                n
            } else {
                n - n % du
            }
        };
        if std::ptr::eq(src, dst) {
            let mut st = wlock(&dst.state);
            if let Some(a) = st.active() {
                a.prepare_write()?;
            }
            self.ext_writeout_locked(dst, &mut st, false)?;
            let ext = st.ext_mut().ok_or_else(not_loaded)?;
            let size = ext.file.logical_size();
            let n = clip(size, size);
            if n == 0 {
                return Ok(None);
            }
            let done = ext.file.clone_within(off_in, off_out, n)?;
            ext.size = ext.file.logical_size();
            return Ok(Some(done));
        }
        // Two nodes: both state locks, in inode order.
        let (mut sg, mut dg) = if src.ino < dst.ino {
            let s = wlock(&src.state);
            (s, wlock(&dst.state))
        } else {
            let d = wlock(&dst.state);
            (wlock(&src.state), d)
        };
        if let Some(a) = dg.active() {
            a.prepare_write()?;
        }
        self.ext_writeout_locked(src, &mut sg, false)?;
        self.ext_writeout_locked(dst, &mut dg, false)?;
        let sext = sg.ext().ok_or_else(not_loaded)?;
        let dext = dg.ext_mut().ok_or_else(not_loaded)?;
        let n = clip(sext.file.logical_size(), dext.file.logical_size());
        if n == 0 {
            return Ok(None);
        }
        let done = dext.file.clone_range(&sext.file, off_in, off_out, n)?;
        dext.size = dext.file.logical_size();
        Ok(Some(done))
    }
}

/// A per-extent file as the lookup that identified it opened and read it: the descriptor (read-write
/// where the backing store allows), the header's first [`HEADER_PREFIX`] bytes and the file's
/// length from the lookup's `fstat`.
pub(in crate::fs) struct OpenedLog {
    pub(in crate::fs) file: File,
    pub(in crate::fs) header: [u8; HEADER_PREFIX],
    pub(in crate::fs) len: u64,
}

/// The per-extent layout.
pub(super) struct PerExtent;

impl Contents for PerExtent {
    fn read(&self, io: &FileIo<'_>, off: u64, len: u32) -> Result<Vec<u8>> {
        io.eng.ext_read(io.node, io.reads, off, len)
    }
    fn write(&self, io: &FileIo<'_>, off: u64, data: &[u8]) -> Result<()> {
        io.eng.ext_write(io.node, off, data)
    }
    fn set_size(&self, io: &FileIo<'_>, new: u64) -> Result<()> {
        io.eng.ext_set_size(io.node, new)
    }
    fn allocate(&self, io: &FileIo<'_>, _off: u64, end: u64, keep_size: bool) -> Result<()> {
        io.eng.ext_allocate(io.node, end, keep_size)
    }
    fn punch_units(&self, io: &FileIo<'_>, lo: u64, hi: u64, size: u64) -> Result<()> {
        io.eng.ext_punch(io.node, lo, hi.min(size) - lo)
    }
    fn flush(
        &self,
        eng: &Engine<'_>,
        node: &Node,
        _file: Option<&File>,
        why: FlushFor,
    ) -> Result<()> {
        eng.ext_flush(node, why)
    }
}
