//! Parse throughput of each market format on the shared sample files (issue 5):
//! rows/s and MB/s of `MarketFormat::parse`, a whole file per iteration,
//! without the dataflow runtime.
//!
//! ```text
//! CARBONFLOW_MARKET_DATA=../shared/data/markets cargo bench -p carbonflow-benches --bench market_formats
//! ```
//!
//! Criterion reports elements (ticks) per second; bytes per second is printed
//! before each group. The layouts without a shared sample are measured on the
//! small fixtures written from their specifications
//! (`sources/tests/fixtures/markets/`), whose few rows make per-file costs
//! weigh more than in a real file. Without `CARBONFLOW_MARKET_DATA` the bench
//! says so and measures only those.

use std::path::{Path, PathBuf};

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

/// (format, fixture under the sources crate's `tests/fixtures/markets/`) for
/// layouts without a shared sample.
const FIXTURES: &[(&str, &str)] = &[
    ("miso-lmp", "north_america/miso_20240318_5MIN_LMP.csv"),
    ("ieso-price", "north_america/PUB_PriceHOEPPredispOR_2024.csv"),
    ("ieso-price", "north_america/PUB_RealtimeOntarioZonalPrice_2025110202.xml"),
    ("epex-spot", "auction_spot_prices_germany_luxembourg_2024.csv"),
    ("epex-spot", "auction_spot_prices_france_2025.csv"),
];

fn bench_formats(c: &mut Criterion) {
    // (benchmark id, format, file): a sample keeps its format's name as id, as in earlier runs.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sources/tests/fixtures/markets");
    let mut files: Vec<(String, &str, PathBuf)> = FIXTURES
        .iter()
        .map(|(name, relative)| (format!("{name}/{relative}"), *name, fixtures.join(relative)))
        .collect();
    match std::env::var_os("CARBONFLOW_MARKET_DATA").map(PathBuf::from) {
        Some(dir) => files.extend(SAMPLES.iter().map(|(name, relative)| ((*name).to_owned(), *name, dir.join(relative)))),
        None => println!("skipped the shared samples: CARBONFLOW_MARKET_DATA is not set"),
    }
    let mut group = c.benchmark_group("market_formats");
    for (id, name, path) in &files {
        let format = markets::find(name).expect("a registered format");
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file = path.file_name().map_or_else(String::new, |file| file.to_string_lossy().into_owned());
        let ticks = format.parse("bench", &file, &bytes).ticks.len();
        assert!(ticks > 0, "{name} parses ticks from {file}");
        println!("{id}: {} bytes, {ticks} ticks per file", bytes.len());
        group.throughput(Throughput::Elements(ticks as u64));
        group.bench_function(id.as_str(), |b| b.iter(|| std::hint::black_box(format.parse("bench", &file, &bytes))));
    }
    group.finish();
}

criterion_group!(benches, bench_formats);
criterion_main!(benches);
