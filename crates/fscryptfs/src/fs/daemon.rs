//! Mounting: loads the volume, builds the keyring and the filesystem, mounts through `fuser` (directly
//! as root, through `fusermount3` otherwise) and serves requests on a multi-threaded session until
//! the filesystem is unmounted. The caller learns that the mount is live (the FUSE INIT handshake is
//! done) through a callback, so `fscryptfs mount` can return only once the mount is usable.
//!
//! One read-write mount per volume: `serve` takes the volume lock (`store::lock`, exclusive, or
//! shared for `ro`) before it reads anything else and holds it until the session has ended and
//! `destroy` has written everything back, whatever ends it (unmount, lazy unmount, signal); the
//! kernel drops it if the process dies. The mountpoint must be empty unless `-o nonempty`.
//!
//! SIGTERM, SIGINT and SIGHUP unmount: they are blocked in every thread and taken by one thread with
//! `sigwait`, which unmounts (lazily if the mount is busy, so the daemon goes on serving open files
//! until they are closed); the session then ends, `destroy` writes every dirty size and the inode
//! counter back, and `serve` returns Ok.

use std::path::{Path, PathBuf};

use fscrypt::keyring::{KeyringConfig, RemovalMode, UserQuota};
use fscrypt::{Errno, Error, Result};
use fuser::{MountOption, SessionACL};

use super::mount::{Fs, FsOptions};
use crate::store::config::{InoAllocator, VolumeConfig};
use crate::store::features::BackingFeatures;
use crate::store::io_err;

/// Request threads over `/dev/fuse`: at least two (a request waiting on the backing store does
/// not stop the rest), at most eight; at least four on a round-trip backing store, whose requests
/// wait on it more than on a CPU.
const THREADS: (usize, usize, usize) = (2, 8, 4);

/// How many threads read requests from `/dev/fuse`: one per CPU within [`THREADS`]. On a local
/// store a request waits on little but a CPU, and the kernel gives each request to the thread idle
/// longest: threads beyond the CPUs only rotate requests over threads that must each be woken
/// (BENCHMARKS.md "Request threads: one per CPU").
pub fn request_threads(round_trips: bool) -> usize {
    let (min, max, round_trip) = THREADS;
    let n = std::thread::available_parallelism().map_or(min, usize::from);
    let n = n.clamp(min, max);
    if round_trips {
        n.max(round_trip)
    } else {
        n
    }
}

/// Mount options (`-o`).
#[derive(Clone, Debug, Default)]
pub struct MountOptions {
    /// `allow_other`: other users may use the mount.
    pub allow_other: bool,
    /// `ro`: read-only.
    pub read_only: bool,
    /// `removal=`: overrides the volume's removal mode.
    pub removal: Option<RemovalMode>,
    /// `debug`: verbose logs.
    pub debug: bool,
    /// `log=PATH`: where a detached daemon (no `-f`) logs; the system log (syslog) when absent.
    pub log: Option<PathBuf>,
    /// `nonempty`: mount even over a directory that has entries (they are hidden while mounted).
    pub nonempty: bool,
    /// `test_dummy_encryption` (or `=v2`): the kernel's testing option. Every new inode in an
    /// unencrypted directory gets [`dummy_policy`], whose key the daemon adds at mount. Not for
    /// real data: the key is public.
    pub test_dummy_encryption: bool,
    /// `commit=N`: seconds a per-extent file's unsynced writes (buffered, or written out at close
    /// but not committed), or a per-file size recorded at close as pending, may wait before they
    /// are written out and committed (ext4's and btrfs' name; default 5; 0: no timer — written
    /// out at close and memory pressure, committed at fsync, eviction and unmount; a per-file
    /// close then commits its size itself).
    pub commit: Option<u64>,
    /// `no_writeback_cache`: write(2) goes to the daemon at once instead of through the kernel's
    /// page cache (the FUSE writeback cache, on by default in soft removal mode).
    pub no_writeback_cache: bool,
    /// `maxkeys=N`: key claims one non-root user may hold. Default: the kernel's
    /// `/proc/sys/kernel/keys/maxkeys` at mount (fscrypt charges keys to the user's key quota).
    pub maxkeys: Option<usize>,
    /// `maxbytes=N`: bytes of claims one non-root user may hold (default: the kernel's
    /// `/proc/sys/kernel/keys/maxbytes`).
    pub maxbytes: Option<usize>,
    /// `nodev`, `nosuid`, `noexec`, `noatime`: the kernel's mount flags of those names (`dev`,
    /// `suid`, `exec` and the other atime options undo or are accepted). An ordinary user's mount
    /// is always `nodev,nosuid` (fusermount3 forces it); root's has devices and setuid unless told.
    pub nodev: bool,
    /// `nosuid`.
    pub nosuid: bool,
    /// `noexec`.
    pub noexec: bool,
    /// `noatime`.
    pub noatime: bool,
    /// `verbose`: `mount` prints what the backing filesystem offers and what the daemon does
    /// about what it lacks (`store::features`; the daemon's log always has it).
    pub verbose: bool,
    /// `read_ahead_kb=N`: the mount's read-ahead in KiB (default
    /// [`default_read_ahead_kb`](super::read_ahead::default_read_ahead_kb): 1 MiB, 4 MiB on a
    /// network or FUSE backing filesystem; 0: the kernel's 128 KiB left as it is). Set through sysfs, so only by a daemon running as
    /// root.
    pub read_ahead_kb: Option<u64>,
    /// `no_io_uring`: requests come over `/dev/fuse` only, even where the kernel offers FUSE over
    /// io_uring (Linux 6.14+ with the `fuse` module parameter `enable_uring=1`), which is used by
    /// default then (`io_uring` says so explicitly).
    pub no_io_uring: bool,
}

/// Options `mount(8)`, `/etc/fstab` and systemd use that mean nothing to the daemon: accepted and
/// ignored, so an fstab line's options work as they are (`mount(8)` itself keeps `auto`, `noauto`,
/// `comment=` and `x-*` from its helpers, but `fscryptfs mount -o` may be given them too).
const IGNORED_OPTIONS: &[&str] = &[
    "defaults",
    "auto",
    "noauto",
    "nofail",
    "_netdev",
    "user",
    "nouser",
    "users",
    "owner",
    "group",
    "async",
    "sync",
    "dirsync",
    "diratime",
    "nodiratime",
    "norelatime",
    "nostrictatime",
    "lazytime",
    "nolazytime",
    "iversion",
    "noiversion",
    "mand",
    "nomand",
    "silent",
    "loud",
];

/// Whether `item` is an fstab-only or generic option accepted and ignored ([`IGNORED_OPTIONS`],
/// `x-*` such as `x-systemd.automount`, `comment=`, and `user=NAME`, which `mount(8)` adds for a
/// `user` mount).
fn ignored_option(item: &str) -> bool {
    IGNORED_OPTIONS.contains(&item)
        || item.starts_with("x-")
        || item.starts_with("comment=")
        || item.starts_with("user=")
}

/// fstests' `TEST_RAW_KEY`: bytes 0x01..=0x40.
pub const TEST_RAW_KEY: [u8; 64] = {
    let mut k = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        k[i] = i as u8 + 1;
        i += 1;
    }
    k
};

/// fstests' `TEST_KEY_IDENTIFIER`, the identifier of [`TEST_RAW_KEY`].
pub const TEST_KEY_IDENTIFIER: [u8; 16] = [
    0x69, 0xb2, 0xf6, 0xed, 0xee, 0xe7, 0x20, 0xcc, 0xe0, 0x57, 0x79, 0x37, 0xeb, 0x8a, 0x67, 0x51,
];

/// The kernel's default dummy policy (`test_dummy_encryption=v2`): v2, AES-256-XTS contents,
/// AES-256-CTS names, 32-byte name padding, the test key.
pub fn dummy_policy() -> fscrypt::policy::Policy {
    fscrypt::policy::Policy::V2(fscrypt::policy::PolicyV2 {
        contents_mode: fscrypt::EncryptionMode::Aes256Xts,
        filenames_mode: fscrypt::EncryptionMode::Aes256Cts,
        flags: fscrypt::policy::flags::PAD_32,
        log2_data_unit_size: 0,
        master_key_identifier: TEST_KEY_IDENTIFIER,
    })
}

impl MountOptions {
    /// Parses a comma-separated `-o` list. `default_permissions` is accepted and always in force.
    pub fn parse(list: &[String]) -> std::result::Result<Self, String> {
        let mut o = MountOptions::default();
        for item in list
            .iter()
            .flat_map(|s| s.split(','))
            .filter(|s| !s.is_empty())
        {
            match item {
                "allow_other" => o.allow_other = true,
                "default_permissions" => {}
                "ro" => o.read_only = true,
                "rw" => o.read_only = false,
                "debug" => o.debug = true,
                "verbose" => o.verbose = true,
                "no_writeback_cache" => o.no_writeback_cache = true,
                "io_uring" => o.no_io_uring = false,
                "no_io_uring" => o.no_io_uring = true,
                "nonempty" => o.nonempty = true,
                "dev" => o.nodev = false,
                "nodev" => o.nodev = true,
                "suid" => o.nosuid = false,
                "nosuid" => o.nosuid = true,
                "exec" => o.noexec = false,
                "noexec" => o.noexec = true,
                "noatime" => o.noatime = true,
                "atime" | "relatime" | "strictatime" => {
                    o.noatime = false;
                }
                _ if ignored_option(item) => {}
                "test_dummy_encryption" | "test_dummy_encryption=v2" => {
                    o.test_dummy_encryption = true;
                }
                "remount" => {
                    return Err("remount is not supported: unmount and mount again".into());
                }
                "test_dummy_encryption=v1" => {
                    return Err("test_dummy_encryption=v1 is not supported (use v2)".into());
                }
                _ => {
                    if let Some(p) = item.strip_prefix("log=") {
                        if p.is_empty() {
                            return Err("log= needs a path".into());
                        }
                        o.log = Some(PathBuf::from(p));
                    } else if let Some(n) = item.strip_prefix("maxkeys=") {
                        o.maxkeys = Some(
                            n.parse()
                                .map_err(|_| format!("maxkeys={n:?}: not a number"))?,
                        );
                    } else if let Some(n) = item.strip_prefix("maxbytes=") {
                        o.maxbytes = Some(
                            n.parse()
                                .map_err(|_| format!("maxbytes={n:?}: not a number"))?,
                        );
                    } else if let Some(n) = item.strip_prefix("read_ahead_kb=") {
                        o.read_ahead_kb =
                            Some(n.parse().map_err(|_| {
                                format!("read_ahead_kb={n:?}: not a number of KiB")
                            })?);
                    } else if let Some(n) = item.strip_prefix("commit=") {
                        o.commit = Some(
                            n.parse()
                                .map_err(|_| format!("commit={n:?}: not a number of seconds"))?,
                        );
                    } else if let Some(m) = item.strip_prefix("removal=") {
                        o.removal =
                            Some(crate::store::config::parse_removal(m).ok_or_else(|| {
                                format!("unknown removal mode {m:?} (soft or deny-writes)")
                            })?);
                    } else {
                        return Err(format!("unknown mount option {item:?}"));
                    }
                }
            }
        }
        Ok(o)
    }
}

/// The per-user key quota: `-o maxkeys=,maxbytes=`, else the kernel's key quota sysctls (what the
/// kernel's fscrypt charges a user's keys to), else the kernel's defaults.
fn user_quota(opts: &MountOptions) -> UserQuota {
    let sysctl = |name: &str| -> Option<usize> {
        std::fs::read_to_string(format!("/proc/sys/kernel/keys/{name}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let default = UserQuota::default();
    UserQuota {
        max_keys: opts
            .maxkeys
            .or_else(|| sysctl("maxkeys"))
            .unwrap_or(default.max_keys),
        max_bytes: opts
            .maxbytes
            .or_else(|| sysctl("maxbytes"))
            .unwrap_or(default.max_bytes),
    }
}

/// Checks the backing directory and loads its config (the errors `mount` prints).
pub fn open_volume(backing: &Path) -> Result<VolumeConfig> {
    let md = std::fs::metadata(backing).map_err(|e| io_err(backing.display(), e))?;
    if !md.is_dir() {
        return Err(Error::new(
            Errno::NOTDIR,
            format!("{} is not a directory", backing.display()),
        ));
    }
    VolumeConfig::load(backing)
}

/// Refuses a mountpoint that has entries unless `nonempty` (gocryptfs' rule): mounting over files
/// hides them. ENOTEMPTY with one line. A mountpoint that cannot be listed is left to the mount
/// itself to refuse (it gives the better error: missing, not ours, a stale mount).
pub fn check_mountpoint(mountpoint: &Path, nonempty: bool) -> Result<()> {
    if nonempty {
        return Ok(());
    }
    if let Ok(mut it) = std::fs::read_dir(mountpoint) {
        if it.next().is_some() {
            return Err(Error::new(
                Errno::NOTEMPTY,
                format!(
                    "mount point {} is not empty: mounting would hide its files (-o nonempty \
                     mounts anyway)",
                    mountpoint.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Probes the backing filesystem of the volume in `backing` (`store::features`) and refuses one
/// no strategy can serve, with one line naming what it lacks. When the probe cannot run (a full
/// backing filesystem) the strategies that work everywhere are chosen, with a warning.
pub fn probe_backing(backing: &Path) -> Result<BackingFeatures> {
    let root = crate::store::io::open_backing_root(backing)?;
    let f = match BackingFeatures::probe(&root) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("{e}; assuming the fewest features");
            BackingFeatures::conservative()
        }
    };
    f.require_usable(backing)?;
    Ok(f)
}

/// Raises the soft limit on open descriptors to the hard limit: each inode the kernel holds is a
/// node with an `O_PATH` descriptor, and a regular file's also keeps its backing file open (a
/// per-file node's kept file, a per-extent node's log), so a walk of a large tree needs far more
/// than the usual soft limit of 1024. A failure is said, not fatal. Per-file nodes keep their
/// files within a quarter of the limit (`node::set_kept_file_budget`); beyond it they keep none.
fn raise_descriptor_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current.is_some() && lim.current != lim.maximum {
        let raised = Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => lim.current = lim.maximum,
            Err(e) => tracing::warn!("cannot raise the open descriptor limit: {e}"),
        }
    }
    if let Some(n) = lim.current {
        super::node::set_kept_file_budget(usize::try_from(n / 4).unwrap_or(usize::MAX));
    }
}

/// Mounts the volume in `backing` on `mountpoint` and serves it until unmounted. `ready` runs (on
/// a thread of its own) once the mount has answered a first request and has its read-ahead.
pub fn serve(
    backing: &Path,
    mountpoint: &Path,
    opts: &MountOptions,
    ready: impl FnOnce() + Send + 'static,
) -> Result<()> {
    let backing: PathBuf = backing
        .canonicalize()
        .map_err(|e| io_err(backing.display(), e))?;
    let config = open_volume(&backing)?;
    raise_descriptor_limit();
    // What the backing filesystem offers, before the lock (which needs OFD locks). A read-only
    // mount writes nothing, so it probes nothing.
    let features = if opts.read_only {
        BackingFeatures::assumed()
    } else {
        let f = probe_backing(&backing)?;
        for line in f.report() {
            tracing::debug!("backing filesystem: {line}");
        }
        f
    };
    let lacks = features.lacks();
    // Before anything is read or written: a second daemon on this volume stops here. Held until
    // this function returns, after the session (and its final writeout in `destroy`) has ended.
    let lock = crate::store::lock::VolumeLock::for_mount(&backing, opts.read_only)?;
    if lock.is_none() {
        tracing::warn!(
            "{}: no lock file and none can be created (read-only backing store); mounting \
             read-only without the volume lock",
            backing.display()
        );
    }
    check_mountpoint(mountpoint, opts.nonempty)?;
    // The kernel has already applied the caller's umask to every mode it sends (no FUSE_DONT_MASK);
    // the daemon's own umask must not mask it a second time when it creates backing files.
    rustix::process::umask(rustix::fs::Mode::empty());
    let removal = opts.removal.unwrap_or(config.removal);
    let keyring = fscrypt::keyring::Keyring::new(KeyringConfig {
        removal_mode: removal,
        quota: user_quota(opts),
    });
    let uuid = config.uuid;
    let dummy = if opts.test_dummy_encryption {
        // Root-like and claimless for users: added as uid 0, so any user's new inodes unlock.
        let id = keyring.add_v2(
            fscrypt::keyring::Caller::root(),
            fscrypt::secret::SecretBytes::copy_from(&TEST_RAW_KEY),
        )?;
        if id != TEST_KEY_IDENTIFIER {
            return Err(Error::new(
                Errno::INVAL,
                "the test key's identifier is not fstests' TEST_KEY_IDENTIFIER",
            ));
        }
        tracing::warn!(
            "test_dummy_encryption: new inodes in unencrypted directories are encrypted with a \
             public test key; not for real data"
        );
        Some(dummy_policy())
    } else {
        None
    };
    let layout = config.layout;
    let inos = InoAllocator::new(&backing, config, opts.read_only);
    let fs = Fs::new(
        backing.clone(),
        uuid,
        inos,
        keyring,
        FsOptions {
            read_only: opts.read_only,
            dummy_policy: dummy,
            layout,
            // deny-writes must refuse write(2) itself, which a page cache would acknowledge.
            writeback_cache: !opts.read_only
                && removal == RemovalMode::Soft
                && !opts.no_writeback_cache,
            features,
            commit: match opts
                .commit
                .unwrap_or(super::contents::writeout::COMMIT_DEFAULT)
            {
                0 => None,
                n => Some(std::time::Duration::from_secs(n)),
            },
        },
    )?;
    let writeback_cache = fs.writeback_cache();
    let notifier = fs.notifier_cell();
    let mut cfg = fuser::Config::default();
    cfg.mount_options = vec![
        MountOption::FSName(backing.display().to_string()),
        MountOption::Subtype("fscryptfs".into()),
        MountOption::DefaultPermissions,
    ];
    if opts.read_only {
        cfg.mount_options.push(MountOption::RO);
    }
    if rustix::process::geteuid().is_root() {
        if !opts.nodev {
            cfg.mount_options.push(MountOption::Dev);
        }
        if !opts.nosuid {
            cfg.mount_options.push(MountOption::Suid);
        }
    }
    if opts.noexec {
        cfg.mount_options.push(MountOption::NoExec);
    }
    if opts.noatime {
        cfg.mount_options.push(MountOption::NoAtime);
    }
    cfg.acl = if opts.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    cfg.n_threads = Some(request_threads(fs.round_trips));
    cfg.clone_fd = true;
    cfg.io_uring = !opts.no_io_uring;
    let signals = block_termination_signals();
    // After the mask: every thread but the signal thread must have the signals blocked.
    fs.start_writeout()?;
    let (session, unmounter) = if rustix::process::geteuid().is_root() {
        let mut session = fuser::Session::new(fs, mountpoint, &cfg)
            .map_err(|e| io_err(format!("mounting on {}", mountpoint.display()), e))?;
        let u = Unmounter::Fuser(session.unmount_callable());
        (session, u)
    } else {
        // fuser opens /dev/fuse itself first and gives up when it may not (mode 0600, as in
        // some containers); fusermount3 is the way for users, so go to it directly.
        let mut o = vec![
            "default_permissions".to_string(),
            format!("fsname={}", backing.display().to_string().replace(',', "_")),
            "subtype=fscryptfs".to_string(),
        ];
        if opts.read_only {
            o.push("ro".into());
        }
        if opts.allow_other {
            o.push("allow_other".into());
        }
        if opts.noexec {
            o.push("noexec".into());
        }
        if opts.noatime {
            o.push("noatime".into());
        }
        let fd = fusermount_mount(mountpoint, &o.join(","))
            .map_err(|e| io_err(format!("mounting on {}", mountpoint.display()), e))?;
        let acl = cfg.acl;
        let session = fuser::Session::from_fd(fs, fd, acl, cfg)
            .map_err(|e| io_err(format!("mounting on {}", mountpoint.display()), e))?;
        (session, Unmounter::Fusermount)
    };
    let _ = notifier.set(Box::new(session.notifier()));
    let mnt = mountpoint.to_path_buf();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || unmount_on_signal(signals, unmounter, &mnt))
        .map_err(|e| io_err("starting the signal thread", e))?;
    tracing::info!(
        "mounted {} on {} (removal {}, writeback cache {})",
        backing.display(),
        mountpoint.display(),
        crate::store::config::removal_name(removal),
        if writeback_cache { "on" } else { "off" }
    );
    if let Some(l) = lacks {
        tracing::info!("{l} (mount -o verbose says more)");
    }
    let read_ahead = opts
        .read_ahead_kb
        .unwrap_or_else(|| super::read_ahead::default_read_ahead_kb(&backing));
    super::read_ahead::set_read_ahead_then(mountpoint, read_ahead, ready)?;
    match session.run() {
        // The kernel tears the connection down at the end of a lazy unmount (the last file was
        // closed): a thread reading then may get ECONNABORTED instead of ENODEV. `destroy` (the
        // final writeout) has run either way.
        Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => {
            tracing::info!("the kernel ended the connection ({e})");
        }
        r => r.map_err(|e| io_err(format!("serving {}", mountpoint.display()), e))?,
    }
    tracing::info!("unmounted {}", mountpoint.display());
    // The session, the filesystem and its writeout are gone: only now may another daemon start.
    drop(lock);
    Ok(())
}

/// Blocks SIGTERM, SIGINT and SIGHUP in this thread and every thread it starts afterwards (the FUSE
/// threads), so only [`unmount_on_signal`] receives them.
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

/// Waits for a termination signal, then unmounts. A busy mount is detached lazily (`fusermount3
/// -uz`): new opens fail, open files go on working, and the session ends when they are closed.
fn unmount_on_signal(set: libc::sigset_t, unmounter: Unmounter, mnt: &Path) {
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` was initialised by block_termination_signals; `sig` is a valid out pointer.
    let rc = unsafe { libc::sigwait(&set, &mut sig) };
    if rc != 0 {
        tracing::error!("sigwait failed ({rc}); signals will not unmount");
        return;
    }
    tracing::info!("signal {sig}: unmounting {}", mnt.display());
    let res = match unmounter {
        Unmounter::Fuser(mut u) => u.unmount(),
        Unmounter::Fusermount => std::process::Command::new("fusermount3")
            .arg("-u")
            .arg(mnt)
            .stderr(std::process::Stdio::null())
            .status()
            .and_then(|s| {
                if s.success() {
                    Ok(())
                } else {
                    Err(std::io::Error::other(format!("fusermount3 -u: {s}")))
                }
            }),
    };
    if let Err(e) = res {
        tracing::warn!(
            "unmounting {}: {e}; detaching it lazily (open files keep working until closed)",
            mnt.display()
        );
        match std::process::Command::new("fusermount3")
            .arg("-uz")
            .arg(mnt)
            .status()
        {
            Ok(s) if s.success() => {}
            Ok(s) => tracing::error!("fusermount3 -uz {}: {s}", mnt.display()),
            Err(e) => tracing::error!("fusermount3 -uz {}: {e}", mnt.display()),
        }
    }
}

/// How the signal thread unmounts: through fuser (root mounted directly) or fusermount3.
enum Unmounter {
    Fuser(fuser::SessionUnmounter),
    Fusermount,
}

/// Mounts through setuid `fusermount3` (libfuse's protocol: it mounts, then passes the /dev/fuse
/// descriptor back over the socket named by `_FUSE_COMMFD`).
fn fusermount_mount(mountpoint: &Path, options: &str) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsRawFd;
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    // fusermount3 inherits its end: close-on-exec cleared here, before the spawn (the mount
    // happens before the daemon starts any other thread, so no other child can inherit it).
    rustix::io::fcntl_setfd(&theirs, rustix::io::FdFlags::empty())?;
    let mut cmd = std::process::Command::new("fusermount3");
    cmd.arg("-o")
        .arg(options)
        .arg("--")
        .arg(mountpoint)
        .env("_FUSE_COMMFD", theirs.as_raw_fd().to_string())
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let spawned = cmd.spawn();
    drop(theirs);
    let mut child = spawned?;
    let received = recv_fd(&ours);
    drop(ours);
    // Its complaint becomes our one line (with the fix, where we know it).
    let mut complaint = String::new();
    if let Some(err) = child.stderr.take() {
        use std::io::Read;
        let _ = err.take(4096).read_to_string(&mut complaint);
    }
    let status = child.wait()?;
    match received {
        Ok(fd) if status.success() => Ok(fd),
        _ => Err(std::io::Error::other(fusermount_failure(
            &complaint, status,
        ))),
    }
}

/// One line for a failed `fusermount3`, saying how to fix the common cases.
fn fusermount_failure(complaint: &str, status: std::process::ExitStatus) -> String {
    let said = complaint
        .lines()
        .map(|l| l.trim_start_matches("fusermount3: ").trim())
        .find(|l| !l.is_empty())
        .unwrap_or("");
    if said.contains("/dev/fuse") && said.contains("Permission denied") {
        "cannot open /dev/fuse (permission denied): it must be usable by ordinary users \
         (chmod 0666 /dev/fuse, as distributions ship it), or mount as root"
            .to_string()
    } else if said.contains("user_allow_other") {
        "-o allow_other needs 'user_allow_other' in /etc/fuse.conf (or mount as root)".to_string()
    } else if said.is_empty() {
        format!("fusermount3 failed ({status})")
    } else {
        format!("fusermount3: {said}")
    }
}

/// Receives one descriptor (SCM_RIGHTS) from `sock`, close-on-exec.
fn recv_fd(sock: &std::os::unix::net::UnixStream) -> std::io::Result<std::os::fd::OwnedFd> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    use std::mem::MaybeUninit;
    let mut byte = [0u8; 1];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let n = loop {
        match rustix::net::recvmsg(
            sock,
            &mut [std::io::IoSliceMut::new(&mut byte)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(r) => break r.bytes,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    if n == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "fusermount3 sent no descriptor (see its message above)",
        ));
    }
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err(std::io::Error::other("fusermount3 sent no descriptor"))
}
