//! Benchmark fixtures: realistic Okta events of about 2 KB, made deterministically from an
//! index, so benchmarks need no checked-in data. (The labelled synthetic tenant for
//! detection benchmarks is the testbed's `idgw generate`; these fixtures only need to be
//! shaped like real System Log output.)

/// The allocator settings of `idgw` (its own file, so there is one copy of them).
#[path = "../../src/allocator.rs"]
pub mod allocator;
pub mod suite;

use std::io::{self, Write};

const CITIES: [(&str, &str, &str, f64, f64); 6] = [
    ("Lisbon", "Lisbon", "Portugal", 38.72, -9.14),
    ("New York", "New York", "United States", 40.71, -74.0),
    ("Berlin", "Berlin", "Germany", 52.52, 13.40),
    ("Sao Paulo", "Sao Paulo", "Brazil", -23.55, -46.63),
    ("Tokyo", "Tokyo", "Japan", 35.68, 139.69),
    ("Sydney", "New South Wales", "Australia", -33.87, 151.21),
];

const TYPES: [(&str, &str, &str); 5] = [
    ("user.session.start", "User login to Okta", "SUCCESS"),
    ("policy.evaluate_sign_on", "Evaluation of sign-on policy", "ALLOW"),
    (
        "user.authentication.auth_via_mfa",
        "Authentication of user via MFA",
        "SUCCESS",
    ),
    ("user.authentication.sso", "User single sign on to app", "SUCCESS"),
    ("user.session.end", "User logout from Okta", "SUCCESS"),
];

/// The `i`-th synthetic event as one JSON line (no newline).
pub fn synthetic_event(i: u64) -> String {
    let user = i % 5000;
    let (city, state, country, lat, lon) = CITIES[(user % CITIES.len() as u64) as usize];
    let (event_type, message, result) = TYPES[(i % TYPES.len() as u64) as usize];
    let secs = i / 4;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let day = 1 + (secs / 86_400) % 28;
    let ip = format!("198.51.{}.{}", (user / 250) % 250, user % 250 + 1);
    format!(
        concat!(
            r#"{{"actor":{{"id":"00u{user:017}","type":"User","alternateId":"user{user}@example.com","displayName":"User {user}","detailEntry":null}},"#,
            r#""client":{{"userAgent":{{"rawUserAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/127.0.0.0 Safari/537.36","os":"Mac OS X","browser":"CHROME"}},"zone":"null","device":"Computer","id":null,"ipAddress":"{ip}","#,
            r#""geographicalContext":{{"city":"{city}","state":"{state}","country":"{country}","postalCode":"10013","geolocation":{{"lat":{lat},"lon":{lon}}}}}}},"#,
            r#""device":null,"authenticationContext":{{"authenticationProvider":null,"credentialProvider":null,"credentialType":null,"issuer":null,"interface":null,"authenticationStep":0,"rootSessionId":"idx{sess:022}","externalSessionId":"idx{sess:022}"}},"#,
            r#""displayMessage":"{message}","eventType":"{event_type}","outcome":{{"result":"{result}","reason":null}},"published":"2024-08-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z","#,
            r#""securityContext":{{"asNumber":394089,"asOrg":"example telecom","isp":"example telecom","domain":"example.net","isProxy":false}},"severity":"INFO","#,
            r#""debugContext":{{"debugData":{{"requestId":"ab609228fe84ce59cdcbfa690b{i:06x}","requestUri":"/idp/idx/identify","url":"/idp/idx/identify?","threatSuspected":"false","#,
            r#""behaviors":"{{New Geo-Location=NEGATIVE, New Device=NEGATIVE, New IP=NEGATIVE, New State=NEGATIVE, New Country=NEGATIVE, Velocity=NEGATIVE, New City=NEGATIVE}}","#,
            r#""risk":"{{level=LOW}}","dtHash":"2f1c1b5e9c0e4a1f8b7d6c5a4b3e2d1f0a9b8c7d6e5f4a3b2c1d{user:012x}","deviceFingerprint":"7a3c{user:028x}","#,
            r#""oktaUserAgentExtended":"okta-auth-js/7.0.1 okta-signin-widget-7.16.1"}}}},"legacyEventType":"core.user_auth.login_success","#,
            r#""transaction":{{"type":"WEB","id":"ab609228fe84ce59cdcbfa690b{i:06x}","detail":{{}}}},"uuid":"{a:08x}-{b:04x}-11ef-8478-2b7584bf8d5a","version":"0","#,
            r#""request":{{"ipChain":[{{"ip":"{ip}","geographicalContext":{{"city":"{city}","state":"{state}","country":"{country}","postalCode":"10013","geolocation":{{"lat":{lat},"lon":{lon}}}}},"version":"V4","source":null}}]}},"#,
            r#""target":[{{"id":"0oa{user:017}","type":"AppInstance","alternateId":"Okta Dashboard","displayName":"Okta Dashboard","detailEntry":null}}]}}"#
        ),
        user = user,
        ip = ip,
        city = city,
        state = state,
        country = country,
        lat = lat,
        lon = lon,
        sess = i / 5,
        message = message,
        event_type = event_type,
        result = result,
        day = day,
        h = h,
        m = m,
        s = s,
        ms = i % 1000,
        i = i,
        a = (i >> 16) as u32,
        b = (i & 0xffff) as u16,
    )
}

/// Writes events `0..n` as NDJSON.
pub fn write_ndjson(out: &mut impl Write, n: u64) -> io::Result<()> {
    for i in 0..n {
        out.write_all(synthetic_event(i).as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
