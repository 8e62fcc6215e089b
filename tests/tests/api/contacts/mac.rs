//! Monthly Active Contacts: recorded once per contact and month (in the company's timezone),
//! counted against the plan, kept through erasure.

use obrol_api::contacts::mac::{record_active, ActiveReason};
use sqlx::Connection;

use super::*;

const MAC: &str = "query($month: String!) { monthlyActiveContacts(month: $month) {
    month count allowance overAllowance
    contacts(first: 100) { nodes { contact { id name } reason firstActiveAt } } } }";

/// Calls `record_active` the way conversations will: as the application role, inside the
/// company's tenant transaction.
async fn activate(app: &TestApp, company: &str, contact: &str, at: &str) -> bool {
    let mut conn = app.db.superuser().await.unwrap();
    sqlx::query("set role obrol_app")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("select set_config('app.company_id', $1, true)")
        .bind(company)
        .execute(&mut *tx)
        .await
        .unwrap();
    let first = record_active(
        &mut tx,
        company.parse().unwrap(),
        contact.parse().unwrap(),
        ActiveReason::InboundMessage,
        at.parse().unwrap(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    first
}

#[tokio::test]
async fn contacts_count_once_a_month_in_the_companys_timezone_and_against_the_plan() {
    let app = TestApp::spawn().await;
    let (admin, ids) = crm(&app).await;
    ok(
        &app,
        &admin,
        "mutation { updateCompanySettings(input: { timezone: \"Asia/Jakarta\" }) { timezone } }",
        json!({}),
    )
    .await;
    let company = admin.company_id.clone();
    assert!(activate(&app, &company, &ids[0], "2026-11-05T10:00:00Z").await);
    assert!(
        !activate(&app, &company, &ids[0], "2026-11-20T10:00:00Z").await,
        "a second activity in the month changes nothing"
    );
    // 20:00 UTC on 30 November is 03:00 on 1 December in Jakarta.
    assert!(activate(&app, &company, &ids[1], "2026-11-30T20:00:00Z").await);
    assert!(activate(&app, &company, &ids[2], "2026-10-31T10:00:00Z").await);

    let november = ok(&app, &admin, MAC, json!({ "month": "2026-11" })).await;
    let november = &november["monthlyActiveContacts"];
    assert_eq!(
        (
            &november["month"],
            &november["count"],
            &november["allowance"],
            &november["overAllowance"]
        ),
        (&json!("2026-11"), &json!(1), &json!(50), &json!(false))
    );
    assert_eq!(
        november["contacts"]["nodes"][0]["contact"]["name"],
        "Ana Lim"
    );
    assert_eq!(
        november["contacts"]["nodes"][0]["reason"],
        "INBOUND_MESSAGE"
    );
    let december = ok(&app, &admin, MAC, json!({ "month": "2026-12" })).await;
    assert_eq!(
        december["monthlyActiveContacts"]["contacts"]["nodes"][0]["contact"]["name"],
        "Budi"
    );

    // Erasing Ana keeps November's count; her entry no longer says who she was.
    ok(&app, &admin, DELETE, json!({ "id": ids[0] })).await;
    let november = ok(&app, &admin, MAC, json!({ "month": "2026-11" })).await;
    assert_eq!(november["monthlyActiveContacts"]["count"], 1);
    assert_eq!(
        november["monthlyActiveContacts"]["contacts"]["nodes"][0]["contact"],
        Value::Null
    );

    // Past the Free plan's 50 a month, the company is over its allowance.
    for i in 0..50 {
        let id = create(&app, &admin, json!({ "firstName": format!("Busy {i}") })).await;
        activate(&app, &company, &id, "2026-11-10T01:00:00Z").await;
    }
    let november = ok(&app, &admin, MAC, json!({ "month": "2026-11" })).await;
    assert_eq!(november["monthlyActiveContacts"]["count"], 51);
    assert_eq!(november["monthlyActiveContacts"]["overAllowance"], true);

    // Another company's month is its own; Staff do not see billing; months are checked.
    let other = app.sign_up("Other").await;
    let theirs = ok(&app, &other, MAC, json!({ "month": "2026-11" })).await;
    assert_eq!(theirs["monthlyActiveContacts"]["count"], 0);
    let staff = app.add_user(&admin, "STAFF").await;
    assert_eq!(
        code(&app, &staff, MAC, json!({ "month": "2026-11" })).await,
        "FORBIDDEN"
    );
    for bad in ["November", "2026-13", "2026-11-15"] {
        assert_eq!(
            code(&app, &admin, MAC, json!({ "month": bad })).await,
            "VALIDATION",
            "{bad}"
        );
    }
}
