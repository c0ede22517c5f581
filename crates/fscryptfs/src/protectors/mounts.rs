//! Which mounted filesystem a path is on, from `/proc/self/mountinfo`: the `fscrypt` tool keeps
//! one `.fscrypt` tree per filesystem, at its mount point, and names metadata `MNT:descriptor`.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Error, Result};

/// One mounted filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted.
    pub path: PathBuf,
    /// Its filesystem type (`ext4`, `fuse.fscryptfs`, `fuse`, ...).
    pub fs_type: String,
    /// Its source (device or backing directory).
    pub source: String,
    /// `major:minor` of its device.
    pub device: String,
}

impl Mount {
    /// Whether this is a FUSE mount.
    pub fn is_fuse(&self) -> bool {
        self.fs_type == "fuse" || self.fs_type.starts_with("fuse.")
    }

    /// Whether this is an fscryptfs volume (a mount made by an older version shows as plain
    /// `fuse`: then its source is a volume's backing directory).
    pub fn is_fscryptfs(&self) -> bool {
        self.fs_type == "fuse.fscryptfs"
            || (self.is_fuse()
                && Path::new(&self.source)
                    .join(crate::store::config::CONFIG_NAME)
                    .exists())
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|_| bytes[i] == b'\\')
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match octal {
            Some(v) => {
                out.push(v);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            if l.len() < 5 || r.len() < 2 {
                return None;
            }
            Some(Mount {
                path: unescape(l[4]),
                device: l[2].to_string(),
                fs_type: r[0].to_string(),
                source: unescape(r[1]).to_string_lossy().into_owned(),
            })
        })
        .collect()
}

/// All mounts of this process's namespace, in mount order.
pub fn all_mounts() -> Result<Vec<Mount>> {
    let mut text = String::new();
    std::fs::File::open("/proc/self/mountinfo")
        .and_then(|f| f.take(16 << 20).read_to_string(&mut text))
        .map_err(|e| Error::io("/proc/self/mountinfo", e))?;
    Ok(parse_mountinfo(&text))
}

/// The mount `path` is on: the last-mounted entry whose mount point is the longest prefix of the
/// path's canonical form.
pub fn mount_of(path: &Path) -> Result<Mount> {
    let canonical = std::fs::canonicalize(path).map_err(|e| Error::io(path.display(), e))?;
    let mounts = all_mounts()?;
    mounts
        .iter()
        .filter(|m| canonical.starts_with(&m.path))
        .max_by_key(|m| m.path.components().count())
        .and_then(|best| {
            // Overmounts: the last entry with the same mount point is the visible one.
            mounts.iter().rev().find(|m| m.path == best.path)
        })
        .cloned()
        .ok_or_else(|| Error::NotFound(format!("{}: no mount found", path.display())))
}

/// The mount whose mount point is exactly `path` (canonicalized).
pub fn mount_at(path: &Path) -> Result<Mount> {
    let m = mount_of(path)?;
    let canonical = std::fs::canonicalize(path).map_err(|e| Error::io(path.display(), e))?;
    if m.path != canonical {
        return Err(Error::Invalid(format!(
            "{}: not a mountpoint (it is on {})",
            path.display(),
            m.path.display()
        )));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_lines() {
        let text = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                    40 22 0:45 / /mnt/with\\040space rw - fuse.fscryptfs /srv/back rw,user_id=0\n\
                    garbage\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].path, PathBuf::from("/mnt/with space"));
        assert_eq!(m[1].fs_type, "fuse.fscryptfs");
        assert_eq!(m[1].source, "/srv/back");
        assert!(m[1].is_fuse());
        assert_eq!(m[0].device, "8:1");
    }

    #[test]
    fn root_is_a_mount() {
        assert_eq!(mount_of(Path::new("/")).unwrap().path, PathBuf::from("/"));
        assert!(mount_at(Path::new("/")).is_ok());
    }
}
