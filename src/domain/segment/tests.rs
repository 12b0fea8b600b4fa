//! The parser's tests: trees, errors and columns, limits, round trips.

use super::ast::OpClass;
use super::created::{civil_from_days, days_from_civil, days_in_month};
use super::*;

fn parse(input: &str) -> Expr {
    match Segment::parse(input) {
        Ok(segment) => segment.expr().clone(),
        Err(error) => panic!("{input:?} failed: {error}\n{}", error.render(input)),
    }
}

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

fn cmp(field: Field, op: CmpOp, value: Value) -> Expr {
    Expr::Cmp { field, op, value }
}

fn and(left: Expr, right: Expr) -> Expr {
    Expr::And(Box::new(left), Box::new(right))
}

fn or(left: Expr, right: Expr) -> Expr {
    Expr::Or(Box::new(left), Box::new(right))
}

fn not(inner: Expr) -> Expr {
    Expr::Not(Box::new(inner))
}

#[test]
fn every_example_from_the_brief_parses_to_the_expected_tree() {
    let cases = [
        (
            "kind = embassy and region = \"Europe\"",
            and(
                cmp(Field::Kind, CmpOp::Eq, text("embassy")),
                cmp(Field::Region, CmpOp::Eq, text("Europe")),
            ),
        ),
        (
            "tag = sister-cities or country in (FR, DE)",
            or(
                cmp(Field::Tag, CmpOp::Eq, text("sister-cities")),
                Expr::In {
                    field: Field::Country,
                    values: vec![text("FR"), text("DE")],
                    negated: false,
                },
            ),
        ),
        (
            "attr.language = \"fr\"",
            cmp(Field::Attr("language".into()), CmpOp::Eq, text("fr")),
        ),
        (
            "not (status = unsubscribed) and name ~ \"yamada\"",
            and(
                not(cmp(Field::Status, CmpOp::Eq, text("unsubscribed"))),
                cmp(Field::Name, CmpOp::Contains, text("yamada")),
            ),
        ),
        (
            "since >= 1990 and relationship = sister",
            and(
                cmp(Field::Since, CmpOp::Ge, Value::Int(1990)),
                cmp(Field::Relationship, CmpOp::Eq, text("sister")),
            ),
        ),
        (
            "country not in (US, \"GB\")",
            Expr::In {
                field: Field::Country,
                values: vec![text("US"), text("GB")],
                negated: true,
            },
        ),
        ("tag != press", cmp(Field::Tag, CmpOp::Ne, text("press"))),
        (
            "title is empty",
            Expr::Empty {
                field: Field::Title,
                negated: false,
            },
        ),
        (
            "organisation is not empty",
            Expr::Empty {
                field: Field::Organisation,
                negated: true,
            },
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(parse(input), expected, "{input}");
    }
}

#[test]
fn every_field_name_and_alias_is_recognised_case_insensitively() {
    let cases = [
        ("email", Field::Email),
        ("NAME", Field::Name),
        ("Title", Field::Title),
        ("language", Field::Language),
        ("organisation", Field::Organisation),
        ("Organization", Field::Organisation),
        ("org", Field::Organisation),
        ("country", Field::Country),
        ("region", Field::Region),
        ("city", Field::City),
        ("timezone", Field::TimeZone),
        ("TZ", Field::TimeZone),
        ("tag", Field::Tag),
        ("ATTR.Lang_1-x", Field::Attr("Lang_1-x".into())),
    ];
    for (name, field) in cases {
        let expected = Expr::Empty {
            field,
            negated: false,
        };
        assert_eq!(parse(&format!("{name} IS EMPTY")), expected, "{name}");
    }
}

#[test]
fn keywords_are_case_insensitive() {
    assert_eq!(
        parse("NOT Kind = City AND Tag IN (a) Or Title Is Not Empty"),
        parse("not kind = city and tag in (a) or title is not empty")
    );
    assert_eq!(
        parse("country NOT IN (fr)"),
        Expr::In {
            field: Field::Country,
            values: vec![text("FR")],
            negated: true
        }
    );
}

#[test]
fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
    assert_eq!(
        parse("not kind = city and tag = x or region = y"),
        or(
            and(
                not(cmp(Field::Kind, CmpOp::Eq, text("city"))),
                cmp(Field::Tag, CmpOp::Eq, text("x")),
            ),
            cmp(Field::Region, CmpOp::Eq, text("y")),
        )
    );
    assert_eq!(
        parse("tag = a or tag = b and tag = c"),
        or(
            cmp(Field::Tag, CmpOp::Eq, text("a")),
            and(
                cmp(Field::Tag, CmpOp::Eq, text("b")),
                cmp(Field::Tag, CmpOp::Eq, text("c")),
            ),
        )
    );
}

#[test]
fn and_and_or_associate_to_the_left_and_parentheses_override_precedence() {
    assert_eq!(
        parse("tag = a and tag = b and tag = c"),
        and(
            and(
                cmp(Field::Tag, CmpOp::Eq, text("a")),
                cmp(Field::Tag, CmpOp::Eq, text("b")),
            ),
            cmp(Field::Tag, CmpOp::Eq, text("c")),
        )
    );
    assert_eq!(
        parse("(tag = a or tag = b) and not not tag = c"),
        and(
            or(
                cmp(Field::Tag, CmpOp::Eq, text("a")),
                cmp(Field::Tag, CmpOp::Eq, text("b")),
            ),
            not(not(cmp(Field::Tag, CmpOp::Eq, text("c")))),
        )
    );
}

#[test]
fn every_comparison_operator_is_recognised_with_or_without_spaces() {
    let cases = [
        ("name=x", CmpOp::Eq),
        ("name!=x", CmpOp::Ne),
        ("name~x", CmpOp::Contains),
        ("name!~x", CmpOp::NotContains),
    ];
    for (input, op) in cases {
        assert_eq!(parse(input), cmp(Field::Name, op, text("x")), "{input}");
    }
    let cases = [
        ("since<1990", CmpOp::Lt),
        ("since<=1990", CmpOp::Le),
        ("since>1990", CmpOp::Gt),
        ("since>=1990", CmpOp::Ge),
        ("since = 1990", CmpOp::Eq),
        ("since != 1990", CmpOp::Ne),
    ];
    for (input, op) in cases {
        assert_eq!(
            parse(input),
            cmp(Field::Since, op, Value::Int(1990)),
            "{input}"
        );
    }
}

#[test]
fn quoted_strings_support_escaped_quotes_and_backslashes() {
    assert_eq!(
        parse(r#"name = "say \"hi\" \\ bye""#),
        cmp(Field::Name, CmpOp::Eq, text(r#"say "hi" \ bye"#))
    );
    assert_eq!(
        parse(r#"title = """#),
        cmp(Field::Title, CmpOp::Eq, text(""))
    );
    assert_eq!(
        parse("city = \"São Paulo (SP), 日本\""),
        cmp(Field::City, CmpOp::Eq, text("São Paulo (SP), 日本"))
    );
}

#[test]
fn bare_words_cover_hyphens_dots_plus_signs_and_email_addresses() {
    assert_eq!(
        parse("email = anna+news@example.org"),
        cmp(Field::Email, CmpOp::Eq, text("anna+news@example.org"))
    );
    assert_eq!(
        parse("tz = Europe_Paris.v2-x"),
        cmp(Field::TimeZone, CmpOp::Eq, text("Europe_Paris.v2-x"))
    );
    assert_eq!(
        parse("title = 007"),
        cmp(Field::Title, CmpOp::Eq, text("007"))
    );
}

#[test]
fn keywords_can_be_used_as_values_when_quoted() {
    assert_eq!(
        parse("name = \"and\""),
        cmp(Field::Name, CmpOp::Eq, text("and"))
    );
    assert_eq!(
        parse("name = empty"),
        cmp(Field::Name, CmpOp::Eq, text("empty"))
    );
}

#[test]
fn country_values_are_upper_cased_and_vocabulary_values_lower_cased() {
    assert_eq!(
        parse("country = fr"),
        cmp(Field::Country, CmpOp::Eq, text("FR"))
    );
    assert_eq!(
        parse("kind in (EMBASSY, \"Representative_Office\")"),
        Expr::In {
            field: Field::Kind,
            values: vec![text("embassy"), text("representative_office")],
            negated: false
        }
    );
    assert_eq!(
        parse("status != Bounced"),
        cmp(Field::Status, CmpOp::Ne, text("bounced"))
    );
    assert_eq!(
        parse("relationship = Partner"),
        cmp(Field::Relationship, CmpOp::Eq, text("partner"))
    );
}

#[test]
fn contains_on_vocabulary_fields_takes_free_text() {
    assert_eq!(
        parse("kind ~ Emb"),
        cmp(Field::Kind, CmpOp::Contains, text("Emb"))
    );
}

#[test]
fn since_takes_integer_years_including_quoted_and_signed_ones() {
    assert_eq!(
        parse("since in (1990, \"2001\", -5)"),
        Expr::In {
            field: Field::Since,
            values: vec![Value::Int(1990), Value::Int(2001), Value::Int(-5)],
            negated: false
        }
    );
    assert_eq!(
        parse("since is empty"),
        Expr::Empty {
            field: Field::Since,
            negated: false
        }
    );
}

#[test]
fn created_accepts_dates_and_rfc3339_date_times_and_normalises_them_to_utc_text() {
    let cases = [
        ("2024-01-31", "2024-01-31 00:00:00"),
        ("2024-02-29", "2024-02-29 00:00:00"),
        ("\"2024-01-31T10:20:30Z\"", "2024-01-31 10:20:30"),
        ("\"2024-01-31t10:20:30.999999z\"", "2024-01-31 10:20:30"),
        ("\"2024-01-31 10:20:30\"", "2024-01-31 10:20:30"),
        ("\"2024-03-01T08:00:00+09:00\"", "2024-02-29 23:00:00"),
        ("\"2023-12-31T23:30:00-01:00\"", "2024-01-01 00:30:00"),
        ("\"2000-02-29T00:00:00.5+00:00\"", "2000-02-29 00:00:00"),
        ("\"0000-01-01T00:00:00Z\"", "0000-01-01 00:00:00"),
        ("\"9999-12-31T23:59:59Z\"", "9999-12-31 23:59:59"),
    ];
    for (input, expected) in cases {
        assert_eq!(
            parse(&format!("created >= {input}")),
            cmp(Field::Created, CmpOp::Ge, text(expected)),
            "{input}"
        );
    }
}

#[test]
fn impossible_or_malformed_created_values_are_rejected() {
    let bad = [
        "2023-02-29",
        "1900-02-29",
        "2024-13-01",
        "2024-00-10",
        "2024-04-31",
        "2024-1-31",
        "\"2024-01-31T24:00:00Z\"",
        "\"2024-01-31T10:60:00Z\"",
        "\"2024-01-31T10:00:60Z\"",
        "\"2024-01-31T10:00:00.Z\"",
        "\"2024-01-31T10:00:00+2:00\"",
        "\"2024-01-31T10:00:00+24:00\"",
        "\"2024-01-31T10:00\"",
        "\"2024-01-31X10:00:00Z\"",
        "\"0000-01-01T00:00:00+01:00\"",
        "\"9999-12-31T23:00:00-01:00\"",
        "\"２０２４-01-31\"",
        "1990",
    ];
    for value in bad {
        let input = format!("created < {value}");
        let error = Segment::parse(&input).expect_err(&input);
        assert_eq!(error.column, 11, "{input}");
        assert!(error.message.contains("is not a valid date"), "{error}");
    }
}

#[test]
fn attribute_keys_keep_their_case() {
    assert_eq!(
        parse("Attr.Preferred-Name_2 ~ Ann"),
        cmp(
            Field::Attr("Preferred-Name_2".into()),
            CmpOp::Contains,
            text("Ann")
        )
    );
}

#[test]
fn bad_inputs_report_the_expected_column_and_message() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "kind embassy",
            6,
            "expected an operator (=, !=, ~, !~, <, <=, >, >=, in, not in, is) after field \"kind\"",
        ),
        (
            "tag = a and kind",
            17,
            "expected an operator (=, !=, ~, !~, <, <=, >, >=, in, not in, is) after field \"kind\"",
        ),
        (
            "knd = embassy",
            1,
            "unknown field \"knd\" (did you mean \"kind\"?)",
        ),
        ("atr.language = fr", 1, "(did you mean \"attr.language\"?)"),
        (
            "foobar = 1",
            1,
            "unknown field \"foobar\" (fields are: email, name,",
        ),
        ("name ~ \"yamada and kind = city", 8, "unterminated string"),
        ("region = Europe \"abc", 17, "unterminated string"),
        ("kind = embassy and ()", 21, "unexpected \")\""),
        (
            "tag = x)",
            8,
            "unexpected \")\" (there is no matching \"(\")",
        ),
        (
            "kind != spaceship",
            9,
            "\"spaceship\" is not a kind (expected one of: city, embassy, representative_office, international_org, other)",
        ),
        ("status in (active, gone)", 20, "\"gone\" is not a status"),
        (
            "relationship = enemy",
            16,
            "\"enemy\" is not a relationship",
        ),
        ("", 1, "empty segment"),
        ("   \t ", 1, "empty segment"),
        (
            "region < Europe",
            8,
            "operator \"<\" only works with since and created",
        ),
        (
            "name >= x",
            6,
            "operator \">=\" only works with since and created",
        ),
        ("since ~ 19", 7, "operator \"~\" does not work with since"),
        ("since = abc", 9, "\"abc\" is not a year"),
        (
            "created = 2024-01-01",
            9,
            "operator \"=\" does not work with created",
        ),
        (
            "created in (2024-01-01)",
            9,
            "operator \"in\" does not work with created",
        ),
        (
            "created is empty",
            9,
            "operator \"is empty\" does not work with created",
        ),
        (
            "created > 2024-02-30",
            11,
            "\"2024-02-30\" is not a valid date",
        ),
        (
            "created > 2024-01-31T10:00:00Z",
            11,
            "\"2024-01-31T10\" is not a valid date (expected YYYY-MM-DD, or an RFC 3339 date-time in quotes",
        ),
        (
            "name = a:b",
            9,
            "unexpected character \":\" (put values containing spaces",
        ),
        ("attr.a'b = 1", 7, "unexpected character \"'\""),
        ("attr.x\"y = 1", 7, "unterminated string"),
        (
            "attr.a.b = 1",
            7,
            "invalid character \".\" in attribute key",
        ),
        (
            "attr.a@b = 1",
            7,
            "invalid character \"@\" in attribute key",
        ),
        ("attr. = 1", 6, "missing attribute key"),
        ("attr = 1", 1, "\"attr\" needs a key"),
        ("country in FR", 12, "expected \"(\" after \"in\""),
        ("country in ()", 13, "a list needs at least one value"),
        (
            "country in (FR DE)",
            16,
            "expected \",\" or \")\" in the list, found \"DE\"",
        ),
        (
            "country in (FR,",
            16,
            "expected a value in the list, found end of input",
        ),
        (
            "country in (FR, )",
            17,
            "expected a value in the list, found \")\"",
        ),
        (
            "country in (FR",
            15,
            "expected \")\" to close the list opened at column 12",
        ),
        (
            "(kind = city",
            13,
            "expected \")\" to close the \"(\" at column 1",
        ),
        (
            "(kind = city tag = x)",
            14,
            "expected \"and\", \"or\" or \")\", found \"tag\"",
        ),
        (
            "kind = city and",
            16,
            "expected a condition, found end of input",
        ),
        (
            "kind = city and or",
            17,
            "expected a condition, found \"or\"",
        ),
        (
            "kind = city region = x",
            13,
            "expected \"and\", \"or\" or end of input, found \"region\"",
        ),
        (
            "kind = ",
            8,
            "expected a value after \"=\", found end of input",
        ),
        (
            "kind = = city",
            8,
            "expected a value after \"=\", found \"=\"",
        ),
        ("country = (FR, DE)", 11, "write country in (a, b)"),
        ("name = and tag = x", 8, "found the keyword \"and\""),
        ("title is nothing", 10, "expected \"empty\" after \"is\""),
        (
            "title is not nothing",
            14,
            "expected \"empty\" after \"is not\"",
        ),
        ("title not = x", 11, "expected \"in\" after \"title not\""),
        ("name ! x", 6, "did you mean \"!=\" or \"!~\"?"),
        ("name = \"a\\nb\"", 10, "unknown escape \"\\n\""),
        ("name = Mü§ller", 10, "unexpected character \"§\""),
        (
            "\"kind\" = city",
            1,
            "expected a field name such as kind or country",
        ),
        ("= city", 1, "expected a field name"),
        ("name = \"日本\" and knd = x", 17, "unknown field \"knd\""),
        ("name = x\u{0}", 9, "unexpected character U+0000"),
    ];
    for &(input, column, fragment) in cases {
        let error = match Segment::parse(input) {
            Ok(segment) => panic!("{input:?} parsed: {:?}", segment.expr()),
            Err(error) => error,
        };
        assert!(
            error.column == column && error.message.contains(fragment),
            "{input:?}: got {error}, expected column {column} containing {fragment:?}\n{}",
            error.render(input)
        );
    }
}

#[test]
fn error_display_starts_with_the_column() {
    let error = Segment::parse("knd = embassy").unwrap_err();
    assert_eq!(
        error.to_string(),
        "column 1: unknown field \"knd\" (did you mean \"kind\"?)"
    );
}

#[test]
fn render_puts_a_caret_under_the_error_column() {
    let source = "kind != spaceship";
    let error = Segment::parse(source).unwrap_err();
    assert_eq!(error.render(source), "kind != spaceship\n        ^");
    // 日本 is four columns wide on a terminal: the caret goes under "knd".
    let source = "name = \"日本\"\tand knd = x";
    let error = Segment::parse(source).unwrap_err();
    assert_eq!(error.column, 17);
    assert_eq!(
        error.render(source),
        "name = \"日本\" and knd = x\n                  ^"
    );
    // At the end of the input the caret goes one past the last character.
    let source = "organisation ~ 大使館 and";
    let error = Segment::parse(source).unwrap_err();
    assert_eq!(
        error.render(source),
        "organisation ~ 大使館 and\n                         ^"
    );
}

#[test]
fn an_invalid_segment_shows_the_reason_the_column_and_the_text_with_a_caret() {
    let source = "kind = embasy";
    let shown = Segment::parse(source)
        .unwrap_err()
        .with_text(source)
        .to_string();
    assert_eq!(
        shown,
        "invalid segment: column 8: \"embasy\" is not a kind (expected one of: city, \
         embassy, representative_office, international_org, other)\n\
         kind = embasy\n       ^"
    );
}

#[test]
fn unquoted_words_may_be_letters_and_digits_of_any_script() {
    for (source, field, value) in [
        ("name ~ José", Field::Name, "José"),
        ("organisation ~ 大使館", Field::Organisation, "大使館"),
        ("city = Zürich", Field::City, "Zürich"),
        ("name ~ Ελένη", Field::Name, "Ελένη"),
        ("region = Москва", Field::Region, "Москва"),
        ("name ~ ローマ", Field::Name, "ローマ"),
        ("attr.desk = 文化٣", Field::Attr("desk".into()), "文化٣"),
        // A decomposed é: "e" followed by the combining acute accent.
        ("name ~ Jose\u{301}", Field::Name, "Jose\u{301}"),
    ] {
        let op = if source.contains(" = ") {
            CmpOp::Eq
        } else {
            CmpOp::Contains
        };
        assert_eq!(parse(source), cmp(field, op, text(value)), "{source}");
    }
    // Punctuation outside words still needs quotes, and says so.
    let error = Segment::parse("name ~ 山田・太郎").unwrap_err();
    assert_eq!(error.column, 10, "{error}");
    assert!(error.message.contains("double quotes"), "{error}");
}

#[test]
fn unknown_fields_far_from_any_name_get_no_suggestion() {
    let error = Segment::parse("xx = 1").unwrap_err();
    assert!(!error.message.contains("did you mean"), "{error}");
    let error = Segment::parse("tg = 1").unwrap_err();
    assert!(error.message.contains("did you mean \"tag\"?"), "{error}");
}

#[test]
fn the_earliest_error_wins_over_a_later_lexical_error() {
    let error = Segment::parse("knd = x and name = 'y'").unwrap_err();
    assert_eq!(error.column, 1, "{error}");
}

#[test]
fn input_at_the_length_limit_parses_and_one_character_more_is_rejected() {
    let at_limit = format!("name = \"{}\"", "a".repeat(MAX_INPUT_CHARS - 9));
    assert_eq!(at_limit.chars().count(), MAX_INPUT_CHARS);
    assert!(Segment::parse(&at_limit).is_ok());
    let too_long = format!("name = \"{}\"", "é".repeat(MAX_INPUT_CHARS - 8));
    let error = Segment::parse(&too_long).unwrap_err();
    assert_eq!(error.column, MAX_INPUT_CHARS + 1);
    assert!(
        error.message.contains("too long (4097 characters"),
        "{error}"
    );
}

#[test]
fn nesting_up_to_the_depth_limit_parses_and_one_level_more_is_rejected() {
    let nested = |depth: usize| format!("{}kind = city{}", "(".repeat(depth), ")".repeat(depth));
    assert!(Segment::parse(&nested(MAX_DEPTH)).is_ok());
    let error = Segment::parse(&nested(MAX_DEPTH + 1)).unwrap_err();
    assert_eq!(error.column, MAX_DEPTH + 1);
    assert!(error.message.contains("nested too deeply"), "{error}");
    let mixed = format!("{}kind = city{}", "not (".repeat(16), ")".repeat(16));
    assert!(Segment::parse(&mixed).is_ok());
    let mixed = format!("{}kind = city{}", "not (".repeat(17), ")".repeat(17));
    assert!(Segment::parse(&mixed).is_err());
}

#[test]
fn ten_thousand_nested_parentheses_are_an_error_not_a_stack_overflow() {
    let input = format!("{}kind = city{}", "(".repeat(10_000), ")".repeat(10_000));
    // Over the length limit: rejected before parsing.
    assert_eq!(
        Segment::parse(&input).unwrap_err().column,
        MAX_INPUT_CHARS + 1
    );
    // Within the length limit: rejected by the depth limit.
    let input = "(".repeat(MAX_INPUT_CHARS);
    let error = Segment::parse(&input).unwrap_err();
    assert_eq!(error.column, MAX_DEPTH + 1);
    let input = "not ".repeat(1000);
    let error = Segment::parse(&input).unwrap_err();
    assert_eq!(error.column, MAX_DEPTH * 4 + 1);
    assert!(error.message.contains("nested too deeply"), "{error}");
}

#[test]
fn in_lists_accept_a_thousand_values_and_reject_the_next_one() {
    let list = |count: usize| {
        let values: Vec<String> = (0..count).map(|i| i.to_string()).collect();
        format!("tag in ({})", values.join(","))
    };
    match Segment::parse(&list(MAX_LIST_VALUES)).unwrap().expr() {
        Expr::In { values, .. } => assert_eq!(values.len(), MAX_LIST_VALUES),
        other => panic!("unexpected {other:?}"),
    }
    let input = list(MAX_LIST_VALUES + 1);
    let error = Segment::parse(&input).unwrap_err();
    assert_eq!(error.column, input.find("1000").unwrap() + 1);
    assert!(error.message.contains("too many values"), "{error}");
}

#[test]
fn from_str_agrees_with_parse_and_the_source_is_kept_verbatim() {
    let input = "  Kind = Embassy  ";
    let segment: Segment = input.parse().unwrap();
    assert_eq!(segment, Segment::parse(input).unwrap());
    assert_eq!(segment.source(), input);
    assert_eq!(segment.to_string(), input);
}

#[test]
fn canonical_display_prints_only_the_parentheses_the_tree_needs() {
    let cases = [
        ("KIND = Embassy", "kind = \"embassy\""),
        (
            "(tag = a or tag = b) and not (tag = c and since > 1)",
            "(tag = \"a\" or tag = \"b\") and not (tag = \"c\" and since > 1)",
        ),
        (
            "tag = a or (tag = b or tag = c)",
            "tag = \"a\" or (tag = \"b\" or tag = \"c\")",
        ),
        ("((tag = a))", "tag = \"a\""),
        (
            "org not in (x, \"y\\\"z\") and tz is not empty",
            "organisation not in (\"x\", \"y\\\"z\") and timezone is not empty",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(parse(input).to_string(), expected, "{input}");
    }
}

/// A small deterministic generator, so the property tests need no crates.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }

    fn text(&mut self, alphabet: &[char]) -> String {
        (0..self.below(8)).map(|_| self.pick(alphabet)).collect()
    }
}

const ANY_CHARS: &[char] = &[
    'a', 'Z', '0', ' ', '"', '\\', '%', '_', '\'', ';', '-', 'é', '日', '(', ')', '$',
];
const COUNTRY_CHARS: &[char] = &['F', 'R', 'D', 'E', '1', ' ', '"', '\\', '%', '_', '日'];

fn random_value(rng: &mut Rng, field: &Field, pattern: bool) -> Value {
    match field {
        Field::Since => Value::Int(rng.pick(&[1990, -5, 0, i64::MAX, i64::MIN, 2024])),
        Field::Created => Value::Text(format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            rng.below(10_000),
            rng.below(12) + 1,
            rng.below(28) + 1,
            rng.below(24),
            rng.below(60),
            rng.below(60)
        )),
        Field::Kind if !pattern => Value::Text(rng.pick(KINDS).to_owned()),
        Field::Status if !pattern => Value::Text(rng.pick(STATUSES).to_owned()),
        Field::Relationship if !pattern => Value::Text(rng.pick(RELATIONSHIPS).to_owned()),
        Field::Country => Value::Text(rng.text(COUNTRY_CHARS)),
        _ => Value::Text(rng.text(ANY_CHARS)),
    }
}

fn random_condition(rng: &mut Rng) -> Expr {
    let fields = [
        Field::Email,
        Field::Name,
        Field::Title,
        Field::Status,
        Field::Language,
        Field::Organisation,
        Field::Kind,
        Field::Country,
        Field::Region,
        Field::City,
        Field::TimeZone,
        Field::Relationship,
        Field::Since,
        Field::Tag,
        Field::Created,
        Field::Attr(rng.pick(&["language", "x-y", "A_1"]).to_owned()),
    ];
    let field = rng.pick(&fields);
    let ops: &[CmpOp] = match field {
        Field::Created => &[CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge],
        Field::Since => &[
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Lt,
            CmpOp::Le,
            CmpOp::Gt,
            CmpOp::Ge,
        ],
        _ => &[CmpOp::Eq, CmpOp::Ne, CmpOp::Contains, CmpOp::NotContains],
    };
    let shape = if field == Field::Created {
        0
    } else {
        rng.below(3)
    };
    match shape {
        0 => {
            let op = rng.pick(ops);
            let value = random_value(rng, &field, op.class() == OpClass::Pattern);
            Expr::Cmp { field, op, value }
        }
        1 => Expr::In {
            values: (0..=rng.below(3))
                .map(|_| random_value(rng, &field, false))
                .collect(),
            negated: rng.below(2) == 0,
            field,
        },
        _ => Expr::Empty {
            field,
            negated: rng.below(2) == 0,
        },
    }
}

fn random_expr(rng: &mut Rng, depth: usize) -> Expr {
    if depth == 0 || rng.below(3) == 0 {
        return random_condition(rng);
    }
    match rng.below(3) {
        0 => and(random_expr(rng, depth - 1), random_expr(rng, depth - 1)),
        1 => or(random_expr(rng, depth - 1), random_expr(rng, depth - 1)),
        _ => not(random_expr(rng, depth - 1)),
    }
}

#[test]
fn printing_a_generated_tree_and_parsing_it_back_gives_the_same_tree() {
    let mut rng = Rng(42);
    for _ in 0..500 {
        let expr = random_expr(&mut rng, 5);
        let printed = expr.to_string();
        assert_eq!(parse(&printed), expr, "{printed}");
    }
}

#[test]
fn random_token_soup_and_mutated_segments_never_panic_and_errors_point_inside_the_input() {
    let fragments = [
        "kind",
        "=",
        "embassy",
        "and",
        "or",
        "not",
        "(",
        ")",
        "in",
        "is",
        "empty",
        ",",
        "\"",
        "\"x y\"",
        "~",
        "!~",
        "!",
        "<=",
        ">",
        "since",
        "1990",
        "created",
        "2024-01-31",
        "attr.",
        "attr.lang",
        "'",
        ";",
        "country",
        "FR",
        "\\",
        "日本",
        "tag",
        "\t",
        "\n",
        "x",
    ];
    let noise = ['(', ')', '"', '\\', ' ', 'a', '=', ',', '~', '!', '.', '日'];
    let mut rng = Rng(7);
    let mut parsed = 0;
    for round in 0..3000 {
        let input: String = if round % 2 == 0 {
            (0..rng.below(12))
                .map(|_| {
                    let separator = if rng.below(3) == 0 { "" } else { " " };
                    format!("{}{separator}", rng.pick(&fragments))
                })
                .collect()
        } else {
            let mut chars: Vec<char> = random_expr(&mut rng, 3).to_string().chars().collect();
            for _ in 0..rng.below(3) {
                let at = rng.below(chars.len() + 1);
                match rng.below(3) {
                    0 if at < chars.len() => {
                        chars.remove(at);
                    }
                    1 if at < chars.len() => chars[at] = rng.pick(&noise),
                    _ => chars.insert(at, rng.pick(&noise)),
                }
            }
            chars.into_iter().collect()
        };
        match Segment::parse(&input) {
            Ok(segment) => {
                parsed += 1;
                let printed = segment.expr().to_string();
                assert_eq!(&parse(&printed), segment.expr(), "{input:?}");
            }
            Err(error) => {
                let length = input.chars().count();
                assert!(
                    (1..=length + 1).contains(&error.column),
                    "{input:?}: {error}"
                );
                assert!(error.render(&input).contains('^'));
            }
        }
    }
    assert!(parsed > 300, "only {parsed} generated inputs parsed");
}

#[test]
fn calendar_conversions_round_trip_across_four_centuries() {
    for days in (-719_528..2_932_897).step_by(97) {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), days);
        assert!((1..=days_in_month(y, m)).contains(&d));
    }
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
}
