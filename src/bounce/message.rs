//! A flat view of a parsed message for the bounce readers: the top-level
//! headers, the human-readable text, the machine-readable report parts, and
//! the returned original message.
//!
//! mail-parser does the MIME work (multipart boundaries, transfer encodings,
//! charsets). Header fields are read here from the raw header bytes with the
//! forgiving [`fields`](super::fields) parser, so that unusual names and
//! broken values cost nothing but themselves.

use std::borrow::Cow;

use mail_parser::{Message, MimeHeaders, PartType};

use super::fields::{parse_header_block, Fields};
use super::scan::first_address;
use super::Original;

/// Lines (lower-cased) that introduce the copy of the original message in a
/// text bounce. Text after them is not the MTA's own words.
const COPY_MARKERS: &[&str] = &[
    "this is a copy of the message",
    "below this line is a copy of the message",
    "original message follows",
    "----- original message -----",
    "original message headers",
    "unsent message follows",
    "message header follows",
    "headers of the original message",
    "returned message follows",
    "undelivered message headers",
    "--- returned message",
    "copy of the original message",
    "possibly truncated original message",
    "original message ---",
    "content of the original message",
    "text of the original message",
    "--- original message",
];

/// At most this many bytes of an attached message are read for its headers.
const MAX_HEADER_BYTES: usize = 64 * 1024;

pub struct View<'a> {
    /// The top-level header fields.
    pub headers: Fields,
    /// The decoded Subject.
    pub subject: String,
    /// The first address of From, lower-cased.
    pub from: Option<String>,
    /// The human-readable text: every text/plain part outside attached
    /// messages, or the text of the HTML parts if there is no plain text.
    pub text: String,
    /// The body of the first `message/delivery-status` part, and whether it
    /// is the RFC 6533 global form.
    pub delivery_status: Option<(String, bool)>,
    /// The body of the first `message/feedback-report` part.
    pub feedback_report: Option<String>,
    original_headers: Option<Fields>,
    attached: Vec<&'a [u8]>,
    /// Where the copy of the original starts in `text` (its length if
    /// there is none), found once: every reader asks for it.
    human_end: usize,
}

fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

impl<'a> View<'a> {
    pub fn new(msg: &'a Message<'a>) -> View<'a> {
        let raw = msg.raw_message();
        let root = msg.root_part();
        let header_bytes = raw
            .get(root.offset_header as usize..root.offset_body as usize)
            .unwrap_or_default();
        let headers = parse_header_block(&lossy(header_bytes));
        let subject = msg.subject().unwrap_or_default().to_string();
        let from = headers
            .get("From")
            .and_then(first_address)
            .map(|a| a.to_lowercase());

        let mut view = View {
            headers,
            subject,
            from,
            text: String::new(),
            delivery_status: None,
            feedback_report: None,
            original_headers: None,
            attached: Vec::new(),
            human_end: 0,
        };
        let mut html = String::new();
        for part in &msg.parts {
            let (ctype, subtype) = match part.content_type() {
                Some(ct) => (
                    ct.ctype().to_ascii_lowercase(),
                    ct.subtype().unwrap_or_default().to_ascii_lowercase(),
                ),
                None => ("text".to_string(), "plain".to_string()),
            };
            // Not collapsed into match guards, as clippy suggests: a second
            // delivery-status, feedback-report or headers part must be
            // claimed by its arm and ignored, not fall through to the text
            // arms below.
            #[allow(clippy::collapsible_match)]
            match (ctype.as_str(), subtype.as_str(), &part.body) {
                (_, _, PartType::Multipart(_)) => {}
                ("message", "delivery-status" | "global-delivery-status", _) => {
                    if view.delivery_status.is_none() {
                        let body = lossy(part.contents()).into_owned();
                        view.delivery_status = Some((body, subtype.starts_with("global")));
                    }
                }
                ("message", "feedback-report", _) => {
                    if view.feedback_report.is_none() {
                        view.feedback_report = Some(lossy(part.contents()).into_owned());
                    }
                }
                (_, _, PartType::Message(inner)) => {
                    view.attach(inner.raw_message());
                }
                ("message", "rfc822" | "global", _) => view.attach(part.contents()),
                ("text" | "message", "rfc822-headers" | "global-headers", _) => {
                    if view.original_headers.is_none() {
                        let block = parse_header_block(&lossy(part.contents()));
                        if !block.is_empty() {
                            view.original_headers = Some(block);
                        }
                    }
                }
                ("text", "html", PartType::Html(t) | PartType::Text(t)) => {
                    html.push_str(&mail_parser::decoders::html::html_to_text(t));
                    html.push('\n');
                }
                ("text", _, PartType::Text(t)) => {
                    view.text.push_str(t);
                    view.text.push('\n');
                }
                _ => {}
            }
        }
        if view.text.trim().is_empty() {
            view.text = html;
        }
        if view.text.trim().is_empty() && view.delivery_status.is_none() {
            // A multipart whose boundary matches nothing leaves no parts:
            // the body is all there is.
            let body = raw.get(root.offset_body as usize..).unwrap_or_default();
            view.text = lossy(body).into_owned();
        }
        if view.delivery_status.is_none() && view.feedback_report.is_none() {
            view.delivery_status = dsn_fields_in(&view.text).map(|f| (f, false));
        }
        view.human_end = copy_marker(&view.text).unwrap_or(view.text.len());
        view
    }

    fn attach(&mut self, raw: &'a [u8]) {
        self.attached.push(raw);
        if self.original_headers.is_none() {
            let head = &raw[..raw.len().min(MAX_HEADER_BYTES)];
            let block = parse_header_block(&lossy(head));
            if !block.is_empty() {
                self.original_headers = Some(block);
            }
        }
    }

    /// The raw bytes of every attached message, in order.
    pub fn attached_messages(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.attached.iter().copied()
    }

    /// The human-readable text up to the copy of the original message.
    pub fn human(&self) -> &str {
        &self.text[..self.human_end]
    }

    /// The first address of the first header that names the envelope
    /// recipient of this message.
    pub fn envelope_to(&self) -> Option<String> {
        ["X-Original-To", "Delivered-To", "Envelope-To", "To"]
            .iter()
            .find_map(|h| self.headers.get(h).and_then(first_address))
            .map(|a| a.to_lowercase())
    }

    /// The first address of the returned original message's `From`: our
    /// own sender, never a failed recipient.
    pub fn original_from(&self) -> Option<String> {
        self.original_fields(|f| f.get("From").and_then(first_address))
            .map(|a| a.to_lowercase())
    }

    fn original_fields<T>(&self, read: impl FnOnce(&Fields) -> T) -> T {
        match &self.original_headers {
            Some(f) => read(f),
            None => read(&inline_original(&self.text)),
        }
    }

    /// The matching headers of the returned original message.
    pub fn original(&self) -> Original {
        self.original_fields(Self::original_of)
    }

    fn original_of(fields: &Fields) -> Original {
        let clean = |v: &str| {
            let v = v
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .trim();
            (!v.is_empty()).then(|| v.to_string())
        };
        Original {
            message_id: fields.get("Message-ID").and_then(clean),
            campaign: fields.get("X-Whatsup-Campaign").and_then(clean),
            delivery: fields.get("X-Whatsup-Delivery").and_then(clean),
            to: fields
                .get("To")
                .and_then(first_address)
                .map(|a| a.to_lowercase()),
        }
    }
}

/// The delivery-status fields written into the text itself, when no
/// `message/delivery-status` part parsed (a boundary that does not match,
/// a DSN pasted into a text part): from the first `Reporting-MTA`,
/// `Original-Recipient` or `Final-Recipient` line on, if a `Final-Recipient`
/// line and an `Action` or `Status` line follow.
fn dsn_fields_in(text: &str) -> Option<String> {
    let mut start = None;
    let mut has_final = false;
    let mut has_action = false;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let name = line
            .split_once(':')
            .map(|(n, _)| n.trim().to_ascii_lowercase())
            .unwrap_or_default();
        match name.as_str() {
            "reporting-mta" | "original-recipient" | "final-recipient" => {
                start.get_or_insert(pos);
                has_final |= name == "final-recipient";
            }
            "action" | "status" if start.is_some() => has_action = true,
            _ => {}
        }
        pos += line.len();
    }
    let start = start.filter(|_| has_final && has_action)?;
    Some(text[start..].to_string())
}

/// The byte offset of the first line that introduces a copy of the original.
fn copy_marker(text: &str) -> Option<usize> {
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let lower = line.to_lowercase();
        if COPY_MARKERS.iter().any(|m| lower.contains(m)) {
            return Some(pos);
        }
        pos += line.len();
    }
    None
}

/// The header block quoted after a copy marker in a text bounce.
fn inline_original(text: &str) -> Fields {
    let Some(start) = copy_marker(text) else {
        return Fields::default();
    };
    let rest = &text[start..];
    // Skip the marker line and anything else before the first header line.
    let mut offset = 0;
    for (n, line) in rest.split_inclusive('\n').enumerate() {
        if n > 0 && looks_like_header(line) {
            return parse_header_block(&rest[offset..]);
        }
        if n > 6 {
            break;
        }
        offset += line.len();
    }
    Fields::default()
}

pub(super) fn looks_like_header(line: &str) -> bool {
    match line.split_once(':') {
        Some((name, _)) => {
            !name.is_empty()
                && name.len() <= 76
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        }
        None => false,
    }
}
