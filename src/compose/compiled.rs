//! Compile once, render per recipient.
//!
//! [`CompiledIssue::compile`] does all the expensive work once per campaign:
//! Markdown, sanitising, the templates, CSS inlining and quoted-printable
//! encoding. Personal values (the recipient's name, organisation, greeting and
//! the token-bearing links) are rendered into the templates as *slots*:
//! private-use sentinels that the compiled output is split on. For each
//! recipient [`CompiledIssue::render_for`] only fills the slots, encodes those
//! few short values and writes the headers, so a message costs a few
//! microseconds.
//!
//! Because personal values are slots, templates may print them (`{{
//! recipient.name }}`, `{{ links.unsubscribe }}`) but should not branch on or
//! transform them: conditional wording belongs in `greeting.txt`, which is
//! rendered with minijinja per recipient with the real values. A filter that
//! mangles a slot is detected and reported as an error.
//!
//! Merge tags in the issue's own text (see [`super::merge`]) become slots
//! too, each carrying its tag's index so that its default applies when the
//! value is empty. Public copies (the archive, the view in a browser) fill
//! them with neutral words instead of anyone's details.

use std::path::Path;

use chrono::{DateTime, Utc};
use minijinja::{context, Environment, Value};
use serde::Serialize;

use super::error::SourceError;
use super::issue::Issue;
use super::markdown::{self, LinkList, TextLink};
use super::merge;
use super::mime::{self, qp_encode_into};
use super::templates::{self, Sources};
use crate::config::Newsletter;
use crate::domain::{address, OrgKind};
use crate::store::campaigns::Claimed;
use crate::store::Contact;

/// The per-recipient values, one per slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Slot {
    Name,
    Title,
    Email,
    Organisation,
    Kind,
    KindLabel,
    Country,
    CountryName,
    City,
    Salutation,
    Greeting,
    Unsubscribe,
    Preferences,
    Browser,
    /// `{base}/t/c/{campaign}/{token}`: the prefix of tracked links.
    TrackClick,
    /// `{base}/t/o/{campaign}/{token}`: the open-tracking pixel.
    TrackOpen,
}

impl Slot {
    const ALL: [Slot; 16] = [
        Slot::Name,
        Slot::Title,
        Slot::Email,
        Slot::Organisation,
        Slot::Kind,
        Slot::KindLabel,
        Slot::Country,
        Slot::CountryName,
        Slot::City,
        Slot::Salutation,
        Slot::Greeting,
        Slot::Unsubscribe,
        Slot::Preferences,
        Slot::Browser,
        Slot::TrackClick,
        Slot::TrackOpen,
    ];

    fn marker(self) -> String {
        format!("{OPEN}{:02}{CLOSE}", self as u8)
    }

    /// The marker of a merge tag in the issue's text: the slot and the
    /// tag's index.
    fn tag_marker(self, tag: usize) -> String {
        format!("{OPEN}{:02}{SEP}{tag:04}{CLOSE}", self as u8)
    }
}

const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';
/// Between a slot's number and its merge tag's index.
const SEP: char = '\u{E002}';
/// Merge tags one issue may hold (the index has four digits).
const MAX_TAGS: usize = 10_000;

/// A merge tag of the issue's text: its default for an empty value.
#[derive(Debug, Clone)]
struct ContentTag {
    field: merge::Field,
    default: Option<String>,
}

/// Someone a message is rendered for.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Recipient {
    pub email: String,
    pub name: String,
    pub title: String,
    /// The greeting as written, when the contact has one (see
    /// [`crate::domain::address`]).
    pub salutation: String,
    pub organisation: String,
    pub kind: Option<OrgKind>,
    /// ISO 3166 alpha-2 code.
    pub country: String,
    pub city: String,
    /// IANA zone of the recipient's organisation, if known.
    pub timezone: String,
    /// The signed tokens of the recipient's personal links. Signed tokens are
    /// made by the delivery side; any string is accepted here and
    /// percent-encoded.
    pub tokens: LinkTokens,
}

/// The tokens of a recipient's three personal links, each signed for its own
/// purpose so that a forwarded view-in-browser link cannot unsubscribe
/// anyone, and the campaign the view-in-browser link names.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LinkTokens {
    pub campaign: i64,
    /// For `/u/{token}` (unsubscribe, also in List-Unsubscribe).
    pub unsubscribe: String,
    /// For `/p/{token}` (preferences).
    pub preferences: String,
    /// For `/v/{campaign}/{token}` (view in browser).
    pub browser: String,
}

impl LinkTokens {
    /// One string in all three links (previews and tests).
    pub fn same(campaign: i64, token: &str) -> LinkTokens {
        LinkTokens {
            campaign,
            unsubscribe: token.into(),
            preferences: token.into(),
            browser: token.into(),
        }
    }

    /// The stand-in tokens of previews: `preview` in every link.
    pub fn preview() -> LinkTokens {
        LinkTokens::same(0, "preview")
    }
}

/// The URLs of a recipient's personal links.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PersonalLinks {
    pub unsubscribe: String,
    pub preferences: String,
    pub browser: String,
    /// Prefix of the tracked links (`/{n}` is appended); used only when
    /// the issue was compiled with click tracking.
    pub track_click: String,
    /// The open-tracking pixel; used only with open tracking.
    pub track_open: String,
}

/// Optional open and click tracking, off by default (`web.track_opens`,
/// `web.track_clicks`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tracking {
    /// Add a 1×1 pixel at the end of the HTML part.
    pub opens: bool,
    /// Send the HTML part's links to the issue through the signed redirect.
    pub clicks: bool,
}

impl Recipient {
    /// A recipient from a stored contact and its link tokens.
    pub fn from_contact(c: &Contact, tokens: LinkTokens) -> Recipient {
        Recipient {
            email: c.email.clone(),
            name: c.name.clone(),
            title: c.title.clone(),
            salutation: c.salutation.clone(),
            organisation: c.org_name.clone().unwrap_or_default(),
            kind: c.org_kind.as_deref().and_then(|k| OrgKind::parse(k).ok()),
            country: c.org_country.clone().unwrap_or_default(),
            city: c.org_city.clone().unwrap_or_default(),
            timezone: c.org_timezone.clone().unwrap_or_default(),
            tokens,
        }
    }

    /// A recipient from a claimed (or frozen) delivery and its link tokens:
    /// the same fields as [`Recipient::from_contact`], from the queue's row.
    pub fn from_claimed(c: &Claimed, tokens: LinkTokens) -> Recipient {
        Recipient {
            email: c.email.clone(),
            name: c.name.clone(),
            title: c.title.clone(),
            salutation: c.salutation.clone(),
            organisation: c.org_name.clone().unwrap_or_default(),
            kind: c.org_kind.as_deref().and_then(|k| OrgKind::parse(k).ok()),
            country: c.org_country.clone().unwrap_or_default(),
            city: c.org_city.clone().unwrap_or_default(),
            timezone: c.org_timezone.clone().unwrap_or_default(),
            tokens,
        }
    }

    /// Stand-ins that exercise every branch a greeting is likely to have:
    /// each kind of organisation (and none) with a full contact, one without
    /// name or title, one with a salutation and one with a name in Japanese
    /// script. `check` renders the greeting for each.
    pub fn samples() -> Vec<Recipient> {
        let kinds = OrgKind::ALL.iter().copied().map(Some).chain([None]);
        kinds
            .flat_map(|k| {
                let full = Recipient::sample(k);
                let bare = Recipient {
                    name: String::new(),
                    title: String::new(),
                    ..full.clone()
                };
                let saluted = Recipient {
                    salutation: "Your Excellency".into(),
                    ..full.clone()
                };
                let cjk = Recipient {
                    name: "山田 花子".into(),
                    title: "一等書記官".into(),
                    ..full.clone()
                };
                [full, bare, saluted, cjk]
            })
            .collect()
    }

    /// A stand-in used by `check` to exercise the personal templates.
    pub fn sample(kind: Option<OrgKind>) -> Recipient {
        Recipient {
            email: "preview@example.org".into(),
            name: "Alex Example".into(),
            title: "Director".into(),
            salutation: String::new(),
            organisation: match kind {
                Some(OrgKind::Embassy) => "Embassy of Example in Japan".into(),
                Some(OrgKind::City) => "City of Example".into(),
                Some(_) => "Example Office".into(),
                None => String::new(),
            },
            kind,
            country: "FR".into(),
            city: "Paris".into(),
            timezone: "Europe/Paris".into(),
            tokens: LinkTokens::preview(),
        }
    }

    fn country_name(&self) -> &'static str {
        crate::domain::CountryCode::parse(&self.country)
            .map(|c| c.name())
            .unwrap_or("")
    }
}

/// Words for an organisation kind, for templates.
pub fn kind_label(kind: Option<OrgKind>) -> &'static str {
    match kind {
        Some(OrgKind::City) => "City government",
        Some(OrgKind::Embassy) => "Embassy",
        Some(OrgKind::RepresentativeOffice) => "Representative office",
        Some(OrgKind::InternationalOrg) => "International organisation",
        Some(OrgKind::Other) | None => "",
    }
}

/// A piece of a compiled part.
#[derive(Debug, Clone)]
enum Piece {
    /// Static text: the decoded text and its quoted-printable encoding.
    Static { text: String, qp: Vec<u8> },
    /// A personal value; `tag` is the index of the issue text's merge tag
    /// it comes from, if it does (its default applies to an empty value).
    Slot { slot: Slot, tag: Option<u16> },
}

/// One MIME part, compiled.
#[derive(Debug, Clone)]
struct Part {
    pieces: Vec<Piece>,
    encoded_len: usize,
}

impl Part {
    fn split(rendered: &str, file: &str) -> Result<Part, SourceError> {
        let mut pieces = Vec::new();
        let mut rest = rendered;
        let push_static = |pieces: &mut Vec<Piece>, text: &str| {
            if !text.is_empty() {
                let mut qp = Vec::with_capacity(text.len() + text.len() / 8);
                qp_encode_into(text, &mut qp);
                pieces.push(Piece::Static {
                    text: text.to_string(),
                    qp,
                });
            }
        };
        while let Some(i) = rest.find(OPEN) {
            push_static(&mut pieces, &rest[..i]);
            let after = &rest[i + OPEN.len_utf8()..];
            let slot = after
                .get(..2)
                .and_then(|d| d.parse::<usize>().ok())
                .and_then(|n| Slot::ALL.get(n).copied());
            let Some(slot) = slot else {
                return Err(mangled(file));
            };
            let after = &after[2..];
            let (tag, used) = if after.starts_with(CLOSE) {
                (None, 0)
            } else if let Some(digits) = after.strip_prefix(SEP) {
                let tag = digits
                    .get(..4)
                    .and_then(|d| d.parse::<u16>().ok())
                    .filter(|_| digits[4..].starts_with(CLOSE));
                let Some(tag) = tag else {
                    return Err(mangled(file));
                };
                (Some(tag), SEP.len_utf8() + 4)
            } else {
                return Err(mangled(file));
            };
            pieces.push(Piece::Slot { slot, tag });
            rest = &after[used + CLOSE.len_utf8()..];
        }
        if rest.contains(CLOSE) {
            return Err(mangled(file));
        }
        push_static(&mut pieces, rest);
        let encoded_len = pieces
            .iter()
            .map(|p| match p {
                Piece::Static { qp, .. } => qp.len(),
                Piece::Slot { .. } => 64,
            })
            .sum();
        Ok(Part {
            pieces,
            encoded_len,
        })
    }

    fn has_slot(&self, slot: Slot) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Slot { slot: s, .. } if *s == slot))
    }
}

fn mangled(file: &str) -> SourceError {
    SourceError::new(
        file,
        0,
        0,
        "a personal value (recipient.*, links.*, greeting) was changed by a filter or cut; \
         print personal values as they are, and put conditional wording in greeting.txt",
    )
}

/// The values a recipient's slots are filled with.
struct Filled<'c> {
    values: [String; 16],
    /// The issue's merge tags, for their defaults.
    tags: &'c [ContentTag],
    /// A public copy: empty merge tags without a default show neutral
    /// words.
    public: bool,
}

impl Filled<'_> {
    /// What a slot prints: its value, or for a merge tag whose value is
    /// empty, its default (or in a public copy a neutral word).
    fn value(&self, slot: Slot, tag: Option<u16>) -> &str {
        let v = self.values[slot as usize].as_str();
        match tag.and_then(|t| self.tags.get(t as usize)) {
            Some(t) if v.is_empty() => match &t.default {
                Some(d) => d,
                None if self.public => t.field.neutral(),
                None => v,
            },
            _ => v,
        }
    }
}

/// A rendered message: the exact bytes to transmit, and what the envelope needs.
#[derive(Debug, Clone)]
pub struct RenderedMessage {
    pub message_id: String,
    pub from: String,
    pub to: String,
    /// The whole message: headers and body, CRLF line endings.
    pub bytes: Vec<u8>,
}

/// An issue compiled for a campaign; cheap to render per recipient.
pub struct CompiledIssue {
    pub issue: Issue,
    pub subject: String,
    html: Part,
    text: Part,
    /// The text part's numbered links (also in the text itself).
    pub text_links: Vec<TextLink>,
    /// The subject, when it holds merge tags (then it is a header of each
    /// message rather than of all).
    subject_part: Option<Part>,
    /// The merge tags of the issue's text.
    tags: Vec<ContentTag>,
    env: Environment<'static>,
    sources: Sources,
    newsletter: Newsletter,
    /// Headers shared by every message, already encoded and folded.
    common_headers: String,
    boundary: String,
    domain: String,
}

impl std::fmt::Debug for CompiledIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledIssue")
            .field("number", &self.issue.number)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct ArticleCtx {
    id: String,
    heading: String,
    body_html: Value,
    body_text: String,
    image: Option<super::issue::Image>,
    read_more: Option<ReadMoreCtx>,
    when: Option<String>,
    place: Option<String>,
}

#[derive(Serialize)]
struct ReadMoreCtx {
    url: String,
    label: String,
    n: usize,
}

#[derive(Serialize)]
struct SectionCtx {
    id: String,
    title: String,
    articles: Vec<ArticleCtx>,
}

impl CompiledIssue {
    /// Compiles an issue with the newsletter settings. Every template error
    /// names its file, line and column.
    pub fn compile(issue: Issue, newsletter: &Newsletter) -> Result<CompiledIssue, SourceError> {
        CompiledIssue::compile_as(issue, newsletter, false, Tracking::default())
    }

    /// Compiles an issue for sending with open and/or click tracking.
    pub fn compile_tracked(
        issue: Issue,
        newsletter: &Newsletter,
        tracking: Tracking,
    ) -> Result<CompiledIssue, SourceError> {
        CompiledIssue::compile_as(issue, newsletter, false, tracking)
    }

    /// Compiles an issue for the public archive: the templates see `archive`
    /// set to true and leave out the recipient's address and personal links.
    pub fn compile_for_archive(
        issue: Issue,
        newsletter: &Newsletter,
    ) -> Result<CompiledIssue, SourceError> {
        CompiledIssue::compile_as(issue, newsletter, true, Tracking::default())
    }

    fn compile_as(
        issue: Issue,
        newsletter: &Newsletter,
        archive: bool,
        tracking: Tracking,
    ) -> Result<CompiledIssue, SourceError> {
        let tz: chrono_tz::Tz = newsletter.timezone.parse().map_err(|_| {
            SourceError::new(
                "config",
                0,
                0,
                format!(
                    "newsletter.timezone {:?} is not an IANA zone",
                    newsletter.timezone
                ),
            )
        })?;
        let dir = Some(newsletter.templates_dir.as_path()).filter(|d| !d.as_os_str().is_empty());
        if let Some(d) = dir {
            if !d.is_dir() {
                return Err(SourceError::new(
                    d.display().to_string(),
                    0,
                    0,
                    "newsletter.templates_dir is not a directory",
                ));
            }
        }
        let (env, sources) = templates::environment(dir, tz);
        let clean = markdown::sanitizer();
        let mut links = LinkList::default();
        // Merge tags become slot markers before anything else reads the
        // text; Markdown and the templates carry them through.
        let mut tags: Vec<ContentTag> = Vec::new();
        let mut mark = |text: &str| -> String {
            merge::substitute(text, |field, default| {
                let i = tags.len().min(MAX_TAGS - 1);
                tags.push(ContentTag {
                    field,
                    default: default.map(str::to_string),
                });
                field.slot().tag_marker(i)
            })
        };
        let base = newsletter.base_url.trim_end_matches('/');
        let intro = markdown::absolute_media(&mark(&issue.intro), base);
        let intro_html = unescape_markers(&markdown::to_html(&intro, &clean));
        let intro_text = markdown::to_text(&intro, &mut links, 72);
        let mut used_ids = std::collections::HashSet::new();
        let mut unique = |base: String| {
            let mut id = base.clone();
            let mut n = 2;
            while !used_ids.insert(id.clone()) {
                id = format!("{base}-{n}");
                n += 1;
            }
            id
        };
        let mut sections = Vec::new();
        for s in &issue.sections {
            let mut articles = Vec::new();
            for a in &s.articles {
                let body = markdown::absolute_media(&mark(&a.body), base);
                let body_text = markdown::to_text(&body, &mut links, 72);
                let read_more = a.read_more.as_ref().map(|r| ReadMoreCtx {
                    n: links.number(&r.url),
                    url: r.url.clone(),
                    label: mark(r.label.as_deref().unwrap_or("Read more")),
                });
                let image = a.image.as_ref().map(|i| super::issue::Image {
                    src: markdown::absolute_media(&i.src, base),
                    alt: mark(&i.alt),
                    credit: i.credit.as_deref().map(&mut mark),
                    ..i.clone()
                });
                articles.push(ArticleCtx {
                    id: unique(markdown::slug(&merge::strip(&a.heading))),
                    heading: mark(&a.heading),
                    body_html: Value::from_safe_string(unescape_markers(&markdown::to_html(
                        &body, &clean,
                    ))),
                    body_text,
                    image,
                    read_more,
                    when: a.when.clone(),
                    place: a.place.as_deref().map(&mut mark),
                });
            }
            sections.push(SectionCtx {
                id: unique(markdown::slug(&merge::strip(&s.title))),
                title: mark(&s.title),
                articles,
            });
        }
        let subject = mark(&issue.subject);
        let preheader = mark(&issue.preheader);
        if tags.len() > MAX_TAGS {
            return Err(SourceError::new(
                &issue.file,
                0,
                0,
                format!(
                    "the issue has {} merge tags; at most {MAX_TAGS} fit",
                    tags.len()
                ),
            )
            .rule("merge-tag"));
        }
        let base = newsletter.base_url.trim_end_matches('/');
        let recipient = context! {
            name => Slot::Name.marker(),
            title => Slot::Title.marker(),
            email => Slot::Email.marker(),
            organisation => Slot::Organisation.marker(),
            kind => Slot::Kind.marker(),
            kind_label => Slot::KindLabel.marker(),
            country => Slot::Country.marker(),
            country_name => Slot::CountryName.marker(),
            city => Slot::City.marker(),
            salutation => Slot::Salutation.marker(),
        };
        let ctx = context! {
            newsletter => context! {
                name => newsletter.name.clone(),
                from_name => newsletter.from_name.clone(),
                base_url => base.to_string(),
                archive_url => format!("{base}/archive"),
            },
            issue => context! {
                subject => subject.clone(),
                preheader => preheader,
                number => issue.number,
                date => issue.date.format("%Y-%m-%d").to_string(),
                intro_html => Value::from_safe_string(intro_html),
                intro_text => intro_text,
                sections => Value::from_serialize(&sections),
            },
            recipient => recipient,
            greeting => Slot::Greeting.marker(),
            links => context! {
                unsubscribe => Slot::Unsubscribe.marker(),
                preferences => Slot::Preferences.marker(),
                browser => Slot::Browser.marker(),
            },
            text_links => Value::from_serialize(&links.links),
            archive => archive,
        };
        let render = |name: &str| -> Result<String, SourceError> {
            env.get_template(name)
                .and_then(|t| t.render(&ctx))
                .map_err(|e| templates::source_error(&e, &sources, name))
        };
        let html_raw = render("issue.html")?;
        let text_raw = render("issue.txt")?;
        let inliner = css_inline::CSSInliner::options()
            .load_remote_stylesheets(false)
            // @media rules (phones, dark mode) cannot be inlined: keep them
            // in a <style> block in the head.
            .keep_at_rules(true)
            .build();
        let html_inlined = inliner.inline(&html_raw).map_err(|e| {
            SourceError::new(
                sources.path("issue.html"),
                0,
                0,
                format!("CSS inlining failed: {e}"),
            )
        })?;
        let html_inlined = track(html_inlined, &links.links, tracking);
        let html = Part::split(&html_inlined, &sources.path("issue.html"))?;
        let text = Part::split(&text_raw, &sources.path("issue.txt"))?;
        let subject_part = Some(Part::split(&subject, &issue.file)?)
            .filter(|p| p.pieces.iter().any(|p| matches!(p, Piece::Slot { .. })));
        // The personal template must compile; it is rendered per recipient.
        env.get_template("greeting.txt")
            .map_err(|e| templates::source_error(&e, &sources, "greeting.txt"))?;

        let domain = newsletter
            .from_address
            .rsplit_once('@')
            .map(|(_, d)| d.to_string())
            .unwrap_or_else(|| "localhost".into());
        let nonce = format!(
            "{:x}{:x}",
            Utc::now().timestamp_nanos_opt().unwrap_or_default(),
            std::process::id()
        );
        let boundary = format!("=_whatsup_{nonce}");
        let mut common = String::new();
        common.push_str("From: ");
        common.push_str(&mime::mailbox(
            &newsletter.from_name,
            &newsletter.from_address,
        ));
        common.push_str("\r\n");
        if !newsletter.reply_to.is_empty() {
            common.push_str("Reply-To: ");
            common.push_str(&newsletter.reply_to);
            common.push_str("\r\n");
        }
        if subject_part.is_none() {
            common.push_str("Subject: ");
            common.push_str(&mime::encode_unstructured(&issue.subject, 9));
            common.push_str("\r\n");
        }
        common.push_str("MIME-Version: 1.0\r\nList-Id: ");
        common.push_str(&mime::encode_unstructured(&newsletter.name, 9));
        common.push_str(&format!(" <{}>\r\n", newsletter.list_id));
        Ok(CompiledIssue {
            subject: merge::neutral(&issue.subject),
            issue,
            html,
            text,
            text_links: links.links,
            subject_part,
            tags,
            env,
            sources,
            newsletter: newsletter.clone(),
            common_headers: common,
            boundary,
            domain,
        })
    }

    /// Loads and compiles an issue file.
    pub fn from_file(path: &Path, newsletter: &Newsletter) -> Result<CompiledIssue, SourceError> {
        CompiledIssue::compile(Issue::load(path)?, newsletter)
    }

    /// Does the part contain the slot? (`check` uses it for the unsubscribe link.)
    pub fn html_has(&self, slot: Slot) -> bool {
        self.html.has_slot(slot)
    }

    pub fn text_has(&self, slot: Slot) -> bool {
        self.text.has_slot(slot)
    }

    /// The greeting for a recipient, from `greeting.txt`.
    pub fn greeting(&self, r: &Recipient) -> Result<String, SourceError> {
        let ctx = context! {
            recipient => context! {
                name => r.name.as_str(),
                title => r.title.as_str(),
                salutation => r.salutation.as_str(),
                salutation_line => address::salutation_line(&r.salutation),
                addressee => address::addressee(&r.name, &r.title),
                formal_name => address::formal_name(&r.name, &r.title),
                email => r.email.as_str(),
                organisation => r.organisation.as_str(),
                kind => r.kind.map(|k| k.as_str()).unwrap_or(""),
                kind_label => kind_label(r.kind),
                country => r.country.as_str(),
                country_name => r.country_name(),
                city => r.city.as_str(),
                timezone => r.timezone.as_str(),
            },
            newsletter => context! { name => self.newsletter.name.as_str() },
        };
        self.env
            .get_template("greeting.txt")
            .and_then(|t| t.render(ctx))
            .map(|s| s.trim().to_string())
            .map_err(|e| templates::source_error(&e, &self.sources, "greeting.txt"))
    }

    /// The URLs of a recipient's personal links: `/u/{token}`, `/p/{token}`
    /// and `/v/{campaign}/{token}` under `newsletter.base_url`.
    pub fn links(&self, tokens: &LinkTokens) -> PersonalLinks {
        let base = self.newsletter.base_url.trim_end_matches('/');
        PersonalLinks {
            unsubscribe: format!("{base}/u/{}", mime::url_component(&tokens.unsubscribe)),
            preferences: format!("{base}/p/{}", mime::url_component(&tokens.preferences)),
            browser: format!(
                "{base}/v/{}/{}",
                tokens.campaign,
                mime::url_component(&tokens.browser)
            ),
            track_click: format!(
                "{base}/t/c/{}/{}",
                tokens.campaign,
                mime::url_component(&tokens.browser)
            ),
            track_open: format!(
                "{base}/t/o/{}/{}",
                tokens.campaign,
                mime::url_component(&tokens.browser)
            ),
        }
    }

    fn fill(&self, r: &Recipient) -> Result<Filled<'_>, SourceError> {
        self.fill_with(r, self.links(&r.tokens))
    }

    fn fill_with(&self, r: &Recipient, links: PersonalLinks) -> Result<Filled<'_>, SourceError> {
        let PersonalLinks {
            unsubscribe,
            preferences,
            browser,
            track_click,
            track_open,
        } = links;
        Ok(Filled {
            tags: &self.tags,
            public: false,
            values: [
                r.name.clone(),
                r.title.clone(),
                r.email.clone(),
                r.organisation.clone(),
                r.kind.map(|k| k.as_str().to_string()).unwrap_or_default(),
                kind_label(r.kind).to_string(),
                r.country.clone(),
                r.country_name().to_string(),
                r.city.clone(),
                r.salutation.clone(),
                self.greeting(r)?,
                unsubscribe,
                preferences,
                browser,
                track_click,
                track_open,
            ],
        })
    }

    /// The HTML part as the recipient sees it.
    pub fn html_for(&self, r: &Recipient) -> Result<String, SourceError> {
        let f = self.fill(r)?;
        Ok(decoded(&self.html, &f, true))
    }

    /// The HTML part for a recipient, with the personal links replaced by
    /// `links` (the web view and the archive use it).
    pub fn html_with_links(
        &self,
        r: &Recipient,
        links: PersonalLinks,
    ) -> Result<String, SourceError> {
        let f = self.fill_with(r, links)?;
        Ok(decoded(&self.html, &f, true))
    }

    /// The HTML part as a public copy shows it (the archive, the view in a
    /// browser): no one's details, the generic greeting, and the issue
    /// text's merge tags with their defaults or neutral words; `links` are
    /// the page's own.
    pub fn html_public(&self, links: PersonalLinks) -> Result<String, SourceError> {
        let mut f = self.fill_with(&Recipient::default(), links)?;
        f.public = true;
        Ok(decoded(&self.html, &f, true))
    }

    /// The text part as the recipient sees it.
    pub fn text_for(&self, r: &Recipient) -> Result<String, SourceError> {
        let f = self.fill(r)?;
        Ok(decoded(&self.text, &f, false))
    }

    /// The complete message for one recipient, dated now.
    pub fn render_for(&self, r: &Recipient) -> Result<RenderedMessage, SourceError> {
        self.render_for_at(r, Utc::now())
    }

    /// The complete message for one recipient with a given Date header.
    pub fn render_for_at(
        &self,
        r: &Recipient,
        now: DateTime<Utc>,
    ) -> Result<RenderedMessage, SourceError> {
        let f = self.fill(r)?;
        // Random, so that no Message-ID can be guessed from another one
        // (a bounce may be matched by it).
        let message_id = crate::delivery::message_id::random(&self.domain);
        let mut out: Vec<u8> =
            Vec::with_capacity(self.html.encoded_len + self.text.encoded_len + 2048);
        let mut h = String::with_capacity(1024);
        h.push_str("Date: ");
        h.push_str(&now.to_rfc2822());
        h.push_str("\r\n");
        h.push_str(&self.common_headers);
        if let Some(subject) = &self.subject_part {
            h.push_str("Subject: ");
            h.push_str(&mime::encode_unstructured(&decoded(subject, &f, false), 9));
            h.push_str("\r\n");
        }
        h.push_str("To: ");
        h.push_str(&mime::mailbox(&r.name, &r.email));
        h.push_str("\r\nMessage-ID: ");
        h.push_str(&message_id);
        h.push_str("\r\nList-Unsubscribe: <");
        h.push_str(&f.values[Slot::Unsubscribe as usize]);
        h.push('>');
        if !self.newsletter.unsubscribe_mailto.is_empty() {
            h.push_str(",\r\n <mailto:");
            h.push_str(&self.newsletter.unsubscribe_mailto);
            // The recipient's token (the URL's last segment, already
            // URL-safe) in the subject identifies the contact to the bounce
            // intake even when the reply comes from another address.
            let url = &f.values[Slot::Unsubscribe as usize];
            h.push_str("?subject=unsubscribe%20");
            h.push_str(url.rsplit('/').next().unwrap_or_default());
            h.push('>');
        }
        h.push_str("\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
        h.push_str("Content-Type: multipart/alternative;\r\n boundary=\"");
        h.push_str(&self.boundary);
        h.push_str("\"\r\n\r\nThis is a MIME message with a text and an HTML version.\r\n");
        out.extend_from_slice(h.as_bytes());
        for (part, ctype, html) in [
            (&self.text, "text/plain", false),
            (&self.html, "text/html", true),
        ] {
            out.extend_from_slice(b"--");
            out.extend_from_slice(self.boundary.as_bytes());
            out.extend_from_slice(b"\r\nContent-Type: ");
            out.extend_from_slice(ctype.as_bytes());
            out.extend_from_slice(
                b"; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
            );
            encode_part(part, &f, html, &mut out);
        }
        out.extend_from_slice(b"--");
        out.extend_from_slice(self.boundary.as_bytes());
        out.extend_from_slice(b"--\r\n");
        Ok(RenderedMessage {
            message_id,
            from: self.newsletter.from_address.clone(),
            to: r.email.clone(),
            bytes: out,
        })
    }
}

/// Applies `tracking` to the rendered, inlined HTML: every `href` that is one
/// of the issue's numbered links becomes `{TrackClick}/{n}`, and the pixel
/// goes just before `</body>`. Personal links (unsubscribe, preferences,
/// view in browser) are slots, not numbered links, so they stay untracked.
fn track(html: String, links: &[TextLink], tracking: Tracking) -> String {
    let mut html = html;
    if tracking.clicks && !links.is_empty() {
        let mut out = String::with_capacity(html.len() + links.len() * 16);
        let mut rest = html.as_str();
        while let Some(i) = rest.find("href=\"") {
            let start = i + "href=\"".len();
            out.push_str(&rest[..start]);
            rest = &rest[start..];
            let end = rest.find('"').unwrap_or(rest.len());
            let url = html_unescape(&rest[..end]);
            // A link made of a merge tag (a personal link) is never tracked.
            let numbered = (!url.contains(OPEN))
                .then(|| links.iter().find(|l| l.url == url))
                .flatten();
            match numbered {
                Some(l) => {
                    out.push_str(&Slot::TrackClick.marker());
                    out.push('/');
                    out.push_str(&l.n.to_string());
                }
                None => out.push_str(&rest[..end]),
            }
            rest = &rest[end..];
        }
        out.push_str(rest);
        html = out;
    }
    if tracking.opens {
        let pixel = format!(
            "<img src=\"{}\" width=\"1\" height=\"1\" alt=\"\" \
             style=\"display:block;width:1px;height:1px;border:0\">",
            Slot::TrackOpen.marker()
        );
        match html.rfind("</body>") {
            Some(i) => html.insert_str(i, &pixel),
            None => html.push_str(&pixel),
        }
    }
    html
}

/// Undoes the HTML escaping of an attribute value (the entities minijinja
/// and css-inline write).
fn html_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&#x2F;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Markdown writes link targets percent-encoded; a merge tag's marker in
/// one (`[preferences]({{ links.preferences }})`) becomes a marker again.
fn unescape_markers(html: &str) -> String {
    if !html.contains("%EE%80%8") {
        return html.to_string();
    }
    html.replace("%EE%80%80", &OPEN.to_string())
        .replace("%EE%80%81", &CLOSE.to_string())
        .replace("%EE%80%82", &SEP.to_string())
}

fn decoded(part: &Part, f: &Filled, html: bool) -> String {
    let mut s = String::new();
    for p in &part.pieces {
        match p {
            Piece::Static { text, .. } => s.push_str(text),
            Piece::Slot { slot, tag } => {
                let v = f.value(*slot, *tag);
                if html {
                    mime::html_escape_into(v, &mut s)
                } else {
                    s.push_str(v)
                }
            }
        }
    }
    s
}

fn encode_part(part: &Part, f: &Filled, html: bool, out: &mut Vec<u8>) {
    let mut scratch = String::new();
    for p in &part.pieces {
        match p {
            Piece::Static { qp, .. } => out.extend_from_slice(qp),
            Piece::Slot { slot, tag } => {
                let v = f.value(*slot, *tag);
                if html {
                    scratch.clear();
                    mime::html_escape_into(v, &mut scratch);
                    qp_encode_into(&scratch, out);
                } else {
                    qp_encode_into(v, out);
                }
            }
        }
    }
    // The delimiter's own CRLF follows; this one keeps a final soft break
    // (`=` CRLF) intact for decoders.
    out.extend_from_slice(b"\r\n");
}
