//! A [`Job`] as a crontab entry: a marker comment naming the vault's home, then the line.
//! The crontab is read and written with the `crontab` program (`crontab -l`, `crontab -`);
//! every other line of it is kept byte for byte.

use super::{Change, Job, Programs, ScheduleError, spread};
use crate::error::Result;
use std::path::{Path, PathBuf};

/// The comment above our line: it names the vault's home, so the entry is found again.
#[must_use]
pub fn marker(home: &Path) -> String {
    format!(
        "# keyvault schedule: sweep --rotate-due for the vault at {} (keyvault schedule remove deletes it)",
        home.to_string_lossy()
    )
}

/// A word for `sh`: as it is when it holds nothing `sh` reads specially, else in single
/// quotes, a quote written as `'\''`.
fn sh_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/_.,:=@+-".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The crontab line: daily at the job's time, else at a minute past midnight derived from
/// the home (so that many machines do not call the same APIs at once).
///
/// # Errors
///
/// [`ScheduleError::UnsupportedPath`] when a path holds `%`, which cron turns into a
/// newline.
pub fn line(job: &Job) -> Result<String> {
    for (what, path) in [
        ("vault home", job.home().to_owned()),
        ("program", PathBuf::from(&job.argv()[0])),
    ] {
        if path.to_string_lossy().contains('%') {
            return Err(ScheduleError::UnsupportedPath {
                what,
                path,
                reason: "cron turns % into a new line",
            }
            .into());
        }
    }
    let (hour, minute) = job.at().map_or((0, spread(job.schedule_home(), 60)), |t| {
        (t.hour(), t.minute())
    });
    let env: Vec<String> = job
        .env()
        .into_iter()
        .map(|(n, v)| format!("{n}={}", sh_quote(&v)))
        .collect();
    let argv: Vec<String> = job.argv().iter().map(|a| sh_quote(a)).collect();
    let command = env.into_iter().chain(argv).collect::<Vec<_>>().join(" ");
    Ok(format!("{minute} {hour} * * * {command}"))
}

/// Whether `line` (without its line ending) is a scheduled sweep (the line our marker
/// stands above).
fn is_job_line(line: &[u8]) -> bool {
    line.ends_with(b" sweep --rotate-due")
}

/// A line of the crontab without its `\n` or `\r\n`.
fn bare(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `crontab` with this vault's entry replaced by `entry` (or removed, for `None`): the
/// marker and the line after it when that is a sweep; every other line kept byte for byte
/// (line endings, bytes that are not UTF-8). The new entry goes where the old one was, else
/// at the end. Also says whether an entry was there and whether anything changed. A home
/// that is not UTF-8 has no entry (its marker would be a lossy look-alike of another's).
#[must_use]
pub fn edit(crontab: &[u8], home: &Path, entry: Option<&str>) -> (Vec<u8>, bool, bool) {
    if home.to_str().is_none() {
        return (crontab.to_vec(), false, false);
    }
    let marker = marker(home);
    let block = entry.map(|e| format!("{marker}\n{e}\n"));
    let mut out = Vec::with_capacity(crontab.len() + block.as_ref().map_or(0, String::len));
    let mut found = false;
    let mut lines = crontab.split_inclusive(|b| *b == b'\n').peekable();
    while let Some(l) = lines.next() {
        if bare(l) != marker.as_bytes() {
            out.extend_from_slice(l);
            continue;
        }
        if lines.peek().is_some_and(|next| is_job_line(bare(next))) {
            lines.next();
        }
        if !found && let Some(block) = &block {
            out.extend_from_slice(block.as_bytes());
        }
        found = true;
    }
    if found && !out.is_empty() && !out.ends_with(b"\n") {
        // crontab requires a final newline.
        out.push(b'\n');
    }
    if !found && let Some(block) = &block {
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.extend_from_slice(block.as_bytes());
    }
    let changed = out != crontab;
    (out, found, changed)
}

/// The entry for the vault at `home` in `crontab`: the line under its marker.
#[must_use]
pub fn find(crontab: &str, home: &Path) -> Option<String> {
    home.to_str()?;
    let marker = marker(home);
    let mut lines = crontab.lines();
    lines.find(|l| *l == marker)?;
    lines
        .next()
        .filter(|l| is_job_line(l.as_bytes()))
        .map(str::to_owned)
}

/// The `crontab` program.
#[derive(Debug, Clone)]
pub struct Crontab {
    program: PathBuf,
    programs: Programs,
}

impl Crontab {
    /// `crontab` on the PATH of `programs`, if there is one.
    #[must_use]
    pub fn find(programs: &Programs) -> Option<Self> {
        Some(Crontab {
            program: programs.find("crontab")?,
            programs: programs.clone(),
        })
    }

    /// The user's crontab (`crontab -l`); empty when the user has none.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Program`] when `crontab -l` fails otherwise.
    pub fn read(&self) -> Result<String> {
        self.read_bytes()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// The user's crontab as `crontab -l` prints it, byte for byte.
    fn read_bytes(&self) -> Result<Vec<u8>> {
        let out = self.programs.run(&self.program, &["-l"], None)?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        // "no crontab for USER" (cron and cronie alike), exit 1: nothing installed yet.
        if String::from_utf8_lossy(&out.stderr).contains("no crontab for") {
            return Ok(Vec::new());
        }
        Err(super::program_failed(&self.program, &["-l"], &out).into())
    }

    /// Replaces the user's crontab with `text` (`crontab -`).
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Program`] when `crontab -` fails.
    pub fn write(&self, text: &[u8]) -> Result<()> {
        self.programs
            .run_ok(&self.program, &["-"], Some(text))
            .map(drop)
    }

    /// Puts the job's entry into the crontab (in place of this vault's earlier one).
    ///
    /// # Errors
    ///
    /// As [`line()`], [`Crontab::read`] and [`Crontab::write`].
    pub fn install(&self, job: &Job) -> Result<(String, Change)> {
        let entry = line(job)?;
        let old = self.read_bytes()?;
        let (new, found, changed) = edit(&old, job.schedule_home(), Some(&entry));
        if changed {
            self.write(&new)?;
        }
        let change = match (found, changed) {
            (false, _) => Change::Added,
            (true, true) => Change::Updated,
            (true, false) => Change::Unchanged,
        };
        Ok((entry, change))
    }

    /// Removes the entry of the vault at `home`; whether there was one.
    ///
    /// # Errors
    ///
    /// As [`Crontab::read`] and [`Crontab::write`].
    pub fn remove(&self, home: &Path) -> Result<bool> {
        let old = self.read_bytes()?;
        let (new, found, changed) = edit(&old, home, None);
        if changed {
            self.write(&new)?;
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::job;
    use super::*;

    #[test]
    fn lines_quote_for_sh_and_run_at_the_time_given() {
        let l = line(&job("/srv/it's v", Some("04:05"))).expect("line");
        assert_eq!(
            l,
            r"5 4 * * * /usr/bin/keyvault --home '/srv/it'\''s v' --no-input sweep --rotate-due"
        );
        assert!(line(&job("/srv/100%", None)).is_err());
    }

    #[test]
    fn edits_keep_other_lines_and_leave_one_entry() {
        let home = Path::new("/srv/v");
        let other = "MAILTO=me\n# mine\n*/5 * * * * backup\n";
        let (once, found, changed) = edit(
            other.as_bytes(),
            home,
            Some("1 0 * * * kv sweep --rotate-due"),
        );
        assert!(!found && changed);
        assert!(once.starts_with(other.as_bytes()), "{once:?}");
        let (twice, found, changed) = edit(&once, home, Some("2 0 * * * kv sweep --rotate-due"));
        assert!(found && changed);
        let twice = String::from_utf8(twice).expect("utf-8");
        assert_eq!(twice.matches(&marker(home)).count(), 1);
        assert_eq!(
            find(&twice, home).as_deref(),
            Some("2 0 * * * kv sweep --rotate-due")
        );
        assert_eq!(find(&twice, Path::new("/srv/other")), None);
        let (back, found, _) = edit(twice.as_bytes(), home, None);
        assert!(found);
        assert_eq!(back, other.as_bytes());
        let (same, _, changed) = edit(other.as_bytes(), home, None);
        assert!(!changed && same == other.as_bytes());
    }

    #[test]
    fn a_line_under_the_marker_that_is_not_ours_is_kept() {
        let home = Path::new("/srv/v");
        let text = format!("{}\n0 1 * * * someone-elses-job\n", marker(home));
        let (out, found, _) = edit(text.as_bytes(), home, None);
        assert!(found);
        assert_eq!(out, b"0 1 * * * someone-elses-job\n");
    }

    #[test]
    fn other_lines_keep_their_bytes_crlf_and_all() {
        let home = Path::new("/srv/v");
        let entry = "1 0 * * * kv sweep --rotate-due";
        // A Latin-1 comment, CRLF endings, no final newline.
        let mine: &[u8] = b"# caf\xe9\r\n*/5 * * * * backup\r\n0 3 * * * last";
        let (added, found, changed) = edit(mine, home, Some(entry));
        assert!(!found && changed);
        assert!(added.starts_with(mine), "{added:?}");
        let (back, found, changed) = edit(&added, home, None);
        assert!(found && changed);
        assert_eq!(back, [mine, b"\n"].concat());
        // Nothing of ours there: nothing to write, not even a final newline.
        assert_eq!(edit(mine, home, None), (mine.to_vec(), false, false));
        // Our block written with CRLF (an editor's doing) is still ours.
        let crlf = format!("{}\r\n{entry}\r\nMAILTO=x\r\n", marker(home));
        let (out, found, _) = edit(crlf.as_bytes(), home, None);
        assert!(found);
        assert_eq!(out, b"MAILTO=x\r\n");
    }

    #[test]
    fn a_home_that_is_not_utf8_owns_no_entry() {
        use std::os::unix::ffi::OsStrExt;
        let lossy = Path::new("/srv/\u{fffd}");
        let raw = Path::new(std::ffi::OsStr::from_bytes(b"/srv/\xff"));
        let text = format!("{}\n1 0 * * * kv sweep --rotate-due\n", marker(lossy));
        assert_eq!(find(&text, raw), None);
        let (out, found, changed) = edit(text.as_bytes(), raw, None);
        assert!(!found && !changed && out == text.as_bytes());
    }
}
