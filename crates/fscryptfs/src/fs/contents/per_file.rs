//! Contents of regular files in the per-file-key layout ([`PerFile`]): the kernel's ciphertext,
//! in place.
//!
//! Data unit `i` of a file lives at backing offset `4096 + i * du` and is exactly what the kernel
//! would store for it (`InodeKey::encrypt_data_unit(i, ..)` with the file's own key and IVs); the
//! final partial unit is zero-padded and encrypted whole. A backing unit that is all zeros is a hole
//! and reads as zeros. Unencrypted files keep their plaintext at the same offsets.
//!
//! Orderings (docs/FORMAT.md repeats them): an extending write puts its data first and records the
//! new size in memory. At FLUSH and RELEASE the size becomes a *pending size* in the header
//! (`store::pending`: no sync; trusted only while the page cache holding the data lives), and the
//! writeout thread commits it after the commit interval; fsync, setattr, eviction and unmount
//! commit at once. A committed size is written only after an `fdatasync` of the data, so the
//! committed size on disk never gets ahead of the data on disk. A truncation
//! down writes the smaller size first and then cuts the data; an extension first drops any stale tail
//! beyond the old size, then grows, then records the size. Units beyond the recorded size are never
//! trusted: they read as zeros and are overwritten whole. Nor are the bytes beyond the size in its
//! final partial unit: before the first change in a mount they are zeroed (re-encrypted) if a crash
//! left data there, so an extension never exposes them.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use fscrypt::keysetup::InodeKey;
use fscrypt::{Errno, Error, Result};

use super::layout::{Contents, FileIo};
use super::{Engine, FlushFor};
use crate::fs::locks::{rlock, wlock};
use crate::fs::node::{Node, PerFileState, State};
use crate::fs::read_order::in_order;
use crate::fs::types::errno;
use crate::store::meta::FileHeader;
use crate::store::pending::{self, CacheEpoch};
use crate::store::{io_err, FILE_HEADER_SIZE};
use crate::store::{read_full_at, read_up_to_at};

/// The plaintext data-unit size of a file (4096 for unencrypted files).
fn unit_size(key: Option<&InodeKey>) -> u64 {
    key.map_or(4096, |k| k.data_unit_size() as u64)
}

pub(super) fn round_up(x: u64, du: u64) -> u64 {
    x.div_ceil(du) * du
}

impl Engine<'_> {
    /// Reads `len` bytes at `off` through a handle's key; the backing read passes the handle's
    /// read gate when there is one (decryption does not wait for it).
    fn pf_read(&self, io: &FileIo<'_>, off: u64, len: u32) -> Result<Vec<u8>> {
        let (node, file, key) = (io.node, io.file, io.key);
        let st = rlock(&node.state);
        let size = st.size();
        if off >= size || len == 0 {
            return Ok(Vec::new());
        }
        let end = size.min(off.saturating_add(u64::from(len)));
        let what = || self.describe(node);
        let Some(k) = key else {
            let mut buf = in_order(io.reads, off, len, || {
                read_up_to_at(file, (end - off) as usize, FILE_HEADER_SIZE + off)
            })
            .map_err(|e| io_err(what(), e))?;
            // A backing file shorter than the size (a hole at its end) reads as zeros.
            buf.resize((end - off) as usize, 0);
            return Ok(buf);
        };
        let du = k.data_unit_size() as u64;
        let first = off / du;
        let last = (end - 1) / du;
        let units = ((last - first + 1) * du) as usize;
        let mut buf = in_order(io.reads, off, len, || {
            read_up_to_at(file, units, FILE_HEADER_SIZE + first * du)
        })
        .map_err(|e| io_err(what(), e))?;
        buf.resize(units, 0);
        for (i, unit) in buf.chunks_mut(du as usize).enumerate() {
            decrypt_unit(k, first + i as u64, unit)?;
        }
        let start = (off - first * du) as usize;
        buf.drain(..start);
        buf.truncate((end - off) as usize);
        Ok(buf)
    }

    /// Writes `data` at `off` (the caller checked permission and `prepare_write`).
    fn pf_write(
        &self,
        node: &Node,
        file: &File,
        key: Option<&InodeKey>,
        off: u64,
        data: &[u8],
    ) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let end = off
            .checked_add(data.len() as u64)
            .filter(|e| *e <= self.fsp.max_file_size)
            .ok_or_else(|| errno(Errno::FBIG, "write beyond the maximum file size"))?;
        let what = || self.describe(node);
        if let Some(k) = key {
            let du = k.data_unit_size() as u64;
            if off.is_multiple_of(du) && end.is_multiple_of(du) {
                // Whole units (the page cache's writeback): nothing to read first, so they are
                // encrypted before the lock (writes to one file encrypt in parallel) and only the
                // store and the size are serialized. A read-modify-write of a unit holds the lock
                // across its read and its write, so this lands wholly before or after it.
                let buf = encrypt_copy(k, off / du, data)?;
                let mut st = wlock(&node.state);
                self.trim_stale_tail(node, file, key, &mut st)?;
                file.write_all_at(&buf, FILE_HEADER_SIZE + off)
                    .map_err(|e| io_err(what(), e))?;
                return self.pf_grew(&mut st, end);
            }
        }
        let mut st = wlock(&node.state);
        self.trim_stale_tail(node, file, key, &mut st)?;
        match key {
            None => file
                .write_all_at(data, FILE_HEADER_SIZE + off)
                .map_err(|e| io_err(what(), e))?,
            Some(k) => {
                let du = k.data_unit_size() as u64;
                let first = off / du;
                let last = (end - 1) / du;
                let mut buf = vec![0u8; ((last - first + 1) * du) as usize];
                if !off.is_multiple_of(du) {
                    self.load_unit(node, file, k, st.size(), first, &mut buf[..du as usize])?;
                }
                if end % du != 0 && (last != first || off.is_multiple_of(du)) {
                    let at = ((last - first) * du) as usize;
                    self.load_unit(
                        node,
                        file,
                        k,
                        st.size(),
                        last,
                        &mut buf[at..at + du as usize],
                    )?;
                }
                let start = (off - first * du) as usize;
                buf[start..start + data.len()].copy_from_slice(data);
                k.encrypt_data_units(first, &mut buf)?;
                file.write_all_at(&buf, FILE_HEADER_SIZE + first * du)
                    .map_err(|e| io_err(what(), e))?;
            }
        }
        self.pf_grew(&mut st, end)
    }

    /// After a write ending at `end`: the size grows to it (the header says so at the next flush).
    fn pf_grew(&self, st: &mut State, end: u64) -> Result<()> {
        let pf = per_file(st)?;
        if end > pf.size {
            pf.set_dirty_size(end);
        }
        Ok(())
    }

    /// Plaintext of unit `idx` into `dst` (zeros beyond `size` and for holes).
    fn load_unit(
        &self,
        node: &Node,
        file: &File,
        k: &InodeKey,
        size: u64,
        idx: u64,
        dst: &mut [u8],
    ) -> Result<()> {
        let du = dst.len() as u64;
        dst.fill(0);
        if idx * du >= size {
            return Ok(());
        }
        read_full_at(file, dst, FILE_HEADER_SIZE + idx * du)
            .map_err(|e| io_err(self.describe(node), e))?;
        decrypt_unit(k, idx, dst)?;
        if size < (idx + 1) * du {
            dst[(size - idx * du) as usize..].fill(0);
        }
        Ok(())
    }

    /// Once per mount and file, before the first change: cuts backing data beyond the last unit of
    /// the recorded size and zeroes the bytes beyond the size inside that last unit, re-encrypting
    /// it (both left by a crash between a data write and its size update: an extending write may
    /// have filled the old partial unit). Without the second step a later extension that does not
    /// rewrite that unit would expose the stale bytes between the old and the new size.
    fn trim_stale_tail(
        &self,
        node: &Node,
        file: &File,
        key: Option<&InodeKey>,
        st: &mut State,
    ) -> Result<()> {
        let size = match st.per_file() {
            Some(p) if p.trimmed => return Ok(()),
            Some(p) => p.size,
            None => return Err(not_per_file()),
        };
        let want = FILE_HEADER_SIZE + round_up(size, unit_size(key));
        let have = file
            .metadata()
            .map_err(|e| io_err(self.describe(node), e))?
            .len();
        if have > want {
            tracing::warn!(
                "{}: dropping {} bytes beyond the recorded size",
                self.describe(node),
                have - want
            );
            file.set_len(want)
                .map_err(|e| io_err(self.describe(node), e))?;
        }
        self.zero_partial_tail(node, file, key, size)?;
        per_file(st)?.trimmed = true;
        Ok(())
    }

    /// Makes the bytes of the final partial unit beyond `size` zeros on disk (when they are not).
    fn zero_partial_tail(
        &self,
        node: &Node,
        file: &File,
        key: Option<&InodeKey>,
        size: u64,
    ) -> Result<()> {
        let du = unit_size(key);
        let keep = (size % du) as usize;
        if keep == 0 {
            return Ok(());
        }
        let what = || self.describe(node);
        let idx = size / du;
        let mut unit = vec![0u8; du as usize];
        read_full_at(file, &mut unit, FILE_HEADER_SIZE + idx * du)
            .map_err(|e| io_err(what(), e))?;
        // An all-zero encrypted unit is a hole: zeros throughout.
        if let Some(k) = key {
            if unit.iter().any(|&b| b != 0) {
                decrypt_unit(k, idx, &mut unit)?;
            }
        }
        if unit[keep..].iter().all(|&b| b == 0) {
            return Ok(());
        }
        unit[keep..].fill(0);
        match key {
            None => file.write_all_at(&unit[keep..], FILE_HEADER_SIZE + size),
            Some(k) => {
                k.encrypt_data_unit(idx, &mut unit)?;
                file.write_all_at(&unit, FILE_HEADER_SIZE + idx * du)
            }
        }
        .map_err(|e| io_err(what(), e))?;
        tracing::warn!(
            "{}: zeroed stale bytes beyond the recorded size in its last data unit",
            self.describe(node)
        );
        Ok(())
    }

    /// Changes the size (truncate / ftruncate / O_TRUNC / fallocate growth).
    fn pf_set_size(
        &self,
        node: &Node,
        file: &File,
        key: Option<&InodeKey>,
        new: u64,
    ) -> Result<()> {
        if new > self.fsp.max_file_size {
            return Err(errno(Errno::FBIG, "size beyond the maximum file size"));
        }
        let mut st = wlock(&node.state);
        self.trim_stale_tail(node, file, key, &mut st)?;
        let what = || self.describe(node);
        let du = unit_size(key);
        let old = st.size();
        if new < old {
            // Size first, then cut: a crash in between leaves a tail that is trimmed later.
            per_file(&mut st)?.set_dirty_size(new);
            self.write_header(node, file, &mut st)?;
            if let Some(k) = key {
                if !new.is_multiple_of(du) {
                    let idx = new / du;
                    let mut unit = vec![0u8; du as usize];
                    self.load_unit(node, file, k, new, idx, &mut unit)?;
                    k.encrypt_data_unit(idx, &mut unit)?;
                    file.write_all_at(&unit, FILE_HEADER_SIZE + idx * du)
                        .map_err(|e| io_err(what(), e))?;
                }
            } else if !new.is_multiple_of(du) {
                // Zero the rest of the last block, so a later extension reads zeros.
                let zeros = vec![0u8; (du - new % du) as usize];
                file.write_all_at(&zeros, FILE_HEADER_SIZE + new)
                    .map_err(|e| io_err(what(), e))?;
            }
            file.set_len(FILE_HEADER_SIZE + round_up(new, du))
                .map_err(|e| io_err(what(), e))?;
        } else if new > old {
            // Data (holes) first, then the size.
            file.set_len(FILE_HEADER_SIZE + round_up(new, du))
                .map_err(|e| io_err(what(), e))?;
            per_file(&mut st)?.set_dirty_size(new);
            self.flush_size_locked(node, file, &mut st, false)?;
        }
        Ok(())
    }

    /// fallocate mode 0 and FALLOC_FL_KEEP_SIZE over `[off, end)`: the backing range is
    /// allocated (zeros read as holes), and the size grows unless `keep_size`.
    fn pf_allocate(
        &self,
        node: &Node,
        file: &File,
        key: Option<&InodeKey>,
        off: u64,
        end: u64,
        keep_size: bool,
    ) -> Result<()> {
        let du = unit_size(key);
        {
            let mut st = wlock(&node.state);
            self.trim_stale_tail(node, file, key, &mut st)?;
            // Allocation past the last unit must not let the next extension trust stale bytes:
            // fallocated ranges read as zeros, which decrypt to zeros (holes).
            let start = FILE_HEADER_SIZE + (off / du) * du;
            let blen = FILE_HEADER_SIZE + round_up(end, du) - start;
            let flags = if keep_size || end <= st.size() {
                rustix::fs::FallocateFlags::KEEP_SIZE
            } else {
                rustix::fs::FallocateFlags::empty()
            };
            rustix::fs::fallocate(file, flags, start, blen)
                .map_err(|e| crate::store::sys_err(self.describe(node), e))?;
        }
        if !keep_size && end > rlock(&node.state).size() {
            self.pf_set_size(node, file, key, end)?;
        }
        Ok(())
    }

    /// Drops the whole data units `[whole_lo, whole_hi)` (holes in the backing file; zero bytes
    /// where the backing filesystem cannot punch).
    fn pf_punch_units(
        &self,
        node: &Node,
        file: &File,
        key: Option<&InodeKey>,
        whole_lo: u64,
        whole_hi: u64,
    ) -> Result<()> {
        let mut st = wlock(&node.state);
        self.trim_stale_tail(node, file, key, &mut st)?;
        let flags = rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
        match rustix::fs::fallocate(
            file,
            flags,
            FILE_HEADER_SIZE + whole_lo,
            whole_hi - whole_lo,
        ) {
            Ok(()) => Ok(()),
            Err(e) if e == Errno::OPNOTSUPP => {
                // The backing filesystem cannot punch: write zero bytes (holes all the same).
                drop(st);
                let zeros = vec![0u8; 1 << 20];
                let mut at = FILE_HEADER_SIZE + whole_lo;
                let stop = FILE_HEADER_SIZE + whole_hi;
                while at < stop {
                    let n = (stop - at).min(zeros.len() as u64) as usize;
                    file.write_all_at(&zeros[..n], at)
                        .map_err(|e| io_err(self.describe(node), e))?;
                    at += n as u64;
                }
                Ok(())
            }
            Err(e) => Err(crate::store::sys_err(self.describe(node), e)),
        }
    }

    /// Writes the header with the current size committed (and no pending size record).
    fn write_header(&self, node: &Node, file: &File, st: &mut State) -> Result<()> {
        write_committed(node, file, st, &self.described(node))
    }

    /// The size into the header as a committed size: the data synced first when the header is
    /// behind (`size_dirty`, or a pending size not yet committed); with `sync`, the whole file
    /// synced after.
    fn flush_size_locked(
        &self,
        node: &Node,
        file: &File,
        st: &mut State,
        sync: bool,
    ) -> Result<()> {
        commit_locked(node, file, st, sync, &self.described(node))
    }

    /// Records a changed size in the header (FLUSH, RELEASE, fsync, eviction, unmount; `why`). At
    /// close it becomes a pending size where the backing store has a cache epoch (no sync: the
    /// writeout thread commits it); fsync, eviction and unmount commit it. An evicted file without
    /// a name needs no size at all. With `file` None a descriptor is opened for it.
    ///
    /// An evicted node leaves no pending state behind, even when its commit fails: the writeout
    /// thread may still hold it, and must never write a header for it once a new node for the
    /// same file may exist (that node reads the pending record and takes the commit over).
    fn pf_flush(&self, node: &Node, file: Option<&File>, why: FlushFor) -> Result<()> {
        let r = self.pf_flush_as(node, file, why);
        if why == FlushFor::Evict {
            if let Some(p) = wlock(&node.state).per_file_mut() {
                p.size_dirty = false;
                p.uncommitted = None;
            }
        }
        r
    }

    fn pf_flush_as(&self, node: &Node, file: Option<&File>, why: FlushFor) -> Result<()> {
        let needed = |st: &State| {
            st.per_file().is_some_and(|p| match why {
                FlushFor::Fsync => true,
                FlushFor::Close => p.size_dirty,
                FlushFor::Evict | FlushFor::Unmount => p.size_dirty || p.uncommitted.is_some(),
            })
        };
        if !needed(&rlock(&node.state)) {
            return Ok(());
        }
        if why == FlushFor::Evict && !node.has_name() {
            return Ok(());
        }
        // Opened before the state lock is taken (`backing_for_change` reads the state).
        let opened;
        let f = match file {
            Some(f) => f,
            None => {
                opened = self.backing_for_change(node)?;
                &opened
            }
        };
        let mut st = wlock(&node.state);
        if !needed(&st) {
            return Ok(());
        }
        match self.pending_epoch(node).filter(|_| why == FlushFor::Close) {
            Some(epoch) => {
                let pf = per_file(&mut st)?;
                let header = node.header_lock();
                pending::write_pending(f, epoch, pf.size, &self.described(node))?;
                drop(header);
                pf.size_dirty = false;
                pf.uncommitted.get_or_insert_with(Instant::now);
                Ok(())
            }
            None => self.flush_size_locked(node, f, &mut st, why == FlushFor::Fsync),
        }
    }

    /// The cache epoch under which `node`'s size may be recorded as pending: the volume's, for a
    /// file on the backing root's own filesystem.
    fn pending_epoch(&self, node: &Node) -> Option<&CacheEpoch> {
        let dev = node.backing_dev()?;
        self.pending_sizes.filter(|e| e.covers(dev))
    }

    /// The backing file of a regular node for a change the daemon makes itself (a size written
    /// at eviction or unmount, a truncate without a handle): a duplicate of a per-file node's
    /// kept descriptor where there is a writable one (no backing call), else opened read-write.
    /// Never for a user's open: the kept descriptor does not update the atime, their reads must.
    pub(in crate::fs) fn backing_for_change(&self, node: &Node) -> Result<File> {
        let kept = rlock(&node.state).kept_file();
        if let Some(f) = kept {
            return Ok(f);
        }
        self.open_backing(node, true)
    }

    /// Opens the backing file of a regular node (read-write when `write`, else read-write if
    /// possible and read-only otherwise: the kernel may read-modify-write partial units); a
    /// per-extent file's log hears of it (`ext_opened_by_user`).
    pub(in crate::fs) fn open_backing(&self, node: &Node, write: bool) -> Result<File> {
        use crate::store::io as store_io;
        if let Some(why) = rlock(&node.state).corrupt_why() {
            return Err(Error::corrupt(why.to_string()));
        }
        let access = if write {
            store_io::Access::ReadWrite
        } else {
            store_io::Access::ReadWriteOrRead
        };
        let file = store_io::reopen_file(&node.fd(), access, &self.described(node))?;
        self.ext_opened_by_user(node, &file)?;
        Ok(file)
    }
}

/// Decrypts one unit in place; an all-zero unit is a hole and stays zeros.
fn decrypt_unit(k: &InodeKey, idx: u64, unit: &mut [u8]) -> Result<()> {
    if unit.iter().all(|&b| b == 0) {
        return Ok(());
    }
    k.decrypt_data_unit(idx, unit)
        .map_err(|e| Error::new(Errno::IO, format!("decrypting data unit {idx}: {e}")))
}

/// The per-file-key layout.
pub(super) struct PerFile;

impl Contents for PerFile {
    fn read(&self, io: &FileIo<'_>, off: u64, len: u32) -> Result<Vec<u8>> {
        io.eng.pf_read(io, off, len)
    }
    fn write(&self, io: &FileIo<'_>, off: u64, data: &[u8]) -> Result<()> {
        io.eng.pf_write(io.node, io.file, io.key, off, data)
    }
    fn set_size(&self, io: &FileIo<'_>, new: u64) -> Result<()> {
        io.eng.pf_set_size(io.node, io.file, io.key, new)
    }
    fn allocate(&self, io: &FileIo<'_>, off: u64, end: u64, keep_size: bool) -> Result<()> {
        io.eng
            .pf_allocate(io.node, io.file, io.key, off, end, keep_size)
    }
    fn punch_units(&self, io: &FileIo<'_>, lo: u64, hi: u64, _size: u64) -> Result<()> {
        io.eng.pf_punch_units(io.node, io.file, io.key, lo, hi)
    }
    fn flush(
        &self,
        eng: &Engine<'_>,
        node: &Node,
        file: Option<&File>,
        why: FlushFor,
    ) -> Result<()> {
        eng.pf_flush(node, file, why)
    }
}

/// The size state of a per-file regular file (EIO for any other node: the caller dispatched it
/// here by its layout).
fn per_file(st: &mut State) -> Result<&mut PerFileState> {
    st.per_file_mut().ok_or_else(not_per_file)
}

/// Writes the header of per-file file `node` open as `file` with its current size committed and no
/// pending size record (`store::pending::write_committed`), under its header lock; `what` names it
/// in errors.
fn write_committed(
    node: &Node,
    file: &File,
    st: &mut State,
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<()> {
    let ctx = st.ctx();
    let pf = per_file(st)?;
    let h = FileHeader {
        layout: crate::store::config::ContentsLayout::PerFile,
        ino: node.ino,
        size: pf.size,
        ctx,
    };
    let header = node.header_lock();
    pending::write_committed(file, &h, what)?;
    drop(header);
    pf.size_dirty = false;
    pf.uncommitted = None;
    Ok(())
}

/// The current size committed when the header is behind it: the data synced, then the header
/// written; with `sync`, the whole file synced after.
fn commit_locked(
    node: &Node,
    file: &File,
    st: &mut State,
    sync: bool,
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<()> {
    if st
        .per_file()
        .is_some_and(|p| p.size_dirty || p.uncommitted.is_some())
    {
        // The data reaches the disk before the size that covers it.
        file.sync_data().map_err(|e| io_err(what, e))?;
        write_committed(node, file, st, what)?;
    }
    if sync {
        file.sync_all().map_err(|e| io_err(what, e))?;
    }
    Ok(())
}

/// Commits `node`'s pending size if it has been pending since `before` or earlier (the writeout
/// thread, once the commit interval has passed). The node's lock is taken only after its backing
/// file is opened; eviction leaves no pending state under that lock (`pf_flush`), so an evicted
/// node is never written here.
pub(in crate::fs) fn commit_pending(node: &Node, before: Instant) -> Result<()> {
    let what = format!("inode {}", node.ino);
    let due = |st: &State| {
        st.per_file()
            .and_then(|p| p.uncommitted)
            .is_some_and(|t| t <= before)
    };
    if !due(&rlock(&node.state)) {
        return Ok(());
    }
    let kept = rlock(&node.state).kept_file();
    let file = match kept {
        Some(f) => Ok(f),
        None => {
            crate::store::io::reopen_file(&node.fd(), crate::store::io::Access::ReadWrite, &what)
        }
    };
    let mut st = wlock(&node.state);
    if !due(&st) {
        return Ok(());
    }
    let done = file.and_then(|f| commit_locked(node, &f, &mut st, false, &what));
    if done.is_err() {
        // Tried again after another interval, not at every tick.
        if let Some(p) = st.per_file_mut() {
            p.uncommitted = Some(Instant::now());
        }
    }
    done
}

fn not_per_file() -> Error {
    errno(
        Errno::IO,
        "per-file contents operation on another kind of node",
    )
}

/// The ciphertext of whole data units `data`, the first being unit `first`: each unit copied and
/// encrypted while it is in the cache, into a buffer that is never zeroed first.
fn encrypt_copy(k: &InodeKey, first: u64, data: &[u8]) -> Result<Vec<u8>> {
    let du = k.data_unit_size();
    let mut out = Vec::with_capacity(data.len());
    for (i, unit) in data.chunks(du).enumerate() {
        let at = out.len();
        out.extend_from_slice(unit);
        k.encrypt_data_units(first + i as u64, &mut out[at..])?;
    }
    Ok(out)
}
