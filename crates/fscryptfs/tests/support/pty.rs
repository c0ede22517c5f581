//! A pseudo-terminal driver for tests: runs a program with a real pty as its controlling terminal
//! (stdin, stdout and stderr all on the pty's slave, in a new session), plays a script of steps
//! against it as a person at a keyboard would, and returns what the terminal showed.
//!
//! Standalone: include it with `#[path = "support/pty.rs"] mod pty;`. It needs the dev-dependency
//! `rustix` with features `pty`, `termios`, `process`, `event` and `fs`.
//!
//! Everything has one hard deadline ([`PTY_TIMEOUT`]): a step that waits too long kills the child
//! and panics with the transcript so far, so a hung prompt fails a test instead of hanging it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::{self, LocalModes};

/// The hard limit on one `pty_run`, from spawn to exit.
pub const PTY_TIMEOUT: Duration = Duration::from_secs(20);

/// Ctrl-C as the terminal sends it.
pub const CTRL_C: &[u8] = b"\x03";
/// Ctrl-D as the terminal sends it.
pub const CTRL_D: &[u8] = b"\x04";

/// One step of a script.
#[derive(Debug, Clone)]
pub enum Step {
    /// Wait until this text appears in the output after the previous match.
    Expect(String),
    /// Type this text and press Enter (a carriage return, as a keyboard sends).
    SendLine(String),
    /// Send these bytes as they are (e.g. [`CTRL_C`]).
    SendBytes(Vec<u8>),
}

/// Shorthand for [`Step::Expect`].
pub fn expect(text: &str) -> Step {
    Step::Expect(text.to_string())
}

/// Shorthand for [`Step::SendLine`].
pub fn send_line(text: &str) -> Step {
    Step::SendLine(text.to_string())
}

/// Shorthand for [`Step::SendBytes`].
pub fn send_bytes(bytes: &[u8]) -> Step {
    Step::SendBytes(bytes.to_vec())
}

/// What happened.
#[derive(Debug)]
pub struct PtyOutcome {
    /// The child's exit status.
    pub status: ExitStatus,
    /// Everything the terminal displayed (the program's output and whatever the terminal echoed),
    /// lossily decoded; the pty turns "\n" into "\r\n".
    pub transcript: String,
    /// The pty's local modes after the child exited: whether echo was on.
    pub echo_after: bool,
    /// The pty's local modes after the child exited: whether canonical (line) mode was on.
    pub icanon_after: bool,
    /// The pty's local modes after the child exited: whether Ctrl-C raised signals.
    pub isig_after: bool,
}

impl PtyOutcome {
    /// The exit code, or panics with the transcript if the child was killed by a signal.
    pub fn code(&self) -> i32 {
        match self.status.code() {
            Some(c) => c,
            None => panic!(
                "child killed by signal {:?}; transcript:\n{}",
                self.status.signal(),
                self.transcript
            ),
        }
    }

    /// True when the terminal was left as a person expects it: echo, line mode, and signals on.
    pub fn terminal_sane(&self) -> bool {
        self.echo_after && self.icanon_after && self.isig_after
    }
}

/// The master side of a fresh pty and a handle on its slave.
struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
}

fn open_pty() -> Pty {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .expect("posix_openpt");
    rustix::pty::grantpt(&master).expect("grantpt");
    rustix::pty::unlockpt(&master).expect("unlockpt");
    let name = rustix::pty::ptsname(&master, Vec::new()).expect("ptsname");
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .expect("open pty slave");
    // A known starting point: the pty's defaults (echo, canonical, signals) on a 80x24 screen.
    let _ = termios::tcsetwinsize(
        &slave,
        termios::Winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    );
    Pty { master, slave }
}

/// Makes the child a session leader whose controlling terminal is its stdin (the pty's slave).
fn make_controlling_terminal(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only makes two raw system calls
    // (setsid, ioctl TIOCSCTTY) through rustix, which allocate nothing and take no locks, so it is
    // async-signal-safe as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid()?;
            rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
            Ok(())
        });
    }
}

/// The running session: child, master, transcript, deadline.
struct Session {
    child: Child,
    pty: Pty,
    transcript: Vec<u8>,
    /// Where the next `Expect` starts looking.
    cursor: usize,
    deadline: Instant,
    program: String,
}

impl Session {
    fn fail(&mut self, why: &str) -> ! {
        // The child leads its own session and process group: take its children down with it.
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.drain(Duration::from_millis(50));
        panic!(
            "pty_run {}: {why}\n--- transcript ---\n{}\n--- end ---",
            self.program,
            String::from_utf8_lossy(&self.transcript)
        );
    }

    /// Reads what the master has, waiting at most `wait`. Returns false at EOF/EIO.
    fn read_some(&mut self, wait: Duration) -> bool {
        let ts = Timespec {
            tv_sec: wait.as_secs() as _,
            tv_nsec: wait.subsec_nanos() as _,
        };
        let mut fds = [PollFd::new(&self.pty.master, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => return true,
            Err(e) => panic!("poll: {e}"),
        }
        let mut buf = [0u8; 4096];
        match rustix::io::read(&self.pty.master, &mut buf) {
            Ok(0) => false,
            Ok(n) => {
                self.transcript.extend_from_slice(&buf[..n]);
                true
            }
            Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => true,
            // EIO: no process has the slave open any more.
            Err(_) => false,
        }
    }

    /// Reads until nothing more arrives for `quiet`.
    fn drain(&mut self, quiet: Duration) {
        loop {
            let before = self.transcript.len();
            if !self.read_some(quiet) || self.transcript.len() == before {
                return;
            }
        }
    }

    fn remaining(&self) -> Option<Duration> {
        self.deadline.checked_duration_since(Instant::now())
    }

    fn expect(&mut self, text: &str) {
        loop {
            let hay = &self.transcript[self.cursor..];
            if let Some(at) = find(hay, text.as_bytes()) {
                self.cursor += at + text.len();
                return;
            }
            let Some(left) = self.remaining() else {
                self.fail(&format!("timed out waiting for {text:?}"));
            };
            if let Ok(Some(status)) = self.child.try_wait() {
                self.drain(Duration::from_millis(50));
                if find(&self.transcript[self.cursor..], text.as_bytes()).is_none() {
                    self.fail(&format!("child exited ({status}) before printing {text:?}"));
                }
                continue;
            }
            self.read_some(left.min(Duration::from_millis(100)));
        }
    }

    fn send(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.remaining().is_none() {
                self.fail("timed out sending input");
            }
            match rustix::io::write(&self.pty.master, bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => {
                    self.read_some(Duration::from_millis(10));
                }
                Err(e) => self.fail(&format!("write to pty: {e}")),
            }
        }
    }

    fn wait(&mut self) -> ExitStatus {
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.drain(Duration::from_millis(50));
                    return status;
                }
                Ok(None) => {}
                Err(e) => self.fail(&format!("waitpid: {e}")),
            }
            let Some(left) = self.remaining() else {
                self.fail("timed out waiting for the child to exit");
            };
            self.read_some(left.min(Duration::from_millis(20)));
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Runs `program args…` on a fresh pty (its controlling terminal; stdin, stdout and stderr on the
/// slave), with `env` added to the environment, plays `script`, waits for the child to exit, and
/// returns its status, the transcript and the terminal's modes afterwards. Panics with the
/// transcript when any of it takes longer than [`PTY_TIMEOUT`] in all (the child's process group is
/// killed first).
pub fn pty_run<S: AsRef<OsStr>>(
    program: impl AsRef<OsStr>,
    args: &[S],
    env: &[(&str, &str)],
    script: &[Step],
) -> PtyOutcome {
    pty_run_with_timeout(program, args, env, script, PTY_TIMEOUT)
}

/// [`pty_run`] with another hard limit than [`PTY_TIMEOUT`].
pub fn pty_run_with_timeout<S: AsRef<OsStr>>(
    program: impl AsRef<OsStr>,
    args: &[S],
    env: &[(&str, &str)],
    script: &[Step],
    timeout: Duration,
) -> PtyOutcome {
    let pty = open_pty();
    let program_name = program.as_ref().to_string_lossy().into_owned();
    let mut cmd = Command::new(program);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let stdio = |pty: &Pty| Stdio::from(pty.slave.try_clone().expect("dup pty slave"));
    cmd.stdin(stdio(&pty))
        .stdout(stdio(&pty))
        .stderr(stdio(&pty));
    make_controlling_terminal(&mut cmd);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program_name}: {e}"));
    // Dropping `cmd` closes the parent's copies of the slave given to the child; `pty.slave` stays
    // open so the modes can be read after the child exits.
    drop(cmd);
    let mut s = Session {
        child,
        pty,
        transcript: Vec::new(),
        cursor: 0,
        deadline: Instant::now() + timeout,
        program: program_name,
    };
    for step in script {
        match step {
            Step::Expect(text) => s.expect(text),
            Step::SendLine(text) => {
                s.send(text.as_bytes());
                s.send(b"\r");
            }
            Step::SendBytes(bytes) => s.send(bytes),
        }
    }
    let status = s.wait();
    let modes = termios::tcgetattr(s.pty.slave.as_fd())
        .expect("tcgetattr on the pty after the child exited")
        .local_modes;
    PtyOutcome {
        status,
        transcript: String::from_utf8_lossy(&s.transcript).into_owned(),
        echo_after: modes.contains(LocalModes::ECHO),
        icanon_after: modes.contains(LocalModes::ICANON),
        isig_after: modes.contains(LocalModes::ISIG),
    }
}
