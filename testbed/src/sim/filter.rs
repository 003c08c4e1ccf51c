//! The SCIM filter subset the System Log API accepts (reference.md §2.1): `eq ne co sw ew
//! pr gt ge lt le`, combined with `and` / `or` and parentheses, over dotted attribute paths.

use serde_json::Value;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Cmp { path: String, op: Op, value: Value },
    Present(String),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// Why a filter was refused, with the Okta error code to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub code: &'static str,
    pub message: String,
}

fn invalid(text: &str, why: &str) -> FilterError {
    FilterError {
        code: "E0000053",
        message: format!("Invalid filter '{text}': {why}"),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Open,
    Close,
}

fn tokens(text: &str) -> Result<Vec<Tok>, FilterError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' | '\t' => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Tok::Open);
            }
            ')' => {
                chars.next();
                out.push(Tok::Close);
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => s.extend(chars.next()),
                        Some('"') => break,
                        Some(c) => s.push(c),
                        None => return Err(invalid(text, "unterminated string")),
                    }
                }
                out.push(Tok::Str(s));
            }
            _ => {
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c == ' ' || c == '(' || c == ')' || c == '"' {
                        break;
                    }
                    w.push(c);
                    chars.next();
                }
                out.push(Tok::Word(w));
            }
        }
    }
    Ok(out)
}

/// Parses a filter expression.
pub fn parse(text: &str) -> Result<Filter, FilterError> {
    let toks = tokens(text)?;
    let mut p = Parser { toks, pos: 0, text };
    let f = p.or()?;
    if p.pos != p.toks.len() {
        return Err(invalid(text, "unexpected trailing input"));
    }
    Ok(f)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn keyword(&self, k: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k))
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.pos += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.factor()?;
        while self.keyword("and") {
            self.pos += 1;
            left = Filter::And(Box::new(left), Box::new(self.factor()?));
        }
        Ok(left)
    }

    fn factor(&mut self) -> Result<Filter, FilterError> {
        if self.keyword("not") {
            self.pos += 1;
            return Ok(Filter::Not(Box::new(self.factor()?)));
        }
        match self.toks.get(self.pos).cloned() {
            Some(Tok::Open) => {
                self.pos += 1;
                let f = self.or()?;
                if self.toks.get(self.pos) != Some(&Tok::Close) {
                    return Err(invalid(self.text, "missing )"));
                }
                self.pos += 1;
                Ok(f)
            }
            Some(Tok::Word(path)) => {
                self.pos += 1;
                if path == "published" {
                    return Err(invalid(
                        self.text,
                        "published cannot be used in a filter; use since and until",
                    ));
                }
                let op = match self.toks.get(self.pos) {
                    Some(Tok::Word(op)) => op.to_ascii_lowercase(),
                    _ => return Err(invalid(self.text, "expected an operator")),
                };
                self.pos += 1;
                let op = match op.as_str() {
                    "pr" => return Ok(Filter::Present(path)),
                    "eq" => Op::Eq,
                    "ne" => Op::Ne,
                    "co" => Op::Co,
                    "sw" => Op::Sw,
                    "ew" => Op::Ew,
                    "gt" => Op::Gt,
                    "ge" => Op::Ge,
                    "lt" => Op::Lt,
                    "le" => Op::Le,
                    other => return Err(invalid(self.text, &format!("unknown operator {other}"))),
                };
                if op == Op::Co && (path.ends_with("debugData.url") || path.ends_with("debugData.requestUri")) {
                    return Err(FilterError {
                        code: "E0000031",
                        message: format!("Unsupported operator 'co' for field '{path}'"),
                    });
                }
                let value = match self.toks.get(self.pos).cloned() {
                    Some(Tok::Str(s)) => Value::String(s),
                    Some(Tok::Word(w)) if w == "true" || w == "false" => Value::Bool(w == "true"),
                    Some(Tok::Word(w)) => match w.parse::<f64>() {
                        Ok(n) => serde_json::Number::from_f64(n)
                            .map(Value::Number)
                            .unwrap_or(Value::Null),
                        Err(_) => return Err(invalid(self.text, &format!("bad value {w}"))),
                    },
                    _ => return Err(invalid(self.text, "expected a value")),
                };
                self.pos += 1;
                Ok(Filter::Cmp { path, op, value })
            }
            _ => Err(invalid(self.text, "expected an attribute")),
        }
    }
}

/// The values at a dotted path; arrays (e.g. `target`) match if any element does.
fn values<'v>(event: &'v Value, path: &str) -> Vec<&'v Value> {
    let mut current = vec![event];
    for part in path.split('.') {
        let mut next = Vec::new();
        for v in current {
            match v {
                Value::Array(items) => next.extend(items.iter().filter_map(|i| i.get(part))),
                other => next.extend(other.get(part)),
            }
        }
        current = next;
    }
    current
        .into_iter()
        .flat_map(|v| {
            if let Value::Array(a) = v {
                a.iter().collect()
            } else {
                vec![v]
            }
        })
        .collect()
}

fn compare(v: &Value, op: Op, want: &Value) -> bool {
    match (v, want) {
        (Value::String(a), Value::String(b)) => {
            let (a, b) = (a.as_str(), b.as_str());
            match op {
                Op::Eq => a == b,
                Op::Ne => a != b,
                Op::Co => a.contains(b),
                Op::Sw => a.starts_with(b),
                Op::Ew => a.ends_with(b),
                Op::Gt => a > b,
                Op::Ge => a >= b,
                Op::Lt => a < b,
                Op::Le => a <= b,
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN));
            match op {
                Op::Eq => a == b,
                Op::Ne => a != b,
                Op::Gt => a > b,
                Op::Ge => a >= b,
                Op::Lt => a < b,
                Op::Le => a <= b,
                _ => false,
            }
        }
        (a, b) => match op {
            Op::Eq => a == b,
            Op::Ne => a != b,
            _ => false,
        },
    }
}

impl Filter {
    /// Whether `event` matches.
    pub fn matches(&self, event: &Value) -> bool {
        match self {
            Filter::And(a, b) => a.matches(event) && b.matches(event),
            Filter::Or(a, b) => a.matches(event) || b.matches(event),
            Filter::Not(a) => !a.matches(event),
            Filter::Present(path) => values(event, path).iter().any(|v| !v.is_null()),
            Filter::Cmp {
                path,
                op: Op::Ne,
                value,
            } => !values(event, path).iter().any(|v| compare(v, Op::Eq, value)),
            Filter::Cmp { path, op, value } => values(event, path).iter().any(|v| compare(v, *op, value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_matches() {
        let e = json!({"eventType": "user.session.start", "outcome": {"result": "FAILURE"},
            "actor": {"id": "00u1"}, "target": [{"id": "00u2"}, {"id": "0oa3"}],
            "debugContext": {"debugData": {"behaviors": "{New Device=POSITIVE}"}}});
        let f = |t: &str| parse(t).unwrap().matches(&e);
        assert!(f(
            r#"eventType eq "user.session.start" and outcome.result eq "FAILURE""#
        ));
        assert!(!f(
            r#"eventType eq "user.session.start" and outcome.result eq "SUCCESS""#
        ));
        assert!(f(r#"eventType sw "user.session" or actor.id eq "nope""#));
        assert!(f(r#"target.id eq "0oa3""#));
        assert!(f(r#"debugContext.debugData.behaviors co "New Device=POSITIVE""#));
        assert!(f(
            r#"(actor.id eq "x" or actor.id eq "00u1") and eventType ne "user.session.end""#
        ));
        assert!(f("actor.id pr"));
        assert!(!f("client.ipAddress pr"));
        assert_eq!(parse(r#"published gt "2024""#).unwrap_err().code, "E0000053");
        assert_eq!(
            parse(r#"debugContext.debugData.requestUri co "/api""#)
                .unwrap_err()
                .code,
            "E0000031"
        );
        assert!(parse(r#"display_message eqq "x""#).is_err());
        assert!(parse(r#"eventType eq "x" and"#).is_err());
    }
}
