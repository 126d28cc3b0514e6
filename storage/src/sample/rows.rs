//! The sample tenant's rows, generated from a seeded RNG.
//!
//! Everything comes from one `ChaCha8Rng` (whose output, unlike `StdRng`'s,
//! is fixed across `rand` versions) in a fixed order, and no clock is read,
//! so the same seed and scale give byte-identical data. The values lean on
//! what breaks exports: Arabic, CJK and emoji text, commas, quotes and
//! newlines for CSV, NULLs, decimals as text, arbitrary floats, blobs with
//! zero bytes.

use super::insert::{Batch, Param};
use chrono::{DateTime, TimeDelta, Utc};
use diesel::sql_types::BigInt;
use diesel::{QueryResult, RunQueryDsl, SqliteConnection};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// Timestamps fall in [2025-01-01, 2026-07-01) UTC.
const TIME_START_MS: i64 = 1_735_689_600_000;
const TIME_SPAN_MS: i64 = 546 * 24 * 3600 * 1000;

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
    "Ωmega Systems",
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
/// Health trends removed after insertion, so that `sqlite_sequence` runs
/// ahead of the largest id, as it does in a real, long-lived database.
const TRENDS_DELETED: i64 = 2;
const PLAYBOOKS_PER_SCALE: u64 = 8;

pub(crate) struct Generator {
    rng: ChaCha8Rng,
    tenant: String,
    marker: String,
    scale: u64,
}

impl Generator {
    pub(crate) fn new(rng: ChaCha8Rng, tenant: &str, marker: String, scale: u32) -> Self {
        Generator {
            rng,
            tenant: tenant.to_owned(),
            marker,
            scale: u64::from(scale),
        }
    }

    /// Fill every table. The caller runs this inside one transaction.
    pub(crate) fn fill(&mut self, conn: &mut SqliteConnection) -> QueryResult<()> {
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
        let ms = TIME_START_MS + self.rng.gen_range(0..TIME_SPAN_MS);
        (ms, iso(ms))
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

    fn marker(&self) -> Param {
        Param::Text(self.marker.clone())
    }

    fn accounts(&mut self, conn: &mut SqliteConnection) -> QueryResult<u64> {
        const COLUMNS: &[&str] = &[
            "id",
            "name",
            "email",
            "country",
            "plan",
            "mrr",
            "settings",
            "created_at",
            "marker",
        ];
        let n = ACCOUNTS_PER_SCALE * self.scale;
        let mut batch = Batch::new("accounts", COLUMNS);
        for id in 1..=n {
            // The tenant id leads every account name: a visible marker too.
            // Names cycle rather than being drawn, so every awkward one
            // appears even at scale 1.
            let company = cycle(COMPANIES, id);
            let name = format!("{}: {company} #{id}", self.tenant);
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

    fn users(&mut self, conn: &mut SqliteConnection, accounts: u64) -> QueryResult<u64> {
        const COLUMNS: &[&str] = &[
            "id",
            "account_id",
            "email",
            "display_name",
            "role",
            "avatar",
            "last_login_at",
            "created_at",
            "marker",
        ];
        let n = accounts * USERS_PER_ACCOUNT;
        let mut batch = Batch::new("users", COLUMNS);
        for id in 1..=n {
            let account_id = (id - 1) / USERS_PER_ACCOUNT + 1;
            let display_name = format!("{} {id}", cycle(PEOPLE, id));
            let role = self.pick(ROLES);
            let avatar = if self.rng.gen_bool(0.6) {
                Some(self.avatar())
            } else {
                None
            };
            let last_login_at = if self.rng.gen_bool(0.75) {
                Some(self.timestamp().1)
            } else {
                None
            };
            let (_, created_at) = self.timestamp();
            let row = vec![
                Param::Int(id as i64),
                Param::Int(account_id as i64),
                format!("user{id}@{}.example", self.tenant).into(),
                display_name.into(),
                role.into(),
                avatar.into(),
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

    fn products(&mut self, conn: &mut SqliteConnection) -> QueryResult<u64> {
        const COLUMNS: &[&str] = &[
            "id",
            "sku",
            "name",
            "description",
            "price",
            "weight_kg",
            "tags",
            "created_at",
            "marker",
        ];
        let n = PRODUCTS_PER_SCALE * self.scale;
        let mut batch = Batch::new("products", COLUMNS);
        for id in 1..=n {
            let name = format!("{} {id}", cycle(PRODUCTS, id));
            let description = if self.rng.gen_bool(0.7) {
                Some(format!(
                    "{name} — made for {} (ref. {}).",
                    self.tenant, self.marker
                ))
            } else {
                None
            };
            let price = decimal(product_price_cents(id), 2);
            let weight = self.maybe(0.85, |g| g.rng.gen_range(0.01..40.0_f64));
            let tags = json!(["sample", self.pick(&["new", "sale", "eco", "🔥"])]).to_string();
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
        conn: &mut SqliteConnection,
        accounts: u64,
        users: u64,
        products: u64,
    ) -> QueryResult<()> {
        const ORDER_COLUMNS: &[&str] = &[
            "id",
            "account_id",
            "user_id",
            "status",
            "currency",
            "total",
            "fx_rate",
            "notes",
            "metadata",
            "created_at",
            "marker",
        ];
        const ITEM_COLUMNS: &[&str] = &[
            "order_id",
            "line_no",
            "product_id",
            "quantity",
            "unit_price",
            "discount_rate",
            "created_at",
            "marker",
        ];
        let n = ORDERS_PER_SCALE * self.scale;
        let mut orders = Batch::new("orders", ORDER_COLUMNS);
        let mut items = Batch::new("order_items", ITEM_COLUMNS);
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
                let discount = self.maybe(0.3, |g| g.rng.gen_range(0.0..0.35_f64));
                let row = vec![
                    Param::Int(id as i64),
                    Param::Int(line_no as i64),
                    Param::Int(product_id as i64),
                    Param::Int(quantity),
                    decimal(unit_cents, 2).into(),
                    discount.into(),
                    created_at.clone().into(),
                    self.marker(),
                ];
                items.push(conn, row)?;
            }
            let notes = match self.rng.gen_range(0..4) {
                0 => Some(String::new()),
                1 => Some(format!(
                    "Deliver to {} — رقم {id}, \"gate 3\"\nleave at door",
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
            let row = vec![
                Param::Int(id as i64),
                Param::Int(account_id as i64),
                user_id.into(),
                self.pick(STATUSES).into(),
                self.pick(CURRENCIES).into(),
                decimal(total_cents, 2).into(),
                decimal(self.rng.gen_range(100_000..5_000_000), 6).into(),
                notes.into(),
                metadata.into(),
                created_at.into(),
                self.marker(),
            ];
            orders.push(conn, row)?;
        }
        // Items may be flushed before the orders they reference; the caller
        // defers foreign-key checks to the commit.
        orders.finish(conn)?;
        items.finish(conn)?;
        Ok(())
    }

    fn kpis(&mut self, conn: &mut SqliteConnection, users: u64) -> QueryResult<Vec<String>> {
        const COLUMNS: &[&str] = &[
            "id",
            "name",
            "unit",
            "direction",
            "owner_user_id",
            "config",
            "created_at",
            "marker",
        ];
        let n = KPIS_PER_SCALE * self.scale;
        let mut batch = Batch::new("kpis", COLUMNS);
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

    fn kpi_series(&mut self, conn: &mut SqliteConnection, kpis: &[String]) -> QueryResult<()> {
        const COLUMNS: &[&str] = &[
            "kpi_id",
            "recorded_at",
            "value",
            "sample_count",
            "created_at",
            "marker",
        ];
        let mut batch = Batch::new("kpi_time_series", COLUMNS);
        for kpi in kpis {
            let (start_ms, _) = self.timestamp();
            for point in 0..POINTS_PER_KPI {
                // Weekly points; ids are left to AUTOINCREMENT here.
                let at = iso(start_ms + point as i64 * 7 * 24 * 3600 * 1000);
                let value = self.maybe(0.95, |g| g.rng.gen_range(-50.0..150.0_f64));
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

    fn kpi_ranges(&mut self, conn: &mut SqliteConnection, kpis: &[String]) -> QueryResult<()> {
        const COLUMNS: &[&str] = &[
            "kpi_id",
            "label",
            "low",
            "high",
            "valid_from",
            "valid_to",
            "created_at",
            "marker",
        ];
        let mut batch = Batch::new("kpi_reference_ranges", COLUMNS);
        for kpi in kpis {
            for r in 0..RANGES_PER_KPI {
                let low = self.rng.gen_range(0.0..40.0_f64);
                let high = low + self.rng.gen_range(0.1..60.0_f64);
                let (_, valid_from) = self.timestamp();
                let valid_to = self.maybe(0.5, |g| g.timestamp().1);
                let (_, created_at) = self.timestamp();
                let row = vec![
                    kpi.as_str().into(),
                    if r == 0 {
                        "healthy"
                    } else {
                        "at risk — خطر"
                    }
                    .into(),
                    // An open-ended range has no lower bound.
                    if r == 0 {
                        Param::Real(low)
                    } else {
                        Param::Null
                    },
                    high.into(),
                    valid_from.into(),
                    valid_to.into(),
                    created_at.into(),
                    self.marker(),
                ];
                batch.push(conn, row)?;
            }
        }
        batch.finish(conn)?;
        Ok(())
    }

    fn health_trends(&mut self, conn: &mut SqliteConnection, accounts: u64) -> QueryResult<()> {
        const COLUMNS: &[&str] = &[
            "account_id",
            "score",
            "trend",
            "details",
            "created_at",
            "marker",
        ];
        let mut batch = Batch::new("health_trends", COLUMNS);
        for account in 1..=accounts {
            for _ in 0..TRENDS_PER_ACCOUNT {
                let score = self.rng.gen_range(0.0..1.0_f64);
                let details = self.maybe(0.8, |g| {
                    json!({
                        "signals": {"usage": g.rng.gen_range(0..100), "tickets": g.rng.gen_range(0..20)},
                        "note": g.pick(&["steady", "renewal at risk ⚠️", "expanding 📈", "تحسن"]),
                    })
                    .to_string()
                });
                let (_, created_at) = self.timestamp();
                let row = vec![
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
        diesel::sql_query(
            "DELETE FROM health_trends WHERE id > (SELECT max(id) - ?1 FROM health_trends)",
        )
        .bind::<BigInt, _>(TRENDS_DELETED)
        .execute(conn)?;
        Ok(())
    }

    fn playbooks(
        &mut self,
        conn: &mut SqliteConnection,
        users: u64,
        kpis: &[String],
    ) -> QueryResult<()> {
        const COLUMNS: &[&str] = &[
            "name",
            "owner_user_id",
            "enabled",
            "triggers",
            "executions",
            "created_at",
            "marker",
        ];
        let n = PLAYBOOKS_PER_SCALE * self.scale;
        let mut batch = Batch::new("playbooks", COLUMNS);
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
            let (_, created_at) = self.timestamp();
            let row = vec![
                format!(
                    "Playbook {i}: {}",
                    self.pick(&["Onboarding", "Renewal", "تجديد", "オンボーディング"])
                )
                .into(),
                self.maybe(0.9, |g| g.rng.gen_range(1..=users.max(1)) as i64)
                    .into(),
                Param::Int(i64::from(self.rng.gen_bool(0.7))),
                triggers.into(),
                serde_json::Value::Array(executions).to_string().into(),
                created_at.into(),
                self.marker(),
            ];
            batch.push(conn, row)?;
        }
        batch.finish(conn)?;
        Ok(())
    }

    fn customer_config(&mut self, conn: &mut SqliteConnection) -> QueryResult<()> {
        const COLUMNS: &[&str] = &["key", "value", "updated_at", "created_at", "marker"];
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
        ];
        let mut batch = Batch::new("customer_config", COLUMNS);
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

    fn feature_toggles(&mut self, conn: &mut SqliteConnection) -> QueryResult<()> {
        const COLUMNS: &[&str] = &[
            "name",
            "enabled",
            "rollout_percent",
            "rules",
            "created_at",
            "marker",
        ];
        const NAMES: &[&str] = &[
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
        let mut batch = Batch::new("feature_toggles", COLUMNS);
        for name in NAMES {
            let rollout = self.maybe(0.6, |g| g.rng.gen_range(0.0..100.0_f64));
            let rules = self.maybe(0.5, |_| {
                json!({"plans": ["growth", "enterprise"], "countries": ["SA", "JP"]}).to_string()
            });
            let (_, created_at) = self.timestamp();
            let row = vec![
                (*name).into(),
                Param::Int(i64::from(self.rng.gen_bool(0.5))),
                rollout.into(),
                rules.into(),
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

/// A product's price follows from its id, so order lines can quote it
/// without a lookup.
fn product_price_cents(product_id: u64) -> i64 {
    ((product_id * 7_919) % 99_000 + 99) as i64
}

/// `units` scaled by 10^`places`, as decimal text: `decimal(1250, 2)` is `"12.50"`.
fn decimal(units: i64, places: u32) -> String {
    let scale = 10_i64.pow(places);
    let sign = if units < 0 { "-" } else { "" };
    let abs = units.unsigned_abs();
    let scale = scale.unsigned_abs();
    format!(
        "{sign}{}.{:0width$}",
        abs / scale,
        abs % scale,
        width = places as usize
    )
}

/// Milliseconds since the epoch as ISO-8601 UTC with milliseconds.
fn iso(ms: i64) -> String {
    let at: DateTime<Utc> = DateTime::UNIX_EPOCH + TimeDelta::milliseconds(ms);
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_their_scale() {
        assert_eq!(decimal(1250, 2), "12.50");
        assert_eq!(decimal(5, 2), "0.05");
        assert_eq!(decimal(-1, 6), "-0.000001");
    }

    #[test]
    fn timestamps_are_iso_8601_utc() {
        assert_eq!(iso(TIME_START_MS + 1), "2025-01-01T00:00:00.001Z");
    }
}
