//! Matching by vendor and product name ([`crate::names`]): each vendor's products that
//! advisories name only that way, grouped by name, and the comparison of a component's
//! supplier and name with them (model numbers, equal names, close names).

use super::*;

/// One product name of one vendor, and the advisories that name it.
pub(super) struct NameGroup<'a> {
    product: Product,
    /// As the advisory writes it.
    written: &'a Named,
    /// Its model numbers, normalised, with a space either side (to find them as whole
    /// words in a padded name).
    models: Vec<String>,
    entries: Vec<(&'a Advisory, &'a Affected)>,
}

/// A vendor's named products.
#[derive(Default)]
pub(super) struct Vendor<'a> {
    groups: Vec<NameGroup<'a>>,
    by_full: HashMap<String, usize>,
    by_base: HashMap<String, Vec<usize>>,
    advisories: std::collections::BTreeSet<&'a str>,
}

impl<'a> Vendor<'a> {
    pub(super) fn add(&mut self, named: &'a Named, a: &'a Advisory, aff: &'a Affected) {
        self.advisories.insert(a.id.as_str());
        let product = Product::new(&named.product);
        let at = match self.by_full.get(&product.full) {
            Some(&i) => i,
            None => {
                let i = self.groups.len();
                self.by_full.insert(product.full.clone(), i);
                self.by_base
                    .entry(product.base.clone())
                    .or_default()
                    .push(i);
                self.groups.push(NameGroup {
                    models: named
                        .models
                        .iter()
                        .map(|m| names::normalise(m))
                        .filter(|m| !m.is_empty())
                        .map(|m| format!(" {m} "))
                        .collect(),
                    product,
                    written: named,
                    entries: Vec::new(),
                });
                i
            }
        };
        if let Some(g) = self.groups.get_mut(at) {
            g.entries.push((a, aff));
        }
    }
}

impl Index<'_> {
    /// Compares the component by vendor and product name with the advisories' products
    /// named only that way: model numbers and equal names first; close names (possible
    /// matches) only when nothing of that vendor matched outright.
    pub(super) fn by_name(
        &self,
        c: &Component,
        supplier: &str,
        findings: &mut Vec<Finding>,
        compared_on: &mut Vec<ComparedOn>,
    ) {
        let vendor_key = self.db.names.vendor(supplier);
        let mine = Product::new(&c.name);
        // "Baxter Sigma Spectrum" from supplier "Baxter": the name without the vendor's.
        let unprefixed = [names::normalise(supplier), vendor_key.clone()]
            .iter()
            .find_map(|v| {
                mine.base
                    .strip_prefix(v.as_str())
                    .and_then(|r| r.strip_prefix(' '))
                    .map(str::to_owned)
            });
        let vendor = self.by_vendor.get(&vendor_key);
        compared_on.push(ComparedOn {
            on: "name",
            value: format!("{vendor_key} / {}", mine.base),
            advisories: vendor.map_or(0, |v| v.advisories.len()),
        });
        let written = format!("{supplier} / {}", c.name);
        let judge_hits = |vendor: &Vendor<'_>,
                          hits: Vec<Hit>,
                          other_vendor: bool,
                          out: &mut Vec<Finding>| {
            for (i, by, confidence, similarity) in hits {
                let Some(g) = vendor.groups.get(i) else {
                    continue;
                };
                for (a, aff) in &g.entries {
                    let (verdict, fixed_in) = judge(aff, c.version.as_deref());
                    let (certain, reason) = match verdict {
                        Verdict::Affected(r) => (by != MatchedBy::Possible, r),
                        Verdict::Undetermined(r) => (false, r),
                        Verdict::NotAffected => continue,
                    };
                    let reason = if other_vendor {
                        format!(
                            "possible match, for review: the supplier {supplier:?} is not the advisory's vendor {:?} (no alias line joins them: --vendor-aliases), and {:?} is {} the advisory's {:?}; if it were that product: {reason}",
                            g.written.vendor,
                            c.name,
                            if similarity.is_some_and(|s| s >= 1.0) {
                                "named as"
                            } else {
                                "close to"
                            },
                            g.written.product
                        )
                    } else if by == MatchedBy::Possible {
                        format!(
                            "possible match, for review: {:?} is close to the advisory's {:?}; if it were that product: {reason}",
                            c.name, g.written.product
                        )
                    } else {
                        reason
                    };
                    let how = How {
                        by,
                        confidence,
                        compared: Some(Compared {
                            component: written.clone(),
                            advisory: format!("{} / {}", g.written.vendor, g.written.product),
                            similarity,
                        }),
                    };
                    keep(out, self.finding(a, aff, how, certain, reason, fixed_in));
                }
            }
        };
        if let Some(vendor) = vendor {
            let hits = vendor.hits(&mine, unprefixed.as_deref());
            judge_hits(vendor, hits, false, findings);
            return;
        }
        // No advisory names this vendor. One that names a vendor whose name starts with this
        // one's, or with which this one starts ("Weintek" and "Weintek Labs", "Siemens" and
        // "Siemens Healthineers"), may be the same manufacturer under another name: its
        // equal or close products are possible matches, for review, never matches.
        let mine_words: Vec<&str> = vendor_key.split(' ').collect();
        for (key, other) in &self.by_vendor {
            let theirs: Vec<&str> = key.split(' ').collect();
            let (short, long) = if theirs.len() <= mine_words.len() {
                (&theirs, &mine_words)
            } else {
                (&mine_words, &theirs)
            };
            let related = short.len() < long.len()
                && short.iter().map(|w| w.len()).sum::<usize>() >= 3
                && long.starts_with(short);
            if !related {
                continue;
            }
            let hits = other
                .hits(&mine, unprefixed.as_deref())
                .into_iter()
                .map(|(i, by, _, similarity)| {
                    let s = if by == MatchedBy::Possible {
                        similarity
                    } else {
                        Some(1.0)
                    };
                    (i, MatchedBy::Possible, "low", s)
                })
                .collect();
            judge_hits(other, hits, true, findings);
        }
    }
}

/// A product group of a vendor that a component's name hits: its index, how, the
/// confidence and, for close names, the similarity.
type Hit = (usize, MatchedBy, &'static str, Option<f64>);

impl Vendor<'_> {
    /// The groups a component's name hits: model numbers and equal names; close names
    /// (possible matches, the closest few) only when nothing hits outright.
    fn hits(&self, mine: &Product, unprefixed: Option<&str>) -> Vec<Hit> {
        let mut hits: Vec<Hit> = Vec::new();
        let padded = format!(" {} ", mine.full);
        for (i, g) in self.groups.iter().enumerate() {
            if g.models.iter().any(|m| padded.contains(m.as_str())) {
                hits.push((i, MatchedBy::ModelNumber, "high", None));
            }
        }
        if let Some(&i) = self.by_full.get(&mine.full) {
            hits.push((i, MatchedBy::Name, "high", None));
        }
        for base in std::iter::once(mine.base.as_str()).chain(unprefixed) {
            for &i in self.by_base.get(base).into_iter().flatten() {
                hits.push((i, MatchedBy::Name, "medium", None));
            }
            if let Some(&i) = self.by_full.get(base) {
                hits.push((i, MatchedBy::Name, "medium", None));
            }
        }
        if hits.is_empty() {
            let words = mine.words();
            let mut close: Vec<(usize, f64)> = self
                .groups
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    let theirs = g.product.words();
                    (
                        i,
                        names::similarity(&mine.base, &words, &g.product.base, &theirs),
                    )
                })
                .filter(|(_, s)| *s >= names::POSSIBLE_AT)
                .collect();
            close.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(Ordering::Equal));
            close.truncate(POSSIBLE_NAMES);
            hits.extend(
                close
                    .into_iter()
                    .map(|(i, s)| (i, MatchedBy::Possible, "low", Some(s))),
            );
        }
        hits
    }
}
