//! `fscryptfs` as `mount(8)`'s helper, so `mount -t fuse.fscryptfs BACKING MNT -o OPTS` and an
//! `/etc/fstab` line `BACKING MNT fuse.fscryptfs OPTS 0 0` work.
//!
//! `mount(8)` runs `/sbin/mount.fuse.fscryptfs` (searched in `/sbin`, `/sbin/fs.d`, `/sbin/fs`)
//! with its helper syntax: `mount.fuse.fscryptfs SOURCE DIR [-sfnv] [-N NS] [-o OPTS] [-t TYPE]`.
//! That file is a symlink to the `fscryptfs` binary, which recognises the name (`argv[0]`) and runs
//! `fscryptfs mount -o OPTS SOURCE DIR` (daemonized: it returns once the mount is live). Without the
//! symlink, `mount(8)` falls back to libfuse's `mount.fuse3`, which runs `fscryptfs SOURCE DIR -o
//! OPTS`: that form is recognised too (the first argument names a path, with a `/`, to a volume, so
//! no subcommand or typo of one is taken for it).
//!
//! The helper's flags: `-f` (mount(8)'s fake mode: check the volume and the mountpoint, mount
//! nothing; not `fscryptfs mount -f`), `-n` (no mtab: there is none to write) and `-v` are
//! accepted; `-s` (sloppy) leaves out unknown options with a warning instead of failing; `-t` must
//! name `fuse.fscryptfs` (or `fscryptfs`); `-N` (another mount namespace) is refused. The options go
//! to `fscryptfs mount -o` unchanged; the fstab-only ones (`noauto`,
//! `nofail`, `_netdev`, `user`, `x-systemd.*`, ...) are accepted and ignored there
//! (`fs::daemon::MountOptions::parse`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use fscryptfs::fs::daemon::MountOptions;
use fscryptfs::store::config::CONFIG_NAME;

use super::error::CliError;
use super::volume;

/// The names `mount(8)` looks the helper up by: `mount.` and the filesystem type.
const HELPER_NAMES: &[&str] = &["mount.fuse.fscryptfs", "mount.fscryptfs"];

/// When this process was started as a mount helper, mounts and exits (0, or the one error line and
/// its status); otherwise returns and `main` parses the command line.
pub fn run_if_helper() {
    let argv: Vec<OsString> = std::env::args_os().collect();
    if !is_helper(&argv) {
        return;
    }
    let code = match run(&argv[1..]) {
        Ok(()) => 0,
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("fscryptfs: {e}");
            }
            e.exit_code
        }
    };
    std::process::exit(code);
}

/// Started as `mount.fuse.fscryptfs` (by name), or as `fscryptfs PATH/TO/VOLUME DIR ...`
/// (`mount.fuse3`'s convention).
fn is_helper(argv: &[OsString]) -> bool {
    let name = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str());
    if name.is_some_and(|n| HELPER_NAMES.contains(&n)) {
        return true;
    }
    let Some(first) = argv.get(1) else {
        return false;
    };
    let first = Path::new(first);
    argv.len() >= 3
        && first.as_os_str().as_encoded_bytes().contains(&b'/')
        && first.join(CONFIG_NAME).exists()
}

/// What the helper was asked.
#[derive(Debug, Default, PartialEq)]
struct HelperArgs {
    source: PathBuf,
    target: PathBuf,
    options: Vec<String>,
    fake: bool,
    sloppy: bool,
}

/// Parses the helper syntax: two operands and the flags in any order (`-o` and `-t` take a
/// value, attached or as the next argument; single-letter flags may be grouped: `-nv`).
fn parse(args: &[OsString]) -> Result<HelperArgs, CliError> {
    let mut out = HelperArgs::default();
    let mut operands = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if !s.starts_with('-') || s == "-" {
            operands.push(PathBuf::from(a));
            continue;
        }
        let mut flags = s[1..].chars();
        while let Some(c) = flags.next() {
            match c {
                's' => out.sloppy = true,
                'n' | 'v' => {}
                'f' => out.fake = true,
                'o' | 't' | 'N' => {
                    let rest: String = flags.by_ref().collect();
                    let value = if rest.is_empty() {
                        it.next()
                            .map(|v| v.to_string_lossy().into_owned())
                            .ok_or_else(|| CliError::usage(format!("-{c} needs a value")))?
                    } else {
                        rest
                    };
                    match c {
                        'o' => out.options.push(value),
                        't' if matches!(value.as_str(), "fuse.fscryptfs" | "fscryptfs") => {}
                        't' => {
                            return Err(CliError::usage(format!(
                                "-t {value}: this helper mounts fuse.fscryptfs only"
                            )))
                        }
                        _ => {
                            return Err(CliError::usage(
                                "-N (a mount in another namespace) is not supported; run mount \
                                 inside that namespace (nsenter -m)",
                            ))
                        }
                    }
                }
                _ => {
                    return Err(CliError::usage(format!(
                        "unknown mount helper flag -{c} (usage: mount.fuse.fscryptfs BACKING \
                         MOUNTPOINT [-sfnv] [-o OPTIONS])"
                    )))
                }
            }
        }
    }
    let [source, target]: [PathBuf; 2] = operands.try_into().map_err(|ops: Vec<PathBuf>| {
        CliError::usage(format!(
            "the mount helper takes a backing directory and a mount point, not {} operand(s) \
             (usage: mount.fuse.fscryptfs BACKING MOUNTPOINT [-sfnv] [-o OPTIONS])",
            ops.len()
        ))
    })?;
    out.source = source;
    out.target = target;
    Ok(out)
}

fn run(args: &[OsString]) -> Result<(), CliError> {
    let mut h = parse(args)?;
    if h.sloppy {
        h.options = drop_unknown(&h.options);
    }
    if h.fake {
        // mount -f: everything but the mount itself.
        return volume::check_mount(&h.source, &h.target, &h.options);
    }
    volume::run_mount(volume::MountArgs::daemonized(h.source, h.target, h.options))
}

/// `-s` (sloppy): options this version does not know are left out, each with a warning on stderr,
/// instead of failing the mount. A malformed value of a known option still fails.
fn drop_unknown(options: &[String]) -> Vec<String> {
    let mut kept = Vec::new();
    for item in options
        .iter()
        .flat_map(|o| o.split(','))
        .filter(|i| !i.is_empty())
    {
        let one = vec![item.to_string()];
        let known = match super::protect::volume_key::split_secret_options(&one) {
            Ok((rest, _)) if !rest.is_empty() => !matches!(
                MountOptions::parse(&rest),
                Err(e) if e.starts_with("unknown mount option")
            ),
            _ => true,
        };
        if known {
            kept.push(item);
        } else {
            eprintln!("fscryptfs: warning: ignoring the unknown mount option {item:?} (-s)");
        }
    }
    if kept.is_empty() {
        Vec::new()
    } else {
        vec![kept.join(",")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<HelperArgs, CliError> {
        parse(&args.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn helper_syntax() {
        let h = p(&["/b", "/m", "-n", "-o", "noauto,ro", "-t", "fuse.fscryptfs"]).unwrap();
        assert_eq!(h.source, PathBuf::from("/b"));
        assert_eq!(h.target, PathBuf::from("/m"));
        assert_eq!(h.options, vec!["noauto,ro".to_string()]);
        assert!(!h.fake);
        let h = p(&["-snvf", "-orw", "/b", "/m"]).unwrap();
        assert!(h.fake);
        assert_eq!(h.options, vec!["rw".to_string()]);
        assert!(p(&["/b"]).is_err());
        assert!(p(&["/b", "/m", "/x"]).is_err());
        assert!(p(&["/b", "/m", "-t", "ext4"]).is_err());
        assert!(p(&["/b", "/m", "-N", "1"]).is_err());
        assert!(p(&["/b", "/m", "-o"]).is_err());
        assert!(p(&["/b", "/m", "-x"]).is_err());
        assert!(p(&["/b", "/m", "-s"]).unwrap().sloppy);
    }

    #[test]
    fn sloppy_drops_only_unknown_options() {
        let o = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            drop_unknown(&o(&["ro,bogus,nofail", "passfile=/k,commit=x,,frob=1"])),
            o(&["ro,nofail,passfile=/k,commit=x"])
        );
        assert!(drop_unknown(&o(&["bogus"])).is_empty());
    }

    #[test]
    fn recognised_by_name_or_by_a_volume_path() {
        let v = |a: &[&str]| is_helper(&a.iter().map(OsString::from).collect::<Vec<_>>());
        assert!(v(&["/sbin/mount.fuse.fscryptfs", "/b", "/m"]));
        assert!(v(&["mount.fscryptfs"]));
        assert!(!v(&["fscryptfs", "mount", "/b", "/m"]));
        assert!(!v(&["fscryptfs", "/nonexistent/volume", "/m"]));
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(CONFIG_NAME), b"").unwrap();
        let b = tmp.path().to_str().unwrap();
        assert!(v(&["fscryptfs", b, "/m", "-o", "rw"]));
        assert!(!v(&["fscryptfs", b]));
    }
}
