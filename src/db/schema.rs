// @generated automatically by Diesel CLI.

diesel::table! {
    accounts (id) {
        id -> Uuid,
        chatwoot_account_id -> Nullable<Int8>,
        name -> Text,
        status -> Text,
        locale -> Text,
        settings -> Jsonb,
        is_platform -> Bool,
        suspended_reason -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        account_id -> Uuid,
        user_id -> Uuid,
        kind -> Text,
        impersonator_id -> Nullable<Uuid>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        created_at -> Timestamptz,
        last_seen_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        revoke_reason -> Nullable<Text>,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        account_id -> Uuid,
        email -> Citext,
        name -> Text,
        avatar_url -> Nullable<Text>,
        role -> Text,
        role_source -> Text,
        status -> Text,
        chatwoot_user_id -> Nullable<Int8>,
        chatwoot_role -> Nullable<Text>,
        availability -> Nullable<Text>,
        password_hash -> Nullable<Text>,
        preferences -> Jsonb,
        last_seen_at -> Nullable<Timestamptz>,
        last_login_at -> Nullable<Timestamptz>,
        deactivated_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(users -> accounts (account_id));

diesel::allow_tables_to_appear_in_same_query!(accounts, sessions, users,);
