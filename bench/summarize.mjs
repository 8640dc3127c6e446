// bench/summarize.mjs - raw.jsonl of bench/run.sh -> markdown tables: lote
// beside graphile-worker, pg-boss and pgbench, median (min-max) over the
// runs, ratios of medians, issue 8's targets (met / not met), the cost of
// each engine; and, with a fourth argument, the data of the chart
// (bench/chart.gp). Run with the Node of the peers' node_modules (any Node):
//   node bench/summarize.mjs RAW.jsonl [machine.txt] [load.txt] [chart.dat] > summary.md
// Any record may be missing (a failed step, a quick run): its row is left
// out, and a target without its records reads "not measured".
import fs from 'node:fs';

const [rawFile, machineFile, loadFile, chartFile] = process.argv.slice(2);
if (!rawFile) { console.error('usage: summarize.mjs RAW.jsonl [machine.txt] [load.txt] [chart.dat]'); process.exit(2); }
const recs = fs.readFileSync(rawFile, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
// Runs before the bench binary named them apart: the plain drains inside
// `lote bench batch` (N 100 000) were "drain" records too. They are not
// the drain step's figures.
{
  const n0 = recs.find((r) => r.peer === 'lote' && r.bench === 'drain')?.n;
  for (const r of recs) if (r.peer === 'lote' && r.bench === 'drain' && r.n !== n0) r.bench = 'drain-plain';
}
const machine = machineFile && fs.existsSync(machineFile) ? fs.readFileSync(machineFile, 'utf8').trim() : '';

const median = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const med = (a) => (a.length ? median(a) : null);
const fmt = (x) => (x == null ? '—' : Math.abs(x) >= 100 ? Math.round(x).toLocaleString('en-US') : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2));
const cell = (v) => (!v.length ? '—' : v.length === 1 ? `${fmt(v[0])} (1 run)` : `**${fmt(median(v))}** (${fmt(Math.min(...v))}–${fmt(Math.max(...v))})`);
const ratio = (a, b) => (a.length && b.length ? `${(median(a) / median(b)).toFixed(2)}×` : '—');
const out = [];
const p = (s = '') => out.push(s);

// A row: label, and a predicate picking its records.
const good = (r) => r.complete !== false && r.ok !== false;
const pick = (f, val = (r) => r.jobs_per_sec) => recs.filter(f).filter(good).map(val).filter((x) => x != null);
const is = (peer, bench, extra = () => true) => (r) => r.peer === peer && r.bench === bench && extra(r);
const sync = [...new Set(recs.map((r) => r.synchronous_commit).filter(Boolean))].join(', ');
const runs = recs.filter((r) => r.peer === 'lote' && r.bench === 'enqueue-single').length;
const times = recs.map((r) => r.ts).filter(Boolean).sort();

p('# lote beside graphile-worker, pg-boss and raw PostgreSQL — one run');
p();
p(`${recs.length} measurements, ${times[0] ?? '?'} … ${times.at(-1) ?? '?'}, synchronous_commit ${sync || '?'}.`);
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
  ['lote: `lote.enqueue_many`, all n in one call (1 txn)', 'C, array_agg of generate_series', is('lote', 'enqueue-bulk'), gwBulk],
  ['lote: `lote.enqueue_many` of 100, one call per transaction', 'C, array_agg of generate_series', is('lote', 'enqueue-many-100'), gwBulk],
  ['lote: raw `INSERT … SELECT` into lote.commands (1 txn)', 'C, generate_series', is('lote', 'enqueue-bulk-insert'), gwBulk],
  ['lote: `engine.enqueue_many(jsonb[])` (1 statement)', 'node-pg (peer harness)', is('lote (engine.mjs)', 'enqueue-bulk'), gwBulk],
  ['graphile-worker: `addJobs` (1 call, 1 txn)', 'node-pg', is('graphile-worker', 'enqueue-bulk'), gwBulk],
  ['pg-boss: `insert` (1 call, 1 txn)', 'node-pg', is('pg-boss', 'enqueue-bulk'), gwBulk],
  ['pgbench: 100-row INSERT … SELECT per txn', 'pgbench -M prepared', is('pgbench', 'insert100', (r) => r.clients === 1), gwBulk],
];
for (const [what, client, f, base] of enqRows) { const v = pick(f); if (v.length) p(`| ${what} | ${client} | ${cell(v)} | ${ratio(v, base)} |`); }
p();

// ---- drain
// lote bench drain records carry workers and batch (the most rows per
// claim; claims are sized adaptively up to it). The engine defaults are 2
// workers and claims up to 1000.
const DEF_W = 2, DEF_B = 1000;
const isDefault = (w, b) => w === DEF_W && b === DEF_B;
const gwCfg = (procs) => is('graphile-worker', 'drain', (r) => r.procs === procs && r.localQueue > 0);
const gw1 = pick(gwCfg(1));
const gw2 = pick(gwCfg(2));
const gwBestProcs = gw1.length && gw2.length ? (median(gw1) >= median(gw2) ? 1 : 2) : (gw1.length ? 1 : gw2.length ? 2 : null);
const gwBest = gwBestProcs === 1 ? gw1 : gwBestProcs === 2 ? gw2 : [];
const boss = pick(is('pg-boss', 'drain'));
const loteCfgs = [...new Set(recs.filter(is('lote', 'drain')).map((r) => `${r.workers}x${r.batch}`))]
  .map((c) => c.split('x').map(Number))
  .sort(([w1, b1], [w2, b2]) => (isDefault(w2, b2) - isDefault(w1, b1)) || w1 - w2 || b1 - b2);
const loteCfg = (w, b) => is('lote', 'drain', (r) => r.workers === w && r.batch === b);
const loteCfgLabel = (w, b) => `${w} worker process${w === 1 ? '' : 'es'}, claims up to ${b}${isDefault(w, b) ? ' (engine defaults)' : ''}`;
const loteShort = (w, b) => (isDefault(w, b) ? `engine defaults, ${w} workers` : `${w} workers, claims up to ${b}`);
const loteDrains = loteCfgs.map(([w, b]) => ({ w, b, v: pick(loteCfg(w, b)) })).filter((c) => c.v.length);
const loteBestCfg = [...loteDrains].sort((a, b) => median(b.v) - median(a.v))[0] ?? null;
const loteBest = loteBestCfg?.v ?? [];
const loteDef = pick(loteCfg(DEF_W, DEF_B));
const drainN = recs.find(is('lote', 'drain'))?.n ?? recs.find((r) => r.bench === 'drain')?.n;
const pgbDrain = (c) => pick(is('pgbench', 'batch100_delete', (r) => r.clients === c));

p('## Drain (jobs/s): N no-op commands queued and checkpointed, clock from worker start to the last outcome committed (lote bench: its engine counts outcomes after COMMIT and checks nothing is unfinished after the clock; the peers\' harness: polls until nothing is unfinished)');
p();
p('| engine | configuration | jobs/s | vs best graphile-worker | vs pg-boss | engine CPU s |');
p('|---|---|---|---|---|---|');
const drainRows = [];
for (const [w, b] of loteCfgs) drainRows.push(['lote (lote bench)', loteCfgLabel(w, b), loteCfg(w, b)]);
for (const c of [...new Set(recs.filter(is('lote (engine.mjs)', 'drain')).map((r) => `${r.concurrency}x${r.batch}`))]) {
  const [w, b] = c.split('x').map(Number);
  drainRows.push(['lote (peer harness)', `${w} worker processes, claims up to ${b}, READY/GO/HANDLED protocol`, is('lote (engine.mjs)', 'drain', (r) => r.concurrency === w && r.batch === b)]);
}
drainRows.push(['graphile-worker 0.18', '1 proc × concurrency 24, localQueue 500', gwCfg(1)]);
drainRows.push(['graphile-worker 0.18', '2 procs × concurrency 24, localQueue 500', gwCfg(2)]);
drainRows.push(['pg-boss 12', 'batchSize 500 × localConcurrency 8, burstWhenBatchFull', is('pg-boss', 'drain')]);
for (const [who, cfg, f] of drainRows) {
  const v = pick(f); if (!v.length) continue;
  const cpu = recs.filter(f).map((r) => r.engine_cpu_seconds).filter((x) => x != null);
  const capped = recs.filter(f).filter((r) => r.complete === false).length;
  p(`| ${who} | ${cfg}${capped ? ` (${capped} run(s) incomplete, excluded)` : ''} | ${cell(v)} | ${ratio(v, gwBest)} | ${ratio(v, boss)} | ${cpu.length ? fmt(median(cpu)) : '—'} |`);
}
const pgbDrainRows = [['claim 1 → commit, DELETE → commit', 'lifecycle_2tx_delete'], ['claim 100 → commit, DELETE 100 → commit', 'batch100_delete'], ['claim 100 + UPDATE 100 done, 1 txn (rows kept)', 'atomic100_group']];
for (const [what, bench] of pgbDrainRows) {
  for (const c of [...new Set(recs.filter(is('pgbench', bench)).map((r) => r.clients))].sort((a, b) => a - b)) {
    const v = pick(is('pgbench', bench, (r) => r.clients === c));
    if (v.length) p(`| pgbench (ceiling) | ${what}, ${c} client${c > 1 ? 's' : ''} | ${cell(v)} | ${ratio(v, gwBest)} | ${ratio(v, boss)} | — |`);
  }
}
p();
// paired per-rep ratios: runs are interleaved, so the k-th run of each case is from rep k
if (loteBest.length && gwBest.length) {
  const k = Math.min(loteBest.length, gwBest.length);
  const per = Array.from({ length: k }, (_, i) => (loteBest[i] / gwBest[i]).toFixed(2));
  p(`Best lote configuration (${loteShort(loteBestCfg.w, loteBestCfg.b)}) against the best graphile-worker configuration (${gwBestProcs} proc${gwBestProcs > 1 ? 's' : ''}), per repetition (paired, same minute): ${per.join(', ')}; ratio of medians ${ratio(loteBest, gwBest)}.`);
  p();
}

// ---- latency
const lat = (r, q) => r[`${q}_ms`] ?? r.commit_to_start_ms?.[q];
p('## Latency at low load (ms): 20 commands/s, each in its own transaction, LISTEN/NOTIFY wake-up');
p();
p('`commit→start`: handler start − the moment the enqueue\'s COMMIT returned; `call→start`: from just before the enqueue call. Each cell: median over runs of the per-run percentile (min–max).');
p();
p('| engine | worker configuration | commit→start p50 | p95 | p99 | call→start p50 | call→start p99 | p50 vs graphile tuned |');
p('|---|---|---|---|---|---|---|---|');
const latOf = (f, k, q) => recs.filter(f).filter(good).map((r) => r[k]?.[q]).filter((x) => x != null);
const loteLatCfg = recs.find(is('lote', 'latency'));
const loteLatLabel = loteLatCfg ? loteCfgLabel(loteLatCfg.workers, loteLatCfg.batch) : '';
const peerLat = [
  ['graphile-worker', 'tuned: concurrency 24, localQueue 500', is('graphile-worker', 'latency', (r) => r.config === 'tuned'), 'graphile tuned'],
  ['graphile-worker', 'default: concurrency 1', is('graphile-worker', 'latency', (r) => r.config === 'default'), 'graphile default'],
  ['pg-boss', 'default work() (batchSize 1), notify', is('pg-boss', 'latency', (r) => r.config === 'default'), 'pg-boss default'],
  ['pg-boss', 'tuned: batchSize 100, localConcurrency 4, notify', is('pg-boss', 'latency', (r) => r.config === 'tuned'), 'pg-boss tuned'],
];
const gwTuned = peerLat[0][2];
const loteLat = is('lote', 'latency');
const latRows = [
  ['lote (lote bench)', loteLatLabel, loteLat],
  ['lote (peer harness)', (() => { const m = /concurrency (\d+), batch (\d+)/.exec(recs.find(is('lote (engine.mjs)', 'latency'))?.config ?? ''); return m ? `${m[1]} worker processes, claims up to ${m[2]}` : 'lote bench worker'; })(), is('lote (engine.mjs)', 'latency')],
  ...peerLat,
];
for (const [who, cfg, f] of latRows) {
  if (!recs.some(f)) continue;
  const c = (q) => cell(latOf(f, 'commit_to_start_ms', q));
  const s = (q) => cell(latOf(f, 'enqueue_call_to_start_ms', q));
  p(`| ${who} | ${cfg} | ${c('p50')} | ${c('p95')} | ${c('p99')} | ${s('p50')} | ${s('p99')} | ${ratio(latOf(f, 'commit_to_start_ms', 'p50'), latOf(gwTuned, 'commit_to_start_ms', 'p50'))} |`);
}
p();

// ---- lote only: priority under a backlog, fan-out, batches at scale
const backlogRecs = recs.filter(is('lote', 'latency-backlog')).filter(good);
const backlogQ = (q) => backlogRecs.map((r) => lat(r, q)).filter((x) => x != null);
const fanRecs = recs.filter(is('lote', 'fanout'));
const batchRecs = recs.filter((r) => r.bench === 'batch-ratio');
if (backlogRecs.length || fanRecs.length || batchRecs.length) {
  p('## lote only: priority under a backlog, fan-out, batches at scale');
  p();
  p('| measurement | figure |');
  p('|---|---|');
  if (backlogRecs.length) {
    const b = backlogRecs[0];
    const how = [b.workers != null ? `${b.workers} workers` : null, b.priority != null ? `priority ${b.priority}` : null, b.busy_us != null ? `each backlog command works ${fmt(b.busy_us / 1000)} ms` : null].filter(Boolean).join(', ');
    p(`| a high-priority command at ${b.rate ?? '?'}/s for ${b.seconds ?? '?'} s under a backlog of ${fmt(b.backlog)}${how ? ` (${how})` : ''}: commit→start p50 / p95 / p99, ms | ${cell(backlogQ('p50'))} / ${cell(backlogQ('p95'))} / ${cell(backlogQ('p99'))} |`);
  }
  if (fanRecs.length) {
    const ok = fanRecs.filter(good);
    const f = fanRecs[0];
    const v = (k) => ok.map((r) => r[k]).filter((x) => x != null);
    const total = ok.map((r) => r.event_to_followup_committed_ms ?? (r.seconds != null ? r.seconds * 1000 : null)).filter((x) => x != null);
    p(`| one event → a batch of ${fmt(f.members)} members → its follow-up${f.workers ? `, ${f.workers} workers` : ''}${f.reps ? `, median of ${f.reps} runs` : ''}: event → follow-up committed, ms | ${cell(total)}${ok.length < fanRecs.length ? ` (${fanRecs.length - ok.length} incomplete)` : ''} |`);
    if (v('event_to_first_member_ms').length) p(`| … event → first member started, ms | ${cell(v('event_to_first_member_ms'))} |`);
    p(`| … members/s | ${cell(v('members_per_sec'))} |`);
  }
  if (batchRecs.length) {
    // one record per repetition (each the median of its own pairs)
    const r = batchRecs[0], v = (k) => batchRecs.map((x) => x[k]).filter((x) => x != null);
    const ratios = v('ratio').map((x) => 100 * x);
    p(`| batch of ${fmt(r.n)} members vs ${fmt(r.n)} plain commands, ${r.workers} workers, ${batchRecs.length} record(s) of ${r.reps} pair${r.reps > 1 ? 's' : ''} each: members/s | ${cell(v('batch_members_per_sec'))} |`);
    p(`| … plain commands/s | ${cell(v('plain_commands_per_sec'))} |`);
    p(`| … ratio, % (per record: ${ratios.map((x) => x.toFixed(0)).join(', ')}) | ${cell(ratios)} |`);
  }
  p();
}

// ---- cost
const costRecs = recs.filter((r) => r.bench === 'cost' && r.ok !== false);
const loteCpuRows = loteCfgs.filter(([w, b]) => recs.some((r) => loteCfg(w, b)(r) && (r.engine_cpu_us_per_command != null || r.engine_pss_kb != null)));
if (costRecs.length || loteCpuRows.length) {
  p('## Cost: CPU per job and memory');
  p();
}
if (costRecs.length) {
  p('Measured by `bench/cost.sh` around the whole drain step of N jobs, the same way for every engine: the client\'s process tree (harness or `lote bench`, the engine\'s processes, prefill of the N jobs included) for memory (largest summed PSS from `/proc/PID/smaps_rollup`, sampled every 100 ms) and CPU (`/usr/bin/time`, user + system of the tree); and the PostgreSQL server\'s CPU over the step (postmaster and all its children, from `/proc`), scratch-database setup included. Per job: divided by N. So these figures include more than the drain: creating the scratch database, the schema, the prefill of N jobs (each engine\'s own bulk enqueue), VACUUM ANALYZE and CHECKPOINT; compare them across engines, and compare lote\'s drain alone with the table after this one.');
  p();
  p('| engine | step | peak PSS, MiB | processes | client CPU µs/job | server CPU µs/job | total µs/job |');
  p('|---|---|---|---|---|---|---|');
  const keys = [...new Set(costRecs.map((r) => `${r.peer}\u0000${r.config}`))];
  for (const k of keys) {
    const [peer, config] = k.split('\u0000');
    const rs = costRecs.filter((r) => r.peer === peer && r.config === config);
    const v = (f) => rs.map(f).filter((x) => x != null && !Number.isNaN(x));
    const procs = v((r) => r.processes);
    p(`| ${peer} | ${config} | ${cell(v((r) => r.pss_kb / 1024))} | ${procs.length ? Math.max(...procs) : '—'} | ${cell(v((r) => r.client_cpu_us_per_job))} | ${cell(v((r) => r.server_cpu_us_per_job))} | ${cell(v((r) => (r.client_cpu_us_per_job == null || r.server_cpu_us_per_job == null ? null : r.client_cpu_us_per_job + r.server_cpu_us_per_job)))} |`);
  }
  p();
}
if (loteCpuRows.length) {
  p('lote\'s own figures, measured inside `lote bench drain` over the drain clock only (no prefill, no client): the engine\'s processes (rusage of the supervisor and its workers), the server (postmaster and children), and the PSS of supervisor + workers.');
  p();
  p('| lote configuration | engine CPU µs/command | server CPU µs/command | engine PSS, MiB | engine processes |');
  p('|---|---|---|---|---|');
  for (const [w, b] of loteCpuRows) {
    const rs = recs.filter(loteCfg(w, b)).filter(good);
    const v = (f) => rs.map(f).filter((x) => x != null);
    p(`| ${loteCfgLabel(w, b)} | ${cell(v((r) => r.engine_cpu_us_per_command))} | ${cell(v((r) => r.server_cpu_us_per_command))} | ${cell(v((r) => (r.engine_pss_kb == null ? null : r.engine_pss_kb / 1024)))} | ${v((r) => r.engine_processes).length ? Math.max(...v((r) => r.engine_processes)) : '—'} |`);
  }
  p();
}

// ---- issue 8 targets, from this run's medians
const T = [];
const target = (what, measured, needed, ok) => T.push([what, measured, needed, ok == null ? 'not measured' : ok ? '**met**' : '**not met**']);
const pct = (x) => `${(100 * x).toFixed(0)} %`;
{
  const ok = loteBest.length && gwBest.length ? median(loteBest) >= 1.5 * median(gwBest) : null;
  target(`Drain ${fmt(drainN)} queued: ≥ 1.5× the best tuned graphile-worker`,
    ok == null ? '—' : `lote ${fmt(median(loteBest))}/s (${loteShort(loteBestCfg.w, loteBestCfg.b)}) vs graphile-worker ${fmt(median(gwBest))}/s (${gwBestProcs} proc${gwBestProcs > 1 ? 's' : ''}): ${ratio(loteBest, gwBest)}`,
    '≥ 1.50×', ok);
}
{
  // same connection count: lote's W worker processes against pgbench at W clients
  const ws = [...new Set(loteDrains.map((c) => c.w))].filter((w) => pgbDrain(w).length).sort((a, b) => a - b);
  if (!ws.length) target('Drain: ≥ 90 % of pgbench batch100_delete at the same connection count', '—', '≥ 90 %', null);
  for (const w of ws) {
    const best = loteDrains.filter((c) => c.w === w).sort((a, b) => median(b.v) - median(a.v))[0];
    const r = median(best.v) / median(pgbDrain(w));
    target(`Drain: ≥ 90 % of pgbench batch100_delete at ${w} connection${w > 1 ? 's' : ''}`,
      `lote ${fmt(median(best.v))}/s (${loteShort(best.w, best.b)}) vs pgbench ${fmt(median(pgbDrain(w)))}/s, ${w} client${w > 1 ? 's' : ''}: ${pct(r)}`, '≥ 90 %', r >= 0.9);
  }
}
{
  const lp99 = latOf(loteLat, 'commit_to_start_ms', 'p99');
  const peers = peerLat.map(([, , f, short]) => ({ short, v: latOf(f, 'commit_to_start_ms', 'p99') })).filter((x) => x.v.length);
  const best = peers.sort((a, b) => median(a.v) - median(b.v))[0];
  const ok = lp99.length && best ? median(lp99) <= 0.5 * median(best.v) : null;
  target('Latency at 20/s: commit→start p99 ≤ ½ of the best peer\'s p99',
    ok == null ? '—' : `lote ${fmt(median(lp99))} ms vs ${best.short} ${fmt(median(best.v))} ms: ${ratio(lp99, best.v)}`, '≤ 0.50×', ok);
}
{
  const v = backlogQ('p99');
  const b = backlogRecs[0]?.backlog;
  target('High-priority command under a 50 000 backlog: p99 ≤ 50 ms',
    v.length ? `p99 ${fmt(median(v))} ms (backlog ${fmt(b)})` : '—', '≤ 50 ms', v.length ? median(v) <= 50 && (b == null || b >= 50000) : null);
}
{
  const l = pick(is('lote', 'enqueue-single')), g = pick(is('pgbench', 'insert', (r) => r.clients === 1));
  const ok = l.length && g.length ? median(l) >= 0.9 * median(g) : null;
  target('Enqueue one per transaction: ≥ 90 % of pgbench single-row INSERT, 1 client',
    ok == null ? '—' : `lote (C client) ${fmt(median(l))}/s vs pgbench ${fmt(median(g))}/s: ${pct(median(l) / median(g))}`, '≥ 90 %', ok);
}
{
  // the same shape as pgbench's insert100: 100 rows per statement and transaction
  const l = pick(is('lote', 'enqueue-many-100')), g = pick(is('pgbench', 'insert100', (r) => r.clients === 1));
  const one = pick(is('lote', 'enqueue-bulk'));
  const ok = l.length && g.length ? median(l) >= 0.9 * median(g) : null;
  target('Enqueue in bulk: ≥ 90 % of pgbench 100-row INSERT … SELECT, 1 client',
    ok == null ? '—' : `lote \`lote.enqueue_many\` of 100 per transaction ${fmt(median(l))}/s vs pgbench ${fmt(median(g))}/s: ${pct(median(l) / median(g))}${one.length ? ` (all ${fmt(median(one))}/s in one call)` : ''}`, '≥ 90 %', ok);
}
{
  const ok = fanRecs.length ? fanRecs.every(good) && fanRecs.every((r) => (r.members ?? 0) >= 1000) : null;
  const secs = fanRecs.filter(good).map((r) => r.seconds).filter((x) => x != null);
  target('Fan-out: one event → a 1 000-member batch → its follow-up, end to end',
    fanRecs.length ? `${fanRecs.filter(good).length} of ${fanRecs.length} run(s) complete${secs.length ? `, ${fmt(median(secs))} s` : ''}` : '—', 'completes', ok);
}
{
  const r = batchRecs.map((x) => x.ratio).filter((x) => x != null);
  target('100 000-member batch: ≥ 80 % of the plain drain rate',
    r.length ? `${pct(median(r))} (lote bench batch, ${batchRecs[0].workers} workers)` : '—', '≥ 80 %', r.length ? median(r) >= 0.8 : null);
}
target('Flat with scale: drain with 10 million archived rows within 10 % of an empty archive', 'not part of bench/run.sh', 'within 10 %', null);
{
  const v = recs.filter(is('lote', 'drain', (r) => r.workers === 8)).filter(good).map((r) => r.engine_pss_kb).filter((x) => x != null);
  target('Memory: supervisor + 8 workers ≤ 64 MiB total PSS',
    v.length ? `${fmt(median(v) / 1024)} MiB (lote bench drain, 8 workers)` : '—', '≤ 64 MiB', v.length ? median(v) <= 64 * 1024 : null);
}
{
  const peersCost = new Set(costRecs.map((r) => r.peer));
  const ok = costRecs.length ? peersCost.has('lote') && peersCost.size > 1 : null;
  target('Cost: CPU µs per command (daemon and PostgreSQL) and memory, for lote and peers',
    costRecs.length ? `cost records for ${[...peersCost].join(', ')} (table above)` : '—', 'reported', ok);
}
{
  const ok = loteDef.length && loteBest.length ? median(loteDef) >= 0.8 * median(loteBest) : null;
  target('Defaults fast: engine defaults within 20 % of the tuned best',
    ok == null ? '—' : `defaults ${fmt(median(loteDef))}/s vs best ${fmt(median(loteBest))}/s (${loteShort(loteBestCfg.w, loteBestCfg.b)}): ${pct(median(loteDef) / median(loteBest))}`, '≥ 80 %', ok);
}
p('## Issue 8 targets in this run');
p();
p('From the medians above; "not measured" when this run has no record for it (a failed step, or a step only full runs make).');
p();
p('| target | measured | needed | status |');
p('|---|---|---|---|');
for (const [what, m, n, s] of T) p(`| ${what} | ${m} | ${n} | ${s} |`);
p();

const failed = recs.filter((r) => r.complete === false || r.ok === false);
if (failed.length) { p(`Excluded (incomplete or failed): ${failed.map((r) => `${r.peer ?? 'lote'} ${r.bench}`).join('; ')}.`); p(); }
p(`Repetitions: ${runs} (runs of lote bench enqueue).`);
process.stdout.write(out.join('\n') + '\n');

// ---- chart data (bench/chart.gp): two gnuplot data blocks
//   index 0, drain:   "label" median min max
//   index 1, latency: "label" p50 p50min p50max p99 p99min p99max
if (chartFile) {
  const q = (s) => `"${s.replace(/"/g, "'")}"`;
  const row3 = (label, v) => `${q(label)} ${median(v).toFixed(1)} ${Math.min(...v).toFixed(1)} ${Math.max(...v).toFixed(1)}`;
  const drain = [];
  if (loteDef.length) drain.push(row3('lote\\ndefaults (2 w)', loteDef));
  if (loteBestCfg && !isDefault(loteBestCfg.w, loteBestCfg.b)) drain.push(row3(`lote best\\n(${loteBestCfg.w} w${loteBestCfg.b !== DEF_B ? ` × ${loteBestCfg.b}` : ''})`, loteBest));
  if (gw1.length) drain.push(row3('graphile\\n1 proc', gw1));
  if (gw2.length) drain.push(row3('graphile\\n2 procs', gw2));
  if (boss.length) drain.push(row3('pg-boss', boss));
  if (pgbDrain(2).length) drain.push(row3('pgbench\\nbatch100 (2 cl.)', pgbDrain(2)));
  const latency = [];
  const row6 = (label, p50, p99) => {
    if (!p50.length || !p99.length) return;
    const t = (v) => `${median(v).toFixed(3)} ${Math.min(...v).toFixed(3)} ${Math.max(...v).toFixed(3)}`;
    latency.push(`${q(label)} ${t(p50)} ${t(p99)}`);
  };
  row6('lote', latOf(loteLat, 'commit_to_start_ms', 'p50'), latOf(loteLat, 'commit_to_start_ms', 'p99'));
  for (const [, , f, short] of peerLat) row6(short.replace(' ', '\\n'), latOf(f, 'commit_to_start_ms', 'p50'), latOf(f, 'commit_to_start_ms', 'p99'));
  row6('lote, high prio.\\n50k backlog', backlogQ('p50'), backlogQ('p99'));
  const dat = ['# bench/summarize.mjs: drain jobs/s (label median min max)', ...drain, '', '',
    '# latency commit->start ms (label p50 p50min p50max p99 p99min p99max)', ...latency, ''];
  // gnuplot cannot draw an empty panel: no file then (run.sh says so)
  if (drain.length && latency.length) fs.writeFileSync(chartFile, dat.join('\n'));
  else { fs.rmSync(chartFile, { force: true }); console.error('summarize.mjs: no drain or no latency figures, no chart data'); }
}
