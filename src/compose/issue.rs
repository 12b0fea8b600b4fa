//! Issue files: Markdown with TOML front matter.
//!
//! ```text
//! +++
//! subject = "Tokyo opens its summer gardens at night"
//! preheader = "Night gardens, a river festival and a new cycling plan"
//! number = 214
//! date = 2025-07-01
//!
//! [[sections]]
//! title = "Policy & Initiatives"
//!
//! [[sections.articles]]
//! heading = "A greener river front"
//! body = '''
//! Markdown text of the article…
//! '''
//! image = { src = "https://…/river.jpg", alt = "The river at dusk", credit = "TMG", width = 560 }
//! read_more = { url = "https://…", label = "The full plan" }
//! when = 2025-07-19T18:00:00+09:00   # optional, for events
//! place = "Sumida Park"              # optional
//! +++
//! The introduction, in Markdown.
//! ```
//!
//! The front matter sits between two lines holding only `+++`. Unknown keys are
//! errors (so a misspelt `preheadr` is caught), and every error names the
//! file, line and column. `subject` may be left out or empty here: the
//! preflight check reports it as a failure with its place, rather than the
//! parser refusing the whole file.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::error::{line_col, SourceError};

/// A place in the issue file (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// A parsed issue file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Issue {
    /// Where it was read from (shown in errors).
    pub file: String,
    /// The whole file as written by the editor.
    #[serde(skip)]
    pub source: String,
    pub subject: String,
    pub subject_pos: Pos,
    pub preheader: String,
    pub number: u32,
    pub date: NaiveDate,
    /// The introduction: the Markdown after the front matter.
    pub intro: String,
    pub intro_pos: Pos,
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Section {
    pub title: String,
    pub pos: Pos,
    pub articles: Vec<Article>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Article {
    pub heading: String,
    pub pos: Pos,
    /// Markdown.
    pub body: String,
    pub image: Option<Image>,
    pub read_more: Option<ReadMore>,
    /// An event's start, as written (RFC 3339), for the date helper.
    pub when: Option<String>,
    pub place: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    pub src: String,
    #[serde(default)]
    pub alt: String,
    #[serde(default)]
    pub credit: Option<String>,
    /// Display width in CSS pixels (default 560, the content width).
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
    #[serde(skip_deserializing)]
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadMore {
    pub url: String,
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    subject: Option<Spanned<String>>,
    #[serde(default)]
    preheader: String,
    number: u32,
    date: Spanned<toml::value::Datetime>,
    #[serde(default)]
    sections: Vec<RawSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSection {
    title: Spanned<String>,
    #[serde(default)]
    articles: Vec<RawArticle>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArticle {
    heading: Spanned<String>,
    #[serde(default)]
    body: String,
    image: Option<Spanned<Image>>,
    read_more: Option<ReadMore>,
    when: Option<Spanned<toml::value::Datetime>>,
    place: Option<String>,
}

const FENCE: &str = "+++";

impl Issue {
    /// Reads and parses an issue file.
    pub fn load(path: &Path) -> Result<Issue, SourceError> {
        let source = std::fs::read_to_string(path).map_err(|e| {
            SourceError::new(
                path.display().to_string(),
                0,
                0,
                format!("cannot read: {e}"),
            )
        })?;
        Issue::parse(&path.display().to_string(), &source)
    }

    /// Parses issue text; `file` is used in error messages.
    pub fn parse(file: &str, source: &str) -> Result<Issue, SourceError> {
        let err = |offset: usize, msg: String| SourceError::at_offset(file, source, offset, msg);
        // Front matter: from the first line `+++` to the next one.
        let first_end = source.find('\n').unwrap_or(source.len());
        if source[..first_end].trim_end() != FENCE {
            return Err(SourceError::new(
                file,
                1,
                1,
                "an issue file must start with a line `+++` opening the TOML front matter",
            ));
        }
        let fm_start = (first_end + 1).min(source.len());
        let mut pos = fm_start;
        let mut fm_end = None;
        while pos < source.len() {
            let end = source[pos..]
                .find('\n')
                .map(|i| pos + i)
                .unwrap_or(source.len());
            if source[pos..end].trim_end() == FENCE {
                fm_end = Some((pos, (end + 1).min(source.len())));
                break;
            }
            pos = end + 1;
        }
        let Some((fm_end, body_start)) = fm_end else {
            return Err(err(
                source.len(),
                "the front matter opened on line 1 is never closed by a line `+++`".into(),
            ));
        };
        let fm = &source[fm_start..fm_end];
        let raw: FrontMatter = toml::from_str(fm).map_err(|e| {
            let offset = fm_start + e.span().map(|s| s.start).unwrap_or(0);
            err(offset, format!("front matter: {}", e.message()))
        })?;
        let at = |offset: usize| {
            let (line, column) = line_col(source, fm_start + offset);
            Pos { line, column }
        };
        let date_span = raw.date.span();
        let d = raw.date.into_inner();
        let date = match (d.date, d.time) {
            (Some(date), None) if d.offset.is_none() => {
                NaiveDate::from_ymd_opt(date.year as i32, date.month as u32, date.day as u32)
                    .ok_or_else(|| {
                        err(
                            fm_start + date_span.start,
                            "date: not a calendar date".into(),
                        )
                    })?
            }
            _ => {
                return Err(err(
                    fm_start + date_span.start,
                    "date: expected a plain date such as 2025-07-01".into(),
                ))
            }
        };
        let (subject, subject_pos) = match raw.subject {
            Some(s) => {
                let p = at(s.span().start);
                (s.into_inner().trim().to_string(), p)
            }
            None => (String::new(), Pos { line: 2, column: 1 }),
        };
        let mut sections = Vec::new();
        for s in raw.sections {
            let spos = at(s.title.span().start);
            let mut articles = Vec::new();
            for a in s.articles {
                let apos = at(a.heading.span().start);
                let image = a.image.map(|i| {
                    let p = at(i.span().start);
                    let mut image = i.into_inner();
                    image.pos = p;
                    image
                });
                let when = match a.when {
                    None => None,
                    Some(w) => {
                        let span = w.span();
                        let w = w.into_inner();
                        if w.date.is_none() || w.time.is_none() || w.offset.is_none() {
                            return Err(err(
                                fm_start + span.start,
                                "when: expected a date and time with an offset, such as 2025-07-19T18:00:00+09:00".into(),
                            ));
                        }
                        Some(w.to_string())
                    }
                };
                articles.push(Article {
                    heading: a.heading.into_inner().trim().to_string(),
                    pos: apos,
                    body: a.body,
                    image,
                    read_more: a.read_more,
                    when,
                    place: a.place,
                });
            }
            sections.push(Section {
                title: s.title.into_inner().trim().to_string(),
                pos: spos,
                articles,
            });
        }
        let (intro_line, _) = line_col(source, body_start);
        Ok(Issue {
            file: file.to_string(),
            source: source.to_string(),
            subject,
            subject_pos,
            preheader: raw.preheader.trim().to_string(),
            number: raw.number,
            date,
            intro: source[body_start..].to_string(),
            intro_pos: Pos {
                line: intro_line,
                column: 1,
            },
            sections,
        })
    }

    /// The number of articles in all sections.
    pub fn article_count(&self) -> usize {
        self.sections.iter().map(|s| s.articles.len()).sum()
    }
}

/// A new issue file for the editor to fill in.
pub fn skeleton(number: u32, date: NaiveDate) -> String {
    format!(
        r#"+++
subject = ""
preheader = ""
number = {number}
date = {date}

[[sections]]
title = "Policy & Initiatives"

[[sections.articles]]
heading = ""
body = '''
'''

[[sections]]
title = "Events"

[[sections.articles]]
heading = ""
body = '''
'''

[[sections]]
title = "Culture & Nature"

[[sections.articles]]
heading = ""
body = '''
'''
+++
"#
    )
}

/// Where an issue given on the command line comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueRef {
    File(PathBuf),
    Number(u32),
}

impl IssueRef {
    /// A path that exists is a file; otherwise a number names a stored issue.
    pub fn parse(arg: &str) -> Result<IssueRef, String> {
        let path = PathBuf::from(arg);
        if path.exists() {
            return Ok(IssueRef::File(path));
        }
        arg.trim()
            .trim_start_matches('#')
            .parse()
            .map(IssueRef::Number)
            .map_err(|_| format!("{arg:?} is neither an existing issue file nor an issue number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "+++\nsubject = \"Hello\"\nnumber = 3\ndate = 2025-07-01\n\n[[sections]]\ntitle = \"Events\"\n\n[[sections.articles]]\nheading = \"Fireworks\"\nbody = \"Bright.\"\nimage = { src = \"https://example.org/a.jpg\" }\n+++\nIntro *text*.\n";

    #[test]
    fn a_well_formed_issue_parses_with_places() {
        let i = Issue::parse("a.md", GOOD).unwrap();
        assert_eq!(i.subject, "Hello");
        assert_eq!(
            i.subject_pos,
            Pos {
                line: 2,
                column: 11
            }
        );
        assert_eq!(i.number, 3);
        assert_eq!(i.date, NaiveDate::from_ymd_opt(2025, 7, 1).unwrap());
        assert_eq!(i.sections[0].articles[0].heading, "Fireworks");
        assert_eq!(i.sections[0].articles[0].pos.line, 10);
        assert_eq!(
            i.sections[0].articles[0].image.as_ref().unwrap().pos.line,
            12
        );
        assert_eq!(i.intro, "Intro *text*.\n");
        assert_eq!(i.intro_pos.line, 14);
    }

    #[test]
    fn an_unknown_key_is_reported_at_its_line_and_column() {
        let src = GOOD.replace("number = 3", "numbr = 3");
        let e = Issue::parse("a.md", &src).unwrap_err();
        assert_eq!((e.line, e.column), (3, 1), "{e}");
        assert!(e.message.contains("numbr"), "{e}");
    }

    #[test]
    fn a_toml_syntax_error_is_reported_at_its_line_and_column() {
        let src = GOOD.replace("title = \"Events\"", "title = \"Events");
        let e = Issue::parse("a.md", &src).unwrap_err();
        assert_eq!(e.line, 7, "{e}");
        assert_eq!(e.file, "a.md");
    }

    #[test]
    fn a_missing_closing_fence_is_an_error() {
        let e = Issue::parse("a.md", "+++\nsubject = \"x\"\n").unwrap_err();
        assert!(e.message.contains("never closed"), "{e}");
    }

    #[test]
    fn a_date_with_a_time_is_refused_where_it_stands() {
        let src = GOOD.replace("date = 2025-07-01", "date = 2025-07-01T10:00:00");
        let e = Issue::parse("a.md", &src).unwrap_err();
        assert_eq!((e.line, e.column), (4, 8), "{e}");
    }

    #[test]
    fn the_skeleton_parses() {
        let s = skeleton(7, NaiveDate::from_ymd_opt(2025, 1, 2).unwrap());
        let i = Issue::parse("new.md", &s).unwrap();
        assert_eq!(i.number, 7);
        assert_eq!(i.article_count(), 3);
    }
}
