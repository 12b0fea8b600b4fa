//! Plain types parsed at the edge. This module knows nothing of the database,
//! SMTP or HTTP: a value of these types has been validated once and can be
//! trusted everywhere else.

pub mod address;
pub mod country;
pub mod email;
pub mod kinds;
pub mod segment;

pub use address::check_salutation;
pub use country::{CountryCode, CountryError};
pub use email::{EmailAddress, EmailError};
pub use kinds::{
    CampaignState, ContactStatus, DeliveryStatus, Language, LanguageError, OrgKind, Relationship,
    TimeZone, TimeZoneError, UnknownWord,
};

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
