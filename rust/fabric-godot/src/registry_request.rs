//! [`FabricRegistryRequest`]: one request to the registry backend over `fabric_net::http`
//! (`http://`, or `https://` with the backend's certificate pinned by hash, the same pinned TLS
//! as zones use), run on the background runtime. The addon's `FabricRegistry` uses it for
//! `https://` backends, which Godot's `HTTPRequest` cannot pin by hash; it polls
//! [`FabricRegistryRequest::is_done`] once a frame. No game logic: transport only.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use godot::prelude::*;

/// What came back: `(status, body JSON text)`, or why nothing did.
type Outcome = Result<(u16, String), String>;

/// One request to the registry backend, pinned by certificate hash for `https://`.
#[derive(GodotClass)]
#[class(base = RefCounted, init)]
pub struct FabricRegistryRequest {
    outcome: Arc<Mutex<Option<Outcome>>>,
    started: bool,
}

#[godot_api]
impl FabricRegistryRequest {
    /// Starts `method path` at `url` (`http://host:port` or `https://host:port`) with the
    /// certificate hashes `cert_hash` (base64 or hex SHA-256, comma-separated; required for
    /// `https://`, refused for `http://`), an optional bearer credential and JSON body text.
    /// Returns "" when started, else why not (a bad URL, a missing or misplaced pin).
    #[func]
    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        url: GString,
        cert_hash: GString,
        method: GString,
        path: GString,
        bearer: GString,
        body: GString,
        timeout_sec: f64,
    ) -> GString {
        if self.started {
            return "this request was already started".into();
        }
        let endpoint =
            match crate::zone::config::backend_endpoint(&url.to_string(), &cert_hash.to_string()) {
                Ok(e) => e,
                Err(e) => return GString::from(&e.to_string()),
            };
        let body = body.to_string();
        let body = if body.is_empty() {
            None
        } else {
            match serde_json::from_str::<serde_json::Value>(&body) {
                Ok(v) => Some(v),
                Err(e) => return GString::from(&format!("the body is not JSON: {e}")),
            }
        };
        let (method, path, bearer) = (method.to_string(), path.to_string(), bearer.to_string());
        let timeout = Duration::from_secs_f64(timeout_sec.clamp(0.1, 600.0));
        let outcome = self.outcome.clone();
        self.started = true;
        fabric_net::runtime_handle().spawn(async move {
            let bearer = (!bearer.is_empty()).then_some(bearer.as_str());
            let r = fabric_net::http::request_to(
                &endpoint,
                &method,
                &path,
                bearer,
                body.as_ref(),
                timeout,
            )
            .await;
            *outcome.lock().expect("outcome lock") = Some(
                r.map(|r| (r.status, r.body.to_string()))
                    .map_err(|e| e.to_string()),
            );
        });
        GString::new()
    }

    /// Whether the answer (or the failure) is in.
    #[func]
    fn is_done(&self) -> bool {
        self.outcome.lock().expect("outcome lock").is_some()
    }

    /// The HTTP status, 0 while waiting or when no answer came (see [`Self::error`]).
    #[func]
    fn status(&self) -> i64 {
        match &*self.outcome.lock().expect("outcome lock") {
            Some(Ok((status, _))) => i64::from(*status),
            _ => 0,
        }
    }

    /// The response body as JSON text ("null" when it was not JSON), "" without an answer.
    #[func]
    fn body(&self) -> GString {
        match &*self.outcome.lock().expect("outcome lock") {
            Some(Ok((_, body))) => GString::from(body),
            _ => GString::new(),
        }
    }

    /// Why no answer came (unreachable, timed out, or a certificate that does not match the
    /// pinned hash), "" otherwise.
    #[func]
    fn error(&self) -> GString {
        match &*self.outcome.lock().expect("outcome lock") {
            Some(Err(e)) => GString::from(e),
            _ => GString::new(),
        }
    }
}
