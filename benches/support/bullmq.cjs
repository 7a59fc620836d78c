// BullMQ's side of `benches/queues.rs`: one round of the four bullmq-bench
// scenarios against one Redis server, printed as one JSON object on stdout:
// {"version": "...", "add": {"ops": n, "secs": s}, "bulk": ..., "worker": ...,
//  "concurrent": ...}.
//
//   NODE_PATH=<dir>/node_modules node bullmq.cjs <redis url> <jobs> <queue prefix>
//
// The benchmark installs BullMQ (a pinned version) into target/ with npm and
// runs this script once per round. Every job is removed when it completes,
// as the redis-state queue does; only the measured part of each scenario is
// timed (connections are made and queues filled before the clock starts).

'use strict';

const { Queue, Worker } = require('bullmq');
const IORedis = require('ioredis');

const [url, jobsArg, prefix] = process.argv.slice(2);
const jobs = Number(jobsArg);
if (!url || !Number.isInteger(jobs) || jobs <= 0 || !prefix) {
  console.error('usage: bullmq.cjs <redis url> <jobs> <queue prefix>');
  process.exit(2);
}

const BULK = 50;
const jobOptions = { removeOnComplete: true, removeOnFail: true };
const payload = (i) => ({ id: i, what: 'resize' });

function connection() {
  return new IORedis(url, { maxRetriesPerRequest: null });
}

function seconds(start) {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function withQueue(name, body) {
  const con = connection();
  const queue = new Queue(name, { connection: con, prefix });
  await queue.waitUntilReady();
  try {
    return await body(queue);
  } finally {
    await queue.obliterate({ force: true });
    await queue.close();
    await con.quit();
  }
}

async function fill(queue, n) {
  for (let i = 0; i < n; i += BULK) {
    const size = Math.min(BULK, n - i);
    await queue.addBulk(
      Array.from({ length: size }, (_, k) => ({ name: 'job', data: payload(i + k), opts: jobOptions })),
    );
  }
}

// Scenario 1: add one job at a time, each awaited.
function addOne() {
  return withQueue('add', async (queue) => {
    const start = process.hrtime.bigint();
    for (let i = 0; i < jobs; i++) {
      await queue.add('job', payload(i), jobOptions);
    }
    return { ops: jobs, secs: seconds(start) };
  });
}

// Scenario 2: bulk adds of 50 jobs.
function addBulk() {
  return withQueue('bulk', async (queue) => {
    const n = Math.ceil(jobs / BULK) * BULK;
    const start = process.hrtime.bigint();
    await fill(queue, n);
    return { ops: n, secs: seconds(start) };
  });
}

// Scenarios 3 and 4: a worker with `concurrency` processes `jobs` jobs that
// wait in the queue; timed from the worker's start to the last completion.
function processing(name, concurrency) {
  return withQueue(name, async (queue) => {
    await fill(queue, jobs);
    const con = connection();
    let done = 0;
    let finish;
    const finished = new Promise((resolve) => {
      finish = resolve;
    });
    const worker = new Worker(
      name,
      async (job) => job.data.id,
      { connection: con, prefix, concurrency, autorun: false },
    );
    worker.on('completed', () => {
      done += 1;
      if (done === jobs) {
        finish(process.hrtime.bigint());
      }
    });
    worker.on('failed', (job, err) => {
      console.error(`job ${job && job.id} failed: ${err}`);
      process.exit(1);
    });
    await worker.waitUntilReady();
    const start = process.hrtime.bigint();
    worker.run();
    const end = await finished;
    await worker.close();
    await con.quit();
    return { ops: jobs, secs: Number(end - start) / 1e9 };
  });
}

async function main() {
  const version = require('bullmq/package.json').version;
  const out = { version };
  out.add = await addOne();
  out.bulk = await addBulk();
  out.worker = await processing('worker', 1);
  out.concurrent = await processing('concurrent', 100);
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
