//! Static and criteria lists, and saved views (default and personal).

use super::*;

const CREATE_LIST: &str = "mutation($input: CreateListInput!) {
    createList(input: $input) { id name kind filter memberCount } }";
const ADD_TO_LIST: &str = "mutation($list: ID!, $ids: [ID!]!) {
    addToList(listId: $list, contactIds: $ids) { id memberCount } }";
const REMOVE_FROM_LIST: &str = "mutation($list: ID!, $ids: [ID!]!) {
    removeFromList(listId: $list, contactIds: $ids) { id memberCount } }";
const SAVE_VIEW: &str = "mutation($input: SaveContactViewInput!) {
    saveContactView(input: $input) { id name shared grouping filter orderBy { field direction } } }";
const VIEWS: &str = "{ contactViews { id name shared } }";
const VIEW_CONTACTS: &str = "query($view: ID, $filter: ContactFilter) {
    contacts(view: $view, filter: $filter, first: 50) { totalCount nodes { name } } }";

async fn new_list(app: &TestApp, who: &Session, name: &str, filter: Value) -> Value {
    let data = ok(
        app,
        who,
        CREATE_LIST,
        json!({ "input": { "name": name, "filter": filter } }),
    )
    .await;
    data["createList"].clone()
}

fn list_filter(id: &Value) -> Value {
    cond("list", "EQ", id.as_str(), None)
}

#[tokio::test]
async fn static_lists_hold_who_was_added_and_criteria_lists_whoever_matches_now() {
    let app = TestApp::spawn().await;
    let (admin, ids) = crm(&app).await;

    let vip = new_list(&app, &admin, "VIP", json!(null)).await;
    assert_eq!(vip["kind"], "STATIC");
    assert_eq!(vip["memberCount"], 0);
    let added = ok(
        &app,
        &admin,
        ADD_TO_LIST,
        json!({ "list": vip["id"], "ids": [ids[0], ids[2], ids[0]] }),
    )
    .await;
    assert_eq!(
        added["addToList"]["memberCount"], 2,
        "a repeated id counts once"
    );
    // Adding someone already on the list changes nothing and logs nothing new.
    ok(
        &app,
        &admin,
        ADD_TO_LIST,
        json!({ "list": vip["id"], "ids": [ids[0]] }),
    )
    .await;
    assert_eq!(
        names(&app, &admin, list_filter(&vip["id"])).await,
        (vec!["Ana Lim".to_string(), "Chen".to_string()], 2)
    );
    let log = ok(&app, &admin, CONTACT, json!({ "id": ids[0] })).await;
    let kinds: Vec<&str> = log["contact"]["activities"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "LIST_ADDED").count(),
        1,
        "{kinds:?}"
    );
    let removed = ok(
        &app,
        &admin,
        REMOVE_FROM_LIST,
        json!({ "list": vip["id"], "ids": [ids[2]] }),
    )
    .await;
    assert_eq!(removed["removeFromList"]["memberCount"], 1);

    // A criteria list is whoever matches at the time of use: a contact changed later joins.
    let tech = new_list(
        &app,
        &admin,
        "Tech",
        cond("industry", "EQ", Some("Technology"), None),
    )
    .await;
    assert_eq!(tech["kind"], "CRITERIA");
    assert_eq!(tech["memberCount"], 2);
    ok(
        &app,
        &admin,
        UPDATE,
        json!({ "id": ids[3], "input": { "customProperties": { "industry": "Technology" } } }),
    )
    .await;
    assert_eq!(
        names(&app, &admin, list_filter(&tech["id"])).await.0,
        ["Ana Lim", "Budi", "Dewi"]
    );
    // Lists combine with other conditions, and a criteria list may name another list.
    let tech_vip = new_list(
        &app,
        &admin,
        "Tech VIPs",
        json!({ "and": [list_filter(&tech["id"]), list_filter(&vip["id"])] }),
    )
    .await;
    assert_eq!(tech_vip["memberCount"], 1);

    // Mistakes: criteria lists cannot be added to, names are unique, filters must compile,
    // unknown and other companies' lists are not found.
    assert_eq!(
        code(
            &app,
            &admin,
            ADD_TO_LIST,
            json!({ "list": tech["id"], "ids": [ids[4]] })
        )
        .await,
        "VALIDATION"
    );
    let response = app
        .gql(
            Some(&admin.token),
            CREATE_LIST,
            json!({ "input": { "name": "vip" } }),
        )
        .await;
    assert_eq!(error_code(&response), Some("CONFLICT"), "{response:#}");
    let response = app
        .gql(
            Some(&admin.token),
            CREATE_LIST,
            json!({ "input": { "name": "Bad", "filter": cond("shoe_size", "GT", Some("40"), None) } }),
        )
        .await;
    assert_eq!(error_code(&response), Some("VALIDATION"));
    assert!(
        response.to_string().contains("shoe_size"),
        "the message names the property: {response}"
    );
    let other = app.sign_up("Other Co").await;
    let theirs = create(&app, &other, json!({ "firstName": "Theirs" })).await;
    assert_eq!(
        code(
            &app,
            &other,
            ADD_TO_LIST,
            json!({ "list": vip["id"], "ids": [theirs] })
        )
        .await,
        "NOT_FOUND"
    );
    assert_eq!(
        code(
            &app,
            &admin,
            ADD_TO_LIST,
            json!({ "list": vip["id"], "ids": [ids[1], theirs] })
        )
        .await,
        "NOT_FOUND",
        "another company's contact cannot join"
    );
    assert_eq!(
        names(&app, &admin, list_filter(&vip["id"])).await.1,
        1,
        "a refused addition adds no one"
    );

    // Deleting a list (Admins) keeps its contacts.
    let staff = app.add_user(&admin, "STAFF").await;
    assert_eq!(
        code(
            &app,
            &staff,
            "mutation($id: ID!) { deleteList(id: $id) }",
            json!({ "id": vip["id"] })
        )
        .await,
        "FORBIDDEN"
    );
    ok(
        &app,
        &admin,
        "mutation($id: ID!) { deleteList(id: $id) }",
        json!({ "id": vip["id"] }),
    )
    .await;
    assert_eq!(names(&app, &admin, json!(null)).await.1, 5);
    let lists = ok(&app, &admin, "{ contactLists { name } }", json!({})).await;
    assert_eq!(
        lists["contactLists"],
        json!([{ "name": "Tech" }, { "name": "Tech VIPs" }])
    );
}

#[tokio::test]
async fn saved_views_apply_their_filter_and_are_shared_or_personal() {
    let app = TestApp::spawn().await;
    let (admin, ids) = crm(&app).await;
    let staff = app.add_user(&admin, "STAFF").await;
    let other_staff = app.add_user(&admin, "STAFF").await;

    let shared = ok(
        &app,
        &admin,
        SAVE_VIEW,
        json!({ "input": { "name": "Big tech", "shared": true,
            "filter": { "and": [cond("industry", "EQ", Some("Technology"), None),
                                cond("employees", "GT", Some("50"), None)] },
            "orderBy": { "field": "NAME", "direction": "DESC" } } }),
    )
    .await;
    let shared = &shared["saveContactView"];
    assert_eq!(shared["shared"], true);
    assert_eq!(shared["grouping"], "ALL");
    assert_eq!(
        shared["orderBy"],
        json!({ "field": "NAME", "direction": "DESC" })
    );
    let mine = ok(
        &app,
        &staff,
        SAVE_VIEW,
        json!({ "input": { "name": "Singapore", "filter": cond("country", "EQ", Some("sg"), None) } }),
    )
    .await;
    let mine = &mine["saveContactView"];
    assert_eq!(mine["shared"], false);

    // Each sees the default views and their own.
    let seen = ok(&app, &staff, VIEWS, json!({})).await;
    assert_eq!(
        seen["contactViews"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["Big tech", "Singapore"]
    );
    let seen = ok(&app, &other_staff, VIEWS, json!({})).await;
    assert_eq!(seen["contactViews"].as_array().unwrap().len(), 1);

    // Applying a view, alone and with another filter.
    let data = ok(&app, &staff, VIEW_CONTACTS, json!({ "view": shared["id"] })).await;
    assert_eq!(data["contacts"]["nodes"], json!([{ "name": "Ana Lim" }]));
    let data = ok(&app, &staff, VIEW_CONTACTS, json!({ "view": mine["id"] })).await;
    assert_eq!(data["contacts"]["nodes"], json!([{ "name": "Chen" }]));
    ok(
        &app,
        &admin,
        UPDATE,
        json!({ "id": ids[3], "input": { "customProperties": { "industry": "Technology" } } }),
    )
    .await;
    let data = ok(
        &app,
        &staff,
        VIEW_CONTACTS,
        json!({ "view": shared["id"], "filter": cond("email", "IS_SET", None, None) }),
    )
    .await;
    assert_eq!(
        data["contacts"],
        json!({ "totalCount": 1, "nodes": [{ "name": "Dewi" }] })
    );

    // Someone else's personal view is not found; only Admins make or change default views.
    assert_eq!(
        code(
            &app,
            &other_staff,
            VIEW_CONTACTS,
            json!({ "view": mine["id"] })
        )
        .await,
        "NOT_FOUND"
    );
    assert_eq!(
        code(
            &app,
            &staff,
            SAVE_VIEW,
            json!({ "input": { "name": "Everyone's", "shared": true } })
        )
        .await,
        "FORBIDDEN"
    );
    assert_eq!(
        code(
            &app,
            &staff,
            SAVE_VIEW,
            json!({ "input": { "id": shared["id"], "name": "Renamed" } })
        )
        .await,
        "FORBIDDEN"
    );
    assert_eq!(
        code(
            &app,
            &staff,
            SAVE_VIEW,
            json!({ "input": { "name": "Broken", "filter": cond("label", "EQ", Some("nope"), None) } })
        )
        .await,
        "VALIDATION"
    );
    // The maker renames their view; deleting it takes it away.
    let renamed = ok(
        &app,
        &staff,
        SAVE_VIEW,
        json!({ "input": { "id": mine["id"], "name": "SG", "filter": cond("country", "EQ", Some("SG"), None) } }),
    )
    .await;
    assert_eq!(renamed["saveContactView"]["name"], "SG");
    ok(
        &app,
        &staff,
        "mutation($id: ID!) { deleteContactView(id: $id) }",
        json!({ "id": mine["id"] }),
    )
    .await;
    let seen = ok(&app, &staff, VIEWS, json!({})).await;
    assert_eq!(seen["contactViews"].as_array().unwrap().len(), 1);
    let other = app.sign_up("Elsewhere").await;
    assert_eq!(
        code(&app, &other, VIEW_CONTACTS, json!({ "view": shared["id"] })).await,
        "NOT_FOUND"
    );
}
