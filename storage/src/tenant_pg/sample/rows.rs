//! The PostgreSQL sample's rows, generated from a seeded RNG.
//!
//! As in the SQLite sample (`crate::sample`), everything comes from one
//! `ChaCha8Rng` in a fixed order and no clock is read, so the same seed and
//! scale give the same data, and every row carries the tenant's marker.
//! The values lean on what breaks exports, now with PostgreSQL's types:
//! Arabic, CJK and emoji text with commas, quotes and newlines, NULLs,
//! money in `numeric`, microsecond timestamps, floats including NaN and
//! ±Infinity, bytea with zero bytes, `json` with its own whitespace, arrays
//! with NULL and quoted elements, uuids, networks and intervals.

use super::insert::{Batch, Column, Param};
use chrono::{DateTime, TimeDelta, Utc};
use diesel::{PgConnection, QueryResult};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// Timestamps fall in [2025-01-01, 2026-07-01) UTC, to the microsecond.
const TIME_START_US: i64 = 1_735_689_600_000_000;
const TIME_SPAN_US: i64 = 546 * 24 * 3600 * 1_000_000;

const COMPANIES: &[&str] = &[
    "Acme Corp",
    "شركة النور للتجارة",
    "東京商事株式会社",
    "Zoë & Søn ApS",
    "Müller, Schmidt & Partner GmbH",
    "🚀 Rocket Labs",
    "서울 테크",
    "Café \"Olé\" S.A.",
    "Nguyễn Trading",
    "Ωmega Systems\twith a tab",
];
const PEOPLE: &[&str] = &[
    "Ana García",
    "محمد الأحمد",
    "李小龙",
    "田中 花子",
    "Zoë Kravitz",
    "Jürgen Groß",
    "Smith, John",
    "Priya Natarajan",
    "O'Brien \"Bob\"",
    "😀 Support Bot",
];
const PRODUCTS: &[&str] = &[
    "Widget",
    "Gadget Pro",
    "مصباح ذكي",
    "電動歯ブラシ",
    "Thé vert bio",
    "Teddy 🧸",
    "Desk lamp\nwith a two-line name",
    "Chair, ergonomic",
    "Backslash \\ tool",
    "\"Quoted\" mug",
];
const COUNTRIES: &[&str] = &["SA", "JP", "DK", "DE", "US", "KR", "FR", "VN", "GR", "EG"];
const PLANS: &[&str] = &["free", "starter", "growth", "enterprise"];
const ROLES: &[&str] = &["admin", "manager", "member", "viewer"];
const STATUSES: &[&str] = &["pending", "paid", "shipped", "refunded", "cancelled"];
const CURRENCIES: &[&str] = &["USD", "EUR", "SAR", "JPY", "KRW"];
const KPI_NAMES: &[(&str, Option<&str>, &str)] = &[
    ("Net revenue retention", Some("%"), "higher_is_better"),
    ("Churn rate", Some("%"), "lower_is_better"),
    ("Time to first value", Some("days"), "lower_is_better"),
    ("Weekly active users", None, "higher_is_better"),
    ("NPS", None, "higher_is_better"),
    ("Support backlog", Some("tickets"), "lower_is_better"),
];
const TRENDS: &[&str] = &["up", "down", "flat"];
const TOGGLES: &[&str] = &[
    "new_dashboard",
    "ai_summaries",
    "bulk_export",
    "dark_mode",
    "kpi_alerts",
    "playbook_v2",
    "rtl_layout",
    "sso_enforced",
    "usage_billing",
    "beta_api",
];

/// Rows of the scaled tables per unit of scale (as the SQLite sample).
const ACCOUNTS_PER_SCALE: u64 = 40;
const USERS_PER_ACCOUNT: u64 = 4;
const PRODUCTS_PER_SCALE: u64 = 80;
const ORDERS_PER_SCALE: u64 = 400;
const ORDER_LINES_MAX: u64 = 5;
const KPIS_PER_SCALE: u64 = 12;
const POINTS_PER_KPI: u64 = 60;
const RANGES_PER_KPI: u64 = 2;
const TRENDS_PER_ACCOUNT: u64 = 6;
/// Health trends removed after insertion, so the sequence runs ahead of
/// the largest id, as it does in a real, long-lived database.
pub(crate) const TRENDS_DELETED: i64 = 2;
const PLAYBOOKS_PER_SCALE: u64 = 8;
/// Orders inserted before their waiting items follow them.
const ORDERS_PER_ITEM_FLUSH: u64 = 100;

pub(crate) struct Generator {
    rng: ChaCha8Rng,
    tenant: String,
    marker: String,
    scale: u64,
    /// Row mode: (tenant column, tenant id) for every batch.
    row_tenant: Option<(String, String)>,
}

impl Generator {
    pub(crate) fn new(
        rng: ChaCha8Rng,
        tenant: &str,
        marker: String,
        scale: u32,
        tenant_column: Option<&str>,
    ) -> Self {
        Generator {
            rng,
            tenant: tenant.to_owned(),
            marker,
            scale: u64::from(scale),
            row_tenant: tenant_column.map(|c| (c.to_owned(), tenant.to_owned())),
        }
    }

    fn batch(&self, table: &'static str, columns: &'static [Column]) -> Batch {
        Batch::new(table, columns, self.row_tenant.clone())
    }

    /// Fill every table. The caller runs this inside one transaction.
    pub(crate) fn fill(&mut self, conn: &mut PgConnection) -> QueryResult<()> {
        let accounts = self.accounts(conn)?;
        let users = self.users(conn, accounts)?;
        let products = self.products(conn)?;
        self.orders(conn, accounts, users, products)?;
        let kpis = self.kpis(conn, users)?;
        self.kpi_series(conn, &kpis)?;
        self.kpi_ranges(conn, &kpis)?;
        self.health_trends(conn, accounts)?;
        self.playbooks(conn, users, &kpis)?;
        self.customer_config(conn)?;
        self.feature_toggles(conn)?;
        Ok(())
    }

    fn timestamp(&mut self) -> (i64, String) {
        let us = TIME_START_US + self.rng.gen_range(0..TIME_SPAN_US);
        (us, iso(us))
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items.choose(&mut self.rng).copied().unwrap_or_default()
    }

    fn maybe<T>(&mut self, probability: f64, make: impl FnOnce(&mut Self) -> T) -> Option<T> {
        if self.rng.gen_bool(probability) {
            Some(make(self))
        } else {
            None
        }
    }

    fn marker(&self) -> Param {
        Param::Text(self.marker.clone())
    }

    fn uuid(&mut self) -> String {
        let bytes: [u8; 16] = self.rng.gen();
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    fn accounts(&mut self, conn: &mut PgConnection) -> QueryResult<u64> {
        const COLUMNS: &[Column] = &[
            ("id", "bigint"),
            ("name", "text"),
            ("email", "email_address"),
            ("country", "char(2)"),
            ("plan", "plan_tier"),
            ("mrr", "numeric(12,2)"),
            ("settings", "jsonb"),
            ("created_at", "timestamptz"),
            ("marker", "text"),
        ];
        let n = ACCOUNTS_PER_SCALE * self.scale;
        let mut batch = self.batch("accounts", COLUMNS);
        for id in 1..=n {
            let name = format!("{}: {} #{id}", self.tenant, cycle(COMPANIES, id));
            let email = self.maybe(0.9, |g| format!("billing+{id}@{}.example", g.tenant));
            let country = self.maybe(0.8, |g| g.pick(COUNTRIES));
            let plan = self.pick(PLANS);
            let mrr = decimal(self.rng.gen_range(0..5_000_000), 2);
            let settings = self.maybe(0.7, |g| {
                json!({
                    "locale": g.pick(&["ar-SA", "ja-JP", "da-DK", "en-US"]),
                    "seats": g.rng.gen_range(1..500),
                    "sso": g.rng.gen_bool(0.3),
                    "tenant": g.tenant,
                    "precise": "0.1000000000000000000001",
                })
                .to_string()
            });
            let (_, created_at) = self.timestamp();
            let row = vec![
                Param::Int(id as i64),
                name.into(),
                email.into(),
                country.into(),
                plan.into(),
                mrr.into(),
                settings.into(),
                created_at.into(),
                self.marker(),
            ];
            batch.push(conn, row)?;
        }
        batch.finish(conn)?;
        Ok(n)
    }

    fn users(&mut self, conn: &mut PgConnection, accounts: u64) -> QueryResult<u64> {
        const COLUMNS: &[Column] = &[
            ("id", "bigint"),
            ("account_id", "bigint"),
            ("email", "email_address"),
            ("display_name", "varchar(200)"),
            ("role", "text"),
            ("avatar", "bytea"),
            ("last_login_ip", "inet"),
            ("last_login_at", "timestamptz"),
            ("created_at", "timestamptz"),
            ("marker", "text"),
        ];
        let n = accounts * USERS_PER_ACCOUNT;
        let mut batch = self.batch("users", COLUMNS);
        for id in 1..=n {
            let account_id = (id - 1) / USERS_PER_ACCOUNT + 1;
            let display_name = format!("{} {id}", cycle(PEOPLE, id));
            let role = self.pick(ROLES);
            let avatar = self.maybe(0.6, |g| g.avatar());
            let ip = self.maybe(0.7, |g| {
                if g.rng.gen_bool(0.5) {
                    format!(
                        "10.{}.{}.{}",
                        g.rng.gen::<u8>(),
                        g.rng.gen::<u8>(),
                        g.rng.gen::<u8>()
                    )
                } else {
                    format!("2001:db8::{:x}/64", g.rng.gen::<u16>())
                }
            });
            let last_login_at = self.maybe(0.75, |g| g.timestamp().1);
            let (_, created_at) = self.timestamp();
            let row = vec![
                Param::Int(id as i64),
                Param::Int(account_id as i64),
                format!("user{id}@{}.example", self.tenant).into(),
                display_name.into(),
                role.into(),
                avatar.into(),
                ip.into(),
                last_login_at.into(),
                created_at.into(),
                self.marker(),
            ];
            batch.push(conn, row)?;
        }
        batch.finish(conn)?;
        Ok(n)
    }

    /// PNG signature, then random bytes with a zero byte guaranteed.
    fn avatar(&mut self) -> Vec<u8> {
        let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0x00];
        let len = self.rng.gen_range(8..48);
        bytes.extend((0..len).map(|_| self.rng.gen::<u8>()));
        bytes
    }

    fn products(&mut self, conn: &mut PgConnection) -> QueryResult<u64> {
        const COLUMNS: &[Column] = &[
            ("id", "bigint"),
            ("sku", "varchar(32)"),
            ("name", "text"),
            ("description", "text"),
            ("price", "numeric(12,2)"),
            ("weight_kg", "double precision"),
            ("tags", "text[]"),
            ("created_at", "timestamptz"),
            ("marker", "text"),
        ];
        let n = PRODUCTS_PER_SCALE * self.scale;
        let mut batch = self.batch("products", COLUMNS);
        for id in 1..=n {
            let name = format!("{} {id}", cycle(PRODUCTS, id));
            let description = self.maybe(0.7, |g| {
                format!("{name} — made for {} (ref. {}).", g.tenant, g.marker)
            });
            let price = decimal(product_price_cents(id), 2);
            let weight = self.maybe(0.85, |g| g.rng.gen_range(0.01..40.0_f64));
            // Array literal with a quoted element, a NULL and a marker.
            let tags = self.maybe(0.9, |g| {
                format!(
                    "{{sample,\"{}\",NULL,\"{}\"}}",
                    g.pick(&["new", "sale, 50%", "eco \\\"green\\\"", "🔥"]),
                    g.marker
                )
            });
            let (_, created_at) = self.timestamp();
            let row = vec![
                Param::Int(id as i64),
                format!("SKU-{id:06}").into(),
                name.into(),
                description.into(),
                price.into(),
                weight.into(),
                tags.into(),
                created_at.into(),
                self.marker(),
            ];
            batch.push(conn, row)?;
        }
        batch.finish(conn)?;
        Ok(n)
    }

    fn orders(
        &mut self,
        conn: &mut PgConnection,
        accounts: u64,
        users: u64,
        products: u64,
    ) -> QueryResult<()> {
        const ORDER_COLUMNS: &[Column] = &[
            ("id", "bigint"),
            ("account_id", "bigint"),
            ("user_id", "bigint"),
            ("status", "order_status"),
            ("currency", "char(3)"),
            ("total", "numeric(14,2)"),
            ("fx_rate", "numeric(18,6)"),
            ("external_ref", "uuid"),
            ("notes", "text"),
            ("metadata", "jsonb"),
            ("created_at", "timestamptz"),
            ("marker", "text"),
        ];
        const ITEM_COLUMNS: &[Column] = &[
            ("order_id", "bigint"),
            ("line_no", "integer"),
            ("product_id", "bigint"),
            ("quantity", "integer"),
            ("unit_price", "numeric(12,2)"),
            ("discount_rate", "real"),
            ("created_at", "timestamptz"),
            ("marker", "text"),
        ];
        let n = ORDERS_PER_SCALE * self.scale;
        let mut orders = self.batch("orders", ORDER_COLUMNS);
        let mut items = self.batch("order_items", ITEM_COLUMNS);
        let mut waiting_items: Vec<Vec<Param>> = Vec::new();
        for id in 1..=n {
            let account_id = self.rng.gen_range(1..=accounts.max(1));
            let user_id = self.maybe(0.8, |g| {
                ((account_id - 1) * USERS_PER_ACCOUNT + g.rng.gen_range(1..=USERS_PER_ACCOUNT))
                    .min(users) as i64
            });
            let (_, created_at) = self.timestamp();
            let lines = self.rng.gen_range(1..=ORDER_LINES_MAX);
            let mut total_cents: i64 = 0;
            for line_no in 1..=lines {
                let product_id = self.rng.gen_range(1..=products.max(1));
                let quantity = self.rng.gen_range(1..=12_i64);
                let unit_cents = product_price_cents(product_id);
                total_cents += quantity * unit_cents;
                // A `real`: generate an f32 so the value is exactly representable.
                let discount = self.maybe(0.3, |g| f64::from(g.rng.gen_range(0.0..0.35_f32)));
                waiting_items.push(vec![
                    Param::Int(id as i64),
                    Param::Int(line_no as i64),
                    Param::Int(product_id as i64),
                    Param::Int(quantity),
                    decimal(unit_cents, 2).into(),
                    discount.into(),
                    created_at.clone().into(),
                    self.marker(),
                ]);
            }
            let notes = match self.rng.gen_range(0..4) {
                0 => Some(String::new()),
                1 => Some(format!(
                    "Deliver to {} — رقم {id}, \"gate 3\"\nleave at door\\back",
                    self.pick(PEOPLE)
                )),
                _ => None,
            };
            let metadata = json!({
                "channel": self.pick(&["web", "api", "partner"]),
                "items": lines,
                "tenant": self.tenant,
            })
            .to_string();
            let external_ref = self.uuid();
            let row = vec![
                Param::Int(id as i64),
                Param::Int(account_id as i64),
                user_id.into(),
                self.pick(STATUSES).into(),
                self.pick(CURRENCIES).into(),
                decimal(total_cents, 2).into(),
                decimal(self.rng.gen_range(100_000..5_000_000), 6).into(),
                external_ref.into(),
                notes.into(),
                metadata.into(),
                created_at.into(),
                self.marker(),
            ];
            orders.push(conn, row)?;
            // Foreign keys are checked per statement, so items reach the
            // database only after the orders they belong to.
            if id % ORDERS_PER_ITEM_FLUSH == 0 {
                orders.flush_now(conn)?;
                for item in waiting_items.drain(..) {
                    items.push(conn, item)?;
                }
            }
        }
        orders.flush_now(conn)?;
        for item in waiting_items.drain(..) {
            items.push(conn, item)?;
        }
        orders.finish(conn)?;
        items.finish(conn)?;
        Ok(())
    }

    fn kpis(&mut self, conn: &mut PgConnection, users: u64) -> QueryResult<Vec<String>> {
        const COLUMNS: &[Column] = &[
            ("id", "text"),
            ("name", "text"),
            ("unit", "text"),
            ("direction", "text"),
            ("owner_user_id", "bigint"),
            ("config", "jsonb"),
            ("created_at", "timestamptz"),
            ("marker", "text"),
        ];
        let n = KPIS_PER_SCALE * self.scale;
        let mut batch = self.batch("kpis", COLUMNS);
        let mut ids = Vec::with_capacity(n as usize);
        for i in 1..=n {
            let id = format!("kpi-{i:04}");
            let (name, unit, direction) = KPI_NAMES[(i as usize - 1) % KPI_NAMES.len()];
            let owner = self.maybe(0.7, |g| g.rng.gen_range(1..=users.max(1)) as i64);
            let config = json!({
                "period": self.pick(&["weekly", "monthly"]),
                "target": self.rng.gen_range(0.0..100.0_f64),
                "labels": {"ar": "مؤشر", "ja": "指標", "en": name},
            })
            .to_string();
            let (_, created_at) = self.timestamp();
            let row = vec![
                id.clone().into(),
                format!("{name} ({i})").into(),
                unit.into(),
                direction.into(),
                owner.into(),
                config.into(),
                created_at.into(),
                self.marker(),
            ];
            batch.push(conn, row)?;
            ids.push(id);
        }
        batch.finish(conn)?;
        Ok(ids)
    }

    fn kpi_series(&mut self, conn: &mut PgConnection, kpis: &[String]) -> QueryResult<()> {
        const COLUMNS: &[Column] = &[
            ("kpi_id", "text"),
            ("recorded_at", "timestamptz"),
            ("value", "double precision"),
            ("sample_count", "integer"),
            ("created_at", "timestamptz"),
            ("marker", "text"),
        ];
        let mut batch = self.batch("kpi_time_series", COLUMNS);
        for (k, kpi) in kpis.iter().enumerate() {
            let (start, _) = self.timestamp();
            for point in 0..POINTS_PER_KPI {
                let at = iso(start + point as i64 * 7 * 24 * 3600 * 1_000_000);
                // The first KPI's first points are the floats JSON has no
                // number for; the rest are ordinary or missing.
                let value = match (k, point) {
                    (0, 0) => Some(f64::NAN),
                    (0, 1) => Some(f64::INFINITY),
                    (0, 2) => Some(f64::NEG_INFINITY),
                    (0, 3) => Some(-0.0),
                    _ => self.maybe(0.95, |g| g.rng.gen_range(-50.0..150.0_f64)),
                };
                let row = vec![
                    kpi.as_str().into(),
                    at.clone().into(),
                    value.into(),
                    Param::Int(self.rng.gen_range(0..10_000)),
                    at.into(),
                    self.marker(),
                ];
                batch.push(conn, row)?;
            }
        }
        batch.finish(conn)?;
        Ok(())
    }

    fn kpi_ranges(&mut self, conn: &mut PgConnection, kpis: &[String]) -> QueryResult<()> {
        const COLUMNS: &[Column] = &[
            ("id", "integer"),
            ("kpi_id", "text"),
            ("label", "text"),
            ("low", "real"),
            ("high", "real"),
            ("valid_from", "date"),
            ("valid_to", "date"),
            ("reviewed_at", "timestamp"),
            ("created_at", "timestamptz"),
            ("marker", "text"),
        ];
        let mut batch = self.batch("kpi_reference_ranges", COLUMNS);
        let mut id = 0_i64;
        for kpi in kpis {
            for r in 0..RANGES_PER_KPI {
                id += 1;
                let low = f64::from(self.rng.gen_range(0.0..40.0_f32));
                let high = f64::from(low as f32 + self.rng.gen_range(0.1..60.0_f32));
                let (from, _) = self.timestamp();
                let valid_to = self.maybe(0.5, |g| date(g.timestamp().0));
                let reviewed = self.maybe(0.5, |g| {
                    let (us, _) = g.timestamp();
                    naive(us)
                });
                let (_, created_at) = self.timestamp();
                let row = vec![
                    Param::Int(id),
                    kpi.as_str().into(),
                    if r == 0 {
                        "healthy"
                    } else {
                        "at risk — خطر"
                    }
                    .into(),
                    if r == 0 {
                        Param::Real(low)
                    } else {
                        Param::Null
                    },
                    high.into(),
                    date(from).into(),
                    valid_to.into(),
                    reviewed.into(),
                    created_at.into(),
                    self.marker(),
                ];
                batch.push(conn, row)?;
            }
        }
        batch.finish(conn)?;
        Ok(())
    }

    fn health_trends(&mut self, conn: &mut PgConnection, accounts: u64) -> QueryResult<()> {
        const COLUMNS: &[Column] = &[
            ("id", "bigint"),
            ("account_id", "bigint"),
            ("score", "real"),
            ("trend", "text"),
            ("details", "json"),
            ("created_at", "timestamptz"),
            ("marker", "text"),
        ];
        let mut batch = self.batch("health_trends", COLUMNS);
        let mut id = 0_i64;
        for account in 1..=accounts {
            for _ in 0..TRENDS_PER_ACCOUNT {
                id += 1;
                let score = f64::from(self.rng.gen_range(0.0..1.0_f32));
                // Plain `json` keeps its text: whitespace, a newline and a
                // duplicate key survive only if the export is exact.
                let details = self.maybe(0.8, |g| {
                    format!(
                        "{{\"signals\": {{\"usage\": {}, \"tickets\": {}}},\n  \"note\": {}, \"note\": \"dup\"}}",
                        g.rng.gen_range(0..100),
                        g.rng.gen_range(0..20),
                        json!(g.pick(&["steady", "renewal at risk ⚠️", "expanding 📈", "تحسن"]))
                    )
                });
                let (_, created_at) = self.timestamp();
                let row = vec![
                    Param::Int(id),
                    Param::Int(account as i64),
                    score.into(),
                    self.pick(TRENDS).into(),
                    details.into(),
                    created_at.into(),
                    self.marker(),
                ];
                batch.push(conn, row)?;
            }
        }
        batch.finish(conn)?;
        Ok(())
    }

    fn playbooks(
        &mut self,
        conn: &mut PgConnection,
        users: u64,
        kpis: &[String],
    ) -> QueryResult<()> {
        const COLUMNS: &[Column] = &[
            ("id", "bigint"),
            ("name", "text"),
            ("owner_user_id", "bigint"),
            ("enabled", "boolean"),
            ("triggers", "jsonb"),
            ("executions", "jsonb"),
            ("cooldown", "interval"),
            ("quiet_hours_start", "time"),
            ("created_at", "timestamptz"),
            ("marker", "text"),
        ];
        let n = PLAYBOOKS_PER_SCALE * self.scale;
        let mut batch = self.batch("playbooks", COLUMNS);
        for i in 1..=n {
            let kpi = kpis.choose(&mut self.rng).cloned().unwrap_or_default();
            let triggers = json!([
                {"type": "kpi_below", "kpi": kpi, "threshold": self.rng.gen_range(0.0..1.0_f64)},
                {"type": "schedule", "cron": "0 9 * * MON"},
            ])
            .to_string();
            let runs = self.rng.gen_range(0..4);
            let executions: Vec<_> = (0..runs)
                .map(|_| {
                    json!({
                        "at": self.timestamp().1,
                        "status": self.pick(&["succeeded", "failed", "skipped"]),
                        "actions": self.rng.gen_range(1..6),
                    })
                })
                .collect();
            let cooldown = self.maybe(0.8, |g| {
                format!(
                    "{} days {} hours {}.{:06} seconds",
                    g.rng.gen_range(0..30),
                    g.rng.gen_range(0..24),
                    g.rng.gen_range(0..60),
                    g.rng.gen_range(0..1_000_000)
                )
            });
            let quiet = self.maybe(0.6, |g| {
                format!(
                    "{:02}:{:02}:00",
                    g.rng.gen_range(0..24),
                    g.rng.gen_range(0..60)
                )
            });
            let (_, created_at) = self.timestamp();
            let row = vec![
                Param::Int(i as i64),
                format!(
                    "Playbook {i}: {}",
                    self.pick(&["Onboarding", "Renewal", "تجديد", "オンボーディング"])
                )
                .into(),
                self.maybe(0.9, |g| g.rng.gen_range(1..=users.max(1)) as i64)
                    .into(),
                Param::Bool(self.rng.gen_bool(0.7)),
                triggers.into(),
                serde_json::Value::Array(executions).to_string().into(),
                cooldown.into(),
                quiet.into(),
                created_at.into(),
                self.marker(),
            ];
            batch.push(conn, row)?;
        }
        batch.finish(conn)?;
        Ok(())
    }

    fn customer_config(&mut self, conn: &mut PgConnection) -> QueryResult<()> {
        const COLUMNS: &[Column] = &[
            ("key", "text"),
            ("value", "jsonb"),
            ("updated_at", "timestamptz"),
            ("created_at", "timestamptz"),
            ("marker", "text"),
        ];
        let entries = [
            ("branding.primary_color", json!("#0a7cff")),
            ("branding.company_name", json!(self.tenant)),
            ("locale.default", json!("ar-SA")),
            ("billing.currency", json!("SAR")),
            (
                "notifications.email",
                json!({"digest": "weekly", "to": format!("ops@{}.example", self.tenant)}),
            ),
            ("retention.days", json!(365)),
            ("sso.enabled", json!(false)),
            ("dashboard.layout", json!(["kpis", "health", "orders"])),
            ("timezone", json!("Asia/Tokyo")),
            (
                "export.allowed_profiles",
                json!(["lite", "native", "analytics"]),
            ),
            ("kpi.default_period", json!("monthly")),
            ("welcome_message", json!("أهلاً وسهلاً — ようこそ — Welcome 👋")),
            // A JSON null, which must not become SQL NULL.
            ("legacy.setting", serde_json::Value::Null),
        ];
        let mut batch = self.batch("customer_config", COLUMNS);
        for (key, value) in entries {
            let (_, created_at) = self.timestamp();
            let (_, updated_at) = self.timestamp();
            let row = vec![
                key.into(),
                value.to_string().into(),
                updated_at.into(),
                created_at.into(),
                self.marker(),
            ];
            batch.push(conn, row)?;
        }
        batch.finish(conn)?;
        Ok(())
    }

    fn feature_toggles(&mut self, conn: &mut PgConnection) -> QueryResult<()> {
        const COLUMNS: &[Column] = &[
            ("name", "text"),
            ("enabled", "boolean"),
            ("rollout_percent", "numeric(5,2)"),
            ("rules", "jsonb"),
            ("allowed_networks", "cidr[]"),
            ("created_at", "timestamptz"),
            ("marker", "text"),
        ];
        let mut batch = self.batch("feature_toggles", COLUMNS);
        for name in TOGGLES {
            let rollout = self.maybe(0.6, |g| decimal(g.rng.gen_range(0..10_000), 2));
            let rules = self.maybe(0.5, |_| {
                json!({"plans": ["growth", "enterprise"], "countries": ["SA", "JP"]}).to_string()
            });
            let networks = self.maybe(0.5, |g| {
                format!("{{10.{}.0.0/16,2001:db8::/32}}", g.rng.gen::<u8>())
            });
            let (_, created_at) = self.timestamp();
            let row = vec![
                (*name).into(),
                Param::Bool(self.rng.gen_bool(0.5)),
                rollout.into(),
                rules.into(),
                networks.into(),
                created_at.into(),
                self.marker(),
            ];
            batch.push(conn, row)?;
        }
        batch.finish(conn)?;
        Ok(())
    }
}

/// The `n`th (1-based) item, wrapping around.
fn cycle<'a>(items: &[&'a str], n: u64) -> &'a str {
    items[(n.saturating_sub(1) % items.len() as u64) as usize]
}

/// A product's price follows from its id, so order lines can quote it.
fn product_price_cents(product_id: u64) -> i64 {
    ((product_id * 7_919) % 99_000 + 99) as i64
}

/// `units` scaled down by `10^places`, as exact decimal text.
fn decimal(units: i64, places: u32) -> String {
    let scale = 10_u64.pow(places);
    let sign = if units < 0 { "-" } else { "" };
    let abs = units.unsigned_abs();
    format!(
        "{sign}{}.{:0width$}",
        abs / scale,
        abs % scale,
        width = places as usize
    )
}

fn at(us: i64) -> DateTime<Utc> {
    DateTime::UNIX_EPOCH + TimeDelta::microseconds(us)
}

/// `2025-01-01T00:00:00.000001Z`.
fn iso(us: i64) -> String {
    at(us).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// `2025-01-01 00:00:00.000001` (a `timestamp` without zone).
fn naive(us: i64) -> String {
    at(us).format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

fn date(us: i64) -> String {
    at(us).format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_exact() {
        assert_eq!(decimal(1250, 2), "12.50");
        assert_eq!(decimal(-1, 6), "-0.000001");
        assert_eq!(iso(TIME_START_US + 1), "2025-01-01T00:00:00.000001Z");
        assert_eq!(date(TIME_START_US), "2025-01-01");
    }
}
