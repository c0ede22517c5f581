//! Mounting: loads the volume, builds the keyring and the filesystem, mounts through `fuser` (directly
//! as root, through `fusermount3` otherwise) and serves requests on a multi-threaded session until
//! the filesystem is unmounted. The caller learns that the mount is live (the FUSE INIT handshake is
//! done) through a callback, so `fscryptfs mount` can return only once the mount is usable.

use std::path::{Path, PathBuf};

use fscrypt::keyring::{KeyringConfig, RemovalMode, UserQuota};
use fscrypt::{Errno, Error, Result};
use fuser::{MountOption, SessionACL};

use super::{Fs, FsOptions};
use crate::store::config::{InoAllocator, VolumeConfig};
use crate::store::io_err;

/// Number of FUSE request threads.
const THREADS: usize = 4;

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
                _ => {
                    if let Some(m) = item.strip_prefix("removal=") {
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

/// Mounts the volume in `backing` on `mountpoint` and serves it until unmounted. `ready` runs once
/// the mount is live.
pub fn serve(
    backing: &Path,
    mountpoint: &Path,
    opts: &MountOptions,
    ready: impl FnOnce(),
) -> Result<()> {
    let backing: PathBuf = backing
        .canonicalize()
        .map_err(|e| io_err(backing.display(), e))?;
    let config = open_volume(&backing)?;
    let removal = opts.removal.unwrap_or(config.removal);
    let keyring = fscrypt::keyring::Keyring::new(KeyringConfig {
        removal_mode: removal,
        quota: UserQuota::default(),
    });
    let uuid = config.uuid;
    let inos = InoAllocator::new(&backing, config, opts.read_only);
    let fs = Fs::new(
        backing.clone(),
        uuid,
        inos,
        keyring,
        FsOptions {
            read_only: opts.read_only,
        },
    )?;
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
        cfg.mount_options.push(MountOption::Dev);
        cfg.mount_options.push(MountOption::Suid);
    }
    cfg.acl = if opts.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    cfg.n_threads = Some(THREADS);
    cfg.clone_fd = true;
    let session = fuser::Session::new(fs, mountpoint, &cfg)
        .map_err(|e| io_err(format!("mounting on {}", mountpoint.display()), e))?;
    let _ = notifier.set(session.notifier());
    tracing::info!(
        "mounted {} on {} (removal {})",
        backing.display(),
        mountpoint.display(),
        crate::store::config::removal_name(removal)
    );
    ready();
    session
        .run()
        .map_err(|e| io_err(format!("serving {}", mountpoint.display()), e))?;
    tracing::info!("unmounted {}", mountpoint.display());
    Ok(())
}
