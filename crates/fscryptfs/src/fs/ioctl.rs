//! The key and policy ioctls, with the kernel's struct layouts, checks and errnos:
//! REMOVE_KEY(_ALL_USERS), GET_KEY_STATUS and GET_NONCE, whose arguments fit FUSE's restricted
//! ioctls; ADD_KEY, SET_POLICY, GET_POLICY(_EX) and GET_PWSALT, whose arguments do not, through the
//! bridge into the caller's memory (`caller_memory`); and fscryptfs' own ADD_KEY, SET_POLICY,
//! GET_POLICY and BUSY_FILES, whose sizes fit, for callers the bridge cannot reach. Everything else
//! is ENOTTY, as on a filesystem without encryption support. Numbers and argument layouts are
//! `fscrypt::uapi`'s: arguments are decoded and answers encoded there, never by offset here.
//!
//! Raw key bytes are copied once, into locked memory (`SecretBytes`): from the caller's memory
//! (the kernel's ADD_KEY: they never pass through a FUSE request), or from `fuser`'s request buffer
//! (fscryptfs' ADD_KEY; the vendored `fuser`, vendor/fuser/PATCH.md, zeroes that buffer after every
//! ioctl). No other buffer of ours ever holds them: replies are built from the header alone.

use fscrypt::context::Context;
use fscrypt::hooks::{self, SetPolicy};
use fscrypt::keyring::BusyReport;
use fscrypt::policy::{policy_size, KeySpec, POLICY_V1_VERSION, POLICY_V2_SIZE};
use fscrypt::secret::SecretBytes;
use fscrypt::uapi::{self, AddKeyArg, GetKeyStatusArg, GetPolicyExArg, KeySpecifier, RemoveKeyArg};
use fscrypt::{Errno, Result};

use super::caller_memory::CallerArg;
use super::locks::{lock, wlock};
use super::mount::Fs;
use super::types::{errno, Creds};
use crate::store::meta::{DirMeta, DIR_META_NAME};
use crate::store::sys_err;

fn need(b: &[u8], n: usize) -> Result<()> {
    if b.len() < n {
        return Err(errno(Errno::INVAL, "ioctl argument too short"));
    }
    Ok(())
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

/// The FSCRYPTFS_IOC_BUSY_FILES answer (layout in `uapi`): a line per inode shown, then the
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
    uapi::encode_busy_files_reply(&text)
}

impl Fs {
    /// One ioctl on `ino`: `input` is what FUSE carried, `arg` the caller's argument address
    /// (`compat`: a 32-bit caller, which the bridge does not serve).
    pub(super) fn do_ioctl(
        &self,
        req: &Creds,
        ino: u64,
        cmd: u32,
        arg: u64,
        compat: bool,
        input: &[u8],
    ) -> Result<Vec<u8>> {
        let caller = Self::caller(req);
        // The kernel's ioctls whose argument FUSE does not carry whole: the caller's memory first.
        let bridge = || {
            if compat {
                return Err(errno(
                    Errno::NOTTY,
                    "ioctl bridge: 32-bit callers are not served",
                ));
            }
            CallerArg::attach(req.pid(), cmd, arg)
        };
        match cmd {
            uapi::FS_IOC_ADD_ENCRYPTION_KEY => {
                let bridged = bridge()?;
                let header = AddKeyArg::decode(input)?;
                let header = self.ioctl_add_key(caller, header, |raw| {
                    bridged.read(uapi::ADD_KEY_HEADER_SIZE, raw)
                })?;
                Ok(header.encode().to_vec())
            }
            uapi::FS_IOC_SET_ENCRYPTION_POLICY => {
                // fscrypt_ioctl_set_policy: the version byte picks how much more to read.
                let arg = bridge()?;
                let mut policy = [0u8; POLICY_V2_SIZE];
                arg.read(0, &mut policy[..1])?;
                let size = policy_size(policy[0]).ok_or_else(|| {
                    errno(
                        Errno::INVAL,
                        format!("unknown policy version {}", policy[0]),
                    )
                })?;
                arg.read(0, &mut policy[..size])?;
                let read_only_mount = arg.on_read_only_mount()?;
                self.ioctl_set_policy(req, ino, &policy[..size], read_only_mount)?;
                Ok(Vec::new())
            }
            uapi::FS_IOC_GET_ENCRYPTION_POLICY => {
                let arg = bridge()?;
                let p = self.policy_of(ino)?;
                if p.first() != Some(&POLICY_V1_VERSION) {
                    return Err(errno(
                        Errno::INVAL,
                        "not a v1 policy (FS_IOC_GET_ENCRYPTION_POLICY_EX reads it)",
                    ));
                }
                arg.write(0, &p)?;
                Ok(Vec::new())
            }
            uapi::FS_IOC_GET_ENCRYPTION_POLICY_EX => {
                let arg = bridge()?;
                let reply = self.policy_ex_reply(ino, input)?;
                // The kernel copies `8 + policy size` bytes; FUSE takes back only the first 9.
                arg.write(0, &reply)?;
                Ok(reply[..uapi::ioc_size(cmd).min(reply.len())].to_vec())
            }
            uapi::FS_IOC_GET_ENCRYPTION_PWSALT => {
                let arg = bridge()?;
                // ext4 makes the salt under mnt_want_write_file: EROFS through a read-only mount.
                let salt = self.inodes.inos.pw_salt(!arg.on_read_only_mount()?)?;
                arg.write(0, &salt)?;
                Ok(Vec::new())
            }
            uapi::FS_IOC_REMOVE_ENCRYPTION_KEY | uapi::FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS => {
                let arg = RemoveKeyArg::decode(input)?;
                let spec = arg.key_spec.key_spec()?;
                if !arg.reserved_is_zero() {
                    return Err(errno(
                        Errno::INVAL,
                        "remove key: reserved fields are nonzero",
                    ));
                }
                let all = cmd == uapi::FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS;
                let locker = |s: &KeySpec, inos: &[u64]| self.lock_inodes(s, inos);
                let r = self.keyring.remove(caller, spec, all, &locker)?;
                if let Some(msg) = r.busy_message(&spec) {
                    tracing::warn!("{msg}");
                }
                let out = RemoveKeyArg {
                    removal_status_flags: r.flags(),
                    ..arg
                };
                Ok(out.encode().to_vec())
            }
            uapi::FS_IOC_GET_ENCRYPTION_KEY_STATUS => {
                let arg = GetKeyStatusArg::decode(input)?;
                let spec = arg.key_spec.key_spec()?;
                if !arg.reserved_is_zero() {
                    return Err(errno(
                        Errno::INVAL,
                        "key status: reserved fields are nonzero",
                    ));
                }
                let st = self.key_status(caller, spec);
                let out = arg.with_status(st.status_code(), st.status_flags(), st.user_count());
                Ok(out.encode().to_vec())
            }
            uapi::FS_IOC_GET_ENCRYPTION_NONCE => {
                let node = self.inodes.usable_node(ino)?;
                let ctx = node
                    .ctx()
                    .ok_or_else(|| errno(Errno::NODATA, "not encrypted"))?;
                Ok(ctx.nonce().to_vec())
            }
            uapi::FSCRYPTFS_IOC_ADD_KEY => {
                need(input, uapi::FSCRYPTFS_ADD_KEY_ARG_SIZE)?;
                let header = AddKeyArg::decode(input)?;
                let header = self.ioctl_add_key(caller, header, |raw| {
                    raw.copy_from_slice(header.raw_key(input)?);
                    Ok(())
                })?;
                Ok(header.encode_reply())
            }
            uapi::FSCRYPTFS_IOC_SET_POLICY => {
                // Our command checks its own mount's flag (fstatvfs) before it asks.
                self.ioctl_set_policy(req, ino, input, false)?;
                Ok(Vec::new())
            }
            uapi::FSCRYPTFS_IOC_GET_POLICY => self.policy_ex_reply(ino, input),
            uapi::FSCRYPTFS_IOC_BUSY_FILES => {
                let spec = KeySpecifier::decode(input)?.key_spec()?;
                let report = self.busy_report(caller, &spec);
                Ok(busy_files_text(&report, uapi::ioc_size(cmd)))
            }
            uapi::FS_IOC_GETFLAGS => {
                let node = self.inodes.usable_node(ino)?;
                let f = if node.is_encrypted() {
                    uapi::FS_ENCRYPT_FL
                } else {
                    0
                };
                Ok(uapi::encode_getflags(f))
            }
            _ => Err(errno(Errno::NOTTY, format!("unknown ioctl {cmd:#x}"))),
        }
    }

    /// The policy of `ino` as its struct bytes (ENODATA: not encrypted).
    fn policy_of(&self, ino: u64) -> Result<Vec<u8>> {
        let node = self.inodes.usable_node(ino)?;
        let ctx = node
            .ctx()
            .ok_or_else(|| errno(Errno::NODATA, "not encrypted"))?;
        Ok(ctx.policy().to_bytes())
    }

    /// `fscrypt_ioctl_get_policy_ex`'s answer to the request `input` (its 8-byte room first):
    /// the size and the policy, EOVERFLOW when the room is smaller.
    fn policy_ex_reply(&self, ino: u64, input: &[u8]) -> Result<Vec<u8>> {
        let room = GetPolicyExArg::decode(input)?.policy_size;
        let p = self.policy_of(ino)?;
        if (p.len() as u64) > room {
            return Err(errno(Errno::OVERFLOW, "policy buffer too small"));
        }
        Ok(GetPolicyExArg::with_policy(&p)?.encode_reply())
    }

    /// `fscrypt_ioctl_add_key` on the header `arg`, with the kernel's order of checks; `read_raw`
    /// fills the raw key (its size checked first) straight into locked memory. Returns the header
    /// as answered (a v2 key's identifier in its key specifier).
    fn ioctl_add_key(
        &self,
        caller: fscrypt::keyring::Caller,
        arg: AddKeyArg,
        read_raw: impl FnOnce(&mut [u8]) -> Result<()>,
    ) -> Result<AddKeyArg> {
        let spec = arg.key_spec.key_spec()?;
        if !arg.reserved_is_zero() {
            return Err(errno(Errno::INVAL, "add key: reserved fields are nonzero"));
        }
        if matches!(spec, KeySpec::Descriptor(_)) && !caller.privileged {
            return Err(errno(
                Errno::ACCESS,
                "adding a v1 key by descriptor needs CAP_SYS_ADMIN",
            ));
        }
        if arg.key_id != 0 {
            if arg.raw_size != 0 {
                return Err(errno(
                    Errno::INVAL,
                    "add key: a keyring key (key_id) and a raw key both given",
                ));
            }
            return Err(errno(
                Errno::OPNOTSUPP,
                "keys from the kernel keyring (key_id) cannot reach a FUSE daemon",
            ));
        }
        let raw_size = arg.raw_size as usize;
        if !(fscrypt::keysetup::MIN_KEY_SIZE..=fscrypt::keysetup::MAX_KEY_SIZE).contains(&raw_size)
        {
            return Err(errno(Errno::INVAL, "raw key size must be 16 to 64 bytes"));
        }
        let mut raw = SecretBytes::zeroed(raw_size);
        read_raw(raw.as_mut())?;
        // The answer is the header alone (never a copy of the key).
        let (out, added) = match spec {
            KeySpec::Descriptor(d) => {
                self.keyring.add_v1(caller, d, raw)?;
                (arg, spec)
            }
            KeySpec::Identifier(_) => {
                let id = self.keyring.add_v2(caller, raw)?;
                let added = KeySpec::Identifier(id);
                let out = AddKeyArg {
                    key_spec: added.into(),
                    ..arg
                };
                (out, added)
            }
        };
        self.key_added(&added);
        Ok(out)
    }

    /// `fscrypt_ioctl_set_policy` with the kernel's order of checks; `read_only_mount`: the
    /// caller's descriptor is on a read-only (bind) mount (`mnt_want_write_file`'s EROFS).
    fn ioctl_set_policy(
        &self,
        req: &Creds,
        ino: u64,
        input: &[u8],
        read_only_mount: bool,
    ) -> Result<()> {
        let bytes = uapi::decode_set_policy(input)?;
        let node = self.inodes.usable_node(ino)?;
        let st = rustix::fs::fstat(node.fd()).map_err(|e| sys_err(self.describe(&node), e))?;
        hooks::set_policy_permission(Self::caller(req), st.st_uid)?;
        if read_only_mount {
            return Err(errno(Errno::ROFS, "read-only mount"));
        }
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
        // ext4's rule: the root directory gets no policy (EPERM). A volume encrypted from its root
        // gets its root's policy at `init --encrypt`, never through this ioctl.
        if node.ino == crate::store::config::ROOT_INO {
            return Err(errno(
                Errno::PERM,
                "the root directory cannot be given a policy (fscryptfs init --encrypt makes a \
                 volume encrypted from its root)",
            ));
        }
        let ctx = Context::new_random(policy)?;
        let meta = DirMeta {
            ino: node.ino,
            ctx: Some(ctx),
        };
        self.replace_dir_meta(&node, &meta, &what)?;
        if let Some(keys) = wlock(&node.state).keys_mut() {
            keys.ctx = Some(ctx);
        }
        Ok(())
    }

    /// Replaces a directory's metadata atomically (fresh temporary file, fsync, rename, fsync).
    fn replace_dir_meta(
        &self,
        node: &super::node::Node,
        meta: &DirMeta,
        what: &(impl std::fmt::Display + ?Sized),
    ) -> Result<()> {
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
