//! Every value a request carries, checked once, before any handler reads it
//! ([`domain::input`]: one grammar for identifiers, one rule for text).
//!
//! - **Path segments** and **query values**: [`check_request`], a middleware on every routed
//!   request. A path parameter that names a record (`{id}`, `{stream_id}`, `{account}`) must be
//!   an identifier; any other parameter and every query value is text with its field's bound.
//! - **JSON bodies**: [`parse_body`], which every command uses: each string, at any depth, is
//!   checked by its field's name (identifier fields by the grammar, the rest as text).
//!
//! A refusal is 400 naming the field, before authentication has looked at anything else.

use axum::body::Bytes;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{Query, RawPathParams, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::input::{self, InputError};
use serde_json::Value;

use crate::ApiError;

/// Path parameters that name a record, and so are identifiers.
pub const ID_PARAMETERS: [&str; 3] = ["id", "stream_id", "account"];

/// The longest query string read at all: every documented parameter fits many times over.
pub const MAX_QUERY_BYTES: usize = 4_096;

impl From<InputError> for ApiError {
    fn from(error: InputError) -> Self {
        ApiError::BadRequest {
            code: "invalid_field",
            field: Some(error.field().to_owned()),
            detail: error.to_string(),
        }
    }
}

/// Checks a routed request's path parameters and query values; answers 400 at the first that
/// breaks its rule.
pub async fn check_request(
    params: Result<RawPathParams, RawPathParamsRejection>,
    request: Request,
    next: Next,
) -> Response {
    let checked = match &params {
        Ok(params) => check_parts(params, &request),
        Err(rejection) => Err(ApiError::BadRequest {
            code: "invalid_parameter",
            detail: format!("a path segment is not valid: {rejection}"),
            field: None,
        }),
    };
    match checked {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

fn check_parts(params: &RawPathParams, request: &Request) -> Result<(), ApiError> {
    for (name, value) in params {
        if ID_PARAMETERS.contains(&name) {
            input::check_id(name, value)?;
        } else {
            input::check_text(name, value)?;
        }
    }
    let Some(query) = request.uri().query() else {
        return Ok(());
    };
    if query.len() > MAX_QUERY_BYTES {
        return Err(ApiError::BadRequest {
            code: "invalid_parameter",
            detail: format!("the query string is longer than {MAX_QUERY_BYTES} bytes"),
            field: None,
        });
    }
    let Ok(Query(pairs)) = Query::<Vec<(String, String)>>::try_from_uri(request.uri()) else {
        return Err(ApiError::BadRequest {
            code: "invalid_parameter",
            detail: "the query string is not `name=value&…` in UTF-8".into(),
            field: None,
        });
    };
    for (name, value) in &pairs {
        input::check_text(name, name)?;
        input::check_text(name, value)?;
    }
    Ok(())
}

/// A JSON command body as `T`, after every string in it passed its field's rule.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|error| ApiError::BadRequest {
        code: "invalid_body",
        detail: format!("the JSON body is not what this command takes: {error}"),
        field: None,
    })?;
    check_strings(&value, "")?;
    serde_json::from_value(value).map_err(|error| ApiError::BadRequest {
        code: "invalid_body",
        detail: format!("the JSON body is not what this command takes: {error}"),
        field: None,
    })
}

/// A body that may be empty (commands that need nothing but their path).
pub fn parse_optional_body<T: serde::de::DeserializeOwned + Default>(
    body: &Bytes,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse_body(body)
    }
}

/// Checks every string under `value`, named by its dotted path from the body's root.
fn check_strings(value: &Value, at: &str) -> Result<(), InputError> {
    match value {
        Value::String(text) => input::check_field(if at.is_empty() { "body" } else { at }, text),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_strings(item, &format!("{at}[{i}]"))),
        Value::Object(fields) => fields.iter().try_for_each(|(name, item)| {
            let path = if at.is_empty() {
                name.clone()
            } else {
                format!("{at}.{name}")
            };
            input::check_text(&path, name)?;
            check_strings(item, &path)
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_string_of_a_body_is_checked_by_its_field_at_any_depth() {
        let long = "d".repeat(1_001);
        let cases = [
            (json!({"lead_id": " lead-1"}), "lead_id"),
            (json!({"name": "a\u{0}b"}), "name"),
            (
                json!({"lines": [{"description": "ok"}, {"description": long}]}),
                "lines[1].description",
            ),
            (json!({"utm": {"utm_source": "s\u{0}"}}), "utm.utm_source"),
            (json!({"partner_id": "a/b"}), "partner_id"),
        ];
        for (body, field) in cases {
            let error = check_strings(&body, "").unwrap_err();
            assert_eq!(error.field(), field, "{body}");
        }
        assert!(check_strings(&json!({"lead_id": "lead-1", "name": "هدى"}), "").is_ok());
    }
}
