//! One function per command; helpers they share.

pub(crate) mod keys;
pub(crate) mod mint;
pub(crate) mod runpod;

use crate::args::{ExpiryArgs, PassphraseSource};
use crate::error::Failure;
use crate::passphrase::Source;
use keyvault_core::{Expiry, Span};

pub(crate) fn expiry(args: &ExpiryArgs) -> Result<Expiry, Failure> {
    Ok(match (&args.ttl, &args.expires) {
        (Some(t), _) => Expiry::After(t.parse::<Span>()?),
        (_, Some(d)) => Expiry::At(keyvault_core::parse_date(d)?),
        _ => Expiry::PolicyDefault,
    })
}

pub(crate) fn source(p: &PassphraseSource) -> Source {
    Source::from_flags(
        p.passphrase_env.as_ref(),
        p.passphrase_file.as_ref(),
        p.passphrase_stdin,
    )
}

pub(crate) fn print_json(value: &impl serde::Serialize) {
    use std::io::Write;
    // Buffered: a 10,000-key list is megabytes, and stdout alone writes line by line.
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let written = serde_json::to_writer_pretty(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush());
    if let Err(e) = written
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: cannot write standard output: {e}");
    }
}
