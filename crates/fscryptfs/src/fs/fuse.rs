//! The FUSE adapter: the `fuser::Filesystem` implementation. Each method decodes its request into
//! our own types (`types.rs`), calls one `Fs` operation that returns a `Result`, and encodes the
//! reply, an error as its errno (`tryr!`). With `daemon.rs`, the only file that names `fuser`.

use std::ffi::OsStr;
use std::path::Path;
use std::time::SystemTime;

use fscrypt::{Errno, Error, Result};
use fuser::{
    FileHandle, Filesystem, FopenFlags, Generation, INodeNo, KernelConfig, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry,
    ReplyIoctl, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
};

use super::mount::Fs;
use super::types::{Attr, Creds, Entry, FileType, KernelCache, SetAttr, SetTime};

macro_rules! tryr {
    ($reply:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => {
                log_err(&e);
                $reply.error(fuse_err(&e));
                return;
            }
        }
    };
}

/// Corruption and I/O failures are logged; ordinary errnos (ENOENT, ENOKEY, ...) only at debug.
fn log_err(e: &Error) {
    if e.errno() == Errno::UCLEAN || e.errno() == Errno::IO {
        tracing::error!("{e}");
    } else {
        tracing::debug!("{e}");
    }
}

/// An error as the errno of a reply.
fn fuse_err(e: &Error) -> fuser::Errno {
    fuser::Errno::from_i32(e.raw_os_error())
}

/// Who sent a request.
fn creds(req: &Request) -> Creds {
    Creds {
        uid: req.uid(),
        gid: req.gid(),
        pid: req.pid(),
    }
}

fn file_type(t: FileType) -> fuser::FileType {
    match t {
        FileType::RegularFile => fuser::FileType::RegularFile,
        FileType::Directory => fuser::FileType::Directory,
        FileType::Symlink => fuser::FileType::Symlink,
        FileType::NamedPipe => fuser::FileType::NamedPipe,
        FileType::Socket => fuser::FileType::Socket,
        FileType::CharDevice => fuser::FileType::CharDevice,
        FileType::BlockDevice => fuser::FileType::BlockDevice,
    }
}

fn file_attr(a: &Attr) -> fuser::FileAttr {
    fuser::FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.ctime,
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: a.blksize,
        flags: 0,
    }
}

/// The attributes sent with a READDIRPLUS entry that has no node (only `ino` and `kind` are read).
const NO_ATTR: fuser::FileAttr = fuser::FileAttr {
    ino: INodeNo(0),
    size: 0,
    blocks: 0,
    atime: std::time::UNIX_EPOCH,
    mtime: std::time::UNIX_EPOCH,
    ctime: std::time::UNIX_EPOCH,
    crtime: std::time::UNIX_EPOCH,
    kind: fuser::FileType::RegularFile,
    perm: 0,
    nlink: 0,
    uid: 0,
    gid: 0,
    rdev: 0,
    blksize: 0,
    flags: 0,
};

fn set_time(t: Option<TimeOrNow>) -> Option<SetTime> {
    t.map(|t| match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(t) => SetTime::At(t),
    })
}

/// The mount's notifier is how key removal makes the kernel forget entries and pages.
impl KernelCache for fuser::Notifier {
    fn inval_entry(&self, parent: u64, name: &OsStr) -> std::io::Result<()> {
        fuser::Notifier::inval_entry(self, INodeNo(parent), name)
    }
    fn inval_inode(&self, ino: u64) -> std::io::Result<()> {
        fuser::Notifier::inval_inode(self, INodeNo(ino), 0, 0)
    }
    fn inval_attrs(&self, ino: u64) -> std::io::Result<()> {
        // A negative offset: the attributes only (no page of a file being written is touched).
        fuser::Notifier::inval_inode(self, INodeNo(ino), -1, 0)
    }
}

/// `size` bytes of an xattr or list into a reply (0: only the size).
fn xattr_reply(reply: ReplyXattr, size: u32, data: Result<Vec<u8>>) {
    match data {
        Ok(d) => {
            if size == 0 {
                reply.size(d.len() as u32);
            } else if d.len() > size as usize {
                reply.error(fuser::Errno::from_i32(libc::ERANGE));
            } else {
                reply.data(&d);
            }
        }
        Err(e) => {
            log_err(&e);
            reply.error(fuse_err(&e));
        }
    }
}

fn reply_entry(reply: ReplyEntry, e: Result<Entry>) {
    let e = tryr!(reply, e);
    reply.entry_with_ttls(
        &e.attr_ttl,
        &e.entry_ttl,
        &file_attr(&e.attr),
        Generation(0),
    );
}

impl Filesystem for Fs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_HAS_IOCTL_DIR);
        // READDIRPLUS when the kernel sees lookups follow a listing (`ls -l`, `find`).
        let _ = config.add_capabilities(
            fuser::InitFlags::FUSE_DO_READDIRPLUS | fuser::InitFlags::FUSE_READDIRPLUS_AUTO,
        );
        // Clearing set-user-ID and set-group-ID on write, truncate and chown is ours (`kill_suidgid`
        // below): the kernel then stops asking for `security.capability` at every write(2).
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_HANDLE_KILLPRIV_V2);
        let _ = config.set_max_write(1 << 20);
        if self.writeback_cache()
            && config
                .add_capabilities(fuser::InitFlags::FUSE_WRITEBACK_CACHE)
                .is_err()
        {
            tracing::warn!("the kernel offers no FUSE writeback cache: writes go through at once");
        }
        Ok(())
    }

    fn destroy(&mut self) {
        self.flush_all();
    }

    fn kill_suidgid(&self, _req: &Request, ino: INodeNo) -> std::result::Result<(), fuser::Errno> {
        // Before a SETATTR or OPEN, whose own reply or later GETATTR shows the new mode.
        self.kill_suidgid(ino.0, false).map_err(|e| {
            log_err(&e);
            fuse_err(&e)
        })
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        reply_entry(reply, self.do_lookup(parent.0, name));
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        Fs::forget(self, ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let (attr, ttl) = tryr!(reply, self.do_getattr(ino.0));
        reply.attr(&ttl, &file_attr(&attr));
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
        let change = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: set_time(atime),
            mtime: set_time(mtime),
            fh: fh.map(|f| f.0),
        };
        let (attr, ttl) = tryr!(reply, self.do_setattr(ino.0, &change));
        reply.attr(&ttl, &file_attr(&attr));
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let t = tryr!(reply, self.do_readlink(ino.0));
        reply.data(&t);
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let r = self.do_mknod(&creds(req), parent.0, name, mode, rdev);
        reply_entry(reply, r.and_then(|n| self.new_entry(parent.0, name, &n)));
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let r = self.do_mkdir(&creds(req), parent.0, name, mode);
        reply_entry(reply, r.and_then(|n| self.new_entry(parent.0, name, &n)));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        tryr!(reply, self.do_unlink(parent.0, name, false));
        reply.ok();
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        tryr!(reply, self.do_unlink(parent.0, name, true));
        reply.ok();
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let r = self.do_symlink(&creds(req), parent.0, link_name, target);
        reply_entry(
            reply,
            r.and_then(|n| self.new_entry(parent.0, link_name, &n)),
        );
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
        tryr!(
            reply,
            self.do_rename(parent.0, name, newparent.0, newname, flags.bits())
        );
        reply.ok();
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let r = self.do_link(ino.0, newparent.0, newname);
        reply_entry(
            reply,
            r.and_then(|n| self.new_entry(newparent.0, newname, &n)),
        );
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let fh = tryr!(reply, self.do_open(&creds(req), ino.0, flags.0));
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let d = tryr!(reply, self.do_read(fh.0, offset, size));
        reply.data(&d);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        let writeback = write_flags.contains(fuser::WriteFlags::FUSE_WRITE_CACHE);
        if write_flags.contains(fuser::WriteFlags::FUSE_WRITE_KILL_SUIDGID) {
            tryr!(reply, self.kill_suidgid(ino.0, true));
        }
        let n = tryr!(reply, self.do_write(fh.0, offset, data, writeback));
        reply.written(n);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        tryr!(reply, self.do_flush(fh.0));
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        tryr!(reply, self.do_release(fh.0));
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        tryr!(reply, self.do_fsync(fh.0));
        reply.ok();
    }

    fn opendir(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let fh = tryr!(
            reply,
            self.do_open(&creds(req), ino.0, flags.0 & !libc::O_ACCMODE)
        );
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
        tryr!(
            reply,
            self.do_readdir(fh.0, offset, |e, next| {
                reply.add(INodeNo(e.ino), next, file_type(e.kind), &e.name)
            })
        );
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        tryr!(
            reply,
            self.do_readdirplus(fh.0, offset, |e, next, entry| match entry {
                Some(en) => reply.add(
                    INodeNo(en.attr.ino),
                    next,
                    &e.name,
                    &en.entry_ttl.min(en.attr_ttl),
                    &file_attr(&en.attr),
                    Generation(0),
                ),
                // `.`, `..` and names that could not be looked up: no node (the kernel links
                // nothing for node 0, and skips `.` and `..` whatever they carry).
                None => reply.add(
                    INodeNo(0),
                    next,
                    &e.name,
                    &std::time::Duration::ZERO,
                    &fuser::FileAttr {
                        ino: INodeNo(e.ino),
                        kind: file_type(e.kind),
                        ..NO_ATTR
                    },
                    Generation(0),
                ),
            })
        );
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
        tryr!(reply, self.do_release(fh.0));
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        tryr!(reply, self.do_fsyncdir(ino.0));
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = tryr!(reply, self.do_statfs());
        reply.statfs(
            s.f_blocks,
            s.f_bfree,
            s.f_bavail,
            s.f_files,
            s.f_ffree,
            s.f_bsize as u32,
            255,
            s.f_frsize as u32,
        );
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        tryr!(reply, self.do_setxattr(ino.0, name, value, flags));
        reply.ok();
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        xattr_reply(reply, size, self.do_getxattr(ino.0, name));
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        xattr_reply(reply, size, self.do_listxattr(ino.0));
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        tryr!(reply, self.do_removexattr(ino.0, name));
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let (e, fh) = tryr!(
            reply,
            self.do_create_open(&creds(req), parent.0, name, mode)
        );
        let ttl = e.entry_ttl.min(e.attr_ttl);
        reply.created(
            &ttl,
            &file_attr(&e.attr),
            Generation(0),
            FileHandle(fh),
            FopenFlags::empty(),
        );
    }

    fn ioctl_with_arg(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        flags: fuser::IoctlFlags,
        cmd: u32,
        arg: u64,
        in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        let compat = flags.contains(fuser::IoctlFlags::FUSE_IOCTL_COMPAT);
        let out = tryr!(
            reply,
            self.do_ioctl(&creds(req), ino.0, cmd, arg, compat, in_data)
        );
        reply.ioctl(0, &out);
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        // The kernel's own clearing (`file_modified`) defers to us and sends no flag here: clear
        // for any caller but root, as the kernel would for a caller without CAP_FSETID.
        if req.uid() != 0 {
            tryr!(reply, self.kill_suidgid(ino.0, true));
        }
        tryr!(reply, self.do_fallocate(fh.0, offset, length, mode));
        reply.ok();
    }

    fn copy_file_range(
        &self,
        req: &Request,
        _ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: fuser::CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        // As for fallocate: the kernel defers the clearing to us without a flag.
        if req.uid() != 0 {
            tryr!(reply, self.kill_suidgid(ino_out.0, true));
        }
        let n = tryr!(
            reply,
            self.do_copy_file_range(fh_in.0, offset_in, fh_out.0, offset_out, len)
        );
        reply.written(n);
    }
}
