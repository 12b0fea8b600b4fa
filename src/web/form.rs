//! Form bodies, read strictly: `application/x-www-form-urlencoded` (also
//! when the Content-Type is missing) and the small subset of
//! `multipart/form-data` that one-click unsubscribes and our own forms use
//! (text fields only; files are ignored).
//!
//! Any other type is refused ([`FormError::UnsupportedType`], a 415): in
//! particular `text/plain`, the one body type a cross-site HTML form can
//! send that is not a form encoding. A name or value that is not valid
//! UTF-8 once decoded is refused ([`FormError::InvalidUtf8`], a 400) rather
//! than stored with replacement characters.

use percent_encoding::percent_decode;

/// The fields of a form body, in order; a name may repeat.
pub type Fields = Vec<(String, String)>;

/// Why a body was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("the body's type {0:?} is not a form encoding")]
    UnsupportedType(String),
    #[error("a form field is not valid UTF-8")]
    InvalidUtf8,
}

/// Parses a body by its Content-Type.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Fields, FormError> {
    let ct = content_type.unwrap_or("").trim();
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "multipart/form-data" => match boundary(ct) {
            Some(b) => multipart(body, &b),
            None => Ok(Vec::new()),
        },
        // Some clients omit the type; urlencoded is what RFC 8058 shows.
        "application/x-www-form-urlencoded" | "" => urlencoded(body),
        _ => Err(FormError::UnsupportedType(essence)),
    }
}

/// Does the body carry RFC 8058's `List-Unsubscribe=One-Click`?
pub fn is_one_click(fields: &Fields) -> bool {
    fields
        .iter()
        .any(|(k, v)| k == "List-Unsubscribe" && v.trim() == "One-Click")
}

/// The first value of field `name`.
pub fn value<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// An `application/x-www-form-urlencoded` body (WHATWG URL, "urlencoded
/// parsing"), except that bytes that do not decode to UTF-8 are an error.
pub fn urlencoded(body: &[u8]) -> Result<Fields, FormError> {
    let decode = |s: &[u8]| -> Result<String, FormError> {
        let plus: Vec<u8> = s
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        String::from_utf8(percent_decode(&plus).collect()).map_err(|_| FormError::InvalidUtf8)
    };
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

/// The `boundary` parameter of a multipart Content-Type.
pub fn boundary(content_type: &str) -> Option<String> {
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

/// One complete part of a multipart body: its field name, the file name
/// when it is a file, and its bytes.
struct Part<'a> {
    name: Option<String>,
    filename: Option<String>,
    value: &'a [u8],
}

impl Part<'_> {
    fn is_file(&self) -> bool {
        self.filename.is_some()
    }
}

/// A file sent in a multipart form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePart {
    /// The form field's name.
    pub field: String,
    /// The file name the browser sent (for display only).
    pub filename: String,
    pub bytes: Vec<u8>,
}

/// The complete parts of a multipart/form-data body (RFC 7578), in order,
/// and whether the close delimiter was reached. A part cut off by the end
/// of `body` (a prefix of a longer body) is not returned.
fn parts<'a>(body: &'a [u8], boundary: &str) -> Result<(Vec<Part<'a>>, bool), FormError> {
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let mut out = Vec::new();
    let Some(mut pos) = find(body, d, 0) else {
        return Ok((out, false));
    };
    loop {
        pos += d.len();
        if body[pos..].starts_with(b"--") {
            return Ok((out, true)); // the close delimiter
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
        let head = std::str::from_utf8(head).map_err(|_| FormError::InvalidUtf8)?;
        let (name, filename) = disposition(head);
        out.push(Part {
            name,
            filename,
            value,
        });
        pos = next;
    }
    Ok((out, false))
}

/// Text fields of a multipart/form-data body (RFC 7578). A body without
/// the delimiter gives no fields; file parts are left out.
pub fn multipart(body: &[u8], boundary: &str) -> Result<Fields, FormError> {
    Ok(multipart_with_files(body, boundary)?.0)
}

/// The text fields and the files of a multipart/form-data body.
pub fn multipart_with_files(
    body: &[u8],
    boundary: &str,
) -> Result<(Fields, Vec<FilePart>), FormError> {
    let (parts, _) = parts(body, boundary)?;
    let mut files = Vec::new();
    let mut texts = Vec::new();
    for p in parts {
        match (p.name, p.filename) {
            (Some(field), Some(filename)) => files.push(FilePart {
                field,
                filename,
                bytes: p.value.to_vec(),
            }),
            (Some(n), None) => texts.push((n, p.value)),
            (None, _) => {}
        }
    }
    let fields = texts
        .into_iter()
        .map(|(n, v)| {
            let v = std::str::from_utf8(v).map_err(|_| FormError::InvalidUtf8)?;
            Ok((n, v.to_string()))
        })
        .collect::<Result<Fields, FormError>>()?;
    Ok((fields, files))
}

/// Looks for the text field `name` at the start of a multipart body that
/// may still be arriving (`prefix`): `Some(Some(value))` when it is there
/// complete, `Some(None)` when a file part comes first or the body ended
/// without it, `None` when more of the body is needed to tell.
pub fn multipart_first_field(prefix: &[u8], boundary: &str, name: &str) -> Option<Option<String>> {
    let Ok((parts, closed)) = parts(prefix, boundary) else {
        return Some(None);
    };
    for p in parts {
        if p.is_file() {
            return Some(None);
        }
        if p.name.as_deref() == Some(name) {
            return Some(std::str::from_utf8(p.value).ok().map(String::from));
        }
    }
    closed.then_some(None)
}

/// The field name in a part's headers, and the file name when the part
/// is a file.
fn disposition(head: &str) -> (Option<String>, Option<String>) {
    let mut name = None;
    let mut filename = None;
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
                    "filename" => filename = Some(pv),
                    _ => {}
                }
            }
        }
    }
    (name, filename)
}

#[cfg(test)]
mod tests {
    use super::*;

    const URLENCODED: Option<&str> = Some("application/x-www-form-urlencoded");

    #[test]
    fn the_rfc_8058_urlencoded_body_is_one_click() {
        let f = parse(URLENCODED, b"List-Unsubscribe=One-Click").unwrap();
        assert!(is_one_click(&f));
        assert!(!is_one_click(&parse(URLENCODED, b"confirm=yes").unwrap()));
        assert!(!is_one_click(&parse(URLENCODED, b"").unwrap()));
        assert!(!is_one_click(
            &parse(URLENCODED, b"List-Unsubscribe=One-Clicks").unwrap()
        ));
        // Without a Content-Type, the body is read as urlencoded.
        assert!(is_one_click(
            &parse(None, b"List-Unsubscribe=One-Click").unwrap()
        ));
    }

    #[test]
    fn a_multipart_one_click_body_is_one_click() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--XyZ--\r\n";
        let f = parse(Some("multipart/form-data; boundary=XyZ"), body).unwrap();
        assert_eq!(f, vec![("List-Unsubscribe".into(), "One-Click".into())]);
        assert!(is_one_click(&f));
    }

    #[test]
    fn multipart_fields_keep_their_order_and_files_are_ignored() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.txt\"\r\nContent-Type: text/plain\r\n\r\nfile\r\n--b\r\nContent-Disposition: form-data; name=\"tag\"\r\n\r\nline one\r\nline two\r\n--b--";
        let f = parse(Some("multipart/form-data; boundary=\"b\""), body).unwrap();
        assert_eq!(
            f,
            vec![
                ("a".into(), "1".into()),
                ("tag".into(), "line one\r\nline two".into())
            ]
        );
    }

    #[test]
    fn garbage_form_bodies_give_no_fields_rather_than_an_error() {
        let multipart = |ct, body: &[u8]| parse(Some(ct), body).unwrap();
        assert!(multipart("multipart/form-data; boundary=q", b"no delimiter").is_empty());
        assert!(multipart("multipart/form-data", b"--q\r\n").is_empty());
        assert!(multipart("multipart/form-data; boundary=q", b"--q").is_empty());
        assert_eq!(
            parse(URLENCODED, b"{\"json\": true}").unwrap(),
            vec![("{\"json\": true}".to_string(), String::new())]
        );
    }

    #[test]
    fn text_plain_json_and_other_types_are_unsupported() {
        for ct in [
            "text/plain",
            "text/plain; charset=utf-8",
            "application/json",
            "TEXT/PLAIN",
        ] {
            assert!(
                matches!(
                    parse(Some(ct), b"List-Unsubscribe=One-Click"),
                    Err(FormError::UnsupportedType(_))
                ),
                "{ct}"
            );
        }
    }

    #[test]
    fn invalid_utf8_in_any_field_is_an_error_not_replacement_characters() {
        assert_eq!(
            parse(URLENCODED, b"name=%ff%fe%80"),
            Err(FormError::InvalidUtf8)
        );
        assert_eq!(parse(URLENCODED, b"%c3=x"), Err(FormError::InvalidUtf8));
        assert_eq!(parse(URLENCODED, b"name=\xff"), Err(FormError::InvalidUtf8));
        let body = b"--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n\xff\xfe\r\n--b--";
        assert_eq!(
            parse(Some("multipart/form-data; boundary=b"), body),
            Err(FormError::InvalidUtf8)
        );
        // Valid UTF-8, percent-encoded or not, and '+' for space.
        assert_eq!(
            parse(
                URLENCODED,
                b"name=Jos%C3%A9+Mar%C3%ADa&city=%E6%9D%B1%E4%BA%AC"
            )
            .unwrap(),
            vec![
                ("name".to_string(), "José María".to_string()),
                ("city".to_string(), "東京".to_string())
            ]
        );
        // A stray '%' is kept as it is (as browsers do).
        assert_eq!(
            parse(URLENCODED, b"a=100%&b=%zz").unwrap(),
            vec![
                ("a".to_string(), "100%".to_string()),
                ("b".to_string(), "%zz".to_string())
            ]
        );
    }
}
