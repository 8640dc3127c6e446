// Drives the dashboard as a new operator would, in Debian's Chromium:
// overview → filter commands by status → a command's lineage → reprocess a
// failed one and see the new command appear. Prints TAP; exits 1 on failure.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const base = process.env.LOTE_URL;
const token = process.env.LOTE_TOKEN;
const shots = process.env.LOTE_SHOTS;
const profile = mkdtempSync(join(tmpdir(), 'lote-chromium-'));
let n = 0, failed = 0;

async function step(name, fn) {
  n++;
  try {
    await fn();
    console.log(`ok ${n} - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok ${n} - ${name}\n  # ${String(e.message).split('\n').join('\n  # ')}`);
  }
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', ],
});
const page = await browser.newPage({ viewport: { width: 1366, height: 800 } });
const errors = [];
page.on('pageerror', (e) => errors.push(String(e)));
page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
page.setDefaultTimeout(10000);

console.log('TAP version 13');
await step('the page asks for a token, then the login link signs in', async () => {
  await page.goto(base + '/');
  await page.locator('#token').waitFor();
  await page.goto(base + '/#token=' + encodeURIComponent(token));
  await page.getByTestId('count-error').waitFor();
  if (page.url().includes('token=')) throw new Error('the token stayed in the address bar: ' + page.url());
});

await step('the overview shows live counts, charts and types', async () => {
  await page.waitForFunction(() => document.querySelector('[data-testid="count-error"]').textContent === '2');
  const pending = await page.getByTestId('count-pending').textContent();
  if (pending !== '1') throw new Error('pending card says ' + pending);
  // uPlot, from web/package.json, embedded and served under /vendor/
  await page.waitForFunction(() => document.querySelectorAll('.chart .uplot canvas').length === 2);
  if (!(await page.locator('.chart .u-legend').first().textContent()).includes('success'))
    throw new Error('the throughput chart has no success series');
  await page.locator('table >> text=SendNewClassActivityEmail').first().waitFor();
  await page.waitForSelector('#live.on');
  await page.screenshot({ path: join(shots, 'overview.png'), fullPage: true });
});

await step('commands filtered by status, with the filter in the URL', async () => {
  await page.click('nav >> text=Commands');
  await page.locator('[data-testid="list"] tbody tr').first().waitFor();
  await page.selectOption('select[name="status"]', 'error');
  await page.click('form.filters button[type="submit"]');
  await page.waitForFunction(() => location.hash.includes('status=error'));
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="list"] tbody tr').length === 2);
  const ids = await page.$$eval('[data-testid="list"] tbody tr', (rs) => rs.map((r) => r.dataset.id));
  if (ids.join(',') !== '5,3') throw new Error('rows ' + ids);
  await page.screenshot({ path: join(shots, 'commands.png'), fullPage: true });
  // shareable: the same URL in a fresh load shows the same rows
  await page.reload();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="list"] tbody tr').length === 2);
});

await step("a command's lineage: event → command → batch → members and follow-up", async () => {
  await page.click('[data-testid="list"] tbody tr[data-id="3"] a >> nth=0');
  const tree = page.getByTestId('lineage');
  await tree.waitFor();
  const text = await tree.textContent();
  for (const want of ['#1 ClassActivityCreated', '#1 SendNewClassActivityEmails', '#3 SendNewClassActivityEmail',
                      '#4 SendNewClassActivityEmail', '#2 NotifyTeacherEmailsSent', 'then'])
    if (!text.includes(want)) throw new Error(`lineage lacks "${want}": ${text}`);
  if (await tree.locator('li.here').count() !== 1) throw new Error('the shown command is not marked');
  const payload = await page.getByTestId('payload').textContent();
  if (!payload.includes('"to": "ana@example.org"')) throw new Error('payload ' + payload);
  await page.screenshot({ path: join(shots, 'lineage.png'), fullPage: true });
});

await step('reprocess the failed command and see the new one appear', async () => {
  await page.getByTestId('reprocess').click();
  await page.waitForFunction(() => /^#\/commands\/\d+$/.test(location.hash) && location.hash !== '#/commands/3');
  const copy = page.url().split('/').pop();
  await page.locator('li.here >> text=reprocesses #3').waitFor();
  await page.goto(base + '/#/commands?status=pending');
  await page.locator(`[data-testid="list"] tbody tr[data-id="${copy}"]`).waitFor();
  await page.screenshot({ path: join(shots, 'reprocessed.png'), fullPage: true });
});

await step('errors grouped by message, one click reprocesses the group', async () => {
  await page.goto(base + '/#/errors');
  const row = page.locator('[data-testid="errors"] tbody tr').first();
  await row.waitFor();
  const text = await row.textContent();
  if (!text.includes('SMTP timeout after N')) throw new Error('group ' + text);
  await page.screenshot({ path: join(shots, 'errors.png'), fullPage: true });
  page.once('dialog', (d) => d.accept());
  await row.locator('button').click();
  await page.locator('#toast >> text=Reprocessed 1 commands').waitFor();
});

await step('batches with progress, and the audit log', async () => {
  await page.goto(base + '/#/batches');
  await page.locator('[data-testid="list"] .bar').first().waitFor();
  await page.screenshot({ path: join(shots, 'batches.png'), fullPage: true });
  await page.goto(base + '/#/audit');
  await page.locator('table >> text=command.reprocess').waitFor();
  await page.locator('table >> text=commands.reprocess').waitFor();
});

await step('no script errors on any page', async () => {
  if (errors.length) throw new Error(errors.join('\n'));
});

await browser.close();
rmSync(profile, { recursive: true, force: true });
console.log(`1..${n}`);
console.log(`${n - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
