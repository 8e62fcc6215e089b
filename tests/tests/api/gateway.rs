//! The HTTP surface: GraphiQL, limits, health, readiness, metrics, pagination errors.

use obrol_tests::{error_code, TestApp};
use serde_json::json;

#[tokio::test]
async fn graphiql_is_served_from_local_assets_and_introspection_works() {
    let app = TestApp::spawn().await;

    let page = app.http.get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    // No CDN: the page loads GraphiQL from this server (installed by scripts/bootstrap).
    assert!(html.contains("/graphiql/assets/graphiql.js"), "{html}");
    for (asset, content_type) in [
        ("graphiql.js", "text/javascript"),
        ("graphiql.css", "text/css"),
        ("react.js", "text/javascript"),
    ] {
        let response = app
            .http
            .get(app.url(&format!("/graphiql/assets/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert_eq!(response.headers()["content-type"], content_type);
        assert!(
            response.bytes().await.unwrap().len() > 5_000,
            "{asset} is suspiciously small"
        );
    }
    let outside = app
        .http
        .get(app.url("/graphiql/assets/..%2F..%2FCargo.toml"))
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), 404);

    let data = app
        .gql_ok(
            None,
            "{ __schema { queryType { name } mutationType { name } subscriptionType { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["__schema"]["queryType"]["name"], "Query");
    assert_eq!(data["__schema"]["subscriptionType"]["name"], "Subscription");
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = TestApp::spawn().await;

    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.gql(None, "{ __typename }", json!({})).await;
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("obrol_http_requests_total{path=\"/graphql\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("obrol_db_pool_connections"));
}

#[tokio::test]
async fn a_query_nested_too_deep_is_refused_before_it_runs() {
    let app = TestApp::spawn().await;
    // Type references nest without lists, so this is deep without being costly.
    let mut query = String::from("name");
    for _ in 0..25 {
        query = format!("ofType {{ {query} }}");
    }

    let response = app
        .gql(
            None,
            &format!("{{ __type(name: \"User\") {{ fields {{ type {{ {query} }} }} }} }}"),
            json!({}),
        )
        .await;

    assert!(response["data"].is_null());
    assert!(
        response["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{response}"
    );
}

#[tokio::test]
async fn an_oversized_request_body_is_refused() {
    let app = TestApp::spawn().await;
    let padding = "x".repeat(2 * 1024 * 1024);

    let response = app
        .http
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body(format!(
            "{{\"query\":\"{{ __typename }}\",\"variables\":{{\"pad\":\"{padding}\"}}}}"
        ))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn bad_ids_and_cursors_are_validation_errors_and_unknown_ids_not_found() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;

    let bad_id = app
        .gql(
            Some(&admin.token),
            "{ user(id: \"nope\") { id } }",
            json!({}),
        )
        .await;
    let unknown = app
        .gql(
            Some(&admin.token),
            "{ user(id: \"01939d1f-0000-7000-8000-000000000000\") { id } }",
            json!({}),
        )
        .await;
    let bad_cursor = app
        .gql(
            Some(&admin.token),
            "{ users(first: 2, after: \"garbage\") { totalCount } }",
            json!({}),
        )
        .await;
    let too_many = app
        .gql(
            Some(&admin.token),
            "{ users(first: 1000) { totalCount } }",
            json!({}),
        )
        .await;

    assert_eq!(error_code(&bad_id), Some("VALIDATION"));
    assert_eq!(error_code(&unknown), Some("NOT_FOUND"));
    assert_eq!(error_code(&bad_cursor), Some("VALIDATION"));
    assert_eq!(error_code(&too_many), Some("VALIDATION"));
}

/// graphql-js's `getIntrospectionQuery()` as GraphiQL and code generators send it.
const STANDARD_INTROSPECTION: &str = "query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
}";

#[tokio::test]
async fn the_standard_introspection_query_of_graphql_tools_is_answered() {
    let app = TestApp::spawn().await;

    let data = app.gql_ok(None, STANDARD_INTROSPECTION, json!({})).await;

    let types = data["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "User"));
    assert!(types.iter().any(|t| t["name"] == "AuthPayload"));
}

#[tokio::test]
async fn a_query_selecting_too_many_fields_is_refused_before_it_runs() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;
    // Aliases let one request ask for the same field thousands of times.
    let fields: String = (0..10_100).map(|i| format!("a{i}: name ")).collect();

    let response = app
        .gql(
            Some(&admin.token),
            &format!("{{ me {{ {fields} }} }}"),
            json!({}),
        )
        .await;

    assert!(response["data"].is_null());
    assert!(
        response["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("complex"),
        "{response}"
    );
}

#[tokio::test]
async fn nested_lists_multiply_the_cost_of_a_query() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("Acme").await;
    let affordable =
        "{ users(first: 100) { totalCount edges { cursor node { id name teams { name } } } } }";
    let explosive = "{ users(first: 100) { edges { node { teams { members { teams { members { email } } } } } } } }";

    app.gql_ok(Some(&admin.token), affordable, json!({})).await;
    let refused = app.gql(Some(&admin.token), explosive, json!({})).await;

    assert!(refused["data"].is_null());
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("complex"),
        "{refused}"
    );
}
