// bench/summarize.mjs - raw.jsonl of bench/run.sh -> markdown tables: lote
// beside graphile-worker, pg-boss and pgbench, median (min-max) over the
// runs, and ratios of medians. Run with the Node of the peers' node_modules:
//   node bench/summarize.mjs RAW.jsonl [machine.txt] > summary.md
import fs from 'node:fs';

const [rawFile, machineFile, loadFile] = process.argv.slice(2);
if (!rawFile) { console.error('usage: summarize.mjs RAW.jsonl [machine.txt] [load.txt]'); process.exit(2); }
const recs = fs.readFileSync(rawFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const machine = machineFile && fs.existsSync(machineFile) ? fs.readFileSync(machineFile, 'utf8').trim() : '';

const median = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const fmt = (x) => (x == null ? '—' : Math.abs(x) >= 100 ? Math.round(x).toLocaleString('en-US') : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2));
const cell = (v) => (!v.length ? '—' : v.length === 1 ? `${fmt(v[0])} (1 run)` : `**${fmt(median(v))}** (${fmt(Math.min(...v))}–${fmt(Math.max(...v))})`);
const ratio = (a, b) => (a.length && b.length ? `${(median(a) / median(b)).toFixed(2)}×` : '—');
const out = [];
const p = (s = '') => out.push(s);

// A row: label, and a predicate picking its records.
const pick = (f, val = (r) => r.jobs_per_sec) => recs.filter(f).filter((r) => r.complete !== false && r.ok !== false).map(val);
const is = (peer, bench, extra = () => true) => (r) => r.peer === peer && r.bench === bench && extra(r);
const sync = [...new Set(recs.map((r) => r.synchronous_commit).filter(Boolean))].join(', ');
const runs = recs.filter((r) => r.peer === 'lote' && r.bench === 'enqueue-single').length;

p('# lote beside graphile-worker, pg-boss and raw PostgreSQL — one run');
p();
p(`From \`${rawFile.split('/').slice(-2).join('/')}\`: ${recs.length} measurements, ${recs[0]?.ts ?? '?'} … ${recs.at(-1)?.ts ?? '?'}, synchronous_commit ${sync}.`);
p('Cells: **median** (min–max) over the repetitions; ratios are ratios of medians. No-op handlers everywhere.');
if (machine) { p(); p('```'); p(machine); p('```'); }
// load.txt: "<time> <1-min load average> <step>" before each step
const loads = loadFile && fs.existsSync(loadFile)
  ? fs.readFileSync(loadFile, 'utf8').split('\n').filter(Boolean).map((l) => +l.split(' ')[1]).filter((x) => !Number.isNaN(x)) : [];
if (loads.length) { p(); p(`1-minute load average before each step (2 = both cores busy): median ${median(loads).toFixed(2)}, max ${Math.max(...loads).toFixed(2)} over ${loads.length} steps.`); }
p();

// ---- enqueue
const gwSingle = pick(is('graphile-worker', 'enqueue-single'));
const gwBulk = pick(is('graphile-worker', 'enqueue-bulk'));
p('## Enqueue (jobs/s), one client');
p();
p('| what | client | jobs/s | vs graphile-worker |');
p('|---|---|---|---|');
const enqRows = [
  ['lote: `lote.enqueue`, one per transaction', 'C, libpq prepared', is('lote', 'enqueue-single'), gwSingle],
  ['lote: `engine.enqueue` → `lote.enqueue`, one per transaction', 'node-pg (peer harness)', is('lote (engine.mjs)', 'enqueue-single'), gwSingle],
  ['graphile-worker: `addJob`, one per transaction', 'node-pg', is('graphile-worker', 'enqueue-single'), gwSingle],
  ['pg-boss: `send`, one per transaction', 'node-pg', is('pg-boss', 'enqueue-single'), gwSingle],
  ['pgbench: single-row INSERT, 1 per txn', 'pgbench -M prepared', is('pgbench', 'insert', (r) => r.clients === 1), gwSingle],
  ['lote: n × `lote.enqueue` in one statement (1 txn)', 'C, generate_series', is('lote', 'enqueue-bulk'), gwBulk],
  ['lote: raw `INSERT … SELECT` into lote.commands (1 txn)', 'C, generate_series', is('lote', 'enqueue-bulk-insert'), gwBulk],
  ['lote: `engine.enqueue_many(jsonb[])` (1 statement)', 'node-pg (peer harness)', is('lote (engine.mjs)', 'enqueue-bulk'), gwBulk],
  ['graphile-worker: `addJobs` (1 call, 1 txn)', 'node-pg', is('graphile-worker', 'enqueue-bulk'), gwBulk],
  ['pg-boss: `insert` (1 call, 1 txn)', 'node-pg', is('pg-boss', 'enqueue-bulk'), gwBulk],
  ['pgbench: 100-row INSERT … SELECT per txn', 'pgbench -M prepared', is('pgbench', 'insert100', (r) => r.clients === 1), gwBulk],
];
for (const [what, client, f, base] of enqRows) { const v = pick(f); if (v.length) p(`| ${what} | ${client} | ${cell(v)} | ${ratio(v, base)} |`); }
p();

// ---- drain
const gw1 = pick(is('graphile-worker', 'drain', (r) => r.procs === 1 && r.localQueue > 0));
const gw2 = pick(is('graphile-worker', 'drain', (r) => r.procs === 2 && r.localQueue > 0));
const gwBest = gw1.length && gw2.length ? (median(gw1) >= median(gw2) ? gw1 : gw2) : (gw1.length ? gw1 : gw2);
const boss = pick(is('pg-boss', 'drain'));
p('## Drain (jobs/s): N no-op commands queued and checkpointed, clock from worker start to nothing unfinished');
p();
p('| engine | configuration | jobs/s | vs best graphile-worker | vs pg-boss | engine CPU s |');
p('|---|---|---|---|---|---|');
const loteDrainCfgs = [...new Set(recs.filter(is('lote', 'drain')).map((r) => `${r.workers}x${r.batch}`))];
const drainRows = [];
for (const c of loteDrainCfgs) {
  const [w, b] = c.split('x').map(Number);
  drainRows.push([`lote (lote bench)`, `${w} worker processes × batch ${b}${w === 2 && b === 100 ? ' (engine defaults)' : ''}`, is('lote', 'drain', (r) => r.workers === w && r.batch === b)]);
}
for (const c of [...new Set(recs.filter(is('lote (engine.mjs)', 'drain')).map((r) => `${r.concurrency}x${r.batch}`))]) {
  const [w, b] = c.split('x').map(Number);
  drainRows.push(['lote (peer harness)', `${w} worker processes × batch ${b}, READY/GO/HANDLED protocol`, is('lote (engine.mjs)', 'drain', (r) => r.concurrency === w && r.batch === b)]);
}
drainRows.push(['graphile-worker 0.18', '1 proc × concurrency 24, localQueue 500', is('graphile-worker', 'drain', (r) => r.procs === 1 && r.localQueue > 0)]);
drainRows.push(['graphile-worker 0.18', '2 procs × concurrency 24, localQueue 500', is('graphile-worker', 'drain', (r) => r.procs === 2 && r.localQueue > 0)]);
drainRows.push(['pg-boss 12', 'batchSize 500 × localConcurrency 8, burstWhenBatchFull', is('pg-boss', 'drain')]);
for (const [who, cfg, f] of drainRows) {
  const v = pick(f); if (!v.length) continue;
  const cpu = recs.filter(f).map((r) => r.engine_cpu_seconds).filter((x) => x != null);
  const capped = recs.filter(f).filter((r) => r.complete === false).length;
  p(`| ${who} | ${cfg}${capped ? ` (${capped} run(s) incomplete, excluded)` : ''} | ${cell(v)} | ${ratio(v, gwBest)} | ${ratio(v, boss)} | ${cpu.length ? fmt(median(cpu)) : '—'} |`);
}
for (const [what, c, bench] of [['claim 1 → commit, DELETE → commit', 1, 'lifecycle_2tx_delete'], ['claim 100 → commit, DELETE 100 → commit', 1, 'batch100_delete'], ['claim 100 → commit, DELETE 100 → commit', 4, 'batch100_delete'], ['claim 100 + UPDATE 100 done, 1 txn (rows kept)', 1, 'atomic100_group'], ['claim 100 + UPDATE 100 done, 1 txn (rows kept)', 4, 'atomic100_group']]) {
  const v = pick(is('pgbench', bench, (r) => r.clients === c)); if (v.length) p(`| pgbench (ceiling) | ${what}, ${c} client${c > 1 ? 's' : ''} | ${cell(v)} | ${ratio(v, gwBest)} | ${ratio(v, boss)} | — |`);
}
p();
// paired per-rep ratios: runs are interleaved, so the k-th run of each case is from rep k
const loteBest = loteDrainCfgs.map((c) => { const [w, b] = c.split('x').map(Number); return pick(is('lote', 'drain', (r) => r.workers === w && r.batch === b)); })
  .filter((v) => v.length).sort((a, b) => median(b) - median(a))[0] ?? [];
if (loteBest.length && gwBest.length) {
  const k = Math.min(loteBest.length, gwBest.length);
  const per = Array.from({ length: k }, (_, i) => (loteBest[i] / gwBest[i]).toFixed(2));
  p(`Best lote configuration against the best graphile-worker configuration, per repetition (paired, same minute): ${per.join(', ')}; ratio of medians ${ratio(loteBest, gwBest)}.`);
  p(`Issue 8 target (drain ≥ 1.5× the best tuned graphile-worker): ${median(loteBest) / median(gwBest) >= 1.5 ? '**met**' : '**not met yet**'}.`);
  p();
}

// ---- latency
p('## Latency at low load (ms): 20 commands/s, each in its own transaction, LISTEN/NOTIFY wake-up');
p();
p('`commit→start`: handler start − the moment the enqueue\'s COMMIT returned; `call→start`: from just before the enqueue call. Each cell: median over runs of the per-run percentile (min–max).');
p();
p('| engine | worker configuration | commit→start p50 | p95 | p99 | call→start p50 | call→start p99 | p50 vs graphile tuned |');
p('|---|---|---|---|---|---|---|---|');
const latOf = (f, k, q) => recs.filter(f).map((r) => r[k]?.[q]).filter((x) => x != null);
const gwTuned = is('graphile-worker', 'latency', (r) => r.config === 'tuned');
const latRows = [
  ['lote (lote bench)', 'engine defaults: 2 worker processes, batch 100', is('lote', 'latency')],
  ['lote (peer harness)', '2 worker processes, batch 100', is('lote (engine.mjs)', 'latency')],
  ['graphile-worker', 'tuned: concurrency 24, localQueue 500', gwTuned],
  ['graphile-worker', 'default: concurrency 1', is('graphile-worker', 'latency', (r) => r.config === 'default')],
  ['pg-boss', 'default work() (batchSize 1), notify', is('pg-boss', 'latency', (r) => r.config === 'default')],
  ['pg-boss', 'tuned: batchSize 100, localConcurrency 4, notify', is('pg-boss', 'latency', (r) => r.config === 'tuned')],
];
for (const [who, cfg, f] of latRows) {
  if (!recs.some(f)) continue;
  const c = (q) => cell(latOf(f, 'commit_to_start_ms', q));
  const s = (q) => cell(latOf(f, 'enqueue_call_to_start_ms', q));
  p(`| ${who} | ${cfg} | ${c('p50')} | ${c('p95')} | ${c('p99')} | ${s('p50')} | ${s('p99')} | ${ratio(latOf(f, 'commit_to_start_ms', 'p50'), latOf(gwTuned, 'commit_to_start_ms', 'p50'))} |`);
}
p();
const failed = recs.filter((r) => r.complete === false || r.ok === false);
if (failed.length) { p(`Excluded (incomplete or failed): ${failed.map((r) => `${r.peer} ${r.bench}`).join('; ')}.`); p(); }
p(`Repetitions: ${runs} (runs of lote bench enqueue).`);
process.stdout.write(out.join('\n') + '\n');
