//! The operator API's OpenAPI 3.1 description. It is generated, not written: every operation
//! comes from its handler's `#[utoipa::path]` annotation, and the operator router is built
//! from the same annotations (`utoipa_axum`), so a route cannot exist without its description
//! or be described without existing. Served at `GET /api/v1/openapi.json`; `medsec openapi`
//! writes it (docs/openapi.json), and the tests check the committed copy is current.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The error body of every refusal: `{"error": "what was wrong"}`.
#[derive(ToSchema)]
#[schema(as = Error)]
#[expect(dead_code, reason = "a schema only: the body is medsec_api::ErrorBody")]
pub struct ErrorSchema {
    /// What was wrong, in one line.
    error: String,
}

/// The operator token scheme.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "operator_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("medsec-op-…")
                    .description(Some(
                        "An operator token (`medsec operator token create`), hashed on the server.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document's frame; the operations are added from the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "medsec operator API",
        description = "The operator port of `medsec server`: devices, enrolment, campaigns, the Defender, incidents, risk, inventory, the audit log and operations. Every request is authorised by Cedar and audited before it is answered.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    modifiers(&Security),
    components(schemas(ErrorSchema))
)]
pub struct ApiDoc;

/// The whole description, as JSON text (pretty, stable key order).
pub fn document() -> String {
    let api = super::operator_routes(usize::MAX).split_for_parts().1;
    api.to_pretty_json().unwrap_or_default()
}
