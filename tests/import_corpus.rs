//! A corpus of bad CSV files, each with its report asserted: where (line,
//! column, field) and what. Good rows in the same files still go in, and the
//! reject file holds exactly the bad rows under the header.

use crate::common;

use crate::common::{data, import, temp_csv};
use whatsup::import::{import_file, ImportOptions, RowError};

/// (line, column, field, message fragment) of each reported error.
fn check(errors: &[RowError], expected: &[(u64, u64, Option<&str>, &str)]) {
    let got: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), expected.len(), "errors: {got:#?}");
    for (e, (line, col, field, fragment)) in errors.iter().zip(expected) {
        assert_eq!(
            (e.line, e.column, e.field.as_deref()),
            (*line, Some(*col), *field),
            "{e}"
        );
        assert!(
            e.message.contains(fragment),
            "{e} should mention {fragment:?}"
        );
    }
}

#[tokio::test]
async fn broken_quoting_is_reported_where_it_happens_and_the_other_rows_import() {
    let db = common::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let rejects = dir.path().join("rejects.csv");
    let opts = ImportOptions {
        reject_file: Some(rejects.clone()),
        ..Default::default()
    };
    let r = import(&db.store, &data("csv/broken_quoting.csv"), &opts).await;
    check(
        &r.errors,
        &[
            (3, 20, None, "quote (\") inside an unquoted field"),
            (4, 25, None, "text after a closing quote"),
            (6, 18, None, "unterminated quoted field"),
        ],
    );
    assert_eq!((r.rows, r.created, r.rejected), (6, 3, 3));
    let ok3 = db.store.contact("ok3@example.org").await.unwrap().unwrap();
    assert_eq!(ok3.title, "Multi\nline title");
    let ok2 = db.store.contact("ok2@example.org").await.unwrap().unwrap();
    assert_eq!(
        (ok2.name.as_str(), ok2.title.as_str()),
        ("Delta, Jr.", "Senior \"Lead\" Officer")
    );
    assert_eq!(
        std::fs::read_to_string(&rejects).unwrap(),
        "email,name,title\nbad1@example.org,Be\"ta,Officer\nbad2@example.org,\"Gamma\"x,Officer\nbad3@example.org,\"Epsilon,Officer\n"
    );
}

#[tokio::test]
async fn latin1_bytes_are_reported_at_the_offending_character() {
    let db = common::sqlite().await;
    let r = import(
        &db.store,
        &data("csv/latin1.csv"),
        &ImportOptions::default(),
    )
    .await;
    check(
        &r.errors,
        &[(3, 22, Some("name"), "invalid UTF-8 (byte 0xE9)")],
    );
    assert!(
        r.errors[0].message.contains("iconv"),
        "the error says how to fix it"
    );
    assert_eq!(r.created, 2);
}

#[tokio::test]
async fn a_byte_order_mark_and_crlf_line_endings_are_accepted() {
    let db = common::sqlite().await;
    let r = import(
        &db.store,
        &data("csv/bom_crlf.csv"),
        &ImportOptions::default(),
    )
    .await;
    assert_eq!((r.created, r.rejected), (2, 0), "{:?}", r.errors);
    assert_eq!(
        db.store
            .contact("crlf@example.org")
            .await
            .unwrap()
            .unwrap()
            .name,
        "Cr Lf"
    );
}

#[tokio::test]
async fn rows_with_too_few_or_too_many_fields_are_rejected_with_their_position() {
    let db = common::sqlite().await;
    let r = import(
        &db.store,
        &data("csv/missing_columns.csv"),
        &ImportOptions::default(),
    )
    .await;
    check(
        &r.errors,
        &[
            (3, 20, None, "expected 3 fields (as in the header), found 2"),
            (4, 22, None, "found 4"),
        ],
    );
    assert_eq!(r.created, 1);
}

#[tokio::test]
async fn a_header_without_an_email_column_is_refused_before_anything_is_written() {
    let db = common::sqlite().await;
    let err = import_file(
        &db.store,
        &data("csv/no_email_column.csv"),
        &ImportOptions::default(),
        None,
        Default::default(),
    )
    .await
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("no_email_column.csv: 1:1: header: there is no \"email\" column"),
        "{msg}"
    );
    assert_eq!(db.store.count_contacts(None).await.unwrap(), 0);
}

#[tokio::test]
async fn invalid_and_missing_emails_are_each_reported() {
    let db = common::sqlite().await;
    let r = import(
        &db.store,
        &data("csv/invalid_emails.csv"),
        &ImportOptions::default(),
    )
    .await;
    check(
        &r.errors,
        &[
            (
                2,
                1,
                Some("email"),
                "invalid email \"not-an-email\": has no '@'",
            ),
            (3, 1, Some("email"), "is not a valid domain name"),
            (4, 1, Some("email"), "more than one '@'"),
            (5, 1, Some("email"), "missing required field"),
            (6, 1, Some("email"), "contains white space"),
        ],
    );
    assert_eq!(r.created, 1);
}

#[tokio::test]
async fn a_duplicate_within_the_file_names_the_first_line() {
    let db = common::sqlite().await;
    let r = import(
        &db.store,
        &data("csv/duplicates.csv"),
        &ImportOptions::default(),
    )
    .await;
    check(
        &r.errors,
        &[(
            4,
            1,
            Some("email"),
            "dup@example.org already appears on line 2",
        )],
    );
    assert_eq!(r.created, 2);
    assert_eq!(
        db.store
            .contact("dup@example.org")
            .await
            .unwrap()
            .unwrap()
            .name,
        "A"
    );
}

#[tokio::test]
async fn unknown_kinds_countries_and_time_zones_and_missing_kinds_are_rejected() {
    let db = common::sqlite().await;
    let r = import(
        &db.store,
        &data("csv/unknown_values.csv"),
        &ImportOptions::default(),
    )
    .await;
    check(
        &r.errors,
        &[
            (2, 17, Some("kind"), "unknown kind \"consulate\""),
            (
                3,
                25,
                Some("country"),
                "\"UK\" is not an ISO 3166-1 alpha-2 country code",
            ),
            (
                4,
                28,
                Some("timezone"),
                "\"Europe/Londres\" is not an IANA time zone",
            ),
            (5, 17, Some("kind"), "missing required field: kind"),
            (
                6,
                15,
                Some("organisation"),
                "organisation is empty but country is given",
            ),
        ],
    );
    assert_eq!((r.created, r.rejected), (1, 5));
}

#[tokio::test]
async fn ten_thousand_rows_with_three_bad_ones_import_the_rest_and_report_the_three() {
    let db = common::sqlite().await;
    let mut csv = String::from("email,name,organisation,kind,country,tags\n");
    for i in 0..10_000u32 {
        let line = i + 2;
        match line {
            1234 => csv.push_str("broken-address,Bad One,Embassy 1,embassy,FR,x\n"),
            5678 => csv.push_str(&format!(
                "p{i}@example.org,Bad Two,Embassy 2,embassy,ZZ,x\n"
            )),
            9999 => csv.push_str(&format!(
                "p{i}@example.org,\"Bad \"Three,Embassy 3,embassy,FR,x\n"
            )),
            _ => csv.push_str(&format!(
                "p{i}@example.org,Person {i},Embassy {},embassy,FR,bulk\n",
                i % 50
            )),
        }
    }
    let (_dir, path) = temp_csv(csv);
    let r = import(
        &db.store,
        &path,
        &ImportOptions {
            batch_size: 1000,
            ..Default::default()
        },
    )
    .await;
    check(
        &r.errors,
        &[
            (1234, 1, Some("email"), "invalid email \"broken-address\""),
            (5678, 45, Some("country"), "\"ZZ\" is not an ISO"),
            (9999, 25, None, "text after a closing quote"),
        ],
    );
    assert_eq!((r.rows, r.created, r.rejected), (10_000, 9_997, 3));
    assert_eq!(db.store.count_contacts(None).await.unwrap(), 9_997);
    assert_eq!(db.store.list_orgs(None).await.unwrap().len(), 50);
}
