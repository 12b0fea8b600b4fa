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
use super::merge;
use crate::domain::closest;

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
    pub preheader_pos: Pos,
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
    /// Where the body's text starts (the heading's place when it has none).
    pub body_pos: Pos,
    pub image: Option<Image>,
    pub read_more: Option<ReadMore>,
    /// An event's start, as written (RFC 3339), for the date helper.
    pub when: Option<String>,
    pub place: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Image {
    pub src: String,
    pub alt: String,
    pub credit: Option<String>,
    /// Display width in CSS pixels (default 536, the content width).
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Where the image's table starts.
    #[serde(skip)]
    pub pos: Pos,
    /// Where its `src` value starts.
    #[serde(skip)]
    pub src_pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadMore {
    pub url: String,
    pub label: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    subject: Option<Spanned<String>>,
    preheader: Option<Spanned<String>>,
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
    body: Option<Spanned<String>>,
    image: Option<Spanned<RawImage>>,
    read_more: Option<RawReadMore>,
    when: Option<Spanned<toml::value::Datetime>>,
    place: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    src: Spanned<String>,
    alt: Option<Spanned<String>>,
    credit: Option<Spanned<String>>,
    width: Option<u32>,
    height: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReadMore {
    url: Spanned<String>,
    label: Option<Spanned<String>>,
}

/// The fields of the front matter's tables, for "did you mean".
const FIELDS: &[&str] = &[
    "subject",
    "preheader",
    "number",
    "date",
    "sections",
    "title",
    "articles",
    "heading",
    "body",
    "image",
    "read_more",
    "when",
    "place",
    "src",
    "alt",
    "credit",
    "width",
    "height",
    "url",
    "label",
];

const FENCE: &str = "+++";

/// Where the front matter lies in the file, and the merge-tag errors found
/// in its values so far.
struct Places<'a> {
    file: &'a str,
    source: &'a str,
    /// Byte offset of the front matter in `source`.
    fm_start: usize,
    errors: Vec<SourceError>,
}

impl Places<'_> {
    fn pos(&self, fm_offset: usize) -> Pos {
        let (line, column) = line_col(self.source, self.fm_start + fm_offset);
        Pos { line, column }
    }

    fn tag_error(&mut self, fm_offset: usize, message: String) {
        self.errors.push(
            SourceError::at_offset(self.file, self.source, self.fm_start + fm_offset, message)
                .rule("merge-tag"),
        );
    }

    fn fm(&self) -> &str {
        &self.source[self.fm_start..]
    }

    /// A text value: checks its merge tags (each error at its own place)
    /// and returns it with its position.
    fn text(&mut self, v: Spanned<String>) -> (String, Pos) {
        let span = v.span();
        let value = v.into_inner();
        if merge::has_tags(&value) {
            if let Err(errors) = merge::parse(&value) {
                for e in errors {
                    let at = value_offset(self.fm(), &span, &value, e.start, e.end);
                    self.tag_error(at, e.message);
                }
            }
        }
        (value, self.pos(span.start))
    }

    /// A URL: merge tags are not allowed in it.
    fn url(&mut self, v: Spanned<String>) -> (String, Pos) {
        let span = v.span();
        let value = v.into_inner();
        if merge::has_tags(&value) {
            let i = value.find("{{").or_else(|| value.find("{%")).unwrap_or(0);
            let at = value_offset(self.fm(), &span, &value, i, i + 2);
            self.tag_error(
                at,
                "merge tags are not allowed in a URL; the personal links are \
                 `{{ links.browser }}`, `{{ links.preferences }}` and `{{ links.unsubscribe }}` \
                 in a body's Markdown"
                    .into(),
            );
        }
        (value.trim().to_string(), self.pos(span.start))
    }
}

/// The offset in `fm` of byte `start` of a string `value` whose TOML token
/// spans `span`. Literal strings (in single quotes) and basic strings
/// without escapes map exactly; otherwise the value's text from `start` to
/// `end` is looked for in the token, or the token's start is given.
fn value_offset(
    fm: &str,
    span: &std::ops::Range<usize>,
    value: &str,
    start: usize,
    end: usize,
) -> usize {
    let Some(raw) = fm.get(span.clone()) else {
        return span.start;
    };
    let delim = ["'''", "\"\"\"", "'", "\""]
        .into_iter()
        .find(|d| raw.starts_with(d) && raw.len() >= 2 * d.len());
    if let Some(d) = delim {
        let mut open = d.len();
        if d.len() == 3 {
            // A newline right after the opening delimiter is not part of it.
            if raw[open..].starts_with("\r\n") {
                open += 2;
            } else if raw[open..].starts_with('\n') {
                open += 1;
            }
        }
        if raw.get(open..raw.len() - d.len()) == Some(value) {
            return span.start + open + start;
        }
    }
    let needle = value.get(start..end.min(value.len())).unwrap_or("");
    match raw.find(needle).filter(|_| !needle.is_empty()) {
        Some(i) => span.start + i,
        None => span.start,
    }
}

/// An editor's words for a TOML error in the front matter.
fn toml_message(e: &toml::de::Error) -> String {
    let raw = e.message().trim();
    let first = raw.lines().next().unwrap_or("").trim();
    if let Some(rest) = first.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or("");
        let hint = match closest(field, FIELDS.iter().copied()) {
            Some(f) => format!(": did you mean `{f}`?"),
            None => String::new(),
        };
        let expected = rest
            .split_once("expected ")
            .map(|(_, e)| format!(" (this table takes {})", e.trim_end_matches('.')))
            .unwrap_or_default();
        return format!("unknown field `{field}`{hint}{expected}");
    }
    if let Some(rest) = first.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or("");
        return match field {
            "number" => "the front matter needs the issue number, such as `number = 214`".into(),
            "date" => "the front matter needs the issue date, such as `date = 2025-07-01`".into(),
            "heading" => "every article needs a heading: `heading = \"…\"`".into(),
            "title" => "every section needs a title: `title = \"…\"`".into(),
            "src" => "an image needs its address: `src = \"https://…/photo.jpg\"`".into(),
            "url" => "read_more needs its address: `url = \"https://…\"`".into(),
            f => format!("`{f}` is required here"),
        };
    }
    if let Some(rest) = first.strip_prefix("duplicate key `") {
        let key = rest.split('`').next().unwrap_or("");
        return format!("`{key}` is given twice; keep one");
    }
    if let Some(rest) = first.strip_prefix("invalid type: ") {
        let found = rest
            .split(", expected")
            .next()
            .unwrap_or("")
            .replace("string ", "text ")
            .replace("integer ", "the number ");
        let expected = rest.rsplit("expected ").next().unwrap_or("");
        let want = if expected.contains("u32") || expected.contains("integer") {
            "a whole number here (without quotes, such as 214)"
        } else if expected.contains("string") {
            "text in quotes here (such as \"…\")"
        } else if expected.contains("sequence") {
            "a list here (sections and articles are written [[sections]] and \
             [[sections.articles]])"
        } else if expected.contains("struct") || expected.contains("map") {
            "a table here (such as { src = \"…\", alt = \"…\" })"
        } else {
            expected
        };
        return format!("expected {want}, found {found}");
    }
    if first.starts_with("invalid basic string") {
        return "this text in double quotes does not end on its line, or holds a control \
                character: close it with `\"`, or for several lines use three single quotes \
                ('''), as the bodies do"
            .into();
    }
    if first.starts_with("invalid literal string") {
        return "this text in single quotes does not end on its line: close it with `'`, or \
                for several lines use three single quotes (''')"
            .into();
    }
    if first.starts_with("invalid multiline") {
        return "this text is never closed: end it with the same three quotes that open it".into();
    }
    if first.starts_with("invalid escape") || first.starts_with("invalid unicode") {
        return "a backslash in double quotes starts an escape such as \\n: write \\\\ for a \
                backslash, or use single quotes, where a backslash is plain text"
            .into();
    }
    if first.starts_with("expected `.`, `=`") || first == "expected `=`" {
        return "expected `=` after the name: write `name = value`".into();
    }
    if first.starts_with("invalid key") || first.starts_with("invalid table header") {
        return "a name here must be a plain word such as `subject`, or a table header such as \
                [[sections]]"
            .into();
    }
    if first.starts_with("expected newline") {
        return "only one `name = value` fits on a line: start the next one on a new line".into();
    }
    if first.starts_with("invalid string") {
        return "expected a value: text in quotes (\"…\"), a number, a date, a list [ … ] or a \
                table { … }"
            .into();
    }
    if first.contains("date") || first.contains("time") {
        return format!("not a valid date or time ({first}): write dates as 2025-07-01");
    }
    format!("this line of the front matter does not read as TOML ({first})")
}

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

    /// Parses issue text; `file` is used in error messages. The first
    /// problem is the error (see [`Issue::parse_all`] for every one).
    pub fn parse(file: &str, source: &str) -> Result<Issue, SourceError> {
        Issue::parse_all(file, source).map_err(|mut e| e.remove(0))
    }

    /// Parses issue text, reporting every merge-tag problem at once (the
    /// front matter's structure stops at its first error).
    pub fn parse_all(file: &str, source: &str) -> Result<Issue, Vec<SourceError>> {
        let err = |offset: usize, msg: String| {
            vec![SourceError::at_offset(file, source, offset, msg).rule("front-matter")]
        };
        // Front matter: from the first line `+++` to the next one.
        let first_end = source.find('\n').unwrap_or(source.len());
        if source[..first_end].trim_end() != FENCE {
            return Err(err(
                0,
                "an issue file must start with a line `+++` opening the TOML front matter".into(),
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
            err(offset, toml_message(&e))
        })?;
        let mut places = Places {
            file,
            source,
            fm_start,
            errors: Vec::new(),
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
            Some(s) => places.text(s),
            None => (String::new(), Pos { line: 2, column: 1 }),
        };
        let (preheader, preheader_pos) = match raw.preheader {
            Some(s) => places.text(s),
            None => (String::new(), Pos { line: 2, column: 1 }),
        };
        let mut sections = Vec::new();
        for s in raw.sections {
            let (title, spos) = places.text(s.title);
            let mut articles = Vec::new();
            for a in s.articles {
                articles.push(article(a, &mut places, fm_start, &err)?);
            }
            sections.push(Section {
                title: title.trim().to_string(),
                pos: spos,
                articles,
            });
        }
        let intro = &source[body_start..];
        if let Err(errors) = merge::parse(intro) {
            for e in errors {
                places.errors.push(
                    SourceError::at_offset(file, source, body_start + e.start, e.message)
                        .rule("merge-tag"),
                );
            }
        }
        if !places.errors.is_empty() {
            return Err(places.errors);
        }
        let (intro_line, _) = line_col(source, body_start);
        Ok(Issue {
            file: file.to_string(),
            source: source.to_string(),
            subject: subject.trim().to_string(),
            subject_pos,
            preheader: preheader.trim().to_string(),
            preheader_pos,
            number: raw.number,
            date,
            intro: intro.to_string(),
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

/// One article of the front matter, with its places.
fn article(
    a: RawArticle,
    places: &mut Places<'_>,
    fm_start: usize,
    err: &dyn Fn(usize, String) -> Vec<SourceError>,
) -> Result<Article, Vec<SourceError>> {
    let (heading, pos) = places.text(a.heading);
    let (body, body_pos) = match a.body {
        Some(b) => places.text(b),
        None => (String::new(), pos),
    };
    let image = a.image.map(|i| {
        let table = places.pos(i.span().start);
        let i = i.into_inner();
        let (src, src_pos) = places.url(i.src);
        Image {
            src,
            alt: i.alt.map(|a| places.text(a).0).unwrap_or_default(),
            credit: i.credit.map(|c| places.text(c).0),
            width: i.width,
            height: i.height,
            pos: table,
            src_pos,
        }
    });
    let read_more = a.read_more.map(|r| ReadMore {
        url: places.url(r.url).0,
        label: r.label.map(|l| places.text(l).0),
    });
    let when = match a.when {
        None => None,
        Some(w) => {
            let span = w.span();
            let w = w.into_inner();
            if w.date.is_none() || w.time.is_none() || w.offset.is_none() {
                return Err(err(
                    fm_start + span.start,
                    "when: expected a date and time with an offset, such as \
                     2025-07-19T18:00:00+09:00"
                        .into(),
                ));
            }
            Some(w.to_string())
        }
    };
    Ok(Article {
        heading: heading.trim().to_string(),
        pos,
        body,
        body_pos,
        image,
        read_more,
        when,
        place: a.place.map(|p| places.text(p).0),
    })
}

/// A new issue file for the editor to fill in: every field, the optional
/// ones commented out with an example (see docs/issue-format.md). The
/// subject and headings are left empty, so `issues check` fails until they
/// are written.
pub fn skeleton(number: u32, date: NaiveDate) -> String {
    let article = |extra: &str| {
        format!(
            r#"[[sections.articles]]
heading = ""
# The article in Markdown: **bold**, *italic*, [a link](https://www.example.org/).
body = '''
'''
# image = {{ src = "https://www.example.org/photo.jpg", alt = "What the photo shows", credit = "Who took it", width = 536, height = 300 }}
# read_more = {{ url = "https://www.example.org/more", label = "Read more" }}
{extra}"#
        )
    };
    let event = "# when = 2025-07-19T18:00:00+09:00   # an event's start, with its UTC offset\n\
                 # place = \"Sumida Park, Asakusa\"     # where it takes place\n";
    format!(
        r#"+++
# The issue's front matter (TOML); every field is in docs/issue-format.md.
# Merge tags such as {{{{ recipient.name or "colleague" }}}} may be used in the
# subject, preheader, titles, headings, bodies, alt texts and button labels.
subject = ""
# The line inboxes show after the subject.
preheader = ""
number = {number}
date = {date}

[[sections]]
title = "Policy & Initiatives"

{policy}
[[sections]]
title = "Events"

{events}
[[sections]]
title = "Culture & Nature"

{culture}+++
"#,
        policy = article(""),
        events = article(event),
        culture = article(""),
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
    fn toml_errors_are_in_an_editors_words_at_their_place_under_front_matter() {
        for (from, to, place, words) in [
            (
                "title = \"Events\"",
                "title = \"Events",
                (7, 16),
                "does not end on its line",
            ),
            ("number = 3", "numbr = 3", (3, 1), "did you mean `number`?"),
            ("number = 3", "number = \"3\"", (3, 10), "a whole number"),
            (
                "subject = \"Hello\"",
                "subject \"Hello\"",
                (2, 9),
                "expected `=`",
            ),
            (
                "subject = \"Hello\"",
                "subject = \"He\\llo\"",
                (2, 16),
                "backslash",
            ),
            (
                "subject = \"Hello\"",
                "subject = Hello",
                (2, 11),
                "text in quotes",
            ),
            (
                "image = { src",
                "image = \"x\"\nfoo = { src",
                (12, 9),
                "a table here",
            ),
        ] {
            let src = GOOD.replacen(from, to, 1);
            let e = Issue::parse("a.md", &src).unwrap_err();
            assert_eq!((e.line, e.column), place, "{to}: {e}");
            assert!(e.message.contains(words), "{to}: {e}");
            assert_eq!(e.rule, "front-matter", "{to}: {e}");
            assert!(!e.message.contains("invalid basic string"), "{e}");
        }
    }

    #[test]
    fn merge_tags_are_checked_at_import_with_their_own_line_and_column() {
        let src = GOOD.replace(
            "body = \"Bright.\"",
            "body = '''\nBright.\nDear {{ recipient.nmae }},\n'''\nplace = \"{% if x %}\"",
        );
        let errors = Issue::parse_all("a.md", &src).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!((errors[0].line, errors[0].column), (13, 9), "{}", errors[0]);
        assert!(errors[0].message.contains("did you mean `recipient.name`"));
        assert_eq!(errors[0].rule, "merge-tag");
        assert_eq!(
            (errors[1].line, errors[1].column),
            (15, 10),
            "{}",
            errors[1]
        );
        let url = GOOD.replace("a.jpg", "{{ recipient.name }}.jpg");
        let e = Issue::parse("a.md", &url).unwrap_err();
        assert!(e.message.contains("not allowed in a URL"), "{e}");
        let intro = GOOD.replace("Intro *text*.", "Intro {{ links.prefs }}.");
        let e = Issue::parse("a.md", &intro).unwrap_err();
        assert_eq!((e.line, e.column), (14, 10), "{e}");
        assert!(e.message.contains("`links.preferences`"), "{e}");
    }

    #[test]
    fn the_skeleton_parses() {
        let s = skeleton(7, NaiveDate::from_ymd_opt(2025, 1, 2).unwrap());
        let i = Issue::parse("new.md", &s).unwrap();
        assert_eq!(i.number, 7);
        assert_eq!(i.article_count(), 3);
    }
}
