//! Subscriptions over graphql-ws, fanned out across processes through LISTEN/NOTIFY.

use std::time::Duration;

use obrol_tests::{Subscription, TestApp};
use serde_json::json;

const PRESENCE: &str = "subscription { presenceChanged { userId presence user { name } } }";
const SET_PRESENCE: &str = "mutation($p: Presence!) { setPresence(presence: $p) { presence } }";

/// Changes `token`'s presence on `node` until `subscription` reports a change (the first
/// change may race the subscription being set up), and returns that report.
async fn presence_until_heard(
    app: &TestApp,
    node: &str,
    token: &str,
    subscription: &mut Subscription,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut presence = "ONLINE";
    while tokio::time::Instant::now() < deadline {
        let data = obrol_tests::gql_at(
            &app.http,
            node,
            Some(token),
            SET_PRESENCE,
            json!({ "p": presence }),
        )
        .await;
        assert!(data["errors"].is_null(), "{data}");
        if let Ok(message) = subscription.next(Duration::from_millis(500)).await {
            return message;
        }
        presence = if presence == "ONLINE" {
            "AWAY"
        } else {
            "ONLINE"
        };
    }
    panic!("no presence event arrived within 20 s");
}

#[tokio::test]
async fn a_presence_change_on_one_node_reaches_a_subscriber_on_another() {
    let app = TestApp::spawn().await;
    let node_b = app.second_node().await;
    let admin = app.sign_up("Acme").await;
    let staff = app.add_user(&admin, "STAFF").await;

    let mut on_b = Subscription::start(&node_b.url, Some(&admin.token), PRESENCE)
        .await
        .unwrap();
    let message = presence_until_heard(&app, &app.server.url, &staff.token, &mut on_b).await;

    assert_eq!(message["type"], "next", "{message}");
    let change = &message["payload"]["data"]["presenceChanged"];
    assert_eq!(change["userId"], staff.user_id.as_str());
    assert_eq!(change["user"]["name"], "A STAFF");
    assert!(["ONLINE", "AWAY"].contains(&change["presence"].as_str().unwrap()));
}

#[tokio::test]
async fn subscribers_hear_only_their_own_company() {
    let app = TestApp::spawn().await;
    let node_b = app.second_node().await;
    let acme = app.sign_up("Acme").await;
    let globex = app.sign_up("Globex").await;

    let mut globex_listener = Subscription::start(&node_b.url, Some(&globex.token), PRESENCE)
        .await
        .unwrap();
    let mut acme_listener = Subscription::start(&node_b.url, Some(&acme.token), PRESENCE)
        .await
        .unwrap();
    // Acme's change reaches Acme's subscriber...
    presence_until_heard(&app, &app.server.url, &acme.token, &mut acme_listener).await;
    // ...and the first thing Globex's subscriber hears is Globex's own change, not Acme's.
    let heard =
        presence_until_heard(&app, &app.server.url, &globex.token, &mut globex_listener).await;

    assert_eq!(
        heard["payload"]["data"]["presenceChanged"]["userId"],
        globex.user_id.as_str()
    );
}

#[tokio::test]
async fn a_subscription_needs_a_valid_token() {
    let app = TestApp::spawn().await;

    let rejected = Subscription::start(&app.server.url, Some("obs_forged"), PRESENCE).await;
    assert!(rejected.is_err(), "a forged token was acknowledged");

    let mut anonymous = Subscription::start(&app.server.url, None, PRESENCE)
        .await
        .unwrap();
    let message = anonymous.next(Duration::from_secs(10)).await.unwrap();
    // The subscription field fails: graphql-ws delivers the field error in the payload.
    assert!(message["payload"]["data"].is_null(), "{message}");
    assert_eq!(
        message["payload"]["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );
}

#[tokio::test]
async fn revoking_a_session_on_one_node_takes_effect_on_another_that_had_it_cached() {
    let app = TestApp::spawn().await;
    let node_b = app.second_node().await;
    let admin = app.sign_up("Acme").await;
    let staff = app.add_user(&admin, "STAFF").await;
    let me = "{ me { id role } }";
    // Node B resolves (and caches) the staff member's session.
    for _ in 0..3 {
        let data =
            obrol_tests::gql_at(&app.http, &node_b.url, Some(&staff.token), me, json!({})).await;
        assert_eq!(data["data"]["me"]["role"], "STAFF");
    }

    // On node A the Admin promotes them, then deactivates them.
    app.gql_ok(
        Some(&admin.token),
        "mutation($u: ID!) { changeUserRole(userId: $u, role: TEAM_ADMIN) { id } }",
        json!({ "u": staff.user_id }),
    )
    .await;
    let role_seen_on_b = poll_until(|| async {
        let data =
            obrol_tests::gql_at(&app.http, &node_b.url, Some(&staff.token), me, json!({})).await;
        data["data"]["me"]["role"] == "TEAM_ADMIN"
    })
    .await;
    assert!(role_seen_on_b, "node B kept serving the old role");

    app.gql_ok(
        Some(&admin.token),
        "mutation($u: ID!) { deactivateUser(userId: $u) { id } }",
        json!({ "u": staff.user_id }),
    )
    .await;
    let refused_on_b = poll_until(|| async {
        let data =
            obrol_tests::gql_at(&app.http, &node_b.url, Some(&staff.token), me, json!({})).await;
        obrol_tests::error_code(&data) == Some("UNAUTHENTICATED")
    })
    .await;
    assert!(
        refused_on_b,
        "node B kept accepting a deactivated user's session"
    );
}

/// Polls `check` until it holds, for at most 5 s (well under the cache's 30 s lifetime, so a
/// pass means the change was pushed, not merely expired).
async fn poll_until<F, Fut>(check: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn an_open_socket_loses_the_powers_its_user_loses() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;
    let other = app.add_user(&admin, "ADMIN").await;
    let mut socket = Subscription::start(&app.server.url, Some(&other.token), PRESENCE)
        .await
        .unwrap();
    let promote_self = "mutation($u: ID!) { changeUserRole(userId: $u, role: ADMIN) { role } }";

    // Demoted over HTTP, the socket's user can no longer act as an Admin over the socket.
    app.gql_ok(
        Some(&admin.token),
        "mutation($u: ID!) { changeUserRole(userId: $u, role: STAFF) { id } }",
        json!({ "u": other.user_id }),
    )
    .await;
    socket
        .send("2", promote_self, json!({ "u": other.user_id }))
        .await
        .unwrap();
    let refused = socket.next_for("2", Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );

    // Deactivated, the socket can do nothing, and its subscription ends instead of delivering.
    app.gql_ok(
        Some(&admin.token),
        "mutation($u: ID!) { deactivateUser(userId: $u) { id } }",
        json!({ "u": other.user_id }),
    )
    .await;
    socket
        .send("3", SET_PRESENCE, json!({ "p": "ONLINE" }))
        .await
        .unwrap();
    let unauthenticated = socket.next_for("3", Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        unauthenticated["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{unauthenticated}"
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut presence = "ONLINE";
    let ended = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the subscription neither ended nor delivered"
        );
        app.gql_ok(Some(&admin.token), SET_PRESENCE, json!({ "p": presence }))
            .await;
        if let Ok(message) = socket.next_for("1", Duration::from_millis(500)).await {
            break message;
        }
        presence = if presence == "ONLINE" {
            "AWAY"
        } else {
            "ONLINE"
        };
    };
    assert_eq!(
        ended["type"], "complete",
        "a deactivated user still received: {ended}"
    );
    let role: String = sqlx::query_scalar("select role from users where id = $1::uuid")
        .bind(&other.user_id)
        .fetch_one(&mut app.db.superuser().await.unwrap())
        .await
        .unwrap();
    assert_eq!(role, "STAFF");
}

#[tokio::test]
async fn a_revocation_made_while_the_listener_is_disconnected_is_not_missed() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;
    let staff = app.add_user(&admin, "STAFF").await;
    let me = "{ me { id } }";
    for _ in 0..3 {
        app.gql_ok(Some(&staff.token), me, json!({})).await; // now cached
    }

    // Cut the server's LISTEN connection and revoke the session in the same statement, so
    // the trigger's notification is sent while nobody is listening.
    let mut db = app.db.superuser().await.unwrap();
    let cut: i64 = sqlx::query_scalar(
        "with cut as (
             select pg_terminate_backend(pid) from pg_stat_activity
             where datname = current_database() and query ilike 'listen%'
         ), revoked as (
             update sessions set revoked_at = now() where user_id = $1::uuid returning 1
         )
         select (select count(*) from cut) + (select count(*) from revoked)",
    )
    .bind(&staff.user_id)
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert!(
        cut >= 2,
        "expected to cut the listener and revoke a session"
    );

    let refused = poll_until(|| async {
        let data = app.gql(Some(&staff.token), me, json!({})).await;
        obrol_tests::error_code(&data) == Some("UNAUTHENTICATED")
    })
    .await;
    assert!(
        refused,
        "a revoked session kept working after the listener reconnected"
    );
}
