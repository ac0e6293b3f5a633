//! A person's data at the edge: the admin routes for erasure and subject access, and the one
//! place where personal values are opened on their way out ([`reveal`]).
//!
//! Inside the service, personal fields are envelopes (`adapters::personal`); every answer
//! passes through [`reveal`], which opens each envelope in it with its subject's key, or
//! writes `[erased]` where the key is gone. JSON answers are opened value by value; pages and
//! plain text have each envelope replaced by its value escaped for the content type (an
//! envelope's own characters never need escaping, its value may). CSV is opened before it is
//! written (the partner statement), so that its guard against formulas sees the values.

use std::sync::Arc;

use adapters::personal::KeyCache;
use app::personal::{Erasure, SubjectExport, SubjectRef};
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::Deserialize;

use crate::auth::Principal;
use crate::input::parse_body;
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/admin/erasures", post(erase))
        .route("/api/admin/subjects/export", get(export))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectRequest {
    /// A lead id, or an email address.
    subject: String,
}

fn erasure_log(state: &AppState) -> Result<app::personal::ErasureLog, ApiError> {
    state.config.erasure_log.clone().ok_or_else(|| {
        ApiError::Unavailable(
            "erasure needs an erasure log kept apart from the database: set \
             REVLEDGER_ERASURE_LOG"
                .into(),
        )
    })
}

/// `POST /api/admin/erasures` `{"subject": LEAD_ID | EMAIL}`: deletes the keys of everything
/// held about the person and records `SubjectErased`; again is the same answer with
/// `already_erased`.
async fn erase(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<Erasure>, ApiError> {
    principal.require_admin()?;
    let request: SubjectRequest = parse_body(&body)?;
    let subject = SubjectRef::parse(&request.subject)?;
    let log = erasure_log(&state)?;
    let erasure = app::personal::erase(&state.store, &log, &subject, &principal.actor()).await?;
    tracing::info!(
        erasure_id = erasure.erasure_id,
        subjects = erasure.subjects.len(),
        linked_subjects = erasure.linked_subjects,
        already_erased = erasure.already_erased,
        by = principal.actor(),
        "personal data erased"
    );
    Ok(Json(erasure))
}

#[derive(Deserialize)]
struct ExportQuery {
    subject: Option<String>,
}

/// `GET /api/admin/subjects/export?subject=LEAD_ID|EMAIL`: everything held about the person.
async fn export(
    State(state): State<AppState>,
    principal: Principal,
    Query(request): Query<ExportQuery>,
) -> Result<Json<SubjectExport>, ApiError> {
    principal.require_admin()?;
    let subject = request.subject.ok_or_else(|| ApiError::BadRequest {
        code: "missing_subject",
        detail: "name the person: ?subject=LEAD_ID or ?subject=EMAIL".into(),
        field: Some("subject".into()),
    })?;
    let subject = SubjectRef::parse(&subject)?;
    let export = app::personal::export(&state.store, &subject).await?;
    tracing::info!(
        subjects = export.subjects.len(),
        by = principal.actor(),
        "subject exported"
    );
    Ok(Json(export))
}

/// Opens the envelopes of every answer (see the module docs). Answers without an envelope
/// pass through unchanged; a streamed answer (the NDJSON feed) is opened line by line.
pub async fn reveal(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let Some(vault) = state.store.vault() else {
        return response;
    };
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let kind = match ContentKind::of(&content_type) {
        Some(kind) => kind,
        None => return response,
    };
    let (mut parts, body) = response.into_parts();
    if kind == ContentKind::JsonLines {
        // One key cache for the whole feed: a person's key is read once, not once per line.
        let cache = Arc::new(tokio::sync::Mutex::new(KeyCache::default()));
        let stream = lines(body.into_data_stream()).then(move |line| {
            let (vault, cache) = (vault.clone(), cache.clone());
            async move {
                let line = line?;
                let mut cache = cache.lock().await;
                reveal_line(&vault, &mut cache, line)
                    .await
                    .map_err(std::io::Error::other)
            }
        });
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::from_stream(stream));
    }
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(error) => {
            return axum::response::IntoResponse::into_response(ApiError::internal(error))
        }
    };
    if !contains_envelope(&bytes) {
        return Response::from_parts(parts, Body::from(bytes));
    }
    match reveal_body(&vault, kind, &bytes).await {
        Ok(opened) => {
            parts.headers.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(opened.len() as u64),
            );
            Response::from_parts(parts, Body::from(opened))
        }
        Err(error) => axum::response::IntoResponse::into_response(ApiError::internal(error)),
    }
}

/// How an answer's envelopes are opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ContentKind {
    Json,
    JsonLines,
    Html,
    Text,
}

impl ContentKind {
    fn of(content_type: &str) -> Option<ContentKind> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        Some(match essence {
            "application/json" => ContentKind::Json,
            "application/x-ndjson" => ContentKind::JsonLines,
            "text/html" => ContentKind::Html,
            "text/plain" => ContentKind::Text,
            _ => return None,
        })
    }
}

fn contains_envelope(bytes: &[u8]) -> bool {
    let prefix = adapters::personal::envelope::PREFIX.as_bytes();
    bytes.windows(prefix.len()).any(|window| window == prefix)
}

async fn reveal_body(
    vault: &adapters::personal::Vault,
    kind: ContentKind,
    bytes: &[u8],
) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    match kind {
        ContentKind::Json | ContentKind::JsonLines => {
            let mut value: serde_json::Value =
                serde_json::from_str(text).map_err(|e| e.to_string())?;
            vault
                .reveal_json(&mut value)
                .await
                .map_err(|e| e.to_string())?;
            serde_json::to_vec(&value).map_err(|e| e.to_string())
        }
        ContentKind::Html => Ok(vault
            .reveal_text(text, escape_html)
            .await
            .map_err(|e| e.to_string())?
            .into_bytes()),
        ContentKind::Text => Ok(vault
            .reveal_text(text, str::to_owned)
            .await
            .map_err(|e| e.to_string())?
            .into_bytes()),
    }
}

/// One NDJSON line opened (a line without an envelope is passed as it is).
async fn reveal_line(
    vault: &adapters::personal::Vault,
    cache: &mut KeyCache,
    line: Bytes,
) -> Result<Bytes, String> {
    if !contains_envelope(&line) {
        return Ok(line);
    }
    let trimmed = line.strip_suffix(b"\n").unwrap_or(&line);
    let mut value: serde_json::Value =
        serde_json::from_slice(trimmed).map_err(|e| e.to_string())?;
    vault
        .reveal_json_with(&mut value, cache)
        .await
        .map_err(|e| e.to_string())?;
    let mut opened = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
    opened.push(b'\n');
    Ok(Bytes::from(opened))
}

/// A body's chunks regrouped into whole lines (each with its `\n`; a last line without one is
/// passed as it is).
fn lines(
    chunks: axum::body::BodyDataStream,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::unfold(
        (chunks, Vec::<u8>::new(), false),
        |(mut chunks, mut pending, mut done)| async move {
            loop {
                if let Some(end) = pending.iter().position(|byte| *byte == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    return Some((Ok(Bytes::from(line)), (chunks, pending, done)));
                }
                if done {
                    if pending.is_empty() {
                        return None;
                    }
                    let rest = std::mem::take(&mut pending);
                    return Some((Ok(Bytes::from(rest)), (chunks, pending, done)));
                }
                match chunks.next().await {
                    Some(Ok(chunk)) => pending.extend_from_slice(&chunk),
                    Some(Err(error)) => {
                        return Some((Err(std::io::Error::other(error)), (chunks, pending, true)))
                    }
                    None => done = true,
                }
            }
        },
    )
}

fn escape_html(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_kinds_are_read_from_the_essence_of_the_type() {
        assert_eq!(
            ContentKind::of("text/html; charset=utf-8"),
            Some(ContentKind::Html)
        );
        assert_eq!(ContentKind::of("application/json"), Some(ContentKind::Json));
        assert_eq!(ContentKind::of("image/png"), None);
    }

    #[test]
    fn html_values_are_escaped() {
        assert_eq!(
            escape_html("<b>\"Sara\" & 'co'</b>"),
            "&lt;b&gt;&quot;Sara&quot; &amp; &#39;co&#39;&lt;/b&gt;"
        );
    }
}
