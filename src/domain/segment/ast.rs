//! The segment tree: expressions, fields, operators and values, and the
//! canonical form they print as (it parses back to the same tree).

use std::fmt;

/// A segment expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp {
        field: Field,
        op: CmpOp,
        value: Value,
    },
    In {
        field: Field,
        values: Vec<Value>,
        negated: bool,
    },
    Empty {
        field: Field,
        negated: bool,
    },
}

/// A field a condition can test.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    /// The contact's e-mail address.
    Email,
    /// The contact's name.
    Name,
    Title,
    Status,
    Language,
    /// The organisation's name.
    Organisation,
    Kind,
    Country,
    Region,
    City,
    TimeZone,
    Relationship,
    /// The year the relationship started (an integer).
    Since,
    Tag,
    /// When the contact was created.
    Created,
    /// A custom attribute; the key matches `[A-Za-z0-9_-]+` when parsed.
    Attr(String),
}

impl Field {
    /// The canonical name of a built-in field (`None` for attributes).
    pub fn builtin_name(&self) -> Option<&'static str> {
        Some(match self {
            Field::Email => "email",
            Field::Name => "name",
            Field::Title => "title",
            Field::Status => "status",
            Field::Language => "language",
            Field::Organisation => "organisation",
            Field::Kind => "kind",
            Field::Country => "country",
            Field::Region => "region",
            Field::City => "city",
            Field::TimeZone => "timezone",
            Field::Relationship => "relationship",
            Field::Since => "since",
            Field::Tag => "tag",
            Field::Created => "created",
            Field::Attr(_) => return None,
        })
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Attr(key) => write!(f, "attr.{key}"),
            other => f.write_str(other.builtin_name().unwrap_or("?")),
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    /// Case-insensitive "contains" (`~`).
    Contains,
    /// Case-insensitive "does not contain" (`!~`).
    NotContains,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// The operator as written in a segment.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Contains => "~",
            CmpOp::NotContains => "!~",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    pub(super) fn class(self) -> OpClass {
        match self {
            CmpOp::Eq | CmpOp::Ne => OpClass::Equality,
            CmpOp::Contains | CmpOp::NotContains => OpClass::Pattern,
            CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => OpClass::Ordering,
        }
    }
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Int(i64),
}

impl fmt::Display for Value {
    /// Text is always printed double-quoted, with `"` and `\` escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(n) => write!(f, "{n}"),
            Value::Text(text) => {
                f.write_str("\"")?;
                for c in text.chars() {
                    if matches!(c, '"' | '\\') {
                        f.write_str("\\")?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str("\"")
            }
        }
    }
}

impl fmt::Display for Expr {
    /// A canonical form that parses back to the same tree, with only the
    /// parentheses the tree needs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Or(left, right) => {
                write_child(f, left, 1, false)?;
                f.write_str(" or ")?;
                write_child(f, right, 1, true)
            }
            Expr::And(left, right) => {
                write_child(f, left, 2, false)?;
                f.write_str(" and ")?;
                write_child(f, right, 2, true)
            }
            Expr::Not(inner) => {
                f.write_str("not ")?;
                write_child(f, inner, 3, false)
            }
            Expr::Cmp { field, op, value } => write!(f, "{field} {op} {value}"),
            Expr::In {
                field,
                values,
                negated,
            } => {
                write!(f, "{field} {}in (", if *negated { "not " } else { "" })?;
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{value}")?;
                }
                f.write_str(")")
            }
            Expr::Empty { field, negated } => {
                write!(f, "{field} is {}empty", if *negated { "not " } else { "" })
            }
        }
    }
}

fn precedence(expr: &Expr) -> u8 {
    match expr {
        Expr::Or(..) => 1,
        Expr::And(..) => 2,
        _ => 3,
    }
}

/// Writes a child of a binary/unary node, parenthesised when its precedence
/// requires it (right operands need parentheses at equal precedence because
/// `and`/`or` associate to the left).
fn write_child(f: &mut fmt::Formatter<'_>, child: &Expr, parent: u8, right: bool) -> fmt::Result {
    let own = precedence(child);
    if own < parent || (right && own == parent) {
        write!(f, "({child})")
    } else {
        write!(f, "{child}")
    }
}

/// What kind of operator a condition uses, for the per-field checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OpClass {
    Equality,
    Pattern,
    Ordering,
    List,
    Empty,
}
