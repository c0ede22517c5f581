//! The `fscrypt` tool's records (its `metadata/metadata.proto`, proto3) as `prost` messages, and
//! the validity checks the tool applies before it trusts one (`CheckValidity`). Field numbers and
//! types are the wire format; `prost` writes them in ascending order and omits zero values, as Go's
//! `proto.Marshal` does, so our bytes equal the tool's (docs/FORMAT.md, "The fscrypt tool's
//! metadata").

use super::Error;

/// Argon2id costs of a passphrase protector.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HashingCosts {
    /// Passes.
    #[prost(int64, tag = "2")]
    pub time: i64,
    /// Memory in KiB.
    #[prost(int64, tag = "3")]
    pub memory: i64,
    /// Lanes (threads).
    #[prost(int64, tag = "4")]
    pub parallelism: i64,
    /// Set by tool versions ≥ 0.3.4: an out-of-range parallelism is an error, not truncated.
    #[prost(bool, tag = "5")]
    pub truncation_fixed: bool,
}

/// A secret encrypted and authenticated under a wrapping key (`wrap`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WrappedKeyData {
    /// The initial AES-CTR counter block (16 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub iv: Vec<u8>,
    /// The encrypted secret (32 bytes in a protector, 64 in a policy).
    #[prost(bytes = "vec", tag = "2")]
    pub encrypted_key: Vec<u8>,
    /// HMAC-SHA256 over IV ‖ encrypted_key (32 bytes).
    #[prost(bytes = "vec", tag = "3")]
    pub hmac: Vec<u8>,
}

/// Where a protector's wrapping key comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SourceType {
    /// Invalid in a record.
    Default = 0,
    /// The user's login passphrase (a login protector).
    PamPassphrase = 1,
    /// A passphrase of the user's choice.
    CustomPassphrase = 2,
    /// A 32-byte key file.
    RawKey = 3,
}

impl SourceType {
    /// The name the tool prints and takes in `--source`.
    pub fn tool_name(self) -> &'static str {
        match self {
            SourceType::Default => "default",
            SourceType::PamPassphrase => "pam_passphrase",
            SourceType::CustomPassphrase => "custom_passphrase",
            SourceType::RawKey => "raw_key",
        }
    }

    /// Parses a `--source` value or a config name.
    pub fn from_tool_name(name: &str) -> Option<SourceType> {
        match name {
            "pam_passphrase" => Some(SourceType::PamPassphrase),
            "custom_passphrase" => Some(SourceType::CustomPassphrase),
            "raw_key" => Some(SourceType::RawKey),
            _ => None,
        }
    }

    /// Whether the wrapping key is a hashed passphrase (costs and salt stored).
    pub fn is_passphrase(self) -> bool {
        matches!(
            self,
            SourceType::PamPassphrase | SourceType::CustomPassphrase
        )
    }
}

/// A protector record: `.fscrypt/protectors/<descriptor>`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtectorData {
    /// 16 lowercase hex characters: the protector key's descriptor.
    #[prost(string, tag = "1")]
    pub protector_descriptor: String,
    /// A [`SourceType`].
    #[prost(enumeration = "SourceType", tag = "2")]
    pub source: i32,
    /// The user's name for it (empty for login protectors).
    #[prost(string, tag = "3")]
    pub name: String,
    /// Argon2id costs (passphrase sources).
    #[prost(message, optional, tag = "4")]
    pub costs: Option<HashingCosts>,
    /// Argon2id salt, 16 bytes (passphrase sources).
    #[prost(bytes = "vec", tag = "5")]
    pub salt: Vec<u8>,
    /// Owner of a login protector.
    #[prost(int64, tag = "6")]
    pub uid: i64,
    /// The protector key wrapped by the wrapping key.
    #[prost(message, optional, tag = "7")]
    pub wrapped_key: Option<WrappedKeyData>,
}

/// A policy's encryption options (the kernel policy, minus its key).
#[derive(Clone, PartialEq, prost::Message)]
pub struct EncryptionOptions {
    /// Filename padding: 4, 8, 16 or 32.
    #[prost(int64, tag = "1")]
    pub padding: i64,
    /// `FSCRYPT_MODE_*` for contents.
    #[prost(int32, tag = "2")]
    pub contents: i32,
    /// `FSCRYPT_MODE_*` for filenames.
    #[prost(int32, tag = "3")]
    pub filenames: i32,
    /// 1 or 2 (0 is read as 1).
    #[prost(int64, tag = "4")]
    pub policy_version: i64,
}

/// One protector's copy of a policy key.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WrappedPolicyKey {
    /// The protector that wraps this copy.
    #[prost(string, tag = "1")]
    pub protector_descriptor: String,
    /// The 64-byte policy key wrapped by the protector key.
    #[prost(message, optional, tag = "2")]
    pub wrapped_key: Option<WrappedKeyData>,
}

/// A policy record: `.fscrypt/policies/<key descriptor>`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PolicyData {
    /// 16 (v1) or 32 (v2) lowercase hex characters: the kernel's descriptor or identifier.
    #[prost(string, tag = "1")]
    pub key_descriptor: String,
    /// The policy's options.
    #[prost(message, optional, tag = "2")]
    pub options: Option<EncryptionOptions>,
    /// One slot per protector.
    #[prost(message, repeated, tag = "3")]
    pub wrapped_policy_keys: Vec<WrappedPolicyKey>,
}

/// Length of a protector key and of a wrapping key.
pub const PROTECTOR_KEY_LEN: usize = 32;
/// Length of a policy key (the kernel's maximum master key size).
pub const POLICY_KEY_LEN: usize = 64;
/// Length of an IV and of a salt.
pub const IV_LEN: usize = 16;
/// Length of a salt.
pub const SALT_LEN: usize = 16;
/// Length of an HMAC-SHA256.
pub const HMAC_LEN: usize = 32;
/// The largest metadata file the tool reads (larger is corrupt).
pub const MAX_METADATA_LEN: u64 = 16384;

/// Whether `s` is a descriptor of `hex_len` lowercase hex characters.
pub fn is_descriptor(s: &str, hex_len: usize) -> bool {
    s.len() == hex_len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn corrupt(what: &str) -> Error {
    Error::Corrupt(what.to_string())
}

impl HashingCosts {
    /// The lane count the hash uses: the low 8 bits unless `truncation_fixed`.
    pub fn lanes(&self) -> Result<u32, Error> {
        if (1..=255).contains(&self.parallelism) {
            return Ok(self.parallelism as u32);
        }
        if self.truncation_fixed || (self.parallelism & 0xff) == 0 {
            return Err(corrupt("hashing costs: parallelism out of range"));
        }
        Ok((self.parallelism & 0xff) as u32)
    }

    /// `CheckValidity`: time 1…2³²−1, parallelism as above, memory 8·p…2³²−1 KiB.
    pub fn check(&self) -> Result<(), Error> {
        let p = self.lanes()?;
        if !(1..=u32::MAX as i64).contains(&self.time) {
            return Err(corrupt("hashing costs: time out of range"));
        }
        if !(8 * p as i64..=u32::MAX as i64).contains(&self.memory) {
            return Err(corrupt("hashing costs: memory out of range"));
        }
        Ok(())
    }
}

impl WrappedKeyData {
    /// IV 16, HMAC 32, encrypted key of `key_len`.
    pub fn check(&self, key_len: usize) -> Result<(), Error> {
        if self.iv.len() != IV_LEN {
            return Err(corrupt("wrapped key: IV is not 16 bytes"));
        }
        if self.hmac.len() != HMAC_LEN {
            return Err(corrupt("wrapped key: HMAC is not 32 bytes"));
        }
        if self.encrypted_key.len() != key_len {
            return Err(corrupt("wrapped key: encrypted key has the wrong length"));
        }
        Ok(())
    }
}

impl ProtectorData {
    /// The record's source, if it is a known, valid one.
    pub fn source_type(&self) -> Result<SourceType, Error> {
        match SourceType::try_from(self.source) {
            Ok(SourceType::Default) | Err(_) => Err(corrupt("protector: unknown source")),
            Ok(s) => Ok(s),
        }
    }

    /// `CheckValidity` for a protector record.
    pub fn check(&self) -> Result<(), Error> {
        if !is_descriptor(&self.protector_descriptor, 16) {
            return Err(corrupt("protector: bad descriptor"));
        }
        let source = self.source_type()?;
        if source.is_passphrase() {
            self.costs
                .as_ref()
                .ok_or_else(|| corrupt("protector: no hashing costs"))?
                .check()?;
            if self.salt.len() != SALT_LEN {
                return Err(corrupt("protector: salt is not 16 bytes"));
            }
        }
        if self.uid < 0 {
            return Err(corrupt("protector: negative uid"));
        }
        self.wrapped_key
            .as_ref()
            .ok_or_else(|| corrupt("protector: no wrapped key"))?
            .check(PROTECTOR_KEY_LEN)
    }

    /// The wrapped protector key (present once [`check`](Self::check) passed).
    pub fn wrapped(&self) -> Result<&WrappedKeyData, Error> {
        self.wrapped_key
            .as_ref()
            .ok_or_else(|| corrupt("protector: no wrapped key"))
    }
}

/// `FSCRYPT_MODE_*` values the tool knows by name.
pub fn mode_name(mode: i32) -> String {
    match mode {
        1 => "AES_256_XTS".into(),
        2 => "AES_256_GCM".into(),
        3 => "AES_256_CBC".into(),
        4 => "AES_256_CTS".into(),
        5 => "AES_128_CBC".into(),
        6 => "AES_128_CTS".into(),
        9 => "Adiantum".into(),
        10 => "AES_256_HCTR2".into(),
        other => other.to_string(),
    }
}

/// Parses a mode name (or number) as the tool's config does.
pub fn mode_from_name(name: &str) -> Option<i32> {
    let n = match name {
        "AES_256_XTS" => 1,
        "AES_256_GCM" => 2,
        "AES_256_CBC" => 3,
        "AES_256_CTS" => 4,
        "AES_128_CBC" => 5,
        "AES_128_CTS" => 6,
        "Adiantum" => 9,
        "AES_256_HCTR2" => 10,
        other => other.parse().ok()?,
    };
    Some(n)
}

impl EncryptionOptions {
    /// The tool's defaults: padding 32, AES-256-XTS / AES-256-CTS, v2.
    pub fn default_v2() -> Self {
        EncryptionOptions {
            padding: 32,
            contents: 1,
            filenames: 4,
            policy_version: 2,
        }
    }

    /// The version, reading 0 (old files) as 1.
    pub fn version(&self) -> i64 {
        if self.policy_version == 0 {
            1
        } else {
            self.policy_version
        }
    }

    /// `CheckValidity` for options.
    pub fn check(&self) -> Result<(), Error> {
        if ![4, 8, 16, 32].contains(&self.padding) {
            return Err(corrupt("options: padding is not 4, 8, 16 or 32"));
        }
        if self.contents == 0 || self.filenames == 0 {
            return Err(corrupt("options: encryption mode unset"));
        }
        if !(1..=2).contains(&self.version()) {
            return Err(corrupt("options: policy version is not 1 or 2"));
        }
        Ok(())
    }

    /// The kernel policy flags these options stand for: padding bits, plus DIRECT_KEY for
    /// Adiantum/Adiantum.
    pub fn kernel_flags(&self) -> u8 {
        let pad = match self.padding {
            4 => 0,
            8 => 1,
            16 => 2,
            _ => 3,
        };
        let direct = if self.contents == 9 && self.filenames == 9 {
            0x04
        } else {
            0
        };
        pad | direct
    }
}

impl PolicyData {
    /// `CheckValidity` for a policy record.
    pub fn check(&self) -> Result<(), Error> {
        let opts = self
            .options
            .as_ref()
            .ok_or_else(|| corrupt("policy: no options"))?;
        opts.check()?;
        let hex_len = if opts.version() == 2 { 32 } else { 16 };
        if !is_descriptor(&self.key_descriptor, hex_len) {
            return Err(corrupt("policy: bad key descriptor"));
        }
        for slot in &self.wrapped_policy_keys {
            if !is_descriptor(&slot.protector_descriptor, 16) {
                return Err(corrupt("policy: slot with a bad protector descriptor"));
            }
            slot.wrapped_key
                .as_ref()
                .ok_or_else(|| corrupt("policy: slot without a wrapped key"))?
                .check(POLICY_KEY_LEN)?;
        }
        Ok(())
    }

    /// The options (present once [`check`](Self::check) passed).
    pub fn opts(&self) -> Result<&EncryptionOptions, Error> {
        self.options
            .as_ref()
            .ok_or_else(|| corrupt("policy: no options"))
    }

    /// The slot wrapped by `protector`, if any.
    pub fn slot(&self, protector: &str) -> Option<&WrappedPolicyKey> {
        self.wrapped_policy_keys
            .iter()
            .find(|s| s.protector_descriptor == protector)
    }
}

/// A record stored under its own descriptor, with the tool's validity check.
pub trait Record: prost::Message + Default {
    /// The descriptor it is stored under.
    fn descriptor(&self) -> &str;
    /// `CheckValidity`.
    fn check(&self) -> Result<(), Error>;
}

impl Record for ProtectorData {
    fn descriptor(&self) -> &str {
        &self.protector_descriptor
    }
    fn check(&self) -> Result<(), Error> {
        ProtectorData::check(self)
    }
}

impl Record for PolicyData {
    fn descriptor(&self) -> &str {
        &self.key_descriptor
    }
    fn check(&self) -> Result<(), Error> {
        PolicyData::check(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// The wire prefix of the protector the real tool wrote (docs: "Verification against the real
    /// tool"): descriptor, source 2, name "t", costs {24, 131072, 2}, then salt.
    #[test]
    fn protector_bytes_match_the_tools_prefix() {
        let p = ProtectorData {
            protector_descriptor: "878456c3de386c89".into(),
            source: SourceType::CustomPassphrase as i32,
            name: "t".into(),
            costs: Some(HashingCosts {
                time: 24,
                memory: 131072,
                parallelism: 2,
                truncation_fixed: false,
            }),
            salt: vec![0x55; 16],
            uid: 0,
            wrapped_key: Some(WrappedKeyData {
                iv: vec![1; 16],
                encrypted_key: vec![2; 32],
                hmac: vec![3; 32],
            }),
        };
        p.check().unwrap();
        let bytes = p.encode_to_vec();
        let mut want = vec![0x0a, 0x10];
        want.extend_from_slice(b"878456c3de386c89");
        want.extend_from_slice(&[0x10, 0x02, 0x1a, 0x01, b't']);
        want.extend_from_slice(&[0x22, 0x08, 0x10, 0x18, 0x18, 0x80, 0x80, 0x08, 0x20, 0x02]);
        want.extend_from_slice(&[0x2a, 0x10]);
        assert_eq!(&bytes[..want.len()], &want[..]);
        assert_eq!(&bytes[want.len() + 16..want.len() + 18], &[0x3a, 0x56]);
        // The tool's file for this protector is 139 bytes.
        assert_eq!(bytes.len(), 139);
        assert_eq!(ProtectorData::decode(&bytes[..]).unwrap(), p);
    }

    #[test]
    fn checks_reject_bad_records() {
        let mut c = HashingCosts {
            time: 1,
            memory: 16,
            parallelism: 2,
            truncation_fixed: false,
        };
        c.check().unwrap();
        c.memory = 15;
        assert!(c.check().is_err());
        c.memory = 16;
        c.parallelism = 258; // low byte 2, accepted when truncation is not fixed
        assert_eq!(c.lanes().unwrap(), 2);
        c.truncation_fixed = true;
        assert!(c.lanes().is_err());
        let opts = EncryptionOptions::default_v2();
        opts.check().unwrap();
        assert_eq!(opts.kernel_flags(), 3);
        let mut bad = opts.clone();
        bad.padding = 12;
        assert!(bad.check().is_err());
        let pol = PolicyData {
            key_descriptor: "ABCDEF0123456789abcdef0123456789".into(),
            options: Some(opts),
            wrapped_policy_keys: vec![],
        };
        assert!(pol.check().is_err(), "uppercase descriptor");
    }
}
