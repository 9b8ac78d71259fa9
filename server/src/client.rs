//! A blocking client for tools and tests: carries the core's sync messages to a hub over HTTP.

use crate::auth::Token;
use std::time::Duration;
use vigie_core::sync::{SyncOptions, SyncSummary, sync_with_hub};
use vigie_core::{Result, Store};

pub struct HubClient {
    agent: ureq::Agent,
    url: String,
    authorization: String,
    max_response_bytes: u64,
}

impl HubClient {
    pub fn new(hub_url: &str, token: &Token) -> HubClient {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        HubClient {
            agent,
            url: format!("{}/v1/sync", hub_url.trim_end_matches('/')),
            authorization: format!("Bearer {}", token.to_text()),
            max_response_bytes: 64 * 1024 * 1024,
        }
    }

    /// Sends one request; returns the response body, or why the exchange failed.
    pub fn exchange(&self, request: &[u8]) -> std::result::Result<Vec<u8>, String> {
        let mut response = self
            .agent
            .post(&self.url)
            .header("Authorization", &self.authorization)
            .header("Content-Type", "application/octet-stream")
            .send(request)
            .map_err(|e| format!("hub unreachable: {e}"))?;
        let status = response.status();
        let body = response
            .body_mut()
            .with_config()
            .limit(self.max_response_bytes)
            .read_to_vec()
            .map_err(|e| format!("response cut: {e}"))?;
        if status.is_success() {
            Ok(body)
        } else {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_default();
            Err(format!("hub answered {}: {message}", status.as_u16()))
        }
    }

    /// Runs a whole sync session for `store`.
    pub fn sync(
        &self,
        store: &mut Store,
        options: &SyncOptions,
        progress: impl FnMut(&SyncSummary),
    ) -> Result<SyncSummary> {
        sync_with_hub(store, options, |request| self.exchange(request), progress)
    }
}
