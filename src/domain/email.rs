//! `EmailAddress`: an address that has been parsed and normalised at the edge.
//!
//! Addresses are compared case-insensitively everywhere in whatsup, so the
//! normal form is the trimmed address with the whole of it lower-cased. The
//! parser accepts the practical subset of RFC 5322 `addr-spec` that mail
//! systems deliver to: a dot-atom local part and a domain of at least two
//! LDH labels (or a Unicode domain, kept as given but lower-cased).

use std::fmt;

/// A syntactically valid, normalised email address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress(String);

/// Why a string is not an acceptable email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("is empty")]
    Empty,
    #[error("is longer than 254 characters")]
    TooLong,
    #[error("has no '@'")]
    NoAt,
    #[error("has more than one '@'")]
    ManyAt,
    #[error("has an empty local part (before '@')")]
    EmptyLocal,
    #[error("local part is longer than 64 characters")]
    LocalTooLong,
    #[error("local part has a character not allowed in an address: {0:?}")]
    BadLocalChar(char),
    #[error("local part has a misplaced dot")]
    BadDot,
    #[error("domain {0:?} is not a valid domain name")]
    BadDomain(String),
    #[error("contains white space")]
    Whitespace,
}

impl EmailAddress {
    /// Parses and normalises `input` (surrounding white space is ignored).
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(EmailError::Empty);
        }
        if s.chars().count() > 254 {
            return Err(EmailError::TooLong);
        }
        if s.chars().any(char::is_whitespace) {
            return Err(EmailError::Whitespace);
        }
        let mut parts = s.split('@');
        let local = parts.next().unwrap_or_default();
        let domain = parts.next().ok_or(EmailError::NoAt)?;
        if parts.next().is_some() {
            return Err(EmailError::ManyAt);
        }
        validate_local(local)?;
        validate_domain(domain)?;
        Ok(EmailAddress(s.to_lowercase()))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after the '@'.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
    }

    /// The part before the '@'.
    pub fn local_part(&self) -> &str {
        self.0.split_once('@').map(|(l, _)| l).unwrap_or_default()
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

fn validate_local(local: &str) -> Result<(), EmailError> {
    if local.is_empty() {
        return Err(EmailError::EmptyLocal);
    }
    if local.len() > 64 {
        return Err(EmailError::LocalTooLong);
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(EmailError::BadDot);
    }
    for c in local.chars() {
        let ok = c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c) || !c.is_ascii();
        if !ok || c.is_control() {
            return Err(EmailError::BadLocalChar(c));
        }
    }
    Ok(())
}

fn validate_domain(domain: &str) -> Result<(), EmailError> {
    let bad = || EmailError::BadDomain(domain.to_string());
    if domain.is_empty() || domain.len() > 253 || domain.ends_with('.') {
        return Err(bad());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(bad());
    }
    for label in &labels {
        if label.is_empty() || label.len() > 63 || label.starts_with('-') || label.ends_with('-') {
            return Err(bad());
        }
        if !label.chars().all(|c| {
            c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && c.is_alphanumeric())
        }) {
            return Err(bad());
        }
    }
    let tld = labels[labels.len() - 1];
    if tld.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    Ok(())
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for EmailAddress {
    type Err = EmailError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_addresses_are_normalised_to_lower_case() {
        let e = EmailAddress::parse("  Anna.Schmidt@Example.ORG ").unwrap();
        assert_eq!(e.as_str(), "anna.schmidt@example.org");
        assert_eq!(e.domain(), "example.org");
        assert_eq!(e.local_part(), "anna.schmidt");
        assert!(EmailAddress::parse("press+tokyo@mission.example.net").is_ok());
        assert!(EmailAddress::parse("o'brien@example.com").is_ok());
    }

    #[test]
    fn malformed_addresses_are_rejected_with_a_reason() {
        assert_eq!(EmailAddress::parse(""), Err(EmailError::Empty));
        assert_eq!(
            EmailAddress::parse("nobody.example.org"),
            Err(EmailError::NoAt)
        );
        assert_eq!(
            EmailAddress::parse("a@b@example.org"),
            Err(EmailError::ManyAt)
        );
        assert_eq!(
            EmailAddress::parse("@example.org"),
            Err(EmailError::EmptyLocal)
        );
        assert_eq!(
            EmailAddress::parse(".a@example.org"),
            Err(EmailError::BadDot)
        );
        assert_eq!(
            EmailAddress::parse("a..b@example.org"),
            Err(EmailError::BadDot)
        );
        assert_eq!(
            EmailAddress::parse("a b@example.org"),
            Err(EmailError::Whitespace)
        );
        assert!(matches!(
            EmailAddress::parse("a@localhost"),
            Err(EmailError::BadDomain(_))
        ));
        assert!(matches!(
            EmailAddress::parse("a@-x.example.org"),
            Err(EmailError::BadDomain(_))
        ));
        assert!(matches!(
            EmailAddress::parse("a@example..org"),
            Err(EmailError::BadDomain(_))
        ));
        assert!(matches!(
            EmailAddress::parse("a(b)@example.org"),
            Err(EmailError::BadLocalChar('('))
        ));
    }
}
