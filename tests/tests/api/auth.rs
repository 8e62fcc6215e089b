//! Signing up, logging in, sessions, back-off, two-factor and API keys.

use obrol_tests::{error_code, totp_code, TestApp, PASSWORD};
use serde_json::json;

const LOG_IN: &str =
    "mutation($input: LogInInput!) { logIn(input: $input) { token user { id email role } } }";
const ME: &str = "{ me { id name email role company { id name plan } } }";

#[tokio::test]
async fn a_new_company_admin_can_sign_up_and_see_themselves() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme Travel").await;

    let data = app.gql_ok(Some(&admin.token), ME, json!({})).await;

    assert_eq!(data["me"]["id"], admin.user_id.as_str());
    assert_eq!(data["me"]["role"], "ADMIN");
    assert_eq!(data["me"]["email"], admin.email.as_str());
    assert_eq!(data["me"]["company"]["name"], "Acme Travel");
    assert_eq!(data["me"]["company"]["plan"], "FREE");
}

#[tokio::test]
async fn logging_in_with_the_right_password_gives_a_working_token() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;

    let data = app
        .gql_ok(
            None,
            LOG_IN,
            json!({ "input": { "email": admin.email.to_uppercase(), "password": PASSWORD } }),
        )
        .await;
    let token = data["logIn"]["token"].as_str().unwrap();

    assert_ne!(token, admin.token);
    let me = app.gql_ok(Some(token), ME, json!({})).await;
    assert_eq!(me["me"]["id"], admin.user_id.as_str());
}

#[tokio::test]
async fn a_wrong_password_or_unknown_email_is_refused_alike() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;

    let wrong = app
        .gql(
            None,
            LOG_IN,
            json!({ "input": { "email": admin.email, "password": "not the password" } }),
        )
        .await;
    let unknown = app
        .gql(
            None,
            LOG_IN,
            json!({ "input": { "email": "nobody@example.com", "password": PASSWORD } }),
        )
        .await;

    assert_eq!(error_code(&wrong), Some("UNAUTHENTICATED"));
    assert_eq!(error_code(&unknown), Some("UNAUTHENTICATED"));
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );
    assert!(wrong["data"].is_null());
}

#[tokio::test]
async fn repeated_failures_lock_the_account_even_for_the_right_password() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;

    for _ in 0..5 {
        let response = app
            .gql(
                None,
                LOG_IN,
                json!({ "input": { "email": admin.email, "password": "guess guess guess" } }),
            )
            .await;
        assert_eq!(error_code(&response), Some("UNAUTHENTICATED"));
    }
    let locked = app
        .gql(
            None,
            LOG_IN,
            json!({ "input": { "email": admin.email, "password": PASSWORD } }),
        )
        .await;

    assert_eq!(error_code(&locked), Some("RATE_LIMITED"));
    assert!(locked["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("try again in"));
    // The session made at sign-up still works: locking stops guessing, not the owner's work.
    app.gql_ok(Some(&admin.token), ME, json!({})).await;
}

#[tokio::test]
async fn an_email_can_own_only_one_account_and_weak_passwords_are_refused() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;
    let sign_up = "mutation($input: SignUpInput!) { signUp(input: $input) { token } }";

    let again = app
        .gql(None, sign_up, json!({ "input": { "companyName": "Other", "name": "X", "email": admin.email, "password": PASSWORD } }))
        .await;
    let weak = app
        .gql(None, sign_up, json!({ "input": { "companyName": "Other", "name": "X", "email": "new@example.com", "password": "short" } }))
        .await;
    let bad_email = app
        .gql(None, sign_up, json!({ "input": { "companyName": "Other", "name": "X", "email": "not-an-email", "password": PASSWORD } }))
        .await;

    assert_eq!(error_code(&again), Some("CONFLICT"));
    assert_eq!(error_code(&weak), Some("VALIDATION"));
    assert_eq!(error_code(&bad_email), Some("VALIDATION"));
}

#[tokio::test]
async fn a_revoked_session_stops_working_and_others_keep_working() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;
    let second = app
        .gql_ok(
            None,
            LOG_IN,
            json!({ "input": { "email": admin.email, "password": PASSWORD } }),
        )
        .await;
    let second_token = second["logIn"]["token"].as_str().unwrap().to_string();

    let sessions = app
        .gql_ok(
            Some(&admin.token),
            "{ mySessions { id current } }",
            json!({}),
        )
        .await;
    let listed = sessions["mySessions"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    let other = listed.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    app.gql_ok(
        Some(&admin.token),
        "mutation($id: ID!) { revokeSession(id: $id) }",
        json!({ "id": other }),
    )
    .await;

    let refused = app.gql(Some(&second_token), ME, json!({})).await;
    assert_eq!(error_code(&refused), Some("UNAUTHENTICATED"));
    app.gql_ok(Some(&admin.token), ME, json!({})).await;

    app.gql_ok(Some(&admin.token), "mutation { logOut }", json!({}))
        .await;
    let after_logout = app.gql(Some(&admin.token), ME, json!({})).await;
    assert_eq!(error_code(&after_logout), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;
    let mut db = app.db.superuser().await.unwrap();

    sqlx::query(
        "update sessions set expires_at = now() - interval '1 second' where user_id = $1::uuid",
    )
    .bind(&admin.user_id)
    .execute(&mut db)
    .await
    .unwrap();

    let response = app.gql(Some(&admin.token), ME, json!({})).await;
    assert_eq!(error_code(&response), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn garbage_and_missing_tokens_are_unauthenticated() {
    let app = TestApp::spawn().await;

    let garbage = app.gql(Some("obs_not-a-real-token"), ME, json!({})).await;
    let unknown_kind = app.gql(Some("something-else"), ME, json!({})).await;
    let none = app.gql(None, ME, json!({})).await;

    for response in [garbage, unknown_kind, none] {
        assert_eq!(error_code(&response), Some("UNAUTHENTICATED"), "{response}");
    }
}

#[tokio::test]
async fn two_factor_is_required_once_enabled_and_codes_work_once() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;

    let setup = app
        .gql_ok(
            Some(&admin.token),
            "mutation { startTwoFactorSetup { secret otpauthUrl } }",
            json!({}),
        )
        .await;
    let secret = setup["startTwoFactorSetup"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(setup["startTwoFactorSetup"]["otpauthUrl"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/"));
    let wrong_confirm = app
        .gql(
            Some(&admin.token),
            "mutation($c: String!) { confirmTwoFactorSetup(code: $c) }",
            json!({ "c": "000000" }),
        )
        .await;
    assert_eq!(error_code(&wrong_confirm), Some("VALIDATION"));
    let confirmed = app
        .gql_ok(
            Some(&admin.token),
            "mutation($c: String!) { confirmTwoFactorSetup(code: $c) }",
            json!({ "c": totp_code(&secret) }),
        )
        .await;
    let recovery_codes: Vec<String> = confirmed["confirmTwoFactorSetup"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(recovery_codes.len(), 10);

    // The seed is stored sealed, never in clear.
    let mut db = app.db.superuser().await.unwrap();
    let sealed: Vec<u8> =
        sqlx::query_scalar("select totp_secret_sealed from users where id = $1::uuid")
            .bind(&admin.user_id)
            .fetch_one(&mut db)
            .await
            .unwrap();
    let seed = totp_rs::Secret::Encoded(secret.clone()).to_bytes().unwrap();
    assert!(!sealed.windows(seed.len()).any(|w| w == seed.as_slice()));

    let without = app
        .gql(
            None,
            LOG_IN,
            json!({ "input": { "email": admin.email, "password": PASSWORD } }),
        )
        .await;
    assert_eq!(error_code(&without), Some("TOTP_REQUIRED"));

    let wrong = app
        .gql(None, LOG_IN, json!({ "input": { "email": admin.email, "password": PASSWORD, "totpCode": "123456" } }))
        .await;
    assert_eq!(error_code(&wrong), Some("UNAUTHENTICATED"));

    // The code used to confirm set-up cannot be replayed; a recovery code works exactly once.
    let recovery = &recovery_codes[0];
    let with_recovery = app
        .gql(None, LOG_IN, json!({ "input": { "email": admin.email, "password": PASSWORD, "totpCode": recovery } }))
        .await;
    assert!(with_recovery["errors"].is_null(), "{with_recovery}");
    let reused = app
        .gql(None, LOG_IN, json!({ "input": { "email": admin.email, "password": PASSWORD, "totpCode": recovery } }))
        .await;
    assert_eq!(error_code(&reused), Some("UNAUTHENTICATED"));

    let data = app
        .gql_ok(
            Some(&admin.token),
            ME.replace("role", "role twoFactorEnabled").as_str(),
            json!({}),
        )
        .await;
    assert_eq!(data["me"]["twoFactorEnabled"], true);
}

#[tokio::test]
async fn an_api_key_is_shown_once_stored_hashed_and_limited_to_its_scopes() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;

    let created = app
        .gql_ok(
            Some(&admin.token),
            "mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { key apiKey { id name prefix scopes } } }",
            json!({ "input": { "name": "CRM sync", "scopes": ["USERS_READ"] } }),
        )
        .await;
    let key = created["createApiKey"]["key"].as_str().unwrap().to_string();
    let key_id = created["createApiKey"]["apiKey"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(key.starts_with(
        created["createApiKey"]["apiKey"]["prefix"]
            .as_str()
            .unwrap()
    ));
    assert_eq!(
        created["createApiKey"]["apiKey"]["scopes"],
        json!(["USERS_READ"])
    );

    let mut db = app.db.superuser().await.unwrap();
    let stored: Vec<u8> = sqlx::query_scalar("select key_hash from api_keys where id = $1::uuid")
        .bind(&key_id)
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(stored.len(), 32);
    assert!(!String::from_utf8_lossy(&stored).contains(&key[4..]));

    let users = app
        .gql_ok(Some(&key), "{ users(first: 10) { totalCount } }", json!({}))
        .await;
    assert_eq!(users["users"]["totalCount"], 1);

    let out_of_scope = app
        .gql(
            Some(&key),
            "mutation($u: ID!) { changeUserRole(userId: $u, role: STAFF) { id } }",
            json!({ "u": admin.user_id }),
        )
        .await;
    assert_eq!(error_code(&out_of_scope), Some("FORBIDDEN"));
    let mint = app
        .gql(
            Some(&key),
            "mutation { createApiKey(input: { name: \"x\", scopes: [USERS_READ] }) { key } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&mint), Some("FORBIDDEN"));
    let audit = app
        .gql(
            Some(&key),
            "{ auditEvents(first: 5) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&audit), Some("FORBIDDEN"));

    app.gql_ok(
        Some(&admin.token),
        "mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }",
        json!({ "id": key_id }),
    )
    .await;
    let revoked = app
        .gql(Some(&key), "{ users(first: 1) { totalCount } }", json!({}))
        .await;
    assert_eq!(error_code(&revoked), Some("UNAUTHENTICATED"));
}
