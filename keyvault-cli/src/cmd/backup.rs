//! `keyvault export` and `restore`.

use super::{Ctx, print_json};
use crate::args::{ExportArgs, RestoreArgs};
use crate::error::{Done, Failure};
use crate::passphrase::Source;
use crate::render;
use keyvault_core::Error;
use keyvault_core::backup::{
    BackupRecipient, ExportRequest, ExportTo, RestoreFrom, RestoreRequest,
};
use serde_json::json;

/// `keyvault export`.
pub(crate) fn export(ctx: &mut Ctx<'_>, a: ExportArgs) -> Result<Done, Failure> {
    let recipients = recipients(&a)?;
    let src = a.passphrase.source();
    if !recipients.is_empty() && !matches!(src, Source::Prompt) {
        return Err(Failure::Usage(
            "give recipients or a passphrase source, not both".to_owned(),
        ));
    }
    let to_stdout = a.output.as_os_str() == "-";
    if !to_stdout && !a.force && std::fs::symlink_metadata(&a.output).is_ok() {
        return Err(Failure::Usage(format!(
            "{} exists; choose another file or pass --force to replace it",
            a.output.display()
        )));
    }
    let to = if recipients.is_empty() {
        ExportTo::Passphrase
    } else {
        ExportTo::Recipients(recipients)
    };
    let mut request = ExportRequest::new(to)
        .include_keyring_secrets(a.include_keyring_secrets)
        .armor(a.armor);
    // Test-only: a cheap scrypt work factor. Honoured only in debug builds, so a
    // stray variable can never weaken a real backup (the product uses age's default).
    if let Some(n) = std::env::var("KEYVAULT_TEST_SCRYPT_LOG_N")
        .ok()
        .filter(|_| cfg!(debug_assertions))
        .and_then(|v| v.parse::<u8>().ok())
    {
        request = request.scrypt_work_factor(n);
    }
    let mut callbacks = ctx.callbacks(src.clone(), src);
    let exported = ctx.vault.export(&request, &mut callbacks)?;
    if to_stdout {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(&exported.archive)
            .and_then(|()| out.flush())
            .map_err(|e| Failure::Usage(format!("cannot write standard output: {e}")))?;
    } else {
        keyvault_core::backup::write_archive(&a.output, &exported.archive, a.force)?;
        if ctx.json {
            print_json(&json!({
                "archive": a.output,
                "keys": exported.keys,
                "files": exported.files,
                "keyring_secrets": exported.keyring_secrets,
            }));
        } else {
            println!(
                "wrote {} ({}, {}{})",
                a.output.display(),
                render::count(exported.keys, "key"),
                render::count(exported.files, "file"),
                if exported.keyring_secrets > 0 {
                    format!(
                        ", {}",
                        render::count(exported.keyring_secrets, "keyring passphrase")
                    )
                } else {
                    String::new()
                }
            );
        }
    }
    Ok(Done::Ok)
}

/// The recipients of `-r` and of every `-R` file.
fn recipients(a: &ExportArgs) -> Result<Vec<BackupRecipient>, Failure> {
    let mut recipients = a
        .recipients
        .iter()
        .map(|r| r.parse::<BackupRecipient>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::from)?;
    for file in &a.recipient_files {
        let text = std::fs::read_to_string(file).map_err(|e| {
            Failure::Usage(format!(
                "cannot read recipients file {}: {e}",
                file.display()
            ))
        })?;
        let found = BackupRecipient::parse_file(&text).map_err(Error::from)?;
        if found.is_empty() {
            return Err(Failure::Usage(format!(
                "{} holds no recipient",
                file.display()
            )));
        }
        recipients.extend(found);
    }
    Ok(recipients)
}

/// `keyvault restore`.
pub(crate) fn restore(ctx: &mut Ctx<'_>, a: RestoreArgs) -> Result<Done, Failure> {
    let archive = std::fs::read(&a.archive)
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", a.archive.display())))?;
    let from = match &a.identity {
        Some(path) => RestoreFrom::Identity(path.clone()),
        None => RestoreFrom::Passphrase,
    };
    let request = RestoreRequest::new(from, a.archive.display().to_string()).force(a.force);
    let src = a.passphrase.source();
    let mut callbacks = ctx.callbacks(src.clone(), src);
    let restored = ctx.vault.restore(&archive, &request, &mut callbacks)?;
    if ctx.json {
        print_json(&json!(restored));
    } else {
        println!(
            "restored {} into {} (backup made {}; audit log verified, {})",
            render::count(restored.keys, "key"),
            restored.home.display(),
            render::time(restored.created_at),
            render::count(restored.events as usize, "event")
        );
        if let Some(aside) = &restored.moved_aside {
            println!("the previous contents are in {}", aside.display());
        }
        if restored.keyring_secrets > 0 {
            println!(
                "put {} back into the OS keyring",
                render::count(restored.keyring_secrets, "passphrase")
            );
        }
        if !restored.keyring_missing.is_empty() {
            println!(
                "note: the passphrases of {} live in an OS keyring and were not in the archive; \
they open only where that keyring is (export with --include-keyring-secrets to carry them)",
                restored.keyring_missing.join(", ")
            );
        }
        for note in &restored.review {
            println!("review ({}): {}", note.severity, note.message);
        }
    }
    Ok(Done::Ok)
}
