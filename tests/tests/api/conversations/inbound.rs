//! Inbound webhooks: every provider's verification, its documented payload shape, and
//! redeliveries.

use std::time::Duration;

use serde_json::json;

use super::*;

#[tokio::test]
async fn every_channel_stores_signed_messages_once_and_refuses_bad_signatures() {
    let (app, fake) = spawn().await;
    let admin = app.sign_up("Inbound Everywhere").await;
    for (index, (kind, _)) in KINDS.iter().enumerate() {
        let account = connect(&app, &fake, &admin, kind).await;
        let sender = index as u32 + 1;
        let text = format!("Hello from {kind}, is the blue one in stock?");
        let delivery = account.text(&app, sender, 7, &text, now() - 60);

        // Wrong signature or secret token, or a body changed after signing: 401, nothing stored.
        let mut bad_requests = vec![delivery.tampered()];
        // Telegram proves itself with a secret header, and WeChat's plaintext-mode signature
        // covers token, timestamp and nonce only: neither signs the body. The others do.
        if *kind != "WECHAT" && *kind != "TELEGRAM" {
            bad_requests.push(delivery.altered_body());
        }
        for bad in bad_requests {
            let (status, _) = post(&app, &account, &bad).await;
            assert_eq!(status, 401, "{kind}: a bad signature is refused");
        }
        let unsigned = Delivery {
            headers: vec![],
            query: String::new(),
            ..delivery.clone()
        };
        assert_eq!(
            post(&app, &account, &unsigned).await.0,
            401,
            "{kind}: unsigned"
        );
        let seen = conversations(&app, &admin, json!({ "channels": [kind] })).await;
        assert!(seen.is_empty(), "{kind}: nothing stored from bad requests");

        // The provider delivers the same message three times: one message is stored.
        for attempt in 0..3 {
            let (status, body) = post(&app, &account, &delivery).await;
            assert_eq!(status, 200, "{kind} attempt {attempt}: {body}");
            if kind == &"WECHAT" {
                assert_eq!(body, "success", "WeChat expects 'success'");
            }
            if kind == &"SMS" {
                assert!(body.contains("<Response>"), "Twilio expects TwiML: {body}");
            }
        }
        let seen = conversations(&app, &admin, json!({ "channels": [kind] })).await;
        assert_eq!(seen.len(), 1, "{kind}: one conversation");
        let conversation = &seen[0];
        assert_eq!(conversation["status"], "OPEN");
        assert_eq!(conversation["source"], "CONTACT");
        assert_eq!(conversation["unreadCount"], 1);
        assert_eq!(conversation["channelAccount"]["id"], account.id.as_str());
        assert_eq!(conversation["lastMessagePreview"], text.as_str());
        let stored = messages(conversation);
        assert_eq!(stored.len(), 1, "{kind}: three deliveries, one message");
        assert_eq!(stored[0]["direction"], "INBOUND");
        assert_eq!(stored[0]["senderType"], "CONTACT");
        assert_eq!(stored[0]["status"], "RECEIVED");
        assert_eq!(
            stored[0]["content"],
            json!({ "kind": "TEXT", "body": text })
        );
        // Who wrote is a contact, found again by their channel identity next time.
        let contact = &conversation["contact"];
        match *kind {
            "WHATSAPP" => {
                assert_eq!(contact["name"], format!("Ana Lima {sender}"));
                assert_eq!(contact["phone"], format!("+62812000{sender:05}"));
            }
            "SMS" => assert_eq!(contact["phone"], format!("+62812000{sender:05}")),
            "TELEGRAM" | "VIBER" => {
                assert_eq!(contact["name"], format!("Ana Lima {sender}"))
            }
            _ => {}
        }
        let again = account.text(&app, sender, 8, "And in red?", now() - 30);
        assert_eq!(post(&app, &account, &again).await.0, 200);
        let seen = conversations(&app, &admin, json!({ "channels": [kind] })).await;
        assert_eq!(
            seen.len(),
            1,
            "{kind}: the same contact's open conversation"
        );
        assert_eq!(messages(&seen[0]).len(), 2);
        assert_eq!(seen[0]["unreadCount"], 2);
        assert_eq!(seen[0]["contact"]["id"], contact["id"]);
    }
    // Eight contacts became active this month by writing.
    let month = chrono_month();
    let data = app
        .gql_ok(
            Some(&admin.token),
            "query($m: String!) { monthlyActiveContacts(month: $m) { count } }",
            json!({ "m": month }),
        )
        .await;
    assert_eq!(data["monthlyActiveContacts"]["count"], 8);
}

fn chrono_month() -> String {
    // The company's timezone is UTC by default; so is this.
    let days = now() / 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), to avoid a date dependency here.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year}-{month:02}")
}

#[tokio::test]
async fn meta_and_wechat_handshakes_answer_the_challenge_only_with_the_right_token() {
    let (app, fake) = spawn().await;
    let admin = app.sign_up("Handshakes").await;
    let whatsapp = connect(&app, &fake, &admin, "WHATSAPP").await;
    let url = app.url(&whatsapp.path());
    let ok = app
        .http
        .get(format!(
            "{url}?hub.mode=subscribe&hub.verify_token=wa-verify&hub.challenge=1158201444"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    let wrong = app
        .http
        .get(format!(
            "{url}?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1158201444"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);

    let wechat = connect(&app, &fake, &admin, "WECHAT").await;
    let signature = sign::wechat("wx-token", "1700000000", "42");
    let url = app.url(&wechat.path());
    let ok = app
        .http
        .get(format!(
            "{url}?signature={signature}&timestamp=1700000000&nonce=42&echostr=hello-wechat"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.text().await.unwrap(), "hello-wechat");
    let wrong = app
        .http
        .get(format!(
            "{url}?signature={signature}&timestamp=1700000001&nonce=42&echostr=hello-wechat"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);

    // Unknown and disconnected accounts are not found; a wrong channel in the path too.
    let unknown = app
        .http
        .post(app.url(&format!("/webhooks/whatsapp/{}", uuid::Uuid::now_v7())))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    let crossed = app
        .http
        .post(app.url(&format!("/webhooks/line/{}", whatsapp.id)))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(crossed.status().as_u16(), 404);
    app.gql_ok(
        Some(&admin.token),
        "mutation($id: ID!) { disconnectChannel(id: $id) }",
        json!({ "id": whatsapp.id }),
    )
    .await;
    let delivery = whatsapp.text(&app, 1, 1, "still there?", now());
    assert_eq!(post(&app, &whatsapp, &delivery).await.0, 404);
}

#[tokio::test]
async fn rich_whatsapp_messages_keep_their_shape_and_malformed_ones_are_refused() {
    let (app, fake) = spawn().await;
    let admin = app.sign_up("Rich Messages").await;
    let account = connect(&app, &fake, &admin, "WHATSAPP").await;
    let value = |message: serde_json::Value| {
        json!({ "object": "whatsapp_business_account", "entry": [{ "id": "1", "changes": [{
            "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": { "display_phone_number": "15550783881", "phone_number_id": "106540352242922" },
                "contacts": [{ "profile": { "name": "Budi" }, "wa_id": "6281311112222" }],
                "messages": [message] } }] }] })
    };
    let ts = now().to_string();
    let shapes = [
        json!({ "from": "6281311112222", "id": "wamid.loc", "timestamp": ts, "type": "location",
                "location": { "latitude": -6.2, "longitude": 106.8, "name": "Monas", "address": "Jakarta" } }),
        json!({ "from": "6281311112222", "id": "wamid.img", "timestamp": ts, "type": "image",
                "image": { "caption": "this one", "mime_type": "image/jpeg", "sha256": "abc", "id": "1479537139650973" } }),
        json!({ "from": "6281311112222", "id": "wamid.btn", "timestamp": ts, "type": "interactive",
                "interactive": { "type": "button_reply", "button_reply": { "id": "size_m", "title": "Medium" } } }),
        json!({ "from": "6281311112222", "id": "wamid.list", "timestamp": ts, "type": "interactive",
                "interactive": { "type": "list_reply", "list_reply": { "id": "red", "title": "Red", "description": "Warm" } } }),
    ];
    for shape in shapes {
        let delivery = account.meta_json(value(shape));
        assert_eq!(post(&app, &account, &delivery).await.0, 200);
    }
    let seen = conversations(&app, &admin, json!({})).await;
    let contents: Vec<serde_json::Value> = messages(&seen[0])
        .iter()
        .map(|m| m["content"].clone())
        .collect();
    assert_eq!(contents[0]["kind"], "LOCATION");
    assert_eq!(contents[0]["latitude"], -6.2);
    assert_eq!(contents[0]["name"], "Monas");
    assert_eq!(contents[1]["kind"], "MEDIA");
    assert_eq!(contents[1]["media"], "IMAGE");
    assert_eq!(contents[1]["providerMediaId"], "1479537139650973");
    assert_eq!(contents[1]["mimeType"], "image/jpeg");
    assert_eq!(
        contents[2],
        json!({ "kind": "INTERACTIVE_REPLY", "id": "size_m", "title": "Medium" })
    );
    assert_eq!(contents[3]["id"], "red");
    assert_eq!(messages(&seen[0])[1]["text"], "this one");

    // Correctly signed but unreadable: 400, and nothing is stored.
    let garbage =
        account.meta_json(json!({ "object": "whatsapp_business_account", "entry": "nope" }));
    let (status, _) = post(&app, &account, &garbage).await;
    assert_eq!(status, 400);
    let mut broken = account.meta_json(json!({}));
    broken.body = b"{\"object\": ".to_vec();
    broken.headers[0].1 = sign::meta("wa-app-secret", &broken.body);
    assert_eq!(post(&app, &account, &broken).await.0, 400);
    let seen = conversations(&app, &admin, json!({})).await;
    assert_eq!(messages(&seen[0]).len(), 4);

    // Another company cannot read these conversations.
    let other = app.sign_up("Other Company").await;
    assert!(conversations(&app, &other, json!({})).await.is_empty());
    let id = seen[0]["id"].as_str().unwrap();
    let response = app
        .gql(
            Some(&other.token),
            "query($id: ID!) { conversation(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(obrol_tests::error_code(&response), Some("NOT_FOUND"));
}

#[tokio::test]
async fn merging_two_contacts_keeps_both_conversation_histories() {
    let (app, fake) = spawn().await;
    let admin = app.sign_up("Merge Chats").await;
    let whatsapp = connect(&app, &fake, &admin, "WHATSAPP").await;
    let telegram = connect(&app, &fake, &admin, "TELEGRAM").await;
    // The same person writes on WhatsApp and on Telegram: two contacts, two open chats.
    let a = whatsapp.text(&app, 1, 1, "Hi on WhatsApp", now());
    assert_eq!(post(&app, &whatsapp, &a).await.0, 200);
    let b = telegram.text(&app, 2, 2, "Hi on Telegram", now());
    assert_eq!(post(&app, &telegram, &b).await.0, 200);
    let both = conversations(&app, &admin, json!({})).await;
    assert_eq!(both.len(), 2);
    let keep = both[0]["contact"]["id"].clone();
    let merged = both[1]["contact"]["id"].clone();
    app.gql_ok(
        Some(&admin.token),
        "mutation($k: ID!, $m: ID!) { mergeContacts(keepId: $k, mergedId: $m) { id } }",
        json!({ "k": keep, "m": merged }),
    )
    .await;
    let after = conversations(&app, &admin, json!({ "contactId": keep })).await;
    assert_eq!(after.len(), 2, "no conversation is lost");
    let open: Vec<&serde_json::Value> = after.iter().filter(|c| c["status"] == "OPEN").collect();
    assert_eq!(open.len(), 1, "one open conversation per contact");
    let texts: Vec<String> = after
        .iter()
        .flat_map(messages)
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect();
    assert!(texts.contains(&"Hi on WhatsApp".to_string()));
    assert!(texts.contains(&"Hi on Telegram".to_string()));
    // The merged person's next Telegram message continues with the kept contact.
    let c = telegram.text(&app, 2, 3, "Still me", now());
    assert_eq!(post(&app, &telegram, &c).await.0, 200);
    let later = conversations(&app, &admin, json!({ "contactId": keep, "status": "OPEN" })).await;
    assert_eq!(later.len(), 1);
}

/// `obrol_inbound_batch_messages` on `app`: (batches stored, messages in them).
async fn inbound_batches(app: &TestApp) -> (f64, f64) {
    let base = &app.server.url;
    (
        app.metric_at(base, "obrol_inbound_batch_messages_count")
            .await,
        app.metric_at(base, "obrol_inbound_batch_messages_sum")
            .await,
    )
}

#[tokio::test]
async fn simultaneous_deliveries_are_each_stored_once_in_the_right_conversation() {
    let (app, fake) = spawn().await;
    let admin = app.sign_up("Busy Inbox").await;
    let account = connect(&app, &fake, &admin, "WHATSAPP").await;
    let start = now() - 120;
    // Senders 1-10 have an open conversation, 11-20 a closed one, 21-30 never wrote.
    for sender in 1..=20u32 {
        let first = account.text(&app, sender, u64::from(sender) * 100, "Hi", start);
        assert_eq!(post(&app, &account, &first).await.0, 200);
    }
    let known = conversations(&app, &admin, json!({})).await;
    assert_eq!(known.len(), 20);
    for conversation in &known {
        let phone = conversation["contact"]["phone"].as_str().unwrap();
        let sender: u32 = phone[phone.len() - 5..].parse().unwrap();
        if sender > 10 {
            app.gql_ok(
                Some(&admin.token),
                "mutation($id: ID!) { closeConversation(id: $id) { status } }",
                json!({ "id": conversation["id"] }),
            )
            .await;
        }
    }
    let before = inbound_batches(&app).await;

    // Every sender writes four messages, each delivered twice, all at once.
    let mut deliveries = Vec::new();
    for sender in 1..=30u32 {
        for k in 1..=4u64 {
            let text = format!("message {k} from {sender}");
            let delivery = account.text(
                &app,
                sender,
                u64::from(sender) * 100 + k,
                &text,
                start + 10 * k as i64,
            );
            deliveries.push(delivery.clone());
            deliveries.push(delivery);
        }
    }
    let posted = futures_util::future::join_all(
        deliveries
            .iter()
            .map(|delivery| post(&app, &account, delivery)),
    )
    .await;
    for (status, body) in &posted {
        assert_eq!(*status, 200, "{body}");
    }
    let after = inbound_batches(&app).await;
    assert!(
        after.1 - before.1 > after.0 - before.0,
        "some batch stored more than one message: {before:?} -> {after:?}"
    );

    let data = app
        .gql_ok(
            Some(&admin.token),
            "{ conversations(first: 100) { totalCount edges { node {
                status unreadCount contact { id phone }
                messages(first: 20) { edges { node { text providerMessageId } } } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["conversations"]["totalCount"], 40);
    let mut contacts = std::collections::HashSet::new();
    let mut provider_ids = std::collections::HashSet::new();
    for edge in data["conversations"]["edges"].as_array().unwrap() {
        let node = &edge["node"];
        let phone = node["contact"]["phone"].as_str().unwrap();
        let sender: u32 = phone[phone.len() - 5..].parse().unwrap();
        contacts.insert((node["contact"]["id"].clone(), sender));
        let texts: Vec<String> = messages(node)
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_string())
            .collect();
        for message in messages(node) {
            assert!(
                provider_ids.insert(message["providerMessageId"].as_str().unwrap().to_string()),
                "a message is stored once: {message}"
            );
        }
        let mut expected: Vec<String> = (1..=4)
            .map(|k| format!("message {k} from {sender}"))
            .collect();
        match (sender, node["status"].as_str().unwrap()) {
            (1..=10, "OPEN") => {
                // The earlier message, then the four new ones.
                expected.insert(0, "Hi".into());
                assert_eq!(node["unreadCount"], 5, "sender {sender}");
            }
            (11..=20, "CLOSED") => expected = vec!["Hi".into()],
            (11..=30, "OPEN") => assert_eq!(node["unreadCount"], 4, "sender {sender}"),
            (_, status) => panic!("sender {sender} has an unexpected {status} conversation"),
        }
        let mut sorted = texts.clone();
        sorted.sort();
        expected.sort();
        assert_eq!(sorted, expected, "sender {sender}'s conversation");
    }
    assert_eq!(provider_ids.len(), 20 + 120);
    // One contact per sender, found again by identity: 30 contacts, all active this month.
    assert_eq!(contacts.len(), 30);
    let senders: std::collections::HashSet<u32> = contacts.iter().map(|(_, s)| *s).collect();
    assert_eq!(senders.len(), 30);
    let month = chrono_month();
    let active = app
        .gql_ok(
            Some(&admin.token),
            "query($m: String!) { monthlyActiveContacts(month: $m) { count } }",
            json!({ "m": month }),
        )
        .await;
    assert_eq!(active["monthlyActiveContacts"]["count"], 30);
}

#[tokio::test]
async fn messenger_and_instagram_contacts_get_their_names_from_meta() {
    let (app, fake) = spawn().await;
    let admin = app.sign_up("Names From Meta").await;
    let messenger = connect(&app, &fake, &admin, "MESSENGER").await;
    let instagram = connect(&app, &fake, &admin, "INSTAGRAM").await;
    // Meta's documented answers: Messenger's User Profile API, Instagram's user profile.
    fake.script(
        "/v21.0/249000000000001",
        200,
        json!({ "first_name": "Ana", "last_name": "Lima", "id": "249000000000001" }),
        &[],
    );
    fake.script(
        "/v21.0/249000000000002",
        200,
        json!({ "name": "Budi Santoso", "username": "budi.santoso", "id": "249000000000002" }),
        &[],
    );
    let hello = messenger.text(&app, 1, 1, "Hello from Messenger", now());
    assert_eq!(post(&app, &messenger, &hello).await.0, 200);
    let hi = instagram.text(&app, 2, 2, "Hi from Instagram", now());
    assert_eq!(post(&app, &instagram, &hi).await.0, 200);

    let names = eventually(Duration::from_secs(15), || async {
        let mut names: Vec<String> = conversations(&app, &admin, json!({}))
            .await
            .iter()
            .filter_map(|c| c["contact"]["name"].as_str().map(str::to_string))
            .filter(|name| !name.is_empty())
            .collect();
        names.sort();
        (names.len() == 2).then_some(names)
    })
    .await
    .expect("both contacts are named");
    assert_eq!(names, vec!["Ana Lima", "Budi Santoso"]);

    let asked = fake.requests_to("/v21.0/2490000000000");
    assert_eq!(asked.len(), 2, "one profile request per new contact");
    let messenger_call = asked.iter().find(|r| r.path.ends_with("01")).unwrap();
    assert_eq!(messenger_call.method, "GET");
    assert_eq!(messenger_call.query, "fields=first_name%2Clast_name");
    assert_eq!(
        messenger_call.header("authorization"),
        Some("Bearer fb-token")
    );
    let instagram_call = asked.iter().find(|r| r.path.ends_with("02")).unwrap();
    assert_eq!(instagram_call.query, "fields=name%2Cusername");
    assert_eq!(
        instagram_call.header("authorization"),
        Some("Bearer ig-token")
    );

    // A contact already known is not asked about again.
    let again = messenger.text(&app, 1, 3, "Me again", now());
    assert_eq!(post(&app, &messenger, &again).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(fake.requests_to("/v21.0/2490000000000").len(), 2);
}
