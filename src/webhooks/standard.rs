//! The Standard Webhooks signature (standardwebhooks.com): the `webhook-id`,
//! `webhook-timestamp` and `webhook-signature` headers sent next to the
//! `X-EventTracker-*` ones, so that receivers can verify deliveries with the official
//! libraries.
//!
//! The signed content is `"<webhook-id>.<webhook-timestamp>.<body>"`, and the header is
//! `v1,` followed by the standard base64 of its HMAC-SHA256.
//!
//! Which key: the libraries take a secret `whsec_<base64>` and key the HMAC with the
//! decoded bytes, so a subscription secret in that form is used the same way. Any other
//! secret (subscriptions made before these headers existed, or by hand) keys it with
//! its bytes as they are, which the libraries accept in their raw form (Python:
//! `Webhook(secret.encode())`, Node: `new Webhook(secret, {format: "raw"})`). Such
//! secrets are not decoded as base64 even when they happen to be valid base64, as the
//! libraries' default would: the `whsec_` prefix is the one signal a receiver can see,
//! so what the key is never depends on what the characters after it happen to be.

use std::borrow::Cow;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of a secret in the Standard Webhooks form.
pub const SECRET_PREFIX: &str = "whsec_";

/// Standard base64 with or without padding, the unused bits of the last character
/// ignored: as the Python library reads it (it appends `==` before decoding), and the
/// Node one (`@stablelib/base64`) for every secret of 4 characters or more after the
/// prefix, so that a secret they take is read here as they read it. (Python also
/// skips characters outside the alphabet and excess padding, where Node fails: such a
/// secret is raw here, and both libraries verify it in their raw form.)
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The HMAC key for a subscription secret: the decoded bytes of `whsec_<base64>`, or
/// else the secret's own bytes.
pub fn key(secret: &str) -> Cow<'_, [u8]> {
    secret
        .strip_prefix(SECRET_PREFIX)
        .and_then(|encoded| LENIENT.decode(encoded).ok())
        .filter(|key| !key.is_empty())
        .map_or(Cow::Borrowed(secret.as_bytes()), Cow::Owned)
}

/// Whether a secret is `whsec_<base64>`, so that the Standard Webhooks libraries take it
/// as it is (otherwise they need it in their raw form).
pub fn is_standard_secret(secret: &str) -> bool {
    matches!(key(secret), Cow::Owned(_))
}

/// The value of the `webhook-signature` header: `v1,<base64 HMAC-SHA256>` of
/// `"<id>.<timestamp>.<body>"`, keyed by [`key`].
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&key(secret)).expect("HMAC takes keys of any size");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of docs/webhooks.md.
    const BODY: &str = r#"{"created_at":"2026-11-30T10:00:00.000Z","data":{"delta":10,"event_ids":["0193f1a27c3e7d0f8e2a1b3c4d5e6f70"],"points":42,"user_id":"13"},"id":"0193f1a2-7c3e-7d10-9a4b-5f1e2d3c4b5a","type":"points.changed"}"#;
    const ID: &str = "0193f1a2-7c3e-7d10-9a4b-5f1e2d3c4b5a";

    // Every expected value below was computed with the official Python library,
    // standardwebhooks 1.1.0: `Webhook(secret).sign(id, datetime.fromtimestamp(ts,
    // timezone.utc), body)`, with `secret.encode()` for the raw ones.

    #[test]
    fn the_specifications_example_vector() {
        // The example the Standard Webhooks libraries test themselves with.
        assert_eq!(
            sign(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_whsec_secret_is_keyed_by_its_decoded_bytes() {
        assert_eq!(
            sign("whsec_0123456789abcdef", ID, 1_796_032_800, BODY),
            "v1,+f4HF0f9zelahE3OlxGpN0bE4M/i8A3P2CqbRSyKdFY="
        );
        assert!(is_standard_secret("whsec_0123456789abcdef"));
        // Padded, unpadded, and with unused trailing bits: as the libraries read them.
        assert_eq!(&*key("whsec_AQID"), [1, 2, 3]);
        assert_eq!(&*key("whsec_AQI="), [1, 2]);
        assert_eq!(&*key("whsec_AQI"), [1, 2]);
        assert_eq!(&*key("whsec_AQJ"), [1, 2]);
    }

    #[test]
    fn any_other_secret_is_keyed_by_its_own_bytes() {
        // Not base64 after the prefix ('_' is not in the standard alphabet): raw. This is
        // the integration tests' secret.
        assert!(!is_standard_secret("whsec_test_0123456789"));
        assert_eq!(
            sign("whsec_test_0123456789", ID, 1_796_032_800, BODY),
            "v1,YYWI5Jsri4RetrkrN+DkesCQ32LB2orm5Kh0gwjDuzY="
        );
        // Valid base64 but no prefix: still raw, the prefix alone decides.
        assert!(!is_standard_secret("0123456789abcdef"));
        assert_eq!(
            sign("0123456789abcdef", ID, 1_796_032_800, BODY),
            "v1,ZBpX3JYrATukGmb2xY0984t+nz31UKlp4E8YOZ5LCdg="
        );
        for secret in [
            "whsec_a",        // one character more than a multiple of 4 decodes to nothing
            "whsec_AQID====", // too much padding
            "whsec_AQ-_",     // the URL-safe alphabet
            "whsec_ü0123456789",
            "WHSEC_0123456789abcdef",
        ] {
            assert_eq!(&*key(secret), secret.as_bytes(), "{secret}");
        }
    }

    #[test]
    fn the_content_signed_is_id_timestamp_and_body() {
        let base = sign("whsec_0123456789abcdef", ID, 1_796_032_800, BODY);
        assert_ne!(
            sign("whsec_0123456789abcdef", "other", 1_796_032_800, BODY),
            base
        );
        assert_ne!(
            sign("whsec_0123456789abcdef", ID, 1_796_032_801, BODY),
            base
        );
        assert_ne!(
            sign("whsec_0123456789abcdef", ID, 1_796_032_800, "{}"),
            base
        );
    }
}
