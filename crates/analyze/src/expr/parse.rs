//! The expression grammar `ksw print` takes: a C subset over kernel
//! globals, parsed into an [`Expr`] tree.
//!
//! ```text
//! expr    := unary
//! unary   := '*' unary | '&' unary | '-' unary | '(' typename ')' unary | postfix
//! postfix := primary ( '.' NAME | '->' NAME | '[' expr ']' )*
//! primary := NAME | NUMBER | '(' expr ')' | 'per_cpu' '(' NAME ',' expr ')'
//! typename:= ('struct'|'union'|'enum')? NAME+ '*'*     e.g. unsigned long, struct rq *
//! ```

use std::fmt;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A global: a kernel or module symbol.
    Global(String),
    /// An integer literal.
    Number(i128),
    /// `e.name`.
    Member(Box<Expr>, String),
    /// `e->name`.
    Arrow(Box<Expr>, String),
    /// `e[i]`.
    Index(Box<Expr>, Box<Expr>),
    /// `*e`.
    Deref(Box<Expr>),
    /// `&e`.
    AddressOf(Box<Expr>),
    /// `-e`.
    Negate(Box<Expr>),
    /// `(type)e`.
    Cast(TypeName, Box<Expr>),
    /// `per_cpu(var, cpu)`.
    PerCpu(String, Box<Expr>),
}

/// A type as written in a cast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeName {
    /// `struct`, `union` or `enum`, if written.
    pub keyword: Option<&'static str>,
    /// The name, words joined by one space (`unsigned long`).
    pub name: String,
    /// How many `*` follow.
    pub pointers: u32,
}

impl fmt::Display for TypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(k) = self.keyword {
            write!(f, "{k} ")?;
        }
        write!(f, "{}", self.name)?;
        if self.pointers > 0 {
            write!(f, " {}", "*".repeat(self.pointers as usize))?;
        }
        Ok(())
    }
}

/// Why an expression does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at column {column}: {what}")]
pub struct ParseError {
    /// 1-based column of the offending character.
    pub column: usize,
    /// What was wrong there.
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Name(String),
    Number(i128),
    Punct(&'static str),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Name(n) => write!(f, "`{n}`"),
            Token::Number(n) => write!(f, "`{n}`"),
            Token::Punct(p) => write!(f, "`{p}`"),
        }
    }
}

/// Words that start a type name in a cast.
const TYPE_WORDS: &[&str] = &[
    "struct", "union", "enum", "unsigned", "signed", "const", "volatile", "char", "short", "int",
    "long", "void", "_Bool", "bool", "float", "double",
];

/// Words that may follow another in a type name (`unsigned long int`).
const TYPE_TAIL_WORDS: &[&str] = &[
    "unsigned", "signed", "char", "short", "int", "long", "const", "volatile",
];

fn lex(text: &str) -> Result<Vec<(Token, usize)>, ParseError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let column = i + 1;
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push((Token::Name(text[start..i].to_string()), column));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let word = &text[start..i];
            let digits = word.trim_end_matches(['u', 'U', 'l', 'L']);
            let parsed = match digits.strip_prefix("0x").or(digits.strip_prefix("0X")) {
                Some(hex) => i128::from_str_radix(hex, 16),
                None => digits.parse::<i128>(),
            };
            let value = parsed
                .ok()
                .filter(|v| *v <= i128::from(u64::MAX))
                .ok_or_else(|| ParseError {
                    column,
                    what: format!("`{word}` is not a 64-bit integer"),
                })?;
            out.push((Token::Number(value), column));
        } else {
            let punct = ["->", ".", "[", "]", "(", ")", "*", "&", "-", ","]
                .into_iter()
                .find(|p| text[i..].starts_with(p))
                .ok_or_else(|| ParseError {
                    column,
                    what: format!(
                        "`{}` is not part of the expressions ksw reads",
                        text[i..].chars().next().unwrap_or(' ')
                    ),
                })?;
            out.push((Token::Punct(punct), column));
            i += punct.len();
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    pos: usize,
    end_column: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Token> {
        self.tokens.get(self.pos + ahead).map(|(t, _)| t)
    }

    fn column(&self) -> usize {
        self.tokens
            .get(self.pos)
            .map_or(self.end_column, |(_, c)| *c)
    }

    fn error(&self, what: impl Into<String>) -> ParseError {
        ParseError {
            column: self.column(),
            what: what.into(),
        }
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).map(|(t, _)| t.clone());
        self.pos += 1;
        t
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Token::Punct(q)) if *q == p)
    }

    fn expect_punct(&mut self, p: &str) -> Result<(), ParseError> {
        if self.is_punct(p) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(match self.peek() {
                Some(t) => format!("expected `{p}`, found {t}"),
                None => format!("expected `{p}` at the end"),
            }))
        }
    }

    fn name(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Some(Token::Name(n)) => {
                let n = n.clone();
                self.pos += 1;
                Ok(n)
            }
            Some(t) => Err(self.error(format!("expected a name, found {t}"))),
            None => Err(self.error("expected a name at the end")),
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.is_punct("*") {
            self.pos += 1;
            return Ok(Expr::Deref(Box::new(self.unary()?)));
        }
        if self.is_punct("&") {
            self.pos += 1;
            return Ok(Expr::AddressOf(Box::new(self.unary()?)));
        }
        if self.is_punct("-") {
            self.pos += 1;
            return Ok(Expr::Negate(Box::new(self.unary()?)));
        }
        if self.is_punct("(")
            && matches!(self.peek_at(1), Some(Token::Name(n)) if TYPE_WORDS.contains(&n.as_str())
                || self.cast_follows())
        {
            self.pos += 1;
            let ty = self.type_name()?;
            self.expect_punct(")")?;
            return Ok(Expr::Cast(ty, Box::new(self.unary()?)));
        }
        self.postfix()
    }

    /// `( NAME * ... )` followed by an operand: a cast to a typedef name
    /// (`(u64)x`, `(pid_t *)p`), not a parenthesised global.
    fn cast_follows(&self) -> bool {
        let mut i = 2;
        while matches!(self.peek_at(i), Some(Token::Punct("*"))) {
            i += 1;
        }
        if !matches!(self.peek_at(i), Some(Token::Punct(")"))) {
            return false;
        }
        matches!(
            self.peek_at(i + 1),
            Some(Token::Name(_) | Token::Number(_) | Token::Punct("(" | "*" | "&"))
        )
    }

    fn type_name(&mut self) -> Result<TypeName, ParseError> {
        let mut words: Vec<String> = Vec::new();
        let mut keyword = None;
        if let Some(Token::Name(n)) = self.peek()
            && let Some(k) = ["struct", "union", "enum"].into_iter().find(|k| k == n)
        {
            keyword = Some(k);
            self.pos += 1;
            words.push(self.name()?);
        } else {
            words.push(self.name()?);
            while let Some(Token::Name(n)) = self.peek() {
                if !TYPE_TAIL_WORDS.contains(&n.as_str())
                    && !TYPE_TAIL_WORDS.contains(&words[words.len() - 1].as_str())
                {
                    break;
                }
                words.push(n.clone());
                self.pos += 1;
            }
        }
        let mut pointers = 0;
        while self.is_punct("*") {
            self.pos += 1;
            pointers += 1;
        }
        Ok(TypeName {
            keyword,
            name: words.join(" "),
            pointers,
        })
    }

    fn postfix(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.primary()?;
        loop {
            if self.is_punct(".") {
                self.pos += 1;
                e = Expr::Member(Box::new(e), self.name()?);
            } else if self.is_punct("->") {
                self.pos += 1;
                e = Expr::Arrow(Box::new(e), self.name()?);
            } else if self.is_punct("[") {
                self.pos += 1;
                let index = self.unary()?;
                self.expect_punct("]")?;
                e = Expr::Index(Box::new(e), Box::new(index));
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        match self.next() {
            Some(Token::Name(n)) if n == "per_cpu" && self.is_punct("(") => {
                self.pos += 1;
                let var = self.name()?;
                self.expect_punct(",")?;
                let cpu = self.unary()?;
                self.expect_punct(")")?;
                Ok(Expr::PerCpu(var, Box::new(cpu)))
            }
            Some(Token::Name(n)) => Ok(Expr::Global(n)),
            Some(Token::Number(v)) => Ok(Expr::Number(v)),
            Some(Token::Punct("(")) => {
                let e = self.unary()?;
                self.expect_punct(")")?;
                Ok(e)
            }
            Some(t) => {
                self.pos -= 1;
                Err(self.error(format!("expected a name, a number or `(`, found {t}")))
            }
            None => Err(self.error("the expression is empty or ends too early")),
        }
    }
}

/// Parses `text`.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let mut p = Parser {
        tokens: lex(text)?,
        pos: 0,
        end_column: text.len() + 1,
    };
    let e = p.unary()?;
    match p.peek() {
        None => Ok(e),
        Some(t) => Err(p.error(format!("unexpected {t} after a complete expression"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(n: &str) -> Box<Expr> {
        Box::new(Expr::Global(n.into()))
    }

    #[test]
    fn postfix_chains() {
        assert_eq!(
            parse("init_task.comm").unwrap(),
            Expr::Member(g("init_task"), "comm".into())
        );
        assert_eq!(
            parse("init_task.tasks.next->prev[0]").unwrap(),
            Expr::Index(
                Box::new(Expr::Arrow(
                    Box::new(Expr::Member(
                        Box::new(Expr::Member(g("init_task"), "tasks".into())),
                        "next".into()
                    )),
                    "prev".into()
                )),
                Box::new(Expr::Number(0))
            )
        );
    }

    #[test]
    fn casts_and_unary() {
        assert_eq!(
            parse("*(struct task_struct *)0xffff888000000000").unwrap(),
            Expr::Deref(Box::new(Expr::Cast(
                TypeName {
                    keyword: Some("struct"),
                    name: "task_struct".into(),
                    pointers: 1
                },
                Box::new(Expr::Number(0xffff_8880_0000_0000))
            )))
        );
        assert_eq!(
            parse("(unsigned long)jiffies").unwrap(),
            Expr::Cast(
                TypeName {
                    keyword: None,
                    name: "unsigned long".into(),
                    pointers: 0
                },
                g("jiffies")
            )
        );
        // a typedef name in a cast, and a parenthesised global
        assert!(matches!(parse("(u64)jiffies").unwrap(), Expr::Cast(..)));
        assert_eq!(parse("(jiffies)").unwrap(), *g("jiffies"));
        assert_eq!(
            parse("&per_cpu(runqueues, 1).curr").unwrap(),
            Expr::AddressOf(Box::new(Expr::Member(
                Box::new(Expr::PerCpu("runqueues".into(), Box::new(Expr::Number(1)))),
                "curr".into()
            )))
        );
    }

    #[test]
    fn errors_name_the_column() {
        let e = parse("init_task.").unwrap_err();
        assert_eq!(e.column, 11);
        let e = parse("a + b").unwrap_err();
        assert_eq!(e.column, 3);
        assert!(e.what.contains('+'), "{e}");
        let e = parse("a[1").unwrap_err();
        assert!(e.what.contains("`]`"), "{e}");
        assert!(parse("").is_err());
        assert!(parse("0x1ffffffffffffffff").is_err());
        assert!(parse("a b").is_err());
    }
}
