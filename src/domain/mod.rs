//! Plain types parsed at the edge. This module knows nothing of the database,
//! SMTP or HTTP: a value of these types has been validated once and can be
//! trusted everywhere else.

pub mod actor;
pub mod address;
pub mod approval;
pub mod country;
pub mod email;
#[macro_use]
pub mod kinds;
pub mod permission;
pub mod segment;

pub use actor::{Account, Actor};
pub use address::check_salutation;
pub use country::{CountryCode, CountryError};
pub use email::{EmailAddress, EmailError};
pub use kinds::{
    CampaignState, ContactStatus, DeliveryStatus, Language, LanguageError, OrgKind, Relationship,
    TimeZone, TimeZoneError, UnknownWord,
};

pub use permission::{allowed, Action, Role};

/// Levenshtein distance between two short strings (for "did you mean").
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// The candidate closest to `word` within two edits (and fewer edits than
/// `word` has characters), for a "did you mean".
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .min()
        .filter(|&(d, _)| d <= 2 && d < word.chars().count())
        .map(|(_, c)| c)
}

/// The most characters of a bad value quoted back in an error message.
pub const QUOTE_CHARS: usize = 200;

/// `s` cut to [`QUOTE_CHARS`] characters, with `…` where it was cut: what
/// an error message may repeat of a value, however long the value.
pub fn excerpt(s: &str) -> String {
    match s.char_indices().nth(QUOTE_CHARS) {
        None => s.to_string(),
        Some((at, _)) => format!("{}…", &s[..at]),
    }
}

/// `s` quoted for an error message: at most [`QUOTE_CHARS`] characters,
/// and the full length when it was cut.
pub fn quote(s: &str) -> String {
    let cut = excerpt(s);
    if cut.len() == s.len() {
        format!("{s:?}")
    } else {
        format!("{cut:?} ({} characters)", s.chars().count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_value_is_quoted_to_two_hundred_characters_with_its_length() {
        assert_eq!(quote("short"), "\"short\"");
        let long = "x".repeat(10_000_000);
        let q = quote(&long);
        assert!(q.len() < 260, "{}", q.len());
        assert!(q.ends_with("…\" (10000000 characters)"), "{q}");
        assert_eq!(excerpt(&"é".repeat(201)).chars().count(), 201);
    }
}
