//! The issue editor: the structured form (or the raw file text), the
//! autosaved draft, saving as a revision, reordering, and the preflight's
//! findings at the fields they are about.
//!
//! What is being edited is the account's autosaved draft when it has one,
//! else the latest revision. The form's fields are turned into the file
//! format by `compose::source::Draft`, whose line map puts each finding
//! (and a parse error) at its field. `POST /admin/issues/{n}` takes the
//! form with an `op`: `save` (a new revision through `app::issues::save`),
//! `preview` (keep the draft), `to-source`/`to-form` (switch modes), and
//! `add-section`, `add-article:S`, `remove-…`, `up-…`, `down-…:S[-A]`.
//! `POST …/autosave` (htmx, as the editor types) keeps the draft and
//! answers with the fragment that refreshes the findings, the preview and
//! the approval panel.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use chrono::TimeZone;
use minijinja::{context, Value};
use serde::Deserialize;

use super::super::{is_htmx, redirect_with, AdminError, AdminResult, AdminShared, Flash, Page};
use crate::app::issues as app_issues;
use crate::compose::preflight::Severity;
use crate::compose::source::{
    normalise_newlines, Draft, DraftArticle, DraftSection, Field, FieldMap,
};
use crate::compose::Issue;
use crate::domain::Action;
use crate::store::issues::{Revision, Saved};
use crate::web::form::{self, Fields};

/// How the preview beside the editor is shown (query of the editor page,
/// hidden fields of its form).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct View {
    /// form or source.
    pub mode: Option<String>,
    /// phone, desktop or text.
    pub view: Option<String>,
    /// "1": dark mode.
    pub dark: Option<String>,
    /// The contact the preview is rendered for.
    pub contact: Option<String>,
    /// A search for that contact (without JavaScript).
    pub contact_q: Option<String>,
}

impl View {
    pub fn source_mode(&self) -> bool {
        self.mode.as_deref() == Some("source")
    }
    pub fn view(&self) -> &'static str {
        match self.view.as_deref() {
            Some("desktop") => "desktop",
            Some("text") => "text",
            _ => "phone",
        }
    }
    pub fn dark(&self) -> bool {
        self.dark.as_deref() == Some("1")
    }
    pub fn contact(&self) -> Option<i64> {
        self.contact.as_deref().and_then(|c| c.trim().parse().ok())
    }

    fn from_fields(fields: &Fields) -> View {
        let get = |n: &str| form::value(fields, n).map(String::from);
        View {
            mode: get("mode"),
            view: get("pv_view"),
            dark: get("pv_dark"),
            contact: get("pv_contact"),
            contact_q: None,
        }
    }

    /// The editor's address with these settings.
    pub fn url(&self, n: u32) -> String {
        let mut q = vec![format!("view={}", self.view())];
        if self.source_mode() {
            q.push("mode=source".into());
        }
        if self.dark() {
            q.push("dark=1".into());
        }
        if let Some(c) = self.contact() {
            q.push(format!("contact={c}"));
        }
        format!("/admin/issues/{n}?{}", q.join("&"))
    }
}

/// An issue as it stands for this account: the latest revision and the
/// text being edited (the draft, or that revision's).
pub(super) struct Editing {
    pub number: u32,
    pub latest: Revision,
    pub draft: Option<crate::store::issues::Draft>,
    pub source: String,
}

impl Editing {
    pub async fn load(state: &AdminShared, page: &Page, n: u32) -> AdminResult<Editing> {
        let e = app_issues::editing(state.store(), &page.actor, n).await?;
        Ok(Editing {
            number: n,
            latest: e.latest,
            draft: e.draft,
            source: e.source,
        })
    }

    /// Whether the draft differs from the latest revision.
    pub fn unsaved(&self) -> bool {
        self.draft
            .as_ref()
            .is_some_and(|d| d.source != self.latest.source)
    }
}

/// One message at a field, or about the whole issue.
#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct Message {
    /// failure or warning.
    pub severity: &'static str,
    pub rule: String,
    pub text: String,
    /// Where in the file (for the raw mode and the summary).
    pub line: usize,
    pub column: usize,
    /// The form field it is about (its name), if any.
    pub field: Option<String>,
}

/// The preflight's findings (or the parse error) of a text.
#[derive(Debug, Clone, Default)]
pub(super) struct Checked {
    pub messages: Vec<Message>,
    pub failures: usize,
    pub warnings: usize,
    /// The text did not parse (there is nothing to preview).
    pub unreadable: bool,
}

impl Checked {
    /// Messages by field name, for the form.
    pub fn by_field(&self) -> BTreeMap<String, Vec<Message>> {
        let mut out: BTreeMap<String, Vec<Message>> = BTreeMap::new();
        for m in &self.messages {
            if let Some(f) = &m.field {
                out.entry(f.clone()).or_default().push(m.clone());
            }
        }
        out
    }
}

/// Parses and checks `source`, placing each finding at its field by `map`.
pub(super) async fn check(
    state: &AdminShared,
    page: &Page,
    n: u32,
    source: &str,
    map: Option<&FieldMap>,
) -> AdminResult<Checked> {
    let field = |line: usize| map.and_then(|m| m.field_at(line)).map(|f| f.name());
    let issue = match Issue::parse(&format!("issue {n}"), source) {
        Ok(i) => i,
        Err(e) => {
            return Ok(Checked {
                messages: vec![Message {
                    severity: "failure",
                    rule: "source".into(),
                    text: e.message.clone(),
                    line: e.line,
                    column: e.column,
                    field: field(e.line),
                }],
                failures: 1,
                warnings: 0,
                unreadable: true,
            })
        }
    };
    let mut checked = Checked::default();
    if issue.number != n {
        checked.failures += 1;
        checked.messages.push(Message {
            severity: "failure",
            rule: "number".into(),
            text: format!(
                "this is issue {n}; the number cannot be changed here (start a new issue instead)"
            ),
            line: 0,
            column: 0,
            field: None,
        });
    }
    let report = app_issues::check(state.store(), state.config(), &page.actor, issue).await?;
    checked.failures += report.failures();
    checked.warnings += report.warnings();
    for f in report.findings {
        checked.messages.push(Message {
            severity: if f.severity == Severity::Failure {
                "failure"
            } else {
                "warning"
            },
            rule: f.rule.to_string(),
            text: f.message,
            line: f.line,
            column: f.column,
            field: map
                .and_then(|m| m.field_at(f.line))
                .map(|x| x.for_rule(f.rule).name()),
        });
    }
    Ok(checked)
}

/// The form's fields as a draft of issue `n`. `when` comes from a
/// `datetime-local` input and is read in `general.timezone`.
pub(super) fn draft_from_fields(fields: &Fields, n: u32, tz: chrono_tz::Tz) -> Draft {
    let get = |name: &str| normalise_newlines(form::value(fields, name).unwrap_or(""));
    let mut sections = Vec::new();
    for s in 0.. {
        let Some(title) = form::value(fields, &Field::SectionTitle(s).name()) else {
            break;
        };
        let mut articles = Vec::new();
        for a in 0.. {
            let Some(heading) = form::value(fields, &Field::Heading(s, a).name()) else {
                break;
            };
            let f = |field: Field| get(&field.name());
            articles.push(DraftArticle {
                heading: heading.to_string(),
                body: f(Field::Body(s, a)),
                image_src: f(Field::ImageSrc(s, a)),
                image_alt: f(Field::ImageAlt(s, a)),
                image_credit: f(Field::ImageCredit(s, a)),
                image_width: f(Field::ImageWidth(s, a)),
                image_height: f(Field::ImageHeight(s, a)),
                read_more_url: f(Field::ReadMoreUrl(s, a)),
                read_more_label: f(Field::ReadMoreLabel(s, a)),
                when: when_from_input(&f(Field::When(s, a)), tz),
                place: f(Field::Place(s, a)),
            });
        }
        sections.push(DraftSection {
            title: title.to_string(),
            articles,
        });
    }
    Draft {
        number: n,
        subject: get("subject"),
        preheader: get("preheader"),
        date: get("date").trim().to_string(),
        intro: get("intro"),
        sections,
    }
}

/// `2025-07-19T18:00` (a `datetime-local` value) in `tz` as RFC 3339; any
/// other text as typed (the parser then says what is wrong with it).
fn when_from_input(s: &str, tz: chrono_tz::Tz) -> String {
    let s = s.trim();
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
        .ok()
        .and_then(|t| tz.from_local_datetime(&t).single())
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| s.to_string())
}

/// An RFC 3339 time as a `datetime-local` value in `tz`.
fn when_for_input(s: &str, tz: chrono_tz::Tz) -> String {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string())
        .unwrap_or_else(|_| s.to_string())
}

/// Width and height of library images left without them, from the
/// library (at most the 560 px column, in proportion).
async fn fill_image_sizes(state: &AdminShared, draft: &mut Draft) -> AdminResult<()> {
    for a in draft
        .sections
        .iter_mut()
        .flat_map(|s| s.articles.iter_mut())
    {
        let Some(name) = a.image_src.trim().strip_prefix("/media/") else {
            continue;
        };
        if !a.image_width.trim().is_empty() || !a.image_height.trim().is_empty() {
            continue;
        }
        let Some((hash, _)) = name.split_once('.') else {
            continue;
        };
        if let Some(m) = state.store().media_by_hash(hash).await? {
            let w = m.width.min(560);
            a.image_width = w.to_string();
            a.image_height = (m.height * w / m.width.max(1)).to_string();
        }
    }
    Ok(())
}

/// The draft as the form's template reads it.
fn form_value(draft: &Draft, tz: chrono_tz::Tz) -> Value {
    let sections: Vec<Value> = draft
        .sections
        .iter()
        .enumerate()
        .map(|(s, sec)| {
            let articles: Vec<Value> = sec
                .articles
                .iter()
                .enumerate()
                .map(|(a, art)| {
                    context! {
                        key => format!("s{s}-a{a}"),
                        heading => art.heading.as_str(),
                        body => art.body.as_str(),
                        image_src => art.image_src.as_str(),
                        image_alt => art.image_alt.as_str(),
                        image_credit => art.image_credit.as_str(),
                        image_width => art.image_width.as_str(),
                        image_height => art.image_height.as_str(),
                        read_more_url => art.read_more_url.as_str(),
                        read_more_label => art.read_more_label.as_str(),
                        when => when_for_input(&art.when, tz),
                        place => art.place.as_str(),
                    }
                })
                .collect();
            context! { key => format!("s{s}"), title => sec.title.as_str(), articles }
        })
        .collect();
    context! {
        subject => draft.subject.as_str(),
        preheader => draft.preheader.as_str(),
        date => draft.date.as_str(),
        intro => draft.intro.as_str(),
        sections,
    }
}

/// Applies a structural `op` (add, remove, move) to the draft; `false`
/// when `op` is not one.
fn apply_op(draft: &mut Draft, op: &str) -> bool {
    let (verb, at) = op.split_once(':').unwrap_or((op, ""));
    let mut idx = at
        .split('-')
        .filter_map(|p| p.trim_start_matches(['s', 'a']).parse::<usize>().ok());
    let (s, a) = (idx.next(), idx.next());
    let secs = &mut draft.sections;
    match (verb, s, a) {
        ("add-section", _, _) => secs.push(DraftSection {
            title: String::new(),
            articles: vec![DraftArticle::default()],
        }),
        ("remove-section", Some(s), None) if s < secs.len() => {
            secs.remove(s);
        }
        ("up-section", Some(s), None) if s > 0 && s < secs.len() => secs.swap(s, s - 1),
        ("down-section", Some(s), None) if s + 1 < secs.len() => secs.swap(s, s + 1),
        ("add-article", Some(s), None) if s < secs.len() => {
            secs[s].articles.push(DraftArticle::default())
        }
        ("remove-article", Some(s), Some(a)) if s < secs.len() && a < secs[s].articles.len() => {
            secs[s].articles.remove(a);
        }
        ("up-article", Some(s), Some(a)) if s < secs.len() && a < secs[s].articles.len() => {
            if a > 0 {
                secs[s].articles.swap(a, a - 1);
            } else if s > 0 {
                // The first article moves to the end of the section before.
                let art = secs[s].articles.remove(0);
                secs[s - 1].articles.push(art);
            }
        }
        ("down-article", Some(s), Some(a)) if s < secs.len() && a < secs[s].articles.len() => {
            if a + 1 < secs[s].articles.len() {
                secs[s].articles.swap(a, a + 1);
            } else if s + 1 < secs.len() {
                let art = secs[s].articles.remove(a);
                secs[s + 1].articles.insert(0, art);
            }
        }
        _ => return false,
    }
    true
}

fn number(n: i64) -> AdminResult<u32> {
    u32::try_from(n).map_err(|_| AdminError::NotFound(format!("There is no issue {n}.")))
}

/// What the editor page shows besides the form.
pub(super) struct Shown<'a> {
    pub editing: &'a Editing,
    pub view: &'a View,
    /// The text shown in the raw mode (or the form's draft in form mode).
    pub source: String,
    pub draft: Option<Draft>,
    pub checked: Checked,
    /// A message at the raw text (a parse error when switching modes).
    pub source_error: Option<String>,
}

/// The editor page.
pub(super) async fn render_editor(
    state: &AdminShared,
    page: &Page,
    shown: Shown<'_>,
    status: StatusCode,
) -> AdminResult {
    let n = shown.editing.number;
    let live = super::preview::live_context(state, page, shown.editing, shown.view, &shown.checked)
        .await?;
    let media: Vec<Value> = state
        .store()
        .list_media(500, 0)
        .await?
        .iter()
        .map(super::super::media::media_value_for_picker)
        .collect();
    let by_field = shown.checked.by_field();
    let general: Vec<&Message> = shown
        .checked
        .messages
        .iter()
        .filter(|m| m.field.is_none())
        .collect();
    let draft_info = shown.editing.draft.as_ref().map(|d| {
        context! {
            updated_at => d.updated_at.to_rfc3339(),
            base_revision => d.base_revision,
            unsaved => shown.editing.unsaved(),
        }
    });
    state.render_status(
        page,
        status,
        "admin/issue_editor.html",
        context! {
            title => format!("Issue {n}"),
            number => n,
            latest => context! {
                revision => shown.editing.latest.revision,
                actor => shown.editing.latest.actor.as_str(),
                created_at => shown.editing.latest.created_at.to_rfc3339(),
            },
            draft_info,
            source_mode => shown.view.source_mode() || shown.draft.is_none(),
            source => shown.source,
            source_error => shown.source_error,
            form => shown.draft.as_ref().map(|d| form_value(d, state.tz)),
            errors => by_field,
            general,
            failures => shown.checked.failures,
            warnings => shown.checked.warnings,
            media,
            view => shown.view.view(),
            dark => shown.view.dark(),
            contact => shown.view.contact(),
            self_url => shown.view.url(n),
            zone => state.tz.name(),
            ..live
        },
    )
}

/// `GET /admin/issues/{n}`.
pub(super) async fn show(
    State(state): State<AdminShared>,
    page: Page,
    Path(n): Path<i64>,
    Query(view): Query<View>,
) -> AdminResult {
    page.require(Action::IssuesRead)?;
    let n = number(n)?;
    let editing = Editing::load(&state, &page, n).await?;
    shown_for(&state, &page, &editing, &view, None, StatusCode::OK).await
}

/// Renders the editor for the text being edited, in the mode asked for
/// (the raw mode when the text does not read as a form).
async fn shown_for(
    state: &AdminShared,
    page: &Page,
    editing: &Editing,
    view: &View,
    source_error: Option<String>,
    status: StatusCode,
) -> AdminResult {
    let source = editing.source.clone();
    let parsed = Issue::parse("issue", &source).ok();
    let draft = (!view.source_mode())
        .then_some(())
        .and(parsed.as_ref())
        .map(Draft::from_issue);
    let (checked, draft) = match draft {
        Some(d) => {
            let (text, map) = d.to_source();
            let checked = check(state, page, editing.number, &text, Some(&map)).await?;
            (checked, Some(d))
        }
        None => (
            check(state, page, editing.number, &source, None).await?,
            None,
        ),
    };
    let shown = Shown {
        editing,
        view,
        source,
        draft,
        checked,
        source_error,
    };
    render_editor(state, page, shown, status).await
}

/// The text a submitted editor form stands for, and its line map (none in
/// the raw mode).
async fn submitted_text(
    state: &AdminShared,
    fields: &Fields,
    n: u32,
    view: &View,
) -> AdminResult<(String, Option<FieldMap>, Option<Draft>)> {
    if view.source_mode() {
        let text = normalise_newlines(form::value(fields, "source").unwrap_or(""));
        return Ok((text, None, None));
    }
    let mut draft = draft_from_fields(fields, n, state.tz);
    fill_image_sizes(state, &mut draft).await?;
    let (text, map) = draft.to_source();
    Ok((text, Some(map), Some(draft)))
}

fn read_fields(body: &[u8]) -> AdminResult<Fields> {
    form::urlencoded(body).map_err(|e| AdminError::BadRequest(e.to_string()))
}

/// `POST /admin/issues/{n}`: save, switch modes, reorder (see the module doc).
pub(super) async fn submit(
    State(state): State<AdminShared>,
    page: Page,
    Path(n): Path<i64>,
    body: Bytes,
) -> AdminResult {
    page.require(Action::IssuesWrite)?;
    let n = number(n)?;
    let fields = read_fields(&body)?;
    let mut view = View::from_fields(&fields);
    let op = form::value(&fields, "op").unwrap_or("save").to_string();
    let mut editing = Editing::load(&state, &page, n).await?;
    let (text, map, draft) = submitted_text(&state, &fields, n, &view).await?;
    match op.as_str() {
        "save" => save(&state, &page, &mut editing, &view, text, map, draft).await,
        "to-form" => {
            if let Err(e) = Issue::parse("issue", &text) {
                editing.source = text;
                let msg = format!("Line {}, column {}: {}", e.line, e.column, e.message);
                return shown_for(
                    &state,
                    &page,
                    &editing,
                    &view,
                    Some(format!(
                        "The form cannot show this text until it reads. {msg}"
                    )),
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            }
            keep_draft(&state, &page, &editing, &text).await?;
            view.mode = None;
            Ok(Redirect::to(&view.url(n)).into_response())
        }
        "to-source" | "preview" => {
            keep_draft(&state, &page, &editing, &text).await?;
            if op == "to-source" {
                view.mode = Some("source".into());
            }
            Ok(Redirect::to(&view.url(n)).into_response())
        }
        structural => {
            let Some(mut d) = draft else {
                return Err(AdminError::BadRequest(
                    "sections and articles are arranged in the form, not in the raw text".into(),
                ));
            };
            if !apply_op(&mut d, structural) {
                return Err(AdminError::BadRequest(format!(
                    "unknown action {structural:?}"
                )));
            }
            keep_draft(&state, &page, &editing, &d.to_source().0).await?;
            Ok(Redirect::to(&format!("{}#sections", view.url(n))).into_response())
        }
    }
}

/// Keeps `text` as the account's draft (nothing when it equals what is
/// already kept).
async fn keep_draft(
    state: &AdminShared,
    page: &Page,
    editing: &Editing,
    text: &str,
) -> AdminResult<()> {
    app_issues::keep_draft(state.store(), &page.actor, editing.number, text).await?;
    Ok(())
}

/// Saves the text as a revision; a text that does not read is shown again
/// with the error at its field (422).
async fn save(
    state: &AdminShared,
    page: &Page,
    editing: &mut Editing,
    view: &View,
    text: String,
    map: Option<FieldMap>,
    draft: Option<Draft>,
) -> AdminResult {
    let n = editing.number;
    let checked = check(state, page, n, &text, map.as_ref()).await?;
    let wrong_number = checked.messages.iter().any(|m| m.rule == "number");
    if checked.unreadable || wrong_number {
        keep_draft(state, page, editing, &text).await?;
        editing.source = text.clone();
        let shown = Shown {
            editing,
            view,
            source: text,
            draft,
            checked,
            source_error: None,
        };
        return render_editor(state, page, shown, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let (_, saved) = app_issues::save(state.store(), &page.actor, &text, "admin").await?;
    state.store().discard_draft(n, page.user_id()).await?;
    let message = match saved {
        Saved::Created => "Saved as revision 1.".to_string(),
        Saved::Revised(r) => format!("Saved as revision {r}."),
        Saved::Unchanged(r) => format!("Nothing changed since revision {r}; nothing was saved."),
    };
    let flash = if checked.failures > 0 {
        Flash::warn(format!(
            "{message} The preflight still finds {} problem{} to fix before approval.",
            checked.failures,
            if checked.failures == 1 { "" } else { "s" }
        ))
    } else {
        Flash::ok(message)
    };
    Ok(redirect_with(state, &view.url(n), flash))
}

/// `POST /admin/issues/{n}/autosave` (htmx): keeps the draft, and answers
/// with the findings at their fields, the preview and the approval panel.
pub(super) async fn autosave(
    State(state): State<AdminShared>,
    page: Page,
    Path(n): Path<i64>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> AdminResult {
    page.require(Action::IssuesWrite)?;
    let n = number(n)?;
    let fields = read_fields(&body)?;
    let view = View::from_fields(&fields);
    let mut editing = Editing::load(&state, &page, n).await?;
    let (text, map, draft) = submitted_text(&state, &fields, n, &view).await?;
    keep_draft(&state, &page, &editing, &text).await?;
    editing = Editing::load(&state, &page, n).await?;
    let checked = check(&state, &page, n, &text, map.as_ref()).await?;
    let live = super::preview::live_context(&state, &page, &editing, &view, &checked).await?;
    let names: Vec<String> = draft.as_ref().map(field_names).unwrap_or_default();
    let saved_at = editing.draft.as_ref().map(|d| d.updated_at.to_rfc3339());
    let general: Vec<&Message> = checked
        .messages
        .iter()
        .filter(|m| m.field.is_none())
        .collect();
    let ctx = context! {
        number => n,
        oob => is_htmx(&headers),
        names,
        errors => checked.by_field(),
        general,
        failures => checked.failures,
        warnings => checked.warnings,
        saved_at,
        source_mode => view.source_mode(),
        all_messages => checked.messages,
        ..live
    };
    state.render_fragment(&page, "admin/issue_live.html", ctx)
}

/// Every field name of a draft's form, for the fragment that refreshes
/// their messages.
fn field_names(d: &Draft) -> Vec<String> {
    let mut out: Vec<String> = ["subject", "preheader", "date", "intro"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for (s, sec) in d.sections.iter().enumerate() {
        out.push(Field::SectionTitle(s).name());
        for a in 0..sec.articles.len() {
            for f in [
                Field::Heading(s, a),
                Field::Body(s, a),
                Field::ImageSrc(s, a),
                Field::ImageAlt(s, a),
                Field::ImageCredit(s, a),
                Field::ImageWidth(s, a),
                Field::ImageHeight(s, a),
                Field::ReadMoreUrl(s, a),
                Field::ReadMoreLabel(s, a),
                Field::When(s, a),
                Field::Place(s, a),
            ] {
                out.push(f.name());
            }
        }
    }
    out
}

/// `POST /admin/issues/{n}/discard-draft`: back to the latest revision.
pub(super) async fn discard(
    State(state): State<AdminShared>,
    page: Page,
    Path(n): Path<i64>,
) -> AdminResult {
    page.require(Action::IssuesWrite)?;
    let n = number(n)?;
    let gone = state.store().discard_draft(n, page.user_id()).await?;
    let text = if gone {
        "Your unsaved changes were thrown away; this is the latest revision."
    } else {
        "There were no unsaved changes."
    };
    Ok(redirect_with(
        &state,
        &format!("/admin/issues/{n}"),
        Flash::ok(text),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_sections() -> Draft {
        let art = |h: &str| DraftArticle {
            heading: h.into(),
            ..DraftArticle::default()
        };
        Draft {
            sections: vec![
                DraftSection {
                    title: "A".into(),
                    articles: vec![art("a1"), art("a2")],
                },
                DraftSection {
                    title: "B".into(),
                    articles: vec![art("b1")],
                },
            ],
            ..Draft::default()
        }
    }

    fn headings(d: &Draft) -> Vec<Vec<String>> {
        d.sections
            .iter()
            .map(|s| s.articles.iter().map(|a| a.heading.clone()).collect())
            .collect()
    }

    #[test]
    fn articles_move_within_and_across_sections_and_sections_move() {
        let mut d = two_sections();
        assert!(apply_op(&mut d, "down-article:s0-a0"));
        assert_eq!(headings(&d), [vec!["a2", "a1"], vec!["b1"]]);
        assert!(apply_op(&mut d, "down-article:s0-a1"));
        assert_eq!(headings(&d), [vec!["a2"], vec!["a1", "b1"]]);
        assert!(apply_op(&mut d, "up-article:s1-a0"));
        assert_eq!(headings(&d), [vec!["a2", "a1"], vec!["b1"]]);
        assert!(apply_op(&mut d, "down-section:s0"));
        assert_eq!(d.sections[0].title, "B");
        assert!(apply_op(&mut d, "remove-article:s1-a0"));
        assert!(apply_op(&mut d, "add-article:s0"));
        assert_eq!(headings(&d), [vec!["b1", ""], vec!["a1"]]);
        assert!(apply_op(&mut d, "add-section"));
        assert_eq!(d.sections.len(), 3);
        assert!(!apply_op(&mut d, "remove-section:s9"));
        assert!(!apply_op(&mut d, "explode"));
    }

    #[test]
    fn form_fields_become_a_draft_with_the_event_time_in_the_zone() {
        let fields: Fields = [
            ("subject", "Hi"),
            ("date", "2025-07-01"),
            ("intro", "Line\r\nnext"),
            ("s0-title", "Events"),
            ("s0-a0-heading", "Fireworks"),
            ("s0-a0-body", "Bright"),
            ("s0-a0-when", "2025-07-19T18:00"),
            ("s1-title", "Empty"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let tz: chrono_tz::Tz = "Asia/Tokyo".parse().unwrap();
        let d = draft_from_fields(&fields, 7, tz);
        assert_eq!(d.number, 7);
        assert_eq!(d.intro, "Line\nnext");
        assert_eq!(d.sections.len(), 2);
        assert_eq!(d.sections[0].articles[0].when, "2025-07-19T18:00:00+09:00");
        assert!(d.sections[1].articles.is_empty());
        assert_eq!(
            when_for_input("2025-07-19T09:00:00Z", tz),
            "2025-07-19T18:00"
        );
    }
}
