//! Version numbers and their order, one scheme per packaging world.
//!
//! An advisory's range (`>= 1.0.2, < 1.1.1l`) is only as right as the order its versions are
//! compared in, and each ecosystem has its own: `1.0.0-rc1 < 1.0.0` in SemVer, `1.0rc1 <
//! 1.0` in PEP 440, `1.0~rc1 < 1.0` in Debian, `1.1.1 < 1.1.1k` for OpenSSL. The schemes are
//! named as in the `vers` specification (<https://github.com/package-url/purl-spec>), the
//! same names the reference implementation `univers` uses; medsec's order is checked
//! against it on a generated grid (`tests/univers_grid.rs`).
//!
//! SemVer and PEP 440 come from the `semver` and `pep440_rs` crates. Debian's and RPM's
//! comparisons are written here: they are dpkg's `verrevcmp` and rpm's `rpmvercmp`, a few
//! dozen lines each, and the one Debian crate (`debversion`) would bring a regex proc-macro
//! and a second `syn` into a build that runs on two cores.

use std::cmp::Ordering;
use std::str::FromStr as _;

use crate::Error;

/// A versioning scheme (a `vers` scheme name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Semantic Versioning 2.0 (also npm, crates.io, Go modules, Hex, Pub).
    Semver,
    /// Python's PEP 440.
    Pypi,
    /// Debian and Ubuntu (dpkg): `[epoch:]upstream[-revision]`.
    Deb,
    /// RPM (Red Hat, SUSE, Rocky, AlmaLinux, openEuler): `[epoch:]version[-release]`.
    Rpm,
    /// Anything else (firmware, C libraries, `pkg:generic`, CPE versions, Alpine, Maven,
    /// RubyGems, vendors' own forms such as `V3.0.1`, `R1.01.00`, `028U000061`): numbers
    /// compare as numbers, letters as text (ignoring case); a number outranks a letter;
    /// `dev`, `alpha`, `beta`, `pre`, `rc` (and `a`, `b`, `c` between numbers, as in
    /// `1.0b2`) come before the release they precede; any other letter suffix after it
    /// (`1.1.1k > 1.1.1`, `1.0.2a > 1.0.2`). A leading `v` or `V` before a digit is not part
    /// of the version (`V3.0.1 = 3.0.1`). Two versions that begin differently, one with a
    /// number and the other with a word (`1.01` and `R1.01`), or with different words
    /// (`R1.0` and `C1.0`), do not compare at all ([`Version::compare`] is `None`): a match
    /// that depends on them is undetermined, never guessed.
    Generic,
}

impl Scheme {
    /// The scheme of an OSV ecosystem (`Debian:12` and `Alpine:v3.18` included).
    pub fn of_ecosystem(ecosystem: &str) -> Scheme {
        let base = ecosystem.split(':').next().unwrap_or(ecosystem);
        match base {
            "npm" | "crates.io" | "Go" | "Hex" | "Pub" | "SwiftURL" | "NuGet" | "Packagist" => {
                Scheme::Semver
            }
            "PyPI" => Scheme::Pypi,
            "Debian" | "Ubuntu" => Scheme::Deb,
            "Red Hat" | "Rocky Linux" | "AlmaLinux" | "SUSE" | "openSUSE" | "Mageia"
            | "openEuler" | "Photon OS" | "Azure Linux" => Scheme::Rpm,
            _ => Scheme::Generic,
        }
    }

    /// The scheme of a purl type (`pkg:TYPE/...`).
    pub fn of_purl_type(kind: &str) -> Scheme {
        match kind {
            "npm" | "cargo" | "golang" | "hex" | "pub" | "swift" | "nuget" | "composer" => {
                Scheme::Semver
            }
            "pypi" => Scheme::Pypi,
            "deb" => Scheme::Deb,
            "rpm" => Scheme::Rpm,
            _ => Scheme::Generic,
        }
    }

    /// The scheme of a `vers` name; unknown names are refused.
    pub fn of_vers(name: &str) -> Result<Scheme, Error> {
        Ok(match name {
            "semver" | "npm" | "cargo" | "golang" | "hex" | "pub" | "nuget" | "composer" => {
                Scheme::Semver
            }
            "pypi" => Scheme::Pypi,
            "deb" => Scheme::Deb,
            "rpm" => Scheme::Rpm,
            "generic" | "openssl" | "intdot" | "apk" | "maven" | "gem" => Scheme::Generic,
            other => {
                return Err(Error::Format(format!(
                    "vers scheme {other:?} is not one medsec orders (semver, npm, cargo, golang, pypi, deb, rpm, generic, ...)"
                )));
            }
        })
    }

    /// Parses `text` as a version of this scheme.
    pub fn parse(self, text: &str) -> Result<Version, Error> {
        let bad =
            |why: &str| Error::Format(format!("{text:?} is not a {} version: {why}", self.name()));
        let t = text.trim();
        if t.is_empty() {
            return Err(bad("it is empty"));
        }
        Ok(match self {
            Scheme::Semver => {
                let t = t.strip_prefix('v').unwrap_or(t);
                // "1.6" and "2" are common in advisories; SemVer wants three numbers.
                let (core, rest) = t.find(['-', '+']).map_or((t, ""), |i| {
                    (t.get(..i).unwrap_or(t), t.get(i..).unwrap_or(""))
                });
                let parts = core.split('.').count();
                let padded = match parts {
                    1 => format!("{core}.0.0{rest}"),
                    2 => format!("{core}.0{rest}"),
                    _ => t.to_owned(),
                };
                Version::Semver(semver::Version::parse(&padded).map_err(|e| bad(&e.to_string()))?)
            }
            Scheme::Pypi => {
                Version::Pypi(pep440_rs::Version::from_str(t).map_err(|e| bad(&e.to_string()))?)
            }
            Scheme::Deb => Version::Deb(Evr::parse(t).ok_or_else(|| bad("bad epoch"))?),
            Scheme::Rpm => Version::Rpm(Evr::parse(t).ok_or_else(|| bad("bad epoch"))?),
            Scheme::Generic => Version::Generic(t.to_owned()),
        })
    }

    /// The `vers` name.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Semver => "semver",
            Scheme::Pypi => "pypi",
            Scheme::Deb => "deb",
            Scheme::Rpm => "rpm",
            Scheme::Generic => "generic",
        }
    }
}

/// Epoch, version and revision (Debian) or release (RPM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evr {
    epoch: u64,
    version: String,
    release: Option<String>,
}

impl Evr {
    fn parse(text: &str) -> Option<Evr> {
        let (epoch, rest) = match text.split_once(':') {
            Some((e, rest)) if e.bytes().all(|b| b.is_ascii_digit()) => (e.parse().ok()?, rest),
            Some(_) => return None,
            None => (0, text),
        };
        // dpkg's revision and rpm's release both follow the last hyphen.
        let (version, release) = match rest.rsplit_once('-') {
            Some((v, r)) => (v.to_owned(), Some(r.to_owned())),
            None => (rest.to_owned(), None),
        };
        Some(Evr {
            epoch,
            version,
            release,
        })
    }
}

impl std::fmt::Display for Evr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.epoch > 0 {
            write!(f, "{}:", self.epoch)?;
        }
        f.write_str(&self.version)?;
        match &self.release {
            Some(r) => write!(f, "-{r}"),
            None => Ok(()),
        }
    }
}

/// A parsed version; versions of different schemes do not compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// SemVer.
    Semver(semver::Version),
    /// PEP 440.
    Pypi(pep440_rs::Version),
    /// Debian.
    Deb(Evr),
    /// RPM.
    Rpm(Evr),
    /// Generic (kept as text, compared by [`generic_cmp`]).
    Generic(String),
}

impl Version {
    /// The order of two versions of one scheme; `None` across schemes.
    pub fn compare(&self, other: &Version) -> Option<Ordering> {
        Some(match (self, other) {
            // SemVer 2.0 §10: build metadata does not count in precedence (the crate's
            // `Ord` orders it, for a total order).
            (Version::Semver(a), Version::Semver(b)) => a.cmp_precedence(b),
            (Version::Pypi(a), Version::Pypi(b)) => a.cmp(b),
            (Version::Deb(a), Version::Deb(b)) => a.epoch.cmp(&b.epoch).then_with(|| {
                dpkg_cmp(&a.version, &b.version).then_with(|| {
                    dpkg_cmp(
                        a.release.as_deref().unwrap_or(""),
                        b.release.as_deref().unwrap_or(""),
                    )
                })
            }),
            (Version::Rpm(a), Version::Rpm(b)) => a.epoch.cmp(&b.epoch).then_with(|| {
                rpm_cmp(&a.version, &b.version).then_with(|| match (&a.release, &b.release) {
                    // rpm compares releases only when both versions have one.
                    (Some(x), Some(y)) => rpm_cmp(x, y),
                    _ => Ordering::Equal,
                })
            }),
            (Version::Generic(a), Version::Generic(b)) => return generic_order(a, b),
            _ => return None,
        })
    }
}

/// dpkg's character order: `~` before the end of the string, letters before other symbols.
fn dpkg_order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp` (lib/dpkg/version.c).
pub fn dpkg_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (ac, bc) = (dpkg_order(a.get(i).copied()), dpkg_order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a.get(i).cmp(&b.get(j));
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

/// rpm's `rpmvercmp` (rpmio/rpmvercmp.c), with `~` (before anything) and `^` (after the
/// end, before anything else).
pub fn rpm_cmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let sep =
        |c: Option<&u8>| c.is_some_and(|c| !c.is_ascii_alphanumeric() && *c != b'~' && *c != b'^');
    loop {
        while sep(a.get(i)) {
            i += 1;
        }
        while sep(b.get(j)) {
            j += 1;
        }
        let (x, y) = (a.get(i).copied(), b.get(j).copied());
        if x == Some(b'~') || y == Some(b'~') {
            if x != Some(b'~') {
                return Ordering::Greater;
            }
            if y != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if x == Some(b'^') || y == Some(b'^') {
            if x.is_none() {
                return Ordering::Less;
            }
            if y.is_none() {
                return Ordering::Greater;
            }
            if x != Some(b'^') {
                return Ordering::Greater;
            }
            if y != Some(b'^') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        let (Some(x), Some(_)) = (x, y) else { break };
        let numeric = x.is_ascii_digit();
        let class = |c: &u8| {
            if numeric {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let seg_a = run(a, i, class);
        let seg_b = run(b, j, class);
        i += seg_a.len();
        j += seg_b.len();
        if seg_b.is_empty() {
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let ord = if numeric {
            let (sa, sb) = (strip_zeros(seg_a), strip_zeros(seg_b));
            sa.len().cmp(&sb.len()).then_with(|| sa.cmp(sb))
        } else {
            seg_a.cmp(seg_b)
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    match (a.get(i), b.get(j)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

fn run(s: &[u8], from: usize, class: impl Fn(&u8) -> bool) -> &[u8] {
    let rest = s.get(from..).unwrap_or_default();
    let n = rest.iter().take_while(|c| class(c)).count();
    rest.get(..n).unwrap_or_default()
}

fn strip_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|c| **c == b'0').count();
    s.get(n..).unwrap_or_default()
}

/// One token of a generic version.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Token<'a> {
    /// A pre-release word, ranked: dev < alpha < beta < pre < rc.
    Pre(u8, u64),
    /// The end of the version.
    End,
    /// A letter run (a patch letter, as in OpenSSL's `1.1.1k`).
    Word(&'a [u8]),
    /// A number (leading zeros dropped, compared by length then digits).
    Number(&'a [u8]),
}

/// `between_numbers`: the word is glued to a number on both sides (`1.0b2`), where a lone
/// a, b or c means alpha, beta or candidate; at the end (`1.0.2a`) it is a patch letter.
fn pre_rank(word: &[u8], between_numbers: bool) -> Option<u8> {
    let lower = word.to_ascii_lowercase();
    match lower.as_slice() {
        b"dev" | b"snapshot" => Some(0),
        b"alpha" => Some(1),
        b"a" if between_numbers => Some(1),
        b"beta" => Some(2),
        b"b" if between_numbers => Some(2),
        b"pre" | b"preview" => Some(3),
        b"rc" | b"cr" => Some(4),
        b"c" if between_numbers => Some(4),
        _ => None,
    }
}

fn tokens(s: &str) -> Vec<Token<'_>> {
    let b = s.trim_start().as_bytes();
    let mut out = Vec::new();
    // `V3.0.1`, `v2.74`: the letter marks a version, it is not part of it.
    let mut i = usize::from(
        matches!(b.first(), Some(b'v' | b'V')) && b.get(1).is_some_and(u8::is_ascii_digit),
    );
    let mut glued = false;
    while let Some(&c) = b.get(i) {
        if c.is_ascii_digit() {
            let seg = run(b, i, u8::is_ascii_digit);
            i += seg.len();
            out.push(Token::Number(strip_zeros(seg)));
            glued = true;
        } else if c.is_ascii_alphabetic() {
            let seg = run(b, i, u8::is_ascii_alphabetic);
            i += seg.len();
            let digit_next = b.get(i).is_some_and(u8::is_ascii_digit);
            match pre_rank(seg, glued && digit_next) {
                Some(rank) => {
                    // A pre-release word takes the number after it: rc2 is (rc, 2).
                    let num = run(b, i, u8::is_ascii_digit);
                    i += num.len();
                    let n = std::str::from_utf8(num)
                        .ok()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    out.push(Token::Pre(rank, n));
                }
                None => out.push(Token::Word(seg)),
            }
            glued = false;
        } else {
            i += 1;
            glued = false;
        }
    }
    out
}

/// The generic order (see [`Scheme::Generic`]); `None` for versions that begin
/// differently.
pub fn generic_order(a: &str, b: &str) -> Option<Ordering> {
    let (ta, tb) = (tokens(a), tokens(b));
    match (ta.first(), tb.first()) {
        (Some(Token::Word(x)), Some(Token::Word(y))) if !x.eq_ignore_ascii_case(y) => None,
        (Some(Token::Word(_)), Some(Token::Number(_)))
        | (Some(Token::Number(_)), Some(Token::Word(_))) => None,
        _ => Some(compare_tokens(&ta, &tb)),
    }
}

/// The generic order (see [`Scheme::Generic`]) as a total order, for sorting: versions that
/// begin differently order as their tokens do.
pub fn generic_cmp(a: &str, b: &str) -> Ordering {
    compare_tokens(&tokens(a), &tokens(b))
}

fn compare_tokens(ta: &[Token<'_>], tb: &[Token<'_>]) -> Ordering {
    let mut ia = ta.iter();
    let mut ib = tb.iter();
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return Ordering::Equal,
            (x, y) => {
                let x = x.unwrap_or(&Token::End);
                let y = y.unwrap_or(&Token::End);
                let ord = match (x, y) {
                    (Token::Number(p), Token::Number(q)) => {
                        p.len().cmp(&q.len()).then_with(|| p.cmp(q))
                    }
                    (Token::Word(p), Token::Word(q)) => {
                        p.to_ascii_lowercase().cmp(&q.to_ascii_lowercase())
                    }
                    _ => x.cmp(y),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lt(scheme: Scheme, a: &str, b: &str) {
        let (x, y) = (scheme.parse(a).unwrap(), scheme.parse(b).unwrap());
        assert_eq!(
            x.compare(&y),
            Some(Ordering::Less),
            "{a} < {b} in {scheme:?}"
        );
        assert_eq!(
            y.compare(&x),
            Some(Ordering::Greater),
            "{b} > {a} in {scheme:?}"
        );
    }

    #[test]
    fn each_scheme_orders_its_own_way() {
        lt(Scheme::Semver, "1.0.0-rc.1", "1.0.0");
        lt(Scheme::Semver, "1.6", "1.6.1");
        lt(Scheme::Semver, "v1.9.0", "1.10.0");
        let build = Scheme::Semver.parse("1.0.0+build.5").unwrap();
        assert_eq!(
            build.compare(&Scheme::Semver.parse("1.0.0").unwrap()),
            Some(Ordering::Equal)
        );
        lt(Scheme::Pypi, "1.0rc1", "1.0");
        lt(Scheme::Pypi, "1.0", "1.0.post1");
        lt(Scheme::Deb, "1.0~rc1-1", "1.0-1");
        lt(Scheme::Deb, "2.0", "1:0.9");
        lt(Scheme::Deb, "1.1.1n-0+deb11u3", "1.1.1n-0+deb11u4");
        lt(Scheme::Rpm, "1.0~rc1", "1.0");
        lt(Scheme::Rpm, "1.0", "1.0^git1");
        lt(Scheme::Rpm, "1.0a", "1.0.1");
        lt(Scheme::Rpm, "1:1.0-1", "2:0.1-1");
        lt(Scheme::Generic, "1.1.1", "1.1.1k");
        lt(Scheme::Generic, "1.1.1k", "1.1.1l");
        lt(Scheme::Generic, "1.1.1z", "3.0.0");
        lt(Scheme::Generic, "1.36.0-rc1", "1.36.0");
        lt(Scheme::Generic, "1.0b2", "1.0");
        lt(Scheme::Generic, "1.0.2", "1.0.2a");
        lt(Scheme::Generic, "1.9", "1.10");
        lt(Scheme::Generic, "2.0-alpha", "2.0-beta");
        // Vendors' own forms, as CISA's advisories write them.
        lt(Scheme::Generic, "V3.0.0", "3.0.1");
        lt(Scheme::Generic, "VF10.1", "VF10.2");
        lt(Scheme::Generic, "VF9.9", "vf10.0");
        lt(Scheme::Generic, "028U000061", "028U000062");
        lt(Scheme::Generic, "R1.01.00", "R2.03.00");
        lt(Scheme::Generic, "V18_Update_1", "V18 Update 2");
    }

    #[test]
    fn vendor_versions_that_begin_differently_do_not_compare() {
        let g = |s: &str| Scheme::Generic.parse(s).unwrap();
        assert_eq!(g("V3.0.1").compare(&g("3.0.1")), Some(Ordering::Equal));
        assert_eq!(g("v2.74").compare(&g("2.74")), Some(Ordering::Equal));
        assert_eq!(g("R1.0").compare(&g("1.0")), None);
        assert_eq!(g("1.0").compare(&g("R1.0")), None);
        assert_eq!(g("R1.0").compare(&g("C1.0")), None);
        assert_eq!(g("VF10.1").compare(&g("10.1")), None);
        // Ordering for sorting stays total.
        assert_eq!(generic_cmp("R1.0", "1.0"), Ordering::Less);
    }

    #[test]
    fn equal_spellings_are_equal() {
        let eq = |s: Scheme, a: &str, b: &str| {
            assert_eq!(
                s.parse(a).unwrap().compare(&s.parse(b).unwrap()),
                Some(Ordering::Equal),
                "{a} = {b}"
            );
        };
        eq(Scheme::Pypi, "1.0", "1.0.0");
        eq(Scheme::Deb, "0:1.0", "1.0");
        eq(Scheme::Deb, "1.01", "1.1");
        eq(Scheme::Generic, "1.01", "1.1");
        eq(Scheme::Rpm, "1.0", "1.0-5"); // rpm ignores a release only one side has
    }

    #[test]
    fn bad_versions_are_refused_by_name() {
        let e = Scheme::Semver.parse("one.two").unwrap_err().to_string();
        assert!(e.contains("\"one.two\" is not a semver version"), "{e}");
        assert!(Scheme::Pypi.parse("1.0+").is_err());
        assert!(Scheme::Deb.parse("x:1.0").is_err());
        assert!(Scheme::Generic.parse(" ").is_err());
        assert!(Scheme::of_vers("cobol").is_err());
    }

    #[test]
    fn schemes_do_not_compare_across() {
        let a = Scheme::Semver.parse("1.0.0").unwrap();
        let b = Scheme::Generic.parse("1.0.0").unwrap();
        assert_eq!(a.compare(&b), None);
    }
}
