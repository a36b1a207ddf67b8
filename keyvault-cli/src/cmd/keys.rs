//! `keyvault new`, `import`, `passwd`, `list`, `show`.

use super::{Ctx, print_json};
use crate::args::{ImportArgs, ListArgs, NewArgs, PasswdArgs, ShowArgs};
use crate::error::{Done, Failure};
use crate::render;
use anstream::{eprintln, println};
use keyvault_core::{ImportKey, KeyRecord, KeyState, NewKey, Vault};
use std::io::Write;

/// `keyvault new`.
pub(crate) fn new(ctx: &mut Ctx<'_>, a: NewArgs) -> Result<Done, Failure> {
    let purpose = a.purpose;
    let mut request = NewKey::new(purpose)
        .expiry(a.expiry.expiry()?)
        .unencrypted(a.protection.no_passphrase)
        .passphrase_in_keyring(a.protection.passphrase_keyring);
    if let Some(alg) = a.algorithm {
        request = request.algorithm(alg);
    }
    if let Some(c) = a.comment {
        request = request.comment(c);
    }
    if let Some(r) = a.kdf_rounds {
        request = request.kdf_rounds(r);
    }
    let src = a.protection.passphrase.source();
    let mut callbacks = ctx.callbacks(src.clone(), src);
    let key = ctx.vault.create(&mut ctx.rng, &request, &mut callbacks)?;
    announce(&ctx.vault, ctx.json, &key, "created")?;
    Ok(Done::Ok)
}

/// `keyvault import`.
pub(crate) fn import(ctx: &mut Ctx<'_>, a: ImportArgs) -> Result<Done, Failure> {
    let purpose = a.purpose;
    let mut request = ImportKey::new(purpose)
        .expiry(a.expiry.expiry()?)
        .unencrypted(a.no_passphrase);
    if let Some(c) = a.comment {
        request = request.comment(c);
    }
    let src = a.passphrase.source();
    let mut callbacks = ctx.callbacks(src.clone(), src);
    let key = ctx
        .vault
        .import(&mut ctx.rng, &a.path, &request, &mut callbacks)?;
    announce(&ctx.vault, ctx.json, &key, "imported")?;
    if !ctx.json {
        println!(
            "\nThe original file {} was not changed; delete it once nothing uses it.",
            a.path.display()
        );
    }
    Ok(Done::Ok)
}

/// `keyvault passwd`.
pub(crate) fn passwd(ctx: &mut Ctx<'_>, a: PasswdArgs) -> Result<Done, Failure> {
    let mut callbacks = ctx.callbacks(a.old.source(), a.new.source());
    let key = ctx
        .vault
        .change_passphrase(&mut ctx.rng, &a.key.parse()?, &mut callbacks)?;
    if ctx.json {
        print_json(&render::KeyJson::new(&ctx.vault, &key, ctx.vault.now()));
    } else {
        println!("changed the passphrase of {}", key.id());
    }
    Ok(Done::Ok)
}

/// `keyvault list`: the records one at a time, never the whole inventory at once (`--json`
/// writes each as it comes).
pub(crate) fn list(ctx: &mut Ctx<'_>, a: ListArgs) -> Result<Done, Failure> {
    let purpose = a.purpose;
    let now = ctx.vault.now();
    let wanted = |k: &KeyRecord| {
        (a.all || k.state() != KeyState::Revoked)
            && purpose.as_ref().is_none_or(|p| k.purpose() == p)
    };
    if ctx.json {
        return list_json(&ctx.vault, &wanted, now);
    }
    let mut keys = Vec::new();
    ctx.vault.each_key(&mut |k| {
        if wanted(&k) {
            keys.push(k);
        }
        Ok(())
    })?;
    if keys.is_empty() {
        println!("no keys yet: create one with `keyvault new --purpose personal`");
    } else {
        render::key_rows(&keys.iter().collect::<Vec<_>>(), now);
    }
    Ok(Done::Ok)
}

/// `list --json`: `{"keys": [...]}` as [`print_json`] writes it, each record written as
/// it is read.
fn list_json(
    vault: &Vault,
    wanted: &dyn Fn(&KeyRecord) -> bool,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Done, Failure> {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let mut written = out.write_all(b"{\n  \"keys\": [");
    let mut any = false;
    vault.each_key(&mut |k| {
        if written.is_ok() && wanted(&k) {
            written = write_element(&mut out, &render::KeyJson::new(vault, &k, now), any);
            any = true;
        }
        Ok(())
    })?;
    let end: &[u8] = if any { b"\n  ]\n}\n" } else { b"]\n}\n" };
    if let Err(e) = written
        .and_then(|()| out.write_all(end))
        .and_then(|()| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: cannot write standard output: {e}");
    }
    Ok(Done::Ok)
}

/// One element of the `keys` array as `serde_json`'s pretty printer writes it there: after
/// a comma unless it is the first, on its own line, indented two levels.
fn write_element(
    out: &mut impl Write,
    value: &impl serde::Serialize,
    after_another: bool,
) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::from)?;
    out.write_all(if after_another { b",\n    " } else { b"\n    " })?;
    // JSON strings hold no raw newline: every newline is between tokens.
    out.write_all(text.replace('\n', "\n    ").as_bytes())
}

/// `keyvault show`.
pub(crate) fn show(ctx: &mut Ctx<'_>, a: ShowArgs) -> Result<Done, Failure> {
    let inventory = ctx.vault.inventory()?;
    let key = ctx.vault.find(&inventory, &a.key.parse()?)?;
    if ctx.json {
        print_json(&render::KeyJson::new(&ctx.vault, key, ctx.vault.now()));
    } else {
        render::show_key(&ctx.vault, key, ctx.vault.now());
    }
    Ok(Done::Ok)
}

/// Tells the person what they got and how to use it; JSON for scripts.
pub(crate) fn announce(
    vault: &Vault,
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
        render::bold(key.id().as_str()),
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
