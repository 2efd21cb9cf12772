#!/usr/bin/env python3
"""Recomputes the membership-inference metrics of `bulwark threat membership` from its saved scores,
without Bulwark's code, to check them from outside Bulwark. Not run in CI.

    bulwark threat membership --json --save-scores scores/ > membership.jsonl
    Benchmarks/peers/.venv/bin/python Benchmarks/peers/membership_roc_check.py scores/ [--bulwark-json membership.jsonl]

For every `<target>-<attack>.csv` in the directory (header `score,member`; higher score means
"member"), it prints the target, the attack, the numbers of members and non-members, the ROC AUC,
and the TPR at 0.1% and 1% FPR:

- AUC, computed two independent ways that must agree to 1e-12: scipy.stats.mannwhitneyu
  (U of the members / (n_members · n_nonmembers)), and the rank-sum formula over
  scipy.stats.rankdata's average ranks. Both count a tied member/non-member pair as 1/2.
- TPR at FPR f: the largest TPR over all thresholds t (score >= t is "member"; the thresholds are
  the distinct scores, so tied scores move together) whose FPR is at most f, found by sorting the
  scores in descending order and walking the groups of tied scores. FPR <= f is tested exactly
  (fp · q <= p · n_nonmembers for f = p/q), so no rounding tolerance is involved.

With --bulwark-json (the JSON lines that `bulwark threat membership --json` prints: "target",
"attack", "auc", "tpr_at_fpr" {"0.001": ..., "0.01": ...}), it prints the absolute differences for
each (target, attack) and exits 1 if any exceeds 1e-9, if a member count differs, or if a CSV has
no JSON line or a JSON line has no CSV. Exit status 2: unusable input.

Requires numpy and scipy only.
"""
import argparse
import csv
import glob
import json
import math
import os
import sys
from fractions import Fraction

import numpy as np
from scipy.stats import mannwhitneyu, rankdata

FPRS = ("0.001", "0.01")          # the keys of "tpr_at_fpr" in Bulwark's JSON
ATTACKS = ("lira-online", "lira-offline", "loss", "confidence", "entropy")
AUC_AGREEMENT = 1e-12
TOLERANCE = 1e-9


def fail(message):
    print(f"membership_roc_check: {message}", file=sys.stderr)
    sys.exit(2)


def split_name(path):
    """`<target>-<attack>.csv` -> (target, attack); the attack is matched as a known suffix first,
    because "lira-online" itself contains a hyphen."""
    stem = os.path.basename(path)[: -len(".csv")]
    for attack in ATTACKS:
        if stem.endswith("-" + attack) and len(stem) > len(attack) + 1:
            return stem[: -len(attack) - 1], attack
    if "-" not in stem:
        fail(f"{path}: the name is not <target>-<attack>.csv")
    target, attack = stem.rsplit("-", 1)
    return target, attack


def read_scores(path):
    scores, members = [], []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != ["score", "member"]:
            fail(f"{path}: header {header!r}, expected ['score', 'member']")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != 2:
                fail(f"{path}:{line}: {len(row)} fields")
            try:
                score = float(row[0])
            except ValueError:
                fail(f"{path}:{line}: score {row[0]!r} is not a number")
            if math.isnan(score):
                fail(f"{path}:{line}: the score is NaN")
            if row[1] not in ("0", "1"):
                fail(f"{path}:{line}: member {row[1]!r} is not 0 or 1")
            scores.append(score)
            members.append(row[1] == "1")
    scores = np.asarray(scores, dtype=np.float64)
    members = np.asarray(members, dtype=bool)
    if members.all() or not members.any():
        fail(f"{path}: needs at least one member and one non-member")
    return scores, members


def auc_mannwhitney(scores, members):
    x, y = scores[members], scores[~members]
    # The statistic is U of the first sample (the members): #(x > y) + 1/2 #(x == y).
    u = mannwhitneyu(x, y, alternative="two-sided", method="asymptotic", use_continuity=False).statistic
    return float(u) / (len(x) * len(y))


def auc_ranks(scores, members):
    ranks = rankdata(scores, method="average")           # ascending, ties get their mean rank
    n1 = int(members.sum())
    n0 = len(scores) - n1
    rank_sum = math.fsum(ranks[members])
    return (rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0)


def tpr_at_fpr(scores, members, fpr):
    """Largest TPR over thresholds (distinct scores, score >= t is "member") with FPR <= fpr."""
    limit = Fraction(fpr)                                 # exact: "0.001" -> 1/1000
    n1 = int(members.sum())
    n0 = len(scores) - n1
    order = np.argsort(-scores, kind="stable")
    s, m = scores[order], members[order]
    tp = np.cumsum(m)
    fp = np.cumsum(~m)
    # The last index of each group of equal scores: a threshold takes the whole group.
    group_end = np.flatnonzero(np.append(s[1:] != s[:-1], True))
    best = 0                                              # the threshold above every score: (0, 0)
    for i in group_end:
        if int(fp[i]) * limit.denominator <= limit.numerator * n0:
            best = max(best, int(tp[i]))
    return best / n1


def analyse(path):
    target, attack = split_name(path)
    scores, members = read_scores(path)
    a1 = auc_mannwhitney(scores, members)
    a2 = auc_ranks(scores, members)
    assert abs(a1 - a2) <= AUC_AGREEMENT, f"{path}: mannwhitneyu AUC {a1!r} != rank AUC {a2!r}"
    n1 = int(members.sum())
    return {
        "target": target, "attack": attack, "n_members": n1, "n_nonmembers": len(scores) - n1,
        "auc": a1, "auc_ranks": a2,
        "tpr_at_fpr": {f: tpr_at_fpr(scores, members, f) for f in FPRS},
    }


def read_bulwark(path):
    rows = {}
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
                key = (obj["target"], obj["attack"])
                float(obj["auc"])
                for fpr in FPRS:
                    float(obj["tpr_at_fpr"][fpr])
            except (ValueError, KeyError, TypeError) as error:
                fail(f"{path}:{number}: not a membership JSON line ({error!r})")
            if key in rows:
                fail(f"{path}:{number}: a second line for {key}")
            rows[key] = obj
    if not rows:
        fail(f"{path}: no JSON lines")
    return rows


def main():
    parser = argparse.ArgumentParser(description="Recompute Bulwark's membership AUC and TPR@FPR from saved scores.")
    parser.add_argument("directory", help="the --save-scores directory of bulwark threat membership")
    parser.add_argument("--bulwark-json", metavar="FILE", help="the JSON lines of bulwark threat membership --json")
    args = parser.parse_args()

    paths = sorted(glob.glob(os.path.join(args.directory, "*.csv")))
    if not paths:
        fail(f"no CSV files in {args.directory}")
    results = [analyse(p) for p in paths]

    print(f"{'target':<14}{'attack':<14}{'members':>8}{'non-mem':>8}  {'AUC':<22}{'TPR@0.1%FPR':<22}{'TPR@1%FPR'}")
    for r in results:
        print(f"{r['target']:<14}{r['attack']:<14}{r['n_members']:>8}{r['n_nonmembers']:>8}  "
              f"{r['auc']:<22.15g}{r['tpr_at_fpr']['0.001']:<22.15g}{r['tpr_at_fpr']['0.01']:<22.15g}")
    print(f"AUC: mannwhitneyu and rank-sum agree to {max(abs(r['auc'] - r['auc_ranks']) for r in results):.3g} "
          f"(required {AUC_AGREEMENT:g})")

    if not args.bulwark_json:
        return 0
    bulwark = read_bulwark(args.bulwark_json)
    ok = True
    worst = {"auc": 0.0, "0.001": 0.0, "0.01": 0.0}
    print()
    print(f"differences from {args.bulwark_json} (|this script - Bulwark|; tolerance {TOLERANCE:g})")
    print(f"{'target':<14}{'attack':<14}{'|dAUC|':<12}{'|dTPR@0.1%|':<12}{'|dTPR@1%|':<12}counts")
    seen = set()
    for r in results:
        key = (r["target"], r["attack"])
        b = bulwark.get(key)
        if b is None:
            print(f"{key[0]:<14}{key[1]:<14}no JSON line for this CSV")
            ok = False
            continue
        seen.add(key)
        d = {"auc": abs(r["auc"] - float(b["auc"]))}
        for fpr in FPRS:
            d[fpr] = abs(r["tpr_at_fpr"][fpr] - float(b["tpr_at_fpr"][fpr]))
        counts = "same"
        if "n_members" in b and (b["n_members"], b.get("n_nonmembers")) != (r["n_members"], r["n_nonmembers"]):
            counts = f"DIFFER: Bulwark {b['n_members']} / {b.get('n_nonmembers')}"
            ok = False
        for k, v in d.items():
            worst[k] = max(worst[k], v)
        bad = any(v > TOLERANCE or math.isnan(v) for v in d.values())
        ok = ok and not bad
        print(f"{key[0]:<14}{key[1]:<14}{d['auc']:<12.3g}{d['0.001']:<12.3g}{d['0.01']:<12.3g}{counts}"
              + ("  EXCEEDS TOLERANCE" if bad else ""))
    for key in sorted(set(bulwark) - seen):
        print(f"{key[0]:<14}{key[1]:<14}no CSV for this JSON line")
        ok = False
    print(f"max |dAUC| = {worst['auc']:.3g}, max |dTPR@0.1%FPR| = {worst['0.001']:.3g}, "
          f"max |dTPR@1%FPR| = {worst['0.01']:.3g}: {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
