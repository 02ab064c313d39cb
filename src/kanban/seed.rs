//! Bulk card seeding for tests and the load generator (`src/bin/loadgen.rs`).
//!
//! [`seed_cards`] inserts many cards into a board's stages in **one SQL statement**
//! (`generate_series`), with a `created` history row per card, so 10 000 cards take about a
//! second instead of 10 000 round trips through the board's actor.
//!
//! The data is varied and realistic enough for filters, search and sorting to behave as on a
//! real board: Brazilian contact names (some accented), phone numbers, e-mails, inboxes, last
//! messages, 0–3 tags from a pool of 15, a skewed priority mix (about 20 % low, 45 % medium,
//! 25 % high, 10 % urgent), values (a quarter without one), due dates from 20 days ago to 40
//! days ahead (a third without one), assignees from a given list (about 15 % unassigned), and
//! creation times spread over the last 90 days. Everything derives from `hashint8extended(i,
//! seed)`, so the same [`CardSeed`] gives the same cards (ids and timestamps aside).
//!
//! What seeding does **not** do: it bypasses the board's actor, so it emits no events, logs
//! nothing in `board_events`, leaves `boards.seq` alone and applies no stage checklist
//! templates. Seed a board before clients subscribe to it (and, in tests, before its first
//! write through the API).

use diesel::sql_types::{Array, BigInt, Nullable, Text, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::scoped_futures::ScopedFutureExt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::positions::GAP;

/// What [`seed_cards`] inserts.
#[derive(Debug, Clone, Copy)]
pub struct CardSeed<'a> {
    /// The tenant.
    pub account_id: Uuid,
    /// The board; every stage in `stages` must belong to it.
    pub board_id: Uuid,
    /// The stages, filled round-robin: card `i` (0-based) goes to `stages[i % stages.len()]`,
    /// below the cards already there, at positions `k × 65 536` (`k` counting the stage's
    /// cards; an empty stage starts at 0).
    pub stages: &'a [Uuid],
    /// How many cards.
    pub count: usize,
    /// Active users of the account to assign cards to (empty: every card unassigned).
    pub assignees: &'a [Uuid],
    /// `created_by` of the cards and `actor_id` of their `created` rows.
    pub created_by: Option<Uuid>,
    /// Varies the generated data; the same seed gives the same titles, tags, priorities…
    pub seed: i64,
}

#[derive(QueryableByName)]
struct Seeded {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// The statement (`$1` account, `$2` board, `$3` stages, `$4` count, `$5` assignees,
/// `$6` created_by, `$7` seed, `$8` the position gap); answers the new ids in `i` order.
/// Data-modifying CTEs always run to completion, so the history insert needs no reference.
const SEED_SQL: &str = r#"
WITH stage AS MATERIALIZED (
    SELECT s.ord::int AS ord, s.id,
           coalesce((SELECT max(c.position) + $8 FROM cards c WHERE c.stage_id = s.id), 0) AS base
    FROM unnest($3::uuid[]) WITH ORDINALITY AS s(id, ord)
),
raw AS MATERIALIZED (
    SELECT i,
           hashint8extended(i, $7) & 2147483647 AS h1,
           hashint8extended(i, $7 + 1) & 2147483647 AS h2,
           hashint8extended(i, $7 + 2) & 2147483647 AS h3,
           hashint8extended(i, $7 + 3) & 2147483647 AS h4,
           hashint8extended(i, $7 + 4) & 2147483647 AS h5
    FROM generate_series(0::bigint, $4 - 1) AS i
),
person AS MATERIALIZED (
    SELECT r.*,
           (ARRAY['Ana', 'João', 'Maria', 'José', 'Francisca', 'Antônio', 'Adriana', 'Carlos',
                  'Juliana', 'Paulo', 'Márcia', 'Lucas', 'Fernanda', 'Rafael', 'Patrícia',
                  'Gabriel', 'Aline', 'Bruno', 'Camila', 'Diego', 'Letícia', 'Felipe', 'Beatriz',
                  'Gustavo', 'Larissa', 'Thiago', 'Vanessa', 'Rodrigo', 'Sônia', 'Mateus',
                  'Priscila', 'Eduardo', 'Renata', 'Vinícius', 'Tatiane', 'Leonardo', 'Cláudia',
                  'André', 'Simone', 'Marcelo'])[(1 + r.h1 % 40)::int] AS first_name,
           (ARRAY['Silva', 'Santos', 'Oliveira', 'Souza', 'Rodrigues', 'Ferreira', 'Alves',
                  'Pereira', 'Lima', 'Gomes', 'Costa', 'Ribeiro', 'Martins', 'Carvalho',
                  'Almeida', 'Lopes', 'Soares', 'Fernandes', 'Vieira', 'Barbosa', 'Rocha', 'Dias',
                  'Nascimento', 'Andrade', 'Moreira', 'Nunes', 'Marques', 'Machado', 'Mendes',
                  'Araújo'])[(1 + (r.h1 / 40) % 30)::int] AS last_name,
           (ARRAY['Padaria Pão Quente', 'Auto Peças Central', 'Clínica Sorriso', 'Studio Bela',
                  'Mercado Bom Preço', 'Construtora Horizonte', 'Pet Shop Amigo Fiel',
                  'Escola Crescer', 'Ótica Visão', 'Academia Movimento', 'Farmácia Saúde',
                  'Imobiliária Lar Doce Lar'])[(1 + r.h2 % 12)::int] AS company,
           (ARRAY['plano anual', 'kit de boas-vindas', 'instalação', 'manutenção preventiva',
                  'consultoria', 'licença extra', 'pacote premium', 'renovação de contrato',
                  'treinamento da equipe', 'segunda via de boleto'])[(1 + (r.h2 / 12) % 10)::int]
               AS product
    FROM raw r
),
src AS MATERIALIZED (
    SELECT p.i,
           uuid_v7() AS id,
           st.id AS stage_id,
           st.base + (p.i / cardinality($3::uuid[])) * $8 AS position,
           CASE p.h3 % 5
               WHEN 0 THEN 'Orçamento de ' || p.product || ' – ' || p.first_name || ' ' || p.last_name
               WHEN 1 THEN 'Pedido #' || (10000 + p.i) || ' – ' || p.company
               WHEN 2 THEN p.first_name || ' ' || p.last_name || ' (' || p.company || ')'
               WHEN 3 THEN 'Suporte: ' || p.product || ' – ' || p.company
               ELSE 'Renovação ' || p.product || ' – ' || p.first_name
           END AS title,
           CASE WHEN p.h3 % 10 = 9 THEN NULL
                ELSE p.first_name || ' ' || p.last_name END AS contact_name,
           CASE WHEN p.h3 % 10 = 9 THEN NULL
                ELSE '+55 ' || (ARRAY['11', '21', '31', '41', '51', '61', '71', '81', '85',
                                      '92', '48', '19'])[(1 + p.h4 % 12)::int]
                     || ' 9' || lpad(((p.h4 / 12) % 10000)::text, 4, '0')
                     || '-' || lpad((p.h5 % 10000)::text, 4, '0') END AS contact_phone,
           CASE WHEN p.h3 % 10 >= 7 THEN NULL
                ELSE lower(immutable_unaccent(p.first_name || '.' || p.last_name)) || p.i
                     || (ARRAY['@gmail.com', '@hotmail.com', '@outlook.com', '@empresa.com.br',
                               '@uol.com.br'])[(1 + p.h5 % 5)::int] END AS contact_email,
           CASE WHEN p.h4 % 10 < 7
                THEN (ARRAY['WhatsApp Vendas', 'WhatsApp Suporte', 'Instagram',
                            'Site'])[(1 + p.h4 % 4)::int] END AS inbox_name,
           CASE WHEN p.h4 % 10 < 7
                THEN (ARRAY['Olá, gostaria de saber o preço.', 'Pode me mandar o boleto?',
                            'Obrigado pelo atendimento!', 'Qual o prazo de entrega?',
                            'Vocês abrem no sábado?', 'Preciso remarcar a visita.',
                            'Recebi a proposta, vou analisar.',
                            'O produto chegou com defeito.'])[(1 + p.h5 % 8)::int] END
               AS last_message_preview,
           CASE WHEN p.h1 % 4 = 0 THEN NULL
                ELSE ((p.h2 % 4990000) + 10000) / 100.0 END AS value,
           CASE WHEN p.h3 % 100 < 20 THEN 'low'
                WHEN p.h3 % 100 < 65 THEN 'medium'
                WHEN p.h3 % 100 < 90 THEN 'high'
                ELSE 'urgent' END AS priority,
           CASE WHEN p.h4 % 3 = 0 THEN NULL
                ELSE date_trunc('hour', now())
                     + make_interval(days => (p.h4 % 60)::int - 20,
                                     hours => (p.h5 % 10)::int) END AS due_date,
           ARRAY(SELECT DISTINCT (ARRAY['vip', 'novo-cliente', 'retorno', 'urgente',
                                        'orcamento', 'pos-venda', 'indicacao', 'whatsapp',
                                        'instagram', 'site', 'b2b', 'b2c', 'recorrente',
                                        'inadimplente', 'black-friday'])[(1 + (p.h5 >> (4 * k)) % 15)::int]
                 FROM generate_series(1, (p.h2 % 4)::int) AS k) AS tags,
           CASE WHEN p.h5 % 10 < 3
                THEN jsonb_build_object('origem', (ARRAY['anúncio', 'indicação', 'feira',
                                                         'site'])[(1 + p.h1 % 4)::int],
                                        'cnpj', lpad((p.h2 % 100000000)::text, 8, '0'))
                ELSE '{}'::jsonb END AS custom_fields,
           CASE WHEN p.h2 % 5 = 0
                THEN 'Cliente pediu retorno após ' || (1 + p.h1 % 28) || ' dias.' END AS notes,
           CASE WHEN cardinality($5::uuid[]) = 0 OR p.h5 % 100 < 15 THEN NULL
                ELSE ($5::uuid[])[(1 + (p.h5 / 100) % cardinality($5::uuid[]))::int] END
               AS assignee_id,
           now() - make_interval(days => (p.h1 % 90)::int, mins => (p.h2 % 1440)::int)
               AS created_at,
           (p.h3 % 1000)::float8 / 1000 AS updated_fraction
    FROM person p
    JOIN stage st ON st.ord = 1 + p.i % cardinality($3::uuid[])
),
new_cards AS (
    INSERT INTO cards (id, account_id, board_id, stage_id, position, title, contact_name,
                       contact_phone, contact_email, inbox_name, last_message_preview,
                       last_message_at, value, priority, due_date, tags, custom_fields, notes,
                       assignee_id, moved_at, version, created_by, created_at, updated_at)
    SELECT id, $1, $2, stage_id, position, title, contact_name, contact_phone, contact_email,
           inbox_name, last_message_preview,
           CASE WHEN last_message_preview IS NULL THEN NULL
                ELSE created_at + (now() - created_at) * updated_fraction END,
           value, priority, due_date, tags, custom_fields, notes, assignee_id, created_at, 1, $6,
           created_at, created_at + (now() - created_at) * updated_fraction
    FROM src
),
new_history AS (
    INSERT INTO card_history (id, account_id, card_id, board_id, action, to_stage_id,
                              actor_id, metadata, created_at)
    SELECT uuid_v7(), $1, id, $2, 'created', stage_id, $6, '{}'::jsonb, created_at
    FROM src
)
SELECT id FROM src ORDER BY i
"#;

/// Inserts `seed.count` cards with realistic, varied fields into `seed.stages` of
/// `seed.board_id`, plus one `created` history row per card, in a single statement; answers
/// the new card ids in `i` order (card `i` is in `seed.stages[i % seed.stages.len()]`).
///
/// Runs in a transaction (a savepoint when `conn` is already in one) that sets
/// `app.account_id`, so it works on an owner connection as well as inside
/// `crate::db::tenant_tx`. The stages must belong to the board and the assignees must be users
/// of the account, or the statement fails on its foreign keys. See the module documentation
/// for what the generated cards look like and what seeding skips (events, `seq`, templates).
pub async fn seed_cards(
    conn: &mut AsyncPgConnection,
    seed: &CardSeed<'_>,
) -> diesel::QueryResult<Vec<Uuid>> {
    if seed.count == 0 {
        return Ok(Vec::new());
    }
    if seed.stages.is_empty() {
        return Err(diesel::result::Error::QueryBuilderError(
            "seed_cards needs at least one stage".into(),
        ));
    }
    let count = i64::try_from(seed.count)
        .map_err(|_| diesel::result::Error::QueryBuilderError("too many cards".into()))?;
    let seed = *seed;
    let stages = seed.stages.to_vec();
    let assignees = seed.assignees.to_vec();
    conn.transaction(move |conn| {
        async move {
            diesel::sql_query("SELECT set_config('app.account_id', $1, true)")
                .bind::<Text, _>(seed.account_id.to_string())
                .execute(conn)
                .await?;
            let rows: Vec<Seeded> = diesel::sql_query(SEED_SQL)
                .bind::<SqlUuid, _>(seed.account_id)
                .bind::<SqlUuid, _>(seed.board_id)
                .bind::<Array<SqlUuid>, _>(stages)
                .bind::<BigInt, _>(count)
                .bind::<Array<SqlUuid>, _>(assignees)
                .bind::<Nullable<SqlUuid>, _>(seed.created_by)
                .bind::<BigInt, _>(seed.seed)
                .bind::<BigInt, _>(GAP)
                .load(conn)
                .await?;
            Ok(rows.into_iter().map(|row| row.id).collect())
        }
        .scope_boxed()
    })
    .await
}

#[cfg(test)]
mod tests {
    use diesel::sql_types::Text;

    use super::*;
    use crate::db::embedded::{self, EmbeddedOptions};
    use crate::db::{self, accounts, boards, users, Database};
    use crate::error::ApiError;

    #[derive(QueryableByName)]
    struct Facts {
        #[diesel(sql_type = Text)]
        facts: String,
    }

    /// Seeds through `tenant_tx` (the unprivileged role, under row-level security), twice on
    /// the same stages: every card gets its history row, positions stay unique and the second
    /// batch goes below the first.
    #[tokio::test]
    async fn seeds_cards_and_history_under_row_level_security() {
        let dir = std::env::temp_dir().join(format!("whatpro-seed-{}", Uuid::now_v7().simple()));
        let mut pg = embedded::start(EmbeddedOptions {
            data_dir: dir.clone(),
            fast_unsafe: true,
        })
        .await
        .expect("cluster");
        let url = pg.url("whatpro");
        db::ensure_database(&pg.url("postgres"), "whatpro", None)
            .await
            .expect("database");
        db::run_migrations(&url).await.expect("migrations");
        let database = Database::connect(&url, 2).expect("pool");

        let account_id = Uuid::now_v7();
        let (board_id, stages, agents) =
            db::platform_tx(&database, db::PlatformScope::system(), |conn| {
                Box::pin(async move {
                    accounts::insert(
                        conn,
                        &accounts::NewAccount {
                            id: account_id,
                            name: "Seed",
                            is_platform: false,
                            chatwoot_account_id: None,
                            locale: None,
                        },
                    )
                    .await?;
                    let mut agents = Vec::new();
                    for n in 0..3 {
                        let email = format!("agent{n}@seed.test");
                        let user = users::insert(
                            conn,
                            &users::NewUser {
                                id: Uuid::now_v7(),
                                account_id,
                                email: &email,
                                name: "Agent",
                                role: "agent",
                                password_hash: None,
                            },
                        )
                        .await?;
                        agents.push(user.id);
                    }
                    let board = boards::list(conn, account_id).await?.remove(0).board;
                    let stages: Vec<Uuid> = boards::stages_of(conn, board.id)
                        .await?
                        .iter()
                        .map(|s| s.id)
                        .collect();
                    Ok::<_, ApiError>((board.id, stages, agents))
                })
            })
            .await
            .expect("account");

        let (first, second) = {
            let (stages, agents) = (stages.clone(), agents.clone());
            db::tenant_tx(&database, account_id, |conn| {
                Box::pin(async move {
                    let mut seed = CardSeed {
                        account_id,
                        board_id,
                        stages: &stages,
                        count: 600,
                        assignees: &agents,
                        created_by: Some(agents[0]),
                        seed: 7,
                    };
                    let first = seed_cards(conn, &seed).await?;
                    seed.count = 10;
                    seed.stages = &stages[..1];
                    let second = seed_cards(conn, &seed).await?;
                    Ok::<_, ApiError>((first, second))
                })
            })
            .await
            .expect("seed")
        };
        assert_eq!((first.len(), second.len()), (600, 10));

        let facts: Facts = db::tenant_tx(&database, account_id, |conn| {
            Box::pin(async move {
                let facts = diesel::sql_query(
                    "SELECT json_build_object(
                       'cards', (SELECT count(*) FROM cards),
                       'created_rows', (SELECT count(*) FROM card_history h JOIN cards c
                                        ON c.id = h.card_id AND h.to_stage_id = c.stage_id
                                        WHERE h.action = 'created'
                                          AND h.created_at = c.created_at),
                       'duplicate_positions', (SELECT count(*) FROM (SELECT 1 FROM cards
                                        GROUP BY stage_id, position HAVING count(*) > 1) d),
                       'priorities', (SELECT count(DISTINCT priority) FROM cards),
                       'assigned', (SELECT count(*) FROM cards WHERE assignee_id IS NOT NULL),
                       'tagged', (SELECT count(*) FROM cards WHERE cardinality(tags) > 0),
                       'valued', (SELECT count(*) FROM cards WHERE value IS NOT NULL),
                       'due', (SELECT count(*) FROM cards WHERE due_date IS NOT NULL),
                       'titles', (SELECT count(DISTINCT title) FROM cards),
                       'first_stage_top', (SELECT min(position) FROM cards WHERE stage_id = $1),
                       'first_stage_bottom', (SELECT max(position) FROM cards WHERE stage_id = $1)
                     )::text AS facts",
                )
                .bind::<SqlUuid, _>(stages[0])
                .get_result(conn)
                .await?;
                Ok::<_, ApiError>(facts)
            })
        })
        .await
        .expect("facts");
        let facts: serde_json::Value = serde_json::from_str(&facts.facts).expect("json");
        pg.stop().await;
        let _ = std::fs::remove_dir_all(&dir);

        assert_eq!(facts["cards"], 610, "{facts}");
        assert_eq!(facts["created_rows"], 610, "{facts}");
        assert_eq!(facts["duplicate_positions"], 0, "{facts}");
        assert_eq!(facts["priorities"], 4, "{facts}");
        // 600 cards over 4 stages: 150 each at 0, 65 536, …; then 10 more below them.
        assert_eq!(facts["first_stage_top"], 0, "{facts}");
        assert_eq!(facts["first_stage_bottom"], (150 + 9) * GAP, "{facts}");
        for (key, low, high) in [
            ("assigned", 420, 600),
            ("tagged", 350, 560),
            ("valued", 350, 560),
            ("due", 300, 520),
            ("titles", 300, 610),
        ] {
            let n = facts[key].as_i64().expect(key);
            assert!((low..=high).contains(&n), "{key} = {n}: {facts}");
        }
    }
}
