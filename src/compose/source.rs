//! An issue as a form: [`Draft`] holds every field an editor fills in, as
//! text (so a half-typed date is kept as typed), and writes the issue file
//! format from it ([`Draft::to_source`]) with a map from each line of that
//! text to the field it came from ([`FieldMap`]). The preflight's findings
//! and the parser's errors carry a line and column of the file; the map
//! puts each at the field it is about. [`Draft::from_issue`] goes the other
//! way, so the form and the raw text show the same issue.
//!
//! The text is written in one fixed layout (front matter keys in the
//! documented order, bodies as `'''` literal strings), so saving an
//! unchanged form gives the same text and no new revision.

use serde::Serialize;

use super::issue::Issue;

/// One article as the form holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DraftArticle {
    pub heading: String,
    pub body: String,
    /// The image's address: `/media/HASH.EXT` for the library, or https.
    pub image_src: String,
    pub image_alt: String,
    pub image_credit: String,
    pub image_width: String,
    pub image_height: String,
    pub read_more_url: String,
    pub read_more_label: String,
    /// An event's start, RFC 3339 with its offset.
    pub when: String,
    pub place: String,
}

/// One section as the form holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DraftSection {
    pub title: String,
    pub articles: Vec<DraftArticle>,
}

/// An issue as the form holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Draft {
    pub number: u32,
    pub subject: String,
    pub preheader: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    /// The introduction, Markdown.
    pub intro: String,
    pub sections: Vec<DraftSection>,
}

/// A field of the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Subject,
    Preheader,
    Number,
    Date,
    Intro,
    SectionTitle(usize),
    Heading(usize, usize),
    Body(usize, usize),
    ImageSrc(usize, usize),
    ImageAlt(usize, usize),
    ImageCredit(usize, usize),
    ImageWidth(usize, usize),
    ImageHeight(usize, usize),
    ReadMoreUrl(usize, usize),
    ReadMoreLabel(usize, usize),
    When(usize, usize),
    Place(usize, usize),
}

impl Field {
    /// The form field's name (and, with `f-`, its element id):
    /// `subject`, `s0-title`, `s1-a2-heading`.
    pub fn name(&self) -> String {
        let article = |s: &usize, a: &usize, f: &str| format!("s{s}-a{a}-{f}");
        match self {
            Field::Subject => "subject".into(),
            Field::Preheader => "preheader".into(),
            Field::Number => "number".into(),
            Field::Date => "date".into(),
            Field::Intro => "intro".into(),
            Field::SectionTitle(s) => format!("s{s}-title"),
            Field::Heading(s, a) => article(s, a, "heading"),
            Field::Body(s, a) => article(s, a, "body"),
            Field::ImageSrc(s, a) => article(s, a, "image_src"),
            Field::ImageAlt(s, a) => article(s, a, "image_alt"),
            Field::ImageCredit(s, a) => article(s, a, "image_credit"),
            Field::ImageWidth(s, a) => article(s, a, "image_width"),
            Field::ImageHeight(s, a) => article(s, a, "image_height"),
            Field::ReadMoreUrl(s, a) => article(s, a, "read_more_url"),
            Field::ReadMoreLabel(s, a) => article(s, a, "read_more_label"),
            Field::When(s, a) => article(s, a, "when"),
            Field::Place(s, a) => article(s, a, "place"),
        }
    }
}

impl Field {
    /// The field a finding of `rule` is about, given the field of its line:
    /// the image's findings all point at the image, but an image without
    /// alt text is fixed at the alt field, one without a size at the width.
    pub fn for_rule(self, rule: &str) -> Field {
        let image = match self {
            Field::ImageSrc(s, a)
            | Field::ImageAlt(s, a)
            | Field::ImageCredit(s, a)
            | Field::ImageWidth(s, a)
            | Field::ImageHeight(s, a) => Some((s, a)),
            _ => None,
        };
        match (image, rule) {
            (Some((s, a)), "image-alt-missing") => Field::ImageAlt(s, a),
            (Some((s, a)), "image-size-missing") => Field::ImageWidth(s, a),
            (Some((s, a)), "image-src") => Field::ImageSrc(s, a),
            _ => self,
        }
    }
}

/// Which field each line of a written draft belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldMap {
    /// (first line, last line, field), 1-based, in file order.
    spans: Vec<(usize, usize, Field)>,
    /// The first line of the introduction (after the closing `+++`).
    intro_line: usize,
}

impl FieldMap {
    /// The field that line `line` of the text belongs to; `None` for the
    /// fences, section headers and blank lines, and for line 0 (a finding
    /// about the whole message).
    pub fn field_at(&self, line: usize) -> Option<Field> {
        if line == 0 {
            return None;
        }
        if line >= self.intro_line {
            return Some(Field::Intro);
        }
        self.spans
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&line))
            .map(|(_, _, f)| *f)
    }
}

/// A TOML basic string: `"…"` with escapes.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Can `s` be written as a `'''` literal string?
fn literal_ok(s: &str) -> bool {
    !s.contains("'''")
        && !s.ends_with('\'')
        && !s
            .chars()
            .any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{7f}')
}

/// A bare TOML value when `s` is one of the form `ok` accepts, else the
/// quoted text (which the parser then refuses at its line and column).
fn bare_or_quoted(s: &str, ok: impl Fn(&str) -> bool) -> String {
    let t = s.trim();
    if ok(t) {
        t.to_string()
    } else {
        quoted(s)
    }
}

fn is_date(s: &str) -> bool {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() && s.len() == 10
}

fn is_datetime(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-:+.".contains(&b))
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Line endings as `\n` (browsers send a textarea's as CRLF).
pub fn normalise_newlines(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// Writes the text line by line, noting which field each line is.
struct Writer {
    out: String,
    line: usize,
    map: FieldMap,
}

impl Writer {
    /// Appends `text` (which ends without a newline) and a newline, for
    /// `field` if it is one.
    fn put(&mut self, text: &str, field: Option<Field>) {
        let first = self.line;
        self.out.push_str(text);
        self.out.push('\n');
        self.line += 1 + text.matches('\n').count();
        if let Some(f) = field {
            self.map.spans.push((first, self.line - 1, f));
        }
    }

    fn key(&mut self, key: &str, value: String, field: Field) {
        self.put(&format!("{key} = {value}"), Some(field));
    }

    fn text_key(&mut self, key: &str, value: &str, field: Field) {
        self.key(key, quoted(value.trim()), field);
    }

    /// A Markdown field: a `'''` literal over several lines when it can be.
    fn markdown_key(&mut self, key: &str, value: &str, field: Field) {
        let value = normalise_newlines(value);
        if literal_ok(&value) {
            self.key(key, format!("'''\n{value}'''"), field);
        } else {
            self.key(key, quoted(&value), field);
        }
    }
}

impl Draft {
    /// The form of a parsed issue.
    pub fn from_issue(issue: &Issue) -> Draft {
        Draft {
            number: issue.number,
            subject: issue.subject.clone(),
            preheader: issue.preheader.clone(),
            date: issue.date.format("%Y-%m-%d").to_string(),
            intro: issue.intro.clone(),
            sections: issue
                .sections
                .iter()
                .map(|s| DraftSection {
                    title: s.title.clone(),
                    articles: s
                        .articles
                        .iter()
                        .map(|a| {
                            let img = a.image.as_ref();
                            let rm = a.read_more.as_ref();
                            let num = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_default();
                            DraftArticle {
                                heading: a.heading.clone(),
                                body: a.body.clone(),
                                image_src: img.map(|i| i.src.clone()).unwrap_or_default(),
                                image_alt: img.map(|i| i.alt.clone()).unwrap_or_default(),
                                image_credit: img
                                    .and_then(|i| i.credit.clone())
                                    .unwrap_or_default(),
                                image_width: num(img.and_then(|i| i.width)),
                                image_height: num(img.and_then(|i| i.height)),
                                read_more_url: rm.map(|r| r.url.clone()).unwrap_or_default(),
                                read_more_label: rm
                                    .and_then(|r| r.label.clone())
                                    .unwrap_or_default(),
                                when: a.when.clone().unwrap_or_default(),
                                place: a.place.clone().unwrap_or_default(),
                            }
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// The issue file's text, and which line is which field.
    pub fn to_source(&self) -> (String, FieldMap) {
        let mut w = Writer {
            out: String::new(),
            line: 1,
            map: FieldMap::default(),
        };
        w.put("+++", None);
        w.text_key("subject", &self.subject, Field::Subject);
        w.text_key("preheader", &self.preheader, Field::Preheader);
        w.key("number", self.number.to_string(), Field::Number);
        w.key("date", bare_or_quoted(&self.date, is_date), Field::Date);
        for (si, s) in self.sections.iter().enumerate() {
            w.put("", None);
            w.put("[[sections]]", None);
            w.text_key("title", &s.title, Field::SectionTitle(si));
            for (ai, a) in s.articles.iter().enumerate() {
                w.put("", None);
                w.put("[[sections.articles]]", None);
                a.write(&mut w, si, ai);
            }
        }
        w.put("+++", None);
        w.map.intro_line = w.line;
        let intro = normalise_newlines(&self.intro);
        w.out.push_str(&intro);
        (w.out, w.map)
    }
}

impl DraftArticle {
    fn write(&self, w: &mut Writer, si: usize, ai: usize) {
        w.text_key("heading", &self.heading, Field::Heading(si, ai));
        w.markdown_key("body", &self.body, Field::Body(si, ai));
        // The article's own keys come before its sub-tables.
        if !self.when.trim().is_empty() {
            let v = bare_or_quoted(&self.when, is_datetime);
            w.key("when", v, Field::When(si, ai));
        }
        if !self.place.trim().is_empty() {
            w.text_key("place", &self.place, Field::Place(si, ai));
        }
        let image = [
            &self.image_src,
            &self.image_alt,
            &self.image_credit,
            &self.image_width,
            &self.image_height,
        ];
        if image.iter().any(|v| !v.trim().is_empty()) {
            // One field per line, so that each finding finds its field.
            w.put("[sections.articles.image]", Some(Field::ImageSrc(si, ai)));
            w.text_key("src", &self.image_src, Field::ImageSrc(si, ai));
            w.text_key("alt", &self.image_alt, Field::ImageAlt(si, ai));
            if !self.image_credit.trim().is_empty() {
                w.text_key("credit", &self.image_credit, Field::ImageCredit(si, ai));
            }
            if !self.image_width.trim().is_empty() {
                let v = bare_or_quoted(&self.image_width, is_number);
                w.key("width", v, Field::ImageWidth(si, ai));
            }
            if !self.image_height.trim().is_empty() {
                let v = bare_or_quoted(&self.image_height, is_number);
                w.key("height", v, Field::ImageHeight(si, ai));
            }
        }
        if !self.read_more_url.trim().is_empty() || !self.read_more_label.trim().is_empty() {
            w.put("[sections.articles.read_more]", None);
            w.text_key("url", &self.read_more_url, Field::ReadMoreUrl(si, ai));
            if !self.read_more_label.trim().is_empty() {
                w.text_key("label", &self.read_more_label, Field::ReadMoreLabel(si, ai));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Draft {
        Draft {
            number: 12,
            subject: "Night gardens 夜の庭園".into(),
            preheader: "Lanterns \"and\" music".into(),
            date: "2025-07-01".into(),
            intro: "Welcome.\r\nSecond line.\n".into(),
            sections: vec![DraftSection {
                title: "Events".into(),
                articles: vec![
                    DraftArticle {
                        heading: "Fireworks".into(),
                        body: "Bright *lights*.\n\n- one\n- two\n".into(),
                        image_src: "/media/ab.png".into(),
                        image_alt: "Sky".into(),
                        image_width: "560".into(),
                        when: "2025-07-19T18:00:00+09:00".into(),
                        place: "Sumida".into(),
                        read_more_url: "https://example.org/f".into(),
                        ..DraftArticle::default()
                    },
                    DraftArticle {
                        heading: "Quotes".into(),
                        body: "It's ''' here'".into(),
                        ..DraftArticle::default()
                    },
                ],
            }],
        }
    }

    #[test]
    fn a_draft_written_and_parsed_gives_the_same_draft() {
        let d = sample();
        let (text, _) = d.to_source();
        let issue = Issue::parse("t", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let back = Draft::from_issue(&issue);
        let mut expected = d.clone();
        expected.intro = "Welcome.\nSecond line.\n".into();
        assert_eq!(back, expected);
        // Written again, the text is the same (no new revision).
        assert_eq!(back.to_source().0, text);
    }

    #[test]
    fn every_line_of_a_field_maps_to_it_and_bad_values_fail_at_their_field() {
        let mut d = sample();
        let (text, map) = d.to_source();
        let line_of = |needle: &str| text.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
        assert_eq!(map.field_at(line_of("subject")), Some(Field::Subject));
        assert_eq!(map.field_at(line_of("title")), Some(Field::SectionTitle(0)));
        assert_eq!(map.field_at(line_of("- two")), Some(Field::Body(0, 0)));
        assert_eq!(map.field_at(line_of("src")), Some(Field::ImageSrc(0, 0)));
        assert_eq!(map.field_at(line_of("url")), Some(Field::ReadMoreUrl(0, 0)));
        assert_eq!(map.field_at(line_of("when")), Some(Field::When(0, 0)));
        assert_eq!(map.field_at(line_of("Second line")), Some(Field::Intro));
        assert_eq!(map.field_at(1), None);
        assert_eq!(map.field_at(0), None);
        d.date = "1 July".into();
        let (text, map) = d.to_source();
        let e = Issue::parse("t", &text).unwrap_err();
        assert_eq!(map.field_at(e.line), Some(Field::Date), "{e}");
        d.date = "2025-07-01".into();
        d.sections[0].articles[0].image_width = "wide".into();
        let (text, map) = d.to_source();
        let e = Issue::parse("t", &text).unwrap_err();
        assert_eq!(map.field_at(e.line), Some(Field::ImageWidth(0, 0)), "{e}");
    }
}
