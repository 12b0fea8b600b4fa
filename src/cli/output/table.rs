//! Plain aligned tables. Columns are aligned by display width
//! (unicode-width), so Japanese names (two columns a character) line up.
//! On a terminal, free-text cells are shortened with `…` until the table
//! fits the width; an email address is never shortened. Piped output is
//! never shortened. Some columns show only with `--wide`, which also turns
//! off shortening.

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::settings;

/// A column no narrower than this is shortened further (or its header's width).
const MIN_CUT: usize = 12;
/// Spaces between columns.
const GAP: usize = 2;

/// Prints rows under `headers`, every column shown.
pub fn print_table<H: AsRef<str>>(headers: &[H], rows: &[Vec<String>]) {
    print_table_wide(headers, rows, &[]);
}

/// Prints rows under `headers`; the columns named in `wide_only` show only
/// with `--wide`.
pub fn print_table_wide<H: AsRef<str>>(headers: &[H], rows: &[Vec<String>], wide_only: &[&str]) {
    let s = settings();
    let width = if s.wide { None } else { s.stdout_width };
    let hidden: Vec<bool> = headers
        .iter()
        .map(|h| !s.wide && wide_only.contains(&h.as_ref()))
        .collect();
    for line in layout(headers, rows, &hidden, width) {
        println!("{line}");
    }
}

/// The lines of a table: visible columns aligned by display width, and,
/// given a width, shortened to fit it where they can be.
pub fn layout<H: AsRef<str>>(
    headers: &[H],
    rows: &[Vec<String>],
    hidden: &[bool],
    width: Option<usize>,
) -> Vec<String> {
    let shown: Vec<usize> = (0..headers.len())
        .filter(|&i| !hidden.get(i).copied().unwrap_or(false))
        .collect();
    let cell = |r: &Vec<String>, i: usize| clean(r.get(i).map(String::as_str).unwrap_or(""));
    let header_cells: Vec<String> = shown.iter().map(|&i| clean(headers[i].as_ref())).collect();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| shown.iter().map(|&i| cell(r, i)).collect())
        .collect();
    let mut widths: Vec<usize> = header_cells.iter().map(|h| h.width()).collect();
    for r in &body {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.width());
        }
    }
    if let Some(limit) = width {
        fit(&mut widths, &header_cells, &body, limit);
    }
    let mut out = Vec::with_capacity(body.len() + 1);
    for r in std::iter::once(&header_cells).chain(body.iter()) {
        let mut line = String::new();
        for (i, (c, &w)) in r.iter().zip(&widths).enumerate() {
            let text = if c.width() > w && !is_email(c) {
                cut(c, w)
            } else {
                c.clone()
            };
            line.push_str(&text);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(w.saturating_sub(text.width()) + GAP));
            }
        }
        out.push(line.trim_end().to_string());
    }
    out
}

/// Narrows the widest shortenable column, one column of text at a time,
/// until the table fits `limit` or nothing can shrink.
fn fit(widths: &mut [usize], headers: &[String], body: &[Vec<String>], limit: usize) {
    let floor: Vec<Option<usize>> = (0..widths.len())
        .map(|i| {
            // A column with an email address keeps its width.
            let email = body.iter().any(|r| is_email(&r[i]));
            (!email).then(|| headers[i].width().max(MIN_CUT))
        })
        .collect();
    let total = |w: &[usize]| w.iter().sum::<usize>() + GAP * w.len().saturating_sub(1);
    while total(widths) > limit {
        let widest = (0..widths.len())
            .filter(|&i| floor[i].is_some_and(|f| widths[i] > f))
            .max_by_key(|&i| widths[i]);
        match widest {
            Some(i) => widths[i] -= 1,
            None => break,
        }
    }
}

/// Control characters (line breaks in a diagnostic) would break the rows.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Whether a cell holds an email address (never shortened).
fn is_email(s: &str) -> bool {
    s.contains('@') && !s.contains(char::is_whitespace)
}

/// Shortens `s` to `width` display columns, ending in `…`.
pub fn cut(s: &str, width: usize) -> String {
    if s.width() <= width {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Vec<String>> {
        vec![
            vec![
                "yamada@ch.embassy.example.org".into(),
                "山田 太郎".into(),
                "スイス大使館".into(),
            ],
            vec![
                "anne.martin@paris.example.com".into(),
                "Anne Martin".into(),
                "City of Paris".into(),
            ],
        ]
    }

    #[test]
    fn columns_align_by_display_width_with_japanese_names() {
        let lines = layout(&["EMAIL", "NAME", "ORGANISATION"], &rows(), &[], None);
        // 山田 太郎 is nine columns wide, like "Anne Mart": the third
        // column starts at the same display column on every line.
        let starts: Vec<usize> = lines
            .iter()
            .map(|l| {
                let at = l.rfind("  ").unwrap() + 2;
                l[..at].width()
            })
            .collect();
        assert!(starts.iter().all(|&s| s == starts[0]), "{lines:#?}");
    }

    #[test]
    fn a_narrow_terminal_shortens_free_text_but_never_an_email_address() {
        let long = vec![vec![
            "a.very.long.address.for.testing.the.table@representative-office.example.org".into(),
            "Ünal Öztürk".into(),
            "Embassy of the Republic of Türkiye in Japan, Economic Section".into(),
        ]];
        let lines = layout(&["EMAIL", "NAME", "ORGANISATION"], &long, &[], Some(110));
        assert!(lines[1].starts_with(
            "a.very.long.address.for.testing.the.table@representative-office.example.org  "
        ));
        assert!(lines[1].ends_with('…'), "{lines:#?}");
        assert!(lines[1].width() <= 110, "{lines:#?}");
        // Without a width nothing is shortened.
        let full = layout(&["EMAIL", "NAME", "ORGANISATION"], &long, &[], None);
        assert!(full[1].ends_with("Economic Section"), "{full:#?}");
    }

    #[test]
    fn wide_only_columns_are_hidden_unless_asked_for() {
        let lines = layout(
            &["EMAIL", "NAME", "ORGANISATION"],
            &rows(),
            &[false, true, false],
            None,
        );
        assert!(!lines[0].contains("NAME"), "{lines:#?}");
        assert!(!lines[1].contains("山田"), "{lines:#?}");
    }

    #[test]
    fn cutting_counts_wide_characters_twice() {
        assert_eq!(cut("スイス大使館", 7), "スイス…");
        assert_eq!(cut("Embassy", 7), "Embassy");
        assert_eq!(cut("Embassy of", 7), "Embass…");
    }
}
