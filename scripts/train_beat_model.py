#!/usr/bin/env python3
"""Trains the beat classifier of the ecg room and writes src/ecg/beat_model.c.

The detector computes CT_ECG_N_FEATURES features for every beat it finds
(`cardiotwin detect RECORD --format features`). This script runs it on the
training records, labels each detected beat with the reference annotation
within 150 ms (EC57's match window; AAMI classes), and fits a logistic
regression (Newton's method, L2 ridge on standardised features) for V
against everything else, and another for "artefact" (a detection with no
reference beat) against every beat: the detector drops what it scores as
an artefact. Fusion (F) and unclassifiable (Q) beats and the
paced records are left out: EC57's VEB statistics do not count an F called V
as an error.

Pure Python (no numpy), deterministic: the same inputs give the same C file.

    scripts/train_beat_model.py --bin build/release/cardiotwin \\
        --mitdb ../shared/data/mitdb --out src/ecg/beat_model.c

Options: --records (default: the 28 development records: 100-109 and the DS1
half of de Chazal's inter-patient split), --features CSV (use features
already written, one "F,record,sample,label,f0,...,f19" line per beat),
--cv 1 (leave-one-record-out cross-validation first; --cv K: K folds).
Only these records may be used: the other MIT-BIH records are the blind test.
"""
import argparse
import math
import os
import subprocess
import sys

DEV_RECORDS = ["100", "101", "102", "103", "104", "105", "106", "107", "108", "109",
               "112", "114", "115", "116", "118", "119", "122", "124", "201", "203",
               "205", "207", "208", "209", "215", "220", "223", "230"]
PACED = {"102", "104", "107", "217"}
FEATURE_NAMES = ["width_diff_ms", "width_excess_ms", "decorr", "decorr_min", "log2_amp",
                 "ln_area", "prem", "rr_ratio", "cl_frac", "cl_prem", "cl_width_diff_ms",
                 "cl_decorr", "is_dom", "ln_slope", "noise", "ln_hf", "post", "decorr_wide",
                 "early_wide", "prem_n"]
N_FEAT = len(FEATURE_NAMES)

# AAMI classes of MIT annotation codes (bxb with SVEB statistics).
AAMI = {1: "N", 2: "N", 3: "N", 25: "N", 4: "S", 7: "S", 8: "S", 9: "S", 11: "S", 34: "S",
        35: "S", 5: "V", 10: "V", 41: "V", 6: "F", 12: "Q", 13: "Q", 38: "Q", 30: "Q"}
BEAT_CODES = set(AAMI) | {31}  # WFDB isqrs: 1-13, 25, 30, 31, 34, 35, 38, 41


def read_atr(path):
    """MIT-format annotation file -> list of (sample, code)."""
    data = open(path, "rb").read()
    out, t, i = [], 0, 0
    while i + 1 < len(data):
        w = data[i] | (data[i + 1] << 8)
        i += 2
        a, n = w >> 10, w & 0x3FF
        if a == 0 and n == 0:
            break
        if a == 59:  # SKIP: 32-bit interval, high word first
            hi = data[i] | (data[i + 1] << 8)
            lo = data[i + 2] | (data[i + 3] << 8)
            i += 4
            t += (hi << 16) | lo
            continue
        if a == 63:  # AUX: n bytes, padded to even
            i += (n + 1) & ~1
            continue
        if a in (60, 61, 62):  # NUM, SUB, CHN
            continue
        t += n
        out.append((t, a))
    return out


def label_beats(rows, atr, fs):
    """Nearest reference beat within 150 ms gives the label; 'O' if none.
    Beats inside reference ventricular flutter ([ ... ]) are dropped."""
    win = int(0.15 * fs + 0.5)
    beats = [(t, AAMI.get(c, "O")) for t, c in atr if c in BEAT_CODES]
    vf, on = [], None
    for t, c in atr:
        if c == 32:
            on = t
        elif c == 33 and on is not None:
            vf.append((on, t))
            on = None
    if on is not None:
        vf.append((on, 1 << 60))
    out, j = [], 0
    for sample, feats in rows:
        while j < len(beats) and beats[j][0] < sample - win:
            j += 1
        best, lab = None, "O"
        k = j
        while k < len(beats) and beats[k][0] <= sample + win:
            d = abs(beats[k][0] - sample)
            if best is None or d < best:
                best, lab = d, beats[k][1]
            k += 1
        if lab == "O" and any(a <= sample <= b for a, b in vf):
            continue
        out.append((sample, lab, feats))
    return out


def run_detector(binary, mitdb, rec):
    cmd = [binary, "detect", os.path.join(mitdb, rec), "--format", "features"]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    rows = []
    for line in res.stdout.splitlines():
        if not line or line.startswith("sample"):
            continue
        parts = line.split(",")
        rows.append((int(parts[0]), [float(x) for x in parts[3:3 + N_FEAT]]))
    return rows


# ---- logistic regression (Newton's method, L2) -----------------------------

N_THIN = 4      # one normal beat in N_THIN is kept, weighted N_THIN
L2 = 1e-3       # ridge, per training beat, on standardised features
NEWTON_STEPS = 8
# Decision thresholds on the fitted scores, folded into the biases written
# out (the C code decides at 0). V: chosen by leave-one-record-out to balance
# sensitivity and positive predictivity (p >= 0.38); artefact: conservative
# (p >= 0.62), since a dropped real beat costs more than a kept false one.
V_THRESHOLD = -0.5
ARTEFACT_THRESHOLD = 0.5


def solve(A, b):
    """Gaussian elimination with partial pivoting (A is small and dense)."""
    n = len(b)
    M = [row[:] + [bi] for row, bi in zip(A, b)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(M[r][c]))
        M[c], M[p] = M[p], M[c]
        for r in range(n):
            if r != c and M[r][c] != 0.0:
                f = M[r][c] / M[c][c]
                for k in range(c, n + 1):
                    M[r][k] -= f * M[c][k]
    return [M[i][n] / M[i][i] for i in range(n)]


def fit(X, y, w):
    d = N_FEAT
    tot = sum(w)
    mu = [sum(wi * x[j] for x, wi in zip(X, w)) / tot for j in range(d)]
    sd = [max(1e-6, math.sqrt(sum(wi * (x[j] - mu[j]) ** 2 for x, wi in zip(X, w)) / tot))
          for j in range(d)]
    Z = [[(x[j] - mu[j]) / sd[j] for j in range(d)] + [1.0] for x in X]
    beta = [0.0] * (d + 1)
    for _ in range(NEWTON_STEPS):
        g = [0.0] * (d + 1)
        H = [[0.0] * (d + 1) for _ in range(d + 1)]
        for z, yi, wi in zip(Z, y, w):
            s = sum(b * zj for b, zj in zip(beta, z))
            p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, s))))
            r, q = wi * (p - yi), wi * p * (1.0 - p)
            for i in range(d + 1):
                g[i] += r * z[i]
                qi = q * z[i]
                Hi = H[i]
                for j in range(i, d + 1):
                    Hi[j] += qi * z[j]
        for i in range(d + 1):
            for j in range(i):
                H[i][j] = H[j][i]
            if i < d:  # the intercept is not shrunk
                H[i][i] += L2 * tot
                g[i] += L2 * tot * beta[i]
        step = solve(H, g)
        beta = [b - s for b, s in zip(beta, step)]
    # Fold the standardisation into the weights: score = bias + w . x.
    weight = [beta[j] / sd[j] for j in range(d)]
    bias = beta[d] - sum(beta[j] * mu[j] / sd[j] for j in range(d))
    return weight, bias


def score(model, x):
    weight, bias = model
    return bias + sum(wj * xj for wj, xj in zip(weight, x))


def training_set(data, target="V"):
    """V against everything else (N, S and detections with no reference
    beat; F and Q are left out), or (target "O") detections with no
    reference beat against every beat. The paced records are left out."""
    X, y, w = [], [], []
    n_seen = 0
    for rec, lab, x in data:
        if rec in PACED or (target == "V" and lab in ("F", "Q")):
            continue
        wt = 1.0
        if lab == "N":
            n_seen += 1
            if n_seen % N_THIN:
                continue
            wt = float(N_THIN)
        X.append(x)
        y.append(1 if lab == target else 0)
        w.append(wt)
    return X, y, w


def train(data):
    """The V model and the artefact model, thresholds folded in."""
    wv, bv = fit(*training_set(data, "V"))
    wa, ba = fit(*training_set(data, "O"))
    return (wv, bv - V_THRESHOLD), (wa, ba - ARTEFACT_THRESHOLD)


def report(data, predict, title, verbose=False):
    """EC57's VEB counts over matched beats (an F called V is no error), and
    what the artefact model drops: detections with no reference beat (good)
    and real beats (lost)."""
    per = {}
    dropped_o = dropped_beats = 0
    for rec, lab, x in data:
        v, art = predict(rec, x)
        if rec in PACED:
            continue
        e = per.setdefault(rec, [0, 0, 0])
        if art:
            if lab == "O":
                dropped_o += 1
            else:
                dropped_beats += 1
            if lab == "V":
                e[1] += 1
            continue
        if lab == "V":
            e[0 if v else 1] += 1
        elif v and lab in ("N", "S", "O"):
            e[2] += 1
    tp = sum(e[0] for e in per.values())
    fn = sum(e[1] for e in per.values())
    fp = sum(e[2] for e in per.values())
    if verbose:
        print("  record: V found/missed, false V", file=sys.stderr)
        print("  " + " ".join(f"{r}:{e[0]}/{e[1]}/{e[2]}" for r, e in sorted(per.items())),
              file=sys.stderr)
    pct = lambda a, b: 100.0 * a / b if b else float("nan")
    print(f"{title}: VEB Se {pct(tp, tp + fn):.2f} +P {pct(tp, tp + fp):.2f} "
          f"(found {tp}, missed {fn}, false {fp}); artefacts dropped: {dropped_o} "
          f"false detections, {dropped_beats} real beats", file=sys.stderr)


def write_c(path, models, records):
    lines = [
        "/* ecg/beat_model: the trained logistic models over the CT_ECG_N_FEATURES",
        " * beat features of classify.c (score = bias + w . x): V against the rest",
        " * (V when the score is >= 0) and artefact against beat (a detection with",
        " * no reference beat; dropped when the score is >= 0). Generated by",
        " * scripts/train_beat_model.py from the reference annotations of MIT-BIH",
        " * records " + " ".join(records) + ";",
        " * do not edit by hand: rerun the script (docs/detector.md). */",
        '#include "ecg_internal.h"',
        "",
    ]
    for name, (weight, bias) in zip(("v", "artifact"), models):
        lines += [f"const ct_linear_model ct_beat_model_{name} = {{", "    {"]
        for j, wj in enumerate(weight):
            lines.append(f"        {wj:.9g}f, /* {FEATURE_NAMES[j]} */")
        lines += ["    },", f"    {bias:.9g}f,", "};", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", help="the cardiotwin binary")
    ap.add_argument("--mitdb", default=os.environ.get("CARDIOTWIN_MITDB", "../shared/data/mitdb"))
    ap.add_argument("--records", default=",".join(DEV_RECORDS))
    ap.add_argument("--features", help="features CSV already written (F,record,sample,label,...)")
    ap.add_argument("--cv", type=int, default=0,
                    help="cross-validate first: 1 = leave one record out, K > 1 = K folds")
    ap.add_argument("--out", default="src/ecg/beat_model.c")
    args = ap.parse_args()
    records = args.records.split(",")
    for r in records:
        if r not in DEV_RECORDS:
            sys.exit(f"train_beat_model: record {r} is not a development record")

    data = []
    if args.features:
        for line in open(args.features):
            p = line.strip().split(",")
            if len(p) < 4 + N_FEAT or p[0] != "F" or p[1] not in records:
                continue
            data.append((p[1], p[3], [float(v) for v in p[4:4 + N_FEAT]]))
    else:
        if not args.bin:
            sys.exit("train_beat_model: give --bin (the cardiotwin binary) or --features")
        for r in records:
            rows = run_detector(args.bin, args.mitdb, r)
            atr = read_atr(os.path.join(args.mitdb, r + ".atr"))
            for sample, lab, x in label_beats(rows, atr, 360.0):
                data.append((r, lab, x))
            print(f"record {r}: {len(rows)} beats", file=sys.stderr)

    if args.cv:
        # Leave-one-record-out (--cv 1) or record-grouped K-fold: the honest
        # estimate for patients the model has never seen.
        k = len(records) if args.cv == 1 else args.cv
        folds = [records[i::k] for i in range(k)]
        preds = [None] * len(data)
        for fold in folds:
            mv, ma = train([d for d in data if d[0] not in fold])
            for i, d in enumerate(data):
                if d[0] in fold:
                    preds[i] = (score(mv, d[2]) >= 0.0, score(ma, d[2]) >= 0.0)
        it = iter(preds)
        name = "leave-one-record-out" if args.cv == 1 else f"{k}-fold record-grouped"
        report(data, lambda rec, x: next(it), name + " cross-validation", True)

    mv, ma = train(data)
    report(data, lambda rec, x: (score(mv, x) >= 0.0, score(ma, x) >= 0.0), "training set")
    write_c(args.out, (mv, ma), records)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
