// The console's browser test: drives Debian's Chromium through
// playwright-core against a real `ferry serve` that tests/console.rs
// started, takes a screenshot of every page, and prints what it saw as one
// JSON document on stdout, which the Rust side checks against ferry's own
// data (the downloaded bundle against the stored one, byte for byte). Any
// step that does not happen fails the run with a message naming it.
//
// Environment (set by tests/console.rs): PLAYWRIGHT_CORE, CHROMIUM,
// FERRY_URL, CONSOLE_LINK, PLATFORM_TOKEN, OTHER_TENANT_WORKFLOW, SLOW_URL,
// SLOW_TOKEN, SLOW_WORKFLOW, SHOTS_DIR, DOWNLOAD_DIR.

const env = process.env;
const { chromium } = await import(env.PLAYWRIGHT_CORE);
const base = env.FERRY_URL;
const result = {};
const T = 60_000;

function check(cond, what) {
  if (!cond) throw new Error(`console test: ${what}`);
}

let stepName = "start";
const step = (name) => { stepName = name; process.stderr.write(`-- ${name}\n`); };

async function shot(page, name) {
  // Let toasts and progress settle into the picture the README shows.
  await page.screenshot({ path: `${env.SHOTS_DIR}/${name}.png`, fullPage: true });
}

async function statusIs(page, text, timeout = T) {
  await page.waitForFunction(
    (t) => document.querySelector("#wf-status")?.textContent.trim() === t,
    text,
    { timeout },
  );
}

const browser = await chromium.launch({
  executablePath: env.CHROMIUM,
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});

try {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => process.stderr.write(`page error: ${e.message}\n`));

  step("the root redirects to the console's sign-in");
  await page.goto(`${base}/`);
  await page.waitForSelector("#signin-form", { timeout: T });
  check(page.url().startsWith(`${base}/console/`), `root went to ${page.url()}`);
  await shot(page, "signin");

  step("sign in with the one-time link");
  await page.goto(env.CONSOLE_LINK);
  await page.waitForFunction(() => location.hash.startsWith("#/workflows"), null, { timeout: T });
  check(!page.url().includes("ticket="), "the ticket stays out of the address bar");
  const cookie = (await context.cookies()).find((c) => c.name === "ferry_session");
  check(cookie, "a session cookie is set");
  result.cookie = { httpOnly: cookie.httpOnly, sameSite: cookie.sameSite, secure: cookie.secure, path: cookie.path };
  check(await page.evaluate(() => !document.cookie.includes("ferry_session")), "the page's script cannot read the session");

  step("the same link does not sign in twice");
  {
    const other = await browser.newContext();
    const p2 = await other.newPage();
    await p2.goto(env.CONSOLE_LINK);
    await p2.waitForSelector(".error", { timeout: T });
    result.secondUse = (await p2.textContent(".error")).trim();
    await other.close();
  }

  step("export: the form lists the tenant's tables");
  await page.click('nav a[href="#/export"]');
  await page.waitForSelector("#export-form input[name=table]", { timeout: T });
  result.exportTables = await page.$$eval("#export-form input[name=table]", (els) => els.map((e) => e.value));
  await page.check("#assets");
  await shot(page, "export");
  await page.click("#export-submit");
  await page.waitForFunction(() => /^#\/workflows\/[0-9a-f-]+$/.test(location.hash), null, { timeout: T });
  result.exportId = page.url().split("#/workflows/")[1];

  step("export: completes, shows its metadata and downloads");
  await page.waitForSelector("#download", { timeout: T });
  await statusIs(page, "completed");
  await page.waitForSelector(".toast", { timeout: T }).catch(() => {});
  result.exportChecksum = (await page.textContent("#bundle-checksum")).trim();
  result.exportFileName = (await page.textContent("#bundle-file")).trim();
  await shot(page, "export-completed");
  const [download] = await Promise.all([page.waitForEvent("download", { timeout: T }), page.click("#download")]);
  result.downloadName = download.suggestedFilename();
  result.downloadPath = `${env.DOWNLOAD_DIR}/${result.downloadName}`;
  await download.saveAs(result.downloadPath);

  step("workflows: newest first");
  await page.click('nav a[href="#/workflows"]');
  await page.waitForSelector("tbody tr td a", { timeout: T });
  result.firstListed = (await page.textContent("tbody tr td a")).trim();
  await shot(page, "workflows");

  step("rehydrate: upload the bundle");
  await page.click('nav a[href="#/rehydrate"]');
  await page.waitForSelector("#rehydrate-form", { timeout: T });
  await page.setInputFiles("#bundle", result.downloadPath);
  await page.selectOption("#mode", "replace");
  await shot(page, "rehydrate");
  await page.click("#rehydrate-submit");
  await page.waitForFunction(() => /^#\/workflows\/[0-9a-f-]+$/.test(location.hash), null, { timeout: T });
  result.rehydrateId = page.url().split("#/workflows/")[1];

  step("rehydrate: the preview, then the typed confirmation");
  await page.waitForSelector("#preview tbody tr", { timeout: T });
  await page.waitForSelector("#confirm", { timeout: T });
  result.previewTables = await page.$$eval("#preview tbody tr td:first-child", (els) => els.map((e) => e.textContent));
  await shot(page, "rehydrate-preview");
  await page.click("#confirm");
  await page.waitForSelector("#confirm-dialog[open]", { timeout: T });
  check(await page.isDisabled("#confirm-ok"), "Confirm is disabled until DELETE is typed");
  await page.fill("#confirm-input", "delete");
  check(await page.isDisabled("#confirm-ok"), "a lower-case 'delete' does not confirm");
  await page.fill("#confirm-input", "DELETE");
  check(!(await page.isDisabled("#confirm-ok")), "typing DELETE enables Confirm");
  await shot(page, "rehydrate-confirm");
  await page.click("#confirm-ok");
  await statusIs(page, "completed", 120_000);
  await page.waitForSelector("#rollback", { timeout: T });
  await shot(page, "rehydrate-completed");

  step("rehydrate: roll back to the backup");
  await page.click("#rollback");
  await page.waitForSelector("#confirm-dialog[open]", { timeout: T });
  await page.fill("#confirm-input", "DELETE");
  await page.click("#confirm-ok");
  await statusIs(page, "rolled back", 120_000);
  result.rolledBack = true;
  await shot(page, "rehydrate-rolled-back");

  step("another tenant's workflow is not found");
  await page.goto(`${base}/console/#/workflows/${env.OTHER_TENANT_WORKFLOW}`);
  await page.waitForSelector("h1", { timeout: T });
  await page.waitForFunction(() => document.querySelector("h1").textContent === "Workflow not found", null, { timeout: T });
  result.otherTenant = (await page.textContent(".error")).trim();

  step("a state change without the CSRF token is refused");
  result.noCsrf = await page.evaluate(async (id) => {
    const r = await fetch(`/api/v1/workflows/${id}/cancel`, { method: "POST" });
    return { status: r.status, body: await r.json() };
  }, result.exportId);
  result.badCsrf = await page.evaluate(async (id) => {
    const r = await fetch(`/api/v1/workflows/${id}/cancel`, { method: "POST", headers: { "X-CSRF-Token": "0".repeat(64) } });
    return { status: r.status, body: await r.json() };
  }, result.exportId);

  step("sign out, then sign in as a platform admin with a pasted token");
  await page.goto(`${base}/console/#/workflows`);
  await page.waitForSelector("#signout", { state: "visible", timeout: T });
  await page.click("#signout");
  await page.waitForSelector("#signin-form", { timeout: T });
  result.afterSignout = await page.evaluate(async () => (await fetch("/api/v1/workflows")).status);
  await page.fill("#token", env.PLATFORM_TOKEN);
  await page.click('#signin-form button[type="submit"]');
  await page.waitForFunction(() => location.hash.startsWith("#/workflows"), null, { timeout: T });
  await page.waitForSelector("tbody tr td a", { timeout: T });
  result.platformTenants = await page.$$eval("tbody tr td:nth-child(2)", (els) => [...new Set(els.map((e) => e.textContent))]);
  await shot(page, "platform-workflows");
  await page.click('nav a[href="#/admin/tenants"]');
  await page.waitForSelector("tbody tr td a", { timeout: T });
  await shot(page, "platform-tenants");
  await page.click('nav a[href="#/admin/audit"]');
  await page.waitForFunction(() => /chain (verified|broken)/.test(document.querySelector("#audit-state")?.textContent || ""), null, { timeout: T });
  result.auditState = (await page.textContent("#audit-state")).trim();
  await shot(page, "platform-audit");

  step("keyboard: Tab moves the focus, and the focus is visible");
  await page.goto(`${base}/console/#/workflows`);
  await page.waitForSelector("tbody tr", { timeout: T });
  await page.keyboard.press("Tab");
  result.firstTab = await page.evaluate(() => {
    const el = document.activeElement;
    return { text: el?.textContent?.trim(), outline: el ? getComputedStyle(el).outlineStyle : "none" };
  });
  await context.close();

  step("cancel a running workflow");
  const slow = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const sp = await slow.newPage();
  await sp.goto(`${env.SLOW_URL}/console/#/signin`);
  await sp.waitForSelector("#signin-form", { timeout: T });
  await sp.fill("#token", env.SLOW_TOKEN);
  await sp.click('#signin-form button[type="submit"]');
  await sp.waitForFunction(() => location.hash.startsWith("#/workflows"), null, { timeout: T });
  await sp.goto(`${env.SLOW_URL}/console/#/workflows/${env.SLOW_WORKFLOW}`);
  await statusIs(sp, "running");
  await sp.waitForSelector("#cancel", { timeout: T });
  await shot(sp, "workflow-running");
  await sp.click("#cancel");
  await statusIs(sp, "cancelled");
  result.cancelled = true;
  await slow.close();
} catch (e) {
  process.stderr.write(`failed at step "${stepName}": ${e.stack || e}\n`);
  process.exitCode = 1;
} finally {
  await browser.close();
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
