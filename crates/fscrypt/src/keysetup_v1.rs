//! Legacy v1 key derivation, quarantined here (`fs/crypto/keysetup_v1.c`).
//!
//! v1 policies derive each file's key by encrypting the master key with AES-128-ECB under the file's
//! nonce — a reversible KDF that HKDF replaced in v2 — and v1 DIRECT_KEY uses the master key itself.
//! The rest of the layer reaches this only through `keysetup`, guarded by the policy version.

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::Aes128;
use sha2::{Digest, Sha512};

use crate::context::Nonce;
use crate::error::{Error, Result};
use crate::secret::SecretBytes;

/// The v1 KDF: AES-128-ECB-Encrypt(key = nonce, plaintext = master_key[..key_size]).
/// The master key must hold at least `key_size` bytes (a multiple of 16).
pub fn derive_v1_file_key(
    master_key: &[u8],
    nonce: &Nonce,
    key_size: usize,
) -> Result<SecretBytes> {
    if master_key.len() < key_size || !key_size.is_multiple_of(16) {
        return Err(Error::no_key(format!(
            "v1 master key of {} bytes is too short for a {key_size}-byte key",
            master_key.len()
        )));
    }
    let cipher = Aes128::new_from_slice(nonce).map_err(|_| Error::invalid("bad v1 KDF key"))?;
    let mut out = SecretBytes::copy_from(&master_key[..key_size]);
    for block in out.as_mut().chunks_exact_mut(16) {
        let block: &mut [u8; 16] = block
            .try_into()
            .map_err(|_| Error::invalid("v1 KDF block"))?;
        cipher.encrypt_block(block.into());
    }
    Ok(out)
}

/// The v1 DIRECT_KEY key: the first `key_size` bytes of the master key, used as they are.
pub fn v1_direct_key(master_key: &[u8], key_size: usize) -> Result<SecretBytes> {
    if master_key.len() < key_size {
        return Err(Error::no_key(format!(
            "v1 master key of {} bytes is too short for a {key_size}-byte key",
            master_key.len()
        )));
    }
    Ok(SecretBytes::copy_from(&master_key[..key_size]))
}

/// The descriptor userspace tools (e4crypt, fscrypt) give a v1 key: the first 8 bytes of
/// SHA-512(SHA-512(key)). A convention, not something the kernel checks.
pub fn conventional_descriptor(master_key: &[u8]) -> [u8; 8] {
    let once = Sha512::digest(master_key);
    let twice = Sha512::digest(once);
    let mut d = [0u8; 8];
    d.copy_from_slice(&twice[..8]);
    d
}
