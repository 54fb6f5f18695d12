"""Catalogue search at scale: SQLite FTS5 and PostgreSQL full text, each beside a LIKE baseline.

Builds a synthetic catalogue of `--members` members (default 1,000) with
`--services` published methods in all (default 10,000), each subsystem
described in English and Khmer, with topics and data classes. Words follow
Zipf's law (weight 1/rank) over a vocabulary of 70 real English words then
2,000 generated ones, and 20 real Khmer words then 300 generated ones: the
commonest words are in nearly every service, most are rare, as in real text
(`--uniform`: the worst case, only the real words, each equally likely);
indexes it with `spean.gateway.catalogue.index` on each backend, and beside
it, in the same database, a plain table of the same texts. Then runs the
same query mix on both, in one run:

- index: `SearchIndex.search` (count and first page, ranked), the catalogue's
  own path;
- baseline: the same question as ``body LIKE '%word%'`` per word on the plain
  table (count and first page in catalogue order), what a catalogue without
  a full-text index would do.

The mix, cycled, its words drawn by the same law as the texts: one English
word, two English words, an English prefix, a Khmer word (found inside text
written without spaces), a Khmer word with a data-class filter, and a
ministry filter with a word. Reported per backend
and method: p50 and p95 in milliseconds over `--queries` queries (after a
warm-up of one round of the mix), and the baseline's p95 as a multiple of
the index's. The goal is p95 < 50 ms for the index on both backends.

    .venv/bin/python bench/catalogue_search.py [--members 1000] [--services 10000]
        [--queries 600] [--postgres URL | --no-postgres] [--uniform]
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import create_engine, text

from spean.gateway.catalogue.index import SearchIndex, open_index
from spean.gateway.catalogue.model import Catalogue, MemberEntry, ServiceEntry, SubsystemEntry
from spean.gateway.catalogue.search import SearchDocument, SearchQuery, documents, terms
from spean.gateway.catalogue.snippets import Snippets
from spean.gateway.catalogue_metadata import DATA_CLASSES, CatalogueMetadata, Contact, Text

ENGLISH = [
    "vehicle",
    "registry",
    "citizen",
    "identity",
    "health",
    "facility",
    "school",
    "tax",
    "land",
    "title",
    "business",
    "licence",
    "permit",
    "birth",
    "death",
    "marriage",
    "passport",
    "border",
    "customs",
    "import",
    "export",
    "pension",
    "social",
    "insurance",
    "hospital",
    "clinic",
    "vaccination",
    "statistics",
    "monthly",
    "report",
    "address",
    "household",
    "property",
    "water",
    "electricity",
    "road",
    "bridge",
    "farm",
    "crop",
    "fishery",
    "forest",
    "court",
    "case",
    "police",
    "election",
    "voter",
    "student",
    "teacher",
    "exam",
    "certificate",
    "budget",
    "payment",
    "invoice",
    "procurement",
]
# Khmer words (vehicle, registry, citizen, identity, health, school, tax, land, business,
# licence, birth, passport, customs, pension, hospital, statistics, report, road, farm, court).
KHMER = [
    "យានយន្ត",
    "បញ្ជី",
    "ពលរដ្ឋ",
    "អត្តសញ្ញាណ",
    "សុខាភិបាល",
    "សាលារៀន",
    "ពន្ធ",
    "ដីធ្លី",
    "អាជីវកម្ម",
    "អាជ្ញាប័ណ្ណ",
    "កំណើត",
    "លិខិតឆ្លងដែន",
    "គយ",
    "សោធននិវត្តន៍",
    "មន្ទីរពេទ្យ",
    "ស្ថិតិ",
    "របាយការណ៍",
    "ផ្លូវ",
    "កសិដ្ឋាន",
    "តុលាការ",
]
ENGLISH_SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ren",
    "tor",
    "vas",
    "pel",
    "dun",
    "sat",
    "ri",
    "on",
    "el",
    "ma",
    "ti",
    "bro",
    "gan",
    "fe",
    "su",
]
KHMER_CONSONANTS = "កខគឃងចឆជញដឋណតថទធនបផពភមយរលវសហឡអ"
KHMER_VOWELS = "ាិីឹុូួើៀេែៃោៅ"


class Words:
    """A vocabulary drawn by Zipf's law (weight 1/rank): the real words first, as the commonest,
    then generated ones, so that a few words are everywhere and most are rare, as in real text."""

    def __init__(self, real: Sequence[str], generated: Sequence[str], uniform: bool) -> None:
        self.words = list(dict.fromkeys([*real, *generated]))
        total, self.cumulative = 0.0, []
        for rank in range(1, len(self.words) + 1):
            total += 1.0 if uniform else 1.0 / rank
            self.cumulative.append(total)

    def draw(self, rng: random.Random, k: int) -> list[str]:
        return rng.choices(self.words, cum_weights=self.cumulative, k=k)


def _generated_english(count: int, rng: random.Random) -> list[str]:
    out: dict[str, None] = {}
    while len(out) < count:
        out["".join(rng.choices(ENGLISH_SYLLABLES, k=rng.randint(2, 3)))] = None
    return list(out)


def _generated_khmer(count: int, rng: random.Random) -> list[str]:
    out: dict[str, None] = {}
    while len(out) < count:
        syllables = [rng.choice(KHMER_CONSONANTS) + rng.choice(KHMER_VOWELS) for _ in range(2)]
        out["".join(syllables)] = None
    return list(out)


TOPICS = ("health", "transport", "identity", "education", "finance", "justice", "agriculture")


UNIFORM = False  # --uniform: the worst case, real words only, each equally likely


@functools.cache
def vocabularies(seed: int = 3) -> tuple[Words, Words]:
    rng = random.Random(seed)
    if UNIFORM:
        return Words(ENGLISH, (), True), Words(KHMER, (), True)
    english = Words(ENGLISH, _generated_english(2000, rng), False)
    return english, Words(KHMER, _generated_khmer(300, rng), False)


def synthetic_catalogue(members: int, services: int, seed: int = 7) -> Catalogue:
    rng = random.Random(seed)
    english, khmer = vocabularies()
    per_member = max(1, services // members)
    member_entries, subsystem_entries, service_entries = [], [], []
    now = dt.datetime.now(dt.UTC)
    for m in range(members):
        member_id = f"KH/GOV/M{m:04d}"
        name = f"Ministry {m:04d} of {english.draw(rng, 1)[0].title()}"
        subsystem = f"{member_id}/sys{m % 7}"
        meta = CatalogueMetadata(
            title=Text(" ".join(english.draw(rng, 3)).capitalize(), "".join(khmer.draw(rng, 2))),
            description=Text(" ".join(english.draw(rng, 14)), "".join(khmer.draw(rng, 6))),
            topics=tuple(rng.sample(TOPICS, 2)),
            data_class=rng.choice(DATA_CLASSES),
            contacts=(Contact("Data desk", f"desk@m{m}.example"),),
            terms_of_use=None,
            licence="",
            legal_basis=Text("Law"),
            access=(),
            method_summaries=(),
            updated_at=now,
        )
        ids = []
        for n in range(per_member):
            if len(service_entries) >= services:
                break
            word = english.draw(rng, 1)[0].title()
            path = f"/m{m}.v1.{word}Service/Get{word}{n}"
            sid = f"{subsystem}:{path}"
            ids.append(sid)
            service_entries.append(
                ServiceEntry(
                    id=sid,
                    subsystem=subsystem,
                    subsystem_name="",
                    member=member_id,
                    member_name=name,
                    path=path,
                    server_streaming=False,
                    title=Text(
                        " ".join(english.draw(rng, 4)).capitalize(),
                        "".join(khmer.draw(rng, 2)),
                    ),
                    comment=" ".join(english.draw(rng, 10)),
                    metadata=meta,
                    allowed_clients=(),
                    doc=None,
                    snippets=Snippets("", "", "", ""),
                )
            )
        member_entries.append(MemberEntry(member_id, name, (subsystem,)))
        subsystem_entries.append(
            SubsystemEntry(subsystem, "", member_id, name, meta, tuple(ids), False)
        )
    return Catalogue(
        instance="KH",
        version=1,
        issued_at=now,
        expires_at=now + dt.timedelta(days=1),
        members=tuple(member_entries),
        subsystems=tuple(subsystem_entries),
        services=tuple(service_entries),
        _members={m.id: m for m in member_entries},
        _subsystems={s.id: s for s in subsystem_entries},
        _services={s.id: s for s in service_entries},
        _descriptors={},
    )


def query_mix(rng: random.Random, members: int) -> list[SearchQuery]:
    """One round of the mix; the words follow the texts' own law (common words are asked often)."""
    english, khmer = vocabularies()

    def word() -> str:
        return english.draw(rng, 1)[0]

    return [
        SearchQuery(word()),
        SearchQuery(f"{word()} {word()}"),
        SearchQuery(word()[:4]),
        SearchQuery(khmer.draw(rng, 1)[0]),
        SearchQuery(khmer.draw(rng, 1)[0], data_class=rng.choice(DATA_CLASSES)),
        SearchQuery(word(), member=f"KH/GOV/M{rng.randrange(members):04d}"),
    ]


class Baseline:
    """The same texts in a plain table, searched with LIKE per word."""

    def __init__(self, url: str, docs: Sequence[SearchDocument], raw: dict[str, str]) -> None:
        self.engine = create_engine(url)
        with self.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS baseline_service"))
            conn.execute(
                text(
                    "CREATE TABLE baseline_service (position INTEGER PRIMARY KEY,"
                    " service_id TEXT, member TEXT, data_class TEXT, body TEXT)"
                )
            )
            conn.execute(
                text("INSERT INTO baseline_service VALUES (:p, :s, :m, :d, :b)"),
                [
                    {
                        "p": d.position,
                        "s": d.service_id,
                        "m": d.member,
                        "d": d.data_class,
                        "b": raw[d.service_id],
                    }
                    for d in docs
                ],
            )

    def search(self, query: SearchQuery) -> tuple[int, list[str]]:
        conditions, params = ["1 = 1"], {}
        for n, term in enumerate(query.text.split()):
            conditions.append(f"lower(body) LIKE :w{n}")
            params[f"w{n}"] = f"%{term.lower()}%"
        if query.member:
            conditions.append("member = :member")
            params["member"] = query.member
        if query.data_class:
            conditions.append("data_class = :dc")
            params["dc"] = query.data_class
        where = " AND ".join(conditions)
        with self.engine.connect() as conn:
            total = conn.execute(
                text(f"SELECT count(*) FROM baseline_service WHERE {where}"), params
            ).scalar_one()
            rows = conn.execute(
                text(
                    f"SELECT service_id FROM baseline_service WHERE {where}"
                    " ORDER BY position LIMIT 20"
                ),
                params,
            ).all()
        return int(total), [r[0] for r in rows]

    def close(self) -> None:
        self.engine.dispose()


def raw_texts(catalogue: Catalogue) -> dict[str, str]:
    out = {}
    for s in catalogue.services:
        meta = s.metadata
        assert meta is not None
        parts = [s.title.en, s.title.km, s.path, s.member_name, s.comment, meta.title.en]
        parts += [meta.title.km, meta.description.en, meta.description.km, *meta.topics]
        out[s.id] = "\n".join(parts)
    return out


def timed(run: Callable[[SearchQuery], Any], queries: Sequence[SearchQuery]) -> list[float]:
    for query in queries[:6]:  # warm-up: one round of the mix
        run(query)
    samples = []
    for query in queries:
        start = time.perf_counter()
        run(query)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(
    name: str, index: SearchIndex, baseline: Baseline, queries: Sequence[SearchQuery]
) -> None:
    fts = timed(index.search, queries)
    like = timed(baseline.search, queries)
    ratio = percentile(like, 0.95) / percentile(fts, 0.95)
    for method, samples in (("index", fts), ("baseline LIKE", like)):
        print(
            f"  {name:<10} {method:<14} p50 {statistics.median(samples):7.2f} ms"
            f"   p95 {percentile(samples, 0.95):7.2f} ms"
        )
    print(f"  {name:<10} baseline p95 / index p95 = {ratio:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--queries", type=int, default=600)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "SPEAN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--uniform",
        action="store_true",
        help="worst case: only the 70 English and 20 Khmer words, each equally likely"
        " (every word is in about a third of the services)",
    )
    parser.add_argument("--dir", default="/tmp", help="where the SQLite files go")
    args = parser.parse_args()
    global UNIFORM
    UNIFORM = args.uniform

    started = time.perf_counter()
    catalogue = synthetic_catalogue(args.members, args.services)
    docs = documents(catalogue)
    raw = raw_texts(catalogue)
    rng = random.Random(11)
    queries = [q for _ in range(args.queries // 6 + 1) for q in query_mix(rng, args.members)]
    queries = queries[: args.queries]
    assert all(terms(q.text) for q in queries)
    print(
        f"catalogue search, {'uniform' if UNIFORM else 'Zipf'} words,"
        f" {len(catalogue.members):,} members, {len(docs):,} services,"
        f" {len(queries)} queries each, {os.cpu_count()} cores"
        f" (built in {time.perf_counter() - started:.1f} s)"
    )

    path = f"{args.dir}/spean-bench-catalogue-{uuid.uuid4().hex[:8]}.db"
    url = f"sqlite:///{path}"
    index = open_index(url)
    start = time.perf_counter()
    index.replace(1, docs)
    print(f"  sqlite     indexed in {time.perf_counter() - start:.1f} s")
    baseline = Baseline(url, docs, raw)
    try:
        measure("sqlite", index, baseline, queries)
    finally:
        index.close()
        baseline.close()
        os.remove(path)

    if args.no_postgres:
        return
    schema = f"spean_bench_{uuid.uuid4().hex[:10]}"
    index = open_index(f"{args.postgres}?schema={schema}")
    admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    try:
        start = time.perf_counter()
        index.replace(1, docs)
        print(f"  postgresql indexed in {time.perf_counter() - start:.1f} s")
        with admin.connect() as conn:
            conn.execute(text(f'ANALYZE "{schema}".catalogue_service'))
        baseline = Baseline(f"{args.postgres}?options=-csearch_path%3D{schema}", docs, raw)
        try:
            measure("postgresql", index, baseline, queries)
        finally:
            baseline.close()
    finally:
        index.close()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
