//! `metadata …`: the `fscrypt` tool's metadata commands — create a protector or a policy on its
//! own, destroy one (or a filesystem's whole `.fscrypt`), change a passphrase, add a protector to
//! a policy or remove one from it, and dump a record.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use fscryptfs::protectors::proto::{PolicyData, ProtectorData, SourceType};
use fscryptfs::protectors::tree;
use fscryptfs::protectors::{actions, mounts};

use super::encrypt::{create_protector, unlock_policy, NewProtectorArgs};
use super::{
    confirm, describe_protector, interactive, read_secret, unlock_protector, Context, MetaRef,
    SecretArgs, UnlockSecretArgs,
};
use crate::cli::error::CliError;

/// The metadata subcommands.
#[derive(Subcommand, Debug)]
pub enum MetadataCommand {
    /// Create a protector or a policy.
    #[command(subcommand)]
    Create(CreateCommand),
    /// Delete a protector, a policy, or all metadata of a filesystem.
    Destroy(DestroyArgs),
    /// Change the passphrase of a passphrase protector.
    ChangePassphrase(ChangePassphraseArgs),
    /// Let a protector unlock a policy (adds a wrapped copy of the policy key).
    AddProtectorToPolicy(AddProtectorArgs),
    /// Stop a protector from unlocking a policy.
    RemoveProtectorFromPolicy(RemoveProtectorArgs),
    /// Print a protector or policy record.
    Dump(DumpArgs),
}

/// `metadata create protector|policy`.
#[derive(Subcommand, Debug)]
pub enum CreateCommand {
    /// Create a protector on a filesystem.
    Protector(CreateProtectorArgs),
    /// Create a policy on a filesystem, protected by an existing protector.
    Policy(CreatePolicyArgs),
}

/// Options of `metadata create protector`.
#[derive(Args, Debug)]
pub struct CreateProtectorArgs {
    #[command(flatten)]
    pub new: NewProtectorArgs,
    #[command(flatten)]
    pub secret: SecretArgs,
    /// The filesystem (mount point).
    #[arg(value_name = "MOUNTPOINT")]
    pub mount: PathBuf,
}

/// Options of `metadata create policy`.
#[derive(Args, Debug)]
pub struct CreatePolicyArgs {
    /// The protector of the new policy (MOUNTPOINT:ID).
    #[arg(long, value_name = "MNT:ID")]
    pub protector: MetaRef,
    #[command(flatten)]
    pub secret: SecretArgs,
    /// The filesystem (mount point).
    #[arg(value_name = "MOUNTPOINT")]
    pub mount: PathBuf,
}

/// Options of `metadata destroy`.
#[derive(Args, Debug)]
pub struct DestroyArgs {
    /// Delete this protector (MOUNTPOINT:ID).
    #[arg(long, value_name = "MNT:ID")]
    pub protector: Option<MetaRef>,
    /// Delete this policy (MOUNTPOINT:ID).
    #[arg(long, value_name = "MNT:ID")]
    pub policy: Option<MetaRef>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub force: bool,
    /// Delete all metadata of this filesystem.
    #[arg(value_name = "MOUNTPOINT")]
    pub mount: Option<PathBuf>,
}

/// Options of `metadata change-passphrase`.
#[derive(Args, Debug)]
pub struct ChangePassphraseArgs {
    /// The protector (MOUNTPOINT:ID).
    #[arg(long, value_name = "MNT:ID")]
    pub protector: MetaRef,
    /// The old passphrase, from FILE.
    #[arg(long = "old-passphrase-file", value_name = "FILE")]
    pub old_file: Option<PathBuf>,
    /// The new passphrase, from FILE.
    #[arg(long = "new-passphrase-file", value_name = "FILE")]
    pub new_file: Option<PathBuf>,
    /// The old passphrase, from PROGRAM's output.
    #[arg(long = "old-extpass", value_name = "PROGRAM")]
    pub old_extpass: Option<String>,
    /// The new passphrase, from PROGRAM's output.
    #[arg(long = "new-extpass", value_name = "PROGRAM")]
    pub new_extpass: Option<String>,
}

/// Options of `metadata add-protector-to-policy`.
#[derive(Args, Debug)]
pub struct AddProtectorArgs {
    /// The protector to add (MOUNTPOINT:ID).
    #[arg(long, value_name = "MNT:ID")]
    pub protector: MetaRef,
    /// The policy (MOUNTPOINT:ID).
    #[arg(long, value_name = "MNT:ID")]
    pub policy: MetaRef,
    /// The policy's existing protector to unlock it with (MOUNTPOINT:ID).
    #[arg(long, value_name = "MNT:ID")]
    pub unlock_with: Option<MetaRef>,
    /// The secret of the protector being added.
    #[command(flatten)]
    pub secret: SecretArgs,
    /// The secret of the --unlock-with protector.
    #[command(flatten)]
    pub unlock_secret: UnlockSecretArgs,
}

/// Options of `metadata remove-protector-from-policy`.
#[derive(Args, Debug)]
pub struct RemoveProtectorArgs {
    /// The protector (MOUNTPOINT:ID).
    #[arg(long, value_name = "MNT:ID")]
    pub protector: MetaRef,
    /// The policy (MOUNTPOINT:ID).
    #[arg(long, value_name = "MNT:ID")]
    pub policy: MetaRef,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub force: bool,
}

/// Options of `metadata dump`.
#[derive(Args, Debug)]
pub struct DumpArgs {
    /// The protector (MOUNTPOINT:ID).
    #[arg(long, value_name = "MNT:ID")]
    pub protector: Option<MetaRef>,
    /// The policy (MOUNTPOINT:ID).
    #[arg(long, value_name = "MNT:ID")]
    pub policy: Option<MetaRef>,
}

/// Runs a metadata subcommand.
pub fn run(cmd: MetadataCommand) -> Result<(), CliError> {
    let ctx = Context::load()?;
    match cmd {
        MetadataCommand::Create(CreateCommand::Protector(a)) => create_protector_cmd(&ctx, a),
        MetadataCommand::Create(CreateCommand::Policy(a)) => create_policy_cmd(&ctx, a),
        MetadataCommand::Destroy(a) => destroy(&ctx, a),
        MetadataCommand::ChangePassphrase(a) => change_passphrase(&ctx, a),
        MetadataCommand::AddProtectorToPolicy(a) => add_protector(&ctx, a),
        MetadataCommand::RemoveProtectorFromPolicy(a) => remove_protector(&ctx, a),
        MetadataCommand::Dump(a) => dump(&ctx, a),
    }
}

/// The mount point a reference names (it must be one).
fn mount_of_ref(r: &MetaRef) -> Result<PathBuf, CliError> {
    super::tree_root(&r.mount)
}

fn create_protector_cmd(ctx: &Context, a: CreateProtectorArgs) -> Result<(), CliError> {
    let meta = ctx.open(&super::tree_root(&a.mount)?)?;
    let c = create_protector(ctx, &meta, &a.new, &a.secret)?;
    println!(
        "Protector {} created on filesystem \"{}\".",
        c.data.protector_descriptor,
        c.mount.display()
    );
    Ok(())
}

fn create_policy_cmd(ctx: &Context, a: CreatePolicyArgs) -> Result<(), CliError> {
    let mount = super::tree_root(&a.mount)?;
    let meta = ctx.open(&mount)?;
    let pmount = mount_of_ref(&a.protector)?;
    let pmeta = ctx.open(&pmount)?;
    let p = pmeta.read_protector(&a.protector.desc)?;
    let key = unlock_protector(&p, &a.secret)?;
    let (policy, _policy_key) = actions::create_policy(&ctx.config.options, &p, &key)?;
    if pmount != mount && !meta.exists(tree::Kind::Protector, &p.protector_descriptor) {
        meta.write_link(
            &p.protector_descriptor,
            &tree::link_text(None, &pmount),
            None,
        )?;
    }
    meta.write_policy(&policy, None)?;
    println!(
        "Policy {} created on filesystem \"{}\".",
        policy.key_descriptor,
        mount.display()
    );
    Ok(())
}

fn destroy(ctx: &Context, a: DestroyArgs) -> Result<(), CliError> {
    let ask = |what: &str| -> Result<(), CliError> {
        if a.force || confirm(&format!("Destroy {what}?"), false) {
            Ok(())
        } else if interactive() {
            Err(CliError::failure("not destroyed"))
        } else {
            Err(CliError::usage(format!(
                "refusing to destroy {what} without --force"
            )))
        }
    };
    match (&a.protector, &a.policy, &a.mount) {
        (Some(r), None, None) => {
            let mount = mount_of_ref(r)?;
            ask(&format!("protector {}", r.desc))?;
            ctx.open(&mount)?.remove_protector(&r.desc)?;
            println!(
                "Protector {} deleted from filesystem \"{}\".",
                r.desc,
                mount.display()
            );
        }
        (None, Some(r), None) => {
            let mount = mount_of_ref(r)?;
            ask(&format!("policy {}", r.desc))?;
            ctx.open(&mount)?.remove_policy(&r.desc)?;
            println!(
                "Policy {} deleted from filesystem \"{}\".",
                r.desc,
                mount.display()
            );
        }
        (None, None, Some(m)) => {
            let mount = mounts::mount_at(m)?.path;
            ask(&format!("all fscrypt metadata on \"{}\"", mount.display()))?;
            fscryptfs::protectors::setup::destroy(&mount)?;
            println!("All metadata on \"{}\" deleted.", mount.display());
        }
        _ => {
            return Err(CliError::usage(
                "give exactly one of --protector=MNT:ID, --policy=MNT:ID or MOUNTPOINT",
            ))
        }
    }
    Ok(())
}

fn change_passphrase(ctx: &Context, a: ChangePassphraseArgs) -> Result<(), CliError> {
    let mount = mount_of_ref(&a.protector)?;
    let meta = ctx.open(&mount)?;
    let mut p: ProtectorData = meta.read_protector(&a.protector.desc)?;
    let source = p.source_type()?;
    if !source.is_passphrase() {
        return Err(CliError::failure(format!(
            "protector {} does not use a passphrase",
            p.protector_descriptor
        )));
    }
    let description = describe_protector(&p);
    let old = SecretArgs {
        key: None,
        passphrase_file: a.old_file.clone(),
        extpass: a.old_extpass.clone(),
    };
    let new = SecretArgs {
        key: None,
        passphrase_file: a.new_file.clone(),
        extpass: a.new_extpass.clone(),
    };
    let old_secret = read_secret(source, &format!("old {description}"), &old, false)?;
    let key = actions::unlock_protector(&p, old_secret.as_ref())?;
    let secret = read_secret(source, &format!("new {description}"), &new, true)?;
    actions::rewrap_protector(&mut p, &key, secret.as_ref())?;
    meta.write_protector(&p, None)?;
    println!(
        "Passphrase for protector {} successfully changed.",
        p.protector_descriptor
    );
    Ok(())
}

fn add_protector(ctx: &Context, a: AddProtectorArgs) -> Result<(), CliError> {
    let policy_mount = mount_of_ref(&a.policy)?;
    let meta = ctx.open(&policy_mount)?;
    let mut policy: PolicyData = meta.read_policy(&a.policy.desc)?;
    let protector_mount = mount_of_ref(&a.protector)?;
    let pmeta = ctx.open(&protector_mount)?;
    let p = pmeta.read_protector(&a.protector.desc)?;
    if policy.slot(&p.protector_descriptor).is_some() {
        return Err(CliError::failure(format!(
            "policy {} is already protected by protector {}",
            policy.key_descriptor, p.protector_descriptor
        )));
    }
    eprintln!("WARNING: All files using this policy will be accessible with this protector!!");
    let pkey = unlock_protector(&p, &a.secret)?;
    let policy_key = unlock_policy(ctx, &meta, &policy, &a.unlock_with, &a.unlock_secret.into())?;
    if protector_mount != policy_mount
        && !meta.exists(tree::Kind::Protector, &p.protector_descriptor)
    {
        meta.write_link(
            &p.protector_descriptor,
            &tree::link_text(None, &protector_mount),
            None,
        )?;
    }
    actions::add_slot(&mut policy, &p, &pkey, &policy_key)?;
    meta.write_policy(&policy, None)?;
    println!(
        "Protector {} now protecting policy {}.",
        p.protector_descriptor, policy.key_descriptor
    );
    Ok(())
}

fn remove_protector(ctx: &Context, a: RemoveProtectorArgs) -> Result<(), CliError> {
    let mount = mount_of_ref(&a.policy)?;
    let meta = ctx.open(&mount)?;
    let mut policy = meta.read_policy(&a.policy.desc)?;
    let question = format!(
        "Stop protecting policy {} with protector {}?",
        policy.key_descriptor, a.protector.desc
    );
    if !a.force && !confirm(&question, false) {
        return Err(if interactive() {
            CliError::failure("not removed")
        } else {
            CliError::usage("refusing to remove a protector without --force")
        });
    }
    actions::remove_slot(&mut policy, &a.protector.desc)?;
    meta.write_policy(&policy, None)?;
    println!(
        "Protector {} no longer protecting policy {}.",
        a.protector.desc, policy.key_descriptor
    );
    Ok(())
}

fn hex_or_none(b: &[u8]) -> String {
    if b.is_empty() {
        "-".into()
    } else {
        hex::encode(b)
    }
}

fn dump(ctx: &Context, a: DumpArgs) -> Result<(), CliError> {
    match (&a.protector, &a.policy) {
        (Some(r), None) => {
            let p = ctx.open(&mount_of_ref(r)?)?.read_protector(&r.desc)?;
            println!("protector_descriptor: {}", p.protector_descriptor);
            println!("source: {}", p.source_type()?.tool_name());
            println!("name: {:?}", p.name);
            if let Some(c) = &p.costs {
                println!(
                    "costs: time {} memory {} KiB parallelism {}{}",
                    c.time,
                    c.memory,
                    c.parallelism,
                    if c.truncation_fixed {
                        " (truncation fixed)"
                    } else {
                        ""
                    }
                );
            }
            println!("salt: {}", hex_or_none(&p.salt));
            if p.source == SourceType::PamPassphrase as i32 {
                println!("uid: {}", p.uid);
            }
            let w = p.wrapped()?;
            println!(
                "wrapped_key: iv {} encrypted_key {} hmac {}",
                hex::encode(&w.iv),
                hex::encode(&w.encrypted_key),
                hex::encode(&w.hmac)
            );
        }
        (None, Some(r)) => {
            let p = ctx.open(&mount_of_ref(r)?)?.read_policy(&r.desc)?;
            println!("key_descriptor: {}", p.key_descriptor);
            println!("options: {}", super::status::options_line(&p)?);
            for s in &p.wrapped_policy_keys {
                if let Some(w) = &s.wrapped_key {
                    println!(
                        "wrapped_policy_key: protector {} iv {} encrypted_key {} hmac {}",
                        s.protector_descriptor,
                        hex::encode(&w.iv),
                        hex::encode(&w.encrypted_key),
                        hex::encode(&w.hmac)
                    );
                }
            }
        }
        _ => {
            return Err(CliError::usage(
                "give exactly one of --protector=MNT:ID or --policy=MNT:ID",
            ))
        }
    }
    Ok(())
}
