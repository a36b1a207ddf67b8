//! `keyvault new`, `import`, `passwd`, `list`, `show`.

use crate::cmd::print_json;
use crate::render::{self, Style};
use keyvault_core::Vault;

/// Tells the person what they got and how to use it; JSON for scripts.
pub(crate) fn announce(
    vault: &Vault,
    style: Style,
    json: bool,
    key: &keyvault_core::KeyRecord,
    verb: &str,
) -> keyvault_core::Result<()> {
    if json {
        print_json(&render::KeyJson::new(vault, key, vault.now()));
        return Ok(());
    }
    let current = vault.current_path(key.purpose());
    println!(
        "{verb} {} ({}, {}), expires {}",
        style.bold(key.id().as_str()),
        key.algorithm(),
        key.purpose(),
        key.expires_at()
            .map_or_else(|| "never".to_owned(), render::time)
    );
    println!("  fingerprint  {}", key.fingerprint());
    println!("  private key  {}", vault.private_key_path(key).display());
    println!("  stable path  {} (follows rotations)", current.display());
    println!("  public key   {}.pub", current.display());
    println!();
    println!("Use it from ~/.ssh/config:");
    println!("  Host example.com");
    println!("      IdentityFile {}", current.display());
    println!("      IdentitiesOnly yes");
    Ok(())
}
