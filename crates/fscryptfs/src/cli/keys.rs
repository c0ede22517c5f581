//! The key commands, fscryptctl-style: `add-key`, `remove-key`, `key-status` (with fscryptctl's
//! underscore spellings as aliases), and the key ID argument the policy commands share.
//!
//! Each command opens its target and issues its ioctl through [`super::ioctl`], so it works on a
//! mounted fscryptfs volume and on a kernel filesystem with fscrypt (ext4, f2fs); nothing the
//! target validates is judged here beforehand.
//!
//! Exit status: 0 on success, 1 when the operation failed (the target's errno), 2 on bad arguments
//! (a malformed identifier, a key of the wrong size on stdin).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use fscrypt::policy::KeySpec;
use fscrypt::secret::SecretBytes;
use fscrypt::uapi::{
    AddKeyArg, ADD_KEY_HEADER_SIZE, KEY_REMOVAL_STATUS_FLAG_FILES_BUSY,
    KEY_REMOVAL_STATUS_FLAG_OTHER_USERS, KEY_STATUS_ABSENT, KEY_STATUS_FLAG_ADDED_BY_SELF,
    KEY_STATUS_INCOMPLETELY_REMOVED, KEY_STATUS_PRESENT,
};

use super::error::CliError;
use super::ioctl::{self, failed, failed_at, open_target, ADD_KEY_BUF};

const ADD_KEY_HELP: &str = "Read a raw key (16 to 64 bytes, binary) from stdin and add it to the \
filesystem mounted at MNT (any path on it will do). A v2 key is identified by its key identifier, \
which the filesystem computes and this command prints as 32 hex digits. With --descriptor, the key \
is added as a v1 key under that descriptor (root only) and `Added encryption key with descriptor \
DESC` is printed.\n\n\
Exit status: 0 on success, 1 if the operation failed, 2 on bad arguments or a key of the wrong size.";

const REMOVE_KEY_HELP: &str =
    "Remove the key ID (a 32-hex-digit key identifier, or a 16-hex-digit v1 \
descriptor) from the filesystem mounted at MNT. For a v2 key only the calling user's claim is \
removed; the key itself goes once no user has a claim. Prints `Removed encryption key with \
identifier ID`, `Removed encryption key with identifier ID, but files still busy` (on fscryptfs \
followed by the busy files, one per line, indented: root sees every busy file and process, other \
users only the files they own and their own processes, the rest as a count such as `and 3 more in \
use by other users`) or `Removed user's claim to encryption key with \
identifier ID` (other users still have it); v1 keys say `descriptor` instead of `identifier`.\n\n\
Exit status: 0 on success, 1 if the operation failed, 2 on bad arguments.";

const KEY_STATUS_HELP: &str = "Print the status of the key ID (32 hex digits, or 16 for a v1 \
descriptor) on the filesystem mounted at MNT: `Absent`, `Present`, `Present (user_count=N)`, \
`Present (user_count=N, added_by_self)` or `Incompletely removed`.\n\n\
Exit status: 0 on success, 1 if the operation failed, 2 on bad arguments.";

/// The key subcommands.
#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Add a raw key (read from stdin) to a filesystem; print its identifier.
    #[command(visible_alias = "add_key", long_about = ADD_KEY_HELP)]
    AddKey(AddKeyArgs),
    /// Remove a key (or this user's claim to it) from a filesystem.
    #[command(visible_alias = "remove_key", long_about = REMOVE_KEY_HELP)]
    RemoveKey(RemoveKeyArgs),
    /// Print the status of a key on a filesystem.
    #[command(visible_alias = "key_status", long_about = KEY_STATUS_HELP)]
    KeyStatus(KeyStatusArgs),
}

/// Options of `fscryptfs add-key`.
#[derive(Args, Debug)]
pub struct AddKeyArgs {
    /// Add a v1 key under this 8-byte descriptor (16 hex digits) instead of a v2 key.
    #[arg(long, value_name = "HEX16")]
    descriptor: Option<String>,
    /// A path on the filesystem (usually its mount point).
    #[arg(value_name = "MNT")]
    mnt: PathBuf,
}

/// Options of `fscryptfs remove-key`.
#[derive(Args, Debug)]
pub struct RemoveKeyArgs {
    /// Remove every user's claim to the key (requires root).
    #[arg(long)]
    all_users: bool,
    /// The key: 32 hex digits (v2 identifier) or 16 hex digits (v1 descriptor).
    #[arg(value_name = "ID")]
    id: String,
    /// A path on the filesystem (usually its mount point).
    #[arg(value_name = "MNT")]
    mnt: PathBuf,
}

/// Options of `fscryptfs key-status`.
#[derive(Args, Debug)]
pub struct KeyStatusArgs {
    /// The key: 32 hex digits (v2 identifier) or 16 hex digits (v1 descriptor).
    #[arg(value_name = "ID")]
    id: String,
    /// A path on the filesystem (usually its mount point).
    #[arg(value_name = "MNT")]
    mnt: PathBuf,
}

/// Runs one of the key subcommands.
pub fn run(cmd: KeyCommand) -> Result<(), CliError> {
    match cmd {
        KeyCommand::AddKey(a) => add_key(a),
        KeyCommand::RemoveKey(a) => remove_key(a),
        KeyCommand::KeyStatus(a) => key_status(a),
    }
}

// ---------------------------------------------------------------------------------------------
// The key ID argument

/// A key as the user names it: 32 hex digits (a v2 identifier) or 16 (a v1 descriptor); else bad
/// arguments (exit 2).
pub fn parse_key_id(s: &str) -> Result<KeySpec, CliError> {
    let bad = || {
        CliError::usage(format!(
            "invalid key identifier: {s} (expected 32 hex digits, or 16 for a v1 descriptor)"
        ))
    };
    let bytes = hex::decode(s).map_err(|_| bad())?;
    if let Ok(id) = <[u8; 16]>::try_from(bytes.as_slice()) {
        Ok(KeySpec::Identifier(id))
    } else if let Ok(d) = <[u8; 8]>::try_from(bytes.as_slice()) {
        Ok(KeySpec::Descriptor(d))
    } else {
        Err(bad())
    }
}

/// `identifier HEX` or `descriptor HEX`, as xfs_io words it.
pub fn describe(spec: KeySpec) -> String {
    match spec {
        KeySpec::Descriptor(_) => format!("descriptor {spec}"),
        KeySpec::Identifier(_) => format!("identifier {spec}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Commands

/// Reads the raw key from stdin straight into `arg[80..]` (unbuffered, so no copy is left in a
/// stdio buffer); returns its length, checked to be 16..=64.
fn read_key_into(arg: &mut [u8]) -> Result<usize, CliError> {
    let dup = io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| failed("error reading from stdin", &e))?;
    let mut stdin = File::from(dup);
    let Some(room) = arg.get_mut(ADD_KEY_HEADER_SIZE..) else {
        return Err(CliError::failure(
            "the add-key buffer has no room for a key",
        ));
    };
    let mut pos = 0;
    while pos < room.len() {
        match stdin.read(&mut room[pos..]) {
            Ok(0) => break,
            Ok(n) => pos += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(failed("error reading from stdin", &e)),
        }
    }
    if pos < 16 {
        return Err(CliError::usage(
            "key was too short; it must be at least 16 bytes",
        ));
    }
    if pos > 64 {
        return Err(CliError::usage(
            "key was too long; it can be at most 64 bytes",
        ));
    }
    Ok(pos)
}

fn add_key(args: AddKeyArgs) -> Result<(), CliError> {
    let spec = match &args.descriptor {
        None => KeySpec::Identifier([0; 16]),
        Some(d) => match parse_key_id(d)? {
            spec @ KeySpec::Descriptor(_) => spec,
            KeySpec::Identifier(_) => {
                return Err(CliError::usage(format!(
                    "invalid key descriptor: {d} (expected 16 hex digits)"
                )))
            }
        },
    };
    // The whole argument lives in locked memory that is zeroed on drop.
    let mut arg = SecretBytes::zeroed(ADD_KEY_BUF);
    let raw_size = read_key_into(arg.as_mut())?;
    let buf: &mut [u8; ADD_KEY_BUF] = arg
        .as_mut()
        .try_into()
        .map_err(|_| CliError::failure("the add-key buffer has the wrong size"))?;
    let header = AddKeyArg::new(spec, raw_size as u32).encode();
    buf[..ADD_KEY_HEADER_SIZE].copy_from_slice(&header);
    let target = open_target(&args.mnt, false)?;
    let answer = ioctl::add_key(target.as_fd(), buf).map_err(|e| {
        failed_at(
            &args.mnt,
            format_args!("error adding key to {}", args.mnt.display()),
            &e,
        )
    })?;
    match spec {
        // The identifier the target wrote back, as it wrote it.
        KeySpec::Identifier(_) => println!("{}", hex::encode(&answer.key_spec.u[..16])),
        KeySpec::Descriptor(_) => println!("Added encryption key with {}", describe(spec)),
    }
    Ok(())
}

fn remove_key(args: RemoveKeyArgs) -> Result<(), CliError> {
    let spec = parse_key_id(&args.id)?;
    let target = open_target(&args.mnt, false)?;
    let flags = ioctl::remove_key(target.as_fd(), spec, args.all_users)
        .map_err(|e| failed_at(&args.mnt, "error removing key", &e))?;
    if flags & KEY_REMOVAL_STATUS_FLAG_OTHER_USERS != 0 {
        println!(
            "Removed user's claim to encryption key with {}",
            describe(spec)
        );
    } else if flags & KEY_REMOVAL_STATUS_FLAG_FILES_BUSY != 0 {
        println!(
            "Removed encryption key with {}, but files still busy",
            describe(spec)
        );
        // Only fscryptfs can say which files; elsewhere (ENOTTY) there is nothing more to say.
        if let Ok(list) = ioctl::busy_files(target.as_fd(), spec) {
            for line in busy_lines(&list) {
                println!("  {line}");
            }
        }
    } else {
        println!("Removed encryption key with {}", describe(spec));
    }
    Ok(())
}

fn key_status(args: KeyStatusArgs) -> Result<(), CliError> {
    let spec = parse_key_id(&args.id)?;
    let target = open_target(&args.mnt, false)?;
    let answer = ioctl::key_status(target.as_fd(), spec)
        .map_err(|e| failed_at(&args.mnt, "error getting key status", &e))?;
    let (mut flags, user_count) = (answer.status_flags, answer.user_count);
    match answer.status {
        KEY_STATUS_ABSENT => println!("Absent"),
        KEY_STATUS_PRESENT => {
            let mut line = String::from("Present");
            if user_count != 0 || flags != 0 {
                line.push_str(&format!(" (user_count={user_count}"));
                if flags & KEY_STATUS_FLAG_ADDED_BY_SELF != 0 {
                    line.push_str(", added_by_self");
                }
                flags &= !KEY_STATUS_FLAG_ADDED_BY_SELF;
                if flags != 0 {
                    line.push_str(&format!(", unknown_flags=0x{flags:08x}"));
                }
                line.push(')');
            }
            println!("{line}");
        }
        KEY_STATUS_INCOMPLETELY_REMOVED => println!("Incompletely removed"),
        other => println!("Unknown status ({other})"),
    }
    Ok(())
}

/// The BUSY_FILES text (layout in `uapi::FSCRYPTFS_IOC_BUSY_FILES`) as `remove-key` prints it: the
/// files shown as they come (`ino path [pids]`), a `+N` of other users' processes spelled out, then
/// what the daemon kept back as counts ("and 3 more in use by other users").
pub fn busy_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(counts) = line.strip_prefix("hidden ") {
            let mut n = counts.split(' ').map(|c| c.parse::<u64>().unwrap_or(0));
            let (hidden, cut) = (n.next().unwrap_or(0), n.next().unwrap_or(0));
            if cut > 0 {
                out.push(format!("and {cut} more not listed"));
            }
            if hidden > 0 {
                out.push(format!("and {hidden} more in use by other users"));
            }
            continue;
        }
        // `... [pids] +N`: N processes of other users hold this file too.
        let others = line
            .rsplit_once("] +")
            .and_then(|(head, n)| Some((head, n.parse::<u64>().ok()?)));
        match others {
            Some((head, n)) => {
                let what = if n == 1 { "process" } else { "processes" };
                out.push(format!("{head}] and {n} {what} of other users"));
            }
            None => out.push(line.to_string()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_parse() {
        let id: [u8; 16] = core::array::from_fn(|i| (i as u8) * 0x11);
        assert_eq!(
            parse_key_id("00112233445566778899aabbccddeeff").unwrap(),
            KeySpec::Identifier(id)
        );
        assert_eq!(
            parse_key_id("0011223344556677").unwrap(),
            KeySpec::Descriptor([0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77])
        );
        for bad in [
            "",
            "00",
            "zz11223344556677",
            "00112233445566778899aabbccddeeff00",
        ] {
            assert_eq!(parse_key_id(bad).unwrap_err().exit_code, 2, "{bad}");
        }
        assert_eq!(
            describe(KeySpec::Identifier(id)),
            "identifier 00112233445566778899aabbccddeeff"
        );
        assert_eq!(
            describe(KeySpec::Descriptor([1, 2, 3, 4, 5, 6, 7, 0xab])),
            "descriptor 01020304050607ab"
        );
    }

    #[test]
    fn busy_lines_spell_out_the_counts() {
        let text = "12 /a/b [100,200]\n13 /a/c [] +2\n14 /a/d [7] +1\nhidden 3 1\n";
        assert_eq!(
            busy_lines(text),
            [
                "12 /a/b [100,200]",
                "13 /a/c [] and 2 processes of other users",
                "14 /a/d [7] and 1 process of other users",
                "and 1 more not listed",
                "and 3 more in use by other users",
            ]
        );
        assert!(busy_lines("hidden 0 0\n").is_empty());
        assert_eq!(
            busy_lines("hidden 2 0\n"),
            ["and 2 more in use by other users"]
        );
    }
}
