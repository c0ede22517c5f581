//! AES-128-CBC-ESSIV, the kernel's `essiv(cbc(aes),sha256)`: fscrypt's contents mode 5.
//!
//! Owned here: the ESSIV key (AES-256 keyed with SHA-256 of the 16-byte contents key) and the per-unit
//! CBC IV it derives, E_ESSIV(the 16-byte fscrypt IV). Each data unit is one CBC chain; units are
//! whole blocks, so there is no padding (anything else is EINVAL).

use aes::{Aes128, Aes256Enc};
use cipher::array::Array;
use cipher::{BlockCipherEncrypt, KeyInit};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::cts::{cbc_decrypt, cbc_encrypt};
use super::xts::check_unit_len;
use crate::error::{Error, Result};
use crate::secret::LockedBox;

/// The data key and the ESSIV key, kept in locked memory.
pub(crate) struct Essiv {
    data: Aes128,
    essiv: Aes256Enc,
}

impl Essiv {
    /// Builds both key schedules from the 16-byte contents key.
    pub(crate) fn new_locked(key: &[u8]) -> Result<LockedBox<Self>> {
        if key.len() != 16 {
            return Err(Error::invalid(format!(
                "AES-128-CBC-ESSIV key must be 16 bytes, got {}",
                key.len()
            )));
        }
        LockedBox::try_new_with(|slot| {
            let bad = |_| Error::invalid("AES-128-CBC-ESSIV key has the wrong length");
            let data = Aes128::new_from_slice(key).map_err(bad)?;
            let mut hash = Sha256::digest(key);
            let essiv = Aes256Enc::new_from_slice(&hash).map_err(bad);
            hash.as_mut_slice().zeroize();
            slot.write(Essiv {
                data,
                essiv: essiv?,
            });
            Ok(())
        })
    }

    fn cbc_iv(&self, iv: &[u8; 16]) -> [u8; 16] {
        let mut block = Array::from(*iv);
        self.essiv.encrypt_block(&mut block);
        block.into()
    }

    /// Encrypts one data unit (a nonzero multiple of 16 bytes) in place.
    pub(crate) fn encrypt(&self, iv: &[u8; 16], data: &mut [u8]) -> Result<()> {
        check_unit_len(data, "AES-128-CBC-ESSIV")?;
        cbc_encrypt(&self.data, &self.cbc_iv(iv), data);
        Ok(())
    }

    /// Decrypts one data unit (a nonzero multiple of 16 bytes) in place.
    pub(crate) fn decrypt(&self, iv: &[u8; 16], data: &mut [u8]) -> Result<()> {
        check_unit_len(data, "AES-128-CBC-ESSIV")?;
        cbc_decrypt(&self.data, &self.cbc_iv(iv), data);
        Ok(())
    }
}
