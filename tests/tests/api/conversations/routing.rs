//! Assignment and routing: round robin (fair, skipping offline agents, capped with a queue,
//! reassigned after a silence), claims, skill-based questions, inbox views, and real-time
//! delivery across processes.

use std::collections::HashMap;
use std::time::Duration;

use obrol_tests::{error_code, Session, Subscription, TestApp};
use serde_json::{json, Value};

use super::*;

const ROUTING: &str = "mutation($input: UpdateTeamRoutingInput!) {
    updateTeamRouting(input: $input) { teamId method maxOpenPerAgent reassignAfterMinutes } }";
const CLAIM: &str = "mutation($id: ID!) { claimConversation(id: $id) { id assignee { id } } }";

async fn team(app: &TestApp, admin: &Session, name: &str, members: &[&Session]) -> String {
    let data = app
        .gql_ok(
            Some(&admin.token),
            "mutation($input: CreateTeamInput!) { createTeam(input: $input) { id } }",
            json!({ "input": { "name": name } }),
        )
        .await;
    let id = data["createTeam"]["id"].as_str().unwrap().to_string();
    for member in members {
        app.gql_ok(
            Some(&admin.token),
            "mutation($t: ID!, $u: ID!) { addTeamMember(teamId: $t, userId: $u) { id } }",
            json!({ "t": id, "u": member.user_id }),
        )
        .await;
    }
    id
}

async fn presence(app: &TestApp, who: &Session, value: &str) {
    app.gql_ok(
        Some(&who.token),
        "mutation($p: Presence!) { setPresence(presence: $p) { id } }",
        json!({ "p": value }),
    )
    .await;
}

async fn route_account_to(app: &TestApp, admin: &Session, account: &Account, team: &str) {
    app.gql_ok(
        Some(&admin.token),
        "mutation($a: ID!, $t: ID) { setChannelAccountTeam(channelAccountId: $a, teamId: $t) { id team { id } } }",
        json!({ "a": account.id, "t": team }),
    )
    .await;
}

/// Assignees of every conversation, straight from the database (300 is more than a page).
async fn assignees(app: &TestApp) -> Vec<Option<String>> {
    let mut db = app.db.superuser().await.unwrap();
    sqlx::query_scalar("select assignee_id::text from conversations order by opened_at, id")
        .fetch_all(&mut db)
        .await
        .unwrap()
}

#[tokio::test]
async fn round_robin_is_fair_over_300_conversations_and_skips_the_offline_agent() {
    let (app, fake) = spawn().await;
    let admin = app.sign_up("Fair Shares").await;
    let agents = [
        app.add_user(&admin, "STAFF").await,
        app.add_user(&admin, "STAFF").await,
        app.add_user(&admin, "STAFF").await,
    ];
    let support = team(
        &app,
        &admin,
        "Support",
        &[&agents[0], &agents[1], &agents[2]],
    )
    .await;
    presence(&app, &agents[0], "ONLINE").await;
    presence(&app, &agents[1], "ONLINE").await;
    presence(&app, &agents[2], "OFFLINE").await;
    app.gql_ok(
        Some(&admin.token),
        ROUTING,
        json!({ "input": { "teamId": support, "method": "ROUND_ROBIN" } }),
    )
    .await;
    let account = connect(&app, &fake, &admin, "WHATSAPP").await;
    route_account_to(&app, &admin, &account, &support).await;
    for sender in 0..300u32 {
        let delivery = account.text(&app, 1000 + sender, sender as u64, "Hi", now());
        assert_eq!(post(&app, &account, &delivery).await.0, 200);
    }
    let order = assignees(&app).await;
    assert_eq!(order.len(), 300);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for assignee in &order {
        *counts
            .entry(assignee.clone().expect("every conversation is assigned"))
            .or_default() += 1;
    }
    assert_eq!(counts.get(&agents[0].user_id), Some(&150), "{counts:?}");
    assert_eq!(counts.get(&agents[1].user_id), Some(&150));
    assert_eq!(
        counts.get(&agents[2].user_id),
        None,
        "offline agents get none"
    );
    // In turn: never the same agent twice in a row.
    assert!(order.windows(2).all(|pair| pair[0] != pair[1]));
}

#[tokio::test]
async fn a_capped_team_queues_conversations_and_reassigns_silent_agents() {
    let (app, fake) = spawn().await;
    let admin = app.sign_up("Capped").await;
    let (a, b) = (
        app.add_user(&admin, "STAFF").await,
        app.add_user(&admin, "STAFF").await,
    );
    let sales = team(&app, &admin, "Sales", &[&a, &b]).await;
    presence(&app, &a, "ONLINE").await;
    presence(&app, &b, "OFFLINE").await;
    let set = app
        .gql_ok(
            Some(&admin.token),
            ROUTING,
            json!({ "input": { "teamId": sales, "method": "ROUND_ROBIN", "maxOpenPerAgent": 1,
                               "reassignAfterMinutes": 5 } }),
        )
        .await;
    assert_eq!(set["updateTeamRouting"]["maxOpenPerAgent"], 1);
    let account = connect(&app, &fake, &admin, "TELEGRAM").await;
    route_account_to(&app, &admin, &account, &sales).await;
    for sender in 1..=2u32 {
        let delivery = account.text(&app, sender, sender as u64, "Hello", now());
        assert_eq!(post(&app, &account, &delivery).await.0, 200);
    }
    // A has room for one; the second waits in the queue.
    let seen = conversations(&app, &admin, json!({})).await;
    let first = seen
        .iter()
        .find(|c| !c["assignee"].is_null())
        .unwrap()
        .clone();
    let waiting = seen
        .iter()
        .find(|c| c["assignee"].is_null())
        .unwrap()
        .clone();
    assert_eq!(first["assignee"]["id"], a.user_id.as_str());
    assert_eq!(waiting["queued"], true);

    // B comes online and takes the queued one at once.
    presence(&app, &b, "ONLINE").await;
    let again = app
        .gql_ok(
            Some(&admin.token),
            "query($id: ID!) { conversation(id: $id) { queued assignee { id } } }",
            json!({ "id": waiting["id"] }),
        )
        .await;
    assert_eq!(again["conversation"]["assignee"]["id"], b.user_id.as_str());
    assert_eq!(again["conversation"]["queued"], false);

    // A third conversation: both are full, so it queues; A closes theirs and gets it.
    let third = account.text(&app, 3, 3, "Anyone?", now());
    assert_eq!(post(&app, &account, &third).await.0, 200);
    let queued = conversations(&app, &admin, json!({ "unassigned": true })).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0]["queued"], true);
    app.gql_ok(
        Some(&a.token),
        "mutation($id: ID!) { closeConversation(id: $id) { status } }",
        json!({ "id": first["id"] }),
    )
    .await;
    let mine = conversations(&app, &a, json!({ "view": "MINE", "status": "OPEN" })).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["id"], queued[0]["id"]);

    // A does not reply within the 5 minutes: the conversation moves to the next agent with
    // room. (The timer is a job; the test brings its due time forward instead of waiting.)
    app.gql_ok(
        Some(&b.token),
        "mutation($id: ID!) { closeConversation(id: $id) { status } }",
        json!({ "id": waiting["id"] }),
    )
    .await;
    let mut db = app.db.superuser().await.unwrap();
    let timers: i64 = sqlx::query_scalar(
        "select count(*) from jobs where kind = 'conversation.reassign' and payload ->> 'conversation_id' = $1",
    )
    .bind(mine[0]["id"].as_str().unwrap())
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(timers, 1, "assignment set a reassignment timer");
    // Five minutes pass with the contact waiting.
    sqlx::query("update conversations set awaiting_reply_since = now() - interval '6 minutes' where id = $1::uuid")
        .bind(mine[0]["id"].as_str().unwrap())
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query("update jobs set run_at = now() where kind = 'conversation.reassign'")
        .execute(&mut db)
        .await
        .unwrap();
    let moved = eventually(Duration::from_secs(10), || async {
        let data = app
            .gql_ok(
                Some(&admin.token),
                "query($id: ID!) { conversation(id: $id) { assignee { id } } }",
                json!({ "id": mine[0]["id"] }),
            )
            .await;
        (data["conversation"]["assignee"]["id"] == b.user_id.as_str()).then_some(())
    })
    .await;
    assert!(moved.is_some(), "the silent agent's conversation went to B");
    let kinds: Vec<String> = sqlx::query_scalar(
        "select kind from conversation_events where conversation_id = $1::uuid order by id",
    )
    .bind(mine[0]["id"].as_str().unwrap())
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(kinds, ["OPENED", "QUEUED", "ASSIGNED", "REASSIGNED"]);

    // An agent who replies keeps the conversation when the timer fires.
    let fourth = account.text(&app, 4, 4, "Me too", now());
    assert_eq!(post(&app, &account, &fourth).await.0, 200);
    let theirs = conversations(&app, &a, json!({ "view": "MINE", "status": "OPEN" })).await;
    assert_eq!(theirs.len(), 1);
    app.gql_ok(
        Some(&a.token),
        "mutation($input: SendMessageInput!) { sendMessage(input: $input) { id } }",
        json!({ "input": { "conversationId": theirs[0]["id"], "text": "On it" } }),
    )
    .await;
    sqlx::query("update jobs set run_at = now() where kind = 'conversation.reassign'")
        .execute(&mut db)
        .await
        .unwrap();
    eventually(Duration::from_secs(10), || async {
        let left: i64 =
            sqlx::query_scalar("select count(*) from jobs where kind = 'conversation.reassign'")
                .fetch_one(&mut app.db.superuser().await.unwrap())
                .await
                .unwrap();
        (left == 0).then_some(())
    })
    .await
    .expect("the timer ran");
    let still = app
        .gql_ok(
            Some(&admin.token),
            "query($id: ID!) { conversation(id: $id) { assignee { id } } }",
            json!({ "id": theirs[0]["id"] }),
        )
        .await;
    assert_eq!(still["conversation"]["assignee"]["id"], a.user_id.as_str());
}

#[tokio::test]
async fn of_a_hundred_simultaneous_claims_exactly_one_wins() {
    let (app, fake) = spawn().await;
    let admin = app.sign_up("Claims").await;
    let mut agents = Vec::new();
    for _ in 0..10 {
        agents.push(app.add_user(&admin, "STAFF").await);
    }
    let refs: Vec<&Session> = agents.iter().collect();
    let pool = team(&app, &admin, "Pool", &refs).await;
    let account = connect(&app, &fake, &admin, "LINE").await;
    route_account_to(&app, &admin, &account, &pool).await;
    let delivery = account.text(&app, 1, 1, "Who can help?", now());
    assert_eq!(post(&app, &account, &delivery).await.0, 200);
    // Cherry pick: it waits in the team's Unassigned pool, which every member sees.
    let unassigned = conversations(
        &app,
        &agents[3],
        json!({ "view": "TEAM", "teamId": pool, "unassigned": true }),
    )
    .await;
    assert_eq!(unassigned.len(), 1);
    let id = unassigned[0]["id"].as_str().unwrap().to_string();
    let mut claims = Vec::new();
    for i in 0..100 {
        let agent = agents[i % agents.len()].clone();
        let app_url = app.server.url.clone();
        let http = app.http.clone();
        let id = id.clone();
        claims.push(tokio::spawn(async move {
            obrol_tests::gql_at(
                &http,
                &app_url,
                Some(agent.token.as_str()),
                CLAIM,
                json!({ "id": id }),
            )
            .await
        }));
    }
    let mut winners = Vec::new();
    let mut conflicts = 0;
    for claim in claims {
        let response = claim.await.unwrap();
        match error_code(&response) {
            None => winners.push(response["data"]["claimConversation"]["assignee"]["id"].clone()),
            Some("CONFLICT") => conflicts += 1,
            other => panic!("unexpected {other:?}: {response}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins");
    assert_eq!(conflicts, 99);
    let now_theirs = app
        .gql_ok(
            Some(&admin.token),
            "query($id: ID!) { conversation(id: $id) { assignee { id } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(now_theirs["conversation"]["assignee"]["id"], winners[0]);
}

#[tokio::test]
async fn skill_based_routing_asks_routes_by_the_answer_saves_it_and_nudges() {
    let (app, fake) = spawn().await;
    let admin = app.sign_up("Homes").await;
    let agent = app.add_user(&admin, "STAFF").await;
    presence(&app, &agent, "ONLINE").await;
    let front = team(&app, &admin, "Front desk", &[]).await;
    let residential = team(&app, &admin, "Residential", &[&agent]).await;
    let commercial = team(&app, &admin, "Commercial", &[]).await;
    let luxury = team(&app, &admin, "Luxury", &[]).await;
    app.gql_ok(
        Some(&admin.token),
        ROUTING,
        json!({ "input": { "teamId": residential, "method": "ROUND_ROBIN" } }),
    )
    .await;
    app.gql_ok(
        Some(&admin.token),
        "mutation($input: DefineContactPropertyInput!) { defineContactProperty(input: $input) { id } }",
        json!({ "input": { "key": "interest", "label": "Interest", "type": "TEXT" } }),
    )
    .await;
    let skill = json!({ "input": {
        "teamId": front, "method": "SKILL_BASED",
        "skillQuestion": "What are you looking for?",
        "skillOptions": [
            { "id": "res", "title": "Residential", "teamId": residential },
            { "id": "com", "title": "Commercial", "teamId": commercial },
            { "id": "lux", "title": "Luxury", "teamId": luxury }
        ],
        "skillProperty": "interest",
        "skillNudgeAfterMinutes": 10,
        "skillNudgeText": "Tap one of the options so we can find the right person."
    } });
    app.gql_ok(Some(&admin.token), ROUTING, skill).await;
    let account = connect(&app, &fake, &admin, "WHATSAPP").await;
    route_account_to(&app, &admin, &account, &front).await;

    let first = account.text(&app, 1, 1, "Hi, I want to buy a house", now());
    assert_eq!(post(&app, &account, &first).await.0, 200);
    // The question goes out as three buttons.
    let asked = fake.wait_for("/messages", 1, Duration::from_secs(10)).await;
    let question = asked[0].json();
    assert_eq!(question["type"], "interactive");
    assert_eq!(
        question["interactive"]["body"]["text"],
        "What are you looking for?"
    );
    let titles: Vec<&str> = question["interactive"]["action"]["buttons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["reply"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Residential", "Commercial", "Luxury"]);

    // The contact taps "Residential".
    let answer = account.meta_json(json!({ "object": "whatsapp_business_account", "entry": [{ "id": "1",
        "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550783881", "phone_number_id": "106540352242922" },
            "contacts": [{ "profile": { "name": "Ana Lima 1" }, "wa_id": "6281200000001" }],
            "messages": [{ "from": "6281200000001", "id": "wamid.answer1", "timestamp": now().to_string(),
                           "type": "interactive", "interactive": { "type": "button_reply",
                           "button_reply": { "id": "res", "title": "Residential" } } }] } }] }] }));
    assert_eq!(post(&app, &account, &answer).await.0, 200);
    let seen = conversations(&app, &admin, json!({})).await;
    assert_eq!(seen[0]["team"]["id"], residential.as_str());
    assert_eq!(
        seen[0]["assignee"]["id"],
        agent.user_id.as_str(),
        "then round robin in the new team"
    );
    let contact = app
        .gql_ok(
            Some(&admin.token),
            "query($id: ID!) { contact(id: $id) { customProperties } }",
            json!({ "id": seen[0]["contact"]["id"] }),
        )
        .await;
    assert_eq!(
        contact["contact"]["customProperties"]["interest"],
        "Residential"
    );

    // Another contact does not answer: after the timeout they are nudged once.
    let second = account.text(&app, 2, 2, "Hello", now());
    assert_eq!(post(&app, &account, &second).await.0, 200);
    fake.wait_for("/messages", 2, Duration::from_secs(10)).await;
    let mut db = app.db.superuser().await.unwrap();
    sqlx::query("update jobs set run_at = now() where kind = 'conversation.routing_nudge'")
        .execute(&mut db)
        .await
        .unwrap();
    let calls = fake.wait_for("/messages", 3, Duration::from_secs(10)).await;
    assert_eq!(calls.len(), 3);
    let nudge = calls[2].json();
    assert_eq!(
        nudge["interactive"]["body"]["text"],
        "Tap one of the options so we can find the right person."
    );
    assert_eq!(nudge["to"], "6281200000002");
    // A typed answer by number routes too.
    let typed = account.text(&app, 2, 99, "3", now());
    assert_eq!(post(&app, &account, &typed).await.0, 200);
    let luxury_inbox = conversations(&app, &admin, json!({ "teamId": luxury })).await;
    assert_eq!(luxury_inbox.len(), 1);
}

#[tokio::test]
async fn inbox_views_notes_mentions_and_visibility() {
    let (app, fake) = spawn().await;
    let admin = app.sign_up("Views").await;
    let (ana, budi, citra) = (
        app.add_user(&admin, "STAFF").await,
        app.add_user(&admin, "STAFF").await,
        app.add_user(&admin, "STAFF").await,
    );
    let sales = team(&app, &admin, "Sales", &[&ana, &budi]).await;
    let support = team(&app, &admin, "Support", &[&citra]).await;
    let account = connect(&app, &fake, &admin, "VIBER").await;
    route_account_to(&app, &admin, &account, &sales).await;
    for sender in 1..=3u32 {
        let delivery = account.text(&app, sender, sender as u64, "Hi", now());
        assert_eq!(post(&app, &account, &delivery).await.0, 200);
    }
    let all = conversations(&app, &admin, json!({})).await;
    assert_eq!(all.len(), 3);
    // Sales members see the team's three; Citra (Support) sees none of them.
    assert_eq!(
        conversations(&app, &ana, json!({ "view": "TEAM" }))
            .await
            .len(),
        3
    );
    assert!(conversations(&app, &citra, json!({})).await.is_empty());
    let hidden = app
        .gql(
            Some(&citra.token),
            "query($id: ID!) { conversation(id: $id) { id } }",
            json!({ "id": all[0]["id"] }),
        )
        .await;
    assert_eq!(error_code(&hidden), Some("NOT_FOUND"));
    assert_eq!(
        error_code(
            &app.gql(Some(&citra.token), CLAIM, json!({ "id": all[0]["id"] }))
                .await
        ),
        Some("NOT_FOUND")
    );

    // Ana claims one: it is in her inbox, out of the Unassigned pool.
    app.gql_ok(Some(&ana.token), CLAIM, json!({ "id": all[0]["id"] }))
        .await;
    assert_eq!(
        conversations(&app, &ana, json!({ "view": "MINE" }))
            .await
            .len(),
        1
    );
    let pool = conversations(
        &app,
        &budi,
        json!({ "view": "TEAM", "teamId": sales, "unassigned": true }),
    )
    .await;
    assert_eq!(pool.len(), 2);

    // A note mentioning Citra puts the conversation in her inbox; the contact never sees it.
    let note = app
        .gql_ok(
            Some(&ana.token),
            "mutation($input: AddNoteInput!) { addNote(input: $input) { isNote direction status text mentions { id } } }",
            json!({ "input": { "conversationId": all[0]["id"], "text": "@Citra can you check the refund?",
                               "mentionUserIds": [citra.user_id] } }),
        )
        .await;
    assert_eq!(note["addNote"]["isNote"], true);
    assert_eq!(note["addNote"]["direction"], "INTERNAL");
    assert_eq!(note["addNote"]["mentions"][0]["id"], citra.user_id.as_str());
    let citras = conversations(&app, &citra, json!({ "view": "MINE" })).await;
    assert_eq!(citras.len(), 1);
    assert!(
        fake.requests_to("/pa/send_message").is_empty(),
        "notes are never sent"
    );

    // Staff may not hand conversations to another team's agent; an Admin may move it.
    let refused = app
        .gql(
            Some(&budi.token),
            "mutation($input: AssignConversationInput!) { assignConversation(input: $input) { id } }",
            json!({ "input": { "conversationId": all[1]["id"], "userId": citra.user_id } }),
        )
        .await;
    assert!(
        matches!(error_code(&refused), Some("VALIDATION") | Some("FORBIDDEN")),
        "{refused}"
    );
    let moved = app
        .gql_ok(
            Some(&admin.token),
            "mutation($input: AssignConversationInput!) { assignConversation(input: $input) { team { id } assignee { id } } }",
            json!({ "input": { "conversationId": all[1]["id"], "teamId": support, "userId": citra.user_id } }),
        )
        .await;
    assert_eq!(
        moved["assignConversation"]["assignee"]["id"],
        citra.user_id.as_str()
    );

    // Close and reopen; the contact's next message after closing opens a new conversation.
    let id = all[2]["id"].as_str().unwrap();
    let closed = app
        .gql_ok(
            Some(&budi.token),
            "mutation($id: ID!) { closeConversation(id: $id) { status closedAt } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(closed["closeConversation"]["status"], "CLOSED");
    let again = app
        .gql(
            Some(&budi.token),
            "mutation($id: ID!) { closeConversation(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&again), Some("CONFLICT"));
    let contact_id = all[2]["contact"]["id"].clone();
    let mut db = app.db.superuser().await.unwrap();
    let external: String = sqlx::query_scalar(
        "select external_id from contact_identities where contact_id = $1::uuid",
    )
    .bind(contact_id.as_str().unwrap())
    .fetch_one(&mut db)
    .await
    .unwrap();
    let number: u32 = external[12..16].parse().unwrap();
    let later = account.text(&app, number, 50, "One more thing", now());
    assert_eq!(post(&app, &account, &later).await.0, 200);
    let theirs = conversations(&app, &admin, json!({ "contactId": contact_id })).await;
    assert_eq!(theirs.len(), 2, "a new conversation after the closed one");
    let reopened = app
        .gql(
            Some(&admin.token),
            "mutation($id: ID!) { reopenConversation(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        error_code(&reopened),
        Some("CONFLICT"),
        "the contact already has an open one"
    );
}

#[tokio::test]
async fn a_subscriber_on_another_process_receives_a_message_posted_to_the_first() {
    let (app, fake) = spawn().await;
    let admin = app.sign_up("Two Nodes").await;
    let account = connect(&app, &fake, &admin, "TELEGRAM").await;
    let second = app.second_node().await;
    let mut subscription = Subscription::start(
        &second.url,
        Some(&admin.token),
        "subscription { messageAdded { id direction text conversationId } }",
    )
    .await
    .unwrap();
    let mut inbox = Subscription::start(
        &second.url,
        Some(&admin.token),
        "subscription { inboxChanged { visible conversation { id unreadCount lastMessagePreview } } }",
    )
    .await
    .unwrap();
    // Let both subscriptions be registered before posting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let delivery = account.text(&app, 1, 1, "Posted to node one", now());
    assert_eq!(post(&app, &account, &delivery).await.0, 200);
    let event = subscription.next(Duration::from_secs(10)).await.unwrap();
    let message: &Value = &event["payload"]["data"]["messageAdded"];
    assert_eq!(message["text"], "Posted to node one", "{event}");
    assert_eq!(message["direction"], "INBOUND");
    let change = inbox.next(Duration::from_secs(10)).await.unwrap();
    let conversation = &change["payload"]["data"]["inboxChanged"]["conversation"];
    assert_eq!(conversation["lastMessagePreview"], "Posted to node one");
    assert_eq!(conversation["unreadCount"], 1);

    // A claim made on node one reaches a conversationUpdated subscriber on node two.
    let id = conversation["id"].as_str().unwrap().to_string();
    let mut updates = Subscription::start(
        &second.url,
        Some(&admin.token),
        &format!("subscription {{ conversationUpdated(id: \"{id}\") {{ id assignee {{ id }} }} }}"),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.gql_ok(Some(&admin.token), CLAIM, json!({ "id": id }))
        .await;
    let updated = updates.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        updated["payload"]["data"]["conversationUpdated"]["assignee"]["id"],
        admin.user_id.as_str(),
        "{updated}"
    );
    // The claim also shows in the inbox subscription.
    let claimed = inbox.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(claimed["payload"]["data"]["inboxChanged"]["visible"], true);

    // Another company's subscriber hears nothing of it.
    let other = app.sign_up("Elsewhere").await;
    let mut stranger = Subscription::start(
        &second.url,
        Some(&other.token),
        "subscription { messageAdded { id } }",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let more = account.text(&app, 1, 2, "Private", now());
    assert_eq!(post(&app, &account, &more).await.0, 200);
    assert!(subscription.next(Duration::from_secs(10)).await.is_ok());
    assert!(stranger.next(Duration::from_millis(700)).await.is_err());
}

/// `obrol_subscriber_reads_total` on the node at `base`.
async fn subscriber_reads(app: &TestApp, base: &str) -> u64 {
    app.metric_at(base, "obrol_subscriber_reads_total").await as u64
}

#[tokio::test]
async fn subscribers_on_one_node_share_each_new_messages_read() {
    let (app, fake) = spawn().await;
    let admin = app.sign_up("Many Agents").await;
    let account = connect(&app, &fake, &admin, "TELEGRAM").await;
    let second = app.second_node().await;
    let mut subscriptions = Vec::new();
    for _ in 0..3 {
        for query in [
            "subscription { messageAdded { id text } }",
            "subscription { inboxChanged { visible conversation { id lastMessagePreview } } }",
        ] {
            subscriptions.push(
                Subscription::start(&second.url, Some(&admin.token), query)
                    .await
                    .unwrap(),
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = subscriber_reads(&app, &second.url).await;
    for n in 0..10u64 {
        let delivery = account.text(&app, n as u32, 100 + n, &format!("Message {n}"), now());
        assert_eq!(post(&app, &account, &delivery).await.0, 200);
    }
    // Every subscriber hears all ten messages ...
    let mut expected: Vec<String> = (0..10).map(|n| format!("Message {n}")).collect();
    expected.sort();
    for subscription in &mut subscriptions {
        let mut heard = Vec::new();
        while heard.len() < 10 {
            let event = subscription.next(Duration::from_secs(10)).await.unwrap();
            assert!(event["payload"]["errors"].is_null(), "{event}");
            let data = &event["payload"]["data"];
            let text = data["messageAdded"]["text"]
                .as_str()
                .or(data["inboxChanged"]["conversation"]["lastMessagePreview"].as_str())
                .unwrap_or_default();
            heard.push(text.to_string());
        }
        // Each subscriber got the rows of its own events, not a neighbour's.
        heard.sort();
        assert_eq!(heard, expected);
    }
    // ... but each message and its conversation were read once on the node, not once per
    // subscriber (that would be 3 × 10 + 3 × 10 = 60 reads).
    let reads = subscriber_reads(&app, &second.url).await - before;
    assert!(
        reads <= 20,
        "{reads} reads for 10 messages and 6 subscribers"
    );
    assert!(reads >= 10, "{reads}: the messages were read at all");
}

/// One WhatsApp delivery carrying `count` text messages from one sender.
fn burst(account: &Account, count: usize, first: usize) -> Delivery {
    let messages: Vec<Value> = (first..first + count)
        .map(|n| {
            json!({ "from": "6281200099999", "id": format!("wamid.burst.{n}"),
                    "timestamp": now().to_string(), "type": "text",
                    "text": { "body": format!("burst {n}") } })
        })
        .collect();
    account.meta_json(json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "102290129340398", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550783881",
                          "phone_number_id": "106540352242922" },
            "contacts": [{ "profile": { "name": "Bursty" }, "wa_id": "6281200099999" }],
            "messages": messages
        } }] }]
    }))
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_is_told_so_and_other_companies_are_not_affected() {
    let fake = FakeProvider::start().await;
    let app = TestApp::spawn_with(&[
        ("OBROL_CHANNEL_API_BASE", fake.url.clone()),
        ("OBROL_EVENT_BUFFER", "8".to_string()),
    ])
    .await;
    let busy = app.sign_up("Busy Company").await;
    let quiet = app.sign_up("Quiet Company").await;
    let account = connect(&app, &fake, &busy, "WHATSAPP").await;
    let quiet_account = connect(&app, &fake, &quiet, "VIBER").await;
    let query = "subscription { messageAdded { text } }";
    let mut behind = Subscription::start(&app.server.url, Some(&busy.token), query)
        .await
        .unwrap();
    let mut neighbour = Subscription::start(&app.server.url, Some(&quiet.token), query)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 300 messages committed at once: far more events than the buffer of 8 holds while
    // the subscriber reads the first ones.
    assert_eq!(post(&app, &account, &burst(&account, 300, 0)).await.0, 200);
    let mut received = 0;
    let missed = loop {
        let item = behind
            .next(Duration::from_secs(20))
            .await
            .expect("the subscription says something before it ends");
        if item["payload"]["errors"].is_array() {
            break item;
        }
        assert_eq!(item["type"], "next", "{item}");
        received += 1;
    };
    assert!(received < 300, "received {received} of 300");
    assert_eq!(
        error_code(&missed["payload"]),
        Some("EVENTS_MISSED"),
        "{missed}"
    );
    // Nothing was lost, only not pushed: reloading shows all 300, unread.
    let stored = conversations(&app, &busy, json!({})).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["unreadCount"], 300);

    // The other company's subscriber has its own buffer: it missed nothing, and hears its
    // own message next.
    let hello = quiet_account.text(&app, 1, 1, "Quiet hello", now());
    assert_eq!(post(&app, &quiet_account, &hello).await.0, 200);
    let heard = neighbour.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        heard["payload"]["data"]["messageAdded"]["text"], "Quiet hello",
        "{heard}"
    );

    // Subscribing again works as before.
    let mut again = Subscription::start(&app.server.url, Some(&busy.token), query)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(post(&app, &account, &burst(&account, 1, 1000)).await.0, 200);
    let next = again.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        next["payload"]["data"]["messageAdded"]["text"], "burst 1000",
        "{next}"
    );
}
