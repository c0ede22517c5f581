//! `status [PATH]`: the `fscrypt` tool's three views — every filesystem that can encrypt (no
//! PATH), one filesystem's protectors and policies (PATH is a mount point), or one encrypted
//! directory (its policy, options, whether it is unlocked, its protectors).

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use clap::Args;
use fscryptfs::protectors::proto::{mode_name, PolicyData};
use fscryptfs::protectors::tree::{self, MetadataDir};
use fscryptfs::protectors::{actions, mounts};

use super::{describe_protector, key_present, policy_of_dir, print_table, unlocked_word, Context};
use crate::cli::error::CliError;
use crate::cli::ioctl::{self, open_target};

/// Options of `fscryptfs status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// A mount point or an encrypted directory; without it, every filesystem.
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
}

/// Filesystem types the tool will set up, plus our own FUSE mounts.
const ENCRYPTING_TYPES: &[&str] = &["ext4", "f2fs", "ubifs", "btrfs", "ceph", "xfs", "lustre"];

/// Runs `status`.
pub fn run(args: StatusArgs) -> Result<(), CliError> {
    let ctx = Context::load()?;
    match &args.path {
        None => global(&ctx),
        Some(p) => {
            let m = mounts::mount_of(p)?;
            let canonical =
                std::fs::canonicalize(p).map_err(|e| CliError::io(&p.to_string_lossy(), e))?;
            if canonical == m.path {
                filesystem(&ctx, &m)
            } else {
                directory(&ctx, p)
            }
        }
    }
}

/// `supported`, `not enabled` or `not supported`, by asking the filesystem for its root's policy.
fn encryption_support(m: &mounts::Mount) -> &'static str {
    let Ok(f) = open_target(&m.path, true) else {
        return "not supported";
    };
    match ioctl::get_policy(f.as_fd()) {
        Ok(_) => "supported",
        Err(e) => match e.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOKEY) | Some(libc::EINVAL) => "supported",
            Some(libc::EOPNOTSUPP) => "not enabled",
            _ => "not supported",
        },
    }
}

fn global(ctx: &Context) -> Result<(), CliError> {
    let mut rows = vec![vec![
        "MOUNTPOINT".to_string(),
        "DEVICE".into(),
        "FILESYSTEM".into(),
        "ENCRYPTION".into(),
        "FSCRYPT".into(),
    ]];
    let (mut supporting, mut with_meta) = (0, 0);
    for m in mounts::all_mounts()? {
        if !ENCRYPTING_TYPES.contains(&m.fs_type.as_str()) && !m.is_fscryptfs() {
            continue;
        }
        let support = encryption_support(&m);
        let has_meta = MetadataDir::open(&m.path, ctx.trust).is_ok();
        supporting += usize::from(support == "supported");
        with_meta += usize::from(has_meta);
        rows.push(vec![
            m.path.display().to_string(),
            m.source.clone(),
            fs_name(&m),
            support.to_string(),
            if has_meta { "Yes" } else { "No" }.to_string(),
        ]);
    }
    println!("filesystems supporting encryption: {supporting}");
    println!("filesystems with fscrypt metadata: {with_meta}");
    println!();
    print_table(&rows);
    Ok(())
}

/// The filesystem's name in the tables: `fscryptfs` for ours.
fn fs_name(m: &mounts::Mount) -> String {
    if m.is_fscryptfs() {
        "fscryptfs".into()
    } else {
        m.fs_type.clone()
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The `PROTECTOR LINKED DESCRIPTION` rows for `descs`, as seen from `meta`.
fn protector_rows(ctx: &Context, meta: &MetadataDir, descs: &[String]) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "PROTECTOR".to_string(),
        "LINKED".into(),
        "DESCRIPTION".into(),
    ]];
    for d in descs {
        let (linked, what) = match ctx.find_protector(meta, d) {
            Ok((p, link)) => (
                link.map(|m| format!("Yes ({})", m.display()))
                    .unwrap_or_else(|| "No".into()),
                describe_protector(&p),
            ),
            Err(e) => ("?".into(), format!("[{}]", e.message)),
        };
        rows.push(vec![d.clone(), linked, what]);
    }
    rows
}

fn filesystem(ctx: &Context, m: &mounts::Mount) -> Result<(), CliError> {
    let meta = ctx.open(&m.path)?;
    let protectors = meta.list(tree::Kind::Protector)?;
    let policies = meta.list(tree::Kind::Policy)?;
    println!(
        "{} filesystem \"{}\" has {} and {}.",
        fs_name(m),
        m.path.display(),
        plural(protectors.len(), "protector", "protectors"),
        plural(policies.len(), "policy", "policies")
    );
    if meta_all_users(&m.path) {
        println!("All users can create fscrypt metadata on this filesystem.");
    } else {
        println!("Only root can create fscrypt metadata on this filesystem.");
    }
    if !protectors.is_empty() {
        println!();
        print_table(&protector_rows(ctx, &meta, &protectors));
    }
    if !policies.is_empty() {
        println!();
        let mut rows = vec![vec![
            "POLICY".to_string(),
            "UNLOCKED".into(),
            "PROTECTORS".into(),
        ]];
        for d in &policies {
            match meta.read_policy(d) {
                Ok(p) => rows.push(vec![
                    d.clone(),
                    unlocked_word(key_present(&m.path, &p).map(|s| s.0).unwrap_or(0)).into(),
                    slots(&p).join(", "),
                ]),
                Err(e) => rows.push(vec![d.clone(), "?".into(), format!("[{e}]")]),
            }
        }
        print_table(&rows);
    }
    Ok(())
}

fn meta_all_users(mount: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(mount.join(tree::FSCRYPT_DIR).join(tree::POLICIES))
        .map(|m| m.mode() & 0o1777 == 0o1777)
        .unwrap_or(false)
}

fn slots(p: &PolicyData) -> Vec<String> {
    p.wrapped_policy_keys
        .iter()
        .map(|s| s.protector_descriptor.clone())
        .collect()
}

/// `padding:32 contents:AES_256_XTS filenames:AES_256_CTS policy_version:2`.
pub fn options_line(p: &PolicyData) -> Result<String, CliError> {
    let o = p.opts()?;
    Ok(format!(
        "padding:{} contents:{} filenames:{} policy_version:{}",
        o.padding,
        mode_name(o.contents),
        mode_name(o.filenames),
        o.version()
    ))
}

fn directory(ctx: &Context, dir: &Path) -> Result<(), CliError> {
    let (meta, policy, _) = policy_of_dir(ctx, dir)?;
    let (status, _) = key_present(dir, &policy)?;
    println!("\"{}\" is encrypted with fscrypt.", dir.display());
    println!();
    println!("Policy:   {}", policy.key_descriptor);
    println!("Options:  {}", options_line(&policy)?);
    println!("Unlocked: {}", unlocked_word(status));
    println!();
    let descs = slots(&policy);
    println!(
        "Protected with {}:",
        plural(descs.len(), "protector", "protectors")
    );
    print_table(&protector_rows(ctx, &meta, &descs));
    let _ = actions::key_spec(&policy)?;
    Ok(())
}
