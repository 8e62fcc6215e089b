//! Tenant isolation: one company can neither read nor change another company's data, whether
//! through the API with the other company's IDs or in the database as the application role.

use obrol_tests::{error_code, Session, TestApp};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, Postgres, Transaction};

const TENANT_TABLES: [&str; 9] = [
    "companies",
    "users",
    "recovery_codes",
    "teams",
    "team_members",
    "sessions",
    "api_keys",
    "invites",
    "audit_events",
];

/// Everything company A owns, by ID.
struct CompanyA {
    admin: Session,
    staff: Session,
    former: Session,
    team_id: String,
    invited_user_id: String,
    admin_session_id: String,
    staff_session_id: String,
    api_key: String,
    api_key_id: String,
}

async fn create_team(app: &TestApp, admin: &Session, name: &str) -> String {
    let data = app
        .gql_ok(
            Some(&admin.token),
            "mutation($n: String!) { createTeam(input: { name: $n }) { id } }",
            json!({ "n": name }),
        )
        .await;
    data["createTeam"]["id"].as_str().unwrap().to_string()
}

fn ids(list: &Value) -> Vec<String> {
    let items = list.as_array().unwrap().iter();
    items
        .map(|item| item["id"].as_str().unwrap().into())
        .collect()
}

async fn current_session_id(app: &TestApp, user: &Session) -> String {
    let data = app
        .gql_ok(
            Some(&user.token),
            "{ mySessions { id current } }",
            json!({}),
        )
        .await;
    let sessions = data["mySessions"].as_array().unwrap();
    let current = sessions.iter().find(|s| s["current"] == true).unwrap();
    current["id"].as_str().unwrap().to_string()
}

/// Company A: a team with a member, a deactivated user, a pending invitation, an API key,
/// sessions and the audit events all of that left.
async fn arrange_company_a(app: &TestApp) -> CompanyA {
    let admin = app.sign_up("Company A").await;
    let staff = app.add_user(&admin, "STAFF").await;
    let former = app.add_user(&admin, "STAFF").await;
    let team_id = create_team(app, &admin, "A Sales").await;
    let token = Some(admin.token.as_str());
    app.gql_ok(token, ADD_MEMBER, team_user(&team_id, &staff.user_id))
        .await;
    app.gql_ok(token, DEACTIVATE, user(&former.user_id)).await;
    let pending = invite("pending-a@example.com", &team_id);
    let invited = app.gql_ok(token, INVITE, pending).await;
    let key_query = "mutation { createApiKey(input: { name: \"A sync\",
        scopes: [USERS_READ, TEAMS_READ] }) { key apiKey { id } } }";
    let key = app.gql_ok(token, key_query, json!({})).await;
    CompanyA {
        admin_session_id: current_session_id(app, &admin).await,
        staff_session_id: current_session_id(app, &staff).await,
        invited_user_id: invited["inviteUser"]["user"]["id"].as_str().unwrap().into(),
        api_key: key["createApiKey"]["key"].as_str().unwrap().into(),
        api_key_id: key["createApiKey"]["apiKey"]["id"].as_str().unwrap().into(),
        admin,
        staff,
        former,
        team_id,
    }
}

const USER: &str = "query($u: ID!) { user(id: $u) { id email } }";
const TEAM: &str = "query($t: ID!) { team(id: $t) { id name } }";
const TO_ADMIN: &str = "mutation($u: ID!) { changeUserRole(userId: $u, role: ADMIN) { id } }";
const TO_STAFF: &str = "mutation($u: ID!) { changeUserRole(userId: $u, role: STAFF) { id } }";
const DEACTIVATE: &str = "mutation($u: ID!) { deactivateUser(userId: $u) { id } }";
const REACTIVATE: &str = "mutation($u: ID!) { reactivateUser(userId: $u) { id } }";
const ADD_MEMBER: &str =
    "mutation($t: ID!, $u: ID!) { addTeamMember(teamId: $t, userId: $u) { id } }";
const REMOVE_MEMBER: &str =
    "mutation($t: ID!, $u: ID!) { removeTeamMember(teamId: $t, userId: $u) { id } }";
const REVOKE_SESSION: &str = "mutation($id: ID!) { revokeSession(id: $id) }";
const REVOKE_KEY: &str = "mutation($id: ID!) { revokeApiKey(id: $id) { id } }";
const INVITE: &str = "mutation($input: InviteUserInput!) {
    inviteUser(input: $input) { token user { id } } }";

fn user(id: &str) -> Value {
    json!({ "u": id })
}

fn team(id: &str) -> Value {
    json!({ "t": id })
}

fn team_user(team: &str, user: &str) -> Value {
    json!({ "t": team, "u": user })
}

fn id(id: &str) -> Value {
    json!({ "id": id })
}

fn invite(email: &str, team: &str) -> Value {
    json!({ "input": { "email": email, "name": "N", "role": "STAFF", "teamIds": [team] } })
}

#[tokio::test]
async fn another_companys_ids_are_not_found_and_nothing_of_theirs_changes() {
    let app = TestApp::spawn().await;
    let a = arrange_company_a(&app).await;
    let b_admin = app.sign_up("Company B").await;
    let b_staff = app.add_user(&b_admin, "STAFF").await;
    let b_team = create_team(&app, &b_admin, "B Sales").await;
    let (a_staff, a_admin, a_team) = (&a.staff.user_id, &a.admin.user_id, &a.team_id);

    let attempts = [
        (USER, user(a_staff)),
        (USER, user(a_admin)),
        (TEAM, team(a_team)),
        (TO_ADMIN, user(a_staff)),
        (TO_STAFF, user(a_admin)),
        (DEACTIVATE, user(a_staff)),
        (DEACTIVATE, user(a_admin)),
        (REACTIVATE, user(&a.former.user_id)),
        (ADD_MEMBER, team_user(a_team, &b_staff.user_id)),
        (ADD_MEMBER, team_user(&b_team, a_staff)),
        (REMOVE_MEMBER, team_user(a_team, a_staff)),
        (REVOKE_SESSION, id(&a.admin_session_id)),
        (REVOKE_SESSION, id(&a.staff_session_id)),
        (REVOKE_KEY, id(&a.api_key_id)),
        (INVITE, invite("sneaky@example.com", a_team)),
    ];
    for (query, variables) in &attempts {
        let response = app
            .gql(Some(&b_admin.token), query, variables.clone())
            .await;
        assert_eq!(
            error_code(&response),
            Some("NOT_FOUND"),
            "{query} {variables}: {response}"
        );
        assert!(
            response["data"].is_null(),
            "{query} leaked data: {response}"
        );
    }

    // Company A sees all of its things exactly as before.
    let seen = app
        .gql_ok(
            Some(&a.admin.token),
            "query($s: ID!, $a: ID!, $f: ID!, $i: ID!, $t: ID!) {
                staff: user(id: $s) { role status } admin: user(id: $a) { role status }
                former: user(id: $f) { status } invited: user(id: $i) { status }
                team(id: $t) { members { id } } users { totalCount } apiKeys { id revokedAt } }",
            json!({ "s": a.staff.user_id, "a": a.admin.user_id, "f": a.former.user_id,
                    "i": a.invited_user_id, "t": a.team_id }),
        )
        .await;
    assert_eq!(
        seen["staff"],
        json!({ "role": "STAFF", "status": "ACTIVE" })
    );
    assert_eq!(
        seen["admin"],
        json!({ "role": "ADMIN", "status": "ACTIVE" })
    );
    assert_eq!(seen["former"]["status"], "DEACTIVATED");
    assert_eq!(seen["invited"]["status"], "INVITED");
    let mut members = ids(&seen["team"]["members"]);
    members.sort();
    let mut expected = [a.staff.user_id.clone(), a.invited_user_id.clone()];
    expected.sort();
    assert_eq!(members, expected);
    assert_eq!(seen["users"]["totalCount"], 4);
    assert_eq!(
        seen["apiKeys"],
        json!([{ "id": a.api_key_id, "revokedAt": null }])
    );
    // Their sessions and API key still work.
    for token in [&a.admin.token, &a.staff.token] {
        app.gql_ok(Some(token), "{ me { id } }", json!({})).await;
    }
    let by_key = app
        .gql_ok(Some(&a.api_key), "{ users { totalCount } }", json!({}))
        .await;
    assert_eq!(by_key["users"]["totalCount"], 4);

    // Company B gained nothing: no member in its team, no invited user.
    let b_seen = app
        .gql_ok(
            Some(&b_admin.token),
            "query($t: ID!) { team(id: $t) { members { id } } users { totalCount } }",
            json!({ "t": b_team }),
        )
        .await;
    assert_eq!(b_seen["team"]["members"], json!([]));
    assert_eq!(b_seen["users"]["totalCount"], 2);
    let mut db = app.db.superuser().await.unwrap();
    let sneaky: i64 =
        sqlx::query_scalar("select count(*) from users where email = 'sneaky@example.com'")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(sneaky, 0);
}

#[tokio::test]
async fn lists_show_only_the_callers_company() {
    let app = TestApp::spawn().await;
    let a = arrange_company_a(&app).await;
    let b_admin = app.sign_up("Company B").await;
    let b_staff = app.add_user(&b_admin, "STAFF").await;

    let data = app
        .gql_ok(
            Some(&b_admin.token),
            "{ users { totalCount nodes { id } } teams { totalCount } apiKeys { id }
               mySessions { id } company { id name }
               auditEvents(first: 100) { nodes { targetId actor { id } } } }",
            json!({}),
        )
        .await;

    let b_users = [b_admin.user_id.clone(), b_staff.user_id.clone()];
    assert_eq!(ids(&data["users"]["nodes"]), b_users);
    assert_eq!(data["users"]["totalCount"], 2);
    assert_eq!(data["teams"]["totalCount"], 0);
    assert_eq!(data["apiKeys"], json!([]));
    let sessions = ids(&data["mySessions"]);
    assert!(!sessions.contains(&a.admin_session_id) && !sessions.contains(&a.staff_session_id));
    assert_eq!(
        data["company"],
        json!({ "id": b_admin.company_id, "name": "Company B" })
    );
    let a_ids = [
        &a.admin.user_id,
        &a.staff.user_id,
        &a.former.user_id,
        &a.invited_user_id,
        &a.team_id,
        &a.api_key_id,
        &a.admin.company_id,
    ];
    let events = data["auditEvents"]["nodes"].as_array().unwrap();
    assert!(!events.is_empty());
    for event in events {
        for id in [&event["targetId"], &event["actor"]["id"]] {
            assert!(
                !a_ids.iter().any(|a_id| id == a_id.as_str()),
                "B's audit log shows A: {event}"
            );
        }
    }
}

/// A transaction acting as the application role, for `company` when one is given.
async fn as_app<'c>(db: &'c mut PgConnection, company: Option<&str>) -> Transaction<'c, Postgres> {
    let mut tx = db.begin().await.unwrap();
    let set_role = sqlx::query("set local role obrol_app");
    set_role.execute(&mut *tx).await.unwrap();
    if let Some(company) = company {
        let set_company = sqlx::query("select set_config('app.company_id', $1, true)");
        set_company.bind(company).execute(&mut *tx).await.unwrap();
    }
    tx
}

/// Rows of `table` (as JSON) visible to the application role acting for `company` (or none).
async fn rows_as_app(db: &mut PgConnection, table: &str, company: Option<&str>) -> Vec<Value> {
    let mut tx = as_app(db, company).await;
    let select = format!("select to_jsonb(t) from public.\"{table}\" t");
    let rows = sqlx::query_scalar(&select)
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    rows
}

/// Runs `statement` as the application role acting for `company`: rows affected, or the error.
async fn execute_as_app(
    db: &mut PgConnection,
    company: &str,
    statement: &str,
) -> sqlx::Result<u64> {
    let mut tx = as_app(db, Some(company)).await;
    let result = sqlx::query(statement).execute(&mut *tx).await;
    tx.rollback().await.unwrap();
    result.map(|done| done.rows_affected())
}

#[tokio::test]
async fn row_level_security_shows_the_application_role_only_its_own_company() {
    let app = TestApp::spawn().await;
    let a = arrange_company_a(&app).await;
    app.enable_two_factor(&a.admin).await; // leaves recovery codes in the database
    let b = app.sign_up("Company B").await;
    let (a_id, b_id) = (a.admin.company_id.as_str(), b.company_id.as_str());
    let mut db = app.db.superuser().await.unwrap();

    // Tenant tables: every public table with a company_id column, and companies itself.
    let tables: Vec<(String, bool, bool, bool)> = sqlx::query_as(
        "select t.tablename::text, c.relrowsecurity, c.relforcerowsecurity, c.relispartition
         from pg_tables t
         join pg_class c on c.oid = format('%I.%I', t.schemaname, t.tablename)::regclass
         where t.schemaname = 'public' and t.tablename <> '_sqlx_migrations'
           and (t.tablename = 'companies' or exists (
                select 1 from information_schema.columns k where k.table_schema = 'public'
                and k.table_name = t.tablename and k.column_name = 'company_id'))
         order by 1",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    let names: Vec<&str> = tables.iter().map(|(name, ..)| name.as_str()).collect();
    for expected in TENANT_TABLES {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }

    for (table, enabled, forced, partition) in &tables {
        assert!(
            *enabled && *forced,
            "{table}: row-level security enabled {enabled}, forced {forced}"
        );
        if *partition {
            // Reached only through its parent (checked as a table of its own here).
            let direct = execute_as_app(&mut db, a_id, &format!("select * from \"{table}\"")).await;
            assert!(
                direct
                    .unwrap_err()
                    .to_string()
                    .contains("permission denied"),
                "{table}: the application role can read a partition directly"
            );
            continue;
        }
        let column = if table == "companies" {
            "id"
        } else {
            "company_id"
        };
        let a_rows: i64 = sqlx::query_scalar(&format!(
            "select count(*) from public.\"{table}\" where {column} = $1::uuid"
        ))
        .bind(a_id)
        .fetch_one(&mut db)
        .await
        .unwrap();
        if TENANT_TABLES.contains(&table.as_str()) {
            assert!(
                a_rows > 0,
                "company A should have rows in {table} for this test to mean anything"
            );
        }

        let as_b = rows_as_app(&mut db, table, Some(b_id)).await;
        assert!(
            as_b.iter().all(|row| row[column] == b_id),
            "{table} shows B another company's rows: {as_b:?}"
        );
        if ["companies", "users", "sessions", "audit_events"].contains(&table.as_str()) {
            assert!(!as_b.is_empty(), "B should see its own rows in {table}");
        }
        let as_a = rows_as_app(&mut db, table, Some(a_id)).await;
        assert_eq!(
            as_a.len() as i64,
            a_rows,
            "A should see exactly its own rows in {table}"
        );
        let as_nobody = rows_as_app(&mut db, table, None).await;
        assert_eq!(
            as_nobody,
            Vec::<Value>::new(),
            "{table} shows rows with no company set"
        );
    }

    // Writing across tenants fails too: updates touch nothing, inserts are refused.
    let update = format!("update users set name = 'Taken over' where company_id = '{a_id}'");
    assert_eq!(execute_as_app(&mut db, b_id, &update).await.unwrap(), 0);
    let insert = format!(
        "insert into teams (id, company_id, name) values (gen_random_uuid(), '{a_id}', 'Planted')"
    );
    let refused = execute_as_app(&mut db, b_id, &insert).await.unwrap_err();
    assert!(
        refused.to_string().contains("row-level security"),
        "{refused}"
    );
    // The audit log is append-only even for one's own company.
    let rewrite = execute_as_app(&mut db, b_id, "update audit_events set action = 'NOTHING'").await;
    assert!(rewrite
        .unwrap_err()
        .to_string()
        .contains("permission denied"));

    let (superuser, bypass): (bool, bool) =
        sqlx::query_as("select rolsuper, rolbypassrls from pg_roles where rolname = 'obrol_app'")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert!(
        !superuser && !bypass,
        "obrol_app: rolsuper {superuser}, rolbypassrls {bypass}"
    );
    let owned: i64 =
        sqlx::query_scalar("select count(*) from pg_tables where tableowner = 'obrol_app'")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(owned, 0, "the application role must not own tables");
}

#[tokio::test]
async fn a_tenant_transaction_sets_its_company_and_settings_and_a_failed_begin_spoils_nothing() {
    let app = TestApp::spawn().await;
    let options: sqlx::postgres::PgConnectOptions = app.db.url.parse().unwrap();
    // One connection, so that the second transaction gets the one the first one used.
    let db = obrol_api::db::Db::connect(options, 1).await.unwrap();
    let company = uuid::Uuid::now_v7();

    let mut tx = db
        .tenant_with(company, &[("statement_timeout", "5s")])
        .await
        .unwrap();
    let (seen, timeout): (String, String) = sqlx::query_as(
        "select current_setting('app.company_id'), current_setting('statement_timeout')",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(
        (seen.as_str(), timeout.as_str()),
        (company.to_string().as_str(), "5s")
    );
    tx.commit().await.unwrap();

    // A setting PostgreSQL refuses: the begin fails, and the connection stays usable.
    let refused = db
        .tenant_with(company, &[("statement_timeout", "soon")])
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("statement_timeout"),
        "{refused}"
    );
    let other = uuid::Uuid::now_v7();
    let mut tx = db.tenant(other).await.unwrap();
    let (seen, timeout): (String, String) = sqlx::query_as(
        "select current_setting('app.company_id'), current_setting('statement_timeout')",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    // The earlier transactions' settings ended with them.
    assert_eq!(seen, other.to_string());
    assert_ne!(timeout, "5s");
    tx.commit().await.unwrap();
}
