//! `fscryptfs crypt`: encrypt or decrypt raw fscrypt data with explicit parameters.
//!
//! The interface is fstests' `fscrypt-crypt-util`, so the commands in `common/encrypt` work with
//! `fscryptfs crypt` in its place: stdin to stdout, one data unit at a time, the key derived as the
//! options say and the IV built as the kernel builds it. It exists for offline recovery and for
//! cross-checking implementations (ours, the kernel's, another one). All key and IV logic is the
//! layer's; this file only maps options onto it.

use std::io::{Read, Write};

use clap::Args;
use fscrypt::hkdf::{HkdfContext, HkdfKey};
use fscrypt::keysetup::{self, siphash_u64, split_siphash_key, IvLayout};
use fscrypt::keysetup_v1;
use fscrypt::secret::SecretBytes;
use fscrypt::{cipher::PreparedKey, EncryptionMode};

use super::error::CliError;

/// Options of `fscryptfs crypt` (fscrypt-crypt-util's names).
#[derive(Args, Debug)]
#[command(
    about = "Encrypt or decrypt raw fscrypt data from stdin to stdout (fstests' fscrypt-crypt-util interface)",
    long_about = "Encrypt (or with --decrypt, decrypt) stdin to stdout, one data unit at a time, exactly as \
the kernel's fscrypt would. CIPHER is one of AES-256-XTS, AES-256-CTS-CBC, AES-128-CBC-ESSIV, \
AES-128-CTS-CBC, Adiantum, AES-256-HCTR2, SM4-XTS, SM4-CTS-CBC. MASTER_KEY_HEX is the master key in hex.\n\n\
Exit status: 0 on success, 1 on a crypto or I/O failure, 2 on bad arguments."
)]
pub struct CryptArgs {
    /// Decrypt instead of encrypt.
    #[arg(long)]
    decrypt: bool,
    /// Print the v2 key identifier of MASTER_KEY_HEX instead of encrypting.
    #[arg(long)]
    dump_key_identifier: bool,
    /// Data unit size in bytes (a power of two; names use 255 with --padding).
    #[arg(long, default_value_t = 4096)]
    data_unit_size: usize,
    /// Index of the first data unit.
    #[arg(long, default_value_t = 0)]
    data_unit_index: u64,
    /// Pad a short final unit to a multiple of P (at least 16 bytes) instead of the whole unit.
    #[arg(long)]
    padding: Option<usize>,
    /// Key derivation: none (the master key is the key), AES-128-ECB (v1), HKDF-SHA512 (v2).
    #[arg(long, default_value = "none")]
    kdf: String,
    /// Mode number used in the HKDF info of DIRECT_KEY and IV_INO_LBLK keys (default: CIPHER's).
    #[arg(long)]
    mode_num: Option<u8>,
    /// The file's 16-byte nonce, 32 hex digits.
    #[arg(long)]
    file_nonce: Option<String>,
    /// The inode number (IV_INO_LBLK_64 and IV_INO_LBLK_32).
    #[arg(long)]
    inode_number: Option<u64>,
    /// The filesystem UUID, 32 hex digits (IV_INO_LBLK keys).
    #[arg(long)]
    fs_uuid: Option<String>,
    /// DIRECT_KEY: a per-mode key, the nonce in the IV.
    #[arg(long)]
    direct_key: bool,
    /// IV_INO_LBLK_64 IVs and key.
    #[arg(long)]
    iv_ino_lblk_64: bool,
    /// IV_INO_LBLK_32 IVs and key.
    #[arg(long)]
    iv_ino_lblk_32: bool,
    /// Per-extent key (HKDF context 9) from this 16-byte extent nonce, 32 hex digits; the data-unit
    /// index then counts from the extent's start.
    #[arg(long)]
    extent_nonce: Option<String>,
    /// CIPHER then MASTER_KEY_HEX (only MASTER_KEY_HEX with --dump-key-identifier).
    #[arg(value_name = "CIPHER MASTER_KEY_HEX", num_args = 1..=2, required = true)]
    positional: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kdf {
    None,
    Aes128Ecb,
    HkdfSha512,
}

fn parse_kdf(s: &str) -> Result<Kdf, CliError> {
    match s {
        "none" => Ok(Kdf::None),
        "AES-128-ECB" => Ok(Kdf::Aes128Ecb),
        "HKDF-SHA512" => Ok(Kdf::HkdfSha512),
        _ => Err(CliError::usage(format!(
            "unknown KDF {s:?} (none, AES-128-ECB or HKDF-SHA512)"
        ))),
    }
}

fn parse_hex(what: &str, s: &str) -> Result<Vec<u8>, CliError> {
    hex::decode(s).map_err(|_| CliError::usage(format!("{what} is not valid hex")))
}

fn parse_hex16(what: &str, s: Option<&str>) -> Result<Option<[u8; 16]>, CliError> {
    let Some(s) = s else { return Ok(None) };
    let v = parse_hex(what, s)?;
    <[u8; 16]>::try_from(v.as_slice())
        .map(Some)
        .map_err(|_| CliError::usage(format!("{what} must be 32 hex digits")))
}

fn require<T>(v: Option<T>, what: &str) -> Result<T, CliError> {
    v.ok_or_else(|| CliError::usage(format!("{what} is required with these options")))
}

/// Runs `fscryptfs crypt`.
pub fn run(args: CryptArgs) -> Result<(), CliError> {
    let kdf = parse_kdf(&args.kdf)?;
    if args.dump_key_identifier {
        let [key_hex] = args.positional.as_slice() else {
            return Err(CliError::usage(
                "--dump-key-identifier takes exactly one argument, MASTER_KEY_HEX",
            ));
        };
        if kdf == Kdf::Aes128Ecb {
            return Err(CliError::usage(
                "--dump-key-identifier needs --kdf=HKDF-SHA512",
            ));
        }
        let raw = SecretBytes::copy_from(&parse_hex("MASTER_KEY_HEX", key_hex)?);
        let id = keysetup::key_identifier(raw.as_ref()).map_err(CliError::usage_from)?;
        println!("{}", hex::encode(id));
        return Ok(());
    }
    let [cipher_name, key_hex] = args.positional.as_slice() else {
        return Err(CliError::usage("expected CIPHER MASTER_KEY_HEX"));
    };
    let mode = parse_cipher(cipher_name)?;
    let master = SecretBytes::copy_from(&parse_hex("MASTER_KEY_HEX", key_hex)?);
    let du = args.data_unit_size;
    if !(16..=65536).contains(&du) {
        return Err(CliError::usage(format!("invalid --data-unit-size {du}")));
    }
    if let Some(p) = args.padding {
        if !p.is_power_of_two() || p > du {
            return Err(CliError::usage(format!("invalid --padding {p}")));
        }
    }
    let flags = [
        args.direct_key,
        args.iv_ino_lblk_64,
        args.iv_ino_lblk_32,
        args.extent_nonce.is_some(),
    ];
    if flags.iter().filter(|f| **f).count() > 1 {
        return Err(CliError::usage(
            "--direct-key, --iv-ino-lblk-64, --iv-ino-lblk-32 and --extent-nonce are mutually exclusive",
        ));
    }
    let file_nonce = parse_hex16("--file-nonce", args.file_nonce.as_deref())?;
    let fs_uuid = parse_hex16("--fs-uuid", args.fs_uuid.as_deref())?;
    let extent_nonce = parse_hex16("--extent-nonce", args.extent_nonce.as_deref())?;
    let mode_num = args.mode_num.unwrap_or(mode.number());

    let hkdf = (kdf == Kdf::HkdfSha512).then(|| HkdfKey::extract(master.as_ref()));
    let key_bytes: SecretBytes = match kdf {
        Kdf::None => {
            if master.len() < mode.key_size() {
                return Err(CliError::usage(format!(
                    "master key is {} bytes; {mode} needs {}",
                    master.len(),
                    mode.key_size()
                )));
            }
            SecretBytes::copy_from(&master.as_ref()[..mode.key_size()])
        }
        Kdf::Aes128Ecb => {
            if args.direct_key
                || args.iv_ino_lblk_64
                || args.iv_ino_lblk_32
                || extent_nonce.is_some()
            {
                return Err(CliError::usage(
                    "--kdf=AES-128-ECB is v1's per-file KDF; use --kdf=none with --direct-key",
                ));
            }
            let nonce = require(file_nonce, "--file-nonce")?;
            keysetup_v1::derive_v1_file_key(master.as_ref(), &nonce, mode.key_size())
                .map_err(CliError::usage_from)?
        }
        Kdf::HkdfSha512 => {
            let hkdf = hkdf.as_ref().ok_or_else(|| CliError::usage("HKDF"))?;
            let (context, info): (HkdfContext, Vec<u8>) = if args.direct_key {
                (HkdfContext::DirectKey, vec![mode_num])
            } else if args.iv_ino_lblk_64 || args.iv_ino_lblk_32 {
                let mut info = vec![mode_num];
                info.extend_from_slice(&require(fs_uuid, "--fs-uuid")?);
                let ctx = if args.iv_ino_lblk_64 {
                    HkdfContext::IvInoLblk64Key
                } else {
                    HkdfContext::IvInoLblk32Key
                };
                (ctx, info)
            } else if let Some(n) = extent_nonce {
                (HkdfContext::PerExtentEncKey, n.to_vec())
            } else {
                (
                    HkdfContext::PerFileEncKey,
                    require(file_nonce, "--file-nonce")?.to_vec(),
                )
            };
            hkdf.derive(context, &info, mode.key_size())
                .map_err(CliError::usage_from)?
        }
    };

    let layout = if args.direct_key {
        IvLayout::DirectKey {
            nonce: require(file_nonce, "--file-nonce")?,
        }
    } else if args.iv_ino_lblk_64 {
        let ino = require(args.inode_number, "--inode-number")?;
        IvLayout::InoLblk64 {
            ino: u32::try_from(ino).map_err(|_| {
                CliError::usage("--inode-number must fit in 32 bits with --iv-ino-lblk-64")
            })?,
        }
    } else if args.iv_ino_lblk_32 {
        let ino = require(args.inode_number, "--inode-number")?;
        let hkdf = hkdf
            .as_ref()
            .ok_or_else(|| CliError::usage("--iv-ino-lblk-32 needs --kdf=HKDF-SHA512"))?;
        let k = hkdf
            .derive(HkdfContext::InodeHashKey, &[], 16)
            .map_err(CliError::usage_from)?;
        let (k0, k1) = split_siphash_key(k.as_ref());
        IvLayout::InoLblk32 {
            hashed_ino: siphash_u64(k0, k1, ino) as u32,
        }
    } else {
        IvLayout::Default
    };

    let key = PreparedKey::new(mode, key_bytes.as_ref()).map_err(CliError::usage_from)?;
    crypt_stream(&key, &layout, &args, du)
}

/// The cipher names fscrypt-crypt-util takes (plus SM4's).
fn parse_cipher(name: &str) -> Result<EncryptionMode, CliError> {
    let mode = match name {
        "AES-256-XTS" => EncryptionMode::Aes256Xts,
        "AES-256-CTS-CBC" => EncryptionMode::Aes256Cts,
        "AES-128-CBC-ESSIV" => EncryptionMode::Aes128CbcEssiv,
        "AES-128-CTS-CBC" => EncryptionMode::Aes128Cts,
        "Adiantum" => EncryptionMode::Adiantum,
        "AES-256-HCTR2" => EncryptionMode::Aes256Hctr2,
        "SM4-XTS" => EncryptionMode::Sm4Xts,
        "SM4-CTS-CBC" => EncryptionMode::Sm4Cts,
        _ => {
            return Err(CliError::usage(format!(
                "unknown cipher {name:?}; one of AES-256-XTS AES-256-CTS-CBC AES-128-CBC-ESSIV \
                 AES-128-CTS-CBC Adiantum AES-256-HCTR2 SM4-XTS SM4-CTS-CBC"
            )))
        }
    };
    Ok(mode)
}

/// Reads stdin one data unit at a time and writes each unit's encryption (or decryption). A short
/// final unit is zero-padded to the whole unit, or with --padding to
/// min(round_up(max(len, 16), padding), unit), as fscrypt-crypt-util does.
fn crypt_stream(
    key: &PreparedKey,
    layout: &IvLayout,
    args: &CryptArgs,
    du: usize,
) -> Result<(), CliError> {
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut buf = vec![0u8; du];
    let mut index = args.data_unit_index;
    loop {
        let n = read_full(&mut stdin, &mut buf).map_err(|e| CliError::io("reading stdin", e))?;
        if n == 0 {
            break;
        }
        let len = match args.padding {
            Some(p) => (n.max(16).div_ceil(p) * p).min(du),
            None => du,
        };
        buf[n..len].fill(0);
        let iv = layout.iv(index).map_err(CliError::failure)?;
        let unit = &mut buf[..len];
        if args.decrypt {
            key.decrypt(&iv, unit).map_err(CliError::failure)?;
        } else {
            key.encrypt(&iv, unit).map_err(CliError::failure)?;
        }
        stdout
            .write_all(unit)
            .map_err(|e| CliError::io("writing stdout", e))?;
        index = index.wrapping_add(1);
        if n < du {
            break;
        }
    }
    stdout
        .flush()
        .map_err(|e| CliError::io("writing stdout", e))
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
