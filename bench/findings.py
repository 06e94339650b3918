"""What bounds the missed targets: profiling done on this machine type, outside the timed run.

Kept as text next to the table so a reader of BENCHMARKS.md sees why, not only how much.
"""

FINDINGS = """\
## What bounds the dispatcher (profiled with py-spy and cProfile on the same machine)

- **One process is CPU-bound.** py-spy on `outbox drain` (SQLite, 20,000 rows, the default
  aiohttp sender on uvloop): about 250 µs of CPU per message in all, against about 110 µs per
  request for the ceiling's bare aiohttp loop. Of the samples: sending 42 % (aiohttp's own
  request/response machinery 31 %), the SQL threads 25 % (the ack 13 %, the claim 3 %, the
  rest SQLAlchemy's statement execution), settling and the domain transitions about 8 %,
  event-loop scheduling the rest. With nginx and PostgreSQL on the same two cores, that CPU,
  not the network or the database, is the limit; 0.85 × a bare client cannot be reached by a
  process that also claims, validates, signs and acks every message.
- **What was done about it.** The httpx layer cost as much CPU per POST as aiohttp's whole
  exchange (`bench.http_engines`: raw aiohttp about 2 × `HttpxMessageSender`), so the default
  sender is now `AiohttpMessageSender` (same port, same tests; `OUTBOX_HTTP_ENGINE=httpx`
  keeps the httpx one), which roughly doubled throughput; uvloop added 10-20 %. The
  pipeline (claims overlapping sends, acks batched every 500 rows or 20 ms) keeps the event
  loop busy rather than waiting on the database.
- **PostgreSQL ack.** A claim+ack cycle costs the server about as much CPU per row as the
  client (25-30 µs each, `bench.db_cycle`; "Database ceiling: where a claim+ack cycle goes"),
  and the server's CPU comes out of the same two cores as the dispatcher, which is why
  PostgreSQL runs below SQLite here.
- **Seed baseline on SQLite.** One row at a time is cheap on SQLite in WAL mode with
  `synchronous=NORMAL` (no fsync per commit) and a bare `http.client` connection to an nginx
  that answers in microseconds, so "8 × seed" cannot hold on loopback. Against real
  receivers (milliseconds per POST) the serial loop falls to 1/latency per second while the
  dispatcher keeps `concurrency` POSTs in flight; the PostgreSQL baseline (a commit round trip
  per row) already shows the gap.
- **Scale.** More worker processes than cores share the same two CPUs with nginx and
  PostgreSQL: 2 workers add some throughput, 4 add contention.

Not done yet: an ack as one set-based statement per batch (`UPDATE … FROM (VALUES …)`), and a
leaner row mapping on the claim path.

## HTTP engines (`python -m bench.http_engines`, issue 13 item 4)

CPU per request of this process (all threads, so the Rust clients' tokio threads count) and
requests/s against the same nginx, uvloop, concurrency 64, as ratios to raw aiohttp measured
in the same run. A run on the shared, heavily loaded 2-core machine (load average 15-25;
`--count 10000 --runs 2`) and a first one (`--count 20000 --runs 1`), CPU ratio / rate ratio:

| engine | CPU ÷ aiohttp | msgs/s ÷ aiohttp |
|---|---|---|
| pyreqwest 0.15 (reqwest/hyper, rustls) | 0.44 / 0.56 | 2.19 / 0.69 |
| rnet 2.4 (wreq/hyper, BoringSSL) | 0.69 / 0.75 | 2.03 / 1.58 |
| aiosonic 1.3 (pure Python) | 1.15 / 1.37 | 1.20 / 0.57 |
| our `AiohttpMessageSender` (signs, checks, bounds, deadline) | 2.28 / 1.62 | 0.39 / 0.45 |
| httpx on our aiohttp transport | 5.44 | 0.18 |

**Kept aiohttp.** The two Rust clients spend about half of aiohttp's CPU per request, but
neither can meet the delivery guarantees today: the SSRF check must run at connect time on
the address actually dialled (DNS rebinding), and neither exposes a resolver hook (pyreqwest
offers only static `resolve(domain, ip, port)` at client build time, rnet only a lookup
strategy), so a target's name would be checked once and dialled later by their own
resolver. Pinning a client per target host to addresses we resolved and checked (reqwest's
`resolve`, which keeps SNI and certificate checks on the name) could meet it, at the price of
a client per host and re-building on DNS changes: worth trying behind the `MessageSender`
port once the lean send path (item 3) has taken its share, since our own sender costs about
1.6-2.3 × a bare aiohttp request: its overhead is as large as what the engine could save.
aiosonic is no cheaper than aiohttp.

## The peer and `--processes` (scenario 9 and `5 scale: worker --processes 2`)

`make bench` runs pgqueuer (asyncpg pool driver, uvloop, drain mode, one aiohttp POST per job
with the same body and headers, the same nginx) at batch sizes 10, 32 and 64 and then
`outbox drain` on the same number of rows, and one `outbox worker --processes 2` against the
2-process HTTP ceiling. pgqueuer's two single-connection drivers do not get through a drain
with concurrent jobs (asyncpg: "another operation is in progress"; psycopg: its LISTEN
starves the queries, ~50 jobs/s), hence the pool driver.
"""
