//! A no-op FUSE passthrough filesystem: mirrors a backing directory, no encryption. It exists to
//! measure the FUSE limit on this machine (issue 12, `scripts/bench-fs`), nothing else.
//!
//! Usage (as root): `passthrough [--hard-links] [--fake-locks] [--fake-renames] [--slow-lookups]
//! [--slow-syncs] [--torn-reads] BACKING MNT`. Runs in the foreground; SIGTERM, SIGINT or SIGHUP
//! unmount and end it, and so does `umount MNT`.
//!
//! It also stands in for a backing filesystem with few features (`tests/fs_backing_features.rs`):
//! like CephFS and NFS it refuses every rename flag (EINVAL), and it has no hard links unless
//! `--hard-links` (which CephFS has), no xattrs, no `O_TMPFILE`, no reflink, no punch hole. With
//! `--fake-locks` it stands in for a backing filesystem that lies about locks: it takes POSIX
//! (OFD) locks over from the kernel and grants every one, enforcing none. With `--fake-renames`,
//! one whose rename reports success and does nothing. With `--slow-lookups`, one whose lookups are
//! round trips (1 ms each), as a network filesystem's are; with `--slow-syncs`, one whose syncs
//! take 25 ms. With `--torn-reads`, one on which a small read can return half of a write made
//! meanwhile — as a buffered read that overlaps a write can on ext4 or tmpfs, for microseconds —
//! for long enough that a test meets it.
//!
//! The fuser configuration is fscryptfs' own (`crates/fscryptfs/src/fs/daemon.rs` `serve` and
//! `fs/fuse.rs` `init`), COPIED here because the library does not expose it separately from its
//! `Fs`: `fuser::Config` with fscryptfs' count of request threads (`n_threads`: `request_threads`,
//! called here), `clone_fd`, FUSE over io_uring
//! where the kernel offers it (`io_uring`), the mount options
//! `fsname`, `subtype`, `default_permissions`, `dev` and `suid` (root); in `init`, `max_write` of
//! 1 MiB, the FUSE writeback cache (fscryptfs' default) and READDIRPLUS (auto); after the mount,
//! fscryptfs' read-ahead (1 MiB, its own function). Entries and
//! attributes are cached for 1 s, as fscryptfs caches them. Keep the two in step.
//!
//! Differences, on purpose: only root can mount it (fscryptfs goes through fusermount3 for users);
//! inode numbers are allocated per backing inode and never forgotten by FORGET, only when the
//! backing object goes (unlink of its last name, rmdir, replaced by a rename: ext4 gives its number
//! to the next object, which must not be taken for the old one); special files and xattrs are
//! not served, hard links only with `--hard-links`; it does not ask for `FUSE_HANDLE_KILLPRIV_V2`
//! (its ENOSYS to every GETXATTR already spares it the `security.capability` round trip before
//! each `write(2)` that the flag removes for fscryptfs); writes to one file take turns, as
//! fscryptfs' do (`write_turns`).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLock, ReplyOpen,
    ReplyStatfs, ReplyWrite, Request, SessionACL, TimeOrNow, WriteFlags,
};

/// Same as fscryptfs (`fuse.rs` `init`).
const MAX_WRITE: u32 = 1 << 20;
const TTL: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Inodes {
    /// FUSE inode number -> backing path.
    paths: HashMap<u64, PathBuf>,
    /// Backing inode number -> FUSE inode number.
    by_backing: HashMap<u64, u64>,
    next: u64,
}

/// A directory entry as listed at opendir: inode number, type, name.
type DirEntry = (u64, FileType, OsString);

/// What the command line asked for.
#[derive(Clone, Copy, Default)]
struct Options {
    /// `--hard-links`: LINK is served.
    hard_links: bool,
    /// `--fake-locks`: every POSIX lock is granted, none enforced.
    fake_locks: bool,
    /// `--fake-renames`: RENAME answers success and moves nothing.
    fake_renames: bool,
    /// `--slow-lookups`: every LOOKUP waits [`SLOW_LOOKUP`] first, as a network filesystem's
    /// round trip does.
    slow_lookups: bool,
    /// `--slow-syncs`: every FSYNC waits [`SLOW_SYNC`] first.
    slow_syncs: bool,
    /// `--torn-reads`: files are opened for direct I/O (every read reaches us, none is served
    /// from the page cache) and a read of fewer than [`TORN_BELOW`] bytes is made [`TORN_PIECE`]
    /// bytes at a time, [`TORN_PAUSE`] apart; writes do not wait for it.
    torn_reads: bool,
}

/// How long an FSYNC waits with `--slow-syncs`.
const SLOW_SYNC: Duration = Duration::from_millis(25);
/// The reads `--torn-reads` makes piece by piece: those shorter than this.
const TORN_BELOW: u32 = 512;
/// The size of each piece.
const TORN_PIECE: usize = 8;
/// The pause after each piece.
const TORN_PAUSE: Duration = Duration::from_millis(5);

/// How long a LOOKUP waits with `--slow-lookups`.
const SLOW_LOOKUP: Duration = Duration::from_millis(1);

struct Passthrough {
    opts: Options,
    inodes: Mutex<Inodes>,
    files: Mutex<HashMap<u64, Arc<File>>>,
    dirs: Mutex<HashMap<u64, Arc<Vec<DirEntry>>>>,
    next_fh: AtomicU64,
    /// Writes to one file take turns here (by inode number, striped), as fscryptfs' writes to one
    /// file take turns on its node's lock: four request threads writing one backing file at once
    /// spin on its inode lock (`rwsem_spin_on_owner`), which on two CPUs cost this example most of
    /// its write speed, and it would understate the FUSE limit.
    write_turns: [Mutex<()>; 16],
}

fn errno(e: &io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

macro_rules! tryr {
    ($reply:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => {
                $reply.error(errno(&e));
                return;
            }
        }
    };
}

fn kind(m: &std::fs::Metadata) -> FileType {
    let t = m.file_type();
    if t.is_dir() {
        FileType::Directory
    } else if t.is_symlink() {
        FileType::Symlink
    } else {
        FileType::RegularFile
    }
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs.unsigned_abs(), nsecs as u32)
    } else {
        UNIX_EPOCH
    }
}

fn attr(ino: u64, m: &std::fs::Metadata) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: m.size(),
        blocks: m.blocks(),
        atime: time(m.atime(), m.atime_nsec()),
        mtime: time(m.mtime(), m.mtime_nsec()),
        ctime: time(m.ctime(), m.ctime_nsec()),
        crtime: time(m.ctime(), m.ctime_nsec()),
        kind: kind(m),
        perm: (m.mode() & 0o7777) as u16,
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        rdev: m.rdev() as u32,
        blksize: m.blksize() as u32,
        flags: 0,
    }
}

fn not_found() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOENT)
}

fn set_time(t: Option<TimeOrNow>) -> Option<SystemTime> {
    t.map(|t| match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    })
}

impl Passthrough {
    fn new(root: PathBuf, opts: Options) -> Self {
        let mut inodes = Inodes {
            next: 2,
            ..Default::default()
        };
        if let Ok(m) = std::fs::metadata(&root) {
            inodes.by_backing.insert(m.ino(), 1);
        }
        inodes.paths.insert(1, root);
        Passthrough {
            opts,
            inodes: Mutex::new(inodes),
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            write_turns: Default::default(),
        }
    }

    fn path(&self, ino: INodeNo) -> io::Result<PathBuf> {
        let i = self.inodes.lock().unwrap();
        i.paths.get(&ino.0).cloned().ok_or_else(not_found)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> io::Result<PathBuf> {
        Ok(self.path(parent)?.join(name))
    }

    /// The FUSE inode of the backing file at `path`, allocated on first sight.
    fn entry(&self, path: PathBuf) -> io::Result<FileAttr> {
        let m = std::fs::symlink_metadata(&path)?;
        let mut i = self.inodes.lock().unwrap();
        let ino = match i.by_backing.get(&m.ino()) {
            Some(&n) => n,
            None => {
                let n = i.next;
                i.next += 1;
                i.by_backing.insert(m.ino(), n);
                n
            }
        };
        i.paths.insert(ino, path);
        Ok(attr(ino, &m))
    }

    /// What an open file is given: direct I/O with `--torn-reads`, else nothing.
    fn open_flags(&self) -> FopenFlags {
        if self.opts.torn_reads {
            FopenFlags::FOPEN_DIRECT_IO
        } else {
            FopenFlags::empty()
        }
    }

    fn add_file(&self, f: File) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.files.lock().unwrap().insert(fh, Arc::new(f));
        fh
    }

    fn file(&self, fh: FileHandle) -> io::Result<Arc<File>> {
        let files = self.files.lock().unwrap();
        files
            .get(&fh.0)
            .cloned()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))
    }

    /// Open options for FUSE open flags. With the writeback cache the kernel reads pages of files
    /// opened write-only and handles O_APPEND itself (as libfuse's passthrough_ll does).
    fn options(flags: i32) -> OpenOptions {
        let mut o = OpenOptions::new();
        match flags & libc::O_ACCMODE {
            libc::O_RDONLY => o.read(true),
            _ => o.read(true).write(true),
        };
        o.custom_flags(
            flags
                & !(libc::O_ACCMODE
                    | libc::O_CREAT
                    | libc::O_EXCL
                    | libc::O_APPEND
                    | libc::O_TRUNC),
        );
        o
    }

    /// The backing inode number of `path` when removing that name removes the object (a
    /// directory, or a file's last link): to be [`gone`](Self::gone) once it is removed.
    fn last_name(path: &Path) -> Option<u64> {
        let m = std::fs::symlink_metadata(path).ok()?;
        (m.is_dir() || m.nlink() <= 1).then_some(m.ino())
    }

    /// A backing object is gone: its inode number no longer names our FUSE inode, and that inode
    /// has no path (what the kernel still asks of it by path is ENOENT, not the answer for
    /// whatever now has its name). The backing filesystem may give the number to the next object
    /// it makes (ext4 does), which must get an inode of its own: were it given the gone object's,
    /// the kernel would take the new object for the old one, whose inode it may still hold.
    fn gone(&self, backing_ino: Option<u64>) {
        if let Some(n) = backing_ino {
            let mut i = self.inodes.lock().unwrap();
            if let Some(ino) = i.by_backing.remove(&n) {
                i.paths.remove(&ino);
            }
        }
    }

    /// After a rename: every path under `from` now lives under `to`.
    fn moved(&self, from: &Path, to: &Path) {
        let mut i = self.inodes.lock().unwrap();
        for p in i.paths.values_mut() {
            if let Ok(rest) = p.strip_prefix(from) {
                *p = if rest.as_os_str().is_empty() {
                    to.to_path_buf()
                } else {
                    to.join(rest)
                };
            }
        }
    }
}

impl Filesystem for Passthrough {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let _ = config.set_max_write(MAX_WRITE);
        let _ = config
            .add_capabilities(InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO);
        if config
            .add_capabilities(InitFlags::FUSE_WRITEBACK_CACHE)
            .is_err()
        {
            eprintln!("passthrough: the kernel offers no FUSE writeback cache");
        }
        if self.opts.fake_locks {
            let _ = config.add_capabilities(InitFlags::FUSE_POSIX_LOCKS);
        }
        Ok(())
    }

    // `--fake-locks` only (without it the kernel keeps POSIX locks itself): nothing is ever held.
    fn getlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        start: u64,
        end: u64,
        _typ: i32,
        pid: u32,
        reply: ReplyLock,
    ) {
        reply.locked(start, end, libc::F_UNLCK, pid);
    }

    // `--fake-locks` only: every lock is granted, none enforced.
    fn setlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        _typ: i32,
        _pid: u32,
        _sleep: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if self.opts.slow_lookups {
            std::thread::sleep(SLOW_LOOKUP);
        }
        let p = tryr!(reply, self.child(parent, name));
        let a = tryr!(reply, self.entry(p));
        reply.entry(&TTL, &a, Generation(0));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let m = match fh.map(|fh| self.file(fh)) {
            Some(Ok(f)) => f.metadata(),
            _ => self.path(ino).and_then(std::fs::symlink_metadata),
        };
        let m = tryr!(reply, m);
        reply.attr(&TTL, &attr(ino.0, &m));
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let path = tryr!(reply, self.path(ino));
        if let Some(mode) = mode {
            let perm = std::fs::Permissions::from_mode(mode & 0o7777);
            tryr!(reply, std::fs::set_permissions(&path, perm));
        }
        if uid.is_some() || gid.is_some() {
            tryr!(reply, std::os::unix::fs::lchown(&path, uid, gid));
        }
        if let Some(size) = size {
            let r = match fh.map(|fh| self.file(fh)) {
                Some(Ok(f)) => f.set_len(size),
                _ => OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(size)),
            };
            tryr!(reply, r);
        }
        let (atime, mtime) = (set_time(atime), set_time(mtime));
        if atime.is_some() || mtime.is_some() {
            let stamp = |t: Option<SystemTime>| match t {
                Some(t) => {
                    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
                    rustix::fs::Timespec {
                        tv_sec: d.as_secs() as i64,
                        tv_nsec: d.subsec_nanos().into(),
                    }
                }
                None => rustix::fs::Timespec {
                    tv_sec: 0,
                    tv_nsec: rustix::fs::UTIME_OMIT,
                },
            };
            let times = rustix::fs::Timestamps {
                last_access: stamp(atime),
                last_modification: stamp(mtime),
            };
            // Not through a symlink: tar sets a link's own times.
            let r = rustix::fs::utimensat(
                rustix::fs::CWD,
                &path,
                &times,
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            );
            tryr!(reply, r.map_err(io::Error::from));
        }
        let m = tryr!(reply, std::fs::symlink_metadata(&path));
        reply.attr(&TTL, &attr(ino.0, &m));
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let p = tryr!(reply, self.child(parent, name));
        tryr!(reply, std::fs::DirBuilder::new().mode(mode).create(&p));
        let a = tryr!(reply, self.entry(p));
        reply.entry(&TTL, &a, Generation(0));
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let p = tryr!(reply, self.child(parent, link_name));
        tryr!(reply, std::os::unix::fs::symlink(target, &p));
        let a = tryr!(reply, self.entry(p));
        reply.entry(&TTL, &a, Generation(0));
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let p = tryr!(reply, self.path(ino));
        let t = tryr!(reply, std::fs::read_link(&p));
        reply.data(std::os::unix::ffi::OsStrExt::as_bytes(t.as_os_str()));
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        if !self.opts.hard_links {
            reply.error(Errno::EPERM);
            return;
        }
        let from = tryr!(reply, self.path(ino));
        let to = tryr!(reply, self.child(newparent, newname));
        tryr!(reply, std::fs::hard_link(&from, &to));
        let a = tryr!(reply, self.entry(to));
        reply.entry(&TTL, &a, Generation(0));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let p = tryr!(reply, self.child(parent, name));
        let last = Self::last_name(&p);
        tryr!(reply, std::fs::remove_file(p));
        self.gone(last);
        reply.ok();
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let p = tryr!(reply, self.child(parent, name));
        let last = Self::last_name(&p);
        tryr!(reply, std::fs::remove_dir(p));
        self.gone(last);
        reply.ok();
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !flags.is_empty() {
            reply.error(Errno::EINVAL);
            return;
        }
        if self.opts.fake_renames {
            reply.ok();
            return;
        }
        let from = tryr!(reply, self.child(parent, name));
        let to = tryr!(reply, self.child(newparent, newname));
        // What the rename replaces, if anything (not itself: a rename onto another link of the
        // same file does nothing).
        let replaced = Self::last_name(&to)
            .filter(|n| std::fs::symlink_metadata(&from).is_ok_and(|m| m.ino() != *n));
        tryr!(reply, std::fs::rename(&from, &to));
        self.gone(replaced);
        self.moved(&from, &to);
        reply.ok();
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let p = tryr!(reply, self.path(ino));
        let f = tryr!(reply, Self::options(flags.0).open(p));
        reply.opened(FileHandle(self.add_file(f)), self.open_flags());
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let p = tryr!(reply, self.child(parent, name));
        let mut o = Self::options(flags);
        o.create(true).mode(mode);
        if flags & libc::O_EXCL != 0 {
            o.create_new(true);
        }
        let f = tryr!(reply, o.open(&p));
        let a = tryr!(reply, self.entry(p));
        let fh = self.add_file(f);
        reply.created(&TTL, &a, Generation(0), FileHandle(fh), self.open_flags());
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let f = tryr!(reply, self.file(fh));
        let mut buf = vec![0u8; size as usize];
        let piece = if self.opts.torn_reads && size < TORN_BELOW {
            TORN_PIECE
        } else {
            buf.len()
        };
        let mut n = 0;
        while n < buf.len() {
            if n > 0 && piece < buf.len() {
                std::thread::sleep(TORN_PAUSE);
            }
            let end = buf.len().min(n + piece);
            match f.read_at(&mut buf[n..end], offset + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    reply.error(errno(&e));
                    return;
                }
            }
        }
        reply.data(&buf[..n]);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let f = tryr!(reply, self.file(fh));
        let turn = self.write_turns[(ino.0 % 16) as usize].lock().unwrap();
        tryr!(reply, f.write_all_at(data, offset));
        drop(turn);
        reply.written(data.len() as u32);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.files.lock().unwrap().remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let f = tryr!(reply, self.file(fh));
        if self.opts.slow_syncs {
            std::thread::sleep(SLOW_SYNC);
        }
        tryr!(
            reply,
            if datasync {
                f.sync_data()
            } else {
                f.sync_all()
            }
        );
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let p = tryr!(reply, self.path(ino));
        let mut v = vec![
            (ino.0, FileType::Directory, OsString::from(".")),
            (1, FileType::Directory, OsString::from("..")),
        ];
        for e in tryr!(reply, std::fs::read_dir(&p)) {
            let e = tryr!(reply, e);
            let t = tryr!(reply, e.file_type());
            let k = if t.is_dir() {
                FileType::Directory
            } else if t.is_symlink() {
                FileType::Symlink
            } else {
                FileType::RegularFile
            };
            // The kernel takes inode numbers from lookups, not from readdir (no READDIRPLUS).
            v.push((std::os::unix::fs::DirEntryExt::ino(&e), k, e.file_name()));
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.dirs.lock().unwrap().insert(fh, Arc::new(v));
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(v) = self.dirs.lock().unwrap().get(&fh.0).cloned() else {
            reply.error(Errno::EBADF);
            return;
        };
        for (i, (ino, k, name)) in v.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), (i + 1) as u64, *k, name) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let Some(v) = self.dirs.lock().unwrap().get(&fh.0).cloned() else {
            reply.error(Errno::EBADF);
            return;
        };
        let dir = tryr!(reply, self.path(ino));
        for (i, (ino, _, name)) in v.iter().enumerate().skip(offset as usize) {
            // `.` and `..` carry no node (the kernel skips them); a name gone since opendir too.
            let a = if name == "." || name == ".." {
                None
            } else {
                self.entry(dir.join(name)).ok()
            };
            let full = match a {
                Some(a) => reply.add(a.ino, (i + 1) as u64, name, &TTL, &a, Generation(0)),
                None => {
                    let fallback = std::fs::symlink_metadata(&dir).map(|m| attr(*ino, &m));
                    let a = tryr!(reply, fallback);
                    reply.add(INodeNo(0), (i + 1) as u64, name, &TTL, &a, Generation(0))
                }
            };
            if full {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs.lock().unwrap().remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        let p = tryr!(reply, self.path(ino));
        let s = tryr!(reply, rustix::fs::statvfs(&p).map_err(io::Error::from));
        reply.statfs(
            s.f_blocks,
            s.f_bfree,
            s.f_bavail,
            s.f_files,
            s.f_ffree,
            s.f_bsize as u32,
            s.f_namemax as u32,
            s.f_frsize as u32,
        );
    }
}

/// Blocks SIGTERM, SIGINT and SIGHUP in this thread and every thread started afterwards (as
/// fscryptfs' daemon does), and returns the set for [`wait_signal`].
fn block_termination_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it; pthread_sigmask only
    // changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits for one of the signals in `set`.
fn wait_signal(set: &libc::sigset_t) -> i32 {
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` was initialised by block_termination_signals; `sig` is a valid out pointer.
    let rc = unsafe { libc::sigwait(set, &mut sig) };
    if rc != 0 {
        -1
    } else {
        sig
    }
}

fn main() -> io::Result<()> {
    let mut args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let mut flag = |name: &str| match args.iter().position(|a| a.as_os_str() == name) {
        Some(i) => {
            args.remove(i);
            true
        }
        None => false,
    };
    let opts = Options {
        hard_links: flag("--hard-links"),
        fake_locks: flag("--fake-locks"),
        fake_renames: flag("--fake-renames"),
        slow_lookups: flag("--slow-lookups"),
        slow_syncs: flag("--slow-syncs"),
        torn_reads: flag("--torn-reads"),
    };
    let [backing, mnt] = args.as_slice() else {
        eprintln!(
            "usage: passthrough [--hard-links] [--fake-locks] [--fake-renames] [--slow-lookups] \
             [--slow-syncs] [--torn-reads] BACKING MNT (as root; foreground; SIGTERM unmounts)"
        );
        std::process::exit(2);
    };
    if !rustix::process::geteuid().is_root() {
        eprintln!("passthrough: must run as root (mounts directly, as fscryptfs does as root)");
        std::process::exit(1);
    }
    let backing = backing.canonicalize()?;
    // The kernel has applied the caller's umask already (no FUSE_DONT_MASK).
    rustix::process::umask(rustix::fs::Mode::empty());
    let mut cfg = fuser::Config::default();
    cfg.mount_options = vec![
        MountOption::FSName(backing.display().to_string()),
        MountOption::Subtype("passthrough".into()),
        MountOption::DefaultPermissions,
        MountOption::Dev,
        MountOption::Suid,
    ];
    cfg.acl = SessionACL::Owner;
    cfg.n_threads = Some(fscryptfs::fs::daemon::request_threads(
        fscryptfs::store::features::on_round_trip_filesystem(&backing),
    ));
    cfg.clone_fd = true;
    cfg.io_uring = true;
    let signals = block_termination_signals();
    // fscryptfs' read-ahead (its default `-o read_ahead_kb` for this backing store), set the same way.
    let read_ahead = fscryptfs::fs::read_ahead::default_read_ahead_kb(&backing);
    let mut session = fuser::Session::new(Passthrough::new(backing, opts), mnt, &cfg)?;
    let mut unmounter = session.unmount_callable();
    fscryptfs::fs::read_ahead::set_read_ahead_then(Path::new(mnt), read_ahead, || {})
        .map_err(|e| io::Error::other(e.to_string()))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let sig = wait_signal(&signals);
            if sig < 0 {
                return;
            }
            if let Err(e) = unmounter.unmount() {
                eprintln!("passthrough: unmounting after signal {sig}: {e}");
            }
        })?;
    match session.run() {
        Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => Ok(()),
        r => r,
    }
}
