//! Passphrase input as a person and a script meet it: the prompt on a real pseudo-terminal (no echo,
//! asked twice when new, Ctrl-C leaves the terminal as it was), stdin when it is a pipe, a passphrase
//! file, an extpass program, and raw key files. Each case runs the `read_passphrase` example, which
//! prints the length and SHA-256 of what it read, so the secret itself never needs to be printed.

#[path = "support/pty.rs"]
mod pty;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use fscryptfs::passphrase::{
    EXIT_INTERRUPTED, EXIT_PASSPHRASE_EMPTY, EXIT_READ_PASSPHRASE, MAX_PASSPHRASE_LEN,
};
use pty::{expect, pty_run, pty_run_with_timeout, send_bytes, send_line, CTRL_C};
use sha2::{Digest, Sha256};

/// The example binary, built on first use: `cargo test --test passphrase_input` builds only the test
/// target, not the examples, so build it with the same cargo, profile and target directory.
fn example() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        // target/<profile>/deps/passphrase_input-HASH
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary under target/<profile>/deps");
        let target_dir = profile_dir.parent().expect("target directory");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "-j2", "-p", "fscryptfs"])
            .args(["--example", "read_passphrase", "--manifest-path"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .arg("--target-dir")
            .arg(target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .expect("run cargo build --example read_passphrase");
        assert!(
            status.success(),
            "building the read_passphrase example failed"
        );
        let path = profile_dir.join("examples").join("read_passphrase");
        assert!(path.is_file(), "{} missing after the build", path.display());
        path
    })
}

/// What the example prints for a secret.
fn fingerprint(secret: &[u8]) -> String {
    format!(
        "len={} sha256={}",
        secret.len(),
        hex::encode(Sha256::digest(secret))
    )
}

/// Runs the example with `stdin_bytes` on a pipe as its stdin.
fn run_piped(args: &[&str], stdin_bytes: &[u8]) -> Output {
    let mut child = Command::new(example())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn read_passphrase");
    let mut stdin = child.stdin.take().expect("stdin");
    // The child may exit before reading everything (an oversized input): a broken pipe is fine.
    let _ = stdin.write_all(stdin_bytes);
    drop(stdin);
    child.wait_with_output().expect("wait read_passphrase")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim_end().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write test file");
    p
}

// ---- the terminal ----

#[test]
fn tty_prompt_reads_without_echo() {
    let secret = "correct horse battery";
    let out = pty_run(
        example(),
        &["--prompt", "custom passphrase for protector \"home\""],
        &[],
        &[
            expect("Enter custom passphrase for protector \"home\": "),
            send_line(secret),
            expect("len="),
        ],
    );
    assert_eq!(out.code(), 0, "transcript:\n{}", out.transcript);
    assert!(
        out.transcript.contains(&fingerprint(secret.as_bytes())),
        "wrong passphrase read; transcript:\n{}",
        out.transcript
    );
    assert!(
        !out.transcript.contains(secret),
        "the passphrase was echoed:\n{}",
        out.transcript
    );
    assert!(
        !out.transcript.contains("Confirm"),
        "an existing passphrase is asked once:\n{}",
        out.transcript
    );
    assert!(out.terminal_sane(), "terminal left changed: {out:?}");
}

#[test]
fn tty_prompt_ends_its_line_after_input() {
    let out = pty_run(
        example(),
        &[] as &[&str],
        &[],
        &[
            expect("Enter passphrase: "),
            send_line("abc"),
            expect("len="),
        ],
    );
    assert_eq!(out.code(), 0, "transcript:\n{}", out.transcript);
    // The newline the unechoed Enter did not print comes before the program's output.
    assert!(
        out.transcript
            .contains(&format!("Enter passphrase: \r\n{}", fingerprint(b"abc"))),
        "transcript:\n{:?}",
        out.transcript
    );
}

#[test]
fn tty_new_passphrase_is_asked_twice() {
    let secret = "tr0ub4dor&3";
    let out = pty_run(
        example(),
        &["--new"],
        &[],
        &[
            expect("Enter passphrase: "),
            send_line(secret),
            expect("Confirm passphrase: "),
            send_line(secret),
            expect("len="),
        ],
    );
    assert_eq!(out.code(), 0, "transcript:\n{}", out.transcript);
    assert!(out.transcript.contains(&fingerprint(secret.as_bytes())));
    assert!(
        !out.transcript.contains(secret),
        "echoed:\n{}",
        out.transcript
    );
    assert!(out.terminal_sane(), "terminal left changed: {out:?}");
}

#[test]
fn tty_new_passphrase_mismatch_is_refused() {
    let out = pty_run(
        example(),
        &["--new"],
        &[],
        &[
            expect("Enter passphrase: "),
            send_line("first try"),
            expect("Confirm passphrase: "),
            send_line("second try"),
            expect("do not match"),
        ],
    );
    assert_eq!(
        out.code(),
        EXIT_READ_PASSPHRASE,
        "transcript:\n{}",
        out.transcript
    );
    assert!(out.transcript.contains("entered passphrases do not match"));
    assert!(!out.transcript.contains("len="));
    assert!(!out.transcript.contains("first try") && !out.transcript.contains("second try"));
    assert!(out.terminal_sane(), "terminal left changed: {out:?}");
}

#[test]
fn tty_empty_passphrase_is_refused() {
    let out = pty_run(
        example(),
        &["--new"],
        &[],
        &[
            expect("Enter passphrase: "),
            send_line(""),
            expect("empty passphrase"),
        ],
    );
    assert_eq!(
        out.code(),
        EXIT_PASSPHRASE_EMPTY,
        "transcript:\n{}",
        out.transcript
    );
    assert!(!out.transcript.contains("Confirm"), "{}", out.transcript);
    assert!(out.terminal_sane(), "terminal left changed: {out:?}");
}

#[test]
fn tty_ctrl_c_restores_terminal_and_exits_130() {
    let out = pty_run(
        example(),
        &[] as &[&str],
        &[],
        &[
            expect("Enter passphrase: "),
            send_bytes(b"hunter2"),
            send_bytes(CTRL_C),
            expect("interrupted"),
        ],
    );
    assert_eq!(
        out.code(),
        EXIT_INTERRUPTED,
        "transcript:\n{}",
        out.transcript
    );
    assert!(
        !out.transcript.contains("hunter2"),
        "echoed:\n{}",
        out.transcript
    );
    assert!(!out.transcript.contains("len="));
    assert!(out.echo_after, "echo left off after Ctrl-C: {out:?}");
    assert!(out.terminal_sane(), "terminal left changed: {out:?}");
}

#[test]
fn tty_ctrl_c_at_confirmation_restores_terminal() {
    let out = pty_run(
        example(),
        &["--new"],
        &[],
        &[
            expect("Enter passphrase: "),
            send_line("first half"),
            expect("Confirm passphrase: "),
            send_bytes(CTRL_C),
            expect("interrupted"),
        ],
    );
    assert_eq!(
        out.code(),
        EXIT_INTERRUPTED,
        "transcript:\n{}",
        out.transcript
    );
    assert!(out.terminal_sane(), "terminal left changed: {out:?}");
}

#[test]
fn tty_erase_and_kill_edit_the_line() {
    // "abX", DEL, "c" gives "abc"; "zzz", Ctrl-U (kill the line), "d" gives "d".
    let out = pty_run(
        example(),
        &[] as &[&str],
        &[],
        &[
            expect("Enter passphrase: "),
            send_bytes(b"abX\x7fc"),
            send_line(""),
            expect("len="),
        ],
    );
    assert_eq!(out.code(), 0, "transcript:\n{}", out.transcript);
    assert!(
        out.transcript.contains(&fingerprint(b"abc")),
        "{}",
        out.transcript
    );

    let out = pty_run(
        example(),
        &[] as &[&str],
        &[],
        &[
            expect("Enter passphrase: "),
            send_bytes(b"zzz\x15"),
            send_line("d"),
            expect("len="),
        ],
    );
    assert_eq!(out.code(), 0, "transcript:\n{}", out.transcript);
    assert!(
        out.transcript.contains(&fingerprint(b"d")),
        "{}",
        out.transcript
    );
}

#[test]
fn tty_is_not_used_for_a_passphrase_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "pass", b"from a file\n");
    let out = pty_run(
        example(),
        &["--new", "--passphrase-file", f.to_str().unwrap()],
        &[],
        &[expect("len=")],
    );
    assert_eq!(out.code(), 0, "transcript:\n{}", out.transcript);
    assert!(!out.transcript.contains("Enter"), "{}", out.transcript);
    assert!(out.transcript.contains(&fingerprint(b"from a file")));
}

// ---- stdin when it is not a terminal ----

#[test]
fn stdin_pipe_with_or_without_trailing_newline_is_the_same() {
    let want = fingerprint(b"correct horse");
    for input in [
        &b"correct horse\n"[..],
        b"correct horse",
        b"correct horse\r\n",
    ] {
        let o = run_piped(&[], input);
        assert!(o.status.success(), "{input:?}: {}", stderr(&o));
        assert_eq!(stdout(&o), want, "input {input:?}");
        assert!(o.stderr.is_empty(), "no prompt on a pipe: {}", stderr(&o));
    }
    // Only one newline is dropped.
    let o = run_piped(&[], b"correct horse\n\n");
    assert_eq!(stdout(&o), fingerprint(b"correct horse\n"));
    // --new on a pipe reads once (no confirmation to ask for).
    let o = run_piped(&["--new"], b"correct horse\n");
    assert_eq!(stdout(&o), want);
}

#[test]
fn stdin_empty_is_refused() {
    for input in [&b""[..], b"\n", b"\r\n"] {
        let o = run_piped(&[], input);
        assert_eq!(o.status.code(), Some(EXIT_PASSPHRASE_EMPTY), "{input:?}");
        assert!(stderr(&o).contains("empty passphrase"), "{}", stderr(&o));
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn stdin_too_long_is_refused() {
    let max = vec![b'p'; MAX_PASSPHRASE_LEN];
    let o = run_piped(&[], &max);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), fingerprint(&max));

    let long = vec![b'p'; MAX_PASSPHRASE_LEN + 1];
    let o = run_piped(&[], &long);
    assert_eq!(
        o.status.code(),
        Some(EXIT_READ_PASSPHRASE),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("too big"), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
}

// ---- --passphrase-file ----

#[test]
fn file_strips_one_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let want = fingerprint(b"file secret");
    for (name, body) in [
        ("a", &b"file secret\n"[..]),
        ("b", b"file secret"),
        ("c", b"file secret\r\n"),
    ] {
        let f = write_file(dir.path(), name, body);
        let o = run_piped(&["--passphrase-file", f.to_str().unwrap()], b"NOT THIS\n");
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert_eq!(stdout(&o), want, "{name}");
    }
    let f = write_file(dir.path(), "empty", b"\n");
    let o = run_piped(&["--passphrase-file", f.to_str().unwrap()], b"");
    assert_eq!(
        o.status.code(),
        Some(EXIT_PASSPHRASE_EMPTY),
        "{}",
        stderr(&o)
    );
}

#[test]
fn file_too_big_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut max = vec![b'f'; MAX_PASSPHRASE_LEN];
    max.push(b'\n');
    let f = write_file(dir.path(), "max", &max);
    let o = run_piped(&["--passphrase-file", f.to_str().unwrap()], b"");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), fingerprint(&max[..MAX_PASSPHRASE_LEN]));

    let big = write_file(dir.path(), "big", &vec![b'f'; MAX_PASSPHRASE_LEN + 1]);
    let huge = write_file(dir.path(), "huge", &vec![b'f'; 1 << 20]);
    for f in [big, huge] {
        let o = run_piped(&["--passphrase-file", f.to_str().unwrap()], b"");
        assert_eq!(
            o.status.code(),
            Some(EXIT_READ_PASSPHRASE),
            "{}",
            stderr(&o)
        );
        let err = stderr(&o);
        assert!(
            err.contains(f.to_str().unwrap()) && err.contains("too big"),
            "{err}"
        );
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn file_missing_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("no-such-passfile");
    let o = run_piped(&["--passphrase-file", f.to_str().unwrap()], b"");
    assert_eq!(
        o.status.code(),
        Some(EXIT_READ_PASSPHRASE),
        "{}",
        stderr(&o)
    );
    let err = stderr(&o);
    assert!(err.contains(f.to_str().unwrap()), "{err}");
    assert!(err.contains("No such file or directory"), "{err}");
}

// ---- --extpass ----

#[test]
fn extpass_output_is_the_passphrase() {
    // Each --extpass is one argument, passed verbatim: no shell splits "printf '…'".
    let o = run_piped(
        &[
            "--extpass",
            "sh",
            "--extpass",
            "-c",
            "--extpass",
            "printf 'from extpass\\n'",
        ],
        b"NOT THIS\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), fingerprint(b"from extpass"));
    let o = run_piped(&["--extpass", "echo", "--extpass", "two  spaces"], b"");
    assert_eq!(stdout(&o), fingerprint(b"two  spaces"));
}

#[test]
fn extpass_failing_program_is_an_error_naming_it() {
    let o = run_piped(
        &[
            "--extpass",
            "sh",
            "--extpass",
            "-c",
            "--extpass",
            "echo leaked; exit 3",
        ],
        b"",
    );
    assert_eq!(
        o.status.code(),
        Some(EXIT_READ_PASSPHRASE),
        "{}",
        stderr(&o)
    );
    let err = stderr(&o);
    assert!(
        err.contains("\"sh\"") && err.contains("exit status 3"),
        "{err}"
    );
    assert!(
        o.stdout.is_empty(),
        "a failing program's output is not used"
    );
}

#[test]
fn extpass_absent_program_is_an_error_naming_it() {
    let o = run_piped(&["--extpass", "/nonexistent/fscryptfs-askpass"], b"");
    assert_eq!(
        o.status.code(),
        Some(EXIT_READ_PASSPHRASE),
        "{}",
        stderr(&o)
    );
    let err = stderr(&o);
    assert!(err.contains("/nonexistent/fscryptfs-askpass"), "{err}");
    assert!(err.contains("No such file or directory"), "{err}");
}

#[test]
fn extpass_endless_output_is_bounded() {
    // `yes` never stops: the read is bounded and the program killed, not waited for.
    let o = run_piped(&["--extpass", "yes"], b"");
    assert_eq!(
        o.status.code(),
        Some(EXIT_READ_PASSPHRASE),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("too big"), "{}", stderr(&o));
    let o = run_piped(&["--extpass", "true"], b"");
    assert_eq!(
        o.status.code(),
        Some(EXIT_PASSPHRASE_EMPTY),
        "{}",
        stderr(&o)
    );
}

// ---- raw key files ----

#[test]
fn raw_key_must_be_exactly_32_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let key: Vec<u8> = (0u8..32).collect();
    let ok = write_file(dir.path(), "key32", &key);
    let o = run_piped(&["--raw-key", ok.to_str().unwrap()], b"");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), fingerprint(&key));

    for n in [0usize, 31, 33, 64] {
        let f = write_file(dir.path(), &format!("key{n}"), &vec![7u8; n]);
        let o = run_piped(&["--raw-key", f.to_str().unwrap()], b"");
        assert_eq!(
            o.status.code(),
            Some(EXIT_READ_PASSPHRASE),
            "{n}: {}",
            stderr(&o)
        );
        let err = stderr(&o);
        assert!(err.contains(f.to_str().unwrap()), "{err}");
        assert!(
            err.contains("must be 32 bytes") && err.contains(&format!("not {n}")),
            "{err}"
        );
        assert!(o.stdout.is_empty());
    }

    let missing = dir.path().join("nokey");
    let o = run_piped(&["--raw-key", missing.to_str().unwrap()], b"");
    assert_eq!(o.status.code(), Some(EXIT_READ_PASSPHRASE));
    assert!(
        stderr(&o).contains(missing.to_str().unwrap()),
        "{}",
        stderr(&o)
    );
}

#[test]
fn raw_key_from_a_pipe_is_checked_by_reading() {
    // Not a regular file: the size is only known by reading (one byte more than a key).
    let key = [9u8; 32];
    let o = run_piped(&["--raw-key", "/dev/stdin"], &key);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), fingerprint(&key));
    let o = run_piped(&["--raw-key", "/dev/stdin"], &[9u8; 40]);
    assert_eq!(o.status.code(), Some(EXIT_READ_PASSPHRASE));
    assert!(stderr(&o).contains("not more than 32"), "{}", stderr(&o));
}

// ---- the driver itself: the no-echo checks above would catch an echo ----

#[test]
fn pty_driver_shows_echo_and_gives_a_controlling_terminal() {
    // An ordinary `read` with the terminal's defaults echoes what is typed: the transcript shows it,
    // so "not in the transcript" above really means "not echoed". Writing to /dev/tty works only
    // with a controlling terminal.
    let out = pty_run(
        "sh",
        &[
            "-c",
            "echo ready > /dev/tty; read line; echo \"got [$line]\"",
        ],
        &[],
        &[expect("ready"), send_line("visible words"), expect("got [")],
    );
    assert_eq!(out.code(), 0, "transcript:\n{}", out.transcript);
    assert!(
        out.transcript.contains("visible words\r\n")
            && out.transcript.contains("got [visible words]"),
        "transcript:\n{:?}",
        out.transcript
    );
    assert!(out.terminal_sane());
}

#[test]
fn pty_driver_times_out_with_the_transcript() {
    // A prompt that never comes fails the test (with what was shown) instead of hanging it, and the
    // child is killed.
    let started = std::time::Instant::now();
    let result = std::panic::catch_unwind(|| {
        pty_run_with_timeout(
            "sh",
            &["-c", "echo waiting; exec sleep 60"],
            &[],
            &[expect("Enter passphrase: ")],
            std::time::Duration::from_secs(1),
        )
    });
    let msg = match result {
        Ok(out) => panic!("expected a timeout, got {out:?}"),
        Err(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default(),
    };
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(msg.contains("timed out waiting for"), "{msg}");
    assert!(msg.contains("waiting"), "transcript in the message: {msg}");
}
