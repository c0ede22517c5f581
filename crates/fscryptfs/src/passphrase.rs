//! Passphrase and raw-key input: where a secret typed or supplied by a person comes from, read into
//! locked, zeroized memory ([`SecretBytes`]) and nowhere else.
//!
//! This module owns the conventions users bring from the `fscrypt` tool and gocryptfs:
//! - an interactive prompt on the controlling terminal with echo off, asked twice for a new
//!   passphrase (the `fscrypt` tool's wording: `Enter …: `, `Confirm passphrase: `, "entered
//!   passphrases do not match"), the terminal restored on every exit path, Ctrl-C included;
//! - stdin read to EOF when it is not a terminal (one trailing `\n` or `\r\n` dropped), so
//!   `echo pass | fscryptfs …` and `printf pass | fscryptfs …` give the same passphrase;
//! - `--passphrase-file` (gocryptfs `-passfile`: one trailing newline dropped) and `--extpass`
//!   (gocryptfs `-extpass`: a program run without a shell, its stdout the passphrase);
//! - raw key files for raw_key protectors: exactly 32 bytes, as the `fscrypt` tool requires;
//! - the exit statuses that go with these failures (gocryptfs' numbers where it has one).
//!
//! What the passphrase then unlocks (hashing, unwrapping, "incorrect passphrase") is the protector
//! code's business, not this module's.
//!
//! Every byte of a secret is read straight into a locked buffer: no `String`, no `Vec`, no buffered
//! reader. Intermediate buffers are `SecretBytes` too, so they are wiped when dropped.

use std::fmt;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use fscrypt::secret::SecretBytes;
use rustix::fs::{Mode, OFlags};
use rustix::termios::{self, LocalModes, OptionalActions, SpecialCodeIndex, Termios};

/// The longest passphrase accepted, in bytes (after one trailing newline is dropped).
pub const MAX_PASSPHRASE_LEN: usize = 4096;
/// Exit status for a wrong passphrase (gocryptfs' `PasswordIncorrect`). Used by the protector code.
pub const EXIT_BAD_PASSPHRASE: i32 = 12;
/// Exit status for an empty passphrase (gocryptfs' `PasswordEmpty`).
pub const EXIT_PASSPHRASE_EMPTY: i32 = 22;
/// Exit status when the user pressed Ctrl-C at a prompt (128 + SIGINT, as a shell reports it).
pub const EXIT_INTERRUPTED: i32 = 130;
/// Exit status when the passphrase or key could not be read: unreadable or oversized file, failing
/// extpass program, mismatched confirmation, key file of the wrong size (gocryptfs' `ReadPassword`).
pub const EXIT_READ_PASSPHRASE: i32 = 9;

/// The length a raw_key protector's key file must have (the `fscrypt` tool's `InternalKeyLen`).
pub const RAW_KEY_LEN: usize = 32;

/// Where a passphrase comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassphraseSource {
    /// The terminal when stdin is one (no echo), otherwise stdin read to EOF.
    Prompt,
    /// A file whose contents, minus one trailing newline, are the passphrase (`--passphrase-file`).
    File(PathBuf),
    /// A program (argv, no shell) whose standard output, minus one trailing newline, is the
    /// passphrase (`--extpass`).
    Extpass(Vec<String>),
}

/// Why a passphrase or key could not be read, with the exit status the command should end with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassphraseError {
    /// The process exit status.
    pub exit_code: i32,
    /// One line saying what went wrong.
    pub message: String,
}

impl PassphraseError {
    fn new(exit_code: i32, message: impl Into<String>) -> Self {
        PassphraseError {
            exit_code,
            message: message.into(),
        }
    }

    fn read(message: impl Into<String>) -> Self {
        Self::new(EXIT_READ_PASSPHRASE, message)
    }

    fn empty() -> Self {
        Self::new(EXIT_PASSPHRASE_EMPTY, "empty passphrase")
    }

    fn interrupted() -> Self {
        Self::new(EXIT_INTERRUPTED, "interrupted")
    }

    fn too_long(what: &str) -> Self {
        Self::read(format!(
            "{what} is too big (at most {MAX_PASSPHRASE_LEN} bytes)"
        ))
    }
}

impl fmt::Display for PassphraseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PassphraseError {}

/// Reads a passphrase from `source`.
///
/// `prompt` names what is asked for, as the `fscrypt` tool words it (e.g.
/// `custom passphrase for protector "home"`); it is shown as `Enter {prompt}: ` on a terminal and
/// nowhere else. With `new` and a terminal, the passphrase is asked a second time
/// (`Confirm passphrase: `) and must match. An empty passphrase is refused whatever the source.
///
/// # Errors
///
/// [`EXIT_PASSPHRASE_EMPTY`] "empty passphrase"; [`EXIT_INTERRUPTED`] "interrupted" (Ctrl-C at the
/// prompt, the terminal restored); [`EXIT_READ_PASSPHRASE`] for everything else: "entered
/// passphrases do not match", a file that cannot be read or is too big (its path named), an extpass
/// program that cannot be run, fails, or prints too much (the program named), a closed terminal.
pub fn read_passphrase(
    source: &PassphraseSource,
    prompt: &str,
    new: bool,
) -> Result<SecretBytes, PassphraseError> {
    let secret = match source {
        PassphraseSource::Prompt => {
            let stdin = rustix::stdio::stdin();
            if termios::isatty(stdin) {
                read_from_terminal(prompt, new)?
            } else {
                read_stream(stdin_reader(), "passphrase on standard input")?
            }
        }
        PassphraseSource::File(path) => read_passphrase_file(path)?,
        PassphraseSource::Extpass(argv) => read_extpass(argv)?,
    };
    if secret.is_empty() {
        return Err(PassphraseError::empty());
    }
    Ok(secret)
}

/// Reads the key file of a raw_key protector, which must hold exactly 32 bytes (the `fscrypt` tool's
/// rule); anything else is an error naming the path and its size.
pub fn read_raw_key_32(path: &Path) -> Result<SecretBytes, PassphraseError> {
    let shown = path.display();
    let mut file = std::fs::File::open(path)
        .map_err(|e| PassphraseError::read(format!("key file {shown}: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| PassphraseError::read(format!("key file {shown}: {e}")))?;
    let wrong_size = |n: u64| {
        PassphraseError::read(format!(
            "key file {shown}: must be {RAW_KEY_LEN} bytes, not {n}"
        ))
    };
    if meta.is_file() && meta.len() != RAW_KEY_LEN as u64 {
        return Err(wrong_size(meta.len()));
    }
    // Read one byte more than a key, so a longer stream (a pipe, a device) is caught too.
    let mut buf = SecretBytes::zeroed(RAW_KEY_LEN + 1);
    let n = fill(&mut file, buf.as_mut())
        .map_err(|e| PassphraseError::read(format!("key file {shown}: {e}")))?;
    if n != RAW_KEY_LEN {
        let shown_len = if n > RAW_KEY_LEN {
            format!("more than {RAW_KEY_LEN}")
        } else {
            n.to_string()
        };
        return Err(PassphraseError::read(format!(
            "key file {shown}: must be {RAW_KEY_LEN} bytes, not {shown_len}"
        )));
    }
    Ok(SecretBytes::copy_from(&buf.as_ref()[..RAW_KEY_LEN]))
}

// ---- non-interactive sources ----

/// Reads `reader` to EOF into a locked buffer, drops one trailing `\n` or `\r\n`, and refuses more
/// than [`MAX_PASSPHRASE_LEN`] bytes. `what` names the source in errors.
fn read_stream(mut reader: impl Read, what: &str) -> Result<SecretBytes, PassphraseError> {
    // Room for the longest passphrase, its "\r\n", and one byte to detect overflow.
    let mut buf = SecretBytes::zeroed(MAX_PASSPHRASE_LEN + 3);
    let n = fill(&mut reader, buf.as_mut())
        .map_err(|e| PassphraseError::read(format!("reading {what}: {e}")))?;
    let len = strip_one_newline(&buf.as_ref()[..n]);
    if n == buf.len() || len > MAX_PASSPHRASE_LEN {
        return Err(PassphraseError::too_long(what));
    }
    Ok(SecretBytes::copy_from(&buf.as_ref()[..len]))
}

/// The length of `bytes` without one trailing `\n` or `\r\n`.
fn strip_one_newline(bytes: &[u8]) -> usize {
    match bytes {
        [.., b'\r', b'\n'] => bytes.len() - 2,
        [.., b'\n'] => bytes.len() - 1,
        _ => bytes.len(),
    }
}

/// Reads until `buf` is full or EOF; returns the number of bytes read.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Unbuffered reads of fd 0 (std's `Stdin` keeps its own buffer, which would hold a copy).
struct FdReader<'a>(BorrowedFd<'a>);

impl Read for FdReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        Ok(rustix::io::read(self.0, buf)?)
    }
}

fn stdin_reader() -> FdReader<'static> {
    FdReader(rustix::stdio::stdin())
}

fn read_passphrase_file(path: &Path) -> Result<SecretBytes, PassphraseError> {
    let shown = path.display();
    let file = std::fs::File::open(path)
        .map_err(|e| PassphraseError::read(format!("passphrase file {shown}: {e}")))?;
    if let Ok(meta) = file.metadata() {
        // A regular file that cannot fit is refused without reading it.
        if meta.is_file() && meta.len() > (MAX_PASSPHRASE_LEN + 2) as u64 {
            return Err(PassphraseError::read(format!(
                "passphrase file {shown} is too big ({} bytes; at most {MAX_PASSPHRASE_LEN})",
                meta.len()
            )));
        }
    }
    read_stream(file, &format!("passphrase file {shown}"))
}

fn read_extpass(argv: &[String]) -> Result<SecretBytes, PassphraseError> {
    let Some(program) = argv.first() else {
        return Err(PassphraseError::read("extpass: no program given"));
    };
    let mut child = Command::new(program)
        .args(&argv[1..])
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| PassphraseError::read(format!("extpass program \"{program}\": {e}")))?;
    let what = format!("output of extpass program \"{program}\"");
    let result = match child.stdout.take() {
        Some(out) => read_stream(out, &what),
        None => Err(PassphraseError::read(format!(
            "extpass program \"{program}\": no standard output"
        ))),
    };
    if result.is_err() {
        // Too much output or a read error: do not wait for a program that may never finish.
        let _ = child.kill();
    }
    let status = child
        .wait()
        .map_err(|e| PassphraseError::read(format!("extpass program \"{program}\": {e}")))?;
    let secret = result?;
    if !status.success() {
        let how = match status.code() {
            Some(code) => format!("exit status {code}"),
            None => {
                use std::os::unix::process::ExitStatusExt;
                format!("signal {}", status.signal().unwrap_or(0))
            }
        };
        return Err(PassphraseError::read(format!(
            "extpass program \"{program}\" failed ({how})"
        )));
    }
    Ok(secret)
}

// ---- the terminal ----

/// The terminal to prompt on: the controlling terminal, or stdin's when /dev/tty cannot be opened.
enum Tty {
    Owned(OwnedFd),
    Stdin,
}

impl Tty {
    fn open() -> Tty {
        match rustix::fs::open(
            "/dev/tty",
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Tty::Owned(fd),
            Err(_) => Tty::Stdin,
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Tty::Owned(fd) => fd.as_fd(),
            Tty::Stdin => rustix::stdio::stdin(),
        }
    }

    fn write_all(&self, mut bytes: &[u8]) -> Result<(), PassphraseError> {
        while !bytes.is_empty() {
            match rustix::io::write(self.fd(), bytes) {
                Ok(0) => return Err(PassphraseError::read("terminal: write returned 0")),
                Ok(n) => bytes = &bytes[n..],
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(PassphraseError::read(format!("terminal: {e}"))),
            }
        }
        Ok(())
    }
}

/// Echo off for as long as it lives; the saved settings are put back when it is dropped, whatever
/// ended the read (an error, Ctrl-C, a panic).
struct EchoOff<'a> {
    tty: &'a Tty,
    saved: Termios,
}

impl<'a> EchoOff<'a> {
    fn new(tty: &'a Tty) -> Result<Self, PassphraseError> {
        let saved = termios::tcgetattr(tty.fd())
            .map_err(|e| PassphraseError::read(format!("terminal: {e}")))?;
        let mut quiet = saved.clone();
        // Non-canonical and without signals, so Ctrl-C arrives as a byte and is handled here with
        // the terminal restored, instead of killing the process with echo still off.
        quiet.local_modes.remove(
            LocalModes::ECHO
                | LocalModes::ECHOE
                | LocalModes::ECHOK
                | LocalModes::ECHONL
                | LocalModes::ICANON
                | LocalModes::ISIG
                | LocalModes::IEXTEN,
        );
        quiet.special_codes[SpecialCodeIndex::VMIN] = 1;
        quiet.special_codes[SpecialCodeIndex::VTIME] = 0;
        // Flush: anything typed before the prompt (and echoed) is not taken as the passphrase.
        termios::tcsetattr(tty.fd(), OptionalActions::Flush, &quiet)
            .map_err(|e| PassphraseError::read(format!("terminal: {e}")))?;
        Ok(EchoOff { tty, saved })
    }
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.tty.fd(), OptionalActions::Flush, &self.saved);
    }
}

fn read_from_terminal(prompt: &str, new: bool) -> Result<SecretBytes, PassphraseError> {
    let tty = Tty::open();
    let guard = EchoOff::new(&tty)?;
    let first = read_line_no_echo(&tty, &guard.saved, &format!("Enter {prompt}: "))?;
    if first.is_empty() {
        return Err(PassphraseError::empty());
    }
    if new {
        let second = read_line_no_echo(&tty, &guard.saved, "Confirm passphrase: ")?;
        if !first.ct_eq(&second) {
            return Err(PassphraseError::read("entered passphrases do not match"));
        }
    }
    drop(guard);
    Ok(first)
}

/// Prints `prompt`, reads one line byte by byte (echo is already off), then prints the newline the
/// user's Enter did not. Erase and kill characters edit the line as the terminal would.
fn read_line_no_echo(
    tty: &Tty,
    saved: &Termios,
    prompt: &str,
) -> Result<SecretBytes, PassphraseError> {
    const CTRL_C: u8 = 0x03;
    const CTRL_D: u8 = 0x04;
    const BACKSPACE: u8 = 0x08;
    const CTRL_U: u8 = 0x15;
    const DEL: u8 = 0x7f;
    let erase = saved.special_codes[SpecialCodeIndex::VERASE];
    let kill = saved.special_codes[SpecialCodeIndex::VKILL];
    let intr = saved.special_codes[SpecialCodeIndex::VINTR];

    tty.write_all(prompt.as_bytes())?;
    // One byte of overflow room, so a too-long line is noticed.
    let mut buf = SecretBytes::zeroed(MAX_PASSPHRASE_LEN + 1);
    let mut pos = 0usize;
    let result = loop {
        let slot = &mut buf.as_mut()[pos..pos + 1];
        match rustix::io::read(tty.fd(), &mut *slot) {
            Ok(0) => {
                break Err(PassphraseError::read(
                    "terminal closed while reading passphrase",
                ))
            }
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => break Err(PassphraseError::read(format!("terminal: {e}"))),
        }
        let c = slot[0];
        slot[0] = 0;
        match c {
            b'\r' | b'\n' | CTRL_D => break Ok(()),
            CTRL_C => break Err(PassphraseError::interrupted()),
            c if c == intr && c != 0 => break Err(PassphraseError::interrupted()),
            BACKSPACE | DEL => pos = pos.saturating_sub(1),
            c if c == erase && c != 0 => pos = pos.saturating_sub(1),
            CTRL_U => {
                buf.as_mut()[..pos].fill(0);
                pos = 0;
            }
            c if c == kill && c != 0 => {
                buf.as_mut()[..pos].fill(0);
                pos = 0;
            }
            c => {
                if pos == MAX_PASSPHRASE_LEN {
                    break Err(PassphraseError::too_long("passphrase"));
                }
                buf.as_mut()[pos] = c;
                pos += 1;
            }
        }
    };
    // The Enter (or Ctrl-C) was not echoed: end the prompt's line either way.
    let _ = tty.write_all(b"\n");
    result?;
    Ok(SecretBytes::copy_from(&buf.as_ref()[..pos]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_exactly_one_newline() {
        assert_eq!(strip_one_newline(b"abc\n"), 3);
        assert_eq!(strip_one_newline(b"abc\r\n"), 3);
        assert_eq!(strip_one_newline(b"abc\n\n"), 4);
        assert_eq!(strip_one_newline(b"abc"), 3);
        assert_eq!(strip_one_newline(b"\n"), 0);
        assert_eq!(strip_one_newline(b"abc\r"), 4);
    }

    #[test]
    fn stream_limits() {
        let ok = vec![b'x'; MAX_PASSPHRASE_LEN];
        assert_eq!(read_stream(&ok[..], "t").unwrap().len(), MAX_PASSPHRASE_LEN);
        let mut ok_nl = ok.clone();
        ok_nl.extend_from_slice(b"\r\n");
        assert_eq!(
            read_stream(&ok_nl[..], "t").unwrap().len(),
            MAX_PASSPHRASE_LEN
        );
        let long = vec![b'x'; MAX_PASSPHRASE_LEN + 1];
        assert_eq!(
            read_stream(&long[..], "t").unwrap_err().exit_code,
            EXIT_READ_PASSPHRASE
        );
        let huge = vec![b'x'; 3 * MAX_PASSPHRASE_LEN];
        assert!(read_stream(&huge[..], "t").is_err());
    }
}
