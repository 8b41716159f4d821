//! Affected-version ranges: OSV's event lists and `vers` constraint lists, parsed once at
//! import so that matching a fleet compares parsed versions only.

use std::cmp::Ordering;

use crate::Error;
use crate::version::{Scheme, Version};

/// One OSV range event, its version parsed.
#[derive(Debug, Clone)]
pub enum Event {
    /// `introduced` (`None`: `"0"`, before every version).
    Introduced(Option<Version>),
    /// `fixed`: this version and later are not affected.
    Fixed(Version),
    /// `last_affected`: versions after this one are not affected.
    LastAffected(Version),
    /// `limit`: versions from this one on are outside the range (`None`: `"*"`).
    Limit(Option<Version>),
}

impl Event {
    fn version(&self) -> Option<&Version> {
        match self {
            Event::Introduced(v) | Event::Limit(v) => v.as_ref(),
            Event::Fixed(v) | Event::LastAffected(v) => Some(v),
        }
    }
}

/// An OSV `SEMVER` or `ECOSYSTEM` range.
#[derive(Debug, Clone)]
pub struct Events {
    scheme: Scheme,
    /// The events as the record gave them, for explanations.
    text: String,
    /// Sorted by version, `introduced: "0"` first, as the OSV evaluation requires.
    events: Vec<Event>,
}

fn cmp_opt(a: Option<&Version>, b: Option<&Version>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => x.compare(y).unwrap_or(Ordering::Equal),
    }
}

impl Events {
    /// Parses OSV events (`("introduced", "1.0")`, ...) in `scheme`. An unparsable version
    /// refuses the range: a range read wrong would give a silent wrong answer.
    pub fn parse<'a>(
        scheme: Scheme,
        events: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Events, Error> {
        let mut out = Vec::new();
        let mut said = Vec::new();
        for (kind, text) in events {
            said.push(format!("{kind} {text}"));
            out.push(match kind {
                "introduced" if text == "0" => Event::Introduced(None),
                "introduced" => Event::Introduced(Some(scheme.parse(text)?)),
                "fixed" => Event::Fixed(scheme.parse(text)?),
                "last_affected" => Event::LastAffected(scheme.parse(text)?),
                "limit" if text == "*" => Event::Limit(None),
                "limit" => Event::Limit(Some(scheme.parse(text)?)),
                other => return Err(Error::Format(format!("unknown OSV range event {other:?}"))),
            });
        }
        if !out.iter().any(|e| matches!(e, Event::Introduced(_))) {
            return Err(Error::Format(
                "an OSV range has no introduced event".to_owned(),
            ));
        }
        out.sort_by(|a, b| cmp_opt(a.version(), b.version()));
        Ok(Events {
            scheme,
            text: said.join(", "),
            events: out,
        })
    }

    /// The scheme the range's versions are in.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The events as the record gave them (`introduced 0, fixed 1.3.2`).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether `v` is in the range: OSV's evaluation, event by event in version order.
    pub fn contains(&self, v: &Version) -> bool {
        let mut affected = false;
        for e in &self.events {
            let at_or_after = |x: &Version| v.compare(x).is_some_and(Ordering::is_ge);
            match e {
                Event::Introduced(None) => affected = true,
                Event::Introduced(Some(x)) if at_or_after(x) => affected = true,
                Event::Fixed(x) if at_or_after(x) => affected = false,
                Event::LastAffected(x) if v.compare(x).is_some_and(Ordering::is_gt) => {
                    affected = false;
                }
                Event::Limit(Some(x)) if at_or_after(x) => return false,
                _ => {}
            }
        }
        affected
    }

    /// The lowest `fixed` version above `v`: the upgrade that resolves it.
    pub fn fixed_after(&self, v: &Version) -> Option<&Version> {
        self.events.iter().find_map(|e| match e {
            Event::Fixed(x) if v.compare(x) == Some(Ordering::Less) => Some(x),
            _ => None,
        })
    }
}

/// A `vers` comparator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A `vers` range (`vers:generic/>=1.0.2|<1.1.1l`), as CSAF's `product_version_range`
/// gives it.
#[derive(Debug, Clone)]
pub struct Vers {
    scheme: Scheme,
    text: String,
    any: bool,
    /// Sorted by version.
    constraints: Vec<(Cmp, Version)>,
}

impl Vers {
    /// Parses a `vers` string.
    pub fn parse(text: &str) -> Result<Vers, Error> {
        let bad = |why: &str| Error::Format(format!("{text:?} is not a vers range: {why}"));
        let rest = text
            .trim()
            .strip_prefix("vers:")
            .ok_or_else(|| bad("it does not start with vers:"))?;
        let (scheme, list) = rest
            .split_once('/')
            .ok_or_else(|| bad("no / after the scheme"))?;
        let scheme = Scheme::of_vers(&scheme.to_ascii_lowercase())?;
        let list = list.trim();
        if list == "*" {
            return Ok(Vers {
                scheme,
                text: text.trim().to_owned(),
                any: true,
                constraints: Vec::new(),
            });
        }
        let mut constraints = Vec::new();
        for c in list.split('|') {
            let c = c.trim();
            let (cmp, v) = [
                (">=", Cmp::Ge),
                ("<=", Cmp::Le),
                ("!=", Cmp::Ne),
                ("<", Cmp::Lt),
                (">", Cmp::Gt),
                ("=", Cmp::Eq),
            ]
            .iter()
            .find_map(|(p, cmp)| c.strip_prefix(p).map(|v| (*cmp, v)))
            .unwrap_or((Cmp::Eq, c));
            if v.is_empty() {
                return Err(bad("a constraint has no version"));
            }
            let v = percent_encoding::percent_decode_str(v.trim())
                .decode_utf8()
                .map_err(|_| bad("a version is not UTF-8"))?;
            constraints.push((cmp, scheme.parse(&v)?));
        }
        if constraints.is_empty() {
            return Err(bad("no constraints"));
        }
        constraints.sort_by(|a, b| a.1.compare(&b.1).unwrap_or(Ordering::Equal));
        Ok(Vers {
            scheme,
            text: text.trim().to_owned(),
            any: false,
            constraints,
        })
    }

    /// The scheme the range's versions are in.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The range as given.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The first of the range's versions that `v` does not compare with (a generic version
    /// that begins differently, see [`Scheme::Generic`]): the range cannot decide `v`.
    pub fn incomparable(&self, v: &Version) -> Option<&Version> {
        self.constraints
            .iter()
            .map(|(_, x)| x)
            .find(|x| v.compare(x).is_none())
    }

    /// Whether `v` is in the range: the containment algorithm of the `vers` specification.
    pub fn contains(&self, v: &Version) -> bool {
        if self.any {
            return true;
        }
        let ord = |x: &Version| v.compare(x);
        for (cmp, x) in &self.constraints {
            match cmp {
                Cmp::Eq if ord(x) == Some(Ordering::Equal) => return true,
                Cmp::Ne if ord(x) == Some(Ordering::Equal) => return false,
                _ => {}
            }
        }
        let rest: Vec<_> = self
            .constraints
            .iter()
            .filter(|(c, _)| !matches!(c, Cmp::Eq | Cmp::Ne))
            .collect();
        let satisfies = |(cmp, x): &(Cmp, Version)| {
            ord(x).is_some_and(|o| match cmp {
                Cmp::Lt => o.is_lt(),
                Cmp::Le => o.is_le(),
                Cmp::Gt => o.is_gt(),
                Cmp::Ge => o.is_ge(),
                Cmp::Eq => o.is_eq(),
                Cmp::Ne => o.is_ne(),
            })
        };
        let lower = |c: Cmp| matches!(c, Cmp::Gt | Cmp::Ge);
        let upper = |c: Cmp| matches!(c, Cmp::Lt | Cmp::Le);
        match rest.as_slice() {
            [] => {
                // Only != constraints: everything else is in.
                self.constraints.iter().all(|(c, _)| *c == Cmp::Ne)
            }
            [one] => satisfies(one),
            _ => {
                let last = rest.len().saturating_sub(2);
                for (i, pair) in rest.windows(2).enumerate() {
                    let [cur, next] = pair else { continue };
                    if i == 0 && upper(cur.0) && satisfies(cur) {
                        return true;
                    }
                    if i == last && lower(next.0) && satisfies(next) {
                        return true;
                    }
                    if lower(cur.0) && upper(next.0) && satisfies(cur) && satisfies(next) {
                        return true;
                    }
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(scheme: Scheme, list: &[(&str, &str)]) -> Events {
        Events::parse(scheme, list.iter().copied()).unwrap()
    }

    #[test]
    fn osv_events_evaluate_in_version_order() {
        // Out of order in the record (GHSA's equals_with_patch): two fixed branches.
        let r = ev(
            Scheme::Semver,
            &[
                ("introduced", "0"),
                ("introduced", "2.0.0"),
                ("fixed", "2.0.1"),
                ("fixed", "1.3.2"),
            ],
        );
        let v = |s: &str| Scheme::Semver.parse(s).unwrap();
        assert!(r.contains(&v("1.3.1")));
        assert!(!r.contains(&v("1.3.2")));
        assert!(!r.contains(&v("1.9.0")));
        assert!(r.contains(&v("2.0.0")));
        assert!(!r.contains(&v("2.0.1")));
        assert_eq!(r.fixed_after(&v("1.0.0")), Some(&v("1.3.2")));
        let la = ev(
            Scheme::Generic,
            &[("introduced", "1.0"), ("last_affected", "1.2")],
        );
        let g = |s: &str| Scheme::Generic.parse(s).unwrap();
        assert!(la.contains(&g("1.2")));
        assert!(!la.contains(&g("1.2a")));
        assert!(!la.contains(&g("0.9")));
        let limited = ev(Scheme::Generic, &[("introduced", "0"), ("limit", "2.0")]);
        assert!(limited.contains(&g("1.9")));
        assert!(!limited.contains(&g("2.0")));
    }

    #[test]
    fn a_range_without_introduced_or_with_a_bad_version_is_refused() {
        assert!(Events::parse(Scheme::Semver, [("fixed", "1.0.0")]).is_err());
        assert!(Events::parse(Scheme::Semver, [("introduced", "x.y")]).is_err());
        assert!(Events::parse(Scheme::Semver, [("introduced", "0"), ("patched", "1")]).is_err());
    }

    #[test]
    fn vers_ranges_contain_as_the_spec_says() {
        let r = Vers::parse("vers:generic/>=1.0.2|<1.1.1l|!=1.1.0|>=3.0.0|<3.0.7").unwrap();
        let g = |s: &str| Scheme::Generic.parse(s).unwrap();
        assert!(r.contains(&g("1.0.2")));
        assert!(r.contains(&g("1.1.1k")));
        assert!(!r.contains(&g("1.1.0")));
        assert!(!r.contains(&g("1.1.1l")));
        assert!(!r.contains(&g("2.0")));
        assert!(r.contains(&g("3.0.6")));
        assert!(!r.contains(&g("3.0.7")));
        assert!(
            Vers::parse("vers:deb/*")
                .unwrap()
                .contains(&Scheme::Deb.parse("1").unwrap())
        );
        assert!(
            Vers::parse("vers:npm/1.0.0|2.0.0")
                .unwrap()
                .contains(&Scheme::Semver.parse("2.0.0").unwrap())
        );
        assert!(Vers::parse(">=1.0").is_err());
        assert!(Vers::parse("vers:generic/").is_err());
        assert!(Vers::parse("vers:generic/<").is_err());
        assert!(Vers::parse("vers:cobol/1").is_err());
    }
}
