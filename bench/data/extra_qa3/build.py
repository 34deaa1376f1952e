# ruff: noqa  (the one-off merge script, kept as it was run; not part of Kenning)
"""Build bench/data/extra_qa3/train.jsonl from the helper transcriptions in this folder."""

import json, glob, hashlib, collections

DEV = [
    "Super Bowl 50",
    "Warsaw",
    "Norman",
    "Tesla",
    "Computational complexity",
    "Martin Luther",
    "Southern California",
    "BSkyB",
    "Sky UK",
    "Victoria (Australia)",
    "Huguenot",
    "steam engine",
    "Steam engine",
    "oxygen",
    "Oxygen",
    "1973 oil crisis",
    "Apollo",
    "European Union law",
    "Amazon rainforest",
    "Ctenophor",
    "Fresno",
    "packet switching",
    "Packet switching",
    "Black Death",
    "Geology",
    "geolog",
    "Newcastle upon Tyne",
    "Victoria and Albert Museum",
    "American Broadcasting Company",
    "ABC",
    "Genghis",
    "Mongol",
    "Pharmac",
    "pharmac",
    "immune system",
    "Immune system",
    "civil disobedience",
    "Civil disobedience",
    "construction industry",
    "private school",
    "Private school",
    "Harvard",
    "Jacksonville",
    "inequality",
    "Doctor Who",
    "University of Chicago",
    "Yuan dynasty",
    "Kenya",
    "IPCC",
    "Intergovernmental Panel",
    "chloroplast",
    "Chloroplast",
    "prime number",
    "Prime number",
    "Rhine",
    "Scottish Parliament",
    "Islamism",
    "Islamist",
    "imperialism",
    "Imperialism",
    "United Methodist",
    "French and Indian War",
]


def dev_hit(c, q):
    hit = [w for w in DEV if w in c or w in q]
    if (
        not hit
        and " force" in c.lower()
        and any(w in c for w in ("Newton", "acceleration", "net force", "friction"))
    ):
        hit = ["force (physics)"]
    return hit


def norm(s):
    return " ".join(s.split())


held = []
sub = json.load(open("/work/shared/data/squad_train_subset/train.json"))["data"]
held += [norm(p["context"]) for e in sub for p in e["paragraphs"]]
for f in [
    "/work/main/bench/data/extra_qa/train.jsonl",
    "/work/main/bench/data/extra_qa2/train.jsonl",
]:
    held += list({norm(json.loads(l)["context"]) for l in open(f)})
heldset = set(held)
rows = []
for d in ["t1", "t2", "t3", "t4", "t5", "t6", "t7", "s1", "s2", "s3"]:
    for f in sorted(glob.glob(f"{d}/chunk_*.jsonl")):
        for line in open(f, encoding="utf-8"):
            if line.strip():
                o = json.loads(line)
                for q, a in o["qa"]:
                    rows.append(
                        ("squad_train.jsonl" if d[0] == "t" else "squad_test.jsonl", o["c"], q, a)
                    )
seen = set()
out = []
dropped_overlap = dup = 0
devhits = collections.Counter()
for src, c, q, a in rows:
    if not a or a not in c:
        continue
    k = (norm(c), norm(q))
    if k in seen:
        dup += 1
        continue
    seen.add(k)
    hit = dev_hit(c, q)
    if hit:
        devhits[hit[0]] += 1
        continue
    nc = norm(c)
    if nc in heldset or any(nc in h or h in nc for h in held):
        dropped_overlap += 1
        continue
    out.append(
        {
            "id": "ayushp88-" + hashlib.sha1((c + "\n" + q).encode()).hexdigest()[:12],
            "title": "unknown_ayushp88",
            "context": c,
            "question": q,
            "answer": a,
            "answer_start": c.index(a),
            "source": src,
        }
    )
print(
    len(rows),
    "rows read;",
    len(out),
    "kept on",
    len({r["context"] for r in out}),
    "contexts; dev screen dropped",
    sum(devhits.values()),
    dict(devhits),
    "; overlap dropped",
    dropped_overlap,
    "; duplicates",
    dup,
)
with open("/work/main/bench/data/extra_qa3/train.jsonl", "w", encoding="utf-8") as fh:
    for r in out:
        fh.write(json.dumps(r, ensure_ascii=False) + "\n")
for r in out:
    assert r["context"][r["answer_start"] : r["answer_start"] + len(r["answer"])] == r["answer"]
print(collections.Counter(r["source"] for r in out))
