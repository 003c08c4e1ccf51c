//! The resource server: JWT validation against a JWKS (the negative matrix, key rotation)
//! and the HTTP gateway's 401 / 403 challenges, protected-resource metadata, scope-filtered
//! tools/list, and the audit record of every refusal.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use base64::Engine as _;
use idgw_gateway::access::Access;
use idgw_gateway::actions::Actions;
use idgw_gateway::actions::policy::PolicyConfig;
use idgw_gateway::audit::{self, AuditLog};
use idgw_gateway::auth::http::Guard;
use idgw_gateway::auth::{AuthConfig, TokenError, Validator};
use idgw_gateway::okta::{Okta, OktaConfig};
use idgw_gateway::{Gateway, StoreReader, server};
use idgw_pipeline::PipelineConfig;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const AUDIENCE: &str = "api://mcp";

struct Key {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
    public_der: Vec<u8>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn key(kid: &str) -> Key {
    let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let public = private.to_public_key();
    Key {
        kid: kid.into(),
        encoding: EncodingKey::from_rsa_der(private.to_pkcs1_der().unwrap().as_bytes()),
        jwk: json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
                    "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be())}),
        public_der: public.to_pkcs1_der().unwrap().as_bytes().to_vec(),
    }
}

/// A minimal issuer: metadata and a JWKS whose keys the test can change.
struct Issuer {
    url: String,
    keys: Arc<RwLock<Vec<Value>>>,
}

async fn issuer() -> Issuer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let keys: Arc<RwLock<Vec<Value>>> = Arc::default();
    let meta = json!({"issuer": url, "jwks_uri": format!("{url}/keys"), "token_endpoint": format!("{url}/token")});
    let app =
        axum::Router::new()
            .route(
                "/keys",
                get(|State(keys): State<Arc<RwLock<Vec<Value>>>>| async move {
                    Json(json!({"keys": *keys.read().unwrap()}))
                }),
            )
            .route(
                "/.well-known/oauth-authorization-server",
                get(move || {
                    let meta = meta.clone();
                    async move { Json(meta) }
                }),
            )
            .with_state(Arc::clone(&keys));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Issuer { url, keys }
}

fn claims(iss: &str, scopes: &[&str]) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"ver": 1, "jti": "AT.test", "iss": iss, "aud": AUDIENCE, "iat": now, "exp": now + 600,
           "cid": "0oatestclient", "uid": "00utest", "scp": scopes, "sub": "analyst@example.com"})
}

fn sign(key: &Key, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&h, claims, &key.encoding).unwrap()
}

fn config(iss: &Issuer) -> AuthConfig {
    AuthConfig {
        issuer: Some(iss.url.clone()),
        jwks_min_refresh_s: 0,
        leeway_s: 30,
        ..AuthConfig::default()
    }
}

type Expect = fn(&TokenError) -> bool;

/// The negative matrix: tokens wrong in one way each, and the refusal each must get.
fn bad_tokens(iss: &Issuer, k1: &Key) -> Vec<(&'static str, String, Expect)> {
    let good = claims(&iss.url, &["mcp:logs:read"]);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        sign(k1, &c)
    };
    let now = chrono::Utc::now().timestamp();
    // alg none: the allow-list has no name for it.
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#),
        b64(good.to_string().as_bytes())
    );
    // HS256 signed with the RSA public key (the classic confusion).
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("k1".into());
    let confused = jsonwebtoken::encode(&h, &good, &EncodingKey::from_secret(&k1.public_der)).unwrap();
    // A tampered payload: the scopes raised after signing.
    let real = sign(k1, &good);
    let parts: Vec<&str> = real.split('.').collect();
    let raised = b64(claims(&iss.url, &["mcp:user:write"]).to_string().as_bytes());
    let tampered = format!("{}.{raised}.{}", parts[0], parts[2]);
    vec![
        ("expired", with(&|c| c["exp"] = json!(now - 120)), |e| {
            *e == TokenError::Expired
        }),
        ("not yet valid", with(&|c| c["nbf"] = json!(now + 600)), |e| {
            *e == TokenError::NotYetValid
        }),
        ("issued in the future", with(&|c| c["iat"] = json!(now + 600)), |e| {
            *e == TokenError::NotYetValid
        }),
        (
            "wrong issuer",
            with(&|c| c["iss"] = json!("https://evil.example")),
            |e| *e == TokenError::Issuer,
        ),
        ("wrong audience", with(&|c| c["aud"] = json!("api://other")), |e| {
            *e == TokenError::Audience
        }),
        (
            "no subject",
            with(&|c| {
                c.as_object_mut().unwrap().remove("sub");
            }),
            |e| *e == TokenError::Claim("sub is missing".into()),
        ),
        ("unknown kid", sign(&key("k-unknown"), &good), |e| {
            *e == TokenError::UnknownKey("k-unknown".into())
        }),
        ("alg none", none, |e| matches!(e, TokenError::Malformed(_))),
        ("HS256 with the RSA public key", confused, |e| {
            matches!(e, TokenError::Algorithm(_))
        }),
        ("tampered payload", tampered, |e| *e == TokenError::Signature),
        ("not a JWT", "not-a-jwt".into(), |e| {
            matches!(e, TokenError::Malformed(_))
        }),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_refused_for_every_reason_in_the_matrix() {
    let iss = issuer().await;
    let k1 = key("k1");
    iss.keys.write().unwrap().push(k1.jwk.clone());
    let meta = idgw_gateway::auth::discover(&config(&iss)).await.unwrap();
    let v = Validator::new(&config(&iss), &meta.issuer, &meta.jwks_uri).unwrap();
    let good = claims(&iss.url, &["mcp:logs:read"]);
    let p = v.validate(&sign(&k1, &good)).await.unwrap();
    assert_eq!(p.subject, "analyst@example.com");
    assert_eq!(p.scopes, vec!["mcp:logs:read"]);
    assert_eq!(p.client_id.as_deref(), Some("0oatestclient"));

    for (name, token, expected) in bad_tokens(&iss, &k1) {
        let e = v.validate(&token).await.unwrap_err();
        assert!(expected(&e), "{name}: {e:?}");
    }

    // Key rotation: a token under a newly published key validates after one refetch, and
    // the old key keeps working while it is still published.
    let k2 = key("k2");
    iss.keys.write().unwrap().push(k2.jwk.clone());
    assert!(v.validate(&sign(&k2, &good)).await.is_ok());
    assert!(v.validate(&sign(&k1, &good)).await.is_ok());
    iss.keys.write().unwrap().remove(0);
    assert!(v.validate(&sign(&k2, &good)).await.is_ok());
}

/// One JSON-RPC POST to `/mcp`; the status, headers and the JSON body (plain or the first
/// SSE `data:` line).
async fn post(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    session: Option<&str>,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = http
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(s) = session {
        req = req
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-11-25");
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|_| {
        // SSE: the first `data:` line that is a JSON-RPC message (a priming event may
        // come first with an empty data line).
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .find_map(|d| {
                serde_json::from_str::<Value>(d.trim())
                    .ok()
                    .filter(|v| v.get("jsonrpc").is_some())
            })
            .unwrap_or_else(|| json!({"unparsed": text}))
    });
    (status, headers, json)
}

fn golden() -> std::path::PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../pipeline/tests/golden/impossible_travel/events.ndjson.gz")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_gateway_challenges_filters_and_audits() {
    let iss = issuer().await;
    let k1 = key("k1");
    iss.keys.write().unwrap().push(k1.jwk.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    idgw_pipeline::replay(
        &[idgw_pipeline::source::file::Input::Path(golden())],
        &idgw_pipeline::Store::open(&store).unwrap(),
        &PipelineConfig::default(),
        &mut |_| {},
    )
    .unwrap();
    let reader = Arc::new(
        StoreReader::open(store.clone(), &PipelineConfig::default(), Duration::from_secs(30))
            .await
            .unwrap(),
    );
    let audit_dir = dir.path().join("audit");
    let log = Arc::new(AuditLog::open(&audit_dir).unwrap());
    let approvals = Arc::new(idgw_gateway::approvals::Approvals::new(Arc::clone(&log), false));
    let actions = Arc::new(
        Actions::new(
            Okta::new(OktaConfig::default()).unwrap(),
            Arc::clone(&log),
            PolicyConfig::default(),
            Arc::clone(&reader),
            Arc::clone(&approvals),
        )
        .unwrap(),
    );
    let cfg = config(&iss);
    let meta = idgw_gateway::auth::discover(&cfg).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let resource = format!("http://{addr}/mcp");
    let guard = Guard {
        validator: Arc::new(Validator::new(&cfg, &meta.issuer, &meta.jwks_uri).unwrap()),
        metadata_url: idgw_gateway::auth::http::metadata_url(&resource).unwrap(),
        resource: resource.clone(),
        audit: Arc::clone(&log),
        refusals: Arc::default(),
    };
    let shutdown = CancellationToken::new();
    let signin = idgw_gateway::approvals::web::SignIn {
        authorization_endpoint: format!("{}/v1/authorize", meta.issuer),
        token_endpoint: format!("{}/v1/token", meta.issuer),
        client_id: "0oa1approvals".into(),
        client_secret: None,
    };
    let web = Arc::new(
        idgw_gateway::approvals::web::ApprovalWeb::new(approvals, Some(Arc::clone(&guard.validator)), Ok(signin))
            .unwrap(),
    );
    let gateway = Gateway::new(Arc::clone(&reader), Arc::clone(&actions), Access::Bearer);
    // Without a guard (nobody authenticated) the library itself refuses any address but
    // loopback, whoever embeds it.
    let open = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let dev_web = Arc::new(
        idgw_gateway::approvals::web::ApprovalWeb::new(
            Arc::new(idgw_gateway::approvals::Approvals::new(Arc::clone(&log), true)),
            None,
            Err("dev".into()),
        )
        .unwrap(),
    );
    let refused = server::serve_http(
        Gateway::new(Arc::clone(&reader), Arc::clone(&actions), Access::DevNoAuth),
        open,
        Vec::new(),
        Vec::new(),
        None,
        Arc::clone(&dev_web),
        CancellationToken::new(),
    )
    .await;
    assert!(
        matches!(refused, Err(server::ServeError::NotLoopback(_))),
        "{refused:?}"
    );
    let open = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let refused = server::serve_approvals(open, dev_web, CancellationToken::new()).await;
    assert!(
        matches!(refused, Err(server::ServeError::NotLoopback(_))),
        "{refused:?}"
    );
    let serving = tokio::spawn(server::serve_http(
        gateway,
        listener,
        server::DEFAULT_HOSTS.map(String::from).to_vec(),
        server::DEFAULT_ORIGINS.map(String::from).to_vec(),
        Some((guard, meta.issuer.clone())),
        web,
        shutdown.clone(),
    ));
    let http = reqwest::Client::new();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "auth-test", "version": "1"}}});

    // No token: 401 pointing at the metadata, which names the issuer.
    let (status, headers, _) = post(&http, &resource, None, None, init.clone()).await;
    assert_eq!(status, 401);
    let www = headers["www-authenticate"].to_str().unwrap().to_owned();
    assert!(www.starts_with("Bearer resource_metadata=\""), "{www}");
    let metadata_url = www.split('"').nth(1).unwrap();
    let doc: Value = http.get(metadata_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["resource"], resource.as_str());
    assert_eq!(doc["authorization_servers"][0], iss.url.as_str());

    // A bad token: 401 invalid_token.
    let mut expired = claims(&iss.url, &["mcp:logs:read"]);
    expired["exp"] = json!(chrono::Utc::now().timestamp() - 300);
    let (status, headers, _) = post(&http, &resource, Some(&sign(&k1, &expired)), None, init.clone()).await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );

    // The whole matrix over HTTP: each defect is a 401 invalid_token, and audited.
    let matrix = bad_tokens(&iss, &k1);
    for (name, token, _) in &matrix {
        let (status, headers, _) = post(&http, &resource, Some(token), None, init.clone()).await;
        assert_eq!(status, 401, "{name}");
        let www = headers["www-authenticate"].to_str().unwrap();
        assert!(
            www.contains("error=\"invalid_token\"") && www.contains("resource_metadata="),
            "{name}: {www}"
        );
    }

    // A reader's token: initialize, and tools/list shows the read tools only.
    let reader_token = sign(&k1, &claims(&iss.url, &["mcp:logs:read", "mcp:user:read:full"]));
    let (status, headers, _) = post(&http, &resource, Some(&reader_token), None, init.clone()).await;
    assert_eq!(status, 200);
    let session = headers["mcp-session-id"].to_str().unwrap().to_owned();
    let (status, _, _) = post(
        &http,
        &resource,
        Some(&reader_token),
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert!(status == 202 || status == 200, "{status}");
    let (status, _, listed) = post(
        &http,
        &resource,
        Some(&reader_token),
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    assert_eq!(status, 200);
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"list_alerts") && names.contains(&"analyze_identity_state"),
        "{names:?}"
    );
    assert!(
        !names.contains(&"suspend_user") && !names.contains(&"query_sql"),
        "{names:?}"
    );
    assert!(!names.contains(&"initiate_device_auth"), "device sign-in is for stdio");

    // A tool outside the token's scopes: 403 insufficient_scope naming the scope.
    let (status, headers, _) = post(
        &http,
        &resource,
        Some(&reader_token),
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "suspend_user",
               "arguments": {"user_login": "a@example.com", "reasoning": "x", "evidence": []}}}),
    )
    .await;
    assert_eq!(status, 403);
    let www = headers["www-authenticate"].to_str().unwrap();
    assert!(
        www.contains("error=\"insufficient_scope\"") && www.contains("scope=\"mcp:user:write\""),
        "{www}"
    );

    // An allowed call works.
    let (status, _, called) = post(
        &http,
        &resource,
        Some(&reader_token),
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "list_alerts", "arguments": {"limit": 1}}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_ne!(called["result"]["isError"], json!(true), "{called}");

    // Every refusal and the allowed call are on record, attributed where a token was valid.
    shutdown.cancel();
    let _ = serving.await;
    let records = log.read(|_| true).unwrap();
    let denied: Vec<_> = records.iter().filter(|r| r.status == "denied").collect();
    assert!(
        denied.iter().any(|r| r.error.as_deref() == Some("no bearer token")),
        "{denied:?}"
    );
    assert!(
        denied
            .iter()
            .any(|r| r.error.as_deref().unwrap_or("").contains("token expired"))
    );
    assert!(denied.iter().any(|r| r.action == "suspend_user"
        && r.principal.as_deref() == Some("analyst@example.com")
        && r.error.as_deref().unwrap_or("").contains("insufficient_scope")));
    assert!(
        records
            .iter()
            .any(|r| r.action == "list_alerts" && r.status == "success")
    );
    assert!(audit::verify(&audit_dir).unwrap().ok());
}
