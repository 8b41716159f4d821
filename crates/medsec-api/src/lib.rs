//! The JSON bodies of medsec's HTTP API, as serde types.
//!
//! The server answers with these types and the agent and the command line read them back with
//! the same types, so a field renamed on one side fails to compile on the other instead of
//! reading as "absent" at run time. This crate holds shapes only: no IO, no checks beyond what
//! serde does (`deny_unknown_fields` on what a peer sends); what a field must hold is checked by
//! the side that acts on it (the server's `version_report::open`, for instance).
//!
//! | module | routes |
//! |---|---|
//! | [`report`] | `POST /api/v1/devices/{id}/report-nonce`, `PUT /api/v1/devices/{id}/version`, `GET /api/v1/devices/{id}/versions` |
//! | [`telemetry`] | `POST /api/v1/devices/{id}/telemetry` |
//! | [`devices`] | `POST /api/v1/enrolment-tokens`, `POST /api/v1/devices/{id}/revoke`, `POST /api/v1/devices/{id}/reinstate` |
//! | [`ErrorBody`] | every refusal (4xx, 5xx) |

use serde::{Deserialize, Serialize};

/// The body of every error answer: one sentence naming the problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What was wrong, for a person to read.
    pub error: String,
}

/// Signed version reports (Uptane's ECU version reports): the nonce, what the device signs,
/// and what it sends.
pub mod report {
    use serde::{Deserialize, Serialize};

    /// Signed before the payload, so a version-report signature can never be taken for a
    /// signature over anything else the device key signs (EST requests, TLS handshakes).
    pub const CONTEXT: &[u8] = b"medsec version report v1\n";

    /// The message a device signs for `payload`: [`CONTEXT`] then the payload bytes.
    pub fn message(payload: &[u8]) -> Vec<u8> {
        [CONTEXT, payload].concat()
    }

    /// `201` to `POST /api/v1/devices/{id}/report-nonce`: a single-use nonce for the next
    /// report.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Nonce {
        /// The nonce, to be copied into [`Payload::nonce`].
        pub nonce: String,
        /// When it stops being accepted (Unix ms).
        pub expires_at_ms: i64,
    }

    /// What the device signs.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Payload {
        /// The device's id; must be the id its certificate names.
        pub device: String,
        /// The nonce the server issued for this report.
        pub nonce: String,
        /// The firmware version running.
        pub version: String,
        /// That firmware's release counter (anti-rollback).
        pub release_counter: i64,
        /// The installed image's target name, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub target: Option<String>,
        /// SHA-256 of the installed image (hex), if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub sha256: Option<String>,
        /// How the install a campaign asked for ended, when the report is about one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub install: Option<Install>,
    }

    /// The end of an install the director asked for (its target metadata names the campaign).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Install {
        /// The campaign, as the director's target metadata named it.
        pub campaign: String,
        /// The target the director named.
        pub target: String,
        /// `succeeded` (installed, healthy, committed), `failed` (download, verification,
        /// install or health check failed; rolled back) or `deferred` (in clinical use; installs
        /// when idle).
        pub outcome: String,
        /// Why, for failures and deferrals.
        #[serde(default)]
        pub reason: String,
    }

    /// The body of `PUT /api/v1/devices/{id}/version`: the payload exactly as signed and the
    /// signature, both base64.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Envelope {
        /// Base64 of the payload bytes.
        pub payload: String,
        /// Base64 of the signature over [`message`]`(payload)`.
        pub signature: String,
    }

    /// One entry of `GET /api/v1/devices/{id}/versions`: a stored report with what is needed
    /// to check it again (`openssl` can verify `signature` over [`message`]`(payload)` with
    /// the certificate's key).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Stored {
        /// When the server received it (Unix ms).
        pub received_at_ms: i64,
        /// The version reported.
        pub version: String,
        /// The release counter reported.
        pub release_counter: i64,
        /// The nonce it carried.
        pub nonce: String,
        /// Base64 of the payload bytes as signed.
        pub payload: String,
        /// Base64 of the signature.
        pub signature: String,
        /// Base64 of the DER certificate the report was signed under.
        pub certificate: String,
    }
}

/// Telemetry batches.
pub mod telemetry {
    use serde::{Deserialize, Serialize};

    /// `200` to a batch: it is stored (now, or before: `duplicate`).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Accepted {
        /// The batch's sequence number.
        pub accepted: i64,
        /// How many events it held.
        pub events: usize,
        /// The same batch was stored before (an answer lost on the way): nothing was stored
        /// twice.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pub duplicate: bool,
    }

    /// `409` to a batch whose sequence number was used for other content, was never skipped,
    /// or jumps too far: the agent needs the number, not just the sentence (it sends the
    /// events again as the next number).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Replayed {
        /// Why, for a person to read.
        pub error: String,
        /// The last sequence number stored for the device.
        pub last_sequence: i64,
    }
}

/// Device records: enrolment tokens, revocation, reinstatement.
pub mod devices {
    use serde::{Deserialize, Serialize};

    /// `201` to `POST /api/v1/enrolment-tokens`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct EnrolmentToken {
        /// The device the token enrols.
        pub device: String,
        /// The one-time token (shown once; the server keeps only its hash).
        pub token: String,
        /// How long it is valid, in seconds.
        pub ttl_secs: i64,
    }

    /// `200` to `POST /api/v1/devices/{id}/revoke`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Revoked {
        /// The device.
        pub device: String,
        /// The serials of the certificates revoked.
        pub revoked: Vec<String>,
    }

    /// `200` to `POST /api/v1/devices/{id}/reinstate`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Reinstated {
        /// The device.
        pub device: String,
        /// Its state now (`registered`).
        pub state: String,
    }
}

/// Tokens as lists show them: never the secret, only its public id (the first 8 bytes of its
/// SHA-256, hex), which revocation names.
pub mod tokens {
    use serde::{Deserialize, Serialize};

    /// One operator token in `GET /api/v1/operators/tokens`, and the answer to its revocation.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct OperatorToken {
        /// Its public id.
        pub id: String,
        /// The operator it names.
        pub name: String,
        /// The roles it carries.
        pub roles: Vec<String>,
        /// `live`, `expired` or `revoked`.
        pub state: String,
        /// When it was made (ms since the epoch).
        pub created_at_ms: i64,
        /// When it stops working.
        pub expires_at_ms: i64,
        /// When it was revoked, if it was.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub revoked_at_ms: Option<i64>,
    }

    /// One enrolment token in `GET /api/v1/enrolment-tokens`, and the answer to its revocation.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct EnrolmentToken {
        /// Its public id.
        pub id: String,
        /// The device it enrols.
        pub device: String,
        /// Who made it.
        pub created_by: String,
        /// `live`, `used`, `expired` or `revoked`.
        pub state: String,
        /// When it was made.
        pub created_at_ms: i64,
        /// When it stops working.
        pub expires_at_ms: i64,
        /// When it was used, if it was.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub used_at_ms: Option<i64>,
        /// When it was revoked, if it was.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub revoked_at_ms: Option<i64>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_with_a_field_the_server_does_not_know_is_refused() {
        let text =
            r#"{"device":"pump-1","nonce":"n","version":"1.0","release_counter":1,"extra":1}"#;
        let err = serde_json::from_str::<report::Payload>(text).unwrap_err();
        assert!(err.to_string().contains("unknown field `extra`"), "{err}");
    }

    #[test]
    fn optional_payload_fields_are_left_out_rather_than_sent_as_null() {
        let p = report::Payload {
            device: "pump-1".into(),
            nonce: "n".into(),
            version: "1.0".into(),
            release_counter: 1,
            target: None,
            sha256: None,
            install: None,
        };
        let text = serde_json::to_string(&p).unwrap();
        assert!(!text.contains("null"), "{text}");
        assert_eq!(serde_json::from_str::<report::Payload>(&text).unwrap(), p);
    }

    #[test]
    fn the_signed_message_starts_with_the_context() {
        assert!(report::message(b"{}").starts_with(report::CONTEXT));
        assert!(report::message(b"{}").ends_with(b"{}"));
    }
}
