//! Names on the backing filesystem: which names are ours, how user names map onto backing names, and
//! the side files that keep long ciphertext names.
//!
//! Every backing name starting with `.fscryptfs` belongs to fscryptfs. In an *unencrypted* directory
//! user names are stored as they are, except that a user name starting with `.fscryptfs` is stored as
//! `.fscryptfs.esc.` + name, so it can never collide with ours. In an *encrypted* directory an entry's
//! backing name is the kernel's no-key name of its ciphertext with a zero dirhash
//! (`NokeyName::encode([0; 8], ct)`): a locked listing is then the backing listing itself and a no-key
//! lookup is direct. Such names use only `A-Za-z0-9-_`, so `<name>.n` (the side file holding the full
//! ciphertext of a name longer than 149 bytes) and our dot-names cannot collide with an entry.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use fscrypt::nokey::{NokeyName, NOKEY_BYTES};
use fscrypt::{Errno, Error, Result};

/// Prefix of every backing name fscryptfs owns.
pub const RESERVED_PREFIX: &[u8] = b".fscryptfs";
/// Prefix of an escaped user name in an unencrypted directory.
pub const ESCAPE_PREFIX: &[u8] = b".fscryptfs.esc.";
/// Prefix of temporary names (creation in progress, directories being removed).
pub const TMP_PREFIX: &str = ".fscryptfs.tmp.";
/// Suffix of a long-name side file in an encrypted directory.
pub const SIDE_SUFFIX: &str = ".n";
/// The longest name.
pub const NAME_MAX: usize = 255;
/// The dirhash fscryptfs puts in no-key names (it has no hashed directories).
pub const DIRHASH: [u8; 8] = [0; 8];

/// Is this backing name one of ours (never shown to users)?
pub fn is_reserved(backing: &[u8]) -> bool {
    backing.starts_with(RESERVED_PREFIX) && !backing.starts_with(ESCAPE_PREFIX)
}

/// The backing name of user name `name` in an unencrypted directory. ENAMETOOLONG when escaping
/// makes it longer than 255 bytes (a user name of more than 240 bytes starting with `.fscryptfs`).
pub fn plain_to_backing(name: &OsStr) -> Result<OsString> {
    let b = name.as_bytes();
    if b.len() > NAME_MAX {
        return Err(Error::new(Errno::NAMETOOLONG, "name longer than 255 bytes"));
    }
    if b.starts_with(RESERVED_PREFIX) {
        if b.len() + ESCAPE_PREFIX.len() > NAME_MAX {
            return Err(Error::new(
                Errno::NAMETOOLONG,
                "a name starting with .fscryptfs is limited to 240 bytes in unencrypted directories",
            ));
        }
        let mut v = ESCAPE_PREFIX.to_vec();
        v.extend_from_slice(b);
        return Ok(OsString::from_vec(v));
    }
    Ok(name.to_os_string())
}

/// The user name of backing name `backing` in an unencrypted directory; None for our own names.
pub fn backing_to_plain(backing: &OsStr) -> Option<OsString> {
    let b = backing.as_bytes();
    if let Some(rest) = b.strip_prefix(ESCAPE_PREFIX) {
        return Some(OsString::from_vec(rest.to_vec()));
    }
    if is_reserved(b) {
        return None;
    }
    Some(backing.to_os_string())
}

/// The backing name of an entry with ciphertext name `ct` in an encrypted directory.
pub fn ct_to_backing(ct: &[u8]) -> OsString {
    OsString::from(NokeyName::encode(DIRHASH, ct))
}

/// Does an entry with ciphertext `ct` need a side file (its name only hashes the tail)?
pub fn needs_side_file(ct: &[u8]) -> bool {
    ct.len() > NOKEY_BYTES
}

/// The side file name of an entry in an encrypted directory.
pub fn side_name(backing: &OsStr) -> OsString {
    let mut v = backing.as_bytes().to_vec();
    v.extend_from_slice(SIDE_SUFFIX.as_bytes());
    OsString::from_vec(v)
}

/// Does the entry `backing` of an encrypted directory have a side file? Only a name in the
/// hashed no-key form (a ciphertext longer than [`NOKEY_BYTES`]) does, and that form has one
/// length.
pub fn has_side_file(backing: &[u8]) -> bool {
    is_encrypted_entry(backing) && backing.len() == fscrypt::nokey::NOKEY_NAME_MAX_ENCODED
}

/// Is this backing name an entry (not a side file, not ours) in an encrypted directory?
pub fn is_encrypted_entry(backing: &[u8]) -> bool {
    !backing.is_empty() && !backing.contains(&b'.')
}

/// A fresh temporary backing name.
pub fn tmp_name() -> Result<OsString> {
    let mut r = [0u8; 8];
    fscrypt::context::fill_random(&mut r)?;
    Ok(OsString::from(format!("{TMP_PREFIX}{}", hex::encode(r))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        let n = OsStr::new(".fscryptfs.dir");
        let b = plain_to_backing(n).unwrap();
        assert_eq!(b, OsStr::new(".fscryptfs.esc..fscryptfs.dir"));
        assert_eq!(backing_to_plain(&b).unwrap(), n);
        assert!(backing_to_plain(OsStr::new(".fscryptfs.dir")).is_none());
        assert_eq!(plain_to_backing(OsStr::new("a")).unwrap(), OsStr::new("a"));
        let long = format!(".fscryptfs{}", "x".repeat(235));
        assert_eq!(
            plain_to_backing(OsStr::new(&long)).unwrap_err().errno(),
            Errno::NAMETOOLONG
        );
    }

    #[test]
    fn side_files() {
        let ct = vec![9u8; 255];
        let b = ct_to_backing(&ct);
        assert!(needs_side_file(&ct));
        assert!(side_name(&b).len() <= NAME_MAX);
        assert!(is_encrypted_entry(b.as_bytes()));
        assert!(!is_encrypted_entry(side_name(&b).as_bytes()));
        // Exactly the ciphertexts longer than NOKEY_BYTES get a hashed name with a side file.
        for len in [
            16,
            32,
            NOKEY_BYTES - 1,
            NOKEY_BYTES,
            NOKEY_BYTES + 1,
            200,
            255,
        ] {
            let ct = vec![7u8; len];
            let b = ct_to_backing(&ct);
            assert_eq!(has_side_file(b.as_bytes()), needs_side_file(&ct), "{len}");
            assert!(!has_side_file(side_name(&b).as_bytes()));
        }
    }
}
