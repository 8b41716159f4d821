//! Vendor and product names as people write them, made comparable.
//!
//! Most advisories hospitals receive (CISA's CSAF documents among them) name a product only
//! by its branch path, vendor → product → version, and most hospital inventories know a
//! device only as manufacturer + model + firmware version. Matching the two means comparing
//! names, and the comparison must be one a reviewer can read and predict:
//!
//! - **Normalised form** ([`normalise`]): lower case; the Latin letters with accents
//!   (`ä`, `é`, `ã`, `ß`, …) written without them; every character that is not a letter or a
//!   digit is a space; runs of spaces are one. `Johnson Controls, Inc.` → `johnson controls
//!   inc`.
//! - **Vendors** ([`Names::vendor`]): the normalised form without legal suffixes at its end
//!   ([`LEGAL_SUFFIXES`]: `inc`, `gmbh`, `corporation`, `co ltd`, …), then looked up in the
//!   alias table (`data/vendor-aliases.txt`, extensible by the user) for the canonical name.
//!   No other rewriting: `Siemens Healthineers` stays distinct from `Siemens` unless an alias
//!   line joins them.
//! - **Products** ([`Product`]): the normalised name, and the same without any parenthesised
//!   part (CISA writes the order number there: `SCALANCE XF204 (6GK5204-0BA00-2AF2)`).
//! - **Close names** ([`similarity`]): the share of words the two names have in common
//!   (Jaccard over their word sets), or, for names of about the same length, the normalised
//!   Levenshtein similarity of the whole strings (a typo). Close names are only ever
//!   *possible* matches, for review.

use std::collections::HashMap;

/// The alias table medsec ships (`data/vendor-aliases.txt`).
pub const BUILTIN_ALIASES: &str = include_str!("../data/vendor-aliases.txt");

/// Legal-form words dropped from the end of a vendor name (repeatedly, so `Co., Ltd.` goes
/// too), with a dangling `and` or `&` before them (`Becton, Dickinson and Company`).
pub const LEGAL_SUFFIXES: &[&str] = &[
    "inc",
    "incorporated",
    "corp",
    "corporation",
    "co",
    "company",
    "ltd",
    "limited",
    "llc",
    "lp",
    "gmbh",
    "mbh",
    "ag",
    "kg",
    "sa",
    "sas",
    "sarl",
    "srl",
    "spa",
    "plc",
    "bv",
    "nv",
    "kk",
    "se",
    "oy",
    "oyj",
    "ab",
    "asa",
    "pty",
    "ltda",
    "me",
    "pvt",
    "kgaa",
];

/// The lowest similarity at which a product name of the same vendor is a possible match.
pub const POSSIBLE_AT: f64 = 0.5;

/// Names in normalised form: lower case, accents dropped, anything but letters and digits
/// a single space.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = true;
    for c in text.chars().flat_map(char::to_lowercase) {
        match fold(c) {
            Some(f) => {
                out.push_str(f);
                space = false;
            }
            None if c.is_alphanumeric() => {
                out.push(c);
                space = false;
            }
            None => {
                if !space {
                    out.push(' ');
                    space = true;
                }
            }
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// An accented lower-case Latin letter without its accent; `None` for anything else.
/// Written out rather than taken from a Unicode normalisation crate: vendor names use a few
/// dozen accented letters, and the table is what a reviewer reads.
fn fold(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' => "a",
        'æ' => "ae",
        'ç' | 'č' | 'ć' => "c",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ě' => "e",
        'ì' | 'í' | 'î' | 'ï' => "i",
        'ñ' | 'ń' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' => "o",
        'ß' => "ss",
        'š' | 'ś' => "s",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' => "u",
        'ý' | 'ÿ' => "y",
        'ž' | 'ź' | 'ż' => "z",
        'ł' => "l",
        'ř' => "r",
        _ => return None,
    })
}

/// `normalised` without legal suffixes at its end.
fn strip_legal(normalised: &str) -> String {
    let mut words: Vec<&str> = normalised.split(' ').filter(|w| !w.is_empty()).collect();
    loop {
        match words.last() {
            Some(w) if words.len() > 1 && (LEGAL_SUFFIXES.contains(w) || *w == "and") => {
                words.pop();
            }
            _ => break,
        }
    }
    words.join(" ")
}

/// Why an alias table was refused.
#[derive(Debug, thiserror::Error)]
#[error("vendor aliases, line {line}: {why}")]
pub struct AliasError {
    /// 1-based.
    pub line: usize,
    /// What is wrong.
    pub why: String,
}

/// Vendor names, with the alias table that says which names are one manufacturer.
#[derive(Debug, Clone)]
pub struct Names {
    /// Vendor key (normalised, legal suffixes dropped) -> canonical vendor key.
    aliases: HashMap<String, String>,
}

impl Default for Names {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Names {
    /// The table medsec ships.
    pub fn builtin() -> Names {
        let mut n = Names {
            aliases: HashMap::new(),
        };
        // The shipped table is tested to read (names::tests); a failure here is a build bug.
        let _ = n.extend(BUILTIN_ALIASES);
        n
    }

    /// No aliases at all: every vendor is only itself.
    pub fn without_aliases() -> Names {
        Names {
            aliases: HashMap::new(),
        }
    }

    /// Adds the lines of an alias table (`Canonical: alias; alias`, `#` comments). A name
    /// already an alias of another canonical name is refused: the table would contradict
    /// itself.
    pub fn extend(&mut self, text: &str) -> Result<usize, AliasError> {
        let mut added = 0;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: String| AliasError { line: i + 1, why };
            let (canonical, rest) = line.split_once(':').ok_or_else(|| {
                bad(format!(
                    "{line:?} has no colon: write `Canonical name: alias; other alias`"
                ))
            })?;
            let canonical = self.key_of(canonical);
            if canonical.is_empty() {
                return Err(bad("the canonical name is empty".into()));
            }
            for alias in rest.split(';') {
                let alias = strip_legal(&normalise(alias));
                if alias.is_empty() {
                    continue;
                }
                match self.aliases.get(&alias) {
                    Some(existing) if *existing != canonical => {
                        return Err(bad(format!(
                            "{alias:?} is already an alias of {existing:?}, not {canonical:?}"
                        )));
                    }
                    _ => {}
                }
                self.aliases.insert(alias, canonical.clone());
                added += 1;
            }
        }
        Ok(added)
    }

    /// The vendor's key: normalised, legal suffixes dropped, and its canonical name when an
    /// alias line names it.
    pub fn vendor(&self, name: &str) -> String {
        self.key_of(name)
    }

    fn key_of(&self, name: &str) -> String {
        let base = strip_legal(&normalise(name));
        match self.aliases.get(&base) {
            Some(canonical) => canonical.clone(),
            None => base,
        }
    }
}

/// A product name in the forms it is compared in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// Normalised.
    pub full: String,
    /// Normalised, without parenthesised parts (`scalance xf204`).
    pub base: String,
}

impl Product {
    /// Reads a product name.
    pub fn new(name: &str) -> Product {
        let mut bare = String::with_capacity(name.len());
        let mut depth = 0usize;
        for c in name.chars() {
            match c {
                '(' | '[' => depth += 1,
                ')' | ']' => depth = depth.saturating_sub(1),
                _ if depth == 0 => bare.push(c),
                _ => {}
            }
        }
        let full = normalise(name);
        let base = normalise(&bare);
        Product {
            base: if base.is_empty() { full.clone() } else { base },
            full,
        }
    }

    /// The words of the base form.
    pub fn words(&self) -> Vec<&str> {
        let mut w: Vec<&str> = self.base.split(' ').filter(|w| !w.is_empty()).collect();
        w.sort_unstable();
        w.dedup();
        w
    }
}

/// How close two normalised product names are, 0 to 1 (see the module documentation).
/// `a_words` and `b_words` are their sorted, deduplicated words.
pub fn similarity(a: &str, a_words: &[&str], b: &str, b_words: &[&str]) -> f64 {
    let common = a_words
        .iter()
        .filter(|w| b_words.binary_search(w).is_ok())
        .count();
    let union = a_words.len() + b_words.len() - common;
    #[allow(
        clippy::cast_precision_loss,
        reason = "word counts of a product name are tiny"
    )]
    let jaccard = if union == 0 {
        0.0
    } else {
        common as f64 / union as f64
    };
    let (la, lb) = (a.chars().count(), b.chars().count());
    // Levenshtein only for names of about the same length: a typo, not a different product
    // (and it keeps the cost down on vendors with thousands of products).
    let typo = if la.abs_diff(lb) * 5 <= la.max(lb) {
        strsim::normalized_levenshtein(a, b)
    } else {
        0.0
    };
    jaccard.max(typo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_alias_table_reads() {
        let mut n = Names::without_aliases();
        assert!(n.extend(BUILTIN_ALIASES).unwrap() > 20);
    }

    #[test]
    fn vendors_compare_by_normalised_name_and_alias_only() {
        let n = Names::builtin();
        assert_eq!(n.vendor("Johnson Controls, Inc."), "johnson controls");
        assert_eq!(
            n.vendor("Johnson Controls Inc."),
            n.vendor("Johnson Controls")
        );
        assert_eq!(
            n.vendor("Mitsubishi Electric Corporation"),
            n.vendor("Mitsubishi Electric ")
        );
        assert_eq!(n.vendor("CODESYS, GmbH"), "codesys");
        assert_eq!(n.vendor("Baxter Healthcare"), n.vendor("Baxter"));
        assert_eq!(n.vendor("Becton, Dickinson and Company"), n.vendor("BD"));
        assert_eq!(n.vendor("Dräger"), n.vendor("Draeger"));
        assert_eq!(n.vendor("Drägerwerk AG & Co. KGaA"), "drager");
        assert_ne!(n.vendor("Siemens Healthineers"), n.vendor("Siemens"));
        assert_ne!(n.vendor("GE Digital"), n.vendor("GE HealthCare"));
        // A one-word legal name is not emptied.
        assert_eq!(n.vendor("AB"), "ab");
    }

    #[test]
    fn users_extend_the_table_and_contradictions_are_refused() {
        let mut n = Names::builtin();
        n.extend("# mine\nSiemens: Siemens Healthineers\n").unwrap();
        assert_eq!(n.vendor("Siemens Healthineers AG"), n.vendor("Siemens"));
        let e = n.extend("Philips: Baxter Healthcare").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.why.contains("already an alias of \"baxter\""), "{e}");
        assert!(n.extend("no colon here").is_err());
    }

    #[test]
    fn products_drop_parenthesised_order_numbers() {
        let p = Product::new("SCALANCE XF204 (6GK5204-0BA00-2AF2)");
        assert_eq!(p.full, "scalance xf204 6gk5204 0ba00 2af2");
        assert_eq!(p.base, "scalance xf204");
        assert_eq!(Product::new("(only)").base, "only");
    }

    #[test]
    fn close_names_score_high_and_others_low() {
        let s = |a: &str, b: &str| {
            let (x, y) = (Product::new(a), Product::new(b));
            similarity(&x.base, &x.words(), &y.base, &y.words())
        };
        assert!(s("Sigma Spectrum", "Sigma Spectrum Infusion System") >= POSSIBLE_AT);
        assert!(s("Sigma Spectrun", "Sigma Spectrum") >= 0.9);
        assert!(s("Alaris PC Unit", "Infusion Center") < POSSIBLE_AT);
        assert!(s("SIMATIC S7-1500", "SCALANCE XF204") < POSSIBLE_AT);
    }
}
