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

/// A NUL byte in one field of a 2,000-row file: that row is reported with
/// its line, column and field on both backends (PostgreSQL cannot store a
/// NUL, so neither backend does); every other row goes in.
async fn a_nul_byte_is_a_row_error_with_its_position_and_the_rest_imports(db: common::TestDb) {
    let mut csv = b"email,name,title\n".to_vec();
    for i in 0..2000 {
        if i == 1234 {
            csv.extend_from_slice(format!("nul{i}@example.org,Ab\0cd,Officer\n").as_bytes());
        } else {
            csv.extend_from_slice(format!("ok{i}@example.org,Name {i},Officer\n").as_bytes());
        }
    }
    let (_dir, path) = temp_csv(&csv);
    let r = import(&db.store, &path, &ImportOptions::default()).await;
    // Line 1236 (header + 1234 rows before it); the NUL is the 3rd
    // character of the name, which starts in column 21.
    check(&r.errors, &[(1236, 23, Some("name"), "NUL byte")]);
    assert_eq!((r.rows, r.created, r.rejected), (2000, 1999, 1));
    assert!(db
        .store
        .contact("nul1234@example.org")
        .await
        .unwrap()
        .is_none());
    assert!(db
        .store
        .contact("ok1999@example.org")
        .await
        .unwrap()
        .is_some());
}

/// A field over 64 KiB and a record over 1 MiB are row errors on both
/// backends; the long values are never quoted whole, and the reader does
/// not keep the oversized record (it reads on past it).
async fn an_oversized_field_or_record_is_a_row_error_and_the_rest_imports(db: common::TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let rejects = dir.path().join("rejects.csv");
    let mut csv = b"email,name,title\nfirst@example.org,First,Officer\n".to_vec();
    // Line 3: a 100 KiB name.
    csv.extend_from_slice(b"big@example.org,");
    csv.extend_from_slice(&vec![b'n'; 100 << 10]);
    csv.extend_from_slice(b",Officer\n");
    // Line 4: a 3 MiB record (a title of 3 MiB).
    csv.extend_from_slice(b"huge@example.org,Huge,");
    csv.extend_from_slice(&vec![b't'; 3 << 20]);
    csv.extend_from_slice(b"\n");
    // Line 5: a 300-character invalid address, quoted to 200 characters.
    csv.extend_from_slice(format!("{}@,Bad,Officer\n", "x".repeat(300)).as_bytes());
    csv.extend_from_slice(b"last@example.org,Last,Officer\n");
    let (_tmp, path) = temp_csv(&csv);
    let opts = ImportOptions {
        reject_file: Some(rejects.clone()),
        ..Default::default()
    };
    let r = import(&db.store, &path, &opts).await;
    check(
        &r.errors,
        &[
            (3, 17, Some("name"), "at most 64 KiB"),
            (4, 1, None, "longer than 1 MiB"),
            (5, 1, Some("email"), "invalid email"),
        ],
    );
    assert!(r.errors[0].message.contains(&(100 << 10).to_string()));
    let shown = &r.errors[2].message;
    assert!(shown.len() < 400, "quoted whole: {} bytes", shown.len());
    assert!(shown.contains("(301 characters)"), "{shown}");
    assert_eq!((r.rows, r.created, r.rejected), (5, 2, 3));
    assert!(db
        .store
        .contact("last@example.org")
        .await
        .unwrap()
        .is_some());
    // The oversized field's row is in the reject file; the oversized
    // record is not (it was never kept in memory), the invalid one is.
    let rejected = std::fs::read(&rejects).unwrap();
    assert!(rejected.len() > 100 << 10 && rejected.len() < 200 << 10);
    assert!(rejected.ends_with(format!("{}@,Bad,Officer\n", "x".repeat(300)).as_bytes()));
}

on_both_backends!(
    a_nul_byte_is_a_row_error_with_its_position_and_the_rest_imports,
    an_oversized_field_or_record_is_a_row_error_and_the_rest_imports,
);
