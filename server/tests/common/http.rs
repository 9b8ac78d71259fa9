//! Raw HTTP: requests written by hand, for what a well-behaved client never sends.

use super::*;

/// An HTTP agent that reports every status as a response (not an error).
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// POSTs `body` to the hub's sync endpoint; returns the status and body, or why the exchange
/// failed (a dropped connection).
pub fn post_sync(
    agent: &ureq::Agent,
    url: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let mut request = agent
        .post(format!("{url}/v1/sync"))
        .header("Content-Type", "application/octet-stream");
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let mut response = request.send(body).map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(128 * 1024 * 1024)
        .read_to_vec()
        .map_err(|e| format!("response cut: {e}"))?;
    Ok((status, body))
}

pub fn health(url: &str) -> Result<String, String> {
    let mut response = agent()
        .get(format!("{url}/v1/health"))
        .call()
        .map_err(|e| e.to_string())?;
    if response.status().as_u16() != 200 {
        return Err(format!("health answered {}", response.status()));
    }
    response
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())
}
