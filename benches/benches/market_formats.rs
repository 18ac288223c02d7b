//! Parse throughput of each market format on the shared sample files (issue 5):
//! rows/s and MB/s of `MarketFormat::parse`, a whole file per iteration,
//! without the dataflow runtime.
//!
//! ```text
//! CARBONFLOW_MARKET_DATA=../shared/data/markets cargo bench -p carbonflow-benches --bench market_formats
//! ```
//!
//! Criterion reports elements (ticks) per second; bytes per second is printed
//! before each group. Without `CARBONFLOW_MARKET_DATA` the bench says so and
//! measures nothing.

use std::path::PathBuf;

use carbonflow_sources::markets;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// (format, sample file under the markets directory)
const SAMPLES: &[(&str, &str)] = &[
    ("nyiso-lbmp", "nyiso/realtime_zone_20160218_sample.csv"),
    ("spp-lmp", "spp/DA-LMP-SL-202503190100.csv"),
    ("pjm-lmp", "pjm/da_hrl_lmps.csv"),
    ("miso-lmp", "miso/20110716_da_lmp.csv"),
    ("ieso-price", "ieso/PUB_DAHourlyOntarioZonalPrice_20260528.xml"),
    ("aeso-pool-price", "aeso/HistoricalPoolPriceReportServlet.csv"),
    ("entsoe-a44", "entsoe/ES_intraday_price_A44_20250928_20251002.xml"),
    ("aemo-price", "aemo/aemo_5min_data.json"),
    ("eia-gas", "eia/Henry_Hub_Natural_Gas_Spot_Price.csv"),
    ("ecb-fx", "../fx/eurofxref-hist.csv"),
];

fn bench_formats(c: &mut Criterion) {
    let Some(dir) = std::env::var_os("CARBONFLOW_MARKET_DATA").map(PathBuf::from) else {
        println!("skipped: CARBONFLOW_MARKET_DATA is not set");
        return;
    };
    let mut group = c.benchmark_group("market_formats");
    for (name, relative) in SAMPLES {
        let format = markets::find(name).expect("a registered format");
        let bytes = std::fs::read(dir.join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"));
        let ticks = format.parse("bench", relative, &bytes).ticks.len();
        assert!(ticks > 0, "{name} parses ticks from {relative}");
        println!("{name}: {} bytes, {ticks} ticks per file", bytes.len());
        group.throughput(Throughput::Elements(ticks as u64));
        group.bench_function(*name, |b| b.iter(|| std::hint::black_box(format.parse("bench", relative, &bytes))));
    }
    group.finish();
}

criterion_group!(benches, bench_formats);
criterion_main!(benches);
