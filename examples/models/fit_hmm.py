"""Fits the Gaussian hidden Markov model that HMM_PROBABILITY and HMM_STATE
read, by Baum-Welch (expectation-maximisation), with numpy only.

    python3 -m venv target/hmm-env && target/hmm-env/bin/pip install numpy
    target/hmm-env/bin/python examples/models/fit_hmm.py queries/data/regimes.csv \
        --states 2 --observation difference --output queries/data/regimes_hmm.json

The input is a header-less CSV of `key,ts,value` rows (the `filesystem`
connector's format); each key's rows, in file order, are one sequence.
`--observation` turns a sequence into what the model sees, exactly as the
engine does (docs/analytics.md): `value`, `difference` (x_t - x_{t-1}) or
`log_return` (ln(x_t / x_{t-1})). States are ordered by their standard
deviation, so state 0 is the calmest. The output is the JSON model:

    {"observation": ..., "initial": [...], "transition": [[...]], "means": [...], "std_devs": [...]}
"""

import argparse
import csv
import json
import math

import numpy as np


def observations(values, kind):
    values = np.asarray(values, dtype=float)
    if kind == "value":
        return values
    if kind == "difference":
        return np.diff(values)
    ratios = values[1:] / values[:-1]
    return np.log(ratios[ratios > 0])


def read_sequences(path, column, kind):
    series = {}
    with open(path, newline="") as handle:
        for row in csv.reader(handle):
            if row:
                series.setdefault(row[0], []).append(float(row[column]))
    return [observations(values, kind) for values in series.values() if len(values) > 2]


def densities(o, means, sds):
    z = (o[:, None] - means[None, :]) / sds[None, :]
    return np.exp(-0.5 * z * z) / (sds[None, :] * math.sqrt(2 * math.pi))


def forward_backward(o, initial, transition, means, sds):
    """Scaled forward-backward: state posteriors, pair posteriors summed over time, log-likelihood."""
    b = np.maximum(densities(o, means, sds), 1e-300)
    n, k = b.shape
    alpha = np.zeros((n, k))
    scale = np.zeros(n)
    alpha[0] = initial * b[0]
    scale[0] = alpha[0].sum()
    alpha[0] /= scale[0]
    for t in range(1, n):
        alpha[t] = (alpha[t - 1] @ transition) * b[t]
        scale[t] = alpha[t].sum()
        alpha[t] /= scale[t]
    beta = np.ones((n, k))
    for t in range(n - 2, -1, -1):
        beta[t] = (transition @ (b[t + 1] * beta[t + 1])) / scale[t + 1]
    gamma = alpha * beta
    gamma /= gamma.sum(axis=1, keepdims=True)
    xi = np.zeros((k, k))
    for t in range(n - 1):
        pair = alpha[t][:, None] * transition * (b[t + 1] * beta[t + 1])[None, :] / scale[t + 1]
        xi += pair / pair.sum()
    return gamma, xi, np.log(scale).sum()


def fit(sequences, states, iterations, tolerance=1e-6):
    pooled = np.concatenate(sequences)
    # Start from spreads around the pooled one, so the states separate by volatility.
    means = np.full(states, pooled.mean())
    sds = pooled.std() * np.geomspace(0.5, 2.0, states)
    initial = np.full(states, 1.0 / states)
    transition = np.full((states, states), 0.05 / max(states - 1, 1))
    np.fill_diagonal(transition, 0.95)
    previous = -np.inf
    for _ in range(iterations):
        gammas, xis, likelihood = [], np.zeros((states, states)), 0.0
        for o in sequences:
            gamma, xi, ll = forward_backward(o, initial, transition, means, sds)
            gammas.append(gamma)
            xis += xi
            likelihood += ll
        initial = np.mean([g[0] for g in gammas], axis=0)
        transition = xis / xis.sum(axis=1, keepdims=True)
        weights = np.concatenate(gammas)
        totals = weights.sum(axis=0)
        means = (weights * pooled[:, None]).sum(axis=0) / totals
        sds = np.sqrt((weights * (pooled[:, None] - means[None, :]) ** 2).sum(axis=0) / totals)
        sds = np.maximum(sds, 1e-6)
        if likelihood - previous < tolerance:
            break
        previous = likelihood
    order = np.argsort(sds)
    return {
        "initial": initial[order],
        "transition": transition[np.ix_(order, order)],
        "means": means[order],
        "std_devs": sds[order],
        "log_likelihood": likelihood,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="header-less CSV: key,ts,value")
    parser.add_argument("--column", type=int, default=2, help="the value's column (default 2)")
    parser.add_argument("--states", type=int, default=2, choices=[2, 3, 4])
    parser.add_argument("--observation", default="difference", choices=["value", "difference", "log_return"])
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    sequences = read_sequences(args.input, args.column, args.observation)
    model = fit(sequences, args.states, args.iterations)
    # Probabilities are rounded, then renormalised so that each row sums to 1 for the engine's check.
    rounded = lambda p: [round(float(v), 6) for v in p / p.sum()]
    document = {
        "observation": args.observation,
        "initial": rounded(model["initial"]),
        "transition": [rounded(row) for row in model["transition"]],
        "means": [round(float(v), 6) for v in model["means"]],
        "std_devs": [round(float(v), 6) for v in model["std_devs"]],
    }
    with open(args.output, "w") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")
    print(f"fitted {args.states} states on {sum(len(s) for s in sequences)} observations; log-likelihood {model['log_likelihood']:.1f}")
    print(json.dumps(document))


if __name__ == "__main__":
    main()
