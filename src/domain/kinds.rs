//! Small closed vocabularies of the data model: organisation kinds, city
//! relationships, contact statuses, campaign and delivery states, plus the time-zone and language types.
//!
//! Each parses from the exact lower-case word used in CSV files, the CLI and
//! the database, and displays back as that word.

use std::fmt;

/// Defines a closed enum that round-trips through one lower-case word.
macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal, { $($variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }

            pub fn parse(input: &str) -> Result<Self, UnknownWord> {
                match input.trim().to_ascii_lowercase().as_str() {
                    $($word => Ok($name::$variant),)+
                    _ => Err(UnknownWord {
                        what: $what,
                        given: super::excerpt(input.trim()),
                        allowed: &[$($word),+],
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, Self::Err> { Self::parse(s) }
        }
    };
}

/// A word that is not in one of the vocabularies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {given:?} (expected one of: {})", allowed.join(", "))]
pub struct UnknownWord {
    pub what: &'static str,
    pub given: String,
    pub allowed: &'static [&'static str],
}

word_enum!(
    /// What an organisation on the list is.
    OrgKind, "kind", {
        City => "city",
        Embassy => "embassy",
        RepresentativeOffice => "representative_office",
        InternationalOrg => "international_org",
        Other => "other",
    }
);

word_enum!(
    /// The tie between Tokyo and a city or state.
    Relationship, "relationship", {
        Sister => "sister",
        Friendship => "friendship",
        Partner => "partner",
    }
);

word_enum!(
    /// Whether a contact may be mailed. Only `active` contacts receive campaigns.
    ContactStatus, "status", {
        Active => "active",
        Unsubscribed => "unsubscribed",
        Bounced => "bounced",
        Blocklisted => "blocklisted",
    }
);

word_enum!(
    /// Where a campaign is in its life: draft → scheduled → running ⇄ paused →
    /// finished | cancelled. A start that fails the send gate (the preflight
    /// on the exact revision, or a recipient whose message cannot be
    /// rendered) leaves it `blocked`, with the reasons, until it is started,
    /// scheduled or cancelled again.
    CampaignState, "campaign state", {
        Draft => "draft",
        Scheduled => "scheduled",
        Running => "running",
        Paused => "paused",
        Finished => "finished",
        Cancelled => "cancelled",
        Blocked => "blocked",
    }
);

word_enum!(
    /// One recipient's delivery: pending → sending (claimed under a lease) →
    /// sent | retry | failed | skipped.
    DeliveryStatus, "delivery status", {
        Pending => "pending",
        Sending => "sending",
        Sent => "sent",
        Retry => "retry",
        Failed => "failed",
        Skipped => "skipped",
    }
);

/// An IANA time-zone name that chrono-tz knows, e.g. `Europe/Paris`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeZone(pub chrono_tz::Tz);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IANA time zone (e.g. Europe/Paris, America/New_York)")]
pub struct TimeZoneError(pub String);

impl TimeZone {
    pub fn parse(input: &str) -> Result<Self, TimeZoneError> {
        input
            .trim()
            .parse::<chrono_tz::Tz>()
            .map(TimeZone)
            .map_err(|_| TimeZoneError(super::excerpt(input.trim())))
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A preferred-language tag in the BCP 47 shape whatsup needs: a 2–3 letter
/// primary language, optionally followed by subtags (`en`, `fr`, `pt-BR`,
/// `zh-Hant`). Normalised to lower-case language and the subtags' usual case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Language(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a language tag (e.g. en, fr, pt-BR)")]
pub struct LanguageError(pub String);

impl Language {
    pub fn parse(input: &str) -> Result<Self, LanguageError> {
        let s = input.trim().replace('_', "-");
        let err = || LanguageError(super::excerpt(input.trim()));
        let mut out = String::with_capacity(s.len());
        for (i, sub) in s.split('-').enumerate() {
            let ok_chars = sub.chars().all(|c| c.is_ascii_alphanumeric());
            if i == 0 {
                if !(2..=3).contains(&sub.len()) || !sub.chars().all(|c| c.is_ascii_alphabetic()) {
                    return Err(err());
                }
                out.push_str(&sub.to_ascii_lowercase());
                continue;
            }
            if !(2..=8).contains(&sub.len()) || !ok_chars {
                return Err(err());
            }
            out.push('-');
            match sub.len() {
                2 => out.push_str(&sub.to_ascii_uppercase()),
                4 => {
                    let mut cs = sub.chars();
                    if let Some(first) = cs.next() {
                        out.push(first.to_ascii_uppercase());
                    }
                    out.push_str(&cs.as_str().to_ascii_lowercase());
                }
                _ => out.push_str(&sub.to_ascii_lowercase()),
            }
        }
        Ok(Language(out))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_words_round_trip_and_unknown_words_list_the_choices() {
        for k in OrgKind::ALL {
            assert_eq!(OrgKind::parse(k.as_str()).unwrap(), *k);
        }
        assert_eq!(OrgKind::parse(" Embassy ").unwrap(), OrgKind::Embassy);
        let err = OrgKind::parse("consulate").unwrap_err().to_string();
        assert!(err.contains("unknown kind \"consulate\""), "{err}");
        assert!(err.contains("representative_office"), "{err}");
        assert_eq!(
            ContactStatus::parse("bounced").unwrap(),
            ContactStatus::Bounced
        );
        assert!(Relationship::parse("twin").is_err());
    }

    #[test]
    fn time_zones_must_be_iana_names() {
        assert_eq!(
            TimeZone::parse("Europe/Paris").unwrap().name(),
            "Europe/Paris"
        );
        assert!(TimeZone::parse("Europe/Tokio").is_err());
        assert!(TimeZone::parse("").is_err());
    }

    #[test]
    fn language_tags_are_normalised() {
        assert_eq!(Language::parse("pt_br").unwrap().as_str(), "pt-BR");
        assert_eq!(Language::parse("ZH-hant").unwrap().as_str(), "zh-Hant");
        assert_eq!(Language::parse("fr").unwrap().as_str(), "fr");
        assert!(Language::parse("french").is_err());
        assert!(Language::parse("f").is_err());
    }
}
