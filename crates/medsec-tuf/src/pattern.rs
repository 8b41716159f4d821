//! Delegation path patterns, matched as the TUF specification and python-tuf do: the target path
//! and the pattern are split on `/`, must have the same number of segments, and each segment is
//! matched with shell-style wildcards (`*`, `?`, `[seq]`, `[!seq]`), so `*` never crosses a `/`.
//!
//! Hand-written because the glob crates treat `**`, unclosed `[` and separators differently from
//! Python's `fnmatch`, and a delegation must mean the same thing to every TUF client.

/// Whether `target` lies under the delegation pattern `pattern`.
pub fn matches(pattern: &str, target: &str) -> bool {
    let pattern_parts: Vec<&str> = pattern.split('/').collect();
    let target_parts: Vec<&str> = target.split('/').collect();
    pattern_parts.len() == target_parts.len()
        && pattern_parts.iter().zip(&target_parts).all(|(p, t)| {
            fnmatch(
                &p.chars().collect::<Vec<_>>(),
                &t.chars().collect::<Vec<_>>(),
            )
        })
}

enum Token {
    Star,
    AnyChar,
    Class { negated: bool, items: Vec<char> },
    Literal(char),
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Star | Token::AnyChar => true,
            Token::Class { negated, items } => in_class(items, c) != *negated,
            Token::Literal(l) => *l == c,
        }
    }
}

fn tokens(pattern: &[char]) -> Vec<Token> {
    let mut out = Vec::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some((&c, after)) = rest.split_first() {
        rest = after;
        out.push(match c {
            '*' => Token::Star,
            '?' => Token::AnyChar,
            '[' => match class(after) {
                Some((negated, items, remaining)) => {
                    rest = remaining;
                    Token::Class { negated, items }
                }
                // An unclosed `[` is a literal, as in Python.
                None => Token::Literal('['),
            },
            c => Token::Literal(c),
        });
    }
    out
}

/// Wildcard matching in O(pattern × text): on a mismatch only the most recent `*` is retried one
/// character further, so a pattern full of stars cannot make a client spin (the recursive
/// textbook version is exponential, which the path_pattern fuzz target showed).
fn fnmatch(pattern: &[char], text: &[char]) -> bool {
    let toks = tokens(pattern);
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = text.get(t) {
        match toks.get(p) {
            Some(Token::Star) => {
                star = Some((p, t));
                p += 1;
            }
            Some(tok) if tok.matches(c) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    while matches!(toks.get(p), Some(Token::Star)) {
        p += 1;
    }
    p == toks.len()
}

/// Parses a `[...]` class body (after the `[`); returns (negated, items, rest of pattern).
fn class(body: &[char]) -> Option<(bool, Vec<char>, &[char])> {
    let (negated, body) = match body.split_first() {
        Some(('!', rest)) => (true, rest),
        _ => (false, body),
    };
    // A `]` right after `[` or `[!` is a member, not the end.
    let start = usize::from(body.first() == Some(&']'));
    let end = body.iter().skip(start).position(|c| *c == ']')? + start;
    let items = body.get(..end)?.to_vec();
    Some((negated, items, body.get(end + 1..)?))
}

fn in_class(items: &[char], c: char) -> bool {
    let mut i = 0;
    while let Some(&lo) = items.get(i) {
        if items.get(i + 1) == Some(&'-')
            && let Some(&hi) = items.get(i + 2)
        {
            if lo <= c && c <= hi {
                return true;
            }
            i += 3;
        } else {
            if lo == c {
                return true;
            }
            i += 1;
        }
    }
    false
}
