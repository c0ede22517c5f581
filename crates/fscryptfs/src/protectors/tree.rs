//! The `.fscrypt` directory of one filesystem: `MNT/.fscrypt/{policies,protectors}/<descriptor>`,
//! opened and written under the `fscrypt` tool's trust rules (docs/SECURITY.md, "Protector
//! metadata").
//!
//! Metadata is hostile input like the backing store: another user may own `.fscrypt` on a shared
//! filesystem, plant symlinks or FIFOs, or grow a file without bound. So the mount point must not
//! be a symlink; the two subdirectories are opened without following symlinks; every directory and
//! file must be owned by root or the trusted user (the caller, unless root or
//! `allow_cross_user_metadata`); a world-writable subdirectory needs the sticky bit; files are
//! opened `O_PATH`, checked to be regular, reopened non-blocking, and read to at most 16384 bytes.
//! Writes are atomic (a fresh temporary file, `fchmod`, `fchown`, write, `fsync`, `rename`,
//! directory `fsync`), keep an existing file's mode and (for root) owner, and fall back to an
//! in-place rewrite only where the directory refuses new files (`EACCES`) and the file exists, as
//! the tool does for a user's login protector in root's `/.fscrypt`.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use prost::Message;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::proto::{
    is_descriptor, PolicyData, ProtectorData, Record, SourceType, MAX_METADATA_LEN,
};
use super::{Error, Result};
use crate::store::io as sio;

/// The tree's directory name at the root of a filesystem.
pub const FSCRYPT_DIR: &str = ".fscrypt";
/// The subdirectory of policies.
pub const POLICIES: &str = "policies";
/// The subdirectory of protectors.
pub const PROTECTORS: &str = "protectors";
/// The suffix of a link to a protector on another filesystem.
pub const LINK_SUFFIX: &str = ".link";

/// Whose metadata we accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trust {
    /// Accept only objects owned by root or this uid; `None` accepts any owner.
    pub trusted_uid: Option<u32>,
}

impl Trust {
    /// The tool's rule: a non-root caller trusts only itself and root, unless the config allows
    /// cross-user metadata.
    pub fn for_caller(allow_cross_user_metadata: bool) -> Self {
        let euid = rustix::process::geteuid().as_raw();
        Trust {
            trusted_uid: (euid != 0 && !allow_cross_user_metadata).then_some(euid),
        }
    }

    fn accepts(&self, uid: u32) -> bool {
        match self.trusted_uid {
            None => true,
            Some(t) => uid == 0 || uid == t,
        }
    }
}

/// How `setup` makes the subdirectories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupMode {
    /// 0755: only the owner (root) writes metadata.
    SingleUser,
    /// 01777: every user may write metadata (sticky).
    AllUsers,
}

/// The two kinds of record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `policies/`.
    Policy,
    /// `protectors/`.
    Protector,
}

impl Kind {
    fn dir_name(self) -> &'static str {
        match self {
            Kind::Policy => POLICIES,
            Kind::Protector => PROTECTORS,
        }
    }
    fn noun(self) -> &'static str {
        match self {
            Kind::Policy => "policy",
            Kind::Protector => "protector",
        }
    }
}

/// A record's failed check, said once with the file it is in ("corrupt metadata: PATH: what").
fn in_record(path: &Path, e: Error) -> Error {
    match e {
        Error::Corrupt(m) => Error::Corrupt(format!("{}: {m}", path.display())),
        other => other,
    }
}

pub(super) fn sys(what: impl std::fmt::Display, e: Errno) -> Error {
    Error::io(what, std::io::Error::from_raw_os_error(e.raw_os_error()))
}

pub(super) fn store_err(e: fscrypt::Error) -> Error {
    if e.errno() == Errno::UCLEAN {
        Error::Corrupt(e.to_string())
    } else {
        Error::Io(
            String::new(),
            std::io::Error::from_raw_os_error(e.errno().raw_os_error()),
        )
        .with_message(e.to_string())
    }
}

impl Error {
    fn with_message(self, m: String) -> Self {
        match self {
            Error::Io(_, e) => Error::Io(m, e),
            other => other,
        }
    }
}

/// The open `.fscrypt` tree of one filesystem.
pub struct MetadataDir {
    mount: PathBuf,
    tree_name: &'static str,
    policies: OwnedFd,
    protectors: OwnedFd,
    trust: Trust,
}

impl std::fmt::Debug for MetadataDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MetadataDir({})", self.mount.display())
    }
}

/// Opens the mount point itself (not through a symlink) and checks its owner.
pub(super) fn open_mount_dir(mount: &Path, trust: Trust) -> Result<OwnedFd> {
    let fd = rustix::fs::open(
        mount,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::NOTDIR | Errno::LOOP => Error::NotSetup(format!(
            "filesystem {}: not a directory (or a symlink)",
            mount.display()
        )),
        e => sys(mount.display(), e),
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| sys(mount.display(), e))?;
    if !trust.accepts(st.st_uid) {
        return Err(Error::Insecure(format!(
            "filesystem {}: owned by another user (uid {})",
            mount.display(),
            st.st_uid
        )));
    }
    Ok(fd)
}

impl MetadataDir {
    /// Opens the tree at `mount` (`CheckSetup`).
    pub fn open(mount: &Path, trust: Trust) -> Result<Self> {
        Self::open_named(mount, FSCRYPT_DIR, trust)
    }

    /// Opens a tree of the same layout named `tree_name` in directory `mount` (an encrypted-root
    /// volume keeps its own in the backing directory, docs/FORMAT.md).
    pub fn open_named(mount: &Path, tree_name: &'static str, trust: Trust) -> Result<Self> {
        let not_setup = || {
            Error::NotSetup(format!(
                "filesystem {} is not setup for use with fscrypt (run: fscryptfs setup {})",
                mount.display(),
                mount.display()
            ))
        };
        let mnt = open_mount_dir(mount, trust)?;
        // `.fscrypt` itself may be a symlink (the tool allows it, e.g. for a read-only root); any
        // other tree (a volume's, in its hostile backing directory) may not.
        let follow = if tree_name == FSCRYPT_DIR {
            OFlags::empty()
        } else {
            OFlags::NOFOLLOW
        };
        let base = rustix::fs::openat(
            &mnt,
            tree_name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC | follow,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::NOTDIR | Errno::LOOP if tree_name != FSCRYPT_DIR => Error::Insecure(format!(
                "{}: not a directory (a symlink is not followed there)",
                mount.join(tree_name).display()
            )),
            Errno::NOENT | Errno::NOTDIR | Errno::LOOP => not_setup(),
            e => sys(mount.join(tree_name).display(), e),
        })?;
        let what = mount.join(tree_name);
        let st = rustix::fs::fstat(&base).map_err(|e| sys(what.display(), e))?;
        if !trust.accepts(st.st_uid) {
            return Err(Error::Insecure(format!(
                "{}: owned by another user (uid {})",
                what.display(),
                st.st_uid
            )));
        }
        let sub = |name: &str| -> Result<OwnedFd> {
            let what = mount.join(tree_name).join(name);
            let fd = rustix::fs::openat(
                &base,
                name,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| match e {
                Errno::NOENT => not_setup(),
                e => sys(what.display(), e),
            })?;
            let st = rustix::fs::fstat(&fd).map_err(|e| sys(what.display(), e))?;
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                return Err(Error::Insecure(format!(
                    "{}: {}, not a directory",
                    what.display(),
                    sio::type_noun(FileType::from_raw_mode(st.st_mode))
                )));
            }
            if !trust.accepts(st.st_uid) {
                return Err(Error::Insecure(format!(
                    "{}: setup by another user (uid {})",
                    what.display(),
                    st.st_uid
                )));
            }
            if st.st_mode & 0o002 != 0 && st.st_mode & 0o1000 == 0 {
                return Err(Error::Insecure(format!(
                    "{}: insecure permissions (world-writable without the sticky bit)",
                    what.display()
                )));
            }
            Ok(fd)
        };
        Ok(MetadataDir {
            policies: sub(POLICIES)?,
            protectors: sub(PROTECTORS)?,
            mount: mount.to_path_buf(),
            tree_name,
            trust,
        })
    }

    /// The mount point this tree belongs to.
    pub fn mount(&self) -> &Path {
        &self.mount
    }

    /// Whose metadata this tree accepts.
    pub fn trust(&self) -> Trust {
        self.trust
    }

    fn dir(&self, kind: Kind) -> &OwnedFd {
        match kind {
            Kind::Policy => &self.policies,
            Kind::Protector => &self.protectors,
        }
    }

    /// The path of a record, for messages.
    pub fn path_of(&self, kind: Kind, name: &str) -> PathBuf {
        self.mount
            .join(self.tree_name)
            .join(kind.dir_name())
            .join(name)
    }

    /// The descriptors of every record of `kind` (a `.link` counts as its protector), in directory
    /// order as the tool lists them; temporary and hidden files, and (with a trusted user) other users' files, are skipped.
    pub fn list(&self, kind: Kind) -> Result<Vec<String>> {
        let what = self.path_of(kind, "");
        let dfd = sio::open_listing(self.dir(kind), &what.to_string_lossy()).map_err(store_err)?;
        let dir = rustix::fs::Dir::read_from(&dfd).map_err(|e| sys(what.display(), e))?;
        let mut out = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| sys(what.display(), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if let Some(t) = self.trust.trusted_uid {
                match rustix::fs::statat(self.dir(kind), &name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if st.st_uid == 0 || st.st_uid == t => {}
                    _ => continue,
                }
            }
            let desc = name.strip_suffix(LINK_SUFFIX).unwrap_or(&name).to_string();
            if !out.contains(&desc) {
                out.push(desc);
            }
        }
        Ok(out)
    }

    /// Reads a record's bytes under the trust rules; `None` when there is no such file.
    fn read_raw(&self, kind: Kind, name: &str) -> Result<Option<(Vec<u8>, u32)>> {
        let what = self.path_of(kind, name).to_string_lossy().into_owned();
        let Some(obj) =
            sio::open_object(self.dir(kind), OsStr::new(name), &what).map_err(store_err)?
        else {
            return Ok(None);
        };
        let st = rustix::fs::fstat(&obj).map_err(|e| sys(&what, e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(Error::Insecure(format!(
                "{what}: {}, not a regular file",
                sio::type_noun(FileType::from_raw_mode(st.st_mode))
            )));
        }
        if !self.trust.accepts(st.st_uid) {
            return Err(Error::Insecure(format!(
                "{what}: owned by another user (uid {})",
                st.st_uid
            )));
        }
        let f = sio::reopen_file(&obj, sio::Access::Read, &what).map_err(store_err)?;
        let bytes = sio::read_bounded_file(&f, MAX_METADATA_LEN as usize, &what)
            .map_err(|e| Error::Corrupt(e.to_string()))?;
        Ok(Some((bytes, st.st_uid)))
    }

    fn check_name(kind: Kind, desc: &str) -> Result<()> {
        let ok = match kind {
            Kind::Protector => is_descriptor(desc, 16),
            Kind::Policy => is_descriptor(desc, 16) || is_descriptor(desc, 32),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "{desc:?} is not a {} descriptor",
                kind.noun()
            )))
        }
    }

    /// Reads record `desc` of `kind` under the trust rules, decodes it and checks it (the tool's
    /// `CheckValidity`, and that it names itself `desc`); returns it with its file's owner.
    fn read_record<T: Record>(&self, kind: Kind, desc: &str) -> Result<(T, u32)> {
        Self::check_name(kind, desc)?;
        let path = self.path_of(kind, desc);
        let (bytes, owner) = self.read_raw(kind, desc)?.ok_or_else(|| {
            Error::NotFound(format!(
                "{} metadata for {desc} not found on filesystem {}",
                kind.noun(),
                self.mount.display()
            ))
        })?;
        let corrupt =
            |e: &dyn std::fmt::Display| Error::Corrupt(format!("{}: {e}", path.display()));
        let r = T::decode(&bytes[..]).map_err(|e| corrupt(&e))?;
        r.check().map_err(|e| in_record(&path, e))?;
        if r.descriptor() != desc {
            return Err(corrupt(&format!(
                "holds {} {}",
                kind.noun(),
                r.descriptor()
            )));
        }
        Ok((r, owner))
    }

    /// Reads and checks the protector `desc` of this filesystem (not following `.link`s). A login
    /// protector must be owned by root or its own uid, whoever is trusted.
    pub fn read_protector(&self, desc: &str) -> Result<ProtectorData> {
        let (p, owner) = self.read_record::<ProtectorData>(Kind::Protector, desc)?;
        if p.source_type()? == SourceType::PamPassphrase && owner != 0 && owner as i64 != p.uid {
            return Err(Error::Insecure(format!(
                "{}: login protector of uid {} owned by uid {owner}",
                self.path_of(Kind::Protector, desc).display(),
                p.uid
            )));
        }
        Ok(p)
    }

    /// Reads and checks the policy `desc`.
    pub fn read_policy(&self, desc: &str) -> Result<PolicyData> {
        self.read_record::<PolicyData>(Kind::Policy, desc)
            .map(|(p, _)| p)
    }

    /// Whether a record (or, for protectors, a link) named `desc` exists.
    pub fn exists(&self, kind: Kind, desc: &str) -> bool {
        let at = |name: &str| {
            rustix::fs::statat(self.dir(kind), name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
        };
        at(desc) || (kind == Kind::Protector && at(&format!("{desc}{LINK_SUFFIX}")))
    }

    /// The text of `protectors/<desc>.link`, if there is one.
    pub fn read_link(&self, desc: &str) -> Result<Option<String>> {
        Self::check_name(Kind::Protector, desc)?;
        let name = format!("{desc}{LINK_SUFFIX}");
        Ok(self
            .read_raw(Kind::Protector, &name)?
            .map(|(b, _)| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Writes a protector atomically (`owner`: chown to this uid, for root acting for a user).
    pub fn write_protector(&self, p: &ProtectorData, owner: Option<u32>) -> Result<()> {
        p.check()?;
        Self::check_name(Kind::Protector, &p.protector_descriptor)?;
        if self.exists(
            Kind::Protector,
            &format!("{}{LINK_SUFFIX}", p.protector_descriptor),
        ) {
            return Err(Error::Exists(format!(
                "protector {} is already linked on filesystem {}",
                p.protector_descriptor,
                self.mount.display()
            )));
        }
        self.write_raw(
            Kind::Protector,
            &p.protector_descriptor,
            &p.encode_to_vec(),
            owner,
        )
    }

    /// Writes a policy atomically.
    pub fn write_policy(&self, p: &PolicyData, owner: Option<u32>) -> Result<()> {
        p.check()?;
        Self::check_name(Kind::Policy, &p.key_descriptor)?;
        self.write_raw(Kind::Policy, &p.key_descriptor, &p.encode_to_vec(), owner)
    }

    /// Writes `protectors/<desc>.link`.
    pub fn write_link(&self, desc: &str, text: &str, owner: Option<u32>) -> Result<()> {
        Self::check_name(Kind::Protector, desc)?;
        self.write_raw(
            Kind::Protector,
            &format!("{desc}{LINK_SUFFIX}"),
            text.as_bytes(),
            owner,
        )
    }

    /// Removes a protector (its `.link` if it has one, else its file).
    pub fn remove_protector(&self, desc: &str) -> Result<()> {
        Self::check_name(Kind::Protector, desc)?;
        let link = format!("{desc}{LINK_SUFFIX}");
        let name = if self.exists(Kind::Protector, &link) {
            link
        } else {
            desc.to_string()
        };
        self.remove(Kind::Protector, &name)
    }

    /// Removes a policy file.
    pub fn remove_policy(&self, desc: &str) -> Result<()> {
        Self::check_name(Kind::Policy, desc)?;
        self.remove(Kind::Policy, desc)
    }

    fn remove(&self, kind: Kind, name: &str) -> Result<()> {
        let path = self.path_of(kind, name);
        match rustix::fs::unlinkat(self.dir(kind), name, AtFlags::empty()) {
            Ok(()) => sio::sync_dir(self.dir(kind), &path.to_string_lossy()).map_err(store_err),
            Err(Errno::NOENT) => Err(Error::NotFound(format!(
                "{} {name} not found on filesystem {}",
                kind.noun(),
                self.mount.display()
            ))),
            Err(e) => Err(sys(path.display(), e)),
        }
    }

    /// The atomic write of §"Atomic write" (module comment).
    fn write_raw(&self, kind: Kind, name: &str, bytes: &[u8], owner: Option<u32>) -> Result<()> {
        let dir = self.dir(kind);
        let path = self.path_of(kind, name);
        let what = path.to_string_lossy().into_owned();
        let existing = sio::open_object(dir, OsStr::new(name), &what).map_err(store_err)?;
        let (mut mode, mut chown) = (0o600, owner);
        if let Some(old) = &existing {
            let st = rustix::fs::fstat(old).map_err(|e| sys(&what, e))?;
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                return Err(Error::Insecure(format!(
                    "{what}: {}, not a regular file",
                    sio::type_noun(FileType::from_raw_mode(st.st_mode))
                )));
            }
            mode = st.st_mode & 0o777;
            if chown.is_none() && rustix::process::geteuid().is_root() {
                chown = Some(st.st_uid);
            }
        }
        let adjust = |f: &std::fs::File| -> fscrypt::Result<()> {
            let sys_err = |e| crate::store::sys_err(&what, e);
            rustix::fs::fchmod(f, Mode::from_raw_mode(mode)).map_err(sys_err)?;
            if let Some(uid) = chown {
                rustix::fs::fchown(f, Some(rustix::process::Uid::from_raw(uid)), None)
                    .map_err(sys_err)?;
            }
            Ok(())
        };
        match sio::replace_unchecked(
            dir.as_fd(),
            OsStr::new(name),
            bytes,
            0o600,
            true,
            &what,
            adjust,
        ) {
            Ok(()) => Ok(()),
            Err(e) if e.errno() == Errno::ACCESS => {
                // The directory refuses new files: the tool's fallback rewrites an existing file
                // in place (not atomic), e.g. a user's login protector in root's `/.fscrypt`.
                let Some(old) = existing else {
                    return Err(Error::Insecure(format!(
                        "{}: no permission to create metadata here",
                        path.parent().unwrap_or(&path).display()
                    )));
                };
                let f = sio::reopen_file(&old, sio::Access::Write, &what).map_err(store_err)?;
                f.set_len(0)
                    .and_then(|()| f.write_all_at(bytes, 0))
                    .and_then(|()| f.sync_all())
                    .map_err(|e| Error::io(&what, e))
            }
            Err(e) => Err(store_err(e)),
        }
    }
}

/// A `.link` file's text: `UUID=` (when known) and `PATH=` lines.
pub fn link_text(uuid: Option<&str>, mount: &Path) -> String {
    let mut s = String::new();
    if let Some(u) = uuid {
        s.push_str(&format!("UUID={u}\n"));
    }
    s.push_str(&format!("PATH={}\n", mount.display()));
    s
}

/// Parses a `.link` file: `(uuid, path)`; at least one is present.
pub fn parse_link(text: &str) -> Result<(Option<String>, Option<PathBuf>)> {
    let (mut uuid, mut path) = (None, None);
    for line in text.lines() {
        let parts: Vec<&str> = line.split('=').collect();
        if parts.len() != 2 {
            continue;
        }
        match parts[0] {
            "UUID" => uuid = Some(parts[1].to_string()),
            "PATH" => path = Some(PathBuf::from(parts[1])),
            _ => {}
        }
    }
    if uuid.is_none() && path.is_none() {
        return Err(Error::Corrupt(
            "protector link names neither UUID nor PATH".into(),
        ));
    }
    Ok((uuid, path))
}

/// The mount point a `.link` leads to: by UUID (`/dev/disk/by-uuid`) first, then by path.
pub fn resolve_link(text: &str) -> Result<PathBuf> {
    let (uuid, path) = parse_link(text)?;
    if let Some(u) = uuid {
        if let Ok(dev) = std::fs::canonicalize(Path::new("/dev/disk/by-uuid").join(&u)) {
            let dev = dev.to_string_lossy().into_owned();
            if let Ok(mounts) = super::mounts::all_mounts() {
                if let Some(m) = mounts.iter().find(|m| m.source == dev) {
                    return Ok(m.path.clone());
                }
            }
        }
    }
    path.ok_or_else(|| Error::NotFound("protector link: filesystem not found".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_format() {
        let t = link_text(Some("abcd"), Path::new("/"));
        assert_eq!(t, "UUID=abcd\nPATH=/\n");
        let (u, p) = parse_link("junk\nPATH=/x\nFOO=1\na=b=c\n").unwrap();
        assert_eq!(u, None);
        assert_eq!(p, Some(PathBuf::from("/x")));
        assert!(parse_link("\n").is_err());
    }
}
