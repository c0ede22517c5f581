//! `fscryptfs inspect`: read a volume's backing store offline, without any key.
//!
//! This is the debugfs of fscryptfs: it prints what fstests' `fscrypt-crypt-util` (our `fscryptfs
//! crypt`) needs to reproduce or decrypt the ciphertext by hand — the volume UUID, an inode's stable
//! number and context (policy fields, key identifier, nonce), the raw ciphertext of a name, of a
//! symlink target and of a file's data units in logical order with their indices.
//!
//! This file owns the command: its arguments, the dispatch of its subcommands and the byte dumps
//! (`name`, `data`, `extents`, `extent-data`, `symlink`); [`inode`] prints an inode and the volume.
//! Inodes are found through the offline reader ([`crate::offline::volume`]) by no-key path or by
//! stable inode number (`--ino N`, which finds every hard link). While it reads it holds the volume
//! lock shared ([`crate::offline::lock`]); a read-write mounted volume is refused unless `--force`.

pub mod inode;

use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use fscrypt::{Error, Result};

use crate::error::CommandError;
use crate::offline::lock::lock_for_reading;
use crate::offline::objects::{name_ciphertext_at, Kind, Stored};
use crate::offline::volume::{Entry, Volume};
use crate::store::meta::SymlinkTarget;
use crate::store::{io_err, read_full_at, FILE_HEADER_SIZE};
use inode::{crypt_cipher_name, open_extent_file, print_inode, print_volume};

/// `fscryptfs inspect`.
#[derive(Args, Debug)]
#[command(
    about = "Print a volume's stored bytes offline, without keys (ciphertext names, symlink targets, data units, contexts)",
    long_about = "Read the backing directory of an unmounted (or read-only mounted) volume and print \
what fscrypt-crypt-util (`fscryptfs crypt`) needs: the volume UUID, an inode's number and context, \
and the raw ciphertext of names, symlink targets and data units.\n\n\
PATH is a no-key path relative to the volume root: what `ls` shows on a mount without the keys \
(in encrypted directories the no-key names, which are also the backing names; elsewhere the user's \
names). `.` is the root. Instead of a PATH, `--ino N` finds an inode by its stable number.\n\n\
Byte output is lowercase hex by default, or binary with --raw.\n\n\
A volume mounted read-write is refused (its lock is held) unless --force.\n\n\
Exit status: 0 success, 1 failure (not found, corrupt, I/O), 2 bad arguments."
)]
pub struct InspectArgs {
    /// The volume's backing directory.
    backing: PathBuf,
    /// Read the volume even while it is mounted read-write (what is on disk may lag behind).
    #[arg(long, global = true)]
    force: bool,
    #[command(subcommand)]
    what: What,
}

/// Selects an inode: a no-key path or `--ino N`.
#[derive(Args, Debug)]
struct Target {
    /// No-key path relative to the volume root (`.` for the root).
    #[arg(required_unless_present = "ino", conflicts_with = "ino")]
    path: Option<PathBuf>,
    /// The stable inode number instead of a path.
    #[arg(long, value_name = "N")]
    ino: Option<u64>,
}

#[derive(Subcommand, Debug)]
enum What {
    /// The volume config: format, UUID, layout, removal mode, next inode number.
    Volume,
    /// An inode: kind, stable number, size, context fields and the `crypt` options for its key.
    Inode {
        #[command(flatten)]
        target: Target,
    },
    /// A directory's entries: `INO KIND NAME` per line (NAME as in PATHs, bytes escaped).
    Ls {
        #[command(flatten)]
        target: Target,
    },
    /// The ciphertext of entry ENTRY's name in directory DIR (the user's name in unencrypted ones).
    Name {
        /// The directory (no-key path).
        dir: PathBuf,
        /// The entry's no-key name.
        entry: PathBuf,
        /// Binary output instead of hex.
        #[arg(long)]
        raw: bool,
    },
    /// A regular file's stored data units in logical order. Hex: one line `INDEX HEX` per unit;
    /// --raw: the units back to back. Holes are printed as all-zero units unless --skip-holes.
    Data {
        #[command(flatten)]
        target: Target,
        /// Binary output (unit i at offset i * data-unit size unless --skip-holes).
        #[arg(long)]
        raw: bool,
        /// Leave out hole units (all-zero backing units, which read as zeros).
        #[arg(long)]
        skip_holes: bool,
    },
    /// A per-extent file's live mappings in logical order, one line each: `INDEX LOGICAL LENGTH
    /// CIPHER KEY-IDENTIFIER NONCE FIRST-UNIT BACKING-OFFSET` (the extent context's mode as a
    /// `crypt` CIPHER, its master key identifier and nonce in hex; FIRST-UNIT is the IV index of
    /// the mapping's first unit: `crypt --data-unit-index`).
    Extents {
        #[command(flatten)]
        target: Target,
    },
    /// The ciphertext of one mapping of a per-extent file (`extents` INDEX): its whole data units
    /// from BACKING-OFFSET. Decrypt with `fscryptfs crypt --decrypt --kdf=HKDF-SHA512
    /// --extent-nonce=NONCE --data-unit-index=FIRST-UNIT [--data-unit-size=DU] CIPHER KEY`.
    ExtentData {
        #[command(flatten)]
        target: Target,
        /// The mapping's INDEX in `extents`.
        #[arg(long, value_name = "K")]
        index: usize,
        /// Binary output instead of hex.
        #[arg(long)]
        raw: bool,
    },
    /// A symlink's stored target: the ciphertext of its fscrypt_symlink_data (the plaintext target
    /// when unencrypted).
    Symlink {
        #[command(flatten)]
        target: Target,
        /// Binary output instead of hex.
        #[arg(long)]
        raw: bool,
        /// The whole fscrypt_symlink_data (le16 length, then the ciphertext).
        #[arg(long)]
        with_length: bool,
    },
}

fn target_entries(vol: &Volume, t: &Target) -> Result<Vec<Entry>> {
    match (&t.path, t.ino) {
        (_, Some(ino)) => vol.find_ino(ino),
        (Some(p), None) => Ok(vec![vol.resolve(p)?]),
        (None, None) => Err(Error::invalid("a PATH or --ino is required")),
    }
}

fn target_entry(vol: &Volume, t: &Target) -> Result<Entry> {
    let mut v = target_entries(vol, t)?;
    Ok(v.swap_remove(0))
}

fn write_bytes(out: &mut impl Write, bytes: &[u8], raw: bool) -> io::Result<()> {
    if raw {
        out.write_all(bytes)
    } else {
        writeln!(out, "{}", hex::encode(bytes))
    }
}

/// Runs `fscryptfs inspect`.
pub fn run(args: InspectArgs) -> std::result::Result<(), CommandError> {
    let _lock = lock_for_reading(&args.backing, args.force, CommandError::op)?;
    let vol = Volume::open(&args.backing)?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let wr = |e: io::Error| CommandError::op(format!("writing stdout: {e}"));
    match &args.what {
        What::Volume => print_volume(&vol, &mut out).map_err(wr)?,
        What::Inode { target } => {
            let entries = target_entries(&vol, target)?;
            print_inode(&vol, &entries, &mut out).map_err(wr)?;
        }
        What::Ls { target } => {
            let dir = target_entry(&vol, target)?;
            if dir.stored.kind() != Kind::Dir {
                return Err(CommandError::op(format!(
                    "{}: not a directory",
                    dir.path.display()
                )));
            }
            let mut damaged = 0;
            for e in vol.list(&dir)? {
                let (ino, kind, name) = match &e {
                    Ok(e) => (
                        e.stored.ino().map_or("-".to_string(), |i| i.to_string()),
                        e.stored.kind().name(),
                        e.path.file_name().unwrap_or_default(),
                    ),
                    Err(d) => {
                        eprintln!("fscryptfs: {}", d.error.message());
                        damaged += 1;
                        (
                            "?".to_string(),
                            d.kind.map_or("?", Kind::name),
                            d.name.as_os_str(),
                        )
                    }
                };
                writeln!(out, "{ino} {kind} {}", name.as_bytes().escape_ascii()).map_err(wr)?;
            }
            if damaged > 0 {
                out.flush().map_err(wr)?;
                return Err(CommandError::op(format!(
                    "{damaged} entries of {} could not be read (run fscryptfs fsck)",
                    dir.path.display()
                )));
            }
        }
        What::Name { dir, entry, raw } => {
            let d = vol.resolve(dir)?;
            if d.stored.kind() != Kind::Dir {
                return Err(CommandError::op(format!(
                    "{}: not a directory",
                    dir.display()
                )));
            }
            let name = entry.as_os_str();
            if name.is_empty() || name.as_bytes().contains(&b'/') {
                return Err(CommandError::usage("ENTRY must be a single name"));
            }
            let bname = Volume::backing_name(&d, name)?;
            // The entry must exist (and be one of the directory's entries, not one of our files).
            let full = d.path.join(name);
            vol.resolve(&full)?;
            let bytes = match d.stored.ctx() {
                Some(_) => name_ciphertext_at(d.open_dir()?, &d.backing, &bname)?,
                None => name.as_bytes().to_vec(),
            };
            write_bytes(&mut out, &bytes, *raw).map_err(wr)?;
        }
        What::Data {
            target,
            raw,
            skip_holes,
        } => {
            let e = target_entry(&vol, target)?;
            print_data(&vol, &e, *raw, *skip_holes, &mut out)?;
        }
        What::Extents { target } => {
            let e = target_entry(&vol, target)?;
            let ef = open_extent_file(&vol, &e)?;
            for (i, x) in ef.extents().iter().enumerate() {
                writeln!(
                    out,
                    "{i} {} {} {} {} {} {} {}",
                    x.logical,
                    x.len,
                    crypt_cipher_name(x.ctx.mode),
                    hex::encode(x.ctx.master_key_identifier),
                    hex::encode(x.ctx.nonce),
                    x.first_unit,
                    x.backing_offset
                )
                .map_err(wr)?;
            }
        }
        What::ExtentData { target, index, raw } => {
            let e = target_entry(&vol, target)?;
            let ef = open_extent_file(&vol, &e)?;
            let list = ef.extents();
            let x = list.get(*index).ok_or_else(|| {
                CommandError::op(format!(
                    "{}: no mapping {index} (it has {})",
                    e.path.display(),
                    list.len()
                ))
            })?;
            let du = ef.data_unit_size() as u64;
            let what = e.backing.display().to_string();
            let f = e.open_file()?;
            let mut buf = vec![0u8; (x.len.div_ceil(du) * du) as usize];
            let n = read_full_at(&f, &mut buf, x.backing_offset)
                .map_err(|err| CommandError::from(io_err(&what, err)))?;
            if n != buf.len() {
                return Err(CommandError::op(format!(
                    "{what}: backing offset {}: short read",
                    x.backing_offset + n as u64
                )));
            }
            write_bytes(&mut out, &buf, *raw).map_err(wr)?;
        }
        What::Symlink {
            target,
            raw,
            with_length,
        } => {
            let e = target_entry(&vol, target)?;
            let bytes = match &e.stored {
                Stored::Symlink(SymlinkTarget::Plain { target, .. }) => target.clone(),
                Stored::Symlink(SymlinkTarget::Encrypted { data, .. }) => {
                    let what = e.backing.display().to_string();
                    let ct = fscrypt::symlink::ciphertext(data)
                        .map_err(|err| CommandError::op(format!("{what}: {}", err.message())))?;
                    if *with_length {
                        data[..2 + ct.len()].to_vec()
                    } else {
                        ct.to_vec()
                    }
                }
                _ => {
                    return Err(CommandError::op(format!(
                        "{}: not a symlink",
                        e.path.display()
                    )))
                }
            };
            write_bytes(&mut out, &bytes, *raw).map_err(wr)?;
        }
    }
    out.flush().map_err(wr)
}
fn print_data(
    vol: &Volume,
    e: &Entry,
    raw: bool,
    skip_holes: bool,
    out: &mut impl Write,
) -> std::result::Result<(), CommandError> {
    let Stored::File { header, .. } = &e.stored else {
        return Err(CommandError::op(format!(
            "{}: not a regular file",
            e.path.display()
        )));
    };
    if header.layout == crate::store::config::ContentsLayout::Extent {
        return Err(CommandError::op(format!(
            "{}: a per-extent file: use `extents` and `extent-data`",
            e.path.display()
        )));
    }
    let what = e.backing.display().to_string();
    let du = vol.data_unit_size(header.ctx.as_ref());
    let f = e.open_file()?;
    let mut buf = vec![0u8; du as usize];
    let wr = |err: io::Error| CommandError::op(format!("writing stdout: {err}"));
    let size = e.stored.per_file_size().unwrap_or(header.size);
    for i in 0..size.div_ceil(du) {
        buf.fill(0);
        read_full_at(&f, &mut buf, FILE_HEADER_SIZE + i * du)
            .map_err(|err| CommandError::from(io_err(&what, err)))?;
        if skip_holes && buf.iter().all(|&b| b == 0) {
            continue;
        }
        if raw {
            out.write_all(&buf).map_err(wr)?;
        } else {
            writeln!(out, "{i} {}", hex::encode(&buf)).map_err(wr)?;
        }
    }
    Ok(())
}
