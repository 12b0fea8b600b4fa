//! The per-recipient secrets and signatures a message carries: the signed
//! token in its links, the VERP envelope sender, the signed
//! `X-Whatsup-Delivery` header, and the DKIM signature.
//! Built once per worker from the config; the keys are parsed once.

use anyhow::{anyhow, Context, Result};

use crate::compose::LinkTokens;
use crate::config::Config;
use crate::delivery::dkim::{DkimConfig, Signer};
use crate::delivery::tokens::{Claims, Purpose, TokenKeys};
use crate::delivery::verp::Verp;

/// Tokens, VERP and DKIM for one worker.
pub struct Identity {
    keys: TokenKeys,
    verp: Option<Verp>,
    dkim: Option<Signer>,
    from_address: String,
}

impl Identity {
    pub fn from_config(config: &Config) -> Result<Identity> {
        let keys = token_keys(config)?;
        let verp = if config.sending.bounce_address.is_empty() {
            None
        } else {
            Some(
                Verp::new(&config.sending.bounce_address, keys.clone())
                    .context("sending.bounce_address")?,
            )
        };
        let dkim = if config.dkim.enabled {
            let pem = if config.dkim.private_key.is_empty() {
                std::fs::read_to_string(&config.dkim.key_file).with_context(|| {
                    format!("reading dkim.key_file {}", config.dkim.key_file.display())
                })?
            } else {
                config.dkim.private_key.expose().to_string()
            };
            Some(
                Signer::new(&DkimConfig {
                    domain: config.dkim.domain.clone(),
                    selector: config.dkim.selector.clone(),
                    algorithm: config.dkim.algorithm.parse()?,
                    private_key_pem: pem,
                })
                .context("dkim")?,
            )
        } else {
            None
        };
        Ok(Identity {
            keys,
            verp,
            dkim,
            from_address: config.newsletter.from_address.clone(),
        })
    }

    /// The signed tokens for a recipient's three links, one per purpose
    /// (three HMACs), so that a forwarded view-in-browser link cannot
    /// unsubscribe anyone.
    pub fn link_tokens(&self, campaign: i64, contact: i64) -> LinkTokens {
        link_tokens(&self.keys, campaign, contact)
    }

    /// The value of the `X-Whatsup-Delivery` header: a signed
    /// [`Purpose::Delivery`] token naming the campaign and the contact, so
    /// that a complaint quoting the header can be trusted and a forged one
    /// cannot name anyone else (see docs/bounces.md, "Forged bounces").
    pub fn delivery_header(&self, campaign: i64, contact: i64) -> String {
        self.keys.sign(&Claims {
            purpose: Purpose::Delivery,
            contact_id: contact as u64,
            campaign_id: campaign as u64,
        })
    }

    /// The envelope sender: VERP when a bounce address is configured.
    pub fn envelope_from(&self, campaign: i64, contact: i64) -> Result<String> {
        match &self.verp {
            Some(v) => Ok(v.envelope_sender(campaign as u64, contact as u64)?),
            None => Ok(self.from_address.clone()),
        }
    }

    /// The message with its DKIM-Signature, when DKIM is enabled.
    pub fn sign(&self, message: Vec<u8>) -> Result<Vec<u8>> {
        match &self.dkim {
            Some(s) => Ok(s.sign(&message)?),
            None => Ok(message),
        }
    }

    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }
}

/// The tokens of a recipient's links, signed with `keys`.
pub fn link_tokens(keys: &TokenKeys, campaign: i64, contact: i64) -> LinkTokens {
    let sign = |purpose| {
        keys.sign(&Claims {
            purpose,
            contact_id: contact as u64,
            campaign_id: campaign as u64,
        })
    };
    LinkTokens {
        campaign,
        unsubscribe: sign(Purpose::Unsubscribe),
        preferences: sign(Purpose::Preferences),
        browser: sign(Purpose::Browser),
    }
}

/// The token secrets from the config, or an error saying how to set them.
pub fn token_keys(config: &Config) -> Result<TokenKeys> {
    let secret = config.security.token_secret.expose();
    if secret.is_empty() {
        return Err(anyhow!(
            "security.token_secret is empty: set WHATSUP_SECURITY_TOKEN_SECRET to at least 32 random bytes \
             (e.g. `openssl rand -base64 48`); it signs every unsubscribe link"
        ));
    }
    let previous: Vec<&str> = config
        .security
        .previous_token_secrets
        .iter()
        .map(|s| s.expose())
        .collect();
    TokenKeys::new(secret, &previous).context("security.token_secret")
}
