//! Login and logout through PAM: a test user's directory on a mounted fscryptfs volume is
//! protected with a login protector (`encrypt --source=pam_passphrase`, run as the user), then
//! `pamtester` drives a PAM service of the test's own whose auth and session lines run
//! `fscryptfs pam` through `pam_exec`: authentication with the right password unlocks the
//! directory for the user, the last session's close locks it, a wrong password leaves it locked,
//! and the recovery passphrase `encrypt` wrote into the directory opens it too.
//!
//! Needs root, /dev/fuse, `pamtester`, `useradd`: skips loudly without them, fails under
//! FSCRYPTFS_REQUIRE_PRIVILEGED=1. It creates a user, `/etc/pam.d/fscryptfs-test` and (if absent)
//! `/.fscrypt`, all removed at the end; it shares `/.fscrypt` with protect_oracle, so the two run
//! one at a time (nextest test group `fscrypt-global`).

mod support;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use support::{bin, mount_volume};

const USER: &str = "fscryptfs-pam";
const PASSWORD: &str = "login words 42";
const SERVICE: &str = "fscryptfs-test";

#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    /// Shown in assertion messages.
    #[allow(dead_code)]
    stderr: String,
}

fn run(program: &str, uid: Option<u32>, env: &[(&str, &str)], args: &[&str], stdin: &str) -> Out {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(u) = uid {
        cmd.uid(u).gid(u);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Removes what the test made on the system, whatever happened.
struct Cleanup {
    root_tree: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/etc/pam.d/{SERVICE}"));
        let _ = Command::new("userdel").arg("-r").arg(USER).output();
        if !self.root_tree {
            let _ = std::fs::remove_dir_all("/.fscrypt");
        }
        let _ = std::fs::remove_dir_all("/run/fscryptfs");
    }
}

fn tools_present() -> bool {
    let have = |t: &str| {
        Command::new("which")
            .arg(t)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let missing: Vec<&str> = ["pamtester", "useradd", "chpasswd"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("FSCRYPTFS_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("missing {missing:?} (apt-get install pamtester passwd)");
    }
    eprintln!("SKIPPED: missing {missing:?} (apt-get install pamtester passwd)");
    false
}

#[test]
fn login_unlocks_and_logout_locks() {
    if !support::can_mount() || !tools_present() {
        return;
    }
    let _cleanup = Cleanup {
        root_tree: Path::new("/.fscrypt").exists(),
    };
    let _ = Command::new("userdel").arg("-r").arg(USER).output();
    let add = run("useradd", None, &[], &["-m", "-u", "64123", USER], "");
    assert_eq!(add.code, 0, "{add:?}");
    let uid = 64123u32;
    let pw = run("chpasswd", None, &[], &[], &format!("{USER}:{PASSWORD}\n"));
    assert_eq!(pw.code, 0, "{pw:?}");
    std::fs::write(
        format!("/etc/pam.d/{SERVICE}"),
        format!(
            "auth     required pam_unix.so\n\
             auth     optional pam_exec.so expose_authtok quiet {bin} pam\n\
             account  required pam_permit.so\n\
             session  optional pam_exec.so quiet {bin} pam\n",
            bin = bin()
        ),
    )
    .unwrap();

    let m = mount_volume(&[], "allow_other,default_permissions").expect("mount");
    let mnt = m.mnt.to_str().unwrap().to_string();
    let config = m.tmp.path().join("fscrypt.conf");
    std::fs::write(
        &config,
        r#"{"hash_costs":{"time":"1","memory":"64","parallelism":"1"},"options":{"policy_version":"2"}}"#,
    )
    .unwrap();
    // The test's temporary directory must be reachable by the user.
    std::fs::set_permissions(
        m.tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let env = [("FSCRYPTFS_CONFIG", cfg)];
    let root_ok = |args: &[&str]| {
        let o = run(bin(), None, &env, args, "");
        assert_eq!(o.code, 0, "{args:?}: {o:?}");
    };
    if !Path::new("/.fscrypt").exists() {
        root_ok(&["setup", "/", "--all-users"]);
    }
    root_ok(&["setup", &mnt, "--all-users"]);
    let home = format!("{mnt}/home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(uid), Some(uid)).unwrap();

    // The user protects the directory with the login passphrase.
    let enc = run(
        bin(),
        Some(uid),
        &env,
        &["encrypt", &home, "--source=pam_passphrase"],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(enc.code, 0, "{enc:?}");
    let readme = std::fs::read_to_string(format!("{home}/fscrypt_recovery_readme.txt")).unwrap();
    let recovery = readme
        .lines()
        .find(|l| l.starts_with("    ") && l.trim().len() == 20)
        .map(|l| l.trim().to_string())
        .expect("recovery passphrase in the readme");
    std::fs::write(format!("{home}/diary.txt"), "dear diary").unwrap();
    let user_reads = || run("cat", Some(uid), &[], &[&format!("{home}/diary.txt")], "");
    let lock = run(bin(), Some(uid), &env, &["lock", &home], "");
    assert_eq!(lock.code, 0, "{lock:?}");
    assert_ne!(user_reads().code, 0, "locked");

    // A wrong password: authentication fails, nothing is unlocked.
    let bad = run(
        "pamtester",
        None,
        &[],
        &[SERVICE, USER, "authenticate"],
        "not it\n",
    );
    assert_ne!(bad.code, 0, "{bad:?}");
    assert_ne!(user_reads().code, 0, "still locked");

    // Login: authenticate + open_session unlocks for the user.
    let login = run(
        "pamtester",
        None,
        &[],
        &[SERVICE, USER, "authenticate", "open_session"],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(login.code, 0, "{login:?}");
    let read = user_reads();
    assert_eq!(
        (read.code, read.stdout.as_str()),
        (0, "dear diary"),
        "{read:?}"
    );
    // Logout: the last session's close locks it.
    let logout = run(
        "pamtester",
        None,
        &[],
        &[SERVICE, USER, "close_session"],
        "",
    );
    assert_eq!(logout.code, 0, "{logout:?}");
    assert_ne!(user_reads().code, 0, "locked at logout");

    // The recovery passphrase opens it as well.
    let status = run(bin(), Some(uid), &env, &["status", &home], "");
    let rec = status
        .stdout
        .lines()
        .find(|l| l.contains("Recovery passphrase for home"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no recovery protector: {status:?}"))
        .to_string();
    let un = run(
        bin(),
        Some(uid),
        &env,
        &["unlock", &home, &format!("--unlock-with={mnt}:{rec}")],
        &format!("{recovery}\n"),
    );
    assert_eq!(un.code, 0, "{un:?}");
    assert_eq!(user_reads().stdout, "dear diary");
    let _ = run(bin(), Some(uid), &env, &["lock", &home], "");
    drop(m);
}
