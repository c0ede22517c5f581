//! The steps the protector commands combine, each on records in memory (the caller reads and
//! writes them through [`super::tree`]): make a protector, open it with its secret, rewrap it under
//! a new passphrase; make a policy, add and remove its slots, unwrap its key; translate between a
//! policy record and the kernel's policy; make a recovery passphrase.
//!
//! Every key that passes through here (wrapping key, protector key, policy key) is a
//! [`SecretBytes`]: locked, zeroized on drop, never printed.

use fscrypt::policy::{KeySpec, Policy, PolicyV1, PolicyV2};
use fscrypt::secret::SecretBytes;
use fscrypt::EncryptionMode;

use super::passhash;
use super::proto::{
    EncryptionOptions, HashingCosts, PolicyData, ProtectorData, SourceType, WrappedPolicyKey,
    POLICY_KEY_LEN, PROTECTOR_KEY_LEN, SALT_LEN,
};
use super::wrap::{self, descriptor_v1, descriptor_v2, random_secret};
use super::{Error, Result};

/// A protector's 32-byte wrapping key from the user's secret: Argon2id of a passphrase, or the
/// 32-byte raw key itself.
pub fn wrapping_key(p: &ProtectorData, secret: &[u8]) -> Result<SecretBytes> {
    match p.source_type()? {
        SourceType::RawKey => {
            if secret.len() != PROTECTOR_KEY_LEN {
                return Err(Error::Invalid(format!(
                    "key file must be {PROTECTOR_KEY_LEN} bytes, not {}",
                    secret.len()
                )));
            }
            Ok(SecretBytes::copy_from(secret))
        }
        _ => {
            let costs = p
                .costs
                .as_ref()
                .ok_or_else(|| Error::Corrupt("protector: no hashing costs".into()))?;
            passhash::hash(secret, &p.salt, costs)
        }
    }
}

/// What a new protector is.
pub struct NewProtector<'a> {
    /// Its source.
    pub source: SourceType,
    /// Its name (empty for a login protector).
    pub name: &'a str,
    /// Argon2id costs (passphrase sources).
    pub costs: &'a HashingCosts,
    /// The owner of a login protector.
    pub uid: u32,
}

/// Makes a protector: a random protector key wrapped under `secret`. Returns the record and the
/// protector key.
pub fn create_protector(
    new: &NewProtector<'_>,
    secret: &[u8],
) -> Result<(ProtectorData, SecretBytes)> {
    if new.source == SourceType::Default {
        return Err(Error::Invalid("a protector needs a source".into()));
    }
    if new.source == SourceType::PamPassphrase && !new.name.is_empty() {
        return Err(Error::Invalid("login protectors do not have a name".into()));
    }
    if new.source != SourceType::PamPassphrase && new.name.is_empty() {
        return Err(Error::Invalid(
            "a protector needs a name (--name=NAME)".into(),
        ));
    }
    let key = random_secret(PROTECTOR_KEY_LEN)?;
    let mut p = ProtectorData {
        protector_descriptor: descriptor_v1(key.as_ref()),
        source: new.source as i32,
        name: new.name.to_string(),
        costs: None,
        salt: Vec::new(),
        uid: if new.source == SourceType::PamPassphrase {
            new.uid as i64
        } else {
            0
        },
        wrapped_key: None,
    };
    if new.source.is_passphrase() {
        new.costs.check()?;
        p.costs = Some(new.costs.clone());
        p.salt = vec![0u8; SALT_LEN];
        wrap::fill_random(&mut p.salt)?;
    }
    let w = wrapping_key(&p, secret)?;
    p.wrapped_key = Some(wrap::wrap(w.as_ref(), key.as_ref())?);
    p.check()?;
    Ok((p, key))
}

/// Opens a protector with the user's secret: its protector key, or [`Error::IncorrectKey`].
pub fn unlock_protector(p: &ProtectorData, secret: &[u8]) -> Result<SecretBytes> {
    // A stored record's costs the hash cannot run with (memory that cannot be had) are the
    // record's fault, not the caller's: said as bad metadata, with the protector.
    let w = wrapping_key(p, secret).map_err(|e| match e {
        Error::Invalid(m) if p.source_type().is_ok_and(SourceType::is_passphrase) => {
            Error::Corrupt(format!("protector {}: {m}", p.protector_descriptor))
        }
        e => e,
    })?;
    let key = wrap::unwrap(w.as_ref(), p.wrapped()?).map_err(|e| match e {
        Error::IncorrectKey(_) => Error::IncorrectKey(match p.source_type() {
            Ok(SourceType::RawKey) => "incorrect key provided".into(),
            _ => "incorrect passphrase".into(),
        }),
        e => e,
    })?;
    if descriptor_v1(key.as_ref()) != p.protector_descriptor {
        return Err(Error::Corrupt(format!(
            "protector {}: its key has another descriptor",
            p.protector_descriptor
        )));
    }
    Ok(key)
}

/// Rewraps an opened protector under a new secret, keeping its salt and costs (as the tool's
/// `change-passphrase` does); the protector key and every policy stay as they are.
pub fn rewrap_protector(p: &mut ProtectorData, key: &SecretBytes, new_secret: &[u8]) -> Result<()> {
    let w = wrapping_key(p, new_secret)?;
    p.wrapped_key = Some(wrap::wrap(w.as_ref(), key.as_ref())?);
    p.check()
}

/// The descriptor of a policy key for `options`' version.
pub fn policy_descriptor(options: &EncryptionOptions, key: &[u8]) -> Result<String> {
    if options.version() == 2 {
        descriptor_v2(key)
    } else {
        Ok(descriptor_v1(key))
    }
}

/// Makes a policy with a random 64-byte key and one slot for the opened protector.
pub fn create_policy(
    options: &EncryptionOptions,
    protector: &ProtectorData,
    protector_key: &SecretBytes,
) -> Result<(PolicyData, SecretBytes)> {
    options.check()?;
    let key = random_secret(POLICY_KEY_LEN)?;
    let mut policy = PolicyData {
        key_descriptor: policy_descriptor(options, key.as_ref())?,
        options: Some(options.clone()),
        wrapped_policy_keys: Vec::new(),
    };
    add_slot(&mut policy, protector, protector_key, &key)?;
    Ok((policy, key))
}

/// Appends a slot wrapping `policy_key` under an opened protector (`ErrAlreadyProtected` if it
/// has one).
pub fn add_slot(
    policy: &mut PolicyData,
    protector: &ProtectorData,
    protector_key: &SecretBytes,
    policy_key: &SecretBytes,
) -> Result<()> {
    if policy.slot(&protector.protector_descriptor).is_some() {
        return Err(Error::Exists(format!(
            "policy {} is already protected by protector {}",
            policy.key_descriptor, protector.protector_descriptor
        )));
    }
    policy.wrapped_policy_keys.push(WrappedPolicyKey {
        protector_descriptor: protector.protector_descriptor.clone(),
        wrapped_key: Some(wrap::wrap(protector_key.as_ref(), policy_key.as_ref())?),
    });
    policy.check()
}

/// Removes `protector`'s slot (swap with the last, as the tool does); the last slot stays.
pub fn remove_slot(policy: &mut PolicyData, protector: &str) -> Result<()> {
    let i = policy
        .wrapped_policy_keys
        .iter()
        .position(|s| s.protector_descriptor == protector)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "policy {} is not protected by protector {protector}",
                policy.key_descriptor
            ))
        })?;
    if policy.wrapped_policy_keys.len() == 1 {
        return Err(Error::Invalid(format!(
            "protector {protector} is the only protector of policy {}; it cannot be removed",
            policy.key_descriptor
        )));
    }
    policy.wrapped_policy_keys.swap_remove(i);
    Ok(())
}

/// Unwraps the policy key through the slot of an opened protector and checks its descriptor.
pub fn unlock_policy(
    policy: &PolicyData,
    protector: &ProtectorData,
    protector_key: &SecretBytes,
) -> Result<SecretBytes> {
    let slot = policy
        .slot(&protector.protector_descriptor)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "policy {} is not protected by protector {}",
                policy.key_descriptor, protector.protector_descriptor
            ))
        })?;
    let wrapped = slot
        .wrapped_key
        .as_ref()
        .ok_or_else(|| Error::Corrupt("policy: slot without a wrapped key".into()))?;
    let key = wrap::unwrap(protector_key.as_ref(), wrapped).map_err(|e| match e {
        Error::IncorrectKey(_) => Error::Corrupt(format!(
            "policy {}: the slot of protector {} does not open with it",
            policy.key_descriptor, protector.protector_descriptor
        )),
        e => e,
    })?;
    if policy_descriptor(policy.opts()?, key.as_ref())? != policy.key_descriptor {
        return Err(Error::Corrupt(format!(
            "policy {}: its key has another descriptor",
            policy.key_descriptor
        )));
    }
    Ok(key)
}

fn mode(n: i32) -> Result<EncryptionMode> {
    u8::try_from(n)
        .ok()
        .and_then(EncryptionMode::from_number)
        .ok_or_else(|| Error::Invalid(format!("encryption mode {n} is not supported")))
}

/// The kernel policy a policy record stands for.
pub fn kernel_policy(policy: &PolicyData) -> Result<Policy> {
    let o = policy.opts()?;
    let id = hex::decode(&policy.key_descriptor)
        .map_err(|_| Error::Corrupt("policy: descriptor is not hex".into()))?;
    let (contents_mode, filenames_mode, flags) =
        (mode(o.contents)?, mode(o.filenames)?, o.kernel_flags());
    Ok(if o.version() == 2 {
        Policy::V2(PolicyV2 {
            contents_mode,
            filenames_mode,
            flags,
            log2_data_unit_size: 0,
            master_key_identifier: id
                .try_into()
                .map_err(|_| Error::Corrupt("policy: identifier is not 16 bytes".into()))?,
        })
    } else {
        Policy::V1(PolicyV1 {
            contents_mode,
            filenames_mode,
            flags,
            master_key_descriptor: id
                .try_into()
                .map_err(|_| Error::Corrupt("policy: descriptor is not 8 bytes".into()))?,
        })
    })
}

/// The options and descriptor of a kernel policy (the bytes `FS_IOC_GET_ENCRYPTION_POLICY_EX`
/// returns), for comparing with a record.
pub fn options_of(kernel: &[u8]) -> Result<(EncryptionOptions, String)> {
    let bad = || Error::Invalid("the directory's policy has an unknown format".into());
    let (&version, rest) = kernel.split_first().ok_or_else(bad)?;
    let [contents, filenames, flags] = [rest.first(), rest.get(1), rest.get(2)].map(|b| b.copied());
    let (contents, filenames, flags) = (
        contents.ok_or_else(bad)?,
        filenames.ok_or_else(bad)?,
        flags.ok_or_else(bad)?,
    );
    let (policy_version, desc) = match version {
        0 => (1, kernel.get(4..12).ok_or_else(bad)?),
        2 => (2, kernel.get(8..24).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    let options = EncryptionOptions {
        padding: 4 << (flags & 3),
        contents: contents as i32,
        filenames: filenames as i32,
        policy_version,
    };
    Ok((options, hex::encode(desc)))
}

/// The key spec the kernel knows a policy's key by.
pub fn key_spec(policy: &PolicyData) -> Result<KeySpec> {
    Ok(kernel_policy(policy)?.key_spec())
}

/// A recovery passphrase: 20 random letters a–z (≈94 bits), as the tool makes them.
pub fn recovery_passphrase() -> Result<SecretBytes> {
    let mut out = SecretBytes::zeroed(20);
    let mut filled = 0;
    let mut pool = SecretBytes::zeroed(64);
    while filled < out.len() {
        wrap::fill_random(pool.as_mut())?;
        for &b in pool.as_ref() {
            if b < 234 && filled < 20 {
                out.as_mut()[filled] = b'a' + b % 26;
                filled += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> HashingCosts {
        HashingCosts {
            time: 1,
            memory: 64,
            parallelism: 1,
            truncation_fixed: true,
        }
    }

    #[test]
    fn protector_and_policy_roundtrip() {
        let costs = cheap();
        let new = NewProtector {
            source: SourceType::CustomPassphrase,
            name: "home",
            costs: &costs,
            uid: 0,
        };
        let (mut p, key) = create_protector(&new, b"correct horse").unwrap();
        assert_eq!(p.protector_descriptor, descriptor_v1(key.as_ref()));
        let opened = unlock_protector(&p, b"correct horse").unwrap();
        assert!(opened.ct_eq(&key));
        let err = unlock_protector(&p, b"wrong horse").unwrap_err();
        assert_eq!(err.to_string(), "incorrect passphrase");
        assert_eq!(err.exit_code(), super::super::EXIT_BAD_PASSPHRASE);

        let (mut policy, pkey) = create_policy(&EncryptionOptions::default_v2(), &p, &key).unwrap();
        assert_eq!(policy.key_descriptor.len(), 32);
        assert!(unlock_policy(&policy, &p, &key).unwrap().ct_eq(&pkey));

        // Change of passphrase: same descriptor, salt and costs; the policy still opens.
        let salt = p.salt.clone();
        rewrap_protector(&mut p, &key, b"battery staple").unwrap();
        assert_eq!(p.salt, salt);
        assert!(unlock_protector(&p, b"correct horse").is_err());
        let k2 = unlock_protector(&p, b"battery staple").unwrap();
        assert!(unlock_policy(&policy, &p, &k2).unwrap().ct_eq(&pkey));

        // A second protector (raw key); remove the first; the last cannot go.
        let raw = [5u8; 32];
        let new_raw = NewProtector {
            source: SourceType::RawKey,
            name: "key",
            costs: &costs,
            uid: 0,
        };
        let (r, rkey) = create_protector(&new_raw, &raw).unwrap();
        assert!(r.costs.is_none() && r.salt.is_empty());
        add_slot(&mut policy, &r, &rkey, &pkey).unwrap();
        assert!(add_slot(&mut policy, &r, &rkey, &pkey).is_err());
        remove_slot(&mut policy, &p.protector_descriptor).unwrap();
        assert!(remove_slot(&mut policy, &r.protector_descriptor).is_err());
        assert!(unlock_policy(&policy, &r, &rkey).unwrap().ct_eq(&pkey));
        assert!(unlock_protector(&r, &[6u8; 32]).is_err());
        assert!(unlock_protector(&r, &[5u8; 31]).is_err());
    }

    #[test]
    fn kernel_policy_roundtrip() {
        let opts = EncryptionOptions::default_v2();
        let policy = PolicyData {
            key_descriptor: "00112233445566778899aabbccddeeff".into(),
            options: Some(opts.clone()),
            wrapped_policy_keys: vec![],
        };
        let bytes = kernel_policy(&policy).unwrap().to_bytes();
        let (o, d) = options_of(&bytes).unwrap();
        assert_eq!(o, opts);
        assert_eq!(d, policy.key_descriptor);
    }

    #[test]
    fn recovery_passphrases_are_letters() {
        let r = recovery_passphrase().unwrap();
        assert_eq!(r.len(), 20);
        assert!(r.as_ref().iter().all(|b| b.is_ascii_lowercase()));
    }
}
