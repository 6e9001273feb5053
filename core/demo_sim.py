"""A simulated shop for the built-in demo: shoppers whose purchases follow
tastes, drifting interests, popularity and "bought together" structure.

Nothing here is real behaviour: the demo's interactions are invented by this
generator so that a sequential recommender has patterns to learn. The process
(documented in docs/demo.md) for each shopper:

1. Taste: a sparse Dirichlet(0.35) over departments, plus 3 preferred tags
   drawn from the shopper's favourite department.
2. Sessions: the shopper visits the shop in sessions separated by days
   (exponential gaps, mean 4 days). A session has 1-6 purchases minutes apart.
3. The first purchase of a session picks a department from the current taste,
   then an item with weight popularity x (1 + 2 x shared preferred tags).
4. Each later purchase in the session follows the previous item:
   - 40%: one of its "next buys" (3 fixed items per item, mostly of the same
     sub-category and sharing tags, some from a complementary department), the
     strongest sequential signal;
   - 20%: another item of a complementary department (fruit -> bakery, party ->
     drinks, garden -> tools, ...);
   - 25%: another item of the same department;
   - 15%: a fresh pick from the taste, as for a first purchase.
5. Drift: after each session the taste moves a little towards fresh Dirichlet
   noise (10%); with probability 7% the shopper's interest switches: a new
   department becomes dominant.
6. Popularity: items have Zipf(0.8) weights over a seeded random ranking.
A shopper never buys the same item twice. Same seed, same items: same output.
"""
from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

START_TS = 1_704_067_200          # 2024-01-01 00:00 UTC
SPAN_S = 270 * 86_400             # first visits spread over ~9 months
DAY = 86_400

# Department -> departments whose items are often bought next ("complements").
COMPLEMENTS: dict[str, tuple[str, ...]] = {
    "Fruit & Vegetables": ("Bakery & Sweets", "Deli & Meals", "Drinks"),
    "Bakery & Sweets": ("Drinks", "Party & Holidays", "Fruit & Vegetables"),
    "Drinks": ("Deli & Meals", "Bakery & Sweets", "Party & Holidays"),
    "Deli & Meals": ("Drinks", "Fruit & Vegetables", "Bakery & Sweets"),
    "Pets & Animals": ("Garden", "Home"),
    "Garden": ("Tools & DIY", "Home", "Pets & Animals"),
    "Tools & DIY": ("Home", "Garden", "Vehicles"),
    "Office & School": ("Electronics", "Home"),
    "Electronics": ("Office & School", "Music"),
    "Vehicles": ("Tools & DIY", "Sports & Toys"),
    "Home": ("Tools & DIY", "Garden", "Office & School"),
    "Clothing": ("Sports & Toys", "Party & Holidays"),
    "Music": ("Electronics", "Party & Holidays"),
    "Sports & Toys": ("Clothing", "Drinks"),
    "Party & Holidays": ("Bakery & Sweets", "Drinks", "Music"),
}


@dataclass(frozen=True)
class SimItem:
    id: str
    department: str
    sub: str
    tags: tuple[str, ...]


def read_items(path: Path) -> list[SimItem]:
    """Items of a demo items.tsv (id, categories 'Department|Sub', tags 'word:score|...')."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    out = []
    for r in rows:
        dep, _, sub = r["categories"].partition("|")
        tags = tuple(t.rsplit(":", 1)[0] for t in r.get("tags", "").split("|") if t)
        out.append(SimItem(r["id"], dep, sub or dep, tags))
    return out


def _dirichlet(rng: random.Random, alpha: float, n: int) -> list[float]:
    g = [rng.gammavariate(alpha, 1.0) for _ in range(n)]
    s = sum(g) or 1.0
    return [x / s for x in g]


def _choice(rng: random.Random, seq, weights):
    return rng.choices(seq, weights=weights, k=1)[0]


class Shop:
    """Items indexed by department, with popularity and each item's "next buys"."""

    def __init__(self, items: list[SimItem], rng: random.Random):
        self.items = sorted(items, key=lambda i: i.id)
        self.departments = sorted({i.department for i in self.items})
        self.by_dep = {d: [i for i in self.items if i.department == d] for d in self.departments}
        ranks = list(range(1, len(self.items) + 1))
        rng.shuffle(ranks)
        self.pop = {it.id: r ** -0.8 for it, r in zip(self.items, ranks)}
        self.next_buys = {it.id: self._next_buys(it, rng) for it in self.items}

    def complements(self, dep: str) -> list[str]:
        return [d for d in COMPLEMENTS.get(dep, ()) if d in self.by_dep]

    def _next_buys(self, it: SimItem, rng: random.Random) -> list[SimItem]:
        """Two close relatives (same sub-category or shared tags) and one complement."""
        def closeness(o: SimItem) -> float:
            return (2.0 * (o.sub == it.sub) + len(set(o.tags) & set(it.tags))) * self.pop[o.id] + 1e-3
        same = [o for o in self.by_dep[it.department] if o.id != it.id]
        out: list[SimItem] = []
        for _ in range(2):
            pool = [o for o in same if o not in out]
            if pool:
                out.append(_choice(rng, pool, [closeness(o) for o in pool]))
        comp = [o for d in self.complements(it.department) for o in self.by_dep[d]]
        if comp:
            out.append(_choice(rng, comp, [closeness(o) for o in comp]))
        return out


def _pick(rng, pool: list[SimItem], shop: Shop, liked: set[str], bought: set[str]):
    pool = [o for o in pool if o.id not in bought]
    if not pool:
        return None
    weights = [shop.pop[o.id] * (1.0 + 2.0 * len(liked.intersection(o.tags))) for o in pool]
    return _choice(rng, pool, weights)


def simulate(items: list[SimItem], users: int = 2500, seed: int = 0,
             min_len: int = 8, max_len: int = 60) -> list[tuple[str, str, int]]:
    """(user, item, unix seconds) rows, each user's rows in time order."""
    rng = random.Random(seed)
    shop = Shop(items, rng)
    deps = shop.departments
    width = len(str(users))
    rows: list[tuple[str, str, int]] = []
    for u in range(users):
        user = f"u{u + 1:0{width}d}"
        taste = _dirichlet(rng, 0.35, len(deps))
        fav = deps[max(range(len(deps)), key=taste.__getitem__)]
        fav_tags = sorted({t for i in shop.by_dep[fav] for t in i.tags})
        liked = set(rng.sample(fav_tags, min(3, len(fav_tags))))
        length = max(min_len, min(max_len, round(rng.lognormvariate(2.9, 0.55))))
        ts = START_TS + rng.randrange(SPAN_S)
        bought: set[str] = set()
        seq: list[SimItem] = []
        while len(seq) < length:
            session = min(length - len(seq), 1 + min(5, int(rng.expovariate(0.6))))
            prev = None
            for _ in range(session):
                it = None
                r = rng.random()
                if prev is not None and r < 0.40:
                    it = _pick(rng, shop.next_buys[prev.id], shop, liked, bought)
                elif prev is not None and r < 0.60 and shop.complements(prev.department):
                    dep = rng.choice(shop.complements(prev.department))
                    it = _pick(rng, shop.by_dep[dep], shop, liked, bought)
                elif prev is not None and r < 0.85:
                    it = _pick(rng, shop.by_dep[prev.department], shop, liked, bought)
                if it is None:
                    dep = _choice(rng, deps, taste)
                    it = _pick(rng, shop.by_dep[dep], shop, liked, bought) or \
                        _pick(rng, shop.items, shop, liked, bought)
                if it is None:
                    break  # bought everything
                bought.add(it.id)
                seq.append(it)
                rows.append((user, it.id, ts))
                ts += 60 + rng.randrange(20 * 60)
                prev = it
            ts += int(rng.expovariate(1 / (4 * DAY)))
            # Drift: a small random walk, and now and then a new dominant interest.
            noise = _dirichlet(rng, 0.35, len(deps))
            taste = [0.9 * a + 0.1 * b for a, b in zip(taste, noise)]
            if rng.random() < 0.07:
                k = rng.randrange(len(deps))
                taste[k] += 1.5 * max(taste)
                s = sum(taste)
                taste = [a / s for a in taste]
            if len(bought) >= len(shop.items):
                break
    return rows


def write_interactions(rows: list[tuple[str, str, int]], path: Path) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("user\titem\ttimestamp\n")
        for u, i, t in rows:
            f.write(f"{u}\t{i}\t{t}\n")
