//! The numbers the key ioctls carry (`include/uapi/linux/fscrypt.h`): key status codes and flags,
//! removal status flags. Owned here because the keyring's answers ([`KeyStatus`](super::KeyStatus),
//! [`RemovalResult`](super::RemovalResult)) turn into them; `crate::uapi` re-exports them beside the
//! argument layouts that carry them.

/// `FSCRYPT_KEY_STATUS_ABSENT`.
pub const KEY_STATUS_ABSENT: u32 = 1;
/// `FSCRYPT_KEY_STATUS_PRESENT`.
pub const KEY_STATUS_PRESENT: u32 = 2;
/// `FSCRYPT_KEY_STATUS_INCOMPLETELY_REMOVED`.
pub const KEY_STATUS_INCOMPLETELY_REMOVED: u32 = 3;
/// `FSCRYPT_KEY_STATUS_FLAG_ADDED_BY_SELF`.
pub const KEY_STATUS_FLAG_ADDED_BY_SELF: u32 = 0x1;
/// `FSCRYPT_KEY_REMOVAL_STATUS_FLAG_FILES_BUSY`.
pub const KEY_REMOVAL_STATUS_FLAG_FILES_BUSY: u32 = 0x1;
/// `FSCRYPT_KEY_REMOVAL_STATUS_FLAG_OTHER_USERS`.
pub const KEY_REMOVAL_STATUS_FLAG_OTHER_USERS: u32 = 0x2;
