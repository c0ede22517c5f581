//! `unlock DIR` and `lock DIR`: find the directory's policy record from its kernel policy, open
//! it through one of its protectors and add its key; or remove the key and say what stayed open.
//!
//! On an fscryptfs mount, `lock` with files still open names them and their processes (our busy
//! report) after the tool's "incompletely locked" message; the key is then wiped when the last of
//! them closes (docs/SEMANTICS.md, "Key removal").

use std::os::fd::AsFd;
use std::path::PathBuf;

use clap::Args;
use fscrypt::uapi::{
    KEY_REMOVAL_STATUS_FLAG_FILES_BUSY, KEY_REMOVAL_STATUS_FLAG_OTHER_USERS, KEY_STATUS_PRESENT,
};

use super::encrypt::unlock_policy;
use super::{key_present, policy_of_dir, provision, Context, MetaRef, SecretArgs};
use crate::cli::error::CliError;
use crate::cli::ioctl::{self, failed, open_target};
use crate::cli::keys::busy_lines;

/// Options of `fscryptfs unlock`.
#[derive(Args, Debug)]
pub struct UnlockArgs {
    /// The protector to unlock with (MOUNTPOINT:ID); asked for when the policy has several.
    #[arg(long, value_name = "MNT:ID")]
    pub unlock_with: Option<MetaRef>,
    #[command(flatten)]
    pub secret: SecretArgs,
    /// The encrypted directory.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Options of `fscryptfs lock`.
#[derive(Args, Debug)]
pub struct LockArgs {
    /// Remove every user's claim to the key (root).
    #[arg(long)]
    pub all_users: bool,
    /// The encrypted directory.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Runs `unlock`.
pub fn run_unlock(args: UnlockArgs) -> Result<(), CliError> {
    let ctx = Context::load()?;
    let (meta, policy, _) = policy_of_dir(&ctx, &args.dir)?;
    let (status, flags) = key_present(&args.dir, &policy)?;
    if status == KEY_STATUS_PRESENT
        && (flags & fscrypt::uapi::KEY_STATUS_FLAG_ADDED_BY_SELF != 0 || actions_is_v1(&policy))
    {
        return Err(CliError::failure(format!(
            "\"{}\" is already unlocked",
            args.dir.display()
        )));
    }
    let key = unlock_policy(&ctx, &meta, &policy, &args.unlock_with, &args.secret)?;
    provision(&args.dir, &policy, &key)?;
    println!(
        "\"{}\" is now unlocked and ready for use.",
        args.dir.display()
    );
    Ok(())
}

fn actions_is_v1(policy: &fscryptfs::protectors::proto::PolicyData) -> bool {
    policy.key_descriptor.len() == 16
}

/// Runs `lock`.
pub fn run_lock(args: LockArgs) -> Result<(), CliError> {
    let ctx = Context::load()?;
    let dir = &args.dir;
    let (_, policy, mount) = policy_of_dir(&ctx, dir)?;
    let spec = fscryptfs::protectors::actions::key_spec(&policy)?;
    // The ioctl goes to the mount point: a descriptor of DIR itself would keep DIR busy.
    let f = open_target(&mount.path, false)?;
    let flags = match ioctl::remove_key(f.as_fd(), spec, args.all_users) {
        Ok(flags) => flags,
        Err(e) if e.raw_os_error() == Some(libc::ENOKEY) => {
            return Err(CliError::failure(format!(
                "\"{}\" is already locked",
                dir.display()
            )))
        }
        Err(e) => return Err(failed(format_args!("error locking {}", dir.display()), &e)),
    };
    if flags & KEY_REMOVAL_STATUS_FLAG_OTHER_USERS != 0 {
        return Err(CliError::failure(format!(
            "Directory \"{}\" couldn't be fully locked because other user(s) have unlocked it. \
             To force it to be locked, use: fscryptfs lock --all-users \"{}\" (as root)",
            dir.display(),
            dir.display()
        )));
    }
    if flags & KEY_REMOVAL_STATUS_FLAG_FILES_BUSY != 0 {
        let mut msg = String::from(
            "Directory was incompletely locked because some files are still open. These files \
             remain accessible.",
        );
        // Only fscryptfs can say which files (ENOTTY elsewhere).
        if let Ok(list) = ioctl::busy_files(f.as_fd(), spec) {
            let lines = busy_lines(&list);
            if !lines.is_empty() {
                msg.push_str("\nStill open (inode path [processes]):");
                for l in lines {
                    msg.push_str(&format!("\n  {l}"));
                }
            }
        }
        msg.push_str(&format!(
            "\nTry killing any processes using files in the directory, for example using:\n\n    \
             find \"{d}\" -print0 | xargs -0 fuser -k\n\nThen re-run:\n\n    fscryptfs lock \"{d}\"",
            d = dir.display()
        ));
        return Err(CliError::failure(msg));
    }
    println!("\"{}\" is now locked.", dir.display());
    Ok(())
}
