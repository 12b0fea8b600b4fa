//! Rendering the sample issue: snapshots of both parts, the message as bytes
//! parsed back with mail-parser, personalisation, and strict errors with their
//! line and column.
//!
//! Set UPDATE_SNAPSHOTS=1 to rewrite tests/snapshots/ after a deliberate
//! change of the design.

use std::path::PathBuf;

use chrono::TimeZone;
use mail_parser::{MessageParser, MimeHeaders};
use whatsup::compose::{CompiledIssue, Issue, LinkTokens, Recipient};
use whatsup::config::Newsletter;
use whatsup::domain::OrgKind;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sample() -> Issue {
    Issue::load(&root().join("samples/issue-214.md")).expect("the sample issue parses")
}

fn ambassador() -> Recipient {
    Recipient {
        email: "ambassador@embassy.example.org".into(),
        name: "Amélie Durand".into(),
        title: "H.E.".into(),
        salutation: String::new(),
        organisation: "Embassy of France in Japan".into(),
        kind: Some(OrgKind::Embassy),
        country: "FR".into(),
        city: "Tokyo".into(),
        timezone: "Asia/Tokyo".into(),
        tokens: LinkTokens::same(7, "tok_abc123"),
    }
}

fn mayor() -> Recipient {
    Recipient {
        email: "international@city.example.net".into(),
        name: "Jordan Lee".into(),
        title: "Mayor".into(),
        salutation: String::new(),
        organisation: "City of Example".into(),
        kind: Some(OrgKind::City),
        country: "US".into(),
        city: "Example City".into(),
        timezone: "America/New_York".into(),
        tokens: LinkTokens::same(7, "tok_city"),
    }
}

fn compiled() -> CompiledIssue {
    CompiledIssue::compile(sample(), &Newsletter::default()).expect("the sample compiles")
}

use crate::common::snapshot;

#[test]
fn the_html_part_matches_its_snapshot() {
    snapshot(
        "issue-214.html",
        &compiled().html_for(&ambassador()).unwrap(),
    );
}

#[test]
fn the_text_part_matches_its_snapshot() {
    snapshot(
        "issue-214.txt",
        &compiled().text_for(&ambassador()).unwrap(),
    );
}

#[test]
fn an_embassy_and_a_city_are_greeted_differently() {
    let c = compiled();
    let embassy = c.greeting(&ambassador()).unwrap();
    let city = c.greeting(&mayor()).unwrap();
    assert_eq!(embassy, "Dear H.E. Amélie Durand,");
    assert_eq!(city, "Dear Mayor Jordan Lee and friends in Example City,");
    assert!(c
        .html_for(&mayor())
        .unwrap()
        .contains("friends in Example City"));
}

#[test]
fn personal_values_are_escaped_in_html_and_plain_in_text() {
    let mut r = ambassador();
    r.name = "<b>Bob & Co</b>".into();
    r.title = String::new();
    let c = compiled();
    let html = c.html_for(&r).unwrap();
    assert!(
        html.contains("Dear &lt;b&gt;Bob &amp; Co&lt;/b&gt;,"),
        "greeting not escaped"
    );
    assert!(!html.contains("<b>Bob"));
    assert!(c.text_for(&r).unwrap().contains("Dear <b>Bob & Co</b>,"));
}

#[test]
fn every_part_carries_the_recipients_links() {
    let c = compiled();
    for part in [
        c.html_for(&ambassador()).unwrap(),
        c.text_for(&ambassador()).unwrap(),
    ] {
        assert!(part.contains("https://whatsup.tokyo.example.org/u/tok_abc123"));
        assert!(part.contains("https://whatsup.tokyo.example.org/p/tok_abc123"));
        assert!(part.contains("https://whatsup.tokyo.example.org/v/7/tok_abc123"));
    }
}

#[test]
fn the_html_has_inlined_css_sized_images_and_a_dark_mode_block() {
    let html = compiled().html_for(&ambassador()).unwrap();
    assert!(
        html.contains("<td class=\"masthead\" style="),
        "CSS is not inlined"
    );
    assert!(html.contains("prefers-color-scheme: dark"));
    assert!(html.contains("width=\"536\""));
    assert!(html.contains("alt=\"Paper lanterns glowing on the dark water of the Sumida River\""));
    assert!(
        html.contains("19 July 2025, 18:00 JST"),
        "event time in Tokyo time"
    );
}

fn message() -> Vec<u8> {
    let at = chrono::Utc.with_ymd_and_hms(2025, 7, 1, 0, 30, 0).unwrap();
    compiled().render_for_at(&ambassador(), at).unwrap().bytes
}

#[test]
fn the_message_uses_crlf_only_and_short_lines() {
    let bytes = message();
    for (i, w) in bytes.windows(2).enumerate() {
        if w[1] == b'\n' {
            assert_eq!(w[0], b'\r', "bare LF at byte {}", i + 1);
        }
    }
    assert!(!bytes.starts_with(b"\n"));
    for line in bytes.split(|&b| b == b'\n') {
        assert!(line.len() <= 998 + 1, "line of {} octets", line.len());
        assert!(
            line.len() <= 78 + 1 || line.starts_with(b"List-Unsubscribe"),
            "long line: {}",
            String::from_utf8_lossy(line)
        );
    }
    assert!(bytes.is_ascii(), "the wire form is 7-bit");
}

#[test]
fn the_message_parses_back_with_its_parts_headers_and_encodings() {
    let bytes = message();
    let m = MessageParser::default()
        .parse(&bytes)
        .expect("mail-parser reads the message");
    assert_eq!(
        m.subject(),
        Some("Night gardens, river lanterns and a cooler Tokyo this summer")
    );
    let from = m.from().unwrap().first().unwrap();
    assert_eq!(from.address(), Some("whatsup@tokyo.example.org"));
    assert_eq!(from.name(), Some("Tokyo Metropolitan Government"));
    let to = m.to().unwrap().first().unwrap();
    assert_eq!(to.address(), Some("ambassador@embassy.example.org"));
    assert_eq!(to.name(), Some("Amélie Durand"), "RFC 2047 name decodes");
    assert_eq!(m.date().unwrap().to_rfc3339(), "2025-07-01T00:30:00Z");
    let id = m.message_id().unwrap();
    assert!(id.ends_with("@tokyo.example.org"), "{id}");
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("\r\nMIME-Version: 1.0\r\n"));
    assert!(text.contains("List-Id: WHAT'S UP Tokyo <whatsup.tokyo.example.org>\r\n"));
    assert!(text.contains("List-Unsubscribe: <https://whatsup.tokyo.example.org/u/tok_abc123>\r\n"));
    assert!(text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
    assert_eq!(
        text.matches("\r\nFrom: ").count() + usize::from(text.starts_with("From: ")),
        1
    );
    assert_eq!(text.matches("Date: ").count(), 1);

    let ct = m.content_type().unwrap();
    assert_eq!(
        (ct.ctype(), ct.subtype()),
        ("multipart", Some("alternative"))
    );
    assert_eq!(m.text_body_count(), 1);
    assert_eq!(m.html_body_count(), 1);
    for (i, part) in m.parts.iter().enumerate().skip(1) {
        let ct = part.content_type().unwrap();
        assert_eq!(ct.attribute("charset"), Some("utf-8"), "part {i}");
        assert_eq!(
            part.content_transfer_encoding(),
            Some("quoted-printable"),
            "part {i}"
        );
    }
    let body_text = m.body_text(0).unwrap();
    assert_eq!(
        body_text,
        compiled()
            .text_for(&ambassador())
            .unwrap()
            .replace('\n', "\r\n")
            .trim_end_matches("\r\n")
            .to_string()
            + "\r\n",
        "the text part decodes to the preview text"
    );
    let html = m.body_html(0).unwrap();
    assert!(html.contains("Dear H.E. Amélie Durand,"));
    assert!(html.contains("Gardens after dark"));
}

#[test]
fn a_non_ascii_subject_is_encoded_and_decodes_back() {
    let src = std::fs::read_to_string(root().join("samples/issue-214.md"))
        .unwrap()
        .replace(
            "subject = \"Night gardens, river lanterns and a cooler Tokyo this summer\"",
            "subject = \"東京の夏 — Night gardens and lanterns\"",
        );
    let issue = Issue::parse("x.md", &src).unwrap();
    let c = CompiledIssue::compile(issue, &Newsletter::default()).unwrap();
    let bytes = c.render_for(&ambassador()).unwrap().bytes;
    assert!(String::from_utf8_lossy(&bytes).contains("Subject: =?UTF-8?B?"));
    let m = MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(m.subject(), Some("東京の夏 — Night gardens and lanterns"));
}

#[test]
fn each_message_gets_its_own_message_id() {
    let c = compiled();
    let a = c.render_for(&ambassador()).unwrap();
    let b = c.render_for(&ambassador()).unwrap();
    assert_ne!(a.message_id, b.message_id);
}

// ---- strict errors -----------------------------------------------------

fn with_override(name: &str, text: &str) -> (tempfile::TempDir, Newsletter) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), text).unwrap();
    let nl = Newsletter {
        templates_dir: dir.path().to_path_buf(),
        ..Newsletter::default()
    };
    (dir, nl)
}

fn compile_err(nl: &Newsletter) -> whatsup::compose::SourceError {
    CompiledIssue::compile(sample(), nl).expect_err("compiling should fail")
}

#[test]
fn an_undefined_variable_is_an_error_at_its_line_and_column() {
    let (_d, nl) = with_override(
        "issue.txt",
        "Hello\n\nNumber {{ issue.numbr }}\n{{ links.unsubscribe }}\n",
    );
    let e = compile_err(&nl);
    assert!(e.file.ends_with("issue.txt"), "{e}");
    assert_eq!((e.line, e.column), (3, 11), "{e}");
    assert!(e.message.contains("undefined"), "{e}");
}

#[test]
fn an_unknown_filter_is_an_error_at_its_line() {
    let (_d, nl) = with_override("issue.txt", "A\nB {{ issue.subject | shout }}\n");
    let e = compile_err(&nl);
    assert!(e.file.ends_with("issue.txt"), "{e}");
    assert_eq!(e.line, 2, "{e}");
    assert!(e.column >= 1, "{e}");
    assert!(e.message.contains("unknown filter"), "{e}");
}

#[test]
fn a_template_syntax_error_is_an_error_at_its_line_and_column() {
    let (_d, nl) = with_override("issue.txt", "one\ntwo {% if %}\n");
    let e = compile_err(&nl);
    assert!(e.file.ends_with("issue.txt"), "{e}");
    assert_eq!(e.line, 2, "{e}");
    assert_eq!(e.column, 11, "{e}");
    assert!(e.message.contains("syntax error"), "{e}");
}

#[test]
fn an_error_in_an_included_template_names_that_template() {
    let (_d, nl) = with_override("style.css", ".a { color: red; }\n{{ nothing_here }}\n");
    let e = compile_err(&nl);
    assert!(e.file.ends_with("style.css"), "{e}");
    assert_eq!((e.line, e.column), (2, 4), "{e}");
}

#[test]
fn broken_front_matter_is_an_error_at_its_line_and_column() {
    let src = std::fs::read_to_string(root().join("samples/issue-214.md")).unwrap();
    let broken = src.replacen("number = 214", "number = \"two\"", 1);
    let e = Issue::parse("samples/issue-214.md", &broken).unwrap_err();
    assert_eq!(e.file, "samples/issue-214.md");
    assert_eq!((e.line, e.column), (4, 10), "{e}");
}

#[test]
fn a_filter_that_mangles_a_personal_value_is_refused() {
    let (_d, nl) = with_override(
        "issue.txt",
        "{{ recipient.name[:3] }} {{ links.unsubscribe }}\n",
    );
    let e = compile_err(&nl);
    assert!(e.message.contains("personal value"), "{e}");
}

#[test]
fn an_editor_override_replaces_one_template_and_keeps_the_rest() {
    let (_d, nl) = with_override(
        "greeting.txt",
        "Hello from Tokyo, {{ recipient.organisation }}!",
    );
    let c = CompiledIssue::compile(sample(), &nl).unwrap();
    let html = c.html_for(&ambassador()).unwrap();
    assert!(html.contains("Hello from Tokyo, Embassy of France in Japan!"));
    assert!(
        html.contains("Lantern evenings on the Sumida River"),
        "built-in issue.html still used"
    );
}

/// The sample issue with merge tags in every field that takes them.
fn tagged() -> CompiledIssue {
    let src = std::fs::read_to_string(root().join("samples/issue-214.md"))
        .unwrap()
        .replacen(
            "subject = \"Night gardens, river lanterns and a cooler Tokyo this summer\"",
            "subject = \"Summer in Tokyo, for {{ recipient.organisation or 'our partners' }}\"",
            1,
        )
        .replacen(
            "preheader = \"Tokyo's heat plan,",
            "preheader = \"For {{ recipient.name }}: Tokyo's heat plan,",
            1,
        )
        .replacen(
            "title = \"Events\"",
            "title = \"Events for {{ recipient.city or \\\"you\\\" }}\"",
            1,
        )
        .replacen(
            "heading = \"Tokyo Friendship Sports Day\"",
            "heading = \"A team from {{ recipient.country_name }}?\"",
            1,
        )
        .replacen(
            "Registration is open until 31 August.",
            "Registration is open until 31 August, {{ recipient.title or \"colleague\" }}. [Your preferences]({{ links.preferences }}).",
            1,
        )
        .replacen(
            "alt = \"Paper lanterns glowing on the dark water of the Sumida River\"",
            "alt = \"Lanterns for {{ recipient.name }}\"",
            1,
        )
        .replacen(
            "label = \"Register a team\"",
            "label = \"Register {{ recipient.organisation }}\"",
            1,
        )
        .replacen(
            "Welcome to the July issue of WHAT'S UP.",
            "{{ recipient.salutation or \"Welcome\" }} to the July issue of WHAT'S UP.",
            1,
        );
    let issue = Issue::parse("tagged.md", &src).expect("the tagged issue parses");
    CompiledIssue::compile(issue, &Newsletter::default()).expect("and compiles")
}

#[test]
fn merge_tags_in_every_field_take_each_recipients_values() {
    let c = tagged();
    let a = ambassador();
    let html = c.html_for(&a).unwrap();
    let text = c.text_for(&a).unwrap();
    assert!(html.contains("Events for Tokyo"), "section title");
    // The text part upper-cases titles; a value is printed as it is.
    assert!(text.contains("EVENTS FOR Tokyo"), "section title");
    for part in [&html, &text] {
        assert!(part.contains("A team from France?"), "heading");
        assert!(part.contains("open until 31 August, H.E.."), "body");
        assert!(
            part.contains("Register Embassy of France in Japan"),
            "button label"
        );
        assert!(part.contains("Welcome to the July issue"), "intro, default");
        assert!(!part.contains("{{") && !part.contains("{%"), "no braces");
    }
    assert!(html.contains("For Amélie Durand: Tokyo"), "preheader");
    assert!(
        html.contains("alt=\"Lanterns for Amélie Durand\""),
        "alt text"
    );
    assert!(
        html.contains("href=\"https://whatsup.tokyo.example.org/p/tok_abc123\""),
        "a personal link in a body: {html}"
    );
    assert!(text.contains("https://whatsup.tokyo.example.org/p/tok_abc123"));
    let m = c.render_for(&a).unwrap();
    let parsed = MessageParser::default().parse(&m.bytes).unwrap();
    assert_eq!(
        parsed.subject(),
        Some("Summer in Tokyo, for Embassy of France in Japan")
    );
    let mut saluted = mayor();
    saluted.salutation = "Dear Mayor Lee".into();
    saluted.organisation = String::new();
    let html = c.html_for(&saluted).unwrap();
    assert!(html.contains("Dear Mayor Lee to the July issue"), "{html}");
    let m = c.render_for(&saluted).unwrap();
    let parsed = MessageParser::default().parse(&m.bytes).unwrap();
    assert_eq!(parsed.subject(), Some("Summer in Tokyo, for our partners"));
}

#[test]
fn merge_tag_values_are_escaped_in_html() {
    let c = tagged();
    let mut r = ambassador();
    r.name = "<script>alert(1)</script>".into();
    let html = c.html_for(&r).unwrap();
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(
        html.contains("Lanterns for &lt;script&gt;alert(1)&lt;&#x2f;script&gt;")
            || html.contains("Lanterns for &lt;script&gt;alert(1)&lt;/script&gt;"),
        "escaped in an attribute"
    );
    assert!(html.contains("For &lt;script&gt;"), "escaped in text");
    let text = c.text_for(&r).unwrap();
    assert!(text.contains("<script>alert(1)</script>"), "plain in text");
}

#[test]
fn a_public_copy_shows_defaults_and_neutral_words_never_a_recipients_values() {
    let c = tagged();
    let html = c
        .html_public(whatsup::compose::PersonalLinks {
            preferences: "https://whatsup.tokyo.example.org/links".into(),
            ..Default::default()
        })
        .unwrap();
    assert!(html.contains("Events for you"), "the default");
    assert!(html.contains("For colleague: Tokyo"), "a neutral word");
    assert!(html.contains("A team from your country?"));
    assert!(
        html.contains("Greetings from Tokyo,"),
        "the generic greeting"
    );
    assert!(!html.contains("{{"));
    assert!(!html.contains("tok_"));
    assert_eq!(c.subject, "Summer in Tokyo, for our partners");
}
