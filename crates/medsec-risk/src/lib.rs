//! Risk and compliance for medsec, with no IO: CVSS scores ([`cvss`]); SBOMs ([`sbom`]:
//! CycloneDX and SPDX, validated against their official schemas, reduced to the components
//! a release is made of, with a completeness score); advisories ([`advisory`]: OSV, CSAF
//! 2.0, CISA KEV) and matching components against them ([`matching`]) by identifier or
//! by vendor and product name ([`names`]), in each ecosystem's version order ([`version`],
//! [`range`], and the forms real CSAF documents write versions in: [`forms`]).

pub mod advisory;
pub mod archive;
pub mod compliance;
mod csaf_rules;
pub mod cvss;
pub mod fleet;
pub mod forms;
pub mod gate;
pub mod ident;
pub mod inventory;
pub mod matching;
pub mod names;
pub mod range;
pub mod sbom;
mod schema;
pub mod score;
pub mod version;
pub mod vex;

/// Why an input was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A CVSS vector that does not parse.
    #[error("CVSS vector {vector:?} is not valid: {reason}")]
    Cvss {
        /// The vector.
        vector: String,
        /// Why.
        reason: String,
    },
    /// A document that is not JSON, or not an SBOM format medsec reads.
    #[error("{0}")]
    Format(String),
    /// A document that breaks its format's schema.
    #[error("the {format} document breaks its schema in {} place(s); first: {}", problems.len(), problems.first().map_or("", String::as_str))]
    Schema {
        /// CycloneDX or SPDX, and version.
        format: String,
        /// Each problem: where (JSON pointer) and what.
        problems: Vec<String>,
    },
    /// A document that passes the schema but breaks a rule the schema cannot express.
    #[error("the {format} document is not consistent: {reason}")]
    Consistency {
        /// CycloneDX or SPDX.
        format: String,
        /// What is wrong.
        reason: String,
    },
}
