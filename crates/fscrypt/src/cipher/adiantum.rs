//! Adiantum (XChaCha12, AES-256, NH + Poly1305; eprint 2018/720): fscrypt's mode 9, for contents and
//! filenames.
//!
//! Owned here: the wall between our callers and the `adiantum` crate, which is correct but panics on
//! messages shorter than 16 bytes or longer than 4096 + 16, and on tweaks longer than 32 bytes. Every
//! length is checked first and refused with EINVAL, so no input can reach those panics. The crate's
//! whole state (key, AES schedule, NH key) lives in a `LockedBox`, which wipes it on drop even though
//! the crate itself zeroizes only the key.

use aes::Aes256;
use chacha20::XChaCha12;
use cipher::array::Array;

use crate::error::{Error, Result};
use crate::secret::LockedBox;

/// The crate's cipher type for Adiantum-XChaCha12-AES.
pub(crate) type Inner = adiantum::Cipher<XChaCha12, Aes256>;

/// The shortest message Adiantum accepts (one AES block).
pub(crate) const MIN_LEN: usize = 16;
/// The longest message the wrapped crate handles without panicking: 4096 bytes hashed by NH, plus the
/// 16-byte block that goes through AES.
pub(crate) const MAX_LEN: usize = 4096 + 16;
/// The longest tweak the wrapped crate handles.
pub(crate) const MAX_TWEAK: usize = 32;

/// An Adiantum key in locked memory.
pub(crate) struct Adiantum(LockedBox<Inner>);

impl Adiantum {
    /// Builds the key from 32 bytes.
    pub(crate) fn new(key: &[u8]) -> Result<Self> {
        let Some(key) = Array::slice_as_array(key) else {
            return Err(Error::invalid(format!(
                "Adiantum key must be 32 bytes, got {}",
                key.len()
            )));
        };
        let boxed = LockedBox::try_new_with(|slot| {
            slot.write(<Inner as cipher::KeyInit>::new(key));
            Ok::<(), Error>(())
        })?;
        Ok(Adiantum(boxed))
    }

    /// Encrypts `data` (16..=4112 bytes) in place under `tweak` (at most 32 bytes).
    pub(crate) fn encrypt(&self, tweak: &[u8], data: &mut [u8]) -> Result<()> {
        check(tweak, data)?;
        self.0.encrypt(data, tweak);
        Ok(())
    }

    /// Decrypts `data` (16..=4112 bytes) in place under `tweak` (at most 32 bytes).
    pub(crate) fn decrypt(&self, tweak: &[u8], data: &mut [u8]) -> Result<()> {
        check(tweak, data)?;
        self.0.decrypt(data, tweak);
        Ok(())
    }
}

fn check(tweak: &[u8], data: &[u8]) -> Result<()> {
    if !(MIN_LEN..=MAX_LEN).contains(&data.len()) {
        return Err(Error::invalid(format!(
            "Adiantum handles {MIN_LEN} to {MAX_LEN} bytes, got {}",
            data.len()
        )));
    }
    if tweak.len() > MAX_TWEAK {
        return Err(Error::invalid(format!(
            "Adiantum tweak is at most {MAX_TWEAK} bytes, got {}",
            tweak.len()
        )));
    }
    Ok(())
}
