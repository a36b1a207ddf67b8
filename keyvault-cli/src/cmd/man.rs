//! `keyvault man DIR`: a manual page per command and subcommand, from the clap definitions.

use super::print_json;
use crate::args::Cli;
use crate::error::{Done, Failure};
use clap::{Args, CommandFactory};
use std::path::PathBuf;

/// `keyvault man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The directory to write the pages into (created if missing), e.g.
    /// ~/.local/share/man/man1.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Every page: `keyvault.1`, then `keyvault-COMMAND.1`, `keyvault-COMMAND-SUB.1`, … as
/// (file name, page).
pub(crate) fn pages() -> Result<Vec<(String, Vec<u8>)>, Failure> {
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let mut pages = Vec::new();
    let mut todo = vec![root];
    while let Some(cmd) = todo.pop() {
        todo.extend(cmd.get_subcommands().filter(|c| !c.is_hide_set()).cloned());
        let man = clap_mangen::Man::new(cmd);
        let mut page = Vec::new();
        man.render(&mut page)
            .map_err(|e| Failure::Usage(format!("cannot render a manual page: {e}")))?;
        pages.push((man.get_filename(), page));
    }
    pages.sort();
    Ok(pages)
}

/// `keyvault man DIR`: needs no vault.
pub(crate) fn man(a: &ManArgs, json: bool) -> Result<Done, Failure> {
    let written = keyvault_core::manual::write_pages(&a.dir, &pages()?)?;
    if json {
        print_json(&serde_json::json!({"dir": a.dir, "pages": written}));
    } else {
        for p in &written {
            println!("{}", p.display());
        }
    }
    Ok(Done::Ok)
}
