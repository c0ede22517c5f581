//! The policy commands, fscryptctl-style: `set-policy`, `get-policy`, `get-nonce` (with
//! fscryptctl's underscore spellings as aliases), and fscryptctl's rendering of a policy.
//!
//! `set-policy` builds the policy with the layer's types (`fscrypt::policy`) from the options and
//! leaves judging it to the target; the ioctls are [`super::ioctl`]'s.
//!
//! Exit status: 0 on success, 1 when the operation failed (the target's errno), 2 on bad arguments
//! (a malformed identifier, mode, padding or data unit size).

use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use fscrypt::policy::{KeySpec, Policy, PolicyV1, PolicyV2, POLICY_V1_VERSION, POLICY_V2_VERSION};
use fscrypt::EncryptionMode;

use super::error::CliError;
use super::ioctl::{self, failed, failed_at, open_target};
use super::keys::parse_key_id;

const SET_POLICY_HELP: &str =
    "Set an encryption policy on the empty directory DIR. ID is a v2 key \
identifier (32 hex digits) or a v1 key descriptor (16 hex digits, which makes a v1 policy). \
Defaults: AES-256-XTS contents, AES-256-CTS filenames, 32 bytes of filename padding, the \
filesystem's block size as data unit size. Whether the policy is valid is for the filesystem to \
say (errors are its errno). Setting the policy a directory already has succeeds.\n\n\
Exit status: 0 on success, 1 if the operation failed, 2 on bad arguments.";

const GET_POLICY_HELP: &str = "Print the encryption policy of the file or directory PATH, in \
fscryptctl's format: `Encryption policy for PATH:` followed by tab-indented lines `Policy version:`, \
`Master key identifier:` (v2) or `Master key descriptor:` (v1), `Contents encryption mode:`, \
`Filenames encryption mode:`, `Flags:` and (v2) `Data unit size:`.\n\n\
Exit status: 0 on success, 1 if the operation failed, 2 on bad arguments.";

const GET_NONCE_HELP: &str =
    "Print the 16-byte nonce of the encrypted file or directory PATH as 32 hex \
digits. No key is needed.\n\n\
Exit status: 0 on success, 1 if the operation failed, 2 on bad arguments.";

/// The policy subcommands.
#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Set an encryption policy on an empty directory.
    #[command(visible_alias = "set_policy", long_about = SET_POLICY_HELP)]
    SetPolicy(SetPolicyArgs),
    /// Print the encryption policy of a file or directory.
    #[command(visible_alias = "get_policy", long_about = GET_POLICY_HELP)]
    GetPolicy(GetPolicyArgs),
    /// Print the 16-byte nonce of an encrypted file or directory in hex.
    #[command(visible_alias = "get_nonce", long_about = GET_NONCE_HELP)]
    GetNonce(GetNonceArgs),
}

/// Options of `fscryptfs set-policy`.
#[derive(Args, Debug)]
pub struct SetPolicyArgs {
    /// Contents encryption mode (AES-256-XTS, AES-128-CBC, SM4-XTS, Adiantum).
    #[arg(long, value_name = "MODE", default_value = "AES-256-XTS")]
    contents: String,
    /// Filenames encryption mode (AES-256-CTS, AES-128-CTS, SM4-CTS, Adiantum, AES-256-HCTR2).
    #[arg(long, value_name = "MODE", default_value = "AES-256-CTS")]
    filenames: String,
    /// Bytes of zero padding for filenames.
    #[arg(long, value_name = "BYTES", default_value = "32",
          value_parser = ["4", "8", "16", "32"])]
    padding: String,
    /// DIRECT_KEY flag (optimizes for Adiantum).
    #[arg(long)]
    direct_key: bool,
    /// IV_INO_LBLK_64 flag (for UFS inline crypto hardware).
    #[arg(long)]
    iv_ino_lblk_64: bool,
    /// IV_INO_LBLK_32 flag (for eMMC inline crypto hardware; not recommended).
    #[arg(long)]
    iv_ino_lblk_32: bool,
    /// Data unit size in bytes, a power of two (default: the filesystem block size; v2 only).
    #[arg(long, value_name = "BYTES")]
    data_unit_size: Option<String>,
    /// Make a v1 policy (implied by a 16-hex-digit ID).
    #[arg(long)]
    v1: bool,
    /// The key: 32 hex digits (v2 identifier) or 16 hex digits (v1 descriptor).
    #[arg(value_name = "ID")]
    id: String,
    /// The (empty) directory.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

/// Options of `fscryptfs get-policy`.
#[derive(Args, Debug)]
pub struct GetPolicyArgs {
    /// The file or directory.
    #[arg(value_name = "PATH")]
    path: PathBuf,
}

/// Options of `fscryptfs get-nonce`.
#[derive(Args, Debug)]
pub struct GetNonceArgs {
    /// The file or directory.
    #[arg(value_name = "PATH")]
    path: PathBuf,
}

/// Runs one of the policy subcommands.
pub fn run(cmd: PolicyCommand) -> Result<(), CliError> {
    match cmd {
        PolicyCommand::SetPolicy(a) => set_policy(a),
        PolicyCommand::GetPolicy(a) => get_policy(a),
        PolicyCommand::GetNonce(a) => get_nonce(a),
    }
}

/// The policy flags byte from the options.
fn policy_flags(args: &SetPolicyArgs) -> u8 {
    use fscrypt::policy::flags;
    let mut f = match args.padding.as_str() {
        "4" => flags::PAD_4,
        "8" => flags::PAD_8,
        "16" => flags::PAD_16,
        _ => flags::PAD_32,
    };
    if args.direct_key {
        f |= flags::DIRECT_KEY;
    }
    if args.iv_ino_lblk_64 {
        f |= flags::IV_INO_LBLK_64;
    }
    if args.iv_ino_lblk_32 {
        f |= flags::IV_INO_LBLK_32;
    }
    f
}

fn parse_mode(what: &str, s: &str) -> Result<EncryptionMode, CliError> {
    EncryptionMode::parse(s).map_err(|_| CliError::usage(format!("invalid {what} mode: {s}")))
}

/// `--data-unit-size`: a power of two greater than 1, as fscryptctl accepts; returns its log2.
fn parse_data_unit_size(s: &str) -> Result<u8, CliError> {
    match s.parse::<u64>() {
        Ok(n) if n > 1 && n.is_power_of_two() => Ok(n.trailing_zeros() as u8),
        _ => Err(CliError::usage(format!("invalid data unit size: {s}"))),
    }
}

/// The policy the options describe. Not validated: whether the target accepts it (modes, flags,
/// data unit size) is for the target to say, with its errno.
fn build_policy(args: &SetPolicyArgs) -> Result<Policy, CliError> {
    let spec = parse_key_id(&args.id)?;
    let contents_mode = parse_mode("contents", &args.contents)?;
    let filenames_mode = parse_mode("filenames", &args.filenames)?;
    let log2_du = args
        .data_unit_size
        .as_deref()
        .map(parse_data_unit_size)
        .transpose()?;
    let flags = policy_flags(args);
    match spec {
        KeySpec::Descriptor(master_key_descriptor) => {
            if log2_du.is_some() {
                return Err(CliError::usage(
                    "--data-unit-size needs a v2 policy (a 32-hex-digit key identifier)",
                ));
            }
            Ok(Policy::V1(PolicyV1 {
                contents_mode,
                filenames_mode,
                flags,
                master_key_descriptor,
            }))
        }
        KeySpec::Identifier(_) if args.v1 => Err(CliError::usage(format!(
            "invalid key descriptor: {} (a v1 policy needs 16 hex digits)",
            args.id
        ))),
        KeySpec::Identifier(master_key_identifier) => Ok(Policy::V2(PolicyV2 {
            contents_mode,
            filenames_mode,
            flags,
            log2_data_unit_size: log2_du.unwrap_or(0),
            master_key_identifier,
        })),
    }
}

fn set_policy(args: SetPolicyArgs) -> Result<(), CliError> {
    let policy = build_policy(&args)?.to_bytes();
    let dir = open_target(&args.dir, true)?;
    let what = format!("failed to set encryption policy on {}", args.dir.display());
    if ioctl::is_read_only(dir.as_fd()).map_err(|e| failed(&what, &e))? {
        return Err(failed(&what, &io::Error::from_raw_os_error(libc::EROFS)));
    }
    ioctl::set_policy(dir.as_fd(), &policy).map_err(|e| failed_at(&args.dir, &what, &e))
}

fn mode_name(n: u8) -> String {
    match EncryptionMode::from_number(n) {
        Some(m) => m.friendly_name().to_string(),
        None => format!("Unknown ({n})"),
    }
}

fn flags_text(flags: u8) -> String {
    use fscrypt::policy::flags as f;
    let mut s = format!("PAD_{}", 4u32 << (flags & f::PAD_MASK));
    let mut rest = flags & !f::PAD_MASK;
    for (bit, name) in [
        (f::DIRECT_KEY, "DIRECT_KEY"),
        (f::IV_INO_LBLK_64, "IV_INO_LBLK_64"),
        (f::IV_INO_LBLK_32, "IV_INO_LBLK_32"),
    ] {
        if rest & bit != 0 {
            s.push_str(", ");
            s.push_str(name);
            rest &= !bit;
        }
    }
    if rest != 0 {
        s.push_str(&format!(", Unknown ({rest:02x})"));
    }
    s
}

/// fscryptctl's rendering of a policy (without the header line).
fn policy_text(p: &[u8]) -> String {
    let mut out = String::new();
    let Some(&version) = p.first() else {
        return out;
    };
    let shown = if version == POLICY_V1_VERSION {
        1
    } else {
        version
    };
    out.push_str(&format!("\tPolicy version: {shown}\n"));
    let body = |key_line: String, out: &mut String| {
        out.push_str(&key_line);
        out.push_str(&format!(
            "\tContents encryption mode: {}\n",
            mode_name(p[1])
        ));
        out.push_str(&format!(
            "\tFilenames encryption mode: {}\n",
            mode_name(p[2])
        ));
        out.push_str(&format!("\tFlags: {}\n", flags_text(p[3])));
    };
    match (version, p.len()) {
        (POLICY_V1_VERSION, 12) => body(
            format!("\tMaster key descriptor: {}\n", hex::encode(&p[4..12])),
            &mut out,
        ),
        (POLICY_V2_VERSION, 24) => {
            body(
                format!("\tMaster key identifier: {}\n", hex::encode(&p[8..24])),
                &mut out,
            );
            if p[4] != 0 {
                out.push_str(&format!("\tData unit size: {}\n", 1u64 << p[4].min(63)));
            } else {
                out.push_str("\tData unit size: default\n");
            }
        }
        _ => {}
    }
    out
}

fn get_policy(args: GetPolicyArgs) -> Result<(), CliError> {
    let file = open_target(&args.path, false)?;
    let policy = ioctl::get_policy(file.as_fd()).map_err(|e| {
        failed_at(
            &args.path,
            format_args!("error getting policy for {}", args.path.display()),
            &e,
        )
    })?;
    print!(
        "Encryption policy for {}:\n{}",
        args.path.display(),
        policy_text(&policy)
    );
    Ok(())
}

fn get_nonce(args: GetNonceArgs) -> Result<(), CliError> {
    let file = open_target(&args.path, false)?;
    let nonce = ioctl::get_nonce(file.as_fd()).map_err(|e| {
        failed_at(
            &args.path,
            format_args!("error getting nonce for {}", args.path.display()),
            &e,
        )
    })?;
    println!("{}", hex::encode(nonce));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_literal16() -> [u8; 16] {
        core::array::from_fn(|i| (i as u8) * 0x11)
    }

    fn set_args(id: &str, extra: &[&str]) -> Result<SetPolicyArgs, clap::Error> {
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            a: SetPolicyArgs,
        }
        let mut argv = vec!["t"];
        argv.extend_from_slice(extra);
        argv.extend_from_slice(&[id, "/d"]);
        <T as clap::Parser>::try_parse_from(argv).map(|t| t.a)
    }

    #[test]
    fn policies_build_to_the_kernel_bytes() {
        let id = "00112233445566778899aabbccddeeff";
        let p =
            build_policy(&set_args(id, &["--data-unit-size", "4096", "--iv-ino-lblk-64"]).unwrap())
                .unwrap()
                .to_bytes();
        let mut want = vec![2u8, 1, 4, 0x0b, 12, 0, 0, 0];
        want.extend_from_slice(&hex_literal16());
        assert_eq!(p, want);
        let p = build_policy(
            &set_args(
                "0102030405060708",
                &[
                    "--padding",
                    "4",
                    "--contents",
                    "Adiantum",
                    "--filenames",
                    "Adiantum",
                    "--direct-key",
                ],
            )
            .unwrap(),
        )
        .unwrap()
        .to_bytes();
        assert_eq!(p, [0u8, 9, 9, 0x04, 1, 2, 3, 4, 5, 6, 7, 8]);
        for bad in [
            set_args("0102030405060708", &["--data-unit-size", "4096"]),
            set_args(id, &["--v1"]),
            set_args(id, &["--data-unit-size", "3"]),
            set_args(id, &["--contents", "ROT13"]),
        ] {
            assert_eq!(build_policy(&bad.unwrap()).unwrap_err().exit_code, 2);
        }
    }

    #[test]
    fn policies_render_as_fscryptctl() {
        let mut v2 = [0u8; 24];
        v2[0] = 2;
        v2[1] = 1;
        v2[2] = 4;
        v2[3] = 0x0b;
        v2[4] = 12;
        v2[8..24].copy_from_slice(&hex_literal16());
        assert_eq!(
            policy_text(&v2),
            "\tPolicy version: 2\n\
             \tMaster key identifier: 00112233445566778899aabbccddeeff\n\
             \tContents encryption mode: AES-256-XTS\n\
             \tFilenames encryption mode: AES-256-CTS\n\
             \tFlags: PAD_32, IV_INO_LBLK_64\n\
             \tData unit size: 4096\n"
        );
        let v1 = [0u8, 9, 9, 0x24, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(
            policy_text(&v1),
            "\tPolicy version: 1\n\
             \tMaster key descriptor: 0102030405060708\n\
             \tContents encryption mode: Adiantum\n\
             \tFilenames encryption mode: Adiantum\n\
             \tFlags: PAD_4, DIRECT_KEY, Unknown (20)\n"
        );
    }
}
