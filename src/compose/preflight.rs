//! `whatsup issues check`: everything that would hurt an issue in an inbox,
//! found before any send.
//!
//! Failures (the issue must not be sent):
//! - `front-matter`: the issue file's TOML does not read (file, line,
//!   column, in an editor's words);
//! - `merge-tag`: a `{{ … }}` or `{% … %}` in the issue's text that is not a
//!   valid merge tag (see [`super::merge`]);
//! - `template`: a template error (file, line, column);
//! - `unsubscribe-missing`: no unsubscribe link in the HTML or the text part;
//! - `subject-missing`: no subject;
//! - `heading-empty`, `section-title-empty`: an article without a heading,
//!   a section without a title;
//! - `image-alt-missing`: an image without alt text;
//! - `image-src`: an image no mail client can load: a relative path, a
//!   local file, `http:`, `data:` or another scheme than https.
//!
//! Warnings (send, but think again):
//! - `image-size-missing`: an image without `width` and `height`, which
//!   Outlook shows at its natural size and which makes the page jump as it
//!   loads;
//! - `html-too-large`: HTML over 102 KiB, which Gmail clips;
//! - `insecure-link`: an http:// link;
//! - `subject-too-long`: a subject over 78 characters;
//! - `preheader-missing`: no preheader;
//! - `subject-all-caps`: a subject in capitals;
//! - `anchor-missing`: a link to `#anchor` that no element carries.

use std::collections::HashSet;

use serde::Serialize;

use super::compiled::{CompiledIssue, Recipient, Slot, Tracking};
use super::error::SourceError;
use super::issue::{Issue, Pos};
use super::{markdown, merge};
use crate::config::Newsletter;
use crate::domain::OrgKind;

/// Gmail clips messages whose HTML is larger than this.
pub const HTML_LIMIT: usize = 102 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Failure,
    Warning,
}

/// One finding of the check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub rule: &'static str,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The result of `check`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub file: String,
    pub html_bytes: usize,
    pub text_bytes: usize,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn failures(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Failure)
            .count()
    }
    pub fn warnings(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .count()
    }
    pub fn passed(&self) -> bool {
        self.failures() == 0
    }

    /// The human-readable form.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for f in &self.findings {
            s.push_str(&format!("{f}\n"));
        }
        s.push_str(&format!(
            "{}: {} ({} failure(s), {} warning(s); HTML {} bytes, text {} bytes)\n",
            self.file,
            if self.passed() {
                "ready to send"
            } else {
                "NOT ready to send"
            },
            self.failures(),
            self.warnings(),
            self.html_bytes,
            self.text_bytes
        ));
        s
    }
}

impl std::fmt::Display for Finding {
    /// `file:line:column: error[rule]: message`, like a compiler.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}", self.file)?,
            (l, 0) => write!(f, "{}:{l}", self.file)?,
            (l, c) => write!(f, "{}:{l}:{c}", self.file)?,
        }
        let sev = match self.severity {
            Severity::Failure => "error",
            Severity::Warning => "warning",
        };
        write!(f, ": {sev}[{}]: {}", self.rule, self.message)
    }
}

fn finding(sev: Severity, rule: &'static str, file: &str, pos: Pos, message: String) -> Finding {
    Finding {
        severity: sev,
        rule,
        file: file.to_string(),
        line: pos.line,
        column: pos.column,
        message,
    }
}

fn from_error(e: SourceError) -> Finding {
    Finding {
        severity: Severity::Failure,
        rule: e.rule,
        file: e.file,
        line: e.line,
        column: e.column,
        message: e.message,
    }
}

/// Checks an issue's text (as read from `file`) with the newsletter settings.
pub fn check_source(file: &str, source: &str, newsletter: &Newsletter) -> Report {
    check_source_with(file, source, newsletter, &Context::default())
}

/// What a check knows beyond the issue and the newsletter settings.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The campaign's tracking settings (compiled as it sends).
    pub tracking: Tracking,
    /// The media library's file names (`HASH.EXT`): an image at
    /// `/media/HASH.EXT` must be one of them.
    pub library: HashSet<String>,
}

/// Checks an issue's text with what the caller knows (tracking, the media
/// library).
pub fn check_source_with(
    file: &str,
    source: &str,
    newsletter: &Newsletter,
    context: &Context,
) -> Report {
    match Issue::parse_all(file, source) {
        Ok(issue) => check_with(issue, newsletter, context),
        Err(errors) => Report {
            file: file.to_string(),
            html_bytes: 0,
            text_bytes: 0,
            findings: errors.into_iter().map(from_error).collect(),
        },
    }
}

/// Compiles and checks a parsed issue.
pub fn check(issue: Issue, newsletter: &Newsletter) -> Report {
    check_with(issue, newsletter, &Context::default())
}

/// Compiles (with the context's tracking) and checks a parsed issue.
pub fn check_with(issue: Issue, newsletter: &Newsletter, context: &Context) -> Report {
    let file = issue.file.clone();
    let mut findings = Vec::new();
    issue_rules(&issue, &context.library, &mut findings);
    let mut report = Report {
        file: file.clone(),
        html_bytes: 0,
        text_bytes: 0,
        findings: Vec::new(),
    };
    match CompiledIssue::compile_tracked(issue, newsletter, context.tracking) {
        Err(e) => findings.push(from_error(e)),
        Ok(compiled) => compiled_rules(&compiled, &context.library, &mut findings, &mut report),
    }
    findings.sort_by_key(|f| {
        (
            f.severity != Severity::Failure,
            f.file.clone(),
            f.line,
            f.column,
        )
    });
    report.findings = findings;
    report
}

fn issue_rules(issue: &Issue, library: &HashSet<String>, out: &mut Vec<Finding>) {
    let file = &issue.file;
    let subject = issue.subject.trim();
    if subject.is_empty() {
        out.push(finding(
            Severity::Failure,
            "subject-missing",
            file,
            issue.subject_pos,
            "the issue has no subject".into(),
        ));
    } else {
        let n = subject.chars().count();
        if n > 78 {
            out.push(finding(
                Severity::Warning,
                "subject-too-long",
                file,
                issue.subject_pos,
                format!("the subject is {n} characters long; inboxes cut it after about 78"),
            ));
        }
        let letters: Vec<char> = subject.chars().filter(|c| c.is_alphabetic()).collect();
        let cased: Vec<&char> = letters
            .iter()
            .filter(|c| c.is_uppercase() || c.is_lowercase())
            .collect();
        if cased.len() >= 4 && cased.iter().all(|c| c.is_uppercase()) {
            out.push(finding(
                Severity::Warning,
                "subject-all-caps",
                file,
                issue.subject_pos,
                "the subject is in capitals, which reads as shouting and trips spam filters".into(),
            ));
        }
    }
    if issue.preheader.trim().is_empty() {
        out.push(finding(
            Severity::Warning,
            "preheader-missing",
            file,
            Pos { line: 1, column: 1 },
            "no preheader: inboxes will show the first words of the page instead".into(),
        ));
    }
    for s in &issue.sections {
        if s.title.trim().is_empty() {
            out.push(finding(
                Severity::Failure,
                "section-title-empty",
                file,
                s.pos,
                "a section has no title".into(),
            ));
        }
        for a in &s.articles {
            if a.heading.trim().is_empty() {
                out.push(finding(
                    Severity::Failure,
                    "heading-empty",
                    file,
                    a.pos,
                    format!(
                        "an article in \"{}\" has no heading",
                        merge::neutral(&s.title)
                    ),
                ));
            }
            if let Some(img) = &a.image {
                if img.alt.trim().is_empty() {
                    out.push(finding(
                        Severity::Failure,
                        "image-alt-missing",
                        file,
                        img.pos,
                        format!("the image of \"{}\" has no alt text", a.heading),
                    ));
                }
                let size = img.width.zip(img.height);
                image_rules(file, &img.src, img.src_pos, size, library, out);
            }
            for (src, sized) in markdown::images(&a.body) {
                let at = locate(issue, a.body_pos, &src);
                image_rules(file, &src, at, sized.then_some((1, 1)), library, out);
            }
        }
    }
    for (src, sized) in markdown::images(&issue.intro) {
        let at = locate(issue, issue.intro_pos, &src);
        image_rules(file, &src, at, sized.then_some((1, 1)), library, out);
    }
}

/// The place of `needle` in the issue file at or after `from`, or `from`.
fn locate(issue: &Issue, from: Pos, needle: &str) -> Pos {
    let src = &issue.source;
    let mut offset = 0;
    for (i, line) in src.split_inclusive('\n').enumerate() {
        if i + 1 >= from.line {
            break;
        }
        offset += line.len();
    }
    match src[offset.min(src.len())..].find(needle) {
        Some(i) if !needle.is_empty() => {
            let (line, column) = super::error::line_col(src, offset + i);
            Pos { line, column }
        }
        _ => from,
    }
}

/// The advice for an image no mail client can load.
const USE_THE_LIBRARY: &str = "add it to the media library (`whatsup media add FILE --alt \"…\"`) \
     and use the address that prints, or use the image's own https address";

/// What is wrong with an image address a mail client must load. An image
/// of the media library (`/media/HASH.EXT`, see [`markdown::media_name`])
/// is made absolute when the issue is compiled; it must be in `library`.
pub fn image_src_problem(src: &str, library: &HashSet<String>) -> Option<String> {
    let s = src.trim();
    let lower = s.to_ascii_lowercase();
    if s.is_empty() {
        return Some("the image has no address (src)".into());
    }
    if let Some(name) = markdown::media_name(s) {
        return (!library.contains(name)).then(|| {
            format!(
                "{s} is not in the media library; add the image with `whatsup media add FILE \
                 --alt \"…\"` and use the address that prints"
            )
        });
    }
    if lower.starts_with("https://") {
        return None;
    }
    if lower.starts_with("http://") {
        return Some(format!(
            "{s} is http: mail clients block or flag images that are not https; use its https \
             address"
        ));
    }
    if lower.starts_with("data:") {
        return Some("a data: image is blocked by Gmail and Outlook; use an https address".into());
    }
    let local = lower.starts_with("file:")
        || s.starts_with('/')
        || s.starts_with('\\')
        || s.starts_with('~')
        || (s.len() > 2 && s.as_bytes()[1] == b':' && s.as_bytes()[0].is_ascii_alphabetic());
    if local {
        return Some(format!(
            "{s} is a file on this computer, which no mail client can load: {USE_THE_LIBRARY}"
        ));
    }
    if let Some((scheme, _)) = s.split_once(':').filter(|(p, _)| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    }) {
        return Some(format!(
            "{s}: mail clients load images only from https addresses, not {scheme}:"
        ));
    }
    Some(format!(
        "{s} is a relative path, which no mail client can load: {USE_THE_LIBRARY}"
    ))
}

fn image_rules(
    file: &str,
    src: &str,
    at: Pos,
    size: Option<(u32, u32)>,
    library: &HashSet<String>,
    out: &mut Vec<Finding>,
) {
    if let Some(problem) = image_src_problem(src, library) {
        out.push(finding(Severity::Failure, "image-src", file, at, problem));
    }
    if size.is_none() {
        out.push(finding(
            Severity::Warning,
            "image-size-missing",
            file,
            at,
            format!(
                "the image {} has no width and height: Outlook shows it at its natural size, \
                 and the text jumps as it loads",
                src.trim()
            ),
        ));
    }
}

fn compiled_rules(
    c: &CompiledIssue,
    library: &HashSet<String>,
    out: &mut Vec<Finding>,
    report: &mut Report,
) {
    let file = c.issue.file.clone();
    let nowhere = Pos::default();
    if !c.html_has(Slot::Unsubscribe) {
        out.push(finding(
            Severity::Failure,
            "unsubscribe-missing",
            "issue.html",
            nowhere,
            "the HTML part has no unsubscribe link ({{ links.unsubscribe }})".into(),
        ));
    }
    if !c.text_has(Slot::Unsubscribe) {
        out.push(finding(
            Severity::Failure,
            "unsubscribe-missing",
            "issue.txt",
            nowhere,
            "the text part has no unsubscribe link ({{ links.unsubscribe }})".into(),
        ));
    }
    // The personal template must render for every kind of organisation
    // and the usual shapes of contact (each distinct error once).
    let mut seen = HashSet::new();
    for r in Recipient::samples() {
        if let Err(e) = c.greeting(&r) {
            if seen.insert((e.line, e.column, e.message.clone())) {
                out.push(from_error(e));
            }
        }
    }
    let sample = Recipient::sample(Some(OrgKind::Embassy));
    let (html, text) = match (c.html_for(&sample), c.text_for(&sample)) {
        (Ok(h), Ok(t)) => (h, t),
        (Err(e), _) | (_, Err(e)) => {
            out.push(from_error(e));
            return;
        }
    };
    report.html_bytes = html.len();
    report.text_bytes = text.len();
    if html.len() > HTML_LIMIT {
        out.push(finding(
            Severity::Warning,
            "html-too-large",
            &file,
            nowhere,
            format!(
                "the HTML is {} KiB; Gmail clips messages over 102 KiB",
                html.len() / 1024
            ),
        ));
    }
    let tags = scan_tags(&html);
    let ids: HashSet<&str> = tags
        .iter()
        .flat_map(|t| t.attrs.iter())
        .filter(|(k, _)| k == "id" || k == "name")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut seen_http = HashSet::new();
    // The issue's own images are checked against the issue file, with
    // their places; the templates' here.
    let articles = c.issue.sections.iter().flat_map(|s| s.articles.iter());
    let issue_images: HashSet<String> = articles
        .clone()
        .filter_map(|a| a.image.as_ref().map(|i| i.src.trim().to_string()))
        .chain(articles.flat_map(|a| markdown::images(&a.body).into_iter().map(|i| i.0)))
        .chain(markdown::images(&c.issue.intro).into_iter().map(|i| i.0))
        .collect();
    let article_images: HashSet<&str> = c
        .issue
        .sections
        .iter()
        .flat_map(|s| s.articles.iter())
        .filter_map(|a| a.image.as_ref().map(|i| i.src.as_str()))
        .collect();
    // The open-tracking pixel is decorative: its empty alt is right.
    let pixel = c.links(&sample.tokens).track_open;
    for t in tags
        .iter()
        .filter(|t| !(t.name == "img" && t.attr("src") == Some(&pixel)))
    {
        if t.name == "img" {
            let own = |s: &str| {
                issue_images.contains(s.trim())
                    || markdown::media_name(s)
                        .is_some_and(|n| issue_images.iter().any(|i| i.ends_with(n)))
            };
            if let Some(src) = t.attr("src").filter(|s| !own(s)) {
                if let Some(problem) = image_src_problem(src, library) {
                    out.push(finding(
                        Severity::Failure,
                        "image-src",
                        "issue.html",
                        nowhere,
                        problem,
                    ));
                }
            }
        }
        if t.name == "img" && !t.attr("src").is_some_and(|s| article_images.contains(s)) {
            let alt = t.attr("alt").map(str::trim).unwrap_or("");
            if alt.is_empty() {
                out.push(finding(
                    Severity::Failure,
                    "image-alt-missing",
                    &file,
                    nowhere,
                    format!(
                        "an image has no alt text: {}",
                        t.attr("src").unwrap_or("(no src)")
                    ),
                ));
            }
        }
        if let Some(v) = t.attr("href") {
            if v.starts_with("http://") && seen_http.insert(v.to_string()) {
                out.push(finding(
                    Severity::Warning,
                    "insecure-link",
                    &file,
                    nowhere,
                    format!("{v} is not https"),
                ));
            }
        }
        if t.name == "a" {
            if let Some(anchor) = t.attr("href").and_then(|h| h.strip_prefix('#')) {
                if !ids.contains(anchor) {
                    out.push(finding(
                        Severity::Warning,
                        "anchor-missing",
                        &file,
                        nowhere,
                        format!("a link points to #{anchor}, but no element has that id"),
                    ));
                }
            }
        }
    }
    for word in text.split_whitespace() {
        if word.starts_with("http://") && seen_http.insert(word.to_string()) {
            out.push(finding(
                Severity::Warning,
                "insecure-link",
                &file,
                nowhere,
                format!("{word} is not https (text part)"),
            ));
        }
    }
}

/// A start tag found in HTML.
#[derive(Debug, Clone, PartialEq)]
pub struct TagInfo {
    pub name: String,
    pub attrs: Vec<(String, String)>,
}

impl TagInfo {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The start tags of an HTML document with their attributes (lower-cased
/// names, entity `&amp;` decoded). Comments and doctypes are skipped. Enough
/// for the checks above; not a general HTML parser.
pub fn scan_tags(html: &str) -> Vec<TagInfo> {
    let b = html.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while let Some(off) = html[i..].find('<') {
        i += off + 1;
        if html[i..].starts_with("!--") {
            i = html[i..].find("-->").map(|e| i + e + 3).unwrap_or(b.len());
            continue;
        }
        if i >= b.len() || !b[i].is_ascii_alphabetic() {
            continue;
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-') {
            i += 1;
        }
        let name = html[start..i].to_ascii_lowercase();
        let mut attrs = Vec::new();
        loop {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i >= b.len() || b[i] == b'>' || b[i] == b'/' {
                break;
            }
            let ks = i;
            while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/')
            {
                i += 1;
            }
            let key = html[ks..i].to_ascii_lowercase();
            let mut value = String::new();
            if i < b.len() && b[i] == b'=' {
                i += 1;
                if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                    let q = b[i];
                    i += 1;
                    let vs = i;
                    while i < b.len() && b[i] != q {
                        i += 1;
                    }
                    value = html[vs..i].to_string();
                    i = (i + 1).min(b.len());
                } else {
                    let vs = i;
                    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                        i += 1;
                    }
                    value = html[vs..i].to_string();
                }
            }
            if key.is_empty() {
                i += 1;
                continue;
            }
            attrs.push((key, value.replace("&amp;", "&")));
        }
        out.push(TagInfo { name, attrs });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_attributes_are_found() {
        let t = scan_tags("<!-- <a href=x> --><p id=top>Hi <a HREF=\"#top\" title='a b'>x</a><img src=\"https://e.org/a?b=1&amp;c=2\"></p>");
        assert_eq!(t.len(), 3);
        assert_eq!(t[1].attr("href"), Some("#top"));
        assert_eq!(t[1].attr("title"), Some("a b"));
        assert_eq!(t[2].attr("src"), Some("https://e.org/a?b=1&c=2"));
    }
}
