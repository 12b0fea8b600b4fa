//! The minijinja environment: built-in templates, editor overrides, the date
//! helper, strict undefined behaviour, and errors with file, line and column.
//!
//! Templates are looked up by name, first in the configured override
//! directory (`[newsletter] templates_dir`), then among the built-in files of
//! `templates/` compiled into the binary. An editor overrides one file by
//! putting a file of the same name in that directory, and may add partials of
//! their own to `{% include %}`. Autoescaping follows the file extension
//! (`.html` escapes, `.txt` and `.css` do not). An undefined variable or
//! attribute is an error, never an empty string.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate};
use minijinja::value::Kwargs;
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};

use super::error::{line_col, SourceError};

/// The templates shipped in `templates/`, by name.
pub const BUILTIN: &[(&str, &str)] = &[
    ("layout.html", include_str!("../../templates/layout.html")),
    ("issue.html", include_str!("../../templates/issue.html")),
    ("issue.txt", include_str!("../../templates/issue.txt")),
    ("greeting.txt", include_str!("../../templates/greeting.txt")),
    ("style.css", include_str!("../../templates/style.css")),
    (
        "responsive.css",
        include_str!("../../templates/responsive.css"),
    ),
    // The recipients' pages of `whatsup serve`.
    (
        "web/layout.html",
        include_str!("../../templates/web/layout.html"),
    ),
    (
        "web/unsubscribe.html",
        include_str!("../../templates/web/unsubscribe.html"),
    ),
    (
        "web/unsubscribed.html",
        include_str!("../../templates/web/unsubscribed.html"),
    ),
    (
        "web/resubscribed.html",
        include_str!("../../templates/web/resubscribed.html"),
    ),
    (
        "web/preferences.html",
        include_str!("../../templates/web/preferences.html"),
    ),
    (
        "web/invalid.html",
        include_str!("../../templates/web/invalid.html"),
    ),
    (
        "web/message.html",
        include_str!("../../templates/web/message.html"),
    ),
    (
        "web/busy.html",
        include_str!("../../templates/web/busy.html"),
    ),
    (
        "web/expired.html",
        include_str!("../../templates/web/expired.html"),
    ),
    (
        "web/links.html",
        include_str!("../../templates/web/links.html"),
    ),
    (
        "web/archive.html",
        include_str!("../../templates/web/archive.html"),
    ),
    ("web/web.css", include_str!("../../templates/web/web.css")),
];

/// Where the text of each loaded template came from, for error columns.
#[derive(Debug, Default, Clone)]
pub struct Sources(Arc<Mutex<HashMap<String, (String, String)>>>);

impl Sources {
    /// The display path of a template (its override file, or `templates/NAME`).
    pub fn path(&self, name: &str) -> String {
        self.0
            .lock()
            .map(|m| m.get(name).map(|(p, _)| p.clone()))
            .ok()
            .flatten()
            .unwrap_or_else(|| format!("templates/{name}"))
    }

    fn source(&self, name: &str) -> Option<String> {
        self.0.lock().ok()?.get(name).map(|(_, s)| s.clone())
    }
}

/// Builds the environment. `default_tz` is the zone the date helper uses when
/// a template does not name one.
pub fn environment(
    overrides: Option<&Path>,
    default_tz: chrono_tz::Tz,
) -> (Environment<'static>, Sources) {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    let sources = Sources::default();
    let dir: Option<PathBuf> = overrides
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf);
    let seen = sources.clone();
    env.set_loader(move |name: &str| {
        if name.contains("..") || name.starts_with('/') || name.contains('\\') {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("template name {name:?} may not leave the templates directory"),
            ));
        }
        let mut found = None;
        if let Some(dir) = &dir {
            let path = dir.join(name);
            if path.is_file() {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        format!("reading {}: {e}", path.display()),
                    )
                })?;
                found = Some((path.display().to_string(), text));
            }
        }
        if found.is_none() {
            found = BUILTIN
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(n, t)| (format!("templates/{n}"), t.to_string()));
        }
        Ok(found.map(|(path, text)| {
            if let Ok(mut m) = seen.0.lock() {
                m.insert(name.to_string(), (path, text.clone()));
            }
            text
        }))
    });
    env.add_filter(
        "datetime",
        move |value: String, format: Option<String>, kwargs: Kwargs| {
            let tz: Option<String> = kwargs.get("tz")?;
            kwargs.assert_all_used()?;
            format_datetime(&value, format.as_deref(), tz.as_deref(), default_tz)
        },
    );
    (env, sources)
}

/// The date helper behind the `datetime` filter.
///
/// `value` is a plain date (`2025-07-01`, shown as is) or an RFC 3339 date
/// and time (converted to `tz`, else the newsletter's zone). `format` is a
/// chrono strftime pattern; the default is `%-d %B %Y` for dates and
/// `%-d %B %Y, %H:%M %Z` for times.
pub fn format_datetime(
    value: &str,
    format: Option<&str>,
    tz: Option<&str>,
    default_tz: chrono_tz::Tz,
) -> Result<String, Error> {
    let bad = |msg: String| Error::new(ErrorKind::InvalidOperation, msg);
    let zone: chrono_tz::Tz = match tz {
        Some(t) => t
            .parse()
            .map_err(|_| bad(format!("datetime: {t:?} is not an IANA time zone")))?,
        None => default_tz,
    };
    let check = |f: &str| -> Result<(), Error> {
        use chrono::format::{Item, StrftimeItems};
        if StrftimeItems::new(f).any(|i| matches!(i, Item::Error)) {
            return Err(bad(format!(
                "datetime: {f:?} is not a valid strftime format"
            )));
        }
        Ok(())
    };
    if let Ok(d) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let f = format.unwrap_or("%-d %B %Y");
        check(f)?;
        return Ok(d.format(f).to_string());
    }
    let t = DateTime::parse_from_rfc3339(value).map_err(|_| {
        bad(format!(
            "datetime: {value:?} is neither a date (2025-07-01) nor an RFC 3339 time"
        ))
    })?;
    let f = format.unwrap_or("%-d %B %Y, %H:%M %Z");
    check(f)?;
    Ok(t.with_timezone(&zone).format(f).to_string())
}

/// Turns a minijinja error into one naming the template file, line and column.
pub fn source_error(err: &Error, sources: &Sources, fallback: &str) -> SourceError {
    // The innermost error with a place is the most precise.
    let mut best: &Error = err;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = cur {
        if let Some(me) = e.downcast_ref::<Error>() {
            if me.line().is_some() {
                best = me;
            }
        }
        cur = e.source();
    }
    let name = best.name().unwrap_or(fallback).to_string();
    let file = sources.path(&name);
    let mut message = match best.kind() {
        ErrorKind::UndefinedError => "undefined value".to_string(),
        ErrorKind::UnknownFilter => "unknown filter".to_string(),
        ErrorKind::UnknownTest => "unknown test".to_string(),
        ErrorKind::UnknownFunction => "unknown function".to_string(),
        ErrorKind::SyntaxError => "syntax error".to_string(),
        ErrorKind::TemplateNotFound => "template not found".to_string(),
        k => k.to_string(),
    };
    if let Some(d) = best.detail() {
        message.push_str(": ");
        message.push_str(d);
    }
    let (mut line, mut column) = (best.line().unwrap_or(0), 0);
    if let (Some(range), Some(src)) = (best.range(), sources.source(&name)) {
        let (l, c) = line_col(&src, range.start);
        line = l;
        column = c;
        if let Some(expr) = src.get(range.clone()) {
            if best.kind() == ErrorKind::UndefinedError && expr.len() < 80 {
                message.push_str(&format!(" (`{}`)", expr.trim()));
            }
        }
    } else if line > 0 {
        column = 1;
    }
    SourceError::new(file, line, column, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format_in_the_requested_zone() {
        let tz: chrono_tz::Tz = "Asia/Tokyo".parse().unwrap();
        assert_eq!(
            format_datetime("2025-07-01", None, None, tz).unwrap(),
            "1 July 2025"
        );
        assert_eq!(
            format_datetime("2025-07-19T18:00:00+09:00", None, None, tz).unwrap(),
            "19 July 2025, 18:00 JST"
        );
        assert_eq!(
            format_datetime(
                "2025-07-19T18:00:00+09:00",
                Some("%H:%M %Z"),
                Some("Europe/Paris"),
                tz
            )
            .unwrap(),
            "11:00 CEST"
        );
        assert!(format_datetime("soon", None, None, tz).is_err());
        assert!(format_datetime("2025-07-01", None, Some("Mars/Olympus"), tz).is_err());
    }

    #[test]
    fn an_undefined_variable_names_template_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.html"), "<p>\n  {{ issue.nope }}</p>").unwrap();
        let (env, sources) = environment(Some(dir.path()), chrono_tz::Asia::Tokyo);
        let err = env
            .get_template("t.html")
            .and_then(|t| t.render(minijinja::context! { issue => minijinja::context!{ a => 1 } }))
            .unwrap_err();
        let e = source_error(&err, &sources, "t.html");
        assert!(e.file.ends_with("t.html"), "{e}");
        assert_eq!((e.line, e.column), (2, 6), "{e}");
    }

    #[test]
    fn template_names_cannot_escape_the_directory() {
        let (env, _) = environment(None, chrono_tz::Asia::Tokyo);
        assert!(env.get_template("../Cargo.toml").is_err());
    }
}
