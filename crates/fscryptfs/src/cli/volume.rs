//! `fscryptfs init` and `fscryptfs mount`: create a volume in a backing directory, and mount one.
//!
//! `mount` daemonizes unless `-f`: it starts itself again in the foreground (with stdout a pipe)
//! and waits until that child says the mount is live, so `mount` returning 0 means the mount is
//! usable; if the child fails first, its one-line error is on stderr and `mount` exits with its
//! status, adding nothing. The child's first act is `setsid` (its own session, away from the
//! caller's terminal); it works with absolute paths and `/` as its working directory (so it pins no
//! directory); it logs to `-o log=PATH` (created 0600, never through a symlink, a regular file of
//! this user's or root's, else `mount` fails before mounting) or to the system log
//! (`crate::syslog`; when that cannot be reached it says once on stderr, before detaching, that the
//! log is lost), and once the mount is live it points stdin, stdout and stderr at /dev/null, so it
//! holds none of the caller's terminal or pipes.
//! With `-f` the daemon stays attached and logs to stderr.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use clap::Args;
use fscryptfs::fs::daemon::{self, MountOptions};
use fscryptfs::store::config::{parse_removal, ContentsLayout, VolumeConfig, CONFIG_NAME};

use super::error::CliError;
use super::protect::provision;
use super::protect::volume_key;

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
    /// Encrypt the whole volume, its top level included, under a new passphrase protector (or a
    /// raw key with --key); `mount` then asks for the passphrase.
    #[arg(long)]
    encrypt: bool,
    /// With --encrypt: the protector's name.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "volume",
        requires = "encrypt"
    )]
    name: String,
    #[command(flatten)]
    secret: super::protect::SecretArgs,
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
    /// commit=N (seconds unsynced writes may wait for their commit: per-extent buffers and logs,
    /// per-file sizes recorded at close; default 5, 0: no timer, per-file close commits),
    /// read_ahead_kb=N (the mount's read-ahead in KiB, set when the daemon runs as root; default
    /// 1024, 4096 on a network or FUSE backing filesystem; 0: the kernel's 128),
    /// no_writeback_cache, no_io_uring (requests over /dev/fuse even where the kernel offers FUSE
    /// over io_uring, Linux 6.14+ with the fuse module's enable_uring=1, which is used then by
    /// default), maxkeys=N and maxbytes=N (the per-user key quota; default: the
    /// kernel's /proc/sys/kernel/keys/maxkeys and maxbytes),
    /// log=PATH (where the detached daemon logs, created 0600; without it, the system log via
    /// /dev/log; -f logs to stderr), nonempty (mount over a directory that has entries),
    /// test_dummy_encryption[=v2] (testing only: new inodes in unencrypted directories are
    /// encrypted with fstests' public test key), nodev, nosuid, noexec, noatime. The options of
    /// fstab and mount(8) that mean nothing here (defaults, auto, noauto, nofail, _netdev, user,
    /// users, x-*, ...) are accepted and ignored; as mount(8)'s helper (mount -t fuse.fscryptfs, an
    /// fstab line) the binary runs as mount.fuse.fscryptfs.
    #[arg(short = 'o', value_name = "OPTS")]
    options: Vec<String>,
    /// Internal: tell the parent on stdout when the mount is live.
    #[arg(long, hide = true)]
    ready_stdout: bool,
    /// Internal: log to `-o log=` (or syslog) and detach stdio once the mount is live.
    #[arg(long, hide = true)]
    detach: bool,
    /// The backing directory of the volume.
    backing: PathBuf,
    /// Where to mount it.
    mountpoint: PathBuf,
}

impl MountArgs {
    /// `fscryptfs mount -o OPTIONS BACKING MOUNTPOINT` (daemonized): what the mount helper runs.
    pub fn daemonized(backing: PathBuf, mountpoint: PathBuf, options: Vec<String>) -> Self {
        MountArgs {
            foreground: false,
            options,
            ready_stdout: false,
            detach: false,
            backing,
            mountpoint,
        }
    }
}

/// Everything `mount` checks before it mounts (the options, the volume, the mountpoint), without
/// mounting: `mount -f` (fake) through the helper.
pub fn check_mount(
    backing: &std::path::Path,
    mountpoint: &std::path::Path,
    options: &[String],
) -> Result<(), CliError> {
    let (options, _secret) = volume_key::split_secret_options(options)?;
    let opts = MountOptions::parse(&options).map_err(CliError::usage)?;
    daemon::open_volume(backing).map_err(|e| CliError::failure(e.message()))?;
    daemon::check_mountpoint(mountpoint, opts.nonempty).map_err(|e| CliError::failure(e.message()))
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
    // A backing filesystem no strategy can serve is refused before anything is written.
    daemon::probe_backing(b).map_err(|e| CliError::failure(e.message()))?;
    let mut cfg = VolumeConfig::new(removal).map_err(CliError::failure)?;
    cfg.layout = layout;
    // The root's metadata first; the config last, as the commit point of a volume.
    fscryptfs::fs::init_root(b).map_err(CliError::failure)?;
    if args.encrypt {
        // The root's policy and its protector before the config: a volume exists only complete.
        super::protect::volume_key::init_encrypted(b, &args.name, &args.secret)?;
        cfg.store(b).map_err(CliError::failure)?;
        return Ok(());
    }
    let given = args.secret.key.is_some()
        || args.secret.passphrase_file.is_some()
        || args.secret.extpass.is_some();
    if given {
        return Err(CliError::usage(
            "--key, --passphrase-file and --extpass go with --encrypt",
        ));
    }
    cfg.store(b).map_err(CliError::failure)?;
    println!(
        "Created an fscryptfs volume in \"{}\". Its top level is not encrypted (the fscrypt \
         model): after mounting, encrypt a directory with `fscryptfs encrypt DIR`. For a volume \
         encrypted from its root, use `fscryptfs init --encrypt`.",
        b.display()
    );
    Ok(())
}

/// Where the daemon logs.
enum LogTo {
    /// `-f`: the terminal.
    Stderr,
    /// `-o log=PATH`.
    File(std::fs::File),
    /// Detached without `log=`: the system log.
    Syslog(std::sync::Arc<crate::syslog::Syslog>),
    /// Detached, and the system log cannot be reached.
    Nowhere,
}

fn init_logging(debug: bool, to: LogTo) {
    let default = if debug { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FSCRYPTFS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match to {
        LogTo::File(f) => b
            .with_writer(std::sync::Mutex::new(f))
            .with_ansi(false)
            .try_init(),
        LogTo::Stderr => b
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        // The system log stamps the time itself.
        LogTo::Syslog(s) => b
            .with_writer(crate::syslog::SyslogWriter(s))
            .with_ansi(false)
            .without_time()
            .try_init(),
        LogTo::Nowhere => b.with_writer(std::io::sink).try_init(),
    };
}

/// Opens `-o log=PATH` for appending: created 0600 when missing, never through a symlink, never
/// blocking on a FIFO; it must be a regular file owned by this user or root (a file another user
/// planted would receive plaintext names). One line and exit 1 otherwise.
fn open_log(p: &std::path::Path) -> Result<std::fs::File, CliError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let what = format!("log file {}", p.display());
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(p)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => CliError::failure(format!(
                "{what}: is a symlink; the log is not written through one"
            )),
            Some(libc::ENXIO) | Some(libc::ENODEV) => {
                CliError::failure(format!("{what}: not a regular file"))
            }
            _ => CliError::io(&what, e),
        })?;
    let md = f.metadata().map_err(|e| CliError::io(&what, e))?;
    if !md.file_type().is_file() {
        return Err(CliError::failure(format!("{what}: not a regular file")));
    }
    let me = rustix::process::geteuid().as_raw();
    if md.uid() != me && md.uid() != 0 {
        return Err(CliError::failure(format!(
            "{what}: owned by uid {}, not by this user (uid {me}) or root",
            md.uid()
        )));
    }
    Ok(f)
}

/// The detached daemon's log: `-o log=PATH`, else the system log; when that cannot be reached,
/// nowhere, with the warning to print on stderr (still the caller's) once the mount is live,
/// before detaching (a mount that fails says only its error).
fn detached_log(log: Option<&std::path::Path>) -> Result<(LogTo, Option<String>), CliError> {
    if let Some(p) = log {
        return open_log(p).map(|f| (LogTo::File(f), None));
    }
    match crate::syslog::Syslog::connect() {
        Ok(s) => Ok((LogTo::Syslog(s), None)),
        Err(e) => Ok((
            LogTo::Nowhere,
            Some(format!(
                "fscryptfs: warning: the system log at {} cannot be reached ({}); the daemon's \
                 messages are lost (-o log=PATH keeps them)",
                crate::syslog::socket_path().display(),
                fscryptfs::error::strerror(&e)
            )),
        )),
    }
}

/// Points stdin, stdout and stderr at /dev/null (the detached daemon, once the mount is live).
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
        let _ = rustix::stdio::dup2_stderr(&null);
    }
}

/// Runs `mount`.
pub fn run_mount(args: MountArgs) -> Result<(), CliError> {
    if args.detach {
        // The daemon child leaves the caller's session (and terminal) first of all. It was started
        // in the caller's process group, so it is no group leader and setsid cannot fail with
        // EPERM; any other failure leaves it where it is, as before.
        let _ = rustix::process::setsid();
    }
    let (options, secret) = volume_key::split_secret_options(&args.options)?;
    let args = MountArgs { options, ..args };
    let opts = MountOptions::parse(&args.options).map_err(CliError::usage)?;
    // Refuse a bad backing directory here, with one line, before daemonizing.
    daemon::open_volume(&args.backing).map_err(|e| CliError::failure(e.message()))?;
    daemon::check_mountpoint(&args.mountpoint, opts.nonempty)
        .map_err(|e| CliError::failure(e.message()))?;
    if opts.verbose && !opts.read_only && !args.detach {
        let f = daemon::probe_backing(&args.backing).map_err(|e| CliError::failure(e.message()))?;
        for line in f.report() {
            println!("backing filesystem: {line}");
        }
    }
    // An encrypted-root volume: its key is unwrapped before mounting (a wrong passphrase fails
    // here) and added once the mount is live. The detached child never asks: its parent did.
    let volume_key = if args.detach {
        None
    } else {
        volume_key::unlock_for_mount(&args.backing, &secret)?
    };
    if !args.foreground {
        spawn_daemon(&args)?;
        if let Some((policy, key)) = &volume_key {
            if let Err(e) = provision(&args.mountpoint, policy, key) {
                // Not left mounted and locked: fusermount3 for users, umount for root.
                let done = Command::new("fusermount3")
                    .arg("-u")
                    .arg(&args.mountpoint)
                    .status()
                    .is_ok_and(|s| s.success());
                if !done {
                    let _ = Command::new("umount").arg(&args.mountpoint).status();
                }
                return Err(e);
            }
        }
        return Ok(());
    }
    let mut volume_key = volume_key;
    let detach = args.detach;
    let mut lost_log = None;
    if detach {
        let (to, warning) = detached_log(opts.log.as_deref())?;
        init_logging(opts.debug, to);
        lost_log = warning;
        let _ = std::env::set_current_dir("/");
    } else {
        init_logging(opts.debug, LogTo::Stderr);
    }
    let ready_stdout = args.ready_stdout;
    let mountpoint = args.mountpoint.clone();
    daemon::serve(&args.backing, &args.mountpoint, &opts, move || {
        // Before "ready": the caller returns on it, and the line must be on its stderr by then.
        if let Some(w) = &lost_log {
            eprintln!("{w}");
        }
        if ready_stdout {
            let mut out = std::io::stdout();
            let _ = out.write_all(b"ready\n");
            let _ = out.flush();
        }
        if detach {
            detach_stdio();
        }
        // Foreground: the key goes in from a thread, as the session serves its ioctl.
        if let Some((policy, key)) = volume_key.take() {
            let mnt = mountpoint.clone();
            std::thread::spawn(move || {
                if let Err(e) = provision(&mnt, &policy, &key) {
                    eprintln!("fscryptfs: {e}");
                }
            });
        }
    })
    .map_err(|e| CliError::failure(e.message()))
}

fn spawn_daemon(args: &MountArgs) -> Result<(), CliError> {
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
        open_log(log)?;
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
    // The child calls setsid itself (`run_mount` with --detach): no code of ours runs between
    // fork and exec.
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
    // The daemon said what went wrong in one line on our stderr: say nothing more.
    if let Some(code) = status.code().filter(|&c| c != 0) {
        return Err(CliError::silent(code));
    }
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
