//! `fscryptfs`: the command line. Subcommands are thin: they parse arguments and call the layer
//! (`fscrypt` crate) or, later, the daemon.

mod cli_error;
mod crypt;
mod keycmd;
mod volume_cmd;

use clap::{Parser, Subcommand};
use cli_error::{CliError, EXIT_USAGE};

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
    Init(volume_cmd::InitArgs),
    /// Mount an fscryptfs volume (FUSE).
    Mount(volume_cmd::MountArgs),
    Inspect(fscryptfs::inspect::InspectArgs),
    Fsck(fscryptfs::fsck::FsckArgs),
    #[command(flatten)]
    Key(keycmd::KeyCommand),
}

fn main() {
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
            // One line, as every other error: clap's first line, without its "error: " prefix.
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!("fscryptfs: {}", first.trim_start_matches("error: "));
            std::process::exit(EXIT_USAGE);
        }
    };
    let result: Result<(), CliError> = match cli.command {
        Command::Crypt(args) => crypt::run(args),
        Command::Init(args) => volume_cmd::run_init(args),
        Command::Mount(args) => volume_cmd::run_mount(args),
        Command::Key(cmd) => keycmd::run(cmd),
        Command::Inspect(args) => fscryptfs::inspect::run(args).map_err(|f| CliError {
            exit_code: f.exit_code,
            message: f.message,
        }),
        Command::Fsck(args) => fscryptfs::fsck::run(args).map_err(|f| CliError {
            exit_code: f.exit_code,
            message: f.message,
        }),
    };
    if let Err(e) = result {
        eprintln!("fscryptfs: {e}");
        std::process::exit(e.exit_code);
    }
}
