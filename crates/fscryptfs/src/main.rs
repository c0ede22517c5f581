//! `fscryptfs`: the command line. This file parses the command (clap), makes the process
//! non-dumpable, and dispatches to the `cli` room (one file per command family) or to the offline
//! tools (`fscryptfs::inspect`, `fscryptfs::fsck`); it prints the one-line error and exits with its
//! status.

mod cli;
mod syslog;

use clap::{CommandFactory, Parser, Subcommand};
use cli::error::{CliError, EXIT_USAGE};
use cli::protect::{encrypt, lockcmd, metadata, pam, setup, status};
use cli::{crypt, docs, keys, policy, volume};

/// fscrypt, rebuilt in userspace.
#[derive(Parser, Debug)]
#[command(
    name = "fscryptfs",
    version,
    about = "fscrypt's encryption model in userspace"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Encrypt or decrypt raw fscrypt data (fstests' fscrypt-crypt-util interface).
    Crypt(crypt::CryptArgs),
    /// Create an fscryptfs volume in an empty or new backing directory.
    Init(volume::InitArgs),
    /// Mount an fscryptfs volume (FUSE).
    Mount(volume::MountArgs),
    /// Write the configuration, or set up a filesystem's .fscrypt metadata directory.
    Setup(setup::SetupArgs),
    /// Encrypt an empty directory with a new policy, protected by a passphrase or key.
    Encrypt(encrypt::EncryptArgs),
    /// Unlock an encrypted directory with one of its protectors.
    Unlock(lockcmd::UnlockArgs),
    /// Lock an encrypted directory (remove its key).
    Lock(lockcmd::LockArgs),
    /// Show encrypted filesystems, a filesystem's metadata, or a directory's status.
    Status(status::StatusArgs),
    /// Manage protectors and policies.
    #[command(subcommand)]
    Metadata(metadata::MetadataCommand),
    /// Unlock login-protected directories at login, lock them at logout (run by pam_exec).
    Pam,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionsArgs),
    /// Write the man pages and completions into a directory (for packaging).
    #[command(hide = true)]
    GenerateDocs(docs::GenerateDocsArgs),
    Inspect(fscryptfs::inspect::InspectArgs),
    Fsck(fscryptfs::fsck::FsckArgs),
    #[command(flatten)]
    Key(keys::KeyCommand),
    #[command(flatten)]
    Policy(policy::PolicyCommand),
}

/// Keeps this process out of core dumps and out of other users' reach before any key arrives:
/// not dumpable (`PR_SET_DUMPABLE` 0, which also makes its /proc files root's and refuses ptrace
/// to anyone without CAP_SYS_PTRACE) and a core size limit of 0. Every command gets it: the
/// daemon, and the key and crypt commands that read raw keys. A failure is said, not fatal.
fn not_dumpable() {
    use rustix::process::{setrlimit, Resource, Rlimit};
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        eprintln!("fscryptfs: warning: cannot make the process non-dumpable: {e}");
    }
    let zero = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    if let Err(e) = setrlimit(Resource::Core, zero) {
        eprintln!("fscryptfs: warning: cannot set the core size limit to 0: {e}");
    }
}

fn main() {
    not_dumpable();
    // As mount(8)'s helper (`mount.fuse.fscryptfs SOURCE DIR -o OPTS`): mounts and exits.
    cli::mount_helper::run_if_helper();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                std::process::exit(
                    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                        EXIT_USAGE
                    } else {
                        0
                    },
                );
            }
            // clap's whole message (which argument, "did you mean", the usage line), its first
            // line in our form: `fscryptfs: <what is wrong>`.
            let rendered = e.render().to_string();
            let mut lines = rendered.trim_end().lines();
            let first = lines.next().unwrap_or("invalid arguments");
            eprintln!("fscryptfs: {}", first.trim_start_matches("error: "));
            for line in lines {
                eprintln!("{line}");
            }
            std::process::exit(EXIT_USAGE);
        }
    };
    let result: Result<(), CliError> = match cli.command {
        Command::Crypt(args) => crypt::run(args),
        Command::Init(args) => volume::run_init(args),
        Command::Mount(args) => volume::run_mount(args),
        Command::Setup(args) => setup::run(args),
        Command::Encrypt(args) => encrypt::run(args),
        Command::Unlock(args) => lockcmd::run_unlock(args),
        Command::Lock(args) => lockcmd::run_lock(args),
        Command::Status(args) => status::run(args),
        Command::Metadata(cmd) => metadata::run(cmd),
        Command::Pam => pam::run(),
        Command::Completions(args) => docs::completions(Cli::command(), args),
        Command::GenerateDocs(args) => docs::generate_docs(Cli::command(), args),
        Command::Key(cmd) => keys::run(cmd),
        Command::Policy(cmd) => policy::run(cmd),
        Command::Inspect(args) => fscryptfs::inspect::run(args),
        Command::Fsck(args) => fscryptfs::fsck::run(args),
    };
    if let Err(e) = result {
        if !e.message.is_empty() {
            eprintln!("fscryptfs: {e}");
        }
        std::process::exit(e.exit_code);
    }
}
