//! The recursive-descent parser over the lexer's tokens, with the depth
//! and list limits.

use super::ast::{CmpOp, Expr, Field, OpClass, Value};
use super::fields::{check_operator, check_value, resolve_field};
use super::lexer::{describe, is_keyword, lex, Tok, Token};
use super::{SegmentError, MAX_DEPTH, MAX_LIST_VALUES, OPERATOR_LIST};

pub(super) struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    pub(super) fn new(input: &str) -> Parser {
        Parser {
            tokens: lex(input),
            pos: 0,
            depth: 0,
        }
    }

    pub(super) fn peek(&self) -> Result<&Token, SegmentError> {
        let token = &self.tokens[self.pos];
        match &token.tok {
            Tok::Error(error) => Err(error.clone()),
            _ => Ok(token),
        }
    }

    fn peek_owned(&self) -> Result<Token, SegmentError> {
        self.peek().cloned()
    }

    fn bump(&mut self) {
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        matches!(&self.tokens[self.pos].tok, Tok::Word(w) if is_keyword(w, keyword))
    }

    fn enter(&mut self, column: usize) -> Result<(), SegmentError> {
        if self.depth >= MAX_DEPTH {
            return Err(SegmentError::new(
                column,
                format!(
                    "segment is nested too deeply (the limit is {MAX_DEPTH} levels of \
                     parentheses and \"not\")"
                ),
            ));
        }
        self.depth += 1;
        Ok(())
    }

    pub(super) fn parse_or(&mut self) -> Result<Expr, SegmentError> {
        let mut left = self.parse_and()?;
        while self.at_keyword("or") {
            self.bump();
            let right = self.parse_and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_and(&mut self) -> Result<Expr, SegmentError> {
        let mut left = self.parse_unary()?;
        while self.at_keyword("and") {
            self.bump();
            let right = self.parse_unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_unary(&mut self) -> Result<Expr, SegmentError> {
        if self.at_keyword("not") {
            let column = self.peek()?.column;
            self.enter(column)?;
            self.bump();
            let inner = self.parse_unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.parse_primary()
    }

    fn parse_primary(&mut self) -> Result<Expr, SegmentError> {
        let token = self.peek_owned()?;
        let column = token.column;
        match &token.tok {
            Tok::LParen => {
                self.enter(column)?;
                self.bump();
                let inner = self.parse_or()?;
                let close = self.peek_owned()?;
                match close.tok {
                    Tok::RParen => self.bump(),
                    Tok::Eof => {
                        return Err(SegmentError::new(
                            close.column,
                            format!(
                                "expected \")\" to close the \"(\" at column {column}, \
                                 found end of input"
                            ),
                        ));
                    }
                    ref other => {
                        return Err(SegmentError::new(
                            close.column,
                            format!(
                                "expected \"and\", \"or\" or \")\", found {}",
                                describe(other)
                            ),
                        ));
                    }
                }
                self.depth -= 1;
                Ok(inner)
            }
            Tok::Word(word)
                if ["and", "or", "in", "is"]
                    .iter()
                    .any(|keyword| is_keyword(word, keyword)) =>
            {
                Err(SegmentError::new(
                    column,
                    format!("expected a condition, found {}", describe(&token.tok)),
                ))
            }
            Tok::Word(word) => self.parse_condition(word, column),
            Tok::RParen => Err(SegmentError::new(
                column,
                "unexpected \")\" (expected a condition)",
            )),
            Tok::Eof => Err(SegmentError::new(
                column,
                "expected a condition, found end of input",
            )),
            other => Err(SegmentError::new(
                column,
                format!(
                    "expected a field name such as kind or country, found {}",
                    describe(other)
                ),
            )),
        }
    }

    fn parse_condition(&mut self, word: &str, column: usize) -> Result<Expr, SegmentError> {
        let field = resolve_field(word, column)?;
        self.bump();
        let next = self.peek_owned()?;
        match &next.tok {
            Tok::Op(op) => {
                check_operator(&field, op.symbol(), op.class(), next.column)?;
                self.bump();
                let value = self.parse_value(&field, *op)?;
                Ok(Expr::Cmp {
                    field,
                    op: *op,
                    value,
                })
            }
            Tok::Word(w) if is_keyword(w, "in") => {
                check_operator(&field, "in", OpClass::List, next.column)?;
                self.bump();
                let values = self.parse_list(&field)?;
                Ok(Expr::In {
                    field,
                    values,
                    negated: false,
                })
            }
            Tok::Word(w) if is_keyword(w, "not") => {
                self.bump();
                let after = self.peek_owned()?;
                if !matches!(&after.tok, Tok::Word(w) if is_keyword(w, "in")) {
                    return Err(SegmentError::new(
                        after.column,
                        format!(
                            "expected \"in\" after \"{field} not\", found {} (to negate a \
                             condition, write not ({field} ...))",
                            describe(&after.tok)
                        ),
                    ));
                }
                check_operator(&field, "not in", OpClass::List, next.column)?;
                self.bump();
                let values = self.parse_list(&field)?;
                Ok(Expr::In {
                    field,
                    values,
                    negated: true,
                })
            }
            Tok::Word(w) if is_keyword(w, "is") => {
                self.bump();
                let negated = self.at_keyword("not");
                if negated {
                    self.bump();
                }
                let after = self.peek_owned()?;
                let written = if negated { "is not" } else { "is" };
                if !matches!(&after.tok, Tok::Word(w) if is_keyword(w, "empty")) {
                    return Err(SegmentError::new(
                        after.column,
                        format!(
                            "expected \"empty\" after \"{written}\", found {}",
                            describe(&after.tok)
                        ),
                    ));
                }
                check_operator(
                    &field,
                    &format!("{written} empty"),
                    OpClass::Empty,
                    next.column,
                )?;
                self.bump();
                Ok(Expr::Empty { field, negated })
            }
            _ => Err(SegmentError::new(
                next.column,
                format!("expected an operator ({OPERATOR_LIST}) after field \"{field}\""),
            )),
        }
    }

    fn parse_value(&mut self, field: &Field, op: CmpOp) -> Result<Value, SegmentError> {
        let token = self.peek_owned()?;
        let text = match &token.tok {
            Tok::Word(word)
                if ["and", "or", "not"]
                    .iter()
                    .any(|keyword| is_keyword(word, keyword)) =>
            {
                return Err(SegmentError::new(
                    token.column,
                    format!(
                        "expected a value after \"{op}\", found the keyword \"{word}\" \
                         (quote it to use it as a value: \"{word}\")"
                    ),
                ));
            }
            Tok::Word(text) | Tok::Str(text) => text,
            Tok::LParen => {
                return Err(SegmentError::new(
                    token.column,
                    format!(
                        "expected a value after \"{op}\", found \"(\" (to match several \
                         values, write {field} in (a, b))"
                    ),
                ));
            }
            other => {
                return Err(SegmentError::new(
                    token.column,
                    format!("expected a value after \"{op}\", found {}", describe(other)),
                ));
            }
        };
        let value = check_value(field, text, op.class() == OpClass::Pattern, token.column)?;
        self.bump();
        Ok(value)
    }

    fn parse_list(&mut self, field: &Field) -> Result<Vec<Value>, SegmentError> {
        let open = self.peek_owned()?;
        if !matches!(open.tok, Tok::LParen) {
            return Err(SegmentError::new(
                open.column,
                format!(
                    "expected \"(\" after \"in\", found {} (write a list such as \
                     country in (FR, DE))",
                    describe(&open.tok)
                ),
            ));
        }
        self.bump();
        let mut values = Vec::new();
        loop {
            let token = self.peek_owned()?;
            match &token.tok {
                Tok::Word(text) | Tok::Str(text) => {
                    if values.len() == MAX_LIST_VALUES {
                        return Err(SegmentError::new(
                            token.column,
                            format!("too many values in the list (the limit is {MAX_LIST_VALUES})"),
                        ));
                    }
                    values.push(check_value(field, text, false, token.column)?);
                    self.bump();
                }
                Tok::RParen if values.is_empty() => {
                    return Err(SegmentError::new(
                        token.column,
                        "expected a value, found \")\" (a list needs at least one value)",
                    ));
                }
                other => {
                    return Err(SegmentError::new(
                        token.column,
                        format!("expected a value in the list, found {}", describe(other)),
                    ));
                }
            }
            let separator = self.peek_owned()?;
            match separator.tok {
                Tok::Comma => self.bump(),
                Tok::RParen => {
                    self.bump();
                    return Ok(values);
                }
                Tok::Eof => {
                    return Err(SegmentError::new(
                        separator.column,
                        format!(
                            "expected \")\" to close the list opened at column {}, found \
                             end of input",
                            open.column
                        ),
                    ));
                }
                ref other => {
                    return Err(SegmentError::new(
                        separator.column,
                        format!(
                            "expected \",\" or \")\" in the list, found {}",
                            describe(other)
                        ),
                    ));
                }
            }
        }
    }

    pub(super) fn expect_end(&self) -> Result<(), SegmentError> {
        let token = self.peek()?;
        match &token.tok {
            Tok::Eof => Ok(()),
            Tok::RParen => Err(SegmentError::new(
                token.column,
                "unexpected \")\" (there is no matching \"(\")",
            )),
            other => Err(SegmentError::new(
                token.column,
                format!(
                    "expected \"and\", \"or\" or end of input, found {}",
                    describe(other)
                ),
            )),
        }
    }
}
