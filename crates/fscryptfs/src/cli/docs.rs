//! Man pages and shell completions, generated from the command-line definition itself (clap), so
//! they cannot drift from it: `fscryptfs completions SHELL` prints a completion script, and the
//! hidden `fscryptfs generate-docs DIR` writes what the package installs — `DIR/man/` (one page
//! per command, `fscryptfs.1`, `fscryptfs-mount.1`, `fscryptfs-metadata-create.1`, ...) and
//! `DIR/completions/` (bash, zsh, fish). The tree keeps the output in `dist/`; a test regenerates
//! it and fails when it is not current (`scripts/gen-docs` refreshes it).

use std::path::{Path, PathBuf};

use clap::{Args, Command};
use clap_complete::Shell;

use super::error::CliError;

/// Options of `fscryptfs completions`.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

/// Options of `fscryptfs generate-docs`.
#[derive(Args, Debug)]
pub struct GenerateDocsArgs {
    /// Where to write `man/` and `completions/`.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Prints the completion script for `shell`.
pub fn completions(mut cmd: Command, args: CompletionsArgs) -> Result<(), CliError> {
    clap_complete::generate(args.shell, &mut cmd, "fscryptfs", &mut std::io::stdout());
    Ok(())
}

/// Writes the man pages and the bash, zsh and fish completions under `args.dir`.
pub fn generate_docs(cmd: Command, args: GenerateDocsArgs) -> Result<(), CliError> {
    let io = |p: &Path, e: std::io::Error| CliError::io(&p.display().to_string(), e);
    let man = args.dir.join("man");
    std::fs::create_dir_all(&man).map_err(|e| io(&man, e))?;
    clap_mangen::generate_to(cmd.clone(), &man).map_err(|e| io(&man, e))?;
    let comp = args.dir.join("completions");
    std::fs::create_dir_all(&comp).map_err(|e| io(&comp, e))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut c = cmd.clone();
        clap_complete::generate_to(shell, &mut c, "fscryptfs", &comp).map_err(|e| io(&comp, e))?;
    }
    Ok(())
}
