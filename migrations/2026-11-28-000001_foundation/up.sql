-- Foundation: the server's database role, accounts, users and login sessions.
--
-- Migrations run as the owner of the tables (the DATABASE_URL role, or the embedded
-- cluster's superuser). The server's pooled connections switch to `whatpro_app`, a role that
-- owns nothing and cannot bypass row-level security, so a forgotten account filter returns no
-- rows instead of another tenant's rows.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'whatpro_app') THEN
        BEGIN
            CREATE ROLE whatpro_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- another database of the same cluster created it concurrently
        END;
    END IF;
    IF NOT pg_has_role(current_user, 'whatpro_app', 'MEMBER') THEN
        EXECUTE format('GRANT whatpro_app TO %I', current_user);
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO whatpro_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO whatpro_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO whatpro_app;
-- Readiness compares the applied migrations with the embedded ones.
GRANT SELECT ON __diesel_schema_migrations TO whatpro_app;

CREATE EXTENSION IF NOT EXISTS citext;

CREATE TABLE accounts (
    id                  uuid PRIMARY KEY,
    chatwoot_account_id bigint UNIQUE,
    name                text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 255),
    status              text NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'suspended', 'deleted')),
    locale              text NOT NULL DEFAULT 'pt-BR' CHECK (char_length(locale) BETWEEN 2 AND 35),
    settings            jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    is_platform         boolean NOT NULL DEFAULT false,
    suspended_reason    text CHECK (char_length(suspended_reason) <= 500),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
-- At most one platform account (it holds the super_admins).
CREATE UNIQUE INDEX accounts_single_platform ON accounts (is_platform) WHERE is_platform;

CREATE TABLE users (
    id               uuid PRIMARY KEY,
    account_id       uuid NOT NULL REFERENCES accounts (id) ON DELETE RESTRICT,
    email            citext NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    name             text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    avatar_url       text CHECK (char_length(avatar_url) <= 2048 AND avatar_url LIKE 'https://%'),
    role             text NOT NULL CHECK (role IN ('super_admin', 'admin', 'supervisor', 'agent')),
    role_source      text NOT NULL DEFAULT 'manual' CHECK (role_source IN ('chatwoot', 'manual')),
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    chatwoot_user_id bigint,
    chatwoot_role    text CHECK (char_length(chatwoot_role) <= 50),
    availability     text CHECK (char_length(availability) <= 50),
    password_hash    text,
    preferences      jsonb NOT NULL DEFAULT '{}'
                     CHECK (jsonb_typeof(preferences) = 'object' AND pg_column_size(preferences) <= 16384),
    last_seen_at     timestamptz,
    last_login_at    timestamptz,
    deactivated_at   timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_per_account UNIQUE (account_id, email),
    CONSTRAINT users_chatwoot_user_per_account UNIQUE (account_id, chatwoot_user_id),
    -- Target of composite foreign keys, so a child row never points into another account.
    CONSTRAINT users_account_id_id UNIQUE (account_id, id)
);
CREATE INDEX users_email ON users (email);

-- super_admin exists only in the platform account (iam.md §2). SECURITY DEFINER so the check
-- sees the account row whatever the caller's row-level security allows.
CREATE FUNCTION users_super_admin_only_in_platform() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF NEW.role = 'super_admin'
       AND NOT EXISTS (SELECT 1 FROM public.accounts a WHERE a.id = NEW.account_id AND a.is_platform) THEN
        RAISE EXCEPTION 'super_admin is only allowed in the platform account'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'users_super_admin_platform';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER users_super_admin_only_in_platform
    BEFORE INSERT OR UPDATE OF role, account_id ON users
    FOR EACH ROW EXECUTE FUNCTION users_super_admin_only_in_platform();

-- A login session (a refresh-token family, iam.md §1). Access tokens carry its id as `sid`.
CREATE TABLE sessions (
    id              uuid PRIMARY KEY,
    account_id      uuid NOT NULL,
    user_id         uuid NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('password', 'sso', 'impersonation')),
    impersonator_id uuid REFERENCES users (id) ON DELETE RESTRICT,
    ip              text CHECK (char_length(ip) <= 45),
    user_agent      text CHECK (char_length(user_agent) <= 512),
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoke_reason   text CHECK (char_length(revoke_reason) <= 100),
    FOREIGN KEY (account_id, user_id) REFERENCES users (account_id, id) ON DELETE CASCADE,
    CHECK (expires_at > created_at)
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
