//! Key wrapping as the `fscrypt` tool does it (its `crypto/crypto.go`): encrypt-then-MAC under a
//! 32-byte wrapping key, and the descriptors that name protectors and policies.
//!
//! Wrap: HKDF-SHA256(W, no salt, no info) gives 64 bytes — an AES-256 key, then an HMAC key; the
//! secret is encrypted with AES-256-CTR (a fresh 16-byte IV as the whole 128-bit big-endian
//! counter) and authenticated with HMAC-SHA256 over IV ‖ ciphertext. Unwrap checks the HMAC in
//! constant time before decrypting: a wrong passphrase is detected here and nowhere else.

use aes::Aes256;
use cipher::{KeyIvInit, StreamCipher};
use fscrypt::secret::SecretBytes;
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroize;

use super::proto::{WrappedKeyData, IV_LEN};
use super::{Error, Result};

type Ctr = ctr::Ctr128BE<Aes256>;

/// The encryption and authentication keys stretched from a wrapping key.
struct Stretched {
    bytes: SecretBytes,
}

impl Stretched {
    fn new(wrapping_key: &[u8]) -> Result<Self> {
        let mut bytes = SecretBytes::zeroed(64);
        Hkdf::<Sha256>::new(None, wrapping_key)
            .expand(&[], bytes.as_mut())
            .map_err(|_| Error::Invalid("wrapping key: HKDF length".into()))?;
        Ok(Stretched { bytes })
    }
    fn enc_key(&self) -> &[u8] {
        &self.bytes.as_ref()[..32]
    }
    fn auth_key(&self) -> &[u8] {
        &self.bytes.as_ref()[32..]
    }
    fn mac(&self, iv: &[u8], ciphertext: &[u8]) -> Result<Hmac<Sha256>> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.auth_key())
            .map_err(|_| Error::Invalid("HMAC key length".into()))?;
        mac.update(iv);
        mac.update(ciphertext);
        Ok(mac)
    }
    fn xor_stream(&self, iv: &[u8], data: &mut [u8]) -> Result<()> {
        let mut c = Ctr::new_from_slices(self.enc_key(), iv)
            .map_err(|_| Error::Corrupt("wrapped key: IV is not 16 bytes".into()))?;
        c.apply_keystream(data);
        Ok(())
    }
}

/// Wraps `secret` under `wrapping_key` with a fresh random IV.
pub fn wrap(wrapping_key: &[u8], secret: &[u8]) -> Result<WrappedKeyData> {
    let mut iv = vec![0u8; IV_LEN];
    fill_random(&mut iv)?;
    wrap_with_iv(wrapping_key, secret, iv)
}

/// Wraps with a given IV (tests use fixed IVs to compare with known answers).
pub fn wrap_with_iv(wrapping_key: &[u8], secret: &[u8], iv: Vec<u8>) -> Result<WrappedKeyData> {
    let keys = Stretched::new(wrapping_key)?;
    let mut encrypted_key = secret.to_vec();
    keys.xor_stream(&iv, &mut encrypted_key)?;
    let hmac = keys
        .mac(&iv, &encrypted_key)?
        .finalize()
        .into_bytes()
        .to_vec();
    Ok(WrappedKeyData {
        iv,
        encrypted_key,
        hmac,
    })
}

/// Unwraps `data` with `wrapping_key`; a failed authentication is [`Error::IncorrectKey`].
pub fn unwrap(wrapping_key: &[u8], data: &WrappedKeyData) -> Result<SecretBytes> {
    let keys = Stretched::new(wrapping_key)?;
    keys.mac(&data.iv, &data.encrypted_key)?
        .verify_slice(&data.hmac)
        .map_err(|_| Error::IncorrectKey("key authentication check failed".into()))?;
    let mut secret = SecretBytes::copy_from(&data.encrypted_key);
    keys.xor_stream(&data.iv, secret.as_mut())?;
    Ok(secret)
}

/// The descriptor of a protector key or a v1 policy key: the first 8 bytes of
/// SHA-512(SHA-512(key)), lowercase hex.
pub fn descriptor_v1(key: &[u8]) -> String {
    hex::encode(fscrypt::keysetup_v1::conventional_descriptor(key))
}

/// The descriptor of a v2 policy key: the kernel's key identifier, lowercase hex.
pub fn descriptor_v2(key: &[u8]) -> Result<String> {
    fscrypt::keysetup::key_identifier(key)
        .map(hex::encode)
        .map_err(|e| Error::Invalid(e.to_string()))
}

/// Fills `buf` from the kernel's random number generator.
pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    fscrypt::context::fill_random(buf)
        .map_err(|e| Error::io("random bytes", std::io::Error::other(e.to_string())))
}

/// A fresh random secret of `len` bytes in locked memory.
pub fn random_secret(len: usize) -> Result<SecretBytes> {
    let mut s = SecretBytes::zeroed(len);
    fill_random(s.as_mut())?;
    Ok(s)
}

/// Zeroizes a byte vector (for callers that must hold a copy briefly).
pub fn wipe(mut v: Vec<u8>) {
    v.zeroize();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_roundtrip_and_wrong_key() {
        let w = [7u8; 32];
        let secret = [9u8; 64];
        let data = wrap(&w, &secret).unwrap();
        data.check(64).unwrap();
        assert_ne!(data.encrypted_key, secret.to_vec());
        assert_eq!(unwrap(&w, &data).unwrap().as_ref(), &secret[..]);
        let err = unwrap(&[8u8; 32], &data).unwrap_err();
        assert!(matches!(err, Error::IncorrectKey(_)), "{err}");
        let mut tampered = data.clone();
        tampered.encrypted_key[0] ^= 1;
        assert!(matches!(unwrap(&w, &tampered), Err(Error::IncorrectKey(_))));
    }

    /// Independent check of the construction: AES-CTR's first block is AES(IV), and the counter
    /// carries across all 128 bits (an IV of all 0xff wraps to zero).
    #[test]
    fn counter_is_128_bit_big_endian() {
        use cipher::{BlockCipherEncrypt, KeyInit as _};
        let w = [1u8; 32];
        let keys = Stretched::new(&w).unwrap();
        let aes = Aes256::new_from_slice(keys.enc_key()).unwrap();
        let iv = vec![0xffu8; 16];
        let data = wrap_with_iv(&w, &[0u8; 32], iv.clone()).unwrap();
        let mut b0 = cipher::Array::try_from(&iv[..]).unwrap();
        aes.encrypt_block(&mut b0);
        let mut b1 = cipher::Array::from([0u8; 16]);
        aes.encrypt_block(&mut b1);
        assert_eq!(&data.encrypted_key[..16], &b0[..]);
        assert_eq!(&data.encrypted_key[16..], &b1[..]);
    }

    /// A known answer computed independently (Python `cryptography`: HKDF-SHA256, AES-CTR,
    /// HMAC-SHA256) from W = 00..1f, secret = 100..163, IV = 200..215.
    #[test]
    fn wrap_known_answer() {
        let w: Vec<u8> = (0u8..32).collect();
        let secret: Vec<u8> = (100u8..164).collect();
        let iv: Vec<u8> = (200u8..216).collect();
        let data = wrap_with_iv(&w, &secret, iv).unwrap();
        assert_eq!(
            hex::encode(&data.encrypted_key),
            "b3548676d4bac1460bf9403da1ba29642b5645b560a2e6e239f4073a9eb0efd1\
             7bfacfc80a67623943f2cf0a0d3ab1d7d5ac51b48c0dfb0e4f5bf9f0449271b5"
        );
        assert_eq!(
            hex::encode(&data.hmac),
            "ba70fce84a394f36b0cbe0a5b0e8660bd639924735b31e9dd3e84bbd1f2311f1"
        );
    }

    #[test]
    fn descriptors() {
        // Protector descriptors are 16 hex characters, v2 policy descriptors 32.
        assert_eq!(descriptor_v1(&[0u8; 32]).len(), 16);
        assert_eq!(descriptor_v2(&[0u8; 64]).unwrap().len(), 32);
    }
}
