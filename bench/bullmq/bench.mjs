// BullMQ-on-Redis baseline for ferry's engine benchmark (SPEC "Targets"):
// "20,000 workflows of 3 no-op steps over 100 tenants", Redis with
// `appendfsync always`. Run it through ./run.sh, which starts a private
// redis-server configured that way; this script refuses any other fsync
// policy unless --allow-any-fsync is given.
//
// Usage: node bench.mjs --port P [--host H] [--jobs 20000] [--tenants 100]
//                       [--mode steps|progress|flow] [--threads 1]
//                       [--submitters 64] [--preload] [--allow-any-fsync]
// Prints one JSON report on stdout (diagnostics go to stderr).
//
// How a "workflow of 3 steps, each durably recorded" is represented
// (--mode, default `steps`):
//
//  * steps (default): ONE BullMQ job per workflow whose processor runs the
//    3 no-op steps and, after each one, calls `job.updateData({step, ...})`.
//    This is BullMQ's own documented pattern for multi-step jobs ("Process
//    Step Jobs": save the next step in the job's data after every step so a
//    retried job resumes from the right step), i.e. exactly what a BullMQ
//    user writes to get a durable per-step checkpoint. Each updateData is
//    one Lua script (HSET of the job hash) whose reply, with
//    `appendfsync always`, comes only after the AOF is fsynced, so every
//    step transition is durable before the worker moves on, like ferry's
//    StepSucceeded events. Per workflow that is: add, moveToActive, 3 x
//    updateData, moveToFinished (completion) = 6 durable writes, against
//    ferry's Submitted/Started/3 x (StepStarted, StepSucceeded)/Completed.
//    It is the cheapest faithful equivalent, so it gives BullMQ its best
//    honest number, the one ferry must beat.
//  * progress: the same, but `job.updateProgress({step})` instead of
//    updateData. Progress is meant for display, not resumption, so it is
//    less faithful; it also XADDs an event to the queue's event stream,
//    so it is slightly more work. Kept for comparison.
//  * flow: each step is its own job, chained with FlowProducer (step3's
//    child is step2, whose child is step1; BullMQ's "step jobs with flows"
//    article). Most workflow-like (per-step retries and status), but 3 jobs
//    per workflow, each with its own activate/finish and parent
//    bookkeeping, so much more expensive. Also note that with it the
//    tenant's single slot runs *steps*, so several workflows of one tenant
//    can be open at once (ferry runs one workflow per tenant at a time).
//
// Per-tenant concurrency of 1: BullMQ's groups (per-group concurrency and
// rate limits) are BullMQ Pro only. The open-source way is one queue per
// tenant served by one Worker with `concurrency: 1` (a queue-wide
// `setGlobalConcurrency(1)` would be needed only with several workers per
// queue), so this runs T queues and T workers. --threads spreads the T
// workers over that many worker_threads (0: all in the main thread); the
// producer always runs in the main thread. The default, 1, keeps producer
// and consumers apart as a deployment would (an API process adding jobs, a
// worker process running them) and was the fastest setting on 2 cores
// (measured: 0 about 10% slower, 2 slower still).
//
// Submission mirrors ferry's engine-bench: jobs are added one at a time
// (no addBulk batching), job i to tenant i % T, from 64 concurrent
// submitters. Timing: wall clock from just before the first add to the
// last completion (the 'completed' event, emitted after moveToFinished is
// acknowledged, i.e. durable). Everything BullMQ keeps by default is kept
// (removeOnComplete is not set): completed jobs stay in Redis, as ferry's
// log keeps every event.

import { Worker as Thread, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import os from 'node:os';
import { readFileSync } from 'node:fs';
import { Queue, Worker, FlowProducer } from 'bullmq';
import IORedis from 'ioredis';

const require = createRequire(import.meta.url);
const STEPS = 3;
const now = () => performance.timeOrigin + performance.now(); // ms, comparable across threads
const queueName = (prefix, t) => `${prefix}-tenant-${t}`;
const log = (...a) => console.error('[bullmq-bench]', ...a);

function parseArgs(argv) {
  const o = {
    host: process.env.REDIS_HOST || '127.0.0.1',
    port: process.env.REDIS_PORT ? Number(process.env.REDIS_PORT) : undefined,
    jobs: 20000,
    tenants: 100,
    mode: 'steps',
    threads: 1,
    submitters: 64,
    allowAnyFsync: false,
    preload: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--host': o.host = next(); break;
      case '--port': o.port = Number(next()); break;
      case '--jobs': o.jobs = Number(next()); break;
      case '--tenants': o.tenants = Number(next()); break;
      case '--mode': o.mode = next(); break;
      case '--threads': o.threads = Number(next()); break;
      case '--submitters': o.submitters = Number(next()); break;
      case '--allow-any-fsync': o.allowAnyFsync = true; break;
      case '--preload': o.preload = true; break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  if (!o.port) throw new Error('--port (or REDIS_PORT) is required; use ./run.sh to get a private redis-server');
  if (!['steps', 'progress', 'flow'].includes(o.mode)) throw new Error(`--mode must be steps, progress or flow`);
  for (const k of ['jobs', 'tenants', 'submitters']) {
    if (!Number.isInteger(o[k]) || o[k] < 1) throw new Error(`--${k} must be a positive integer`);
  }
  if (!Number.isInteger(o.threads) || o.threads < 0) throw new Error('--threads must be >= 0');
  return o;
}

const connOpts = (o) => ({ host: o.host, port: o.port, maxRetriesPerRequest: null });

// ---------------------------------------------------------------- workers

function processorFor(mode) {
  if (mode === 'steps') {
    return async (job) => {
      // BullMQ's "process step jobs" pattern: resume from the saved step.
      let step = job.data.step ?? 0;
      const results = job.data.results ?? [];
      while (step < STEPS) {
        results.push(null); // the no-op step's output
        step += 1;
        await job.updateData({ ...job.data, step, results }); // durable checkpoint
      }
      return { steps: step };
    };
  }
  if (mode === 'progress') {
    return async (job) => {
      for (let step = 1; step <= STEPS; step++) {
        await job.updateProgress({ step }); // durable progress record
      }
      return { steps: STEPS };
    };
  }
  // flow: each job is one no-op step; its completion is the transition.
  return async (job) => ({ step: job.data.step });
}

// Starts one concurrency-1 Worker per tenant in `tenants`; calls onDone(ts)
// once `expected` workflows (top-level jobs) have completed.
async function startWorkers(o, prefix, tenants, expected, onDone) {
  const processor = processorFor(o.mode);
  const workers = [];
  let completed = 0;
  let failed = 0;
  for (const t of tenants) {
    const w = new Worker(queueName(prefix, t), processor, {
      connection: connOpts(o),
      concurrency: 1,
      autorun: !o.preload, // --preload: started by run() once all jobs are in
    });
    w.on('completed', (job) => {
      // In flow mode only the chain's last step (the root job) ends a workflow.
      if (o.mode === 'flow' && job.name !== `step${STEPS}`) return;
      completed += 1;
      if (completed === expected) onDone(now());
    });
    w.on('failed', (job, err) => {
      failed += 1;
      log(`job ${job?.id} of ${w.name} failed: ${err?.message}`);
    });
    w.on('error', (err) => log(`worker ${w.name} error: ${err?.message}`));
    workers.push(w);
  }
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  if (expected === 0 && !o.preload) onDone(now());
  const run = () => {
    for (const w of workers) w.run().catch((e) => log(`worker ${w.name} run: ${e?.message}`));
    if (expected === 0) onDone(now());
  };
  return { workers, failed: () => failed, run };
}

function tenantsOfThread(tenants, threads, k) {
  const mine = [];
  for (let t = k; t < tenants; t += threads) mine.push(t);
  return mine;
}

// Workflows that go to tenant t: jobs i with i % tenants == t.
const workflowsOf = (o, t) => Math.floor(o.jobs / o.tenants) + (t < o.jobs % o.tenants ? 1 : 0);

if (!isMainThread) {
  // A worker thread: serve its tenants, report when they are all done.
  const { o, prefix, tenants } = workerData;
  const expected = tenants.reduce((s, t) => s + workflowsOf(o, t), 0);
  const started = await startWorkers(o, prefix, tenants, expected, (ts) => {
    parentPort.postMessage({ type: 'done', ts });
  });
  parentPort.postMessage({ type: 'ready' });
  parentPort.on('message', async (m) => {
    if (m.type === 'run') started.run();
    if (m.type === 'close') {
      await Promise.all(started.workers.map((w) => w.close()));
      parentPort.postMessage({ type: 'closed', failed: started.failed() });
      parentPort.close();
    }
  });
} else {
  try {
    await main();
  } catch (e) {
    log(e?.stack || String(e));
    process.exit(1);
  }
}

// ------------------------------------------------------------------- main

// Busy and stolen CPU seconds of the whole machine so far, from /proc/stat
// (null elsewhere).
function busyCpuSeconds() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = f; // idle and iowait are not busy
    // USER_HZ is 100 on Linux. Steal: time the hypervisor gave to others.
    return { busy: (user + nice + system + irq + softirq) / 100, steal: (steal || 0) / 100 };
  } catch {
    return null;
  }
}

function parseInfo(text) {
  const out = {};
  for (const line of text.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const prefix = `ferrybench-${process.pid}-${Date.now()}`;
  const admin = new IORedis(connOpts(o));
  const [, appendfsync] = await admin.config('GET', 'appendfsync');
  const [, appendonly] = await admin.config('GET', 'appendonly');
  const [, dataDir] = await admin.config('GET', 'dir');
  const server = parseInfo(await admin.info('server'));
  if (!o.allowAnyFsync && (appendfsync !== 'always' || appendonly !== 'yes')) {
    throw new Error(`redis at ${o.host}:${o.port} has appendonly=${appendonly} appendfsync=${appendfsync}; ` +
      'the baseline needs appendonly yes + appendfsync always (use ./run.sh, or --allow-any-fsync)');
  }
  const dbsize0 = await admin.dbsize();
  if (dbsize0 !== 0) log(`warning: redis already holds ${dbsize0} keys`);

  // Workers (consumers).
  let doneTs = [];
  let closeWorkers;
  let runWorkers;
  let workerFailed = () => 0;
  const allTenants = [...Array(o.tenants).keys()];
  let allDone;
  const allDoneP = new Promise((r) => { allDone = r; });
  if (o.threads === 0) {
    const expected = o.jobs;
    const s = await startWorkers(o, prefix, allTenants, expected, (ts) => { doneTs.push(ts); allDone(); });
    closeWorkers = async () => { await Promise.all(s.workers.map((w) => w.close())); };
    workerFailed = s.failed;
    runWorkers = s.run;
  } else {
    const threads = [];
    let ready = 0;
    let readyAll;
    const readyP = new Promise((r) => { readyAll = r; });
    let failedSum = 0;
    const n = Math.min(o.threads, o.tenants);
    for (let k = 0; k < n; k++) {
      const th = new Thread(fileURLToPath(import.meta.url), {
        workerData: { o, prefix, tenants: tenantsOfThread(o.tenants, n, k) },
      });
      th.on('message', (m) => {
        if (m.type === 'ready' && ++ready === n) readyAll();
        if (m.type === 'done') { doneTs.push(m.ts); if (doneTs.length === n) allDone(); }
        if (m.type === 'closed') failedSum += m.failed;
      });
      th.on('error', (e) => { log(`thread ${k} error: ${e.stack || e}`); process.exit(1); });
      threads.push(th);
    }
    await readyP;
    closeWorkers = async () => {
      await Promise.all(threads.map((th) => new Promise((r) => { th.once('exit', r); th.postMessage({ type: 'close' }); })));
    };
    workerFailed = () => failedSum;
    runWorkers = () => threads.forEach((th) => th.postMessage({ type: 'run' }));
  }

  // Producer: one Queue per tenant on one shared connection (BullMQ's advice
  // is to reuse connections for queues); FlowProducer for --mode flow.
  const prodConn = new IORedis(connOpts(o));
  const queues = allTenants.map((t) => new Queue(queueName(prefix, t), { connection: prodConn }));
  const flow = o.mode === 'flow' ? new FlowProducer({ connection: prodConn }) : null;
  await Promise.all(queues.map((q) => q.waitUntilReady()));

  const addOne = (i) => {
    const t = i % o.tenants;
    if (flow) {
      // step3 <- step2 <- step1: the deepest child runs first.
      let node = null;
      for (let s = 1; s <= STEPS; s++) {
        node = { name: `step${s}`, queueName: queueName(prefix, t), data: { tenant: t, wf: i, step: s }, ...(node ? { children: [node] } : {}) };
      }
      return flow.add(node);
    }
    return queues[t].add('workflow', { tenant: t, wf: i, step: 0 });
  };

  const redisStats0 = parseInfo(await admin.info('all'));
  const loadavg0 = os.loadavg().map((x) => Number(x.toFixed(2)));
  const machineCpu0 = busyCpuSeconds();
  const cpuMain0 = process.cpuUsage();
  const t0 = now();
  let nextJob = 0;
  await Promise.all([...Array(Math.min(o.submitters, o.jobs))].map(async () => {
    while (nextJob < o.jobs) {
      await addOne(nextJob++);
    }
  }));
  const tSubmitted = now();
  if (o.preload) runWorkers();
  await allDoneP;
  const tEnd = Math.max(...doneTs);
  const c = process.cpuUsage(cpuMain0);
  const mainCpuUs = c.user + c.system;
  const machineCpu1 = busyCpuSeconds();
  const redisStats1 = parseInfo(await admin.info('all'));

  await closeWorkers();
  await Promise.all(queues.map((q) => q.close()));
  if (flow) await flow.close();
  prodConn.disconnect();

  // Check what Redis holds: every workflow completed, nothing failed.
  const verifier = allTenants.map((t) => new Queue(queueName(prefix, t), { connection: admin }));
  const counts = { completed: 0, failed: 0, active: 0, waiting: 0, delayed: 0, 'waiting-children': 0 };
  for (const q of verifier) {
    const c = await q.getJobCounts('completed', 'failed', 'active', 'waiting', 'delayed', 'waiting-children');
    for (const k of Object.keys(counts)) counts[k] += c[k] ?? 0;
  }
  const jobsPerWorkflow = o.mode === 'flow' ? STEPS : 1;
  let sample = null;
  if (o.mode === 'steps') {
    const [j] = await verifier[0].getJobs(['completed'], 0, 0);
    sample = { data: j.data, returnvalue: j.returnvalue };
    if (j.data.step !== STEPS) throw new Error(`sample job's recorded step is ${j.data.step}`);
  }
  await Promise.all(verifier.map((q) => q.close()));
  const ok = counts.completed === o.jobs * jobsPerWorkflow && counts.failed === 0 && workerFailed() === 0;

  // Default: first add to last completion. --preload: only the drain, from
  // starting the (idle until then) workers to the last completion.
  const seconds = (tEnd - (o.preload ? tSubmitted : t0)) / 1000;
  const delta = (k) => Number(redisStats1[k] ?? 0) - Number(redisStats0[k] ?? 0);
  const redisCpu = delta('used_cpu_sys') + delta('used_cpu_user');
  const calls = (info, cmd) => Number(/calls=(\d+)/.exec(info[`cmdstat_${cmd}`] ?? '')?.[1] ?? 0);
  const callsDelta = (cmd) => calls(redisStats1, cmd) - calls(redisStats0, cmd);
  const report = {
    jobs: o.jobs,
    tenants: o.tenants,
    seconds,
    jobsPerSecond: o.jobs / seconds,
    stepTransitionsPerSecond: (o.jobs * STEPS) / seconds,
    redis: {
      appendfsync,
      appendonly,
      version: server.redis_version,
      // Client round trips that ran a BullMQ Lua script, and all commands
      // (those run inside scripts included).
      scriptCalls: callsDelta('evalsha') + callsDelta('eval'),
      commandsProcessed: delta('total_commands_processed'),
      cpuSeconds: Number(redisCpu.toFixed(3)),
      aofBytes: Number(redisStats1.aof_current_size ?? 0),
      dir: dataDir,
      dirFilesystem: process.env.REDIS_DATA_FS || null, // set by run.sh
    },
    mode: o.mode,
    timing: o.preload ? 'drain only: all jobs added first (--preload)' : 'first add to last completion',
    stepsPerJob: STEPS,
    bullmqJobsPerWorkflow: jobsPerWorkflow,
    submitSeconds: (tSubmitted - t0) / 1000,
    submitters: o.submitters,
    workerThreads: o.threads,
    // process.cpuUsage() covers all of the process's threads.
    nodeCpuSeconds: Number((mainCpuUs / 1e6).toFixed(3)),
    // CPU time the whole machine spent during the run, less Node's and
    // Redis's: other load that competed with the benchmark (Linux only).
    otherCpuSeconds: machineCpu0 && machineCpu1
      ? Number((machineCpu1.busy - machineCpu0.busy - mainCpuUs / 1e6 - redisCpu).toFixed(3)) : null,
    stealCpuSeconds: machineCpu0 && machineCpu1 ? Number((machineCpu1.steal - machineCpu0.steal).toFixed(3)) : null,
    loadavgBefore: loadavg0,
    verified: { ok, ...counts, sample },
    versions: {
      bullmq: require('bullmq/package.json').version,
      ioredis: require('ioredis/package.json').version,
      node: process.version,
    },
    machine: { nproc: os.availableParallelism?.() ?? os.cpus().length, cpu: os.cpus()[0]?.model },
  };
  admin.disconnect();
  console.log(JSON.stringify(report, null, 2));
  if (!ok) {
    log('verification failed', counts);
    process.exit(2);
  }
  process.exit(0);
}
