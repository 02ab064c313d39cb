-- Tenancy: the plans catalogue, per-account entitlements, teams and their members, and daily
-- usage metering (tenancy.md §1, §4, §5; billing.md §1 for the catalogue).

-- UUIDv7 (time-ordered) for rows created by SQL, such as the seeded plans.
CREATE FUNCTION uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                placing substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

-- The plan catalogue is platform data (every member may read it; super_admins edit it).
CREATE TABLE plans (
    id          uuid PRIMARY KEY DEFAULT uuid_v7(),
    code        text NOT NULL UNIQUE CHECK (code ~ '^[a-z0-9][a-z0-9_-]{0,49}$'),
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    description text NOT NULL DEFAULT '' CHECK (char_length(description) <= 1000),
    price       numeric(15, 2) NOT NULL CHECK (price >= 0),
    currency    text NOT NULL DEFAULT 'BRL' CHECK (currency = 'BRL'),
    limits      jsonb NOT NULL CHECK (jsonb_typeof(limits) = 'object'),
    features    jsonb NOT NULL CHECK (jsonb_typeof(features) = 'object'),
    is_active   boolean NOT NULL DEFAULT true,
    is_public   boolean NOT NULL DEFAULT true,
    sort_order  integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Seeded limits (null = unlimited) and flags of tenancy.md §4. Missing codes only: an
-- operator's edits are never overwritten.
INSERT INTO plans (code, name, price, limits, features, sort_order) VALUES
    ('free', 'Free', 0.00,
     '{"max_agents": 2, "max_teams": 1, "max_inboxes": 1, "max_providers": 1, "max_instances": 1, "max_boards": 1, "max_monthly_messages": 1000}',
     '{"kanban": true, "internal_chat": false, "analytics": false}', 0),
    ('starter', 'Starter', 99.90,
     '{"max_agents": 5, "max_teams": 3, "max_inboxes": 2, "max_providers": 1, "max_instances": 2, "max_boards": 3, "max_monthly_messages": 10000}',
     '{"kanban": true, "internal_chat": true, "analytics": false}', 1),
    ('professional', 'Professional', 299.90,
     '{"max_agents": 20, "max_teams": 10, "max_inboxes": 10, "max_providers": 3, "max_instances": 10, "max_boards": 20, "max_monthly_messages": 100000}',
     '{"kanban": true, "internal_chat": true, "analytics": true}', 2),
    ('enterprise', 'Enterprise', 899.90,
     '{"max_agents": null, "max_teams": null, "max_inboxes": null, "max_providers": null, "max_instances": null, "max_boards": null, "max_monthly_messages": null}',
     '{"kanban": true, "internal_chat": true, "analytics": true}', 3)
ON CONFLICT (code) DO NOTHING;

CREATE TABLE account_entitlements (
    account_id  uuid PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    plan        text NOT NULL REFERENCES plans (code) ON UPDATE CASCADE,
    overrides   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(overrides) = 'object'),
    access_mode text NOT NULL DEFAULT 'full' CHECK (access_mode IN ('full', 'read_only')),
    updated_by  uuid,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE account_entitlements ENABLE ROW LEVEL SECURITY;
ALTER TABLE account_entitlements FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON account_entitlements
    USING (account_id = app_account_id() OR app_platform())
    WITH CHECK (account_id = app_account_id() OR app_platform());

-- Every account has exactly one entitlements row, created with it (plan free unless the
-- creator sets another in the same transaction).
CREATE FUNCTION accounts_create_entitlements() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET app.platform = 'on' SET search_path = pg_catalog, public AS $$
BEGIN
    INSERT INTO public.account_entitlements (account_id, plan) VALUES (NEW.id, 'free');
    RETURN NEW;
END
$$;
CREATE TRIGGER accounts_create_entitlements
    AFTER INSERT ON accounts
    FOR EACH ROW EXECUTE FUNCTION accounts_create_entitlements();

SET LOCAL app.platform = 'on';
INSERT INTO account_entitlements (account_id, plan)
    SELECT id, 'free' FROM accounts ON CONFLICT (account_id) DO NOTHING;

CREATE TABLE teams (
    id               uuid PRIMARY KEY,
    account_id       uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name             text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    description      text CHECK (char_length(description) <= 500),
    chatwoot_team_id bigint,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT teams_account_id_id UNIQUE (account_id, id),
    CONSTRAINT teams_chatwoot_team_per_account UNIQUE (account_id, chatwoot_team_id)
);
CREATE UNIQUE INDEX teams_name_per_account ON teams (account_id, lower(name));
ALTER TABLE teams ENABLE ROW LEVEL SECURITY;
ALTER TABLE teams FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON teams
    USING (account_id = app_account_id() OR app_platform())
    WITH CHECK (account_id = app_account_id() OR app_platform());

CREATE TABLE team_members (
    account_id uuid NOT NULL,
    team_id    uuid NOT NULL,
    user_id    uuid NOT NULL,
    added_by   uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, user_id),
    FOREIGN KEY (account_id, team_id) REFERENCES teams (account_id, id) ON DELETE CASCADE,
    FOREIGN KEY (account_id, user_id) REFERENCES users (account_id, id) ON DELETE CASCADE
);
CREATE INDEX team_members_user ON team_members (account_id, user_id);
ALTER TABLE team_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE team_members FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON team_members
    USING (account_id = app_account_id() OR app_platform())
    WITH CHECK (account_id = app_account_id() OR app_platform());

CREATE TABLE usage_daily (
    account_id             uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    date                   date NOT NULL,
    active_users           integer NOT NULL DEFAULT 0 CHECK (active_users >= 0),
    messages_sent          bigint NOT NULL DEFAULT 0 CHECK (messages_sent >= 0),
    messages_received      bigint NOT NULL DEFAULT 0 CHECK (messages_received >= 0),
    conversations_opened   bigint NOT NULL DEFAULT 0 CHECK (conversations_opened >= 0),
    conversations_resolved bigint NOT NULL DEFAULT 0 CHECK (conversations_resolved >= 0),
    api_requests           bigint NOT NULL DEFAULT 0 CHECK (api_requests >= 0),
    ws_connections_peak    integer NOT NULL DEFAULT 0 CHECK (ws_connections_peak >= 0),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, date)
);
ALTER TABLE usage_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_daily FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON usage_daily
    USING (account_id = app_account_id() OR app_platform())
    WITH CHECK (account_id = app_account_id() OR app_platform());

CREATE TABLE usage_active_users (
    account_id uuid NOT NULL,
    date       date NOT NULL,
    user_id    uuid NOT NULL,
    PRIMARY KEY (account_id, date, user_id),
    FOREIGN KEY (account_id, user_id) REFERENCES users (account_id, id) ON DELETE CASCADE
);
ALTER TABLE usage_active_users ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_active_users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON usage_active_users
    USING (account_id = app_account_id() OR app_platform())
    WITH CHECK (account_id = app_account_id() OR app_platform());
