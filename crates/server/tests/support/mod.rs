//! Shared by the server's integration tests: a fresh PostgreSQL database per test, next to the
//! one `RKFLOW_TEST_POSTGRES_URL` names, and its removal.

use rkflow_store::Db;
use sea_orm::ConnectionTrait;
use uuid::Uuid;

/// Creates an empty database `test_<uuid>` through `admin_url`; returns its URL and name.
pub async fn create_postgres_database(admin_url: &str) -> (String, String) {
    let name = format!("test_{}", Uuid::new_v4().simple());
    let admin = Db::connect(admin_url)
        .await
        .expect("connect to RKFLOW_TEST_POSTGRES_URL");
    admin
        .conn
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    admin.close().await;
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url, |(base, _)| base);
    (format!("{base}/{name}"), name)
}

/// Drops a database made by [`create_postgres_database`], connections and all (best effort).
pub async fn drop_postgres_database(admin_url: &str, name: &str) {
    if let Ok(admin) = Db::connect(admin_url).await {
        let _ = admin
            .conn
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
        admin.close().await;
    }
}
