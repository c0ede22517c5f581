//! `fscryptfs pam`: login unlocks a user's login-protected directories and the last logout locks
//! them, run from PAM through `pam_exec` (docs/SECURITY.md gives the service lines):
//!
//! ```text
//! auth     optional pam_exec.so expose_authtok quiet /usr/bin/fscryptfs pam
//! session  optional pam_exec.so quiet /usr/bin/fscryptfs pam
//! ```
//!
//! `PAM_TYPE=auth`: the login passphrase arrives on stdin (`expose_authtok`); the user's login
//! protector (`/.fscrypt/protectors`, source `pam_passphrase`, its uid) is opened with it, and
//! every policy it protects on every mounted filesystem set up for fscrypt has its key added *as
//! the user* (the thread's effective uid switched), so the claim is the user's. `open_session`
//! and `close_session` count the user's sessions in `/run/fscryptfs/<uid>.count`; when the last
//! one closes, the user's claims to those keys are removed. Metadata is trusted only when owned by
//! root or the user, as `pam_fscrypt` does. System users (uid 1–999) are left alone.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use fscrypt::secret::SecretBytes;
use fscryptfs::protectors::proto::{PolicyData, ProtectorData, SourceType};
use fscryptfs::protectors::tree::{self, MetadataDir, Trust};
use fscryptfs::protectors::{actions, mounts};

use super::provision;
use crate::cli::error::CliError;
use crate::cli::ioctl::{self, open_target};

/// Where session counts live.
const RUN_DIR: &str = "/run/fscryptfs";

/// Runs `pam` (from `pam_exec`).
pub fn run() -> Result<(), CliError> {
    let user = std::env::var("PAM_USER")
        .map_err(|_| CliError::usage("PAM_USER is not set (run from pam_exec)"))?;
    let kind = std::env::var("PAM_TYPE")
        .map_err(|_| CliError::usage("PAM_TYPE is not set (run from pam_exec)"))?;
    let uid = uid_of(&user)?;
    if (1..1000).contains(&uid) {
        return Ok(());
    }
    match kind.as_str() {
        "auth" => unlock_all(uid),
        "open_session" => count_sessions(uid, 1).map(|_| ()),
        "close_session" => {
            if count_sessions(uid, -1)? == 0 {
                lock_all(uid)
            } else {
                Ok(())
            }
        }
        // pam_exec also runs for account and password; nothing to do there.
        _ => Ok(()),
    }
}

/// A user's uid from `/etc/passwd`.
pub fn uid_of(user: &str) -> Result<u32, CliError> {
    let mut text = String::new();
    std::fs::File::open("/etc/passwd")
        .and_then(|f| f.take(4 << 20).read_to_string(&mut text))
        .map_err(|e| CliError::io("/etc/passwd", e))?;
    text.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[0] == user)
                .then(|| f[2].parse().ok())
                .flatten()
        })
        .ok_or_else(|| CliError::failure(format!("no such user: {user}")))
}

/// The user's login protector on the root filesystem.
fn login_protector(uid: u32) -> Result<Option<ProtectorData>, CliError> {
    let trust = Trust {
        trusted_uid: Some(uid),
    };
    let root = match MetadataDir::open(Path::new("/"), trust) {
        Ok(r) => r,
        Err(_) => return Ok(None),
    };
    for d in root.list(tree::Kind::Protector)? {
        if let Ok(p) = root.read_protector(&d) {
            if p.source == SourceType::PamPassphrase as i32 && p.uid == uid as i64 {
                return Ok(Some(p));
            }
        }
    }
    Ok(None)
}

/// Every (mount point, policy) protected by `protector` on a mounted filesystem set up for
/// fscrypt, under the user's trust.
fn policies_of(
    uid: u32,
    protector: &str,
) -> Result<Vec<(std::path::PathBuf, PolicyData)>, CliError> {
    let trust = Trust {
        trusted_uid: Some(uid),
    };
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for m in mounts::all_mounts()? {
        if seen.contains(&m.path) {
            continue;
        }
        seen.push(m.path.clone());
        let Ok(meta) = MetadataDir::open(&m.path, trust) else {
            continue;
        };
        for d in meta.list(tree::Kind::Policy).unwrap_or_default() {
            if let Ok(p) = meta.read_policy(&d) {
                if p.slot(protector).is_some() {
                    out.push((m.path.clone(), p));
                }
            }
        }
    }
    Ok(out)
}

/// Acts as the user for the key ioctls (this thread's effective uid, and so its fsuid), so the
/// claim on each key is the user's.
fn become_user(uid: u32) -> Result<(), CliError> {
    if rustix::process::geteuid().as_raw() == uid {
        return Ok(());
    }
    rustix::thread::set_thread_res_uid(None, Some(rustix::process::Uid::from_raw(uid)), None)
        .map_err(|e| CliError::failure(format!("cannot act as uid {uid}: {e}")))
}

/// The login passphrase from `pam_exec`'s stdin: up to a NUL (pam_exec sends one), a newline, or
/// the end.
fn read_authtok() -> Result<SecretBytes, CliError> {
    let mut buf = SecretBytes::zeroed(fscryptfs::passphrase::MAX_PASSPHRASE_LEN + 1);
    let mut stdin = std::fs::File::from(
        std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| CliError::io("stdin", e))?,
    );
    let mut n = 0;
    while n < buf.len() {
        match stdin.read(&mut buf.as_mut()[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(CliError::io("stdin", e)),
        }
    }
    let end = buf.as_ref()[..n]
        .iter()
        .position(|&b| b == 0 || b == b'\n')
        .unwrap_or(n);
    if end == 0 {
        return Err(CliError::failure("no password from PAM (expose_authtok?)"));
    }
    Ok(SecretBytes::copy_from(&buf.as_ref()[..end]))
}

fn unlock_all(uid: u32) -> Result<(), CliError> {
    let Some(protector) = login_protector(uid)? else {
        return Ok(());
    };
    let authtok = read_authtok()?;
    let key = actions::unlock_protector(&protector, authtok.as_ref())?;
    drop(authtok);
    let policies = policies_of(uid, &protector.protector_descriptor)?;
    become_user(uid)?;
    let mut failures = Vec::new();
    for (mount, policy) in &policies {
        let done = actions::unlock_policy(policy, &protector, &key)
            .map_err(CliError::from)
            .and_then(|pk| provision(mount, policy, &pk));
        if let Err(e) = done {
            failures.push(format!(
                "{} on {}: {}",
                policy.key_descriptor,
                mount.display(),
                e.message
            ));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(CliError::failure(failures.join("; ")))
    }
}

fn lock_all(uid: u32) -> Result<(), CliError> {
    let Some(protector) = login_protector(uid)? else {
        return Ok(());
    };
    let policies = policies_of(uid, &protector.protector_descriptor)?;
    become_user(uid)?;
    for (mount, policy) in &policies {
        let spec = actions::key_spec(policy)?;
        if let Ok(f) = open_target(mount, false) {
            // ENOKEY: this user had no claim (already locked); nothing to say at logout.
            let _ = ioctl::remove_key(f.as_fd(), spec, false);
        }
    }
    Ok(())
}

/// Adds `delta` to the user's session count (under an exclusive lock); returns the new count.
fn count_sessions(uid: u32, delta: i64) -> Result<i64, CliError> {
    std::fs::create_dir_all(RUN_DIR).map_err(|e| CliError::io(RUN_DIR, e))?;
    let _ = rustix::fs::chmod(RUN_DIR, rustix::fs::Mode::from_raw_mode(0o700));
    let path = format!("{RUN_DIR}/{uid}.count");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| CliError::io(&path, e))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| CliError::failure(format!("{path}: {e}")))?;
    let mut text = String::new();
    (&f).take(32)
        .read_to_string(&mut text)
        .map_err(|e| CliError::io(&path, e))?;
    let count = (text.trim().parse::<i64>().unwrap_or(0) + delta).max(0);
    f.set_len(0)
        .and_then(|()| f.seek(SeekFrom::Start(0)))
        .and_then(|_| f.write_all(format!("{count}\n").as_bytes()))
        .map_err(|e| CliError::io(&path, e))?;
    Ok(count)
}
