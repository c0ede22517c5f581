//! `encrypt DIR`: a random 64-byte master key, wrapped by a new or existing protector into a new
//! policy record (or an existing policy with `--policy`), the key handed to the filesystem, the
//! policy set on the empty directory, and the directory made 0700 — the `fscrypt` tool's
//! `encrypt`, step for step, undoing what it made when a step fails.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use clap::Args;
use fscrypt::secret::SecretBytes;
use fscryptfs::protectors::actions::{self, NewProtector};
use fscryptfs::protectors::mounts;
use fscryptfs::protectors::proto::{PolicyData, ProtectorData, SourceType};
use fscryptfs::protectors::tree::{self, MetadataDir};

use super::{
    describe_protector, interactive, provision, read_secret, unlock_protector, Context, MetaRef,
    SecretArgs,
};
use crate::cli::error::CliError;
use crate::cli::ioctl::{self, failed, open_target};

/// Name of the file that explains a recovery passphrase.
pub const RECOVERY_README: &str = "fscrypt_recovery_readme.txt";

/// How a new protector is made (shared with `metadata create protector`).
#[derive(Args, Debug, Default, Clone)]
pub struct NewProtectorArgs {
    /// The kind of a new protector: custom_passphrase, raw_key or pam_passphrase (login).
    #[arg(long, value_name = "SOURCE")]
    pub source: Option<String>,
    /// The name of a new protector.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// Options of `fscryptfs encrypt`.
#[derive(Args, Debug)]
pub struct EncryptArgs {
    /// Protect the directory with this existing policy (MOUNTPOINT:ID).
    #[arg(long, value_name = "MNT:ID")]
    pub policy: Option<MetaRef>,
    /// Protect the new policy with this existing protector (MOUNTPOINT:ID).
    #[arg(long, value_name = "MNT:ID", conflicts_with = "policy")]
    pub protector: Option<MetaRef>,
    /// With --policy: the protector of that policy to unlock it with.
    #[arg(long, value_name = "MNT:ID")]
    pub unlock_with: Option<MetaRef>,
    #[command(flatten)]
    pub new: NewProtectorArgs,
    #[command(flatten)]
    pub secret: SecretArgs,
    /// Encrypt the directory but leave it locked.
    #[arg(long)]
    pub skip_unlock: bool,
    /// Make no recovery passphrase for a login protector on another filesystem.
    #[arg(long)]
    pub no_recovery: bool,
    /// The empty directory to encrypt.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Reads a protector's name from the terminal, or says it is needed.
pub fn protector_name(given: &Option<String>) -> Result<String, CliError> {
    if let Some(n) = given {
        return Ok(n.clone());
    }
    if !interactive() {
        return Err(CliError::usage("a new protector needs a name: --name=NAME"));
    }
    eprint!("Enter a name for the new protector: ");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| failed("error reading from stdin", &e))?;
    let name = line.trim().to_string();
    if name.is_empty() {
        return Err(CliError::usage("the protector name cannot be empty"));
    }
    Ok(name)
}

/// The source of a new protector: `--source`, else the configuration's.
pub fn protector_source(given: &Option<String>, ctx: &Context) -> Result<SourceType, CliError> {
    match given {
        None => Ok(ctx.config.source),
        Some(s) => SourceType::from_tool_name(s).ok_or_else(|| {
            CliError::usage(format!(
                "invalid source {s:?} (expected custom_passphrase, raw_key or pam_passphrase)"
            ))
        }),
    }
}

/// A protector made for a command: where it was written, so a failure can remove it.
pub struct Created {
    /// The record.
    pub data: ProtectorData,
    /// Its opened key.
    pub key: SecretBytes,
    /// The mount whose `.fscrypt` holds it.
    pub mount: PathBuf,
}

/// Makes a protector on `meta`'s filesystem (a login protector: on `/`) and writes it.
pub fn create_protector(
    ctx: &Context,
    meta: &MetadataDir,
    new: &NewProtectorArgs,
    secret_args: &SecretArgs,
) -> Result<Created, CliError> {
    let source = protector_source(&new.source, ctx)?;
    let uid = rustix::process::getuid().as_raw();
    let (name, login_root);
    if source == SourceType::PamPassphrase {
        if new.name.is_some() {
            return Err(CliError::usage("login protectors do not have a name"));
        }
        name = String::new();
        login_root = Some(ctx.open(Path::new("/")).map_err(|e| {
            CliError::failure(format!(
                "login protectors live on the root filesystem: {}",
                e.message
            ))
        })?);
    } else {
        name = protector_name(&new.name)?;
        login_root = None;
    }
    let home = login_root.as_ref().unwrap_or(meta);
    if source == SourceType::PamPassphrase {
        for d in home.list(tree::Kind::Protector)? {
            if let Ok(p) = home.read_protector(&d) {
                if p.source == SourceType::PamPassphrase as i32 && p.uid == uid as i64 {
                    return Err(CliError::failure(format!(
                        "user {} already has a login protector ({d}) on filesystem \"/\"",
                        super::user_name(uid)
                    )));
                }
            }
        }
    }
    let description = match source {
        SourceType::PamPassphrase => super::user_name(uid),
        SourceType::RawKey => format!("raw key protector \"{name}\""),
        _ => format!("protector \"{name}\""),
    };
    let secret = read_secret(
        source,
        &description,
        secret_args,
        source == SourceType::CustomPassphrase,
    )?;
    let costs = if source.is_passphrase() {
        ctx.new_costs()?
    } else {
        Default::default()
    };
    let (data, key) = actions::create_protector(
        &NewProtector {
            source,
            name: &name,
            costs: &costs,
            uid,
        },
        secret.as_ref(),
    )?;
    home.write_protector(&data, None)?;
    Ok(Created {
        data,
        key,
        mount: home.mount().to_path_buf(),
    })
}

/// Runs `encrypt`.
pub fn run(args: EncryptArgs) -> Result<(), CliError> {
    let ctx = Context::load()?;
    let dir = &args.dir;
    check_target(dir)?;
    let (meta, mount) = ctx.open_for(dir)?;
    let mut undo = Undo::default();
    let result = encrypt(&ctx, &args, &meta, &mount, &mut undo);
    match result {
        Ok(msg) => {
            println!("{msg}");
            Ok(())
        }
        Err(e) => {
            undo.run(&ctx, &meta);
            Err(e)
        }
    }
}

/// What `encrypt` made, undone on failure.
#[derive(Default)]
struct Undo {
    protectors: Vec<(PathBuf, String)>,
    policy: Option<String>,
    links: Vec<String>,
    provisioned: Option<(PathBuf, PolicyData)>,
}

impl Undo {
    fn run(&self, ctx: &Context, meta: &MetadataDir) {
        if let Some((dir, policy)) = &self.provisioned {
            if let (Ok(f), Ok(spec)) = (open_target(dir, false), actions::key_spec(policy)) {
                let _ = ioctl::remove_key(f.as_fd(), spec, false);
            }
        }
        if let Some(p) = &self.policy {
            let _ = meta.remove_policy(p);
        }
        for l in &self.links {
            let _ = meta.remove_protector(l);
        }
        for (m, d) in &self.protectors {
            if let Ok(t) = ctx.open(m) {
                let _ = t.remove_protector(d);
            }
        }
    }
}

/// DIR must be an empty directory that is not yet encrypted, on a filesystem that can encrypt.
fn check_target(dir: &Path) -> Result<(), CliError> {
    let f = open_target(dir, true)?;
    match ioctl::get_policy(f.as_fd()) {
        Ok(_) => {
            return Err(CliError::failure(format!(
                "\"{}\" is already encrypted",
                dir.display()
            )))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOTTY) | Some(libc::EOPNOTSUPP)
            ) =>
        {
            return Err(CliError::failure(format!(
                "filesystem of \"{}\" does not support encryption (not an fscryptfs mount, and \
                 no fscrypt support)",
                dir.display()
            )))
        }
        Err(e) => return Err(failed(format_args!("error reading {}", dir.display()), &e)),
    }
    let mut entries =
        std::fs::read_dir(dir).map_err(|e| failed(format_args!("{}", dir.display()), &e))?;
    if entries.next().is_some() {
        return Err(CliError::failure(format!(
            "directory \"{}\" is not empty",
            dir.display()
        )));
    }
    Ok(())
}

fn encrypt(
    ctx: &Context,
    args: &EncryptArgs,
    meta: &MetadataDir,
    mount: &mounts::Mount,
    undo: &mut Undo,
) -> Result<String, CliError> {
    let dir = &args.dir;
    let (policy, policy_key, recovery) = match &args.policy {
        Some(r) => {
            let m = mounts::mount_at(&r.mount)?;
            if m.path != mount.path {
                return Err(CliError::failure(format!(
                    "policy {} is on filesystem \"{}\", not on the filesystem of \"{}\"",
                    r.desc,
                    m.path.display(),
                    dir.display()
                )));
            }
            let policy = meta.read_policy(&r.desc)?;
            let key = if args.skip_unlock {
                None
            } else {
                Some(unlock_policy(
                    ctx,
                    meta,
                    &policy,
                    &args.unlock_with,
                    &args.secret,
                )?)
            };
            (policy, key, None)
        }
        None => {
            let protector = match &args.protector {
                Some(r) => {
                    let other = ctx.open(&super::tree_root(&r.mount)?)?;
                    let p = other.read_protector(&r.desc)?;
                    let key = unlock_protector(&p, &args.secret)?;
                    Created {
                        data: p,
                        key,
                        mount: other.mount().to_path_buf(),
                    }
                }
                None => {
                    let c = create_protector(ctx, meta, &args.new, &args.secret)?;
                    undo.protectors
                        .push((c.mount.clone(), c.data.protector_descriptor.clone()));
                    c
                }
            };
            let (mut policy, key) =
                actions::create_policy(&ctx.config.options, &protector.data, &protector.key)?;
            let mut recovery = None;
            if protector.mount != meta.mount() {
                let d = &protector.data.protector_descriptor;
                if !meta.exists(tree::Kind::Protector, d) {
                    meta.write_link(d, &tree::link_text(None, &protector.mount), None)?;
                    undo.links.push(d.clone());
                }
                if !args.no_recovery {
                    recovery = Some(add_recovery(ctx, meta, dir, &mut policy, &key, undo)?);
                }
            }
            meta.write_policy(&policy, None)?;
            undo.policy = Some(policy.key_descriptor.clone());
            (policy, Some(key), recovery)
        }
    };
    if let Some(key) = &policy_key {
        provision(dir, &policy, key)?;
        undo.provisioned = Some((dir.clone(), policy.clone()));
    }
    let kernel = actions::kernel_policy(&policy)?.to_bytes();
    let f = open_target(dir, true)?;
    ioctl::set_policy(f.as_fd(), &kernel).map_err(|e| {
        failed(
            format_args!("error setting the policy of {}", dir.display()),
            &e,
        )
    })?;
    let _ = f.sync_all();
    if let Some((pass, name)) = &recovery {
        write_recovery_readme(dir, pass, name, &policy, &mount.path)?;
    }
    if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
        eprintln!(
            "fscryptfs: warning: cannot make \"{}\" private (chmod 0700): {e}",
            dir.display()
        );
    }
    if args.skip_unlock {
        // The kernel wants the key present to set a v2 policy: it was added for that, and goes
        // now (through the mount point, so DIR itself is not busy), as the tool does.
        if let Some((_, p)) = undo.provisioned.take() {
            let f = open_target(&mount.path, false)?;
            ioctl::remove_key(f.as_fd(), actions::key_spec(&p)?, false)
                .map_err(|e| failed("error locking the new directory", &e))?;
        }
        return Ok(format!(
            "\"{}\" is now encrypted, but it is still locked.",
            dir.display()
        ));
    }
    Ok(format!(
        "\"{}\" is now encrypted, unlocked, and ready for use.",
        dir.display()
    ))
}

/// Unwraps an existing policy's key through `--unlock-with`, or its only slot.
pub fn unlock_policy(
    ctx: &Context,
    meta: &MetadataDir,
    policy: &PolicyData,
    unlock_with: &Option<MetaRef>,
    secret: &SecretArgs,
) -> Result<SecretBytes, CliError> {
    let desc = match unlock_with {
        Some(r) => r.desc.clone(),
        None => match policy.wrapped_policy_keys.as_slice() {
            [only] => only.protector_descriptor.clone(),
            [] => {
                return Err(CliError::failure(format!(
                    "policy {} has no protectors",
                    policy.key_descriptor
                )))
            }
            slots => choose_slot(ctx, meta, policy, slots.len())?,
        },
    };
    let (p, _) = ctx.find_protector(meta, &desc)?;
    // As the tool: a protector the policy has no slot for is refused before its secret is asked.
    if policy.slot(&p.protector_descriptor).is_none() {
        return Err(CliError::failure(format!(
            "policy {} is not protected by protector {}",
            policy.key_descriptor, p.protector_descriptor
        )));
    }
    let pkey = unlock_protector(&p, secret)?;
    Ok(actions::unlock_policy(policy, &p, &pkey)?)
}

/// Several protectors: list them and ask on the terminal, as the tool does.
fn choose_slot(
    ctx: &Context,
    meta: &MetadataDir,
    policy: &PolicyData,
    n: usize,
) -> Result<String, CliError> {
    let descs: Vec<&str> = policy
        .wrapped_policy_keys
        .iter()
        .map(|s| s.protector_descriptor.as_str())
        .collect();
    if !interactive() {
        let mnt = meta.mount().display();
        return Err(CliError::usage(format!(
            "policy {} has {n} protectors; choose one with --unlock-with={mnt}:{}",
            policy.key_descriptor,
            descs.join(format!(" or --unlock-with={mnt}:").as_str())
        )));
    }
    eprintln!("The available protectors are:");
    for (i, d) in descs.iter().enumerate() {
        let what = ctx
            .find_protector(meta, d)
            .map(|(p, _)| describe_protector(&p))
            .unwrap_or_else(|e| format!("unavailable ({})", e.message));
        eprintln!("{i} - {what}");
    }
    eprint!("Enter the number of protector to use: ");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| failed("error reading from stdin", &e))?;
    line.trim()
        .parse::<usize>()
        .ok()
        .and_then(|i| descs.get(i))
        .map(|d| d.to_string())
        .ok_or_else(|| CliError::usage("no such protector"))
}

/// Adds a recovery passphrase protector (on the directory's filesystem) to `policy`.
fn add_recovery(
    ctx: &Context,
    meta: &MetadataDir,
    dir: &Path,
    policy: &mut PolicyData,
    policy_key: &SecretBytes,
    undo: &mut Undo,
) -> Result<(SecretBytes, String), CliError> {
    let base = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    let taken: Vec<String> = meta
        .list(tree::Kind::Protector)?
        .iter()
        .filter_map(|d| meta.read_protector(d).ok().map(|p| p.name))
        .collect();
    let mut name = format!("Recovery passphrase for {base}");
    let mut i = 2;
    while taken.contains(&name) {
        name = format!("Recovery passphrase for {base} ({i})");
        i += 1;
    }
    let pass = actions::recovery_passphrase()?;
    let costs = ctx.new_costs()?;
    let (data, key) = actions::create_protector(
        &NewProtector {
            source: SourceType::CustomPassphrase,
            name: &name,
            costs: &costs,
            uid: 0,
        },
        pass.as_ref(),
    )?;
    meta.write_protector(&data, None)?;
    undo.protectors.push((
        meta.mount().to_path_buf(),
        data.protector_descriptor.clone(),
    ));
    actions::add_slot(policy, &data, &key, policy_key)?;
    Ok((
        pass,
        format!("{}:{}", meta.mount().display(), data.protector_descriptor),
    ))
}

fn write_recovery_readme(
    dir: &Path,
    pass: &SecretBytes,
    protector: &str,
    policy: &PolicyData,
    mount: &Path,
) -> Result<(), CliError> {
    let path = dir.join(RECOVERY_README);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| CliError::io(&path.to_string_lossy(), e))?;
    let text = format!(
        "fscrypt automatically generated a recovery passphrase for this directory:\n\n    {}\n\n\
It did this because you chose to protect this directory with your login passphrase, but this \
directory is not on the root filesystem.\n\n\
Copy this passphrase to a safe place if you want to still be able to unlock this directory if you \
re-install the operating system or connect this storage media to a different system (which would \
result in your login protector being lost).\n\n\
To unlock this directory using this recovery passphrase, run 'fscryptfs unlock' (or 'fscrypt \
unlock') and select the protector named \"{}\".\n\n\
If you want to disable recovery passphrase generation (not recommended), re-create this directory \
and pass the --no-recovery option to 'fscryptfs encrypt'. Alternatively, you can remove this \
recovery passphrase protector using:\n\n    \
fscryptfs metadata remove-protector-from-policy --force --protector={protector} --policy={}:{}\n\n\
It is safe to keep it around though, as this recovery passphrase is high-entropy.\n",
        String::from_utf8_lossy(pass.as_ref()),
        protector
            .rsplit_once(':')
            .map(|_| format!(
                "Recovery passphrase for {}",
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ))
            .unwrap_or_default(),
        mount.display(),
        policy.key_descriptor
    );
    let r = f.write_all(text.as_bytes()).and_then(|()| f.sync_all());
    let mut text = text.into_bytes();
    zeroize::Zeroize::zeroize(&mut text);
    r.map_err(|e| CliError::io(&path.to_string_lossy(), e))
}
