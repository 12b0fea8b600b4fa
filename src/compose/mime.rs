//! The wire format: quoted-printable bodies, RFC 2047 headers, folding.
//!
//! whatsup assembles its MIME itself instead of using lettre's message
//! builder, because the builder encodes the whole body again for every
//! message. Here the static parts of a campaign are encoded once (see
//! [`qp_encode_into`]'s contract: each piece starts at column 0 and ends with a
//! soft line break) and a message is the concatenation of pre-encoded pieces
//! and a few small encoded personal values. That keeps rendering at tens of
//! thousands of messages per second per core.
//!
//! Guarantees: CRLF line endings only, no line longer than 76 octets in bodies
//! and 998 in headers (folded at 78 where possible), UTF-8 everywhere.

use base64::Engine;

const HEX: &[u8; 16] = b"0123456789ABCDEF";
/// Longest encoded body line, excluding CRLF (RFC 2045).
pub const QP_LINE: usize = 76;

/// Appends `text` quoted-printable encoded, starting at column 0. Newlines
/// (`\n` or `\r\n`) become CRLF hard breaks. The output ends with a soft line
/// break (`=\r\n`) or a hard break, so the next piece starts at column 0 and
/// pieces encoded separately can be concatenated freely.
pub fn qp_encode_into(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    let mut col = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        if b == b'\n' {
            out.extend_from_slice(b"\r\n");
            col = 0;
            i += 1;
            continue;
        }
        let next_is_break = match bytes.get(i + 1) {
            None => false, // a soft break follows: not trailing
            Some(b'\n') => true,
            Some(b'\r') => bytes.get(i + 2) == Some(&b'\n'),
            _ => false,
        };
        let literal = match b {
            b'=' => false,
            b' ' | b'\t' => !next_is_break,
            b'.' => col != 0, // a leading dot is encoded to be safe from dot-stuffing mishaps
            33..=126 => true,
            _ => false,
        };
        let need = if literal { 1 } else { 3 };
        // Keep room for the "=" of a soft break.
        if col + need > QP_LINE - 1 {
            out.extend_from_slice(b"=\r\n");
            col = 0;
        }
        if literal {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'=', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
        col += need;
        i += 1;
    }
    if col > 0 {
        out.extend_from_slice(b"=\r\n");
    }
}

/// Is this a header value that needs no encoding?
fn is_plain(s: &str) -> bool {
    s.bytes().all(|b| (32..127).contains(&b)) && !s.contains("=?")
}

/// Encodes an unstructured header value (a Subject) as RFC 2047 encoded words
/// if it is not plain ASCII, folding so that no line exceeds 78 octets.
/// `name_len` is the length of `Name: ` on the first line.
pub fn encode_unstructured(value: &str, name_len: usize) -> String {
    if is_plain(value) {
        return fold_words(value, name_len);
    }
    encoded_words(value, name_len)
}

/// `=?UTF-8?B?…?=` words of at most 75 octets, split on character boundaries,
/// separated by CRLF SP.
pub fn encoded_words(value: &str, name_len: usize) -> String {
    const OVERHEAD: usize = "=?UTF-8?B??=".len();
    let mut out = String::new();
    let mut chunk = String::new();
    let mut first_room = 76usize.saturating_sub(name_len).clamp(20, 75);
    let flush = |chunk: &mut String, out: &mut String| {
        if !out.is_empty() {
            out.push_str("\r\n ");
        }
        out.push_str("=?UTF-8?B?");
        out.push_str(&base64::engine::general_purpose::STANDARD.encode(chunk.as_bytes()));
        out.push_str("?=");
        chunk.clear();
    };
    for c in value.chars() {
        let new_len = chunk.len() + c.len_utf8();
        let encoded = new_len.div_ceil(3) * 4 + OVERHEAD;
        if encoded > first_room && !chunk.is_empty() {
            flush(&mut chunk, &mut out);
            first_room = 74;
        }
        chunk.push(c);
    }
    if !chunk.is_empty() || out.is_empty() {
        flush(&mut chunk, &mut out);
    }
    out
}

/// Folds plain text at spaces to keep lines under 78 octets where possible.
fn fold_words(value: &str, name_len: usize) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    let mut col = name_len;
    for (i, word) in value.split(' ').enumerate() {
        if i > 0 {
            if col + 1 + word.len() > 78 && col > 1 {
                out.push_str("\r\n ");
                col = 1;
            } else {
                out.push(' ');
                col += 1;
            }
        }
        out.push_str(word);
        col += word.len();
    }
    out
}

/// A mailbox for From/To/Reply-To: `Display Name <addr>` with the name quoted
/// or RFC 2047-encoded as needed; just `addr` when there is no name.
pub fn mailbox(name: &str, addr: &str) -> String {
    let name = name.trim();
    if name.is_empty() {
        return addr.to_string();
    }
    let phrase = if is_plain(name) {
        let special = name.chars().any(|c| "()<>[]:;@\\,.\"".contains(c));
        if special {
            format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
        } else {
            name.to_string()
        }
    } else {
        encoded_words(name, 4)
    };
    format!("{phrase} <{addr}>")
}

/// Percent-encodes everything outside the URL-safe unreserved set.
pub fn url_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
    out
}

/// Escapes text for HTML element content and double-quoted attributes.
pub fn html_escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_qp(s: &[u8]) -> String {
        let s = std::str::from_utf8(s).unwrap().replace("=\r\n", "");
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'=' {
                out.push(
                    u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap(), 16).unwrap(),
                );
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap().replace("\r\n", "\n")
    }

    #[test]
    fn quoted_printable_round_trips_and_keeps_lines_short() {
        let text = format!(
            "Tōkyō = 東京 \n.leading dot\ntrailing space \n{}\n",
            "x".repeat(300)
        );
        let mut out = Vec::new();
        qp_encode_into(&text, &mut out);
        for line in out.split(|&b| b == b'\n') {
            assert!(line.len() <= 77, "{}", String::from_utf8_lossy(line));
        }
        assert!(!out.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
        assert_eq!(decode_qp(&out), text);
        assert!(out.ends_with(b"\r\n"));
    }

    #[test]
    fn pieces_encoded_apart_concatenate_to_the_whole() {
        let mut out = Vec::new();
        qp_encode_into("Dear ", &mut out);
        qp_encode_into("Ms Ōno", &mut out);
        qp_encode_into(", welcome.", &mut out);
        assert_eq!(decode_qp(&out), "Dear Ms Ōno, welcome.");
    }

    #[test]
    fn non_ascii_subjects_become_short_encoded_words() {
        let s = encode_unstructured(&"東京の夏祭り ".repeat(8), 9);
        assert!(s.starts_with("=?UTF-8?B?"));
        for line in s.split("\r\n") {
            assert!(line.len() <= 76, "{line}");
        }
    }

    #[test]
    fn mailboxes_quote_or_encode_their_names() {
        assert_eq!(
            mailbox("Tokyo Metropolitan Government", "a@example.org"),
            "Tokyo Metropolitan Government <a@example.org>"
        );
        assert_eq!(
            mailbox("Dr. A", "a@example.org"),
            "\"Dr. A\" <a@example.org>"
        );
        assert!(mailbox("Zoë", "a@example.org").starts_with("=?UTF-8?B?"));
        assert_eq!(mailbox("", "a@example.org"), "a@example.org");
    }
}
