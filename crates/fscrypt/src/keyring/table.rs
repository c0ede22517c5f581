//! The table of keys: the [`Keyring`] handle of one volume, what it shares with its active
//! references, the keys by specifier and each user's quota usage, and the questions one may ask
//! of it without changing anything (status, `verify_key_added`, busy inodes, quota usage).
//!
//! Lock order, for every module of the keyring: the table, then one key's state
//! (`lifecycle::MasterKey::state`); a key's state is never held while taking the table. A key
//! whose last active reference went is dead at once and unhashed just after, so a lookup may
//! meet a dead key for a moment and treats it as absent. Adding lives in `add`, removal in
//! `remove`, unlocking in `active`.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use super::claims::{Caller, QuotaUsage, Quotas, UserQuota};
use super::lifecycle::{lock, InodeId, KeyStatus, Lifecycle, MasterKey, RemovalMode};
use crate::error::{Error, Result};
use crate::policy::{KeySpec, KEY_IDENTIFIER_SIZE};

/// A volume's keyring settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyringConfig {
    /// What removal does to busy inodes.
    pub removal_mode: RemovalMode,
    /// The per-user claim limits.
    pub quota: UserQuota,
}

/// The keyring of one volume (`struct fscrypt_keyring`).
pub struct Keyring {
    pub(super) shared: Arc<Shared>,
}

/// What the keyring and its [`ActiveRef`](super::ActiveRef)s share; it outlives the [`Keyring`]
/// while references remain, as the kernel destroys a keyring only after every inode is evicted.
pub(super) struct Shared {
    pub(super) config: KeyringConfig,
    /// Which keys exist and what each user is charged. Taken before any key's state.
    pub(super) table: Mutex<Table>,
}

/// The keys and the quotas, under one lock.
pub(super) struct Table {
    /// Keys by specifier. A `Dead` key may linger here briefly between its last reference going and
    /// its unhashing; every lookup treats it as absent.
    pub(super) keys: HashMap<KeySpec, Arc<MasterKey>>,
    /// Claims charged per uid. Changed only together with a key's claims, under this lock.
    pub(super) quotas: Quotas,
}

impl Table {
    /// The live key under `spec`, if any.
    pub(super) fn find(&self, spec: &KeySpec) -> Option<Arc<MasterKey>> {
        self.keys.get(spec).cloned()
    }

    /// Unhashes `mk` if the table still maps its spec to it (a re-add may have replaced it).
    pub(super) fn unhash(&mut self, mk: &Arc<MasterKey>) {
        if self
            .keys
            .get(&mk.spec)
            .is_some_and(|cur| Arc::ptr_eq(cur, mk))
        {
            self.keys.remove(&mk.spec);
        }
    }
}

impl Keyring {
    /// An empty keyring with `config`.
    pub fn new(config: KeyringConfig) -> Self {
        Keyring {
            shared: Arc::new(Shared {
                config,
                table: Mutex::new(Table {
                    keys: HashMap::new(),
                    quotas: Quotas::default(),
                }),
            }),
        }
    }

    /// The settings this keyring was made with.
    pub fn config(&self) -> KeyringConfig {
        self.shared.config
    }

    /// `FS_IOC_GET_ENCRYPTION_KEY_STATUS` for `caller` (no permission needed).
    #[doc(alias = "fscrypt_ioctl_get_key_status")]
    pub fn status(&self, caller: Caller, spec: KeySpec) -> KeyStatus {
        let table = lock(&self.shared.table);
        match table.find(&spec) {
            Some(mk) => lock(&mk.state).status(caller.uid),
            None => KeyStatus::Absent,
        }
    }

    /// `fscrypt_verify_key_added`, as setting a v2 policy needs: the caller must hold a claim on
    /// `identifier`, or be privileged (CAP_FOWNER), whether or not the key exists.
    ///
    /// # Errors
    /// ENOKEY otherwise.
    #[doc(alias = "fscrypt_verify_key_added")]
    pub fn verify_key_added(
        &self,
        caller: Caller,
        identifier: &[u8; KEY_IDENTIFIER_SIZE],
    ) -> Result<()> {
        let spec = KeySpec::Identifier(*identifier);
        let claimed = {
            let table = lock(&self.shared.table);
            table.find(&spec).is_some_and(|mk| {
                let st = lock(&mk.state);
                st.is_live() && st.claims.as_ref().is_some_and(|c| c.contains(&caller.uid))
            })
        };
        if claimed || caller.privileged {
            Ok(())
        } else {
            Err(Error::no_key(format!(
                "uid {} has not added key {spec}",
                caller.uid
            )))
        }
    }

    /// The inodes unlocked under `spec` (holding active references), by inode number: what keeps a
    /// key busy, for status commands. Empty when the key is absent.
    pub fn active_inodes(&self, spec: &KeySpec) -> Vec<InodeId> {
        let table = lock(&self.shared.table);
        let mut v: Vec<InodeId> = match table.find(spec) {
            Some(mk) => lock(&mk.state).inodes.keys().copied().collect(),
            None => Vec::new(),
        };
        v.sort_unstable();
        v
    }

    /// Whether the master secret of `spec` is still in memory: present, or incompletely removed
    /// with a [`SecretNeed::Later`](super::SecretNeed::Later) reference left. False once it was
    /// wiped (or never added).
    pub fn secret_retained(&self, spec: &KeySpec) -> bool {
        let table = lock(&self.shared.table);
        table
            .find(spec)
            .is_some_and(|mk| lock(&mk.state).secret_retained())
    }

    /// What `uid` is charged against the quota.
    pub fn quota_usage(&self, uid: u32) -> QuotaUsage {
        lock(&self.shared.table).quotas.usage(uid)
    }
}

impl fmt::Debug for Keyring {
    /// The settings and, per key, its specifier (public), state, claim count and unlocked inodes.
    /// Never any secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = {
            let table = lock(&self.shared.table);
            let mut keys: Vec<_> = table.keys.values().cloned().collect();
            drop(table);
            keys.sort_by_key(|mk| mk.spec);
            keys.iter()
                .map(|mk| {
                    let st = lock(&mk.state);
                    let state = match st.lifecycle {
                        Lifecycle::Present(_) => "present",
                        Lifecycle::IncompletelyRemoved(Some(_)) => "incompletely removed",
                        Lifecycle::IncompletelyRemoved(None) => {
                            "incompletely removed (secret wiped)"
                        }
                        Lifecycle::Dead => "absent",
                    };
                    format!(
                        "{}: {state}, {} claim(s), {} unlocked inode(s)",
                        mk.spec,
                        st.claims.as_ref().map_or(0, BTreeSet::len),
                        st.inodes.len()
                    )
                })
                .collect()
        };
        f.debug_struct("Keyring")
            .field("config", &self.shared.config)
            .field("keys", &keys)
            .finish()
    }
}
