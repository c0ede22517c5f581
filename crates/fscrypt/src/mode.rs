//! Encryption modes: the kernel's `fscrypt_modes[]` table and the IV buffer.
//!
//! A mode number is stored on disk in policies, contexts and extent contexts; everything else about a
//! mode (key size, security strength, IV size, whether it may encrypt contents or names) is derived
//! here, in one place, exactly as the kernel's table has it.

use crate::error::{Error, Result};

/// An fscrypt encryption mode, by its on-disk number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EncryptionMode {
    /// 1: AES-256-XTS, contents.
    Aes256Xts = 1,
    /// 4: AES-256-CBC-CTS (CS3), filenames.
    Aes256Cts = 4,
    /// 5: AES-128-CBC with ESSIV(SHA-256), contents.
    Aes128CbcEssiv = 5,
    /// 6: AES-128-CBC-CTS, filenames.
    Aes128Cts = 6,
    /// 7: SM4-XTS, contents.
    Sm4Xts = 7,
    /// 8: SM4-CBC-CTS, filenames.
    Sm4Cts = 8,
    /// 9: Adiantum (XChaCha12, AES-256), contents and filenames.
    Adiantum = 9,
    /// 10: AES-256-HCTR2, filenames.
    Aes256Hctr2 = 10,
}

/// The largest IV any mode takes (Adiantum and HCTR2 take 32 bytes).
pub const MAX_IV_SIZE: usize = 32;

impl EncryptionMode {
    /// Every mode, in on-disk number order.
    pub const ALL: [EncryptionMode; 8] = [
        EncryptionMode::Aes256Xts,
        EncryptionMode::Aes256Cts,
        EncryptionMode::Aes128CbcEssiv,
        EncryptionMode::Aes128Cts,
        EncryptionMode::Sm4Xts,
        EncryptionMode::Sm4Cts,
        EncryptionMode::Adiantum,
        EncryptionMode::Aes256Hctr2,
    ];

    /// The mode with on-disk number `n`, or None for 0, the never-used 2 and 3, and anything above 10.
    pub fn from_number(n: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| *m as u8 == n)
    }

    /// The on-disk number.
    pub fn number(self) -> u8 {
        self as u8
    }

    /// Key size in bytes (the length HKDF produces for this mode).
    pub fn key_size(self) -> usize {
        match self {
            EncryptionMode::Aes256Xts => 64,
            EncryptionMode::Aes256Cts => 32,
            EncryptionMode::Aes128CbcEssiv => 16,
            EncryptionMode::Aes128Cts => 16,
            EncryptionMode::Sm4Xts => 32,
            EncryptionMode::Sm4Cts => 16,
            EncryptionMode::Adiantum => 32,
            EncryptionMode::Aes256Hctr2 => 32,
        }
    }

    /// Security strength in bytes: the least master-key size a v2 policy accepts for this mode.
    pub fn security_strength(self) -> usize {
        match self {
            EncryptionMode::Aes256Xts
            | EncryptionMode::Aes256Cts
            | EncryptionMode::Adiantum
            | EncryptionMode::Aes256Hctr2 => 32,
            EncryptionMode::Aes128CbcEssiv
            | EncryptionMode::Aes128Cts
            | EncryptionMode::Sm4Xts
            | EncryptionMode::Sm4Cts => 16,
        }
    }

    /// IV size in bytes: 32 for Adiantum and HCTR2, 16 otherwise.
    pub fn iv_size(self) -> usize {
        match self {
            EncryptionMode::Adiantum | EncryptionMode::Aes256Hctr2 => 32,
            _ => 16,
        }
    }

    /// The kernel crypto API name, as the kernel logs it.
    pub fn crypto_name(self) -> &'static str {
        match self {
            EncryptionMode::Aes256Xts => "xts(aes)",
            EncryptionMode::Aes256Cts => "cts(cbc(aes))",
            EncryptionMode::Aes128CbcEssiv => "essiv(cbc(aes),sha256)",
            EncryptionMode::Aes128Cts => "cts(cbc(aes))",
            EncryptionMode::Sm4Xts => "xts(sm4)",
            EncryptionMode::Sm4Cts => "cts(cbc(sm4))",
            EncryptionMode::Adiantum => "adiantum(xchacha12,aes)",
            EncryptionMode::Aes256Hctr2 => "hctr2(aes)",
        }
    }

    /// The name `fscryptctl` and the fscrypt tool use (`AES-256-XTS`, `AES-256-CTS`, ...).
    pub fn friendly_name(self) -> &'static str {
        match self {
            EncryptionMode::Aes256Xts => "AES-256-XTS",
            EncryptionMode::Aes256Cts => "AES-256-CTS",
            EncryptionMode::Aes128CbcEssiv => "AES-128-CBC",
            EncryptionMode::Aes128Cts => "AES-128-CTS",
            EncryptionMode::Sm4Xts => "SM4-XTS",
            EncryptionMode::Sm4Cts => "SM4-CTS",
            EncryptionMode::Adiantum => "Adiantum",
            EncryptionMode::Aes256Hctr2 => "AES-256-HCTR2",
        }
    }

    /// Parses a mode name as users write it: fscryptctl's (`AES-256-XTS`), the fscrypt tool's
    /// (`AES_256_XTS`), fscrypt-crypt-util's cipher names (`AES-256-CTS-CBC`, `AES-128-CBC-ESSIV`), or
    /// the number. Case-insensitive.
    pub fn parse(name: &str) -> Result<Self> {
        let norm: String = name
            .chars()
            .map(|c| {
                if c == '_' {
                    '-'
                } else {
                    c.to_ascii_uppercase()
                }
            })
            .collect();
        if let Ok(n) = norm.parse::<u8>() {
            return Self::from_number(n)
                .ok_or_else(|| Error::invalid(format!("unknown encryption mode number {n}")));
        }
        let mode = match norm.as_str() {
            "AES-256-XTS" => EncryptionMode::Aes256Xts,
            "AES-256-CTS" | "AES-256-CTS-CBC" => EncryptionMode::Aes256Cts,
            "AES-128-CBC" | "AES-128-CBC-ESSIV" => EncryptionMode::Aes128CbcEssiv,
            "AES-128-CTS" | "AES-128-CTS-CBC" => EncryptionMode::Aes128Cts,
            "SM4-XTS" => EncryptionMode::Sm4Xts,
            "SM4-CTS" | "SM4-CTS-CBC" => EncryptionMode::Sm4Cts,
            "ADIANTUM" => EncryptionMode::Adiantum,
            "AES-256-HCTR2" => EncryptionMode::Aes256Hctr2,
            _ => return Err(Error::invalid(format!("unknown encryption mode {name:?}"))),
        };
        Ok(mode)
    }

    /// True for the modes that encrypt file contents.
    pub fn is_contents_mode(self) -> bool {
        matches!(
            self,
            EncryptionMode::Aes256Xts
                | EncryptionMode::Aes128CbcEssiv
                | EncryptionMode::Sm4Xts
                | EncryptionMode::Adiantum
        )
    }

    /// True for the modes that encrypt file names and symlink targets.
    pub fn is_filenames_mode(self) -> bool {
        matches!(
            self,
            EncryptionMode::Aes256Cts
                | EncryptionMode::Aes128Cts
                | EncryptionMode::Sm4Cts
                | EncryptionMode::Adiantum
                | EncryptionMode::Aes256Hctr2
        )
    }
}

impl std::fmt::Display for EncryptionMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.friendly_name())
    }
}

/// The IV (tweak) buffer of `fscrypt_generate_iv`: 32 bytes, of which a mode uses its `iv_size()`.
///
/// Bytes 0..8 hold the little-endian index (or its IV_INO_LBLK variant), bytes 8..24 the file nonce for
/// DIRECT_KEY; the rest is zero.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Iv(pub [u8; MAX_IV_SIZE]);

impl Iv {
    /// An IV whose first 8 bytes are `le64(value)` and the rest zero.
    pub fn from_index(value: u64) -> Self {
        let mut iv = [0u8; MAX_IV_SIZE];
        iv[..8].copy_from_slice(&value.to_le_bytes());
        Iv(iv)
    }

    /// The first 16 bytes (the tweak of the 16-byte-IV modes).
    pub fn first16(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out.copy_from_slice(&self.0[..16]);
        out
    }
}

impl std::fmt::Debug for Iv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Iv(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}
