//! The zone's view of the registry's signing keys across a rotation: the keys `GET /keys/join`
//! lists (the current one first, replaced ones until they retire), read at registration and
//! after every accepted heartbeat, and the renewal of the zone's link credential
//! (`POST /shards/{id}/link`) once the key that signed it is no longer the current one.
//!
//! A rotation therefore reaches a zone within one heartbeat: it trusts the new key for join
//! tokens and neighbours' link credentials from then on, and holds a credential signed by the
//! new key before the old one retires (the backend's overlap must be longer than a heartbeat).

use std::time::Duration;

use serde_json::{Value, json};

use crate::http::{self, Endpoint};
use crate::registry::{FabricMembership, LinkGrant, describe};

const TIMEOUT: Duration = Duration::from_secs(5);

/// The keys the registry lists: public keys (base64url), the current (signing) one first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublishedKeys {
    /// Every key valid now, the current one first.
    pub keys: Vec<String>,
}

impl PublishedKeys {
    /// The key that signs now.
    pub fn current(&self) -> &str {
        &self.keys[0]
    }
}

/// `GET /keys/join`: at least one key, the current one first (a registry from before rotation
/// lists one key, which is then the current one).
pub(crate) async fn fetch(backend: &Endpoint) -> Result<PublishedKeys, String> {
    let r = http::request_to(backend, "GET", "/keys/join", None, None, TIMEOUT)
        .await
        .map_err(|e| format!("cannot fetch the join keys: {e}"))?;
    if r.status != 200 {
        return Err(describe("fetching the join keys", &r));
    }
    let listed = r.body["keys"].as_array().cloned().unwrap_or_default();
    let key = |k: &Value| k["public_key"].as_str().map(str::to_owned);
    // The current key first, whatever order the registry answers in.
    let mut keys: Vec<String> = listed
        .iter()
        .filter(|k| k["current"].as_bool() == Some(true))
        .filter_map(key)
        .collect();
    keys.extend(
        listed
            .iter()
            .filter(|k| k["current"].as_bool() != Some(true))
            .filter_map(key),
    );
    if keys.is_empty() {
        return Err("the registry published no join keys".into());
    }
    Ok(PublishedKeys { keys })
}

/// The keys a zone trusts for its neighbours' link credentials: its join keys (pinned or
/// published) and the key that signed its own credential.
pub(crate) fn trusted(join_keys: &[String], issuer_key: &str) -> Vec<String> {
    let mut keys = join_keys.to_vec();
    if !keys.iter().any(|k| k == issuer_key) {
        keys.push(issuer_key.to_owned());
    }
    keys
}

/// `POST /shards/{id}/link`: a credential for `fabric`'s membership signed by the current key.
pub(crate) async fn renew(
    backend: &Endpoint,
    shard: &str,
    secret: &str,
    fabric: &FabricMembership,
    join_keys: &[String],
) -> Result<LinkGrant, String> {
    let body = json!({"fabric": fabric.name, "zone": fabric.zone,
        "link_public_key": fabric.link_public_key});
    let r = http::request_to(
        backend,
        "POST",
        &format!("/shards/{shard}/link"),
        Some(secret),
        Some(&body),
        TIMEOUT,
    )
    .await
    .map_err(|e| format!("cannot renew the link credential: {e}"))?;
    if r.status != 200 {
        return Err(describe("renewing the link credential", &r));
    }
    grant_from(&r.body, join_keys).ok_or_else(|| "link renewal reply without a credential".into())
}

/// A [`LinkGrant`] from the registry's `link` JSON.
pub(crate) fn grant_from(link: &Value, join_keys: &[String]) -> Option<LinkGrant> {
    let credential = link["credential"].as_str()?;
    let issuer_key = link["issuer_key"].as_str()?;
    Some(LinkGrant {
        credential: credential.to_owned(),
        issuer_key: issuer_key.to_owned(),
        expires_at: link["expires_at"].as_u64()?,
        trusted_keys: trusted(join_keys, issuer_key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grant_trusts_the_join_keys_and_its_own_issuer_once() {
        let link = json!({"credential": "c", "issuer_key": "B", "expires_at": 5});
        let g = grant_from(&link, &["A".into(), "B".into()]).unwrap();
        assert_eq!(g.trusted_keys, ["A", "B"], "B not repeated");
        let g = grant_from(&link, &["A".into()]).unwrap();
        assert_eq!(g.trusted_keys, ["A", "B"], "the issuer is added");
        assert_eq!(
            grant_from(&json!({"credential": "c"}), &[]),
            None,
            "incomplete"
        );
    }
}
