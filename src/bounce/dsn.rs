//! RFC 3464 delivery status notifications and their RFC 6533 UTF-8 form.
//!
//! The `message/delivery-status` body is one group of per-message fields
//! (Reporting-MTA, Arrival-Date, …) and then one group per recipient
//! (Final-Recipient, Original-Recipient, Action, Status, Remote-MTA,
//! Diagnostic-Code), separated by blank lines. Some MTAs forget the blank
//! line after the per-message group, so any group with a Final-Recipient or
//! Original-Recipient is read as a recipient group, and a second
//! Final-Recipient (or an Original-Recipient after one) starts a new
//! recipient even without the blank line. When the MIME structure is broken
//! (a boundary that does not match), the fields are read from the body text
//! instead (see [`View`]).
//!
//! The reported address is the Original-Recipient when it is a plain
//! address: that is what we sent to, while the Final-Recipient may be an
//! alias's target, an X.400 form or otherwise rewritten. Else the
//! Final-Recipient. A bare `x.0.0` Status (Exim's for every failure) gives
//! way to a more specific code of the same class in the Diagnostic-Code.
//!
//! Addresses are `type; address`. For `rfc822` the Original-Recipient may be
//! xtext-encoded (RFC 3461); for `utf-8` (RFC 6533) the address is UTF-8 and
//! may use `\x{HEX}` escapes. Both are decoded.

use super::fields::{parse_groups, split_recipient_groups, Fields};
use super::message::View;
use super::rules::{decide, Evidence};
use super::scan::{
    collapse_ws, decode_unitext, decode_xtext, find_enhanced, find_smtp_code, first_address,
};
use super::{text, Format, RecipientResult};

pub struct Dsn {
    pub format: Format,
    pub recipients: Vec<RecipientResult>,
}

/// Reads the delivery-status part, if there is one with at least one
/// recipient group. Successful recipients are left out, so the list may be
/// empty.
pub fn read(msg: &View) -> Option<Dsn> {
    let (body, global) = msg.delivery_status.as_ref()?;
    let groups = split_recipient_groups(parse_groups(body));
    let recipient_groups: Vec<&Fields> = groups
        .iter()
        .filter(|g| g.has("Final-Recipient") || g.has("Original-Recipient"))
        .collect();
    if recipient_groups.is_empty() {
        return None;
    }
    // What the human-readable part says per address fills in a missing
    // Diagnostic-Code.
    let from_text = text::found(msg, text::producer(msg));
    let notice = text::notice_wording(msg);
    let mut recipients = Vec::new();
    for g in recipient_groups {
        let final_rcpt = g
            .get("Final-Recipient")
            .map(address_value)
            .filter(|a| !a.is_empty());
        let original = g
            .get("Original-Recipient")
            .map(|v| decode_xtext(&address_value(v)))
            .filter(|a| !a.is_empty());
        // The Original-Recipient is the address as we sent it; the final
        // one may be rewritten (an alias's target, an X.400 form).
        let usable_original = original
            .clone()
            .filter(|o| first_address(o).is_some_and(|a| a.len() == o.len()));
        let Some(address) = usable_original.or(final_rcpt.clone()).or(original.clone()) else {
            continue;
        };
        let address = address.to_lowercase();
        let action = g.get("Action").map(|a| {
            a.split(|c: char| c.is_whitespace() || c == '(' || c == ';')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase()
        });
        let status_field = g.get("Status").unwrap_or_default();
        let mut diagnostic = g
            .get("Diagnostic-Code")
            .map(strip_type)
            .map(|d| collapse_ws(&d));
        if diagnostic.as_deref().unwrap_or_default().is_empty() {
            diagnostic = from_text
                .iter()
                .find(|f| f.address == address && !f.text.is_empty())
                .map(|f| f.text.clone());
        }
        let diag = diagnostic.clone().unwrap_or_default();
        // The Status field is the authority for the enhanced code; the
        // diagnostic's own code only fills in.
        // A bare x.0.0 (Exim writes 5.0.0 for every failure) gives way to a
        // more specific code of the same class in the diagnostic.
        let from_status = find_enhanced(status_field);
        let from_diag = find_enhanced(&diag);
        let enhanced = match (from_status, from_diag) {
            (Some(s), Some(d)) if s.ends_with(".0.0") && d.as_bytes()[0] == s.as_bytes()[0] => {
                Some(d)
            }
            (s, d) => s.or(d),
        };
        let smtp = find_smtp_code(&diag);
        let evidence = Evidence {
            action: action.as_deref(),
            enhanced: enhanced.as_deref(),
            smtp,
            text: &diag,
            notice_class: notice.class,
            notice_is_delay: notice.is_delay,
        };
        let Some((kind, reason)) = decide(&evidence) else {
            continue;
        };
        let original_recipient = original.map(|o| o.to_lowercase()).filter(|o| {
            final_rcpt
                .as_ref()
                .is_some_and(|f| !f.eq_ignore_ascii_case(o))
        });
        recipients.push(RecipientResult {
            address,
            original_recipient,
            kind,
            reason,
            status: enhanced,
            smtp_code: smtp,
            diagnostic: diagnostic.filter(|d| !d.is_empty()),
            remote_mta: g
                .get("Remote-MTA")
                .map(strip_type)
                .filter(|m| !m.is_empty()),
        });
    }
    Some(Dsn {
        format: if *global {
            Format::GlobalDsn
        } else {
            Format::Dsn
        },
        recipients,
    })
}

/// `rfc822; a@example.org` → `a@example.org`; `utf-8; …` decoded. A value
/// without a type is taken as it is.
fn address_value(v: &str) -> String {
    let (kind, addr) = match v.split_once(';') {
        Some((k, a)) => (k.trim().to_ascii_lowercase(), a.trim()),
        None => (String::new(), v.trim()),
    };
    let addr = addr.trim_start_matches('<').trim_end_matches('>').trim();
    let addr = if kind == "utf-8" {
        decode_unitext(addr)
    } else {
        addr.to_string()
    };
    // Some MTAs write `rfc822; "Name" <a@example.org>`.
    if addr.contains(' ') || addr.contains('<') {
        first_address(&addr).unwrap_or(addr)
    } else {
        addr
    }
}

/// `smtp; 550 …` → `550 …`; `dns; mx.example.org` → `mx.example.org`. Only a
/// short leading token without spaces counts as a type.
fn strip_type(v: &str) -> String {
    match v.split_once(';') {
        Some((kind, rest))
            if !kind.trim().is_empty() && kind.len() <= 20 && !kind.trim().contains(' ') =>
        {
            rest.trim().to_string()
        }
        _ => v.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_types_are_stripped_and_utf8_escapes_decoded() {
        assert_eq!(address_value("rfc822; <A@Example.org>"), "A@Example.org");
        assert_eq!(
            address_value("utf-8; \\x{7528}@example.org"),
            "用@example.org"
        );
        assert_eq!(
            address_value("rfc822;\"Name\" <n@example.org>"),
            "n@example.org"
        );
    }

    #[test]
    fn diagnostic_types_are_stripped_but_text_with_semicolons_is_kept() {
        assert_eq!(strip_type("smtp; 550 5.1.1 unknown"), "550 5.1.1 unknown");
        assert_eq!(strip_type("X-Postfix; host not found"), "host not found");
        assert_eq!(
            strip_type("550 user unknown; see the site"),
            "550 user unknown; see the site"
        );
    }
}
