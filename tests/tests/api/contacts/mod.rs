//! Contacts: custom properties, create/update/erase, labels, filters, groupings, visibility.

mod export;
mod import;
mod lists;
mod mac;
mod objects;
mod related;

use obrol_tests::{error_code, Session, TestApp};
use serde_json::{json, Value};

const DEFINE: &str = "mutation($input: DefineContactPropertyInput!) {
    defineContactProperty(input: $input) { id key label type options } }";
const CREATE: &str = "mutation($input: CreateContactInput!) {
    createContact(input: $input) { id name firstName phone email country customProperties
        owner { id } labels { name } } }";
const UPDATE: &str = "mutation($id: ID!, $input: UpdateContactInput!) {
    updateContact(id: $id, input: $input) { id name firstName lastName phone email customProperties } }";
const CONTACT: &str =
    "query($id: ID!) { contact(id: $id) { id name customProperties labels { name }
    activities { nodes { kind details actor { id } } } } }";
const CONTACTS: &str =
    "query($filter: ContactFilter, $grouping: ContactGrouping, $order: ContactOrder,
        $first: Int, $after: String) {
    contacts(filter: $filter, grouping: $grouping, orderBy: $order, first: $first, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } nodes { id name } } }";
const DELETE: &str = "mutation($id: ID!) { deleteContact(id: $id) }";
const ADD_LABELS: &str = "mutation($ids: [ID!]!, $labels: [String!]!) {
    addLabels(contactIds: $ids, labels: $labels) { id labels { name } } }";
const REMOVE_LABELS: &str = "mutation($ids: [ID!]!, $labels: [String!]!) {
    removeLabels(contactIds: $ids, labels: $labels) { id labels { name } } }";

async fn ok(app: &TestApp, who: &Session, query: &str, variables: Value) -> Value {
    app.gql_ok(Some(&who.token), query, variables).await
}

async fn code(app: &TestApp, who: &Session, query: &str, variables: Value) -> String {
    let response = app.gql(Some(&who.token), query, variables).await;
    error_code(&response)
        .unwrap_or_else(|| panic!("expected an error: {response:#}"))
        .to_string()
}

async fn define(app: &TestApp, admin: &Session, key: &str, kind: &str, options: &[&str]) {
    ok(
        app,
        admin,
        DEFINE,
        json!({ "input": { "key": key, "label": key.replace('_', " "), "type": kind, "options": options } }),
    )
    .await;
}

async fn create(app: &TestApp, who: &Session, input: Value) -> String {
    let data = ok(app, who, CREATE, json!({ "input": input })).await;
    data["createContact"]["id"].as_str().unwrap().to_string()
}

fn cond(property: &str, op: &str, value: Option<&str>, values: Option<Vec<&str>>) -> Value {
    json!({ "condition": { "property": property, "op": op, "value": value, "values": values } })
}

/// Names of the contacts matching `filter` (first 100), and the total count.
async fn names(app: &TestApp, who: &Session, filter: Value) -> (Vec<String>, i64) {
    let data = ok(
        app,
        who,
        CONTACTS,
        json!({ "filter": filter, "first": 100, "order": { "field": "NAME", "direction": "ASC" } }),
    )
    .await;
    let nodes = data["contacts"]["nodes"].as_array().unwrap();
    let names = nodes
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect();
    (names, data["contacts"]["totalCount"].as_i64().unwrap())
}

/// A company with four typed custom properties and five contacts.
async fn crm(app: &TestApp) -> (Session, Vec<String>) {
    let admin = app.sign_up("Acme CRM").await;
    define(
        app,
        &admin,
        "industry",
        "SINGLE_SELECT",
        &["Technology", "Retail", "Finance"],
    )
    .await;
    define(app, &admin, "employees", "NUMBER", &[]).await;
    define(app, &admin, "renewal", "DATE", &[]).await;
    define(
        app,
        &admin,
        "interests",
        "MULTI_SELECT",
        &["ai", "crm", "ads"],
    )
    .await;
    define(app, &admin, "vip", "BOOLEAN", &[]).await;
    let people = [
        json!({ "firstName": "Ana", "lastName": "Lim", "phone": "+62 812-0000-0001", "country": "id",
                "customProperties": { "industry": "technology", "employees": 120, "renewal": "2026-03-01",
                                      "interests": ["ai", "crm"], "vip": true } }),
        json!({ "firstName": "Budi", "email": "Budi@Example.com", "country": "ID", "companyName": "50% Off Ltd",
                "customProperties": { "industry": "Technology", "employees": "12" } }),
        json!({ "firstName": "Chen", "phone": "+6591234567", "country": "SG",
                "customProperties": { "industry": "Finance", "employees": 800, "interests": "ads" } }),
        json!({ "firstName": "Dewi", "email": "dewi@example.com",
                "customProperties": { "industry": "Retail", "employees": 51, "renewal": "2025-12-31" } }),
        json!({ "firstName": "Eko", "lastName": "O'Brien", "labels": ["#hotlead"] }),
    ];
    let mut ids = Vec::new();
    for person in people {
        ids.push(create(app, &admin, person).await);
    }
    (admin, ids)
}

#[tokio::test]
async fn typed_custom_properties_are_validated_and_stored_as_their_type() {
    let app = TestApp::spawn().await;
    let (admin, ids) = crm(&app).await;

    let data = ok(&app, &admin, CONTACT, json!({ "id": ids[0] })).await;
    assert_eq!(data["contact"]["name"], "Ana Lim");
    assert_eq!(
        data["contact"]["customProperties"],
        json!({ "industry": "Technology", "employees": 120.0, "renewal": "2026-03-01",
                "interests": ["ai", "crm"], "vip": true })
    );
    let created = ok(&app, &admin, CONTACT, json!({ "id": ids[1] })).await;
    assert_eq!(
        created["contact"]["customProperties"]["employees"],
        json!(12.0),
        "a numeric string is a number"
    );

    // Wrong types, unknown options and unknown properties are refused, naming the property.
    for (custom, words) in [
        (
            json!({ "employees": "a lot" }),
            "'employees' takes a number",
        ),
        (json!({ "renewal": "31/12/2025" }), "'renewal' takes a date"),
        (
            json!({ "industry": "Mining" }),
            "not an option of property 'industry'",
        ),
        (
            json!({ "interests": ["ai", 7] }),
            "'interests' takes a list",
        ),
        (json!({ "vip": "perhaps" }), "'vip' takes true or false"),
        (
            json!({ "favourite_colour": "red" }),
            "no contact property 'favourite_colour'",
        ),
    ] {
        let response = app
            .gql(
                Some(&admin.token),
                CREATE,
                json!({ "input": { "firstName": "X", "customProperties": custom } }),
            )
            .await;
        assert_eq!(error_code(&response), Some("VALIDATION"), "{response:#}");
        let message = response["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(words), "{message}");
    }
    // Bad built-in values.
    for input in [
        json!({ "firstName": "X", "phone": "0812 3456" }),
        json!({ "firstName": "X", "email": "not-an-address" }),
        json!({ "firstName": "X", "country": "Indonesia" }),
        json!({ "companyName": "nobody" }),
    ] {
        assert_eq!(
            code(&app, &admin, CREATE, json!({ "input": input })).await,
            "VALIDATION"
        );
    }
    // Duplicate phone (in another spelling) and e-mail (in another case) conflict.
    let dup_phone = json!({ "input": { "firstName": "Twin", "phone": "+62 (812) 0000 0001" } });
    assert_eq!(code(&app, &admin, CREATE, dup_phone).await, "CONFLICT");
    let dup_email = json!({ "input": { "firstName": "Twin", "email": "BUDI@example.COM" } });
    assert_eq!(code(&app, &admin, CREATE, dup_email).await, "CONFLICT");

    // Definitions: built-in keys, taken keys, bad keys, options on a number, Staff.
    let define_input = |key: &str, kind: &str, options: Vec<&str>| json!({ "input": { "key": key, "label": "L", "type": kind, "options": options } });
    assert_eq!(
        code(&app, &admin, DEFINE, define_input("email", "TEXT", vec![])).await,
        "CONFLICT"
    );
    assert_eq!(
        code(
            &app,
            &admin,
            DEFINE,
            define_input("industry", "TEXT", vec![])
        )
        .await,
        "CONFLICT"
    );
    assert_eq!(
        code(
            &app,
            &admin,
            DEFINE,
            define_input("Bad Key", "TEXT", vec![])
        )
        .await,
        "VALIDATION"
    );
    assert_eq!(
        code(
            &app,
            &admin,
            DEFINE,
            define_input("size", "NUMBER", vec!["a"])
        )
        .await,
        "VALIDATION"
    );
    assert_eq!(
        code(
            &app,
            &admin,
            DEFINE,
            define_input("tier", "SINGLE_SELECT", vec![])
        )
        .await,
        "VALIDATION"
    );
    let staff = app.add_user(&admin, "STAFF").await;
    assert_eq!(
        code(&app, &staff, DEFINE, define_input("tier", "TEXT", vec![])).await,
        "FORBIDDEN"
    );
    // Slots run out with a clear limit, not an internal error.
    for i in 0..8 {
        ok(
            &app,
            &admin,
            DEFINE,
            define_input(&format!("flag_{i}"), "BOOLEAN", vec![]),
        )
        .await;
    }
    for i in 8..11 {
        ok(
            &app,
            &admin,
            DEFINE,
            define_input(&format!("flag_{i}"), "BOOLEAN", vec![]),
        )
        .await;
    }
    assert_eq!(
        code(
            &app,
            &admin,
            DEFINE,
            define_input("flag_11", "BOOLEAN", vec![])
        )
        .await,
        "LIMIT_EXCEEDED"
    );
    let listed = ok(
        &app,
        &admin,
        "{ contactProperties { key type } }",
        json!({}),
    )
    .await;
    assert_eq!(
        listed["contactProperties"].as_array().unwrap().len(),
        5 + 11
    );
}

#[tokio::test]
async fn updates_change_only_what_is_given_and_are_logged() {
    let app = TestApp::spawn().await;
    let (admin, ids) = crm(&app).await;
    let updated = ok(
        &app,
        &admin,
        UPDATE,
        json!({ "id": ids[0], "input": { "lastName": null, "email": "ana@example.com",
                "customProperties": { "employees": 130, "vip": null } } }),
    )
    .await;
    let contact = &updated["updateContact"];
    assert_eq!(contact["name"], "Ana");
    assert_eq!(contact["lastName"], Value::Null);
    assert_eq!(contact["phone"], "+6281200000001", "left out, so unchanged");
    assert_eq!(contact["email"], "ana@example.com");
    assert_eq!(contact["customProperties"]["employees"], json!(130.0));
    assert!(
        contact["customProperties"].get("vip").is_none(),
        "null clears"
    );
    assert_eq!(contact["customProperties"]["industry"], "Technology");

    let data = ok(&app, &admin, CONTACT, json!({ "id": ids[0] })).await;
    let log = data["contact"]["activities"]["nodes"].as_array().unwrap();
    assert_eq!(log[0]["kind"], "PROPERTIES_CHANGED");
    assert_eq!(log[0]["actor"]["id"], admin.user_id.as_str());
    let changes = log[0]["details"]["changes"].as_array().unwrap();
    let employees = changes
        .iter()
        .find(|c| c["property"] == "employees")
        .unwrap();
    assert_eq!(
        (&employees["from"], &employees["to"]),
        (&json!(120.0), &json!(130.0))
    );
    assert!(changes
        .iter()
        .any(|c| c["property"] == "last_name" && c["from"] == "Lim"));
    assert_eq!(log.last().unwrap()["kind"], "CREATED");

    // Taking another contact's e-mail conflicts and changes nothing.
    let taken = json!({ "id": ids[0], "input": { "email": "dewi@example.com" } });
    assert_eq!(code(&app, &admin, UPDATE, taken).await, "CONFLICT");
    let bad = json!({ "id": ids[0], "input": { "customProperties": { "renewal": 20260301 } } });
    assert_eq!(code(&app, &admin, UPDATE, bad).await, "VALIDATION");
    let again = ok(&app, &admin, CONTACT, json!({ "id": ids[0] })).await;
    assert_eq!(
        again["contact"]["customProperties"]["renewal"],
        "2026-03-01"
    );
}

#[tokio::test]
async fn filters_combine_conditions_on_built_in_and_custom_properties() {
    let app = TestApp::spawn().await;
    let (admin, _ids) = crm(&app).await;

    // "Technology companies with 50+ employees".
    let tech_50 = json!({ "and": [
        cond("industry", "EQ", Some("Technology"), None),
        cond("employees", "GT", Some("50"), None),
    ] });
    assert_eq!(
        names(&app, &admin, tech_50).await,
        (vec!["Ana Lim".to_string()], 1)
    );

    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            cond("country", "EQ", Some("id"), None),
            vec!["Ana Lim", "Budi"],
        ),
        (
            cond("country", "NEQ", Some("ID"), None),
            vec!["Chen", "Dewi", "Eko O'Brien"],
        ),
        (
            cond("country", "IN", None, Some(vec!["SG", "ID"])),
            vec!["Ana Lim", "Budi", "Chen"],
        ),
        (cond("email", "IS_SET", None, None), vec!["Budi", "Dewi"]),
        (
            cond("phone", "IS_NOT_SET", None, None),
            vec!["Budi", "Dewi", "Eko O'Brien"],
        ),
        (
            cond("phone", "EQ", Some("+65 9123 4567"), None),
            vec!["Chen"],
        ),
        (
            cond("employees", "BETWEEN", None, Some(vec!["12", "51"])),
            vec!["Budi", "Dewi"],
        ),
        (cond("employees", "LT", Some("51"), None), vec!["Budi"]),
        (
            cond("renewal", "LT", Some("2026-01-01"), None),
            vec!["Dewi"],
        ),
        (cond("interests", "EQ", Some("crm"), None), vec!["Ana Lim"]),
        (
            cond("interests", "IN", None, Some(vec!["ads", "ai"])),
            vec!["Ana Lim", "Chen"],
        ),
        (cond("vip", "EQ", Some("true"), None), vec!["Ana Lim"]),
        (
            cond("label", "EQ", Some("#HotLead"), None),
            vec!["Eko O'Brien"],
        ),
        (
            cond("name", "CONTAINS", Some("o'b"), None),
            vec!["Eko O'Brien"],
        ),
        // LIKE wildcards in a value are literal characters.
        (
            cond("company_name", "CONTAINS", Some("50%"), None),
            vec!["Budi"],
        ),
        (cond("company_name", "CONTAINS", Some("_"), None), vec![]),
        (
            cond("created_at", "GT", Some("2000-01-01"), None),
            vec!["Ana Lim", "Budi", "Chen", "Dewi", "Eko O'Brien"],
        ),
        (
            cond("owner", "EQ", Some("me"), None),
            vec!["Ana Lim", "Budi", "Chen", "Dewi", "Eko O'Brien"],
        ),
        (
            json!({ "or": [
                cond("industry", "EQ", Some("Retail"), None),
                { "and": [ cond("country", "EQ", Some("SG"), None), cond("employees", "GT", Some("500"), None) ] },
            ] }),
            vec!["Chen", "Dewi"],
        ),
    ];
    for (filter, expected) in cases {
        let (found, total) = names(&app, &admin, filter.clone()).await;
        assert_eq!(found, expected, "filter {filter}");
        assert_eq!(total, expected.len() as i64, "count of {filter}");
    }

    // Values that look like SQL are values: they match nothing and break nothing.
    for evil in [
        "'; drop table contacts; --",
        "x' or '1'='1",
        "\\'; select pg_sleep(5); --",
    ] {
        let (found, total) = names(&app, &admin, cond("first_name", "EQ", Some(evil), None)).await;
        assert!(found.is_empty() && total == 0, "{evil}");
        let (found, _) = names(
            &app,
            &admin,
            cond("company_name", "CONTAINS", Some(evil), None),
        )
        .await;
        assert!(found.is_empty());
    }
    assert_eq!(
        names(&app, &admin, json!(null)).await.1,
        5,
        "the table is intact"
    );

    // Bad filters: a clear VALIDATION error each.
    for filter in [
        cond("favourite_colour", "EQ", Some("red"), None),
        cond("employees", "GT", Some("fifty"), None),
        cond("employees", "CONTAINS", Some("5"), None),
        cond("first_name", "GT", Some("A"), None),
        cond("employees", "BETWEEN", None, Some(vec!["1"])),
        cond("renewal", "EQ", Some("yesterday"), None),
        cond("label", "EQ", Some("no-such-label"), None),
        cond(
            "list",
            "EQ",
            Some("00000000-0000-0000-0000-000000000000"),
            None,
        ),
        cond("owner", "EQ", Some("not-an-id"), None),
        cond("channel", "EQ", Some("CARRIER_PIGEON"), None),
        cond("email", "IS_SET", Some("x"), None),
        json!({ "and": [], "condition": { "property": "email", "op": "IS_SET" } }),
    ] {
        let response = app
            .gql(Some(&admin.token), CONTACTS, json!({ "filter": filter }))
            .await;
        assert_eq!(
            error_code(&response),
            Some("VALIDATION"),
            "{filter}: {response:#}"
        );
    }
}

#[tokio::test]
async fn pages_follow_the_chosen_order_without_gaps_or_repeats() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Pages").await;
    let mut expected: Vec<String> = Vec::new();
    for i in 0..23 {
        let name = format!("Person {:02}", (i * 7) % 23);
        create(&app, &admin, json!({ "firstName": name })).await;
        expected.push(name);
    }
    expected.sort();
    for (order, want) in [
        (
            json!({ "field": "NAME", "direction": "ASC" }),
            expected.clone(),
        ),
        (
            json!({ "field": "NAME", "direction": "DESC" }),
            expected.iter().rev().cloned().collect(),
        ),
    ] {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let data = ok(
                &app,
                &admin,
                CONTACTS,
                json!({ "order": order, "first": 10, "after": after }),
            )
            .await;
            let page = &data["contacts"];
            assert_eq!(page["totalCount"], 23);
            seen.extend(
                page["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n["name"].as_str().unwrap().to_string()),
            );
            if !page["pageInfo"]["hasNextPage"].as_bool().unwrap() {
                break;
            }
            after = page["pageInfo"]["endCursor"].as_str().map(str::to_string);
        }
        assert_eq!(seen, want);
    }
    // Newest first by default: the last one made was Person (22 * 7) % 23.
    let data = ok(&app, &admin, CONTACTS, json!({ "first": 1 })).await;
    assert_eq!(data["contacts"]["nodes"][0]["name"], "Person 16");
    let garbage = json!({ "after": "bm90IGEgY3Vyc29y" });
    assert_eq!(code(&app, &admin, CONTACTS, garbage).await, "VALIDATION");
}

#[tokio::test]
async fn labels_are_added_and_removed_and_other_companies_ids_are_not_found() {
    let app = TestApp::spawn().await;
    let (admin, ids) = crm(&app).await;
    let data = ok(
        &app,
        &admin,
        ADD_LABELS,
        json!({ "ids": [ids[0], ids[1]], "labels": ["VIP", "#hotlead"] }),
    )
    .await;
    let labels: Vec<&str> = data["addLabels"][0]["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        ["hotlead", "VIP"],
        "an existing label is reused whatever its case"
    );
    let (found, _) = names(&app, &admin, cond("label", "IN", None, Some(vec!["vip"]))).await;
    assert_eq!(found, ["Ana Lim", "Budi"]);
    ok(
        &app,
        &admin,
        REMOVE_LABELS,
        json!({ "ids": [ids[0]], "labels": ["vip"] }),
    )
    .await;
    let (found, _) = names(&app, &admin, cond("label", "EQ", Some("VIP"), None)).await;
    assert_eq!(found, ["Budi"]);
    let (found, _) = names(&app, &admin, cond("label", "IS_NOT_SET", None, None)).await;
    assert_eq!(found, ["Chen", "Dewi"]);
    let log = ok(&app, &admin, CONTACT, json!({ "id": ids[0] })).await;
    let kinds: Vec<&str> = log["contact"]["activities"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(&kinds[..2], ["LABELS_REMOVED", "LABELS_ADDED"]);

    // Another company sees none of it, and cannot touch it.
    let other = app.sign_up("Other Co").await;
    let foreign = json!({ "id": ids[0] });
    assert_eq!(
        code(&app, &other, CONTACT, foreign.clone()).await,
        "NOT_FOUND"
    );
    assert_eq!(
        code(
            &app,
            &other,
            UPDATE,
            json!({ "id": ids[0], "input": { "firstName": "Mallory" } })
        )
        .await,
        "NOT_FOUND"
    );
    assert_eq!(code(&app, &other, DELETE, foreign).await, "NOT_FOUND");
    assert_eq!(
        code(
            &app,
            &other,
            ADD_LABELS,
            json!({ "ids": [ids[0]], "labels": ["x"] })
        )
        .await,
        "NOT_FOUND"
    );
    assert_eq!(names(&app, &other, json!(null)).await.1, 0);
    // Its own contact cannot take an owner from the first company.
    let input = json!({ "input": { "firstName": "Z", "ownerId": admin.user_id } });
    assert_eq!(code(&app, &other, CREATE, input).await, "NOT_FOUND");
    let check = ok(&app, &admin, CONTACT, json!({ "id": ids[0] })).await;
    assert_eq!(check["contact"]["name"], "Ana Lim");
}

#[tokio::test]
async fn staff_see_all_contacts_or_only_their_own_and_their_teams() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Visibility").await;
    let staff = app.add_user(&admin, "STAFF").await;
    let team = ok(
        &app,
        &admin,
        "mutation { createTeam(input: { name: \"Sales\" }) { id } }",
        json!({}),
    )
    .await;
    let team_id = team["createTeam"]["id"].as_str().unwrap().to_string();
    ok(
        &app,
        &admin,
        "mutation($t: ID!, $u: ID!) { addTeamMember(teamId: $t, userId: $u) { id } }",
        json!({ "t": team_id, "u": staff.user_id }),
    )
    .await;
    let own = create(&app, &staff, json!({ "firstName": "Own" })).await;
    create(
        &app,
        &admin,
        json!({ "firstName": "Teams", "teamId": team_id }),
    )
    .await;
    let hidden = create(&app, &admin, json!({ "firstName": "Hidden" })).await;

    assert_eq!(
        names(&app, &staff, json!(null)).await.1,
        3,
        "staffSeeAll is on by default"
    );
    ok(
        &app,
        &admin,
        "mutation { updateCompanySettings(input: { staffSeeAll: false }) { staffSeeAll } }",
        json!({}),
    )
    .await;
    assert_eq!(names(&app, &staff, json!(null)).await.0, ["Own", "Teams"]);
    assert_eq!(
        code(&app, &staff, CONTACT, json!({ "id": hidden })).await,
        "NOT_FOUND"
    );
    assert_eq!(
        code(
            &app,
            &staff,
            UPDATE,
            json!({ "id": hidden, "input": { "firstName": "Seen" } })
        )
        .await,
        "NOT_FOUND"
    );
    assert_eq!(
        names(&app, &admin, json!(null)).await.1,
        3,
        "Admins see everything"
    );

    // Groupings: my contacts and my teams' contacts.
    let grouped = |grouping: &'static str| {
        let app = &app;
        let staff = &staff;
        async move {
            let data = ok(app, staff, CONTACTS, json!({ "grouping": grouping })).await;
            data["contacts"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["name"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(grouped("MINE").await, ["Own"]);
    assert_eq!(grouped("TEAM").await, ["Teams"]);
    // Erasure is an Admin's decision.
    assert_eq!(
        code(&app, &staff, DELETE, json!({ "id": own })).await,
        "FORBIDDEN"
    );
}

#[tokio::test]
async fn erasing_a_contact_removes_it_and_its_activity_and_is_audited() {
    let app = TestApp::spawn().await;
    let (admin, ids) = crm(&app).await;
    ok(
        &app,
        &admin,
        ADD_LABELS,
        json!({ "ids": [ids[0]], "labels": ["vip"] }),
    )
    .await;
    let erased = ok(&app, &admin, DELETE, json!({ "id": ids[0] })).await;
    assert_eq!(erased["deleteContact"], ids[0].as_str());
    assert_eq!(
        code(&app, &admin, CONTACT, json!({ "id": ids[0] })).await,
        "NOT_FOUND"
    );
    assert_eq!(
        code(&app, &admin, DELETE, json!({ "id": ids[0] })).await,
        "NOT_FOUND",
        "only once"
    );
    assert_eq!(names(&app, &admin, json!(null)).await.1, 4);

    let mut db = app.db.superuser().await.unwrap();
    let left: i64 = sqlx::query_scalar(
        "select (select count(*) from contacts where id = $1::uuid)
              + (select count(*) from contact_activities where contact_id = $1::uuid)
              + (select count(*) from contacts where phone = '+6281200000001')",
    )
    .bind(&ids[0])
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(left, 0, "no row about the contact is left");
    let audit = ok(
        &app,
        &admin,
        "{ auditEvents(first: 5) { nodes { action targetId details } } }",
        json!({}),
    )
    .await;
    let event = &audit["auditEvents"]["nodes"][0];
    assert_eq!(
        (event["action"].as_str(), event["targetId"].as_str()),
        (Some("CONTACT_ERASED"), Some(ids[0].as_str()))
    );
    assert!(
        !event["details"].to_string().contains("Ana"),
        "the audit keeps no personal data"
    );
}
