//! Tokens and dashboard sessions (issue 20 item 9): tokens are listed, revoked and expire, and
//! a revoked or expired token is refused at once, on the API and in the dashboard; the
//! dashboard's cookie is an opaque server-side session, never the token, and ends at sign-out;
//! a partner token needs an enrolled partner; only an admin manages tokens; weak secrets are
//! named (never shown) by `config check`, which exits 1, and by `serve`, which warns.

use std::process::Stdio;
use std::sync::Arc;

use api::auth::Role;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::app::{create_token, Answer, TestApp, ADMIN_TOKEN};
use crate::dashboard::{post_sign_in_form, sign_in, sign_out};
use crate::helpers::temp_dir;

crate::on_both_apps!(
    a_revoked_token_is_refused_at_once_on_the_api_and_its_dashboard_session_ends,
    an_expired_token_is_refused_like_a_revoked_one_and_so_is_its_session,
    a_session_cookie_is_refused_after_sign_out_and_when_its_day_is_over,
    the_session_cookie_is_an_opaque_server_side_id_and_never_the_token,
    a_bootstrap_admin_session_ends_when_the_admin_token_changes,
    a_partner_token_for_an_unknown_partner_is_refused,
    only_an_admin_lists_creates_or_revokes_tokens_and_a_listing_shows_no_secret,
);

// ---------------------------------------------------------------------------------------------
// Helpers

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Authorization", format!("Bearer {token}")),
        ("Content-Type", "application/json".to_owned()),
    ]
}

async fn post(app: &TestApp, token: &str, path: &str, body: &Value) -> Answer {
    app.request(
        "POST",
        path,
        &bearer(token),
        &serde_json::to_vec(body).unwrap(),
    )
    .await
}

/// `POST /api/tokens` as the bootstrap admin: `(token id, token, answer)`.
async fn create_through_api(app: &TestApp, request: &Value) -> (String, String, Value) {
    let answer = post(app, ADMIN_TOKEN, "/api/tokens", request).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    (
        answer.body["token_id"].as_str().unwrap().to_owned(),
        answer.body["token"].as_str().unwrap().to_owned(),
        answer.body,
    )
}

async fn revoke(app: &TestApp, token_id: &str) -> Answer {
    post(
        app,
        ADMIN_TOKEN,
        &format!("/api/tokens/{token_id}/revoke"),
        &json!({}),
    )
    .await
}

fn listed<'a>(listing: &'a Answer, token_id: &str) -> &'a Value {
    listing.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|item| item["token_id"] == token_id)
        .unwrap_or_else(|| panic!("{token_id} is not listed: {}", listing.text))
}

/// A dashboard page through the cookie: 200, or 303 to the sign-in form.
async fn dashboard_status(app: &TestApp, cookie: &str) -> u16 {
    let answer = app
        .request("GET", "/dashboard", &[("Cookie", cookie.to_owned())], b"")
        .await;
    if answer.status == 303 {
        assert!(
            answer
                .header("location")
                .is_some_and(|to| to.starts_with("/dashboard/login")),
            "a refused session goes to the sign-in form: {answer:?}"
        );
    }
    answer.status
}

fn now_us() -> i64 {
    adapters::clock::unix_micros(time::OffsetDateTime::now_utc())
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

async fn count(app: &TestApp, sql: &str, param: &str) -> i64 {
    app.db
        .store
        .sql()
        .fetch_optional(sql, &[param.into()])
        .await
        .unwrap()
        .unwrap()
        .i64(0)
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Revocation and expiry

async fn a_revoked_token_is_refused_at_once_on_the_api_and_its_dashboard_session_ends(
    app: &TestApp,
) {
    let (token_id, token, _) =
        create_through_api(app, &json!({"role": "sales", "label": "leaver"})).await;
    assert_eq!(app.get("/api/funnel", Some(&token)).await.status, 200);
    let cookie = sign_in(app, &token).await;
    assert_eq!(dashboard_status(app, &cookie).await, 200);

    let revoked = revoke(app, &token_id).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert_eq!(revoked.body["status"], "revoked");
    assert_eq!(revoked.body["sessions_ended"], 1);
    let revoked_at = revoked.body["revoked_at"].clone();
    assert!(revoked_at.is_string(), "{}", revoked.text);

    let refused = app.get("/api/funnel", Some(&token)).await;
    assert_eq!(refused.status, 401, "{}", refused.text);
    assert_eq!(
        dashboard_status(app, &cookie).await,
        303,
        "the session ended"
    );
    // Signing in again with the revoked token is refused too.
    let again = post_sign_in_form(app, &format!("token={token}&next=%2Fdashboard")).await;
    assert_eq!(again.status, 401);

    // Revoking is idempotent: the first time stays the time.
    let twice = revoke(app, &token_id).await;
    assert_eq!(twice.status, 200, "{}", twice.text);
    assert_eq!(twice.body["revoked_at"], revoked_at);
    assert_eq!(twice.body["sessions_ended"], 0);
    let listing = app.get("/api/tokens", Some(ADMIN_TOKEN)).await;
    assert_eq!(listed(&listing, &token_id)["status"], "revoked");
    assert_eq!(listed(&listing, &token_id)["revoked_at"], revoked_at);

    let unknown = revoke(app, "no-such-token").await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    let bootstrap = revoke(app, "bootstrap-admin").await;
    assert_eq!(bootstrap.status, 404, "{}", bootstrap.text);
    assert!(
        bootstrap.text.contains("REVLEDGER_ADMIN_TOKEN"),
        "{}",
        bootstrap.text
    );
}

async fn an_expired_token_is_refused_like_a_revoked_one_and_so_is_its_session(app: &TestApp) {
    let (token_id, token, created) =
        create_through_api(app, &json!({"role": "finance", "expires_in_days": 1})).await;
    let expires_at = time::OffsetDateTime::parse(
        created["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let in_a_day = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    assert!(
        (expires_at - in_a_day).abs() < time::Duration::minutes(5),
        "{created}"
    );
    assert_eq!(app.get("/api/revenue", Some(&token)).await.status, 200);
    let cookie = sign_in(app, &token).await;
    assert_eq!(dashboard_status(app, &cookie).await, 200);

    // The day passes (the server's clock cannot be moved, so the expiry is).
    app.db
        .store
        .sql()
        .execute(
            "UPDATE api_tokens SET expires_at_us = ? WHERE token_id = ?",
            &[(now_us() - 1_000_000).into(), token_id.as_str().into()],
        )
        .await
        .unwrap();
    let refused = app.get("/api/revenue", Some(&token)).await;
    assert_eq!(refused.status, 401, "{}", refused.text);
    assert_eq!(refused.body["error"], "unauthorized");
    assert_eq!(
        dashboard_status(app, &cookie).await,
        303,
        "the session ended"
    );
    let listing = app.get("/api/tokens", Some(ADMIN_TOKEN)).await;
    assert_eq!(listed(&listing, &token_id)["status"], "expired");

    // An expiry outside 1..=3650 days is refused, naming the field.
    for days in [0, 3651, -1] {
        let bad = post(
            app,
            ADMIN_TOKEN,
            "/api/tokens",
            &json!({"role": "sales", "expires_in_days": days}),
        )
        .await;
        assert_eq!(bad.status, 400, "{days}: {}", bad.text);
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions

async fn a_session_cookie_is_refused_after_sign_out_and_when_its_day_is_over(app: &TestApp) {
    let (_, token) = create_token(app.handlers(), Role::Sales, None, Some("s")).await;
    for who in [ADMIN_TOKEN, token.as_str()] {
        let cookie = sign_in(app, who).await;
        let other_browser = sign_in(app, who).await;
        assert_eq!(dashboard_status(app, &cookie).await, 200);
        let out = sign_out(app, &cookie).await;
        assert_eq!(out.status, 303, "{out:?}");
        // The browser is told to forget the cookie, and a copy of it kept is refused.
        assert!(
            out.header_values("set-cookie")
                .any(|cookie| cookie.starts_with("revledger_session=; ")),
            "{out:?}"
        );
        assert_eq!(dashboard_status(app, &cookie).await, 303, "signed out");
        // Signing out one browser leaves the token's other sessions alone.
        assert_eq!(dashboard_status(app, &other_browser).await, 200);

        // A session lasts a working day.
        let session_id = other_browser.split_once('=').unwrap().1;
        app.db
            .store
            .sql()
            .execute(
                "UPDATE dashboard_sessions SET expires_at_us = ? WHERE session_sha256 = ?",
                &[(now_us() - 1).into(), sha256_hex(session_id).into()],
            )
            .await
            .unwrap();
        assert_eq!(dashboard_status(app, &other_browser).await, 303, "expired");
    }
}

async fn the_session_cookie_is_an_opaque_server_side_id_and_never_the_token(app: &TestApp) {
    let (_, token) = create_token(app.handlers(), Role::Auditor, None, Some("a")).await;
    for who in [ADMIN_TOKEN, token.as_str()] {
        let first = sign_in(app, who).await;
        let second = sign_in(app, who).await;
        let value = first.split_once('=').unwrap().1;
        let encodings = [
            who.to_owned(),
            hex::encode(who.as_bytes()),
            hex::encode(who.as_bytes()).to_uppercase(),
            sha256_hex(who),
            crate::dashboard::form_encode(who),
        ];
        for encoded in &encodings {
            assert!(
                !value.contains(encoded.as_str()) && !encoded.contains(value),
                "the cookie {value} holds the token"
            );
        }
        // Not a function of the token: each sign-in gets its own random id.
        assert_ne!(first, second);
        assert!(
            value.len() >= 32 && value.chars().all(|c| c.is_ascii_hexdigit()),
            "{value}: at least 128 random bits"
        );
        // Stored only as its SHA-256, and no use as a bearer token.
        let by_raw = "SELECT COUNT(*) FROM dashboard_sessions WHERE session_sha256 = ?";
        assert_eq!(count(app, by_raw, value).await, 0);
        assert_eq!(count(app, by_raw, &sha256_hex(value)).await, 1);
        assert_eq!(app.get("/api/audit", Some(value)).await.status, 401);
        assert_eq!(dashboard_status(app, &first).await, 200);
    }
}

async fn a_bootstrap_admin_session_ends_when_the_admin_token_changes(app: &TestApp) {
    let cookie = sign_in(app, ADMIN_TOKEN).await;
    let session_id = cookie.split_once('=').unwrap().1;
    let now = time::OffsetDateTime::now_utc();
    let principal = api::sessions::principal(&app.state, session_id, now)
        .await
        .unwrap();
    assert_eq!(principal.token_id, "bootstrap-admin");
    // The same database served with another REVLEDGER_ADMIN_TOKEN, or none.
    for admin_token in [Some("a-new-admin-token-after-a-leak-0123456789"), None] {
        let mut changed = app.state.clone();
        changed.config = Arc::new(api::Config {
            admin_token: admin_token.map(adapters::webhooks::Secret::new),
            ..(*app.state.config).clone()
        });
        let refused = api::sessions::principal(&changed, session_id, now).await;
        assert!(
            matches!(refused, Err(api::ApiError::Unauthorized)),
            "{refused:?}"
        );
    }
    // The binding stored is not the admin token's hash (nothing to test guesses against).
    let stored = count(
        app,
        "SELECT COUNT(*) FROM dashboard_sessions WHERE admin_binding_sha256 = ?",
        &sha256_hex(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(stored, 0);
}

// ---------------------------------------------------------------------------------------------
// Partner tokens and who manages tokens

async fn a_partner_token_for_an_unknown_partner_is_refused(app: &TestApp) {
    let unknown = post(
        app,
        ADMIN_TOKEN,
        "/api/tokens",
        &json!({"role": "partner", "partner_id": "does-not-exist"}),
    )
    .await;
    assert_eq!(unknown.status, 422, "{}", unknown.text);
    assert_eq!(unknown.body["error"], "unknown_partner");
    assert_eq!(unknown.body["field"], "partner_id");
    for request in [
        json!({"role": "partner"}),
        json!({"role": "sales", "partner_id": "p-known"}),
    ] {
        let bad = post(app, ADMIN_TOKEN, "/api/tokens", &request).await;
        assert_eq!(bad.status, 400, "{request}: {}", bad.text);
    }
    let listing = app.get("/api/tokens", Some(ADMIN_TOKEN)).await;
    assert_eq!(listing.body["items"], json!([]), "nothing was made");

    let enrolled = post(
        app,
        ADMIN_TOKEN,
        "/api/partners",
        &json!({"partner_id": "p-known", "name": "Known", "email": "known@partners.sa"}),
    )
    .await;
    assert_eq!(enrolled.status, 201, "{}", enrolled.text);
    let (_, token, created) =
        create_through_api(app, &json!({"role": "partner", "partner_id": "p-known"})).await;
    assert_eq!(created["partner_id"], "p-known");
    assert_eq!(
        app.get("/api/partners/p-known", Some(&token)).await.status,
        200
    );
}

async fn only_an_admin_lists_creates_or_revokes_tokens_and_a_listing_shows_no_secret(
    app: &TestApp,
) {
    let enrolled = post(
        app,
        ADMIN_TOKEN,
        "/api/partners",
        &json!({"partner_id": "p-own", "name": "Own", "email": "own@partners.sa"}),
    )
    .await;
    assert_eq!(enrolled.status, 201, "{}", enrolled.text);
    let mut tokens = Vec::new();
    for (role, partner) in [
        (Role::Sales, None),
        (Role::Finance, None),
        (Role::Auditor, None),
        (Role::Partner, Some("p-own")),
        (Role::Admin, None),
    ] {
        let (id, token) = create_token(app.handlers(), role, partner, Some("t")).await;
        tokens.push((role, id, token));
    }
    let victim = tokens[0].1.clone();
    for (role, _, token) in &tokens {
        let list = app.get("/api/tokens", Some(token)).await;
        let create = post(app, token, "/api/tokens", &json!({"role": "admin"})).await;
        let revoke = post(
            app,
            token,
            &format!("/api/tokens/{victim}/revoke"),
            &json!({}),
        )
        .await;
        let expected = if *role == Role::Admin {
            [200, 201, 200]
        } else {
            [403; 3]
        };
        assert_eq!(
            [list.status, create.status, revoke.status],
            expected,
            "{role:?}: {} {} {}",
            list.text,
            create.text,
            revoke.text
        );
    }
    for headers in [vec![], bearer("rl_forged0000000000000000000000000000")] {
        let answer = app.request("GET", "/api/tokens", &headers, b"").await;
        assert_eq!(answer.status, 401, "{}", answer.text);
    }

    let listing = app.get("/api/tokens", Some(ADMIN_TOKEN)).await;
    assert_eq!(listing.status, 200, "{}", listing.text);
    assert_eq!(listing.body["items"].as_array().unwrap().len(), 6);
    for (role, id, token) in &tokens {
        let item = listed(&listing, id);
        assert_eq!(item["role"], json!(role));
        assert_eq!(item["label"], "t");
        assert!(item["created_at"].is_string() && item["expires_at"].is_null());
        for secret in [token.clone(), sha256_hex(token)] {
            assert!(
                !listing.text.contains(&secret),
                "the listing shows {secret}"
            );
        }
    }
    assert_eq!(listed(&listing, &tokens[3].1)["partner_id"], "p-own");
    assert_eq!(listed(&listing, &victim)["status"], "revoked");
}

// ---------------------------------------------------------------------------------------------
// The command line

fn revledger(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    crate::cli::revledger(dir)
        .args(args)
        .output()
        .expect("revledger runs")
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn token_create_for_an_unknown_partner_exits_non_zero_with_a_clear_message() {
    let dir = temp_dir();
    let refused = revledger(
        &dir,
        &[
            "token",
            "create",
            "--role",
            "partner",
            "--partner",
            "does-not-exist",
        ],
    );
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        refused.stdout.is_empty(),
        "no token printed: {}",
        text(&refused)
    );
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("no partner \"does-not-exist\"") && message.contains("enrolled"),
        "{message}"
    );
    let list = revledger(&dir, &["token", "list"]);
    assert!(list.status.success(), "{}", text(&list));
    assert_eq!(
        String::from_utf8_lossy(&list.stdout).lines().count(),
        1,
        "only the header: {}",
        text(&list)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn token_list_shows_ids_roles_and_times_never_a_token_and_revoke_ends_it() {
    let dir = temp_dir();
    let created = revledger(
        &dir,
        &[
            "token",
            "create",
            "--role",
            "sales",
            "--label",
            "Huda, sales",
            "--expires-in-days",
            "30",
        ],
    );
    assert!(created.status.success(), "{}", text(&created));
    let sales = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    let auditor = revledger(&dir, &["token", "create", "--role", "auditor"]);
    assert!(auditor.status.success(), "{}", text(&auditor));
    let auditor = String::from_utf8_lossy(&auditor.stdout).trim().to_owned();

    let list = revledger(&dir, &["token", "list"]);
    assert!(list.status.success(), "{}", text(&list));
    let listing = String::from_utf8_lossy(&list.stdout).into_owned();
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two tokens: {listing}");
    for column in [
        "ID", "ROLE", "PARTNER", "LABEL", "CREATED", "EXPIRES", "REVOKED",
    ] {
        assert!(lines[0].contains(column), "{listing}");
    }
    let sales_line = lines
        .iter()
        .find(|line| line.contains("Huda, sales"))
        .unwrap_or_else(|| panic!("the sales token is not listed: {listing}"));
    let cells: Vec<&str> = sales_line.split_whitespace().collect();
    assert_eq!(cells[1], "sales", "{sales_line}");
    assert_eq!(cells[2], "-", "no partner: {sales_line}");
    assert_eq!(cells.last(), Some(&"active"), "{sales_line}");
    assert_eq!(cells[cells.len() - 2], "-", "not revoked: {sales_line}");
    let expires = cells[cells.len() - 3];
    assert!(
        expires.ends_with('Z') && expires != cells[cells.len() - 4],
        "{sales_line}"
    );
    let sales_id = cells[0].to_owned();
    assert!(
        text(&created).contains(&sales_id),
        "create announced the id: {}",
        text(&created)
    );
    for token in [&sales, &auditor] {
        assert!(token.starts_with("rl_"));
        for secret in [token.to_string(), sha256_hex(token), token[3..].to_owned()] {
            assert!(
                !listing.contains(&secret),
                "the listing shows a token: {listing}"
            );
        }
    }

    let revoked = revledger(&dir, &["token", "revoke", &sales_id]);
    assert!(revoked.status.success(), "{}", text(&revoked));
    assert!(text(&revoked).contains("revoked"), "{}", text(&revoked));
    let again = revledger(&dir, &["token", "revoke", &sales_id]);
    assert!(
        again.status.success(),
        "revoking is idempotent: {}",
        text(&again)
    );
    let list = revledger(&dir, &["token", "list"]);
    let listing = String::from_utf8_lossy(&list.stdout);
    let sales_line = listing.lines().find(|l| l.starts_with(&sales_id)).unwrap();
    assert!(sales_line.ends_with("revoked"), "{sales_line}");
    let unknown = revledger(&dir, &["token", "revoke", "no-such-token"]);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown).contains("no token no-such-token"),
        "{}",
        text(&unknown)
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Secrets each too weak in its own way, and a strong configuration.
const WEAK_ADMIN: &str = "demo-admin-token";
const WEAK_MOYASAR: &str = "moyasar-short";
const STRONG_MOYASAR: &str = "moyasar-secret-long-enough-1234";
const PUBLIC_EXAMPLE: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const STRONG_PARTNER: &str = "whsec_c2Vjb25kLXJvdGF0ZWQta2V5LWZvci10ZXN0cw==";

#[test]
fn config_check_exits_1_naming_each_weak_secret_and_never_its_value() {
    let dir = temp_dir();
    let check = |envs: &[(&str, &str)]| {
        let mut command = crate::cli::revledger(&dir);
        command.args(["config", "check"]);
        for (name, value) in envs {
            command.env(name, value);
        }
        command.output().unwrap()
    };
    let weak = check(&[
        ("REVLEDGER_ADMIN_TOKEN", WEAK_ADMIN),
        (
            "REVLEDGER_MOYASAR_SECRET_TOKEN",
            &format!("{STRONG_MOYASAR},{WEAK_MOYASAR}"),
        ),
        (
            "REVLEDGER_PARTNER_WEBHOOK_SECRET",
            &format!("{PUBLIC_EXAMPLE},{STRONG_PARTNER}"),
        ),
    ]);
    let output = text(&weak);
    assert_eq!(weak.status.code(), Some(1), "{output}");
    for named in [
        "REVLEDGER_ADMIN_TOKEN: shorter than 32 characters",
        "REVLEDGER_MOYASAR_SECRET_TOKEN entry 2: shorter than 16 characters",
        "REVLEDGER_PARTNER_WEBHOOK_SECRET entry 1: the public example secret",
    ] {
        assert!(output.contains(named), "{named} is not named: {output}");
    }
    for value in [
        WEAK_ADMIN,
        WEAK_MOYASAR,
        STRONG_MOYASAR,
        PUBLIC_EXAMPLE,
        STRONG_PARTNER,
    ] {
        assert!(!output.contains(value), "{value} is shown: {output}");
    }
    let effective: Value = serde_json::from_slice(&weak.stdout).expect("stdout is the JSON");
    assert_eq!(effective["weak_secrets"].as_array().unwrap().len(), 3);

    let strong_admin = "an-admin-token-of-forty-characters-12345";
    let strong = check(&[
        ("REVLEDGER_ADMIN_TOKEN", strong_admin),
        ("REVLEDGER_MOYASAR_SECRET_TOKEN", STRONG_MOYASAR),
        ("REVLEDGER_PARTNER_WEBHOOK_SECRET", STRONG_PARTNER),
    ]);
    assert!(strong.status.success(), "{}", text(&strong));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn serve_starts_with_weak_secrets_but_warns_naming_each_setting_only() {
    let dir = temp_dir();
    let mut child = crate::cli::revledger(&dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("REVLEDGER_ADMIN_TOKEN", WEAK_ADMIN)
        .env("REVLEDGER_MOYASAR_SECRET_TOKEN", WEAK_MOYASAR)
        .env("REVLEDGER_PARTNER_WEBHOOK_SECRET", PUBLIC_EXAMPLE)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut startup = Vec::new();
    let mut listening = false;
    for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
        let line = line.unwrap();
        let entry: Value = serde_json::from_str(&line).unwrap_or_default();
        startup.push(line);
        if entry["fields"]["address"].is_string() {
            listening = true;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let logs = startup.join("\n");
    assert!(listening, "serve started: {logs}");
    let warnings: Vec<Value> = startup
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["level"] == "WARN" && entry["fields"]["setting"].is_string())
        .collect();
    let settings: Vec<&str> = warnings
        .iter()
        .map(|w| w["fields"]["setting"].as_str().unwrap())
        .collect();
    assert_eq!(
        settings,
        [
            "REVLEDGER_ADMIN_TOKEN",
            "REVLEDGER_MOYASAR_SECRET_TOKEN",
            "REVLEDGER_PARTNER_WEBHOOK_SECRET"
        ],
        "{logs}"
    );
    for value in [WEAK_ADMIN, WEAK_MOYASAR, PUBLIC_EXAMPLE] {
        assert!(!logs.contains(value), "{value} is logged: {logs}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
