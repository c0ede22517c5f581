//! Cipher primitives: the part of the kernel's crypto API that fscrypt uses, one submodule per
//! algorithm, behind one type.
//!
//! [`PreparedKey`] is the kernel's `fscrypt_prepared_key`: a raw key of `mode.key_size()` bytes turned
//! into a ready key schedule for one [`EncryptionMode`], kept in locked, zeroized-on-drop memory. It
//! encrypts and decrypts in place with the mode's IV (`mode.iv_size()` bytes of an [`Iv`]) and refuses
//! lengths the mode cannot take with EINVAL, never with a panic. Which implementation runs
//! (AES-256-XTS has an x86_64 fast path) is decided once, at key setup.
//!
//! - `xts`: XTS over a 16-byte block cipher (AES-256, SM4), portable.
//! - `xts_x86`: the AES-NI / VAES fast path for AES-256-XTS.
//! - `cts`: CBC-CS3 as Linux's `cts(cbc(...))`, and the CBC helpers.
//! - `essiv`: AES-128-CBC-ESSIV(SHA-256).
//! - `hctr2`: AES-256-HCTR2.
//! - `adiantum`: Adiantum, wrapped so no input reaches the crate's panics.

mod adiantum;
mod cts;
mod essiv;
mod hctr2;
mod xts;
#[cfg(target_arch = "x86_64")]
mod xts_x86;

use aes::{Aes128, Aes256};
use sm4::Sm4;

use crate::error::{Error, Result};
use crate::mode::{EncryptionMode, Iv};
use crate::secret::LockedBox;

#[doc(hidden)]
pub use xts::XtsBackend;

/// A key prepared for one encryption mode (the kernel's `fscrypt_prepared_key`).
///
/// The key schedule lives in locked memory and is zeroized on drop; `Debug` shows only the mode.
pub struct PreparedKey {
    mode: EncryptionMode,
    key: ModeKey,
}

enum ModeKey {
    Aes256Xts(xts::Aes256Xts),
    Sm4Xts(LockedBox<xts::Sm4Xts>),
    Aes256Cts(LockedBox<cts::Cts<Aes256>>),
    Aes128Cts(LockedBox<cts::Cts<Aes128>>),
    Sm4Cts(LockedBox<cts::Cts<Sm4>>),
    Aes128CbcEssiv(LockedBox<essiv::Essiv>),
    Adiantum(adiantum::Adiantum),
    Aes256Hctr2(LockedBox<hctr2::Hctr2>),
}

impl PreparedKey {
    /// Prepares `key` for `mode`.
    ///
    /// Return: EINVAL if `key.len() != mode.key_size()`, or for the XTS modes when the two key halves
    /// are equal (as the kernel's `xts_verify_key` and OpenSSL refuse them).
    ///
    /// The schedule is built in its locked page, but the expansion may leave copies of key material in
    /// dead stack slots of this call: callers wipe them with [`crate::secret::burn_stack`] once key
    /// setup is done (as `keysetup` does).
    pub fn new(mode: EncryptionMode, key: &[u8]) -> Result<PreparedKey> {
        Self::new_with_xts_backend(mode, key, XtsBackend::Auto)
    }

    /// As [`PreparedKey::new`], with AES-256-XTS forced onto one implementation (ignored for the other
    /// modes). ENOPKG when this CPU lacks the backend. For tests and benchmarks.
    #[doc(hidden)]
    pub fn new_with_xts_backend(
        mode: EncryptionMode,
        key: &[u8],
        backend: XtsBackend,
    ) -> Result<PreparedKey> {
        if key.len() != mode.key_size() {
            return Err(Error::invalid(format!(
                "{mode} key must be {} bytes, got {}",
                mode.key_size(),
                key.len()
            )));
        }
        let key = match mode {
            EncryptionMode::Aes256Xts => ModeKey::Aes256Xts(xts::Aes256Xts::new(key, backend)?),
            EncryptionMode::Sm4Xts => ModeKey::Sm4Xts(xts::Sm4Xts::new_locked(key, 32)?),
            EncryptionMode::Aes256Cts => ModeKey::Aes256Cts(cts::Cts::new_locked(key)?),
            EncryptionMode::Aes128Cts => ModeKey::Aes128Cts(cts::Cts::new_locked(key)?),
            EncryptionMode::Sm4Cts => ModeKey::Sm4Cts(cts::Cts::new_locked(key)?),
            EncryptionMode::Aes128CbcEssiv => {
                ModeKey::Aes128CbcEssiv(essiv::Essiv::new_locked(key)?)
            }
            EncryptionMode::Adiantum => ModeKey::Adiantum(adiantum::Adiantum::new(key)?),
            EncryptionMode::Aes256Hctr2 => ModeKey::Aes256Hctr2(hctr2::Hctr2::new_locked(key)?),
        };
        Ok(PreparedKey { mode, key })
    }

    /// As [`PreparedKey::new`], on the portable (pure Rust) implementation of every mode.
    #[doc(hidden)]
    pub fn new_portable(mode: EncryptionMode, key: &[u8]) -> Result<PreparedKey> {
        Self::new_with_xts_backend(mode, key, XtsBackend::Portable)
    }

    /// The AES-256-XTS implementation this key runs on (None for the other modes).
    #[doc(hidden)]
    pub fn xts_backend(&self) -> Option<XtsBackend> {
        match &self.key {
            ModeKey::Aes256Xts(k) => Some(k.backend()),
            _ => None,
        }
    }

    /// The mode this key was prepared for.
    pub fn mode(&self) -> EncryptionMode {
        self.mode
    }

    /// Encrypts `data` in place with IV/tweak `iv` (the mode's `iv_size()` bytes of it).
    ///
    /// Return: EINVAL for a length the mode cannot take: XTS and CBC-ESSIV need a nonzero multiple of
    /// 16; CTS and HCTR2 at least 16; Adiantum 16 to 4112.
    pub fn encrypt(&self, iv: &Iv, data: &mut [u8]) -> Result<()> {
        let iv16 = iv.first16();
        match &self.key {
            ModeKey::Aes256Xts(k) => k.encrypt(&iv16, data),
            ModeKey::Sm4Xts(k) => k.encrypt(&iv16, data),
            ModeKey::Aes256Cts(k) => k.encrypt(&iv16, data),
            ModeKey::Aes128Cts(k) => k.encrypt(&iv16, data),
            ModeKey::Sm4Cts(k) => k.encrypt(&iv16, data),
            ModeKey::Aes128CbcEssiv(k) => k.encrypt(&iv16, data),
            ModeKey::Adiantum(k) => k.encrypt(&iv.0, data),
            ModeKey::Aes256Hctr2(k) => k.encrypt(&iv.0, data),
        }
    }

    /// Decrypts `data` in place with IV/tweak `iv`; the same length rules as [`PreparedKey::encrypt`].
    pub fn decrypt(&self, iv: &Iv, data: &mut [u8]) -> Result<()> {
        let iv16 = iv.first16();
        match &self.key {
            ModeKey::Aes256Xts(k) => k.decrypt(&iv16, data),
            ModeKey::Sm4Xts(k) => k.decrypt(&iv16, data),
            ModeKey::Aes256Cts(k) => k.decrypt(&iv16, data),
            ModeKey::Aes128Cts(k) => k.decrypt(&iv16, data),
            ModeKey::Sm4Cts(k) => k.decrypt(&iv16, data),
            ModeKey::Aes128CbcEssiv(k) => k.decrypt(&iv16, data),
            ModeKey::Adiantum(k) => k.decrypt(&iv.0, data),
            ModeKey::Aes256Hctr2(k) => k.decrypt(&iv.0, data),
        }
    }

    /// Encrypts with a tweak of any length (HCTR2: any; Adiantum: at most 32 bytes). fscrypt always
    /// passes 32 bytes through [`PreparedKey::encrypt`]; this is for the published vectors. EINVAL for
    /// the other modes.
    #[doc(hidden)]
    pub fn encrypt_with_tweak(&self, tweak: &[u8], data: &mut [u8]) -> Result<()> {
        match &self.key {
            ModeKey::Adiantum(k) => k.encrypt(tweak, data),
            ModeKey::Aes256Hctr2(k) => k.encrypt(tweak, data),
            _ => Err(self.no_variable_tweak()),
        }
    }

    /// Decrypts with a tweak of any length; see [`PreparedKey::encrypt_with_tweak`].
    #[doc(hidden)]
    pub fn decrypt_with_tweak(&self, tweak: &[u8], data: &mut [u8]) -> Result<()> {
        match &self.key {
            ModeKey::Adiantum(k) => k.decrypt(tweak, data),
            ModeKey::Aes256Hctr2(k) => k.decrypt(tweak, data),
            _ => Err(self.no_variable_tweak()),
        }
    }

    fn no_variable_tweak(&self) -> Error {
        Error::invalid(format!("{} takes a fixed 16-byte IV", self.mode))
    }
}

impl std::fmt::Debug for PreparedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PreparedKey({})", self.mode.friendly_name())
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PreparedKey>();
};
