-- Identity and access: refresh tokens, API keys, instance tokens, the audit log, and
-- row-level security on every tenant table.
--
-- Tenant scope is a transaction-local setting: the server's tenant transaction helper runs
-- `SELECT set_config('app.account_id', <uuid>, true)` first, and every policy compares rows
-- with it. `app.platform = 'on'` is the platform scope, set only by super_admin operations,
-- the first-start bootstrap and the narrow look-up functions below (which need to find a row
-- before its tenant is known). A query that forgets its account filter sees no rows.

CREATE FUNCTION app_account_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('app.account_id', true), '')::uuid
$$;

CREATE FUNCTION app_platform() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(current_setting('app.platform', true), '') = 'on'
$$;

-- Accounts: a tenant sees its own row.
ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON accounts
    USING (id = app_account_id() OR app_platform())
    WITH CHECK (id = app_account_id() OR app_platform());

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users
    USING (account_id = app_account_id() OR app_platform())
    WITH CHECK (account_id = app_account_id() OR app_platform());

ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sessions
    USING (account_id = app_account_id() OR app_platform())
    WITH CHECK (account_id = app_account_id() OR app_platform());

-- Composite target so children can reference (account_id, session id).
ALTER TABLE sessions ADD CONSTRAINT sessions_account_id_id UNIQUE (account_id, id);
CREATE INDEX sessions_account ON sessions (account_id);

-- The super_admin check reads the account row whatever the caller's tenant scope.
ALTER FUNCTION users_super_admin_only_in_platform() SET app.platform = 'on';

-- Refresh tokens: opaque, stored as SHA-256, rotated on every use (iam.md §4.5).
CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL,
    session_id  uuid NOT NULL,
    token_hash  bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    issued_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    replaced_by uuid REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    FOREIGN KEY (account_id, session_id) REFERENCES sessions (account_id, id) ON DELETE CASCADE,
    CHECK (expires_at > issued_at)
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON refresh_tokens
    USING (account_id = app_account_id() OR app_platform())
    WITH CHECK (account_id = app_account_id() OR app_platform());

-- API keys survive their creator (created_by is kept, not cascaded).
CREATE TABLE api_keys (
    id                    uuid PRIMARY KEY,
    account_id            uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name                  text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    prefix                text NOT NULL UNIQUE CHECK (prefix ~ '^[a-z0-9]{12}$'),
    key_hash              text NOT NULL,
    scopes                text[] NOT NULL DEFAULT '{}',
    rate_limit_per_minute integer NOT NULL DEFAULT 600 CHECK (rate_limit_per_minute BETWEEN 1 AND 6000),
    expires_at            timestamptz,
    last_used_at          timestamptz,
    revoked_at            timestamptz,
    created_by            uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT api_keys_account_id_id UNIQUE (account_id, id),
    CHECK (scopes <@ ARRAY['usage:read', 'users:read', 'teams:read', 'boards:read', 'boards:write',
        'cards:read', 'cards:write', 'chat:read', 'chat:write', 'providers:read', 'providers:write',
        'messages:send', 'inboxes:read', 'inboxes:write', 'audit:read']::text[])
);
CREATE INDEX api_keys_account ON api_keys (account_id, created_at);
CREATE INDEX api_keys_revoked ON api_keys (revoked_at) WHERE revoked_at IS NOT NULL;
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
    USING (account_id = app_account_id() OR app_platform())
    WITH CHECK (account_id = app_account_id() OR app_platform());

-- Instance tokens: short-lived (15-60 min) bearer tokens acting as their issuer.
-- provider_instance_id gets its foreign key when provider instances exist (providers issue).
CREATE TABLE instance_tokens (
    id                   uuid PRIMARY KEY,
    account_id           uuid NOT NULL,
    user_id              uuid NOT NULL,
    session_id           uuid NOT NULL,
    provider_instance_id uuid,
    scopes               text[] NOT NULL,
    token_hash           bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    expires_at           timestamptz NOT NULL,
    revoked_at           timestamptz,
    last_used_at         timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (account_id, user_id) REFERENCES users (account_id, id) ON DELETE CASCADE,
    FOREIGN KEY (account_id, session_id) REFERENCES sessions (account_id, id) ON DELETE CASCADE,
    CHECK (expires_at BETWEEN created_at + interval '15 minutes' AND created_at + interval '60 minutes'),
    CHECK (scopes <@ ARRAY['usage:read', 'users:read', 'teams:read', 'boards:read', 'boards:write',
        'cards:read', 'cards:write', 'chat:read', 'chat:write', 'providers:read', 'providers:write',
        'messages:send', 'inboxes:read', 'inboxes:write', 'audit:read']::text[])
);
CREATE INDEX instance_tokens_account ON instance_tokens (account_id, created_at);
CREATE INDEX instance_tokens_session ON instance_tokens (session_id);
CREATE INDEX instance_tokens_revoked ON instance_tokens (revoked_at) WHERE revoked_at IS NOT NULL;
ALTER TABLE instance_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE instance_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON instance_tokens
    USING (account_id = app_account_id() OR app_platform())
    WITH CHECK (account_id = app_account_id() OR app_platform());

-- The audit log (tenancy.md §6): partitioned by month, insert-only for the server's role,
-- and a trigger refuses UPDATE, DELETE and TRUNCATE for every role.
CREATE TABLE audit_log (
    id               uuid NOT NULL,
    account_id       uuid,
    actor_type       text NOT NULL CHECK (actor_type IN
                         ('user', 'api_key', 'instance_token', 'system', 'webhook', 'anonymous')),
    actor_id         uuid,
    acted_as_user_id uuid,
    action           text NOT NULL CHECK (char_length(action) BETWEEN 3 AND 100),
    resource_type    text CHECK (char_length(resource_type) <= 50),
    resource_id      text CHECK (char_length(resource_id) <= 100),
    before           jsonb,
    after            jsonb,
    result           text NOT NULL CHECK (result IN ('success', 'failure', 'denied')),
    error_code       text CHECK (char_length(error_code) <= 50),
    ip               text CHECK (char_length(ip) <= 45),
    user_agent       text CHECK (char_length(user_agent) <= 512),
    request_id       text CHECK (char_length(request_id) <= 64),
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX audit_log_account_created ON audit_log (account_id, created_at DESC, id DESC);
CREATE INDEX audit_log_action ON audit_log (action);

CREATE FUNCTION audit_log_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_immutable();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_immutable();

-- Creates the monthly partitions from `from_month` for `months` months (idempotent). Each
-- partition also gets the TRUNCATE guard, since truncating a partition directly does not fire
-- the parent's statement trigger. Run by the table owner (start-up, `admin maintenance`).
CREATE FUNCTION audit_log_ensure_partitions(from_month date, months integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    created integer := 0;
    month_start date;
    name text;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        month_start := (date_trunc('month', from_month) + make_interval(months => i))::date;
        name := format('audit_log_%s', to_char(month_start, 'YYYY_MM'));
        IF to_regclass(name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF audit_log FOR VALUES FROM (%L) TO (%L)',
                name, month_start, (month_start + interval '1 month')::date);
            EXECUTE format(
                'CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON %I '
                'FOR EACH STATEMENT EXECUTE FUNCTION audit_log_immutable()', name);
            -- Rows are reached through the parent (and its policies) only.
            EXECUTE format('REVOKE ALL ON %I FROM whatpro_app', name);
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END
$$;
SELECT audit_log_ensure_partitions((now() - interval '1 month')::date, 5);

REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM whatpro_app;
GRANT SELECT, INSERT ON audit_log TO whatpro_app;

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
-- Platform rows (account_id null) are visible only in the platform scope.
CREATE POLICY tenant_isolation ON audit_log
    USING (account_id = app_account_id() OR app_platform())
    WITH CHECK (account_id = app_account_id() OR app_platform());

-- Look-ups before the tenant is known (iam.md §3). Each runs in the platform scope for its own
-- duration only (the SET clause is undone when the function returns) and returns the narrow
-- set of columns its caller needs.

-- Login: active and inactive users with this email, in any account, with their account.
CREATE FUNCTION auth_login_candidates(p_email text)
RETURNS TABLE (user_id uuid, account_id uuid, password_hash text, user_status text,
               account_status text, account_name text)
LANGUAGE sql STABLE SECURITY DEFINER SET app.platform = 'on' SET search_path = pg_catalog, public AS $$
    SELECT u.id, u.account_id, u.password_hash, u.status, a.status, a.name
    FROM public.users u JOIN public.accounts a ON a.id = u.account_id
    WHERE u.email = p_email::public.citext
    ORDER BY u.created_at
$$;

-- An API key by its public prefix.
CREATE FUNCTION auth_api_key_by_prefix(p_prefix text)
RETURNS TABLE (id uuid, account_id uuid, key_hash text, scopes text[], rate_limit_per_minute integer,
               expires_at timestamptz, revoked_at timestamptz, account_status text)
LANGUAGE sql STABLE SECURITY DEFINER SET app.platform = 'on' SET search_path = pg_catalog, public AS $$
    SELECT k.id, k.account_id, k.key_hash, k.scopes, k.rate_limit_per_minute, k.expires_at,
           k.revoked_at, a.status
    FROM public.api_keys k JOIN public.accounts a ON a.id = k.account_id
    WHERE k.prefix = p_prefix
$$;

-- An instance token by its hash, with what authorizes it.
CREATE FUNCTION auth_instance_token_by_hash(p_hash bytea)
RETURNS TABLE (id uuid, account_id uuid, user_id uuid, session_id uuid, provider_instance_id uuid,
               scopes text[], expires_at timestamptz, revoked_at timestamptz, role text,
               user_status text, account_status text, session_revoked_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET app.platform = 'on' SET search_path = pg_catalog, public AS $$
    SELECT t.id, t.account_id, t.user_id, t.session_id, t.provider_instance_id, t.scopes,
           t.expires_at, t.revoked_at, u.role, u.status, a.status, s.revoked_at
    FROM public.instance_tokens t
    JOIN public.users u ON u.id = t.user_id
    JOIN public.accounts a ON a.id = t.account_id
    JOIN public.sessions s ON s.id = t.session_id
    WHERE t.token_hash = p_hash
$$;

-- A refresh token by its hash, with its session.
CREATE FUNCTION auth_refresh_token_by_hash(p_hash bytea)
RETURNS TABLE (id uuid, account_id uuid, session_id uuid, used_at timestamptz,
               expires_at timestamptz, replaced_by uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET app.platform = 'on' SET search_path = pg_catalog, public AS $$
    SELECT r.id, r.account_id, r.session_id, r.used_at, r.expires_at, r.replaced_by
    FROM public.refresh_tokens r
    WHERE r.token_hash = p_hash
$$;

-- Revocations since a point in time, for every node's revocation cache (sessions, API keys
-- and instance tokens; ids only).
CREATE FUNCTION auth_revocations_since(p_since timestamptz)
RETURNS TABLE (kind text, id uuid, revoked_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET app.platform = 'on' SET search_path = pg_catalog, public AS $$
    SELECT 'session', s.id, s.revoked_at FROM public.sessions s WHERE s.revoked_at >= p_since
    UNION ALL
    SELECT 'api_key', k.id, k.revoked_at FROM public.api_keys k WHERE k.revoked_at >= p_since
    UNION ALL
    SELECT 'instance_token', t.id, t.revoked_at FROM public.instance_tokens t WHERE t.revoked_at >= p_since
$$;

-- Chatwoot SSO: the hub account mirroring a Chatwoot account.
CREATE FUNCTION auth_account_by_chatwoot_id(p_chatwoot_account_id bigint)
RETURNS TABLE (id uuid, status text, name text)
LANGUAGE sql STABLE SECURITY DEFINER SET app.platform = 'on' SET search_path = pg_catalog, public AS $$
    SELECT a.id, a.status, a.name FROM public.accounts a WHERE a.chatwoot_account_id = p_chatwoot_account_id
$$;

REVOKE ALL ON FUNCTION auth_login_candidates(text), auth_api_key_by_prefix(text),
    auth_instance_token_by_hash(bytea), auth_refresh_token_by_hash(bytea),
    auth_revocations_since(timestamptz), auth_account_by_chatwoot_id(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth_login_candidates(text), auth_api_key_by_prefix(text),
    auth_instance_token_by_hash(bytea), auth_refresh_token_by_hash(bytea),
    auth_revocations_since(timestamptz), auth_account_by_chatwoot_id(bigint) TO whatpro_app;
