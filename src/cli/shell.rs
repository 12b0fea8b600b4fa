//! Fitting the shell: `whatsup completions SHELL` prints a completion
//! script (clap_complete) and `whatsup man --out DIR` writes one man page
//! per command (clap_mangen), both generated from the same clap
//! definitions as `--help`, so they cannot drift.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory as _};

use super::Cli;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory for the pages (created if missing), such as
    /// /usr/local/share/man/man1
    #[arg(long, value_name = "DIR", default_value = "man")]
    pub out: PathBuf,
}

/// Prints the completion script for `args.shell` on stdout.
pub fn completions(args: &CompletionsArgs) -> Result<ExitCode> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "whatsup", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Writes `whatsup.1`, `whatsup-campaigns.1`, `whatsup-campaigns-schedule.1`…
pub fn man(args: &ManArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    clap_mangen::generate_to(Cli::command(), &args.out)
        .with_context(|| format!("writing man pages to {}", args.out.display()))?;
    let pages = std::fs::read_dir(&args.out)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "1"))
        .count();
    println!(
        "{pages} man pages in {}; try `man {}`",
        args.out.display(),
        args.out.join("whatsup.1").display()
    );
    Ok(ExitCode::SUCCESS)
}
