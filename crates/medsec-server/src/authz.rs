//! Authorisation with Cedar: the schema and policies (shipped in `policies/`, or read from a
//! directory the configuration names), validated strictly at start-up, and one decision per
//! request. Default deny: a request is allowed only when a policy permits it and none forbids it.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr as _;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, PolicyId, PolicySet, Request, RestrictedExpression, Schema, ValidationMode,
    Validator,
};

use crate::Error;

/// The schema shipped with medsec.
pub const DEFAULT_SCHEMA: &str = include_str!("../../../policies/medsec.cedarschema");
/// The policies shipped with medsec.
pub const DEFAULT_POLICIES: &str = include_str!("../../../policies/default.cedar");

/// Who is asking, as the policies see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A device, with its record's attributes.
    Device {
        /// Device id.
        id: String,
        /// Model.
        model: String,
        /// Lifecycle state.
        state: String,
        /// Quarantined.
        quarantined: bool,
    },
    /// An operator with roles.
    Operator {
        /// Name.
        name: String,
        /// Roles.
        roles: Vec<String>,
    },
}

impl Subject {
    /// `Medsec::Device::"id"` / `Medsec::Operator::"name"`, as the audit log records it.
    pub fn label(&self) -> String {
        match self {
            Subject::Device { id, .. } => format!("Device::{id:?}"),
            Subject::Operator { name, .. } => format!("Operator::{name:?}"),
        }
    }
}

/// What is acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One device.
    Device(String),
    /// The fleet.
    Fleet,
    /// The audit log.
    AuditLog,
}

impl Target {
    /// `Device::"id"`, `Fleet`, `AuditLog`.
    pub fn label(&self) -> String {
        match self {
            Target::Device(id) => format!("Device::{id:?}"),
            Target::Fleet => "Fleet".into(),
            Target::AuditLog => "AuditLog".into(),
        }
    }
}

/// The request's context.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// Seconds since the Unix epoch.
    pub time: i64,
    /// Peer address.
    pub source: IpAddr,
    /// How the principal authenticated.
    pub credential: &'static str,
}

/// A decision and the policies that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allowed?
    pub allowed: bool,
    /// The `@id`s of the deciding policies (permits when allowed, forbids when a forbid denied;
    /// empty when nothing permitted).
    pub policies: Vec<String>,
    /// Evaluation errors (a policy that errors does not apply).
    pub errors: Vec<String>,
}

/// Validated schema and policies, ready to decide.
pub struct Policies {
    schema: Schema,
    set: PolicySet,
    authorizer: Authorizer,
    texts: Vec<(String, String)>,
    types: Types,
}

/// The schema's entity type names, parsed once (Cedar's parser is most of a decision's cost
/// otherwise).
struct Types {
    device: EntityTypeName,
    operator: EntityTypeName,
    role: EntityTypeName,
    fleet: EntityTypeName,
    audit_log: EntityTypeName,
    action: EntityTypeName,
}

impl Types {
    fn new() -> Result<Self, Error> {
        let parse = |name: &str| {
            EntityTypeName::from_str(name).map_err(|e| Error::Policy {
                reason: format!("entity type {name}: {e}"),
            })
        };
        Ok(Self {
            device: parse("Medsec::Device")?,
            operator: parse("Medsec::Operator")?,
            role: parse("Medsec::Role")?,
            fleet: parse("Medsec::Fleet")?,
            audit_log: parse("Medsec::AuditLog")?,
            action: parse("Medsec::Action")?,
        })
    }
}

fn uid(type_name: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(type_name.clone(), EntityId::new(id))
}

impl Policies {
    /// Loads the shipped schema and policies.
    pub fn shipped() -> Result<Self, Error> {
        Self::from_text(DEFAULT_SCHEMA, DEFAULT_POLICIES)
    }

    /// Loads `medsec.cedarschema` and every `*.cedar` file from `dir`.
    pub fn from_dir(dir: &Path) -> Result<Self, Error> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| Error::Policy {
                reason: format!("reading {}: {e}", p.display()),
            })
        };
        let schema = read(&dir.join("medsec.cedarschema"))?;
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| Error::Policy {
                reason: format!("reading {}: {e}", dir.display()),
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "cedar"))
            .collect();
        files.sort();
        let mut policies = String::new();
        for f in &files {
            policies.push_str(&read(f)?);
            policies.push('\n');
        }
        if let Some(why) = console_note(&policies) {
            tracing::warn!(policy_dir = %dir.display(), "{why}");
        }
        Self::from_text(&schema, &policies)
    }

    /// Parses and strictly validates a schema and policies. Every policy needs a unique `@id`.
    pub fn from_text(schema: &str, policies: &str) -> Result<Self, Error> {
        let (schema, _warnings) =
            Schema::from_cedarschema_str(schema).map_err(|e| Error::Policy {
                reason: format!("schema: {e}"),
            })?;
        let parsed = PolicySet::from_str(policies).map_err(|e| Error::Policy {
            reason: format!("policies: {e}"),
        })?;
        // Re-key every policy by its @id, which is what decisions and the audit log report.
        let mut set = PolicySet::new();
        let mut texts = Vec::new();
        for p in parsed.policies() {
            let id = p.annotation("id").ok_or_else(|| Error::Policy {
                reason: format!("a policy has no @id annotation: {p}"),
            })?;
            texts.push((id.to_owned(), p.to_string()));
            set.add(p.new_id(PolicyId::new(id)))
                .map_err(|e| Error::Policy {
                    reason: format!("policy {id:?}: {e}"),
                })?;
        }
        if parsed.templates().next().is_some() {
            return Err(Error::Policy {
                reason: "policy templates are not supported".into(),
            });
        }
        let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
        if !result.validation_passed() {
            let errors: Vec<String> = result.validation_errors().map(|e| e.to_string()).collect();
            return Err(Error::Policy {
                reason: format!(
                    "policies do not validate against the schema: {}",
                    errors.join("; ")
                ),
            });
        }
        Ok(Self {
            schema,
            set,
            authorizer: Authorizer::new(),
            texts,
            types: Types::new()?,
        })
    }

    /// Policy ids and their text, in file order.
    pub fn list(&self) -> &[(String, String)] {
        &self.texts
    }

    /// Permits that grant too much, with the reason: open to any principal (authenticated or
    /// not), or to any device with no condition (devices are scoped with `principal ==
    /// resource`).
    pub fn permissive(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for p in self.set.policies() {
            if p.effect() != cedar_policy::Effect::Permit {
                continue;
            }
            let reason = match p.principal_constraint() {
                cedar_policy::PrincipalConstraint::Any => Some(if p.has_non_scope_constraint() {
                    "permits any principal (only its condition limits it)"
                } else {
                    "permits any principal, with no condition at all"
                }),
                cedar_policy::PrincipalConstraint::Is(t)
                    if t.basename() == "Device" && !p.has_non_scope_constraint() =>
                {
                    Some("permits every device with no condition: no `principal == resource`")
                }
                _ => None,
            };
            if let Some(r) = reason {
                out.push((p.id().to_string(), r.to_owned()));
            }
        }
        out.sort();
        out
    }

    /// Decides one request.
    pub fn decide(
        &self,
        subject: &Subject,
        action: &str,
        target: &Target,
        context: &RequestContext,
    ) -> Result<Decision, Error> {
        let t = &self.types;
        let (principal, entity) = match subject {
            Subject::Device {
                id,
                model,
                state,
                quarantined,
            } => {
                let p = uid(&t.device, id);
                let attrs = HashMap::from([
                    (
                        "model".to_owned(),
                        RestrictedExpression::new_string(model.clone()),
                    ),
                    (
                        "state".to_owned(),
                        RestrictedExpression::new_string(state.clone()),
                    ),
                    (
                        "quarantined".to_owned(),
                        RestrictedExpression::new_bool(*quarantined),
                    ),
                ]);
                let e =
                    Entity::new(p.clone(), attrs, HashSet::new()).map_err(|e| Error::Policy {
                        reason: e.to_string(),
                    })?;
                (p, e)
            }
            Subject::Operator { name, roles } => {
                let p = uid(&t.operator, name);
                let parents = roles.iter().map(|r| uid(&t.role, r)).collect();
                let attrs = HashMap::from([(
                    "name".to_owned(),
                    RestrictedExpression::new_string(name.clone()),
                )]);
                let e = Entity::new(p.clone(), attrs, parents).map_err(|e| Error::Policy {
                    reason: e.to_string(),
                })?;
                (p, e)
            }
        };
        let resource = match target {
            Target::Device(id) => uid(&t.device, id),
            Target::Fleet => uid(&t.fleet, "fleet"),
            Target::AuditLog => uid(&t.audit_log, "audit"),
        };
        let action_uid = uid(&t.action, action);
        let ctx = Context::from_pairs([
            (
                "time".to_owned(),
                RestrictedExpression::new_long(context.time),
            ),
            (
                "source".to_owned(),
                RestrictedExpression::new_ip(context.source.to_string()),
            ),
            (
                "credential".to_owned(),
                RestrictedExpression::new_string(context.credential.to_owned()),
            ),
        ])
        .map_err(|e| Error::Policy {
            reason: e.to_string(),
        })?;
        // The request is checked against the schema (an action that does not apply to this
        // principal or resource type is an error, so a denial).
        let request = match Request::new(principal, action_uid, resource, ctx, Some(&self.schema)) {
            Ok(r) => r,
            Err(e) => {
                return Ok(Decision {
                    allowed: false,
                    policies: Vec::new(),
                    errors: vec![e.to_string()],
                });
            }
        };
        // Only the principal's attributes are read by policies; the resource entity is not
        // needed (an absent entity has no attributes and no parents).
        let entities = Entities::from_entities([entity], None).map_err(|e| Error::Policy {
            reason: e.to_string(),
        })?;
        let response = self
            .authorizer
            .is_authorized(&request, &self.set, &entities);
        Ok(Decision {
            allowed: response.decision() == CedarDecision::Allow,
            policies: response
                .diagnostics()
                .reason()
                .map(|p| p.to_string())
                .collect(),
            errors: response
                .diagnostics()
                .errors()
                .map(|e| e.to_string())
                .collect(),
        })
    }
}

/// What to tell an operator whose own policies name the API's credential but not the web
/// console's: every console request would be denied (docs/server.md, "Authorisation").
pub fn console_note(policies: &str) -> Option<&'static str> {
    (policies.contains("\"operator-token\"") && !policies.contains("\"console-session\"")).then_some(
        "these policies allow context.credential \"operator-token\" but never \"console-session\": \
         the web console's requests will all be denied; add \"console-session\" where people \
         signed in to the console may act (the shipped policies accept both)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(credential: &'static str) -> RequestContext {
        RequestContext {
            time: 1_800_000_000,
            source: "192.0.2.10".parse().unwrap(),
            credential,
        }
    }

    fn device(id: &str, state: &str, quarantined: bool) -> Subject {
        Subject::Device {
            id: id.into(),
            model: "infusion-pump".into(),
            state: state.into(),
            quarantined,
        }
    }

    fn operator(roles: &[&str]) -> Subject {
        Subject::Operator {
            name: "alice".into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    #[test]
    fn shipped_policies_validate_and_decide() {
        let p = Policies::shipped().unwrap();
        let own = Target::Device("pump-1".into());
        let other = Target::Device("pump-2".into());
        let fleet = ctx("fleet-certificate");
        let d = p
            .decide(
                &device("pump-1", "enrolled", false),
                "device.read",
                &own,
                &fleet,
            )
            .unwrap();
        assert!(d.allowed);
        assert_eq!(d.policies, ["device-own-record"]);
        // Another device's record: denied, no policy permits.
        let d = p
            .decide(
                &device("pump-1", "enrolled", false),
                "device.read",
                &other,
                &fleet,
            )
            .unwrap();
        assert!(!d.allowed);
        assert!(d.policies.is_empty());
        assert!(
            !p.decide(
                &device("pump-1", "enrolled", false),
                "device.write",
                &other,
                &fleet
            )
            .unwrap()
            .allowed
        );
        // A quarantined device cannot write even its own record; the forbid is named.
        let d = p
            .decide(
                &device("pump-1", "enrolled", true),
                "device.write",
                &own,
                &fleet,
            )
            .unwrap();
        assert!(!d.allowed);
        assert_eq!(
            d.policies,
            ["no-writes-from-revoked-or-quarantined-devices"]
        );
        // Enrolment needs the right credential, for the device itself.
        let token = ctx("enrolment-token");
        assert!(
            p.decide(
                &device("pump-1", "registered", false),
                "est.enroll",
                &own,
                &token
            )
            .unwrap()
            .allowed
        );
        assert!(
            !p.decide(
                &device("pump-1", "registered", false),
                "est.enroll",
                &other,
                &token
            )
            .unwrap()
            .allowed
        );
        assert!(
            !p.decide(
                &device("pump-1", "registered", false),
                "est.enroll",
                &own,
                &fleet
            )
            .unwrap()
            .allowed
        );
        assert!(
            !p.decide(
                &device("pump-1", "revoked", false),
                "est.reenroll",
                &own,
                &fleet
            )
            .unwrap()
            .allowed
        );
        // A device token is not an operator credential.
        assert!(
            !p.decide(
                &device("pump-1", "enrolled", false),
                "device.list",
                &Target::Fleet,
                &fleet
            )
            .unwrap()
            .allowed
        );
    }

    #[test]
    fn operator_roles_bound_what_operators_do() {
        let p = Policies::shipped().unwrap();
        let op = ctx("operator-token");
        let pump = Target::Device("pump-1".into());
        let admin = p
            .decide(&operator(&["admin"]), "device.revoke", &pump, &op)
            .unwrap();
        assert!(admin.allowed);
        assert_eq!(admin.policies, ["operator-admin"]);
        assert!(
            !p.decide(&operator(&["viewer"]), "device.revoke", &pump, &op)
                .unwrap()
                .allowed
        );
        assert!(
            p.decide(&operator(&["viewer"]), "device.list", &Target::Fleet, &op)
                .unwrap()
                .allowed
        );
        assert!(
            !p.decide(&operator(&["viewer"]), "audit.read", &Target::AuditLog, &op)
                .unwrap()
                .allowed
        );
        assert!(
            p.decide(
                &operator(&["security"]),
                "audit.read",
                &Target::AuditLog,
                &op
            )
            .unwrap()
            .allowed
        );
        assert!(
            !p.decide(&operator(&["enroller"]), "device.revoke", &pump, &op)
                .unwrap()
                .allowed
        );
        for (role, allowed) in [("security", true), ("enroller", false), ("viewer", false)] {
            let d = p
                .decide(&operator(&[role]), "device.reinstate", &pump, &op)
                .unwrap();
            assert_eq!(d.allowed, allowed, "{role} reinstating");
        }
        for (role, allowed) in [
            ("admin", true),
            ("enroller", true),
            ("security", false),
            ("viewer", false),
        ] {
            let d = p
                .decide(&operator(&[role]), "device.update", &pump, &op)
                .unwrap();
            assert_eq!(d.allowed, allowed, "{role} changing inventory");
        }
        // Version reports: a device about itself only, quarantined or not, never when revoked,
        // never with an enrolment token; operators cannot report for a device.
        let pump2 = Target::Device("pump-2".into());
        for (who, target, credential, allowed, why) in [
            (
                device("pump-1", "enrolled", false),
                &pump,
                "fleet-certificate",
                true,
                "own",
            ),
            (
                device("pump-1", "enrolled", true),
                &pump,
                "fleet-certificate",
                true,
                "quarantined",
            ),
            (
                device("pump-1", "revoked", false),
                &pump,
                "fleet-certificate",
                false,
                "revoked",
            ),
            (
                device("pump-1", "enrolled", false),
                &pump2,
                "fleet-certificate",
                false,
                "other device",
            ),
            (
                device("pump-1", "enrolled", false),
                &pump,
                "enrolment-token",
                false,
                "token",
            ),
            (
                operator(&["admin"]),
                &pump,
                "operator-token",
                false,
                "operator",
            ),
        ] {
            // Reporting, telemetry and fetching updates follow the same rule.
            for action in ["device.report", "telemetry.send", "update.fetch"] {
                let d = p.decide(&who, action, target, &ctx(credential)).unwrap();
                assert_eq!(d.allowed, allowed, "{action}: {why}");
            }
        }
        // Campaigns: release managers run them, security officers may only stop them.
        for (role, action, allowed) in [
            ("release", "campaign.create", true),
            ("release", "campaign.start", true),
            ("release", "campaign.stop", true),
            ("release", "device.revoke", false),
            ("security", "campaign.stop", true),
            ("security", "campaign.start", false),
            ("security", "campaign.create", false),
            ("viewer", "campaign.read", true),
            ("viewer", "campaign.stop", false),
            ("security", "incident.manage", true),
            ("security", "incident.read", true),
            ("viewer", "incident.read", true),
            ("viewer", "incident.manage", false),
            ("release", "incident.manage", false),
            ("security", "device.force_update", true),
            ("security", "device.rebind", true),
            ("release", "device.rebind", false),
            ("viewer", "device.rebind", false),
            ("enroller", "device.rebind", false),
            ("security", "baseline.train", true),
            ("viewer", "baseline.train", false),
            ("release", "baseline.train", false),
            ("release", "device.force_update", false),
            ("viewer", "device.force_update", false),
            ("enroller", "incident.read", false),
            ("enroller", "campaign.create", false),
        ] {
            let target =
                if ["device.revoke", "device.force_update", "device.rebind"].contains(&action) {
                    pump.clone()
                } else {
                    Target::Fleet
                };
            let d = p.decide(&operator(&[role]), action, &target, &op).unwrap();
            assert_eq!(d.allowed, allowed, "{role} {action}");
        }
        // Nor may a device change its own inventory.
        assert!(
            !p.decide(
                &device("pump-1", "enrolled", false),
                "device.update",
                &pump,
                &ctx("fleet-certificate"),
            )
            .unwrap()
            .allowed
        );
        // A device can never reinstate itself (the action does not apply to devices).
        let own = p
            .decide(
                &device("pump-1", "revoked", false),
                "device.reinstate",
                &pump,
                &ctx("fleet-certificate"),
            )
            .unwrap();
        assert!(!own.allowed);
        assert!(
            p.decide(
                &operator(&["enroller"]),
                "token.create",
                &Target::Fleet,
                &op
            )
            .unwrap()
            .allowed
        );
        assert!(
            !p.decide(&operator(&[]), "device.list", &Target::Fleet, &op)
                .unwrap()
                .allowed
        );
        // Operators are not devices: enrolment actions do not apply to them.
        let d = p
            .decide(&operator(&["admin"]), "est.enroll", &pump, &op)
            .unwrap();
        assert!(!d.allowed);
        assert!(!d.errors.is_empty());
        // Unknown actions are denied.
        assert!(
            !p.decide(&operator(&["admin"]), "device.explode", &pump, &op)
                .unwrap()
                .allowed
        );
    }

    #[test]
    fn own_policies_without_the_console_credential_are_named_and_the_shipped_ones_are_not() {
        assert!(console_note(DEFAULT_POLICIES).is_none());
        let old = DEFAULT_POLICIES.replace(
            "[\"operator-token\", \"console-session\"].contains(context.credential)",
            "context.credential == \"operator-token\"",
        );
        assert!(console_note(&old).is_some_and(|w| w.contains("console-session")));
        // The console's credential is what Cedar sees, and the shipped policies let a viewer
        // read through it as through a token.
        let p = Policies::shipped().unwrap();
        let pump = Target::Device("pump-1".into());
        for credential in ["operator-token", "console-session"] {
            assert!(
                p.decide(
                    &operator(&["viewer"]),
                    "device.read",
                    &pump,
                    &ctx(credential)
                )
                .unwrap()
                .allowed,
                "{credential}"
            );
        }
        assert!(
            !p.decide(
                &operator(&["viewer"]),
                "device.read",
                &pump,
                &ctx("browser-cookie")
            )
            .unwrap()
            .allowed
        );
    }

    #[test]
    fn invalid_policies_are_refused_at_load() {
        let unknown_attr = "@id(\"x\") permit (principal is Medsec::Device, action, resource) when { principal.colour == \"red\" };";
        let e = Policies::from_text(DEFAULT_SCHEMA, unknown_attr)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("do not validate"), "{e}");
        let no_id = "permit (principal, action, resource);";
        assert!(
            Policies::from_text(DEFAULT_SCHEMA, no_id)
                .err()
                .unwrap()
                .to_string()
                .contains("@id")
        );
        let dup = "@id(\"a\") permit (principal, action, resource);\n@id(\"a\") forbid (principal, action, resource);";
        assert!(Policies::from_text(DEFAULT_SCHEMA, dup).is_err());
        assert!(Policies::from_text("namespace {", DEFAULT_POLICIES).is_err());
    }
}
