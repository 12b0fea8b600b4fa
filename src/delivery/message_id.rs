//! Message-IDs that cannot be guessed.
//!
//! A bounce that quotes the original Message-ID is matched to its delivery
//! through `deliveries.message_id`. Anyone who received one newsletter sees
//! its Message-ID, so if the others could be derived from it (a counter, a
//! timestamp), a forged bounce could name any of them. Each Message-ID is
//! therefore `<` 32 lower-case hex digits `@domain>`: 128 bits from the
//! operating system's CSPRNG, one draw per message.
//!
//! [`is_random`] tells these apart from the Message-IDs of older versions
//! (`<nonce.SEQ.issue@domain>`, which were guessable), so that only a match
//! by a random one counts as verified.

use ring::rand::{SecureRandom, SystemRandom};

/// Bytes of randomness in a Message-ID (128 bits; the rule is at least 96).
pub const RANDOM_BYTES: usize = 16;

/// A new random Message-ID for `domain`, with angle brackets.
pub fn random(domain: &str) -> String {
    let mut bytes = [0u8; RANDOM_BYTES];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random number generator failed");
    let mut out = String::with_capacity(2 * RANDOM_BYTES + domain.len() + 3);
    out.push('<');
    for b in bytes {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
    }
    out.push('@');
    out.push_str(domain);
    out.push('>');
    out
}

/// Whether `message_id` (with or without angle brackets) has the form
/// [`random`] makes.
pub fn is_random(message_id: &str) -> bool {
    let bare = message_id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    bare.split_once('@').is_some_and(|(local, domain)| {
        local.len() == 2 * RANDOM_BYTES
            && local
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            && !domain.is_empty()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_id_is_128_random_bits_at_the_domain() {
        let a = random("news.example.com");
        let b = random("news.example.com");
        assert_ne!(a, b);
        assert!(
            a.starts_with('<') && a.ends_with("@news.example.com>"),
            "{a}"
        );
        assert_eq!(a.len(), 1 + 32 + 1 + "news.example.com".len() + 1);
        assert!(is_random(&a) && is_random(b.trim_matches(['<', '>'])));
        // 1,000 of them share no prefix longer than chance allows.
        let ids: std::collections::HashSet<String> = (0..1000)
            .map(|_| random("example.org")[1..9].to_string())
            .collect();
        assert!(ids.len() > 990, "{}", ids.len());
    }

    #[test]
    fn the_old_sequential_form_and_others_are_not_random() {
        for old in [
            "<18c2f4a9e1b2c3d4e5.17.214@news.example.com>",
            "<c12.r4711@example.org>",
            "<0123456789abcdef0123456789abcdef>",
            "<0123456789ABCDEF0123456789ABCDEF@example.org>",
            "<0123456789abcdef0123456789abcde@example.org>",
            "",
        ] {
            assert!(!is_random(old), "{old}");
        }
    }
}
