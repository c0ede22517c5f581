//! The key and policy ioctls (crate::abi): the kernel's REMOVE_KEY(_ALL_USERS), GET_KEY_STATUS and
//! GET_NONCE with the kernel's struct layouts, checks and errnos, and fscryptfs' own ADD_KEY,
//! SET_POLICY, GET_POLICY and BUSY_FILES whose sizes fit FUSE's restricted ioctls. Everything else is
//! ENOTTY, as on a filesystem without encryption support.
//!
//! Raw key bytes are copied once, from `fuser`'s request buffer straight into locked memory
//! (`SecretBytes`); no other buffer of ours ever holds them (the reply is built from the header
//! alone), and the vendored `fuser` (vendor/fuser/PATCH.md) zeroes its request buffer after every
//! ioctl.

use fscrypt::context::Context;
use fscrypt::policy::{policy_size, KeySpec, Policy, KEY_DESCRIPTOR_SIZE, KEY_IDENTIFIER_SIZE};
use fscrypt::secret::SecretBytes;
use fscrypt::{Errno, Result};
use fuser::Request;

use super::{errno, lock, rlock, wlock, Fs, Kind};
use crate::abi;
use crate::store::meta::{DirMeta, DIR_META_NAME};
use crate::store::{names, sys_err};

/// `FS_IOC_GETFLAGS` (`_IOR('f', 1, long)`).
const FS_IOC_GETFLAGS: u32 = 0x8008_6601;
/// `FS_ENCRYPT_FL`.
const FS_ENCRYPT_FL: u32 = 0x800;

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

fn need(b: &[u8], n: usize) -> Result<()> {
    if b.len() < n {
        return Err(errno(Errno::INVAL, "ioctl argument too short"));
    }
    Ok(())
}

/// `struct fscrypt_key_specifier` (40 bytes) with the kernel's `valid_key_spec` check.
fn parse_key_spec(b: &[u8]) -> Result<KeySpec> {
    need(b, abi::KEY_SPECIFIER_SIZE)?;
    if u32_at(b, 4) != 0 {
        return Err(errno(
            Errno::INVAL,
            "key specifier: reserved field is nonzero",
        ));
    }
    match u32_at(b, 0) {
        abi::KEY_SPEC_TYPE_DESCRIPTOR => {
            let mut d = [0u8; KEY_DESCRIPTOR_SIZE];
            d.copy_from_slice(&b[8..8 + KEY_DESCRIPTOR_SIZE]);
            Ok(KeySpec::Descriptor(d))
        }
        abi::KEY_SPEC_TYPE_IDENTIFIER => {
            let mut i = [0u8; KEY_IDENTIFIER_SIZE];
            i.copy_from_slice(&b[8..8 + KEY_IDENTIFIER_SIZE]);
            Ok(KeySpec::Identifier(i))
        }
        t => Err(errno(
            Errno::INVAL,
            format!("key specifier: unknown type {t}"),
        )),
    }
}

impl Fs {
    pub(super) fn do_ioctl(
        &self,
        req: &Request,
        ino: u64,
        _fh: u64,
        cmd: u32,
        input: &[u8],
        _out_size: u32,
    ) -> Result<Vec<u8>> {
        let caller = Self::caller(req);
        match cmd {
            abi::FS_IOC_REMOVE_ENCRYPTION_KEY | abi::FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS => {
                need(input, abi::REMOVE_KEY_ARG_SIZE)?;
                let spec = parse_key_spec(input)?;
                if input[44..64].iter().any(|&b| b != 0) {
                    return Err(errno(
                        Errno::INVAL,
                        "remove key: reserved fields are nonzero",
                    ));
                }
                let all = cmd == abi::FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS;
                let locker = |s: &KeySpec, inos: &[u64]| self.lock_inodes(s, inos);
                let r = self.keyring.remove(caller, spec, all, &locker)?;
                if let Some(msg) = r.busy_message(&spec) {
                    tracing::warn!("{msg}");
                }
                let mut out = input[..abi::REMOVE_KEY_ARG_SIZE].to_vec();
                out[40..44].copy_from_slice(&r.flags().to_le_bytes());
                Ok(out)
            }
            abi::FS_IOC_GET_ENCRYPTION_KEY_STATUS => {
                need(input, abi::KEY_STATUS_ARG_SIZE)?;
                let spec = parse_key_spec(input)?;
                if input[40..64].iter().any(|&b| b != 0) {
                    return Err(errno(
                        Errno::INVAL,
                        "key status: reserved fields are nonzero",
                    ));
                }
                let st = self.key_status(caller, spec);
                let mut out = input[..abi::KEY_STATUS_ARG_SIZE].to_vec();
                out[64..].fill(0);
                out[64..68].copy_from_slice(&st.status_code().to_le_bytes());
                out[68..72].copy_from_slice(&st.status_flags().to_le_bytes());
                out[72..76].copy_from_slice(&st.user_count().to_le_bytes());
                Ok(out)
            }
            abi::FS_IOC_GET_ENCRYPTION_NONCE => {
                let node = self.usable_node(ino)?;
                let ctx = node
                    .ctx()
                    .ok_or_else(|| errno(Errno::NODATA, "not encrypted"))?;
                Ok(ctx.nonce().to_vec())
            }
            abi::FSCRYPTFS_IOC_ADD_KEY => self.ioctl_add_key(caller, input),
            abi::FSCRYPTFS_IOC_SET_POLICY => {
                self.ioctl_set_policy(req, ino, input)?;
                Ok(Vec::new())
            }
            abi::FSCRYPTFS_IOC_GET_POLICY => {
                need(input, 8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(&input[..8]);
                let room = u64::from_le_bytes(a);
                let node = self.usable_node(ino)?;
                let ctx = node
                    .ctx()
                    .ok_or_else(|| errno(Errno::NODATA, "not encrypted"))?;
                let p = ctx.policy().to_bytes();
                if (p.len() as u64) > room {
                    return Err(errno(Errno::OVERFLOW, "policy buffer too small"));
                }
                let mut out = (p.len() as u64).to_le_bytes().to_vec();
                out.extend_from_slice(&p);
                Ok(out)
            }
            abi::FSCRYPTFS_IOC_BUSY_FILES => {
                let spec = parse_key_spec(input)?;
                let mut text = String::new();
                for ino in self.keyring.active_inodes(&spec) {
                    let line = match rlock(&self.nodes).get(&ino).cloned() {
                        Some(n) => {
                            let pids: Vec<String> =
                                lock(&n.meta).pids.iter().map(u32::to_string).collect();
                            format!("{ino} {} [{}]\n", self.path_of(&n), pids.join(","))
                        }
                        None => format!("{ino} ? []\n"),
                    };
                    if text.len() + line.len() >= abi::ioc_size(abi::FSCRYPTFS_IOC_BUSY_FILES) {
                        break;
                    }
                    text.push_str(&line);
                }
                let mut out = text.into_bytes();
                out.push(0);
                Ok(out)
            }
            FS_IOC_GETFLAGS => {
                let node = self.usable_node(ino)?;
                let f = if node.is_encrypted() {
                    FS_ENCRYPT_FL
                } else {
                    0
                };
                Ok(f.to_le_bytes().to_vec())
            }
            _ => Err(errno(Errno::NOTTY, format!("unknown ioctl {cmd:#x}"))),
        }
    }

    fn ioctl_add_key(&self, caller: fscrypt::keyring::Caller, input: &[u8]) -> Result<Vec<u8>> {
        need(input, abi::ADD_KEY_HEADER_SIZE + 64)?;
        let spec = parse_key_spec(input)?;
        if input[48..80].iter().any(|&b| b != 0) {
            return Err(errno(Errno::INVAL, "add key: reserved fields are nonzero"));
        }
        if matches!(spec, KeySpec::Descriptor(_)) && !caller.privileged {
            return Err(errno(
                Errno::ACCESS,
                "adding a v1 key by descriptor needs CAP_SYS_ADMIN",
            ));
        }
        if u32_at(input, 44) != 0 {
            return Err(errno(
                Errno::OPNOTSUPP,
                "keys from the kernel keyring (key_id) cannot reach a FUSE daemon",
            ));
        }
        let raw_size = u32_at(input, 40) as usize;
        if !(fscrypt::keysetup::MIN_KEY_SIZE..=fscrypt::keysetup::MAX_KEY_SIZE).contains(&raw_size)
        {
            return Err(errno(Errno::INVAL, "raw key size must be 16 to 64 bytes"));
        }
        let raw = SecretBytes::copy_from(
            &input[abi::ADD_KEY_HEADER_SIZE..abi::ADD_KEY_HEADER_SIZE + raw_size],
        );
        // The reply: the header, then the raw key's room as zeros (never a copy of the key).
        let mut out = input[..abi::ADD_KEY_HEADER_SIZE].to_vec();
        out.resize(abi::ADD_KEY_HEADER_SIZE + 64, 0);
        match spec {
            KeySpec::Descriptor(d) => self.keyring.add_v1(caller, d, raw)?,
            KeySpec::Identifier(_) => {
                let id = self.keyring.add_v2(caller, raw)?;
                out[8..8 + KEY_IDENTIFIER_SIZE].copy_from_slice(&id);
                out[8 + KEY_IDENTIFIER_SIZE..40].fill(0);
            }
        }
        Ok(out)
    }

    /// `fscrypt_ioctl_set_policy` with the kernel's order of checks.
    fn ioctl_set_policy(&self, req: &Request, ino: u64, input: &[u8]) -> Result<()> {
        need(input, 1)?;
        let size = policy_size(input[0])
            .ok_or_else(|| errno(Errno::INVAL, format!("unknown policy version {}", input[0])))?;
        need(input, size)?;
        let bytes = &input[..size];
        let node = self.usable_node(ino)?;
        let st = rustix::fs::fstat(node.fd()).map_err(|e| sys_err(self.describe(&node), e))?;
        if req.uid() != 0 && req.uid() != st.st_uid {
            return Err(errno(Errno::ACCESS, "only the owner may set a policy"));
        }
        self.check_writable()?;
        let _g = lock(&node.dir_lock);
        if let Some(existing) = node.ctx() {
            if existing.policy().to_bytes() == bytes {
                return Ok(());
            }
            return Err(errno(Errno::EXIST, "a different policy is already set"));
        }
        if node.kind != Kind::Dir {
            return Err(errno(Errno::NOTDIR, "policies are set on directories"));
        }
        let what = self.describe(&node);
        if !self.user_empty_dir(&node, &what)? {
            return Err(errno(Errno::NOTEMPTY, "the directory is not empty"));
        }
        let policy = Policy::parse(bytes, &self.fsp)?;
        if let Policy::V2(p) = &policy {
            self.keyring
                .verify_key_added(Self::caller(req), &p.master_key_identifier)?;
        }
        let ctx = Context::new_random(policy)?;
        let meta = DirMeta {
            ino: node.ino,
            ctx: Some(ctx),
        };
        self.replace_dir_meta(&node, &meta, &what)?;
        wlock(&node.state).ctx = Some(ctx);
        Ok(())
    }

    fn user_empty_dir(&self, node: &super::Node, what: &str) -> Result<bool> {
        let dfd = rustix::fs::openat(
            node.fd(),
            ".",
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| sys_err(what, e))?;
        for ent in rustix::fs::Dir::new(dfd).map_err(|e| sys_err(what, e))? {
            let ent = ent.map_err(|e| sys_err(what, e))?;
            let n = ent.file_name().to_bytes();
            if n == b"." || n == b".." || names::is_reserved(n) {
                continue;
            }
            return Ok(false);
        }
        Ok(true)
    }

    /// Replaces a directory's metadata atomically (temporary file, fsync, rename, fsync).
    fn replace_dir_meta(&self, node: &super::Node, meta: &DirMeta, what: &str) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let tmp = format!("{DIR_META_NAME}.new");
        let w = format!("{what}/{tmp}");
        let fd = rustix::fs::openat(
            node.fd(),
            tmp.as_str(),
            rustix::fs::OFlags::CREATE
                | rustix::fs::OFlags::TRUNC
                | rustix::fs::OFlags::WRONLY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::from_raw_mode(0o644),
        )
        .map_err(|e| sys_err(&w, e))?;
        let f = std::fs::File::from(fd);
        f.write_all_at(&meta.to_bytes(), 0)
            .and_then(|_| f.sync_all())
            .map_err(|e| crate::store::io_err(&w, e))?;
        rustix::fs::renameat(node.fd(), tmp.as_str(), node.fd(), DIR_META_NAME)
            .map_err(|e| sys_err(&w, e))?;
        if let Ok(d) = rustix::fs::openat(
            node.fd(),
            ".",
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        ) {
            let _ = rustix::fs::fsync(&d);
        }
        Ok(())
    }
}
