//! `keyvault mint`.

use super::{Ctx, parse_all, print_json};
use crate::args::MintArgs;
use crate::error::{Done, Failure};
use crate::passphrase::Source;
use crate::render;
use keyvault_core::minted::MintedFiles;
use keyvault_core::{MintRequest, Minted};
use serde_json::json;
use std::path::Path;

/// `keyvault mint`.
pub(crate) fn mint(ctx: &mut Ctx<'_>, a: MintArgs) -> Result<Done, Failure> {
    let request = request(&a)?;
    let to_stdout = a.private_key_out.as_deref() == Some(Path::new("-"));
    let files = a
        .private_key_out
        .as_deref()
        .filter(|_| !to_stdout)
        .map(|out| MintedFiles::new(out, a.cert));
    if let Some(files) = &files {
        // Refuse before minting anything, rather than mint a key we cannot hand over.
        files.check().map_err(|e| Failure::Usage(e.to_string()))?;
    }
    let src = a.protection.passphrase.source();
    let ca_src = Source::from_flags(
        "ca-",
        a.ca_passphrase_env.as_ref(),
        a.ca_passphrase_file.as_ref(),
        a.ca_passphrase_stdin,
    );
    let mut callbacks = ctx.callbacks(ca_src, src);
    let minted = ctx
        .vault
        .mint(&mut ctx.rng, &request, &mut callbacks, &ctx.remote)?;
    let mut value = render::key_json(&ctx.vault, &minted.record, ctx.vault.now());
    value["authorized_keys_line"] = json!(minted.record.authorized_keys_line());
    if let Some(files) = &files {
        write_out(&minted, files, &mut value)?;
    } else if let Some(cert) = minted.record.certificate() {
        value["certificate_path"] = json!(ctx.vault.home().join(&cert.path).display().to_string());
    }
    if let Some(cert) = &minted.certificate {
        value["certificate_line"] = json!(cert);
    }
    if to_stdout {
        use std::io::Write;
        if ctx.json {
            value["private_key"] = json!(String::from_utf8_lossy(&minted.private_key));
            print_json(&value);
        } else {
            let _ = std::io::stdout().write_all(&minted.private_key);
        }
    } else if ctx.json {
        print_json(&value);
    } else {
        render::minted(
            &minted.record,
            value["private_key_path"].as_str().unwrap_or(""),
        );
    }
    Ok(Done::Ok)
}

/// The mint request the flags describe.
fn request(a: &MintArgs) -> Result<MintRequest, Failure> {
    let mut request = MintRequest::new(a.purpose.clone(), a.ttl)
        .from(parse_all(&a.from)?)
        .deploy(a.deploy.clone())
        .unencrypted(a.protection.no_passphrase)
        .passphrase_in_keyring(a.protection.passphrase_keyring);
    if let Some(alg) = a.algorithm {
        request = request.algorithm(alg);
    }
    if let Some(cmd) = &a.force_command {
        request = request.force_command(cmd.clone());
    }
    if let Some(c) = &a.comment {
        request = request.comment(c.clone());
    }
    if a.cert {
        request = request.certificate(a.ca.parse()?, parse_all(&a.principals)?);
    }
    Ok(request)
}

/// Writes the minted private key (and its certificate beside it), and puts their absolute
/// paths into `value`.
fn write_out(
    minted: &Minted,
    files: &MintedFiles,
    value: &mut serde_json::Value,
) -> Result<(), Failure> {
    minted.write_to(files)?;
    let out = files.key();
    let abs = std::fs::canonicalize(out).unwrap_or_else(|_| out.to_owned());
    value["private_key_path"] = json!(abs.display().to_string());
    if minted.certificate.is_some() {
        let abs = keyvault_core::minted::certificate_path(&abs);
        value["certificate_path"] = json!(abs.display().to_string());
    }
    Ok(())
}
