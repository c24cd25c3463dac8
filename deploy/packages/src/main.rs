//! `geocdn-package-assets OUT_DIR`: writes the man pages and shell
//! completions of `geodns` and `edge`, generated from their command-line
//! definitions, for the .deb packages (see `deploy/packages/build.sh`).
//!
//! Layout, per binary: `OUT_DIR/<binary>/man/*.1` (one page for the binary
//! and one per subcommand, as `git` has) and
//! `OUT_DIR/<binary>/completions/{<binary>.bash,_<binary>,<binary>.fish}`.

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> anyhow::Result<()> {
    let Some(out_dir) = std::env::args_os().nth(1) else {
        anyhow::bail!("usage: geocdn-package-assets OUT_DIR");
    };
    let out_dir = Path::new(&out_dir);
    write_assets(geodns::commands::Cli::command(), out_dir)?;
    write_assets(edge::cli::Cli::command(), out_dir)?;
    Ok(())
}

/// The man pages and completions of `command` under `out_dir/<name>/`.
fn write_assets(command: clap::Command, out_dir: &Path) -> anyhow::Result<()> {
    let name = command.get_name().to_string();
    let man = out_dir.join(&name).join("man");
    let completions = out_dir.join(&name).join("completions");
    for dir in [&man, &completions] {
        std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    }
    clap_mangen::generate_to(command.clone(), &man)
        .with_context(|| format!("man pages of {name} in {}", man.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut command = command.clone();
        clap_complete::generate_to(shell, &mut command, &name, &completions)
            .with_context(|| format!("{shell} completions of {name}"))?;
    }
    Ok(())
}
