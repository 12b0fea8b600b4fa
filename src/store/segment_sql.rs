//! Compiles a [`Segment`] into a parameterised SQL `WHERE` fragment.
//!
//! The fragment is meant for a query of the shape
//!
//! ```sql
//! SELECT ... FROM contacts c
//! LEFT JOIN organisations o ON o.id = c.organisation_id
//! WHERE <fragment>
//! ```
//!
//! and works on SQLite and PostgreSQL. **Nothing from the user's input is
//! ever spliced into the SQL text**: every value and every attribute key is a
//! bound parameter. The SQL text is assembled only from fixed column names,
//! operators and `$N` placeholders.
//!
//! Placeholders are numbered from `first_param` upward in the order they
//! appear in the text, each used exactly once (an expression that needs the
//! same attribute key twice binds it twice), so the fragment also works with
//! purely positional binding.
//!
//! Semantics:
//!
//! * Text comparisons are case-insensitive: `lower(col) = lower($n)`. `email`
//!   is stored lower-cased, so it is compared directly with a lower-cased
//!   parameter. Tag names are stored lower-cased too.
//! * Negative forms (`!=`, `!~`, `not in`) also match rows where the column
//!   is NULL, e.g. `region != Europe` includes contacts without an
//!   organisation.
//! * `~` is `lower(col) LIKE $n ESCAPE '\'` with the parameter
//!   `%<lower-cased value, with % _ \ escaped>%`. Note that SQLite's built-in
//!   `lower()` folds ASCII letters only, so on SQLite case-insensitivity of
//!   non-ASCII letters is best effort. The `'\'` literal assumes PostgreSQL's
//!   default `standard_conforming_strings = on`.
//! * `is empty` is `(col IS NULL OR col = '')`; for `since` it is `IS NULL`;
//!   for `tag` it means "has no tags at all".
//! * `created`: PostgreSQL compares `c.created_at <op> $n::timestamptz`.
//!   SQLite stores sqlx/chrono text such as `2026-11-28T18:24:08.123456+00:00`
//!   (always UTC, always starting `YYYY-MM-DDTHH:MM:SS`), so it compares text:
//!   the parameter is `YYYY-MM-DDTHH:MM:SS+00:00`. Lexicographic order then
//!   equals time order because the fixed-width prefix decides first, and for
//!   an equal prefix the stored value continues with either `+` (exactly that
//!   second, equal to the parameter) or `.` (a fraction later; `.` sorts after
//!   `+`).
//! * `attr.<key>`: SQLite `json_extract(c.attributes, $k)` with `$k` bound as
//!   the JSON path `$."key"` (parsed keys are `[A-Za-z0-9_-]+`, so the quoting
//!   is safe); PostgreSQL `(c.attributes ->> $k)` with the plain key. Values
//!   are compared as text with the same case-insensitive rules.
//!
//! [`compile`] trusts the shapes the parser produces (for instance only
//! ordering operators on `created`); hand-built expressions with other
//! combinations still compile to reasonable, fully parameterised SQL.

use crate::domain::segment::*;

/// The SQL dialect to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A value to bind to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    Text(String),
    Int(i64),
}

/// A `WHERE` fragment and its parameters, in placeholder order.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlFilter {
    pub sql: String,
    pub params: Vec<SqlParam>,
}

/// Placeholders are `$N`, numbered from `first_param` (1-based) upward — both sqlx backends accept `$N`.
///
/// A `first_param` of 0 is treated as 1.
pub fn compile(segment: &Segment, dialect: Dialect, first_param: usize) -> SqlFilter {
    let mut compiler = Compiler {
        dialect,
        next: first_param.max(1),
        params: Vec::new(),
    };
    let sql = compiler.expr(segment.expr());
    SqlFilter {
        sql,
        params: compiler.params,
    }
}

const TAG_EXISTS: &str = "EXISTS (SELECT 1 FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id WHERE ct.contact_id = c.id AND ";
const ANY_TAG: &str = "EXISTS (SELECT 1 FROM contact_tags ct WHERE ct.contact_id = c.id)";
const LIKE_ESCAPE: &str = "ESCAPE '\\'";

struct Compiler {
    dialect: Dialect,
    next: usize,
    params: Vec<SqlParam>,
}

impl Compiler {
    /// Records a parameter and returns its placeholder. Call in text order.
    fn bind(&mut self, param: SqlParam) -> String {
        let placeholder = format!("${}", self.next);
        self.next += 1;
        self.params.push(param);
        placeholder
    }

    fn expr(&mut self, expr: &Expr) -> String {
        match expr {
            Expr::And(left, right) => {
                let left = self.expr(left);
                let right = self.expr(right);
                format!("({left} AND {right})")
            }
            Expr::Or(left, right) => {
                let left = self.expr(left);
                let right = self.expr(right);
                format!("({left} OR {right})")
            }
            // A condition on a missing value (a contact without an
            // organisation) is NULL in SQL; `not` must treat it as false, so
            // that `not (kind = city)` includes contacts without a kind.
            Expr::Not(inner) => format!("NOT COALESCE(({}), FALSE)", self.expr(inner)),
            Expr::Cmp { field, op, value } => match field {
                Field::Tag => self.tag_cmp(*op, value),
                Field::Since | Field::Created => self.scalar_cmp(field, *op, value),
                _ => self.text_cmp(field, *op, value),
            },
            Expr::In {
                field,
                values,
                negated,
            } => match field {
                Field::Tag => {
                    let list = self.list(field, values);
                    format!("{}{TAG_EXISTS}t.name IN ({list}))", not_if(*negated))
                }
                Field::Since | Field::Created => {
                    let column = scalar_column(field);
                    let list = self.list(field, values);
                    if *negated {
                        format!("({column} IS NULL OR {column} NOT IN ({list}))")
                    } else {
                        format!("{column} IN ({list})")
                    }
                }
                _ => {
                    if *negated {
                        let column = self.column(field);
                        let folded = self.folded_column(field);
                        let list = self.list(field, values);
                        format!("({column} IS NULL OR {folded} NOT IN ({list}))")
                    } else {
                        let folded = self.folded_column(field);
                        let list = self.list(field, values);
                        format!("{folded} IN ({list})")
                    }
                }
            },
            Expr::Empty { field, negated } => match field {
                Field::Tag => format!("{}{ANY_TAG}", not_if(!*negated)),
                Field::Since | Field::Created => {
                    let null = if *negated { "IS NOT NULL" } else { "IS NULL" };
                    format!("{} {null}", scalar_column(field))
                }
                _ => {
                    let first = self.column(field);
                    let second = self.column(field);
                    if *negated {
                        format!("({first} IS NOT NULL AND {second} <> '')")
                    } else {
                        format!("({first} IS NULL OR {second} = '')")
                    }
                }
            },
        }
    }

    /// The SQL for a text field's column; binds the key for attributes.
    fn column(&mut self, field: &Field) -> String {
        let fixed = match field {
            Field::Attr(key) => {
                return match self.dialect {
                    Dialect::Sqlite => {
                        let path = self.bind(SqlParam::Text(format!("$.\"{key}\"")));
                        format!("json_extract(c.attributes, {path})")
                    }
                    Dialect::Postgres => {
                        let key = self.bind(SqlParam::Text(key.clone()));
                        format!("(c.attributes ->> {key})")
                    }
                };
            }
            Field::Email => "c.email",
            Field::Name => "c.name",
            Field::Title => "c.title",
            Field::Status => "c.status",
            Field::Language => "c.language",
            Field::Organisation => "o.name",
            Field::Kind => "o.kind",
            Field::Country => "o.country",
            Field::Region => "o.region",
            Field::City => "o.city",
            Field::TimeZone => "o.timezone",
            Field::Relationship => "o.relationship",
            Field::Tag => "t.name",
            Field::Since | Field::Created => scalar_column(field),
        };
        fixed.to_owned()
    }

    /// The column as compared case-insensitively (`email` is stored lower-cased).
    fn folded_column(&mut self, field: &Field) -> String {
        let column = self.column(field);
        if *field == Field::Email {
            column
        } else {
            format!("lower({column})")
        }
    }

    /// A placeholder for an equality-style comparison value, folded to match
    /// [`Compiler::folded_column`].
    fn folded_value(&mut self, field: &Field, value: &Value) -> String {
        let text = value_text(value);
        if matches!(field, Field::Email | Field::Tag) {
            self.bind(SqlParam::Text(text.to_lowercase()))
        } else {
            format!("lower({})", self.bind(SqlParam::Text(text)))
        }
    }

    fn like_pattern(&mut self, value: &Value) -> String {
        let mut pattern = String::from("%");
        for c in value_text(value).to_lowercase().chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        self.bind(SqlParam::Text(pattern))
    }

    fn list(&mut self, field: &Field, values: &[Value]) -> String {
        let placeholders: Vec<String> = values
            .iter()
            .map(|value| match field {
                Field::Since | Field::Created => self.scalar_value(field, value),
                _ => self.folded_value(field, value),
            })
            .collect();
        placeholders.join(", ")
    }

    fn text_cmp(&mut self, field: &Field, op: CmpOp, value: &Value) -> String {
        match op {
            CmpOp::Ne => {
                let column = self.column(field);
                let folded = self.folded_column(field);
                let value = self.folded_value(field, value);
                format!("({column} IS NULL OR {folded} <> {value})")
            }
            CmpOp::Contains => {
                let folded = self.folded_column(field);
                let pattern = self.like_pattern(value);
                format!("{folded} LIKE {pattern} {LIKE_ESCAPE}")
            }
            CmpOp::NotContains => {
                let column = self.column(field);
                let folded = self.folded_column(field);
                let pattern = self.like_pattern(value);
                format!("({column} IS NULL OR {folded} NOT LIKE {pattern} {LIKE_ESCAPE})")
            }
            CmpOp::Eq | CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => {
                let folded = self.folded_column(field);
                let value = self.folded_value(field, value);
                format!("{folded} {} {value}", sql_operator(op))
            }
        }
    }

    fn tag_cmp(&mut self, op: CmpOp, value: &Value) -> String {
        let (negated, condition) = match op {
            CmpOp::Contains | CmpOp::NotContains => (
                op == CmpOp::NotContains,
                format!("t.name LIKE {} {LIKE_ESCAPE}", self.like_pattern(value)),
            ),
            CmpOp::Eq | CmpOp::Ne => (
                op == CmpOp::Ne,
                format!("t.name = {}", self.folded_value(&Field::Tag, value)),
            ),
            CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => (
                false,
                format!(
                    "t.name {} {}",
                    sql_operator(op),
                    self.folded_value(&Field::Tag, value)
                ),
            ),
        };
        format!("{}{TAG_EXISTS}{condition})", not_if(negated))
    }

    /// `since` (an integer column) and `created` (a timestamp).
    fn scalar_cmp(&mut self, field: &Field, op: CmpOp, value: &Value) -> String {
        let column = scalar_column(field);
        match op {
            CmpOp::Contains | CmpOp::NotContains => {
                let pattern = self.like_pattern(value);
                let like = format!("CAST({column} AS TEXT) LIKE {pattern} {LIKE_ESCAPE}");
                if op == CmpOp::Contains {
                    like
                } else {
                    format!("({column} IS NULL OR NOT ({like}))")
                }
            }
            CmpOp::Ne => {
                let value = self.scalar_value(field, value);
                format!("({column} IS NULL OR {column} <> {value})")
            }
            CmpOp::Eq | CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => {
                let value = self.scalar_value(field, value);
                format!("{column} {} {value}", sql_operator(op))
            }
        }
    }

    fn scalar_value(&mut self, field: &Field, value: &Value) -> String {
        if *field == Field::Since {
            let param = match value {
                Value::Int(year) => SqlParam::Int(*year),
                Value::Text(text) => text
                    .parse()
                    .map_or_else(|_| SqlParam::Text(text.clone()), SqlParam::Int),
            };
            return self.bind(param);
        }
        let text = value_text(value);
        match self.dialect {
            Dialect::Postgres => {
                let placeholder = self.bind(SqlParam::Text(with_utc_offset(text)));
                format!("{placeholder}::timestamptz")
            }
            // sqlx writes SQLite timestamps as RFC 3339 with a 'T' separator.
            Dialect::Sqlite => {
                self.bind(SqlParam::Text(with_utc_offset(text).replacen(' ', "T", 1)))
            }
        }
    }
}

fn scalar_column(field: &Field) -> &'static str {
    if *field == Field::Since {
        "o.relationship_since"
    } else {
        "c.created_at"
    }
}

/// Appends `+00:00` to the parser's normalised `YYYY-MM-DD HH:MM:SS` (UTC)
/// form, matching sqlx's SQLite text format and pinning PostgreSQL's
/// interpretation to UTC regardless of the session time zone. Other text is
/// left alone.
fn with_utc_offset(text: String) -> String {
    let b = text.as_bytes();
    let normalised = b.len() == 19
        && b[10] == b' '
        && b.iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10 | 13 | 16) || c.is_ascii_digit());
    if normalised {
        text + "+00:00"
    } else {
        text
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::Text(text) => text.clone(),
        Value::Int(n) => n.to_string(),
    }
}

fn not_if(negated: bool) -> &'static str {
    if negated {
        "NOT "
    } else {
        ""
    }
}

fn sql_operator(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "=",
        CmpOp::Ne => "<>",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
        CmpOp::Contains => "LIKE",
        CmpOp::NotContains => "NOT LIKE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TE: &str = "EXISTS (SELECT 1 FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id WHERE ct.contact_id = c.id AND ";

    /// An expected parameter; `Key` is an attribute key, bound as a JSON path
    /// on SQLite and as the plain key on PostgreSQL.
    #[derive(Clone, Copy)]
    enum P {
        T(&'static str),
        /// A UTC timestamp written with a space; SQLite expects a 'T'.
        Ts(&'static str),
        I(i64),
        Key(&'static str),
    }

    fn expected_params(params: &[P], dialect: Dialect) -> Vec<SqlParam> {
        params
            .iter()
            .map(|param| match (*param, dialect) {
                (P::T(text), _) => SqlParam::Text(text.to_owned()),
                (P::Ts(text), Dialect::Sqlite) => SqlParam::Text(text.replacen(' ', "T", 1)),
                (P::Ts(text), Dialect::Postgres) => SqlParam::Text(text.to_owned()),
                (P::I(n), _) => SqlParam::Int(n),
                (P::Key(key), Dialect::Sqlite) => SqlParam::Text(format!("$.\"{key}\"")),
                (P::Key(key), Dialect::Postgres) => SqlParam::Text(key.to_owned()),
            })
            .collect()
    }

    fn compiled(input: &str, dialect: Dialect) -> SqlFilter {
        let segment = Segment::parse(input)
            .unwrap_or_else(|error| panic!("{input:?}: {error}\n{}", error.render(input)));
        compile(&segment, dialect, 1)
    }

    /// The `$N` numbers in the order they appear.
    fn placeholders(sql: &str) -> Vec<usize> {
        let mut numbers = Vec::new();
        let mut rest = sql;
        while let Some(at) = rest.find('$') {
            rest = &rest[at + 1..];
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            numbers.push(rest[..digits].parse().expect("a number after $"));
            rest = &rest[digits..];
        }
        numbers
    }

    /// The SQL must be built only from fixed text: the only quotes allowed
    /// are the empty string `''` and the LIKE escape `'\'`.
    fn assert_sql_is_fixed_text(sql: &str) {
        let without_literals = sql.replace("''", "").replace("'\\'", "");
        for forbidden in ["'", "\"", ";", "--", "/*"] {
            assert!(
                !without_literals.contains(forbidden),
                "{forbidden:?} in SQL: {sql}"
            );
        }
    }

    fn assert_well_formed(filter: &SqlFilter, first: usize) {
        let expected: Vec<usize> = (first..first + filter.params.len()).collect();
        assert_eq!(placeholders(&filter.sql), expected, "{}", filter.sql);
        assert_sql_is_fixed_text(&filter.sql);
        assert_eq!(
            filter.sql.matches('(').count(),
            filter.sql.matches(')').count(),
            "{}",
            filter.sql
        );
    }

    #[test]
    fn every_field_and_operator_compiles_to_the_expected_sql_in_both_dialects() {
        // (input, SQLite SQL, PostgreSQL SQL or "" when identical, params)
        let tag_exists = |condition: &str| format!("{TE}{condition})");
        let rows: Vec<(&str, String, String, Vec<P>)> = vec![
            ("email = Anna@Example.ORG", "c.email = $1".into(), "".into(), vec![P::T("anna@example.org")]),
            ("email != a@b.c", "(c.email IS NULL OR c.email <> $1)".into(), "".into(), vec![P::T("a@b.c")]),
            ("email ~ \"EXAMPLE\"", r"c.email LIKE $1 ESCAPE '\'".into(), "".into(), vec![P::T("%example%")]),
            ("email !~ x", r"(c.email IS NULL OR c.email NOT LIKE $1 ESCAPE '\')".into(), "".into(), vec![P::T("%x%")]),
            ("email in (A@x.org, b@x.org)", "c.email IN ($1, $2)".into(), "".into(), vec![P::T("a@x.org"), P::T("b@x.org")]),
            ("email not in (a@x.org)", "(c.email IS NULL OR c.email NOT IN ($1))".into(), "".into(), vec![P::T("a@x.org")]),
            ("email is empty", "(c.email IS NULL OR c.email = '')".into(), "".into(), vec![]),
            ("name = \"Yamada Taro\"", "lower(c.name) = lower($1)".into(), "".into(), vec![P::T("Yamada Taro")]),
            ("name != x", "(c.name IS NULL OR lower(c.name) <> lower($1))".into(), "".into(), vec![P::T("x")]),
            ("name ~ Yamada", r"lower(c.name) LIKE $1 ESCAPE '\'".into(), "".into(), vec![P::T("%yamada%")]),
            (r#"name !~ "50%_OFF\\""#, r"(c.name IS NULL OR lower(c.name) NOT LIKE $1 ESCAPE '\')".into(), "".into(), vec![P::T(r"%50\%\_off\\%")]),
            ("title in (Mayor)", "lower(c.title) IN (lower($1))".into(), "".into(), vec![P::T("Mayor")]),
            ("title is not empty", "(c.title IS NOT NULL AND c.title <> '')".into(), "".into(), vec![]),
            ("status = Active", "lower(c.status) = lower($1)".into(), "".into(), vec![P::T("active")]),
            ("status not in (bounced, blocklisted)", "(c.status IS NULL OR lower(c.status) NOT IN (lower($1), lower($2)))".into(), "".into(), vec![P::T("bounced"), P::T("blocklisted")]),
            ("language = fr", "lower(c.language) = lower($1)".into(), "".into(), vec![P::T("fr")]),
            ("language is empty", "(c.language IS NULL OR c.language = '')".into(), "".into(), vec![]),
            ("org ~ \"Embassy of\"", r"lower(o.name) LIKE $1 ESCAPE '\'".into(), "".into(), vec![P::T("%embassy of%")]),
            ("organisation is empty", "(o.name IS NULL OR o.name = '')".into(), "".into(), vec![]),
            ("kind = embassy", "lower(o.kind) = lower($1)".into(), "".into(), vec![P::T("embassy")]),
            ("kind != city", "(o.kind IS NULL OR lower(o.kind) <> lower($1))".into(), "".into(), vec![P::T("city")]),
            ("country in (fr, DE)", "lower(o.country) IN (lower($1), lower($2))".into(), "".into(), vec![P::T("FR"), P::T("DE")]),
            ("country not in (US, \"GB\")", "(o.country IS NULL OR lower(o.country) NOT IN (lower($1), lower($2)))".into(), "".into(), vec![P::T("US"), P::T("GB")]),
            ("region != Europe", "(o.region IS NULL OR lower(o.region) <> lower($1))".into(), "".into(), vec![P::T("Europe")]),
            ("city is empty", "(o.city IS NULL OR o.city = '')".into(), "".into(), vec![]),
            ("tz = \"Asia/Tokyo\"", "lower(o.timezone) = lower($1)".into(), "".into(), vec![P::T("Asia/Tokyo")]),
            ("relationship = sister", "lower(o.relationship) = lower($1)".into(), "".into(), vec![P::T("sister")]),
            ("since = 1990", "o.relationship_since = $1".into(), "".into(), vec![P::I(1990)]),
            ("since != 1990", "(o.relationship_since IS NULL OR o.relationship_since <> $1)".into(), "".into(), vec![P::I(1990)]),
            ("since < 1990", "o.relationship_since < $1".into(), "".into(), vec![P::I(1990)]),
            ("since <= 1990", "o.relationship_since <= $1".into(), "".into(), vec![P::I(1990)]),
            ("since > 1990", "o.relationship_since > $1".into(), "".into(), vec![P::I(1990)]),
            ("since >= 1990", "o.relationship_since >= $1".into(), "".into(), vec![P::I(1990)]),
            ("since in (1990, 2000)", "o.relationship_since IN ($1, $2)".into(), "".into(), vec![P::I(1990), P::I(2000)]),
            ("since not in (1990)", "(o.relationship_since IS NULL OR o.relationship_since NOT IN ($1))".into(), "".into(), vec![P::I(1990)]),
            ("since is empty", "o.relationship_since IS NULL".into(), "".into(), vec![]),
            ("since is not empty", "o.relationship_since IS NOT NULL".into(), "".into(), vec![]),
            ("tag = Sister-Cities", tag_exists("t.name = $1"), "".into(), vec![P::T("sister-cities")]),
            ("tag != press", format!("NOT {}", tag_exists("t.name = $1")), "".into(), vec![P::T("press")]),
            ("tag ~ City_", tag_exists(r"t.name LIKE $1 ESCAPE '\'"), "".into(), vec![P::T(r"%city\_%")]),
            ("tag !~ city", format!("NOT {}", tag_exists(r"t.name LIKE $1 ESCAPE '\'")), "".into(), vec![P::T("%city%")]),
            ("tag in (A, b)", tag_exists("t.name IN ($1, $2)"), "".into(), vec![P::T("a"), P::T("b")]),
            ("tag not in (a)", format!("NOT {}", tag_exists("t.name IN ($1)")), "".into(), vec![P::T("a")]),
            ("tag is empty", "NOT EXISTS (SELECT 1 FROM contact_tags ct WHERE ct.contact_id = c.id)".into(), "".into(), vec![]),
            ("tag is not empty", "EXISTS (SELECT 1 FROM contact_tags ct WHERE ct.contact_id = c.id)".into(), "".into(), vec![]),
            ("created >= 2024-01-31", "c.created_at >= $1".into(), "c.created_at >= $1::timestamptz".into(), vec![P::Ts("2024-01-31 00:00:00+00:00")]),
            ("created < \"2024-03-01T08:00:00+09:00\"", "c.created_at < $1".into(), "c.created_at < $1::timestamptz".into(), vec![P::Ts("2024-02-29 23:00:00+00:00")]),
            ("created > \"2024-01-31T10:20:30.5Z\"", "c.created_at > $1".into(), "c.created_at > $1::timestamptz".into(), vec![P::Ts("2024-01-31 10:20:30+00:00")]),
            ("created <= 1999-12-31", "c.created_at <= $1".into(), "c.created_at <= $1::timestamptz".into(), vec![P::Ts("1999-12-31 00:00:00+00:00")]),
            ("attr.language = \"FR\"", "lower(json_extract(c.attributes, $1)) = lower($2)".into(), "lower((c.attributes ->> $1)) = lower($2)".into(), vec![P::Key("language"), P::T("FR")]),
            ("attr.x-Y != 1", "(json_extract(c.attributes, $1) IS NULL OR lower(json_extract(c.attributes, $2)) <> lower($3))".into(), "((c.attributes ->> $1) IS NULL OR lower((c.attributes ->> $2)) <> lower($3))".into(), vec![P::Key("x-Y"), P::Key("x-Y"), P::T("1")]),
            ("attr.a ~ B", r"lower(json_extract(c.attributes, $1)) LIKE $2 ESCAPE '\'".into(), r"lower((c.attributes ->> $1)) LIKE $2 ESCAPE '\'".into(), vec![P::Key("a"), P::T("%b%")]),
            ("attr.a !~ b", r"(json_extract(c.attributes, $1) IS NULL OR lower(json_extract(c.attributes, $2)) NOT LIKE $3 ESCAPE '\')".into(), r"((c.attributes ->> $1) IS NULL OR lower((c.attributes ->> $2)) NOT LIKE $3 ESCAPE '\')".into(), vec![P::Key("a"), P::Key("a"), P::T("%b%")]),
            ("attr.a in (x, y)", "lower(json_extract(c.attributes, $1)) IN (lower($2), lower($3))".into(), "lower((c.attributes ->> $1)) IN (lower($2), lower($3))".into(), vec![P::Key("a"), P::T("x"), P::T("y")]),
            ("attr.a not in (x)", "(json_extract(c.attributes, $1) IS NULL OR lower(json_extract(c.attributes, $2)) NOT IN (lower($3)))".into(), "((c.attributes ->> $1) IS NULL OR lower((c.attributes ->> $2)) NOT IN (lower($3)))".into(), vec![P::Key("a"), P::Key("a"), P::T("x")]),
            ("attr.a is empty", "(json_extract(c.attributes, $1) IS NULL OR json_extract(c.attributes, $2) = '')".into(), "((c.attributes ->> $1) IS NULL OR (c.attributes ->> $2) = '')".into(), vec![P::Key("a"), P::Key("a")]),
            ("attr.a is not empty", "(json_extract(c.attributes, $1) IS NOT NULL AND json_extract(c.attributes, $2) <> '')".into(), "((c.attributes ->> $1) IS NOT NULL AND (c.attributes ->> $2) <> '')".into(), vec![P::Key("a"), P::Key("a")]),
        ];
        for (input, sqlite, postgres, params) in rows {
            let postgres = if postgres.is_empty() {
                sqlite.clone()
            } else {
                postgres
            };
            for (dialect, sql) in [(Dialect::Sqlite, &sqlite), (Dialect::Postgres, &postgres)] {
                let filter = compiled(input, dialect);
                assert_eq!(&filter.sql, sql, "{input} ({dialect:?})");
                assert_eq!(
                    filter.params,
                    expected_params(&params, dialect),
                    "{input} ({dialect:?})"
                );
                assert_well_formed(&filter, 1);
            }
        }
    }

    #[test]
    fn boolean_operators_are_parenthesised_and_params_follow_text_order() {
        let filter = compiled(
            "not (status = unsubscribed) and (kind = embassy or tag = x)",
            Dialect::Postgres,
        );
        assert_eq!(
            filter.sql,
            format!(
                "(NOT COALESCE((lower(c.status) = lower($1)), FALSE) AND (lower(o.kind) = lower($2) OR {TE}t.name = $3)))"
            )
        );
        assert_eq!(
            filter.params,
            vec![
                SqlParam::Text("unsubscribed".into()),
                SqlParam::Text("embassy".into()),
                SqlParam::Text("x".into()),
            ]
        );
        let filter = compiled("tag = a or tag = b and not not since > 1", Dialect::Sqlite);
        assert_eq!(
            filter.sql,
            format!(
                "({TE}t.name = $1) OR ({TE}t.name = $2) AND NOT COALESCE((NOT COALESCE((o.relationship_since > $3), FALSE)), FALSE)))"
            )
        );
    }

    #[test]
    fn placeholders_are_numbered_from_first_param() {
        let segment = Segment::parse("kind in (city, embassy) and attr.a = x").unwrap();
        let filter = compile(&segment, Dialect::Sqlite, 5);
        assert_eq!(
            filter.sql,
            "(lower(o.kind) IN (lower($5), lower($6)) AND lower(json_extract(c.attributes, $7)) = lower($8))"
        );
        assert_eq!(filter.params.len(), 4);
        assert_well_formed(&filter, 5);
        assert_eq!(
            compile(&segment, Dialect::Postgres, 0),
            compile(&segment, Dialect::Postgres, 1)
        );
    }

    #[test]
    fn like_patterns_escape_percent_underscore_and_backslash() {
        let filter = compiled(r#"title ~ "100% _real_ C:\\DOS""#, Dialect::Sqlite);
        assert_eq!(
            filter.params,
            vec![SqlParam::Text(r"%100\% \_real\_ c:\\dos%".into())]
        );
    }

    #[test]
    fn injection_attempts_are_bound_as_parameters_not_spliced() {
        let attacks = [
            (
                "name = \"x'; drop table contacts; --\"",
                "x'; drop table contacts; --",
            ),
            ("tag = \"a) or 1=1 --\"", "a) or 1=1 --"),
            ("name ~ \"%' OR '1'='1\"", "' or '1'='1"),
            ("email = \"a@b.c' OR 1=1 --\"", "a@b.c' or 1=1 --"),
            (
                "country in (\"FR'); DELETE FROM contacts; --\")",
                "FR'); DELETE FROM contacts; --",
            ),
            ("attr.note = \"$1 $2 ?1 :x @y\"", "$1 $2 ?1 :x @y"),
            ("region != \"\\\" OR \\\"\\\"=\\\"\"", "\" OR \"\"=\""),
            (
                "city is not empty and org = \"/* */ UNION SELECT\"",
                "/* */ UNION SELECT",
            ),
        ];
        for (input, payload) in attacks {
            for dialect in [Dialect::Sqlite, Dialect::Postgres] {
                let filter = compiled(input, dialect);
                assert_well_formed(&filter, 1);
                let lowered = filter.sql.to_lowercase();
                for word in ["drop", "delete", "union", "1=1", "--", "?1", ":x", "@y"] {
                    assert!(
                        !lowered.contains(word),
                        "{word:?} leaked into {}",
                        filter.sql
                    );
                }
                assert!(
                    filter.params.iter().any(|param| matches!(
                        param,
                        SqlParam::Text(text) if text.to_lowercase().contains(&payload.to_lowercase())
                    )),
                    "{payload:?} not among {:?}",
                    filter.params
                );
            }
        }
    }

    #[test]
    fn hostile_attribute_keys_and_non_numeric_years_are_parse_errors() {
        for input in [
            "attr.a'b = 1",
            "attr.x\"y = 1",
            "attr.x\"y\" = 1",
            "attr.a;drop = 1",
            "attr.a.b = 1",
            "attr.a) or (1 = 1",
            "since = \"1; drop table contacts\"",
            "created > \"2024-01-01'; --\"",
            "kind = \"embassy' or 1=1\"",
        ] {
            assert!(Segment::parse(input).is_err(), "{input} parsed");
        }
    }

    /// Compiles a hand-built tree: [`Segment`] can only be made by parsing.
    fn compile_expr(expr: &Expr, dialect: Dialect) -> SqlFilter {
        let mut compiler = Compiler {
            dialect,
            next: 1,
            params: Vec::new(),
        };
        let sql = compiler.expr(expr);
        SqlFilter {
            sql,
            params: compiler.params,
        }
    }

    #[test]
    fn hand_built_hostile_attribute_keys_are_still_only_bound() {
        let hostile = "x\"'); DROP TABLE contacts; --";
        let expr = Expr::Not(Box::new(Expr::Empty {
            field: Field::Attr(hostile.into()),
            negated: false,
        }));
        let filter = compile_expr(&expr, Dialect::Sqlite);
        assert_well_formed(&filter, 1);
        assert!(!filter.sql.contains("DROP"), "{}", filter.sql);
        assert_eq!(filter.params[0], SqlParam::Text(format!("$.\"{hostile}\"")));
        let filter = compile_expr(&expr, Dialect::Postgres);
        assert_well_formed(&filter, 1);
        assert_eq!(filter.params[0], SqlParam::Text(hostile.into()));
    }

    #[test]
    fn hand_built_trees_outside_the_parser_shapes_still_compile_safely() {
        let trees = [
            Expr::Cmp {
                field: Field::Created,
                op: CmpOp::Eq,
                value: Value::Text("not a date".into()),
            },
            Expr::Cmp {
                field: Field::Since,
                op: CmpOp::NotContains,
                value: Value::Int(19),
            },
            Expr::Cmp {
                field: Field::Since,
                op: CmpOp::Eq,
                value: Value::Text("x'y".into()),
            },
            Expr::Cmp {
                field: Field::Region,
                op: CmpOp::Lt,
                value: Value::Int(3),
            },
            Expr::Cmp {
                field: Field::Tag,
                op: CmpOp::Ge,
                value: Value::Text("m".into()),
            },
            Expr::In {
                field: Field::Created,
                values: vec![Value::Text("2024-01-01 00:00:00".into())],
                negated: true,
            },
            Expr::Empty {
                field: Field::Created,
                negated: true,
            },
        ];
        for tree in trees {
            for dialect in [Dialect::Sqlite, Dialect::Postgres] {
                let filter = compile_expr(&tree, dialect);
                assert_well_formed(&filter, 1);
                assert!(!filter.sql.contains("x'y"), "{}", filter.sql);
            }
        }
    }

    #[test]
    fn created_parameters_sort_correctly_against_stored_sqlx_timestamps() {
        // SQLite compares TEXT byte-wise; Rust's str ordering is the same.
        let param = match &compiled("created >= 2024-01-31", Dialect::Sqlite).params[0] {
            SqlParam::Text(text) => text.clone(),
            other => panic!("unexpected {other:?}"),
        };
        let before = [
            "2024-01-30T23:59:59.999999+00:00",
            "2024-01-30T23:59:59+00:00",
            "2023-12-31T12:00:00+00:00",
        ];
        let at_or_after = [
            "2024-01-31T00:00:00+00:00",
            "2024-01-31T00:00:00.000001+00:00",
            "2024-01-31T00:00:01+00:00",
            "2026-11-28T18:24:08.123456+00:00",
        ];
        for stored in before {
            assert!(stored < param.as_str(), "{stored} vs {param}");
        }
        for stored in at_or_after {
            assert!(stored >= param.as_str(), "{stored} vs {param}");
        }
        assert_eq!(param, "2024-01-31T00:00:00+00:00");
    }

    #[test]
    fn a_chain_of_conditions_up_to_the_length_limit_compiles() {
        let input = format!("{}tag = a", "tag = a and ".repeat(340));
        assert!(input.len() <= MAX_INPUT_CHARS);
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let filter = compiled(&input, dialect);
            assert_eq!(filter.params.len(), 341);
            assert_well_formed(&filter, 1);
        }
    }

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 33) % n as u64) as usize
        }

        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())]
        }
    }

    /// A random quoted value carrying the marker `zq` plus hostile characters.
    fn hostile_value(rng: &mut Rng) -> String {
        let pieces = [
            "'", "\\\"", "\\\\", ";", "--", "%", "_", " or 1=1", ")", "$1", "日",
        ];
        let body: String = (0..rng.below(5)).map(|_| rng.pick(&pieces)).collect();
        format!("\"zq{body}\"")
    }

    fn random_condition(rng: &mut Rng) -> String {
        let text_fields = [
            "email",
            "name",
            "title",
            "language",
            "org",
            "country",
            "region",
            "city",
            "tz",
            "tag",
            "attr.k",
            "attr.Other-key_2",
        ];
        match rng.below(8) {
            0 => format!(
                "since {} {}",
                rng.pick(&["=", "!=", "<", "<=", ">", ">="]),
                rng.pick(&["1990", "-1", "\"2001\""])
            ),
            1 => format!(
                "created {} {}",
                rng.pick(&["<", "<=", ">", ">="]),
                rng.pick(&["2024-01-31", "\"2024-01-31T10:00:00+09:00\""])
            ),
            2 => format!(
                "kind {} {}",
                rng.pick(&["=", "!="]),
                rng.pick(&["city", "EMBASSY"])
            ),
            3 => format!(
                "{} is {}empty",
                rng.pick(&text_fields),
                rng.pick(&["", "not "])
            ),
            4 => {
                let values: Vec<String> = (0..=rng.below(3)).map(|_| hostile_value(rng)).collect();
                format!(
                    "{} {}in ({})",
                    rng.pick(&text_fields),
                    rng.pick(&["", "not "]),
                    values.join(", ")
                )
            }
            _ => format!(
                "{} {} {}",
                rng.pick(&text_fields),
                rng.pick(&["=", "!=", "~", "!~"]),
                hostile_value(rng)
            ),
        }
    }

    fn random_segment(rng: &mut Rng, depth: usize) -> String {
        if depth == 0 || rng.below(3) == 0 {
            return random_condition(rng);
        }
        match rng.below(3) {
            0 => format!(
                "{} and {}",
                random_segment(rng, depth - 1),
                random_segment(rng, depth - 1)
            ),
            1 => format!(
                "({} or {})",
                random_segment(rng, depth - 1),
                random_segment(rng, depth - 1)
            ),
            _ => format!("not ({})", random_segment(rng, depth - 1)),
        }
    }

    #[test]
    fn generated_segments_compile_to_fixed_sql_with_one_placeholder_per_param() {
        let mut rng = Rng(2024);
        for _ in 0..400 {
            let input = random_segment(&mut rng, 4);
            let first = 1 + rng.below(4);
            let segment = Segment::parse(&input)
                .unwrap_or_else(|error| panic!("{input}: {error}\n{}", error.render(&input)));
            for dialect in [Dialect::Sqlite, Dialect::Postgres] {
                let filter = compile(&segment, dialect, first);
                assert_well_formed(&filter, first);
                assert!(
                    !filter.sql.to_lowercase().contains("zq"),
                    "{input} -> {}",
                    filter.sql
                );
                assert!(!filter.sql.contains("1=1"), "{input} -> {}", filter.sql);
            }
        }
    }
}
