//! `keyvault runpod …`.

use crate::error::Failure;
use keyvault_core::TargetSpec;
use std::io::IsTerminal;

/// For `runpod-pods[:PROFILE]`: the RunPod account whose running pods are meant.
pub(crate) fn pods_account(to: &str) -> Result<Option<TargetSpec>, Failure> {
    Ok(TargetSpec::pods_of(to).transpose()?)
}

/// The profile of a `runpod` / `runpod:PROFILE` target (which must exist in config.toml).
pub(crate) fn runpod_profile(
    target: &str,
    config: &keyvault_core::Config,
) -> Result<Option<String>, Failure> {
    let spec: TargetSpec = target.parse()?;
    match spec.runpod_profile() {
        Some(None) => Ok(None),
        Some(Some(p)) if config.runpod_profile(p).is_some() => Ok(Some(p.to_owned())),
        Some(Some(p)) => Err(Failure::Usage(format!(
            "config.toml has no [runpod.{p}] table; add one before storing its API key"
        ))),
        None => Err(Failure::Usage(format!(
            "{target} is not a RunPod account: use runpod or runpod:PROFILE"
        ))),
    }
}

/// A RunPod API key from standard input (`--stdin`) or a prompt that does not echo.
pub(crate) fn read_api_key(
    stdin: bool,
    no_input: bool,
) -> Result<keyvault_core::ApiToken, Failure> {
    use std::io::Read;
    let text = if stdin {
        let mut buf = keyvault_core::secrecy::zeroize::Zeroizing::new(Vec::new());
        std::io::stdin()
            .lock()
            .take(4097)
            .read_to_end(&mut buf)
            .map_err(|e| Failure::Usage(format!("cannot read standard input: {e}")))?;
        if buf.len() > 4096 {
            return Err(Failure::Usage(
                "standard input is longer than 4096 bytes; an API key is much shorter".to_owned(),
            ));
        }
        keyvault_core::secrecy::zeroize::Zeroizing::new(
            String::from_utf8(buf.to_vec())
                .map_err(|_| Failure::Usage("standard input is not UTF-8 text".to_owned()))?,
        )
    } else if no_input || !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(
            "no API key: pipe it in with --stdin (there is no terminal to prompt on, or --no-input is set)"
                .to_owned(),
        ));
    } else {
        keyvault_core::secrecy::zeroize::Zeroizing::new(
            rpassword::prompt_password("RunPod API key: ")
                .map_err(|e| Failure::Usage(format!("cannot read from the terminal: {e}")))?,
        )
    };
    let key = keyvault_core::ApiToken::new(text.as_str());
    if key.is_empty()
        || key
            .expose()
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Failure::Usage(
            "that is not an API key: expected one line without spaces".to_owned(),
        ));
    }
    Ok(key)
}
