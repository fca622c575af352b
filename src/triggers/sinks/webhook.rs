//! The webhook sink: one HTTP POST of the event as JSON per attempt, signed with a
//! timestamp so that a captured request cannot be replayed later, and never redirected.

use super::EventSink;
use crate::triggers::RetrainEvent;
use std::time::Duration;

/// POSTs the event as JSON (header `X-Modelwatch-Event: <id>`); a 2xx answer delivers it,
/// anything else (3xx included: redirects are not followed) is a failed attempt. With a
/// key, the request is signed as Stripe signs its webhooks: `X-Modelwatch-Signature:
/// t=<unix seconds>,v1=<hex of HMAC-SHA256(key, "<t>.<body>")>`; the receiver recomputes
/// the HMAC and refuses a `t` outside its replay window (5 minutes is a fair one).
pub struct WebhookSink {
    /// Where.
    pub url: String,
    /// The HMAC key.
    pub secret: Option<Vec<u8>>,
    /// Per attempt.
    pub timeout: Duration,
}

impl WebhookSink {
    /// The signature header's value for a body sent at `t` (Unix seconds).
    pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        let mut ctx = ring::hmac::Context::with_key(&key);
        ctx.update(format!("{t}.").as_bytes());
        ctx.update(body);
        let hex: String = ctx.sign().as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("t={t},v1={hex}")
    }

    async fn post(&self, body: Vec<u8>, id: &str, now_ms: i64) -> Result<String, String> {
        // A redirect would carry the signed event to a host nobody configured (and a 303
        // would turn the POST into a GET): the sink's URL must be the final one.
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| chain(&e))?;
        let mut req = client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-modelwatch-event", id);
        if let Some(s) = &self.secret {
            req = req.header("x-modelwatch-signature", Self::signature(s, now_ms.div_euclid(1000), &body));
        }
        let res = req.body(body).send().await.map_err(|e| chain(&e))?;
        let status = res.status();
        if status.is_success() {
            return Ok(format!("HTTP {}", status.as_u16()));
        }
        if status.is_redirection() {
            let to = res.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("(no Location)");
            return Err(format!("HTTP {status}: redirect to {to} not followed (configure the final URL)"));
        }
        Err(format!("HTTP {status}"))
    }
}

/// An error with its causes: reqwest's own message omits the one that says what happened
/// ("connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

impl EventSink for WebhookSink {
    fn name(&self) -> String {
        format!("webhook {}", self.url)
    }

    fn deliver(&self, event: &RetrainEvent, now_ms: i64) -> Result<String, String> {
        let body = serde_json::to_vec(event).map_err(|e| e.to_string())?;
        // https needs a TLS crypto provider; ring, as for object storage (a no-op once set).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        rt.block_on(self.post(body, &event.id, now_ms))
    }
}
