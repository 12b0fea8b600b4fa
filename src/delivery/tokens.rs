//! Signed per-recipient tokens for unsubscribe, preferences, view-in-browser
//! links, VERP bounce addresses and the `X-Whatsup-Delivery` header, and the
//! per-page form tags of the recipients' forms.
//!
//! A token names one contact (and optionally one campaign) for one purpose,
//! and carries a truncated HMAC-SHA256 tag so that nobody without the secret
//! can forge one or change the ids inside it.
//!
//! # Layout
//!
//! Before encoding, a token is these bytes:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | format version, currently [`VERSION`] |
//! | 1 | [`Purpose`] |
//! | 1 | key id: the first byte of SHA-256 over a label and the secret |
//! | 1–10 | contact id, unsigned LEB128 (shortest form only) |
//! | 1–10 | campaign id, unsigned LEB128 (0 means "no campaign") |
//! | 16 | HMAC-SHA256 tag, truncated to its first 128 bits |
//!
//! The tag is computed over a fixed context label followed by every byte
//! before the tag, so a token signed for one purpose never verifies as
//! another, and the secret cannot be confused with a MAC made elsewhere.
//!
//! # Encodings and length
//!
//! - [`TokenKeys::sign`] gives URL-safe base64 without padding, for links.
//!   With a contact id below 2,097,152 and a campaign id below 16,384 the
//!   token is 24 bytes, which is **32 characters**; the longest possible
//!   token (both ids near `u64::MAX`) is 39 bytes, 52 characters.
//! - [`TokenKeys::sign_base32`] gives lower-case base32 without padding, for
//!   VERP local parts: the same 24 bytes are **39 characters**. Base32 is
//!   case-insensitive, so it survives mail systems (and whatsup's own
//!   [`EmailAddress`](crate::domain::EmailAddress)) lower-casing addresses,
//!   which would destroy a base64 token.
//!
//! # Purposes
//!
//! Each link kind has its own [`Purpose`] rather than one "recipient"
//! purpose. A view-in-browser link is the one most likely to be shared in
//! public (pasted into a chat, forwarded), and it must not let whoever reads
//! it change the recipient's preferences or unsubscribe them. Separate
//! purposes cost nothing in length (the byte is there anyway).
//!
//! # Keys and rotation
//!
//! [`TokenKeys`] signs with the current secret and verifies with the current
//! one or any previous one. A key's id is derived from the secret itself, so
//! the configuration is just a list of secrets with no numbering. To rotate:
//! add a new current secret and move the old one to the previous list; once
//! no mail carrying old tokens is expected to matter, drop it from the list,
//! and its tokens stop verifying. Tokens do not expire on their own: an
//! unsubscribe link must keep working long after the mail was sent.
//!
//! Tags are compared in constant time ([`Mac::verify_truncated_left`]).
//!
//! # Form tags
//!
//! [`TokenKeys::sign_form`] makes a short MAC over a label and some bytes
//! (a page's path), for the hidden field of the recipients' forms. Its
//! signed input starts with the byte `0xff`, which no token's does (their
//! first byte is [`VERSION`]), so a form tag never verifies as a token or
//! the reverse.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::fmt;

/// The token format version written by this code.
pub const VERSION: u8 = 1;

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// Length of the truncated HMAC tag in bytes (128 bits).
const TAG_LEN: usize = 16;

/// Version, purpose and key id.
const HEADER_LEN: usize = 3;

/// Longest unsigned LEB128 encoding of a `u64`.
const MAX_VARINT_LEN: usize = 10;

/// Every MAC starts with this label (domain separation).
const MAC_CONTEXT: &[u8] = b"whatsup/token\0";

/// The key id is derived from this label and the secret.
const KEY_ID_CONTEXT: &[u8] = b"whatsup/token-key-id\0";

const BASE32_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

type HmacSha256 = Hmac<Sha256>;

/// What a token may be used for. A token verifies only as the purpose it was
/// signed for; see [`TokenKeys::verify_for`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// The one-click and the in-body unsubscribe link.
    Unsubscribe,
    /// The link to the preferences page.
    Preferences,
    /// The view-in-browser link.
    Browser,
    /// The VERP envelope sender, mapping a bounce back to its recipient.
    Bounce,
    /// The `X-Whatsup-Delivery` header, mapping a complaint or a bounce
    /// that quotes the original headers back to its recipient.
    Delivery,
}

impl Purpose {
    fn to_byte(self) -> u8 {
        match self {
            Purpose::Unsubscribe => 1,
            Purpose::Preferences => 2,
            Purpose::Browser => 3,
            Purpose::Bounce => 4,
            Purpose::Delivery => 5,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Purpose::Unsubscribe),
            2 => Some(Purpose::Preferences),
            3 => Some(Purpose::Browser),
            4 => Some(Purpose::Bounce),
            5 => Some(Purpose::Delivery),
            _ => None,
        }
    }
}

/// What a token says: who, for which campaign, for what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claims {
    pub purpose: Purpose,
    pub contact_id: u64,
    /// 0 when the token belongs to no campaign.
    pub campaign_id: u64,
}

/// Why a secret was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "a token secret must be at least {MIN_SECRET_LEN} bytes long, this one has {len}; \
         generate one with e.g. `openssl rand -base64 48`"
    )]
    SecretTooShort { len: usize },
}

/// Why a token was not accepted. The variants are for logs; a web page
/// should treat them all alike ("this link is not valid").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not well-formed")]
    Malformed,
    #[error("the token has unsupported format version {0}")]
    UnsupportedVersion(u8),
    #[error("the token has an unknown purpose {0}")]
    UnknownPurpose(u8),
    #[error("the token was signed with a key that is not configured (any more)")]
    UnknownKey,
    #[error("the token's signature does not match")]
    BadSignature,
    #[error("the token is for {actual:?}, not {expected:?}")]
    WrongPurpose { expected: Purpose, actual: Purpose },
}

/// One secret, ready to use: its id and a keyed HMAC state to clone.
#[derive(Clone)]
struct Key {
    id: u8,
    mac: HmacSha256,
}

impl Key {
    fn new(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::SecretTooShort { len: secret.len() });
        }
        let mut hash = Sha256::new();
        hash.update(KEY_ID_CONTEXT);
        hash.update(secret);
        let id = hash.finalize()[0];
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
        mac.update(MAC_CONTEXT);
        Ok(Key { id, mac })
    }

    fn mac_over(&self, signed: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(signed);
        mac
    }
}

/// The token secrets: one current secret that signs, and previous ones that
/// still verify. Build it once and share it; it never prints its secrets.
#[derive(Clone)]
pub struct TokenKeys {
    current: Key,
    previous: Vec<Key>,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys")
            .field("current_key_id", &self.current.id)
            .field(
                "previous_key_ids",
                &self.previous.iter().map(|k| k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl TokenKeys {
    /// Keys from the `current` secret and any `previous` ones, each at least
    /// [`MIN_SECRET_LEN`] bytes.
    pub fn new<S: AsRef<[u8]>>(current: S, previous: &[S]) -> Result<Self, KeyError> {
        Ok(TokenKeys {
            current: Key::new(current.as_ref())?,
            previous: previous
                .iter()
                .map(|s| Key::new(s.as_ref()))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The id of the current key, as written into new tokens.
    pub fn current_key_id(&self) -> u8 {
        self.current.id
    }

    /// Signs `claims` as URL-safe base64 without padding (for links).
    pub fn sign(&self, claims: &Claims) -> String {
        URL_SAFE_NO_PAD.encode(self.sign_bytes(claims))
    }

    /// Signs `claims` as lower-case base32 without padding (for VERP local
    /// parts, where case may not survive).
    pub fn sign_base32(&self, claims: &Claims) -> String {
        base32_encode(&self.sign_bytes(claims))
    }

    /// Verifies a token made by [`sign`](Self::sign) and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Malformed)?;
        self.verify_bytes(&bytes)
    }

    /// Verifies a token made by [`sign_base32`](Self::sign_base32), in any
    /// letter case.
    pub fn verify_base32(&self, token: &str) -> Result<Claims, TokenError> {
        let bytes = base32_decode(token).ok_or(TokenError::Malformed)?;
        self.verify_bytes(&bytes)
    }

    /// Verifies a URL token and checks that it was made for `expected`.
    pub fn verify_for(&self, expected: Purpose, token: &str) -> Result<Claims, TokenError> {
        check_purpose(expected, self.verify(token)?)
    }

    /// Verifies a base32 token and checks that it was made for `expected`.
    pub fn verify_base32_for(&self, expected: Purpose, token: &str) -> Result<Claims, TokenError> {
        check_purpose(expected, self.verify_base32(token)?)
    }

    /// A form tag: the current key's id and a 128-bit MAC over `label` and
    /// `data`, as URL-safe base64 (23 characters). See the module
    /// documentation.
    pub fn sign_form(&self, label: &str, data: &[u8]) -> String {
        let mut out = Vec::with_capacity(1 + TAG_LEN);
        out.push(self.current.id);
        let tag = form_mac(&self.current, label, data).finalize().into_bytes();
        out.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Whether `tag` is a form tag for `label` and `data` made with the
    /// current or a previous key.
    pub fn verify_form(&self, label: &str, data: &[u8], tag: &str) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        let Some((&key_id, mac)) = bytes.split_first() else {
            return false;
        };
        if mac.len() != TAG_LEN {
            return false;
        }
        std::iter::once(&self.current)
            .chain(&self.previous)
            .filter(|k| k.id == key_id)
            .any(|k| form_mac(k, label, data).verify_truncated_left(mac).is_ok())
    }

    fn sign_bytes(&self, claims: &Claims) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 2 * MAX_VARINT_LEN + TAG_LEN);
        out.extend([VERSION, claims.purpose.to_byte(), self.current.id]);
        write_varint(&mut out, claims.contact_id);
        write_varint(&mut out, claims.campaign_id);
        let tag = self.current.mac_over(&out).finalize().into_bytes();
        out.extend_from_slice(&tag[..TAG_LEN]);
        out
    }

    fn verify_bytes(&self, bytes: &[u8]) -> Result<Claims, TokenError> {
        if bytes.len() < HEADER_LEN + 2 + TAG_LEN {
            return Err(TokenError::Malformed);
        }
        let (signed, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        let version = signed[0];
        if version != VERSION {
            return Err(TokenError::UnsupportedVersion(version));
        }
        let purpose = Purpose::from_byte(signed[1]).ok_or(TokenError::UnknownPurpose(signed[1]))?;
        let key_id = signed[2];
        let mut rest = &signed[HEADER_LEN..];
        let contact_id = read_varint(&mut rest).ok_or(TokenError::Malformed)?;
        let campaign_id = read_varint(&mut rest).ok_or(TokenError::Malformed)?;
        if !rest.is_empty() {
            return Err(TokenError::Malformed);
        }

        // Key ids are one byte, so two configured secrets may share one:
        // try every key with the id; the tag decides.
        let mut known_id = false;
        for key in std::iter::once(&self.current).chain(&self.previous) {
            if key.id != key_id {
                continue;
            }
            known_id = true;
            if key.mac_over(signed).verify_truncated_left(tag).is_ok() {
                return Ok(Claims {
                    purpose,
                    contact_id,
                    campaign_id,
                });
            }
        }
        Err(if known_id {
            TokenError::BadSignature
        } else {
            TokenError::UnknownKey
        })
    }
}

/// The MAC of a form tag: `0xff`, the label's length, the label, the data.
fn form_mac(key: &Key, label: &str, data: &[u8]) -> HmacSha256 {
    let mut mac = key.mac.clone();
    mac.update(&[0xff]);
    mac.update(&(label.len() as u64).to_be_bytes());
    mac.update(label.as_bytes());
    mac.update(data);
    mac
}

fn check_purpose(expected: Purpose, claims: Claims) -> Result<Claims, TokenError> {
    if claims.purpose == expected {
        Ok(claims)
    } else {
        Err(TokenError::WrongPurpose {
            expected,
            actual: claims.purpose,
        })
    }
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads one unsigned LEB128 number in its shortest form, advancing `input`.
fn read_varint(input: &mut &[u8]) -> Option<u64> {
    let mut value: u64 = 0;
    for (i, &byte) in input.iter().enumerate().take(MAX_VARINT_LEN) {
        let bits = u64::from(byte & 0x7f);
        let shift = 7 * i as u32;
        if shift == 63 && bits > 1 {
            return None; // overflow
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return None; // not the shortest form
            }
            *input = &input[i + 1..];
            return Some(value);
        }
    }
    None
}

fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity((bytes.len() * 8).div_ceil(5));
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32_ALPHABET[(buffer >> bits) as usize & 31] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32_ALPHABET[(buffer << (5 - bits)) as usize & 31] as char);
    }
    out
}

/// Decodes unpadded base32 in any case. Rejects lengths that no byte string
/// encodes to and non-zero trailing bits, so each byte string has exactly one
/// encoding (up to case).
fn base32_decode(text: &str) -> Option<Vec<u8>> {
    if matches!(text.len() % 8, 1 | 3 | 6) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let value = match c.to_ascii_lowercase() {
            c @ b'a'..=b'z' => c - b'a',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    if buffer & ((1 << bits) - 1) != 0 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET_A: &[u8] = b"test secret A, 32 bytes or longer, for tokens";
    const SECRET_B: &[u8] = b"test secret B, 32 bytes or longer, for tokens";
    const SECRET_C: &[u8] = b"test secret C, 32 bytes or longer, for tokens";

    fn keys(current: &'static [u8], previous: &[&'static [u8]]) -> TokenKeys {
        TokenKeys::new(current, previous).unwrap()
    }

    fn claims() -> Claims {
        Claims {
            purpose: Purpose::Unsubscribe,
            contact_id: 123_456,
            campaign_id: 42,
        }
    }

    /// Every character a URL-safe base64 or a base32 token may contain, and
    /// some it may not.
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=.";

    #[test]
    fn a_signed_token_verifies_to_the_same_claims() {
        let keys = keys(SECRET_A, &[]);
        for purpose in [
            Purpose::Unsubscribe,
            Purpose::Preferences,
            Purpose::Browser,
            Purpose::Bounce,
            Purpose::Delivery,
        ] {
            for (contact_id, campaign_id) in [(0, 0), (1, 0), (123_456, 42), (u64::MAX, u64::MAX)] {
                let claims = Claims {
                    purpose,
                    contact_id,
                    campaign_id,
                };
                assert_eq!(keys.verify(&keys.sign(&claims)), Ok(claims));
                assert_eq!(keys.verify_base32(&keys.sign_base32(&claims)), Ok(claims));
            }
        }
    }

    #[test]
    fn a_typical_token_is_32_url_characters_or_39_base32_characters() {
        let keys = keys(SECRET_A, &[]);
        let typical = Claims {
            purpose: Purpose::Unsubscribe,
            contact_id: 2_000_000,
            campaign_id: 16_000,
        };
        let url = keys.sign(&typical);
        let verp = keys.sign_base32(&typical);
        println!(
            "url token {url} ({} chars), base32 {verp} ({} chars)",
            url.len(),
            verp.len()
        );
        assert_eq!(url.len(), 32);
        assert_eq!(verp.len(), 39);
        assert!(url
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert!(verp
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)));
        let largest = Claims {
            purpose: Purpose::Unsubscribe,
            contact_id: u64::MAX,
            campaign_id: u64::MAX,
        };
        assert_eq!(keys.sign(&largest).len(), 52);
    }

    #[test]
    fn every_single_character_change_of_a_url_token_is_rejected() {
        let keys = keys(SECRET_A, &[]);
        let token = keys.sign(&claims());
        let mut tried = 0;
        for i in 0..token.len() {
            for c in ALPHABET.chars() {
                if token[i..].starts_with(c) {
                    continue;
                }
                let mut changed = token.clone();
                changed.replace_range(i..i + 1, c.encode_utf8(&mut [0; 4]));
                assert!(keys.verify(&changed).is_err(), "{changed} was accepted");
                tried += 1;
            }
        }
        assert!(tried > 32 * 60);
    }

    #[test]
    fn every_single_character_change_of_a_base32_token_is_rejected_except_case() {
        let keys = keys(SECRET_A, &[]);
        let token = keys.sign_base32(&claims());
        for i in 0..token.len() {
            for c in ALPHABET.chars() {
                if token[i..].starts_with(c.to_ascii_lowercase()) {
                    continue;
                }
                let mut changed = token.clone();
                changed.replace_range(i..i + 1, c.encode_utf8(&mut [0; 4]));
                assert!(
                    keys.verify_base32(&changed).is_err(),
                    "{changed} was accepted"
                );
            }
        }
        assert_eq!(
            keys.verify_base32(&token.to_ascii_uppercase()),
            Ok(claims())
        );
    }

    #[test]
    fn truncated_extended_empty_and_garbage_tokens_are_rejected() {
        let keys = keys(SECRET_A, &[]);
        let token = keys.sign(&claims());
        for len in 0..token.len() {
            assert!(
                keys.verify(&token[..len]).is_err(),
                "prefix of {len} accepted"
            );
        }
        for suffix in ["A", "AA", "AAA", "AAAA"] {
            assert!(keys.verify(&format!("{token}{suffix}")).is_err());
        }
        assert_eq!(keys.verify(""), Err(TokenError::Malformed));
        assert_eq!(keys.verify("not a token!"), Err(TokenError::Malformed));
        assert_eq!(
            keys.verify(&"A".repeat(32)),
            Err(TokenError::UnsupportedVersion(0))
        );
        assert_eq!(keys.verify_base32(""), Err(TokenError::Malformed));
        assert_eq!(keys.verify_base32("garbage!"), Err(TokenError::Malformed));
    }

    #[test]
    fn a_token_of_another_version_is_rejected_even_with_a_valid_tag() {
        let keys = keys(SECRET_A, &[]);
        let mut bytes = keys.sign_bytes(&claims());
        bytes[0] = 2;
        let len = bytes.len();
        let tag = keys
            .current
            .mac_over(&bytes[..len - TAG_LEN])
            .finalize()
            .into_bytes();
        bytes[len - TAG_LEN..].copy_from_slice(&tag[..TAG_LEN]);
        let token = URL_SAFE_NO_PAD.encode(&bytes);
        assert_eq!(keys.verify(&token), Err(TokenError::UnsupportedVersion(2)));
    }

    #[test]
    fn a_token_for_one_purpose_is_refused_for_another() {
        let keys = keys(SECRET_A, &[]);
        let browser = Claims {
            purpose: Purpose::Browser,
            ..claims()
        };
        let token = keys.sign(&browser);
        assert_eq!(keys.verify_for(Purpose::Browser, &token), Ok(browser));
        assert_eq!(
            keys.verify_for(Purpose::Unsubscribe, &token),
            Err(TokenError::WrongPurpose {
                expected: Purpose::Unsubscribe,
                actual: Purpose::Browser
            })
        );
        // Flipping the purpose byte breaks the tag.
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        bytes[1] = Purpose::Unsubscribe.to_byte();
        assert_eq!(
            keys.verify(&URL_SAFE_NO_PAD.encode(&bytes)),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn rotated_keys_still_verify_old_tokens_and_sign_with_the_new_one() {
        let old = keys(SECRET_A, &[]);
        let old_token = old.sign(&claims());
        let rotated = keys(SECRET_B, &[SECRET_A]);
        assert_eq!(rotated.verify(&old_token), Ok(claims()));
        let new_token = rotated.sign(&claims());
        assert_ne!(new_token, old_token);
        assert_eq!(rotated.verify(&new_token), Ok(claims()));
        // The old configuration does not know the new key.
        assert!(old.verify(&new_token).is_err());
    }

    #[test]
    fn a_token_signed_by_a_removed_key_is_rejected() {
        let token = keys(SECRET_A, &[]).sign(&claims());
        let without_a = keys(SECRET_B, &[SECRET_C]);
        assert!(without_a.verify(&token).is_err());
    }

    #[test]
    fn a_token_whose_key_id_matches_but_whose_tag_does_not_is_a_bad_signature() {
        let keys_a = keys(SECRET_A, &[]);
        let mut bytes = keys_a.sign_bytes(&claims());
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            keys_a.verify(&URL_SAFE_NO_PAD.encode(&bytes)),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn secrets_shorter_than_32_bytes_are_refused_with_their_length() {
        let err = TokenKeys::new(&b"short"[..], &[]).unwrap_err();
        assert_eq!(err, KeyError::SecretTooShort { len: 5 });
        assert!(err.to_string().contains("at least 32 bytes"));
        let err = TokenKeys::new(SECRET_A, &[&b"0123456789012345678901234567890"[..]]).unwrap_err();
        assert_eq!(err, KeyError::SecretTooShort { len: 31 });
        assert!(TokenKeys::new(&[7u8; 32][..], &[]).is_ok());
    }

    #[test]
    fn debug_output_shows_key_ids_but_not_secrets() {
        let keys = keys(SECRET_A, &[SECRET_B]);
        let debug = format!("{keys:?}");
        assert!(debug.contains("current_key_id"));
        assert!(!debug.contains("secret"));
    }

    #[test]
    fn varints_round_trip_and_reject_overlong_or_overflowing_forms() {
        for value in [0, 1, 127, 128, 16_383, 16_384, u64::MAX / 2, u64::MAX] {
            let mut out = Vec::new();
            write_varint(&mut out, value);
            let mut input = &out[..];
            assert_eq!(read_varint(&mut input), Some(value));
            assert!(input.is_empty());
        }
        assert_eq!(read_varint(&mut &[0x80, 0x00][..]), None);
        let overflowing = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(read_varint(&mut &overflowing[..]), None);
        assert_eq!(read_varint(&mut &[0x80][..]), None);
    }

    #[test]
    fn a_form_tag_verifies_only_for_its_label_and_data_and_known_keys() {
        let keys = keys(SECRET_A, &[SECRET_B]);
        let tag = keys.sign_form("form /p/", b"tokenA");
        assert_eq!(tag.len(), 23);
        assert!(keys.verify_form("form /p/", b"tokenA", &tag));
        assert!(!keys.verify_form("form /u/", b"tokenA", &tag));
        assert!(!keys.verify_form("form /p/", b"tokenB", &tag));
        assert!(!keys.verify_form("form /p/", b"tokenA", &tag[..22]));
        assert!(!keys.verify_form("form /p/", b"tokenA", ""));
        assert!(!keys.verify_form("form /p/", b"tokenA", "not base64!"));
        // The label's length is signed: moving bytes between label and data
        // gives another tag.
        assert!(!keys.verify_form("form /p", b"/tokenA", &tag));
        // Rotation: a tag of the previous key still verifies, one of a
        // forgotten key does not.
        let old = super::TokenKeys::new(SECRET_B, &[]).unwrap();
        assert!(keys.verify_form("x", b"y", &old.sign_form("x", b"y")));
        let other = super::TokenKeys::new(SECRET_C, &[]).unwrap();
        assert!(!keys.verify_form("x", b"y", &other.sign_form("x", b"y")));
        // A token is not a form tag, and a form tag is not a token.
        assert!(keys.verify(&tag).is_err());
        let token = keys.sign(&claims());
        assert!(!keys.verify_form("", b"", &token));
    }

    #[test]
    fn base32_round_trips_every_length_and_rejects_stray_bits() {
        for len in 0..=40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let text = base32_encode(&bytes);
            assert_eq!(base32_decode(&text), Some(bytes));
        }
        // "ab" is one byte with 2 trailing bits; "ad" sets one of them.
        assert!(base32_decode("aa").is_some());
        assert_eq!(base32_decode("ad"), None);
        assert_eq!(base32_decode("a"), None);
    }
}
