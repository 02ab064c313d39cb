-- Kanban (kanban.md): boards, stages, cards, card history, checklist items and the per-board
-- event log, every table scoped by account with row-level security. Each account gets its
-- default board in its creating transaction (a trigger, like its entitlements row).

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS unaccent;

-- `unaccent` is STABLE (its dictionary could change); generated columns and index
-- expressions need IMMUTABLE. Pinning the dictionary makes the wrapper safe to mark so.
CREATE FUNCTION immutable_unaccent(text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT public.unaccent('public.unaccent'::regdictionary, $1)
$$;

CREATE TABLE boards (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    description text CHECK (char_length(description) <= 500),
    type        text NOT NULL DEFAULT 'pipeline'
                CHECK (type IN ('pipeline', 'leads', 'support', 'sales', 'custom')),
    is_default  boolean NOT NULL DEFAULT false,
    settings    jsonb NOT NULL DEFAULT '{}'
                CHECK (jsonb_typeof(settings) = 'object' AND pg_column_size(settings) <= 16384),
    seq         bigint NOT NULL DEFAULT 0 CHECK (seq >= 0),
    created_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT boards_account_id_id UNIQUE (account_id, id)
);
CREATE UNIQUE INDEX boards_one_default ON boards (account_id) WHERE is_default;

CREATE TABLE stages (
    id                 uuid PRIMARY KEY,
    account_id         uuid NOT NULL,
    board_id           uuid NOT NULL,
    name               text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 50),
    color              text NOT NULL DEFAULT '#6B7280' CHECK (color ~ '^#[0-9A-Fa-f]{6}$'),
    position           integer NOT NULL CHECK (position >= 0),
    is_final           boolean NOT NULL DEFAULT false,
    sla_hours          integer CHECK (sla_hours BETWEEN 1 AND 8760),
    checklist_template jsonb NOT NULL DEFAULT '[]'
                       CHECK (jsonb_typeof(checklist_template) = 'array'
                              AND jsonb_array_length(checklist_template) <= 50),
    auto_actions       jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(auto_actions) = 'array'),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (account_id, board_id) REFERENCES boards (account_id, id) ON DELETE CASCADE,
    CONSTRAINT stages_id_board UNIQUE (id, board_id),
    CONSTRAINT stages_board_position UNIQUE (board_id, position) DEFERRABLE INITIALLY DEFERRED
);
CREATE UNIQUE INDEX stages_name_per_board ON stages (board_id, lower(name));

CREATE TABLE cards (
    id                       uuid PRIMARY KEY,
    account_id               uuid NOT NULL,
    board_id                 uuid NOT NULL,
    stage_id                 uuid NOT NULL,
    position                 bigint NOT NULL,
    title                    text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    chatwoot_conversation_id bigint,
    chatwoot_contact_id      bigint,
    contact_name             text CHECK (char_length(contact_name) <= 255),
    contact_phone            text CHECK (char_length(contact_phone) <= 50),
    contact_email            text CHECK (char_length(contact_email) <= 254),
    contact_avatar_url       text CHECK (char_length(contact_avatar_url) <= 2048),
    inbox_name               text CHECK (char_length(inbox_name) <= 255),
    last_message_preview     text CHECK (char_length(last_message_preview) <= 200),
    last_message_at          timestamptz,
    value                    numeric(15, 2) CHECK (value >= 0),
    priority                 text NOT NULL DEFAULT 'medium'
                             CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    due_date                 timestamptz,
    tags                     text[] NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 20),
    custom_fields            jsonb NOT NULL DEFAULT '{}'
                             CHECK (jsonb_typeof(custom_fields) = 'object'
                                    AND pg_column_size(custom_fields) <= 16384),
    notes                    text CHECK (char_length(notes) <= 10000),
    assignee_id              uuid,
    moved_at                 timestamptz NOT NULL DEFAULT now(),
    sla_breached_at          timestamptz,
    version                  integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_by               uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    -- Kept by the cards_search trigger below rather than as a generated column: a generated
    -- column is recomputed on every update, and a move (the hot path) touches no text.
    search                   tsvector NOT NULL DEFAULT ''::tsvector,
    CONSTRAINT cards_account_id_id UNIQUE (account_id, id),
    FOREIGN KEY (account_id, board_id) REFERENCES boards (account_id, id) ON DELETE CASCADE,
    -- NO ACTION (checked at the end of the statement) rather than RESTRICT: deleting a stage
    -- that still holds cards fails the same way, while deleting the whole board cascades to
    -- its stages and cards in one statement.
    FOREIGN KEY (stage_id, board_id) REFERENCES stages (id, board_id),
    -- The assignee is a user of the same account. Users are never hard-deleted (tenancy.md),
    -- only with their account, which takes the cards with it.
    FOREIGN KEY (account_id, assignee_id) REFERENCES users (account_id, id),
    CONSTRAINT cards_conversation_per_account UNIQUE (account_id, chatwoot_conversation_id),
    CONSTRAINT cards_stage_position UNIQUE (stage_id, position) DEFERRABLE INITIALLY DEFERRED
);
CREATE FUNCTION cards_search() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.search := to_tsvector('portuguese', immutable_unaccent(
        coalesce(NEW.title, '') || ' ' || coalesce(NEW.contact_name, '') || ' ' ||
        coalesce(NEW.contact_email, '') || ' ' || coalesce(NEW.notes, '')));
    RETURN NEW;
END
$$;
CREATE TRIGGER cards_search
    BEFORE INSERT OR UPDATE OF title, contact_name, contact_email, notes ON cards
    FOR EACH ROW EXECUTE FUNCTION cards_search();

CREATE INDEX cards_board_stage_position ON cards (board_id, stage_id, position);
CREATE INDEX cards_assignee ON cards (account_id, assignee_id);
CREATE INDEX cards_board_due ON cards (board_id, due_date) WHERE due_date IS NOT NULL;
CREATE INDEX cards_board_updated ON cards (board_id, updated_at DESC, id DESC);
CREATE INDEX cards_board_created ON cards (board_id, created_at DESC, id DESC);
CREATE INDEX cards_tags ON cards USING gin (tags);
CREATE INDEX cards_search ON cards USING gin (search);
CREATE INDEX cards_title_trgm ON cards USING gin (immutable_unaccent(title) gin_trgm_ops);
CREATE INDEX cards_contact_name_trgm ON cards USING gin (immutable_unaccent(contact_name) gin_trgm_ops);
CREATE INDEX cards_contact_phone_trgm
    ON cards USING gin (regexp_replace(contact_phone, '\D', '', 'g') gin_trgm_ops);

CREATE TABLE card_history (
    id            uuid PRIMARY KEY,
    account_id    uuid NOT NULL,
    card_id       uuid NOT NULL,
    board_id      uuid NOT NULL,
    action        text NOT NULL
                  CHECK (action IN ('created', 'moved', 'updated', 'assigned', 'closed', 'reopened')),
    from_stage_id uuid REFERENCES stages (id) ON DELETE SET NULL,
    to_stage_id   uuid REFERENCES stages (id) ON DELETE SET NULL,
    actor_id      uuid REFERENCES users (id) ON DELETE SET NULL,
    automation_id uuid,
    notes         text CHECK (char_length(notes) <= 500),
    metadata      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (account_id, card_id) REFERENCES cards (account_id, id) ON DELETE CASCADE,
    FOREIGN KEY (account_id, board_id) REFERENCES boards (account_id, id) ON DELETE CASCADE
);
CREATE INDEX card_history_card ON card_history (card_id, created_at);
CREATE INDEX card_history_board ON card_history (board_id, created_at);

CREATE TABLE card_checklist_items (
    id           uuid PRIMARY KEY,
    account_id   uuid NOT NULL,
    card_id      uuid NOT NULL,
    text         text NOT NULL CHECK (char_length(text) BETWEEN 1 AND 200),
    is_required  boolean NOT NULL DEFAULT false,
    is_completed boolean NOT NULL DEFAULT false,
    completed_by uuid REFERENCES users (id) ON DELETE SET NULL,
    completed_at timestamptz,
    position     integer NOT NULL CHECK (position >= 0),
    template_key uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (account_id, card_id) REFERENCES cards (account_id, id) ON DELETE CASCADE,
    CONSTRAINT checklist_template_key_per_card UNIQUE (card_id, template_key)
);
CREATE INDEX card_checklist_items_card ON card_checklist_items (card_id, position);

-- The board's event log: every frame as pushed, by seq, with the card's assignee before and
-- after so a replay can be filtered like the live fan-out (realtime.md, resync).
CREATE TABLE board_events (
    account_id      uuid NOT NULL,
    board_id        uuid NOT NULL,
    seq             bigint NOT NULL CHECK (seq >= 1),
    frame           jsonb NOT NULL,
    card_id         uuid,
    assignee_before uuid,
    assignee_after  uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (board_id, seq),
    FOREIGN KEY (account_id, board_id) REFERENCES boards (account_id, id) ON DELETE CASCADE
);
CREATE INDEX board_events_created ON board_events (created_at);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['boards', 'stages', 'cards', 'card_history',
                             'card_checklist_items', 'board_events'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I
            USING (account_id = app_account_id() OR app_platform())
            WITH CHECK (account_id = app_account_id() OR app_platform())', t);
    END LOOP;
END
$$;

-- The default board (kanban.md, "Default board"): Portuguese names for a pt-BR account,
-- English otherwise.
CREATE FUNCTION create_default_board(account uuid, locale text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET app.platform = 'on' SET search_path = pg_catalog, public AS $$
DECLARE
    board uuid := public.uuid_v7();
    portuguese boolean := locale = 'pt-BR';
    names text[] := CASE WHEN portuguese
        THEN ARRAY['Novo', 'Em andamento', 'Aguardando', 'Resolvido']
        ELSE ARRAY['New', 'In progress', 'Waiting', 'Resolved'] END;
BEGIN
    INSERT INTO public.boards (id, account_id, name, type, is_default)
        VALUES (board, account,
                CASE WHEN portuguese THEN 'Funil principal' ELSE 'Main pipeline' END,
                'pipeline', true);
    FOR i IN 1..4 LOOP
        INSERT INTO public.stages (id, account_id, board_id, name, position, is_final)
            VALUES (public.uuid_v7(), account, board, names[i], i - 1, i = 4);
    END LOOP;
END
$$;
REVOKE EXECUTE ON FUNCTION create_default_board(uuid, text) FROM PUBLIC;

CREATE FUNCTION accounts_create_default_board() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    PERFORM public.create_default_board(NEW.id, NEW.locale);
    RETURN NEW;
END
$$;
CREATE TRIGGER accounts_create_default_board
    AFTER INSERT ON accounts
    FOR EACH ROW EXECUTE FUNCTION accounts_create_default_board();

-- Accounts created before this migration get theirs too.
SET LOCAL app.platform = 'on';
SELECT create_default_board(id, locale) FROM accounts;
