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
- **PostgreSQL ack.** The database ceiling on PostgreSQL is bounded by the server, not the
  client (client CPU about 30 % of wall time): each ack is a pipeline of single-row `UPDATE`s
  plus history inserts, every row touching the table's indexes. The server's CPU comes out of
  the same two cores as the dispatcher, which is why PostgreSQL runs below SQLite here.
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
"""
