//! OLPC canonical JSON, the byte form TUF signs.
//!
//! Rules (as securesystemslib and python-tuf implement them): no insignificant whitespace; object
//! keys sorted by code point; strings escape only `"` and `\` and are otherwise written as raw
//! UTF-8; numbers are integers only (floats are refused); no trailing newline.
//!
//! Hand-written because no maintained crate implements the OLPC dialect TUF uses (the
//! `olpc-cjson` crate is a serde formatter that would need the typed structs, not the raw
//! `serde_json::Value` signatures are checked against).

use std::borrow::Cow;

use serde_json::Value;

use crate::Error;

/// Writes `value` as canonical JSON.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(256);
    write(value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), Error> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(i) = n.as_u64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else {
                return Err(Error::NotCanonicalizable {
                    reason: "canonical JSON has no floating-point numbers",
                });
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write(v, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for b in s.bytes() {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Most nesting [`from_json_text`] accepts (serde_json's own limit is 128 too).
const MAX_DEPTH: usize = 128;

/// Canonicalises JSON text directly, without building a `serde_json::Value`: the client's hot
/// path, where `targets.json` may list tens of thousands of entries. It produces exactly what
/// [`to_vec`] produces for the same document (a property test holds them together) and refuses
/// what canonical JSON cannot say: non-integer numbers, integers outside i64/u64, and objects that
/// repeat a key (two parsers could disagree about which value counts).
pub fn from_json_text(text: &str) -> Result<Vec<u8>, Error> {
    Ok(with_top_level_keys(text)?.0)
}

/// [`from_json_text`], also returning the keys of the top-level object (empty for other values),
/// so callers can tell whether it has fields they do not know without parsing it again.
pub(crate) fn with_top_level_keys(text: &str) -> Result<(Vec<u8>, Vec<String>), Error> {
    let mut p = TextCanonicalizer {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        scratch_pool: Vec::new(),
        member_pool: Vec::new(),
        top_keys: Vec::new(),
    };
    let mut out = Vec::with_capacity(text.len());
    p.skip_ws();
    p.value(&mut out, 0)?;
    p.skip_ws();
    if p.pos != p.bytes.len() {
        return Err(p.err("trailing characters after the JSON value"));
    }
    Ok((out, p.top_keys))
}

/// An object member: key, and where its canonical value sits in the scratch buffer.
type Member<'a> = (Cow<'a, str>, usize, usize);

struct TextCanonicalizer<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    // Buffers reused across objects: a large targets file has tens of thousands of them.
    scratch_pool: Vec<Vec<u8>>,
    member_pool: Vec<Vec<Member<'a>>>,
    top_keys: Vec<String>,
}

impl<'a> TextCanonicalizer<'a> {
    fn err(&self, reason: &'static str) -> Error {
        Error::NotCanonicalizable { reason }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, b: u8, reason: &'static str) -> Result<(), Error> {
        if self.next() == Some(b) {
            Ok(())
        } else {
            Err(self.err(reason))
        }
    }

    fn literal(&mut self, word: &'static [u8], out: &mut Vec<u8>) -> Result<(), Error> {
        let end = self.pos + word.len();
        if self.bytes.get(self.pos..end) != Some(word) {
            return Err(self.err("invalid literal"));
        }
        self.pos = end;
        out.extend_from_slice(word);
        Ok(())
    }

    fn value(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(self.err("JSON nested too deeply"));
        }
        match self.peek() {
            Some(b'{') => self.object(out, depth),
            Some(b'[') => self.array(out, depth),
            Some(b'"') => {
                let s = self.string()?;
                write_string(&s, out);
                Ok(())
            }
            Some(b't') => self.literal(b"true", out),
            Some(b'f') => self.literal(b"false", out),
            Some(b'n') => self.literal(b"null", out),
            Some(b'-' | b'0'..=b'9') => self.number(out),
            _ => Err(self.err("expected a JSON value")),
        }
    }

    fn array(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), Error> {
        self.pos += 1;
        out.push(b'[');
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            out.push(b']');
            return Ok(());
        }
        loop {
            self.skip_ws();
            self.value(out, depth + 1)?;
            self.skip_ws();
            match self.next() {
                Some(b',') => out.push(b','),
                Some(b']') => break,
                _ => return Err(self.err("expected ',' or ']' in array")),
            }
        }
        out.push(b']');
        Ok(())
    }

    fn object(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), Error> {
        self.pos += 1;
        // Members are canonicalised into one scratch buffer, then copied out in key order.
        let mut scratch = self.scratch_pool.pop().unwrap_or_default();
        let mut members = self.member_pool.pop().unwrap_or_default();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                if self.peek() != Some(b'"') {
                    return Err(self.err("expected a string key in object"));
                }
                let key = self.string()?;
                self.skip_ws();
                self.expect(b':', "expected ':' after object key")?;
                self.skip_ws();
                let start = scratch.len();
                self.value(&mut scratch, depth + 1)?;
                members.push((key, start, scratch.len()));
                self.skip_ws();
                match self.next() {
                    Some(b',') => {}
                    Some(b'}') => break,
                    _ => return Err(self.err("expected ',' or '}' in object")),
                }
            }
        }
        members.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if members
            .windows(2)
            .any(|w| matches!(w, [a, b] if a.0 == b.0))
        {
            return Err(self.err("object repeats a key"));
        }
        out.push(b'{');
        for (i, (key, start, end)) in members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_string(key, out);
            out.push(b':');
            out.extend_from_slice(scratch.get(*start..*end).unwrap_or_default());
        }
        out.push(b'}');
        if depth == 0 {
            self.top_keys = members.iter().map(|m| m.0.to_string()).collect();
        }
        scratch.clear();
        members.clear();
        self.scratch_pool.push(scratch);
        self.member_pool.push(members);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = self
                .next()
                .and_then(|b| char::from(b).to_digit(16))
                .ok_or_else(|| self.err("bad \\u escape"))?;
            v = v * 16 + d;
        }
        Ok(v)
    }

    /// Reads a string (at the opening quote) and returns its decoded value, borrowed from the
    /// input when it has no escapes (almost always).
    fn string(&mut self) -> Result<Cow<'a, str>, Error> {
        self.pos += 1;
        let start = self.pos;
        let mut s = String::new();
        loop {
            // Copy the run up to the next quote, backslash or control character in one go.
            let run_end = self
                .bytes
                .get(self.pos..)
                .unwrap_or_default()
                .iter()
                .position(|b| *b == b'"' || *b == b'\\' || *b < 0x20)
                .map(|n| self.pos + n)
                .ok_or_else(|| self.err("unterminated string"))?;
            if self.pos == start && self.bytes.get(run_end) == Some(&b'"') {
                // No escapes: borrow. Runs end at ASCII bytes, so these are char boundaries.
                let borrowed = self
                    .text
                    .get(start..run_end)
                    .ok_or_else(|| self.err("invalid UTF-8"))?;
                self.pos = run_end + 1;
                return Ok(Cow::Borrowed(borrowed));
            }
            let run = self
                .text
                .get(self.pos..run_end)
                .ok_or_else(|| self.err("invalid UTF-8"))?;
            s.push_str(run);
            self.pos = run_end;
            match self.next() {
                Some(b'"') => return Ok(Cow::Owned(s)),
                Some(b'\\') => {
                    let c = match self.next() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if self.next() != Some(b'\\') || self.next() != Some(b'u') {
                                    return Err(self.err("lone surrogate in \\u escape"));
                                }
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("lone surrogate in \\u escape"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            char::from_u32(code)
                                .ok_or_else(|| self.err("lone surrogate in \\u escape"))?
                        }
                        _ => return Err(self.err("bad escape in string")),
                    };
                    s.push(c);
                }
                _ => return Err(self.err("control character in string")),
            }
        }
    }

    fn number(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let digits_start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        let digits = self.bytes.get(digits_start..self.pos).unwrap_or_default();
        if digits.is_empty() || (digits.len() > 1 && digits.first() == Some(&b'0')) {
            return Err(self.err("invalid number"));
        }
        // serde_json reads -0 as a float, so refuse it here too: both parsers must agree.
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) || (negative && digits == b"0") {
            return Err(self.err("canonical JSON has no floating-point numbers"));
        }
        // Same range as serde_json's integers: u64 for non-negative, i64 for negative.
        let text = std::str::from_utf8(self.bytes.get(start..self.pos).unwrap_or_default())
            .map_err(|_| self.err("invalid number"))?;
        if negative {
            let v: i64 = text
                .parse()
                .map_err(|_| self.err("integer outside the 64-bit range"))?;
            out.extend_from_slice(v.to_string().as_bytes());
        } else {
            let v: u64 = text
                .parse()
                .map_err(|_| self.err("integer outside the 64-bit range"))?;
            out.extend_from_slice(v.to_string().as_bytes());
        }
        Ok(())
    }
}
