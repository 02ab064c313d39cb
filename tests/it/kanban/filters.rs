//! The card list (kanban.md, Filters): each filter alone and combined on a seeded board, against
//! a model of the seeded cards (stage and priority lists, `assignee_id` me/none/uuid, `tags`
//! any-of, `due` buckets in `America/Sao_Paulo` and UTC across the day boundary, inclusive value
//! and creation bounds, `q` with accented and unaccented Portuguese words, partial names and
//! phone fragments), the sorts, cursor pages (limit 7 over 40 cards), 400s for bad parameters,
//! and `EXPLAIN` of the filters' predicates on a 10 000-card board using the indexes.
//!
//! Time buckets: `today` is the caller's calendar day in `tz` (from local midnight to the next),
//! `this_week` Monday 00:00 to the next Monday 00:00 in `tz`, `overdue` a due date before now
//! outside final stages; PostgreSQL computes the boundaries, and the expected list is computed
//! with the clock read just before and just after the request (either must match).

use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat};
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use serde_json::{json, Value};
use uuid::Uuid;

use super::support::*;

/// The final stage of the default board.
const FINAL: usize = 3;

#[derive(Clone, Copy, PartialEq)]
enum Who {
    Nobody,
    Ana,
    Bia,
    Admin,
}

/// Due dates relative to the São Paulo day boundaries or to now.
#[derive(Clone, Copy)]
enum Due {
    Never,
    YesterdayLate,
    TodayEarly,
    TodayLate,
    TomorrowEarly,
    LongAgo,
    NextMonth,
}

/// One seeded card; card `i` is created `i + 1` days ago.
struct Spec {
    title: &'static str,
    contact: Option<&'static str>,
    phone: Option<&'static str>,
    notes: Option<&'static str>,
    stage: usize,
    priority: &'static str,
    who: Who,
    tags: &'static [&'static str],
    due: Due,
    value: Option<&'static str>,
}

const fn spec(title: &'static str, stage: usize, priority: &'static str, who: Who) -> Spec {
    Spec {
        title,
        contact: None,
        phone: None,
        notes: None,
        stage,
        priority,
        who,
        tags: &[],
        due: Due::Never,
        value: None,
    }
}

const SPECS: &[Spec] = &[
    Spec {
        contact: Some("Gabriela Souza"),
        phone: Some("+55 (11) 98765-4321"),
        tags: &["vip"],
        due: Due::TodayEarly,
        value: Some("1500.00"),
        ..spec("Instalação de ar-condicionado", 0, "high", Who::Ana)
    },
    Spec {
        contact: Some("João Conceição"),
        phone: Some("+55 21 3456-7890"),
        notes: Some("Cliente pediu orçamento urgente"),
        tags: &["retorno"],
        due: Due::TodayLate,
        value: Some("250.50"),
        ..spec("Manutenção preventiva", 1, "urgent", Who::Bia)
    },
    Spec {
        contact: Some("Pedro Almeida"),
        phone: Some("11 91234-0000"),
        due: Due::YesterdayLate,
        value: Some("100.00"),
        ..spec("Orçamento de pintura", 0, "low", Who::Nobody)
    },
    Spec {
        contact: Some("Marina Tavares"),
        tags: &["vip", "retorno"],
        due: Due::TomorrowEarly,
        ..spec("Visita técnica", 2, "medium", Who::Ana)
    },
    Spec {
        contact: Some("Rafael Lima"),
        tags: &["novo"],
        due: Due::LongAgo,
        value: Some("999.99"),
        ..spec("Troca de filtro", 1, "high", Who::Nobody)
    },
    Spec {
        contact: Some("Carla Dias"),
        tags: &["vip"],
        due: Due::LongAgo,
        value: Some("1000.00"),
        ..spec("Revisão anual", FINAL, "medium", Who::Ana)
    },
    Spec {
        contact: Some("Bruno Rocha"),
        value: Some("250.49"),
        ..spec("Limpeza de dutos", 2, "urgent", Who::Bia)
    },
    Spec {
        contact: Some("Sofia Mendes"),
        tags: &["garantia"],
        due: Due::NextMonth,
        value: Some("0.00"),
        ..spec("Reparo elétrico", 0, "medium", Who::Admin)
    },
    Spec {
        contact: Some("Lucas Ferreira"),
        ..spec("Contrato empresarial", 1, "low", Who::Ana)
    },
    Spec {
        contact: Some("Helena Castro"),
        tags: &["retorno"],
        due: Due::TodayEarly,
        value: Some("5000.00"),
        ..spec("Consultoria", FINAL, "high", Who::Nobody)
    },
    Spec {
        tags: &["vip"],
        due: Due::TodayLate,
        value: Some("250.51"),
        ..spec("Ajuste de termostato", 0, "urgent", Who::Bia)
    },
    Spec {
        contact: Some("Tiago Nunes"),
        due: Due::YesterdayLate,
        ..spec("Vistoria", 2, "low", Who::Nobody)
    },
];

/// Now and the day and week boundaries in one time zone, as Unix seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Clock {
    now: f64,
    today: f64,
    tomorrow: f64,
    week: f64,
    next_week: f64,
}

/// Reads the clock of the database in `tz`.
async fn clock(app: &TestApp, tz: &str) -> Clock {
    let local = format!("now() AT TIME ZONE '{tz}'");
    let at = |expression: String| {
        format!("extract(epoch FROM ({expression}) AT TIME ZONE '{tz}')::float8")
    };
    let row = app
        .rows(&format!(
            "SELECT extract(epoch FROM now())::float8 AS now, {} AS today, {} AS tomorrow, \
             {} AS week, {} AS next_week",
            at(format!("date_trunc('day', {local})")),
            at(format!("date_trunc('day', {local}) + interval '1 day'")),
            at(format!("date_trunc('week', {local})")),
            at(format!("date_trunc('week', {local}) + interval '7 days'")),
        ))
        .await
        .remove(0);
    let get = |k: &str| row[k].as_f64().unwrap();
    Clock {
        now: get("now"),
        today: get("today"),
        tomorrow: get("tomorrow"),
        week: get("week"),
        next_week: get("next_week"),
    }
}

fn rfc3339(seconds: f64) -> String {
    DateTime::from_timestamp(seconds as i64, 0)
        .expect("timestamp")
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Lower case without Portuguese accents.
fn fold(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ã' => 'a',
            'é' | 'ê' => 'e',
            'í' => 'i',
            'ó' | 'ô' | 'õ' => 'o',
            'ú' | 'ü' => 'u',
            'ç' => 'c',
            other => other,
        })
        .collect()
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// A seeded card with what the model needs.
struct Seeded {
    id: Uuid,
    index: usize,
    spec: &'static Spec,
    assignee: Option<Uuid>,
    due: Option<f64>,
    created: f64,
    /// `created_at` as the API shows it.
    created_at: String,
}

impl Seeded {
    fn due_between(&self, from: f64, to: f64) -> bool {
        self.due.is_some_and(|d| from <= d && d < to)
    }

    fn overdue(&self, clock: &Clock) -> bool {
        self.due.is_some_and(|d| d < clock.now) && self.spec.stage != FINAL
    }

    fn value(&self) -> Option<f64> {
        self.spec.value.map(|v| v.parse().unwrap())
    }

    fn has_any_tag(&self, tags: &[&str]) -> bool {
        self.spec.tags.iter().any(|t| tags.contains(t))
    }

    /// `q` as a substring of the unaccented text fields, or digits of the phone.
    fn matches(&self, q: &str) -> bool {
        let q = fold(q);
        let spec = self.spec;
        let texts = [Some(spec.title), spec.contact, spec.notes];
        texts.iter().flatten().any(|t| fold(t).contains(&q))
            || (q.chars().all(|c| c.is_ascii_digit())
                && spec.phone.is_some_and(|p| digits(p).contains(&q)))
    }
}

/// The default board of an account with agents Ana and Bia and the [`SPECS`] cards.
struct Shop<'a> {
    app: &'a TestApp,
    acme: Tenant<'a>,
    ana: Client<'a>,
    bia: Client<'a>,
    board: Uuid,
    stages: Vec<Uuid>,
    cards: Vec<Seeded>,
}

impl<'a> Shop<'a> {
    async fn new(app: &'a TestApp) -> Self {
        let acme = Tenant::new(app, "Filtros").await;
        let ana = acme.user("ana", "agent").await;
        let bia = acme.user("bia", "agent").await;
        let board = acme.default_board().await;
        let (b, stages) = (id(&board), stage_ids(&board));
        let sp = clock(app, TZ).await;
        let mut cards = Vec::new();
        for (index, spec) in SPECS.iter().enumerate() {
            // A few seconds apart, so no two due dates tie.
            let offset = index as f64;
            let due = match spec.due {
                Due::Never => None,
                Due::YesterdayLate => Some(sp.today - 60.0 + offset),
                Due::TodayEarly => Some(sp.today + 60.0 + offset),
                Due::TodayLate => Some(sp.tomorrow - 60.0 + offset),
                Due::TomorrowEarly => Some(sp.tomorrow + 60.0 + offset),
                Due::LongAgo => Some(sp.now - 10.0 * 86_400.0 + offset),
                Due::NextMonth => Some(sp.now + 30.0 * 86_400.0 + offset),
            };
            let assignee = match spec.who {
                Who::Nobody => None,
                Who::Ana => Some(ana.id),
                Who::Bia => Some(bia.id),
                Who::Admin => Some(acme.admin.id),
            };
            let body = json!({
                "title": spec.title,
                "contact_name": spec.contact,
                "contact_phone": spec.phone,
                "notes": spec.notes,
                "priority": spec.priority,
                "tags": spec.tags,
                "due_date": due.map(rfc3339),
                "value": spec.value,
                "assignee_id": assignee,
            });
            let card = new_card(&acme.admin, b, stages[spec.stage], body).await;
            app.sql(&format!(
                "UPDATE cards SET created_at = date_trunc('second', now()) - interval '{} days' \
                 WHERE id = '{}'",
                index + 1,
                id(&card)
            ))
            .await;
            let shown = get_card(&acme.admin, b, id(&card)).await;
            cards.push(Seeded {
                id: id(&card),
                index,
                spec,
                assignee,
                due: due.map(|d| d.trunc()),
                created: time(&shown["created_at"]).timestamp() as f64,
                created_at: shown["created_at"].as_str().unwrap().to_owned(),
            });
        }
        Self {
            app,
            acme,
            ana,
            bia,
            board: b,
            stages,
            cards,
        }
    }

    fn admin(&self) -> &Client<'a> {
        &self.acme.admin
    }

    /// The cards `keep` selects, in the default order: stage position, then newest first (each
    /// card was created at the top of its stage).
    fn expected(&self, keep: impl Fn(&Seeded) -> bool) -> Vec<Uuid> {
        let mut kept: Vec<&Seeded> = self.cards.iter().filter(|c| keep(c)).collect();
        kept.sort_by_key(|c| (c.spec.stage, std::cmp::Reverse(c.index)));
        kept.iter().map(|c| c.id).collect()
    }

    fn titles(&self, ids: &[Uuid]) -> Vec<&str> {
        ids.iter()
            .map(|i| {
                self.cards
                    .iter()
                    .find(|c| c.id == *i)
                    .map_or("?", |c| c.spec.title)
            })
            .collect()
    }

    /// `GET …/cards` with `params` (one page of up to 200) as `client`; returns the items.
    async fn list(&self, client: &Client<'_>, params: &[(&str, &str)]) -> Vec<Value> {
        let mut query = params.to_vec();
        query.push(("limit", "200"));
        let page = expect(client.get_with(&cards_path(self.board), &query).await, 200).await;
        assert_eq!(page["next_cursor"], Value::Null, "{params:?}");
        items(&page).clone()
    }

    /// Asserts the list for `params` is exactly the cards `keep` selects, in the default order,
    /// with the clock read before or after the request; returns how many matched.
    async fn check(
        &self,
        client: &Client<'_>,
        params: &[(&str, &str)],
        keep: impl Fn(&Seeded, &Clock) -> bool,
    ) -> usize {
        let tz = params
            .iter()
            .find(|(k, _)| *k == "tz")
            .map_or("UTC", |(_, v)| *v);
        let before = clock(self.app, tz).await;
        let got: Vec<Uuid> = self.list(client, params).await.iter().map(id).collect();
        let after = clock(self.app, tz).await;
        let early = self.expected(|c| keep(c, &before));
        let late = self.expected(|c| keep(c, &after));
        assert!(
            got == early || got == late,
            "{params:?}\n got      {:?}\n expected {:?}",
            self.titles(&got),
            self.titles(&early)
        );
        got.len()
    }
}

#[actix_rt::test]
async fn each_filter_alone_selects_the_matching_cards() {
    let app = start().await;
    let shop = Shop::new(&app).await;
    let admin = shop.admin();
    let s = &shop.stages;
    let (s0, s1, s2) = (s[0].to_string(), s[1].to_string(), s[2].to_string());
    let both = format!("{s0},{s2}");

    shop.check(admin, &[], |_, _| true).await;
    shop.check(admin, &[("stage_id", &s1)], |c, _| c.spec.stage == 1)
        .await;
    shop.check(admin, &[("stage_id", &both)], |c, _| {
        [0, 2].contains(&c.spec.stage)
    })
    .await;
    shop.check(admin, &[("priority", "urgent")], |c, _| {
        c.spec.priority == "urgent"
    })
    .await;
    shop.check(admin, &[("priority", "low,high")], |c, _| {
        ["low", "high"].contains(&c.spec.priority)
    })
    .await;

    // assignee_id: me (for two callers), none, a uuid.
    shop.check(&shop.ana, &[("assignee_id", "me")], |c, _| {
        c.spec.who == Who::Ana
    })
    .await;
    shop.check(admin, &[("assignee_id", "me")], |c, _| {
        c.spec.who == Who::Admin
    })
    .await;
    shop.check(admin, &[("assignee_id", "none")], |c, _| {
        c.assignee.is_none()
    })
    .await;
    let bia = shop.bia.id.to_string();
    shop.check(&shop.ana, &[("assignee_id", &bia)], |c, _| {
        c.assignee == Some(shop.bia.id)
    })
    .await;

    // tags: any of them.
    shop.check(admin, &[("tags", "vip")], |c, _| c.has_any_tag(&["vip"]))
        .await;
    let any = shop
        .check(admin, &[("tags", "retorno,garantia")], |c, _| {
            c.has_any_tag(&["retorno", "garantia"])
        })
        .await;
    assert!(any > 2, "several cards have one of the tags");

    // Inclusive value bounds.
    shop.check(admin, &[("value_min", "250.50")], |c, _| {
        c.value().is_some_and(|v| v >= 250.5)
    })
    .await;
    shop.check(admin, &[("value_max", "250.50")], |c, _| {
        c.value().is_some_and(|v| v <= 250.5)
    })
    .await;
    shop.check(
        admin,
        &[("value_min", "0"), ("value_max", "100.00")],
        |c, _| c.value().is_some_and(|v| v <= 100.0),
    )
    .await;

    // Inclusive creation bounds, at the exact creation time of a card.
    let fifth = &shop.cards[4];
    shop.check(admin, &[("created_after", &fifth.created_at)], |c, _| {
        c.created >= fifth.created
    })
    .await;
    let ninth = &shop.cards[8];
    shop.check(admin, &[("created_before", &ninth.created_at)], |c, _| {
        c.created <= ninth.created
    })
    .await;
    app.stop().await;
}

#[actix_rt::test]
async fn due_buckets_follow_the_time_zone_across_the_day_boundary() {
    let app = start().await;
    let shop = Shop::new(&app).await;
    let admin = shop.admin();
    type Bucket = fn(&Seeded, &Clock) -> bool;
    let buckets: [(&str, Bucket); 4] = [
        ("overdue", |c, k| c.overdue(k)),
        ("today", |c, k| c.due_between(k.today, k.tomorrow)),
        ("this_week", |c, k| c.due_between(k.week, k.next_week)),
        ("no_date", |c, _| c.due.is_none()),
    ];
    for (due, keep) in buckets {
        shop.check(admin, &[("due", due), ("tz", TZ)], keep).await;
        shop.check(admin, &[("due", due)], keep).await;
        shop.check(admin, &[("due", due), ("tz", "UTC")], keep)
            .await;
    }
    // The seed straddles São Paulo's midnight, so the two zones disagree about today.
    let (sp, utc) = (clock(&app, TZ).await, clock(&app, "UTC").await);
    let today = |k: Clock| shop.expected(|c| c.due_between(k.today, k.tomorrow));
    assert_ne!(
        today(sp),
        today(utc),
        "the seed must cross the day boundary"
    );
    assert_eq!(
        today(sp).len(),
        4,
        "two cards early and two late in São Paulo's today"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn text_search_matches_accents_partial_names_and_phone_fragments() {
    let app = start().await;
    let shop = Shop::new(&app).await;
    let admin = shop.admin();
    let queries = [
        ("instalacao", 1),
        ("Instalação", 1),
        ("manutencao", 1),
        ("Conceição", 1),
        ("conceicao", 1),
        ("orcamento", 2),
        ("Gabri", 1),
        ("Tavar", 1),
        ("98765", 1),
        ("8765432", 1),
        ("3456", 1),
        ("xilofone", 0),
    ];
    for (q, matches) in queries {
        let found = shop.check(admin, &[("q", q)], |c, _| c.matches(q)).await;
        assert_eq!(found, matches, "q={q}");
    }
    app.stop().await;
}

#[actix_rt::test]
async fn filters_combine_with_and() {
    let app = start().await;
    let shop = Shop::new(&app).await;
    let admin = shop.admin();
    let s = &shop.stages;
    let open = format!("{},{},{}", s[0], s[1], s[2]);
    let first_two = format!("{},{}", s[0], s[1]);
    let third = &shop.cards[3];

    let found = shop
        .check(
            admin,
            &[
                ("stage_id", &first_two),
                ("priority", "high,urgent"),
                ("tags", "vip"),
            ],
            |c, _| {
                c.spec.stage <= 1
                    && ["high", "urgent"].contains(&c.spec.priority)
                    && c.has_any_tag(&["vip"])
            },
        )
        .await;
    assert!(found > 0);
    let found = shop
        .check(
            &shop.ana,
            &[("assignee_id", "me"), ("due", "this_week"), ("tz", TZ)],
            |c, k| c.spec.who == Who::Ana && c.due_between(k.week, k.next_week),
        )
        .await;
    assert!(found > 0);
    let found = shop
        .check(
            admin,
            &[("q", "orcamento"), ("priority", "urgent")],
            |c, _| c.matches("orcamento") && c.spec.priority == "urgent",
        )
        .await;
    assert_eq!(found, 1);
    let found = shop
        .check(
            admin,
            &[
                ("value_min", "100"),
                ("value_max", "1000"),
                ("created_after", &third.created_at),
                ("stage_id", &open),
            ],
            |c, _| {
                c.value().is_some_and(|v| (100.0..=1000.0).contains(&v))
                    && c.created >= third.created
                    && c.spec.stage != FINAL
            },
        )
        .await;
    assert!(found > 0);
    let found = shop
        .check(
            admin,
            &[
                ("assignee_id", "none"),
                ("due", "overdue"),
                ("tags", "retorno,novo"),
            ],
            |c, k| c.assignee.is_none() && c.overdue(k) && c.has_any_tag(&["retorno", "novo"]),
        )
        .await;
    assert!(found > 0);
    app.stop().await;
}

/// The sort key of an item: `value` as a number, anything else as a time (µs).
fn sort_key(item: &Value, field: &str) -> Option<f64> {
    match &item[field] {
        Value::Null => None,
        v if field == "value" => Some(num(v)),
        v => Some(time(v).timestamp_micros() as f64),
    }
}

/// Asserts items are ordered by `field` (descending when `-field`), nulls together at one end.
fn assert_sorted(items: &[Value], sort: &str) {
    let (field, descending) = match sort.strip_prefix('-') {
        Some(field) => (field, true),
        None => (sort, false),
    };
    let keys: Vec<Option<f64>> = items.iter().map(|i| sort_key(i, field)).collect();
    let nulls = keys.iter().filter(|k| k.is_none()).count();
    let leading = keys.iter().take_while(|k| k.is_none()).count();
    let trailing = keys.iter().rev().take_while(|k| k.is_none()).count();
    assert!(
        leading == nulls || trailing == nulls,
        "nulls of {sort} not at one end: {keys:?}"
    );
    let present: Vec<f64> = keys.into_iter().flatten().collect();
    assert!(
        present.windows(2).all(|w| if descending {
            w[0] >= w[1]
        } else {
            w[0] <= w[1]
        }),
        "not sorted by {sort}: {present:?}"
    );
}

#[actix_rt::test]
async fn sorts_order_the_cards() {
    let app = start().await;
    let shop = Shop::new(&app).await;
    let admin = shop.admin();
    let everyone: BTreeSet<Uuid> = shop.cards.iter().map(|c| c.id).collect();
    let default: Vec<Uuid> = shop.list(admin, &[]).await.iter().map(id).collect();
    let by_position: Vec<Uuid> = shop
        .list(admin, &[("sort", "position")])
        .await
        .iter()
        .map(id)
        .collect();
    assert_eq!(by_position, default);
    for sort in ["-updated_at", "due_date", "-value", "-created_at"] {
        let listed = shop.list(admin, &[("sort", sort)]).await;
        assert_eq!(id_set(&listed), everyone, "{sort}");
        assert_sorted(&listed, sort);
    }
    // Creation times are distinct: newest first is exactly the seed order.
    let newest_first: Vec<Uuid> = shop
        .list(admin, &[("sort", "-created_at")])
        .await
        .iter()
        .map(id)
        .collect();
    let seed_order: Vec<Uuid> = shop.cards.iter().map(|c| c.id).collect();
    assert_eq!(newest_first, seed_order);
    app.stop().await;
}

#[actix_rt::test]
async fn cursor_pages_have_no_duplicates_and_no_gaps() {
    let app = start().await;
    let acme = Tenant::new(&app, "Paginas").await;
    let admin = &acme.admin;
    let board = acme.default_board().await;
    let (b, stages) = (id(&board), stage_ids(&board));
    // Ties everywhere (repeated values, due dates, update and creation times) so the id breaks them.
    let seeded = seed_cards(
        &app,
        Seed {
            account: acme.id,
            board: b,
            stages: &stages,
            count: 40,
            prefix: "Page",
            columns: &[
                ("value", "CASE WHEN i % 4 = 0 THEN NULL ELSE (i % 3) * 100.00 END"),
                (
                    "due_date",
                    "CASE WHEN i % 3 = 0 THEN NULL ELSE date_trunc('day', now()) + (i % 5) * interval '1 day' END",
                ),
                ("updated_at", "date_trunc('second', now()) - (i % 4) * interval '1 minute'"),
                ("created_at", "date_trunc('second', now()) - (i % 6) * interval '1 hour'"),
                ("priority", "(ARRAY['low','medium','high','urgent'])[1 + i % 4]"),
            ],
        },
    )
    .await;
    let everyone: BTreeSet<Uuid> = seeded.iter().copied().collect();
    let path = cards_path(b);
    for sort in [
        "position",
        "-updated_at",
        "due_date",
        "-value",
        "-created_at",
    ] {
        let paged = walk(admin, &path, &[("sort", sort)], 7).await;
        let whole = walk(admin, &path, &[("sort", sort)], 200).await;
        let paged_ids: Vec<Uuid> = paged.iter().map(id).collect();
        let whole_ids: Vec<Uuid> = whole.iter().map(id).collect();
        assert_eq!(paged_ids.len(), 40, "{sort}: no duplicates, no gaps");
        assert_eq!(id_set(&paged), everyone, "{sort}");
        assert_eq!(
            paged_ids, whole_ids,
            "{sort}: pages follow the unpaged order"
        );
        if sort != "position" {
            assert_sorted(&whole, sort);
        }
    }
    // With a filter, and the default limit of 50 holding everything in one page.
    let filter = [("priority", "high,urgent"), ("sort", "-value")];
    let paged = walk(admin, &path, &filter, 7).await;
    assert_eq!(paged.len(), 20);
    assert!(paged
        .iter()
        .all(|c| c["priority"] == "high" || c["priority"] == "urgent"));
    let page = expect(admin.get(&path).await, 200).await;
    assert_eq!(items(&page).len(), 40);
    assert_eq!(page["next_cursor"], Value::Null);
    app.stop().await;
}

#[actix_rt::test]
async fn bad_list_parameters_are_400() {
    let app = start().await;
    let acme = Tenant::new(&app, "Acme").await;
    let board = acme.default_board().await;
    let b = id(&board);
    let path = cards_path(b);
    let long_q = "a".repeat(201);
    let cases: [(&str, &str); 18] = [
        ("foo", "bar"),
        ("stage", "x"),
        ("limit", "201"),
        ("limit", "0"),
        ("limit", "many"),
        ("stage_id", "not-a-uuid"),
        ("priority", "huge"),
        ("assignee_id", "someone"),
        ("due", "yesterday"),
        ("tz", "Mars/Olympus_Mons"),
        ("value_min", "cheap"),
        ("value_max", "1,5"),
        ("created_after", "yesterday"),
        ("created_before", "2026-13-01T00:00:00Z"),
        ("sort", "title"),
        ("q", ""),
        ("q", &long_q),
        ("cursor", "not a cursor"),
    ];
    for (key, value) in cases {
        let body = bad_request(acme.admin.get_with(&path, &[(key, value)]).await).await;
        assert!(body["message"].is_string(), "{key}={value}: {body}");
    }
    // The limits themselves are fine.
    expect(acme.admin.get_with(&path, &[("limit", "200")]).await, 200).await;
    expect(acme.admin.get_with(&path, &[("limit", "1")]).await, 200).await;
    app.stop().await;
}

/// `EXPLAIN (FORMAT JSON)` of a query, as the owner in the platform scope.
async fn explain(app: &TestApp, query: &str) -> Value {
    #[derive(diesel::QueryableByName)]
    struct Plan {
        #[diesel(sql_type = Text)]
        plan: String,
    }
    let mut conn = AsyncPgConnection::establish(&app.db_url)
        .await
        .expect("owner connection");
    conn.batch_execute(
        "SET app.platform = 'on'; \
         CREATE FUNCTION pg_temp.plan(q text) RETURNS text LANGUAGE plpgsql AS $$ \
         DECLARE p text; BEGIN EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO p; RETURN p; END $$;",
    )
    .await
    .expect("plan function");
    let plan: Plan = diesel::sql_query("SELECT pg_temp.plan($1) AS plan")
        .bind::<Text, _>(query)
        .get_result(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("explain {query}: {e}"));
    serde_json::from_str(&plan.plan).expect("plan JSON")
}

/// Every node of a plan tree.
fn plan_nodes(node: &Value, out: &mut Vec<Value>) {
    out.push(node.clone());
    if let Some(children) = node["Plans"].as_array() {
        for child in children {
            plan_nodes(child, out);
        }
    }
}

#[actix_rt::test]
async fn list_predicates_use_the_indexes_on_a_10_000_card_board() {
    let app = start().await;
    let acme = Tenant::professional(&app, "Volume").await;
    let ana = acme.user("ana", "agent").await;
    let board = acme.default_board().await;
    let (b, stages) = (id(&board), stage_ids(&board));
    let other = new_board(&acme.admin, "Outro", &["P", "Q"]).await;
    let assignee = format!("CASE WHEN i % 1000 = 9 THEN '{}'::uuid END", ana.id);
    let columns: [(&str, &str); 6] = [
        ("tags", "CASE WHEN i % 1000 = 7 THEN ARRAY['raro'] ELSE ARRAY['comum'] END"),
        (
            "title",
            "'Bulk ' || lpad(i::text, 6, '0') || CASE WHEN i % 1000 = 3 THEN ' xilofone' ELSE '' END",
        ),
        ("contact_name", "CASE WHEN i % 1000 = 5 THEN 'Zuleica' ELSE 'Cliente ' || i END"),
        ("contact_phone", "'5511' || lpad(i::text, 9, '0')"),
        ("assignee_id", &assignee),
        ("due_date", "CASE WHEN i % 100 = 1 THEN now() + (i % 30) * interval '1 day' END"),
    ];
    for (board, stages) in [(b, stages.clone()), (id(&other), stage_ids(&other))] {
        seed_cards(
            &app,
            Seed {
                account: acme.id,
                board,
                stages: &stages,
                count: 10_000,
                prefix: "Bulk",
                columns: &columns,
            },
        )
        .await;
    }
    app.sql("ANALYZE cards").await;
    let on_board = format!("SELECT id FROM cards WHERE board_id = '{b}'");
    let queries = [
        format!("{on_board} AND stage_id = '{}' ORDER BY position, id LIMIT 51", stages[0]),
        format!("{on_board} AND tags && ARRAY['raro']::text[] LIMIT 51"),
        // The predicates `q` uses (src/db/cards.rs, `list`).
        format!(
            "{on_board} AND search @@ websearch_to_tsquery('portuguese', immutable_unaccent('xilofone')) LIMIT 51"
        ),
        format!(
            "{on_board} AND immutable_unaccent(title) ILIKE immutable_unaccent('%xilofone%') LIMIT 51"
        ),
        format!(
            "{on_board} AND immutable_unaccent(contact_name) ILIKE immutable_unaccent('%zuleic%') LIMIT 51"
        ),
        format!(
            "{on_board} AND regexp_replace(contact_phone, '\\D', '', 'g') LIKE '%123456%' LIMIT 51"
        ),
        format!("{on_board} AND due_date < now() + interval '3 days' ORDER BY due_date LIMIT 51"),
        format!(
            "SELECT id FROM cards WHERE account_id = '{}' AND assignee_id = '{}' LIMIT 51",
            acme.id, ana.id
        ),
    ];
    for query in queries {
        let plan = explain(&app, &query).await;
        let mut nodes = Vec::new();
        plan_nodes(&plan[0]["Plan"], &mut nodes);
        assert!(
            !nodes
                .iter()
                .any(|n| n["Node Type"] == "Seq Scan" && n["Relation Name"] == "cards"),
            "sequential scan of cards for {query}: {plan}"
        );
        assert!(
            nodes.iter().any(|n| n.get("Index Name").is_some()),
            "no index for {query}: {plan}"
        );
    }
    app.stop().await;
}
