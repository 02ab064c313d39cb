// @generated automatically by Diesel CLI.

pub mod sql_types {
    #[derive(diesel::query_builder::QueryId, Clone, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "tsvector", schema = "pg_catalog"))]
    pub struct Tsvector;
}

diesel::table! {
    account_entitlements (account_id) {
        account_id -> Uuid,
        plan -> Text,
        overrides -> Jsonb,
        access_mode -> Text,
        updated_by -> Nullable<Uuid>,
        updated_at -> Timestamptz,
    }
}

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
    api_keys (id) {
        id -> Uuid,
        account_id -> Uuid,
        name -> Text,
        prefix -> Text,
        key_hash -> Text,
        scopes -> Array<Nullable<Text>>,
        rate_limit_per_minute -> Int4,
        expires_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    audit_log (id, created_at) {
        id -> Uuid,
        account_id -> Nullable<Uuid>,
        actor_type -> Text,
        actor_id -> Nullable<Uuid>,
        acted_as_user_id -> Nullable<Uuid>,
        action -> Text,
        resource_type -> Nullable<Text>,
        resource_id -> Nullable<Text>,
        before -> Nullable<Jsonb>,
        after -> Nullable<Jsonb>,
        result -> Text,
        error_code -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        request_id -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    board_events (board_id, seq) {
        account_id -> Uuid,
        board_id -> Uuid,
        seq -> Int8,
        frame -> Jsonb,
        card_id -> Nullable<Uuid>,
        assignee_before -> Nullable<Uuid>,
        assignee_after -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    boards (id) {
        id -> Uuid,
        account_id -> Uuid,
        name -> Text,
        description -> Nullable<Text>,
        #[sql_name = "type"]
        type_ -> Text,
        is_default -> Bool,
        settings -> Jsonb,
        seq -> Int8,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    card_checklist_items (id) {
        id -> Uuid,
        account_id -> Uuid,
        card_id -> Uuid,
        text -> Text,
        is_required -> Bool,
        is_completed -> Bool,
        completed_by -> Nullable<Uuid>,
        completed_at -> Nullable<Timestamptz>,
        position -> Int4,
        template_key -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    card_history (id) {
        id -> Uuid,
        account_id -> Uuid,
        card_id -> Uuid,
        board_id -> Uuid,
        action -> Text,
        from_stage_id -> Nullable<Uuid>,
        to_stage_id -> Nullable<Uuid>,
        actor_id -> Nullable<Uuid>,
        automation_id -> Nullable<Uuid>,
        notes -> Nullable<Text>,
        metadata -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::Tsvector;

    cards (id) {
        id -> Uuid,
        account_id -> Uuid,
        board_id -> Uuid,
        stage_id -> Uuid,
        position -> Int8,
        title -> Text,
        chatwoot_conversation_id -> Nullable<Int8>,
        chatwoot_contact_id -> Nullable<Int8>,
        contact_name -> Nullable<Text>,
        contact_phone -> Nullable<Text>,
        contact_email -> Nullable<Text>,
        contact_avatar_url -> Nullable<Text>,
        inbox_name -> Nullable<Text>,
        last_message_preview -> Nullable<Text>,
        last_message_at -> Nullable<Timestamptz>,
        value -> Nullable<Numeric>,
        priority -> Text,
        due_date -> Nullable<Timestamptz>,
        tags -> Array<Nullable<Text>>,
        custom_fields -> Jsonb,
        notes -> Nullable<Text>,
        assignee_id -> Nullable<Uuid>,
        moved_at -> Timestamptz,
        sla_breached_at -> Nullable<Timestamptz>,
        version -> Int4,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        search -> Tsvector,
    }
}

diesel::table! {
    instance_tokens (id) {
        id -> Uuid,
        account_id -> Uuid,
        user_id -> Uuid,
        session_id -> Uuid,
        provider_instance_id -> Nullable<Uuid>,
        scopes -> Array<Nullable<Text>>,
        token_hash -> Bytea,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    plans (id) {
        id -> Uuid,
        code -> Text,
        name -> Text,
        description -> Text,
        price -> Numeric,
        currency -> Text,
        limits -> Jsonb,
        features -> Jsonb,
        is_active -> Bool,
        is_public -> Bool,
        sort_order -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Uuid,
        account_id -> Uuid,
        session_id -> Uuid,
        token_hash -> Bytea,
        issued_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        replaced_by -> Nullable<Uuid>,
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
    stages (id) {
        id -> Uuid,
        account_id -> Uuid,
        board_id -> Uuid,
        name -> Text,
        color -> Text,
        position -> Int4,
        is_final -> Bool,
        sla_hours -> Nullable<Int4>,
        checklist_template -> Jsonb,
        auto_actions -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    team_members (team_id, user_id) {
        account_id -> Uuid,
        team_id -> Uuid,
        user_id -> Uuid,
        added_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    teams (id) {
        id -> Uuid,
        account_id -> Uuid,
        name -> Text,
        description -> Nullable<Text>,
        chatwoot_team_id -> Nullable<Int8>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    usage_active_users (account_id, date, user_id) {
        account_id -> Uuid,
        date -> Date,
        user_id -> Uuid,
    }
}

diesel::table! {
    usage_daily (account_id, date) {
        account_id -> Uuid,
        date -> Date,
        active_users -> Int4,
        messages_sent -> Int8,
        messages_received -> Int8,
        conversations_opened -> Int8,
        conversations_resolved -> Int8,
        api_requests -> Int8,
        ws_connections_peak -> Int4,
        updated_at -> Timestamptz,
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

diesel::joinable!(account_entitlements -> accounts (account_id));
diesel::joinable!(api_keys -> accounts (account_id));
diesel::joinable!(api_keys -> users (created_by));
diesel::joinable!(board_events -> boards (board_id));
diesel::joinable!(boards -> accounts (account_id));
diesel::joinable!(boards -> users (created_by));
diesel::joinable!(card_checklist_items -> users (completed_by));
diesel::joinable!(card_history -> users (actor_id));
diesel::joinable!(cards -> users (created_by));
diesel::joinable!(teams -> accounts (account_id));
diesel::joinable!(usage_daily -> accounts (account_id));
diesel::joinable!(users -> accounts (account_id));

diesel::allow_tables_to_appear_in_same_query!(
    account_entitlements,
    accounts,
    api_keys,
    audit_log,
    board_events,
    boards,
    card_checklist_items,
    card_history,
    cards,
    instance_tokens,
    plans,
    refresh_tokens,
    sessions,
    stages,
    team_members,
    teams,
    usage_active_users,
    usage_daily,
    users,
);
