//! What credentials can reach: API-key scopes on nested fields, invitations, and the checks
//! that guard turning two-factor off.

use obrol_tests::{error_code, TestApp, PASSWORD};
use serde_json::json;

async fn api_key(app: &TestApp, admin_token: &str, scopes: serde_json::Value) -> String {
    let data = app
        .gql_ok(
            Some(admin_token),
            "mutation($s: [ApiScope!]!) { createApiKey(input: { name: \"k\", scopes: $s }) { key } }",
            json!({ "s": scopes }),
        )
        .await;
    data["createApiKey"]["key"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_key_cannot_reach_through_nested_fields_what_its_scopes_deny() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;
    let key = api_key(&app, &admin.token, json!(["PRESENCE_WRITE"])).await;

    let company = app
        .gql(
            Some(&key),
            "{ me { company { plan timezone } } }",
            json!({}),
        )
        .await;
    let teams = app
        .gql(Some(&key), "{ me { teams { name } } }", json!({}))
        .await;
    let via_mutation = app
        .gql(
            Some(&key),
            "mutation { setPresence(presence: ONLINE) { company { staffSeeAll } } }",
            json!({}),
        )
        .await;

    assert_eq!(error_code(&company), Some("FORBIDDEN"), "{company}");
    assert_eq!(error_code(&teams), Some("FORBIDDEN"), "{teams}");
    assert_eq!(
        error_code(&via_mutation),
        Some("FORBIDDEN"),
        "{via_mutation}"
    );
    // The same fields work for a key that has the scopes, and for sessions.
    let reader = api_key(
        &app,
        &admin.token,
        json!(["SETTINGS_READ", "TEAMS_READ", "USERS_READ"]),
    )
    .await;
    app.gql_ok(
        Some(&reader),
        "{ me { company { plan } teams { members { email } } } }",
        json!({}),
    )
    .await;
    app.gql_ok(
        Some(&admin.token),
        "{ me { company { plan } teams { name } } }",
        json!({}),
    )
    .await;
}

#[tokio::test]
async fn an_api_key_cannot_mint_an_invitation() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;
    let key = api_key(&app, &admin.token, json!(["USERS_WRITE"])).await;

    let response = app
        .gql(
            Some(&key),
            "mutation { inviteUser(input: { email: \"boss@example.com\", name: \"Boss\", role: ADMIN }) { token } }",
            json!({}),
        )
        .await;

    assert_eq!(error_code(&response), Some("FORBIDDEN"), "{response}");
    let users = app
        .gql_ok(Some(&admin.token), "{ users { totalCount } }", json!({}))
        .await;
    assert_eq!(users["users"]["totalCount"], 1);
}

#[tokio::test]
async fn reactivating_someone_who_never_accepted_does_not_revive_the_old_invitation() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;
    let invited = app
        .gql_ok(
            Some(&admin.token),
            "mutation { inviteUser(input: { email: \"late@example.com\", name: \"Late\", role: STAFF }) { token user { id } } }",
            json!({}),
        )
        .await;
    let token = invited["inviteUser"]["token"].as_str().unwrap();
    let user_id = invited["inviteUser"]["user"]["id"].as_str().unwrap();

    app.gql_ok(
        Some(&admin.token),
        "mutation($u: ID!) { deactivateUser(userId: $u) { id } }",
        json!({ "u": user_id }),
    )
    .await;
    let back = app
        .gql_ok(
            Some(&admin.token),
            "mutation($u: ID!) { reactivateUser(userId: $u) { status } }",
            json!({ "u": user_id }),
        )
        .await;
    let accepted = app
        .gql(
            None,
            "mutation($t: String!, $p: String!) { acceptInvite(input: { token: $t, password: $p }) { token } }",
            json!({ "t": token, "p": PASSWORD }),
        )
        .await;

    assert_eq!(back["reactivateUser"]["status"], "INVITED");
    assert_eq!(error_code(&accepted), Some("NOT_FOUND"), "{accepted}");
}

#[tokio::test]
async fn turning_two_factor_off_needs_password_and_code_and_failures_lock_the_account() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;
    let recovery = app.enable_two_factor(&admin).await.recovery_codes[0].clone();
    let disable = "mutation($p: String!, $c: String!) { disableTwoFactor(password: $p, code: $c) }";

    // A right password with a wrong code does not do it, and neither do guessed passwords;
    // five failures lock the account, for log-in too.
    let no_code = app
        .gql(
            Some(&admin.token),
            disable,
            json!({ "p": PASSWORD, "c": "000000" }),
        )
        .await;
    assert_eq!(error_code(&no_code), Some("VALIDATION"), "{no_code}");
    for _ in 0..4 {
        let guess = app
            .gql(
                Some(&admin.token),
                disable,
                json!({ "p": "a wrong guess", "c": recovery }),
            )
            .await;
        assert_eq!(error_code(&guess), Some("VALIDATION"));
    }
    let locked = app
        .gql(
            Some(&admin.token),
            disable,
            json!({ "p": PASSWORD, "c": recovery }),
        )
        .await;
    assert_eq!(error_code(&locked), Some("RATE_LIMITED"), "{locked}");
    let log_in = app
        .gql(
            None,
            "mutation($e: String!, $p: String!, $c: String) { logIn(input: { email: $e, password: $p, totpCode: $c }) { token } }",
            json!({ "e": admin.email, "p": PASSWORD, "c": recovery }),
        )
        .await;
    assert_eq!(error_code(&log_in), Some("RATE_LIMITED"));

    // Once the lock has passed, password and a recovery code turn it off.
    let mut db = app.db.superuser().await.unwrap();
    sqlx::query("update users set locked_until = now() - interval '1 second' where id = $1::uuid")
        .bind(&admin.user_id)
        .execute(&mut db)
        .await
        .unwrap();
    app.gql_ok(
        Some(&admin.token),
        disable,
        json!({ "p": PASSWORD, "c": recovery }),
    )
    .await;
    let me = app
        .gql_ok(Some(&admin.token), "{ me { twoFactorEnabled } }", json!({}))
        .await;
    assert_eq!(me["me"]["twoFactorEnabled"], false);
}

#[tokio::test]
async fn an_address_with_a_colon_can_still_set_up_two_factor() {
    let app = TestApp::spawn().await;
    let data = app
        .gql_ok(
            None,
            "mutation($i: SignUpInput!) { signUp(input: $i) { token } }",
            json!({ "i": { "companyName": "Colon Co", "name": "C", "email": "a:b@example.com", "password": PASSWORD } }),
        )
        .await;
    let token = data["signUp"]["token"].as_str().unwrap();

    let setup = app
        .gql_ok(
            Some(token),
            "mutation { startTwoFactorSetup { otpauthUrl } }",
            json!({}),
        )
        .await;

    assert!(setup["startTwoFactorSetup"]["otpauthUrl"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://"));
}
