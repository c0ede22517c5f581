//! A table of the mistakes people make with the command line, each checked for its exit status
//! and for a message that says what is wrong and names the argument or path at fault: clap's whole
//! message for bad arguments (which argument, "did you mean", the usage line), one line
//! `fscryptfs: ...` for everything else, and "not an fscryptfs mount" said as such.

mod support;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use support::bin;

struct Case {
    args: &'static [&'static str],
    stdin: &'static [u8],
    code: i32,
    /// Every one must appear in stderr.
    says: &'static [&'static str],
}

const KEY: &[u8] = &[7u8; 64];

/// Placeholders replaced per run: `@EMPTY` an empty directory, `@VOL` an unmounted volume's
/// backing directory, `@FILE` a regular file.
const CASES: &[Case] = &[
    Case {
        args: &["mnt", "x", "y"],
        stdin: b"",
        code: 2,
        says: &[
            "unrecognized subcommand 'mnt'",
            "a similar subcommand exists: 'init'",
            "Usage:",
        ],
    },
    Case {
        args: &["unlok", "/tmp"],
        stdin: b"",
        code: 2,
        says: &["'unlok'", "'unlock'"],
    },
    Case {
        args: &["mount"],
        stdin: b"",
        code: 2,
        says: &[
            "required arguments were not provided",
            "<BACKING>",
            "<MOUNTPOINT>",
        ],
    },
    Case {
        args: &["add-key"],
        stdin: b"",
        code: 2,
        says: &["<MNT>"],
    },
    Case {
        args: &["add-key", "--descrptor=0011223344556677", "/tmp"],
        stdin: b"",
        code: 2,
        says: &["'--descrptor'", "'--descriptor'"],
    },
    Case {
        args: &["encrypt", "--sorce=raw_key", "@EMPTY"],
        stdin: b"",
        code: 2,
        says: &["'--sorce'", "'--source'"],
    },
    Case {
        args: &["mount", "/nonexistent/backing", "@EMPTY"],
        stdin: b"",
        code: 1,
        says: &["/nonexistent/backing", "No such file or directory"],
    },
    Case {
        args: &["mount", "@EMPTY", "@EMPTY"],
        stdin: b"",
        code: 1,
        says: &["@EMPTY"],
    },
    Case {
        args: &["mount", "@VOL", "/nonexistent/mnt"],
        stdin: b"",
        code: 1,
        says: &["/nonexistent/mnt"],
    },
    Case {
        args: &["mount", "-o", "bogus_option", "@VOL", "@EMPTY"],
        stdin: b"",
        code: 2,
        says: &["bogus_option"],
    },
    Case {
        args: &["add-key", "/proc"],
        stdin: KEY,
        code: 1,
        says: &[
            "/proc is not on an fscryptfs mount",
            "(proc) has no fscrypt support",
        ],
    },
    Case {
        args: &["get-policy", "/proc"],
        stdin: b"",
        code: 1,
        says: &["/proc is not on an fscryptfs mount"],
    },
    Case {
        args: &["add-key", "/tmp"],
        stdin: b"short",
        code: 2,
        says: &["key was too short"],
    },
    Case {
        args: &["set-policy", "0011", "@EMPTY"],
        stdin: b"",
        code: 2,
        says: &["invalid key identifier: 0011"],
    },
    Case {
        args: &["remove-key", "zz", "/tmp"],
        stdin: b"",
        code: 2,
        says: &["invalid key identifier: zz"],
    },
    Case {
        args: &["init", "@VOL"],
        stdin: b"",
        code: 1,
        says: &["@VOL is already an fscryptfs volume"],
    },
    Case {
        args: &["init", "@FILE"],
        stdin: b"",
        code: 1,
        says: &["@FILE"],
    },
    Case {
        args: &["inspect", "/nonexistent/v", "volume"],
        stdin: b"",
        code: 1,
        says: &["/nonexistent/v"],
    },
    Case {
        args: &["fsck", "/nonexistent/v"],
        stdin: b"",
        code: 2,
        says: &["/nonexistent/v"],
    },
    Case {
        args: &["unlock", "/proc"],
        stdin: b"",
        code: 1,
        says: &["/proc is not on an fscryptfs mount"],
    },
    Case {
        args: &["encrypt", "/nonexistent/d", "--name=x"],
        stdin: b"pw\n",
        code: 1,
        says: &["/nonexistent/d", "No such file or directory"],
    },
    Case {
        args: &["status", "/nonexistent/p"],
        stdin: b"",
        code: 1,
        says: &["/nonexistent/p"],
    },
    Case {
        args: &["metadata", "change-passphrase", "--protector=nocolon"],
        stdin: b"",
        code: 2,
        says: &["nocolon", "MOUNTPOINT:DESCRIPTOR"],
    },
    Case {
        args: &["metadata", "dump", "--protector=/:0123456789abcdef"],
        stdin: b"",
        code: 1,
        says: &[
            "filesystem / is not setup for use with fscrypt",
            "fscryptfs setup /",
        ],
    },
    Case {
        args: &["setup", "--time=1h", "@EMPTY"],
        stdin: b"",
        code: 2,
        says: &["--time", "unknown unit"],
    },
    Case {
        args: &["crypt", "NO-SUCH-CIPHER", "00"],
        stdin: b"",
        code: 2,
        says: &["NO-SUCH-CIPHER"],
    },
    Case {
        args: &["init", "--key=/x", "@EMPTY"],
        stdin: b"",
        code: 2,
        says: &["--encrypt"],
    },
];

#[test]
fn common_mistakes_get_a_message_that_names_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let vol = tmp.path().join("vol");
    let file = tmp.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let init = Command::new(bin()).arg("init").arg(&vol).output().unwrap();
    assert!(init.status.success(), "{init:?}");
    let subst = |a: &str| {
        a.replace("@EMPTY", empty.to_str().unwrap())
            .replace("@VOL", vol.to_str().unwrap())
            .replace("@FILE", file.to_str().unwrap())
    };
    let mut failures = Vec::new();
    for case in CASES {
        let args: Vec<String> = case.args.iter().map(|a| subst(a)).collect();
        let mut child = Command::new(bin())
            .args(&args)
            .env("FSCRYPTFS_CONFIG", tmp.path().join("no.conf"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _ = child.stdin.take().unwrap().write_all(case.stdin);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let code = out.status.code().unwrap_or(-1);
        let mut wrong = Vec::new();
        if code != case.code {
            wrong.push(format!("exit {code}, want {}", case.code));
        }
        if !err.starts_with("fscryptfs: ") {
            wrong.push("stderr does not start with `fscryptfs: `".into());
        }
        // Ours are one line; clap's carry its details and end with its --help hint.
        if err.trim_end().lines().count() > 1 && !err.contains("try '--help'") {
            wrong.push("more than one line".into());
        }
        for s in case.says {
            let s = subst(s);
            if !err.contains(&s) {
                wrong.push(format!("does not say {s:?}"));
            }
        }
        if !out.stdout.is_empty() {
            wrong.push("printed on stdout".into());
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "fscryptfs {args:?}: {}\n  stderr: {err:?}",
                wrong.join("; ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// FUSE setup failures of an ordinary user are one line with the fix.
#[test]
fn an_ordinary_users_fuse_failure_is_one_line_with_the_fix() {
    if !support::users_can_mount() {
        return;
    }
    let conf = std::fs::read_to_string("/etc/fuse.conf").unwrap_or_default();
    let allowed = conf
        .lines()
        .any(|l| l.trim_start().starts_with("user_allow_other"));
    let (_tmp, b, m) = support::nobody_volume_dirs();
    let run = |args: &[&std::ffi::OsStr]| {
        Command::new(bin())
            .args(args)
            .uid(support::NOBODY)
            .gid(support::NOBODY)
            .output()
            .unwrap()
    };
    let init = run(&[std::ffi::OsStr::new("init"), b.as_os_str()]);
    assert!(init.status.success(), "{init:?}");
    if allowed {
        eprintln!("note: /etc/fuse.conf allows allow_other; the allow_other case is not checked");
        return;
    }
    let out = run(&[
        std::ffi::OsStr::new("mount"),
        std::ffi::OsStr::new("-o"),
        std::ffi::OsStr::new("allow_other"),
        b.as_os_str(),
        m.as_os_str(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    let _ = Command::new("fusermount3").arg("-u").arg(&m).output();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("needs 'user_allow_other' in /etc/fuse.conf"),
        "{err}"
    );
}
