//! Notes, reminders, channel identities, files, and merging two contacts into one.

use super::*;

const DETAILS: &str = "query($id: ID!) { contact(id: $id) {
    name email customProperties labels { name }
    notes { body author { id } } reminders { body doneAt assignee { id } }
    identities { channel externalId } media { fileName sizeBytes contentType }
    activities(first: 50) { nodes { kind } } } }";
const NOTE: &str =
    "mutation($c: ID!, $b: String!) { addContactNote(contactId: $c, body: $b) { id body } }";
const IDENTITY: &str = "mutation($c: ID!, $ch: ChannelType!, $x: String!) {
    addContactIdentity(contactId: $c, channel: $ch, externalId: $x) { id channel externalId } }";
const MERGE: &str = "mutation($k: ID!, $m: ID!) { mergeContacts(keepId: $k, mergedId: $m) { id } }";

fn kinds(contact: &Value) -> Vec<String> {
    contact["activities"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn notes_reminders_identities_and_files_belong_to_the_contact() {
    let app = TestApp::spawn().await;
    let (admin, ids) = crm(&app).await;
    let staff = app.add_user(&admin, "STAFF").await;
    let ana = &ids[0];

    let note = ok(
        &app,
        &admin,
        NOTE,
        json!({ "c": ana, "b": "Prefers calls after 5pm" }),
    )
    .await;
    let note_id = note["addContactNote"]["id"].clone();
    assert_eq!(
        code(&app, &admin, NOTE, json!({ "c": ana, "b": "  " })).await,
        "VALIDATION"
    );
    assert_eq!(
        code(
            &app,
            &staff,
            "mutation($id: ID!) { deleteContactNote(id: $id) }",
            json!({ "id": note_id })
        )
        .await,
        "FORBIDDEN",
        "only the author or an Admin deletes a note"
    );

    let reminder = ok(
        &app,
        &admin,
        "mutation($i: AddReminderInput!) { addContactReminder(input: $i) { id dueAt } }",
        json!({ "i": { "contactId": ana, "body": "Send the renewal quote",
                        "dueAt": "2026-12-01T02:00:00Z", "assigneeId": staff.user_id } }),
    )
    .await;
    let reminder_id = reminder["addContactReminder"]["id"].clone();
    let mine = ok(
        &app,
        &staff,
        "{ myReminders { id body contactId } }",
        json!({}),
    )
    .await;
    assert_eq!(
        mine["myReminders"],
        json!([{ "id": reminder_id, "body": "Send the renewal quote", "contactId": ana }])
    );
    ok(
        &app,
        &staff,
        "mutation($id: ID!) { completeContactReminder(id: $id) { doneAt } }",
        json!({ "id": reminder_id }),
    )
    .await;
    let mine = ok(&app, &staff, "{ myReminders { id } }", json!({})).await;
    assert_eq!(
        mine["myReminders"],
        json!([]),
        "a done reminder is off the list"
    );

    ok(
        &app,
        &admin,
        IDENTITY,
        json!({ "c": ana, "ch": "WHATSAPP", "x": "+6281200000001" }),
    )
    .await;
    assert_eq!(
        code(
            &app,
            &admin,
            IDENTITY,
            json!({ "c": ids[1], "ch": "WHATSAPP", "x": "+6281200000001" })
        )
        .await,
        "CONFLICT",
        "one identity, one contact"
    );
    assert_eq!(
        names(&app, &admin, cond("channel", "EQ", Some("WHATSAPP"), None))
            .await
            .0,
        ["Ana Lim"]
    );

    let upload = app
        .gql_upload(
            &admin.token,
            "mutation($c: ID!, $file: Upload!) { attachContactMedia(contactId: $c, file: $file) { fileName sizeBytes } }",
            json!({ "c": ana, "file": null }),
            "invoice.pdf",
            b"%PDF-1.4 not much of an invoice".to_vec(),
        )
        .await;
    assert_eq!(
        upload["data"]["attachContactMedia"],
        json!({ "fileName": "invoice.pdf", "sizeBytes": 31 }),
        "{upload:#}"
    );

    let details = ok(&app, &admin, DETAILS, json!({ "id": ana })).await;
    let contact = &details["contact"];
    assert_eq!(contact["notes"][0]["body"], "Prefers calls after 5pm");
    assert_eq!(contact["notes"][0]["author"]["id"], admin.user_id);
    assert!(contact["reminders"][0]["doneAt"].is_string());
    assert_eq!(
        contact["identities"],
        json!([{ "channel": "WHATSAPP", "externalId": "+6281200000001" }])
    );
    let log = kinds(contact);
    for kind in ["NOTE_ADDED", "REMINDER_ADDED", "IDENTITY_ADDED"] {
        assert!(log.iter().any(|k| k == kind), "{kind} in {log:?}");
    }

    // Another company reaches none of it.
    let other = app.sign_up("Other").await;
    assert_eq!(
        code(&app, &other, NOTE, json!({ "c": ana, "b": "hi" })).await,
        "NOT_FOUND"
    );
    assert_eq!(
        code(
            &app,
            &other,
            "mutation($id: ID!) { deleteContactNote(id: $id) }",
            json!({ "id": note_id })
        )
        .await,
        "NOT_FOUND"
    );

    // The contact's own data, in one document (portability).
    const EXPORT_ONE: &str = "query($id: ID!) { contactDataExport(id: $id) }";
    let data = ok(&app, &admin, EXPORT_ONE, json!({ "id": ana })).await;
    let document = &data["contactDataExport"];
    assert_eq!(document["contact"]["phone"], "+6281200000001");
    assert_eq!(
        document["contact"]["custom_properties"]["industry"],
        "Technology"
    );
    assert_eq!(document["notes"][0]["body"], "Prefers calls after 5pm");
    assert_eq!(document["identities"][0]["external_id"], "+6281200000001");
    assert_eq!(document["media"][0]["file_name"], "invoice.pdf");
    assert_eq!(document["reminders"][0]["body"], "Send the renewal quote");
    assert!(document["activity"].as_array().unwrap().len() >= 4);
    assert_eq!(
        code(&app, &staff, EXPORT_ONE, json!({ "id": ana })).await,
        "FORBIDDEN"
    );
    assert_eq!(
        code(&app, &other, EXPORT_ONE, json!({ "id": ana })).await,
        "NOT_FOUND"
    );

    // Erasing the contact takes its stored file too.
    let files = app.data_dir().join("files/contact-media");
    let count_files = |dir: &std::path::Path| -> usize {
        fn walk(dir: &std::path::Path) -> usize {
            std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .map(|e| {
                            if e.path().is_dir() {
                                walk(&e.path())
                            } else {
                                1
                            }
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        walk(dir)
    };
    assert_eq!(count_files(&files), 1);
    ok(&app, &admin, DELETE, json!({ "id": ana })).await;
    assert_eq!(count_files(&files), 0, "no file outlives its contact");
}

#[tokio::test]
async fn merging_two_contacts_keeps_everything_of_both() {
    let app = TestApp::spawn().await;
    let (admin, ids) = crm(&app).await;
    let ana = ids[0].clone();
    let twin = create(
        &app,
        &admin,
        json!({ "firstName": "A.", "email": "ana@lim.example", "labels": ["wholesale"],
                "customProperties": { "employees": 5, "vip": false } }),
    )
    .await;
    let list = ok(
        &app,
        &admin,
        "mutation { createList(input: { name: \"Fair visitors\" }) { id } }",
        json!({}),
    )
    .await["createList"]["id"]
        .clone();
    ok(
        &app,
        &admin,
        "mutation($l: ID!, $ids: [ID!]!) { addToList(listId: $l, contactIds: $ids) { id } }",
        json!({ "l": list, "ids": [twin] }),
    )
    .await;
    ok(
        &app,
        &admin,
        NOTE,
        json!({ "c": twin, "b": "Met at the Jakarta fair" }),
    )
    .await;
    ok(
        &app,
        &admin,
        IDENTITY,
        json!({ "c": twin, "ch": "INSTAGRAM", "x": "ana.lim" }),
    )
    .await;

    ok(
        &app,
        &admin,
        "mutation { defineCustomObject(input: { key: \"order\", name: \"Order\", displayField: \"number\",
            relation: ONE_TO_MANY, fields: [{ key: \"number\", label: \"Number\", type: TEXT }] }) { id } }",
        json!({}),
    )
    .await;
    ok(
        &app,
        &admin,
        "mutation($c: ID!) { createCustomObjectRecord(type: \"order\", contactId: $c, values: { number: \"T-1\" }) { id } }",
        json!({ "c": twin }),
    )
    .await;

    assert_eq!(
        code(&app, &admin, MERGE, json!({ "k": ana, "m": ana })).await,
        "VALIDATION"
    );
    let other = app.sign_up("Other").await;
    let theirs = create(&app, &other, json!({ "firstName": "Theirs" })).await;
    assert_eq!(
        code(&app, &admin, MERGE, json!({ "k": ana, "m": theirs })).await,
        "NOT_FOUND"
    );

    ok(&app, &admin, MERGE, json!({ "k": ana, "m": twin })).await;
    let details = ok(&app, &admin, DETAILS, json!({ "id": ana })).await;
    let contact = &details["contact"];
    assert_eq!(contact["name"], "Ana Lim", "the kept contact's values win");
    assert_eq!(contact["email"], "ana@lim.example", "gaps are filled");
    assert_eq!(contact["customProperties"]["employees"], 120.0);
    assert_eq!(contact["customProperties"]["vip"], true);
    assert_eq!(contact["labels"], json!([{ "name": "wholesale" }]));
    assert_eq!(contact["notes"][0]["body"], "Met at the Jakarta fair");
    assert_eq!(
        contact["identities"],
        json!([{ "channel": "INSTAGRAM", "externalId": "ana.lim" }])
    );
    let log = kinds(contact);
    assert_eq!(log[0], "MERGED");
    assert_eq!(
        log.iter().filter(|k| *k == "CREATED").count(),
        2,
        "both histories are there: {log:?}"
    );
    assert_eq!(
        names(&app, &admin, cond("list", "EQ", list.as_str(), None))
            .await
            .0,
        ["Ana Lim"]
    );
    let orders = ok(
        &app,
        &admin,
        "query($c: ID!) { customObjectRecords(type: \"order\", contactId: $c) { nodes { displayValue } } }",
        json!({ "c": ana }),
    )
    .await;
    assert_eq!(
        orders["customObjectRecords"]["nodes"],
        json!([{ "displayValue": "T-1" }]),
        "the merged contact's records move over"
    );
    assert_eq!(
        code(&app, &admin, CONTACT, json!({ "id": twin })).await,
        "NOT_FOUND"
    );
    assert_eq!(names(&app, &admin, json!(null)).await.1, 5);
}

#[tokio::test]
async fn templates_are_filled_from_contacts_and_unknown_variables_are_reported() {
    let app = TestApp::spawn().await;
    let (admin, ids) = crm(&app).await;
    const RENDER: &str =
        "query($t: String!, $c: ID!) { renderContactTemplate(template: $t, contactId: $c) }";
    let template = "Hi {{contact.first_name | fallback: \"there\"}} from {{contact.company_name | fallback: 'your company'}}: {{contact.industry}}, {{contact.employees}} staff.";
    let ana = ok(&app, &admin, RENDER, json!({ "t": template, "c": ids[0] })).await;
    assert_eq!(
        ana["renderContactTemplate"],
        "Hi Ana from your company: Technology, 120 staff."
    );
    let budi = ok(&app, &admin, RENDER, json!({ "t": template, "c": ids[1] })).await;
    assert_eq!(
        budi["renderContactTemplate"],
        "Hi Budi from 50% Off Ltd: Technology, 12 staff."
    );
    let checked = ok(
        &app,
        &admin,
        "query($t: String!) { checkContactTemplate(template: $t) { ok unknownVariables errors availableVariables } }",
        json!({ "t": "Dear {{contact.title}}, {{contact.first_name | fallback there}}" }),
    )
    .await;
    let checked = &checked["checkContactTemplate"];
    assert_eq!(checked["ok"], false);
    assert_eq!(
        checked["unknownVariables"],
        json!([]),
        "a malformed template stops at the error"
    );
    assert_eq!(checked["errors"].as_array().unwrap().len(), 1);
    assert!(checked["availableVariables"]
        .as_array()
        .unwrap()
        .contains(&json!("contact.industry")));
    let checked = ok(
        &app,
        &admin,
        "query($t: String!) { checkContactTemplate(template: $t) { ok unknownVariables } }",
        json!({ "t": "Dear {{contact.title}} of {{ contact.company_name }}" }),
    )
    .await;
    assert_eq!(
        checked["checkContactTemplate"],
        json!({ "ok": false, "unknownVariables": ["contact.title"] })
    );
    let response = app
        .gql(
            Some(&admin.token),
            RENDER,
            json!({ "t": "Dear {{contact.title}}", "c": ids[0] }),
        )
        .await;
    assert_eq!(error_code(&response), Some("VALIDATION"));
    assert!(response.to_string().contains("contact.title"), "{response}");
}
