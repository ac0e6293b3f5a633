//! Every error the API answers with, mapped to a status in one place.
//!
//! Bodies are `{"error": <code>, "detail": <what to fix>}` (plus `field` when one field is at
//! fault). A 500 says nothing internal: the cause is logged with the request's span instead.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    BadRequest {
        code: &'static str,
        detail: String,
        field: Option<String>,
    },
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{detail}")]
    Unprocessable {
        code: &'static str,
        detail: String,
        /// The field at fault, when the rule was about one.
        field: Option<String>,
    },
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the request took too long (a slow client, or a slow server)")]
    Timeout,
    /// Too many requests of this kind at once; `retry_after_secs` goes out as `Retry-After`.
    #[error("{detail}")]
    TooManyRequests {
        code: &'static str,
        detail: String,
        retry_after_secs: u64,
    },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(error.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<adapters::store::StoreError> for ApiError {
    fn from(error: adapters::store::StoreError) -> Self {
        match error {
            adapters::store::StoreError::SubjectErased { .. } => ApiError::Unprocessable {
                code: "subject_erased",
                detail: error.to_string(),
                field: None,
            },
            other => ApiError::internal(other),
        }
    }
}

impl From<app::personal::PersonalError> for ApiError {
    fn from(error: app::personal::PersonalError) -> Self {
        use app::personal::PersonalError;
        let detail = error.to_string();
        match error {
            PersonalError::InvalidSubject(_) => ApiError::BadRequest {
                code: "invalid_subject",
                detail,
                field: Some("subject".into()),
            },
            PersonalError::NotFound(_) => ApiError::NotFound(detail),
            PersonalError::WrittenInClear { .. } => ApiError::Conflict(detail),
            PersonalError::NoVault => ApiError::Unavailable(detail),
            PersonalError::ErasureLog { .. } => ApiError::Internal(detail),
            PersonalError::Store(error) => error.into(),
            PersonalError::Projection(error) => error.into(),
        }
    }
}

impl From<app::tokens::TokenError> for ApiError {
    fn from(error: app::tokens::TokenError) -> Self {
        use app::tokens::TokenError;
        let detail = error.to_string();
        match error {
            TokenError::PartnerOnlyForPartnerTokens => ApiError::BadRequest {
                code: "invalid_token_request",
                detail,
                field: Some("partner_id".into()),
            },
            TokenError::UnknownPartner { .. } => ApiError::Unprocessable {
                code: "unknown_partner",
                detail,
                field: Some("partner_id".into()),
            },
            TokenError::LifetimeOutOfRange { .. } => ApiError::BadRequest {
                code: "invalid_field",
                detail,
                field: Some("expires_in_days".into()),
            },
            TokenError::NotFound { .. } | TokenError::BootstrapAdminIsASetting => {
                ApiError::NotFound(detail)
            }
            TokenError::Store(_) | TokenError::Internal(_) => ApiError::Internal(detail),
        }
    }
}

impl From<app::sessions::SessionError> for ApiError {
    fn from(error: app::sessions::SessionError) -> Self {
        ApiError::internal(error)
    }
}

impl From<projections::ProjectionError> for ApiError {
    fn from(error: projections::ProjectionError) -> Self {
        match error {
            projections::ProjectionError::Behind(_) => ApiError::Unavailable(error.to_string()),
            error => ApiError::internal(error),
        }
    }
}

impl From<projections::as_of::AsOfError> for ApiError {
    fn from(error: projections::as_of::AsOfError) -> Self {
        match error {
            projections::as_of::AsOfError::Busy {
                retry_after_secs, ..
            } => ApiError::TooManyRequests {
                code: "as_of_busy",
                detail: format!("{error}; as-of reads replay history and only a few run at once"),
                retry_after_secs,
            },
            projections::as_of::AsOfError::Projection(error) => error.into(),
        }
    }
}

impl ApiError {
    /// The JSON body this error answers with.
    pub fn body(&self) -> Value {
        match self {
            ApiError::BadRequest {
                code,
                detail,
                field,
            } => json!({"error": code, "detail": detail, "field": field}),
            ApiError::Unauthorized => json!({"error": "unauthorized", "detail": self.to_string()}),
            ApiError::Unauthenticated(detail) => {
                json!({"error": "unauthenticated", "detail": detail})
            }
            ApiError::Forbidden(detail) => json!({"error": "forbidden", "detail": detail}),
            ApiError::NotFound(detail) => json!({"error": "not_found", "detail": detail}),
            ApiError::Conflict(detail) => json!({"error": "conflict", "detail": detail}),
            ApiError::Unprocessable {
                code,
                detail,
                field: Some(field),
            } => json!({"error": code, "detail": detail, "field": field}),
            ApiError::Unprocessable { code, detail, .. } => {
                json!({"error": code, "detail": detail})
            }
            ApiError::TooLarge(_) => {
                json!({"error": "payload_too_large", "detail": self.to_string()})
            }
            ApiError::Timeout => json!({"error": "timeout", "detail": self.to_string()}),
            ApiError::Unavailable(detail) => json!({"error": "unavailable", "detail": detail}),
            ApiError::TooManyRequests {
                code,
                detail,
                retry_after_secs,
            } => json!({"error": code, "detail": detail, "retry_after_secs": retry_after_secs}),
            ApiError::Internal(_) => {
                json!({"error": "internal", "detail": "the server failed; the cause is logged"})
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "internal error");
        }
        let body = Json(self.body());
        match &self {
            ApiError::TooManyRequests {
                retry_after_secs, ..
            } => {
                let retry_after = [(header::RETRY_AFTER, retry_after_secs.to_string())];
                (status, retry_after, body).into_response()
            }
            _ => (status, body).into_response(),
        }
    }
}
