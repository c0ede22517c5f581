//! `fscryptfs inspect`'s printing of one inode and of the volume, and what `fscryptfs crypt`
//! (fstests' `fscrypt-crypt-util`) needs to reproduce its ciphertext: the cipher names and the
//! options for an inode's key ([`crypt_args`]). Also opens a per-extent file's log read-only for
//! the `extents` and `extent-data` subcommands ([`open_extent_file`]).

use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use fscrypt::context::Context;
use fscrypt::policy::{flags, Policy};
use fscrypt::EncryptionMode;

use crate::error::CommandError;
use crate::offline::objects::{Kind, Stored};
use crate::offline::volume::{Entry, Volume};
use crate::store::config::ContentsLayout;
use crate::store::config::ROOT_INO;
use crate::store::extent::ExtentFile;
use crate::store::meta::SymlinkTarget;
use crate::store::pending::PendingSize;

/// fscrypt-crypt-util's CIPHER name for a mode.
pub fn crypt_cipher_name(m: EncryptionMode) -> &'static str {
    match m {
        EncryptionMode::Aes256Xts => "AES-256-XTS",
        EncryptionMode::Aes256Cts => "AES-256-CTS-CBC",
        EncryptionMode::Aes128CbcEssiv => "AES-128-CBC-ESSIV",
        EncryptionMode::Aes128Cts => "AES-128-CTS-CBC",
        EncryptionMode::Adiantum => "Adiantum",
        EncryptionMode::Aes256Hctr2 => "AES-256-HCTR2",
        EncryptionMode::Sm4Xts => "SM4-XTS",
        EncryptionMode::Sm4Cts => "SM4-CTS-CBC",
    }
}

/// The `fscryptfs crypt` options (all but `--decrypt` and the master key) that en/decrypt this
/// inode's ciphertext with mode `mode`: `ino` is the inode whose key it is (the file for contents
/// and symlink targets, the directory for names).
pub fn crypt_args(ctx: &Context, mode: EncryptionMode, ino: u64, uuid: &[u8; 16]) -> Vec<String> {
    let p = ctx.policy();
    let nonce = hex::encode(ctx.nonce());
    let mut a = vec![crypt_cipher_name(mode).to_string()];
    match p {
        Policy::V1(_) if p.is_direct_key() => {
            a.push("--kdf=none".into());
            a.push("--direct-key".into());
            a.push(format!("--file-nonce={nonce}"));
        }
        Policy::V1(_) => {
            a.push("--kdf=AES-128-ECB".into());
            a.push(format!("--file-nonce={nonce}"));
        }
        Policy::V2(_) => {
            a.push("--kdf=HKDF-SHA512".into());
            let f = p.flags();
            if f & flags::DIRECT_KEY != 0 {
                a.push("--direct-key".into());
                a.push(format!("--file-nonce={nonce}"));
                a.push(format!("--mode-num={}", mode.number()));
            } else if f & (flags::IV_INO_LBLK_64 | flags::IV_INO_LBLK_32) != 0 {
                a.push(
                    if f & flags::IV_INO_LBLK_64 != 0 {
                        "--iv-ino-lblk-64"
                    } else {
                        "--iv-ino-lblk-32"
                    }
                    .into(),
                );
                a.push(format!("--inode-number={ino}"));
                a.push(format!("--fs-uuid={}", hex::encode(uuid)));
                a.push(format!("--mode-num={}", mode.number()));
            } else {
                a.push(format!("--file-nonce={nonce}"));
            }
        }
    }
    a
}

pub fn print_volume(vol: &Volume, out: &mut impl Write) -> io::Result<()> {
    let c = &vol.config;
    writeln!(out, "backing {}", vol.root.display())?;
    writeln!(out, "format {}", c.format)?;
    writeln!(out, "uuid {}", hex::encode(c.uuid))?;
    writeln!(out, "contents-layout {}", c.layout.name())?;
    writeln!(
        out,
        "removal {}",
        crate::store::config::removal_name(c.removal)
    )?;
    writeln!(out, "next-ino {}", c.next_ino)?;
    writeln!(out, "root-ino {ROOT_INO}")?;
    writeln!(out, "block-size {}", 1u32 << vol.fsp.block_bits)
}

pub fn print_inode(vol: &Volume, entries: &[Entry], out: &mut impl Write) -> io::Result<()> {
    for e in entries {
        writeln!(out, "path {}", e.path.as_os_str().as_bytes().escape_ascii())?;
    }
    let e = &entries[0];
    for x in entries {
        writeln!(out, "backing {}", x.backing.display())?;
    }
    let kind = e.stored.kind();
    writeln!(out, "kind {}", kind.name())?;
    match e.stored.ino() {
        Some(i) => writeln!(out, "ino {i}")?,
        None => writeln!(out, "ino - (special files have no stored inode number)")?,
    }
    if let Some(p) = e.parent_ino {
        writeln!(out, "parent-ino {p}")?;
    }
    writeln!(out, "mode {:o}", e.md.mode() & 0o7777)?;
    writeln!(out, "uid {}", e.md.uid())?;
    writeln!(out, "gid {}", e.md.gid())?;
    writeln!(out, "links {}", e.md.nlink())?;
    let ctx = e.stored.ctx();
    match &e.stored {
        Stored::File {
            header,
            pending,
            backing_len,
        } => {
            let du = vol.data_unit_size(ctx);
            if header.layout == ContentsLayout::Extent {
                // The logical size lives in the log, not in the header.
                let ef = entries.first().and_then(|e| open_extent_file(vol, e).ok());
                let size = ef.as_ref().map_or(header.size, |f| f.logical_size());
                writeln!(out, "layout per-extent")?;
                writeln!(out, "size {size}")?;
                writeln!(out, "data-unit-size {du}")?;
                writeln!(out, "data-units {}", size.div_ceil(du))?;
                writeln!(out, "backing-size {backing_len}")?;
                if let Some(f) = ef {
                    writeln!(out, "extents {}", f.extents().len())?;
                }
            } else {
                let size = e.stored.per_file_size().unwrap_or(header.size);
                writeln!(out, "size {size}")?;
                match pending {
                    Some(PendingSize::Trusted(p)) => {
                        writeln!(out, "committed-size {}", header.size)?;
                        writeln!(
                            out,
                            "pending-size {p} (this boot and backing mount: trusted)"
                        )?;
                    }
                    Some(PendingSize::Stale(p)) => {
                        writeln!(
                            out,
                            "pending-size {p} (another boot or backing mount: lost)"
                        )?;
                    }
                    Some(PendingSize::Damaged) => writeln!(out, "pending-size damaged")?,
                    None => {}
                }
                writeln!(out, "data-unit-size {du}")?;
                writeln!(out, "data-units {}", size.div_ceil(du))?;
                writeln!(out, "backing-size {backing_len}")?;
            }
        }
        Stored::Symlink(SymlinkTarget::Encrypted { data, .. }) => {
            if let Ok(ct) = fscrypt::symlink::ciphertext(data) {
                writeln!(out, "target-ciphertext-length {}", ct.len())?;
            }
        }
        Stored::Symlink(SymlinkTarget::Plain { target, .. }) => {
            writeln!(out, "target {}", target.escape_ascii())?;
        }
        _ => {}
    }
    let Some(ctx) = ctx else {
        return writeln!(out, "encrypted no");
    };
    let p = ctx.policy();
    writeln!(out, "encrypted yes")?;
    writeln!(out, "context {}", hex::encode(ctx.to_bytes()))?;
    writeln!(
        out,
        "policy-version {}",
        if matches!(p, Policy::V1(_)) { 1 } else { 2 }
    )?;
    let (cm, fm) = (p.contents_mode(), p.filenames_mode());
    writeln!(
        out,
        "contents-mode {} ({})",
        cm.number(),
        cm.friendly_name()
    )?;
    writeln!(
        out,
        "filenames-mode {} ({})",
        fm.number(),
        fm.friendly_name()
    )?;
    writeln!(out, "flags 0x{:02x} ({})", p.flags(), p.flags_description())?;
    writeln!(out, "padding {}", p.padding())?;
    if let Policy::V2(v2) = p {
        writeln!(out, "log2-data-unit-size {}", v2.log2_data_unit_size)?;
    }
    match p.key_spec() {
        fscrypt::policy::KeySpec::Identifier(id) => {
            writeln!(out, "key-identifier {}", hex::encode(id))?
        }
        fscrypt::policy::KeySpec::Descriptor(d) => {
            writeln!(out, "key-descriptor {}", hex::encode(d))?
        }
    }
    writeln!(out, "nonce {}", hex::encode(ctx.nonce()))?;
    writeln!(out, "fs-uuid {}", hex::encode(vol.config.uuid))?;
    let ino = e.stored.ino().unwrap_or(0);
    let uuid = &vol.config.uuid;
    match kind {
        Kind::File if e.stored.is_per_extent() => {
            // No per-file key: every extent has its own (HKDF context 9 over its nonce).
            writeln!(
                out,
                "crypt-contents per extent: `fscryptfs inspect extents {}` prints each extent's \
                 options",
                e.path.as_os_str().as_bytes().escape_ascii()
            )?;
        }
        Kind::File => {
            let mut a = crypt_args(ctx, cm, ino, uuid);
            a.push(format!(
                "--data-unit-size={}",
                vol.data_unit_size(Some(ctx))
            ));
            writeln!(out, "crypt-contents {}", a.join(" "))?;
        }
        Kind::Dir => {
            let mut a = crypt_args(ctx, fm, ino, uuid);
            a.push(format!("--padding={}", p.padding()));
            a.push("--data-unit-size=255".into());
            writeln!(out, "crypt-names {}", a.join(" "))?;
        }
        Kind::Symlink => {
            let mut a = crypt_args(ctx, fm, ino, uuid);
            a.push(format!("--padding={}", p.padding()));
            a.push(format!("--data-unit-size={}", symlink_unit_size(&e.stored)));
            writeln!(out, "crypt-target {}", a.join(" "))?;
        }
        _ => {}
    }
    Ok(())
}

/// The `--data-unit-size` that makes `crypt` treat a symlink's ciphertext as one message: 4096, or
/// the ciphertext's length when it was cut at the limit (not a multiple of the padding).
fn symlink_unit_size(s: &Stored) -> usize {
    if let Stored::Symlink(SymlinkTarget::Encrypted { data, ctx, .. }) = s {
        if let Ok(ct) = fscrypt::symlink::ciphertext(data) {
            if !ct.len().is_multiple_of(ctx.policy().padding()) {
                return ct.len().max(16);
            }
        }
    }
    4096
}

/// Opens a per-extent file's log read-only (its map recovered as the daemon would; nothing is
/// written).
pub fn open_extent_file(vol: &Volume, e: &Entry) -> std::result::Result<ExtentFile, CommandError> {
    let Stored::File { header, .. } = &e.stored else {
        return Err(CommandError::op(format!(
            "{}: not a regular file",
            e.path.display()
        )));
    };
    let ctx = match (&header.ctx, header.layout) {
        (Some(c), ContentsLayout::Extent) => c,
        _ => {
            return Err(CommandError::op(format!(
                "{}: not a per-extent file (use `data`)",
                e.path.display()
            )))
        }
    };
    let f = e.open_file()?;
    let du = vol.data_unit_size(Some(ctx)) as usize;
    Ok(ExtentFile::open(f, ctx.policy(), du)?)
}
