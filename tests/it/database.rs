//! The database contract of the foundation: the server's role owns nothing and is not a
//! superuser; constraints that encode business rules hold.

use diesel::sql_types::{Bool, Text};
use diesel_async::RunQueryDsl;

use crate::harness::*;

#[derive(diesel::QueryableByName)]
struct RoleFacts {
    #[diesel(sql_type = Text)]
    current_user: String,
    #[diesel(sql_type = Bool)]
    superuser: bool,
    #[diesel(sql_type = Bool)]
    bypass_rls: bool,
    #[diesel(sql_type = Text)]
    users_owner: String,
}

#[actix_rt::test]
async fn pooled_connections_run_as_a_role_that_owns_nothing() {
    let app = TestApp::start().await;
    let mut conn = app.server.state.db.conn().await.unwrap();
    let facts: RoleFacts = diesel::sql_query(
        "SELECT current_user::text AS current_user, r.rolsuper AS superuser, r.rolbypassrls AS bypass_rls, \
         (SELECT tableowner::text FROM pg_tables WHERE tablename = 'users') AS users_owner \
         FROM pg_roles r WHERE r.rolname = current_user",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(facts.current_user, "whatpro_app");
    assert!(!facts.superuser && !facts.bypass_rls);
    assert_ne!(facts.users_owner, "whatpro_app");
    app.stop().await;
}

#[actix_rt::test]
async fn super_admin_exists_only_in_the_platform_account_and_only_one_platform() {
    let app = TestApp::start().await;
    let account = app.seed_account("Acme").await;
    let mut conn = app.server.state.db.conn().await.unwrap();
    let refused = diesel::sql_query(format!(
        "INSERT INTO users (id, account_id, email, name, role) VALUES (gen_random_uuid(), '{account}', 'x@acme.test', 'X', 'super_admin')"
    ))
    .execute(&mut conn)
    .await;
    assert!(
        refused.is_err(),
        "super_admin outside the platform account must be refused"
    );
    let second_platform = diesel::sql_query(
        "INSERT INTO accounts (id, name, is_platform) VALUES (gen_random_uuid(), 'Platform 2', true)",
    )
    .execute(&mut conn)
    .await;
    assert!(second_platform.is_err(), "at most one platform account");
    let duplicate_email = diesel::sql_query(format!(
        "INSERT INTO users (id, account_id, email, name, role) VALUES (gen_random_uuid(), '{account}', 'A@acme.test', 'A', 'agent'), (gen_random_uuid(), '{account}', 'a@ACME.test', 'B', 'agent')"
    ))
    .execute(&mut conn)
    .await;
    assert!(
        duplicate_email.is_err(),
        "emails are unique per account, case-insensitively"
    );
    app.stop().await;
}
