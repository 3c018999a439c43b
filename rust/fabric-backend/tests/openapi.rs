//! The served OpenAPI document against the real server: every documented operation exists,
//! answers with a documented status, and its JSON bodies match the documented schemas, both on
//! a happy path through the whole API and when called with no credentials and no body.

mod common;

use std::collections::BTreeSet;

use common::Backend;
use fabric_backend::client::Client;
use hyper::Method;
use serde_json::{Value, json};

/// Minimal JSON Schema check for the subset the document uses.
fn validate(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return validate(doc, &doc["components"]["schemas"][name], v, at);
    }
    if let Some(ty) = schema.get("type") {
        let types: Vec<&str> = match ty {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => return Err(format!("{at}: bad type in schema")),
        };
        let ok = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => false,
        });
        if !ok {
            return Err(format!("{at}: {v} is not {types:?}"));
        }
    }
    if let Some(e) = schema["enum"].as_array()
        && !e.contains(v)
    {
        return Err(format!("{at}: {v} not in {e:?}"));
    }
    if let (Some(min), Some(n)) = (schema["minimum"].as_i64(), v.as_i64())
        && n < min
    {
        return Err(format!("{at}: {n} < {min}"));
    }
    if let (Some(max), Some(n)) = (schema["maximum"].as_i64(), v.as_i64())
        && n > max
    {
        return Err(format!("{at}: {n} > {max}"));
    }
    if schema["format"] == "uuid"
        && let Some(s) = v.as_str()
    {
        uuid::Uuid::parse_str(s).map_err(|_| format!("{at}: {s} is not a uuid"))?;
    }
    if let Some(obj) = v.as_object() {
        let props = schema["properties"].as_object();
        for req in schema["required"].as_array().into_iter().flatten() {
            let req = req.as_str().unwrap();
            if !obj.contains_key(req) {
                return Err(format!("{at}: missing required {req}"));
            }
        }
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(doc, s, val, &format!("{at}.{k}"))?,
                None if schema["additionalProperties"] == false => {
                    return Err(format!("{at}: undocumented property {k}"));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            validate(doc, items, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

struct Checker {
    doc: Value,
    client: Client,
    seen: BTreeSet<String>,
}

impl Checker {
    /// Calls `op` (by operationId) with `path` filled in, checks the status is documented and
    /// the JSON body matches, and returns the body.
    async fn call(
        &mut self,
        op: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
        expect: u16,
    ) -> Value {
        let (ct, bytes) = match body {
            Some(b) => (Some("application/json"), b.to_string().into_bytes()),
            None => (None, vec![]),
        };
        self.call_bytes(op, path, bearer, ct, bytes, expect).await
    }

    /// [`Checker::call`] with a body of any content type.
    async fn call_bytes(
        &mut self,
        op: &str,
        path: &str,
        bearer: Option<&str>,
        ct: Option<&str>,
        bytes: Vec<u8>,
        expect: u16,
    ) -> Value {
        let (tmpl, method, operation) = self.find(op);
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = self.client.raw(m, path, bearer, ct, bytes).await.unwrap();
        let status = r.status.as_u16();
        let json = r.json();
        assert_eq!(status, expect, "{op} {path}: body {json}");
        let documented = &operation["responses"][status.to_string()];
        assert!(
            documented.is_object(),
            "{op} ({method} {tmpl}) returned undocumented {status}: {json}"
        );
        if let Some(schema) = documented["content"]["application/json"].get("schema") {
            validate(&self.doc, schema, &json, op)
                .unwrap_or_else(|e| panic!("{op} {status} body does not match schema: {e}"));
        }
        assert!(
            !matches!(
                json["error"]["code"].as_str(),
                Some("not_found" | "method_not_allowed")
            ),
            "{op}: documented route missing on the server"
        );
        self.seen.insert(op.to_owned());
        json
    }

    fn find(&self, op: &str) -> (String, String, Value) {
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                if operation["operationId"] == op {
                    return (path.clone(), method.clone(), operation.clone());
                }
            }
        }
        panic!("operationId {op} not in document");
    }

    fn all_operations(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for item in self.doc["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                if let Some(id) = operation["operationId"].as_str() {
                    out.insert(id.to_owned());
                }
            }
        }
        out
    }
}

#[tokio::test]
async fn served_document_matches_the_real_routes() {
    let assets =
        std::env::temp_dir().join(format!("fabric-openapi-assets-{}", uuid::Uuid::new_v4()));
    let be = Backend::spawn(&["--assets-dir", assets.to_str().unwrap()]);
    let client = be.client();
    let served = client
        .raw(Method::GET, "/openapi.json", None, None, vec![])
        .await
        .unwrap();
    assert_eq!(served.status.as_u16(), 200, "served");
    let doc = served.json();
    let file: Value = serde_json::from_str(fabric_backend::routes::OPENAPI).unwrap();
    assert_eq!(doc, file, "served document is the embedded one");
    let mut ck = Checker {
        doc,
        client,
        seen: BTreeSet::new(),
    };

    // Happy path through every operation.
    ck.call("openapi", "/openapi.json", None, None, 200).await;
    ck.call("health", "/healthz", None, None, 200).await;
    let acct = ck
        .call(
            "createAccount",
            "/accounts",
            None,
            Some(json!({"name": "walker"})),
            201,
        )
        .await;
    let key = acct["api_key"].as_str().unwrap().to_owned();
    let reg = ck
        .call(
            "registerShard",
            "/shards",
            Some(&key),
            Some(
                json!({"port": 7443, "map": "m", "name": "n", "cert_hash": "c",
                        "public": false, "max_users": 8, "asset_index_url": "http://a/i"}),
            ),
            201,
        )
        .await;
    let id = reg["id"].as_str().unwrap().to_owned();
    let secret = reg["shard_secret"].as_str().unwrap().to_owned();
    let shard_path = format!("/shards/{id}");
    let list = ck
        .call("listShards", "/shards", Some(&key), None, 200)
        .await;
    assert_eq!(list["shards"].as_array().map(Vec::len), Some(1), "listed");
    ck.call("getShard", &shard_path, Some(&key), None, 200)
        .await;
    ck.call(
        "heartbeat",
        &shard_path,
        Some(&secret),
        Some(json!({"current_users": 2, "asset_index_url": null})),
        200,
    )
    .await;
    ck.call("joinKeys", "/keys/join", None, None, 200).await;
    let token = ck
        .call(
            "issueJoinToken",
            "/tokens/join",
            Some(&key),
            Some(json!({"zone_id": id})),
            200,
        )
        .await;
    ck.call(
        "verifyJoinToken",
        "/tokens/join/verify",
        None,
        Some(json!({"token": token["token"], "zone_id": id})),
        200,
    )
    .await;
    let tuple = json!({"object": format!("zone:{id}"), "relation": "joiner", "subject": "user:*"});
    ck.call(
        "addTuple",
        "/relationships",
        Some(&key),
        Some(tuple.clone()),
        200,
    )
    .await;
    ck.call(
        "listTuples",
        &format!("/relationships?object=zone:{id}"),
        Some(&key),
        None,
        200,
    )
    .await;
    ck.call(
        "removeTuple",
        "/relationships",
        Some(&key),
        Some(tuple),
        200,
    )
    .await;
    ck.call(
        "check",
        "/check",
        Some(&key),
        Some(json!({"permission": "join", "object": format!("zone:{id}")})),
        200,
    )
    .await;
    ck.call("websocket", "/ws", None, None, 400).await;
    let member = json!({"port": 7443, "map": "m", "name": "z0", "cert_hash": "c",
        "fabric": {"name": "f", "zone": 0, "zones": 2, "link_port": 7500, "link_cert_hash": "l",
                   "link_public_key": fabric_auth::keys::public_key_to_b64(
                       &ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key())}});
    let reg0 = ck
        .call("registerShard", "/shards", Some(&key), Some(member), 201)
        .await;
    assert!(
        reg0["link"]["credential"].is_string(),
        "a link credential: {reg0}"
    );
    let members = ck
        .call("fabricMembers", "/fabrics/f/members", Some(&key), None, 200)
        .await;
    assert_eq!(members["members"][0]["link_address"], "127.0.0.1:7500");
    let renewal = json!({"fabric": "f", "zone": 0, "link_public_key": fabric_auth::keys::public_key_to_b64(
        &ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key())});
    let renewed = ck
        .call(
            "renewLinkCredential",
            &format!("/shards/{}/link", reg0["id"].as_str().unwrap()),
            reg0["shard_secret"].as_str(),
            Some(renewal),
            200,
        )
        .await;
    assert_eq!(
        renewed["issuer_key"], reg0["link"]["issuer_key"],
        "no rotation: the same key signs"
    );
    ck.call("deleteShard", &shard_path, Some(&secret), None, 204)
        .await;
    // Assets: claim the map, upload, list, then read the index and a chunk it names.
    let claim = json!({"object": "map:m", "relation": "owner", "subject": format!("user:{}", acct["account_id"].as_str().unwrap())});
    ck.call(
        "addTuple",
        "/relationships",
        Some(&key),
        Some(claim.clone()),
        200,
    )
    .await;
    // The map's last owner cannot be removed.
    ck.call(
        "removeTuple",
        "/relationships",
        Some(&key),
        Some(claim),
        409,
    )
    .await;
    let baked = ck
        .call_bytes(
            "uploadAsset",
            "/maps/m/assets/tree.glb",
            Some(&key),
            Some("application/octet-stream"),
            vec![7u8; 100_000],
            201,
        )
        .await;
    ck.call("listAssets", "/maps/m/assets", Some(&key), None, 200)
        .await;
    let index_url = baked["asset"]["baked_url"].as_str().unwrap().to_owned();
    ck.call("assetIndex", &index_url, None, None, 200).await;
    let first_chunk = {
        let bytes = ck
            .client
            .raw(Method::GET, &index_url, None, None, vec![])
            .await
            .unwrap()
            .body;
        fabric_assets::Index::decode(&bytes).unwrap().chunks[0]
            .id
            .to_hex()
    };
    ck.call(
        "assetChunk",
        &format!("/assets/chunks/{first_chunk}"),
        None,
        None,
        200,
    )
    .await;
    let room = serde_json::json!({"format": 1, "entities": [{"id": 1}]});
    ck.call("saveRoom", "/rooms/hall/save", Some(&key), Some(room), 200)
        .await;
    ck.call("roomState", "/rooms/hall/state", Some(&key), None, 200)
        .await;
    // The metrics count what just happened: one sign-up, one heartbeat, requests by route
    // template (never by id).
    ck.call("metrics", "/metrics", None, None, 200).await;
    let metrics = ck
        .client
        .raw(Method::GET, "/metrics", None, None, vec![])
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&metrics.body);
    for line in [
        "fabric_backend_signups_total 1",
        "fabric_backend_heartbeats_total 1",
        "fabric_backend_requests_total{route=\"/shards/{id}\",method=\"PUT\",status=\"200\"} 1",
        "fabric_backend_requests_total{route=\"/accounts\",method=\"POST\",status=\"201\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} in /metrics:\n{text}"
        );
    }
    assert!(
        text.contains("fabric_backend_request_seconds_bucket{le="),
        "handling time histogram:\n{text}"
    );
    assert!(!text.contains(&id), "no shard id in a label");
    assert_eq!(
        ck.seen,
        ck.all_operations(),
        "every documented operation exercised"
    );

    // No credentials, no body: each answer must be a documented error. Body extraction
    // precedes the credential check, so operations with a body answer 415 first.
    let unknown = "/shards/00000000-0000-4000-8000-000000000000";
    for (op, path, expect) in [
        ("createAccount", "/accounts", 415),
        ("registerShard", "/shards", 415),
        ("getShard", unknown, 404),
        ("heartbeat", unknown, 415),
        ("deleteShard", unknown, 401),
        ("issueJoinToken", "/tokens/join", 415),
        ("verifyJoinToken", "/tokens/join/verify", 415),
        ("listTuples", "/relationships?object=group:g", 401),
        ("addTuple", "/relationships", 415),
        ("removeTuple", "/relationships", 415),
        ("check", "/check", 415),
        ("uploadAsset", "/maps/m/assets/x", 401),
        ("listAssets", "/maps/m/assets", 401),
        ("saveRoom", "/rooms/r/save", 415),
        ("roomState", "/rooms/r/state", 401),
    ] {
        ck.call(op, path, None, None, expect).await;
    }
    drop(ck);
    drop(be);
    let _ = std::fs::remove_dir_all(&assets);
}
