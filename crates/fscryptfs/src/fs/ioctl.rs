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
use fscrypt::hooks::{self, SetPolicy};
use fscrypt::keyring::BusyReport;
use fscrypt::policy::{policy_size, KeySpec, KEY_DESCRIPTOR_SIZE, KEY_IDENTIFIER_SIZE};
use fscrypt::secret::SecretBytes;
use fscrypt::{Errno, Result};
use fuser::Request;

use super::{errno, lock, wlock, Fs};
use crate::abi;
use crate::store::meta::{DirMeta, DIR_META_NAME};
use crate::store::sys_err;

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

/// A path on one line of the BUSY_FILES text: `\` and control characters (a newline in a name
/// would forge a line) escaped as `\\` and `\u{HEX}`.
fn escape_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if c.is_control() {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// The FSCRYPTFS_IOC_BUSY_FILES answer (layout in `abi`): a line per inode shown, then the
/// `hidden` line, NUL-terminated, in at most `room` bytes. Lines that do not fit are counted.
fn busy_files_text(report: &BusyReport, room: usize) -> Vec<u8> {
    // Room kept for the last line ("hidden " and two u64) and the NUL.
    const TAIL: usize = 64;
    let mut text = String::new();
    let mut cut = 0usize;
    for s in &report.shown {
        let b = &s.inode;
        let pids: Vec<String> = b.pids.iter().map(u32::to_string).collect();
        let path = b
            .path
            .as_deref()
            .map_or_else(|| "?".to_string(), escape_path);
        let mut line = format!("{} {path} [{}]", b.ino, pids.join(","));
        if s.other_pids > 0 {
            line.push_str(&format!(" +{}", s.other_pids));
        }
        line.push('\n');
        if cut > 0 || text.len() + line.len() + TAIL > room {
            cut += 1;
            continue;
        }
        text.push_str(&line);
    }
    text.push_str(&format!("hidden {} {cut}\n", report.hidden));
    let mut out = text.into_bytes();
    out.push(0);
    out
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
                let report = self.busy_report(caller, &spec);
                Ok(busy_files_text(&report, abi::ioc_size(cmd)))
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
        hooks::set_policy_permission(Self::caller(req), st.st_uid)?;
        self.check_writable()?;
        let _g = lock(&node.dir_lock);
        let what = self.describe(&node);
        let policy = match hooks::prepare_set_policy(
            &node.hook_inode(),
            bytes,
            &self.fsp,
            || self.user_empty(&node.fd(), &what),
            &self.keyring,
            Self::caller(req),
        )? {
            SetPolicy::Unchanged => return Ok(()),
            SetPolicy::Set(p) => p,
        };
        let ctx = Context::new_random(policy)?;
        let meta = DirMeta {
            ino: node.ino,
            ctx: Some(ctx),
        };
        self.replace_dir_meta(&node, &meta, &what)?;
        wlock(&node.state).ctx = Some(ctx);
        Ok(())
    }

    /// Replaces a directory's metadata atomically (fresh temporary file, fsync, rename, fsync).
    fn replace_dir_meta(&self, node: &super::Node, meta: &DirMeta, what: &str) -> Result<()> {
        crate::store::io::replace(
            &*node.fd(),
            std::ffi::OsStr::new(DIR_META_NAME),
            &meta.to_bytes(),
            0o644,
            true,
            &format!("{what}/{DIR_META_NAME}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fscrypt::keyring::{BusyInode, ShownBusy};

    fn shown(ino: u64, path: &str, pids: Vec<u32>, other_pids: usize) -> ShownBusy {
        ShownBusy {
            inode: BusyInode {
                ino,
                owner: Some(1000),
                path: Some(path.into()),
                pids,
            },
            other_pids,
        }
    }

    #[test]
    fn busy_files_text_carries_the_hidden_count_and_escapes_paths() {
        let report = BusyReport {
            shown: vec![
                shown(5, "/d/f", vec![10, 11], 0),
                shown(6, "/d/x\nhidden 0 0\\", vec![], 2),
            ],
            hidden: 3,
        };
        let out = busy_files_text(&report, 4096);
        assert_eq!(
            out,
            b"5 /d/f [10,11]\n6 /d/x\\u{a}hidden 0 0\\\\ [] +2\nhidden 3 0\n\0"
        );
        // Too small for the lines: they are counted, the last line always fits.
        let out = busy_files_text(&report, 80);
        assert_eq!(out, b"5 /d/f [10,11]\nhidden 3 1\n\0");
        let out = busy_files_text(&report, 64);
        assert_eq!(out, b"hidden 3 2\n\0");
    }
}
