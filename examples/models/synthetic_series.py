"""Writes queries/data/regimes.csv: hourly prices of two hubs with known
anomalies, regimes and breaks, for the shipped analytics queries and their
golden outputs. Standard library only; the seed makes the file reproducible.

    python3 examples/models/synthetic_series.py > queries/data/regimes.csv

Each hub's price is a daily shape (cheap nights, dear evenings, weekends 5
lower) plus Gaussian noise with a regime-dependent spread:

* HUB_A: calm (sd 1.5), volatile (sd 8) from day 8 to day 12, calm again,
  and its level rises by 25 from day 16 on (a structural break);
* HUB_B: calm throughout except a single spike (+60) on day 5 at 18:00 and
  a volatile spell from day 14 to day 17.

The file starts on Monday 2024-01-01 00:00 UTC and covers 21 days.
"""

import math
import random
from datetime import datetime, timedelta, timezone

DAYS = 21
START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def shape(t):
    weekend = t.weekday() >= 5
    return 40 + 10 * math.sin(2 * math.pi * (t.hour - 9) / 24) - (5 if weekend else 0)


def main():
    rng = random.Random(7)
    rows = []
    for hour in range(DAYS * 24):
        t = START + timedelta(hours=hour)
        day = hour // 24
        a_sd = 8.0 if 8 <= day < 12 else 1.5
        a_level = 25.0 if day >= 16 else 0.0
        b_sd = 8.0 if 14 <= day < 17 else 1.5
        b_spike = 60.0 if (day, t.hour) == (5, 18) else 0.0
        stamp = t.strftime("%Y-%m-%d %H:%M:%S")
        rows.append(f"HUB_A,{stamp},{shape(t) + a_level + rng.gauss(0, a_sd):.2f}")
        rows.append(f"HUB_B,{stamp},{shape(t) + b_spike + rng.gauss(0, b_sd):.2f}")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
