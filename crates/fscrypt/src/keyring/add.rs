//! Adding a key (`FS_IOC_ADD_ENCRYPTION_KEY`, the kernel's `fscrypt_ioctl_add_key` and
//! `do_add_master_key`): a new key, a new claim on a key already there, or a key made present
//! again while it is incompletely removed (its busy inodes carry on).
//!
//! The raw key becomes a `MasterSecret` before any lock is taken (a v2 key is wiped right after
//! HKDF-Extract); whatever secret is not kept, or is replaced, is dropped (wiped) after the locks
//! are released.

use std::collections::{BTreeSet, HashMap};
use std::mem;
use std::sync::{Arc, Mutex};

use super::claims::Caller;
use super::lifecycle::{lock, KeyState, Lifecycle, MasterKey};
use super::table::Keyring;
use crate::error::{Errno, Error, Result};
use crate::keysetup::MasterSecret;
use crate::policy::{KeySpec, KEY_DESCRIPTOR_SIZE, KEY_IDENTIFIER_SIZE};
use crate::secret::SecretBytes;

impl Keyring {
    /// Adds a v2 key (`FS_IOC_ADD_ENCRYPTION_KEY`, identifier type) and returns its identifier,
    /// which is computed from the key, never taken from the caller.
    ///
    /// The raw key is consumed: it is wiped right after HKDF-Extract, before any lock is taken. The
    /// caller gets a claim; a caller who already holds one changes nothing. Adding a key that is
    /// incompletely removed makes it present again, and its busy inodes carry on.
    ///
    /// # Errors
    /// EINVAL for a raw key outside 16..=64 bytes; EDQUOT when the caller's quota is full.
    #[doc(alias = "fscrypt_ioctl_add_key")]
    pub fn add_v2(&self, caller: Caller, raw: SecretBytes) -> Result<[u8; KEY_IDENTIFIER_SIZE]> {
        let secret = MasterSecret::new_v2(raw.as_ref());
        drop(raw);
        let secret = secret?;
        let Some(identifier) = secret.identifier() else {
            return Err(Error::invalid("a v2 master key has no identifier"));
        };
        self.add_master_key(caller, KeySpec::Identifier(identifier), secret)?;
        Ok(identifier)
    }

    /// Adds a v1 key under `descriptor` (descriptor type). Only privileged callers may, because a
    /// descriptor is not bound to the key: anyone else could add the wrong key for another's files.
    /// v1 keys have no claims and cost no quota; adding a present v1 key again changes nothing.
    ///
    /// # Errors
    /// EACCES when the caller is not privileged; EINVAL for a raw key outside 16..=64 bytes.
    pub fn add_v1(
        &self,
        caller: Caller,
        descriptor: [u8; KEY_DESCRIPTOR_SIZE],
        raw: SecretBytes,
    ) -> Result<()> {
        if !caller.privileged {
            return Err(Error::new(
                Errno::ACCESS,
                "adding a v1 key by descriptor needs CAP_SYS_ADMIN",
            ));
        }
        let secret = MasterSecret::new_v1(raw.as_ref());
        drop(raw);
        self.add_master_key(caller, KeySpec::Descriptor(descriptor), secret?)
    }

    /// `do_add_master_key`: a new key, a new claim, or a key made present again.
    fn add_master_key(&self, caller: Caller, spec: KeySpec, secret: MasterSecret) -> Result<()> {
        // Whatever secret is not kept, or is replaced, is dropped (wiped) after the locks are gone.
        let mut leftover: Option<Arc<MasterSecret>> = None;
        let secret = Arc::new(secret);
        let result = self.add_locked(caller, spec, &secret, &mut leftover);
        drop(leftover);
        drop(secret);
        result
    }

    fn add_locked(
        &self,
        caller: Caller,
        spec: KeySpec,
        secret: &Arc<MasterSecret>,
        leftover: &mut Option<Arc<MasterSecret>>,
    ) -> Result<()> {
        let quota = self.shared.config.quota;
        let mut table = lock(&self.shared.table);
        if let Some(mk) = table.find(&spec) {
            let mut st = lock(&mk.state);
            if st.is_live() {
                // add_existing_master_key.
                if let Some(claims) = &st.claims {
                    if claims.contains(&caller.uid) {
                        return Ok(());
                    }
                    table.quotas.charge(caller.uid, &quota)?;
                }
                if let Some(claims) = &mut st.claims {
                    claims.insert(caller.uid);
                }
                if matches!(st.lifecycle, Lifecycle::IncompletelyRemoved(_)) {
                    let old =
                        mem::replace(&mut st.lifecycle, Lifecycle::Present(Arc::clone(secret)));
                    if let Lifecycle::IncompletelyRemoved(s) = old {
                        *leftover = s;
                    }
                }
                return Ok(());
            }
            // Dead but not yet unhashed (the kernel's KEY_DEAD): replace it with a fresh key.
        }
        let claims = match spec {
            KeySpec::Identifier(_) => {
                table.quotas.charge(caller.uid, &quota)?;
                Some(BTreeSet::from([caller.uid]))
            }
            KeySpec::Descriptor(_) => None,
        };
        let mk = Arc::new(MasterKey {
            spec,
            state: Mutex::new(KeyState {
                lifecycle: Lifecycle::Present(Arc::clone(secret)),
                claims,
                inodes: HashMap::new(),
                inode_refs: 0,
                secret_refs: 0,
            }),
        });
        table.keys.insert(spec, mk);
        Ok(())
    }
}
