// The console in a real browser: Debian's Chromium, headless, driven by playwright-core,
// against the real `vigie` binary on 127.0.0.1 with a store filled through real sync
// (`vigie-bench demo`: simulated phones pushing the reference workload over /v1/sync).
//
// Run by scripts/test-browser.sh, which installs Chromium and the npm packages and builds the
// binaries. Screenshots go to $VIGIE_BROWSER_OUT (kept as test artifacts).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { chromium } from 'playwright-core';
import jsQR from 'jsqr';

const VIGIE = process.env.VIGIE_BIN;
const BENCH = process.env.VIGIE_BENCH_BIN;
const OUT = process.env.VIGIE_BROWSER_OUT || fs.mkdtempSync(path.join(os.tmpdir(), 'vigie-browser-'));
const LOGS = process.env.VIGIE_TEST_LOG_DIR;
fs.mkdirSync(OUT, { recursive: true });

let work, data, hub, url, context, supervisor, admin;
const contexts = [];

function vigie(...args) {
  return execFileSync(VIGIE, [...args, '--data', data], { env: { ...process.env, RUST_LOG: 'warn' } })
    .toString().trim();
}

async function startHub() {
  const log = fs.openSync(path.join(work, 'browser.hub.log'), 'a');
  hub = spawn(VIGIE, ['serve', '--data', data, '--listen', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', log],
    env: { ...process.env, RUST_LOG: 'info,vigie=debug,vigie_server=debug,vigie_core=debug,automerge=off' },
  });
  const line = await new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: hub.stdout });
    rl.once('line', resolve);
    hub.once('exit', () => reject(new Error('the hub exited')));
  });
  const found = line.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  assert.ok(found, `unexpected hub output: ${line}`);
  return found[1];
}

/// A fresh browser context: its own profile directory, French by default.
async function browser(locale = 'fr-FR') {
  const profile = fs.mkdtempSync(path.join(work, 'profile-'));
  const opened = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    locale,
    viewport: { width: 1280, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  contexts.push(opened);
  return opened;
}

/// Every request the page makes must stay on the hub.
function watchRequests(page) {
  const elsewhere = [];
  page.on('request', (r) => { if (!r.url().startsWith(url) && !r.url().startsWith('data:')) elsewhere.push(r.url()); });
  return elsewhere;
}

async function signIn(page, login, password) {
  await page.goto(`${url}/console/signin`);
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', password);
  await page.click('form button[type=submit]');
}

// A user of its own for a test, with a console sign-in chosen through an invitation: a test
// that locks or narrows an account keeps it away from the others' sign-ins.
async function newAccount(page, { name, role, area, login, password }) {
  const user = vigie('user', 'add', '--name', name, '--role', role, '--area', area);
  const link = vigie('console', 'invite', '--user', user, '--public-url', url);
  await page.goto(link);
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', password);
  await page.fill('input[name=again]', password);
  await page.click('form button[type=submit]');
  return user;
}

before(async () => {
  assert.ok(VIGIE && BENCH, 'VIGIE_BIN and VIGIE_BENCH_BIN name the binaries (scripts/test-browser.sh)');
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'vigie-console-'));
  data = path.join(work, 'hub');
  url = await startHub();
  const out = execFileSync(BENCH, ['demo', '--hub', url, '--data', data, '--scale', '0.03'], {
    env: { ...process.env, RUST_LOG: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'],
  }).toString();
  supervisor = out.match(/demo\.superviseur \/ (\S+)/)[1];
  admin = out.match(/demo\.admin \/ (\S+)/)[1];
  context = await browser();
});

after(async () => {
  // Every browser, those of a failed test included: an open one keeps the runner alive.
  for (const c of contexts) await c.close().catch(() => {});
  hub?.kill();
  if (LOGS) {
    fs.mkdirSync(LOGS, { recursive: true });
    fs.copyFileSync(path.join(work, 'browser.hub.log'), path.join(LOGS, 'browser.hub.log'));
  }
});

test('sign-in opens the console; the language switch and Accept-Language give English', async () => {
  const page = await context.newPage();
  const elsewhere = watchRequests(page);
  await page.goto(`${url}/console/cases`);
  assert.match(page.url(), /\/console\/signin\?next=/);
  assert.equal(await page.locator('html').getAttribute('lang'), 'fr');
  await page.fill('input[name=login]', 'demo.superviseur');
  await page.fill('input[name=password]', supervisor);
  await page.click('form button[type=submit]');
  assert.match(page.url(), /\/console\/cases$/);
  assert.ok(await page.locator('#cases tbody tr').count() > 0);
  await page.click('text=English');
  assert.equal(await page.locator('html').getAttribute('lang'), 'en');
  assert.equal(await page.locator('h1').textContent(), 'Child cases');
  await page.click('text=Français');
  assert.equal(await page.locator('h1').textContent(), "Cas d'enfants");
  assert.deepEqual(elsewhere, []);
  await page.close();
  const english = await browser('en-GB');
  const p = await english.newPage();
  await p.goto(`${url}/console/signin`);
  assert.equal(await p.locator('h1').textContent(), 'Sign in to the console');
  await english.close();
});

test('a wrong password is throttled', async () => {
  // An account of its own: the wait it ends with would refuse a later test's sign-in.
  const other = await browser();
  const page = await other.newPage();
  const password = 'le bon mot de passe';
  await newAccount(page, {
    name: 'Superviseur verrouillé', role: 'supervisor', area: 'CI-R2', login: 'sup.locked', password,
  });
  const attempt = async (typed) => {
    await signIn(page, 'sup.locked', typed);
    return page.locator('#signin-error').textContent();
  };
  for (let i = 0; i < 5; i++) {
    assert.match(await attempt('not the password'), /incorrect/);
  }
  // Past the free failures each one doubles the wait (1 s, 2 s, 4 s…), and a loaded machine
  // may take longer than the first waits to send the next sign-in: fail again once each wait
  // has run, until the hub asks for one that outlasts a sign-in many times over.
  let wait = 0;
  for (let i = 0; i < 12 && wait < 8; i++) {
    const error = await attempt('not the password');
    const throttled = error.match(/Trop de tentatives\. Réessayez dans (\d+) s/);
    if (!throttled) {
      assert.match(error, /incorrect/);
      continue;
    }
    wait = Number(throttled[1]);
    if (wait < 8) await new Promise((done) => setTimeout(done, (wait + 1) * 1000));
  }
  assert.ok(wait >= 8, `the wait grew to ${wait} s`);
  // The right password is refused while the wait runs.
  assert.match(await attempt(password), /Trop de tentatives/);
  assert.match(page.url(), /\/console\/signin$/);
  await other.close();
});

test('a form without its CSRF token is refused and changes nothing', async () => {
  const page = await context.newPage();
  await page.goto(`${url}/console/review`);
  const row = page.locator('#review-queue tbody tr').first();
  const visit = await row.getAttribute('data-visit');
  await row.locator('input[name=csrf]').evaluate((input) => input.remove());
  await row.locator('button[type=submit]').click();
  assert.match(await page.locator('.notice.error').textContent(), /expiré|expired/);
  await page.goto(`${url}/console/visits/${visit}`);
  assert.ok(await page.locator('#review-form').count() === 1, 'the visit is still to review');
  await page.close();
});

test('bad input in every form gets an inline error and changes nothing', async () => {
  const page = await context.newPage();
  // Review: returning without a comment.
  await page.goto(`${url}/console/review`);
  const visit = await page.locator('#review-queue tbody tr').first().getAttribute('data-visit');
  await page.goto(`${url}/console/visits/${visit}`);
  await page.click('#review-form button[value=return]');
  assert.ok(await page.locator('#review-error').isVisible());
  assert.ok(await page.locator('#review-form').count() === 1);
  // Overview and map: a period that ends before it starts.
  await page.goto(`${url}/console/?from=2026-05-01&until=2026-04-01`);
  assert.ok(await page.locator('#period-error').isVisible());
  await page.goto(`${url}/console/map?from=2026-13-01`);
  assert.ok(await page.locator('#map-error').isVisible());
  // A case's forms.
  await page.goto(`${url}/console/cases`);
  await page.locator('#cases tbody tr a').first().click();
  const casePath = new URL(page.url()).pathname;
  const history = await page.locator('#history tbody tr').count();
  await page.fill('#referral-form input[name=provider]', 'École');
  // On a phone's screen, the page that says what is wrong opens where it says it.
  await page.setViewportSize({ width: 360, height: 640 });
  await page.click('#referral-form button[type=submit]');
  assert.ok(await page.locator('#referral-error').isVisible(), 'no service chosen');
  const shown = await page.locator('#referral-error').boundingBox();
  assert.ok(shown.y >= 0 && shown.y + shown.height <= 640, `the error is on screen: ${JSON.stringify(shown)}`);
  // The focus is on it: a screen reader reads it at once.
  await page.waitForFunction(() => document.activeElement.id === 'referral-error', null, { timeout: 5000 });
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.click('#follow-up-form button[type=submit]');
  assert.ok(await page.locator('#follow-up-error').isVisible(), 'no situation chosen');
  await page.click('#erase-form button[type=submit]');
  assert.ok(await page.locator('#erase-error').isVisible(), 'no reason chosen');
  await page.goto(`${url}${casePath}`);
  assert.equal(await page.locator('#history tbody tr').count(), history, 'nothing was written');
  await page.close();
  // Administration: a user without areas, a device for nobody.
  const adminContext = await browser();
  const a = await adminContext.newPage();
  await signIn(a, 'demo.admin', admin);
  await a.goto(`${url}/console/users`);
  const users = await a.locator('#users tbody tr').count();
  await a.fill('#user-form input[name=name]', 'Nouvel agent');
  await a.selectOption('#user-form select[name=role]', 'community_monitor');
  await a.click('#user-form button[type=submit]');
  assert.ok(await a.locator('#user-error').isVisible());
  assert.equal(await a.locator('#users tbody tr').count(), users);
  await a.goto(`${url}/console/devices`);
  const devices = await a.locator('#devices tbody tr').count();
  // An administrator works in the console: no device is offered for one.
  const offered = await a.locator('#enrol-form select[name=user] option').allTextContents();
  assert.ok(offered.length > 1, 'field users are offered');
  assert.ok(!offered.some((name) => name.includes('Administrateur')), offered.join(', '));
  await a.click('#enrol-form button[type=submit]');
  assert.ok(await a.locator('#device-error').isVisible());
  assert.equal(await a.locator('#devices tbody tr').count(), devices);
  // Reference data: a file that is not a reference data file publishes nothing.
  await a.goto(`${url}/console/reference`);
  const versions = await a.locator('#reference tbody').textContent();
  await a.setInputFiles('#reference-form input[name=file]',
    { name: 'areas.json', mimeType: 'application/json', buffer: Buffer.from('{"key": "CI", "nothing": 1}') });
  await a.click('#reference-form button[type=submit]');
  assert.ok(await a.locator('#reference-error').isVisible());
  assert.equal(await a.locator('#reference tbody').textContent(), versions);
  await adminContext.close();
});

/// The token a QR code on the page holds, read from a screenshot as a phone's camera would.
async function scanQr(page) {
  const png = await page.locator('#qr svg').screenshot({ path: path.join(OUT, 'enrolment-qr.png') });
  // Decode the PNG's pixels in the browser itself (no image library needed here).
  const pixels = await page.evaluate(async (b64) => {
    const img = new Image();
    img.src = `data:image/png;base64,${b64}`;
    await img.decode();
    const canvas = document.createElement('canvas');
    canvas.width = img.width; canvas.height = img.height;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const d = ctx.getImageData(0, 0, img.width, img.height);
    return { width: d.width, height: d.height, data: Array.from(d.data) };
  }, png.toString('base64'));
  const code = jsQR(Uint8ClampedArray.from(pixels.data), pixels.width, pixels.height);
  assert.ok(code, 'the QR code decodes');
  return code.data;
}

test('a device enrolled in the console syncs with the token its QR code holds, and a visit validated in the console reaches it', async () => {
  // The supervisor picks a submitted visit; its visitor gets a new phone.
  const page = await context.newPage();
  await page.goto(`${url}/console/review`);
  const row = page.locator('#review-queue tbody tr').first();
  const visit = await row.getAttribute('data-visit');
  const visitor = (await row.locator('td').nth(3).textContent()).trim();
  const adminContext = await browser();
  const a = await adminContext.newPage();
  const elsewhere = watchRequests(a);
  await signIn(a, 'demo.admin', admin);
  await a.goto(`${url}/console/devices`);
  // Users are offered by name, role and areas (two staff of one name are told apart).
  const offeredAs = a.locator('#enrol-form select[name=user] option', { hasText: `${visitor} — ` });
  await a.selectOption('#enrol-form select[name=user]', await offeredAs.first().getAttribute('value'));
  await a.click('#enrol-form button[type=submit]');
  const token = await scanQr(a);
  assert.match(token, /^vgd1\./);
  assert.equal(token, (await a.locator('#token-text').textContent()).trim());
  assert.deepEqual(elsewhere, []);
  const store = path.join(work, 'phone.db');
  const phone = (record) => JSON.parse(execFileSync(BENCH,
    ['phone', '--hub', url, '--store', store, '--token', token, '--record', record],
    { env: { ...process.env, RUST_LOG: 'warn' } }).toString());
  const first = phone(visit);
  assert.ok(first.records > 0, 'the new phone received its user\'s records');
  assert.equal(first.record.status, 'submitted');
  // Validated in the console...
  await page.goto(`${url}/console/visits/${visit}`);
  await page.click('#review-form button[value=validate]');
  assert.match(await page.locator('#done').textContent(), /validée|validated/i);
  // ...validated on the phone after its sync.
  const second = phone(visit);
  assert.equal(second.record.status, 'validated');
  // The console's audit log has the enrolment and the validation, by id only.
  await a.goto(`${url}/console/audit`);
  const audit = await a.locator('#audit').textContent();
  assert.ok(audit.includes(visit));
  await adminContext.close();
  await page.close();
});

test('the charts and the map render', async () => {
  const page = await context.newPage();
  const elsewhere = watchRequests(page);
  await page.goto(`${url}/console/`);
  assert.equal(await page.locator('.breakdown svg.chart').count(), 6);
  assert.ok(await page.locator('.breakdown svg.chart rect').count() > 10);
  assert.notEqual((await page.locator('#kpis .kpi .value').first().textContent()).trim(), '0');
  await page.screenshot({ path: path.join(OUT, 'overview.png'), fullPage: true });
  await page.goto(`${url}/console/?shared=1`);
  await page.goto(`${url}/console/map?from=2025-01-01&until=2026-01-01`);
  // The places drawn, or one point per community past a few hundred; a table says the same.
  const circles = await page.locator('#map-svg circle').count();
  const communities = await page.locator('#map-table tbody tr').count();
  assert.ok(circles >= 5 && communities >= 5, `${circles} points, ${communities} communities`);
  assert.ok(circles <= 600, `${circles} points`);
  // Each point names what its colour shows, the map is no image of links, and the keyboard
  // can pass all its points at once.
  assert.equal(await page.locator('#map-svg').getAttribute('role'), 'group');
  const named = await page.locator('#map-svg a').first().getAttribute('aria-label');
  assert.ok(named && named.split(' · ').length >= 3, named);
  assert.ok(/alerte|travail|enfants|forme/i.test(named), named);
  assert.equal(await page.locator('a.skip-inline').getAttribute('href'), '#map-table');
  await page.screenshot({ path: path.join(OUT, 'map.png'), fullPage: true });
  // A 10-inch tablet, portrait: nothing wider than the screen.
  await page.setViewportSize({ width: 800, height: 1280 });
  await page.goto(`${url}/console/cases`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than a tablet`);
  // Nor is a word of a cell broken to fit a squeezed column ("Roki/a/Oua/ttar/a"): the
  // table scrolls sideways in its frame instead.
  const broken = await page.evaluate(() => {
    const ctx = document.createElement('canvas').getContext('2d');
    const found = [];
    for (const td of document.querySelectorAll('main table tbody td')) {
      const style = getComputedStyle(td);
      ctx.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
      const words = td.innerText.split(/\s+/).filter((w) => w.length > 0 && w.length < 30);
      const widest = Math.max(0, ...words.map((w) => ctx.measureText(w).width));
      const room = td.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
      if (widest > room + 2) found.push(`${td.innerText} (${widest.toFixed(0)} px in ${room} px)`);
    }
    return found.slice(0, 5);
  });
  assert.deepEqual(broken, []);
  await page.screenshot({ path: path.join(OUT, 'cases-tablet.png'), fullPage: true });
  assert.deepEqual(elsewhere, []);
  await page.close();
});

test('a supervisor of one region finds no record of another on any page, search, map or export', async () => {
  // A supervisor of region CI-R2, which has no record: every page of theirs is empty of CI-R1's.
  const other = await browser();
  const page = await other.newPage();
  await newAccount(page, {
    name: 'Superviseure R2', role: 'supervisor', area: 'CI-R2', login: 'sup.r2', password: 'un mot de passe long',
  });
  await signIn(page, 'sup.r2', 'un mot de passe long');
  // What region 1's supervisor sees, to look for.
  const mine = await context.newPage();
  await mine.goto(`${url}/console/cases`);
  const firstCase = mine.locator('#cases tbody tr').first();
  const name = (await firstCase.locator('td').nth(1).textContent()).trim();
  const caseHref = await firstCase.locator('a').getAttribute('href');
  await mine.close();
  const word = name.split(' ')[0];
  const paths = ['/console/', '/console/review', '/console/alerts', '/console/cases',
    `/console/cases?q=${encodeURIComponent(word)}`, '/console/cases?list=due', '/console/cases?list=overdue',
    '/console/map?from=2025-01-01&until=2026-01-01', '/console/quarantine'];
  for (const p of paths) {
    await page.goto(`${url}${p}`);
    const text = await page.locator('main').textContent();
    assert.ok(!text.includes(name), `${p} shows a child of region 1`);
  }
  await page.goto(`${url}/console/cases?q=${encodeURIComponent(word)}`);
  assert.ok(await page.locator('#no-cases').isVisible());
  await page.goto(`${url}/console/map?from=2025-01-01&until=2026-01-01`);
  assert.equal(await page.locator('#map-svg circle').count(), 0);
  const response = await page.goto(`${url}${caseHref}`);
  assert.equal(response.status(), 404);
  for (const table of ['workplaces', 'visits', 'child_cases', 'referrals', 'follow_ups']) {
    const body = await page.evaluate(async (u) => (await fetch(u)).text(),
      `${url}/console/exports/download?table=${table}&format=csv&personal=1`);
    assert.equal(body.trim().split('\n').length, 1, `${table}: a header and no row`);
  }
  await other.close();
});

/// How much wider than the window a page is, and which of its title, its values list `list`
/// (`#case-values`, `#visit-values`), that list's card and its terms and values clip what
/// they hold.
async function overflowOf(page, list) {
  return page.evaluate((list) => {
    const clipped = [];
    const values = document.querySelector(list);
    for (const el of [document.querySelector('main h1'), values.closest('section'), values, ...values.children]) {
      if (el.scrollWidth > el.clientWidth + 1) {
        clipped.push(`${el.tagName} ${el.scrollWidth}>${el.clientWidth}: ${el.textContent.slice(0, 40)}`);
      }
    }
    return { page: document.documentElement.scrollWidth - window.innerWidth, clipped };
  }, list);
}

test('long unbroken field text widens no page, and the values of a case or a visit are never clipped', async () => {
  const own = await browser();
  const page = await own.newPage();
  await signIn(page, 'demo.superviseur', supervisor);
  await page.goto(`${url}/console/cases`);
  const ordinary = await page.locator('#cases tbody tr').nth(1).locator('a').getAttribute('href');
  const hostile = await page.locator('#cases tbody tr').nth(2).locator('a').getAttribute('href');
  await page.goto(`${url}/console/review`);
  const queued = await page.locator('#review-queue tbody tr').last().getAttribute('data-visit');
  // A supervisor's phone writes a name of 120 characters without a space (the longest a name
  // may be: a longer one is refused), and findings of long words, as a phone may (nothing
  // bounds a word).
  const user = vigie('user', 'add', '--name', 'Superviseure (textes longs)', '--role', 'supervisor', '--area', 'CI-R1');
  const token = vigie('device', 'enrol', '--user', user);
  const store = path.join(work, 'long-texts.db');
  const phone = (...args) => JSON.parse(execFileSync(BENCH,
    ['phone', '--hub', url, '--store', store, '--token', token, ...args],
    { env: { ...process.env, RUST_LOG: 'warn' } }).toString());
  const set = (record, text) => phone('--record', record, '--set', text);
  assert.throws(() => set(hostile.split('/').pop(), `name=${'A'.repeat(121)}`));
  const name = 'A'.repeat(120);
  assert.equal(set(hostile.split('/').pop(), `name=${name}`).record.name, name);
  // A visit's content is its visitor's: the supervisor's phone records a visit of its own, at
  // the workplace of one in the review queue, with findings of long words, and submits it.
  // On two lines, as typed: the page keeps them.
  const findings = `${'Constat'.repeat(400)}\n${'https://example.org/'.repeat(100)} fin.`;
  const workplace = phone('--record', queued).record.workplace_id;
  const ownVisit = phone('--new-visit', workplace, '--set', `findings=${findings}`);
  assert.equal(ownVisit.record.findings, findings);
  const visit = ownVisit.id;
  await page.goto(`${url}/console/visits/${visit}`);
  const shown = await page.locator('#visit-values dd').last().innerText();
  assert.ok(shown.includes('\n'), 'the findings are shown on the lines they were typed on');

  for (const [width, height] of [[1280, 900], [800, 1280]]) {
    await page.setViewportSize({ width, height });
    for (const [where, list] of [[ordinary, '#case-values'], [hostile, '#case-values'],
      [`/console/visits/${visit}`, '#visit-values']]) {
      await page.goto(`${url}${where}`);
      const found = await overflowOf(page, list);
      assert.ok(found.page <= 0, `${where} at ${width} px: the page is ${found.page}px wider than the window`);
      assert.deepEqual(found.clipped, [], `${where} at ${width} px`);
      if (where === ordinary) await page.screenshot({ path: path.join(OUT, `case-${width}.png`) });
    }
    await page.goto(`${url}${hostile}`);
    assert.ok((await page.locator('main h1').textContent()).includes(name), 'the whole name is shown');
    await page.screenshot({ path: path.join(OUT, `case-long-name-${width}.png`), fullPage: false });
    // The list shows the name too.
    await page.goto(`${url}/console/cases`);
    const wider = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(wider <= 0, `the case list at ${width} px is ${wider}px wider than the window`);
  }
  await own.close();
});

test('the live case search answers what was typed last, and leaves the box and its focus alone', async () => {
  const own = await browser();
  const page = await own.newPage();
  await signIn(page, 'demo.superviseur', supervisor);
  await page.goto(`${url}/console/cases`);
  // Answers slowed as on a weak link: the first comes back while the rest is being typed.
  let searches = 0;
  await page.route('**/console/cases', async (route) => {
    if (route.request().method() === 'POST') {
      searches += 1;
      await new Promise((done) => setTimeout(done, 900));
    }
    await route.continue();
  });
  const box = page.locator('#case-q');
  const entries = await page.evaluate(() => history.length);
  await box.click();
  await box.pressSequentially('Ko', { delay: 40 });
  await page.waitForTimeout(500);
  await box.pressSequentially('né', { delay: 40 });
  await page.waitForTimeout(2500);
  assert.equal(await box.inputValue(), 'Koné', 'what was typed stays');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'case-q', 'the box keeps the focus');
  const names = await page.locator('#cases tbody tr td:nth-child(2)').allTextContents();
  assert.ok(names.length > 0 && names.every((n) => n.includes('Koné')), `the last search's answer: ${names}`);
  // The results are swapped inside a live region that stays, so that they are read out.
  assert.equal(await page.locator('#case-live').getAttribute('aria-live'), 'polite');
  assert.equal(await page.locator('#case-live > #case-results').count(), 1);
  // Sent by POST: the name typed is in no address, no history entry, no stored page.
  assert.ok(searches >= 1, 'the searches went by POST');
  assert.equal(new URL(page.url()).search, '', `the address: ${page.url()}`);
  assert.equal(await page.evaluate(() => history.length), entries, 'no history entry per search');
  const stored = await page.evaluate(() => JSON.stringify(Object.assign({}, localStorage)));
  assert.ok(!stored.includes('Koné'), 'nothing of the results is kept in the browser');
  await own.close();
});

test('at 375 px the lists scroll sideways in their frame: dates, links and badges stay whole', async () => {
  const own = await browser();
  const page = await own.newPage();
  await signIn(page, 'demo.superviseur', supervisor);
  await page.setViewportSize({ width: 375, height: 800 });
  for (const where of ['/console/alerts', '/console/review', '/console/cases', '/console/cases?list=due']) {
    await page.goto(`${url}${where}`);
    const found = await page.evaluate(() => {
      const broken = [];
      const cells = document.querySelectorAll('.table-wrap tbody tr:nth-child(-n+10) :is(td.date, td a, .badge)');
      for (const el of cells) {
        const range = document.createRange();
        range.selectNodeContents(el);
        const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
        const box = el.getBoundingClientRect();
        if (lines > 1 || box.width < box.height) broken.push(`${el.textContent} ${lines} lines, ${Math.round(box.width)}x${Math.round(box.height)}`);
      }
      return { cells: cells.length, broken, page: document.documentElement.scrollWidth - window.innerWidth };
    });
    assert.ok(found.cells > 0, `${where}: cells to look at`);
    assert.deepEqual(found.broken, [], where);
    assert.ok(found.page <= 0, `${where} at 375 px: the page is ${found.page}px wider than the window`);
    // A frame that scrolls takes the keyboard's focus, named (Safari gives it none by itself).
    const frames = await page.evaluate(() => [...document.querySelectorAll('.table-wrap')]
      .filter((f) => f.scrollWidth > f.clientWidth)
      .map((f) => [f.getAttribute('tabindex'), f.getAttribute('role'), f.getAttribute('aria-label')]));
    assert.ok(frames.length > 0, `${where}: a frame scrolls at 375 px`);
    for (const [tabindex, role, label] of frames) {
      assert.ok(tabindex === '0' && role === 'region' && label, `${where}: ${tabindex} ${role} ${label}`);
    }
    await page.screenshot({ path: path.join(OUT, `list-375-${where.replace(/\W+/g, '-')}.png`) });
  }
  // The live search's new results keep their frame's focus and name.
  await page.goto(`${url}/console/cases`);
  await page.locator('#case-q').pressSequentially('a', { delay: 40 });
  await page.waitForTimeout(1500);
  const searched = await page.evaluate(() => [...document.querySelectorAll('#case-results .table-wrap')]
    .filter((f) => f.scrollWidth > f.clientWidth)
    .map((f) => [f.getAttribute('tabindex'), f.getAttribute('aria-label')]));
  assert.ok(searched.length > 0, 'the searched list scrolls at 375 px');
  for (const [tabindex, label] of searched) {
    assert.ok(tabindex === '0' && label, `after a live search: ${tabindex} ${label}`);
  }
  await own.close();
});

test('at 375 px the charts\' labels are read at 9 px or more, the chart scrolling in its frame', async () => {
  const own = await browser();
  const page = await own.newPage();
  await signIn(page, 'demo.superviseur', supervisor);
  await page.setViewportSize({ width: 375, height: 800 });
  await page.goto(`${url}/console/`);
  const found = await page.evaluate(() => {
    const sizes = [...document.querySelectorAll('svg.chart')].map((svg) => {
      const text = svg.querySelector('text');
      return svg.getScreenCTM().a * parseFloat(getComputedStyle(text).fontSize);
    });
    return { sizes, page: document.documentElement.scrollWidth - window.innerWidth };
  });
  assert.equal(found.sizes.length, 6);
  for (const size of found.sizes) assert.ok(size >= 9, `chart text at ${size.toFixed(1)} px`);
  assert.ok(found.page <= 0, `the overview at 375 px is ${found.page}px wider than the window`);
  await page.screenshot({ path: path.join(OUT, 'overview-375.png'), fullPage: true });
  await own.close();
});

test('the first Tab reaches a link past the header to the page\'s content', async () => {
  const page = await context.newPage();
  await page.goto(`${url}/console/cases`);
  await page.keyboard.press('Tab');
  const skip = page.locator('a.skip');
  assert.equal(await page.evaluate(() => document.activeElement.className), 'skip');
  const box = await skip.boundingBox();
  assert.ok(box && box.x >= 0 && box.width > 0, `the focused link is on screen: ${JSON.stringify(box)}`);
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'main');
  // The next Tab is inside the content, not back in the header's links.
  await page.keyboard.press('Tab');
  assert.ok(await page.evaluate(() => document.querySelector('main').contains(document.activeElement)));
  await page.close();
});

test('a page on another port of the host cannot sign the browser in to its own account', async () => {
  // Someone with an account of their own, and a token the hub made, fetched for themselves.
  const own = await browser();
  await newAccount(await own.newPage(), {
    name: 'Superviseur (autre port)', role: 'supervisor', area: 'CI-R2', login: 'sup.planter', password: 'un autre mot de passe',
  });
  await own.close();
  const given = (await fetch(`${url}/console/signin`)).headers.get('set-cookie').match(/vigie_presession=([^;]+)/)[1];
  // Their page, on another port of 127.0.0.1, plants the cookie (cookies are not kept apart by
  // port, and it is the same site) and sends the sign-in form with its value.
  for (const value of ['tossed123', given]) {
    const planter = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html', 'set-cookie': `vigie_presession=${value}; Path=/console` });
      res.end(`<form id=f method=post action="${url}/console/signin"><input type=hidden name=csrf value="${value}">`
        + '<input type=hidden name=login value=sup.planter><input type=hidden name=password value="un autre mot de passe">'
        + '<input type=hidden name=next value="/console/cases"></form><script>setTimeout(() => f.submit(), 100)</script>');
    }).listen(0, '127.0.0.1');
    await new Promise((resolve) => planter.once('listening', resolve));
    const victim = await browser();
    try {
      const page = await victim.newPage();
      const posted = page.waitForResponse((r) => r.url() === `${url}/console/signin` && r.request().method() === 'POST');
      await page.goto(`http://127.0.0.1:${planter.address().port}/`);
      const answer = await posted;
      assert.equal(answer.status(), 403, `${value === given ? 'a token the hub made' : 'a made-up token'}`);
      await page.waitForLoadState();
      assert.match(await page.locator('#signin-error').textContent(), /expiré/);
      await page.goto(`${url}/console/cases`);
      assert.match(page.url(), /\/console\/signin/, 'signed in to no account');
    } finally {
      // An open server keeps the test runner alive.
      await victim.close();
      planter.close();
    }
  }
});
