//! Markdown to sanitised HTML, and Markdown to plain text with numbered links.
//!
//! Markdown is rendered with pulldown-cmark (tables, strikethrough, smart
//! punctuation). Raw HTML in the Markdown is allowed but passed through
//! ammonia against this allow-list (anything else is removed, keeping its
//! text):
//!
//! | tags | attributes |
//! |---|---|
//! | `p br hr h3 h4 blockquote pre code` | — |
//! | `strong b em i u s small sub sup abbr span` | `title` on `abbr` |
//! | `ul ol li` | `start` on `ol` |
//! | `a` | `href` (schemes https, http, mailto, tel, or `#anchor`), `title`; `rel="noopener noreferrer"` is added |
//! | `img` | `src` (https/http), `alt`, `width`, `height` |
//! | `table thead tbody tr th td` | `colspan rowspan align` on cells |
//!
//! Scripts, styles, forms, iframes, event handlers, `style` and `class`
//! attributes are dropped: the design's CSS is the only styling.
//!
//! The text part is rendered by walking the same Markdown events: links become
//! `text [n]`, numbered across the whole issue, and are listed at the end of
//! the text part. (html2text was considered; walking the Markdown keeps one
//! numbering for the whole issue and avoids a second HTML parse.)

use std::collections::{HashMap, HashSet};

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

fn options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_SMART_PUNCTUATION
}

/// The sanitiser, configured with the documented allow-list.
pub fn sanitizer() -> ammonia::Builder<'static> {
    let tags: HashSet<&str> = [
        "p",
        "br",
        "hr",
        "h3",
        "h4",
        "blockquote",
        "pre",
        "code",
        "strong",
        "b",
        "em",
        "i",
        "u",
        "s",
        "del",
        "small",
        "sub",
        "sup",
        "abbr",
        "span",
        "ul",
        "ol",
        "li",
        "a",
        "img",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
    ]
    .into_iter()
    .collect();
    let mut attrs: HashMap<&str, HashSet<&str>> = HashMap::new();
    attrs.insert("a", ["href", "title"].into_iter().collect());
    attrs.insert(
        "img",
        ["src", "alt", "width", "height"].into_iter().collect(),
    );
    attrs.insert("abbr", ["title"].into_iter().collect());
    attrs.insert("ol", ["start"].into_iter().collect());
    attrs.insert("th", ["colspan", "rowspan", "align"].into_iter().collect());
    attrs.insert("td", ["colspan", "rowspan", "align"].into_iter().collect());
    let mut b = ammonia::Builder::default();
    b.tags(tags)
        .tag_attributes(attrs)
        .generic_attributes(HashSet::new())
        .url_schemes(["https", "http", "mailto", "tel"].into_iter().collect())
        .url_relative(ammonia::UrlRelative::PassThrough)
        .link_rel(Some("noopener noreferrer"));
    b
}

/// Renders Markdown to HTML and sanitises it. Article headings inside bodies
/// are demoted so that `#` becomes `<h3>` (the design owns h1/h2).
pub fn to_html(markdown: &str, clean: &ammonia::Builder<'_>) -> String {
    let events = Parser::new_ext(markdown, options()).map(|e| match e {
        Event::Start(Tag::Heading {
            level,
            id,
            classes,
            attrs,
        }) => Event::Start(Tag::Heading {
            level: demote(level),
            id,
            classes,
            attrs,
        }),
        Event::End(TagEnd::Heading(level)) => Event::End(TagEnd::Heading(demote(level))),
        other => other,
    });
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    clean.clean(&html).to_string()
}

fn demote(level: HeadingLevel) -> HeadingLevel {
    match level {
        HeadingLevel::H1 | HeadingLevel::H2 | HeadingLevel::H3 => HeadingLevel::H3,
        _ => HeadingLevel::H4,
    }
}

/// A link listed at the end of the text part.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TextLink {
    pub n: usize,
    pub url: String,
}

/// Collects links across the issue so their numbers are unique.
#[derive(Debug, Default)]
pub struct LinkList {
    pub links: Vec<TextLink>,
}

impl LinkList {
    /// The number of a URL, adding it if new.
    pub fn number(&mut self, url: &str) -> usize {
        if let Some(l) = self.links.iter().find(|l| l.url == url) {
            return l.n;
        }
        let n = self.links.len() + 1;
        self.links.push(TextLink {
            n,
            url: url.to_string(),
        });
        n
    }
}

/// Renders Markdown as plain text wrapped at `width` characters; links become
/// `text [n]` with `n` from `links`.
pub fn to_text(markdown: &str, links: &mut LinkList, width: usize) -> String {
    let mut out = String::new();
    let mut para = String::new();
    let mut prefix: Vec<String> = Vec::new(); // list item / quote markers
    let mut list_stack: Vec<Option<u64>> = Vec::new();
    let mut link_stack: Vec<String> = Vec::new();
    let mut in_pre = false;
    let flush = |para: &mut String, out: &mut String, prefix: &[String]| {
        let text = para.trim();
        if !text.is_empty() {
            let lead: String = prefix.concat();
            let indent = " ".repeat(lead.chars().count());
            let wrapped = wrap(text, width.saturating_sub(lead.chars().count()).max(20));
            for (i, line) in wrapped.iter().enumerate() {
                out.push_str(if i == 0 { &lead } else { &indent });
                out.push_str(line);
                out.push('\n');
            }
            out.push('\n');
        }
        para.clear();
    };
    for ev in Parser::new_ext(markdown, options()) {
        match ev {
            Event::Text(t) => {
                if in_pre {
                    out.push_str(&t);
                } else {
                    para.push_str(&t);
                }
            }
            Event::Code(t) => para.push_str(&t),
            Event::Html(h) | Event::InlineHtml(h) => para.push_str(&strip_tags(&h)),
            Event::SoftBreak => para.push(' '),
            Event::HardBreak => para.push('\u{2028}'),
            Event::Rule => {
                flush(&mut para, &mut out, &prefix);
                out.push_str("----\n\n");
            }
            Event::Start(Tag::Link { dest_url, .. }) => link_stack.push(dest_url.to_string()),
            Event::End(TagEnd::Link) => {
                if let Some(url) = link_stack.pop() {
                    let n = links.number(&url);
                    para.push_str(&format!(" [{n}]"));
                }
            }
            Event::Start(Tag::Image { dest_url, .. }) => {
                let n = links.number(&dest_url);
                para.push_str(&format!("[image {n}: "));
            }
            Event::End(TagEnd::Image) => para.push(']'),
            Event::Start(Tag::CodeBlock(_)) => {
                flush(&mut para, &mut out, &prefix);
                in_pre = true;
            }
            Event::End(TagEnd::CodeBlock) => {
                in_pre = false;
                out.push('\n');
            }
            Event::Start(Tag::List(start)) => {
                flush(&mut para, &mut out, &prefix);
                list_stack.push(start);
            }
            Event::End(TagEnd::List(_)) => {
                list_stack.pop();
                // A blank line after the outermost list.
                if list_stack.is_empty() && !out.ends_with("\n\n") {
                    out.push('\n');
                }
            }
            Event::Start(Tag::Item) => {
                flush(&mut para, &mut out, &prefix);
                let marker = match list_stack.last_mut() {
                    Some(Some(n)) => {
                        let m = format!("{n}. ");
                        *n += 1;
                        m
                    }
                    _ => "- ".to_string(),
                };
                prefix.push(marker);
            }
            Event::End(TagEnd::Item) => {
                flush(&mut para, &mut out, &prefix);
                // The blank line after each item makes lists airy; keep one.
                if out.ends_with("\n\n") {
                    out.pop();
                }
                prefix.pop();
            }
            Event::Start(Tag::BlockQuote(_)) => {
                flush(&mut para, &mut out, &prefix);
                prefix.push("> ".into());
            }
            Event::End(TagEnd::BlockQuote(_)) => {
                flush(&mut para, &mut out, &prefix);
                prefix.pop();
            }
            Event::End(TagEnd::Heading(_)) => {
                let h = para.trim().to_uppercase();
                para.clear();
                para.push_str(&h);
                flush(&mut para, &mut out, &prefix);
            }
            Event::End(TagEnd::Paragraph)
            | Event::End(TagEnd::TableRow)
            | Event::End(TagEnd::TableHead) => flush(&mut para, &mut out, &prefix),
            Event::End(TagEnd::TableCell) => para.push_str("  "),
            _ => {}
        }
    }
    flush(&mut para, &mut out, &prefix);
    out.trim_end().to_string()
}

/// Greedy word wrap; U+2028 marks a hard break.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for piece in text.split('\u{2028}') {
        let mut line = String::new();
        let mut len = 0;
        for word in piece.split_whitespace() {
            let wl = word.chars().count();
            if len > 0 && len + 1 + wl > width {
                lines.push(std::mem::take(&mut line));
                len = 0;
            }
            if len > 0 {
                line.push(' ');
                len += 1;
            }
            line.push_str(word);
            len += wl;
        }
        lines.push(line);
    }
    lines
}

/// The file name (`HASH.EXT`) of an image of the media library given as
/// `/media/HASH.EXT` or `media/HASH.EXT`, if `src` is one.
pub fn media_name(src: &str) -> Option<&str> {
    let s = src.trim();
    let name = s
        .strip_prefix("/media/")
        .or_else(|| s.strip_prefix("media/"))?;
    let (hash, ext) = name.split_once('.')?;
    crate::media::is_media_name(hash, ext).then_some(name)
}

/// Makes the media library's images in a Markdown text (or an image's
/// `src`) absolute under `base`, so mail clients can load them: the
/// library serves them at `{base}/media/HASH.EXT`.
pub fn absolute_media(text: &str, base: &str) -> String {
    if !text.contains("media/") {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(i) = rest.find("media/") {
        let (before, at) = rest.split_at(i);
        // A library address starts a link target, an attribute or the value.
        let start = before.strip_suffix('/').unwrap_or(before);
        let lead = start.chars().last();
        let candidate = &rest[start.len()..];
        let end = candidate
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>'))
            .unwrap_or(candidate.len());
        if matches!(lead, None | Some('(' | '"' | '\'' | '=' | ' ' | '<'))
            && media_name(&candidate[..end]).is_some()
        {
            out.push_str(start);
            out.push_str(base);
            out.push('/');
            out.push_str(candidate[..end].trim_start_matches('/'));
            rest = &candidate[end..];
        } else {
            out.push_str(before);
            out.push_str(&at[..6]);
            rest = &at[6..];
        }
    }
    out.push_str(rest);
    out
}

/// The images of a Markdown text, `![alt](src)` and raw `<img>` alike, in
/// order: each source and whether it gives both a width and a height.
pub fn images(markdown: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for ev in Parser::new_ext(markdown, options()) {
        match ev {
            Event::Start(Tag::Image { dest_url, .. }) => {
                out.push((dest_url.trim().to_string(), false));
            }
            Event::Html(h) | Event::InlineHtml(h) => {
                for t in super::preflight::scan_tags(&h) {
                    if t.name == "img" {
                        out.push((
                            t.attr("src").unwrap_or("").trim().to_string(),
                            t.attr("width").is_some() && t.attr("height").is_some(),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Removes tags from a fragment of raw HTML, keeping its text.
pub fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
}

/// A URL-fragment-safe id from a heading: lower case letters, digits, dashes.
pub fn slug(text: &str) -> String {
    let mut s = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() {
            s.extend(c.to_lowercase());
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    while s.ends_with('-') {
        s.pop();
    }
    if s.is_empty() {
        s.push_str("section");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_and_event_handlers_are_removed_but_allowed_tags_stay() {
        let md = "Hello <script>alert(1)</script><b onclick=\"x()\">bold</b> <img src=\"https://example.org/a.png\" alt=\"A\" style=\"x\">";
        let html = to_html(md, &sanitizer());
        assert!(!html.contains("script"), "{html}");
        assert!(!html.contains("onclick"), "{html}");
        assert!(!html.contains("style"), "{html}");
        assert!(html.contains("<b>bold</b>"), "{html}");
        assert!(html.contains("alt=\"A\""), "{html}");
    }

    #[test]
    fn javascript_urls_are_dropped() {
        let html = to_html("[x](javascript:alert(1))", &sanitizer());
        assert!(!html.contains("javascript"), "{html}");
    }

    #[test]
    fn headings_in_bodies_are_demoted_to_h3() {
        assert!(to_html("# Big", &sanitizer()).contains("<h3>Big</h3>"));
    }

    #[test]
    fn text_links_are_numbered_across_calls() {
        let mut links = LinkList::default();
        let a = to_text("See [the plan](https://example.org/plan).", &mut links, 72);
        let b = to_text(
            "Again [here](https://example.org/plan) and [there](https://example.org/b).",
            &mut links,
            72,
        );
        assert_eq!(a, "See the plan [1].");
        assert_eq!(b, "Again here [1] and there [2].");
        assert_eq!(links.links.len(), 2);
    }

    #[test]
    fn text_is_wrapped_and_lists_are_marked() {
        let t = to_text("- one\n- two\n\nA long line of words that goes on and on until it must wrap somewhere.", &mut LinkList::default(), 30);
        assert!(t.starts_with("- one\n- two\n\nA long"), "{t:?}");
        assert!(t.lines().all(|l| l.chars().count() <= 30), "{t}");
    }

    #[test]
    fn images_are_found_in_markdown_and_raw_html() {
        let md =
            "![A](https://e.org/a.jpg) and <img src=\"b.png\" width=\"1\" height=\"2\" alt=\"B\">";
        assert_eq!(
            images(md),
            vec![
                ("https://e.org/a.jpg".to_string(), false),
                ("b.png".to_string(), true)
            ]
        );
    }

    #[test]
    fn library_images_become_absolute_and_others_stay() {
        let h = "a".repeat(64);
        let md = format!(
            "![A](/media/{h}.jpg) <img src=\"media/{h}.png\"> [x](https://e.org/media/{h}.jpg) \
             ![B](/media/short.jpg)"
        );
        let out = absolute_media(&md, "https://w.example.org");
        assert_eq!(
            out,
            format!(
                "![A](https://w.example.org/media/{h}.jpg) <img src=\"https://w.example.org/media/{h}.png\"> \
                 [x](https://e.org/media/{h}.jpg) ![B](/media/short.jpg)"
            )
        );
        assert_eq!(
            media_name(&format!("/media/{h}.gif")),
            Some(format!("{h}.gif").as_str())
        );
        assert_eq!(media_name("/media/x.jpg"), None);
    }

    #[test]
    fn slugs_are_fragment_safe() {
        assert_eq!(slug("Policy & Initiatives"), "policy-initiatives");
        assert_eq!(slug("  Tōkyō 2025! "), "tōkyō-2025");
    }
}
