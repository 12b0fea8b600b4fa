//! `whatsup issues check`: the preflight rules, through the library and the
//! command line (human and JSON output, exit codes).

use std::path::PathBuf;
use std::process::Command;

use whatsup::compose::preflight::{self, Severity};
use whatsup::config::Newsletter;

fn sample_text() -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples/issue-214.md"))
        .unwrap()
}

fn rules(src: &str, nl: &Newsletter) -> Vec<(Severity, &'static str, usize, usize)> {
    preflight::check_source("t.md", src, nl)
        .findings
        .into_iter()
        .map(|f| (f.severity, f.rule, f.line, f.column))
        .collect()
}

#[test]
fn the_sample_issue_passes_without_warnings() {
    let r = preflight::check_source("sample", &sample_text(), &Newsletter::default());
    assert!(r.findings.is_empty(), "{}", r.to_text());
    assert!(r.html_bytes > 10_000 && r.html_bytes < preflight::HTML_LIMIT);
}

#[test]
fn a_missing_subject_fails_at_the_subject_line() {
    let src = sample_text().replacen(
        "subject = \"Night gardens, river lanterns and a cooler Tokyo this summer\"",
        "subject = \"\"",
        1,
    );
    let r = rules(&src, &Newsletter::default());
    assert!(
        r.contains(&(Severity::Failure, "subject-missing", 2, 11)),
        "{r:?}"
    );
}

#[test]
fn an_image_without_alt_fails_at_the_image() {
    let src = sample_text().replacen(
        "alt = \"Paper lanterns glowing on the dark water of the Sumida River\", ",
        "",
        1,
    );
    let r = rules(&src, &Newsletter::default());
    assert!(
        r.iter().any(|f| f.0 == Severity::Failure
            && f.1 == "image-alt-missing"
            && f.2 == 64
            && f.3 == 9),
        "{r:?}"
    );
    assert_eq!(
        r.iter().filter(|f| f.1 == "image-alt-missing").count(),
        1,
        "reported once: {r:?}"
    );
}

#[test]
fn an_image_in_a_body_without_alt_fails() {
    let src = sample_text().replacen(
        "Entry to the evening openings",
        "<img src=\"https://example.org/x.png\">\n\nEntry to the evening openings",
        1,
    );
    let r = rules(&src, &Newsletter::default());
    assert!(
        r.iter()
            .any(|f| f.0 == Severity::Failure && f.1 == "image-alt-missing"),
        "{r:?}"
    );
}

#[test]
fn a_template_without_an_unsubscribe_link_fails_for_that_part() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("issue.txt"),
        "{{ issue.subject }}\n{{ links.preferences }}\n",
    )
    .unwrap();
    let nl = Newsletter {
        templates_dir: dir.path().to_path_buf(),
        ..Newsletter::default()
    };
    let r = preflight::check_source("t.md", &sample_text(), &nl);
    let f: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.rule == "unsubscribe-missing")
        .collect();
    assert_eq!(f.len(), 1, "{}", r.to_text());
    assert_eq!(f[0].file, "issue.txt");
    assert!(!r.passed());
}

#[test]
fn a_greeting_error_for_one_kind_of_organisation_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("greeting.txt"),
        "{% if recipient.kind == \"city\" %}Hi {{ recipient.mayor }}{% else %}Hello{% endif %}",
    )
    .unwrap();
    let nl = Newsletter {
        templates_dir: dir.path().to_path_buf(),
        ..Newsletter::default()
    };
    let r = preflight::check_source("t.md", &sample_text(), &nl);
    let f = r
        .findings
        .iter()
        .find(|f| f.rule == "template")
        .expect("a template failure");
    assert!(
        f.file.ends_with("greeting.txt") && f.line == 1 && f.column > 30,
        "{}",
        r.to_text()
    );
}

#[test]
fn warnings_cover_http_links_long_and_shouting_subjects_missing_preheaders_and_anchors() {
    let src = sample_text()
        .replacen(
            "subject = \"Night gardens, river lanterns and a cooler Tokyo this summer\"",
            "subject = \"NIGHT GARDENS, RIVER LANTERNS AND A COOLER TOKYO THIS SUMMER IN THE GREAT CITY OF TOKYO\"",
            1,
        )
        .replacen("preheader = \"Tokyo's heat plan, lantern evenings on the Sumida and the gardens that stay open after dark.\"", "", 1)
        .replacen("https://www.example.org/tokyo/green-roofs", "http://www.example.org/tokyo/green-roofs", 1)
        .replacen("Simply\nreply", "See [the events](#events) and [nowhere](#no-such-place). Simply\nreply", 1);
    let r = preflight::check_source("t.md", &src, &Newsletter::default());
    let names: Vec<&str> = r.findings.iter().map(|f| f.rule).collect();
    for rule in [
        "subject-too-long",
        "subject-all-caps",
        "preheader-missing",
        "insecure-link",
        "anchor-missing",
    ] {
        assert!(names.contains(&rule), "{rule} missing from {}", r.to_text());
    }
    assert!(r.passed(), "warnings alone do not fail: {}", r.to_text());
    let anchors: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.rule == "anchor-missing")
        .collect();
    assert_eq!(anchors.len(), 1, "#events exists, #no-such-place does not");
    assert!(anchors[0].message.contains("no-such-place"));
}

#[test]
fn an_html_part_over_102_kib_is_warned_about() {
    let filler = "Tokyo is a city of many neighbourhoods. ".repeat(3000);
    let src = sample_text().replacen(
        "Welcome to the July issue",
        &format!("{filler}\n\nWelcome to the July issue"),
        1,
    );
    let r = preflight::check_source("t.md", &src, &Newsletter::default());
    assert!(
        r.findings.iter().any(|f| f.rule == "html-too-large"),
        "{}",
        r.to_text()
    );
}

fn whatsup(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_whatsup"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env(
            "WHATSUP_CONFIG",
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/whatsup.toml"),
        )
        .output()
        .unwrap()
}

#[test]
fn the_check_command_passes_the_sample_and_prints_json_on_request() {
    let out = whatsup(&["issues", "check", "samples/issue-214.md", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["findings"].as_array().unwrap().len(), 0);
}

#[test]
fn the_check_command_exits_non_zero_and_names_the_place_of_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.md");
    std::fs::write(
        &path,
        sample_text().replacen("number = 214", "number = 214 215", 1),
    )
    .unwrap();
    let out = whatsup(&["issues", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bad.md:4:"), "{text}");
    assert!(text.contains("NOT ready to send"), "{text}");
}

#[test]
fn relative_http_local_and_data_images_fail_and_unsized_ones_warn() {
    let src = sample_text()
        .replacen(
            "src = \"https://www.example.org/whatsup/214/cool-spot.jpg\"",
            "src = \"images/ferry.jpg\"",
            1,
        )
        .replacen(
            "src = \"https://www.example.org/whatsup/214/lanterns.jpg\"",
            "src = \"http://www.example.org/whatsup/214/lanterns.jpg\"",
            1,
        )
        .replacen(
            "src = \"https://www.example.org/whatsup/214/rikugien-night.jpg\"",
            "src = \"file:///home/editor/rikugien.jpg\"",
            1,
        )
        .replacen(
            ", width = 536, height = 320 }",
            " }",
            1,
        )
        .replacen(
            "Entry to the evening openings",
            "![The pond](/Users/editor/pond.png)\n\n<img src=\"data:image/png;base64,AAAA\" alt=\"x\" width=\"1\" height=\"1\">\n\nEntry to the evening openings",
            1,
        );
    let r = rules(&src, &Newsletter::default());
    let at = |rule: &str, line: usize| {
        r.iter()
            .any(|f| f.1 == rule && f.2 == line && f.0 == Severity::Failure)
    };
    assert!(at("image-src", 29), "relative path: {r:?}");
    assert!(at("image-src", 64), "http: {r:?}");
    assert!(at("image-src", 106), "file: {r:?}");
    let body_images: Vec<_> = r
        .iter()
        .filter(|f| f.1 == "image-src" && (f.2 == 99 || f.2 == 101))
        .collect();
    assert_eq!(
        body_images.len(),
        2,
        "a local path and a data: image in a body: {r:?}"
    );
    let no_size: Vec<_> = r.iter().filter(|f| f.1 == "image-size-missing").collect();
    assert!(no_size.iter().all(|f| f.0 == Severity::Warning), "{r:?}");
    assert!(
        no_size.iter().any(|f| f.2 == 64),
        "the lanterns lost their size: {r:?}"
    );
    assert!(
        no_size.iter().any(|f| f.2 == 99),
        "a Markdown image has no size: {r:?}"
    );
    let report = preflight::check_source("t.md", &src, &Newsletter::default());
    let text = report.to_text();
    assert!(
        text.contains("images/ferry.jpg is a relative path"),
        "{text}"
    );
    assert!(text.contains("whatsup media add FILE"), "{text}");
    assert!(text.contains("https address"), "{text}");
}

#[test]
fn empty_headings_section_titles_and_subjects_fail_where_they_stand() {
    let src = sample_text()
        .replacen("title = \"Events\"", "title = \"  \"", 1)
        .replacen(
            "heading = \"Greener rooftops for a thousand public buildings\"",
            "heading = \"\"",
            1,
        )
        .replacen(
            "subject = \"Night gardens, river lanterns and a cooler Tokyo this summer\"",
            "subject = \" \"",
            1,
        );
    let r = rules(&src, &Newsletter::default());
    assert!(
        r.contains(&(Severity::Failure, "subject-missing", 2, 11)),
        "{r:?}"
    );
    assert!(
        r.contains(&(Severity::Failure, "heading-empty", 33, 11)),
        "{r:?}"
    );
    assert!(
        r.contains(&(Severity::Failure, "section-title-empty", 48, 9)),
        "{r:?}"
    );
}

#[test]
fn merge_tag_and_front_matter_errors_are_filed_under_their_own_rules() {
    let src = sample_text().replacen(
        "Summers in Tokyo are growing longer",
        "Dear {{ recipient.nmae }}, summers in Tokyo are growing longer",
        1,
    );
    let r = rules(&src, &Newsletter::default());
    assert_eq!(r, vec![(Severity::Failure, "merge-tag", 13, 9)]);
    let text = preflight::check_source("t.md", &src, &Newsletter::default()).to_text();
    assert!(text.contains("t.md:13:9: error[merge-tag]: unknown value `recipient.nmae`: did you mean `recipient.name`?"), "{text}");
    let broken = sample_text().replacen("number = 214", "number = \"214\"", 1);
    let r = rules(&broken, &Newsletter::default());
    assert_eq!(r, vec![(Severity::Failure, "front-matter", 4, 10)]);
}

#[test]
fn a_greeting_branch_only_a_salutation_or_a_cjk_name_reaches_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("greeting.txt"),
        "{% if recipient.salutation %}{{ recipient.honorific }}{% else %}Dear {{ recipient.addressee }},{% endif %}",
    )
    .unwrap();
    let nl = Newsletter {
        templates_dir: dir.path().to_path_buf(),
        ..Newsletter::default()
    };
    let r = preflight::check_source("t.md", &sample_text(), &nl);
    let f: Vec<_> = r.findings.iter().filter(|f| f.rule == "template").collect();
    assert_eq!(f.len(), 1, "reported once: {}", r.to_text());
    assert!(
        f[0].message.contains("recipient.honorific"),
        "{}",
        r.to_text()
    );
}

#[test]
fn the_new_issue_skeleton_has_every_field_and_fails_the_check_until_filled_in() {
    let s = whatsup::compose::issue::skeleton(
        300,
        chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap(),
    );
    for field in [
        "subject",
        "preheader",
        "number",
        "date",
        "title",
        "heading",
        "body",
        "# image",
        "# read_more",
        "# when",
        "# place",
        "alt",
        "credit",
        "width",
        "height",
        "label",
    ] {
        assert!(s.contains(field), "{field} missing from the skeleton:\n{s}");
    }
    let r = preflight::check_source("new.md", &s, &Newsletter::default());
    let failed: Vec<&str> = r
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Failure)
        .map(|f| f.rule)
        .collect();
    assert!(
        failed.contains(&"subject-missing") && failed.contains(&"heading-empty"),
        "{}",
        r.to_text()
    );
    // Uncommenting the optional fields gives a valid issue.
    let filled = s
        .replace("subject = \"\"", "subject = \"A subject\"")
        .replace("heading = \"\"", "heading = \"A heading\"")
        .replace("# image = ", "image = ")
        .replace("# read_more = ", "read_more = ")
        .replace("# when = ", "when = ")
        .replace("# place = ", "place = ");
    let i = whatsup::compose::Issue::parse("filled.md", &filled).unwrap();
    assert_eq!(i.article_count(), 3);
    assert!(i.sections[1].articles[0].when.is_some());
    assert!(i.sections[0].articles[0].image.is_some());
}
