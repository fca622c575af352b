//! The webhook sink: an HTTP POST of the event as JSON, signed, with retries.

use super::{Delivery, EventSink};
use crate::triggers::RetrainEvent;
use std::time::Duration;

/// POSTs the event as JSON, retrying with doubling backoff; signs it with HMAC-SHA256 when
/// a key is set (`X-Modelwatch-Signature: sha256=<hex of HMAC(key, body)>`).
pub struct WebhookSink {
    /// Where.
    pub url: String,
    /// The HMAC key.
    pub secret: Option<Vec<u8>>,
    /// Per attempt.
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
    /// The first wait between attempts (then doubled).
    pub backoff: Duration,
}

impl WebhookSink {
    /// The signature header's value for a body.
    pub fn signature(secret: &[u8], body: &[u8]) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        let tag = ring::hmac::sign(&key, body);
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256={hex}")
    }

    fn attempt(&self, rt: &tokio::runtime::Runtime, body: &[u8], id: &str) -> Result<u16, String> {
        rt.block_on(async {
            let client =
                reqwest::Client::builder().timeout(self.timeout).build().map_err(|e| e.to_string())?;
            let mut req = client
                .post(&self.url)
                .header("content-type", "application/json")
                .header("x-modelwatch-event", id)
                .body(body.to_vec());
            if let Some(s) = &self.secret {
                req = req.header("x-modelwatch-signature", Self::signature(s, body));
            }
            let res = req.send().await.map_err(|e| e.to_string())?;
            Ok(res.status().as_u16())
        })
    }
}

impl EventSink for WebhookSink {
    fn deliver(&self, event: &RetrainEvent) -> Delivery {
        let sink = format!("webhook {}", self.url);
        let body = serde_json::to_vec(event).unwrap_or_default();
        // https needs a TLS crypto provider; ring, as for object storage (a no-op once set).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return Delivery { sink, ok: false, detail: e.to_string() },
        };
        let mut wait = self.backoff;
        let mut last = String::new();
        for attempt in 0..=self.retries {
            if attempt > 0 {
                std::thread::sleep(wait);
                wait = wait.saturating_mul(2);
            }
            match self.attempt(&rt, &body, &event.id) {
                Ok(status) if (200..300).contains(&status) => {
                    return Delivery {
                        sink,
                        ok: true,
                        detail: format!("HTTP {status} after {} attempt(s)", attempt + 1),
                    };
                }
                Ok(status) => last = format!("HTTP {status}"),
                Err(e) => last = e,
            }
            tracing::warn!(url = %self.url, attempt = attempt + 1, error = %last, "webhook delivery failed");
        }
        Delivery { sink, ok: false, detail: format!("{last} after {} attempts", self.retries + 1) }
    }
}
