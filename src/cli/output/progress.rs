//! Progress bars on stderr, only when it is a terminal. They fit the
//! terminal's width (the bar takes what the text leaves) and show rates
//! rounded (`25/s`, `3.4/s`), never `24.2582/s`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// Below this many columns the message after the counts is left out.
const ROOM_FOR_MESSAGE: usize = 72;

/// A rate for people: whole numbers from 10 up, one decimal below.
pub fn rate(per_sec: f64) -> String {
    if !per_sec.is_finite() || per_sec <= 0.0 {
        "0/s".into()
    } else if per_sec >= 10.0 {
        format!("{per_sec:.0}/s")
    } else {
        format!("{per_sec:.1}/s")
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&rate(s.per_sec()));
        })
        .with_key(
            "byte_rate",
            |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}/s", indicatif::HumanBytes(s.per_sec().round() as u64));
            },
        )
        .progress_chars("=> ")
}

fn stderr_width() -> usize {
    console::Term::stderr()
        .size_checked()
        .map(|(_, cols)| cols as usize)
        .unwrap_or(80)
}

/// A progress bar for reading a file of `len` bytes, or a spinner counting
/// rows when the length is unknown; `None` when stderr is not a terminal.
pub fn progress(len: Option<u64>, what: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match len {
        Some(n) => ProgressBar::new(n).with_style(style(
            "{msg} [{wide_bar}] {bytes}/{total_bytes} {byte_rate} eta {eta}",
        )),
        None => ProgressBar::new_spinner().with_style(style("{msg} {pos} rows {rate}")),
    };
    bar.set_message(what.to_string());
    Some(bar)
}

/// The bar of `whatsup send`: messages done of `total`, the rate, the
/// estimated time left, and a short message (failures, retries) when the
/// terminal has room for it.
pub fn send_bar(total: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    Some(ProgressBar::new(total).with_style(send_style(stderr_width())))
}

fn send_style(width: usize) -> ProgressStyle {
    style(if width >= ROOM_FOR_MESSAGE {
        "sending [{wide_bar}] {pos}/{len} {rate} eta {eta} {msg}"
    } else {
        "[{wide_bar}] {pos}/{len} {rate}"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_rounded_for_people() {
        assert_eq!(rate(24.2582), "24/s");
        assert_eq!(rate(3.4567), "3.5/s");
        assert_eq!(rate(0.0), "0/s");
        assert_eq!(rate(f64::NAN), "0/s");
        assert_eq!(rate(1234.6), "1235/s");
    }

    /// A terminal of a given width that records what is drawn.
    #[derive(Debug)]
    struct Screen {
        width: u16,
        text: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            self.width
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.text.lock().unwrap().push(s.to_string());
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_send_bar_fits_the_terminal_width_with_large_counts() {
        for width in [40u16, 60, 80, 120] {
            let text = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let target = indicatif::ProgressDrawTarget::term_like(Box::new(Screen {
                width,
                text: text.clone(),
            }));
            let bar = ProgressBar::with_draw_target(Some(123_456), target)
                .with_style(send_style(width as usize));
            bar.set_message("1234 failed, 56789 retry");
            bar.set_position(98_765);
            bar.tick();
            let drawn = text.lock().unwrap().clone();
            assert!(!drawn.is_empty(), "nothing drawn at {width}");
            for line in drawn {
                let shown = console::strip_ansi_codes(&line);
                assert!(
                    unicode_width::UnicodeWidthStr::width(shown.as_ref()) <= width as usize,
                    "{width} columns: {shown:?}"
                );
            }
        }
    }
}
