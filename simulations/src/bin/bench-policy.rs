//! Benchmark of the PDP: decision latency of the library's discovery policy over a realistic
//! input, beside regorus evaluating the same query outside Accord in the same run; and
//! decisions per second on both cores.
//!
//! `cargo run --release -p accord-simulations --bin bench-policy`

use std::sync::Arc;
use std::time::{Duration, Instant};

use accord_policy::inputs::*;
use accord_policy::{Bundle, BundleRef, LocalPdp};
use accord_simulations::{Latency, Row, fmt_dur, fmt_rate, print_table, rate};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Decisions per latency measurement.
    #[arg(long, default_value_t = 100_000)]
    decisions: usize,
    /// Seconds of the two-core throughput run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

fn input(i: usize) -> serde_json::Value {
    let d = DiscoveryInput {
        requester: Requester {
            id: format!("spiffe://org-a.example/agent/0193a4d2-7c1e-7b3a-9f00-{i:012}"),
            domain: "org-a".into(),
            owner: Some("bob@org-a.example".into()),
            teams: vec!["travel".into(), "finance".into()],
            capabilities: vec!["registry.discover".into(), "calendar.read".into()],
            caller_type: Some("agent".into()),
        },
        query: DiscoveryQuery {
            capabilities: vec!["calendar.read".into(), "mail.send".into()],
        },
        record: DiscoveryRecord {
            agent_id: "0193a4d2-7c1e-7b3a-9f00-0123456789ab".into(),
            domain: "org-a".into(),
            owner: Some("alice@org-a.example".into()),
            team: Some("travel".into()),
            status: "registered".into(),
            visibility: if i.is_multiple_of(2) {
                "team"
            } else {
                "domain"
            }
            .into(),
            capabilities: vec![
                "calendar.read".into(),
                "calendar.write".into(),
                "mail.send".into(),
                "mail.read".into(),
                "files.read".into(),
                "admin.reset".into(),
                "travel.book".into(),
                "travel.cancel".into(),
            ],
        },
    };
    serde_json::to_value(d).expect("input")
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bundle = Bundle::library();
    let meta = BundleRef {
        name: "default".into(),
        version: 1,
        digest: bundle.digest(),
        published_seq: 0,
    };
    let pdp = Arc::new(LocalPdp::new());
    pdp.load(&bundle, meta)?;
    let inputs: Vec<serde_json::Value> = (0..64).map(input).collect();
    let rule = "data.accord.discovery.decision".to_string();

    // regorus outside Accord: the same bundle compiled for the same VM, the same query, the
    // same input conversion from serde_json
    let compiled = bundle
        .compile()?
        .compile_with_entrypoint(&rule.clone().into())?;
    let program =
        regorus::languages::rego::compiler::Compiler::compile_from_policy(&compiled, &[&rule])?;
    let mut vm = regorus::rvm::RegoVM::new();
    vm.load_program(program);
    vm.set_data(regorus::Value::from(bundle.data()?))?;
    let mut raw_lat = Latency::new();
    let mut ours_lat = Latency::new();
    for i in 0..2_000 {
        vm.set_input(regorus::Value::from(inputs[i % 64].clone()));
        std::hint::black_box(vm.execute()?);
        std::hint::black_box(pdp.decide("discovery", &inputs[i % 64])?);
    }
    // interleaved rounds, so both see the same machine
    for round in 0..10 {
        let n = args.decisions / 10;
        for i in 0..n {
            let input = &inputs[(round * n + i) % 64];
            let t = Instant::now();
            vm.set_input(regorus::Value::from(input.clone()));
            let v = vm.execute()?;
            raw_lat.since(t);
            std::hint::black_box(v);
        }
        for i in 0..n {
            let input = &inputs[(round * n + i) % 64];
            let t = Instant::now();
            let d = pdp.decide("discovery", input)?;
            ours_lat.since(t);
            assert!(d.is_allowed());
        }
    }
    // the tree-walking interpreter, for reference
    let mut interp = bundle.compile()?;
    let mut interp_lat = Latency::new();
    for i in 0..args.decisions / 10 {
        let t = Instant::now();
        interp.set_input(regorus::Value::from(inputs[i % 64].clone()));
        let v = interp.eval_rule(rule.clone())?;
        interp_lat.since(t);
        std::hint::black_box(v);
    }

    // decisions per second on both cores
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let start = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let pdp = pdp.clone();
            let inputs = inputs.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    for input in &inputs {
                        let _ = std::hint::black_box(pdp.decide("discovery", input));
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    let both = rate(total, start.elapsed());

    let rows = vec![
        Row {
            name: "discovery decision latency, warm (typed input → Decision)".into(),
            value: format!(
                "p50 {} / p99 {}",
                fmt_dur(ours_lat.p(0.5)),
                fmt_dur(ours_lat.p(0.99))
            ),
            baseline: format!(
                "regorus VM alone, same program and input: p50 {} / p99 {}",
                fmt_dur(raw_lat.p(0.5)),
                fmt_dur(raw_lat.p(0.99))
            ),
            ratio: format!(
                "{:.2} (p99)",
                ours_lat.p(0.99).as_secs_f64() / raw_lat.p(0.99).as_secs_f64()
            ),
            goal: "p99 < 50 µs, ratio <= 3".into(),
        },
        Row {
            name: "regorus tree-walking interpreter (Engine::eval_rule), same query, for reference"
                .into(),
            value: format!(
                "p50 {} / p99 {}",
                fmt_dur(interp_lat.p(0.5)),
                fmt_dur(interp_lat.p(0.99))
            ),
            baseline: "n/a".into(),
            ratio: String::new(),
            goal: String::new(),
        },
        Row {
            name: "discovery decisions per second, 2 threads".into(),
            value: fmt_rate(both),
            baseline: format!(
                "{} one thread (1 / p50)",
                fmt_rate(1.0 / ours_lat.p(0.5).as_secs_f64())
            ),
            ratio: String::new(),
            goal: String::new(),
        },
    ];
    print_table(&rows);
    Ok(())
}
