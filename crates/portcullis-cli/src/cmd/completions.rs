//! `portcullis completions SHELL`: a shell completion script on stdout.

use clap_complete::Shell;

use crate::Outcome;

/// Print a completion script for SHELL (bash, elvish, fish, powershell,
/// zsh), e.g. `portcullis completions bash > ~/.local/share/bash-completion/completions/portcullis`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The shell.
    shell: Shell,
}

pub(crate) fn run(args: Args, mut cmd: clap::Command) -> Outcome {
    let name = cmd.get_name().to_string();
    clap_complete::generate(args.shell, &mut cmd, name, &mut std::io::stdout());
    Ok(true)
}
