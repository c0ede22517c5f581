//! The volume lock: one read-write mount per volume (docs/FORMAT.md, "The lock file").
//!
//! A read-write daemon holds an exclusive open-file-description lock (`F_OFD_SETLK`, a POSIX
//! record lock over the whole file, so it also works between hosts on a backing filesystem with
//! POSIX locks, and the kernel drops it when the daemon dies, even by `kill -9`) on
//! [`LOCK_NAME`] in the backing root for as long as it serves, and writes `PID HOSTNAME\n` into it
//! so a second mount can say who holds it. Read-only mounts, `fsck` and `inspect` hold the same
//! lock shared: they coexist with each other but not with a read-write mount.
//!
//! The file lives in a directory other users may control, so it is hostile input: it is opened
//! through `store::io`, relative to the backing root's descriptor (created `0600` and exclusively
//! when missing, never through a symlink, type checked before it is opened for I/O), must be a
//! regular file with one link (a hard link
//! to a file elsewhere would be truncated), else EUCLEAN, and its text is read with a bound of
//! [`LOCK_MAX`] bytes. Offline tools never create it: they do not write to a backing store.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use fscrypt::{Errno, Error, Result};

use super::sys_err;

/// The lock file's name in the backing root.
pub const LOCK_NAME: &str = ".fscryptfs.lock";

/// The most bytes of the lock file that are read (its text is `PID HOSTNAME\n`).
pub const LOCK_MAX: usize = 256;

/// How a lock is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// A read-write mount: nobody else may hold the lock.
    Exclusive,
    /// A read-only mount, `fsck`, `inspect`: only exclusive holders are kept out.
    Shared,
}

/// A held volume lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct VolumeLock {
    file: File,
    mode: LockMode,
}

impl VolumeLock {
    /// How this lock is held.
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// Takes the lock for a mount of `backing`: exclusive for a read-write mount (the lock file
    /// is created when missing and gets this process's pid and hostname), shared for a read-only
    /// one. None only for a read-only mount of a backing store where the file is missing and
    /// cannot be created (a read-only backing filesystem: nobody on it can mount read-write
    /// either). EBUSY with one line naming the holder when the volume is in use.
    pub fn for_mount(backing: &Path, read_only: bool) -> Result<Option<VolumeLock>> {
        let dir = super::io::open_backing_root(backing)?;
        let path = backing.join(LOCK_NAME);
        match open_lock_file(&dir, &path, true) {
            Ok(file) => {
                chown_to_volume_owner(&dir, &file, &path)?;
                let mode = if read_only {
                    LockMode::Shared
                } else {
                    LockMode::Exclusive
                };
                let lock = take(file, mode, backing)?;
                if mode == LockMode::Exclusive {
                    lock.write_owner(&path)?;
                }
                Ok(Some(lock))
            }
            Err(e) if read_only && matches!(e.errno(), Errno::ROFS | Errno::ACCESS) => {
                Self::shared(backing).map_err(|e2| if e2.errno() == Errno::BUSY { e2 } else { e })
            }
            Err(e) => Err(e),
        }
    }

    /// Takes the lock shared for an offline tool (`fsck`, `inspect`) without creating the file:
    /// None when there is no lock file (no fscryptfs daemon has mounted the volume read-write).
    /// EBUSY with one line naming the holder when a read-write mount holds it.
    pub fn shared(backing: &Path) -> Result<Option<VolumeLock>> {
        let dir = super::io::open_backing_root(backing)?;
        let path = backing.join(LOCK_NAME);
        match open_lock_file(&dir, &path, false) {
            Ok(file) => take(file, LockMode::Shared, backing).map(Some),
            Err(e) if e.errno() == Errno::NOENT => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Takes the lock exclusive for `fsck --repair`, which writes to the backing store: like a
    /// read-write mount, nobody else (no mount, read-only or not, no other offline tool) may hold
    /// it. The lock file is created (`0600`, exclusively) only when missing; unlike a mount, the
    /// holder's text in it is left as it is, so a repair that finds nothing to do changes no byte
    /// of the volume. EBUSY with one line naming the holder when the volume is in use.
    pub fn for_repair(backing: &Path) -> Result<VolumeLock> {
        let dir = super::io::open_backing_root(backing)?;
        let path = backing.join(LOCK_NAME);
        let file = open_lock_file(&dir, &path, true)?;
        chown_to_volume_owner(&dir, &file, &path)?;
        take(file, LockMode::Exclusive, backing)
    }

    /// Records this process as the holder: `PID HOSTNAME\n` from offset 0, nothing after it.
    fn write_owner(&self, path: &Path) -> Result<()> {
        let text = format!("{} {}\n", std::process::id(), hostname());
        let b = text.as_bytes();
        let b = &b[..b.len().min(LOCK_MAX)];
        rustix::fs::ftruncate(&self.file, 0).map_err(|e| sys_err(path.display(), e))?;
        self.file
            .write_all_at(b, 0)
            .map_err(|e| super::io_err(path.display(), e))
    }
}

/// Opens the lock file under `dir` through `store::io` (no symlink followed, nothing but a
/// regular file ever opened for I/O), creating it exclusively when `create` and it is missing, and
/// checks it has one link (EUCLEAN naming `path` otherwise).
fn open_lock_file(dir: &OwnedFd, path: &Path, create: bool) -> Result<File> {
    use super::io::{self as store_io, Access};
    let what = path.display().to_string();
    let name = std::ffi::OsStr::new(LOCK_NAME);
    let access = if create {
        Access::ReadWrite
    } else {
        Access::Read
    };
    let file = loop {
        match store_io::open_object(dir, name, &what)? {
            Some(fd) => break store_io::reopen_file(&fd, access, &what)?,
            None if !create => return Err(Error::new(Errno::NOENT, format!("{what}: missing"))),
            None => match store_io::create_new(dir, name, 0o600, &what) {
                Ok(f) => break f,
                // Created by someone else in between: open that one.
                Err(e) if e.errno() == Errno::EXIST => continue,
                Err(e) => return Err(e),
            },
        }
    };
    let st = rustix::fs::fstat(&file).map_err(|e| sys_err(&what, e))?;
    if st.st_size as u64 > LOCK_MAX as u64 {
        return Err(Error::corrupt(format!(
            "{what}: {} bytes, more than the {LOCK_MAX} its format allows (remove it)",
            st.st_size
        )));
    }
    if st.st_nlink != 1 {
        return Err(Error::corrupt(format!(
            "{what}: a file with {} hard links (not one) where the volume's lock file belongs \
             (remove it)",
            st.st_nlink
        )));
    }
    Ok(file)
}

/// A root daemon creates the lock file as root: hand it to the backing root's owner, so that
/// user can mount the volume later without root (the daemon mirrors owners the same way).
fn chown_to_volume_owner(dir: &OwnedFd, file: &File, path: &Path) -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    let (d, f) = (
        rustix::fs::fstat(dir).map_err(|e| sys_err(path.display(), e))?,
        rustix::fs::fstat(file).map_err(|e| sys_err(path.display(), e))?,
    );
    if f.st_uid == 0 && (d.st_uid != 0 || d.st_gid != f.st_gid) {
        let (uid, gid) = (
            rustix::fs::Uid::from_raw(d.st_uid),
            rustix::fs::Gid::from_raw(d.st_gid),
        );
        rustix::fs::fchown(file, Some(uid), Some(gid)).map_err(|e| sys_err(path.display(), e))?;
    }
    Ok(())
}

/// `fcntl(fd, cmd, &lock)` with an OFD command on the whole file; the lock (GETLK: the conflicting
/// one, or `F_UNLCK`) afterwards.
fn ofd_fcntl(fd: &File, cmd: libc::c_int, l_type: libc::c_int) -> std::io::Result<libc::flock> {
    // SAFETY: flock is plain data, all zero is a valid value (whence SEEK_SET, start 0, len 0:
    // the whole file; pid 0 as OFD commands require).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = l_type as _;
    fl.l_whence = libc::SEEK_SET as _;
    loop {
        // SAFETY: `fd` is an open descriptor we own for the duration of the call; `fl` is a valid
        // flock the kernel reads and (GETLK) writes.
        let r = unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), cmd, &mut fl) };
        if r == 0 {
            return Ok(fl);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Takes the lock on `file` without waiting; EBUSY naming the holder when someone else has it.
fn take(file: File, mode: LockMode, backing: &Path) -> Result<VolumeLock> {
    let l_type = match mode {
        LockMode::Exclusive => libc::F_WRLCK,
        LockMode::Shared => libc::F_RDLCK,
    };
    match ofd_fcntl(&file, libc::F_OFD_SETLK, l_type) {
        Ok(_) => Ok(VolumeLock { file, mode }),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => {
            Err(Error::new(
                Errno::BUSY,
                format!(
                    "the volume in {} is in use ({})",
                    backing.display(),
                    holder(&file, l_type)
                ),
            ))
        }
        Err(e) => Err(super::io_err(
            format!("locking {}", backing.join(LOCK_NAME).display()),
            e,
        )),
    }
}

/// Who holds the lock, in words: the pid and host recorded by an exclusive holder, or that it is
/// held shared.
fn holder(file: &File, wanted: libc::c_int) -> String {
    let shared = ofd_fcntl(file, libc::F_OFD_GETLK, wanted)
        .is_ok_and(|fl| libc::c_int::from(fl.l_type) == libc::F_RDLCK);
    if shared {
        return "a read-only mount, fsck or inspect holds it".into();
    }
    let mut buf = [0u8; LOCK_MAX];
    let n = super::read_full_at(file, &mut buf, 0).unwrap_or(0);
    match parse_owner(&buf[..n]) {
        Some((pid, host)) if host == hostname() => {
            format!("mounted by process {pid} on this host")
        }
        Some((pid, host)) => format!("mounted by process {pid} on host {host}"),
        None => "mounted by another fscryptfs daemon".into(),
    }
}

/// Parses `PID HOSTNAME\n` (at most [`LOCK_MAX`] bytes); None when it is not that.
pub fn parse_owner(text: &[u8]) -> Option<(u32, String)> {
    let text = std::str::from_utf8(text).ok()?;
    let line = text.strip_suffix('\n')?;
    let (pid, host) = line.split_once(' ')?;
    let pid: u32 = pid.parse().ok()?;
    let ok = |c: char| c.is_ascii_graphic();
    (pid > 0 && !host.is_empty() && host.chars().all(ok)).then(|| (pid, host.to_string()))
}

/// This host's name (the kernel's `uname` nodename), `?` when unknown.
fn hostname() -> String {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let h: String = h.trim().chars().filter(char::is_ascii_graphic).collect();
    if h.is_empty() {
        "?".into()
    } else {
        h
    }
}

/// The lock file's path in `backing`.
pub fn lock_path(backing: &Path) -> PathBuf {
    backing.join(LOCK_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_text() {
        assert_eq!(parse_owner(b"42 host\n"), Some((42, "host".into())));
        assert_eq!(parse_owner(b"42 host"), None);
        assert_eq!(parse_owner(b"0 host\n"), None);
        assert_eq!(parse_owner(b"x host\n"), None);
        assert_eq!(parse_owner(b"42 \n"), None);
        assert_eq!(parse_owner(b"42 a b\n"), None);
    }

    #[test]
    fn exclusive_excludes_and_shared_shares() {
        let tmp = tempfile::tempdir().unwrap();
        let b = tmp.path();
        assert!(VolumeLock::shared(b).unwrap().is_none(), "no file yet");
        let rw = VolumeLock::for_mount(b, false).unwrap().unwrap();
        let text = std::fs::read(lock_path(b)).unwrap();
        let (pid, _) = parse_owner(&text).unwrap();
        assert_eq!(pid, std::process::id());
        // OFD locks conflict between descriptions even in one process.
        let e = VolumeLock::for_mount(b, false).unwrap_err();
        assert_eq!(e.errno(), Errno::BUSY);
        assert!(e.message().contains("on this host"), "{}", e.message());
        assert_eq!(VolumeLock::shared(b).unwrap_err().errno(), Errno::BUSY);
        drop(rw);
        let s1 = VolumeLock::shared(b).unwrap().unwrap();
        let s2 = VolumeLock::for_mount(b, true).unwrap().unwrap();
        assert_eq!(s2.mode(), LockMode::Shared);
        let e = VolumeLock::for_mount(b, false).unwrap_err();
        assert!(e.message().contains("holds it"), "{}", e.message());
        drop((s1, s2));
        VolumeLock::for_mount(b, false).unwrap().unwrap();
    }

    #[test]
    fn hostile_lock_files_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let b = tmp.path();
        let canary = tmp.path().join("canary");
        std::fs::write(&canary, b"keep").unwrap();
        let p = lock_path(b);
        std::os::unix::fs::symlink(&canary, &p).unwrap();
        let e = VolumeLock::for_mount(b, false).unwrap_err();
        assert_eq!(e.errno(), Errno::UCLEAN, "{}", e.message());
        assert!(e.message().contains("symlink"), "{}", e.message());
        assert_eq!(VolumeLock::shared(b).unwrap_err().errno(), Errno::UCLEAN);
        std::fs::remove_file(&p).unwrap();
        std::fs::hard_link(&canary, &p).unwrap();
        let e = VolumeLock::for_mount(b, false).unwrap_err();
        assert_eq!(e.errno(), Errno::UCLEAN, "{}", e.message());
        assert_eq!(std::fs::read(&canary).unwrap(), b"keep");
        std::fs::remove_file(&p).unwrap();
        std::fs::create_dir(&p).unwrap();
        assert_eq!(
            VolumeLock::for_mount(b, false).unwrap_err().errno(),
            Errno::UCLEAN
        );
        assert_eq!(VolumeLock::shared(b).unwrap_err().errno(), Errno::UCLEAN);
        std::fs::remove_dir(&p).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert_eq!(
            VolumeLock::for_mount(b, false).unwrap_err().errno(),
            Errno::UCLEAN
        );
        assert_eq!(VolumeLock::shared(b).unwrap_err().errno(), Errno::UCLEAN);
        std::fs::remove_file(&p).unwrap();
        // An oversized file is damage like any metadata file larger than its format allows.
        std::fs::write(&p, vec![b'9'; 1 << 20]).unwrap();
        let e = VolumeLock::for_mount(b, false).unwrap_err();
        assert_eq!(e.errno(), Errno::UCLEAN, "{}", e.message());
        assert!(e.message().contains("more than"), "{}", e.message());
        assert_eq!(
            std::fs::metadata(&p).unwrap().len(),
            1 << 20,
            "left as it was"
        );
    }
}
