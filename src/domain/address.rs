//! Forms of address: how a message greets its recipient.
//!
//! The rule (also in docs/issue-format.md, "Greetings"):
//!
//! 1. A contact's **salutation**, when set, is the greeting, as written:
//!    "Your Excellency" becomes "Your Excellency,", "Dear Ambassador Smith"
//!    becomes "Dear Ambassador Smith,". A comma is added only when it does
//!    not already end in punctuation.
//! 2. Otherwise the greeting names the person: the **name first, then the
//!    role**. "Farid Rahimi" with the title "First Secretary (Culture)" is
//!    addressed as "Farid Rahimi, First Secretary (Culture)", never
//!    "First Secretary (Culture) Farid Rahimi". A title that is itself a
//!    form of address (an honorific or a rank used as one: "H.E.",
//!    "Ambassador", "Mayor", "Dr.", "Prof.", "Ms."; see
//!    [`FORMS_OF_ADDRESS`]) stays in front, as it is spoken: "H.E. Amélie
//!    Durand", "Mayor Jordan Lee".
//! 3. Names are used exactly as written: never reordered, shortened or cut
//!    to a first name. Japanese, Chinese and Korean names are written family
//!    name first in their own scripts (山田 花子), and stay so. When both the
//!    name and the role are in one of those scripts, the role follows the
//!    name after a space, as it does in those languages (山田 花子 一等書記官);
//!    there is never a role (nor an honorific) in front of the name.
//!
//! `templates/greeting.txt` puts these into words ("Dear …,") per kind of
//! organisation; an editor may override it.

/// The longest salutation accepted, in characters.
pub const SALUTATION_MAX: usize = 200;

/// Checks a salutation as given in a CSV file or on the command line.
pub fn check_salutation(s: &str) -> Result<(), String> {
    let n = s.chars().count();
    if n > SALUTATION_MAX {
        return Err(format!(
            "the salutation is {n} characters long; at most {SALUTATION_MAX} are allowed"
        ));
    }
    if s.chars().any(char::is_control) {
        return Err("the salutation must be one line without control characters".into());
    }
    Ok(())
}

/// Titles that precede a name as a form of address, compared in lower
/// case; a title made only of these words ("H.E. Dr.") precedes it too.
pub const FORMS_OF_ADDRESS: &[&str] = &[
    "h.e.",
    "his",
    "her",
    "their",
    "excellency",
    "ambassador",
    "mayor",
    "governor",
    "dr",
    "dr.",
    "prof",
    "prof.",
    "professor",
    "mr",
    "mr.",
    "ms",
    "ms.",
    "mrs",
    "mrs.",
    "mx",
    "mx.",
    "sir",
    "dame",
    "hon.",
    "the",
    "honourable",
    "honorable",
    "madam",
    "madame",
    "monsieur",
];

/// Whether a title is a form of address that precedes the name.
pub fn is_form_of_address(title: &str) -> bool {
    let lower = title.trim().to_lowercase();
    let mut words = lower.split_whitespace().peekable();
    words.peek().is_some()
        && words.all(|w| FORMS_OF_ADDRESS.contains(&w))
        && !matches!(lower.as_str(), "the" | "his" | "her" | "their")
}

/// Whether a character belongs to the Han, Hiragana, Katakana or Hangul
/// scripts (the scripts of Chinese, Japanese and Korean names).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF        // Hangul Jamo
        | 0x3005..=0x3007      // 々 〆 〇
        | 0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3130..=0x318F      // Hangul Compatibility Jamo
        | 0x31F0..=0x31FF      // Katakana Phonetic Extensions
        | 0x3400..=0x4DBF      // CJK Extension A
        | 0x4E00..=0x9FFF      // CJK Unified Ideographs
        | 0xA960..=0xA97F      // Hangul Jamo Extended-A
        | 0xAC00..=0xD7AF      // Hangul Syllables
        | 0xD7B0..=0xD7FF      // Hangul Jamo Extended-B
        | 0xF900..=0xFAFF      // CJK Compatibility Ideographs
        | 0xFF66..=0xFF9F      // Halfwidth Katakana
        | 0x20000..=0x3FFFF    // CJK Extensions B and later
    )
}

/// Whether text is written in a CJK script: its first letter is one.
pub fn in_cjk_script(s: &str) -> bool {
    s.chars().find(|c| c.is_alphabetic()).is_some_and(is_cjk)
}

/// The person a greeting names: name first, then role, or a form of
/// address in front (see the module documentation). Empty when both are
/// empty.
pub fn addressee(name: &str, title: &str) -> String {
    let (name, title) = (name.trim(), title.trim());
    match (name.is_empty(), title.is_empty()) {
        (true, true) => String::new(),
        (true, false) => title.to_string(),
        (false, true) => name.to_string(),
        (false, false) if in_cjk_script(name) && in_cjk_script(title) => {
            format!("{name} {title}")
        }
        (false, false) if !in_cjk_script(name) && is_form_of_address(title) => {
            format!("{title} {name}")
        }
        (false, false) => format!("{name}, {title}"),
    }
}

/// The name with a form of address in front when the title is one, else
/// the name alone (a role is left out): "Mayor Jordan Lee", "Danielle
/// Okafor". For greetings that go on after the name ("… and friends in
/// New York,").
pub fn formal_name(name: &str, title: &str) -> String {
    let (name, title) = (name.trim(), title.trim());
    if !name.is_empty() && !in_cjk_script(name) && is_form_of_address(title) {
        format!("{title} {name}")
    } else {
        name.to_string()
    }
}

/// A salutation as the greeting line: as written, with a comma unless it
/// ends in punctuation already. Empty for an empty salutation.
pub fn salutation_line(salutation: &str) -> String {
    let s = salutation.trim();
    match s.chars().last() {
        None => String::new(),
        Some(c) if c.is_alphanumeric() || matches!(c, ')' | '"' | '\'' | '”' | '’') => {
            format!("{s},")
        }
        Some(_) => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_follows_the_name() {
        assert_eq!(
            addressee("Farid Rahimi", "First Secretary (Culture)"),
            "Farid Rahimi, First Secretary (Culture)"
        );
        assert_eq!(addressee("Farid Rahimi", ""), "Farid Rahimi");
        assert_eq!(addressee("", "Press Officer"), "Press Officer");
        assert_eq!(addressee("  ", " "), "");
    }

    #[test]
    fn a_form_of_address_stays_in_front_of_the_name() {
        assert_eq!(addressee("Amélie Durand", "H.E."), "H.E. Amélie Durand");
        assert_eq!(addressee("Jordan Lee", "Mayor"), "Mayor Jordan Lee");
        assert_eq!(addressee("Ana Silva", "H.E. Dr."), "H.E. Dr. Ana Silva");
        assert_eq!(
            addressee("Ana Silva", "Ambassador Extraordinary and Plenipotentiary"),
            "Ana Silva, Ambassador Extraordinary and Plenipotentiary"
        );
        assert_eq!(
            addressee("山田 花子", "Ambassador"),
            "山田 花子, Ambassador"
        );
        assert_eq!(formal_name("Jordan Lee", "Mayor"), "Mayor Jordan Lee");
        assert_eq!(
            formal_name("Danielle Okafor", "Deputy Commissioner"),
            "Danielle Okafor"
        );
    }

    #[test]
    fn cjk_names_keep_their_order_and_take_their_role_after_a_space() {
        assert_eq!(addressee("山田 花子", "一等書記官"), "山田 花子 一等書記官");
        assert_eq!(addressee("김민준", "참사관"), "김민준 참사관");
        assert_eq!(addressee("赵明远", "副主任"), "赵明远 副主任");
        assert_eq!(
            addressee("山田 花子", "First Secretary"),
            "山田 花子, First Secretary"
        );
        assert!(in_cjk_script("やまだ"));
        assert!(!in_cjk_script("Zhao Mingyuan"));
    }

    #[test]
    fn a_salutation_is_used_as_written_with_a_comma_when_it_needs_one() {
        assert_eq!(salutation_line("Your Excellency"), "Your Excellency,");
        assert_eq!(
            salutation_line("Dear Ambassador Smith,"),
            "Dear Ambassador Smith,"
        );
        assert_eq!(salutation_line("Dear friends!"), "Dear friends!");
        assert_eq!(salutation_line(""), "");
    }

    #[test]
    fn salutations_are_one_short_line() {
        assert!(check_salutation("Your Excellency").is_ok());
        assert!(check_salutation("Dear\nSir").is_err());
        assert!(check_salutation(&"x".repeat(201)).is_err());
    }
}
