//! Which releases (and so which devices) one advisory affects. A fleet runs few releases and
//! many devices: components are indexed once per release by package key, an advisory is
//! judged only against the components its keys name, and devices follow from the releases
//! they run. So a new advisory costs its keys' components, not devices × components.
//!
//! A component with a supplier is also indexed by vendor and product name (normalised, see
//! [`crate::names`]), so an advisory that names products only that way (CSAF without purl
//! or CPE) finds the releases whose components have that name. Model-number and possible
//! (close-name) matches are per-release questions: [`crate::matching::Index`] answers them.

use std::collections::HashMap;

use serde::Serialize;

use crate::advisory::Advisory;
use crate::ident;
use crate::matching::{Verdict, judge};
use crate::names::{Names, Product};
use crate::sbom::Component;

/// One release's component, as indexed.
#[derive(Debug, Clone)]
struct Entry {
    release: usize,
    component: usize,
    version: Option<String>,
}

/// Releases' components by package key.
#[derive(Debug, Default)]
pub struct Inventory {
    by_key: HashMap<String, Vec<Entry>>,
    releases: Vec<String>,
    names: Names,
}

/// The keys a vendor and product name are indexed under: the normalised name with and
/// without its parenthesised parts.
fn name_keys(names: &Names, vendor: &str, product: &str) -> Vec<String> {
    let vendor = names.vendor(vendor);
    let p = Product::new(product);
    let mut keys = vec![format!("name:{vendor}/{}", p.full)];
    if p.base != p.full {
        keys.push(format!("name:{vendor}/{}", p.base));
    }
    keys
}

/// An affected component of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hit {
    /// The release (as named when added).
    pub release: String,
    /// The component's position in the release's SBOM.
    pub component: usize,
    /// False when the match could not be decided (see [`crate::matching::Finding::certain`]).
    pub certain: bool,
}

impl Inventory {
    /// An empty inventory.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty inventory comparing vendors with `names`' aliases.
    pub fn with_names(names: Names) -> Self {
        Self {
            names,
            ..Self::default()
        }
    }

    /// Adds a release's components; returns its index.
    pub fn add_release(&mut self, name: &str, components: &[Component]) -> usize {
        let release = self.releases.len();
        self.releases.push(name.to_owned());
        for (i, c) in components.iter().enumerate() {
            let ids = c
                .purl
                .as_deref()
                .and_then(ident::purl)
                .into_iter()
                .chain(c.cpe.as_deref().and_then(ident::cpe))
                .map(|id| (id.key, id.version));
            let named = c
                .supplier
                .as_deref()
                .filter(|s| !s.trim().is_empty())
                .map(|s| name_keys(&self.names, s, &c.name))
                .unwrap_or_default();
            for (key, version) in ids.chain(named.into_iter().map(|k| (k, None))) {
                let version = version.or_else(|| c.version.clone());
                let list = self.by_key.entry(key).or_default();
                // A component with both a purl and a CPE under one key counts once.
                if !list
                    .last()
                    .is_some_and(|e| e.release == release && e.component == i)
                {
                    list.push(Entry {
                        release,
                        component: i,
                        version,
                    });
                }
            }
        }
        release
    }

    /// How many releases are indexed.
    pub fn releases(&self) -> usize {
        self.releases.len()
    }

    /// The release components the advisory applies to (withdrawn: none), each once.
    pub fn affected(&self, advisory: &Advisory) -> Vec<Hit> {
        let mut hits: Vec<Hit> = Vec::new();
        if advisory.withdrawn {
            return hits;
        }
        let mut seen: HashMap<(usize, usize), usize> = HashMap::new();
        for aff in &advisory.affected {
            let keys = match &aff.named {
                Some(n) => name_keys(&self.names, &n.vendor, &n.product),
                None => vec![aff.key.clone()],
            };
            for e in keys.iter().flat_map(|k| self.by_key.get(k)).flatten() {
                let certain = match judge(aff, e.version.as_deref()).0 {
                    Verdict::Affected(_) => true,
                    Verdict::Undetermined(_) => false,
                    Verdict::NotAffected => continue,
                };
                match seen.get(&(e.release, e.component)) {
                    Some(&at) => {
                        if let Some(h) = hits.get_mut(at) {
                            h.certain |= certain;
                        }
                    }
                    None => {
                        seen.insert((e.release, e.component), hits.len());
                        hits.push(Hit {
                            release: self.releases.get(e.release).cloned().unwrap_or_default(),
                            component: e.component,
                            certain,
                        });
                    }
                }
            }
        }
        hits
    }
}
