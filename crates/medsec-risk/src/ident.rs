//! Package identities: the key a component and an advisory are matched on, from a purl, a
//! CPE, or an OSV ecosystem and name.

use std::str::FromStr as _;

use crate::version::Scheme;

/// A package key and the version its identifier carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    /// `pkg:TYPE/NAMESPACE/NAME` (lower case, no version or qualifiers) or
    /// `cpe:PART:VENDOR:PRODUCT`.
    pub key: String,
    /// The version in the identifier, if any (`*` and `-` in a CPE are none).
    pub version: Option<String>,
    /// The versioning scheme of the package's world.
    pub scheme: Scheme,
}

fn normalise(kind: &str, part: &str) -> String {
    let lower = part.to_ascii_lowercase();
    if kind == "pypi" {
        // PEP 503: runs of -, _ and . are one -.
        let mut out = String::with_capacity(lower.len());
        for c in lower.chars() {
            let c = if matches!(c, '_' | '.') { '-' } else { c };
            if !(c == '-' && out.ends_with('-')) {
                out.push(c);
            }
        }
        out
    } else {
        lower
    }
}

fn key(kind: &str, namespace: Option<&str>, name: &str) -> String {
    let kind = kind.to_ascii_lowercase();
    match namespace.filter(|n| !n.is_empty()) {
        Some(ns) => format!(
            "pkg:{kind}/{}/{}",
            ns.to_ascii_lowercase(),
            normalise(&kind, name)
        ),
        None => format!("pkg:{kind}/{}", normalise(&kind, name)),
    }
}

/// Reads a purl (`pkg:deb/debian/openssl@3.0.11-1?arch=amd64`).
pub fn purl(text: &str) -> Option<Ident> {
    let p = packageurl::PackageUrl::from_str(text.trim()).ok()?;
    Some(Ident {
        key: key(p.ty(), p.namespace(), p.name()),
        version: p.version().map(str::to_owned),
        scheme: Scheme::of_purl_type(p.ty()),
    })
}

/// Splits a CPE 2.3 formatted string or a CPE 2.2 URI into its fields (escaped colons kept).
fn cpe_fields(text: &str) -> Option<Vec<String>> {
    let t = text.trim();
    let rest = t
        .strip_prefix("cpe:2.3:")
        .or_else(|| t.strip_prefix("cpe:/"))?;
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in rest.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ':' {
            fields.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    fields.push(cur);
    Some(fields)
}

/// Reads a CPE (2.3 formatted string or 2.2 URI).
pub fn cpe(text: &str) -> Option<Ident> {
    let f = cpe_fields(text)?;
    let (part, vendor, product) = (f.first()?, f.get(1)?, f.get(2)?);
    if part.is_empty() || vendor.is_empty() || product.is_empty() || vendor == "*" || product == "*"
    {
        return None;
    }
    let version = f
        .get(3)
        .filter(|v| !v.is_empty() && *v != "*" && *v != "-")
        .map(
            |v| match f.get(4).filter(|u| !u.is_empty() && *u != "*" && *u != "-") {
                // An "update" field (`1.0.2:beta1`) is part of the version.
                Some(update) => format!("{v}-{update}"),
                None => v.clone(),
            },
        );
    Some(Ident {
        key: format!(
            "cpe:{}:{}:{}",
            part.to_ascii_lowercase(),
            vendor.to_ascii_lowercase(),
            product.to_ascii_lowercase()
        ),
        version,
        scheme: Scheme::Generic,
    })
}

/// The key of an OSV `package` (ecosystem and name), for records that give no purl.
pub fn osv_package(ecosystem: &str, name: &str) -> Option<String> {
    let base = ecosystem.split(':').next().unwrap_or(ecosystem);
    let split_last = |sep: char| match name.rsplit_once(sep) {
        Some((ns, n)) => (Some(ns), n),
        None => (None, name),
    };
    let (kind, (ns, n)) = match base {
        "npm" => ("npm", split_last('/')),
        "PyPI" => ("pypi", (None, name)),
        "crates.io" => ("cargo", (None, name)),
        "Go" => ("golang", split_last('/')),
        "Maven" => ("maven", split_last(':')),
        "RubyGems" => ("gem", (None, name)),
        "NuGet" => ("nuget", (None, name)),
        "Packagist" => ("composer", split_last('/')),
        "Hex" => ("hex", (None, name)),
        "Pub" => ("pub", (None, name)),
        "Debian" => ("deb", (Some("debian"), name)),
        "Ubuntu" => ("deb", (Some("ubuntu"), name)),
        "Alpine" => ("apk", (Some("alpine"), name)),
        "Red Hat" => ("rpm", (Some("redhat"), name)),
        "SUSE" => ("rpm", (Some("suse"), name)),
        "openSUSE" => ("rpm", (Some("opensuse"), name)),
        "Rocky Linux" => ("rpm", (Some("rocky-linux"), name)),
        "AlmaLinux" => ("rpm", (Some("almalinux"), name)),
        _ => return None,
    };
    Some(key(kind, ns, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_cpes_and_ecosystems_meet_on_one_key() {
        let p = purl("pkg:pypi/Products.PluggableAuthService@2.6.0").unwrap();
        assert_eq!(p.key, "pkg:pypi/products-pluggableauthservice");
        assert_eq!(p.version.as_deref(), Some("2.6.0"));
        assert_eq!(
            osv_package("PyPI", "products-pluggableauthservice").as_deref(),
            Some(p.key.as_str())
        );
        let a = purl("pkg:apk/alpine/openssl?arch=source").unwrap();
        assert_eq!(osv_package("Alpine:v3.3", "openssl").unwrap(), a.key);
        assert_eq!(a.version, None);
        let npm = purl("pkg:npm/%40babel/core@7.0.0").unwrap();
        assert_eq!(osv_package("npm", "@babel/core").unwrap(), npm.key);
        assert_eq!(
            osv_package("Maven", "org.xwiki.commons:xwiki-commons-core").unwrap(),
            "pkg:maven/org.xwiki.commons/xwiki-commons-core"
        );
        assert_eq!(
            osv_package("Go", "github.com/gin-gonic/gin").unwrap(),
            "pkg:golang/github.com/gin-gonic/gin"
        );
        assert_eq!(osv_package("GIT", "x"), None);
        let c = cpe("cpe:2.3:a:openssl:openssl:1.1.1k:*:*:*:*:*:*:*").unwrap();
        assert_eq!(c.key, "cpe:a:openssl:openssl");
        assert_eq!(c.version.as_deref(), Some("1.1.1k"));
        let old = cpe("cpe:/a:csaf-tools:cvrf-csaf-converter:1.0.0-alpha").unwrap();
        assert_eq!(old.key, "cpe:a:csaf-tools:cvrf-csaf-converter");
        assert_eq!(old.version.as_deref(), Some("1.0.0-alpha"));
        let any = cpe("cpe:2.3:o:busybox:busybox:*:*:*:*:*:*:*:*").unwrap();
        assert_eq!(any.version, None);
        let esc = cpe(r"cpe:2.3:a:acme:pump\:fw:2.0:*:*:*:*:*:*:*").unwrap();
        assert_eq!(esc.key, "cpe:a:acme:pump:fw");
        assert!(cpe("cpe:2.3:a:*:*:1.0").is_none());
        assert!(cpe("openssl").is_none());
        assert!(purl("openssl").is_none());
    }
}
