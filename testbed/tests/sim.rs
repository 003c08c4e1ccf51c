//! The Okta simulator over HTTP: conformance with reference.md (status codes, error bodies,
//! headers, pagination, the lifecycle state machine) and its fault switches.

use idgw_testbed::sim::{self, SimConfig};
use serde_json::{Value, json};

const TOKEN: &str = "test-token";

async fn start(config: SimConfig) -> sim::Running {
    let org = sim::build(SimConfig {
        api_token: TOKEN.into(),
        ..config
    })
    .unwrap();
    sim::serve("127.0.0.1:0", org).await.unwrap()
}

fn small() -> SimConfig {
    SimConfig {
        users: 40,
        history_days: 1,
        seed: 5,
        ..SimConfig::default()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get(url: &str) -> reqwest::Response {
    client()
        .get(url)
        .header("Authorization", format!("SSWS {TOKEN}"))
        .send()
        .await
        .unwrap()
}

fn links(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn next_link(resp: &reqwest::Response) -> Option<String> {
    links(resp)
        .into_iter()
        .find(|l| l.ends_with("rel=\"next\""))
        .map(|l| l[1..l.find('>').unwrap()].to_owned())
}

fn assert_okta_error(body: &Value, code: &str) {
    assert_eq!(body["errorCode"], code, "{body}");
    assert_eq!(body["errorLink"], code);
    assert!(body["errorSummary"].is_string());
    assert!(body["errorId"].as_str().unwrap().starts_with("oae"));
    assert!(body["errorCauses"].is_array());
}

#[tokio::test]
async fn auth_and_rate_limit_headers() {
    let s = start(SimConfig {
        logs_per_minute: 3,
        ..small()
    })
    .await;
    let url = format!("{}/api/v1/logs?limit=1", s.base_url());
    let anon = client().get(&url).send().await.unwrap();
    assert_eq!(anon.status(), 401);
    assert_okta_error(&anon.json().await.unwrap(), "E0000011");
    for remaining in [2, 1, 0] {
        let r = get(&url).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-rate-limit-limit"], "3");
        assert_eq!(r.headers()["x-rate-limit-remaining"], remaining.to_string().as_str());
        let reset: i64 = r.headers()["x-rate-limit-reset"].to_str().unwrap().parse().unwrap();
        assert!(reset > chrono::Utc::now().timestamp() && reset <= chrono::Utc::now().timestamp() + 60);
        assert!(r.headers().contains_key("x-okta-request-id"));
    }
    let limited = get(&url).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["x-rate-limit-remaining"], "0");
    assert_okta_error(&limited.json().await.unwrap(), "E0000047");
    // Another bucket is not affected.
    let user = get(&format!("{}/api/v1/users/nobody@example.com", s.base_url())).await;
    assert_eq!(user.status(), 404);
    s.stop().await;
}

#[tokio::test]
async fn polling_follows_next_links_to_every_event_once() {
    let s = start(small()).await;
    let total = s.sim.state.lock().unwrap().events.len();
    assert!(total > 200);
    let since = "2000-01-01T00:00:00.000Z";
    let first = get(&format!(
        "{}/api/v1/logs?limit=97&since={}",
        s.base_url(),
        chrono::Utc::now()
            .checked_sub_days(chrono::Days::new(3))
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    ))
    .await;
    assert_eq!(first.status(), 200);
    let mut seen = std::collections::HashSet::new();
    let mut next = next_link(&first);
    let mut page: Vec<Value> = first.json().await.unwrap();
    let mut empty_pages = 0;
    loop {
        for e in &page {
            assert!(
                seen.insert(e["uuid"].as_str().unwrap().to_owned()),
                "an event served twice"
            );
        }
        let url = next.clone().expect("a polling request always has a next link");
        assert!(!url.contains("since="), "next links carry the cursor, not since");
        let r = get(&url).await;
        next = next_link(&r);
        page = r.json().await.unwrap();
        if page.is_empty() {
            empty_pages += 1;
            if empty_pages == 2 {
                break;
            }
        }
    }
    assert_eq!(seen.len(), total, "polling serves the whole history exactly once");
    assert!(next.is_some(), "even an empty page links to the next");
    // New events appear behind the cursor.
    s.sim.state.lock().unwrap().append(
        json!({"uuid": "new-1", "published": chrono::Utc::now().to_rfc3339(), "eventType": "user.session.start"})
            .to_string(),
        chrono::Utc::now().timestamp_millis(),
    );
    let r = get(next.as_deref().unwrap()).await;
    let page: Vec<Value> = r.json().await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["uuid"], "new-1");
    let _ = since;
    s.stop().await;
}

#[tokio::test]
async fn bounded_queries_filter_and_end() {
    let s = start(small()).await;
    let now = chrono::Utc::now();
    let since = (now - chrono::Duration::days(3)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let until = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let filter = r#"eventType eq "user.session.start" and outcome.result eq "SUCCESS""#;
    let mut url = reqwest::Url::parse(&format!("{}/api/v1/logs", s.base_url())).unwrap();
    url.query_pairs_mut()
        .append_pair("since", &since)
        .append_pair("until", &until)
        .append_pair("filter", filter)
        .append_pair("limit", "50");
    let mut next = Some(url.to_string());
    let mut all = Vec::new();
    let mut pages = 0;
    while let Some(u) = next {
        let r = get(&u).await;
        assert_eq!(r.status(), 200);
        next = next_link(&r);
        let page: Vec<Value> = r.json().await.unwrap();
        all.extend(page);
        pages += 1;
        assert!(pages < 1000);
    }
    assert!(!all.is_empty());
    assert!(
        all.iter()
            .all(|e| e["eventType"] == "user.session.start" && e["outcome"]["result"] == "SUCCESS")
    );
    let published: Vec<&str> = all.iter().map(|e| e["published"].as_str().unwrap()).collect();
    assert!(
        published.windows(2).all(|w| w[0] <= w[1]),
        "bounded results are in published order"
    );
    // DESCENDING reverses.
    let mut d = url.clone();
    d.query_pairs_mut().append_pair("sortOrder", "DESCENDING");
    let page: Vec<Value> = get(d.as_str()).await.json().await.unwrap();
    assert_eq!(page[0]["uuid"], all.last().unwrap()["uuid"]);
    // Keyword search.
    let login = all[0]["actor"]["alternateId"].as_str().unwrap().to_owned();
    let mut k = reqwest::Url::parse(&format!("{}/api/v1/logs", s.base_url())).unwrap();
    k.query_pairs_mut()
        .append_pair("since", &since)
        .append_pair("until", &until)
        .append_pair("q", &login)
        .append_pair("limit", "1000");
    let page: Vec<Value> = get(k.as_str()).await.json().await.unwrap();
    assert!(!page.is_empty() && page.iter().all(|e| e.to_string().to_lowercase().contains(&login)));
    s.stop().await;
}

#[tokio::test]
async fn bad_queries_get_okta_errors() {
    let s = start(small()).await;
    let base = format!("{}/api/v1/logs", s.base_url());
    for (query, status, code) in [
        ("until=yesterday", 400, "E0000001"),
        ("limit=5000", 400, "E0000001"),
        ("since=2000-01-01T00:00:00Z", 400, "E0000053"),
        ("filter=published%20gt%20%222024%22", 400, "E0000053"),
        ("filter=display_message%20eqq%20%22x%22", 400, "E0000053"),
        (
            "filter=debugContext.debugData.requestUri%20co%20%22%2Fapi%22",
            400,
            "E0000031",
        ),
        ("after=1_1&since=2026-01-01T00:00:00Z", 400, "E0000001"),
    ] {
        let r = get(&format!("{base}?{query}")).await;
        assert_eq!(r.status().as_u16(), status, "{query}");
        assert_okta_error(&r.json().await.unwrap(), code);
    }
    let r = get(&format!("{}/api/v1/nothing", s.base_url())).await;
    assert_eq!(r.status(), 404);
    s.stop().await;
}

#[tokio::test]
async fn lifecycle_state_machine_and_its_log_events() {
    let s = start(small()).await;
    let base = s.base_url();
    let login = s.sim.tenant.users[3].login.clone();
    let id = s.sim.tenant.users[3].id.clone();
    let post = |path: String| async move {
        client()
            .post(path)
            .header("Authorization", format!("SSWS {TOKEN}"))
            .send()
            .await
            .unwrap()
    };
    let user = get(&format!("{base}/api/v1/users/{login}")).await;
    assert_eq!(user.status(), 200);
    assert!(user.headers().contains_key("etag"));
    let user: Value = user.json().await.unwrap();
    assert_eq!(user["id"], id.as_str());
    assert_eq!(user["status"], "ACTIVE");
    assert_eq!(user["profile"]["login"], login.as_str());

    let r = post(format!("{base}/api/v1/users/{id}/lifecycle/suspend")).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.bytes().await.unwrap().is_empty(),
        "suspend answers 200 with an empty body"
    );
    let again = post(format!("{base}/api/v1/users/{id}/lifecycle/suspend")).await;
    assert_eq!(again.status(), 400);
    let body: Value = again.json().await.unwrap();
    assert_okta_error(&body, "E0000001");
    assert!(
        body["errorCauses"][0]["errorSummary"]
            .as_str()
            .unwrap()
            .contains("not active")
    );
    let status: Value = get(&format!("{base}/api/v1/users/{id}")).await.json().await.unwrap();
    assert_eq!(status["status"], "SUSPENDED");
    assert_eq!(
        post(format!("{base}/api/v1/users/{id}/lifecycle/unsuspend"))
            .await
            .status(),
        200
    );
    assert_eq!(
        post(format!("{base}/api/v1/users/{id}/lifecycle/unsuspend"))
            .await
            .status(),
        400
    );

    let missing = post(format!("{base}/api/v1/users/{id}/lifecycle/reset_password")).await;
    assert_okta_error(&missing.json().await.unwrap(), "E0000028");
    let reset: Value = post(format!(
        "{base}/api/v1/users/{id}/lifecycle/reset_password?sendEmail=false"
    ))
    .await
    .json()
    .await
    .unwrap();
    assert!(reset["resetPasswordUrl"].as_str().unwrap().contains("/reset_password/"));
    let r = post(format!("{base}/api/v1/users/{id}/lifecycle/unlock")).await;
    assert_eq!(r.status(), 403, "unlock is not allowed from RECOVERY");
    assert_okta_error(&r.json().await.unwrap(), "E0000032");
    let expired: Value = post(format!("{base}/api/v1/users/{id}/lifecycle/expire_password"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        expired["status"], "PASSWORD_EXPIRED",
        "expire_password returns the user"
    );

    let cleared = client()
        .delete(format!("{base}/api/v1/users/{id}/sessions"))
        .header("Authorization", format!("SSWS {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 204);
    let nobody = post(format!("{base}/api/v1/users/00uNOPE/lifecycle/suspend")).await;
    assert_eq!(nobody.status(), 404);
    let body: Value = nobody.json().await.unwrap();
    assert_okta_error(&body, "E0000007");
    assert_eq!(body["errorSummary"], "Not found: Resource not found: 00uNOPE (User)");

    // Every action is in the System Log, by the API token's admin, on the user.
    let filter = format!("target.id eq \"{id}\" and eventType sw \"user.\"");
    let mut url = reqwest::Url::parse(&format!("{base}/api/v1/logs")).unwrap();
    url.query_pairs_mut()
        .append_pair("filter", &filter)
        .append_pair("limit", "1000");
    let events: Vec<Value> = get(url.as_str()).await.json().await.unwrap();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .filter(|t| {
            t.starts_with("user.lifecycle")
                || t.starts_with("user.account.reset")
                || t.starts_with("user.account.expire")
                || *t == "user.session.clear"
        })
        .collect();
    assert_eq!(
        types,
        [
            "user.lifecycle.suspend",
            "user.lifecycle.unsuspend",
            "user.account.reset_password",
            "user.account.expire_password",
            "user.session.clear"
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e["transaction"]["detail"]["requestApiTokenId"].is_string()
                || !e["eventType"].as_str().unwrap().starts_with("user.lifecycle"))
    );
    s.stop().await;
}

#[tokio::test]
async fn workflows_flows() {
    let s = start(small()).await;
    let base = s.base_url();
    let login = s.sim.tenant.users[5].login.clone();
    let flow = |alias: &str| format!("{base}/api/flo/{alias}/invoke");
    let payload = json!({"user_login": login, "reason": "MFA fatigue alert alt-1"});
    let unauth = client().post(flow("suspend_user")).json(&payload).send().await.unwrap();
    assert_eq!(unauth.status(), 401);
    let ok = client()
        .post(format!("{}?clientToken=sim-workflows-token", flow("suspend_user")))
        .json(&payload)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["status"], "suspended");
    let again = client()
        .post(flow("suspend_user"))
        .header("x-api-client-token", "sim-workflows-token")
        .json(&payload)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["okta"]["errorCode"], "E0000001");
    let read: Value = client()
        .post(flow("read_user"))
        .header("x-api-client-token", "sim-workflows-token")
        .json(&json!({"user_login": login}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["user"]["status"], "SUSPENDED");
    let notify = client()
        .post(flow("notify_user"))
        .header("x-api-client-token", "sim-workflows-token")
        .json(&json!({"user_login": login, "reason": "your account was suspended"}))
        .send()
        .await
        .unwrap();
    assert_eq!(notify.status(), 200);
    let outbox: Vec<Value> = client()
        .get(format!("{base}/sim/outbox"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        outbox
            .iter()
            .any(|m| m["to"] == login.as_str() && m["message"] == "your account was suspended")
    );
    let logs: Value = client()
        .post(flow("search_logs"))
        .header("x-api-client-token", "sim-workflows-token")
        .json(&json!({"filter": "eventType eq \"user.lifecycle.suspend\"", "limit": 5}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(logs["events"][0]["target"][0]["alternateId"], login.as_str());
    assert_eq!(client().post(flow("no_such_flow")).send().await.unwrap().status(), 404);
    s.stop().await;
}

#[tokio::test]
async fn fault_switches() {
    let s = start(small()).await;
    let base = s.base_url();
    let set = |f: Value| {
        let base = base.clone();
        async move {
            client()
                .post(format!("{base}/sim/faults"))
                .json(&f)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(set(json!({"burst_429": 2})).await, 200);
    let url = format!("{base}/api/v1/logs?limit=1");
    let r = get(&url).await;
    assert_eq!(r.status(), 429);
    // A burst stands for the concurrency limit: headers 0, reset an estimate just ahead.
    let h = |name: &str| r.headers()[name].to_str().unwrap().parse::<i64>().unwrap();
    assert_eq!((h("x-rate-limit-limit"), h("x-rate-limit-remaining")), (0, 0));
    assert!(h("x-rate-limit-reset") - chrono::Utc::now().timestamp() <= 2);
    assert_eq!(get(&url).await.status(), 429);
    assert_eq!(get(&url).await.status(), 200);
    set(json!({"burst_503": 1})).await;
    let r = get(&url).await;
    assert_eq!(r.status(), 503);
    assert_okta_error(&r.json().await.unwrap(), "E0000009");
    set(json!({"burst_drop": 1})).await;
    let dropped = client()
        .get(&url)
        .header("Authorization", format!("SSWS {TOKEN}"))
        .send()
        .await;
    let failed = match dropped {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(failed, "a dropped connection fails the request");
    set(json!({"latency_ms": 150})).await;
    let t = std::time::Instant::now();
    assert_eq!(get(&url).await.status(), 200);
    assert!(t.elapsed() >= std::time::Duration::from_millis(150));
    assert_eq!(
        client()
            .post(format!("{base}/sim/faults"))
            .json(&json!({"nonsense": 1}))
            .send()
            .await
            .unwrap()
            .status(),
        422
    );
    s.stop().await;
}

#[tokio::test]
async fn live_activity_keeps_coming() {
    let s = start(SimConfig {
        live_rate: 50.0,
        ..small()
    })
    .await;
    let before = s.sim.state.lock().unwrap().events.len();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let after = s.sim.state.lock().unwrap().events.len();
    assert!(after > before, "new activity is produced ({before} -> {after})");
    let last = s.sim.state.lock().unwrap().events.last().unwrap().value.clone();
    let published = chrono::DateTime::parse_from_rfc3339(last["published"].as_str().unwrap()).unwrap();
    assert!(
        (chrono::Utc::now() - published.with_timezone(&chrono::Utc))
            .num_seconds()
            .abs()
            < 60
    );
    s.stop().await;
}

#[derive(serde::Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    cid: String,
    uid: Option<String>,
    sub: String,
    scp: Vec<String>,
    ver: u32,
    jti: String,
}

#[tokio::test]
async fn device_grant_tokens_and_jwks() {
    let s = start(SimConfig {
        device_interval_s: 1,
        ..small()
    })
    .await;
    let base = s.base_url();
    let as_url = format!("{base}/oauth2/default");
    let meta: Value = client()
        .get(format!("{as_url}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], as_url.as_str());
    assert_eq!(
        meta["device_authorization_endpoint"],
        format!("{as_url}/v1/device/authorize").as_str()
    );
    assert!(
        meta["grant_types_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == "urn:ietf:params:oauth:grant-type:device_code")
    );

    let client_id = "0oa1simmcpclient0000";
    let no_scope = client()
        .post(format!("{as_url}/v1/device/authorize"))
        .form(&[("client_id", client_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(no_scope.status(), 400);
    assert_eq!(no_scope.json::<Value>().await.unwrap()["error"], "invalid_scope");
    let bad_client = client()
        .post(format!("{as_url}/v1/device/authorize"))
        .form(&[("client_id", "nope"), ("scope", "openid")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad_client.status(), 401);

    let auth: Value = client()
        .post(format!("{as_url}/v1/device/authorize"))
        .form(&[
            ("client_id", client_id),
            ("scope", "openid mcp:logs:read mcp:user:write offline_access"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let device_code = auth["device_code"].as_str().unwrap().to_owned();
    let user_code = auth["user_code"].as_str().unwrap().to_owned();
    assert_eq!(user_code.len(), 8);
    assert_eq!(auth["expires_in"], 600);
    assert!(
        auth["verification_uri_complete"]
            .as_str()
            .unwrap()
            .ends_with(&user_code)
    );
    let poll = || {
        let url = format!("{as_url}/v1/token");
        let device_code = device_code.clone();
        async move {
            client()
                .post(url)
                .form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("device_code", &device_code),
                    ("client_id", client_id),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let pending = poll().await;
    assert_eq!(pending.status(), 400);
    assert_eq!(pending.json::<Value>().await.unwrap()["error"], "authorization_pending");
    let fast = poll().await;
    assert_eq!(
        fast.json::<Value>().await.unwrap()["error"],
        "slow_down",
        "polling faster than the interval"
    );

    let login = s.sim.tenant.users[2].login.clone();
    let approved = client()
        .post(format!("{base}/sim/device/approve"))
        .json(&json!({"user_code": user_code, "user": login, "scopes": ["openid", "mcp:logs:read", "offline_access"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(6_100)).await;
    let token = poll().await;
    assert_eq!(token.status(), 200);
    let token: Value = token.json().await.unwrap();
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(
        token["scope"], "openid mcp:logs:read offline_access",
        "the scopes granted, not those asked"
    );
    assert!(
        token["refresh_token"].is_string(),
        "offline_access gives a refresh token"
    );
    let jwt = token["access_token"].as_str().unwrap();

    // Verify with the published JWKS, as a resource server would.
    let jwks: Value = client()
        .get(format!("{as_url}/v1/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let kid = header.kid.unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap();
    let key =
        jsonwebtoken::DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["api://mcp"]);
    validation.set_issuer(&[as_url.as_str()]);
    let claims = jsonwebtoken::decode::<Claims>(jwt, &key, &validation).unwrap().claims;
    assert_eq!(claims.iss, as_url);
    assert_eq!(claims.aud, "api://mcp");
    assert_eq!(claims.cid, client_id);
    assert_eq!(claims.sub, login);
    assert_eq!(claims.uid.as_deref(), Some(s.sim.tenant.users[2].id.as_str()));
    assert_eq!(claims.scp, ["openid", "mcp:logs:read", "offline_access"]);
    assert_eq!(claims.ver, 1);
    assert!(claims.jti.starts_with("AT."));
    // The code is single-use.
    let reused = poll().await;
    assert_eq!(reused.json::<Value>().await.unwrap()["error"], "invalid_grant");

    // Rotation publishes a second key; new tokens use it; the old key stays published.
    let rotated: Value = client()
        .post(format!("{base}/sim/keys/rotate"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwks: Value = client()
        .get(format!("{as_url}/v1/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(kids.contains(&kid.as_str()) && kids.contains(&rotated["kid"].as_str().unwrap()));

    // A denied grant.
    let auth: Value = client()
        .post(format!("{as_url}/v1/device/authorize"))
        .form(&[("client_id", client_id), ("scope", "openid")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    client()
        .post(format!("{base}/sim/device/deny"))
        .json(&json!({"user_code": auth["user_code"]}))
        .send()
        .await
        .unwrap();
    let denied = client()
        .post(format!("{as_url}/v1/token"))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", auth["device_code"].as_str().unwrap()),
            ("client_id", client_id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(denied.json::<Value>().await.unwrap()["error"], "access_denied");
    s.stop().await;
}

#[tokio::test]
async fn serves_a_given_log_and_its_users() {
    let now = chrono::Utc::now();
    let lines: Vec<String> = (0..5)
        .map(|i| {
            json!({
                "uuid": format!("99999999-0000-4000-8000-{i:012}"),
                "published": (now - chrono::Duration::minutes(10 - i)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "eventType": "user.session.start",
                "actor": {"id": format!("00ufile{i}"), "type": "User", "alternateId": format!("file{i}@example.com"), "displayName": "File User"},
                "outcome": {"result": "SUCCESS"}
            })
            .to_string()
        })
        .collect();
    let s = start(SimConfig {
        events: Some(lines),
        ..small()
    })
    .await;
    let page: Vec<Value> = get(&format!("{}/api/v1/logs?limit=100", s.base_url()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page.len(), 5, "only the given log is served");
    let user: Value = get(&format!("{}/api/v1/users/file3@example.com", s.base_url()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(user["id"], "00ufile3");
    assert_eq!(user["status"], "ACTIVE");
    s.stop().await;
}
