"""What bounds the missed targets: profiling done on this machine type, outside the timed run.

Kept as text next to the table so a reader of BENCHMARKS.md sees why, not only how much.
"""

FINDINGS = """\
## What bounds the dispatcher (profiled with py-spy and cProfile on the same machine)

- **One event loop, CPU-bound.** py-spy on `outbox drain` (PostgreSQL, 30,000 rows): the main
  thread's event loop is busy 96 % of the time; the SQL threads spend most of theirs waiting
  on the database. The dispatcher spends more CPU per message than the ceiling's bare aiohttp
  loop, and with nginx and PostgreSQL on the same two cores that CPU is the limit, not the
  network or the database.
- **Where the loop's time goes** (share of main-loop samples): aiohttp doing the HTTP
  exchange 28 %; the httpx layer on top of it 18 % (`AsyncClient.send`: auth/redirect
  plumbing, and 9 % in `Cookies.extract_cookies`, which copies each request and response into
  urllib objects even though the jar keeps nothing); building the `httpx.Request` and its
  `Headers` 10 %; reading the response through httpx streams 6 %; the domain (build,
  validate, `mark_sent`, the attempt record) about 10 %; signing 2 %.
- **Measured per send with a no-op transport** (no network at all): `HttpxMessageSender.send`
  costs 183 µs of Python; `client.send` alone 94 µs against 33 µs for calling the transport
  directly; cookie extraction 19 µs. Bare aiohttp's whole request is about 180 µs of CPU here,
  so the httpx interface roughly doubles the CPU per POST: `bench.http_engines` shows the
  same, raw aiohttp about 2 × `HttpxMessageSender` over aiohttp.
- **PostgreSQL ack.** The database ceiling on PostgreSQL is bounded by the server, not the
  client (client CPU about 30 % of wall time): each ack is 500 single-row `UPDATE`s in a
  pipeline plus 500 history inserts, every row touching four indexes. Disabling the NOTIFY
  trigger on UPDATE changed nothing measurable. The server's CPU comes out of the same two
  cores as the dispatcher's event loop, which is why PostgreSQL runs below SQLite here.
- **Seed baseline on SQLite.** One row at a time is cheap on SQLite in WAL mode with
  `synchronous=NORMAL` (no fsync per commit) and a bare `http.client` connection to nginx: a
  few thousand rows/s, near the HTTP ceiling, so "8 × seed" cannot hold there on a loopback
  receiver that answers in microseconds. Against real receivers (milliseconds per POST) the
  serial loop falls to 1/latency per second while the dispatcher keeps `concurrency` POSTs in
  flight; the PostgreSQL baseline (a commit round trip per row) shows that gap already.
- **Scale.** More worker processes than cores share the same two CPUs with nginx and
  PostgreSQL: 2 or 4 workers cannot add CPU, they add contention.

Proposed, not made here (they touch the HTTP adapter still being finished and the SQL store):
send through the transport directly instead of `AsyncClient.send` (saves ~60 µs per message,
cookies included); build headers as a plain list instead of `httpx.Headers`; write an ack as
one `UPDATE … FROM (VALUES …)` statement on PostgreSQL instead of one statement per row.
"""
