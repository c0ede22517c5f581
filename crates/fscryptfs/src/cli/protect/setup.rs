//! `setup [MNT]`: without MNT, write the configuration (Argon2id costs calibrated to `--time`)
//! and set up the root filesystem's `.fscrypt` (where login protectors live); with MNT, create
//! `MNT/.fscrypt` (`--all-users`: writable by everyone, sticky).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use fscryptfs::protectors::config::{config_path, Config};
use fscryptfs::protectors::proto::HashingCosts;
use fscryptfs::protectors::tree::{self, SetupMode};
use fscryptfs::protectors::{mounts, passhash, Error as MetaError};

use super::confirm;
use crate::cli::error::CliError;

/// Options of `fscryptfs setup`.
#[derive(Args, Debug)]
pub struct SetupArgs {
    /// Target time of one passphrase hash, e.g. 1s, 500ms (the calibration of Argon2id).
    #[arg(long, value_name = "TIME", default_value = "1s", value_parser = parse_duration)]
    pub time: Duration,
    /// Replace an existing configuration without asking.
    #[arg(long)]
    pub force: bool,
    /// Let every user create metadata on the filesystem (subdirectories 1777).
    #[arg(long)]
    pub all_users: bool,
    /// The filesystem to set up; without it, the configuration and the root filesystem.
    #[arg(value_name = "MOUNTPOINT")]
    pub mount: Option<PathBuf>,
}

/// Parses `1s`, `500ms`, `2m`, `1.5s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 1s, 500ms)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s or m)")),
    };
    if !(0.0..=3600.0).contains(&secs) || secs.is_nan() {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Runs `setup`.
pub fn run(args: SetupArgs) -> Result<(), CliError> {
    match &args.mount {
        Some(m) => setup_mount(m, args.all_users),
        None => setup_global(&args),
    }
}

fn setup_mount(mount: &Path, all_users: bool) -> Result<(), CliError> {
    let m = mounts::mount_at(mount)?;
    let mode = if all_users {
        SetupMode::AllUsers
    } else {
        SetupMode::SingleUser
    };
    fscryptfs::protectors::setup::setup(&m.path, mode)?;
    let who = if all_users {
        "writable by everyone"
    } else {
        "writable by root only"
    };
    println!(
        "Metadata directories created at \"{}\", {who}.",
        m.path.join(tree::FSCRYPT_DIR).display()
    );
    Ok(())
}

fn setup_global(args: &SetupArgs) -> Result<(), CliError> {
    let path = config_path();
    if path.exists() {
        let question = format!("Replace \"{}\"?", path.display());
        if !args.force && !confirm(&question, false) {
            return Err(CliError::failure(format!(
                "global config file \"{}\" already exists (use --force to replace it)",
                path.display()
            )));
        }
        std::fs::remove_file(&path).map_err(|e| CliError::io(&path.to_string_lossy(), e))?;
    }
    // Opened before the calibration, so a permission problem fails at once (as the tool does).
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| CliError::io(&path.to_string_lossy(), e))?;
    println!("Defaulting to policy_version 2 because kernel supports it.");
    println!("Customizing passphrase hashing difficulty for this system...");
    let costs: HashingCosts = passhash::calibrate(args.time)?;
    let config = Config::with_costs(costs);
    let written = file
        .write_all(config.to_json().as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&path);
        return Err(CliError::io(&path.to_string_lossy(), e));
    }
    // fchmod: the umask must not narrow 0644.
    let _ = rustix::fs::fchmod(&file, rustix::fs::Mode::from_raw_mode(0o644));
    println!("Created global config file at \"{}\".", path.display());
    let mode = if args.all_users {
        SetupMode::AllUsers
    } else {
        SetupMode::SingleUser
    };
    match fscryptfs::protectors::setup::setup(Path::new("/"), mode) {
        Ok(()) => println!(
            "Metadata directories created at \"/.fscrypt\", writable by {}.",
            if args.all_users {
                "everyone"
            } else {
                "root only"
            }
        ),
        Err(MetaError::AlreadySetup(_)) => {}
        Err(e) => eprintln!("fscryptfs: warning: cannot set up /.fscrypt: {e}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("1h").is_err());
        assert!(parse_duration("x").is_err());
    }
}
