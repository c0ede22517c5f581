//! The ioctl bridge: the part of a kernel fscrypt ioctl's argument that FUSE does not carry.
//!
//! FUSE hands a restricted ioctl only `_IOC_SIZE(cmd)` bytes in and takes as many back, by the
//! direction bits of the number. Four of the kernel's fscrypt ioctls do not fit that: ADD_KEY's raw
//! key follows its 80-byte header, GET_POLICY_EX writes `8 + policy size` bytes behind a 9-byte
//! number, SET_POLICY (encoded `_IOR`) reads its policy and GET_POLICY and GET_PWSALT (encoded
//! `_IOW`) write theirs. The request does carry the caller's thread id and argument address, so
//! the daemon reads and writes the rest in the caller's memory with `process_vm_readv(2)` and
//! `process_vm_writev(2)`, exactly the bytes the kernel itself would copy.
//!
//! Trust: the thread id and address come from the kernel (`fuse_in_header.pid`,
//! `fuse_ioctl_in.arg`), not from the caller. Before any byte moves, [`CallerArg::attach`] checks
//! in `/proc/TID/syscall` that this thread is blocked in `ioctl(_, cmd, arg)` right now, so a
//! thread id recycled after its caller died (or one that is not our caller at all) is refused.
//! The kernel's own ptrace rules decide whether the daemon may reach the caller: a root daemon
//! may (unless Yama's `ptrace_scope` is 3), an unprivileged one usually only its own processes.
//! When it may not, the ioctl fails with ENOTTY as before the bridge (the log says why, once)
//! and fscryptfs' own ioctls, whose arguments fit, keep working.

use std::io::{self, IoSlice, IoSliceMut};
use std::sync::atomic::{AtomicBool, Ordering};

use fscrypt::{Errno, Result};

use super::types::errno;

/// The argument of the ioctl a caller's thread is blocked in, reachable in its memory.
#[derive(Debug)]
pub(super) struct CallerArg {
    tid: libc::pid_t,
    addr: u64,
    /// The caller's descriptor the ioctl is on (the syscall's first argument).
    fd: u64,
}

/// Whether "the bridge cannot reach callers" was logged already (once per daemon).
static UNREACHABLE_LOGGED: AtomicBool = AtomicBool::new(false);

/// ENOTTY for an ioctl the bridge cannot serve, saying why in the log the first time.
fn unreachable(why: impl std::fmt::Display) -> fscrypt::Error {
    if !UNREACHABLE_LOGGED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "the kernel's fscrypt ioctls that carry more than FUSE passes (add key, set and get \
             policy) answer ENOTTY: {why}; fscryptfs' own commands keep working"
        );
    }
    errno(Errno::NOTTY, format!("ioctl bridge: {why}"))
}

/// The syscall number, then the six arguments, of a `/proc/TID/syscall` line (None: the thread
/// is running, or the line is not that format).
fn parse_syscall_line(line: &str) -> Option<(i64, [u64; 6])> {
    let mut words = line.split_ascii_whitespace();
    let nr: i64 = words.next()?.parse().ok()?;
    let mut args = [0u64; 6];
    for a in &mut args {
        let w = words.next()?;
        *a = u64::from_str_radix(w.strip_prefix("0x")?, 16).ok()?;
    }
    Some((nr, args))
}

/// Whether mount `mnt_id` of a `mountinfo` text has the per-mount option `ro` (field 6; None:
/// no such mount).
fn mount_is_read_only(mountinfo: &str, mnt_id: &str) -> Option<bool> {
    mountinfo.lines().find_map(|l| {
        let mut f = l.split(' ');
        if f.next()? != mnt_id {
            return None;
        }
        let opts = f.nth(4)?;
        Some(opts.split(',').any(|o| o == "ro"))
    })
}

impl CallerArg {
    /// The argument `addr` of ioctl `cmd` that thread `tid` (the request's caller) is blocked in.
    /// ENOTTY when the thread is gone, is not in that ioctl, or may not be reached.
    pub(super) fn attach(tid: u32, cmd: u32, addr: u64) -> Result<CallerArg> {
        let tid = libc::pid_t::try_from(tid)
            .ok()
            .filter(|t| *t > 0)
            .ok_or_else(|| unreachable("the caller is outside the daemon's pid namespace"))?;
        let path = format!("/proc/{tid}/syscall");
        let line = match std::fs::read_to_string(&path) {
            Ok(l) => l,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Err(errno(Errno::NOTTY, "ioctl bridge: the caller is gone"))
            }
            Err(e) => return Err(unreachable(format_args!("reading {path}: {e}"))),
        };
        match parse_syscall_line(&line) {
            Some((nr, args))
                if nr == libc::SYS_ioctl && args[1] as u32 == cmd && args[2] == addr =>
            {
                Ok(CallerArg {
                    tid,
                    addr,
                    fd: args[0],
                })
            }
            _ => Err(errno(
                Errno::NOTTY,
                format!("ioctl bridge: thread {tid} is not in ioctl {cmd:#x} on {addr:#x}"),
            )),
        }
    }

    /// Whether the caller's descriptor is on a read-only mount (a read-only bind mount of this
    /// one): the kernel's `mnt_want_write_file`, which FUSE does not carry. Its mount id from
    /// `/proc/TID/fdinfo/FD`, its per-mount options from `/proc/TID/mountinfo`; ENOTTY when
    /// either cannot be read.
    pub(super) fn on_read_only_mount(&self) -> Result<bool> {
        let fdinfo = std::fs::read_to_string(format!("/proc/{}/fdinfo/{}", self.tid, self.fd))
            .map_err(|e| unreachable(format_args!("reading the caller's fdinfo: {e}")))?;
        let mnt_id = fdinfo
            .lines()
            .find_map(|l| l.strip_prefix("mnt_id:"))
            .map(str::trim)
            .ok_or_else(|| unreachable("no mnt_id in the caller's fdinfo"))?
            .to_string();
        let mountinfo = std::fs::read_to_string(format!("/proc/{}/mountinfo", self.tid))
            .map_err(|e| unreachable(format_args!("reading the caller's mountinfo: {e}")))?;
        mount_is_read_only(&mountinfo, &mnt_id).ok_or_else(|| {
            unreachable(format_args!("mount {mnt_id} not in the caller's mountinfo"))
        })
    }

    /// The caller's `len` bytes `offset` bytes into the argument, as the remote iovec of a
    /// transfer (EFAULT past the address space).
    fn remote(&self, offset: usize, len: usize) -> Result<[libc::iovec; 1]> {
        let at = usize::try_from(self.addr)
            .ok()
            .and_then(|a| a.checked_add(offset))
            .ok_or_else(|| errno(Errno::FAULT, "ioctl argument beyond the address space"))?;
        Ok([libc::iovec {
            iov_base: at as *mut libc::c_void,
            iov_len: len,
        }])
    }

    /// What a failed or short transfer means: EFAULT for memory the caller does not have (the
    /// kernel's answer to a bad pointer), ENOTTY when the caller cannot be reached at all.
    fn transfer_error(e: &io::Error) -> fscrypt::Error {
        match e.raw_os_error() {
            Some(libc::EFAULT) | Some(libc::ENOMEM) => {
                errno(Errno::FAULT, "ioctl argument not in the caller's memory")
            }
            Some(libc::ESRCH) => errno(Errno::NOTTY, "ioctl bridge: the caller is gone"),
            _ => unreachable(format_args!("process_vm_readv/writev: {e}")),
        }
    }

    /// Fills `buf` from the argument's bytes at `offset..offset + buf.len()`, all or nothing.
    pub(super) fn read(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        let want = buf.len();
        let remote = self.remote(offset, want)?;
        let mut local = [IoSliceMut::new(buf)];
        // SAFETY: the local iovec is an exclusively borrowed slice of `want` bytes, which the
        // kernel fills at most; the remote iovec names memory of another process, which the
        // kernel checks (EFAULT), never dereferenced here.
        let n = unsafe {
            libc::process_vm_readv(
                self.tid,
                local.as_mut_ptr().cast::<libc::iovec>(),
                1,
                remote.as_ptr(),
                1,
                0,
            )
        };
        self.finished(n, want)
    }

    /// Writes `data` into the argument at `offset..offset + data.len()`.
    pub(super) fn write(&self, offset: usize, data: &[u8]) -> Result<()> {
        let want = data.len();
        let remote = self.remote(offset, want)?;
        let local = [IoSlice::new(data)];
        // SAFETY: the local iovec is a borrowed slice of `want` bytes that the kernel only reads;
        // the remote iovec names memory of another process, which the kernel checks (EFAULT).
        let n = unsafe {
            libc::process_vm_writev(
                self.tid,
                local.as_ptr().cast::<libc::iovec>(),
                1,
                remote.as_ptr(),
                1,
                0,
            )
        };
        self.finished(n, want)
    }

    fn finished(&self, n: isize, want: usize) -> Result<()> {
        if n < 0 {
            return Err(Self::transfer_error(&io::Error::last_os_error()));
        }
        if n as usize != want {
            // A partial transfer stops at the first page the caller does not have.
            return Err(errno(
                Errno::FAULT,
                "ioctl argument runs past the caller's memory",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syscall_line_gives_its_number_and_arguments() {
        let l = "16 0x3 0xc0506617 0x7ffd1234 0x0 0x0 0x0 0x7ffd0000 0x7f0000001234\n";
        assert_eq!(
            parse_syscall_line(l),
            Some((16, [3, 0xc050_6617, 0x7ffd_1234, 0, 0, 0]))
        );
        assert_eq!(parse_syscall_line("running\n"), None);
        assert_eq!(parse_syscall_line("-1 0x7ffd0000 0x7f0000001234\n"), None);
        assert_eq!(parse_syscall_line("16 0x3 zz 0x1 0x0 0x0 0x0"), None);
    }

    #[test]
    fn the_per_mount_options_say_read_only() {
        let info = "22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw\n\
                    97 29 0:55 / /mnt/b ro,relatime shared:50 - fuse.fscryptfs /b rw\n";
        assert_eq!(mount_is_read_only(info, "97"), Some(true));
        assert_eq!(mount_is_read_only(info, "22"), Some(false));
        assert_eq!(mount_is_read_only(info, "9"), None);
    }

    #[test]
    fn a_thread_that_is_not_in_that_ioctl_is_refused() {
        // This thread is running, not blocked in an ioctl: nothing may be read or written.
        let me = rustix::thread::gettid().as_raw_nonzero().get() as u32;
        let buf = [7u8; 16];
        let e = CallerArg::attach(me, 0xc050_6617, buf.as_ptr() as u64).unwrap_err();
        assert_eq!(e.errno(), Errno::NOTTY, "{e}");
        // A sleeping child, in another syscall (or still starting): refused too.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        std::thread::sleep(std::time::Duration::from_millis(50));
        let r = CallerArg::attach(child.id(), 0xc050_6617, 0x1000);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(r.unwrap_err().errno(), Errno::NOTTY);
        // Thread ids 0 and beyond the pid range are no caller.
        assert_eq!(
            CallerArg::attach(0, 1, 0).unwrap_err().errno(),
            Errno::NOTTY
        );
    }

    #[test]
    fn reads_and_writes_stop_at_the_callers_memory() {
        // The transfer functions on this very process (as a caller that passed the check): the
        // exact bytes move, and a range crossing into unmapped memory is EFAULT, not a short copy.
        let me = CallerArg {
            tid: rustix::process::getpid().as_raw_nonzero().get(),
            addr: 0,
            fd: 0,
        };
        let src = *b"0123456789abcdef";
        let at = CallerArg {
            addr: src.as_ptr() as u64,
            ..me
        };
        let mut got = [0u8; 6];
        at.read(4, &mut got).expect("read");
        assert_eq!(&got, b"456789");
        let mut dst = [0u8; 8];
        let to = CallerArg {
            addr: dst.as_mut_ptr() as u64,
            ..me
        };
        to.write(2, b"xyz").expect("write");
        assert_eq!(std::hint::black_box(&dst), b"\0\0xyz\0\0\0");
        let nowhere = CallerArg { addr: 8, ..me };
        assert_eq!(nowhere.read(0, &mut got).unwrap_err().errno(), Errno::FAULT);
    }
}
