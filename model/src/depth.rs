//! Nesting depth: of YAML text before it is parsed, and of free-form values after.
//!
//! A YAML parser's time grows with the square of the nesting depth, so a small file of
//! brackets can keep it busy for minutes. The text is scanned first, in one pass and
//! without allocating per level beyond a stack of indentation columns. The scan is an
//! estimate (it does not parse plain scalars in full), so the exact check runs again on
//! the parsed values; the scan only has to stop the parser from meeting deep input.

use serde_json::Value;

/// Where the text first nests deeper than allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooDeep {
    /// 1-based line.
    pub line: usize,
    /// The depth reached there.
    pub depth: usize,
}

/// Characters after which a quote or a bracket opens a node rather than being part of a
/// plain scalar.
fn opens_node(prev: Option<char>) -> bool {
    matches!(prev, None | Some(':' | '-' | '[' | '{' | ',' | '?'))
}

/// Scans YAML text and reports the first line nesting deeper than `max`, counting block
/// collections by indentation and compact `- ` entries, and flow collections by brackets.
pub fn scan_yaml(text: &str, max: usize) -> Result<(), TooDeep> {
    let mut s = Scanner {
        block: Vec::new(),
        flow: 0,
        quote: None,
        escaped: false,
        literal: None,
        max,
    };
    for (n, line) in text.lines().enumerate() {
        s.line(line).map_err(|depth| TooDeep { line: n + 1, depth })?;
    }
    Ok(())
}

struct Scanner {
    /// Columns of the open block collections.
    block: Vec<usize>,
    /// Open flow collections.
    flow: usize,
    /// The quote of a quoted scalar still open (they may span lines).
    quote: Option<char>,
    escaped: bool,
    /// Inside a block scalar (`|`, `>`): lines indented more than this are its content.
    literal: Option<usize>,
    max: usize,
}

impl Scanner {
    fn depth(&self) -> usize {
        self.block.len() + self.flow
    }

    fn check(&self) -> Result<(), usize> {
        let d = self.depth();
        if d > self.max {
            Err(d)
        } else {
            Ok(())
        }
    }

    fn line(&mut self, line: &str) -> Result<(), usize> {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let rest = &line[indent..];
        if let Some(parent) = self.literal {
            if rest.trim().is_empty() || indent > parent {
                return Ok(());
            }
            self.literal = None;
        }
        let mut start = 0;
        if self.quote.is_none() && self.flow == 0 {
            if rest.trim().is_empty() || rest.starts_with('#') {
                return Ok(());
            }
            if indent == 0 && (rest == "---" || rest.starts_with("--- ") || rest == "...") {
                self.block.clear();
                return Ok(());
            }
            while self.block.last().is_some_and(|&c| c > indent) {
                self.block.pop();
            }
            if self.block.last() != Some(&indent) {
                self.block.push(indent);
            }
            // Compact entries: `- - x` or `- key: v` open a collection per indicator.
            let bytes = rest.as_bytes();
            while start < bytes.len()
                && matches!(bytes[start], b'-' | b'?')
                && bytes.get(start + 1).is_none_or(|b| *b == b' ' || *b == b'\t')
            {
                start += 1;
                while start < bytes.len() && (bytes[start] == b' ' || bytes[start] == b'\t') {
                    start += 1;
                }
                if start < bytes.len() {
                    self.block.push(indent + start);
                }
            }
            self.check()?;
        }
        self.scan_chars(&rest[start..], indent)
    }

    /// Quotes, brackets, comments and the start of a block scalar on the rest of a line.
    fn scan_chars(&mut self, rest: &str, indent: usize) -> Result<(), usize> {
        let mut prev: Option<char> = None;
        let mut prev_raw: Option<char> = None;
        let mut chars = rest.chars().peekable();
        while let Some(ch) = chars.next() {
            if let Some(q) = self.quote {
                if q == '\'' && ch == '\'' {
                    if chars.peek() == Some(&'\'') {
                        chars.next();
                    } else {
                        self.quote = None;
                    }
                } else if q == '"' {
                    if self.escaped {
                        self.escaped = false;
                    } else if ch == '\\' {
                        self.escaped = true;
                    } else if ch == '"' {
                        self.quote = None;
                    }
                }
                prev = Some('x');
                prev_raw = Some(ch);
                continue;
            }
            // A bracket inside a plain scalar (`a[b`) is text, and so is what follows it.
            let mut seen = ch;
            match ch {
                '#' if prev_raw.is_none_or(char::is_whitespace) => break,
                '\'' | '"' if opens_node(prev) => self.quote = Some(ch),
                '[' | '{' if self.flow > 0 || opens_node(prev) => {
                    self.flow += 1;
                    self.check()?;
                }
                ']' | '}' if self.flow > 0 => self.flow -= 1,
                '[' | '{' | ']' | '}' => seen = 'x',
                _ => {}
            }
            if !ch.is_whitespace() {
                prev = Some(seen);
            }
            prev_raw = Some(ch);
        }
        if self.quote.is_none() && self.flow == 0 && starts_block_scalar(rest) {
            self.literal = Some(indent);
        }
        Ok(())
    }
}

/// Whether a line's content ends with a block scalar header (`|`, `>-`, `|2+` …).
fn starts_block_scalar(rest: &str) -> bool {
    let content = match rest.find(" #") {
        Some(i) => &rest[..i],
        None => rest,
    }
    .trim_end();
    let head = content.trim_end_matches(|c: char| c == '-' || c == '+' || c.is_ascii_digit());
    (head.ends_with('|') || head.ends_with('>'))
        && head[..head.len() - 1]
            .chars()
            .next_back()
            .is_none_or(|c| c == ' ' || c == ':' || c == '-')
}

/// Levels of a value: 0 for a scalar, 1 for a flat list or map, and so on. Iterative, so
/// a value built by a program without a parser's recursion limit cannot overflow the stack.
pub fn value_depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(v, 0)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(items) => {
                deepest = deepest.max(d + 1);
                stack.extend(items.iter().map(|i| (i, d + 1)));
            }
            Value::Object(map) => {
                deepest = deepest.max(d + 1);
                stack.extend(map.values().map(|i| (i, d + 1)));
            }
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_of(text: &str) -> usize {
        (1..200)
            .find(|max| scan_yaml(text, *max).is_ok())
            .unwrap_or(usize::MAX)
    }

    #[test]
    fn block_and_flow_nesting_are_counted() {
        assert_eq!(depth_of("a: 1\n"), 1);
        assert_eq!(depth_of("a:\n  b:\n    c: 1\n"), 3);
        assert_eq!(depth_of("a: [[[1]]]\n"), 4);
        assert_eq!(depth_of("a: {b: {c: [1, 2]}}\n"), 4);
        // A scalar entry counts as a level: one more than a parser builds, never fewer.
        assert_eq!(depth_of("- - - x\n"), 4);
        assert_eq!(depth_of("a:\n  - name: x\n    b: 1\n"), 3);
        assert_eq!(
            depth_of("a:\n  b:\n    c: 1\nd: 2\ne:\n  f: 1\n"),
            3,
            "dedents close levels"
        );
    }

    #[test]
    fn quotes_comments_and_block_scalars_do_not_count() {
        assert_eq!(depth_of("a: '[[[['\n"), 1);
        assert_eq!(depth_of("a: \"[[\\\"[[\"\n"), 1);
        assert_eq!(depth_of("a: it's [[ fine\n"), 1);
        assert_eq!(depth_of("a: x[[y\nb: [1]\n"), 2);
        assert_eq!(depth_of("a: 1 # [[[[\n"), 1);
        assert_eq!(depth_of("a: 'x''[['\n"), 1);
        assert_eq!(depth_of("a: |\n  [[[[\n      deep\n        deeper\nb: 1\n"), 1);
        assert_eq!(depth_of("a: >-\n  {{{{\nb: [1]\n"), 2);
        assert_eq!(depth_of("a: \"multi\n  [[[ line\"\nb: 1\n"), 1);
    }

    #[test]
    fn the_first_line_too_deep_is_named() {
        let text = format!("a: 1\nb: {}{}\n", "[".repeat(50), "]".repeat(50));
        assert_eq!(scan_yaml(&text, 10), Err(TooDeep { line: 2, depth: 11 }));
        let mut block = String::new();
        for i in 0..40 {
            block.push_str(&" ".repeat(i));
            block.push_str("k:\n");
        }
        assert_eq!(scan_yaml(&block, 32).map_err(|e| e.line), Err(33));
    }

    #[test]
    fn values_are_measured_without_recursion() {
        let mut v = Value::Null;
        for _ in 0..100_000 {
            v = Value::Array(vec![v]);
        }
        assert_eq!(value_depth(&v), 100_000);
        // serde_json's Value drops recursively; take it apart by hand.
        let mut cur = v;
        while let Value::Array(mut items) = cur {
            cur = items.pop().unwrap_or(Value::Null);
        }
        assert_eq!(value_depth(&serde_json::json!({"a": [1, {"b": 2}]})), 3);
        assert_eq!(value_depth(&serde_json::json!(1)), 0);
    }
}
