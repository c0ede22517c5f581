//! Contents of regular files in the per-extent layout (the btrfs v6 model): the filesystem side of
//! `store::extent`.
//!
//! Writes are buffered per inode, in whole data units of plaintext (a unit not yet buffered is read
//! first when the write covers it partly: read-modify-write), and become new extents only at
//! writeout: each run of consecutive buffered units is one `ExtentFile::write_extent` with a fresh
//! `ExtentContext` drawn then, its key derived then through the inode's `ActiveRef`
//! (`SecretNeed::Later`, so the master secret survives a soft key removal while the file is open).
//! Writeout happens at fsync, FLUSH, RELEASE, eviction, key removal (the locker), unmount and when
//! the buffer would exceed [`BUFFER_MAX`]; all but the last end with `ExtentFile::sync`. Reads
//! decrypt what the log maps and overlay the buffer. Truncation writes the buffer out first, then
//! appends a truncate record. Everything happens under the node's `state` lock (write for changes,
//! read for reads); the keyring's locks nest inside it, as everywhere.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};

use fscrypt::context::Context;
use fscrypt::extent::{ExtentContext, ExtentKey};
use fscrypt::keyring::{ActiveRef, SecretNeed};
use fscrypt::{Errno, Error, Result};
use rustix::fs::{Mode, OFlags};

use super::{errno, rlock, wlock, Fs, Kind, Node, State};
use crate::store::config::ContentsLayout;
use crate::store::extent::ExtentFile;
use crate::store::meta::{FileHeader, LAYOUT_EXTENT, LAYOUT_PER_FILE};
use crate::store::sys_err;

/// Most plaintext buffered per inode before a writeout is forced.
pub(super) const BUFFER_MAX: u64 = 4 << 20;

/// Longest extent one writeout appends (longer runs are split).
const EXTENT_MAX: u64 = 1 << 20;

/// The open log of a per-extent file and its write buffer.
pub(super) struct ExtState {
    pub(super) file: ExtentFile,
    du: u64,
    /// Buffered whole units of plaintext by unit index (bytes beyond the size are zero).
    buf: BTreeMap<u64, Vec<u8>>,
}

impl ExtState {
    pub(super) fn new(file: ExtentFile) -> Self {
        let du = file.data_unit_size() as u64;
        ExtState {
            file,
            du,
            buf: BTreeMap::new(),
        }
    }

    fn buffered(&self) -> u64 {
        self.buf.len() as u64 * self.du
    }
}

/// What an inode's reference must keep: the secret for per-extent regular files, else setup only.
pub(super) fn secret_need(kind: Kind, layout: u8) -> SecretNeed {
    if kind == Kind::File && layout == LAYOUT_EXTENT {
        SecretNeed::Later
    } else {
        SecretNeed::SetupOnly
    }
}

fn derive(active: Option<&ActiveRef>, ctx: &ExtentContext) -> Result<ExtentKey> {
    active
        .ok_or_else(|| Error::no_key("the file's encryption key is not available"))?
        .derive_extent_key(ctx)
}

fn not_loaded() -> Error {
    errno(Errno::IO, "per-extent file without its log loaded")
}

/// Opens a regular backing file (an `O_PATH` descriptor) read-write, or read-only where refused.
fn open_rw(fd: &OwnedFd) -> rustix::io::Result<OwnedFd> {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    match rustix::fs::open(&path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()) {
        Err(e) if e == Errno::ACCESS || e == Errno::ROFS || e == Errno::PERM => {
            rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        }
        r => r,
    }
}

impl Fs {
    /// The layout byte of a new regular file with context `ctx`: per-extent for encrypted files of
    /// an extent volume, else per-file.
    pub(super) fn new_file_layout(&self, kind: Kind, ctx: Option<&Context>) -> u8 {
        if kind == Kind::File && ctx.is_some() && self.opts.layout == ContentsLayout::Extent {
            LAYOUT_EXTENT
        } else {
            LAYOUT_PER_FILE
        }
    }

    /// True for a per-extent regular file.
    pub(super) fn is_extent(&self, node: &Node) -> bool {
        node.kind == Kind::File && rlock(&node.state).layout == LAYOUT_EXTENT
    }

    /// At lookup of a per-extent file not yet known: opens and recovers its log (its logical size
    /// is there, not in the header). No key is needed.
    pub(super) fn load_extent_state(
        &self,
        fd: &OwnedFd,
        h: FileHeader,
        what: &str,
    ) -> Result<(FileHeader, Option<ExtState>)> {
        if h.layout != LAYOUT_EXTENT || rlock(&self.nodes).contains_key(&h.ino) {
            return Ok((h, None));
        }
        let ctx = h
            .ctx
            .ok_or_else(|| Error::corrupt(format!("{what}: per-extent file without a context")))?;
        let policy = *ctx.policy();
        let du = 1usize << policy.data_unit_bits(&self.fsp);
        let f = File::from(open_rw(fd).map_err(|e| sys_err(what, e))?);
        let ef = ExtentFile::open(f, &policy, du)?;
        Ok((h, Some(ExtState::new(ef))))
    }

    /// Creates the log of a new per-extent file in `file` (empty, not yet named).
    pub(super) fn create_extent_file(
        &self,
        file: &File,
        ino: u64,
        ctx: &Context,
    ) -> Result<ExtState> {
        let f = file
            .try_clone()
            .map_err(|e| crate::store::io_err("new per-extent file", e))?;
        Ok(ExtState::new(ExtentFile::create(f, ino, ctx)?))
    }

    /// Reads `len` bytes at `off`: the log, then the buffer over it.
    pub(super) fn ext_read(&self, node: &Node, off: u64, len: u32) -> Result<Vec<u8>> {
        let st = rlock(&node.state);
        let size = st.size;
        if off >= size || len == 0 {
            return Ok(Vec::new());
        }
        let end = size.min(off.saturating_add(u64::from(len)));
        let ext = st.ext.as_ref().ok_or_else(not_loaded)?;
        let mut out = vec![0u8; (end - off) as usize];
        let active = st.active.as_ref();
        ext.file.read(off, &mut out, |c| derive(active, c))?;
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

    /// Accepts a write into the buffer (the caller checked permission and `prepare_write`).
    pub(super) fn ext_write(&self, node: &Node, off: u64, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let end = off
            .checked_add(data.len() as u64)
            .filter(|e| *e <= self.fsp.max_file_size)
            .ok_or_else(|| errno(Errno::FBIG, "write beyond the maximum file size"))?;
        let mut guard = wlock(&node.state);
        {
            let ext = guard.ext.as_ref().ok_or_else(not_loaded)?;
            if ext.buffered() > 0 && ext.buffered() + data.len() as u64 > BUFFER_MAX {
                self.ext_writeout_locked(node, &mut guard, false)?;
            }
        }
        let st = &mut *guard;
        let ext = st.ext.as_mut().ok_or_else(not_loaded)?;
        let active = st.active.as_ref();
        let du = ext.du;
        for idx in off / du..=(end - 1) / du {
            let us = idx * du;
            let lo = us.max(off);
            let hi = (us + du).min(end);
            if !ext.buf.contains_key(&idx) {
                let mut unit = vec![0u8; du as usize];
                if (lo != us || hi != us + du) && us < ext.file.logical_size() {
                    ext.file.read(us, &mut unit, |c| derive(active, c))?;
                }
                ext.buf.insert(idx, unit);
            }
            if let Some(unit) = ext.buf.get_mut(&idx) {
                unit[(lo - us) as usize..(hi - us) as usize]
                    .copy_from_slice(&data[(lo - off) as usize..(hi - off) as usize]);
            }
        }
        if end > st.size {
            st.size = end;
        }
        Ok(())
    }

    /// Writes the buffer out as new extents (each run of consecutive units one extent, with a
    /// fresh nonce and its key derived now), then, with `sync`, commits. Units written leave the
    /// buffer; on an error the rest stays buffered.
    pub(super) fn ext_writeout_locked(
        &self,
        node: &Node,
        st: &mut State,
        sync: bool,
    ) -> Result<()> {
        let State {
            ext,
            active,
            size,
            ctx,
            ..
        } = st;
        let Some(ext) = ext.as_mut() else {
            return Ok(());
        };
        if !ext.buf.is_empty() {
            let policy = *ctx
                .as_ref()
                .ok_or_else(|| Error::corrupt(format!("{}: no context", self.describe(node))))?
                .policy();
            let du = ext.du;
            while let Some((&first, _)) = ext.buf.first_key_value() {
                let mut last = first;
                while ext.buf.contains_key(&(last + 1)) && (last + 2 - first) * du <= EXTENT_MAX {
                    last += 1;
                }
                let start = first * du;
                let stop = ((last + 1) * du).min(*size);
                if stop > start {
                    let mut plain = Vec::with_capacity(((last + 1 - first) * du) as usize);
                    for i in first..=last {
                        if let Some(u) = ext.buf.get(&i) {
                            plain.extend_from_slice(u);
                        }
                    }
                    plain.truncate((stop - start) as usize);
                    let ectx = ExtentContext::new_random(&policy)?;
                    let key = derive(active.as_ref(), &ectx)?;
                    ext.file.write_extent(start, &plain, &ectx, &key)?;
                }
                for i in first..=last {
                    ext.buf.remove(&i);
                }
            }
        }
        if sync {
            ext.file.sync()?;
        }
        Ok(())
    }

    /// Writeout and commit (fsync, FLUSH, RELEASE, eviction, unmount).
    pub(super) fn ext_flush(&self, node: &Node) -> Result<()> {
        let mut st = wlock(&node.state);
        self.ext_writeout_locked(node, &mut st, true)
    }

    /// Changes the size: the buffer is written out first, then a truncate record (extending makes
    /// a hole).
    pub(super) fn ext_set_size(&self, node: &Node, new: u64) -> Result<()> {
        if new > self.fsp.max_file_size {
            return Err(errno(Errno::FBIG, "size beyond the maximum file size"));
        }
        let mut st = wlock(&node.state);
        self.ext_writeout_locked(node, &mut st, false)?;
        let ext = st.ext.as_mut().ok_or_else(not_loaded)?;
        ext.file.truncate(new)?;
        st.size = new;
        Ok(())
    }

    /// fallocate: mode 0 grows the size (a hole: a log has nothing to preallocate); KEEP_SIZE does
    /// nothing.
    pub(super) fn ext_allocate(&self, node: &Node, off: u64, len: u64, mode: i32) -> Result<()> {
        const KEEP_SIZE: i32 = 0x01;
        if mode & !KEEP_SIZE != 0 {
            return Err(errno(
                Errno::OPNOTSUPP,
                "only fallocate modes 0 and KEEP_SIZE are supported",
            ));
        }
        let end = off
            .checked_add(len)
            .filter(|e| *e <= self.fsp.max_file_size)
            .ok_or_else(|| errno(Errno::FBIG, "fallocate beyond the maximum file size"))?;
        if mode & KEEP_SIZE == 0 && end > rlock(&node.state).size {
            self.ext_set_size(node, end)?;
        }
        Ok(())
    }

    /// copy_file_range between per-extent files under the same policy, at unit-aligned offsets:
    /// a ciphertext clone (`ExtentFile::clone_range`: the source's extents keep their nonces and
    /// IVs; blocks shared with `FICLONERANGE` where the backing filesystem can). Both buffers are
    /// written out first. `Ok(None)`: not clonable, the caller copies through plaintext.
    pub(super) fn ext_clone(
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
        let du = 1u64 << sp.policy().data_unit_bits(&self.fsp);
        if !off_in.is_multiple_of(du) || !off_out.is_multiple_of(du) {
            return Ok(None);
        }
        if off_out
            .checked_add(len)
            .is_none_or(|e| e > self.fsp.max_file_size)
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
            if let Some(a) = st.active.as_ref() {
                a.prepare_write()?;
            }
            self.ext_writeout_locked(dst, &mut st, false)?;
            let ext = st.ext.as_mut().ok_or_else(not_loaded)?;
            let size = ext.file.logical_size();
            let n = clip(size, size);
            if n == 0 {
                return Ok(None);
            }
            let done = ext.file.clone_within(off_in, off_out, n)?;
            st.size = ext.file.logical_size();
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
        if let Some(a) = dg.active.as_ref() {
            a.prepare_write()?;
        }
        self.ext_writeout_locked(src, &mut sg, false)?;
        self.ext_writeout_locked(dst, &mut dg, false)?;
        let sext = sg.ext.as_ref().ok_or_else(not_loaded)?;
        let dext = dg.ext.as_mut().ok_or_else(not_loaded)?;
        let n = clip(sext.file.logical_size(), dext.file.logical_size());
        if n == 0 {
            return Ok(None);
        }
        let done = dext.file.clone_range(&sext.file, off_in, off_out, n)?;
        dg.size = dext.file.logical_size();
        Ok(Some(done))
    }
}
