//! VERP envelope senders: `bounces+TOKEN@example.org`.
//!
//! Each message goes out with its own envelope sender (MAIL FROM, later the
//! Return-Path), so a bounce that comes back to it names the campaign and the
//! contact it was for, even when the bounce message itself is unreadable.
//!
//! The part after the `+` is a [`Purpose::Bounce`] token from
//! [`tokens`](super::tokens), encoded as lower-case base32: it consists only
//! of `[a-z2-7]`, survives mail systems that change the case of addresses,
//! and cannot be forged, so a stranger cannot make whatsup record bounces for
//! arbitrary contacts. For campaign ids below 16,384 and contact ids below
//! 2,097,152 it is at most 39 characters, so the local part is at most
//! `bounces+` plus 39 = 47 octets, under the SMTP limit of 64.
//!
//! The receiving MTA must deliver `bounces+anything@domain` to the bounce
//! mailbox: Postfix does this with `recipient_delimiter = +`.

use super::tokens::{Claims, Purpose, TokenError, TokenKeys};
use crate::domain::{EmailAddress, EmailError};

/// The separator between the bounce mailbox and the token.
pub const SEPARATOR: char = '+';

/// RFC 5321 4.5.3.1.1: a local part is at most 64 octets.
pub const MAX_LOCAL_PART_LEN: usize = 64;

/// The campaign and contact a VERP address was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BounceTarget {
    pub campaign_id: u64,
    pub contact_id: u64,
}

/// Why a VERP address could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerpError {
    #[error("the bounce address is not a valid address: {0}")]
    BadBounceAddress(EmailError),
    #[error(
        "the bounce address's local part may hold only letters, digits, '.', '_' and '-' \
         (and no '{SEPARATOR}')"
    )]
    BadBounceLocalPart,
    #[error("the VERP local part would be {0} octets, more than the 64 SMTP allows")]
    LocalPartTooLong(usize),
    #[error("the address is not a VERP address of the bounce mailbox")]
    NotVerp,
    #[error("the VERP token is not valid: {0}")]
    BadToken(TokenError),
}

/// Makes and reads VERP addresses for one bounce mailbox.
#[derive(Debug, Clone)]
pub struct Verp {
    local: String,
    domain: String,
    keys: TokenKeys,
}

impl Verp {
    /// A VERP scheme for `bounce_address` (e.g. `bounces@example.org`),
    /// signing with `keys`. The address is normalised to lower case.
    pub fn new(bounce_address: &str, keys: TokenKeys) -> Result<Self, VerpError> {
        let address = EmailAddress::parse(bounce_address).map_err(VerpError::BadBounceAddress)?;
        let local = address.local_part();
        if !local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(VerpError::BadBounceLocalPart);
        }
        Ok(Verp {
            local: local.to_string(),
            domain: address.domain().to_string(),
            keys,
        })
    }

    /// The envelope sender for one message:
    /// `<local>+<token>@<domain>`.
    pub fn envelope_sender(&self, campaign_id: u64, contact_id: u64) -> Result<String, VerpError> {
        let token = self.keys.sign_base32(&Claims {
            purpose: Purpose::Bounce,
            contact_id,
            campaign_id,
        });
        let local_len = self.local.len() + SEPARATOR.len_utf8() + token.len();
        if local_len > MAX_LOCAL_PART_LEN {
            return Err(VerpError::LocalPartTooLong(local_len));
        }
        Ok(format!("{}{SEPARATOR}{token}@{}", self.local, self.domain))
    }

    /// Reads back an address made by [`envelope_sender`](Self::envelope_sender),
    /// as found in a bounce (the recipient of the DSN). White space and one
    /// pair of angle brackets around it are ignored, and so is letter case.
    pub fn parse(&self, address: &str) -> Result<BounceTarget, VerpError> {
        let address = address.trim();
        let address = address
            .strip_prefix('<')
            .and_then(|a| a.strip_suffix('>'))
            .unwrap_or(address);
        let (local, domain) = address.rsplit_once('@').ok_or(VerpError::NotVerp)?;
        if !domain.eq_ignore_ascii_case(&self.domain) {
            return Err(VerpError::NotVerp);
        }
        let (mailbox, token) = local.split_once(SEPARATOR).ok_or(VerpError::NotVerp)?;
        if !mailbox.eq_ignore_ascii_case(&self.local) {
            return Err(VerpError::NotVerp);
        }
        let claims = self
            .keys
            .verify_base32_for(Purpose::Bounce, token)
            .map_err(VerpError::BadToken)?;
        Ok(BounceTarget {
            campaign_id: claims.campaign_id,
            contact_id: claims.contact_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(&b"verp test secret, at least 32 bytes long"[..], &[]).unwrap()
    }

    fn verp() -> Verp {
        Verp::new("bounces@example.org", keys()).unwrap()
    }

    #[test]
    fn an_envelope_sender_is_the_bounce_mailbox_plus_a_token() {
        // Ids below 16,384 (campaign) and 2,097,152 (contact): 39 characters.
        let sender = verp().envelope_sender(9_999, 2_000_000).unwrap();
        let (local, domain) = sender.rsplit_once('@').unwrap();
        assert_eq!(domain, "example.org");
        let token = local.strip_prefix("bounces+").unwrap();
        assert_eq!(token.len(), 39);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        assert!(local.len() <= MAX_LOCAL_PART_LEN);
        // And it is a valid address by whatsup's own rules.
        assert!(EmailAddress::parse(&sender).is_ok());
    }

    #[test]
    fn a_verp_address_parses_back_to_its_campaign_and_contact() {
        let verp = verp();
        for (campaign_id, contact_id) in [(0, 0), (42, 123_456), (9_999, 2_000_000)] {
            let sender = verp.envelope_sender(campaign_id, contact_id).unwrap();
            assert_eq!(
                verp.parse(&sender),
                Ok(BounceTarget {
                    campaign_id,
                    contact_id
                })
            );
        }
    }

    #[test]
    fn parsing_ignores_case_brackets_and_surrounding_space() {
        let verp = verp();
        let sender = verp.envelope_sender(7, 8).unwrap();
        let expected = Ok(BounceTarget {
            campaign_id: 7,
            contact_id: 8,
        });
        assert_eq!(verp.parse(&sender.to_uppercase()), expected);
        assert_eq!(verp.parse(&format!(" <{sender}>\r\n")), expected);
        let normalised = EmailAddress::parse(&sender.to_uppercase()).unwrap();
        assert_eq!(verp.parse(normalised.as_str()), expected);
    }

    #[test]
    fn a_bounce_address_given_in_capitals_is_normalised() {
        let verp = Verp::new("Bounces@Example.ORG", keys()).unwrap();
        let sender = verp.envelope_sender(1, 2).unwrap();
        assert!(sender.starts_with("bounces+"));
        assert!(sender.ends_with("@example.org"));
    }

    #[test]
    fn a_tampered_token_is_rejected() {
        let verp = verp();
        let sender = verp.envelope_sender(42, 123_456).unwrap();
        let at = sender.find('@').unwrap();
        for i in "bounces+".len()..at {
            let original = sender.as_bytes()[i];
            let replacement = if original == b'a' { b'b' } else { b'a' };
            let mut tampered = sender.clone().into_bytes();
            tampered[i] = replacement;
            let tampered = String::from_utf8(tampered).unwrap();
            assert!(
                matches!(verp.parse(&tampered), Err(VerpError::BadToken(_))),
                "{tampered} was accepted"
            );
        }
    }

    #[test]
    fn an_address_of_another_mailbox_or_domain_is_not_verp() {
        let verp = verp();
        let sender = verp.envelope_sender(1, 2).unwrap();
        let token = sender
            .strip_prefix("bounces+")
            .and_then(|s| s.strip_suffix("@example.org"))
            .unwrap();
        for other in [
            format!("bounces+{token}@example.net"),
            format!("postmaster+{token}@example.org"),
            "bounces@example.org".to_string(),
            format!("bounces+{token}"),
            String::new(),
        ] {
            assert_eq!(verp.parse(&other), Err(VerpError::NotVerp), "{other}");
        }
    }

    #[test]
    fn a_token_of_another_purpose_or_key_is_rejected() {
        let verp = verp();
        let unsubscribe = keys().sign_base32(&Claims {
            purpose: Purpose::Unsubscribe,
            contact_id: 2,
            campaign_id: 1,
        });
        assert!(matches!(
            verp.parse(&format!("bounces+{unsubscribe}@example.org")),
            Err(VerpError::BadToken(TokenError::WrongPurpose { .. }))
        ));
        let other_keys =
            TokenKeys::new(&b"another secret, also at least 32 bytes"[..], &[]).unwrap();
        let foreign = Verp::new("bounces@example.org", other_keys)
            .unwrap()
            .envelope_sender(1, 2)
            .unwrap();
        assert!(matches!(verp.parse(&foreign), Err(VerpError::BadToken(_))));
    }

    #[test]
    fn a_local_part_over_64_octets_is_refused() {
        let verp = Verp::new("a-rather-long-bounce-mailbox-name@example.org", keys()).unwrap();
        assert!(matches!(
            verp.envelope_sender(1, 2),
            Err(VerpError::LocalPartTooLong(len)) if len > 64
        ));
        // Even the shortest mailbox cannot carry the largest ids.
        let verp = Verp::new("b@example.org", keys()).unwrap();
        assert!(verp.envelope_sender(u64::MAX, u64::MAX).is_err());
    }

    #[test]
    fn a_bounce_address_with_a_plus_or_an_invalid_form_is_refused() {
        assert_eq!(
            Verp::new("bounces+x@example.org", keys()).unwrap_err(),
            VerpError::BadBounceLocalPart
        );
        assert!(matches!(
            Verp::new("not an address", keys()),
            Err(VerpError::BadBounceAddress(_))
        ));
    }
}
