//! The detached daemon's log when no `-o log=` is given: one datagram per log event to the local
//! system log socket (`/dev/log`, where journald or a syslog daemon listens), in the local form of
//! RFC 3164 that glibc's `syslog(3)` sends: `<PRI>fscryptfs[PID]: MESSAGE`, facility `daemon`,
//! severity from the event's level. Without it a background daemon's errors would be lost.
//!
//! `FSCRYPTFS_SYSLOG_SOCKET` names another socket (tests, or a system whose syslog listens
//! elsewhere). The socket is reconnected once when a send fails (the log daemon restarted);
//! a message that still cannot be sent is dropped: logging never stops the filesystem.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The usual local syslog socket.
pub const DEFAULT_SOCKET: &str = "/dev/log";
/// The environment variable naming another socket.
pub const SOCKET_ENV: &str = "FSCRYPTFS_SYSLOG_SOCKET";
/// `LOG_DAEMON`: the facility of every message.
const FACILITY_DAEMON: u8 = 3;
/// The longest message sent (longer ones are cut; syslog daemons cut at 1–8 KiB anyway).
const MESSAGE_MAX: usize = 8192;

/// A connection to the system log.
pub struct Syslog {
    path: PathBuf,
    sock: Mutex<Option<UnixDatagram>>,
    pid: u32,
}

/// The socket `Syslog::connect` uses: `$FSCRYPTFS_SYSLOG_SOCKET`, else `/dev/log`.
pub fn socket_path() -> PathBuf {
    std::env::var_os(SOCKET_ENV)
        .filter(|s| !s.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from)
}

fn connect(path: &std::path::Path) -> std::io::Result<UnixDatagram> {
    let s = UnixDatagram::unbound()?;
    s.connect(path)?;
    Ok(s)
}

impl Syslog {
    /// Connects to the system log; an error when nothing listens there.
    pub fn connect() -> std::io::Result<Arc<Syslog>> {
        let path = socket_path();
        let sock = connect(&path)?;
        Ok(Arc::new(Syslog {
            path,
            sock: Mutex::new(Some(sock)),
            pid: std::process::id(),
        }))
    }

    /// Sends one message with `severity` (0 emergency … 7 debug).
    fn send(&self, severity: u8, msg: &[u8]) {
        let mut d = format!(
            "<{}>fscryptfs[{}]: ",
            FACILITY_DAEMON * 8 + severity,
            self.pid
        )
        .into_bytes();
        d.extend_from_slice(&msg[..msg.len().min(MESSAGE_MAX)]);
        let Ok(mut guard) = self.sock.lock() else {
            return;
        };
        for _ in 0..2 {
            if let Some(s) = guard.as_ref() {
                if s.send(&d).is_ok() {
                    return;
                }
            }
            *guard = connect(&self.path).ok();
        }
    }
}

/// A `tracing_subscriber` writer factory that sends each event to the system log.
#[derive(Clone)]
pub struct SyslogWriter(pub Arc<Syslog>);

/// The bytes of one event; sent when dropped (the formatter drops it after each event).
pub struct Event {
    log: Arc<Syslog>,
    severity: u8,
    buf: Vec<u8>,
}

impl Write for Event {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        for line in self.buf.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            self.log.send(self.severity, line);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SyslogWriter {
    type Writer = Event;

    fn make_writer(&'a self) -> Event {
        Event {
            log: self.0.clone(),
            severity: 6,
            buf: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Event {
        let severity = match *meta.level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            _ => 7,
        };
        Event {
            log: self.0.clone(),
            severity,
            buf: Vec::new(),
        }
    }
}
