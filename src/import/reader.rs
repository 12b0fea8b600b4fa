//! A strict, streaming RFC 4180 reader that reports where a record goes wrong.
//!
//! The `csv` crate is deliberately lenient: it silently accepts a stray quote
//! inside an unquoted field, text after a closing quote, and an unterminated
//! quote that swallows the rest of the file. An import must instead reject
//! such a record with its line and column and go on with the next one, so
//! this reader implements the grammar strictly (we still use `csv` to write).
//!
//! - Fields are separated by `,`; records end with LF or CRLF.
//! - A field may be quoted with `"`; inside it `""` is a quote, and commas and
//!   line breaks are data.
//! - A UTF-8 byte-order mark at the start is skipped; blank lines are ignored.
//! - A quoted field may span at most [`MAX_RECORD_LINES`] lines and a record
//!   at most [`MAX_RECORD_BYTES`] bytes. Past that (or at end of file) the
//!   quote is reported as unterminated, and reading resumes on the line after
//!   the one where the quote opened, so one bad quote loses one record.
//! - A line is never buffered past [`MAX_RECORD_BYTES`]: the rest of a
//!   longer one is skipped as it is read, and the record is reported as too
//!   long. A field longer than [`MAX_FIELD_BYTES`] is kept only up to that
//!   length and marked ([`Record::oversized`]), so the row is reported with
//!   the field's name, line and column.
//!
//! Fields are returned as bytes: the caller checks UTF-8 per field, so a
//! Latin-1 byte is reported at its own line and column.

use std::collections::VecDeque;
use std::io::BufRead;

pub const MAX_RECORD_LINES: usize = 100;
pub const MAX_RECORD_BYTES: usize = 1 << 20;
pub const MAX_FIELD_BYTES: usize = 64 << 10;

/// Where a field starts: 1-based line, and 1-based byte offset in that line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: u64,
    pub byte_col: usize,
}

/// One record, reused between reads to avoid allocation.
#[derive(Debug, Default)]
pub struct Record {
    /// The unescaped field values, back to back.
    data: Vec<u8>,
    /// End offset in `data` of each field.
    ends: Vec<usize>,
    /// Where each field starts in the file.
    starts: Vec<Pos>,
    /// The record's bytes exactly as in the file (for reject files).
    pub raw: Vec<u8>,
    /// First physical line of the record.
    pub line: u64,
    /// Start offsets of each physical line of the record within `raw`, so a
    /// field's column can be turned into characters.
    line_starts: Vec<usize>,
    /// Fields longer than [`MAX_FIELD_BYTES`] (cut to that length), with
    /// their full length in bytes.
    oversized: Vec<(usize, usize)>,
}

impl Record {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The full length of field `i` if it is longer than
    /// [`MAX_FIELD_BYTES`] (its value is cut to that length).
    pub fn oversized(&self, i: usize) -> Option<usize> {
        self.oversized
            .iter()
            .find(|(f, _)| *f == i)
            .map(|(_, len)| *len)
    }

    /// Ends the field being read; a field over the limit is cut to it.
    fn end_field(&mut self) {
        let start = self.ends.last().copied().unwrap_or(0);
        let len = self.data.len() - start;
        if len > MAX_FIELD_BYTES {
            self.oversized.push((self.ends.len(), len));
            self.data.truncate(start + MAX_FIELD_BYTES);
        }
        self.ends.push(self.data.len());
    }

    pub fn field(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.data[start..self.ends[i]]
    }

    /// Where field `i` starts, as (line, character column).
    pub fn position(&self, i: usize) -> (u64, usize) {
        let Some(pos) = self.starts.get(i) else {
            return (self.line, 1);
        };
        (pos.line, self.char_col(pos))
    }

    /// The position just past the last field (for "too few fields").
    pub fn end_position(&self) -> (u64, usize) {
        let last_line = self.line + self.line_starts.len().saturating_sub(1) as u64;
        let start = self.line_starts.last().copied().unwrap_or(0);
        let mut text = &self.raw[start..];
        while let Some((&b, rest)) = text.split_last() {
            if b == b'\n' || b == b'\r' {
                text = rest;
            } else {
                break;
            }
        }
        (last_line, char_count(text) + 1)
    }

    /// Converts a byte column into a character column, counting invalid
    /// UTF-8 bytes as one character each.
    pub fn char_col(&self, pos: &Pos) -> usize {
        let idx = (pos.line - self.line) as usize;
        let start = self.line_starts.get(idx).copied().unwrap_or(0);
        let end = (start + pos.byte_col.saturating_sub(1)).min(self.raw.len());
        char_count(&self.raw[start..end]) + 1
    }

    /// Column (in characters) of byte `offset` inside field `i`'s raw text,
    /// for pointing at a bad byte. Approximate for quoted fields with `""`.
    pub fn byte_position_in_field(&self, i: usize, offset: usize) -> (u64, usize) {
        let (line, col) = self.position(i);
        let field = self.field(i);
        let before = &field[..offset.min(field.len())];
        match memchr::memrchr(b'\n', before) {
            Some(nl) => {
                let newlines = before.iter().filter(|&&b| b == b'\n').count() as u64;
                (line + newlines, char_count(&before[nl + 1..]) + 1)
            }
            None => {
                let quoted = self.raw_starts_quoted(i);
                (line, col + char_count(before) + usize::from(quoted))
            }
        }
    }

    fn raw_starts_quoted(&self, i: usize) -> bool {
        let Some(pos) = self.starts.get(i) else {
            return false;
        };
        let idx = (pos.line - self.line) as usize;
        let start = self.line_starts.get(idx).copied().unwrap_or(0) + pos.byte_col - 1;
        self.raw.get(start) == Some(&b'"')
    }

    fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
        self.starts.clear();
        self.raw.clear();
        self.line_starts.clear();
        self.oversized.clear();
    }
}

fn char_count(bytes: &[u8]) -> usize {
    // Count every byte that is not a UTF-8 continuation byte; a stray
    // continuation byte (invalid) still counts as one.
    match std::str::from_utf8(bytes) {
        Ok(s) => s.chars().count(),
        Err(_) => bytes
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80 || b < 0x80)
            .count()
            .max(1),
    }
}

/// A record that could not be read, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: u64,
    pub column: usize,
    pub message: String,
    /// The record's bytes as found in the file.
    pub raw: Vec<u8>,
}

/// What one read produced.
#[derive(Debug)]
pub enum Read {
    Record,
    Bad(SyntaxError),
    Eof,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

/// The strict reader.
pub struct Reader<R> {
    input: R,
    /// Lines pushed back after an unterminated quote, with their numbers
    /// and whether they were cut at the record limit.
    pending: VecDeque<(u64, Vec<u8>, bool)>,
    /// Whether the line in `scratch` was cut at the record limit.
    cut: bool,
    /// Number of the last physical line taken from `input`.
    line_no: u64,
    bytes_read: u64,
    first: bool,
    scratch: Vec<u8>,
}

impl<R: BufRead> Reader<R> {
    pub fn new(input: R) -> Self {
        Reader {
            input,
            pending: VecDeque::new(),
            line_no: 0,
            bytes_read: 0,
            first: true,
            scratch: Vec::new(),
            cut: false,
        }
    }

    /// Bytes consumed from the input so far (for progress bars).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Takes the next physical line into `self.scratch`; returns its number.
    /// A line longer than [`MAX_RECORD_BYTES`] is cut there (`self.cut`)
    /// and the rest of it skipped as it is read, never buffered.
    fn next_line(&mut self) -> std::io::Result<Option<u64>> {
        if let Some((n, line, cut)) = self.pending.pop_front() {
            self.scratch = line;
            self.cut = cut;
            return Ok(Some(n));
        }
        self.scratch.clear();
        self.cut = false;
        let mut n = 0usize;
        loop {
            let buf = match self.input.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                break;
            }
            let (take, done) = match memchr::memchr(b'\n', buf) {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            let room = (MAX_RECORD_BYTES + 1).saturating_sub(self.scratch.len());
            if take > room {
                self.cut = true;
            }
            self.scratch.extend_from_slice(&buf[..take.min(room)]);
            self.input.consume(take);
            n += take;
            if done {
                break;
            }
        }
        if n == 0 {
            return Ok(None);
        }
        self.bytes_read += n as u64;
        if self.first {
            self.first = false;
            if self.scratch.starts_with(b"\xEF\xBB\xBF") {
                self.scratch.drain(..3);
            }
        }
        self.line_no += 1;
        Ok(Some(self.line_no))
    }

    /// A line too long to be a record: reported, not kept (only its first
    /// [`MAX_RECORD_BYTES`] were read into memory).
    fn too_long(&mut self, line: u64) -> Read {
        Read::Bad(SyntaxError {
            line,
            column: 1,
            message: format!(
                "the record is longer than {} MiB, the most a record may be; it is not copied to \
                 the reject file",
                MAX_RECORD_BYTES >> 20
            ),
            raw: Vec::new(),
        })
    }

    /// Reads the next record into `rec`.
    pub fn read(&mut self, rec: &mut Record) -> std::io::Result<Read> {
        'record: loop {
            rec.clear();
            let Some(first_line) = self.next_line()? else {
                return Ok(Read::Eof);
            };
            if self.cut {
                return Ok(self.too_long(first_line));
            }
            if self.scratch.iter().all(|&b| b == b'\n' || b == b'\r') {
                continue 'record; // blank line
            }
            rec.line = first_line;
            let mut state = State::FieldStart;
            let mut line = first_line;
            let mut lines: Vec<(u64, Vec<u8>, bool)> = Vec::new();
            let mut quote_open = Pos { line, byte_col: 1 };
            // The quote that was open when the record first crossed a line end.
            let mut first_open = quote_open;
            loop {
                let line_offset = rec.raw.len();
                rec.line_starts.push(line_offset);
                rec.raw.extend_from_slice(&self.scratch);
                let bytes = std::mem::take(&mut self.scratch);
                let mut i = 0;
                let n = bytes.len();
                while i < n {
                    let b = bytes[i];
                    let col = i + 1;
                    match state {
                        State::FieldStart => {
                            if b == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                                i += 1;
                                continue;
                            }
                            rec.starts.push(Pos {
                                line,
                                byte_col: col,
                            });
                            match b {
                                b'"' => {
                                    quote_open = Pos {
                                        line,
                                        byte_col: col,
                                    };
                                    state = State::Quoted;
                                }
                                b',' => {
                                    rec.end_field();
                                }
                                b'\n' => {
                                    rec.end_field();
                                    self.scratch = bytes;
                                    return Ok(Read::Record);
                                }
                                _ => {
                                    rec.data.push(b);
                                    state = State::Unquoted;
                                }
                            }
                        }
                        State::Unquoted => match b {
                            b',' => {
                                rec.end_field();
                                state = State::FieldStart;
                            }
                            b'\n' => {
                                rec.end_field();
                                self.scratch = bytes;
                                return Ok(Read::Record);
                            }
                            b'\r' if bytes.get(i + 1) == Some(&b'\n') => {}
                            b'"' => {
                                self.scratch = bytes;
                                let at = Pos {
                                    line,
                                    byte_col: col,
                                };
                                return Ok(self.bad_quote(rec, first_open, lines, at, "a quote (\") inside an unquoted field; quote the whole field and double the quote"));
                            }
                            _ => rec.data.push(b),
                        },
                        State::Quoted => {
                            if b == b'"' {
                                state = State::QuoteInQuoted;
                            } else {
                                rec.data.push(b);
                            }
                        }
                        State::QuoteInQuoted => match b {
                            b'"' => {
                                rec.data.push(b'"');
                                state = State::Quoted;
                            }
                            b',' => {
                                rec.end_field();
                                state = State::FieldStart;
                            }
                            b'\n' => {
                                rec.end_field();
                                self.scratch = bytes;
                                return Ok(Read::Record);
                            }
                            b'\r' if bytes.get(i + 1) == Some(&b'\n') => {}
                            _ => {
                                self.scratch = bytes;
                                let at = Pos {
                                    line,
                                    byte_col: col,
                                };
                                return Ok(self.bad_quote(rec, first_open, lines, at, "text after a closing quote; a quoted field must end at a comma or the end of the line"));
                            }
                        },
                    }
                    i += 1;
                }
                // The physical line is used up without a record end.
                self.scratch = bytes;
                if state != State::Quoted {
                    // End of file without a final newline: the record ends here.
                    if state == State::FieldStart {
                        rec.starts.push(Pos {
                            line,
                            byte_col: n + 1,
                        });
                    }
                    rec.end_field();
                    return Ok(Read::Record);
                }
                // Inside a quoted field: the record continues on the next line,
                // unless it has grown too long or the file ends.
                let too_long = lines.len() + 1 >= MAX_RECORD_LINES
                    || rec.raw.len() > MAX_RECORD_BYTES
                    || self.cut;
                let next = if too_long { None } else { self.next_line()? };
                if lines.is_empty() {
                    first_open = quote_open;
                }
                match next {
                    Some(n) => {
                        lines.push((n, self.scratch.clone(), self.cut));
                        line = n;
                    }
                    None => return Ok(self.unterminated(rec, first_open, lines, too_long)),
                }
            }
        }
    }

    /// A quote error at `at`. Inside a multi-line record the quote that
    /// opened it is more likely the culprit, so that one is reported.
    fn bad_quote(
        &mut self,
        rec: &mut Record,
        first_open: Pos,
        lines: Vec<(u64, Vec<u8>, bool)>,
        at: Pos,
        message: &str,
    ) -> Read {
        if !lines.is_empty() {
            return self.unterminated(rec, first_open, lines, false);
        }
        let column = rec.char_col(&at);
        let raw = std::mem::take(&mut rec.raw);
        Read::Bad(SyntaxError {
            line: at.line,
            column,
            message: message.into(),
            raw,
        })
    }

    /// Reports the quote opened at `open` as unterminated and queues the
    /// record's later lines to be read again as records of their own, so a
    /// bad quote costs one line, not the rest of the file.
    fn unterminated(
        &mut self,
        rec: &mut Record,
        open: Pos,
        lines: Vec<(u64, Vec<u8>, bool)>,
        too_long: bool,
    ) -> Read {
        let column = rec.char_col(&open);
        let first_len = rec.line_starts.get(1).copied().unwrap_or(rec.raw.len());
        let raw = rec.raw[..first_len].to_vec();
        for (n, l, cut) in lines.into_iter().rev() {
            self.pending.push_front((n, l, cut));
        }
        let message = if too_long {
            format!(
                "unterminated quoted field (no closing quote within {MAX_RECORD_LINES} lines \
                 or {} MiB)",
                MAX_RECORD_BYTES >> 20
            )
        } else {
            "unterminated quoted field: the quote opened here is never closed on this line, \
             and the lines after it do not read as its continuation"
                .into()
        };
        Read::Bad(SyntaxError {
            line: open.line,
            column,
            message,
            raw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &str) -> Vec<Result<Vec<String>, (u64, usize, String)>> {
        let mut r = Reader::new(input.as_bytes());
        let mut rec = Record::default();
        let mut out = Vec::new();
        loop {
            match r.read(&mut rec).unwrap() {
                Read::Eof => break,
                Read::Record => out.push(Ok((0..rec.len())
                    .map(|i| String::from_utf8_lossy(rec.field(i)).into_owned())
                    .collect())),
                Read::Bad(e) => out.push(Err((e.line, e.column, e.message))),
            }
        }
        out
    }

    fn ok(fields: &[&str]) -> Result<Vec<String>, (u64, usize, String)> {
        Ok(fields.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn plain_and_quoted_fields_with_crlf_and_lf_are_read() {
        let got = read_all("a,b,c\r\n\"x, y\",\"say \"\"hi\"\"\",\r\nlast,\"multi\nline\",z");
        assert_eq!(
            got,
            vec![
                ok(&["a", "b", "c"]),
                ok(&["x, y", "say \"hi\"", ""]),
                ok(&["last", "multi\nline", "z"])
            ]
        );
    }

    #[test]
    fn a_byte_order_mark_and_blank_lines_are_skipped() {
        let got = read_all("\u{feff}email,name\n\nx@example.org,X\n");
        assert_eq!(
            got,
            vec![ok(&["email", "name"]), ok(&["x@example.org", "X"])]
        );
    }

    #[test]
    fn a_stray_quote_is_reported_at_its_column_and_reading_goes_on() {
        let got = read_all("a,b\nab\"c,d\ne,f\n");
        assert_eq!(got[0], ok(&["a", "b"]));
        let Err((line, col, msg)) = &got[1] else {
            panic!("{got:?}")
        };
        assert_eq!((*line, *col), (2, 3));
        assert!(msg.contains("inside an unquoted field"));
        assert_eq!(got[2], ok(&["e", "f"]));
    }

    #[test]
    fn text_after_a_closing_quote_is_an_error() {
        let got = read_all("\"ab\"c,d\nx,y\n");
        assert_eq!(got[0], Err((1, 5, "text after a closing quote; a quoted field must end at a comma or the end of the line".into())));
        assert_eq!(got[1], ok(&["x", "y"]));
    }

    #[test]
    fn an_unterminated_quote_loses_only_its_own_line() {
        let got = read_all("a,b\nx,\"open\ny,z\nw,v\n");
        assert_eq!(got[0], ok(&["a", "b"]));
        let Err((line, col, msg)) = &got[1] else {
            panic!("{got:?}")
        };
        assert_eq!((*line, *col), (2, 3));
        assert!(msg.contains("unterminated"), "{msg}");
        assert_eq!(got[2], ok(&["y", "z"]));
        assert_eq!(got[3], ok(&["w", "v"]));
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn an_unclosed_quote_is_blamed_not_the_quote_on_the_next_line() {
        let got = read_all("a,\"open\nb,\"multi\nline\"\nc,d\n");
        let Err((line, col, msg)) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!((*line, *col), (1, 3));
        assert!(msg.contains("unterminated"), "{msg}");
        assert_eq!(got[1], ok(&["b", "multi\nline"]));
        assert_eq!(got[2], ok(&["c", "d"]));
    }

    #[test]
    fn field_positions_count_characters_not_bytes() {
        let mut r = Reader::new("é,\"ü\",x\n".as_bytes());
        let mut rec = Record::default();
        assert!(matches!(r.read(&mut rec).unwrap(), Read::Record));
        assert_eq!(rec.position(0), (1, 1));
        assert_eq!(rec.position(1), (1, 3));
        assert_eq!(rec.position(2), (1, 7));
    }

    #[test]
    fn a_line_over_the_record_limit_is_reported_not_kept_and_reading_goes_on() {
        let mut input = b"a,b\n".to_vec();
        input.extend(std::iter::repeat(b'x').take(MAX_RECORD_BYTES * 3));
        input.extend_from_slice(b",y\nc,d\n");
        let mut r = Reader::new(std::io::BufReader::with_capacity(8192, &input[..]));
        let mut rec = Record::default();
        assert!(matches!(r.read(&mut rec).unwrap(), Read::Record));
        match r.read(&mut rec).unwrap() {
            Read::Bad(e) => {
                assert_eq!((e.line, e.column), (2, 1));
                assert!(e.message.contains("longer than 1 MiB"), "{}", e.message);
                assert!(e.raw.is_empty());
            }
            other => panic!("{other:?}"),
        }
        // Never more than the limit in memory.
        assert!(r.scratch.capacity() <= 2 * MAX_RECORD_BYTES + 8192);
        assert!(matches!(r.read(&mut rec).unwrap(), Read::Record));
        assert_eq!((rec.line, rec.field(0)), (3, &b"c"[..]));
        assert_eq!(r.bytes_read(), input.len() as u64);
    }

    #[test]
    fn a_field_over_the_field_limit_is_cut_and_marked() {
        let mut input = b"a,".to_vec();
        input.extend(std::iter::repeat(b'x').take(MAX_FIELD_BYTES + 10));
        input.extend_from_slice(b",z\n");
        let mut r = Reader::new(&input[..]);
        let mut rec = Record::default();
        assert!(matches!(r.read(&mut rec).unwrap(), Read::Record));
        assert_eq!(rec.oversized(1), Some(MAX_FIELD_BYTES + 10));
        assert_eq!(rec.field(1).len(), MAX_FIELD_BYTES);
        assert_eq!((rec.oversized(0), rec.field(2)), (None, &b"z"[..]));
    }

    #[test]
    fn a_trailing_empty_field_at_end_of_file_is_kept() {
        assert_eq!(read_all("a,"), vec![ok(&["a", ""])]);
        assert_eq!(read_all("a,\"\""), vec![ok(&["a", ""])]);
    }
}
