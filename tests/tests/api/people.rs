//! Users, roles, teams, company settings, presence and the audit log.

use obrol_tests::{error_code, Session, TestApp, PASSWORD};
use serde_json::{json, Value};

const LOG_IN: &str = "mutation($e: String!, $p: String!) {
    logIn(input: { email: $e, password: $p }) { token } }";
const ME: &str = "{ me { id name email role status presence teams { name } } }";
const INVITE: &str = "mutation($input: InviteUserInput!) {
    inviteUser(input: $input) { token user { id status role } } }";
const ACCEPT: &str = "mutation($t: String!, $p: String!, $n: String) {
    acceptInvite(input: { token: $t, password: $p, name: $n }) { token user { id status } } }";
const CHANGE_ROLE: &str = "mutation($u: ID!, $r: Role!) {
    changeUserRole(userId: $u, role: $r) { id role } }";
const DEACTIVATE: &str = "mutation($u: ID!) { deactivateUser(userId: $u) { id status } }";
const REACTIVATE: &str = "mutation($u: ID!) { reactivateUser(userId: $u) { id status } }";
const ADD_MEMBER: &str = "mutation($t: ID!, $u: ID!) {
    addTeamMember(teamId: $t, userId: $u) { id members { id } } }";
const REMOVE_MEMBER: &str = "mutation($t: ID!, $u: ID!) {
    removeTeamMember(teamId: $t, userId: $u) { id members { id } } }";
const TEAM: &str = "query($t: ID!) { team(id: $t) { name members { id } } }";
const CREATE_KEY: &str = "mutation($s: [ApiScope!]!) {
    createApiKey(input: { name: \"integration\", scopes: $s }) { key apiKey { id } } }";
const SETTINGS: &str = "mutation($input: UpdateCompanySettingsInput!) {
    updateCompanySettings(input: $input) {
        name timezone plan monthlyActiveContactAllowance
        workingHours { day intervals { start end } } } }";
const COMPANY: &str = "{ company { name timezone plan monthlyActiveContactAllowance
    workingHours { day intervals { start end } } } }";
const AUDIT: &str =
    "query($first: Int, $after: String) { auditEvents(first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    nodes { id action targetId details createdAt apiKeyId actor { id } } } }";
const USERS_PAGE: &str =
    "query($first: Int, $after: String) { users(first: $first, after: $after) {
    totalCount pageInfo { hasNextPage hasPreviousPage endCursor } edges { cursor node { id } } } }";

/// Runs `query` as `who`; it must succeed. Returns `data`.
async fn ok(app: &TestApp, who: &Session, query: &str, variables: Value) -> Value {
    app.gql_ok(Some(&who.token), query, variables).await
}

/// Asserts that the request with `token` fails with `code`.
async fn expect_code(app: &TestApp, token: &str, query: &str, variables: Value, code: &str) {
    let response = app.gql(Some(token), query, variables).await;
    assert_eq!(error_code(&response), Some(code), "{query}: {response}");
}

/// Variables naming a team and a user.
fn member(team: &str, user: &Session) -> Value {
    json!({ "t": team, "u": user.user_id })
}

/// Variables naming a user.
fn target(user: &Session) -> Value {
    json!({ "u": user.user_id })
}

/// Variables naming a user and a role.
fn role(user: &Session, role: &str) -> Value {
    json!({ "u": user.user_id, "r": role })
}

async fn log_in(app: &TestApp, email: &str, password: &str) -> Value {
    app.gql(None, LOG_IN, json!({ "e": email, "p": password }))
        .await
}

/// Logs in and returns the new session token.
async fn log_in_ok(app: &TestApp, email: &str) -> String {
    let response = log_in(app, email, PASSWORD).await;
    let token = response["data"]["logIn"]["token"].as_str();
    token.unwrap_or_else(|| panic!("{response}")).to_string()
}

async fn create_team(app: &TestApp, token: &str, name: &str) -> Value {
    let query = "mutation($n: String!) { createTeam(input: { name: $n }) { id name } }";
    app.gql(Some(token), query, json!({ "n": name })).await
}

async fn new_team(app: &TestApp, admin: &Session, name: &str) -> String {
    let response = create_team(app, &admin.token, name).await;
    let id = response["data"]["createTeam"]["id"].as_str();
    id.unwrap_or_else(|| panic!("{response}")).to_string()
}

async fn me(app: &TestApp, user: &Session) -> Value {
    ok(app, user, ME, json!({})).await["me"].clone()
}

fn ids(list: &Value) -> Vec<String> {
    let items = list.as_array().unwrap().iter();
    items
        .map(|item| item["id"].as_str().unwrap().into())
        .collect()
}

fn actions(events: &[Value]) -> Vec<&str> {
    let actions = events.iter().map(|event| event["action"].as_str());
    actions.map(Option::unwrap).collect()
}

/// An RFC 3339 UTC time from the API as a sortable key (the fraction's length varies).
fn instant(value: &Value) -> (String, u32) {
    let (seconds, rest) = value.as_str().unwrap().split_at(19);
    let fraction = rest.trim_start_matches('.');
    let digits: String = fraction.chars().take_while(char::is_ascii_digit).collect();
    (seconds.into(), format!("{digits:0<9}").parse().unwrap())
}

async fn audit_events(app: &TestApp, admin: &Session) -> Vec<Value> {
    let data = ok(app, admin, AUDIT, json!({ "first": 100 })).await;
    data["auditEvents"]["nodes"].as_array().unwrap().clone()
}

#[tokio::test]
async fn an_invited_person_sets_a_password_logs_in_as_staff_and_cannot_reuse_the_invitation() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;
    let input = json!({ "input": { "email": "Siti@Example.com", "name": "S", "role": "STAFF" } });
    let invited = ok(&app, &admin, INVITE, input.clone()).await;
    let invite_token = invited["inviteUser"]["token"].as_str().unwrap();
    assert_eq!(invited["inviteUser"]["user"]["status"], "INVITED");
    let early = log_in(&app, "siti@example.com", PASSWORD).await;
    assert_eq!(error_code(&early), Some("UNAUTHENTICATED")); // no password yet

    let vars = json!({ "t": invite_token, "p": PASSWORD, "n": "Siti Rahma" });
    let accepted = app.gql_ok(None, ACCEPT, vars).await;
    assert_eq!(accepted["acceptInvite"]["user"]["status"], "ACTIVE");
    let token = log_in_ok(&app, "siti@example.com").await;
    let me = app.gql_ok(Some(&token), ME, json!({})).await["me"].clone();
    assert_eq!(me["role"], "STAFF");
    assert_eq!(me["name"], "Siti Rahma");
    assert_eq!(me["email"], "siti@example.com");

    let other_password = "a different long password";
    let again = json!({ "t": invite_token, "p": other_password });
    let reused = app.gql(None, ACCEPT, again).await;
    assert_eq!(error_code(&reused), Some("NOT_FOUND"));
    let with_other = log_in(&app, "siti@example.com", other_password).await;
    assert_eq!(error_code(&with_other), Some("UNAUTHENTICATED"));
    expect_code(&app, &admin.token, INVITE, input, "CONFLICT").await;
}

#[tokio::test]
async fn staff_are_refused_admin_operations_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;
    let staff = app.add_user(&admin, "STAFF").await;
    let friend = json!({ "input": { "email": "pal@example.com", "name": "F", "role": "STAFF" } });
    let create_team = "mutation { createTeam(input: { name: \"Staff club\" }) { id } }";
    let settings = json!({ "input": { "name": "Staffco", "plan": "ENTERPRISE" } });

    let attempts = [
        (create_team, json!({})),
        (SETTINGS, settings),
        (CHANGE_ROLE, role(&staff, "ADMIN")),
        (CHANGE_ROLE, role(&admin, "STAFF")),
        (DEACTIVATE, target(&admin)),
        (INVITE, friend),
        (CREATE_KEY, json!({ "s": ["USERS_READ"] })),
        ("{ auditEvents { totalCount } }", json!({})),
        ("{ apiKeys { id } }", json!({})),
    ];
    for (query, variables) in attempts {
        expect_code(&app, &staff.token, query, variables, "FORBIDDEN").await;
    }

    let query = "{ teams { totalCount } company { name plan } users { nodes { role } }
                   apiKeys { id } }";
    let data = ok(&app, &admin, query, json!({})).await;
    assert_eq!(data["teams"]["totalCount"], 0);
    assert_eq!(data["company"], json!({ "name": "Acme", "plan": "FREE" }));
    let roles = json!([{ "role": "ADMIN" }, { "role": "STAFF" }]);
    assert_eq!(data["users"]["nodes"], roles);
    assert_eq!(data["apiKeys"], json!([]));
    let events = audit_events(&app, &admin).await;
    let expected = ["INVITE_ACCEPTED", "USER_INVITED", "COMPANY_CREATED"];
    assert_eq!(actions(&events), expected);
    // What Staff may do, they still can.
    let query = "{ users { totalCount } company { name } }";
    let read = ok(&app, &staff, query, json!({})).await;
    assert_eq!(read["users"]["totalCount"], 2);
}

#[tokio::test]
async fn role_changes_take_effect_at_once_are_audited_and_keep_an_admin() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;
    let staff = app.add_user(&admin, "STAFF").await;

    let changed = ok(&app, &admin, CHANGE_ROLE, role(&staff, "TEAM_ADMIN")).await;
    assert_eq!(changed["changeUserRole"]["role"], "TEAM_ADMIN");
    assert_eq!(me(&app, &staff).await["role"], "TEAM_ADMIN", "seen at once");
    let latest = &audit_events(&app, &admin).await[0];
    assert_eq!(latest["action"], "ROLE_CHANGED");
    assert_eq!(latest["targetId"], staff.user_id.as_str());
    let details = json!({ "from": "STAFF", "to": "TEAM_ADMIN" });
    assert_eq!(latest["details"], details);
    assert_eq!(latest["actor"]["id"], admin.user_id.as_str());

    // The only Admin cannot step down...
    let demote = role(&admin, "STAFF");
    expect_code(&app, &admin.token, CHANGE_ROLE, demote, "CONFLICT").await;
    assert_eq!(me(&app, &admin).await["role"], "ADMIN");
    // ...until someone else is Admin; then that new only Admin cannot be demoted.
    ok(&app, &admin, CHANGE_ROLE, role(&staff, "ADMIN")).await;
    let stepped_down = ok(&app, &admin, CHANGE_ROLE, role(&admin, "STAFF")).await;
    assert_eq!(stepped_down["changeUserRole"]["role"], "STAFF");
    let demote = role(&staff, "STAFF");
    expect_code(&app, &staff.token, CHANGE_ROLE, demote, "CONFLICT").await;
    assert_eq!(me(&app, &staff).await["role"], "ADMIN");
}

#[tokio::test]
async fn a_deactivated_user_is_locked_out_until_reactivated() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;
    let staff = app.add_user(&admin, "STAFF").await;
    me(&app, &staff).await;

    let deactivated = ok(&app, &admin, DEACTIVATE, target(&staff)).await;
    assert_eq!(deactivated["deactivateUser"]["status"], "DEACTIVATED");
    expect_code(&app, &staff.token, ME, json!({}), "UNAUTHENTICATED").await;
    let refused = log_in(&app, &staff.email, PASSWORD).await;
    assert_eq!(error_code(&refused), Some("UNAUTHENTICATED"));

    let reactivated = ok(&app, &admin, REACTIVATE, target(&staff)).await;
    assert_eq!(reactivated["reactivateUser"]["status"], "ACTIVE");
    // The old session stays ended; logging in again works.
    expect_code(&app, &staff.token, ME, json!({}), "UNAUTHENTICATED").await;
    let token = log_in_ok(&app, &staff.email).await;
    let me_again = app.gql_ok(Some(&token), ME, json!({})).await;
    assert_eq!(me_again["me"]["status"], "ACTIVE");

    let myself = target(&admin);
    expect_code(&app, &admin.token, DEACTIVATE, myself, "CONFLICT").await;
    assert_eq!(me(&app, &admin).await["status"], "ACTIVE");

    // An API key acts for its creator, so deactivating the creator stops the key too.
    let other_admin = app.add_user(&admin, "ADMIN").await;
    let scopes = json!({ "s": ["USERS_READ"] });
    let created = ok(&app, &other_admin, CREATE_KEY, scopes).await;
    let key = created["createApiKey"]["key"].as_str().unwrap();
    let users = "{ users { totalCount } }";
    app.gql_ok(Some(key), users, json!({})).await;
    ok(&app, &admin, DEACTIVATE, target(&other_admin)).await;
    expect_code(&app, key, users, json!({}), "UNAUTHENTICATED").await;
}

#[tokio::test]
async fn deactivating_an_invited_user_withdraws_their_invitation() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;
    let input = json!({ "input": { "email": "wrong@example.com", "name": "W", "role": "ADMIN" } });
    let invited = ok(&app, &admin, INVITE, input).await;
    let invite_token = invited["inviteUser"]["token"].as_str().unwrap();
    let user = json!({ "u": invited["inviteUser"]["user"]["id"] });
    let deactivated = ok(&app, &admin, DEACTIVATE, user.clone()).await;
    assert_eq!(deactivated["deactivateUser"]["status"], "DEACTIVATED");

    let accept = json!({ "t": invite_token, "p": PASSWORD });
    let accepted = app.gql(None, ACCEPT, accept).await;

    assert!(accepted["errors"].is_array(), "accepted: {accepted}");
    let query = "query($u: ID!) { user(id: $u) { status } }";
    let status = ok(&app, &admin, query, user).await;
    assert_eq!(status["user"]["status"], "DEACTIVATED");
    let log_in_after = log_in(&app, "wrong@example.com", PASSWORD).await;
    assert_eq!(error_code(&log_in_after), Some("UNAUTHENTICATED"));
}

/// Two Admins demoting or deactivating each other at the same moment: each request alone sees
/// two active Admins, but together they must not leave the company without one.
#[tokio::test]
async fn two_admins_acting_against_each_other_at_once_still_leave_an_active_admin() {
    let app = TestApp::spawn().await;
    let mut db = app.db.superuser().await.unwrap();
    let count = "select count(*) from users
                 where company_id = $1::uuid and role = 'ADMIN' and status = 'ACTIVE'";
    for round in 0..10 {
        for query in [CHANGE_ROLE, DEACTIVATE] {
            let first = app.sign_up(&format!("Race {round}")).await;
            let second = app.add_user(&first, "ADMIN").await;
            let (x, y) = tokio::join!(
                app.gql(Some(&first.token), query, role(&second, "STAFF")),
                app.gql(Some(&second.token), query, role(&first, "STAFF")),
            );
            let bound = sqlx::query_scalar(count).bind(&first.company_id);
            let active_admins: i64 = bound.fetch_one(&mut db).await.unwrap();
            assert!(active_admins >= 1, "round {round}: no Admin left\n{x}\n{y}");
        }
    }
}

#[tokio::test]
async fn teams_have_unique_names_and_members_can_join_and_leave() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;
    let staff = app.add_user(&admin, "STAFF").await;
    let support = new_team(&app, &admin, "Support").await;

    let duplicate = create_team(&app, &admin.token, " SUPPORT ").await;
    assert_eq!(error_code(&duplicate), Some("CONFLICT"));
    let blank = create_team(&app, &admin.token, "   ").await;
    assert_eq!(error_code(&blank), Some("VALIDATION"));
    let billing = new_team(&app, &admin, "Billing").await;

    let added = ok(&app, &admin, ADD_MEMBER, member(&support, &staff)).await;
    let only_staff = [staff.user_id.clone()];
    assert_eq!(ids(&added["addTeamMember"]["members"]), only_staff);
    // Adding someone twice keeps one membership.
    ok(&app, &admin, ADD_MEMBER, member(&support, &staff)).await;
    ok(&app, &admin, ADD_MEMBER, member(&billing, &staff)).await;
    let team = ok(&app, &staff, TEAM, json!({ "t": support })).await;
    assert_eq!(team["team"]["name"], "Support");
    assert_eq!(ids(&team["team"]["members"]), only_staff);
    let teams = json!([{ "name": "Billing" }, { "name": "Support" }]);
    assert_eq!(me(&app, &staff).await["teams"], teams);
    let listed = ok(&app, &staff, "{ teams { totalCount } }", json!({})).await;
    assert_eq!(listed["teams"]["totalCount"], 2);

    let removed = ok(&app, &admin, REMOVE_MEMBER, member(&support, &staff)).await;
    assert_eq!(removed["removeTeamMember"]["members"], json!([]));
    let teams = json!([{ "name": "Billing" }]);
    assert_eq!(me(&app, &staff).await["teams"], teams);
    let nobody = json!({ "t": support, "u": uuid::Uuid::now_v7().to_string() });
    expect_code(&app, &admin.token, ADD_MEMBER, nobody, "NOT_FOUND").await;
}

#[tokio::test]
async fn a_team_admin_manages_only_the_teams_they_belong_to() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;
    let lead = app.add_user(&admin, "TEAM_ADMIN").await;
    let staff = app.add_user(&admin, "STAFF").await;
    let sales = new_team(&app, &admin, "Sales").await;
    let billing = new_team(&app, &admin, "Billing").await;
    ok(&app, &admin, ADD_MEMBER, member(&sales, &lead)).await;

    let added = ok(&app, &lead, ADD_MEMBER, member(&sales, &staff)).await;
    let expected = [lead.user_id.clone(), staff.user_id.clone()];
    assert_eq!(ids(&added["addTeamMember"]["members"]), expected);
    for who in [&staff, &lead] {
        let other_team = member(&billing, who);
        expect_code(&app, &lead.token, ADD_MEMBER, other_team, "FORBIDDEN").await;
    }
    let team = ok(&app, &admin, TEAM, json!({ "t": billing })).await;
    assert_eq!(team["team"]["members"], json!([]));
    let create = "mutation { createTeam(input: { name: \"Mine\" }) { id } }";
    expect_code(&app, &lead.token, create, json!({}), "FORBIDDEN").await;

    // Invitations: Staff, into their own team only.
    fn invite(email: &str, role: &str, team: &str) -> Value {
        json!({ "input": { "email": email, "name": "N", "role": role, "teamIds": [team] } })
    }
    let into_sales = invite("new@example.com", "STAFF", &sales);
    let invited = ok(&app, &lead, INVITE, into_sales).await;
    assert_eq!(invited["inviteUser"]["user"]["role"], "STAFF");
    let elsewhere = invite("x@example.com", "STAFF", &billing);
    expect_code(&app, &lead.token, INVITE, elsewhere, "FORBIDDEN").await;
    let as_admin = invite("y@example.com", "ADMIN", &sales);
    expect_code(&app, &lead.token, INVITE, as_admin, "FORBIDDEN").await;

    let removed = ok(&app, &lead, REMOVE_MEMBER, member(&sales, &staff)).await;
    assert!(!ids(&removed["removeTeamMember"]["members"]).contains(&staff.user_id));
    let count = ok(&app, &admin, "{ users { totalCount } }", json!({})).await;
    assert_eq!(count["users"]["totalCount"], 4, "one invitation succeeded");
}

#[tokio::test]
async fn presence_shows_on_me_and_in_the_user_list() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;
    let staff = app.add_user(&admin, "STAFF").await;
    assert_eq!(me(&app, &staff).await["presence"], "OFFLINE");

    let set = "mutation($p: Presence!) { setPresence(presence: $p) { id presence } }";
    let changed = ok(&app, &staff, set, json!({ "p": "ONLINE" })).await;
    assert_eq!(changed["setPresence"]["presence"], "ONLINE");
    assert_eq!(changed["setPresence"]["id"], staff.user_id.as_str());
    assert_eq!(me(&app, &staff).await["presence"], "ONLINE");
    let list = "{ users { nodes { id presence } } }";
    let listed = ok(&app, &admin, list, json!({})).await;
    let expected = json!([{ "id": admin.user_id, "presence": "OFFLINE" },
                          { "id": staff.user_id, "presence": "ONLINE" }]);
    assert_eq!(listed["users"]["nodes"], expected);

    ok(&app, &staff, set, json!({ "p": "AWAY" })).await;
    let listed = ok(&app, &admin, list, json!({})).await;
    assert_eq!(listed["users"]["nodes"][1]["presence"], "AWAY");
}

#[tokio::test]
async fn company_settings_are_validated_saved_and_audited() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;
    let staff = app.add_user(&admin, "STAFF").await;
    let monday = json!([{ "day": "MONDAY", "intervals": [{ "start": "08:00", "end": "17:00" }] }]);
    let input = json!({ "input": { "name": "Acme Indonesia", "timezone": "Asia/Jakarta",
                                   "workingHours": monday, "plan": "PRO" } });

    let updated = ok(&app, &admin, SETTINGS, input).await;

    let expected = json!({ "name": "Acme Indonesia", "timezone": "Asia/Jakarta", "plan": "PRO",
                           "monthlyActiveContactAllowance": 2000, "workingHours": monday });
    assert_eq!(updated["updateCompanySettings"], expected);
    let seen_by_staff = ok(&app, &staff, COMPANY, json!({})).await;
    assert_eq!(seen_by_staff["company"], expected);
    let day = |day: &str, spans: &[(&str, &str)]| {
        let spans = spans
            .iter()
            .map(|(start, end)| json!({ "start": start, "end": end }));
        let intervals: Vec<Value> = spans.collect();
        json!({ "workingHours": [{ "day": day, "intervals": intervals }] })
    };
    let invalid = [
        json!({ "timezone": "Mars/Olympus" }),
        day("MONDAY", &[("08:00", "12:00"), ("11:00", "17:00")]),
        day("TUESDAY", &[("17:00", "08:00")]),
        day("TUESDAY", &[("8:00", "25:00")]),
        json!({ "name": "  " }),
    ];
    for input in invalid {
        let vars = json!({ "input": input });
        expect_code(&app, &admin.token, SETTINGS, vars, "VALIDATION").await;
    }
    let unchanged = ok(&app, &admin, COMPANY, json!({})).await;
    assert_eq!(unchanged["company"], expected);

    // Fields left out keep their values.
    let rename = json!({ "input": { "name": "Acme ID" } });
    let renamed = ok(&app, &admin, SETTINGS, rename).await;
    assert_eq!(renamed["updateCompanySettings"]["timezone"], "Asia/Jakarta");
    assert_eq!(renamed["updateCompanySettings"]["workingHours"], monday);

    let events = audit_events(&app, &admin).await;
    let settings = events.iter().filter(|e| e["action"] == "SETTINGS_UPDATED");
    let settings: Vec<&Value> = settings.collect();
    assert_eq!(settings.len(), 2, "one event per successful update");
    assert_eq!(settings[1]["details"]["before"]["plan"], "FREE");
    assert_eq!(settings[1]["details"]["after"]["plan"], "PRO");
    assert_eq!(settings[1]["details"]["after"]["timezone"], "Asia/Jakarta");
    assert_eq!(settings[0]["details"]["after"]["name"], "Acme ID");
    assert_eq!(settings[0]["actor"]["id"], admin.user_id.as_str());
}

#[tokio::test]
async fn the_user_list_pages_by_cursor_without_overlap() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;
    for role in ["STAFF", "STAFF", "TEAM_ADMIN"] {
        app.add_user(&admin, role).await;
    }
    let pending = json!({ "input": { "email": "late@example.com", "name": "L", "role": "STAFF" } });
    ok(&app, &admin, INVITE, pending).await;

    let mut seen = Vec::new();
    let mut after = Value::Null;
    for (expected_len, expected_next) in [(2, true), (2, true), (1, false)] {
        let vars = json!({ "first": 2, "after": after });
        let data = ok(&app, &admin, USERS_PAGE, vars).await;
        let page = &data["users"];
        let edges = page["edges"].as_array().unwrap();
        assert_eq!(edges.len(), expected_len, "{page}");
        assert_eq!(page["totalCount"], 5);
        assert_eq!(page["pageInfo"]["hasNextPage"], expected_next);
        assert_eq!(page["pageInfo"]["hasPreviousPage"], !after.is_null());
        let last = edges.last().unwrap();
        assert_eq!(page["pageInfo"]["endCursor"], last["cursor"]);
        let nodes: Vec<Value> = edges.iter().map(|edge| edge["node"].clone()).collect();
        seen.extend(ids(&Value::Array(nodes)));
        after = page["pageInfo"]["endCursor"].clone();
    }
    let query = "{ users(first: 100) { nodes { id } } }";
    let all = ok(&app, &admin, query, json!({})).await;
    let every_user = ids(&all["users"]["nodes"]);
    assert_eq!(seen, every_user, "each user once, oldest first");
    assert_eq!(seen[0], admin.user_id);

    let bad_cursor = json!({ "first": 2, "after": "not-a-cursor" });
    expect_code(&app, &admin.token, USERS_PAGE, bad_cursor, "VALIDATION").await;
    let too_many = json!({ "first": 101 });
    expect_code(&app, &admin.token, USERS_PAGE, too_many, "VALIDATION").await;
}

#[tokio::test]
async fn the_audit_log_tells_who_did_what_newest_first() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;
    let second_session = log_in_ok(&app, &admin.email).await;
    let input = json!({ "input": { "email": "rina@example.com", "name": "R", "role": "STAFF" } });
    let invited = ok(&app, &admin, INVITE, input).await;
    let rina = invited["inviteUser"]["user"]["id"].as_str().unwrap();
    let accept = json!({ "t": invited["inviteUser"]["token"], "p": PASSWORD });
    app.gql_ok(None, ACCEPT, accept).await;
    let team = new_team(&app, &admin, "Support").await;
    ok(&app, &admin, ADD_MEMBER, json!({ "t": team, "u": rina })).await;
    let created = ok(&app, &admin, CREATE_KEY, json!({ "s": ["TEAMS_WRITE"] })).await;
    let key = created["createApiKey"]["key"].as_str().unwrap();
    let key_id = created["createApiKey"]["apiKey"]["id"].as_str().unwrap();
    create_team(&app, key, "Made by a key").await;
    log_in(&app, "rina@example.com", "not her password").await;
    let log_out = "mutation { logOut }";
    app.gql_ok(Some(&second_session), log_out, json!({})).await;

    let events = audit_events(&app, &admin).await;

    let expected = "LOGOUT LOGIN_FAILED TEAM_CREATED API_KEY_CREATED TEAM_MEMBER_ADDED \
                    TEAM_CREATED INVITE_ACCEPTED USER_INVITED LOGIN COMPANY_CREATED";
    assert_eq!(actions(&events).join(" "), expected);
    let actors: Vec<&Value> = events.iter().map(|event| &event["actor"]["id"]).collect();
    let (a, r) = (&json!(admin.user_id), &json!(rina));
    assert_eq!(actors, [a, r, a, a, a, a, r, a, a, a]);
    let newest_first = |w: &[Value]| instant(&w[0]["createdAt"]) >= instant(&w[1]["createdAt"]);
    assert!(events.windows(2).all(newest_first));
    assert_eq!(events[2]["apiKeyId"], key_id, "done through the key");
    assert_eq!(events[5]["apiKeyId"], Value::Null);
    assert_eq!(&events[4]["details"]["userId"], r);
    assert_eq!(&events[7]["targetId"], r);
    assert_eq!(events[7]["details"]["email"], "rina@example.com");

    // Paging the log walks the same events, newest first, without overlap.
    let page = json!({ "first": 6 });
    let first = ok(&app, &admin, AUDIT, page).await["auditEvents"].clone();
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    assert_eq!(first["totalCount"], 10);
    let vars = json!({ "first": 6, "after": first["pageInfo"]["endCursor"] });
    let rest = ok(&app, &admin, AUDIT, vars).await["auditEvents"].clone();
    assert_eq!(rest["pageInfo"]["hasNextPage"], false);
    let paged = [ids(&first["nodes"]), ids(&rest["nodes"])].concat();
    assert_eq!(paged, ids(&Value::Array(events)));
}
