//! Accounts, login, sessions, throttling and the admin mutations.

use chrono::{DateTime, Duration, Utc};
use rkflow_e2e::{Gql, PASSWORD, PEOPLE, TestServer, for_each_backend, org};
use rkflow_store::accounts;
use rkflow_store::entity::audit_event;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use std::time::{Duration as StdDuration, Instant};

const ME: &str =
    "{ me { id email name roles { role commission { name } municipality { name } } } }";

const LOGIN: &str = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token expiresAt user { id email } } }";

const ADVANCE: &str = "mutation($to: DateTime!) { advanceClock(to: $to) }";

const SET_DISABLED: &str = "mutation($u: ID!, $d: Boolean!) { setUserDisabled(userId: $u, disabled: $d) { id email disabled } }";

const CREATE_USER: &str = "mutation($e: String!, $n: String!, $p: String!) { createUser(email: $e, name: $n, password: $p) { id email name } }";

const GRANT_ROLE: &str = "mutation($u: ID!, $r: Role!, $c: ID, $m: ID) { grantRole(userId: $u, role: $r, commissionId: $c, municipalityId: $m) { id role commission { name } municipality { name } } }";

const REVOKE_ROLE: &str = "mutation($g: ID!) { revokeRole(grantId: $g) }";

/// The instant the manual clock starts at in these tests.
fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2019-03-21T09:00:00+01:00")
        .expect("a valid time")
        .with_timezone(&Utc)
}

fn parse_time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().expect("a DateTime string"))
        .expect("an RFC 3339 time")
        .with_timezone(&Utc)
}

/// A login attempt, answered as it is (no assertion).
async fn try_login(server: &TestServer, client: Option<&str>, email: &str, password: &str) -> Gql {
    server
        .gql_from(None, client, LOGIN, json!({ "e": email, "p": password }))
        .await
}

/// Moves the manual clock as the given admin and returns the new time.
async fn advance(server: &TestServer, admin: &str, to: DateTime<Utc>) -> DateTime<Utc> {
    let answer = server
        .gql(Some(admin), ADVANCE, json!({ "to": to.to_rfc3339() }))
        .await;
    let now = parse_time(&answer.data()["advanceClock"]);
    assert_eq!(now, to, "{}", server.label);
    now
}

/// `me` with a token: the email on success, the answer otherwise.
async fn me_email(server: &TestServer, token: &str) -> Result<String, Gql> {
    let answer = server.gql(Some(token), ME, json!({})).await;
    if answer.body.get("errors").is_some() {
        return Err(answer);
    }
    Ok(answer.data()["me"]["email"]
        .as_str()
        .expect("me has an email")
        .to_string())
}

/// Asserts that a token no longer opens a session.
async fn assert_token_rejected(server: &TestServer, token: &str, why: &str) {
    let answer = server.gql(Some(token), ME, json!({})).await;
    assert_eq!(
        answer.code(),
        Some("UNAUTHENTICATED"),
        "{why} ({}): {}",
        server.label,
        answer.body
    );
    assert_eq!(answer.status, 401, "{why} ({})", server.label);
    assert!(
        answer.body["data"].is_null(),
        "{why}: no data may come back: {}",
        answer.body
    );
}

/// POSTs a `me` query with a raw Authorization header value.
async fn with_authorization(server: &TestServer, value: reqwest::header::HeaderValue) -> Gql {
    let response = server
        .http
        .post(format!("{}/graphql", server.base))
        .header(reqwest::header::AUTHORIZATION, value)
        .json(&json!({ "query": ME }))
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Gql { status, body }
}

fn median(mut samples: Vec<StdDuration>) -> StdDuration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Decodes unpadded standard base64 (the alphabet of PHC strings).
fn decode_b64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.trim_end_matches('=').bytes() {
        let value = ALPHABET
            .iter()
            .position(|&a| a == c)
            .unwrap_or_else(|| panic!("`{text}` is not base64")) as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    out
}

/// A stored argon2 hash, taken apart.
#[derive(Debug, PartialEq, Eq)]
struct Phc {
    algorithm: String,
    version: u32,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

fn parse_phc(phc: &str) -> Phc {
    // $argon2id$v=19$m=12288,t=3,p=1$<salt>$<hash>
    let parts: Vec<&str> = phc.split('$').collect();
    assert_eq!(parts.len(), 6, "not a PHC string with parameters: {phc}");
    assert_eq!(parts[0], "", "{phc}");
    let version = parts[2]
        .strip_prefix("v=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no version in {phc}"));
    let mut params = std::collections::BTreeMap::new();
    for pair in parts[3].split(',') {
        let (key, value) = pair.split_once('=').expect("key=value");
        params.insert(key, value.parse::<u32>().expect("a number"));
    }
    Phc {
        algorithm: parts[1].to_string(),
        version,
        memory_kib: params["m"],
        iterations: params["t"],
        parallelism: params["p"],
        salt: decode_b64(parts[4]),
        hash: decode_b64(parts[5]),
    }
}

/// The OWASP baseline the project promises: argon2id v19 reaching one of OWASP's settings
/// (47 MiB and 1 iteration, 19 MiB and 2, 12 MiB and 3, 9 MiB and 4, 7 MiB and 5), p ≥ 1, a
/// salt of at least 16 bytes.
fn assert_strong_hash(phc: &str, who: &str) -> Phc {
    let parsed = parse_phc(phc);
    assert_eq!(parsed.algorithm, "argon2id", "{who}: {phc}");
    assert_eq!(parsed.version, 19, "{who}: {phc}");
    let owasp = [
        (47_104, 1),
        (19_456, 2),
        (12_288, 3),
        (9_216, 4),
        (7_168, 5),
    ];
    assert!(
        owasp
            .iter()
            .any(|&(memory, iterations)| parsed.memory_kib >= memory
                && parsed.iterations >= iterations),
        "{who}: {phc}"
    );
    assert!(parsed.parallelism >= 1, "{who}: {phc}");
    assert!(parsed.salt.len() >= 16, "{who}: salt too short in {phc}");
    assert!(parsed.hash.len() >= 32, "{who}: output too short in {phc}");
    parsed
}

async fn stored_hash(server: &TestServer, email: &str) -> String {
    accounts::find_user_by_email(&server.db().conn, email)
        .await
        .expect("read app_user")
        .expect("the user exists")
        .password_hash
}

#[tokio::test]
async fn login_then_me() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let token = server.login("chair_b@fixture.test", PASSWORD).await;
        let me = server.gql(Some(&token), ME, json!({})).await;
        let me = &me.data()["me"];
        assert_eq!(me["email"], "chair_b@fixture.test", "{}", server.label);
        assert_eq!(me["id"], org.person("chair_b").id.to_string());
        assert_eq!(me["roles"][0]["role"], "CHAIR");
        assert_eq!(
            me["roles"][0]["commission"]["name"],
            "Rekenkamercommissie Bloemendaal"
        );
        let anonymous = server.gql(None, ME, json!({})).await;
        assert!(anonymous.data()["me"].is_null());
        server.stop().await;
    })
    .await;
}

/// A login returns a working token and the user; the email is matched case-insensitively.
/// A wrong password and an unknown email get the very same answer, in about the same time.
#[tokio::test]
async fn login_success_and_indistinguishable_failures() {
    for_each_backend(|db| async move {
        let server = TestServer::start_with(&db, |config| {
            config.auth.max_failures_per_account = 10_000;
            config.auth.max_failures_per_client = 10_000;
        })
        .await;
        let org = org(&server).await;
        let chair = org.person("chair_b");

        let ok = try_login(&server, None, "  Chair_B@Fixture.TEST ", PASSWORD).await;
        let payload = &ok.data()["login"];
        assert_eq!(payload["user"]["id"], chair.id.to_string(), "{}", server.label);
        assert_eq!(payload["user"]["email"], "chair_b@fixture.test");
        let expires = parse_time(&payload["expiresAt"]);
        assert!(expires > Utc::now(), "expiresAt lies in the future");
        let token = payload["token"].as_str().expect("a token");
        assert!(token.len() >= 43, "a token of 256 bits: {token}");
        assert_ne!(token, chair.token, "every login makes a new session");
        assert_eq!(
            me_email(&server, token).await.expect("the token works"),
            "chair_b@fixture.test"
        );

        // The first attempt for an unknown account computes the dummy hash; warm up both paths.
        let wrong = try_login(&server, None, &chair.email, "not the right password").await;
        let unknown = try_login(&server, None, "nobody@fixture.test", PASSWORD).await;
        for answer in [&wrong, &unknown] {
            answer.expect_code("UNAUTHENTICATED");
            assert!(answer.body["data"].is_null(), "{}", answer.body);
        }
        assert_eq!(wrong.status, unknown.status, "{}", server.label);
        assert_eq!(wrong.message(), unknown.message());
        assert_eq!(
            wrong.body, unknown.body,
            "an unknown email and a wrong password must be indistinguishable"
        );

        // Medians of interleaved attempts; on a loaded machine a round may be disturbed, so a
        // few rounds are allowed, but a real difference (no hash for unknown accounts, or two)
        // shows in every one.
        let mut ratios = Vec::new();
        for round in 0..3 {
            let mut wrong_times = Vec::new();
            let mut unknown_times = Vec::new();
            for i in 0..7 {
                let started = Instant::now();
                let answer =
                    try_login(&server, None, &chair.email, &format!("wrong password {i}")).await;
                wrong_times.push(started.elapsed());
                assert_eq!(answer.body, wrong.body);
                assert_eq!(answer.status, wrong.status);

                let started = Instant::now();
                let email = format!("nobody{round}x{i}@fixture.test");
                let answer = try_login(&server, None, &email, PASSWORD).await;
                unknown_times.push(started.elapsed());
                assert_eq!(answer.body, wrong.body);
                assert_eq!(answer.status, wrong.status);
            }
            let (wrong_median, unknown_median) = (median(wrong_times), median(unknown_times));
            let ratio = wrong_median.as_secs_f64() / unknown_median.as_secs_f64();
            eprintln!(
                "[{}] login failure medians, round {round}: wrong password {wrong_median:?}, unknown email {unknown_median:?} (ratio {ratio:.2})",
                server.label
            );
            ratios.push(ratio);
            if (0.5..=2.0).contains(&ratio) {
                break;
            }
        }
        assert!(
            ratios.iter().any(|ratio| (0.5..=2.0).contains(ratio)),
            "wrong password / unknown email time ratios {ratios:?}: the difference reveals which accounts exist ({})",
            server.label
        );
        server.stop().await;
    })
    .await;
}

/// A disabled user cannot log in and loses every session; re-enabling restores login (but not
/// the ended sessions). An admin cannot disable their own account.
#[tokio::test]
async fn disabled_user_cannot_log_in_and_loses_sessions() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let admin = org.token("admin");
        let chair = org.person("chair_b");
        let second = server.login(&chair.email, PASSWORD).await;
        assert!(me_email(&server, &chair.token).await.is_ok());

        let answer = server
            .gql(
                Some(admin),
                SET_DISABLED,
                json!({ "u": chair.id, "d": true }),
            )
            .await;
        let user = &answer.data()["setUserDisabled"];
        assert_eq!(user["id"], chair.id.to_string(), "{}", server.label);
        assert_eq!(user["disabled"], true);

        assert_token_rejected(
            &server,
            &chair.token,
            "the fixture session of a disabled user",
        )
        .await;
        assert_token_rejected(&server, &second, "a login session of a disabled user").await;
        let refused = try_login(&server, None, &chair.email, PASSWORD).await;
        refused.expect_code("UNAUTHENTICATED");
        let wrong = try_login(&server, None, "chair_h@fixture.test", "not the password!").await;
        assert_eq!(
            refused.body, wrong.body,
            "a disabled account answers like a wrong password"
        );
        // Nobody else is affected.
        assert_eq!(
            me_email(&server, org.token("chair_h"))
                .await
                .expect("chair_h"),
            "chair_h@fixture.test"
        );

        let answer = server
            .gql(
                Some(admin),
                SET_DISABLED,
                json!({ "u": chair.id, "d": false }),
            )
            .await;
        assert_eq!(answer.data()["setUserDisabled"]["disabled"], false);
        let token = server.login(&chair.email, PASSWORD).await;
        assert_eq!(
            me_email(&server, &token).await.expect("enabled again"),
            chair.email
        );
        assert_token_rejected(&server, &chair.token, "a session ended by disabling").await;
        assert_token_rejected(&server, &second, "a session ended by disabling").await;

        let me = org.person("admin");
        let answer = server
            .gql(Some(admin), SET_DISABLED, json!({ "u": me.id, "d": true }))
            .await;
        answer.expect_code("CONFLICT");
        assert_eq!(
            me_email(&server, admin)
                .await
                .expect("the admin still works"),
            me.email
        );
        // An unknown user is NOT_FOUND.
        let answer = server
            .gql(
                Some(admin),
                SET_DISABLED,
                json!({ "u": uuid::Uuid::new_v4(), "d": true }),
            )
            .await;
        answer.expect_code("NOT_FOUND");
        server.stop().await;
    })
    .await;
}

/// A session ends after the idle timeout without requests; requests keep it open.
#[tokio::test]
async fn session_ends_after_idle_timeout() {
    for_each_backend(|db| async move {
        let server = TestServer::start_with(&db, |config| config.manual_clock = Some(t0())).await;
        let org = org(&server).await;
        let idle = server.server.state.config.auth.idle_timeout;
        assert_eq!(idle, Duration::minutes(60));
        let admin = org.token("admin").to_string();

        let answer = try_login(&server, None, "member_b@fixture.test", PASSWORD).await;
        let login = &answer.data()["login"];
        assert_eq!(
            parse_time(&login["expiresAt"]),
            t0() + idle,
            "expiresAt is the idle expiry ({})",
            server.label
        );
        let token = login["token"].as_str().expect("token").to_string();

        // Active every 50 minutes: still valid after two idle periods.
        let mut now = t0();
        for _ in 0..3 {
            now = advance(&server, &admin, now + Duration::minutes(50)).await;
            assert!(
                me_email(&server, &token).await.is_ok(),
                "a session in use stays open at {now} ({})",
                server.label
            );
        }
        // Idle one second short of the timeout: still valid (and touched again).
        now = advance(&server, &admin, now + idle - Duration::seconds(1)).await;
        assert!(me_email(&server, &token).await.is_ok(), "{}", server.label);
        // Idle one second past the timeout: ended. The admin's session idled as long.
        advance(&server, &admin, now + idle + Duration::seconds(1)).await;
        assert_token_rejected(&server, &token, "past the idle timeout").await;
        assert_token_rejected(&server, &admin, "the admin idled too").await;
        // A new login works.
        let fresh = server.login("member_b@fixture.test", PASSWORD).await;
        assert!(me_email(&server, &fresh).await.is_ok());
        server.stop().await;
    })
    .await;
}

/// A session ends at the absolute timeout after login, however busy it is.
#[tokio::test]
async fn session_ends_after_absolute_timeout() {
    for_each_backend(|db| async move {
        let server = TestServer::start_with(&db, |config| config.manual_clock = Some(t0())).await;
        let org = org(&server).await;
        let absolute = server.server.state.config.auth.absolute_timeout;
        assert_eq!(absolute, Duration::hours(12));
        let admin = org.token("admin").to_string();
        let token = server.login("member_b@fixture.test", PASSWORD).await;

        let mut now = t0();
        while now + Duration::minutes(50) < t0() + absolute {
            now = advance(&server, &admin, now + Duration::minutes(50)).await;
            assert!(
                me_email(&server, &token).await.is_ok(),
                "valid at {now} ({})",
                server.label
            );
        }
        now = advance(&server, &admin, t0() + absolute - Duration::seconds(1)).await;
        assert!(me_email(&server, &token).await.is_ok(), "valid at {now}");
        // The admin logs in again: its fixture session ends at the same instant.
        let admin = server.login("admin@fixture.test", PASSWORD).await;
        advance(&server, &admin, t0() + absolute).await;
        assert_token_rejected(&server, &token, "at the absolute timeout").await;
        assert!(me_email(&server, &admin).await.is_ok());
        let fresh = server.login("member_b@fixture.test", PASSWORD).await;
        assert!(me_email(&server, &fresh).await.is_ok());
        server.stop().await;
    })
    .await;
}

/// `logout` ends exactly the current session; unknown and malformed tokens are UNAUTHENTICATED.
#[tokio::test]
async fn logout_revokes_and_bad_tokens_are_rejected() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let token = server.login("secretary_b@fixture.test", PASSWORD).await;
        assert!(me_email(&server, &token).await.is_ok());
        let answer = server
            .gql(Some(&token), "mutation { logout }", json!({}))
            .await;
        assert_eq!(answer.data()["logout"], true, "{}", server.label);
        assert_token_rejected(&server, &token, "after logout").await;
        let again = server
            .gql(Some(&token), "mutation { logout }", json!({}))
            .await;
        again.expect_code("UNAUTHENTICATED");
        // The user's other session is untouched.
        assert_eq!(
            me_email(&server, org.token("secretary_b"))
                .await
                .expect("other session"),
            "secretary_b@fixture.test"
        );

        // A token of the right shape that was never issued.
        let forged = rkflow_api::auth::new_token()
            .map_err(|e| e.message)
            .expect("token");
        assert_token_rejected(&server, &forged, "a token never issued").await;
        // The stored hash of a token is no token.
        let hashed = rkflow_api::auth::token_hash(org.token("secretary_b"));
        assert_token_rejected(&server, &hashed, "the hash of a token").await;

        use reqwest::header::HeaderValue;
        let good = org.token("secretary_b");
        let malformed = [
            HeaderValue::from_static("Bearer"),
            HeaderValue::from_static("Bearer    "),
            HeaderValue::from_str(&format!("Basic {good}")).expect("header"),
            HeaderValue::from_str(&format!("Token {good}")).expect("header"),
            HeaderValue::from_str(good).expect("header"),
            HeaderValue::from_str(&format!("Bearer{good}")).expect("header"),
            HeaderValue::from_bytes(b"Bearer \xff\xfe\xfd").expect("header"),
        ];
        for value in malformed {
            let answer = with_authorization(&server, value.clone()).await;
            assert_eq!(
                answer.code(),
                Some("UNAUTHENTICATED"),
                "Authorization: {value:?} ({}): {}",
                server.label,
                answer.body
            );
            assert_eq!(answer.status, 401, "Authorization: {value:?}");
        }
        // The scheme is case-insensitive.
        let answer = with_authorization(
            &server,
            HeaderValue::from_str(&format!("bearer {good}")).expect("header"),
        )
        .await;
        assert_eq!(answer.data()["me"]["email"], "secretary_b@fixture.test");
        server.stop().await;
    })
    .await;
}

/// `advanceClock`: FORBIDDEN without --manual-clock and for non-admins, CONFLICT backwards.
#[tokio::test]
async fn advance_clock_rules() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let later = (Utc::now() + Duration::days(1)).to_rfc3339();
        let answer = server
            .gql(Some(org.token("admin")), ADVANCE, json!({ "to": later }))
            .await;
        answer.expect_code("FORBIDDEN");
        server.stop().await;

        // The same database, now with a manual clock.
        let server = TestServer::start_with(&db, |config| config.manual_clock = Some(t0())).await;
        let admin = server.login("admin@fixture.test", PASSWORD).await;
        let chair = server.login("chair_b@fixture.test", PASSWORD).await;
        let answer = server
            .gql(
                Some(&chair),
                ADVANCE,
                json!({ "to": (t0() + Duration::hours(1)).to_rfc3339() }),
            )
            .await;
        answer.expect_code("FORBIDDEN");
        let answer = server
            .gql(
                None,
                ADVANCE,
                json!({ "to": (t0() + Duration::hours(1)).to_rfc3339() }),
            )
            .await;
        answer.expect_code("UNAUTHENTICATED");
        assert_eq!(server.server.state.api.clock.now(), t0(), "nobody moved it");

        let to = t0() + Duration::minutes(30);
        // Any offset is accepted; the answer is the same instant.
        let answer = server
            .gql(
                Some(&admin),
                ADVANCE,
                json!({ "to": "2019-03-21T09:30:00+01:00" }),
            )
            .await;
        assert_eq!(parse_time(&answer.data()["advanceClock"]), to);
        assert_eq!(server.server.state.api.clock.now(), to);
        let answer = server
            .gql(
                Some(&admin),
                ADVANCE,
                json!({ "to": (to - Duration::seconds(1)).to_rfc3339() }),
            )
            .await;
        answer.expect_code("CONFLICT");
        assert_eq!(server.server.state.api.clock.now(), to, "not moved back");
        // The clock drives timestamps: a login now expires an idle period after `to`.
        let answer = try_login(&server, None, "chair_h@fixture.test", PASSWORD).await;
        assert_eq!(
            parse_time(&answer.data()["login"]["expiresAt"]),
            to + Duration::minutes(60)
        );
        // Moving the clock is audited.
        let moved = audit_event::Entity::find()
            .filter(audit_event::Column::Action.eq("clock.advanced"))
            .count(&server.db().conn)
            .await
            .expect("count");
        assert_eq!(moved, 1, "{}", server.label);
        server.stop().await;
    })
    .await;
}

/// After `max_failures_per_account` failed logins even the right password is refused, until
/// the window has passed; other accounts are unaffected; a success resets the count.
#[tokio::test]
async fn throttling_per_account() {
    for_each_backend(|db| async move {
        let server = TestServer::start_with(&db, |config| config.manual_clock = Some(t0())).await;
        let org = org(&server).await;
        let limit = server.server.state.config.auth.max_failures_per_account;
        let window = server.server.state.config.auth.throttle_window;
        assert_eq!(limit, 5);
        // Case and spacing variants are the same account.
        let variants = [
            "chair_b@fixture.test",
            "CHAIR_B@fixture.test",
            " chair_b@FIXTURE.test ",
        ];
        for i in 0..limit {
            let email = variants[i as usize % variants.len()];
            try_login(&server, None, email, "a wrong password")
                .await
                .expect_code("UNAUTHENTICATED");
        }
        let throttled = try_login(&server, None, "chair_b@fixture.test", PASSWORD).await;
        throttled.expect_code("TOO_MANY_REQUESTS");
        assert!(throttled.body["data"].is_null(), "{}", throttled.body);
        try_login(&server, None, "chair_b@fixture.test", "a wrong password")
            .await
            .expect_code("TOO_MANY_REQUESTS");
        // The same client may still log in to another account, and sessions keep working.
        let other = server.login("chair_h@fixture.test", PASSWORD).await;
        assert!(me_email(&server, &other).await.is_ok());
        assert!(me_email(&server, org.token("chair_b")).await.is_ok());

        // Within the window it stays throttled; after it, login works again.
        let admin = org.token("admin").to_string();
        let now = advance(&server, &admin, t0() + window - Duration::minutes(1)).await;
        try_login(&server, None, "chair_b@fixture.test", PASSWORD)
            .await
            .expect_code("TOO_MANY_REQUESTS");
        advance(&server, &admin, now + window + Duration::seconds(1)).await;
        let token = server.login("chair_b@fixture.test", PASSWORD).await;
        assert!(me_email(&server, &token).await.is_ok(), "{}", server.label);

        // A success resets the account count.
        for _ in 0..limit - 1 {
            try_login(&server, None, "chair_b@fixture.test", "a wrong password")
                .await
                .expect_code("UNAUTHENTICATED");
        }
        server.login("chair_b@fixture.test", PASSWORD).await;
        for _ in 0..limit - 1 {
            try_login(&server, None, "chair_b@fixture.test", "a wrong password")
                .await
                .expect_code("UNAUTHENTICATED");
        }
        server.login("chair_b@fixture.test", PASSWORD).await;
        server.stop().await;
    })
    .await;
}

/// Failures from one client address against different accounts throttle that address only.
#[tokio::test]
async fn throttling_per_client_address() {
    for_each_backend(|db| async move {
        let server = TestServer::start_with(&db, |config| {
            config.auth.max_failures_per_client = 3;
            assert!(config.trust_forwarded_for);
        })
        .await;
        let _org = org(&server).await;
        let attacker = Some("203.0.113.7");
        for email in [
            "member_b@fixture.test",
            "member_h@fixture.test",
            "nobody@fixture.test",
        ] {
            try_login(&server, attacker, email, "a wrong password")
                .await
                .expect_code("UNAUTHENTICATED");
        }
        // Even a correct password for a fresh account is refused from that address.
        try_login(&server, attacker, "chair_b@fixture.test", PASSWORD)
            .await
            .expect_code("TOO_MANY_REQUESTS");
        try_login(&server, attacker, "chair_h@fixture.test", PASSWORD)
            .await
            .expect_code("TOO_MANY_REQUESTS");
        // Only the first X-Forwarded-For entry (the client) counts.
        try_login(
            &server,
            Some("203.0.113.7, 198.51.100.1"),
            "chair_h@fixture.test",
            PASSWORD,
        )
        .await
        .expect_code("TOO_MANY_REQUESTS");
        // Another address logs in to the same accounts.
        for email in ["chair_b@fixture.test", "member_b@fixture.test"] {
            let answer = try_login(&server, Some("203.0.113.8"), email, PASSWORD).await;
            let token = answer.data()["login"]["token"].as_str().expect("token");
            assert_eq!(me_email(&server, token).await.expect("works"), email);
        }
        server.stop().await;
    })
    .await;
}

/// Without `trust_forwarded_for`, a client cannot escape the throttle by varying the header.
#[tokio::test]
async fn forwarded_for_is_ignored_unless_trusted() {
    for_each_backend(|db| async move {
        let server = TestServer::start_with(&db, |config| {
            config.auth.max_failures_per_client = 3;
            config.trust_forwarded_for = false;
        })
        .await;
        let _org = org(&server).await;
        for (i, email) in [
            "member_b@fixture.test",
            "member_h@fixture.test",
            "nobody@fixture.test",
        ]
        .into_iter()
        .enumerate()
        {
            let client = format!("198.51.100.{i}");
            try_login(&server, Some(&client), email, "a wrong password")
                .await
                .expect_code("UNAUTHENTICATED");
        }
        try_login(
            &server,
            Some("198.51.100.77"),
            "chair_b@fixture.test",
            PASSWORD,
        )
        .await
        .expect_code("TOO_MANY_REQUESTS");
        server.stop().await;
    })
    .await;
}

/// Every stored hash meets the baseline; when the parameters rise, a login rehashes the
/// password with them (once), and lower parameters never downgrade a stored hash.
#[tokio::test]
async fn password_hashes_are_strong_and_rehashed_when_parameters_rise() {
    for_each_backend(|db| async move {
        let email = "rehash@fixture.test";
        let password = "a sturdy passphrase for hashing";
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let answer = server
            .gql(
                Some(org.token("admin")),
                CREATE_USER,
                json!({ "e": email, "n": "Rehash Test", "p": password }),
            )
            .await;
        assert_eq!(
            answer.data()["createUser"]["email"],
            email,
            "{}",
            server.label
        );
        let second = server
            .gql(
                Some(org.token("admin")),
                CREATE_USER,
                json!({ "e": "rehash2@fixture.test", "n": "Rehash Twee", "p": password }),
            )
            .await;
        second.data();

        let users = accounts::list_users(&server.db().conn)
            .await
            .expect("users");
        assert_eq!(users.len(), PEOPLE.len() + 2);
        for user in &users {
            assert_strong_hash(&user.password_hash, &user.email);
            assert!(
                !user.password_hash.contains(password) && !user.password_hash.contains(PASSWORD),
                "no plain text in the hash"
            );
        }
        let before = stored_hash(&server, email).await;
        let parsed = assert_strong_hash(&before, email);
        assert_eq!(
            (parsed.memory_kib, parsed.iterations, parsed.parallelism),
            (12_288, 3, 1)
        );
        assert!(
            before.starts_with("$argon2id$v=19$m=12288,t=3,p=1$"),
            "{before}"
        );
        let same_password = parse_phc(&stored_hash(&server, "rehash2@fixture.test").await);
        assert_ne!(
            parsed.salt, same_password.salt,
            "every hash has its own salt"
        );
        assert_ne!(parsed.hash, same_password.hash);
        server.stop().await;

        // The same database, with stronger parameters.
        let server =
            TestServer::start_with(&db, |config| config.auth.argon2_memory_kib = 24_576).await;
        let token = server.login(email, password).await;
        assert_eq!(me_email(&server, &token).await.expect("me"), email);
        let after = stored_hash(&server, email).await;
        assert_ne!(after, before, "the login rehashed ({})", server.label);
        assert!(
            after.starts_with("$argon2id$v=19$m=24576,t=3,p=1$"),
            "{after}"
        );
        let rehashed = assert_strong_hash(&after, email);
        assert_ne!(rehashed.salt, parsed.salt, "a rehash takes a fresh salt");
        // Only the account that logged in was rehashed.
        assert!(
            stored_hash(&server, "rehash2@fixture.test")
                .await
                .contains("m=12288"),
        );
        // The new hash logs in, without another rehash; a wrong password still fails.
        server.login(email, password).await;
        assert_eq!(stored_hash(&server, email).await, after);
        try_login(&server, None, email, "a wrong passphrase here")
            .await
            .expect_code("UNAUTHENTICATED");
        let rehash_events = audit_event::Entity::find()
            .filter(audit_event::Column::Action.eq("user.password_rehashed"))
            .count(&server.db().conn)
            .await
            .expect("count");
        assert_eq!(rehash_events, 1, "the rehash is audited once");
        server.stop().await;

        // Back to the default parameters: the stronger hash still works and is kept.
        let server = TestServer::start(&db).await;
        server.login(email, password).await;
        assert_eq!(stored_hash(&server, email).await, after, "no downgrade");
        server.stop().await;
    })
    .await;
}

/// The admin mutations with valid arguments, for the admin-only test.
fn admin_mutations(
    org: &rkflow_e2e::Org,
    grant_id: &str,
) -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "createMunicipality",
            "mutation($n: String!) { createMunicipality(name: $n) { id } }",
            json!({ "n": "Zandvoort" }),
        ),
        (
            "createCommission",
            "mutation($n: String!, $m: [ID!]!) { createCommission(name: $n, municipalityIds: $m) { id } }",
            json!({ "n": "Rekenkamer Haarlem-Zandvoort", "m": [org.municipality("x")] }),
        ),
        (
            "createUser",
            CREATE_USER,
            json!({ "e": "intruder@fixture.test", "n": "Intruder", "p": "a long enough passphrase" }),
        ),
        (
            "setUserDisabled",
            SET_DISABLED,
            json!({ "u": org.person("chair_x").id, "d": true }),
        ),
        (
            "grantRole",
            GRANT_ROLE,
            json!({ "u": org.person("outsider").id, "r": "ADMIN" }),
        ),
        ("revokeRole", REVOKE_ROLE, json!({ "g": grant_id })),
        (
            "advanceClock",
            ADVANCE,
            json!({ "to": (t0() + Duration::days(1)).to_rfc3339() }),
        ),
    ]
}

/// Every admin mutation is FORBIDDEN for every other role and UNAUTHENTICATED without a
/// token, changes nothing then, and works for the admin with its validation.
#[tokio::test]
async fn admin_mutations_are_admin_only_and_validated() {
    for_each_backend(|db| async move {
        let server = TestServer::start_with(&db, |config| config.manual_clock = Some(t0())).await;
        let org = org(&server).await;
        let admin = org.token("admin");
        let chair_x = server.gql(Some(org.token("chair_x")), ME, json!({})).await;
        let roles = server
            .gql(Some(org.token("chair_x")), "{ me { roles { id role } } }", json!({}))
            .await;
        let grant_id = roles.data()["me"]["roles"][0]["id"]
            .as_str()
            .expect("chair_x has a grant")
            .to_string();
        let mutations = admin_mutations(&org, &grant_id);

        for (key, _, _) in PEOPLE.iter().filter(|(key, _, _)| *key != "admin") {
            for (name, query, variables) in &mutations {
                let answer = server
                    .gql(Some(org.token(key)), query, variables.clone())
                    .await;
                assert_eq!(
                    answer.code(),
                    Some("FORBIDDEN"),
                    "{name} by {key} ({}): {}",
                    server.label,
                    answer.body
                );
                assert!(answer.body["data"].is_null(), "{name} by {key}: {}", answer.body);
            }
        }
        for (name, query, variables) in &mutations {
            let answer = server.gql(None, query, variables.clone()).await;
            assert_eq!(
                answer.code(),
                Some("UNAUTHENTICATED"),
                "{name} without a token ({}): {}",
                server.label,
                answer.body
            );
        }
        // Nothing changed.
        let municipalities = server
            .gql(Some(admin), "{ municipalities { name } }", json!({}))
            .await;
        assert_eq!(municipalities.data()["municipalities"].as_array().map(Vec::len), Some(3));
        let commissions = server.gql(Some(admin), "{ commissions { name } }", json!({})).await;
        assert_eq!(commissions.data()["commissions"].as_array().map(Vec::len), Some(3));
        assert_eq!(
            server.gql(Some(org.token("chair_x")), ME, json!({})).await.body,
            chair_x.body,
            "chair_x is still enabled with the same grant"
        );
        let outsider = server
            .gql(Some(org.token("outsider")), "{ me { roles { role } } }", json!({}))
            .await;
        assert_eq!(outsider.data()["me"]["roles"], json!([]));
        assert!(
            accounts::find_user_by_email(&server.db().conn, "intruder@fixture.test")
                .await
                .expect("read")
                .is_none()
        );
        assert_eq!(server.server.state.api.clock.now(), t0());

        // The admin: createMunicipality, with CONFLICT on a duplicate name.
        let answer = server
            .gql(
                Some(admin),
                "mutation($n: String!) { createMunicipality(name: $n) { id name council { name } college { name } } }",
                json!({ "n": "  Zandvoort " }),
            )
            .await;
        let zandvoort = answer.data()["createMunicipality"].clone();
        assert_eq!(zandvoort["name"], "Zandvoort", "{}", server.label);
        assert!(zandvoort["id"].as_str().is_some());
        for name in ["Zandvoort", "Haarlem"] {
            server
                .gql(
                    Some(admin),
                    "mutation($n: String!) { createMunicipality(name: $n) { id } }",
                    json!({ "n": name }),
                )
                .await
                .expect_code("CONFLICT");
        }
        server
            .gql(
                Some(admin),
                "mutation($n: String!) { createMunicipality(name: $n) { id } }",
                json!({ "n": "   " }),
            )
            .await
            .expect_code("BAD_USER_INPUT");

        // createCommission.
        let answer = server
            .gql(
                Some(admin),
                "mutation($n: String!, $m: [ID!]!) { createCommission(name: $n, municipalityIds: $m) { id name municipalities { id name } } }",
                json!({ "n": "Rekenkamer Zandvoort", "m": [zandvoort["id"]] }),
            )
            .await;
        let commission = answer.data()["createCommission"].clone();
        assert_eq!(commission["name"], "Rekenkamer Zandvoort");
        assert_eq!(
            commission["municipalities"],
            json!([{ "id": zandvoort["id"], "name": "Zandvoort" }])
        );
        server
            .gql(
                Some(admin),
                "mutation($n: String!, $m: [ID!]!) { createCommission(name: $n, municipalityIds: $m) { id } }",
                json!({ "n": "Rekenkamer Nergens", "m": [uuid::Uuid::new_v4()] }),
            )
            .await
            .expect_code("BAD_USER_INPUT");

        // createUser, with the password rules.
        for bad in ["short", "Password123!", "wachtwoord1234"] {
            let answer = server
                .gql(
                    Some(admin),
                    CREATE_USER,
                    json!({ "e": "new@fixture.test", "n": "Nieuw", "p": bad }),
                )
                .await;
            answer.expect_code("BAD_USER_INPUT");
            assert_eq!(
                answer.body["errors"][0]["extensions"]["field"], "password",
                "password `{bad}`: {}",
                answer.body
            );
        }
        let password = "een nieuw en lang wachtwoord";
        let answer = server
            .gql(
                Some(admin),
                CREATE_USER,
                json!({ "e": " New.User@Fixture.TEST", "n": "Nieuwe Gebruiker", "p": password }),
            )
            .await;
        let user = answer.data()["createUser"].clone();
        assert_eq!(user["email"], "new.user@fixture.test");
        assert_eq!(user["name"], "Nieuwe Gebruiker");
        let answer = server
            .gql(
                Some(admin),
                CREATE_USER,
                json!({ "e": "new.user@fixture.test", "n": "Dubbel", "p": password }),
            )
            .await;
        answer.expect_code("CONFLICT");
        let answer = server
            .gql(
                Some(admin),
                CREATE_USER,
                json!({ "e": "not an email", "n": "Geen", "p": password }),
            )
            .await;
        answer.expect_code("BAD_USER_INPUT");
        assert_eq!(answer.body["errors"][0]["extensions"]["field"], "email");
        let token = server.login("new.user@fixture.test", password).await;
        let me = server.gql(Some(&token), ME, json!({})).await;
        assert_eq!(me.data()["me"]["roles"], json!([]));

        // grantRole: the scope must fit the role.
        let wrong_scopes = [
            json!({ "u": user["id"], "r": "CHAIR", "m": zandvoort["id"] }),
            json!({ "u": user["id"], "r": "CHAIR" }),
            json!({ "u": user["id"], "r": "GRIFFIER", "c": commission["id"] }),
            json!({ "u": user["id"], "r": "ADMIN", "c": commission["id"] }),
            json!({ "u": user["id"], "r": "MEMBER", "c": commission["id"], "m": zandvoort["id"] }),
        ];
        for variables in wrong_scopes {
            let answer = server.gql(Some(admin), GRANT_ROLE, variables.clone()).await;
            assert_eq!(
                answer.code(),
                Some("BAD_USER_INPUT"),
                "{variables} ({}): {}",
                server.label,
                answer.body
            );
            assert!(answer.body["errors"][0]["extensions"]["field"].is_string());
        }
        let answer = server
            .gql(
                Some(admin),
                GRANT_ROLE,
                json!({ "u": user["id"], "r": "CHAIR", "c": commission["id"] }),
            )
            .await;
        let grant = answer.data()["grantRole"].clone();
        assert_eq!(grant["role"], "CHAIR");
        assert_eq!(grant["commission"]["name"], "Rekenkamer Zandvoort");
        assert!(grant["municipality"].is_null());
        server
            .gql(
                Some(admin),
                GRANT_ROLE,
                json!({ "u": user["id"], "r": "CHAIR", "c": commission["id"] }),
            )
            .await
            .expect_code("CONFLICT");
        let answer = server
            .gql(
                Some(admin),
                GRANT_ROLE,
                json!({ "u": user["id"], "r": "COUNCIL_MEMBER", "m": zandvoort["id"] }),
            )
            .await;
        let council_grant = answer.data()["grantRole"].clone();
        assert_eq!(council_grant["municipality"]["name"], "Zandvoort");
        let me = server
            .gql(Some(&token), "{ me { roles { id role commission { name } municipality { name } } } }", json!({}))
            .await;
        let mut roles = me.data()["me"]["roles"]
            .as_array()
            .expect("roles")
            .clone();
        roles.sort_by_key(|role| role["role"].to_string());
        assert_eq!(
            roles,
            vec![
                json!({ "id": grant["id"], "role": "CHAIR", "commission": { "name": "Rekenkamer Zandvoort" }, "municipality": null }),
                json!({ "id": council_grant["id"], "role": "COUNCIL_MEMBER", "commission": null, "municipality": { "name": "Zandvoort" } }),
            ]
        );
        // The new chair now sees the organisation.
        let commissions = server.gql(Some(&token), "{ commissions { name } }", json!({})).await;
        assert_eq!(commissions.data()["commissions"].as_array().map(Vec::len), Some(4));

        // revokeRole removes the grant from the user's roles at once.
        let answer = server
            .gql(Some(admin), REVOKE_ROLE, json!({ "g": grant["id"] }))
            .await;
        assert_eq!(answer.data()["revokeRole"], true);
        let me = server
            .gql(Some(&token), "{ me { roles { id role } } }", json!({}))
            .await;
        assert_eq!(
            me.data()["me"]["roles"],
            json!([{ "id": council_grant["id"], "role": "COUNCIL_MEMBER" }])
        );
        server
            .gql(Some(admin), REVOKE_ROLE, json!({ "g": grant["id"] }))
            .await
            .expect_code("NOT_FOUND");

        // setUserDisabled.
        let answer = server
            .gql(Some(admin), SET_DISABLED, json!({ "u": user["id"], "d": true }))
            .await;
        assert_eq!(answer.data()["setUserDisabled"]["disabled"], true);
        assert_token_rejected(&server, &token, "disabled by the admin").await;

        // advanceClock.
        let to = t0() + Duration::minutes(5);
        assert_eq!(advance(&server, admin, to).await, to);
        assert_eq!(server.server.state.api.clock.now(), to);
        server.stop().await;
    })
    .await;
}

/// What needs a login answers UNAUTHENTICATED without a token; `me` answers null.
#[tokio::test]
async fn anonymous_callers_must_log_in() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let anonymous = server.gql(None, ME, json!({})).await;
        assert!(anonymous.body.get("errors").is_none(), "{}", anonymous.body);
        assert!(anonymous.data()["me"].is_null());
        let cases = [
            ("municipalities", "{ municipalities { id name } }", json!({})),
            ("commissions", "{ commissions { id name } }", json!({})),
            (
                "proposeInvestigation",
                "mutation($i: ProposeInvestigationInput!) { proposeInvestigation(input: $i) { id } }",
                json!({ "i": {
                    "title": "Anoniem onderzoek",
                    "commissionIds": [org.commission("b")],
                    "researchQuestions": ["Mag dit?"],
                } }),
            ),
            ("logout", "mutation { logout }", json!({})),
            (
                "auditTrail",
                "query($i: ID!) { auditTrail(investigationId: $i) { totalCount edges { node { seq action } } } }",
                json!({ "i": uuid::Uuid::new_v4() }),
            ),
        ];
        for (name, query, variables) in cases {
            let answer = server.gql(None, query, variables).await;
            assert_eq!(
                answer.code(),
                Some("UNAUTHENTICATED"),
                "{name} ({}): {}",
                server.label,
                answer.body
            );
        }
        // Nothing was proposed.
        let listed = server
            .gql(Some(org.token("chair_b")), "{ investigations { totalCount } }", json!({}))
            .await;
        assert_eq!(listed.data()["investigations"]["totalCount"], 0);
        server.stop().await;
    })
    .await;
}

/// The HTTP surface: JSON only, no batches, and the probes.
#[tokio::test]
async fn http_content_types_batches_and_probes() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let url = format!("{}/graphql", server.base);
        let body = json!({ "query": "{ me { id } }" }).to_string();

        let response = server
            .http
            .post(&url)
            .header("content-type", "text/plain")
            .body(body.clone())
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status().as_u16(), 415, "{}", server.label);
        let answer: Value = response.json().await.expect("a JSON error");
        assert_eq!(answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");

        let response = server
            .http
            .post(&url)
            .body(body.clone())
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status().as_u16(), 415, "no content type");

        let response = server
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(format!("[{body},{body}]"))
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status().as_u16(), 400, "a batch");
        let answer: Value = response.json().await.expect("a JSON error");
        assert_eq!(answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");

        let response = server
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body("{ not json")
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status().as_u16(), 400, "broken JSON");

        // The same operation as a single JSON object works.
        let response = server
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status().as_u16(), 200);
        let answer: Value = response.json().await.expect("JSON");
        assert_eq!(answer, json!({ "data": { "me": null } }));

        let health = server.get(None, "/healthz").await;
        assert_eq!(health.status().as_u16(), 200);
        assert_eq!(health.text().await.expect("text"), "ok");
        let ready = server.get(None, "/readyz").await;
        assert_eq!(ready.status().as_u16(), 200);
        server.stop().await;
    })
    .await;
}

/// A burst of parallel guesses gets no more verified attempts than the sequential limit.
#[tokio::test]
async fn throttling_holds_under_a_parallel_burst() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let _org = org(&server).await;
        let limit = server.server.state.config.auth.max_failures_per_account;
        let attempts = (0..limit * 3).map(|i| {
            let server = &server;
            async move {
                try_login(
                    server,
                    None,
                    "chair_b@fixture.test",
                    &format!("guess number {i}"),
                )
                .await
            }
        });
        let answers = futures::future::join_all(attempts).await;
        let mut codes = std::collections::BTreeMap::<String, u64>::new();
        for answer in &answers {
            *codes
                .entry(answer.code().unwrap_or("none").to_string())
                .or_default() += 1;
        }
        eprintln!("[{}] parallel burst: {codes:?}", server.label);
        assert_eq!(
            codes.keys().map(String::as_str).collect::<Vec<_>>(),
            ["TOO_MANY_REQUESTS", "UNAUTHENTICATED"],
            "{}",
            server.label
        );
        assert!(
            codes["UNAUTHENTICATED"] <= limit,
            "{} of {} parallel guesses were checked; the limit is {limit} ({})",
            codes["UNAUTHENTICATED"],
            answers.len(),
            server.label
        );
        try_login(&server, None, "chair_b@fixture.test", PASSWORD)
            .await
            .expect_code("TOO_MANY_REQUESTS");
        server.stop().await;
    })
    .await;
}
