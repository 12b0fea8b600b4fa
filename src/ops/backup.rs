//! `whatsup backup` and `whatsup restore`.
//!
//! SQLite: the backup is `VACUUM INTO` a temporary file beside the target
//! (one read snapshot, so `serve` and `worker` keep writing meanwhile),
//! flushed to disk, checked (integrity, schema version) and only then
//! renamed into place. A restore checks the file the same way before it
//! touches anything; refuses while another process has the database open
//! (the SQLite shared-memory lock tells); folds the live database's
//! write-ahead log into it and keeps it beside the restored one as
//! `<file>.before-restore-<time>`, so a restore loses nothing either.
//!
//! PostgreSQL: the right `pg_dump` / `pg_restore` invocations, printed, or
//! run with `--run` (the password goes through `PGPASSWORD`, never the
//! command line).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use chrono::Utc;
use serde::Serialize;

use crate::config::Config;
use crate::store::backup::{inspect_sqlite_file, SqliteFileInfo};
use crate::store::{redact_url, Store};

/// What a finished SQLite backup or restore holds.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub seconds: f64,
    pub schema_version: i64,
    pub integrity: String,
    pub tables: Vec<(String, i64)>,
    /// Restore only: where the database that was replaced now is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<PathBuf>,
    /// Restore only: running or paused campaigns in the restored copy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unfinished_campaigns: Vec<i64>,
}

/// The SQLite file a `sqlite://` URL names.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or(url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    Some(PathBuf::from(path))
}

/// Copies the open SQLite store to `out` while it stays in use.
pub async fn backup_sqlite(store: &Store, out: &Path, force: bool) -> Result<FileReport> {
    let started = Instant::now();
    if out.exists() && !force {
        bail!(
            "{} exists already: choose another name, or add --force to replace it",
            out.display()
        );
    }
    let tmp = temp_beside(out, "partial")?;
    let result = async {
        store.sqlite_vacuum_into(&tmp).await?;
        sync_file(&tmp)?;
        let info = inspect_sqlite_file(&tmp).await?;
        if !info.is_intact() {
            bail!(
                "the copy failed its integrity check: {}",
                info.integrity.join("; ")
            );
        }
        Ok(info)
    }
    .await;
    let info = match result {
        Ok(info) => info,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, out)
        .with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    sync_dir(out)?;
    Ok(report(out, &info, started, None, Vec::new()))
}

/// Checks `file` and puts it in place of the SQLite database at `live`.
pub async fn restore_sqlite(file: &Path, live: &Path, config: &Config) -> Result<FileReport> {
    let started = Instant::now();
    let info = inspect_sqlite_file(file)
        .await
        .with_context(|| format!("checking {} (nothing was changed)", file.display()))?;
    if !info.is_intact() {
        bail!(
            "{} failed its integrity check, nothing was changed: {}",
            file.display(),
            info.integrity.join("; ")
        );
    }
    if let Some(refusal) = info.schema.refusal(&format!("sqlite://{}", file.display())) {
        bail!("nothing was changed: {refusal}");
    }
    if info.schema.applied == 0 {
        bail!(
            "{} is not a whatsup database (it has no migrations), nothing was changed",
            file.display()
        );
    }
    if let Some(pid) = open_elsewhere(live)? {
        bail!(
            "{} is open in another process (pid {pid}): stop `whatsup serve` and `whatsup \
             worker` first; nothing was changed",
            live.display()
        );
    }
    let previous = if live.exists() {
        // Fold the log into the file, so the kept copy is complete on its own.
        let current = Store::connect(&format!("sqlite://{}", live.display()), config).await?;
        let checkpointed = current.sqlite_checkpoint().await;
        current.close().await;
        checkpointed?;
        let kept = PathBuf::from(format!(
            "{}.before-restore-{}",
            live.display(),
            Utc::now().format("%Y%m%dT%H%M%SZ")
        ));
        Some(kept)
    } else {
        None
    };
    let tmp = temp_beside(live, "restoring")?;
    std::fs::copy(file, &tmp)
        .with_context(|| format!("copying {} to {}", file.display(), tmp.display()))?;
    sync_file(&tmp)?;
    if let Some(kept) = &previous {
        std::fs::rename(live, kept)
            .with_context(|| format!("moving {} to {}", live.display(), kept.display()))?;
        for suffix in ["-wal", "-shm"] {
            let side = PathBuf::from(format!("{}{suffix}", live.display()));
            if side.exists() {
                std::fs::rename(&side, format!("{}{suffix}", kept.display()))
                    .with_context(|| format!("moving {}", side.display()))?;
            }
        }
    }
    std::fs::rename(&tmp, live)
        .with_context(|| format!("renaming {} to {}", tmp.display(), live.display()))?;
    sync_dir(live)?;
    let restored = Store::open(config).await?;
    let unfinished = restored.unfinished_campaigns().await;
    restored.close().await;
    let after = inspect_sqlite_file(live).await?;
    Ok(report(live, &after, started, previous, unfinished?))
}

fn report(
    path: &Path,
    info: &SqliteFileInfo,
    started: Instant,
    previous: Option<PathBuf>,
    unfinished_campaigns: Vec<i64>,
) -> FileReport {
    FileReport {
        path: path.to_path_buf(),
        bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        seconds: started.elapsed().as_secs_f64(),
        schema_version: info.schema.applied,
        integrity: info.integrity.join("; "),
        tables: info.tables.clone(),
        previous,
        unfinished_campaigns,
    }
}

/// A name in the same directory as `path` (so a rename is atomic).
fn temp_beside(path: &Path, what: &str) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{}: not a file name", path.display()))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    if !dir.is_dir() {
        bail!("{}: no such directory", dir.display());
    }
    let tmp = dir.join(format!(
        ".{}.{what}-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    Ok(tmp)
}

fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("flushing {} to disk", path.display()))
}

fn sync_dir(path: &Path) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    std::fs::File::open(dir.unwrap_or(Path::new(".")))
        .and_then(|f| f.sync_all())
        .with_context(|| format!("flushing the directory of {}", path.display()))
}

/// The process id of another process that has the SQLite database at
/// `db` open, if any. Every connection to a database in WAL mode holds a
/// shared lock on byte 128 of the `-shm` file (the "DMS" lock of SQLite's
/// WAL-index format) for as long as it is open; a write lock on that byte
/// would conflict with it, and `F_GETLK` names the holder.
pub fn open_elsewhere(db: &Path) -> Result<Option<i32>> {
    use std::os::fd::AsRawFd;
    let shm = PathBuf::from(format!("{}-shm", db.display()));
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&shm)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening {}", shm.display())),
    };
    // SAFETY: flock is plain data; all-zero is a valid value.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as _;
    lock.l_whence = libc::SEEK_SET as _;
    lock.l_start = 128;
    lock.l_len = 1;
    // SAFETY: F_GETLK with a valid descriptor and a pointer to a flock.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut lock) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("testing the lock on {}", shm.display()));
    }
    Ok((i32::from(lock.l_type) != libc::F_UNLCK).then_some(lock.l_pid))
}

/// A PostgreSQL URL split into the part a command line may show and the
/// password, which goes through `PGPASSWORD`.
#[derive(Debug, Clone)]
pub struct PgTarget {
    pub url: String,
    password: Option<String>,
}

impl PgTarget {
    pub fn parse(url: &str) -> Result<PgTarget> {
        let scheme_end = url
            .find("://")
            .ok_or_else(|| anyhow!("{}: not a postgres:// URL", redact_url(url)))?;
        let rest = &url[scheme_end + 3..];
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        let Some(at) = authority.rfind('@') else {
            return Ok(PgTarget {
                url: url.to_string(),
                password: None,
            });
        };
        let (user, password) = match authority[..at].split_once(':') {
            Some((u, p)) => (u, Some(percent_decode(p))),
            None => (&authority[..at], None),
        };
        Ok(PgTarget {
            url: format!(
                "{}{user}{}{}",
                &url[..scheme_end + 3],
                &authority[at..],
                &rest[authority_end..]
            ),
            password,
        })
    }

    /// `pg_dump` writing a custom-format archive to `out`.
    pub fn dump_args(&self, out: &Path) -> Vec<String> {
        vec![
            "pg_dump".into(),
            "--format=custom".into(),
            "--no-owner".into(),
            "--no-privileges".into(),
            "--file".into(),
            out.display().to_string(),
            "--dbname".into(),
            self.url.clone(),
        ]
    }

    /// `pg_restore` of the archive `file` into this (empty) database.
    pub fn restore_args(&self, file: &Path) -> Vec<String> {
        vec![
            "pg_restore".into(),
            "--no-owner".into(),
            "--no-privileges".into(),
            "--exit-on-error".into(),
            "--single-transaction".into(),
            "--dbname".into(),
            self.url.clone(),
            file.display().to_string(),
        ]
    }

    /// Runs `args` with the password in the environment.
    pub fn run(&self, args: &[String]) -> Result<()> {
        let mut cmd = Command::new(&args[0]);
        cmd.args(&args[1..]);
        if let Some(p) = &self.password {
            cmd.env("PGPASSWORD", p);
        }
        let out = cmd.output().with_context(|| {
            format!("running {} (is the PostgreSQL client installed?)", args[0])
        })?;
        if !out.status.success() {
            bail!(
                "{} failed ({}): {}",
                args[0],
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// The number of entries in a custom-format archive (`pg_restore
    /// --list`), which fails on a file that is not one.
    pub fn archive_entries(file: &Path) -> Result<usize> {
        let out = Command::new("pg_restore")
            .arg("--list")
            .arg(file)
            .output()
            .context("running pg_restore --list (is the PostgreSQL client installed?)")?;
        if !out.status.success() {
            bail!(
                "{} is not a readable pg_dump archive: {}",
                file.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
            .count())
    }
}

/// A command line as a shell would take it back.
pub fn shell_line(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=./:@,+%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_leaves_the_url_and_is_decoded_for_pgpassword() {
        let t = PgTarget::parse(
            "postgres://news:s%40cret:x@db.example.org:5433/whatsup?sslmode=require",
        )
        .unwrap();
        assert_eq!(
            t.url,
            "postgres://news@db.example.org:5433/whatsup?sslmode=require"
        );
        assert_eq!(t.password.as_deref(), Some("s@cret:x"));
        let plain = PgTarget::parse("postgres://db.example.org/whatsup").unwrap();
        assert_eq!(plain.url, "postgres://db.example.org/whatsup");
        assert!(plain.password.is_none());
    }

    #[test]
    fn a_shell_line_quotes_what_needs_quoting() {
        let line = shell_line(&["pg_dump".into(), "--file".into(), "my dump's.pgdump".into()]);
        assert_eq!(line, "pg_dump --file 'my dump'\\''s.pgdump'");
    }

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_path("sqlite:///var/lib/whatsup/whatsup.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/whatsup/whatsup.db"))
        );
        assert_eq!(sqlite_path("postgres://x/y"), None);
    }
}
