//! Encryption contexts: what each encrypted inode stores (`fscrypt_context_v1` / `_v2`).
//!
//! A context is the inode's policy plus its 16-byte random nonce. The nonce is drawn once, from the OS
//! CSPRNG, when the inode is created (or a policy is set on an empty directory), and never changes; it
//! feeds the per-file key, the DIRECT_KEY IV and the dirhash key. Conversion to and from a policy and
//! the validity rules (`fscrypt_context_is_valid`) follow the kernel.

use crate::error::{Error, Result};
use crate::policy::{
    FsParams, Policy, KEY_DESCRIPTOR_SIZE, KEY_IDENTIFIER_SIZE, POLICY_V1_SIZE, POLICY_V2_SIZE,
    POLICY_V2_VERSION,
};

/// `FSCRYPT_FILE_NONCE_SIZE`.
pub const FILE_NONCE_SIZE: usize = 16;
/// `FSCRYPT_CONTEXT_V1`: the v1 *context* version byte is 1.
pub const CONTEXT_V1_VERSION: u8 = 1;
/// `FSCRYPT_CONTEXT_V2`.
pub const CONTEXT_V2_VERSION: u8 = 2;
/// Size of `struct fscrypt_context_v1`.
pub const CONTEXT_V1_SIZE: usize = 28;
/// Size of `struct fscrypt_context_v2` (`FSCRYPT_SET_CONTEXT_MAX_SIZE`).
pub const CONTEXT_V2_SIZE: usize = 40;

/// A 16-byte per-inode (or per-extent) nonce.
pub type Nonce = [u8; FILE_NONCE_SIZE];

/// Draws a fresh nonce from the OS CSPRNG (`get_random_bytes`).
pub fn random_nonce() -> Result<Nonce> {
    let mut nonce = [0u8; FILE_NONCE_SIZE];
    fill_random(&mut nonce)?;
    Ok(nonce)
}

/// Fills `buf` from `getrandom(2)`, retrying short reads and EINTR.
pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::new(e, "getrandom failed")),
        }
    }
    Ok(())
}

/// An inode's encryption context: its policy and its nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    policy: Policy,
    nonce: Nonce,
}

impl Context {
    /// The context for a new inode under `policy` with `nonce` (`fscrypt_new_context`).
    pub fn new(policy: Policy, nonce: Nonce) -> Self {
        Context { policy, nonce }
    }

    /// The context for a new inode under `policy`, with a fresh random nonce.
    pub fn new_random(policy: Policy) -> Result<Self> {
        Ok(Self::new(policy, random_nonce()?))
    }

    /// Parses a stored context. A size that does not match its version byte, or an unknown version,
    /// is EINVAL (`fscrypt_policy_from_context`); a policy the filesystem cannot use is EINVAL
    /// (`fscrypt_supported_policy`, as at key setup).
    pub fn parse(bytes: &[u8], fs: &FsParams) -> Result<Context> {
        let (policy_bytes, nonce_bytes) = match bytes.first() {
            Some(&CONTEXT_V1_VERSION) if bytes.len() == CONTEXT_V1_SIZE => {
                let mut p = Vec::with_capacity(POLICY_V1_SIZE);
                p.push(crate::policy::POLICY_V1_VERSION);
                p.extend_from_slice(&bytes[1..4 + KEY_DESCRIPTOR_SIZE]);
                (p, &bytes[4 + KEY_DESCRIPTOR_SIZE..])
            }
            Some(&CONTEXT_V2_VERSION) if bytes.len() == CONTEXT_V2_SIZE => {
                let end = 8 + KEY_IDENTIFIER_SIZE;
                let mut p = Vec::with_capacity(POLICY_V2_SIZE);
                p.push(POLICY_V2_VERSION);
                p.extend_from_slice(&bytes[1..end]);
                (p, &bytes[end..])
            }
            _ => {
                return Err(Error::invalid(format!(
                    "unrecognized or corrupt encryption context ({} bytes, version {:?})",
                    bytes.len(),
                    bytes.first()
                )))
            }
        };
        let policy = Policy::parse(&policy_bytes, fs)?;
        let mut nonce = [0u8; FILE_NONCE_SIZE];
        nonce.copy_from_slice(nonce_bytes);
        Ok(Context { policy, nonce })
    }

    /// The stored bytes: 28 (v1) or 40 (v2).
    pub fn to_bytes(&self) -> Vec<u8> {
        let policy = self.policy.to_bytes();
        let mut b = Vec::with_capacity(CONTEXT_V2_SIZE);
        match self.policy {
            Policy::V1(_) => b.push(CONTEXT_V1_VERSION),
            Policy::V2(_) => b.push(CONTEXT_V2_VERSION),
        }
        b.extend_from_slice(&policy[1..]);
        b.extend_from_slice(&self.nonce);
        b
    }

    /// The inode's policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The inode's nonce (`FS_IOC_GET_ENCRYPTION_NONCE`).
    pub fn nonce(&self) -> &Nonce {
        &self.nonce
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn v1_and_v2_roundtrip() {
        let fs = FsParams::ext4(12, true);
        let mut v2 = vec![2, 1, 4, 3, 0, 0, 0, 0];
        v2.extend_from_slice(&[9; 16]);
        v2.extend_from_slice(&[7; 16]);
        let c = Context::parse(&v2, &fs).unwrap();
        assert_eq!(c.to_bytes(), v2);
        assert_eq!(c.nonce(), &[7; 16]);
        let mut v1 = vec![1, 1, 4, 0];
        v1.extend_from_slice(&[3; 8]);
        v1.extend_from_slice(&[5; 16]);
        let c = Context::parse(&v1, &fs).unwrap();
        assert_eq!(c.policy().version_byte(), 0);
        assert_eq!(c.to_bytes(), v1);
        assert!(Context::parse(&v1[..27], &fs).is_err());
        let mut bad = v2.clone();
        bad[0] = 0;
        assert!(Context::parse(&bad, &fs).is_err());
    }

    #[test]
    fn random_nonces_differ() {
        assert_ne!(random_nonce().unwrap(), random_nonce().unwrap());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
            if let Ok(c) = Context::parse(&bytes, &FsParams::ext4(12, true)) {
                prop_assert_eq!(c.to_bytes(), bytes);
            }
        }
    }
}
