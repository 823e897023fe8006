//! Accounts, login, sessions, throttling and the admin mutations.

use rkflow_e2e::{PASSWORD, TestServer, for_each_backend, org};
use serde_json::json;

const ME: &str =
    "{ me { id email name roles { role commission { name } municipality { name } } } }";

#[tokio::test]
async fn login_then_me() {
    for_each_backend(|db| async move {
        let server = TestServer::start(&db).await;
        let org = org(&server).await;
        let token = server.login("chair_b@fixture.test", PASSWORD).await;
        let me = server.gql(Some(&token), ME, json!({})).await;
        let me = &me.data()["me"];
        assert_eq!(me["email"], "chair_b@fixture.test", "{}", server.label);
        assert_eq!(me["id"], org.person("chair_b").id.to_string());
        assert_eq!(me["roles"][0]["role"], "CHAIR");
        assert_eq!(
            me["roles"][0]["commission"]["name"],
            "Rekenkamercommissie Bloemendaal"
        );
        let anonymous = server.gql(None, ME, json!({})).await;
        assert!(anonymous.data()["me"].is_null());
        server.stop().await;
    })
    .await;
}
