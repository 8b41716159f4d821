//! Which releases (and so which devices) one advisory affects. A fleet runs few releases and
//! many devices: components are indexed once per release by package key, an advisory is
//! judged only against the components its keys name, and devices follow from the releases
//! they run. So a new advisory costs its keys' components, not devices × components.

use std::collections::HashMap;

use serde::Serialize;

use crate::advisory::Advisory;
use crate::ident;
use crate::matching::{Verdict, judge};
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
                .chain(c.cpe.as_deref().and_then(ident::cpe));
            for id in ids {
                let version = id.version.or_else(|| c.version.clone());
                let list = self.by_key.entry(id.key).or_default();
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
            for e in self.by_key.get(&aff.key).into_iter().flatten() {
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
