//! Arbitrary bytes and headers against every verifier and parser: each answers `Ok` or a
//! `WebhookError` (401 or 400), never a panic, whatever arrives.
//!
//! [`CASES`] per target by default; `PROPTEST_CASES=100000 cargo test -p adapters --release fuzz`
//! runs a longer campaign (the environment variable wins over the default here).

use proptest::prelude::*;

use super::{calendly, moyasar, standard, Secret};

/// Cases per target when `PROPTEST_CASES` does not say.
const CASES: u32 = 512;

/// `PROPTEST_CASES` when set to a number, else [`CASES`]. (Setting `cases` in a config
/// overrides proptest's own reading of the variable, so it is read here.)
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(CASES);
    ProptestConfig::with_cases(cases)
}

fn any_header() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        any::<String>().prop_map(Some),
        "t=[0-9]{0,12},v1=[0-9a-f]{0,70}".prop_map(Some),
        "v1,[A-Za-z0-9+/=]{0,50}( v1,[A-Za-z0-9+/=]{0,50}){0,3}".prop_map(Some),
    ]
}

/// Bytes that are JSON-ish often enough to get past the first check.
fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        any::<String>().prop_map(String::into_bytes),
        r#"\{"(id|type|secret_token|data|event|payload|timestamp)":("[a-z_.]{0,20}"|[0-9-]{1,25}|null|\{\}|\[\])\}"#
            .prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn no_moyasar_delivery_makes_verification_or_parsing_panic(body in any_body()) {
        let status = moyasar::verify(&body, &[Secret::new("token")]).err().map(|e| e.status_code());
        prop_assert!(matches!(status, None | Some(401)));
        if let Err(error) = moyasar::parse(&body) {
            prop_assert!(matches!(error.status_code(), 400 | 401));
        }
    }

    #[test]
    fn no_calendly_delivery_makes_verification_or_parsing_panic(header in any_header(), body in any_body(), now in any::<i64>()) {
        let result = calendly::verify(header.as_deref(), &body, &Secret::new("key"), now, calendly::DEFAULT_TOLERANCE_SECS);
        prop_assert!(result.is_err() || header.is_some());
        let _ = calendly::parse(&body);
    }

    #[test]
    fn no_partner_delivery_makes_verification_or_parsing_panic(
        id in any_header(),
        timestamp in any_header(),
        signature in any_header(),
        body in any_body(),
        now in any::<i64>(),
    ) {
        let headers = standard::StandardWebhookHeaders { id: id.as_deref(), timestamp: timestamp.as_deref(), signature: signature.as_deref() };
        let secrets = [Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")];
        let _ = standard::verify(headers, &body, &secrets, now, standard::DEFAULT_TOLERANCE_SECS);
        let _ = standard::parse(&body);
    }
}
