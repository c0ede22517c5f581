//! A throw-away ext4 filesystem with fscrypt enabled, in a sparse image file on a loop device.
//!
//! [`Ext4Image::create`] makes a temporary directory holding the image and the mount point, runs
//! `mkfs.ext4 -O encrypt[,stable_inodes]` and mounts the image with `mount -o loop`. Dropping it
//! always unmounts (lazily if the normal unmount fails) and deletes the directory, also when the test
//! panics. Every external command runs under `timeout`.
//!
//! Raw bytes are read from the *image file*, never from `/dev/loopN` (buffered reads of the loop
//! device can return stale data), and offline inspection with `debugfs` is only allowed while the
//! image is unmounted, so the journal has been checkpointed and everything is on disk.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::find_tool;

/// Seconds any external command may run before `timeout` kills it.
pub const COMMAND_TIMEOUT_SECS: u32 = 60;

/// ext4 inode flag: the inode uses extents.
pub const EXT4_EXTENTS_FL: u32 = 0x0008_0000;
/// ext4 inode flag: the inode is encrypted.
pub const EXT4_ENCRYPT_FL: u32 = 0x0000_0800;

/// How to make the filesystem.
#[derive(Clone, Debug)]
pub struct Ext4Config {
    /// Filesystem block size in bytes (`mkfs.ext4 -b`).
    pub block_size: u32,
    /// Whether to enable the `stable_inodes` feature (needed by the IV_INO_LBLK flags).
    pub stable_inodes: bool,
    /// Image size in MiB (the file is sparse).
    pub size_mib: u64,
    /// The filesystem UUID (`mkfs.ext4 -U`); random if None.
    pub uuid: Option<[u8; 16]>,
}

impl Default for Ext4Config {
    fn default() -> Self {
        Ext4Config {
            block_size: 4096,
            stable_inodes: true,
            size_mib: 64,
            uuid: None,
        }
    }
}

impl Ext4Config {
    /// The default (4 KiB blocks, `encrypt,stable_inodes`, 64 MiB) with another block size.
    pub fn with_block_size(block_size: u32) -> Self {
        Ext4Config {
            block_size,
            ..Ext4Config::default()
        }
    }
}

/// One directory entry as stored on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The inode number.
    pub ino: u64,
    /// The raw on-disk name (ciphertext in an encrypted directory).
    pub name: Vec<u8>,
}

/// The fields of an on-disk ext4 inode the tests look at.
#[derive(Clone, Debug)]
pub struct RawInode {
    /// `i_mode`.
    pub mode: u16,
    /// `i_size_lo | i_size_high << 32`.
    pub size: u64,
    /// `i_flags`.
    pub flags: u32,
    /// `i_block`: the extent tree root, block map, or fast-symlink data.
    pub i_block: [u8; 60],
}

/// The stored target of a symlink.
#[derive(Clone, Debug)]
pub struct SymlinkData {
    /// True for a fast symlink (target inside the inode's `i_block`).
    pub fast: bool,
    /// The first `i_size` bytes of the stored target.
    pub data: Vec<u8>,
    /// The byte right after them (ext4 stores a NUL there), if inside the storage.
    pub terminator: Option<u8>,
}

/// A mounted (or temporarily unmounted) ext4 image in its own temporary directory.
pub struct Ext4Image {
    test: String,
    dir: PathBuf,
    image: PathBuf,
    mnt: PathBuf,
    uuid: [u8; 16],
    block_size: u32,
    mounted: bool,
}

/// Runs `program args...` under `timeout`, with stdin closed; returns its output.
pub fn run<I, S>(program: &str, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let timeout = find_tool("timeout").expect("`timeout` not found");
    let prog = find_tool(program).unwrap_or_else(|| panic!("`{program}` not found"));
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    Command::new(timeout)
        .arg("-k")
        .arg("5")
        .arg(COMMAND_TIMEOUT_SECS.to_string())
        .arg(&prog)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} {args:?}: {e}"))
}

/// Runs a command and panics with its stderr unless it exits with 0; returns its stdout.
pub fn run_ok<I, S>(program: &str, args: I) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = run(program, &args);
    if !out.status.success() {
        panic!(
            "{program} {args:?} failed ({}){}:\n{}",
            out.status,
            if out.status.code() == Some(124) {
                " [timed out]"
            } else {
                ""
            },
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.stdout
}

/// Formats a UUID as mkfs.ext4 wants it (`8-4-4-4-12` lower-case hex).
pub fn uuid_string(u: &[u8; 16]) -> String {
    let h = hex::encode(u);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn random_uuid() -> [u8; 16] {
    let mut u = [0u8; 16];
    let mut f = File::open("/dev/urandom").expect("open /dev/urandom");
    io::Read::read_exact(&mut f, &mut u).expect("read /dev/urandom");
    u[6] = (u[6] & 0x0f) | 0x40; // version 4
    u[8] = (u[8] & 0x3f) | 0x80; // RFC 4122 variant
    u
}

fn unique_dir(test: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let clean: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("fscrypt-oracle-{clean}-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create {}: {e}", dir.display()),
        }
    }
}

impl Ext4Image {
    /// Makes and mounts a fresh filesystem for `test`. Panics (failing the test) on any error.
    pub fn create(test: &str, cfg: Ext4Config) -> Ext4Image {
        let dir = unique_dir(test);
        let uuid = cfg.uuid.unwrap_or_else(random_uuid);
        let mut img = Ext4Image {
            test: test.to_string(),
            image: dir.join("ext4.img"),
            mnt: dir.join("mnt"),
            dir,
            uuid,
            block_size: cfg.block_size,
            mounted: false,
        };
        std::fs::create_dir(&img.mnt).expect("create mount point");
        File::create(&img.image)
            .and_then(|f| f.set_len(cfg.size_mib << 20))
            .expect("create sparse image");
        let features = if cfg.stable_inodes {
            "encrypt,stable_inodes"
        } else {
            "encrypt"
        };
        let bs = cfg.block_size.to_string();
        let uuid = uuid_string(&img.uuid);
        run_ok(
            "mkfs.ext4",
            [
                OsStr::new("-q"),
                OsStr::new("-F"),
                OsStr::new("-b"),
                OsStr::new(&bs),
                OsStr::new("-O"),
                OsStr::new(features),
                OsStr::new("-U"),
                OsStr::new(&uuid),
                OsStr::new("-E"),
                OsStr::new("lazy_itable_init=0,lazy_journal_init=0,nodiscard"),
                img.image.as_os_str(),
            ],
        );
        img.mount();
        img
    }

    /// Mounts the image (again) at [`Ext4Image::mnt`].
    pub fn mount(&mut self) {
        assert!(!self.mounted, "{}: already mounted", self.test);
        // Concurrent `mount -o loop` calls can race for the same free loop device; retry a little.
        let mut last = None;
        for attempt in 0..5 {
            let out = run(
                "mount",
                [
                    OsStr::new("-o"),
                    OsStr::new("loop"),
                    self.image.as_os_str(),
                    self.mnt.as_os_str(),
                ],
            );
            if out.status.success() {
                self.mounted = true;
                return;
            }
            last = Some(out);
            std::thread::sleep(Duration::from_millis(100 * (attempt + 1)));
        }
        let out = last.unwrap();
        panic!(
            "{}: mount -o loop {} {} failed ({}): {}",
            self.test,
            self.image.display(),
            self.mnt.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Unmounts the image, so that `debugfs` and raw reads see everything. Panics if the unmount
    /// fails (for example because the test still holds a descriptor into the filesystem).
    pub fn unmount(&mut self) {
        assert!(self.mounted, "{}: not mounted", self.test);
        let mut last = None;
        for attempt in 0..5 {
            let out = run("umount", [self.mnt.as_os_str()]);
            if out.status.success() {
                self.mounted = false;
                return;
            }
            last = Some(out);
            std::thread::sleep(Duration::from_millis(100 * (attempt + 1)));
        }
        let out = last.unwrap();
        panic!(
            "{}: umount {} failed ({}): {} (is a file still open?)",
            self.test,
            self.mnt.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Unmounts and mounts again (drops every cached inode, dentry and key of this filesystem).
    pub fn remount(&mut self) {
        self.unmount();
        self.mount();
    }

    /// True while mounted.
    pub fn is_mounted(&self) -> bool {
        self.mounted
    }

    /// The mount point.
    pub fn mnt(&self) -> &Path {
        &self.mnt
    }

    /// A path below the mount point.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.mnt.join(rel)
    }

    /// The root directory of the mounted filesystem, opened (for the key ioctls).
    pub fn root(&self) -> File {
        assert!(self.mounted, "{}: not mounted", self.test);
        File::open(&self.mnt).unwrap_or_else(|e| panic!("open {}: {e}", self.mnt.display()))
    }

    /// The filesystem UUID (`s_uuid`, what IV_INO_LBLK keys are derived from).
    pub fn uuid(&self) -> [u8; 16] {
        self.uuid
    }

    /// The filesystem block size.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// log2 of the block size.
    pub fn block_bits(&self) -> u8 {
        self.block_size.trailing_zeros() as u8
    }

    /// The image file.
    pub fn image_path(&self) -> &Path {
        &self.image
    }

    /// Reads `len` bytes at byte `offset` of the image file.
    pub fn read_image(&self, offset: u64, len: usize) -> Vec<u8> {
        let f = File::open(&self.image).expect("open image");
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, offset)
            .unwrap_or_else(|e| panic!("read {len} bytes at {offset} of the image: {e}"));
        buf
    }

    /// Reads filesystem block `block` of the image.
    pub fn read_block(&self, block: u64) -> Vec<u8> {
        self.read_image(block * self.block_size as u64, self.block_size as usize)
    }

    /// Runs one `debugfs -R CMD` on the unmounted image; returns stdout. Panics if debugfs reports
    /// an error (anything on stderr besides its version banner).
    pub fn debugfs(&self, cmd: &str) -> String {
        assert!(
            !self.mounted,
            "{}: debugfs on a mounted image would miss the journal; unmount first",
            self.test
        );
        let out = run(
            "debugfs",
            [OsStr::new("-R"), OsStr::new(cmd), self.image.as_os_str()],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("debugfs "))
            .collect();
        if !out.status.success() || !errors.is_empty() {
            panic!(
                "{}: debugfs -R {cmd:?} failed ({}): {}",
                self.test,
                out.status,
                errors.join("\n")
            );
        }
        String::from_utf8(out.stdout).expect("debugfs output is not UTF-8")
    }

    /// The on-disk entries of directory `dir_ino` (without `.` and `..`), names as raw bytes, from
    /// `debugfs -R "ls -l -r <ino>"`.
    pub fn dir_entries(&self, dir_ino: u64) -> Vec<DirEntry> {
        let out = self.debugfs(&format!("ls -l -r <{dir_ino}>"));
        let mut entries = Vec::new();
        for line in out.lines() {
            if line.trim().is_empty() {
                continue;
            }
            let entry = parse_ls_line(line)
                .unwrap_or_else(|| panic!("cannot parse debugfs ls line {line:?}"));
            if entry.name != b"." && entry.name != b".." {
                entries.push(entry);
            }
        }
        entries
    }

    /// The value of extended attribute `name` of inode `ino` (`debugfs ea_get -f`), or None.
    pub fn xattr(&self, ino: u64, name: &str) -> Option<Vec<u8>> {
        let list = self.debugfs(&format!("ea_list <{ino}>"));
        let present = list.lines().any(|l| {
            let l = l.trim();
            l.starts_with(&format!("{name} (")) || l.starts_with(&format!("{name}="))
        });
        if !present {
            return None;
        }
        let out = self.dir.join(format!("xattr-{ino}-{name}"));
        let _ = std::fs::remove_file(&out);
        self.debugfs(&format!("ea_get -f {} <{ino}> {name}", out.display()));
        let value = std::fs::read(&out).expect("read ea_get output");
        let _ = std::fs::remove_file(&out);
        Some(value)
    }

    /// The stored fscrypt context of inode `ino` (the ext4 xattr "c" in the encryption index).
    pub fn encryption_context(&self, ino: u64) -> Vec<u8> {
        self.xattr(ino, "c")
            .unwrap_or_else(|| panic!("{}: inode {ino} has no encryption context", self.test))
    }

    /// The byte offset of inode `ino` in the image (`debugfs imap`).
    pub fn inode_offset(&self, ino: u64) -> u64 {
        let out = self.debugfs(&format!("imap <{ino}>"));
        // "Inode 17 is part of block group 0\n\tlocated at block 42, offset 0x0000"
        let rest = out
            .split("located at block ")
            .nth(1)
            .unwrap_or_else(|| panic!("unexpected imap output {out:?}"));
        let (block, rest) = rest.split_once(',').expect("imap: no comma");
        let off = rest
            .trim()
            .strip_prefix("offset 0x")
            .expect("imap: no offset");
        let block: u64 = block.trim().parse().expect("imap: block");
        let off = u64::from_str_radix(off.trim(), 16).expect("imap: offset");
        block * self.block_size as u64 + off
    }

    /// The on-disk inode `ino`, read straight from the image.
    pub fn raw_inode(&self, ino: u64) -> RawInode {
        let b = self.read_image(self.inode_offset(ino), 128);
        let u16_at = |o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap());
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        RawInode {
            mode: u16_at(0),
            size: u32_at(4) as u64 | (u32_at(0x6c) as u64) << 32,
            flags: u32_at(0x20),
            i_block: b[0x28..0x28 + 60].try_into().unwrap(),
        }
    }

    /// The physical data blocks of inode `ino` in logical order (`debugfs blocks`).
    pub fn blocks(&self, ino: u64) -> Vec<u64> {
        self.debugfs(&format!("blocks <{ino}>"))
            .split_ascii_whitespace()
            .map(|t| t.parse().expect("debugfs blocks: not a number"))
            .collect()
    }

    /// The stored target of symlink `ino`: from `i_block` for a fast symlink, else from its data
    /// block(s).
    pub fn symlink_data(&self, ino: u64) -> SymlinkData {
        let inode = self.raw_inode(ino);
        assert_eq!(
            inode.mode & 0o170000,
            0o120000,
            "{}: inode {ino} is not a symlink",
            self.test
        );
        let size = inode.size as usize;
        if inode.flags & EXT4_EXTENTS_FL == 0 && size < inode.i_block.len() {
            return SymlinkData {
                fast: true,
                data: inode.i_block[..size].to_vec(),
                terminator: Some(inode.i_block[size]),
            };
        }
        let mut stored = Vec::new();
        for b in self.blocks(ino) {
            stored.extend_from_slice(&self.read_block(b));
        }
        assert!(
            stored.len() >= size,
            "{}: symlink {ino} has {} stored bytes for i_size {size}",
            self.test,
            stored.len()
        );
        SymlinkData {
            fast: false,
            data: stored[..size].to_vec(),
            terminator: stored.get(size).copied(),
        }
    }
}

impl Drop for Ext4Image {
    fn drop(&mut self) {
        if self.mounted {
            let out = run("umount", [self.mnt.as_os_str()]);
            if !out.status.success() {
                eprintln!(
                    "{}: umount {} failed ({}), unmounting lazily",
                    self.test,
                    self.mnt.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                let out = run("umount", [OsStr::new("-l"), self.mnt.as_os_str()]);
                if !out.status.success() {
                    eprintln!(
                        "{}: lazy umount {} failed too: {}",
                        self.test,
                        self.mnt.display(),
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                    // Leave the directory in place rather than deleting below a live mount.
                    return;
                }
            }
            self.mounted = false;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("{}: cannot remove {}: {e}", self.test, self.dir.display());
        }
    }
}

/// Parses one line of `debugfs ls -l -r`:
/// `  INO  MODE (FT)  UID  GID  SIZE DD-Mon-YYYY HH:MM NAME`, where NAME escapes every byte outside
/// 0x20..0x7e and the backslash as `\xHH` (e2fsprogs >= 1.45.1), so it is unambiguous. The name is
/// everything after the single space that follows the time.
pub fn parse_ls_line(line: &str) -> Option<DirEntry> {
    let mut rest = line;
    let mut tokens = Vec::new();
    for _ in 0..8 {
        rest = rest.trim_start_matches(' ');
        let end = rest.find(' ')?;
        tokens.push(&rest[..end]);
        rest = &rest[end..];
    }
    let name = rest.strip_prefix(' ')?;
    let ino = tokens[0].trim_start_matches('<').trim_end_matches('>');
    let ino: u64 = ino.parse().ok()?;
    if !tokens[2].starts_with('(') || !tokens[6].contains('-') || !tokens[7].contains(':') {
        return None;
    }
    Some(DirEntry {
        ino,
        name: unescape_debugfs(name)?,
    })
}

/// Undoes debugfs's `\xHH` escaping of names.
pub fn unescape_debugfs(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b.get(i + 1) != Some(&b'x') || i + 4 > b.len() {
                return None;
            }
            let hex = std::str::from_utf8(&b[i + 2..i + 4]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_debugfs_ls_lines() {
        let e = parse_ls_line(
            "     13  100644 (1)      0      0       2 26-Nov-2026 06:27 \\x0cX.\\xefi \\x5c",
        )
        .unwrap();
        assert_eq!(e.ino, 13);
        assert_eq!(e.name, b"\x0cX.\xefi \\");
        let e = parse_ls_line("     12   40755 (2)      0      0    4096  6-Nov-2026 06:27  a")
            .unwrap();
        assert_eq!(e.ino, 12);
        assert_eq!(e.name, b" a");
    }
}
