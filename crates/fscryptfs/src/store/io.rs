//! The hardened system calls on the backing store: every open of an object fscryptfs reads or
//! writes there goes through this module, under one set of rules.
//!
//! The backing directory is hostile input. Other users may own parts of it (the daemon mirrors
//! owners, so a user owns the backing form of their own directories), and it gets copied, synced and
//! restored. So:
//!
//! - **Never follow a symlink.** Every open is relative to a directory descriptor and names one
//!   component; it is made with `openat2(RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH |
//!   RESOLVE_NO_MAGICLINKS)` where the kernel has it and `O_NOFOLLOW` otherwise.
//! - **Look before opening.** An existing object is first opened `O_PATH` (which opens nothing: no
//!   FIFO blocks, no device driver runs), its type is checked with `fstat`, and only a regular file
//!   is then reopened for I/O through its `/proc/self/fd` link, with `O_NONBLOCK | O_NOCTTY` (a
//!   file lease cannot block us either).
//! - **Never create what could already exist.** New files are created `O_CREAT | O_EXCL` (which
//!   fails on any existing object, a dangling symlink included); a file that is replaced is written
//!   under a fresh random temporary name, created exclusively, and renamed over the old one (a rename
//!   replaces a planted symlink itself, never its target).
//! - **Never read more than the format allows.** Metadata is read with the bound docs/FORMAT.md
//!   gives; a larger object is damage.
//!
//! A wrong type or size is `EUCLEAN` with a message naming the backing path, like any other damage.
//! Entry operations (`mkdirat`, `unlinkat`, `renameat`, `linkat`, `symlinkat`, `readlinkat`, and
//! `fstatat`/`statx`/`fchownat` with `AT_SYMLINK_NOFOLLOW`, `mknodat`) act on the name itself,
//! follow nothing and open nothing; the filesystem makes them directly on a parent's descriptor.
//! Calls on a node's own inode go through its `O_PATH` descriptor (`AT_EMPTY_PATH`, `fstat`,
//! `fallocate` on an open file) or its `/proc/self/fd` link (`chmod`, `utimensat`, the `*xattr`
//! calls, `linkat`'s fallback): the link resolves to that inode itself, never through a symlink
//! stored in the backing store. `readlinkat` is bounded by the kernel (PATH_MAX).

use std::ffi::OsStr;
use std::fmt::Display;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU8, Ordering};

use fscrypt::{Errno, Error, Result};
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};

use super::{io_err, sys_err};

/// Where the daemon looks for one of its names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Only in the backing root.
    Root,
    /// In every directory, the root included.
    EveryDirectory,
}

/// The names the daemon itself creates or reads beside users' entries, and where: every one is
/// opened only through this module. (Long-name side files are `<entry>.n`, see
/// [`super::names::side_name`]; temporary files get a fresh random name each time.) The
/// hostile-backing-store test plants an attack at each of them.
pub const DAEMON_NAMES: &[(&str, Place)] = &[
    (super::config::CONFIG_NAME, Place::Root),
    (super::lock::LOCK_NAME, Place::Root),
    (super::meta::DIR_META_NAME, Place::EveryDirectory),
    (super::special::SPECIAL_NAME, Place::EveryDirectory),
];

/// How a regular file is reopened for I/O.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read only.
    Read,
    /// Read only, without updating the atime users see (`O_NOATIME`, where the kernel allows it:
    /// it refuses a daemon that neither owns the file nor has `CAP_FOWNER`).
    ReadNoAtime,
    /// Write only.
    Write,
    /// Read-write.
    ReadWrite,
    /// Read-write where allowed, read-only where the file or filesystem refuses writing.
    ReadWriteOrRead,
    /// [`ReadWriteOrRead`](Self::ReadWriteOrRead) without updating the atime users see
    /// (`O_NOATIME` where the kernel allows it, as for [`ReadNoAtime`](Self::ReadNoAtime)).
    ReadWriteOrReadNoAtime,
}

/// What kind of object belongs at a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    File,
    Dir,
}

impl Want {
    fn noun(self) -> &'static str {
        match self {
            Want::File => "a regular file",
            Want::Dir => "a directory",
        }
    }
    fn matches(self, ft: FileType) -> bool {
        match self {
            Want::File => ft == FileType::RegularFile,
            Want::Dir => ft == FileType::Directory,
        }
    }
}

/// A file type for messages.
pub fn type_noun(ft: FileType) -> &'static str {
    match ft {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symlink",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "an object of unknown type",
    }
}

/// `EUCLEAN` for an object of the wrong type at `what`.
fn wrong_type(what: &(impl Display + ?Sized), found: FileType, want: Want) -> Error {
    Error::corrupt(format!(
        "{what}: {} where {} belongs",
        type_noun(found),
        want.noun()
    ))
}

/// Whether `openat2` works here: 0 not yet known, 1 yes, 2 no (an old kernel or a sandbox).
static OPENAT2: AtomicU8 = AtomicU8::new(0);

/// Opens one component `name` of `dir` without following any symlink on the way (see the module
/// comment); `flags` are the open flags besides `O_NOFOLLOW | O_CLOEXEC`.
fn open_beneath(
    dir: impl AsFd,
    name: &OsStr,
    flags: OFlags,
    mode: Mode,
) -> rustix::io::Result<OwnedFd> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let b = name.as_encoded_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        return Err(Errno::INVAL);
    }
    if OPENAT2.load(Ordering::Relaxed) != 2 {
        let how = ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(&dir, name, flags, mode, how) {
            Err(e)
                if e == Errno::NOSYS
                    || e == Errno::PERM && OPENAT2.load(Ordering::Relaxed) == 0 =>
            {
                OPENAT2.store(2, Ordering::Relaxed);
            }
            // A retry on EAGAIN is what the kernel asks for when a rename raced the lookup.
            Err(Errno::AGAIN) => return rustix::fs::openat(&dir, name, flags, mode),
            r => {
                OPENAT2.store(1, Ordering::Relaxed);
                return r;
            }
        }
    }
    rustix::fs::openat(&dir, name, flags, mode)
}

/// Opens `name` in `dir` as an `O_PATH` descriptor of the object itself (a symlink is not
/// followed): nothing is opened for I/O. `None` when there is no such entry.
pub fn open_object(
    dir: impl AsFd,
    name: &OsStr,
    what: &(impl Display + ?Sized),
) -> Result<Option<OwnedFd>> {
    match open_beneath(dir, name, OFlags::PATH, Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e == Errno::NOENT => Ok(None),
        Err(e) => Err(sys_err(what, e)),
    }
}

/// Opens the entry `name` of `dir` as an `O_PATH` descriptor of the object itself (a symlink is
/// not followed), `ENOENT` when there is none: what a lookup starts from.
pub fn open_entry(dir: impl AsFd, name: &OsStr, what: &(impl Display + ?Sized)) -> Result<OwnedFd> {
    open_beneath(dir, name, OFlags::PATH, Mode::empty()).map_err(|e| sys_err(what, e))
}

/// Checks that the object behind `fd` is of kind `want`; returns its `fstat`.
pub fn check_type(
    fd: impl AsFd,
    want: Want,
    what: &(impl Display + ?Sized),
) -> Result<rustix::fs::Stat> {
    let st = rustix::fs::fstat(fd).map_err(|e| sys_err(what, e))?;
    let ft = FileType::from_raw_mode(st.st_mode);
    if !want.matches(ft) {
        return Err(wrong_type(what, ft, want));
    }
    Ok(st)
}

/// Reopens a regular file, given as a descriptor of any kind (usually `O_PATH`), for I/O with
/// `access`. The type is checked first: anything but a regular file is `EUCLEAN`.
pub fn reopen_file(fd: &OwnedFd, access: Access, what: &(impl Display + ?Sized)) -> Result<File> {
    let st = check_type(fd, Want::File, what)?;
    reopen_stat_file(fd, &st, access, what)
}

/// [`reopen_file`] with the type taken from `st`, an `fstat` of `fd` the caller already has (an
/// object's type never changes, so no second `fstat`, which a network filesystem makes a round
/// trip).
pub fn reopen_stat_file(
    fd: &OwnedFd,
    st: &rustix::fs::Stat,
    access: Access,
    what: &(impl Display + ?Sized),
) -> Result<File> {
    let ft = FileType::from_raw_mode(st.st_mode);
    if !Want::File.matches(ft) {
        return Err(wrong_type(what, ft, Want::File));
    }
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let open = |flags: OFlags| {
        rustix::fs::open(
            &path,
            flags | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let r = match access {
        Access::Read => open(OFlags::RDONLY),
        Access::ReadNoAtime => match open(OFlags::RDONLY | OFlags::NOATIME) {
            Err(Errno::PERM) => open(OFlags::RDONLY),
            r => r,
        },
        Access::Write => open(OFlags::WRONLY),
        Access::ReadWrite => open(OFlags::RDWR),
        Access::ReadWriteOrRead => match open(OFlags::RDWR) {
            Err(e) if e == Errno::ACCESS || e == Errno::ROFS || e == Errno::PERM => {
                open(OFlags::RDONLY)
            }
            r => r,
        },
        Access::ReadWriteOrReadNoAtime => {
            let no_atime = |flags: OFlags| match open(flags | OFlags::NOATIME) {
                Err(Errno::PERM) => open(flags),
                r => r,
            };
            match no_atime(OFlags::RDWR) {
                Err(e) if e == Errno::ACCESS || e == Errno::ROFS || e == Errno::PERM => {
                    no_atime(OFlags::RDONLY)
                }
                r => r,
            }
        }
    };
    r.map(File::from).map_err(|e| sys_err(what, e))
}

/// Opens the regular file `name` of `dir` for I/O with `access` (symlinks not followed, type
/// checked before anything is opened). `None` when there is no such entry.
pub fn open_file(
    dir: impl AsFd,
    name: &OsStr,
    access: Access,
    what: &(impl Display + ?Sized),
) -> Result<Option<File>> {
    match open_object(dir, name, what)? {
        None => Ok(None),
        Some(fd) => reopen_file(&fd, access, what).map(Some),
    }
}

/// Reads the whole of an open regular file if it holds at most `max` bytes; a larger one is
/// `EUCLEAN` (nothing past `max + 1` bytes is ever read, whatever `fstat` said).
pub fn read_bounded_file(f: &File, max: usize, what: &(impl Display + ?Sized)) -> Result<Vec<u8>> {
    let st = rustix::fs::fstat(f).map_err(|e| sys_err(what, e))?;
    let too_big = |n: u64| {
        Error::corrupt(format!(
            "{what}: {n} bytes, more than the {max} its format allows"
        ))
    };
    if st.st_size as u64 > max as u64 {
        return Err(too_big(st.st_size as u64));
    }
    let mut buf = vec![0u8; max + 1];
    let n = super::read_full_at(f, &mut buf, 0).map_err(|e| io_err(what, e))?;
    if n > max {
        return Err(too_big(n as u64));
    }
    buf.truncate(n);
    Ok(buf)
}

/// Reads the regular file `name` of `dir` whole, at most `max` bytes (see [`read_bounded_file`]).
/// `None` when there is no such entry.
pub fn read_bounded(
    dir: impl AsFd,
    name: &OsStr,
    max: usize,
    what: &(impl Display + ?Sized),
) -> Result<Option<Vec<u8>>> {
    match open_file(dir, name, Access::Read, what)? {
        None => Ok(None),
        Some(f) => read_bounded_file(&f, max, what).map(Some),
    }
}

/// Creates a new regular file `name` in `dir`, read-write, with `mode`; fails with `EEXIST` when
/// anything at all is at that name.
pub fn create_new(
    dir: impl AsFd,
    name: &OsStr,
    mode: u32,
    what: &(impl Display + ?Sized),
) -> Result<File> {
    open_beneath(
        dir,
        name,
        OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::NONBLOCK,
        Mode::from_raw_mode(mode),
    )
    .map(File::from)
    .map_err(|e| sys_err(what, e))
}

/// Creates a new regular file `name` in `dir` holding `bytes` (see [`create_new`]).
pub fn write_new(
    dir: impl AsFd,
    name: &OsStr,
    bytes: &[u8],
    mode: u32,
    what: &(impl Display + ?Sized),
) -> Result<()> {
    let f = create_new(dir, name, mode, what)?;
    f.write_all_at(bytes, 0).map_err(|e| io_err(what, e))
}

/// Replaces (or creates) the regular file `name` of `dir` with one holding `bytes`, atomically: a
/// fresh temporary file is created exclusively, written, synced when `durable`, and renamed over
/// `name`; with `durable` the directory is synced too. Anything but a regular file at `name` is
/// `EUCLEAN`; nothing is ever written through a symlink.
pub fn replace(
    dir: impl AsFd,
    name: &OsStr,
    bytes: &[u8],
    mode: u32,
    durable: bool,
    what: &(impl Display + ?Sized),
) -> Result<()> {
    let dir = dir.as_fd();
    // What is there now must be ours to replace: a regular file or nothing. (Checked before, so an
    // object planted there is reported as damage and left for the owner to see; one swapped in
    // after the check is replaced by the rename, never written through.)
    if let Some(old) = open_object(dir, name, what)? {
        check_type(&old, Want::File, what)?;
    }
    replace_unchecked(dir, name, bytes, mode, durable, what, |_| Ok(()))
}

/// Replaces the regular file `name` of `dir` (which must exist) like [`replace`], giving the new
/// file the old one's permission bits and, where this process may (root), its owner and group:
/// how `fsck --repair` rewrites a metadata file without changing who may write it next.
/// Anything but a regular file at `name` is `EUCLEAN`, nothing at all `ENOENT`.
pub fn replace_keeping_owner(
    dir: impl AsFd,
    name: &OsStr,
    bytes: &[u8],
    durable: bool,
    what: &(impl Display + ?Sized),
) -> Result<()> {
    let dir = dir.as_fd();
    let old = open_entry(dir, name, what)?;
    let st = check_type(&old, Want::File, what)?;
    drop(old);
    let mode = st.st_mode & 0o7777;
    replace_unchecked(dir, name, bytes, mode, durable, what, |f| {
        // The process umask may have masked the mode the file was created with.
        rustix::fs::fchmod(f, Mode::from_raw_mode(mode)).map_err(|e| sys_err(what, e))?;
        let new = rustix::fs::fstat(f).map_err(|e| sys_err(what, e))?;
        if (new.st_uid, new.st_gid) != (st.st_uid, st.st_gid) {
            let owner = (
                rustix::fs::Uid::from_raw(st.st_uid),
                rustix::fs::Gid::from_raw(st.st_gid),
            );
            match rustix::fs::fchown(f, Some(owner.0), Some(owner.1)) {
                // Only root may give a file away: an ordinary user's copy stays theirs.
                Ok(()) | Err(Errno::PERM) => {}
                Err(e) => return Err(sys_err(what, e)),
            }
        }
        Ok(())
    })
}

/// [`replace`] once the caller checked the old object (a regular file or nothing): `adjust` runs
/// on the new temporary file before the bytes are written (its mode, its owner).
pub fn replace_unchecked(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &OsStr,
    bytes: &[u8],
    mode: u32,
    durable: bool,
    what: &(impl Display + ?Sized),
    adjust: impl FnOnce(&File) -> Result<()>,
) -> Result<()> {
    let tmp = super::names::tmp_name()?;
    let f = create_new(dir, &tmp, mode, what)?;
    let unlink_tmp = || {
        let _ = rustix::fs::unlinkat(dir, &tmp, rustix::fs::AtFlags::empty());
    };
    if let Err(e) = adjust(&f) {
        unlink_tmp();
        return Err(e);
    }
    let written = f
        .write_all_at(bytes, 0)
        .and_then(|()| if durable { f.sync_all() } else { Ok(()) })
        .map_err(|e| io_err(what, e));
    if let Err(e) = written {
        unlink_tmp();
        return Err(e);
    }
    drop(f);
    if let Err(e) = rustix::fs::renameat(dir, &tmp, dir, name) {
        unlink_tmp();
        return Err(sys_err(what, e));
    }
    if durable {
        sync_dir(dir, what)?;
    }
    Ok(())
}

/// Removes the entry `name` of `dir`, which must not be a directory (and, with `want`, must be of
/// that kind: `EUCLEAN` otherwise): the name is unlinked, so nothing is opened and a symlink is
/// removed itself, never its target. Returns the type it had. `ENOENT` when there is no such entry,
/// `EISDIR` for a directory (see [`remove_dir_of_ours`]).
pub fn remove_object(
    dir: impl AsFd,
    name: &OsStr,
    want: Option<Want>,
    what: &(impl Display + ?Sized),
) -> Result<FileType> {
    let dir = dir.as_fd();
    let fd = open_entry(dir, name, what)?;
    let st = rustix::fs::fstat(&fd).map_err(|e| sys_err(what, e))?;
    let ft = FileType::from_raw_mode(st.st_mode);
    if let Some(w) = want {
        if !w.matches(ft) {
            return Err(wrong_type(what, ft, w));
        }
    }
    if ft == FileType::Directory {
        return Err(Error::new(Errno::ISDIR, format!("{what}: a directory")));
    }
    rustix::fs::unlinkat(dir, name, rustix::fs::AtFlags::empty())
        .map_err(|e| sys_err(what, e))
        .map(|()| ft)
}

/// How deep [`remove_dir_of_ours`] goes (the deepest tree fscryptfs leaves under a temporary name
/// is three levels: a protector tree being set up).
pub const OURS_MAX_DEPTH: usize = 8;

/// Removes the directory `name` of `dir` with everything in it, provided everything in it is
/// fscryptfs's own: each object is a directory (itself all ours, at most [`OURS_MAX_DEPTH`]
/// levels down) or has a name fscryptfs reserves (`.fscryptfs*`, escaped user names excepted).
/// Otherwise nothing is removed: `ENOTEMPTY` naming the first object that may be a user's. The
/// whole tree is checked before anything is removed, and checked again as it is removed (an object
/// added in between stops the removal there). Subdirectories are opened without following
/// symlinks; every other object is unlinked by name, never opened.
pub fn remove_dir_of_ours(
    dir: impl AsFd,
    name: &OsStr,
    what: &(impl Display + ?Sized),
) -> Result<()> {
    let dir = dir.as_fd();
    for purge in [false, true] {
        let fd = open_subdir_listing(dir, name, what)?;
        walk_ours(&fd, what, 1, purge)?;
    }
    rustix::fs::unlinkat(dir, name, rustix::fs::AtFlags::REMOVEDIR).map_err(|e| sys_err(what, e))
}

/// [`remove_dir_of_ours`]'s walk of the directory open (for listing) as `fd`: checks that
/// everything in it is ours and, with `purge`, removes it.
fn walk_ours(
    fd: &OwnedFd,
    what: &(impl Display + ?Sized),
    depth: usize,
    purge: bool,
) -> Result<()> {
    let mut ents = Vec::new();
    for ent in rustix::fs::Dir::read_from(fd).map_err(|e| sys_err(what, e))? {
        let ent = ent.map_err(|e| sys_err(what, e))?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            ents.push((OsStr::from_bytes(n).to_os_string(), ent.file_type()));
        }
    }
    for (n, mut ft) in ents {
        let here = format!("{what}/{}", n.as_bytes().escape_ascii());
        if ft == FileType::Unknown {
            let st = rustix::fs::statat(fd, &n, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| sys_err(&here, e))?;
            ft = FileType::from_raw_mode(st.st_mode);
        }
        if ft == FileType::Directory {
            if depth >= OURS_MAX_DEPTH {
                return Err(Error::new(
                    Errno::NOTEMPTY,
                    format!("{here}: directories nested more than {OURS_MAX_DEPTH} levels"),
                ));
            }
            let sub = open_subdir_listing(fd, &n, &here)?;
            walk_ours(&sub, &here, depth + 1, purge)?;
            if purge {
                rustix::fs::unlinkat(fd, &n, rustix::fs::AtFlags::REMOVEDIR)
                    .map_err(|e| sys_err(&here, e))?;
            }
        } else if !super::names::is_reserved(n.as_bytes()) {
            return Err(Error::new(
                Errno::NOTEMPTY,
                format!("{here}: {} that is not fscryptfs's own", type_noun(ft)),
            ));
        } else if purge {
            rustix::fs::unlinkat(fd, &n, rustix::fs::AtFlags::empty())
                .map_err(|e| sys_err(&here, e))?;
        }
    }
    Ok(())
}

/// Hands each entry of the directory open for listing as `listing` (not `.` and `..`) with its type
/// to `each` until it returns false. Read through a duplicate of the descriptor (no second open of
/// the directory: a round trip on a network filesystem), one `getdents` buffer at a time.
pub fn read_entries(
    listing: &OwnedFd,
    what: &(impl Display + ?Sized),
    mut each: impl FnMut(&OsStr, FileType) -> bool,
) -> Result<()> {
    let dup = rustix::io::dup(listing).map_err(|e| sys_err(what, e))?;
    for ent in rustix::fs::Dir::new(dup).map_err(|e| sys_err(what, e))? {
        let ent = ent.map_err(|e| sys_err(what, e))?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." && !each(OsStr::from_bytes(n), ent.file_type()) {
            break;
        }
    }
    Ok(())
}

/// Opens directory `dir` (any descriptor of it, `O_PATH` included) for listing its entries.
pub fn open_listing(dir: impl AsFd, what: &(impl Display + ?Sized)) -> Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| sys_err(what, e))
}

/// Syncs directory `dir` (its entries: after a create, rename or unlink that must be durable).
pub fn sync_dir(dir: impl AsFd, what: &(impl Display + ?Sized)) -> Result<()> {
    open_listing(dir, what).and_then(|d| rustix::fs::fsync(&d).map_err(|e| sys_err(what, e)))
}

/// Moves the entry `from` of `dir` to the name `to`, which must not exist yet (EEXIST when it
/// does): a new object's temporary name to its final one, or a final name to a fresh temporary
/// one. How depends on the backing filesystem (`features::BackingFeatures`): `RENAME_NOREPLACE`;
/// else, for a non-directory, a hard link (atomic EEXIST) and the old name's removal; else a
/// rename after checking that `to` is free. The caller holds `dir`'s directory lock, so no other
/// request of the mount makes names there meanwhile (store/features.rs says why the check is safe
/// against other writers of the backing store too).
pub fn rename_noreplace(
    dir: impl AsFd,
    from: &OsStr,
    to: &OsStr,
    is_dir: bool,
    features: &super::features::BackingFeatures,
    what: &(impl Display + ?Sized),
) -> Result<()> {
    let dir = dir.as_fd();
    if features.rename_noreplace {
        return rustix::fs::renameat_with(dir, from, dir, to, rustix::fs::RenameFlags::NOREPLACE)
            .map_err(|e| sys_err(what, e));
    }
    if features.hard_links && !is_dir {
        rustix::fs::linkat(dir, from, dir, to, rustix::fs::AtFlags::empty())
            .map_err(|e| sys_err(what, e))?;
        // The object has both names now; a failure to drop the old one leaves a second link,
        // which fsck finds (a temporary name) and the object is intact either way.
        if let Err(e) = rustix::fs::unlinkat(dir, from, rustix::fs::AtFlags::empty()) {
            tracing::warn!("{what}: the temporary name stays: {}", sys_err(what, e));
        }
        return Ok(());
    }
    match rustix::fs::statat(dir, to, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => return Err(sys_err(what, Errno::EXIST)),
        Err(Errno::NOENT) => {}
        Err(e) => return Err(sys_err(what, e)),
    }
    rustix::fs::renameat(dir, from, dir, to).map_err(|e| sys_err(what, e))
}

/// `renameat2(from_dir/from, to_dir/to, RENAME_NOREPLACE)` for a one-off command with no feature
/// probe (the protector tree's setup and removal): where the filesystem refuses the flag (EINVAL:
/// CephFS, NFS) a plain rename after checking that `to` is free. Meant for directories, which a
/// plain rename never moves over a non-empty directory or a file; the raw errno on failure.
pub fn rename_dir_noreplace_at(
    from_dir: impl AsFd,
    from: &OsStr,
    to_dir: impl AsFd,
    to: &OsStr,
) -> rustix::io::Result<()> {
    let (fd, td) = (from_dir.as_fd(), to_dir.as_fd());
    match rustix::fs::renameat_with(fd, from, td, to, rustix::fs::RenameFlags::NOREPLACE) {
        Err(Errno::INVAL) => {}
        r => return r,
    }
    match rustix::fs::statat(td, to, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => return Err(Errno::EXIST),
        Err(Errno::NOENT) => {}
        Err(e) => return Err(e),
    }
    rustix::fs::renameat(fd, from, td, to)
}

/// The backing root given by the administrator, as the directory descriptor every access inside it
/// is relative to. (Its own path may go through symlinks: it is the administrator's choice.)
pub fn open_backing_root(backing: &std::path::Path) -> Result<OwnedFd> {
    rustix::fs::open(
        backing,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| sys_err(backing.display(), e))
}

/// An `O_PATH` descriptor of the object `file` is open on (the node of a file the daemon just made).
pub fn path_fd_of(file: &File, what: &(impl Display + ?Sized)) -> Result<OwnedFd> {
    // Through the /proc link, and without O_NOFOLLOW, which would open the link itself.
    rustix::fs::open(
        format!("/proc/self/fd/{}", file.as_raw_fd()),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| sys_err(what, e))
}

/// A second open file description of `file`'s object with the same access mode (read, write or
/// both) as `like`.
pub fn reopen_like(pathfd: &OwnedFd, like: &File, what: &(impl Display + ?Sized)) -> Result<File> {
    let acc = rustix::fs::fcntl_getfl(like).map_err(|e| sys_err(what, e))? & OFlags::RWMODE;
    let access = if acc == OFlags::RDONLY {
        Access::Read
    } else if acc == OFlags::WRONLY {
        Access::Write
    } else {
        Access::ReadWrite
    };
    reopen_file(pathfd, access, what)
}

/// Opens the subdirectory `name` of `dir` for listing (symlinks not followed): `ENOTDIR` when
/// something else is there.
pub fn open_subdir_listing(
    dir: impl AsFd,
    name: &OsStr,
    what: &(impl Display + ?Sized),
) -> Result<OwnedFd> {
    open_beneath(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .map_err(|e| sys_err(what, e))
}

/// Opens the subdirectory `name` of `dir` as an `O_PATH` descriptor (symlinks not followed):
/// `ENOTDIR` when something else is there.
pub fn open_subdir(
    dir: impl AsFd,
    name: &OsStr,
    what: &(impl Display + ?Sized),
) -> Result<OwnedFd> {
    open_beneath(dir, name, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
        .map_err(|e| sys_err(what, e))
}

#[cfg(test)]
mod tests;
