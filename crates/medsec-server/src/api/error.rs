//! Error answers: what a client is told (status and a sentence naming the problem), while
//! internal details go to the log only.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error answer. Internal details go to the log, never to the client.
#[derive(Debug)]
pub enum ApiError {
    /// 400, with what was wrong.
    BadRequest(String),
    /// 401, with what credential is missing.
    Unauthenticated(String),
    /// 403.
    Forbidden,
    /// 404.
    NotFound,
    /// 409, with what conflicts.
    Conflict(String),
    /// 413.
    TooLarge(usize),
    /// 415, with the media type expected.
    UnsupportedMediaType(String),
    /// 429.
    RateLimited,
    /// 503: the request took too long.
    Timeout,
    /// 500; the text is logged only.
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Unauthenticated(m) => (StatusCode::UNAUTHORIZED, m),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "not permitted by policy".to_owned()),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not found".to_owned()),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m),
            ApiError::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than the limit of {limit} bytes"),
            ),
            ApiError::UnsupportedMediaType(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, m),
            ApiError::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate limit exceeded: slow down".to_owned(),
            ),
            ApiError::Timeout => (
                StatusCode::SERVICE_UNAVAILABLE,
                "request timed out".to_owned(),
            ),
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_owned(),
                )
            }
        };
        let mut response = (status, Json(medsec_api::ErrorBody { error: message })).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<medsec_store::Error> for ApiError {
    fn from(e: medsec_store::Error) -> Self {
        match e {
            medsec_store::Error::NotFound { .. } => ApiError::NotFound,
            e @ (medsec_store::Error::Conflict { .. } | medsec_store::Error::WrongState { .. }) => {
                ApiError::Conflict(e.to_string())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// A service's error as an answer: storage errors keep their meaning (404, 409), a contended
/// update is a 409, refused input a 400, an oversized one a 413, a missing credential a 401, a
/// policy refusal a 403; anything else is internal (500, logged only). Where a service's `Config` error means the caller's input was
/// refused, the handler says so with [`bad_request`].
impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Store(s) => s.into(),
            crate::Error::Contended { reason } => ApiError::Conflict(reason),
            crate::Error::Refused { reason } => ApiError::BadRequest(reason),
            crate::Error::TooLarge { limit } => ApiError::TooLarge(limit),
            crate::Error::Unauthenticated { reason } => ApiError::Unauthenticated(reason),
            crate::Error::Forbidden => ApiError::Forbidden,
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Refused input is a 400 naming the problem; a missing device a 404; anything else a 500.
pub(crate) fn bad_request(e: crate::Error) -> ApiError {
    match e {
        crate::Error::Config { reason } => ApiError::BadRequest(reason),
        crate::Error::Store(s) => s.into(),
        other => ApiError::Internal(other.to_string()),
    }
}
