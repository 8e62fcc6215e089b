//! Custom objects: typed record types, records linked to contacts, filters, events.

use super::*;

const DEFINE_OBJECT: &str = "mutation($input: DefineCustomObjectInput!) {
    defineCustomObject(input: $input) { id key relation fields { key type options } } }";
const CREATE_RECORD: &str = "mutation($type: String!, $contact: ID!, $values: JSON!) {
    createCustomObjectRecord(type: $type, contactId: $contact, values: $values) {
        id values displayValue contact { name } } }";
const UPDATE_RECORD: &str = "mutation($id: ID!, $values: JSON!) {
    updateCustomObjectRecord(id: $id, values: $values) { id values } }";
const RECORDS: &str = "query($type: String!, $filter: ContactFilter, $contact: ID) {
    customObjectRecords(type: $type, filter: $filter, contactId: $contact, first: 50) {
        nodes { displayValue values contact { name } } } }";
const EVENTS: &str = "{ customObjectEvents { kind fields recordId contactId } }";

async fn orders_and_memberships(app: &TestApp, admin: &Session) {
    ok(
        app,
        admin,
        DEFINE_OBJECT,
        json!({ "input": { "key": "order", "name": "Order", "displayField": "number",
            "relation": "ONE_TO_MANY", "fields": [
                { "key": "number", "label": "Order number", "type": "TEXT" },
                { "key": "total", "label": "Total", "type": "NUMBER" },
                { "key": "status", "label": "Status", "type": "SINGLE_SELECT", "options": ["paid", "shipped", "refunded"] },
                { "key": "placed", "label": "Placed on", "type": "DATE" },
                { "key": "gift", "label": "Gift", "type": "BOOLEAN" } ] } }),
    )
    .await;
    ok(
        app,
        admin,
        DEFINE_OBJECT,
        json!({ "input": { "key": "membership", "name": "Membership", "displayField": "tier",
            "relation": "ONE_TO_ONE", "fields": [
                { "key": "tier", "label": "Tier", "type": "SINGLE_SELECT", "options": ["silver", "gold"] } ] } }),
    )
    .await;
}

fn display_values(data: &Value) -> Vec<String> {
    data["customObjectRecords"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["displayValue"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn records_of_custom_objects_belong_to_contacts_filter_and_leave_events() {
    let app = TestApp::spawn().await;
    let (admin, ids) = crm(&app).await;
    orders_and_memberships(&app, &admin).await;

    let mut records = Vec::new();
    for (contact, values) in [
        (
            &ids[0],
            json!({ "number": "A-1001", "total": "250000", "status": "paid", "placed": "2026-11-02" }),
        ),
        (
            &ids[0],
            json!({ "number": "A-1002", "total": 90000, "status": "shipped", "placed": "2026-11-15", "gift": true }),
        ),
        (
            &ids[1],
            json!({ "number": "B-2001", "total": 1200000, "status": "paid", "placed": "2026-10-30" }),
        ),
    ] {
        let data = ok(
            &app,
            &admin,
            CREATE_RECORD,
            json!({ "type": "order", "contact": contact, "values": values }),
        )
        .await;
        records.push(data["createCustomObjectRecord"].clone());
    }
    assert_eq!(records[0]["displayValue"], "A-1001");
    assert_eq!(
        records[0]["values"]["total"], 250000.0,
        "stored as its type"
    );
    assert_eq!(records[0]["contact"]["name"], "Ana Lim");

    // Filters on the fields, combined.
    let query = |filter: Value| {
        let app = &app;
        let admin = &admin;
        async move {
            display_values(
                &ok(
                    app,
                    admin,
                    RECORDS,
                    json!({ "type": "order", "filter": filter }),
                )
                .await,
            )
        }
    };
    assert_eq!(
        query(cond("status", "EQ", Some("paid"), None)).await,
        ["A-1001", "B-2001"]
    );
    assert_eq!(
        query(json!({ "and": [cond("status", "EQ", Some("paid"), None),
                              cond("total", "GT", Some("500000"), None)] }))
        .await,
        ["B-2001"]
    );
    assert_eq!(
        query(cond(
            "placed",
            "BETWEEN",
            None,
            Some(vec!["2026-11-01", "2026-11-30"])
        ))
        .await,
        ["A-1001", "A-1002"]
    );
    assert_eq!(query(cond("gift", "IS_SET", None, None)).await, ["A-1002"]);
    assert_eq!(
        query(cond(
            "number",
            "CONTAINS",
            Some("'; drop table contacts; --"),
            None
        ))
        .await,
        Vec::<String>::new()
    );
    let of_ana = ok(
        &app,
        &admin,
        RECORDS,
        json!({ "type": "order", "contact": ids[0] }),
    )
    .await;
    assert_eq!(display_values(&of_ana), ["A-1001", "A-1002"]);

    // Updating merges values; null clears; the event names the changed fields only.
    let updated = ok(
        &app,
        &admin,
        UPDATE_RECORD,
        json!({ "id": records[0]["id"], "values": { "status": "refunded", "placed": null } }),
    )
    .await;
    assert_eq!(
        updated["updateCustomObjectRecord"]["values"],
        json!({ "number": "A-1001", "total": 250000.0, "status": "refunded" })
    );
    let events = ok(&app, &admin, EVENTS, json!({})).await;
    let latest = &events["customObjectEvents"][0];
    assert_eq!(latest["kind"], "UPDATED");
    assert_eq!(latest["fields"], json!(["placed", "status"]));
    assert_eq!(latest["contactId"], ids[0]);
    assert_eq!(events["customObjectEvents"].as_array().unwrap().len(), 4);
    let log = ok(&app, &admin, CONTACT, json!({ "id": ids[0] })).await;
    assert!(log.to_string().contains("CUSTOM_OBJECT_UPDATED"));

    // One membership per contact.
    ok(
        &app,
        &admin,
        CREATE_RECORD,
        json!({ "type": "membership", "contact": ids[2], "values": { "tier": "gold" } }),
    )
    .await;
    assert_eq!(
        code(
            &app,
            &admin,
            CREATE_RECORD,
            json!({ "type": "membership", "contact": ids[2], "values": { "tier": "silver" } })
        )
        .await,
        "CONFLICT"
    );

    // Bad input: wrong types, unknown fields and objects, others' contacts and records.
    for (kind, values, expected) in [
        ("order", json!({ "total": "lots" }), "VALIDATION"),
        ("order", json!({ "status": "lost" }), "VALIDATION"),
        ("order", json!({ "colour": "red" }), "VALIDATION"),
        ("invoice", json!({ "number": "1" }), "NOT_FOUND"),
    ] {
        assert_eq!(
            code(
                &app,
                &admin,
                CREATE_RECORD,
                json!({ "type": kind, "contact": ids[3], "values": values })
            )
            .await,
            expected,
            "{kind} {values}"
        );
    }
    for filter in [
        cond("colour", "EQ", Some("red"), None),
        cond("total", "GT", Some("many"), None),
        cond("gift", "GT", Some("true"), None),
    ] {
        assert_eq!(
            code(
                &app,
                &admin,
                RECORDS,
                json!({ "type": "order", "filter": filter })
            )
            .await,
            "VALIDATION",
            "{filter}"
        );
    }
    let other = app.sign_up("Other").await;
    orders_and_memberships(&app, &other).await;
    assert_eq!(
        code(
            &app,
            &other,
            CREATE_RECORD,
            json!({ "type": "order", "contact": ids[0], "values": { "number": "X" } })
        )
        .await,
        "NOT_FOUND"
    );
    assert_eq!(
        code(
            &app,
            &other,
            UPDATE_RECORD,
            json!({ "id": records[1]["id"], "values": { "status": "paid" } })
        )
        .await,
        "NOT_FOUND"
    );
    let theirs = ok(&app, &other, RECORDS, json!({ "type": "order" })).await;
    assert_eq!(display_values(&theirs), Vec::<String>::new());

    // Erasing a contact erases their records and events.
    ok(&app, &admin, DELETE, json!({ "id": ids[0] })).await;
    let left = ok(&app, &admin, RECORDS, json!({ "type": "order" })).await;
    assert_eq!(display_values(&left), ["B-2001"]);
    let events = ok(&app, &admin, EVENTS, json!({})).await;
    assert!(!events.to_string().contains(&ids[0]));
}

#[tokio::test]
async fn custom_object_definitions_are_checked() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Defs").await;
    let staff = app.add_user(&admin, "STAFF").await;
    let good = json!({ "key": "ticket", "name": "Ticket", "displayField": "title",
        "relation": "ONE_TO_MANY", "fields": [{ "key": "title", "label": "Title", "type": "TEXT" }] });
    assert_eq!(
        code(&app, &staff, DEFINE_OBJECT, json!({ "input": good })).await,
        "FORBIDDEN"
    );
    ok(&app, &admin, DEFINE_OBJECT, json!({ "input": good })).await;
    assert_eq!(
        code(&app, &admin, DEFINE_OBJECT, json!({ "input": good })).await,
        "CONFLICT"
    );
    for bad in [
        json!({ "key": "Bad Key", "name": "X", "displayField": "a", "relation": "ONE_TO_ONE",
                "fields": [{ "key": "a", "label": "A", "type": "TEXT" }] }),
        json!({ "key": "empty", "name": "X", "displayField": "a", "relation": "ONE_TO_ONE", "fields": [] }),
        json!({ "key": "nodisplay", "name": "X", "displayField": "b", "relation": "ONE_TO_ONE",
                "fields": [{ "key": "a", "label": "A", "type": "TEXT" }] }),
        json!({ "key": "twice", "name": "X", "displayField": "a", "relation": "ONE_TO_ONE",
                "fields": [{ "key": "a", "label": "A", "type": "TEXT" }, { "key": "a", "label": "B", "type": "NUMBER" }] }),
        json!({ "key": "noopts", "name": "X", "displayField": "a", "relation": "ONE_TO_ONE",
                "fields": [{ "key": "a", "label": "A", "type": "SINGLE_SELECT" }] }),
    ] {
        assert_eq!(
            code(&app, &admin, DEFINE_OBJECT, json!({ "input": bad })).await,
            "VALIDATION",
            "{bad}"
        );
    }
    let types = ok(&app, &admin, "{ customObjectTypes { key } }", json!({})).await;
    assert_eq!(types["customObjectTypes"], json!([{ "key": "ticket" }]));
}
