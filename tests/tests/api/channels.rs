//! Channel accounts: connecting each of the nine channels, credentials sealed and never shown.

use obrol_tests::{error_code, TestApp};
use serde_json::{json, Value};

const CONNECT: &str = "mutation($input: ConnectChannelInput!) {
    connectChannel(input: $input) { id type name webhookUrl status externalId } }";
const ACCOUNTS: &str = "{ channelAccounts { id type name webhookUrl status externalId } }";

/// Credentials for each channel, with secrets that appear nowhere else.
fn credentials(kind: &str) -> Value {
    match kind {
        "WHATSAPP" => {
            json!({ "access_token": "EAAG-secret-wa-7731", "phone_number_id": "106540352242922",
                               "app_secret": "app-secret-wa-7731", "verify_token": "verify-wa-7731" })
        }
        "INSTAGRAM" => {
            json!({ "access_token": "IGQ-secret-ig-7731", "instagram_account_id": "17841400000000001",
                                "app_secret": "app-secret-ig-7731", "verify_token": "verify-ig-7731" })
        }
        "MESSENGER" => {
            json!({ "page_access_token": "EAAB-secret-fb-7731", "page_id": "104329118200001",
                                "app_secret": "app-secret-fb-7731", "verify_token": "verify-fb-7731" })
        }
        "WECHAT" => {
            json!({ "app_id": "wx1234567890abcdef", "app_secret": "secret-wx-7731", "token": "token-wx-7731" })
        }
        "LINE" => json!({ "channel_id": "1654000001", "channel_access_token": "secret-line-7731",
                           "channel_secret": "channel-secret-line-7731" }),
        "TELEGRAM" => json!({ "bot_token": "7000000001:AAH-secret-tg-7731" }),
        "VIBER" => json!({ "auth_token": "4453b6ac-secret-viber-7731" }),
        "SMS" => {
            json!({ "account_sid": "AC00000000000000000000000000000001", "auth_token": "secret-twilio-7731",
                          "phone_number": "+1 415 555 0100" })
        }
        _ => json!({}),
    }
}

const KINDS: [(&str, &str); 9] = [
    ("WHATSAPP", "whatsapp"),
    ("INSTAGRAM", "instagram"),
    ("MESSENGER", "messenger"),
    ("WECHAT", "wechat"),
    ("LINE", "line"),
    ("TELEGRAM", "telegram"),
    ("VIBER", "viber"),
    ("SMS", "sms"),
    ("LIVE_CHAT", "live-chat"),
];

#[tokio::test]
async fn every_channel_connects_with_its_credentials_sealed_and_never_shown() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Nine Channels").await;
    let mut ids = Vec::new();
    for (kind, slug) in KINDS {
        let data = app
            .gql_ok(
                Some(&admin.token),
                CONNECT,
                json!({ "input": { "type": kind, "name": format!("Our {slug}"), "credentials": credentials(kind) } }),
            )
            .await;
        let account = &data["connectChannel"];
        let id = account["id"].as_str().unwrap().to_string();
        assert_eq!(account["type"], kind);
        assert_eq!(account["status"], "ACTIVE");
        assert_eq!(account["webhookUrl"], format!("/webhooks/{slug}/{id}"));
        ids.push(id);
    }
    let listed = app.gql_ok(Some(&admin.token), ACCOUNTS, json!({})).await;
    let accounts = listed["channelAccounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 9);
    let external: Vec<&Value> = accounts.iter().map(|a| &a["externalId"]).collect();
    assert_eq!(external[0], "106540352242922");
    assert_eq!(
        external[5], "7000000001",
        "a Telegram bot's id comes from its token"
    );
    assert_eq!(
        external[7], "+14155550100",
        "an SMS number is stored in E.164"
    );
    assert!(external[6].is_null() && external[8].is_null());
    assert!(
        !listed.to_string().contains("7731"),
        "no credential comes back: {listed}"
    );

    // In the database the credentials are sealed: no secret is readable there.
    let mut db = app.db.superuser().await.unwrap();
    let sealed: Vec<Vec<u8>> =
        sqlx::query_scalar("select credentials_sealed from channel_accounts")
            .fetch_all(&mut db)
            .await
            .unwrap();
    assert_eq!(sealed.len(), 9);
    for bytes in &sealed {
        assert!(
            !String::from_utf8_lossy(bytes).contains("7731"),
            "a secret is stored in clear"
        );
    }

    // Staff see the accounts but do not connect or disconnect them.
    let staff = app.add_user(&admin, "STAFF").await;
    let seen = app.gql_ok(Some(&staff.token), ACCOUNTS, json!({})).await;
    assert_eq!(seen["channelAccounts"].as_array().unwrap().len(), 9);
    let response = app
        .gql(
            Some(&staff.token),
            CONNECT,
            json!({ "input": { "type": "VIBER", "name": "Mine", "credentials": credentials("VIBER") } }),
        )
        .await;
    assert_eq!(error_code(&response), Some("FORBIDDEN"));

    // A provider account belongs to one company at a time.
    let other = app.sign_up("Copycat").await;
    let response = app
        .gql(
            Some(&other.token),
            CONNECT,
            json!({ "input": { "type": "WHATSAPP", "name": "Same number", "credentials": credentials("WHATSAPP") } }),
        )
        .await;
    assert_eq!(error_code(&response), Some("CONFLICT"), "{response:#}");
    let disconnect = "mutation($id: ID!) { disconnectChannel(id: $id) }";
    let response = app
        .gql(Some(&other.token), disconnect, json!({ "id": ids[0] }))
        .await;
    assert_eq!(
        error_code(&response),
        Some("NOT_FOUND"),
        "not theirs to disconnect"
    );
    app.gql_ok(Some(&admin.token), disconnect, json!({ "id": ids[0] }))
        .await;
    let wiped: Vec<u8> =
        sqlx::query_scalar("select credentials_sealed from channel_accounts where id = $1::uuid")
            .bind(&ids[0])
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert!(
        wiped.is_empty(),
        "a disconnected account keeps no credentials"
    );
    app.gql_ok(
        Some(&other.token),
        CONNECT,
        json!({ "input": { "type": "WHATSAPP", "name": "Same number", "credentials": credentials("WHATSAPP") } }),
    )
    .await;
    let listed = app.gql_ok(Some(&admin.token), ACCOUNTS, json!({})).await;
    assert_eq!(listed["channelAccounts"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn credentials_are_checked_for_what_each_provider_needs() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Checks").await;
    for (kind, credentials, words) in [
        (
            "WHATSAPP",
            json!({ "access_token": "x", "phone_number_id": "1" }),
            "need app_secret, verify_token",
        ),
        (
            "LINE",
            json!({ "channel_id": "1", "channel_access_token": "x", "channel_secret": "y", "colour": "green" }),
            "no field 'colour'",
        ),
        (
            "TELEGRAM",
            json!({ "bot_token": "not-a-token" }),
            "123456789:AA",
        ),
        (
            "SMS",
            json!({ "account_sid": "AC1", "auth_token": "x", "phone_number": "0812" }),
            "international form",
        ),
        ("VIBER", json!({ "auth_token": "" }), "non-empty"),
        ("VIBER", json!("a string"), "JSON object"),
    ] {
        let response = app
            .gql(
                Some(&admin.token),
                CONNECT,
                json!({ "input": { "type": kind, "name": "Bad", "credentials": credentials } }),
            )
            .await;
        assert_eq!(
            error_code(&response),
            Some("VALIDATION"),
            "{kind}: {response:#}"
        );
        let message = response["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(words), "{kind}: {message}");
    }
    let listed = app.gql_ok(Some(&admin.token), ACCOUNTS, json!({})).await;
    assert_eq!(listed["channelAccounts"], json!([]));
}
