//! A forgiving parser for blocks of `Name: value` fields: message headers,
//! and the field groups of RFC 3464 delivery-status and RFC 5965
//! feedback-report bodies.
//!
//! Lines are unfolded (a line that starts with a space or tab continues the
//! previous field), names are compared case-insensitively, and a line that is
//! neither a field nor a continuation is skipped. Groups are separated by
//! blank lines. It never fails: garbage gives no fields.

/// One group of fields, in the order written.
#[derive(Debug, Default, Clone)]
pub struct Fields {
    items: Vec<(String, String)>,
}

/// At most this many fields are kept per group, and this many groups.
const MAX_FIELDS: usize = 500;
const MAX_GROUPS: usize = 1000;

impl Fields {
    /// The first value of the field `name` (any case), trimmed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Every value of the field `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.items
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Parses `text` into groups separated by blank lines. Empty groups are
/// dropped.
pub fn parse_groups(text: &str) -> Vec<Fields> {
    let mut groups = Vec::new();
    let mut current = Fields::default();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !current.is_empty() {
                groups.push(std::mem::take(&mut current));
                if groups.len() >= MAX_GROUPS {
                    return groups;
                }
            }
            continue;
        }
        push_line(&mut current, line);
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

/// Splits groups in which a second recipient starts without the blank line
/// RFC 3464 asks for: a `Final-Recipient` when the group already has one,
/// or an `Original-Recipient` when the group already has one or already has
/// a Final-Recipient with its Action or Status (Postfix writes the
/// Original-Recipient right after the Final-Recipient), begins a new group.
pub fn split_recipient_groups(groups: Vec<Fields>) -> Vec<Fields> {
    let mut out = Vec::with_capacity(groups.len());
    for group in groups {
        let mut current = Fields::default();
        for (name, value) in group.items {
            let is_final = name.eq_ignore_ascii_case("Final-Recipient");
            let is_original = name.eq_ignore_ascii_case("Original-Recipient");
            let complete =
                current.has("Final-Recipient") && (current.has("Action") || current.has("Status"));
            let starts_new = (is_final && current.has("Final-Recipient"))
                || (is_original && (complete || current.has("Original-Recipient")));
            if starts_new && out.len() < MAX_GROUPS {
                out.push(std::mem::take(&mut current));
            }
            current.items.push((name, value));
        }
        if !current.is_empty() {
            out.push(current);
        }
    }
    out
}

/// Parses one header block: everything up to the first blank line.
pub fn parse_header_block(text: &str) -> Fields {
    let mut fields = Fields::default();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        push_line(&mut fields, line);
    }
    fields
}

fn push_line(fields: &mut Fields, line: &str) {
    if line.starts_with([' ', '\t']) {
        if let Some((_, value)) = fields.items.last_mut() {
            value.push(' ');
            value.push_str(line.trim());
        }
        return;
    }
    let Some((name, value)) = line.split_once(':') else {
        return;
    };
    let name = name.trim();
    let valid = !name.is_empty()
        && name.len() <= 76
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    if valid && fields.items.len() < MAX_FIELDS {
        fields
            .items
            .push((name.to_string(), value.trim().to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_split_on_blank_lines_and_folded_values_are_joined() {
        let g = parse_groups(
            "Reporting-MTA: dns; mx.example.org\r\n\r\nFinal-Recipient: rfc822; a@example.org\r\nDiagnostic-Code: smtp; 550 5.1.1\r\n  user unknown\r\n\r\n\r\n",
        );
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].get("reporting-mta"), Some("dns; mx.example.org"));
        assert_eq!(
            g[1].get("Diagnostic-Code"),
            Some("smtp; 550 5.1.1 user unknown")
        );
    }

    #[test]
    fn a_second_final_recipient_without_a_blank_line_starts_a_new_group() {
        let g = split_recipient_groups(parse_groups(
            "Original-Recipient: rfc822; a@example.org\nFinal-Recipient: rfc822; a@example.org\nAction: failed\n\
             Final-Recipient: rfc822; b@example.org\nOriginal-Recipient: rfc822; b@example.org\nAction: delayed\n\
             Original-Recipient: rfc822; c@example.org\nFinal-Recipient: rfc822; c@example.org\n",
        ));
        assert_eq!(g.len(), 3);
        assert_eq!(g[0].get("Action"), Some("failed"));
        assert_eq!(g[1].get("Final-Recipient"), Some("rfc822; b@example.org"));
        assert_eq!(g[1].get("Action"), Some("delayed"));
        assert_eq!(
            g[2].get("Original-Recipient"),
            Some("rfc822; c@example.org")
        );
    }

    #[test]
    fn lines_that_are_not_fields_are_skipped() {
        let f = parse_header_block("no colon here\nX: 1\n\nY: 2");
        assert_eq!(f.get("x"), Some("1"));
        assert!(!f.has("y"));
    }
}
