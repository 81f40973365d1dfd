//! `fusehost package-files DIR` (hidden): the files a package installs that are made
//! from the command line's own definition, so they can never disagree with it: man
//! pages (`fusehost(1)` and one per subcommand, by clap_mangen) and shell completions
//! for bash, zsh and fish (clap_complete). `fusehost.toml(5)` is written by hand in
//! `contrib/man/`.

use std::path::Path;

use clap_complete::Shell;

use crate::error::HostError;

pub fn run(mut command: clap::Command, dir: &Path) -> Result<(), HostError> {
    let io = |context: String| move |source| HostError::Io { context, source };
    let man = dir.join("man");
    let completions = dir.join("completions");
    for folder in [&man, &completions] {
        std::fs::create_dir_all(folder).map_err(io(format!("creating {}", folder.display())))?;
    }
    clap_mangen::generate_to(command.clone(), &man).map_err(io(format!("writing man pages to {}", man.display())))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut command, "fusehost", &completions)
            .map_err(io(format!("writing {shell} completions to {}", completions.display())))?;
    }
    Ok(())
}
