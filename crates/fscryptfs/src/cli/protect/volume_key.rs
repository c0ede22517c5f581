//! The volume encrypted from its root (`init --encrypt`, then `mount` asking for the passphrase):
//! what a gocryptfs user expects. The root directory's metadata carries an fscrypt context (a v2
//! policy), so every name and every byte the mount shows is encrypted, the top level included.
//! The policy and its protector are records in the `fscrypt` tool's format, kept in the backing
//! directory under `.fscryptfs.fscrypt/{policies,protectors}` (a reserved name the daemon never
//! shows) because a tree inside the mount would itself be encrypted. `mount` unwraps the policy
//! key with the passphrase (from a prompt, stdin, `-o passfile=` or `-o extpass=`) before it
//! mounts, so a wrong passphrase fails at once (exit 12), and adds the key once the mount is live.

use std::path::{Path, PathBuf};

use fscrypt::context::Context as FsContext;
use fscrypt::secret::SecretBytes;
use fscryptfs::protectors::actions::{self, NewProtector};
use fscryptfs::protectors::proto::{EncryptionOptions, PolicyData, SourceType};
use fscryptfs::protectors::tree::{self, MetadataDir, SetupMode};
use fscryptfs::store::config::{CONFIG_NAME, ROOT_INO};
use fscryptfs::store::meta::DirMeta;

use super::encrypt::unlock_policy;
use super::{read_secret, Context, SecretArgs};
use crate::cli::error::CliError;

/// The name of the volume's own metadata tree in its backing directory.
pub const VOLUME_TREE: &str = fscryptfs::store::config::VOLUME_TREE_NAME;

/// Whether `backing` is a volume encrypted from its root.
pub fn is_encrypted_volume(backing: &Path) -> bool {
    // Whatever is at the name (not followed): a planted symlink is refused when it is opened,
    // never taken for a plain volume.
    backing.join(CONFIG_NAME).is_file()
        && std::fs::symlink_metadata(backing.join(VOLUME_TREE)).is_ok()
}

/// Opens the volume's metadata tree.
pub fn open_tree(ctx: &Context, backing: &Path) -> Result<MetadataDir, CliError> {
    Ok(MetadataDir::open_named(backing, VOLUME_TREE, ctx.trust)?)
}

/// After a plain `init` of `backing`: a protector (passphrase, or raw key with `--key`), a policy,
/// and the root encrypted with it.
pub fn init_encrypted(
    backing: &Path,
    name: &str,
    secret_args: &SecretArgs,
) -> Result<(), CliError> {
    let ctx = Context::load()?;
    let source = if secret_args.key.is_some() {
        SourceType::RawKey
    } else {
        SourceType::CustomPassphrase
    };
    let costs = if source.is_passphrase() {
        ctx.new_costs()?
    } else {
        Default::default()
    };
    let secret = read_secret(source, &format!("protector \"{name}\""), secret_args, true)?;
    let (protector, pkey) = actions::create_protector(
        &NewProtector {
            source,
            name,
            costs: &costs,
            uid: 0,
        },
        secret.as_ref(),
    )?;
    let options = EncryptionOptions::default_v2();
    let (policy, _key) = actions::create_policy(&options, &protector, &pkey)?;
    fscryptfs::protectors::setup::setup_named(backing, VOLUME_TREE, SetupMode::SingleUser)?;
    let meta = open_tree(&ctx, backing)?;
    meta.write_protector(&protector, None)?;
    meta.write_policy(&policy, None)?;
    let fs_ctx =
        FsContext::new_random(actions::kernel_policy(&policy)?).map_err(CliError::failure)?;
    let what = backing.display().to_string();
    let root = fscryptfs::store::io::open_backing_root(backing).map_err(CliError::failure)?;
    fscryptfs::store::meta::replace_dir_meta_at(
        &root,
        &DirMeta {
            ino: ROOT_INO,
            ctx: Some(fs_ctx),
        },
        &what,
    )
    .map_err(CliError::failure)?;
    println!(
        "Created \"{}\", encrypted from its root with protector {} (\"{name}\") and policy {}.",
        backing.display(),
        protector.protector_descriptor,
        policy.key_descriptor
    );
    println!(
        "Mount it with: fscryptfs mount {} MOUNTPOINT (it asks for the passphrase).",
        backing.display()
    );
    Ok(())
}

/// The policy key of an encrypted-root volume, unwrapped with the user's secret; `None` for a
/// volume in the fscrypt model.
pub fn unlock_for_mount(
    backing: &Path,
    secret_args: &SecretArgs,
) -> Result<Option<(PolicyData, SecretBytes)>, CliError> {
    if !is_encrypted_volume(backing) {
        return Ok(None);
    }
    let ctx = Context::load()?;
    let meta = open_tree(&ctx, backing)?;
    let policy = volume_policy(&meta)?;
    let key = unlock_policy(&ctx, &meta, &policy, &None, secret_args)?;
    Ok(Some((policy, key)))
}

/// The volume's one policy.
fn volume_policy(meta: &MetadataDir) -> Result<PolicyData, CliError> {
    let policies = meta.list(tree::Kind::Policy)?;
    match policies.as_slice() {
        [only] => Ok(meta.read_policy(only)?),
        _ => Err(CliError::failure(format!(
            "{}: an encrypted volume has exactly one policy, found {}",
            meta.path_of(tree::Kind::Policy, "").display(),
            policies.len()
        ))),
    }
}

/// Splits `passfile=`/`extpass=` out of `-o` option lists: the rest, and the secret flags.
pub fn split_secret_options(options: &[String]) -> Result<(Vec<String>, SecretArgs), CliError> {
    let mut secret = SecretArgs::default();
    let mut rest = Vec::new();
    for o in options {
        let mut keep = Vec::new();
        for item in o.split(',') {
            if let Some(p) = item.strip_prefix("passfile=") {
                secret.passphrase_file = Some(PathBuf::from(p));
            } else if let Some(c) = item.strip_prefix("extpass=") {
                secret.extpass = Some(c.to_string());
            } else if let Some(k) = item.strip_prefix("keyfile=") {
                secret.key = Some(PathBuf::from(k));
            } else {
                keep.push(item);
            }
        }
        if !keep.is_empty() {
            rest.push(keep.join(","));
        }
    }
    if secret.passphrase_file.is_some() && secret.extpass.is_some() {
        return Err(CliError::usage(
            "passfile= and extpass= cannot be used together",
        ));
    }
    Ok((rest, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_options_are_split_out() {
        let (rest, s) =
            split_secret_options(&["ro,passfile=/p".to_string(), "commit=3".to_string()]).unwrap();
        assert_eq!(rest, ["ro", "commit=3"]);
        assert_eq!(s.passphrase_file, Some(PathBuf::from("/p")));
        let (rest, s) = split_secret_options(&["extpass=cat /k".to_string()]).unwrap();
        assert!(rest.is_empty());
        assert_eq!(s.extpass.as_deref(), Some("cat /k"));
        assert!(split_secret_options(&["passfile=/p,extpass=x".to_string()]).is_err());
    }
}
