//! What stands in front of the dashboard's sign-in form: a bound on guesses per client, and a
//! refusal of forms posted from another site.
//!
//! **Attempts per client.** A token has 244 random bits, so guessing one is hopeless; the bound
//! is about a client hammering the form (and the token lookups behind it). Each client address
//! gets [`MAX_ATTEMPTS`] sign-ins per [`WINDOW`]; beyond them, 429 with `Retry-After` until the
//! window ends. The table is bounded ([`MAX_CLIENTS`]): when full, windows that have ended are
//! forgotten first, then the oldest.
//!
//! **Origin.** A browser names the site a form was posted from (`Origin`, and `Sec-Fetch-Site`);
//! a sign-in posted from another site (login CSRF: signing a victim into the attacker's
//! session) is refused with 403. A request without either header (a script, curl) is not a
//! browser acting for someone else and goes on.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};

/// Sign-ins one client may attempt per [`WINDOW`]: a person mistyping a token a few times is
/// never stopped.
pub const MAX_ATTEMPTS: u32 = 10;

/// The window [`MAX_ATTEMPTS`] counts over.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Clients remembered at once: each entry is a few dozen bytes.
pub const MAX_CLIENTS: usize = 10_000;

/// Attempts per client in the current window.
#[derive(Default)]
pub struct SignInThrottle {
    clients: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl SignInThrottle {
    /// Counts an attempt by `client` at `now`; `Err(seconds)` when it is one too many, with how
    /// long until its window ends.
    pub fn attempt(&self, client: IpAddr, now: Instant) -> Result<(), u64> {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&client) {
            clients.retain(|_, (started, _)| now.duration_since(*started) < WINDOW);
            if clients.len() >= MAX_CLIENTS {
                let oldest = clients
                    .iter()
                    .min_by_key(|(_, (started, _))| *started)
                    .map(|(address, _)| *address);
                if let Some(oldest) = oldest {
                    clients.remove(&oldest);
                }
            }
        }
        let (started, attempts) = clients.entry(client).or_insert((now, 0));
        if now.duration_since(*started) >= WINDOW {
            *started = now;
            *attempts = 0;
        }
        if *attempts >= MAX_ATTEMPTS {
            let left = WINDOW.saturating_sub(now.duration_since(*started));
            return Err(left.as_secs().max(1));
        }
        *attempts += 1;
        Ok(())
    }
}

/// Whether a form post comes from another site than the one it is posted to: its `Origin`
/// names another host than `Host`, or the browser says so in `Sec-Fetch-Site`.
pub fn is_cross_site(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if text("sec-fetch-site").is_some_and(|site| site == "cross-site" || site == "same-site") {
        return true;
    }
    let Some(origin) = text(header::ORIGIN.as_str()) else {
        return false;
    };
    // `Origin: null` (a sandboxed or opaque origin) is never our own page.
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'));
    match (origin_host, text(header::HOST.as_str())) {
        (Some(origin_host), Some(host)) => !origin_host.eq_ignore_ascii_case(host),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_ten_attempts_a_minute_and_the_next_is_told_when_to_return() {
        let throttle = SignInThrottle::default();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let start = Instant::now();
        for _ in 0..MAX_ATTEMPTS {
            assert!(throttle.attempt(client, start).is_ok());
        }
        let wait = throttle
            .attempt(client, start + Duration::from_secs(15))
            .unwrap_err();
        assert_eq!(wait, 45);
        assert!(
            throttle.attempt(other, start).is_ok(),
            "another client is not held up"
        );
        assert!(
            throttle.attempt(client, start + WINDOW).is_ok(),
            "a new window"
        );
    }

    #[test]
    fn a_form_from_another_site_is_cross_site_and_one_from_ours_is_not() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, value.parse().unwrap());
            }
            map
        };
        assert!(!is_cross_site(&headers(&[("host", "ledger.example:8080")])));
        assert!(!is_cross_site(&headers(&[
            ("host", "ledger.example:8080"),
            ("origin", "https://ledger.example:8080"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(is_cross_site(&headers(&[
            ("host", "ledger.example:8080"),
            ("origin", "https://evil.example"),
        ])));
        assert!(is_cross_site(&headers(&[
            ("host", "a"),
            ("origin", "null")
        ])));
        assert!(is_cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
    }
}
