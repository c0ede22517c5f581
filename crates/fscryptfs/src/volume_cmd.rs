//! `fscryptfs init` and `fscryptfs mount`: create a volume in a backing directory, and mount one.
//!
//! `mount` daemonizes unless `-f`: it starts itself again in the foreground (in its own process
//! group, with stdout a pipe) and waits until that child says the mount is live, so `mount` returning
//! 0 means the mount is usable; if the child fails first, its one-line error is on stderr and `mount`
//! exits 1. The child runs in its own session (`setsid`), with absolute paths and `/` as its working
//! directory (so it pins no directory); it logs to `-o log=PATH` or nowhere, and once the mount is live
//! it points stdin, stdout and stderr at /dev/null, so it holds none of the caller's terminal or pipes.
//! With `-f` the daemon stays attached and logs to stderr.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use clap::Args;
use fscryptfs::fs::daemon::{self, MountOptions};
use fscryptfs::store::config::{parse_removal, ContentsLayout, VolumeConfig, CONFIG_NAME};

use crate::cli_error::CliError;

/// `fscryptfs init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// What key removal does to open files: `soft` (the kernel's behaviour) or `deny-writes`.
    #[arg(long, default_value = "soft", value_name = "MODE")]
    removal: String,
    /// How regular files store contents: `per-file` (per-file keys, ciphertext in place, as ext4)
    /// or `extent` (per-extent keys, copy-on-write extents, as btrfs; v2 policies without the
    /// DIRECT_KEY / IV_INO_LBLK flags only).
    #[arg(long, default_value = "extent", value_name = "LAYOUT")]
    contents_layout: String,
    /// The backing directory (created if missing; must be empty).
    backing: PathBuf,
}

/// `fscryptfs mount`.
#[derive(Args, Debug)]
pub struct MountArgs {
    /// Stay in the foreground.
    #[arg(short = 'f')]
    foreground: bool,
    /// Mount options: allow_other, default_permissions, ro, removal=soft|deny-writes, debug,
    /// commit=N (seconds unsynced per-extent writes may stay buffered; default 5, 0: no timer),
    /// no_writeback_cache, maxkeys=N and maxbytes=N (the per-user key quota; default: the
    /// kernel's /proc/sys/kernel/keys/maxkeys and maxbytes),
    /// log=PATH (where the detached daemon logs; without it, nowhere; -f logs to stderr),
    /// test_dummy_encryption[=v2] (testing only: new inodes in unencrypted directories are
    /// encrypted with fstests' public test key).
    #[arg(short = 'o', value_name = "OPTS")]
    options: Vec<String>,
    /// Internal: tell the parent on stdout when the mount is live.
    #[arg(long, hide = true)]
    ready_stdout: bool,
    /// Internal: log to `-o log=` (or nowhere) and detach stdio once the mount is live.
    #[arg(long, hide = true)]
    detach: bool,
    /// The backing directory of the volume.
    backing: PathBuf,
    /// Where to mount it.
    mountpoint: PathBuf,
}

/// Runs `init`.
pub fn run_init(args: InitArgs) -> Result<(), CliError> {
    let removal = parse_removal(&args.removal).ok_or_else(|| {
        CliError::usage(format!(
            "unknown removal mode {:?} (soft or deny-writes)",
            args.removal
        ))
    })?;
    let layout = ContentsLayout::parse(&args.contents_layout).ok_or_else(|| {
        CliError::usage(format!(
            "unknown contents layout {:?} (per-file or extent)",
            args.contents_layout
        ))
    })?;
    let b = &args.backing;
    match std::fs::read_dir(b) {
        Ok(mut it) => {
            if b.join(CONFIG_NAME).exists() {
                return Err(CliError::failure(format!(
                    "{} is already an fscryptfs volume",
                    b.display()
                )));
            }
            if it.next().is_some() {
                return Err(CliError::failure(format!(
                    "{} is not empty; a volume is created in an empty or new directory",
                    b.display()
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(b).map_err(|e| CliError::io(&b.display().to_string(), e))?;
        }
        Err(e) => return Err(CliError::io(&b.display().to_string(), e)),
    }
    let mut cfg = VolumeConfig::new(removal).map_err(CliError::failure)?;
    cfg.layout = layout;
    // The root's metadata first; the config last, as the commit point of a volume.
    fscryptfs::fs::init_root(b).map_err(CliError::failure)?;
    cfg.store(b).map_err(CliError::failure)?;
    Ok(())
}

fn init_logging(debug: bool, file: Option<std::fs::File>) {
    let default = if debug { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FSCRYPTFS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match file {
        Some(f) => b
            .with_writer(std::sync::Mutex::new(f))
            .with_ansi(false)
            .try_init(),
        None => b
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}

/// The detached daemon's log: `-o log=PATH` (appended to), else /dev/null.
fn open_log(path: Option<&std::path::Path>) -> Result<std::fs::File, CliError> {
    let p = path.unwrap_or(std::path::Path::new("/dev/null"));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .map_err(|e| CliError::io(&p.display().to_string(), e))
}

/// Points stdin, stdout and stderr at /dev/null (the detached daemon, once the mount is live).
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..=2 {
            // SAFETY: dup2 onto the standard descriptors, which this process owns; nothing else
            // holds Rust-level ownership of them.
            unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) };
        }
    }
}

/// Runs `mount`.
pub fn run_mount(args: MountArgs) -> Result<(), CliError> {
    let opts = MountOptions::parse(&args.options).map_err(CliError::usage)?;
    // Refuse a bad backing directory here, with one line, before daemonizing.
    daemon::open_volume(&args.backing).map_err(|e| CliError::failure(e.message()))?;
    if !args.foreground {
        return spawn_daemon(&args);
    }
    let detach = args.detach;
    if detach {
        init_logging(opts.debug, Some(open_log(opts.log.as_deref())?));
        let _ = std::env::set_current_dir("/");
    } else {
        init_logging(opts.debug, None);
    }
    let ready_stdout = args.ready_stdout;
    daemon::serve(&args.backing, &args.mountpoint, &opts, || {
        if ready_stdout {
            let mut out = std::io::stdout();
            let _ = out.write_all(b"ready\n");
            let _ = out.flush();
        }
        if detach {
            detach_stdio();
        }
    })
    .map_err(|e| CliError::failure(e.message()))
}

fn spawn_daemon(args: &MountArgs) -> Result<(), CliError> {
    use std::os::unix::process::CommandExt;
    let exe =
        std::env::current_exe().map_err(|e| CliError::io("finding the fscryptfs binary", e))?;
    let abs = |p: &std::path::Path| {
        p.canonicalize()
            .map_err(|e| CliError::io(&p.display().to_string(), e))
    };
    let (backing, mountpoint) = (abs(&args.backing)?, abs(&args.mountpoint)?);
    // The log path too is made absolute here: the daemon works from /.
    let opts = MountOptions::parse(&args.options).map_err(CliError::usage)?;
    if let Some(log) = &opts.log {
        open_log(Some(log))?;
    }
    let mut cmd = Command::new(exe);
    cmd.arg("mount")
        .arg("-f")
        .arg("--ready-stdout")
        .arg("--detach");
    for o in &args.options {
        let mut items = Vec::new();
        for item in o.split(',') {
            match item.strip_prefix("log=") {
                Some(p) => items.push(format!("log={}", abs_path(p).display())),
                None => items.push(item.to_string()),
            }
        }
        cmd.arg("-o").arg(items.join(","));
    }
    cmd.arg(&backing)
        .arg(&mountpoint)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // SAFETY: setsid is async-signal-safe; the closure touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| CliError::io("starting the fscryptfs daemon", e))?;
    let Some(out) = child.stdout.take() else {
        return Err(CliError::failure("the daemon has no status pipe"));
    };
    let mut line = String::new();
    let _ = BufReader::new(out).read_line(&mut line);
    if line.trim() == "ready" {
        return Ok(());
    }
    let status = child
        .wait()
        .map_err(|e| CliError::io("waiting for the fscryptfs daemon", e))?;
    Err(CliError::failure(format!(
        "the daemon exited before the mount was ready ({status})"
    )))
}

/// `p` made absolute against the current directory (it need not exist).
fn abs_path(p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() {
        p
    } else {
        std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
    }
}
