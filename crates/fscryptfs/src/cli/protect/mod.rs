//! The `fscrypt` tool's commands on top of [`fscryptfs::protectors`]: `setup`, `encrypt`,
//! `unlock`, `lock`, `status` and `metadata …`, with its verbs, flags and wording. They work on a
//! mounted fscryptfs volume and on a kernel filesystem with fscrypt alike: metadata lives in the
//! mount's `.fscrypt`, and keys and policies go through the same ioctls as `add-key` and
//! `set-policy` ([`super::ioctl`]).
//!
//! This file holds what the commands share: the flags that say where secrets come from, reading
//! them (a terminal without echo, a file, an `--extpass` program, or one line of stdin when it is
//! not a terminal, as the tool reads it), `MNT:DESCRIPTOR` references, the configuration, finding
//! a directory's policy, and handing a policy key to the filesystem.
//!
//! - [`setup`]: `setup [MNT]`;
//! - [`encrypt`]: `encrypt DIR`;
//! - [`lockcmd`]: `unlock DIR`, `lock DIR`;
//! - [`status`]: `status [PATH]`;
//! - [`volume_key`]: the volume encrypted from its root (`init --encrypt`, `mount` asking);
//! - [`pam`]: login and logout through `pam_exec`;
//! - [`metadata`]: `metadata create|destroy|change-passphrase|add-protector-to-policy|
//!   remove-protector-from-policy|dump`.

pub mod encrypt;
pub mod lockcmd;
pub mod metadata;
pub mod pam;
pub mod setup;
pub mod status;
pub mod volume_key;

use std::io::{IsTerminal, Read};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use fscrypt::policy::KeySpec;
use fscrypt::secret::SecretBytes;
use fscrypt::uapi::KEY_STATUS_PRESENT;
use fscryptfs::passphrase::{self, PassphraseSource};
use fscryptfs::protectors::config::{config_path, Config};
use fscryptfs::protectors::proto::{PolicyData, ProtectorData, SourceType, PROTECTOR_KEY_LEN};
use fscryptfs::protectors::tree::{self, MetadataDir, Trust};
use fscryptfs::protectors::{actions, mounts, passhash, Error as MetaError};

use super::error::CliError;
use super::ioctl::{self, failed, failed_at, open_target};

/// Where the secret of a protector comes from (`--key`, `--passphrase-file`, `--extpass`; else a
/// prompt on the terminal, or one line of stdin).
#[derive(Args, Debug, Default, Clone)]
pub struct SecretArgs {
    /// Read the raw key of a raw_key protector from FILE (exactly 32 bytes).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Read the passphrase from FILE (one trailing newline is dropped).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Run PROGRAM (split at spaces, no shell) and use its output as the passphrase.
    #[arg(long, value_name = "PROGRAM")]
    pub extpass: Option<String>,
}

/// The secret flags for the protector a policy is unlocked with, where a command needs two.
#[derive(Args, Debug, Default, Clone)]
pub struct UnlockSecretArgs {
    /// The raw key of the --unlock-with protector.
    #[arg(long, value_name = "FILE")]
    pub unlock_key: Option<PathBuf>,
    /// The passphrase of the --unlock-with protector, from FILE.
    #[arg(long, value_name = "FILE")]
    pub unlock_passphrase_file: Option<PathBuf>,
    /// The passphrase of the --unlock-with protector, from PROGRAM's output.
    #[arg(long, value_name = "PROGRAM")]
    pub unlock_extpass: Option<String>,
}

impl From<UnlockSecretArgs> for SecretArgs {
    fn from(u: UnlockSecretArgs) -> Self {
        SecretArgs {
            key: u.unlock_key,
            passphrase_file: u.unlock_passphrase_file,
            extpass: u.unlock_extpass,
        }
    }
}

/// Whether stdin is a terminal (then we prompt; otherwise we read lines from it).
pub fn interactive() -> bool {
    std::io::stdin().is_terminal()
}

/// Reads one line of stdin, unbuffered (nothing past the newline is consumed, so the next secret
/// is still there): the tool's way of taking secrets from a pipe.
fn stdin_line(what: &str) -> Result<SecretBytes, CliError> {
    let dup = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| failed("error reading from stdin", &e))?;
    let mut stdin = std::fs::File::from(dup);
    let mut buf = SecretBytes::zeroed(passphrase::MAX_PASSPHRASE_LEN);
    let mut n = 0;
    let mut byte = [0u8; 1];
    loop {
        match stdin.read(&mut byte) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' || byte[0] == b'\r' => break,
            Ok(_) => {
                if n == buf.len() {
                    return Err(CliError::usage(format!(
                        "{what} is longer than {} bytes",
                        passphrase::MAX_PASSPHRASE_LEN
                    )));
                }
                buf.as_mut()[n] = byte[0];
                n += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(failed("error reading from stdin", &e)),
        }
    }
    zeroize::Zeroize::zeroize(&mut byte);
    if n == 0 {
        return Err(CliError {
            exit_code: passphrase::EXIT_PASSPHRASE_EMPTY,
            message: format!("no {what} given on stdin"),
        });
    }
    Ok(SecretBytes::copy_from(&buf.as_ref()[..n]))
}

/// Reads exactly 32 bytes of stdin: a raw key given through a pipe.
fn stdin_raw_key() -> Result<SecretBytes, CliError> {
    let mut key = SecretBytes::zeroed(PROTECTOR_KEY_LEN + 1);
    let dup = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| failed("error reading from stdin", &e))?;
    let mut n = 0;
    let mut f = std::fs::File::from(dup);
    while n < PROTECTOR_KEY_LEN {
        match f.read(&mut key.as_mut()[n..PROTECTOR_KEY_LEN]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(failed("error reading from stdin", &e)),
        }
    }
    if n != PROTECTOR_KEY_LEN {
        return Err(CliError::usage(format!(
            "a raw key must be {PROTECTOR_KEY_LEN} bytes; stdin gave {n}"
        )));
    }
    Ok(SecretBytes::copy_from(&key.as_ref()[..PROTECTOR_KEY_LEN]))
}

/// How a protector is described in prompts and tables: `custom protector "NAME"`, `raw key
/// protector "NAME"`, `login protector for USER`.
pub fn describe_protector(p: &ProtectorData) -> String {
    match SourceType::try_from(p.source) {
        Ok(SourceType::PamPassphrase) => format!("login protector for {}", user_name(p.uid as u32)),
        Ok(SourceType::RawKey) => format!("raw key protector \"{}\"", p.name),
        _ => format!("custom protector \"{}\"", p.name),
    }
}

/// A user's name from `/etc/passwd` (bounded read), else the uid as a number.
pub fn user_name(uid: u32) -> String {
    let mut text = String::new();
    let _ =
        std::fs::File::open("/etc/passwd").and_then(|f| f.take(4 << 20).read_to_string(&mut text));
    text.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
        })
        .unwrap_or_else(|| uid.to_string())
}

/// Reads the secret of a protector of `source` from `args`: `new` asks twice on a terminal.
pub fn read_secret(
    source: SourceType,
    description: &str,
    args: &SecretArgs,
    new: bool,
) -> Result<SecretBytes, CliError> {
    if source == SourceType::RawKey {
        if args.passphrase_file.is_some() || args.extpass.is_some() {
            return Err(CliError::usage(
                "a raw key protector takes --key=FILE, not a passphrase",
            ));
        }
        return match &args.key {
            Some(path) => Ok(passphrase::read_raw_key_32(path)?),
            None if !interactive() => stdin_raw_key(),
            None => Err(CliError::usage(format!(
                "{description} needs its key: --key=FILE"
            ))),
        };
    }
    if args.key.is_some() {
        return Err(CliError::usage(format!(
            "{description} takes a passphrase, not --key"
        )));
    }
    let src = match (&args.passphrase_file, &args.extpass) {
        (Some(_), Some(_)) => {
            return Err(CliError::usage(
                "--passphrase-file and --extpass cannot be used together",
            ))
        }
        (Some(f), None) => PassphraseSource::File(f.clone()),
        (None, Some(cmd)) => {
            PassphraseSource::Extpass(cmd.split_whitespace().map(String::from).collect())
        }
        (None, None) if !interactive() => return stdin_line("passphrase"),
        (None, None) => PassphraseSource::Prompt,
    };
    let kind = match source {
        SourceType::PamPassphrase => "login passphrase",
        _ => "custom passphrase",
    };
    let prompt = if description.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} for {description}")
    };
    Ok(passphrase::read_passphrase(&src, &prompt, new)?)
}

/// Opens a protector with its secret; on a terminal a wrong passphrase is asked again (three
/// tries), elsewhere it ends the command with "incorrect passphrase" (exit 12).
pub fn unlock_protector(p: &ProtectorData, args: &SecretArgs) -> Result<SecretBytes, CliError> {
    let source = p.source_type()?;
    let description = describe_protector(p);
    let prompting = interactive()
        && source != SourceType::RawKey
        && args.passphrase_file.is_none()
        && args.extpass.is_none();
    let tries = if prompting { 3 } else { 1 };
    for attempt in 1..=tries {
        let secret = read_secret(source, &description, args, false)?;
        match actions::unlock_protector(p, secret.as_ref()) {
            Err(MetaError::IncorrectKey(m)) if attempt < tries => eprintln!("{m}"),
            r => return Ok(r?),
        }
    }
    Err(CliError::failure("too many attempts"))
}

/// `MNT:DESCRIPTOR`, as the tool writes references to metadata.
#[derive(Clone, Debug)]
pub struct MetaRef {
    /// The mount point.
    pub mount: PathBuf,
    /// The descriptor.
    pub desc: String,
}

impl std::str::FromStr for MetaRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (m, d) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?} is not of the form MOUNTPOINT:DESCRIPTOR"))?;
        if m.is_empty() || d.is_empty() || !d.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("{s:?} is not of the form MOUNTPOINT:DESCRIPTOR"));
        }
        Ok(MetaRef {
            mount: PathBuf::from(m),
            desc: d.to_string(),
        })
    }
}

/// Where the metadata named by `MNT:ID` lives: MNT must be a mount point, or the backing
/// directory of a volume encrypted from its root.
pub fn tree_root(path: &Path) -> Result<PathBuf, CliError> {
    if volume_key::is_encrypted_volume(path) {
        return std::fs::canonicalize(path).map_err(|e| CliError::io(&path.to_string_lossy(), e));
    }
    Ok(mounts::mount_at(path)?.path)
}

/// The configuration and what follows from it for this process.
pub struct Context {
    /// `/etc/fscrypt.conf` (or `$FSCRYPTFS_CONFIG`), or the tool's defaults.
    pub config: Config,
    /// Whether a configuration file was found (else new costs are calibrated when needed).
    configured: bool,
    /// Whose metadata we accept.
    pub trust: Trust,
}

impl Context {
    /// Loads the configuration (the tool's defaults when there is none).
    pub fn load() -> Result<Context, CliError> {
        let (config, configured) = match Config::load(&config_path())? {
            Some(c) => (c, true),
            None => (
                Config::with_costs(fscryptfs::protectors::proto::HashingCosts::default()),
                false,
            ),
        };
        let trust = Trust::for_caller(config.allow_cross_user_metadata);
        Ok(Context {
            config,
            configured,
            trust,
        })
    }

    /// The Argon2id costs of a new passphrase protector: the configuration's, or (without one)
    /// calibrated now to 1 s, as `setup` would.
    pub fn new_costs(&self) -> Result<fscryptfs::protectors::proto::HashingCosts, CliError> {
        if self.configured {
            Ok(self.config.hash_costs.clone())
        } else {
            Ok(passhash::calibrate(Duration::from_secs(1))?)
        }
    }

    /// The `.fscrypt` tree of the mount at `mount` (or, for the backing directory of a volume
    /// encrypted from its root, that volume's tree).
    pub fn open(&self, mount: &Path) -> Result<MetadataDir, CliError> {
        if volume_key::is_encrypted_volume(mount) {
            return volume_key::open_tree(self, mount);
        }
        Ok(MetadataDir::open(mount, self.trust)?)
    }

    /// The `.fscrypt` tree of the filesystem `path` is on, and that mount.
    pub fn open_for(&self, path: &Path) -> Result<(MetadataDir, mounts::Mount), CliError> {
        let m = mounts::mount_of(path)?;
        Ok((self.open(&m.path)?, m))
    }

    /// Reads protector `desc` as seen from `dir`'s filesystem: its own file, or through a
    /// `.link` on another filesystem. Returns the record and the tree it lives in.
    pub fn find_protector(
        &self,
        dir: &MetadataDir,
        desc: &str,
    ) -> Result<(ProtectorData, Option<PathBuf>), CliError> {
        if let Some(text) = dir.read_link(desc)? {
            // Say which link is bad ("corrupt metadata: LINK: …").
            let link = dir.path_of(
                tree::Kind::Protector,
                &format!("{desc}{}", tree::LINK_SUFFIX),
            );
            let other = tree::resolve_link(&text).map_err(|e| match e {
                MetaError::Corrupt(m) => MetaError::Corrupt(format!("{}: {m}", link.display())),
                MetaError::NotFound(m) => MetaError::NotFound(format!("{}: {m}", link.display())),
                e => e,
            })?;
            // As the tool (`GetMount`): a link leads to a mount point (or a volume's backing
            // directory), never into a plain directory where someone planted a tree.
            let other = tree_root(&other)
                .map_err(|e| CliError::failure(format!("{}: {}", link.display(), e.message)))?;
            let p = self.open(&other)?.read_protector(desc)?;
            return Ok((p, Some(other)));
        }
        Ok((dir.read_protector(desc)?, None))
    }
}

/// The policy of directory `dir`: its kernel policy bytes read through the ioctl, the record
/// `policies/<descriptor>` on its filesystem, checked to agree (`ErrPolicyMetadataMismatch`).
pub fn policy_of_dir(
    ctx: &Context,
    dir: &Path,
) -> Result<(MetadataDir, PolicyData, mounts::Mount), CliError> {
    let f = open_target(dir, false)?;
    let bytes = ioctl::get_policy(f.as_fd()).map_err(|e| match e.raw_os_error() {
        Some(libc::ENODATA) => CliError::failure(format!(
            "file or directory \"{}\" is not encrypted",
            dir.display()
        )),
        _ => failed_at(
            dir,
            format_args!("error getting policy of {}", dir.display()),
            &e,
        ),
    })?;
    let (options, desc) = actions::options_of(&bytes)?;
    let (meta, mount) = ctx.open_for(dir)?;
    let policy = meta.read_policy(&desc).map_err(|e| match e {
        MetaError::NotFound(_) => CliError::failure(format!(
            "\"{}\" is encrypted with fscrypt, but no metadata for policy {desc} was found on \
             filesystem {}",
            dir.display(),
            mount.path.display()
        )),
        e => e.into(),
    })?;
    if policy.opts()? != &options {
        return Err(CliError::failure(format!(
            "inconsistent metadata between \"{}\" and policy {desc}: the options differ",
            dir.display()
        )));
    }
    Ok((meta, policy, mount))
}

/// Hands a policy key to the filesystem of `target` (ADD_KEY) and checks the identifier it
/// answers (v2) against the policy's descriptor.
pub fn provision(target: &Path, policy: &PolicyData, key: &SecretBytes) -> Result<(), CliError> {
    let spec = actions::key_spec(policy)?;
    let request = match spec {
        KeySpec::Identifier(_) => KeySpec::Identifier([0; 16]),
        d => d,
    };
    let f = open_target(target, false)?;
    let answer = ioctl::add_raw_key(f.as_fd(), request, key.as_ref()).map_err(|e| {
        failed_at(
            target,
            format_args!("error adding key to {}", target.display()),
            &e,
        )
    })?;
    if let KeySpec::Identifier(want) = spec {
        if answer.key_spec.u[..16] != want {
            let _ = ioctl::remove_key(f.as_fd(), KeySpec::Identifier(want), false);
            return Err(CliError::failure(format!(
                "the filesystem of {} computed another key identifier than policy {}",
                target.display(),
                policy.key_descriptor
            )));
        }
    }
    Ok(())
}

/// Whether the policy's key is present on the filesystem of `target` (and the status flags).
pub fn key_present(target: &Path, policy: &PolicyData) -> Result<(u32, u32), CliError> {
    let spec = actions::key_spec(policy)?;
    let f = open_target(target, false)?;
    let s = ioctl::key_status(f.as_fd(), spec)
        .map_err(|e| failed_at(target, "error getting key status", &e))?;
    Ok((s.status, s.status_flags))
}

/// `Yes`, `No` or `Partially (incompletely locked)`, as `status` prints it.
pub fn unlocked_word(status: u32) -> &'static str {
    match status {
        KEY_STATUS_PRESENT => "Yes",
        fscrypt::uapi::KEY_STATUS_INCOMPLETELY_REMOVED => "Partially (incompletely locked)",
        _ => "No",
    }
}

/// Asks a yes/no question on the terminal; `default` when stdin is not one.
pub fn confirm(question: &str, default: bool) -> bool {
    if !interactive() {
        return default;
    }
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    let _ = std::io::stdin().take(256).read_to_string_line(&mut line);
    matches!(line.trim(), "y" | "Y" | "yes")
}

/// One line from a reader (helper for [`confirm`]).
trait ReadLine {
    fn read_to_string_line(&mut self, out: &mut String) -> std::io::Result<()>;
}

impl<R: Read> ReadLine for R {
    fn read_to_string_line(&mut self, out: &mut String) -> std::io::Result<()> {
        let mut b = [0u8; 1];
        while self.read(&mut b)? == 1 && b[0] != b'\n' {
            out.push(b[0] as char);
        }
        Ok(())
    }
}

/// Prints a table with two spaces between columns, as the tool's tabwriter does.
pub fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        println!("{}", line.trim_end());
    }
}
