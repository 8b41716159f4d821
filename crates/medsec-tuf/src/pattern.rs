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

fn fnmatch(pattern: &[char], text: &[char]) -> bool {
    let Some((&first, rest)) = pattern.split_first() else {
        return text.is_empty();
    };
    match first {
        '*' => (0..=text.len()).any(|skip| text.get(skip..).is_some_and(|t| fnmatch(rest, t))),
        '?' => text.split_first().is_some_and(|(_, t)| fnmatch(rest, t)),
        '[' => match class(rest) {
            Some((negated, set, after)) => text
                .split_first()
                .is_some_and(|(c, t)| in_class(&set, *c) != negated && fnmatch(after, t)),
            // An unclosed `[` is a literal, as in Python.
            None => literal('[', rest, text),
        },
        c => literal(c, rest, text),
    }
}

fn literal(c: char, rest: &[char], text: &[char]) -> bool {
    text.split_first()
        .is_some_and(|(t0, t)| *t0 == c && fnmatch(rest, t))
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
