//! `whatsup issues check`: everything that would hurt an issue in an inbox,
//! found before any send.
//!
//! Failures (the issue must not be sent):
//! - `template`: a template or front-matter error (file, line, column);
//! - `unsubscribe-missing`: no unsubscribe link in the HTML or the text part;
//! - `subject-missing`: no subject;
//! - `image-alt-missing`: an image without alt text.
//!
//! Warnings (send, but think again):
//! - `html-too-large`: HTML over 102 KiB, which Gmail clips;
//! - `insecure-link`: an http:// link or image;
//! - `subject-too-long`: a subject over 78 characters;
//! - `preheader-missing`: no preheader;
//! - `subject-all-caps`: a subject in capitals;
//! - `anchor-missing`: a link to `#anchor` that no element carries.

use std::collections::HashSet;

use serde::Serialize;

use super::compiled::{CompiledIssue, Recipient, Slot};
use super::error::SourceError;
use super::issue::{Issue, Pos};
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
            let place = match (f.line, f.column) {
                (0, _) => f.file.clone(),
                (l, 0) => format!("{}:{l}", f.file),
                (l, c) => format!("{}:{l}:{c}", f.file),
            };
            let sev = match f.severity {
                Severity::Failure => "error",
                Severity::Warning => "warning",
            };
            s.push_str(&format!("{place}: {sev}[{}]: {}\n", f.rule, f.message));
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
        rule: "template",
        file: e.file,
        line: e.line,
        column: e.column,
        message: e.message,
    }
}

/// Checks an issue's text (as read from `file`) with the newsletter settings.
pub fn check_source(file: &str, source: &str, newsletter: &Newsletter) -> Report {
    match Issue::parse(file, source) {
        Ok(issue) => check(issue, newsletter),
        Err(e) => Report {
            file: file.to_string(),
            html_bytes: 0,
            text_bytes: 0,
            findings: vec![from_error(e)],
        },
    }
}

/// Compiles and checks a parsed issue.
pub fn check(issue: Issue, newsletter: &Newsletter) -> Report {
    let file = issue.file.clone();
    let mut findings = Vec::new();
    issue_rules(&issue, &mut findings);
    let mut report = Report {
        file: file.clone(),
        html_bytes: 0,
        text_bytes: 0,
        findings: Vec::new(),
    };
    match CompiledIssue::compile(issue, newsletter) {
        Err(e) => findings.push(from_error(e)),
        Ok(compiled) => compiled_rules(&compiled, &mut findings, &mut report),
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

fn issue_rules(issue: &Issue, out: &mut Vec<Finding>) {
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
        for a in &s.articles {
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
            }
        }
    }
}

fn compiled_rules(c: &CompiledIssue, out: &mut Vec<Finding>, report: &mut Report) {
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
    // The personal template must render for every kind of organisation.
    let kinds = OrgKind::ALL.iter().copied().map(Some).chain([None]);
    for k in kinds {
        if let Err(e) = c.greeting(&Recipient::sample(k)) {
            out.push(from_error(e));
            break;
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
    // Article images are checked against the issue file, with their place.
    let article_images: HashSet<&str> = c
        .issue
        .sections
        .iter()
        .flat_map(|s| s.articles.iter())
        .filter_map(|a| a.image.as_ref().map(|i| i.src.as_str()))
        .collect();
    for t in &tags {
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
        for key in ["href", "src"] {
            if let Some(v) = t.attr(key) {
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
