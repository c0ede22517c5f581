//! Open files and directories (the table of handles is `fs::handle_table`): OPEN/RELEASE (with the open count the key
//! locker respects), READ/WRITE through the contents path, READDIR, FLUSH/FSYNC, FALLOCATE and
//! COPY_FILE_RANGE.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use fscrypt::{Errno, Result};

use super::contents::FlushFor;
use super::handle_table::Handle;
use super::locks::{lock, rlock};
use super::mount::{Fs, SLOW_GROUPS};
use super::node::{check_usable, Kind, Node};
use super::types::{errno, Creds, DirEnt, Entry, FileType};
use crate::store::sys_err;

/// Most entries one READDIRPLUS reply is filled from (a reply of the kernel's size holds fewer).
const READDIRPLUS_BATCH: usize = 256;

/// The smallest READDIRPLUS reply the kernel asks for (one page): entries are looked up ahead in
/// groups, the first of which fills about this much and each next one as much as all before it,
/// so few are looked up only to be given back.
const READDIRPLUS_REPLY: usize = 4096;

/// A lookup slower than this means a backing store whose calls are round trips (a network
/// filesystem): a READDIRPLUS then looks its names up in parallel, once [`SLOW_GROUPS`] groups in
/// a row were that slow.
const SLOW_LOOKUP: std::time::Duration = std::time::Duration::from_micros(150);

/// Threads that look names up at once for one READDIRPLUS reply on a slow backing store.
const LOOKUP_THREADS: usize = 8;

/// The bytes a READDIRPLUS entry named `name` takes in the reply (`fuse_direntplus`: the entry
/// out, the dirent header, the name, aligned to 8).
fn direntplus_len(name: &OsStr) -> usize {
    (128 + 24 + name.len()).next_multiple_of(8)
}

impl Fs {
    pub(super) fn do_open(&self, req: &Creds, ino: u64, flags: i32) -> Result<u64> {
        let node = self.inodes.node(ino)?;
        let accmode = flags & libc::O_ACCMODE;
        let write = accmode != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        if write {
            self.check_writable()?;
        }
        match node.kind {
            Kind::File => {
                // Busy from here on (the locker re-checks `opens` under the state lock).
                lock(&node.meta).opens += 1;
                let r = (|| {
                    let key = self.ensure_key(&node)?;
                    let file = self.contents().open_backing(&node, write)?;
                    if flags & libc::O_TRUNC != 0 {
                        if let Some(a) = rlock(&node.state).active() {
                            a.prepare_write()?;
                        }
                        self.contents().set_size(&node, &file, key.as_deref(), 0)?;
                    }
                    Ok((file, key))
                })();
                match r {
                    Ok((file, key)) => {
                        Ok(self.handles.add_reserved(&node, Some(file), key, req.pid()))
                    }
                    Err(e) => {
                        {
                            let mut m = lock(&node.meta);
                            m.opens = m.opens.saturating_sub(1);
                        }
                        self.maybe_lock_after_close(&node);
                        Err(e)
                    }
                }
            }
            Kind::Dir => {
                check_usable(&node)?;
                Ok(self.handles.add(&node, None, None, req.pid()))
            }
            _ => Err(errno(
                Errno::NXIO,
                "cannot open this file type through fscryptfs",
            )),
        }
    }

    pub(super) fn do_release(&self, fh: u64) -> Result<()> {
        let Some(h) = self.handles.remove(fh) else {
            return Err(errno(Errno::BADF, "no such handle"));
        };
        let node = Arc::clone(&h.node);
        let res = match h.file() {
            Some(f) => self.contents().flush_size(&node, Some(&f), FlushFor::Close),
            None => Ok(()),
        };
        self.contents().ext_maybe_compact(&node);
        let gone = {
            let mut m = lock(&node.meta);
            m.opens = m.opens.saturating_sub(1);
            if h.flushed.load(Ordering::Relaxed) {
                m.flushed = m.flushed.saturating_sub(1);
            }
            if let Some(i) = m.pids.iter().position(|p| *p == h.pid) {
                m.pids.remove(i);
            }
            m.opens == 0 && m.lookups == 0
        };
        drop(h);
        self.maybe_lock_after_close(&node);
        if gone && self.inodes.unlist_if_unused(&node) {
            self.finish_eviction(&node);
        }
        res
    }

    pub(super) fn touch_handle(&self, h: &Handle) {
        if h.flushed.swap(false, Ordering::Relaxed) {
            let mut m = lock(&h.node.meta);
            m.flushed = m.flushed.saturating_sub(1);
        }
    }

    /// `writeback`: the kernel is writing back pages of its cache (`FUSE_WRITE_CACHE`: shared
    /// `mmap` stores), data the application already wrote. That is writeout (SEMANTICS.md §3.2),
    /// never refused by deny-writes.
    pub(super) fn do_write(&self, fh: u64, off: u64, data: &[u8], writeback: bool) -> Result<u32> {
        self.check_writable()?;
        let h = self.handles.get(fh)?;
        self.touch_handle(&h);
        let file = h
            .file()
            .ok_or_else(|| errno(Errno::BADF, "not a file handle"))?;
        if !writeback {
            if let Some(a) = rlock(&h.node.state).active() {
                a.prepare_write()?;
            }
        }
        self.contents()
            .write_data(&h.node, &file, h.key.as_deref(), off, data)?;
        // A write may have written the buffer out (full): the log may want compacting.
        self.contents().ext_maybe_compact(&h.node);
        Ok(data.len() as u32)
    }

    pub(super) fn do_read(&self, fh: u64, off: u64, size: u32) -> Result<Vec<u8>> {
        let h = self.handles.get(fh)?;
        self.touch_handle(&h);
        let file = h
            .file()
            .ok_or_else(|| errno(Errno::BADF, "not a file handle"))?;
        let reads = self.round_trips.then_some(&h.reads);
        self.contents()
            .read_data(&h.node, &file, h.key.as_deref(), reads, off, size)
    }

    pub(super) fn list_dir(&self, node: &Node) -> Result<Vec<DirEnt>> {
        let what = self.describe_lazy(node);
        let dk = self.dir_key(node)?;
        let dfd = crate::store::io::open_listing(&*node.fd(), &what)?;
        let parent = if node.ino == crate::store::config::ROOT_INO {
            node.ino
        } else {
            lock(&node.meta).parent
        };
        let mut out = vec![
            DirEnt {
                ino: node.ino,
                kind: FileType::Directory,
                name: OsString::from("."),
            },
            DirEnt {
                ino: parent,
                kind: FileType::Directory,
                name: OsString::from(".."),
            },
        ];
        let dev = rustix::fs::fstat(&dfd)
            .map_err(|e| sys_err(&what, e))?
            .st_dev;
        let d = rustix::fs::Dir::read_from(&dfd).map_err(|e| sys_err(&what, e))?;
        for ent in d {
            let ent = ent.map_err(|e| sys_err(&what, e))?;
            let b = ent.file_name().to_bytes();
            if b == b"." || b == b".." {
                continue;
            }
            let bname = OsStr::from_bytes(b);
            let Some(shown) = self.display_name(&node.fd(), &dk, bname) else {
                continue;
            };
            let kind = FileType::from_backing(ent.file_type());
            // No I/O per entry: the stable number if this mount has seen the object, else
            // FUSE_UNKNOWN_INO, as libfuse reports without `use_ino` (stat always has the real one).
            let ino = self
                .inodes
                .known_ino(dev, ent.ino())
                .unwrap_or(u64::from(u32::MAX));
            out.push(DirEnt {
                ino,
                kind,
                name: shown,
            });
        }
        Ok(out)
    }

    /// READDIR: entries from `offset` on, each given to `add` with the offset of the next until it
    /// says the reply is full.
    pub(super) fn do_readdir(
        &self,
        fh: u64,
        offset: u64,
        mut add: impl FnMut(&DirEnt, u64) -> bool,
    ) -> Result<()> {
        let h = self.handles.get(fh)?;
        if offset == 0 {
            let list = self.list_dir(&h.node)?;
            *lock(&h.entries) = list;
        }
        let entries = lock(&h.entries);
        for (i, e) in entries.iter().enumerate().skip(offset as usize) {
            if add(e, (i + 1) as u64) {
                break;
            }
        }
        Ok(())
    }

    /// READDIRPLUS: as READDIR, each entry with its attributes, so a listing followed by a stat of
    /// every name (`ls -l`, `find`) costs no LOOKUP per name. Every entry but `.` and `..` is a
    /// lookup (the kernel counts it and will FORGET it); an entry the reply has no room for is
    /// given back at once. A name that cannot be looked up any more (gone since the listing was
    /// read, or damaged) is sent without attributes (node 0: the kernel links nothing for it).
    pub(super) fn do_readdirplus(
        &self,
        fh: u64,
        offset: u64,
        mut add: impl FnMut(&DirEnt, u64, Option<&Entry>) -> bool,
    ) -> Result<()> {
        let h = self.handles.get(fh)?;
        if offset == 0 {
            let list = self.list_dir(&h.node)?;
            *lock(&h.entries) = list;
        }
        // A copy of what one reply can hold at most, so no lock is held across the lookups.
        let entries: Vec<DirEnt> = lock(&h.entries)
            .iter()
            .skip(offset as usize)
            .take(READDIRPLUS_BATCH)
            .cloned()
            .collect();
        let mut at = 0;
        // Bytes of the groups so far: the next group is as large again (a reply of the kernel's
        // size is a power of two from one page up, so the groups end about where such a reply
        // fills, and a 32 KiB reply is four groups, not eight: each parallel group wakes the
        // lookup threads once).
        let mut looked = 0;
        while at < entries.len() {
            // The next group (at least one entry).
            let size = looked.max(READDIRPLUS_REPLY);
            let mut end = at;
            let mut bytes = 0;
            while end < entries.len() && (end == at || bytes < size) {
                bytes += direntplus_len(&entries[end].name);
                end += 1;
            }
            looked += bytes;
            let group = &entries[at..end];
            let parallel = self.slow_lookups.load(Ordering::Relaxed) >= SLOW_GROUPS;
            let started = std::time::Instant::now();
            let mut found = self.lookup_group(h.node.ino, group, parallel).into_iter();
            if !parallel {
                if started.elapsed() >= SLOW_LOOKUP * group.len() as u32 {
                    self.slow_lookups.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.slow_lookups.store(0, Ordering::Relaxed);
                }
            }
            for (i, e) in group.iter().enumerate() {
                let entry = found.next().flatten();
                if add(e, offset + (at + i) as u64 + 1, entry.as_ref()) {
                    // The reply is full: this entry and the rest of the group are given back.
                    for en in std::iter::once(entry).chain(found).flatten() {
                        self.forget(en.attr.ino, 1);
                    }
                    return Ok(());
                }
            }
            at = end;
        }
        Ok(())
    }

    /// The entries of `group` (names in directory `dir`; none for `.`, `..` and names that
    /// cannot be looked up), looked up by [`LOOKUP_THREADS`] threads at once when `parallel`:
    /// on a network filesystem each lookup is several round trips, and they do not depend on
    /// each other. The threads are started once and kept (not started per reply).
    fn lookup_group(&self, dir: u64, group: &[DirEnt], parallel: bool) -> Vec<Option<Entry>> {
        use rayon::prelude::*;
        let look = |e: &DirEnt| {
            if e.name == "." || e.name == ".." {
                None
            } else {
                self.do_lookup(dir, &e.name).ok()
            }
        };
        let pool = (parallel && group.len() > 1)
            .then(|| self.lookup_pool())
            .flatten();
        match pool {
            Some(pool) => pool.install(|| group.par_iter().with_max_len(1).map(look).collect()),
            None => group.iter().map(look).collect(),
        }
    }

    /// The lookup threads, started at the first parallel lookup (from a request thread, so
    /// with the termination signals blocked, as every thread but the signal thread must be).
    fn lookup_pool(&self) -> Option<&rayon::ThreadPool> {
        self.lookup_pool
            .get_or_init(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(LOOKUP_THREADS)
                    .thread_name(|i| format!("fscryptfs-lookup-{i}"))
                    .build()
                    .map_err(|e| {
                        tracing::warn!("cannot start the lookup threads ({e}): one at a time")
                    })
                    .ok()
            })
            .as_ref()
    }

    /// FLUSH (each close(2) of a descriptor): the size into the header, the buffer out.
    pub(super) fn do_flush(&self, fh: u64) -> Result<()> {
        let h = self.handles.get(fh)?;
        if !h.flushed.swap(true, Ordering::Relaxed) {
            lock(&h.node.meta).flushed += 1;
        }
        self.write_back(&h, FlushFor::Close)
    }

    /// FSYNC.
    pub(super) fn do_fsync(&self, fh: u64) -> Result<()> {
        let h = self.handles.get(fh)?;
        self.write_back(&h, FlushFor::Fsync)
    }

    /// A file handle's buffered data and size into the backing file (as durably as `why` asks),
    /// then compaction if the log wants it.
    fn write_back(&self, h: &Handle, why: FlushFor) -> Result<()> {
        if let Some(f) = h.file() {
            self.contents().flush_size(&h.node, Some(&f), why)?;
            self.contents().ext_maybe_compact(&h.node);
        }
        Ok(())
    }

    /// FSYNCDIR.
    pub(super) fn do_fsyncdir(&self, ino: u64) -> Result<()> {
        let node = self.inodes.node(ino)?;
        crate::store::io::sync_dir(&*node.fd(), &self.describe(&node))
    }

    /// FALLOCATE.
    pub(super) fn do_fallocate(&self, fh: u64, offset: u64, length: u64, mode: i32) -> Result<()> {
        self.check_writable()?;
        let h = self.handles.get(fh)?;
        let file = h.file().ok_or_else(|| errno(Errno::BADF, "not a file"))?;
        if let Some(a) = rlock(&h.node.state).active() {
            a.prepare_write()?;
        }
        self.contents()
            .allocate(&h.node, &file, h.key.as_deref(), offset, length, mode)?;
        // A punched range leaves dead records.
        self.contents().ext_maybe_compact(&h.node);
        Ok(())
    }

    /// COPY_FILE_RANGE: bytes copied.
    pub(super) fn do_copy_file_range(
        &self,
        fh_in: u64,
        offset_in: u64,
        fh_out: u64,
        offset_out: u64,
        len: u64,
    ) -> Result<u32> {
        let len = len.min(u64::from(u32::MAX) & !0xfff);
        let mut done = 0u64;
        // Per-extent files under one policy: clone the ciphertext (reflink where aligned).
        {
            self.check_writable()?;
            let hi = self.handles.get(fh_in)?;
            let ho = self.handles.get(fh_out)?;
            if let Some(n) = self
                .contents()
                .ext_clone(&hi.node, offset_in, &ho.node, offset_out, len)?
            {
                done = n;
                self.contents().ext_maybe_compact(&ho.node);
            }
        }
        while done < len {
            let chunk = (len - done).min(1 << 20) as u32;
            let d = self.do_read(fh_in, offset_in + done, chunk)?;
            if d.is_empty() {
                break;
            }
            self.do_write(fh_out, offset_out + done, &d, false)?;
            done += d.len() as u64;
        }
        Ok(done as u32)
    }
}
