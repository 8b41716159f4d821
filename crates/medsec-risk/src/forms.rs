//! The ways real CSAF documents write which versions of a product a branch is about, read
//! into one [`Constraint`], and counted by [`Form`].
//!
//! Over CISA's 704 ICS advisories of 2023–2024 (`../shared/data/risk/cisa-icsa/`): 3,248
//! ranges are `vers:all/*`, the form CSAF 2.0 asks for "all versions"; about 1,750 are
//! `vers`-like ranges written without the `vers:` prefix (`<=1.70`, `< V3.0.1`, `>= 12.0.1
//! | <= 12.0.14`); the rest are single versions, wildcards (`2.X`, `5.x.x`, `V7.6x`) and
//! words (`All versions < V1.0 SP2 Update 2`). Each is read here when its meaning is
//! unambiguous; anything else becomes [`Constraint::Unreadable`] with its exact text, and a
//! match against it is undetermined, never clean.
//!
//! Versions without a scheme (no purl on the product) compare in the generic order
//! ([`Scheme::Generic`]), which reads vendors' forms such as `V3.0.1`, `R1.01.00` or
//! `028U000061`.

use serde::Serialize;

use crate::advisory::Constraint;
use crate::range::Vers;
use crate::version::Scheme;

/// How a product's version or range was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Form {
    /// No version in the branch path: the product as a whole (every version).
    Unversioned,
    /// One version (`product_version`, or a range field naming one version).
    Exact,
    /// A `vers` range with its scheme (`vers:generic/<2.0`).
    Vers,
    /// `vers:all/*`: every version.
    VersAll,
    /// A `vers` constraint list without the `vers:` prefix (`<=1.70`, `>=4.0|<4.2.1`).
    Vls,
    /// A version with a wildcard (`2.X`, `5.x.x`, `V7.6x`).
    Wildcard,
    /// Words that state a range (`All versions prior to 3.1`, `4.0 through 4.2`).
    Prose,
    /// Anything else: matches are undetermined, with the text.
    Unreadable,
}

impl Form {
    /// Every form, in report order.
    pub const ALL: [Form; 8] = [
        Form::Unversioned,
        Form::Exact,
        Form::Vers,
        Form::VersAll,
        Form::Vls,
        Form::Wildcard,
        Form::Prose,
        Form::Unreadable,
    ];

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Form::Unversioned => "unversioned",
            Form::Exact => "exact",
            Form::Vers => "vers",
            Form::VersAll => "vers-all",
            Form::Vls => "vls",
            Form::Wildcard => "wildcard",
            Form::Prose => "prose",
            Form::Unreadable => "unreadable",
        }
    }
}

/// A version with a wildcard: `2.X` is every `2.…`, `5.x.x` every `5.…`, `V7.6x` every
/// version whose second number starts with 6 (`7.6`, `7.61`), `R15x` every `R15…`.
#[derive(Debug, Clone)]
pub struct Wildcard {
    text: String,
    /// Dot-separated parts that must be equal (numbers as numbers, words ignoring case).
    whole: Vec<String>,
    /// The part the wildcard is glued to (`6` in `7.6x`): the next part must start with it.
    partial: Option<String>,
}

/// `V3.0.1` → `3.0.1` (the generic order's rule), lower case.
fn unprefixed(text: &str) -> String {
    let t = text.trim();
    let b = t.as_bytes();
    let skip = matches!(b.first(), Some(b'v' | b'V')) && b.get(1).is_some_and(u8::is_ascii_digit);
    t.get(usize::from(skip)..).unwrap_or(t).to_lowercase()
}

fn same_part(a: &str, b: &str) -> bool {
    let number = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if number(a) && number(b) {
        a.trim_start_matches('0') == b.trim_start_matches('0')
    } else {
        a.eq_ignore_ascii_case(b)
    }
}

impl Wildcard {
    /// Reads `text` when it ends in a wildcard (`x`, `X` or `*`) after a version that has a
    /// digit.
    pub fn parse(text: &str) -> Option<Wildcard> {
        let lower = unprefixed(text);
        if lower.contains(char::is_whitespace) {
            return None;
        }
        let mut rest = lower.as_str();
        let mut wild = false;
        while let Some(r) = rest.strip_suffix(".x").or_else(|| rest.strip_suffix(".*")) {
            rest = r;
            wild = true;
        }
        let mut glued = false;
        if !wild
            && let Some(r) = rest.strip_suffix('x').or_else(|| rest.strip_suffix('*'))
            && r.ends_with(|c: char| c.is_ascii_digit())
        {
            rest = r;
            wild = true;
            glued = true;
        }
        if !wild || !rest.contains(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let mut parts: Vec<String> = rest.split('.').map(str::to_owned).collect();
        let partial = if glued { parts.pop() } else { None };
        Some(Wildcard {
            text: text.trim().to_owned(),
            whole: parts,
            partial,
        })
    }

    /// As written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether `version` is one the wildcard stands for.
    pub fn contains(&self, version: &str) -> bool {
        let v = unprefixed(version);
        let parts: Vec<&str> = v.split('.').collect();
        // `2` is `2.X`'s own first version, but not in `2.1.x`.
        let whole_ok = self
            .whole
            .iter()
            .enumerate()
            .all(|(i, w)| parts.get(i).is_some_and(|p| same_part(p, w)));
        whole_ok
            && self.partial.as_ref().is_none_or(|p| {
                parts
                    .get(self.whole.len())
                    .is_some_and(|x| x.starts_with(p.as_str()))
            })
    }
}

/// What a branch path's version text reads as.
#[derive(Debug, Clone)]
pub struct Reading {
    /// The constraint.
    pub constraint: Constraint,
    /// How it was written.
    pub form: Form,
    /// Set when the text breaks the CSAF specification in a way whose meaning is still
    /// clear, and how it was read.
    pub warning: Option<String>,
}

fn reading(constraint: Constraint, form: Form) -> Reading {
    Reading {
        constraint,
        form,
        warning: None,
    }
}

/// Words that never occur inside a version, only in sentences around one.
const NOT_IN_VERSIONS: [&str; 24] = [
    "with",
    "on",
    "only",
    "when",
    "and",
    "or",
    "of",
    "the",
    "serial",
    "number",
    "manufactured",
    "between",
    "for",
    "all",
    "versions",
    "version",
    "prior",
    "before",
    "after",
    "through",
    "to",
    "if",
    "than",
    "see",
];

/// Whether `text` can stand for one version: it has a digit; letters, digits and `. - _ + ~
/// : ^ !` only (the last two for RPM and PEP 440); no wildcard; at most four words, the first with a digit and no other starting
/// like a bound (`-1.2`); no sentence words; and no second version glued on with an
/// underscore (`v36.011_v35.013`).
pub fn plausible_version(text: &str) -> bool {
    let t = text.trim();
    if t.is_empty() || t.len() > 64 || !t.contains(|c: char| c.is_ascii_digit()) {
        return false;
    }
    if !t
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ".-_+~:^! ".contains(c))
    {
        return false;
    }
    // A wildcard stands for many versions, not one.
    if Wildcard::parse(t).is_some() {
        return false;
    }
    let words: Vec<&str> = t.split_whitespace().collect();
    // A later word that starts like a bound (`1.265B -1.285X`) makes it a range.
    if words
        .iter()
        .skip(1)
        .any(|w| w.starts_with(['-', '+', '~', ':']))
    {
        return false;
    }
    if words.len() > 4
        || !words
            .first()
            .is_some_and(|w| w.contains(|c: char| c.is_ascii_digit()))
    {
        return false;
    }
    let sentence = t
        .split(|c: char| c == '_' || c.is_whitespace())
        .skip(1)
        .any(|p| NOT_IN_VERSIONS.contains(&p.to_ascii_lowercase().as_str()));
    let glued = t
        .split('_')
        .skip(1)
        .any(|p| matches!(p.as_bytes(), [b'v' | b'V', d, ..] if d.is_ascii_digit()));
    !sentence && !glued
}

const COMPARATORS: [&str; 8] = [">=", "<=", "!=", "≥", "≤", "<", ">", "="];

/// The constraints of one `|`-separated part: usually one, but CISA also writes two glued
/// together (`>=V3.0.1<V3.0.3`, `>= V7.80 < V9.30`).
fn constraints(part: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = part.trim().chars().peekable();
    while let Some(c) = chars.next() {
        let starts = matches!(c, '<' | '>' | '≤' | '≥') || (c == '!' && chars.peek() == Some(&'='));
        let after_version = current
            .trim_end()
            .chars()
            .last()
            .is_some_and(|p| !matches!(p, '<' | '>' | '=' | '!' | '≤' | '≥'));
        if starts && after_version {
            out.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    out.push(current);
    out.into_iter().map(|c| c.trim().to_owned()).collect()
}

/// A `vers` constraint list without its prefix, as a `vers` range of `scheme`; `None` when a
/// part is not a comparator and a plausible version. Also read: `=<` and `=>` for `<=` and
/// `>=`, versions in quotes (`>="05"`), two constraints with no `|` between them.
fn vls(text: &str, scheme: Scheme) -> Option<Vers> {
    let text = text.replace("=<", "<=").replace("=>", ">=");
    let mut parts = Vec::new();
    for part in text.split('|').flat_map(constraints) {
        let p = part.trim();
        let (cmp, version) = COMPARATORS
            .iter()
            .find_map(|c| p.strip_prefix(c).map(|v| (*c, v.trim())))
            .unwrap_or(("", p));
        let version = version.trim_matches(|c| c == '"' || c == '\'').trim();
        if !plausible_version(version) {
            return None;
        }
        let cmp = match cmp {
            "≥" => ">=",
            "≤" => "<=",
            other => other,
        };
        // `vers` percent-encodes what its grammar reserves.
        let encoded = version.replace('%', "%25").replace('|', "%7C");
        parts.push(format!("{cmp}{encoded}"));
    }
    Vers::parse(&format!("vers:{}/{}", scheme.name(), parts.join("|"))).ok()
}

/// Reads the prose forms of a range; the `vls` text it stands for.
fn prose(text: &str) -> Option<String> {
    let lower = text
        .trim()
        .trim_end_matches('.')
        .to_lowercase()
        .replace(" -", " - ")
        .replace("- ", " - ");
    let words: Vec<&str> = lower.split_whitespace().collect();
    // "all versions", "all BIOS versions", "versions", "version"
    let (all, skip) = match words.as_slice() {
        ["all", "versions", ..] => (true, 2),
        ["all", _, "versions", ..] => (true, 3),
        ["versions" | "version", ..] => (false, 1),
        _ => (false, 0),
    };
    let rest = words.get(skip..).unwrap_or_default();
    if rest.is_empty() {
        return all.then(|| "*".to_owned());
    }
    let tail = |n: usize| -> Option<String> {
        let v = rest.get(n..)?.join(" ");
        plausible_version(&v).then_some(v)
    };
    const LEADING: [(&[&str], &str); 17] = [
        (&["prior", "to"], "<"),
        (&["before"], "<"),
        (&["earlier", "than"], "<"),
        (&["older", "than"], "<"),
        (&["lower", "than"], "<"),
        (&["below"], "<"),
        (&["<"], "<"),
        (&["up", "to", "and", "including"], "<="),
        (&["up", "to"], "<="),
        (&["through"], "<="),
        (&["<="], "<="),
        (&["≤"], "<="),
        (&["from"], ">="),
        (&["since"], ">="),
        (&[">="], ">="),
        (&["after"], ">"),
        (&[">"], ">"),
    ];
    for (phrase, cmp) in LEADING {
        if rest.starts_with(phrase) {
            return tail(phrase.len()).map(|v| format!("{cmp}{v}"));
        }
    }
    // "3.1 and earlier", "3.1 or later"
    if let [head @ .., "and" | "or", last] = rest {
        let v = head.join(" ");
        if plausible_version(&v) {
            match *last {
                "earlier" | "prior" | "below" | "older" | "lower" | "before" => {
                    return Some(format!("<={v}"));
                }
                "later" | "above" | "newer" | "higher" | "after" => {
                    return Some(format!(">={v}"));
                }
                _ => {}
            }
        }
    }
    // "4.0 through 4.2", "4.0 to 4.2", "28 - 32"
    for sep in ["through", "thru", "to", "-"] {
        if let Some(i) = rest.iter().position(|w| *w == sep) {
            let (a, b) = (
                rest.get(..i).unwrap_or_default().join(" "),
                rest.get(i + 1..).unwrap_or_default().join(" "),
            );
            if plausible_version(&a) && plausible_version(&b) {
                return Some(format!(">={a}|<={b}"));
            }
        }
    }
    // "Version v1.0"
    if skip == 1 && !all {
        let v = rest.join(" ");
        if plausible_version(&v) {
            return Some(v);
        }
    }
    None
}

/// Reads a branch path's version (`product_version` or `product_version_range`; real
/// documents mix them up, so both are read alike) in `scheme` (the product's purl's, else
/// generic).
pub fn read(text: Option<&str>, scheme: Scheme) -> Reading {
    let Some(raw) = text else {
        return reading(Constraint::Any, Form::Unversioned);
    };
    let t = raw.trim();
    if let Some(rest) = t.strip_prefix("vers:") {
        if let Some(list) = rest
            .strip_prefix("all/")
            .or_else(|| rest.strip_prefix("ALL/"))
        {
            if list.trim() == "*" {
                return reading(Constraint::Any, Form::VersAll);
            }
            // `vers:all/<V3.0.3`: the specification allows only `*` after `all`; what is
            // meant is a range in no particular scheme.
            return match vls(list, scheme) {
                Some(v) => Reading {
                    constraint: Constraint::Vers(v),
                    form: Form::Vers,
                    warning: Some(format!(
                        "{t:?}: vers:all takes only `*`; read as vers:{}/{}",
                        scheme.name(),
                        list.trim()
                    )),
                },
                None => reading(Constraint::Unreadable(t.to_owned()), Form::Unreadable),
            };
        }
        return match Vers::parse(t) {
            Ok(v) => reading(Constraint::Vers(v), Form::Vers),
            Err(_) => reading(Constraint::Unreadable(t.to_owned()), Form::Unreadable),
        };
    }
    if let Some(w) = Wildcard::parse(t) {
        return reading(Constraint::Wildcard(w), Form::Wildcard);
    }
    let comparator = COMPARATORS.iter().any(|c| t.starts_with(c));
    if comparator || t.contains('|') {
        return match vls(t, scheme) {
            Some(v) => reading(Constraint::Vers(v), Form::Vls),
            None => reading(Constraint::Unreadable(t.to_owned()), Form::Unreadable),
        };
    }
    if plausible_version(t) {
        // A range field naming one version means that version, as `vers` reads it.
        return reading(Constraint::Exact(t.to_owned()), Form::Exact);
    }
    if let Some(list) = prose(t) {
        if list == "*" {
            return reading(Constraint::Any, Form::Prose);
        }
        if let Some(v) = vls(&list, scheme) {
            return reading(Constraint::Vers(v), Form::Prose);
        }
    }
    reading(Constraint::Unreadable(t.to_owned()), Form::Unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::Scheme;

    fn contains(text: &str, version: &str) -> Option<bool> {
        let r = read(Some(text), Scheme::Generic);
        let v = Scheme::Generic.parse(version).ok()?;
        match r.constraint {
            Constraint::Any => Some(true),
            Constraint::Vers(x) => {
                if x.incomparable(&v).is_some() {
                    None
                } else {
                    Some(x.contains(&v))
                }
            }
            Constraint::Wildcard(w) => Some(w.contains(version)),
            Constraint::Exact(x) => Scheme::Generic
                .parse(&x)
                .ok()?
                .compare(&v)
                .map(std::cmp::Ordering::is_eq),
            _ => None,
        }
    }

    #[test]
    fn every_form_found_in_cisa_advisories_reads() {
        let form = |t: &str| read(Some(t), Scheme::Generic).form;
        assert_eq!(form("vers:all/*"), Form::VersAll);
        assert_eq!(form("vers:generic/<2.0"), Form::Vers);
        assert_eq!(form("<=1.70"), Form::Vls);
        assert_eq!(form("< V3.0.1"), Form::Vls);
        assert_eq!(form(">= 12.0.1 | <= 12.0.14"), Form::Vls);
        assert_eq!(form("8.001|8.002|9.001"), Form::Vls);
        assert_eq!(form(">=V8.00<V8.22"), Form::Vls);
        assert_eq!(form(">= V7.80 < V9.30"), Form::Vls);
        assert_eq!(form(">=8.0|=<8.5"), Form::Vls);
        assert_eq!(form(">=\"05\"|<=\"07\""), Form::Vls);
        assert_eq!(form("2.X"), Form::Wildcard);
        assert_eq!(form("5.x.x"), Form::Wildcard);
        assert_eq!(form("All versions prior to 3.1"), Form::Prose);
        assert_eq!(form("All versions < V1.0 SP2 Update 2"), Form::Prose);
        assert_eq!(form("versions 4.0 through 4.2"), Form::Prose);
        assert_eq!(form("All BIOS versions < V1.0.212N"), Form::Prose);
        assert_eq!(form("all versions"), Form::Prose);
        assert_eq!(form("3.1 and earlier"), Form::Prose);
        assert_eq!(form("2.2.5"), Form::Exact);
        assert_eq!(read(None, Scheme::Generic).form, Form::Unversioned);
    }

    #[test]
    fn what_cannot_be_read_keeps_its_text() {
        for t in [
            "<v36.011_v35.013_v34.014",
            "<=RTS/RTD_3.6.6",
            ">=V3.2.3_<V3.3.0_only_when_manufactured_between_LQN231003..._and_LQN231215...",
            "<=The_first_5_digits_of_serial_No._\"26061\"",
            "All versions with maxView Storage Manager < 4.09.00.25611 on Windows",
            "1.265B -1.285X",
        ] {
            let r = read(Some(t), Scheme::Generic);
            assert_eq!(r.form, Form::Unreadable, "{t}");
            match r.constraint {
                Constraint::Unreadable(x) => assert_eq!(x, t.trim()),
                other => panic!("{t} read as {other:?}"),
            }
        }
    }

    #[test]
    fn ranges_decide_vendor_versions() {
        assert_eq!(contains("<=1.70", "1.70"), Some(true));
        assert_eq!(contains("<=1.70", "1.71"), Some(false));
        assert_eq!(contains("<V3.0.1", "V3.0.0"), Some(true));
        assert_eq!(contains("<V3.0.1", "3.0.0"), Some(true));
        assert_eq!(contains("<V3.0.1", "V3.0.1"), Some(false));
        assert_eq!(contains("<V18_Update_2", "V18 Update 1"), Some(true));
        assert_eq!(contains("<V18_Update_2", "V18 Update 3"), Some(false));
        assert_eq!(contains(">=R1.01.00|<R2.03.00", "R1.05.00"), Some(true));
        // A version that begins differently cannot be placed: undetermined.
        assert_eq!(contains(">=R1.01.00|<R2.03.00", "1.05.00"), None);
        assert_eq!(contains("All versions prior to 3.1", "3.0.9"), Some(true));
        assert_eq!(contains("All versions prior to 3.1", "3.1"), Some(false));
        assert_eq!(contains("versions 4.0 through 4.2", "4.2"), Some(true));
        assert_eq!(contains("versions 4.0 through 4.2", "4.2.1"), Some(false));
        assert_eq!(contains("vers:all/*", "anything-at-all1"), Some(true));
        assert_eq!(contains("028U000061", "028U000061"), Some(true));
        assert_eq!(contains("<=028U000061", "028U000060"), Some(true));
        assert_eq!(contains("vers:all/>=V3.0.1<V3.0.3", "V3.0.2"), Some(true));
        assert_eq!(contains("vers:all/>=V3.0.1<V3.0.3", "V3.0.3"), Some(false));
        assert_eq!(contains("vers:all/>=V3.0.1<V3.0.3", "V3.0.0"), Some(false));
        assert_eq!(contains(">=8.0|=<8.5", "8.5"), Some(true));
        assert_eq!(contains(">=\"05\"|<=\"07\"", "06"), Some(true));
    }

    #[test]
    fn wildcards_stand_for_their_versions_only() {
        let w = |t: &str| Wildcard::parse(t).unwrap();
        assert!(w("2.X").contains("2.1.3"));
        assert!(w("2.X").contains("2"));
        assert!(!w("2.X").contains("20.1"));
        assert!(!w("2.X").contains("3.0"));
        assert!(w("5.x.x").contains("5.0.12"));
        assert!(!w("5.x.x").contains("6.0.0"));
        assert!(w("2.1.x").contains("2.1.7"));
        assert!(!w("2.1.x").contains("2.10.7"));
        assert!(!w("2.1.x").contains("2"));
        assert!(w("V7.6x").contains("7.61"));
        assert!(w("V7.6x").contains("v7.6"));
        assert!(!w("V7.6x").contains("7.5"));
        assert!(w("R15x").contains("R15B"));
        assert!(!w("R15x").contains("R14A"));
        assert!(w("R210.X").contains("r210.3"));
        assert!(Wildcard::parse("4K").is_none());
        assert!(Wildcard::parse("x").is_none());
        assert!(Wildcard::parse("1.265B -1.285X").is_none());
    }

    #[test]
    fn vers_all_with_constraints_is_read_with_a_warning() {
        let r = read(Some("vers:all/<V2406.0003"), Scheme::Generic);
        assert_eq!(r.form, Form::Vers);
        assert!(r.warning.unwrap().contains("vers:all takes only"));
    }
}
