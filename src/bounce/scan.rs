//! Small text scanners shared by the bounce parsers: e-mail addresses, SMTP
//! reply codes and enhanced status codes in free text, whitespace collapsing,
//! and the xtext and `\x{…}` decodings of RFC 3461 and RFC 6533.
//!
//! Everything here works on `&str`, never indexes past a char boundary and
//! never panics on any input.

/// Longest diagnostic text kept, in characters; the rest is cut with `…`.
pub const MAX_DIAGNOSTIC_CHARS: usize = 1000;

/// Collapses every run of whitespace (including folded lines) to one space
/// and trims the ends. Long texts are cut at [`MAX_DIAGNOSTIC_CHARS`].
pub fn collapse_ws(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(4 * MAX_DIAGNOSTIC_CHARS));
    let mut chars = 0;
    for word in s.split_whitespace() {
        let sep = usize::from(!out.is_empty());
        let len = word.chars().count();
        if chars + sep + len > MAX_DIAGNOSTIC_CHARS {
            // Fill exactly up to the limit (separator included), then the
            // ellipsis: a cut text is always MAX_DIAGNOSTIC_CHARS + 1 long.
            let mut room = MAX_DIAGNOSTIC_CHARS.saturating_sub(chars);
            if sep == 1 && room > 0 {
                out.push(' ');
                room -= 1;
            }
            out.extend(word.chars().take(room));
            out.push('…');
            break;
        }
        if sep == 1 {
            out.push(' ');
        }
        out.push_str(word);
        chars += sep + len;
    }
    out
}

fn is_local_char(c: char) -> bool {
    c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c)
}

fn is_domain_char(c: char) -> bool {
    c.is_alphanumeric() || c == '.' || c == '-'
}

/// Every e-mail address in `s`, in order, as written (case kept). A
/// candidate needs a non-empty local part and a domain with a dot or a
/// bracketed literal is skipped; addresses are trimmed of dots at the ends.
pub fn find_addresses(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in s.match_indices('@') {
        let before = &s[..at];
        let after = &s[at + 1..];
        let start = before
            .char_indices()
            .rev()
            .take_while(|(_, c)| is_local_char(*c))
            .last()
            .map(|(i, _)| i);
        let Some(start) = start else { continue };
        let local = before[start..].trim_start_matches(['.', '\'']);
        let end = after
            .char_indices()
            .find(|(_, c)| !is_domain_char(*c))
            .map(|(i, _)| i)
            .unwrap_or(after.len());
        let domain = after[..end].trim_matches(['.', '-']);
        if local.is_empty() || domain.is_empty() || !domain.contains('.') {
            continue;
        }
        out.push(format!("{local}@{domain}"));
    }
    out
}

/// The first address in `s`, if any.
pub fn first_address(s: &str) -> Option<String> {
    find_addresses(s).into_iter().next()
}

/// The first enhanced status code (RFC 3463: `class.subject.detail`, class
/// 2, 4 or 5, subject and detail of one to three digits) that stands alone
/// in `s`: not part of a longer dotted number such as an IP address. A
/// failure code (class 4 or 5) is preferred to an earlier success code,
/// which in a failure text is a transcript line.
pub fn find_enhanced(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut first = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if matches!(c, b'2' | b'4' | b'5')
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.'))
        {
            if let Some(end) = enhanced_at(b, i) {
                if c != b'2' {
                    return Some(s[i..end].to_string());
                }
                first.get_or_insert_with(|| s[i..end].to_string());
                i = end;
                continue;
            }
        }
        i += 1;
    }
    first
}

/// If an enhanced code starts at `i`, the index just after it.
fn enhanced_at(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    for _ in 0..2 {
        if b.get(j) != Some(&b'.') {
            return None;
        }
        j += 1;
        let digits = b[j..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 3 {
            return None;
        }
        j += digits;
    }
    match b.get(j) {
        Some(c)
            if c.is_ascii_alphanumeric()
                || *c == b'.' && b.get(j + 1).is_some_and(u8::is_ascii_digit) =>
        {
            None
        }
        _ => Some(j),
    }
}

/// The first SMTP reply code (RFC 5321: three digits, 2xx to 5xx, second
/// digit 0 to 5) in `s` that stands alone: preceded by the start, a space or
/// one of `'"(;:#[<`, and followed by the end, a space, `-` or `:`. A
/// group of an IPv6 address (`2001:db8:220:1`) is not one, nor is a
/// parameter value (`SIZE=222`). A failure code (4xx or 5xx) is preferred
/// to an earlier success code, which in a failure text is a transcript
/// line.
pub fn find_smtp_code(s: &str) -> Option<u16> {
    let b = s.as_bytes();
    let mut first = None;
    let mut i = 0;
    while i + 3 <= b.len() {
        let ok_before = i == 0 || b" \t'\"(;:#[<".contains(&b[i - 1]);
        let after = b.get(i + 3).copied();
        let ipv6_group = i > 0
            && b[i - 1] == b':'
            && (after == Some(b':')
                || (i > 1 && (b[i - 2].is_ascii_hexdigit() || b[i - 2] == b':')));
        if ok_before
            && !ipv6_group
            && matches!(b[i], b'2' | b'4' | b'5')
            && (b'0'..=b'5').contains(&b[i + 1])
            && b[i + 2].is_ascii_digit()
            && matches!(
                after,
                None | Some(b' ' | b'\t' | b'-' | b':' | b'\r' | b'\n')
            )
        {
            let code = (b[i] - b'0') as u16 * 100
                + (b[i + 1] - b'0') as u16 * 10
                + (b[i + 2] - b'0') as u16;
            if code >= 400 {
                return Some(code);
            }
            first.get_or_insert(code);
            i += 3;
            continue;
        }
        i += 1;
    }
    first
}

/// Whether the lower-cased `hay` contains any of `needles`.
pub fn contains_any(hay: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| hay.contains(n))
}

/// Decodes RFC 3461 xtext (`+XX`, two upper-case hex digits), which
/// Original-Recipient fields may carry. A `+` not followed by two hex digits
/// that decode to a printable ASCII character is kept as it is.
pub fn decode_xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('+') {
        out.push_str(&rest[..pos]);
        let hex = rest.get(pos + 1..pos + 3);
        let decoded = hex
            .filter(|h| {
                h.bytes()
                    .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c))
            })
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .filter(|c| (0x21..=0x7e).contains(c));
        match decoded {
            Some(c) => {
                out.push(c as char);
                rest = &rest[pos + 3..];
            }
            None => {
                out.push('+');
                rest = &rest[pos + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Decodes the `\x{HEX}` escapes of RFC 6533's utf-8-addr-xtext and
/// utf-8-addr-unitext forms. Bad escapes are kept as they are.
pub fn decode_unitext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find("\\x{") {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos + 3..];
        let decoded = tail.find('}').and_then(|close| {
            let hex = &tail[..close];
            u32::from_str_radix(hex, 16)
                .ok()
                .and_then(char::from_u32)
                .map(|c| (c, close))
        });
        match decoded {
            Some((c, close)) if close > 0 && close <= 6 => {
                out.push(c);
                rest = &tail[close + 1..];
            }
            _ => {
                out.push_str("\\x{");
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Cuts `s` to at most `max` bytes, at a char boundary.
pub fn cut_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_runs_and_folded_lines_collapse_to_single_spaces() {
        assert_eq!(
            collapse_ws("  550 5.1.1\r\n    user  unknown \t"),
            "550 5.1.1 user unknown"
        );
    }

    #[test]
    fn long_texts_are_cut_at_the_limit_with_an_ellipsis() {
        let long = "word ".repeat(1000);
        let cut = collapse_ws(&long);
        assert_eq!(cut.chars().count(), MAX_DIAGNOSTIC_CHARS + 1);
        assert!(cut.ends_with('…'));
        let one_word = "x".repeat(5000);
        assert_eq!(
            collapse_ws(&one_word).chars().count(),
            MAX_DIAGNOSTIC_CHARS + 1
        );
    }

    #[test]
    fn addresses_are_found_in_angle_brackets_and_prose_but_not_without_a_domain_dot() {
        assert_eq!(
            find_addresses(
                "<a.b@example.org>: host mx.example.org said x@y, and 'c+d@sub.example.net'."
            ),
            vec!["a.b@example.org", "c+d@sub.example.net"]
        );
        assert_eq!(
            find_addresses("@@ x@ @y.org user@localhost"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn enhanced_codes_are_found_but_ip_addresses_and_versions_are_not() {
        assert_eq!(
            find_enhanced("from 192.0.2.5 said 550 5.1.1 unknown"),
            Some("5.1.1".into())
        );
        assert_eq!(find_enhanced("(#5.1.1)"), Some("5.1.1".into()));
        assert_eq!(find_enhanced("host 5.4.3.2 version 2.4.10.1"), None);
        assert_eq!(
            find_enhanced("5.7.26 unauthenticated"),
            Some("5.7.26".into())
        );
    }

    #[test]
    fn smtp_codes_are_found_at_word_starts_but_not_inside_numbers() {
        assert_eq!(find_smtp_code("said: 550-5.1.1 The email"), Some(550));
        assert_eq!(
            find_smtp_code("Remote Server returned '554 5.4.14 Hop'"),
            Some(554)
        );
        assert_eq!(find_smtp_code("smtp;452 4.2.2 full"), Some(452));
        assert_eq!(find_smtp_code("mta1234 192.0.2.250 at 2024-05-01"), None);
        assert_eq!(find_smtp_code("5.1.1 only"), None);
    }

    #[test]
    fn parameters_ipv6_groups_and_transcript_successes_are_not_the_reply_code() {
        assert_eq!(
            find_smtp_code("MAIL FROM:<a@example.org> SIZE=222: too big"),
            None
        );
        assert_eq!(find_smtp_code("from [2001:db8:220:1::5] said"), None);
        assert_eq!(find_smtp_code("host [2001:db8::1]:250: x"), None);
        assert_eq!(
            find_smtp_code("<<< 250 2.1.0 sender ok\n<<< 550 5.1.1 user unknown"),
            Some(550)
        );
        assert_eq!(find_smtp_code("250 2.0.0 ok"), Some(250));
        assert_eq!(
            find_enhanced("250 2.1.0 ok, then 550 5.1.1 unknown"),
            Some("5.1.1".into())
        );
    }

    #[test]
    fn xtext_and_unitext_escapes_decode_and_stray_pluses_survive() {
        assert_eq!(decode_xtext("a+2Bb+tag@example.org"), "a+b+tag@example.org");
        assert_eq!(
            decode_unitext("\\x{7528}\\x{6237}@example.org"),
            "用户@example.org"
        );
        assert_eq!(
            decode_unitext("bad\\x{zz}@example.org"),
            "bad\\x{zz}@example.org"
        );
    }

    #[test]
    fn cutting_never_splits_a_character() {
        assert_eq!(cut_bytes("日本語", 4), "日");
    }
}
