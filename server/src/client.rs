//! A blocking client for tools and tests: carries the core's sync messages to a hub over HTTP.

use crate::auth::Token;
use std::collections::VecDeque;
use std::thread::JoinHandle;
use std::time::Duration;
use vigie_core::error::foreign_text;
use vigie_core::sync::{
    AttachmentSummary, AttachmentSyncOptions, HubTransport, SyncOptions, SyncSummary,
    sync_attachments, sync_through,
};
use vigie_core::{Error, Result, Store};

/// Why a hub's address would carry records and a device's token in clear across a network:
/// http:// to a host other than this machine's loopback. `None` for https://, or http:// to
/// 127.0.0.0/8, ::1 or localhost (a hub on the same machine, or a TLS proxy's back end).
pub fn in_clear(hub_url: &str) -> Option<String> {
    // Read as the HTTP client reads it: a scheme in capitals is http all the same, and the
    // host is the authority's, after any userinfo.
    let uri: axum::http::Uri = hub_url.trim().parse().ok()?;
    if !uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("http"))
    {
        return None;
    }
    let host = uri.host().unwrap_or_default();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!loopback).then(|| {
        "an http:// address carries children's records and the device's token in clear across \
         the network"
            .to_string()
    })
}

pub struct HubClient {
    agent: ureq::Agent,
    url: String,
    attachments_url: String,
    authorization: String,
    max_response_bytes: u64,
}

impl HubClient {
    pub fn new(hub_url: &str, token: &Token) -> HubClient {
        HubClient {
            agent: agent(None),
            url: format!("{}/v1/sync", hub_url.trim_end_matches('/')),
            attachments_url: format!("{}/v1/attachments", hub_url.trim_end_matches('/')),
            authorization: format!("Bearer {}", token.to_text()),
            max_response_bytes: 64 * 1024 * 1024,
        }
    }

    /// The same client trusting only the certificate authorities of `pem` for the hub's TLS
    /// certificate (a ministry's own authority, or a hub's self-signed certificate), not the
    /// public ones.
    pub fn trusting(mut self, pem: &[u8]) -> std::result::Result<HubClient, String> {
        use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
        let mut roots = Vec::new();
        for item in ureq::tls::parse_pem(pem) {
            if let PemItem::Certificate(certificate) = item.map_err(|e| e.to_string())? {
                roots.push(certificate);
            }
        }
        if roots.is_empty() {
            return Err("no certificate (BEGIN CERTIFICATE) in the file".into());
        }
        let roots: Vec<Certificate<'static>> = roots;
        self.agent = agent(Some(
            TlsConfig::builder()
                .root_certs(RootCerts::new_with_certs(&roots))
                .build(),
        ));
        Ok(self)
    }

    /// Sends one request; returns the response body, or why the exchange failed.
    pub fn exchange(&self, request: &[u8]) -> std::result::Result<Vec<u8>, String> {
        post(
            &self.agent,
            &self.url,
            &self.authorization,
            self.max_response_bytes,
            request,
        )
    }

    /// Sends one attachment request; returns the answer's body (a refusal on a limit, 413,
    /// included), or why the exchange failed.
    pub fn exchange_attachment(&self, request: &[u8]) -> std::result::Result<Vec<u8>, String> {
        post(
            &self.agent,
            &self.attachments_url,
            &self.authorization,
            self.max_response_bytes,
            request,
        )
    }

    /// Runs an attachment session for `store` (after `sync`): uploads, then downloads as the
    /// options' policy says, chunk by chunk.
    pub fn sync_attachments(
        &self,
        store: &mut Store,
        options: &AttachmentSyncOptions,
        progress: impl FnMut(&AttachmentSummary),
    ) -> Result<AttachmentSummary> {
        sync_attachments(
            store,
            options,
            |request| self.exchange_attachment(request),
            progress,
        )
    }

    /// Runs a whole sync session for `store`.
    pub fn sync(
        &self,
        store: &mut Store,
        options: &SyncOptions,
        progress: impl FnMut(&SyncSummary),
    ) -> Result<SyncSummary> {
        let mut transport = Pipelined {
            client: self,
            in_flight: VecDeque::new(),
        };
        match sync_through(store, options, &mut transport, progress) {
            Err(Error::Transport { reason }) if reason.starts_with(WIPE_REQUESTED) => {
                // Obeyed only when the hub signed it: anything else answering in its place
                // (a network in clear, a server under its name) destroys nothing.
                let order = reason[WIPE_REQUESTED.len()..].trim_start_matches(": ");
                match store.obeys_wipe_order(order)? {
                    true => Err(Error::WipeRequested),
                    false => Err(Error::Transport {
                        reason: NOT_SIGNED.into(),
                    }),
                }
            }
            other => other,
        }
    }
}

/// What `post` reports when the hub revoked the device and asks it to wipe (followed by the
/// order, `: <hex>`, that `sync` checks).
const WIPE_REQUESTED: &str = "hub answered 403: device revoked, wipe requested";
/// What a wipe order the hub did not sign is reported as: not obeyed.
const NOT_SIGNED: &str = "hub answered 403 with a wipe order it did not sign: not obeyed, \
    nothing was wiped (something on the way answered in the hub's place?)";
/// How `post` begins a failure whose request never reached the hub (no connection made).
const NOT_REACHED: &str = "hub unreachable";
/// How `post` begins the hub's refusal of a request.
const REFUSED: &str = "hub answered";

/// Whether a failed sync left nothing on the hub for this device: the hub was never reached,
/// or it refused the request. Otherwise (an answer lost or cut) the hub may have applied it, a
/// first sync's keys included, and the store must stay to go on from there.
pub fn hub_holds_nothing_of(error: &vigie_core::Error) -> bool {
    match error {
        vigie_core::Error::Transport { reason } => {
            (reason.starts_with(NOT_REACHED) || reason.starts_with(REFUSED))
                && !reason.starts_with(WIPE_REQUESTED)
        }
        _ => false,
    }
}

/// Whether a request failed before any of it could reach the hub.
fn never_sent(e: &ureq::Error) -> bool {
    use ureq::Timeout;
    match e {
        ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::BadUri(_)
        | ureq::Error::RequireHttpsOnly(_)
        | ureq::Error::ConnectProxyFailed(_) => true,
        ureq::Error::Timeout(which) => matches!(which, Timeout::Resolve | Timeout::Connect),
        ureq::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::AddrNotAvailable
                | std::io::ErrorKind::NetworkUnreachable
                | std::io::ErrorKind::HostUnreachable
        ),
        _ => false,
    }
}

/// The HTTP agent a client sends with: statuses are answers, not errors; two minutes at most
/// an exchange; the public authorities, or those `tls` trusts.
fn agent(tls: Option<ureq::tls::TlsConfig>) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)));
    match tls {
        Some(tls) => config.tls_config(tls).build().into(),
        None => config.build().into(),
    }
}

/// Whether TLS refused the hub (its certificate not trusted, or no TLS there).
fn handshake_failed(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Rustls(_) | ureq::Error::Tls(_) => true,
        ureq::Error::Io(io) => io
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()),
        _ => false,
    }
}

fn post(
    agent: &ureq::Agent,
    url: &str,
    authorization: &str,
    max_response_bytes: u64,
    request: &[u8],
) -> std::result::Result<Vec<u8>, String> {
    let mut response = agent
        .post(url)
        .header("Authorization", authorization)
        .header("Content-Type", "application/octet-stream")
        .send(request)
        .map_err(|e| match (handshake_failed(&e), never_sent(&e)) {
            // A certificate authority's certificate served as the hub's: TLS refuses it
            // whatever the device trusts, so passing the authority again changes nothing.
            (true, _) if e.to_string().contains("CaUsedAsEndEntity") => format!(
                "{NOT_REACHED}: its TLS certificate is a certificate authority's, not a \
                 server's (as `openssl req -x509` makes one unless given -addext \
                 basicConstraints=critical,CA:FALSE): make the hub's certificate again so \
                 (README, Records in transit)"
            ),
            // The handshake failed: nothing of the request left this machine.
            (true, _) => format!(
                "{NOT_REACHED}: its TLS certificate was refused ({e}): check the address, or \
                 give the authority that signed it (vigie sync --ca)"
            ),
            (_, true) => format!("{NOT_REACHED}: {e}"),
            (_, false) => {
                format!("no answer from the hub (it may have received the request): {e}")
            }
        })?;
    let status = response.status();
    let body = response
        .body_mut()
        .with_config()
        .limit(max_response_bytes)
        .read_to_vec()
        .map_err(|e| format!("response cut: {e}"))?;
    let typed = |form: &str| {
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(form))
    };
    let (binary, is_json) = (typed("application/octet-stream"), typed("application/json"));
    // An attachment refused on a limit (413) carries the refusal, with its figures, for the
    // core to apply.
    if binary && (status.is_success() || status.as_u16() == 413) {
        Ok(body)
    } else if status.is_success() || (matches!(status.as_u16(), 401 | 403 | 407 | 511) && !is_json)
    {
        // Not the hub's form (a Wi-Fi's sign-in page, a proxy asking for its own login): the
        // hub never had the request, and it must not read as a token to reissue or a right
        // withheld.
        Err(format!(
            "{NOT_REACHED}: the network answered {} in the hub's place, not with its \
             message: a Wi-Fi or a proxy that asks to sign in first? Nothing was lost",
            status.as_u16()
        ))
    } else {
        let json = serde_json::from_slice::<serde_json::Value>(&body).ok();
        if status.as_u16() == 403
            && json
                .as_ref()
                .and_then(|v| v.get("wipe"))
                .and_then(|w| w.as_bool())
                == Some(true)
        {
            let order = json
                .as_ref()
                .and_then(|v| v.get("order"))
                .and_then(|o| o.as_str())
                .unwrap_or_default();
            return Err(format!("{WIPE_REQUESTED}: {order}"));
        }
        let message = json
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(foreign_text))
            // Not a Vigie hub's answer (a proxy's page, a wrong address): its reason phrase.
            .unwrap_or_else(|| match status.as_u16() {
                404 => "no Vigie hub at this address (check the URL)".to_string(),
                _ => status
                    .canonical_reason()
                    .unwrap_or("no explanation given")
                    .to_ascii_lowercase(),
            });
        Err(format!("{REFUSED} {}: {message}", status.as_u16()))
    }
}

/// Each request goes out on its own thread, so the next page is on its way while the device
/// applies the one it has.
struct Pipelined<'a> {
    client: &'a HubClient,
    in_flight: VecDeque<JoinHandle<std::result::Result<Vec<u8>, String>>>,
}

impl HubTransport for Pipelined<'_> {
    fn send(&mut self, request: Vec<u8>) -> std::result::Result<(), String> {
        let c = self.client;
        let (agent, url, authorization, limit) = (
            c.agent.clone(),
            c.url.clone(),
            c.authorization.clone(),
            c.max_response_bytes,
        );
        self.in_flight.push_back(std::thread::spawn(move || {
            post(&agent, &url, &authorization, limit, &request)
        }));
        Ok(())
    }

    fn receive(&mut self) -> std::result::Result<Vec<u8>, String> {
        self.in_flight
            .pop_front()
            .ok_or("no request was sent")?
            .join()
            .map_err(|_| "the exchange failed".to_string())?
    }
}
