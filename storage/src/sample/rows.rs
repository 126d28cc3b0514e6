//! The sample tenant's rows, generated from a seeded RNG, for every
//! database.
//!
//! Everything comes from one `ChaCha8Rng` (whose output, unlike `StdRng`'s,
//! is fixed across `rand` versions) in a fixed order, and no clock is read,
//! so the same seed, scale and [`Types`] give the same data. Every row
//! carries the tenant's marker. The values lean on what breaks exports:
//! Arabic, CJK and emoji text with commas, quotes, tabs, backslashes and
//! newlines, NULLs, exact decimals, arbitrary floats, blobs with zero
//! bytes; where the database has the types ([`Types::Typed`]), also
//! microsecond timestamps, NaN and ±Infinity, `json` with its own
//! whitespace, arrays with NULL and quoted elements, uuids, networks and
//! intervals. A typed value draws from the RNG only for typed databases,
//! so each database's sample stays the same whatever the other's holds.

use super::model::{col, typed, Batch, Column, Inserter, Types, Value};
use chrono::{DateTime, TimeDelta, Utc};
use diesel::QueryResult;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// Timestamps fall in [2025-01-01, 2026-07-01) UTC: to the millisecond in
/// plain databases, to the microsecond in typed ones.
const TIME_START_MS: i64 = 1_735_689_600_000;
const TIME_SPAN_MS: i64 = 546 * 24 * 3600 * 1000;
const TIME_START_US: i64 = TIME_START_MS * 1000;
const TIME_SPAN_US: i64 = TIME_SPAN_MS * 1000;
const WEEK_US: i64 = 7 * 24 * 3600 * 1_000_000;

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

/// Rows of the scaled tables per unit of scale.
const ACCOUNTS_PER_SCALE: u64 = 40;
const USERS_PER_ACCOUNT: u64 = 4;
const PRODUCTS_PER_SCALE: u64 = 80;
const ORDERS_PER_SCALE: u64 = 400;
const ORDER_LINES_MAX: u64 = 5;
const KPIS_PER_SCALE: u64 = 12;
const POINTS_PER_KPI: u64 = 60;
const RANGES_PER_KPI: u64 = 2;
const TRENDS_PER_ACCOUNT: u64 = 6;
/// Health trends removed after insertion (by each database's sample), so
/// the sequence runs ahead of the largest id, as it does in a real,
/// long-lived database.
pub(crate) const TRENDS_DELETED: i64 = 2;
const PLAYBOOKS_PER_SCALE: u64 = 8;
/// Orders inserted before their waiting items follow them.
const ORDERS_PER_ITEM_FLUSH: u64 = 100;

pub(crate) struct Generator {
    rng: ChaCha8Rng,
    tenant: String,
    marker: String,
    scale: u64,
    types: Types,
}

impl Generator {
    pub(crate) fn new(
        rng: ChaCha8Rng,
        tenant: &str,
        marker: String,
        scale: u32,
        types: Types,
    ) -> Self {
        Generator {
            rng,
            tenant: tenant.to_owned(),
            marker,
            scale: u64::from(scale),
            types,
        }
    }

    /// Fill every table through `ins`. The caller runs this inside one
    /// transaction.
    pub(crate) fn fill(&mut self, ins: &mut dyn Inserter) -> QueryResult<()> {
        assert_eq!(
            ins.types(),
            self.types,
            "the inserter's types are the sample's"
        );
        let accounts = self.accounts(ins)?;
        let users = self.users(ins, accounts)?;
        let products = self.products(ins)?;
        self.orders(ins, accounts, users, products)?;
        let kpis = self.kpis(ins, users)?;
        self.kpi_series(ins, &kpis)?;
        self.kpi_ranges(ins, &kpis)?;
        self.health_trends(ins, accounts)?;
        self.playbooks(ins, users, &kpis)?;
        self.customer_config(ins)?;
        self.feature_toggles(ins)?;
        Ok(())
    }

    fn is_typed(&self) -> bool {
        self.types == Types::Typed
    }

    /// A random instant: microseconds since the epoch, and its text.
    fn timestamp(&mut self) -> (i64, String) {
        let us = match self.types {
            Types::Plain => (TIME_START_MS + self.rng.gen_range(0..TIME_SPAN_MS)) * 1000,
            Types::Typed => TIME_START_US + self.rng.gen_range(0..TIME_SPAN_US),
        };
        (us, self.iso(us))
    }

    /// ISO-8601 UTC to the database's precision.
    fn iso(&self, us: i64) -> String {
        match self.types {
            Types::Plain => at(us).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            Types::Typed => at(us).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        }
    }

    /// A day: a `date` where there is one, else the instant's text.
    fn day(&self, us: i64) -> String {
        match self.types {
            Types::Plain => self.iso(us),
            Types::Typed => at(us).format("%Y-%m-%d").to_string(),
        }
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items.choose(&mut self.rng).copied().unwrap_or_default()
    }

    /// `Some(make(self))` with the given probability, else `None` (a NULL).
    fn maybe<T>(&mut self, probability: f64, make: impl FnOnce(&mut Self) -> T) -> Option<T> {
        if self.rng.gen_bool(probability) {
            Some(make(self))
        } else {
            None
        }
    }

    /// [`Self::maybe`] for a typed-only column: no draw in plain databases.
    fn maybe_typed<T>(&mut self, probability: f64, make: impl FnOnce(&mut Self) -> T) -> Option<T> {
        if self.is_typed() {
            self.maybe(probability, make)
        } else {
            None
        }
    }

    /// A `real` column's value: an f32 in typed databases, so it is exactly
    /// representable; a double in plain ones.
    fn real(&mut self, range: std::ops::Range<f64>) -> f64 {
        match self.types {
            Types::Plain => self.rng.gen_range(range),
            Types::Typed => f64::from(self.rng.gen_range(range.start as f32..range.end as f32)),
        }
    }

    fn marker(&self) -> Value {
        Value::Text(self.marker.clone())
    }

    fn uuid(&mut self) -> String {
        let bytes: [u8; 16] = self.rng.gen();
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    fn accounts(&mut self, ins: &mut dyn Inserter) -> QueryResult<u64> {
        const COLUMNS: &[Column] = &[
            col("id", "bigint"),
            col("name", "text"),
            col("email", "email_address"),
            col("country", "char(2)"),
            col("plan", "plan_tier"),
            col("mrr", "numeric(12,2)"),
            col("settings", "jsonb"),
            col("created_at", "timestamptz"),
            col("marker", "text"),
        ];
        let n = ACCOUNTS_PER_SCALE * self.scale;
        let mut batch = Batch::new(ins, "accounts", COLUMNS);
        for id in 1..=n {
            // The tenant id leads every account name: a visible marker too.
            // Names cycle rather than being drawn, so every awkward one
            // appears even at scale 1.
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
                Value::Int(id as i64),
                name.into(),
                email.into(),
                country.into(),
                plan.into(),
                mrr.into(),
                settings.into(),
                created_at.into(),
                self.marker(),
            ];
            batch.push(ins, row)?;
        }
        batch.flush(ins)?;
        Ok(n)
    }

    fn users(&mut self, ins: &mut dyn Inserter, accounts: u64) -> QueryResult<u64> {
        const COLUMNS: &[Column] = &[
            col("id", "bigint"),
            col("account_id", "bigint"),
            col("email", "email_address"),
            col("display_name", "varchar(200)"),
            col("role", "text"),
            col("avatar", "bytea"),
            typed("last_login_ip", "inet"),
            col("last_login_at", "timestamptz"),
            col("created_at", "timestamptz"),
            col("marker", "text"),
        ];
        let n = accounts * USERS_PER_ACCOUNT;
        let mut batch = Batch::new(ins, "users", COLUMNS);
        for id in 1..=n {
            let account_id = (id - 1) / USERS_PER_ACCOUNT + 1;
            let display_name = format!("{} {id}", cycle(PEOPLE, id));
            let role = self.pick(ROLES);
            let avatar = self.maybe(0.6, |g| g.avatar());
            let ip = self.maybe_typed(0.7, |g| {
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
                Value::Int(id as i64),
                Value::Int(account_id as i64),
                format!("user{id}@{}.example", self.tenant).into(),
                display_name.into(),
                role.into(),
                avatar.into(),
                ip.into(),
                last_login_at.into(),
                created_at.into(),
                self.marker(),
            ];
            batch.push(ins, row)?;
        }
        batch.flush(ins)?;
        Ok(n)
    }

    /// PNG signature, then random bytes with a zero byte guaranteed.
    fn avatar(&mut self) -> Vec<u8> {
        let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0x00];
        let len = self.rng.gen_range(8..48);
        bytes.extend((0..len).map(|_| self.rng.gen::<u8>()));
        bytes
    }

    fn products(&mut self, ins: &mut dyn Inserter) -> QueryResult<u64> {
        const COLUMNS: &[Column] = &[
            col("id", "bigint"),
            col("sku", "varchar(32)"),
            col("name", "text"),
            col("description", "text"),
            col("price", "numeric(12,2)"),
            col("weight_kg", "double precision"),
            col("tags", "text[]"),
            col("created_at", "timestamptz"),
            col("marker", "text"),
        ];
        let n = PRODUCTS_PER_SCALE * self.scale;
        let mut batch = Batch::new(ins, "products", COLUMNS);
        for id in 1..=n {
            let name = format!("{} {id}", cycle(PRODUCTS, id));
            let description = self.maybe(0.7, |g| {
                format!("{name} — made for {} (ref. {}).", g.tenant, g.marker)
            });
            let price = decimal(product_price_cents(id), 2);
            let weight = self.maybe(0.85, |g| g.rng.gen_range(0.01..40.0_f64));
            let tags = match self.types {
                // A JSON array held as text.
                Types::Plain => {
                    Some(json!(["sample", self.pick(&["new", "sale", "eco", "🔥"])]).to_string())
                }
                // An array literal with a quoted element, a NULL and a marker.
                Types::Typed => self.maybe(0.9, |g| {
                    format!(
                        "{{sample,\"{}\",NULL,\"{}\"}}",
                        g.pick(&["new", "sale, 50%", "eco \\\"green\\\"", "🔥"]),
                        g.marker
                    )
                }),
            };
            let (_, created_at) = self.timestamp();
            let row = vec![
                Value::Int(id as i64),
                format!("SKU-{id:06}").into(),
                name.into(),
                description.into(),
                price.into(),
                weight.into(),
                tags.into(),
                created_at.into(),
                self.marker(),
            ];
            batch.push(ins, row)?;
        }
        batch.flush(ins)?;
        Ok(n)
    }

    fn orders(
        &mut self,
        ins: &mut dyn Inserter,
        accounts: u64,
        users: u64,
        products: u64,
    ) -> QueryResult<()> {
        const ORDER_COLUMNS: &[Column] = &[
            col("id", "bigint"),
            col("account_id", "bigint"),
            col("user_id", "bigint"),
            col("status", "order_status"),
            col("currency", "char(3)"),
            col("total", "numeric(14,2)"),
            col("fx_rate", "numeric(18,6)"),
            typed("external_ref", "uuid"),
            col("notes", "text"),
            col("metadata", "jsonb"),
            col("created_at", "timestamptz"),
            col("marker", "text"),
        ];
        const ITEM_COLUMNS: &[Column] = &[
            col("order_id", "bigint"),
            col("line_no", "integer"),
            col("product_id", "bigint"),
            col("quantity", "integer"),
            col("unit_price", "numeric(12,2)"),
            col("discount_rate", "real"),
            col("created_at", "timestamptz"),
            col("marker", "text"),
        ];
        let n = ORDERS_PER_SCALE * self.scale;
        let mut orders = Batch::new(ins, "orders", ORDER_COLUMNS);
        let mut items = Batch::new(ins, "order_items", ITEM_COLUMNS);
        let mut waiting_items: Vec<Vec<Value>> = Vec::new();
        for id in 1..=n {
            let account_id = self.rng.gen_range(1..=accounts.max(1));
            // A user of the same account placed it, unless it came in by API.
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
                let discount = self.maybe(0.3, |g| g.real(0.0..0.35));
                waiting_items.push(vec![
                    Value::Int(id as i64),
                    Value::Int(line_no as i64),
                    Value::Int(product_id as i64),
                    Value::Int(quantity),
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
            let external_ref = self.is_typed().then(|| self.uuid());
            let row = vec![
                Value::Int(id as i64),
                Value::Int(account_id as i64),
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
            orders.push(ins, row)?;
            // Where foreign keys are checked per statement, items must
            // reach the database only after the orders they belong to.
            if id % ORDERS_PER_ITEM_FLUSH == 0 {
                orders.flush(ins)?;
                for item in waiting_items.drain(..) {
                    items.push(ins, item)?;
                }
            }
        }
        orders.flush(ins)?;
        for item in waiting_items.drain(..) {
            items.push(ins, item)?;
        }
        items.flush(ins)?;
        Ok(())
    }

    fn kpis(&mut self, ins: &mut dyn Inserter, users: u64) -> QueryResult<Vec<String>> {
        const COLUMNS: &[Column] = &[
            col("id", "text"),
            col("name", "text"),
            col("unit", "text"),
            col("direction", "text"),
            col("owner_user_id", "bigint"),
            col("config", "jsonb"),
            col("created_at", "timestamptz"),
            col("marker", "text"),
        ];
        let n = KPIS_PER_SCALE * self.scale;
        let mut batch = Batch::new(ins, "kpis", COLUMNS);
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
            batch.push(ins, row)?;
            ids.push(id);
        }
        batch.flush(ins)?;
        Ok(ids)
    }

    fn kpi_series(&mut self, ins: &mut dyn Inserter, kpis: &[String]) -> QueryResult<()> {
        const COLUMNS: &[Column] = &[
            col("kpi_id", "text"),
            col("recorded_at", "timestamptz"),
            col("value", "double precision"),
            col("sample_count", "integer"),
            col("created_at", "timestamptz"),
            col("marker", "text"),
        ];
        let mut batch = Batch::new(ins, "kpi_time_series", COLUMNS);
        for (k, kpi) in kpis.iter().enumerate() {
            let (start, _) = self.timestamp();
            for point in 0..POINTS_PER_KPI {
                // Weekly points; ids are left to the sequence.
                let at = self.iso(start + point as i64 * WEEK_US);
                // In typed databases the first KPI's first points are the
                // floats JSON has no number for; the rest are ordinary or
                // missing.
                let value = match (self.is_typed(), k, point) {
                    (true, 0, 0) => Some(f64::NAN),
                    (true, 0, 1) => Some(f64::INFINITY),
                    (true, 0, 2) => Some(f64::NEG_INFINITY),
                    (true, 0, 3) => Some(-0.0),
                    _ => self.maybe(0.95, |g| g.rng.gen_range(-50.0..150.0_f64)),
                };
                let row = vec![
                    kpi.as_str().into(),
                    at.clone().into(),
                    value.into(),
                    Value::Int(self.rng.gen_range(0..10_000)),
                    at.into(),
                    self.marker(),
                ];
                batch.push(ins, row)?;
            }
        }
        batch.flush(ins)?;
        Ok(())
    }

    fn kpi_ranges(&mut self, ins: &mut dyn Inserter, kpis: &[String]) -> QueryResult<()> {
        const COLUMNS: &[Column] = &[
            col("id", "integer"),
            col("kpi_id", "text"),
            col("label", "text"),
            col("low", "real"),
            col("high", "real"),
            col("valid_from", "date"),
            col("valid_to", "date"),
            typed("reviewed_at", "timestamp"),
            col("created_at", "timestamptz"),
            col("marker", "text"),
        ];
        let mut batch = Batch::new(ins, "kpi_reference_ranges", COLUMNS);
        let mut id = 0_i64;
        for kpi in kpis {
            for r in 0..RANGES_PER_KPI {
                id += 1;
                let low = self.real(0.0..40.0);
                let high = match self.types {
                    Types::Plain => low + self.rng.gen_range(0.1..60.0_f64),
                    Types::Typed => f64::from(low as f32 + self.rng.gen_range(0.1..60.0_f32)),
                };
                let (from, _) = self.timestamp();
                let valid_to = self.maybe(0.5, |g| {
                    let (us, _) = g.timestamp();
                    g.day(us)
                });
                let reviewed = self.maybe_typed(0.5, |g| {
                    let (us, _) = g.timestamp();
                    naive(us)
                });
                let (_, created_at) = self.timestamp();
                let row = vec![
                    Value::Int(id),
                    kpi.as_str().into(),
                    if r == 0 {
                        "healthy"
                    } else {
                        "at risk — خطر"
                    }
                    .into(),
                    // An open-ended range has no lower bound.
                    if r == 0 {
                        Value::Real(low)
                    } else {
                        Value::Null
                    },
                    high.into(),
                    self.day(from).into(),
                    valid_to.into(),
                    reviewed.into(),
                    created_at.into(),
                    self.marker(),
                ];
                batch.push(ins, row)?;
            }
        }
        batch.flush(ins)?;
        Ok(())
    }

    fn health_trends(&mut self, ins: &mut dyn Inserter, accounts: u64) -> QueryResult<()> {
        const COLUMNS: &[Column] = &[
            col("id", "bigint"),
            col("account_id", "bigint"),
            col("score", "real"),
            col("trend", "text"),
            col("details", "json"),
            col("created_at", "timestamptz"),
            col("marker", "text"),
        ];
        let mut batch = Batch::new(ins, "health_trends", COLUMNS);
        let mut id = 0_i64;
        for account in 1..=accounts {
            for _ in 0..TRENDS_PER_ACCOUNT {
                id += 1;
                let score = self.real(0.0..1.0);
                let details = self.maybe(0.8, |g| {
                    let usage = g.rng.gen_range(0..100);
                    let tickets = g.rng.gen_range(0..20);
                    let note = g.pick(&["steady", "renewal at risk ⚠️", "expanding 📈", "تحسن"]);
                    match g.types {
                        Types::Plain => json!({
                            "signals": {"usage": usage, "tickets": tickets},
                            "note": note,
                        })
                        .to_string(),
                        // Plain `json` keeps its text: whitespace, a newline
                        // and a duplicate key survive only if the export is
                        // exact.
                        Types::Typed => format!(
                            "{{\"signals\": {{\"usage\": {usage}, \"tickets\": {tickets}}},\n  \"note\": {}, \"note\": \"dup\"}}",
                            json!(note)
                        ),
                    }
                });
                let (_, created_at) = self.timestamp();
                let row = vec![
                    Value::Int(id),
                    Value::Int(account as i64),
                    score.into(),
                    self.pick(TRENDS).into(),
                    details.into(),
                    created_at.into(),
                    self.marker(),
                ];
                batch.push(ins, row)?;
            }
        }
        batch.flush(ins)?;
        Ok(())
    }

    fn playbooks(
        &mut self,
        ins: &mut dyn Inserter,
        users: u64,
        kpis: &[String],
    ) -> QueryResult<()> {
        const COLUMNS: &[Column] = &[
            col("id", "bigint"),
            col("name", "text"),
            col("owner_user_id", "bigint"),
            col("enabled", "boolean"),
            col("triggers", "jsonb"),
            col("executions", "jsonb"),
            typed("cooldown", "interval"),
            typed("quiet_hours_start", "time"),
            col("created_at", "timestamptz"),
            col("marker", "text"),
        ];
        let n = PLAYBOOKS_PER_SCALE * self.scale;
        let mut batch = Batch::new(ins, "playbooks", COLUMNS);
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
            let cooldown = self.maybe_typed(0.8, |g| {
                format!(
                    "{} days {} hours {}.{:06} seconds",
                    g.rng.gen_range(0..30),
                    g.rng.gen_range(0..24),
                    g.rng.gen_range(0..60),
                    g.rng.gen_range(0..1_000_000)
                )
            });
            let quiet = self.maybe_typed(0.6, |g| {
                format!(
                    "{:02}:{:02}:00",
                    g.rng.gen_range(0..24),
                    g.rng.gen_range(0..60)
                )
            });
            let (_, created_at) = self.timestamp();
            let row = vec![
                Value::Int(i as i64),
                format!(
                    "Playbook {i}: {}",
                    self.pick(&["Onboarding", "Renewal", "تجديد", "オンボーディング"])
                )
                .into(),
                self.maybe(0.9, |g| g.rng.gen_range(1..=users.max(1)) as i64)
                    .into(),
                Value::Bool(self.rng.gen_bool(0.7)),
                triggers.into(),
                serde_json::Value::Array(executions).to_string().into(),
                cooldown.into(),
                quiet.into(),
                created_at.into(),
                self.marker(),
            ];
            batch.push(ins, row)?;
        }
        batch.flush(ins)?;
        Ok(())
    }

    fn customer_config(&mut self, ins: &mut dyn Inserter) -> QueryResult<()> {
        const COLUMNS: &[Column] = &[
            col("key", "text"),
            col("value", "jsonb"),
            col("updated_at", "timestamptz"),
            col("created_at", "timestamptz"),
            col("marker", "text"),
        ];
        let mut entries = vec![
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
        ];
        if self.is_typed() {
            // A JSON null, which must not become SQL NULL in `jsonb`.
            entries.push(("legacy.setting", serde_json::Value::Null));
        }
        let mut batch = Batch::new(ins, "customer_config", COLUMNS);
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
            batch.push(ins, row)?;
        }
        batch.flush(ins)?;
        Ok(())
    }

    fn feature_toggles(&mut self, ins: &mut dyn Inserter) -> QueryResult<()> {
        const COLUMNS: &[Column] = &[
            col("name", "text"),
            col("enabled", "boolean"),
            col("rollout_percent", "numeric(5,2)"),
            col("rules", "jsonb"),
            typed("allowed_networks", "cidr[]"),
            col("created_at", "timestamptz"),
            col("marker", "text"),
        ];
        let mut batch = Batch::new(ins, "feature_toggles", COLUMNS);
        for name in TOGGLES {
            let rollout: Option<Value> = self.maybe(0.6, |g| match g.types {
                Types::Plain => Value::Real(g.rng.gen_range(0.0..100.0_f64)),
                Types::Typed => Value::Text(decimal(g.rng.gen_range(0..10_000), 2)),
            });
            let rules = self.maybe(0.5, |_| {
                json!({"plans": ["growth", "enterprise"], "countries": ["SA", "JP"]}).to_string()
            });
            let networks = self.maybe_typed(0.5, |g| {
                format!("{{10.{}.0.0/16,2001:db8::/32}}", g.rng.gen::<u8>())
            });
            let (_, created_at) = self.timestamp();
            let row = vec![
                (*name).into(),
                Value::Bool(self.rng.gen_bool(0.5)),
                rollout.into(),
                rules.into(),
                networks.into(),
                created_at.into(),
                self.marker(),
            ];
            batch.push(ins, row)?;
        }
        batch.flush(ins)?;
        Ok(())
    }
}

/// The `n`th (1-based) item, wrapping around.
fn cycle<'a>(items: &[&'a str], n: u64) -> &'a str {
    items[(n.saturating_sub(1) % items.len() as u64) as usize]
}

/// A product's price follows from its id, so order lines can quote it
/// without a lookup.
fn product_price_cents(product_id: u64) -> i64 {
    ((product_id * 7_919) % 99_000 + 99) as i64
}

/// `units` scaled down by `10^places`, as exact decimal text:
/// `decimal(1250, 2)` is `"12.50"`.
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

/// `2025-01-01 00:00:00.000001` (a `timestamp` without zone).
fn naive(us: i64) -> String {
    at(us).format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn generator(types: Types) -> Generator {
        Generator::new(
            ChaCha8Rng::seed_from_u64(1),
            "t",
            "marker-t".into(),
            1,
            types,
        )
    }

    #[test]
    fn decimals_keep_their_scale() {
        assert_eq!(decimal(1250, 2), "12.50");
        assert_eq!(decimal(5, 2), "0.05");
        assert_eq!(decimal(-1, 6), "-0.000001");
    }

    #[test]
    fn times_follow_the_database_precision() {
        let plain = generator(Types::Plain);
        let typed = generator(Types::Typed);
        assert_eq!(plain.iso(TIME_START_US + 1_000), "2025-01-01T00:00:00.001Z");
        assert_eq!(typed.iso(TIME_START_US + 1), "2025-01-01T00:00:00.000001Z");
        assert_eq!(plain.day(TIME_START_US), "2025-01-01T00:00:00.000Z");
        assert_eq!(typed.day(TIME_START_US), "2025-01-01");
        assert_eq!(naive(TIME_START_US), "2025-01-01 00:00:00.000000");
    }
}
