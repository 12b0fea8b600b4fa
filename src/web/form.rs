//! Form bodies: `application/x-www-form-urlencoded` and the small subset of
//! `multipart/form-data` that one-click unsubscribes and our own forms use
//! (text fields only; files are ignored).

/// The fields of a form body, in order; a name may repeat.
pub type Fields = Vec<(String, String)>;

/// Parses a body by its Content-Type. An unknown type gives no fields.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Fields {
    let ct = content_type.unwrap_or("").trim();
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "multipart/form-data" => boundary(ct)
            .map(|b| multipart(body, &b))
            .unwrap_or_default(),
        // Some clients omit the type; urlencoded is what RFC 8058 shows.
        "application/x-www-form-urlencoded" | "" | "text/plain" => urlencoded(body),
        _ => Vec::new(),
    }
}

/// Does the body carry RFC 8058's `List-Unsubscribe=One-Click`?
pub fn is_one_click(fields: &Fields) -> bool {
    fields
        .iter()
        .any(|(k, v)| k == "List-Unsubscribe" && v.trim() == "One-Click")
}

pub fn urlencoded(body: &[u8]) -> Fields {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("boundary"))
            .then(|| v.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty() && b.len() <= 70)
    })
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    memchr::memmem::find(&hay[from..], needle).map(|i| i + from)
}

/// Text fields of a multipart/form-data body (RFC 7578).
pub fn multipart(body: &[u8], boundary: &str) -> Fields {
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let mut out = Vec::new();
    let Some(mut pos) = find(body, d, 0) else {
        return out;
    };
    loop {
        pos += d.len();
        if body[pos..].starts_with(b"--") {
            break; // the close delimiter
        }
        // Skip the rest of the delimiter line.
        let Some(eol) = find(body, b"\n", pos) else {
            break;
        };
        let part_start = eol + 1;
        let Some(next) = find(body, d, part_start) else {
            break;
        };
        // The part ends with the CRLF (or LF) before the next delimiter.
        let mut part_end = next;
        if part_end > part_start && body[part_end - 1] == b'\n' {
            part_end -= 1;
            if part_end > part_start && body[part_end - 1] == b'\r' {
                part_end -= 1;
            }
        }
        let part = &body[part_start..part_end.max(part_start)];
        let (head, value) = match find(part, b"\r\n\r\n", 0) {
            Some(i) => (&part[..i], &part[i + 4..]),
            None => match find(part, b"\n\n", 0) {
                Some(i) => (&part[..i], &part[i + 2..]),
                None => (part, &b""[..]),
            },
        };
        let head = String::from_utf8_lossy(head);
        let mut name = None;
        let mut is_file = false;
        for line in head.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if !k.trim().eq_ignore_ascii_case("content-disposition") {
                continue;
            }
            for param in v.split(';').skip(1) {
                if let Some((pk, pv)) = param.split_once('=') {
                    let pv = pv.trim().trim_matches('"').to_string();
                    match pk.trim().to_ascii_lowercase().as_str() {
                        "name" => name = Some(pv),
                        "filename" => is_file = true,
                        _ => {}
                    }
                }
            }
        }
        if let (Some(n), false) = (name, is_file) {
            out.push((n, String::from_utf8_lossy(value).into_owned()));
        }
        pos = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_8058_urlencoded_body_is_one_click() {
        let f = parse(
            Some("application/x-www-form-urlencoded"),
            b"List-Unsubscribe=One-Click",
        );
        assert!(is_one_click(&f));
        assert!(!is_one_click(&parse(
            Some("application/x-www-form-urlencoded"),
            b"confirm=yes"
        )));
    }

    #[test]
    fn a_multipart_one_click_body_is_one_click() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--XyZ--\r\n";
        let f = parse(Some("multipart/form-data; boundary=XyZ"), body);
        assert_eq!(f, vec![("List-Unsubscribe".into(), "One-Click".into())]);
        assert!(is_one_click(&f));
    }

    #[test]
    fn multipart_fields_keep_their_order_and_files_are_ignored() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.txt\"\r\nContent-Type: text/plain\r\n\r\nfile\r\n--b\r\nContent-Disposition: form-data; name=\"tag\"\r\n\r\nline one\r\nline two\r\n--b--";
        let f = parse(Some("multipart/form-data; boundary=\"b\""), body);
        assert_eq!(
            f,
            vec![
                ("a".into(), "1".into()),
                ("tag".into(), "line one\r\nline two".into())
            ]
        );
    }

    #[test]
    fn garbage_bodies_give_no_fields_rather_than_an_error() {
        assert!(parse(Some("multipart/form-data; boundary=q"), b"no delimiter").is_empty());
        assert!(parse(Some("multipart/form-data"), b"--q\r\n").is_empty());
        assert!(parse(Some("application/json"), b"{}").is_empty());
        assert!(parse(Some("multipart/form-data; boundary=q"), b"--q").is_empty());
    }
}
