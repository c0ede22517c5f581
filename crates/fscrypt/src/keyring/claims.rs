//! Who calls, and what holding a key costs them: [`Caller`] (uid and privilege), the per-user
//! [`UserQuota`] and the ledger of what each user is charged (`Quotas`).
//!
//! A v2 key is held by the users who added it: each holds one *claim* (the kernel's `mk_users`),
//! charged [`CLAIM_QUOTA_BYTES`] against its quota (EDQUOT when full; root is never limited). A
//! claim is released by that user's `remove-key` (or by anyone's `--all-users`), and only when the
//! last claim goes does the key's removal start (`remove`). v1 keys have no claims and cost
//! nothing. The set of claimants is part of a key's state (`lifecycle`); this module keeps who is
//! asking and what each user is charged, volume-wide (the kernel counts system-wide, see the
//! deviations in `keyring`'s header).

use std::collections::HashMap;

use crate::error::{Errno, Error, Result};

/// `FSCRYPT_MAX_RAW_KEY_SIZE`: what each claim charges to its user's byte quota, as in the kernel.
pub const CLAIM_QUOTA_BYTES: usize = 64;

/// The uid whose claims are never limited by [`UserQuota`] (the kernel's root quota is effectively
/// unlimited for this purpose).
pub const ROOT_UID: u32 = 0;

/// Who is calling: the filesystem's view of the requesting process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The caller's fsuid: claims and quotas belong to it.
    pub uid: u32,
    /// CAP_SYS_ADMIN (v1 keys, removal for all users) and CAP_FOWNER (verify_key_added).
    pub privileged: bool,
}

impl Caller {
    /// uid 0 with every capability.
    pub fn root() -> Self {
        Caller {
            uid: ROOT_UID,
            privileged: true,
        }
    }

    /// An unprivileged user.
    pub fn user(uid: u32) -> Self {
        Caller {
            uid,
            privileged: false,
        }
    }
}

/// The per-user limits on claims (the kernel's `maxkeys` / `maxbytes` of the keys subsystem).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserQuota {
    /// Claims one non-root user may hold (kernel default 200).
    pub max_keys: usize,
    /// Bytes one non-root user may hold; each claim charges [`CLAIM_QUOTA_BYTES`] (default 20000).
    pub max_bytes: usize,
}

impl UserQuota {
    /// No limit for anyone.
    pub const UNLIMITED: UserQuota = UserQuota {
        max_keys: usize::MAX,
        max_bytes: usize::MAX,
    };
}

impl Default for UserQuota {
    /// `key_quota_maxkeys` and `key_quota_maxbytes` (security/keys/key.c).
    fn default() -> Self {
        UserQuota {
            max_keys: 200,
            max_bytes: 20000,
        }
    }
}

/// Claims and bytes one user holds against [`UserQuota`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuotaUsage {
    /// Claims held.
    pub keys: usize,
    /// Bytes charged ([`CLAIM_QUOTA_BYTES`] per claim).
    pub bytes: usize,
}

/// What each user is charged for its claims, volume-wide. Changed only together with a key's
/// claims, under the table lock (`table`).
#[derive(Debug, Default)]
pub(super) struct Quotas {
    by_uid: HashMap<u32, QuotaUsage>,
}

impl Quotas {
    /// What `uid` is charged now.
    pub(super) fn usage(&self, uid: u32) -> QuotaUsage {
        self.by_uid.get(&uid).copied().unwrap_or_default()
    }

    /// Charges one claim to `uid` (`add_master_key_user` through `key_alloc`). EDQUOT over quota.
    pub(super) fn charge(&mut self, uid: u32, quota: &UserQuota) -> Result<()> {
        let used = self.usage(uid);
        if uid != ROOT_UID
            && (used.keys >= quota.max_keys
                || used.bytes.saturating_add(CLAIM_QUOTA_BYTES) > quota.max_bytes)
        {
            return Err(Error::new(
                Errno::DQUOT,
                format!(
                    "uid {uid} holds {} key claim(s) ({} bytes); the quota is {} claims and {} bytes",
                    used.keys, used.bytes, quota.max_keys, quota.max_bytes
                ),
            ));
        }
        let u = self.by_uid.entry(uid).or_default();
        u.keys = u.keys.saturating_add(1);
        u.bytes = u.bytes.saturating_add(CLAIM_QUOTA_BYTES);
        Ok(())
    }

    /// Gives one claim back to `uid`'s quota.
    pub(super) fn release(&mut self, uid: u32) {
        if let Some(u) = self.by_uid.get_mut(&uid) {
            u.keys = u.keys.saturating_sub(1);
            u.bytes = u.bytes.saturating_sub(CLAIM_QUOTA_BYTES);
            if u.keys == 0 {
                self.by_uid.remove(&uid);
            }
        }
    }
}
