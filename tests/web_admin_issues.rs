//! The issue editor's pages over loopback on both backends: the issues
//! list and a new issue, the structured form saved as revisions, the
//! preflight's findings at their fields (in the page and in the autosave
//! fragment), reordering, the raw-source mode with a parse error at its
//! line, the preview frame as a named contact, the revision diff, the
//! approval request (refused while problems remain), and a test message
//! that reaches smtp-sink.

use whatsup::app::campaign_actions::{self, CreateCampaign};
use whatsup::compose::Issue;
use whatsup::domain::Actor;

use crate::common::admin_pages::{html, Browser};
use crate::common::sink::{self, Sink};
use crate::common::workspace::{Api, As, PASSWORD};
use crate::common::{self, TestDb};

/// The editor form's fields for issue `n` as the page would post them,
/// from its current text.
fn form_of(source: &str) -> Vec<(String, String)> {
    let issue = Issue::parse("t", source).unwrap();
    let d = whatsup::compose::source::Draft::from_issue(&issue);
    let mut f: Vec<(String, String)> = vec![
        ("mode".into(), "form".into()),
        ("subject".into(), d.subject.clone()),
        ("preheader".into(), d.preheader.clone()),
        ("date".into(), d.date.clone()),
        ("intro".into(), d.intro.clone()),
    ];
    for (s, sec) in d.sections.iter().enumerate() {
        f.push((format!("s{s}-title"), sec.title.clone()));
        for (a, art) in sec.articles.iter().enumerate() {
            let k = format!("s{s}-a{a}");
            for (name, v) in [
                ("heading", &art.heading),
                ("body", &art.body),
                ("image_src", &art.image_src),
                ("image_alt", &art.image_alt),
                ("image_credit", &art.image_credit),
                ("image_width", &art.image_width),
                ("image_height", &art.image_height),
                ("read_more_url", &art.read_more_url),
                ("read_more_label", &art.read_more_label),
                ("place", &art.place),
            ] {
                f.push((format!("{k}-{name}"), v.clone()));
            }
            f.push((format!("{k}-when"), String::new()));
        }
    }
    f
}

fn set(form: &mut [(String, String)], name: &str, value: &str) {
    let slot = form
        .iter_mut()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("{name}"));
    slot.1 = value.to_string();
}

fn pairs(form: &[(String, String)]) -> Vec<(&str, &str)> {
    form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

async fn latest_source(api: &Api, n: u32) -> String {
    api.db.store.issue_revision(n, None).await.unwrap().source
}

async fn an_editor_starts_an_issue_and_saves_the_form_as_revisions(db: TestDb) {
    let api = Api::start(db).await;
    let viewer = Browser::sign_in(api.addr, "viewer@example.org", PASSWORD).await;
    let list = viewer.get("/admin/issues").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("There are no issues yet."));
    assert!(!list.body.contains("Start a new issue"));
    assert_eq!(viewer.post_form("/admin/issues", &[]).await.status, 403);

    let editor = Browser::sign_in(api.addr, "editor@example.org", PASSWORD).await;
    let r = editor.post_form("/admin/issues", &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/admin/issues/1"));
    let page = editor.get("/admin/issues/1").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let body = html(&page);
    assert!(
        body.contains("Policy &amp; Initiatives"),
        "the skeleton's sections"
    );
    assert!(body.contains(r#"id="f-subject-msg""#));
    assert!(
        body.contains("subject-missing") || body.contains("Error:"),
        "an empty subject fails"
    );
    assert!(
        body.contains(r#"id="request-approval"#)
            || body.contains("No campaign sends this issue yet")
    );

    let mut form = form_of(&latest_source(&api, 1).await);
    set(&mut form, "subject", "Night gardens 夜の庭園");
    set(&mut form, "s0-a0-heading", "A greener river front");
    set(
        &mut form,
        "s0-a0-body",
        "Trees **and** benches.\r\n\r\n- one\r\n- two\r\n",
    );
    form.push(("op".into(), "save".into()));
    let r = editor.post_form("/admin/issues/1", &pairs(&form)).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let text = latest_source(&api, 1).await;
    let issue = Issue::parse("t", &text).unwrap();
    assert_eq!(issue.subject, "Night gardens 夜の庭園");
    assert_eq!(
        issue.sections[0].articles[0].body,
        "Trees **and** benches.\n\n- one\n- two\n"
    );
    let page = editor.get("/admin/issues/1").await;
    assert!(page.body.contains("Saved as revision 2."), "{}", page.body);
    // The same form again saves nothing.
    let r = editor.post_form("/admin/issues/1", &pairs(&form)).await;
    assert_eq!(r.status, 303);
    assert_eq!(api.db.store.issue(1).await.unwrap().unwrap().revisions, 2);
    let list = editor.get("/admin/issues").await;
    assert!(list.body.contains("Night gardens 夜の庭園"));
    assert!(list.body.contains("user:editor@example.org"));
    assert!(list.body.contains("No campaign yet"));
    // The history shows what revision 2 changed.
    let diff = editor.get("/admin/issues/1/revisions/2").await;
    assert_eq!(diff.status, 200, "{}", diff.body);
    assert!(diff.body.contains(r#"class="diff-add""#));
    assert!(diff.body.contains("Night gardens 夜の庭園"));
    let all = editor.get("/admin/issues/1/revisions").await;
    assert!(all.body.contains("What changed from 1"));
    api.stop().await;
}

async fn a_preflight_failure_shows_at_its_field_and_blocks_the_approval_request(db: TestDb) {
    let mut config = db.config.clone();
    config.newsletter.require_approval = true;
    let api = Api::start_with(db, config).await;
    common::save_sample_issue(&api.db.store).await;
    let operator = Actor::Cli {
        unix_user: "test".into(),
        account: None,
    };
    let campaign = campaign_actions::create(
        &api.db.store,
        &api.db.config,
        &operator,
        &CreateCampaign {
            issue: 214,
            segment: "kind = embassy".into(),
            name: Some("July to embassies".into()),
            transport: Some("outbox".into()),
            ..CreateCampaign::default()
        },
    )
    .await
    .unwrap()
    .campaign;
    let editor = Browser::sign_in(api.addr, "editor@example.org", PASSWORD).await;
    let mut form = form_of(&latest_source(&api, 214).await);
    set(&mut form, "s0-a0-image_alt", "");
    // As the editor types, autosave answers with the finding at the field.
    let r = editor
        .post_htmx("/admin/issues/214/autosave", &pairs(&form))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let frag = html(&r);
    let at = frag
        .find(r#"<div class="field-msgs" id="f-s0-a0-image_alt-msg" hx-swap-oob="true">"#)
        .unwrap_or_else(|| panic!("{frag}"));
    let msg = &frag[at..at + frag[at..].find("</div>").unwrap()];
    assert!(msg.contains("Error:"), "{msg}");
    assert!(frag.contains(r#"id="request-approval-"#), "{frag}");
    assert!(
        frag.contains(" disabled aria-describedby=\"approval-blocked\""),
        "{frag}"
    );
    // The page shows the same, from the kept draft.
    let page = html(&editor.get("/admin/issues/214").await);
    assert!(page.contains("You are editing unsaved changes"), "{page}");
    assert!(page.contains(r#"id="f-s0-a0-image_alt" name="s0-a0-image_alt" value="" aria-describedby="f-s0-a0-image_alt-hint f-s0-a0-image_alt-msg" aria-invalid="true""#), "{page}");
    // Asking anyway is refused.
    let r = editor
        .post_form(
            "/admin/issues/214/request-approval",
            &[("campaign", &campaign.id.to_string())],
        )
        .await;
    assert_eq!(r.status, 303);
    assert!(api
        .db
        .store
        .approvals(campaign.id)
        .await
        .unwrap()
        .is_empty());
    // Fixed and saved, the request goes through.
    set(
        &mut form,
        "s0-a0-image_alt",
        "Visitors resting under a shaded canopy",
    );
    let r = editor
        .post_htmx("/admin/issues/214/autosave", &pairs(&form))
        .await;
    let frag = html(&r);
    assert!(
        frag.contains(
            r#"<div class="field-msgs" id="f-s0-a0-image_alt-msg" hx-swap-oob="true">
</div>"#
        ),
        "{frag}"
    );
    form.push(("op".into(), "save".into()));
    assert_eq!(
        editor
            .post_form("/admin/issues/214", &pairs(&form))
            .await
            .status,
        303
    );
    let page = html(&editor.get("/admin/issues/214").await);
    let button = format!(
        r#"<button type="submit" id="request-approval-{}">"#,
        campaign.id
    );
    assert!(page.contains(&button), "{page}");
    let r = editor
        .post_form(
            "/admin/issues/214/request-approval",
            &[("campaign", &campaign.id.to_string())],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let approvals = api.db.store.approvals(campaign.id).await.unwrap();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0].kind, "request");
    assert_eq!(approvals[0].actor, "user:editor@example.org");
    let page = editor.get("/admin/issues/214").await;
    assert!(page.body.contains("Approval of revision"), "{}", page.body);
    api.stop().await;
}

async fn sections_and_articles_reorder_and_the_raw_text_reports_errors_at_their_line(db: TestDb) {
    let api = Api::start(db).await;
    common::save_sample_issue(&api.db.store).await;
    let editor = Browser::sign_in(api.addr, "editor@example.org", PASSWORD).await;
    let before = Issue::parse("t", &latest_source(&api, 214).await).unwrap();
    let mut form = form_of(&latest_source(&api, 214).await);
    form.push(("op".into(), "down-article:s0-a0".into()));
    let r = editor.post_form("/admin/issues/214", &pairs(&form)).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let draft = api
        .db
        .store
        .draft(214, api.editor.user.id)
        .await
        .unwrap()
        .expect("the reordered form is kept as a draft");
    let moved = Issue::parse("t", &draft.source).unwrap();
    assert_eq!(
        moved.sections[0].articles[1].heading,
        before.sections[0].articles[0].heading
    );
    assert_eq!(
        api.db.store.issue(214).await.unwrap().unwrap().revisions,
        1,
        "not saved"
    );
    // The raw text of the draft, a mistake in it, and its place.
    let raw = editor.get("/admin/issues/214?mode=source").await;
    assert!(raw.body.contains(r#"name="source""#));
    let broken = draft
        .source
        .replacen("date = 2025-07-01", "date = 1 July", 1);
    let r = editor
        .post_form(
            "/admin/issues/214",
            &[("mode", "source"), ("source", &broken), ("op", "save")],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("line 5"), "{}", r.body);
    let r = editor
        .post_form(
            "/admin/issues/214",
            &[("mode", "source"), ("source", &broken), ("op", "to-form")],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r
        .body
        .contains("The form cannot show this text until it reads."));
    // Another issue's number is refused.
    let other = draft.source.replacen("number = 214", "number = 215", 1);
    let r = editor
        .post_form(
            "/admin/issues/214",
            &[("mode", "source"), ("source", &other), ("op", "save")],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(api.db.store.issue(215).await.unwrap().is_none());
    // Good text saves; the draft is gone.
    let r = editor
        .post_form(
            "/admin/issues/214",
            &[
                ("mode", "source"),
                ("source", &draft.source),
                ("op", "save"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(latest_source(&api, 214).await, draft.source);
    assert!(api
        .db
        .store
        .draft(214, api.editor.user.id)
        .await
        .unwrap()
        .is_none());
    api.stop().await;
}

async fn the_preview_renders_as_a_named_contact_in_a_frame_only_the_admin_may_embed(db: TestDb) {
    let api = Api::start(db).await;
    common::save_sample_issue(&api.db.store).await;
    common::import(
        &api.db.store,
        &common::seed("embassies.csv"),
        &whatsup::import::ImportOptions::default(),
    )
    .await;
    let editor = Browser::sign_in(api.addr, "editor@example.org", PASSWORD).await;
    let contact = api
        .db
        .store
        .list_contacts(None, Some(1), 0)
        .await
        .unwrap()
        .remove(0);
    let org = contact.org_name.clone().unwrap();
    let word: String = org.split_whitespace().last().unwrap().to_string();
    let found = editor
        .get(&format!(
            "/admin/issues/214/contacts?contact_q={}",
            common::http::form_value(&word)
        ))
        .await;
    assert_eq!(found.status, 200);
    assert!(
        found
            .body
            .contains(&format!(r#"<option value="{}">"#, contact.id)),
        "{}",
        found.body
    );
    let page = editor
        .get(&format!(
            "/admin/issues/214?view=phone&contact={}",
            contact.id
        ))
        .await;
    let page = html(&page);
    assert!(page.contains(r#"class="preview preview-phone""#), "{page}");
    let src_at = page
        .find(r#"id="preview-frame" class="preview preview-phone" src=""#)
        .unwrap();
    let src = &page[src_at..];
    let src = &src[src.find("src=\"").unwrap() + 5..];
    let src = src[..src.find('"').unwrap()].replace("&amp;", "&");
    assert!(src.contains(&format!("contact={}", contact.id)), "{src}");
    let frame = editor.get(&src).await;
    assert_eq!(frame.status, 200, "{}", frame.body);
    assert!(frame
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let csp = frame.header("content-security-policy").unwrap();
    assert!(csp.contains("frame-ancestors 'self'"), "{csp}");
    assert_eq!(frame.header("x-frame-options"), Some("SAMEORIGIN"));
    assert!(frame.body.contains("Night gardens"));
    let text = editor
        .get(&format!(
            "/admin/issues/214/preview?view=text&contact={}",
            contact.id
        ))
        .await;
    assert!(text
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    assert!(text.body.contains("Night gardens"));
    let dark = editor
        .get("/admin/issues/214/preview?view=phone&dark=1")
        .await;
    assert!(!dark.body.contains("prefers-color-scheme: dark"));
    api.stop().await;
}

async fn a_test_message_goes_to_the_editors_own_address(db: TestDb) {
    if !sink::available() {
        common::skip_or_fail("smtp-sink is not installed");
        return;
    }
    let mut sink = Sink::start(&[]);
    let mut config = db.config.clone();
    config.smtp.host = "127.0.0.1".into();
    config.smtp.port = sink.port;
    common::save_sample_issue(&db.store).await;
    let api = Api::start_with(db, config).await;
    let editor = Browser::sign_in(api.addr, "editor@example.org", PASSWORD).await;
    let r = editor
        .post_form(
            "/admin/issues/214/test-send",
            &[("to", "someone@example.net")],
        )
        .await;
    assert_eq!(r.status, 403, "not on the allowlist");
    let r = editor
        .post_form(
            "/admin/issues/214/test-send",
            &[("to", "editor@example.org")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = editor.get("/admin/issues/214").await;
    assert!(
        page.body
            .contains("Revision 1 was sent to editor@example.org"),
        "{}",
        page.body
    );
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].rcpt_to, "editor@example.org");
    sink.stop();
    api.stop().await;
}

async fn the_api_keeps_drafts_checks_them_and_adds_images_as_the_pages_do(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = db.config.clone();
    config.general.data_dir = dir.path().to_path_buf();
    common::save_sample_issue(&db.store).await;
    let api = Api::start_with(db, config).await;
    let token = api.editor.token.clone();
    let who = As::Token(&token);
    let r = api.call(who, "GET", "/api/v1/issues/214/draft", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["draft"], false);
    let source = latest_source(&api, 214).await.replacen(
        "alt = \"Visitors resting on benches under a shaded canopy with misting fans\"",
        "alt = \"\"",
        1,
    );
    let body = serde_json::json!({"source": source});
    let r = api
        .call(who, "PUT", "/api/v1/issues/214/draft", Some(&body))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["draft"], true);
    let r = api
        .call(who, "POST", "/api/v1/issues/214/check?draft=true", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rules: Vec<String> = r.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_string())
        .collect();
    assert!(
        rules.contains(&"image-alt-missing".to_string()),
        "{rules:?}"
    );
    let r = api
        .call(who, "POST", "/api/v1/issues/214/check", None)
        .await;
    assert!(
        !r.body.contains("image-alt-missing"),
        "the revision is unchanged"
    );
    // The page shows the draft the API kept.
    let editor = Browser::sign_in(api.addr, "editor@example.org", PASSWORD).await;
    let page = html(&editor.get("/admin/issues/214").await);
    assert!(page.contains("You are editing unsaved changes"));
    let r = api
        .call(who, "DELETE", "/api/v1/issues/214/draft", None)
        .await;
    assert_eq!(r.json()["discarded"], true);
    // Images.
    let png = {
        let img = image::RgbImage::from_fn(30, 20, |x, _| image::Rgb([x as u8, 9, 9]));
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        out.into_inner()
    };
    let r = api
        .call_raw(
            who,
            "POST",
            "/api/v1/media?alt=%20",
            Some(("image/png", &png)),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["errors"][0]["field"], "alt");
    let r = api
        .call_raw(
            who,
            "POST",
            "/api/v1/media?alt=A%20red%20lantern&name=lantern.png",
            Some(("image/png", &png)),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let path = r.json()["path"].as_str().unwrap().to_string();
    assert!(
        path.starts_with("/media/") && path.ends_with(".png"),
        "{path}"
    );
    let list = api.call(who, "GET", "/api/v1/media", None).await.json();
    assert_eq!(list[0]["alt"], "A red lantern");
    let viewer = api.viewer.token.clone();
    let r = api
        .call_raw(
            As::Token(&viewer),
            "POST",
            "/api/v1/media?alt=x",
            Some(("image/png", &png)),
        )
        .await;
    assert_eq!(r.status, 403);
    api.stop().await;
}

on_both_backends!(
    the_api_keeps_drafts_checks_them_and_adds_images_as_the_pages_do,
    an_editor_starts_an_issue_and_saves_the_form_as_revisions,
    a_preflight_failure_shows_at_its_field_and_blocks_the_approval_request,
    sections_and_articles_reorder_and_the_raw_text_reports_errors_at_their_line,
    the_preview_renders_as_a_named_contact_in_a_frame_only_the_admin_may_embed,
    a_test_message_goes_to_the_editors_own_address,
);
